"""Timing helpers shared by the scripts in `benchmarks/` (imported as `timing`: each script's
own folder is on the import path when it runs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def timed(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """(best wall-clock seconds over `repeats` calls, the last result), after one warm-up call
    (allocator, oneDNN primitive caches, resampling plans)."""
    fn()
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 2048) -> float:
    """GFLOP/s of a plain n^3 matmul: this machine's reference speed at the moment."""
    a = torch.randn(n, n, dtype=dtype)
    seconds, _ = timed(lambda: a @ a, 3)
    return 2 * n**3 / seconds / 1e9
