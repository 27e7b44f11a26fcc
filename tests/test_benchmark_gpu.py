"""`benchmarks/gpu.py` cannot rot: its CPU smoke run prints every row (docs: benchmarks/README.md).
The compiled rows are left out here (minutes of compiling); tests/test_compile.py compiles the
same targets."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_quick_on_cpu():
    r = subprocess.run(
        [sys.executable, "benchmarks/gpu.py", "--device", "cpu", "--quick", "--no-compile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line for line in r.stdout.splitlines() if not line.startswith("#")]
    for what in ("low-res G eager", "super-res G eager"):
        for dtype in ("float32", "bfloat16"):
            assert any(f"{what} {dtype}" in row and "frames/s" in row for row in rows), r.stdout
    for stage in ("lres", "sres"):
        assert sum(f"{stage} training step" in row and "steps/s" in row for row in rows) == 2
    assert not any("failed" in row for row in rows), r.stdout


def test_gpu_benchmark_refuses_cuda_without_a_gpu():
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = subprocess.run(
        [sys.executable, "benchmarks/gpu.py", "--device", "cuda"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "use --device cpu --quick" in r.stderr


def test_disable_tf32_turns_off_both_switches():
    import torch

    from torch_utils.misc import disable_tf32

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        disable_tf32()
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
