"""Shape checks with named axes, device choice, seeding and atomic file writes.

Axis names used across the project (einops style): `n` batch, `c` channels, `t` time (frames),
`h` height, `w` width, `l` a 1-D sequence length. A video is `n c t h w` with values in [-1, 1].
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from collections.abc import Iterator, Sequence
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


Resolution = tuple[int, int]  # (height, width)
ResolutionLike = Union[str, Sequence[int]]
MAX_SIDE = 9999  # folder names have 4 digits per side


def parse_resolution(value: ResolutionLike) -> Resolution:
    """`"36x64"`, `"0036x0064"` or `(36, 64)` -> `(36, 64)`; ValueError if not a sane HxW."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
        if match is None:
            raise ValueError(f"{value!r} is not HxW (height x width, e.g. 36x64)")
        height, width = int(match[1]), int(match[2])
    else:
        height, width = (int(v) for v in value)
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise ValueError(f"{height}x{width}: height and width must be between 1 and {MAX_SIDE}")
    return height, width


def format_resolution(resolution: ResolutionLike) -> str:
    """`(36, 64)` -> `"36x64"`, the form `--res` takes."""
    height, width = parse_resolution(resolution)
    return f"{height}x{width}"


PRECISIONS = ("auto", "float32", "mixed", "float16", "bfloat16")
"""What a network call accepts as `precision` (docs/networks.md#data-types): "auto" is the
network's default (the original's float16 layers on CUDA for the super-resolution networks,
float32 elsewhere), "mixed" that layout on any device, or one dtype for every layer."""


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for an empty module)."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return torch.device("cpu")


class DeviceError(ValueError, RuntimeError):
    """A device that this machine does not have; the message names the fix. A ValueError (bad
    input) and, for callers written before it existed, a RuntimeError."""


def choose_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """`None` or "auto": CUDA if available, else CPU; otherwise "cpu", "cuda", "cuda:N" or "mps",
    checked against this machine (DeviceError naming the fix)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        chosen = None
    if chosen is None or chosen.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unknown device {str(device)!r}; use --device cpu, cuda or cuda:N")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("mps (Apple GPU) was requested but is not available; use --device cpu")
    if chosen.type != "cuda":
        return chosen
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise DeviceError(
            f"{device} was requested but this machine has no CUDA GPU (or torch was built "
            "without CUDA); use --device cpu"
        )
    if chosen.index is not None and chosen.index >= count:
        raise DeviceError(
            f"{device} was requested but this machine has {count} GPU{'s' if count > 1 else ''} "
            f"(cuda:0 .. cuda:{count - 1}); use --device cuda:{count - 1} or lower"
        )
    return chosen


MIN_SAFE_TORCH = (2, 6)


def load_tensors(file) -> object:
    """`torch.load` of a file or file object with `weights_only=True` onto the CPU: tensors and
    plain containers only, no code run. Only torch >= 2.6 guarantees that (CVE-2025-32434), so
    older versions are refused rather than trusted."""
    version = tuple(int(p) for p in re.findall(r"\d+", torch.__version__)[:2])
    if version < MIN_SAFE_TORCH:
        raise RuntimeError(
            f"torch {torch.__version__} can run code while loading a checkpoint (CVE-2025-32434); "
            "upgrade: pip install 'torch>=2.6'"
        )
    return torch.load(file, map_location="cpu", weights_only=True)


def disable_tf32() -> None:
    """Full float32 matmuls and convolutions on CUDA, as the original trains
    (docs/training.md#precision-on-gpus): TF32 keeps only 10 mantissa bits, which changes the
    networks' float32 results by about 1e-3. Process-wide, like the original's setting."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


# `--compile` of lvg-train and lvg-generate (docs/networks.md#compiling).
COMPILE_CHOICES = ("auto", "on", "off")
# What "auto" means per device type, from measurements (docs/networks.md#when-to-compile):
# on CPUs compiling costs 50-130 s and makes the super-resolution generator 2x slower; on CUDA
# it is unmeasured (no GPU was available), so it stays off until benchmarks/gpu.py shows a gain.
COMPILE_BY_DEFAULT = {"cpu": False, "cuda": False}


def use_compile(choice: str, device: torch.device) -> bool:
    """Whether `--compile choice` compiles the networks on `device`."""
    if choice not in COMPILE_CHOICES:
        raise ValueError(f"`compile` must be one of {', '.join(COMPILE_CHOICES)}, got {choice!r}")
    if choice == "auto":
        return COMPILE_BY_DEFAULT.get(device.type, False)
    return choice == "on"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds the legacy global state on purpose)
    torch.manual_seed(seed)


class StreamingWriter:
    """The context-manager protocol of a writer that streams into an `AtomicTarget`: `close()`
    (commit) when the block ends cleanly, `abort()` (discard) when it raises."""

    def close(self):
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class AtomicTarget:
    """The one temp-file-then-rename mechanism of the project: write to `tmp` (beside `path`, so
    the rename stays on one file system), then `commit()` flushes it to disk and renames it over
    `path` (atomic), or `discard()` deletes it. `path` is never seen half-written.

    `hidden=True` names the temp file `.<name>.tmp-<pid>`; `hidden=False` names it
    `<name>.tmp-<pid>`, for writers whose leftovers are meant to be found (`lvg-dataset info`
    looks for `*.zip.tmp-*`). The parent folder must exist.
    """

    def __init__(self, path: Union[str, os.PathLike], hidden: bool = True):
        self.path = Path(path)
        prefix = "." if hidden else ""
        self.tmp = self.path.with_name(f"{prefix}{self.path.name}.tmp-{os.getpid()}")
        remove_stale_temps(self.path)

    def commit(self) -> Path:
        """fsync the temp file and rename it to `path`; returns `path`."""
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Delete the temp file (if any); safe to call twice and after `commit()`."""
        self.tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or a number we cannot test): leave its file alone
    return True


def remove_stale_temps(path: Union[str, os.PathLike]) -> list[Path]:
    """Delete the temp files that killed writers of `path` left behind (`[.]<name>.tmp-<pid>`
    whose process no longer runs; a SIGKILL cannot be caught, so the next writer of the same
    output cleans up). Temp files of live processes are kept. Returns the deleted paths."""
    path = Path(path)
    removed = []
    pattern = re.compile(rf"\.?{re.escape(path.name)}\.tmp-(\d+)")
    with contextlib.suppress(OSError):
        for candidate in path.parent.iterdir():
            match = pattern.fullmatch(candidate.name)
            pid = int(match[1]) if match else None
            if pid is not None and pid != os.getpid() and not _process_alive(pid):
                with contextlib.suppress(OSError):
                    candidate.unlink()
                    removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_path(path: Union[str, os.PathLike], hidden: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; on a clean exit it is flushed to disk
    and renamed over `path` (atomic on one file system), on an exception it is deleted. Either
    way `path` is never seen half-written, and an existing `path` stays whole until the rename.
    Creates the parent folder; `hidden` is as in `AtomicTarget`.

        with atomic_path("run/stats.json") as tmp:
            tmp.write_text(text)
    """
    target = AtomicTarget(path, hidden)
    target.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield target.tmp
        target.commit()
    finally:
        target.discard()


def write_atomic(path: Union[str, os.PathLike], data: Union[bytes, str]) -> Path:
    """Write bytes or UTF-8 text to `path` through `atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)
