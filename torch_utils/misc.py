"""Shape checks with named axes, device choice, seeding and atomic file writes.

Axis names used across the project (einops style): `n` batch, `c` channels, `t` time (frames),
`h` height, `w` width, `l` a 1-D sequence length. A video is `n c t h w` with values in [-1, 1].
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Optional, Union

import einops
import numpy as np
import torch


def assert_shape(x: torch.Tensor, pattern: str, **sizes: Optional[int]) -> dict[str, int]:
    """Check `x` against an einops-style pattern and named sizes; return the axis sizes.

        assert_shape(video, "n c t h w", c=3, h=36)  ->  {"n": 2, "c": 3, "t": 16, ...}

    Raises a ValueError naming the offending axis. Sizes given as None are not checked.
    """
    names = pattern.split()
    if x.ndim != len(names):
        raise ValueError(
            f"expected a tensor '{pattern}' ({len(names)} axes), got shape {tuple(x.shape)}"
        )
    found = einops.parse_shape(x, pattern)
    for name, want in sizes.items():
        if name not in found:
            raise ValueError(f"axis {name!r} is not in pattern '{pattern}'")
        if want is not None and found[name] != want:
            raise ValueError(
                f"axis {name!r} of '{pattern}' should be {want}, got {found[name]} "
                f"(shape {tuple(x.shape)})"
            )
    return found


def choose_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """`None` or "auto": CUDA if available, else CPU; anything else is used as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but is not available; use --device cpu")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds the legacy global state on purpose)
    torch.manual_seed(seed)


@contextlib.contextmanager
def atomic_path(path: Union[str, os.PathLike]) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; on a clean exit it is flushed to disk
    and renamed over `path` (atomic on one file system), on an exception it is deleted. Either
    way `path` is never seen half-written, and an existing `path` stays whole until the rename.

        with atomic_path("run/stats.json") as tmp:
            tmp.write_text(text)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Union[str, os.PathLike], data: Union[bytes, str]) -> Path:
    """Write bytes or UTF-8 text to `path` through `atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)
