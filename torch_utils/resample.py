"""FIR resampling with the exact semantics of the original `upfirdn2d`
(docs/networks.md#fir-resampling).

One operation, `upfirdn`, is defined along any tensor axis (time or space):

    zero-stuff by `up`  ->  pad with zeros (negative pads crop)  ->  true convolution with `f`
    (the filter is flipped)  ->  keep every `down`-th sample  ->  multiply by `gain`.

It is computed in polyphase form: an upsampling by `up` is `up` short filters applied to the
input and interleaved, and a downsampling only evaluates the kept outputs, so no zero-stuffed
or full-rate tensor is ever materialised. Each phase is a sum of shifted slices, which works
for every dtype and device PyTorch supports and differentiates twice (R1 needs that).

`upfirdn2d` applies a 1-D filter separably over the last two axes (gain split between them) or
a 2-D filter as is. `upsample` / `downsample` add the original's default paddings, and
`linear_filter`, `kaiser_filter`, `blur_filter` are the named resamplers of
docs/networks.md#named-resamplers.

Filters are turned into tuples of Python floats (`filter_taps`) before anything is computed, so
the tensor path is pure torch with Python-int shapes: `torch.compile` traces it without graph
breaks when the filters are given as such tuples (docs/networks.md#compiling). The named
filters have tuple forms (`linear_taps`, `kaiser_taps`, `blur_taps`), designed once and then
looked up, which a traced call reads as constants.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache, lru_cache

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

Padding = tuple[int, int]


# ------------------------------------------------------------------------------------------------
# Named filters (docs/networks.md#named-resamplers), as float64 numpy arrays; convert with
# `as_filter_tensor`.


@cache
def _linear_taps(scale: int) -> tuple[float, ...]:
    half = np.arange(1, 2 * scale, 2, dtype=np.float64)  # 1, 3, ..., 2s-1
    taps = np.concatenate([half, half[::-1]])
    return tuple(taps / taps.sum())


def linear_filter(scale: int = 2) -> np.ndarray:
    """Linear-interpolation taps for resampling by `scale`: [1,3,3,1]/8 for 2, [1,3,5,7,7,5,3,1]/32
    for 4. As an upsampler with gain `scale` per axis it interpolates half-sample
    centred, with zero borders."""
    return np.array(_linear_taps(int(scale)))


@cache
def _kaiser_taps(scale: int) -> tuple[float, ...]:
    return tuple(scipy.signal.firwin(numtaps=scale * 6, cutoff=1.0, width=6.0, fs=scale * 4.0))


def kaiser_filter(scale: int = 2) -> np.ndarray:
    """Kaiser-windowed lowpass for resampling by `scale`: `firwin(6*scale, cutoff=1, width=6,
    fs=4*scale)`, unit DC gain; 12 taps for scale 2, 24 for scale 4."""
    return np.array(_kaiser_taps(int(scale)))


def blur_filter() -> np.ndarray:
    """The [1,3,3,1] blur of the discriminators, normalised to sum 1."""
    return np.array([1.0, 3.0, 3.0, 1.0]) / 8.0


def linear_taps(scale: int = 2) -> tuple[float, ...]:
    """`linear_filter(scale)` as a tuple of floats (the form the compiled path takes)."""
    return _named_taps("linear", int(scale))


def kaiser_taps(scale: int = 2) -> tuple[float, ...]:
    """`kaiser_filter(scale)` as a tuple of floats."""
    return _named_taps("kaiser", int(scale))


def blur_taps() -> tuple[float, ...]:
    """`blur_filter()` as a tuple of floats."""
    return (0.125, 0.375, 0.375, 0.125)


# Designed filters by (name, scale). A traced call finds its filter here, a constant, and never
# reaches numpy or scipy; the scales the networks use are designed at import.
_TAPS: dict[tuple[str, int], tuple[float, ...]] = {}


def _named_taps(name: str, scale: int) -> tuple[float, ...]:
    taps = _TAPS.get((name, scale))
    if taps is None:
        design = _linear_taps if name == "linear" else _kaiser_taps
        taps = _TAPS[name, scale] = tuple(float(t) for t in design(scale))
    return taps


for _scale in (2, 4):
    linear_taps(_scale), kaiser_taps(_scale)


def filter_taps(f) -> tuple[float, ...]:
    """A 1-D filter (sequence, numpy array or tensor) as a tuple of float64 Python floats. A
    tuple of floats is returned as is, without numpy: the only form `torch.compile` can trace."""
    if isinstance(f, tuple) and f and all(isinstance(t, float) for t in f):
        return f
    taps = np.asarray(f.detach().cpu() if torch.is_tensor(f) else f, dtype=np.float64)
    if taps.ndim != 1 or taps.size == 0:
        raise ValueError(f"resampling needs a non-empty 1-D filter, got shape {taps.shape}")
    return tuple(taps.tolist())


def as_filter_tensor(f, device=None, dtype=torch.float32) -> torch.Tensor:
    """A filter as a tensor (for `register_buffer`); accepts numpy arrays, lists or tensors."""
    return torch.as_tensor(np.asarray(f, dtype=np.float64), dtype=dtype, device=device)


# ------------------------------------------------------------------------------------------------
# Core 1-D operation.


def _pad_along(x: torch.Tensor, dim: int, lo: int, hi: int) -> torch.Tensor:
    """Zero-pad (positive) or crop (negative) `x` along `dim`."""
    if lo < 0:
        x = x.narrow(dim, -lo, x.shape[dim] + lo)
        lo = 0
    if hi < 0:
        x = x.narrow(dim, 0, x.shape[dim] + hi)
        hi = 0
    if lo == 0 and hi == 0:
        return x
    shape = list(x.shape)
    parts = []
    if lo:
        shape[dim] = lo
        parts.append(x.new_zeros(shape))
    parts.append(x)
    if hi:
        shape[dim] = hi
        parts.append(x.new_zeros(shape))
    return torch.cat(parts, dim=dim)


def _strided(x: torch.Tensor, dim: int, start: int, count: int, step: int) -> torch.Tensor:
    """`count` samples of `x` along `dim` from `start`, every `step`-th (a view)."""
    index = [slice(None)] * x.ndim
    index[dim] = slice(start, start + (count - 1) * step + 1, step)
    return x[tuple(index)]


def _fir_sum(x: torch.Tensor, taps: Sequence[float], dim: int, start: int, count: int, step: int):
    """sum_k taps[k] * x[start + j*step + k] for j < count: a correlation as shifted slices."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _FirSum.apply(x, tuple(taps), dim, start, count, step)
    return _fir_sum_forward(x, taps, dim, start, count, step)


class _FirSum(torch.autograd.Function):
    """`_fir_sum` whose backward scatters the output gradient into one input-sized buffer.
    Autograd's own backward of the per-tap slices would allocate and zero-fill an input-sized
    tensor for every tap, then add them all up: on the SR generator's upsampled rows that was
    about a fifth of a training step. The backward is made of differentiable ops (twice
    differentiable, as the reference path must be)."""

    @staticmethod
    def forward(ctx, x, taps, dim, start, count, step):
        ctx.shape, ctx.args = x.shape, (taps, dim, start, count, step)
        return _fir_sum_forward(x, taps, dim, start, count, step)

    @staticmethod
    def backward(ctx, grad):
        taps, dim, start, count, step = ctx.args
        gx = grad.new_zeros(ctx.shape)
        for k, tap in enumerate(taps):
            if tap != 0.0:
                _strided(gx, dim, start + k, count, step).add_(grad, alpha=tap)
        return gx, None, None, None, None, None


def _fir_sum_forward(x, taps, dim, start, count, step):
    out = None
    for k, tap in enumerate(taps):
        if tap == 0.0:
            continue
        term = _strided(x, dim, start + k, count, step)
        out = term * tap if out is None else out.add_(term, alpha=tap)
    if out is None:  # all-zero filter
        shape = list(x.shape)
        shape[dim] = count
        out = x.new_zeros(shape)
    return out


def upfirdn(
    x: torch.Tensor,
    f,
    dim: int = -1,
    up: int = 1,
    down: int = 1,
    padding: Padding = (0, 0),
    gain: float = 1.0,
    method: str = "auto",
) -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample `x` along one axis
    (docs/networks.md#fir-resampling).

    `f` is a 1-D filter (sequence, numpy array or tensor); `padding` = (before, after) in
    zero-stuffed samples, negative values crop. Output length is
    `(L*up + before + after - len(f)) // down + 1`.

    `method`: "polyphase" (shifted-slice sums, cost ~ taps per output), "matrix" (one matmul
    with the exact banded resampling matrix, fastest for short axes such as image rows), or
    "auto" (matrix for axes up to `MATRIX_MAX_LENGTH` samples, else polyphase).
    """
    dim = dim % x.ndim
    taps = filter_taps(f)
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be >= 1, got up={up}, down={down}")
    length = x.shape[dim]
    p0, p1 = int(padding[0]), int(padding[1])
    if length * up + p0 + p1 - len(taps) + 1 < 1:
        raise ValueError(
            f"upfirdn output would be empty (length {length}, up {up}, padding {padding}, "
            f"{len(taps)} taps)"
        )
    if dim != 1 and _is_channels_last(x):
        # Filter the [n, ..., c] view, which is contiguous: the result comes back channels-last
        # too, so the convolution that follows needs no format conversion.
        y = upfirdn(x.movedim(1, -1), taps, dim - (dim > 1), up, down, padding, gain, method)
        return y.movedim(-1, 1)
    if method == "auto":
        method = "matrix" if length <= MATRIX_MAX_LENGTH and x.is_floating_point() else "polyphase"
    if method == "polyphase":
        return _polyphase(x, _flipped(taps, gain), dim, up, down, p0, p1)
    if method != "matrix":
        raise ValueError(f"unknown upfirdn method {method!r}")
    key = (length, taps, up, down, p0, p1, float(gain))
    if torch.compiler.is_compiling():  # built in the graph (same float64 values), not cached
        matrix = _build_matrix(*key, device=x.device)
    else:
        matrix = _resampling_matrix(*key)
    matrix = matrix.to(device=x.device, dtype=x.dtype)  # [L_out, L_in]
    if dim == x.ndim - 1:
        return x @ matrix.T
    shape = x.shape
    y = matrix @ x.reshape(math.prod(shape[:dim]), length, math.prod(shape[dim + 1 :]))
    return y.reshape(*shape[:dim], matrix.shape[0], *shape[dim + 1 :])


MATRIX_MAX_LENGTH = 384


def _is_channels_last(x: torch.Tensor) -> bool:
    if x.ndim not in (4, 5) or x.shape[1] == 1 or x.is_contiguous():
        return False
    fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
    return x.is_contiguous(memory_format=fmt)


def resampling_matrix(
    length: int, f, up: int = 1, down: int = 1, padding: Padding = (0, 0), gain: float = 1.0
) -> torch.Tensor:
    """The exact linear map of `upfirdn` (same arguments) on an axis of `length` samples, as a
    float64 `[L_out, L_in]` matrix: `upfirdn(x, f, dim, ...)` is this matrix applied along `dim`.
    Cached; do not modify the result in place."""
    key = (int(length), filter_taps(f), int(up), int(down), int(padding[0]), int(padding[1]))
    return _resampling_matrix(*key, float(gain))


@lru_cache(maxsize=256)
def _resampling_matrix(length, taps, up, down, p0, p1, gain) -> torch.Tensor:
    return _build_matrix(length, taps, up, down, p0, p1, gain)


def _build_matrix(length, taps, up, down, p0, p1, gain, device=None) -> torch.Tensor:
    eye = torch.eye(length, dtype=torch.float64, device=device)
    return _polyphase(eye, _flipped(taps, gain), 0, up, down, p0, p1).contiguous()


def _flipped(taps: tuple[float, ...], gain: float) -> list[float]:
    """The reversed taps times the gain (float64, as numpy's `taps[::-1] * gain`)."""
    gain = float(gain)
    return [t * gain for t in reversed(taps)]


def _polyphase(x, flipped: list[float], dim: int, up: int, down: int, p0: int, p1: int):
    """`upfirdn` as shifted-slice sums; `flipped` holds the reversed taps times the gain."""
    num_taps = len(flipped)
    length = x.shape[dim]
    out_full = length * up + p0 + p1 - num_taps + 1  # before decimation
    out_len = (out_full - 1) // down + 1
    if up == 1:
        xp = _pad_along(x, dim, p0, p1)
        return _fir_sum(xp, flipped, dim, 0, out_len, down)

    # Output j reads zero-stuffed sample m = j + k - p0, which is x[m // up] when m % up == 0.
    # Output phase r = j % up uses taps k with (r + k - p0) % up == 0 and reads
    # x[q + (r + k - p0) // up] for output q*up + r; those shifts are consecutive.
    num_q = -(-out_full // up)
    phases = []
    for r in range(up):
        ks = [k for k in range(num_taps) if (r + k - p0) % up == 0]
        phases.append(([flipped[k] for k in ks], [(r + k - p0) // up for k in ks]))
    shifts = [s for _, ss in phases for s in ss] or [0]
    lo = max(0, -min(shifts))
    hi = max(0, num_q - 1 + max(shifts) - (length - 1))
    xp = _pad_along(x, dim, lo, hi)
    outs = []
    for taps_r, shift_r in phases:
        if taps_r:
            outs.append(_fir_sum(xp, taps_r, dim, shift_r[0] + lo, num_q, 1))
        else:
            shape = list(x.shape)
            shape[dim] = num_q
            outs.append(x.new_zeros(shape))
    y = torch.stack(outs, dim=dim + 1).flatten(dim, dim + 1).narrow(dim, 0, out_full)
    return _strided(y, dim, 0, out_len, down) if down > 1 else y


# ------------------------------------------------------------------------------------------------
# 2-D (last two axes) and default-padding helpers.


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def padding4(padding) -> tuple[int, int, int, int]:
    """2-D padding as (x0, x1, y0, y1) from an int, a pair (x, y) or a 4-tuple, as the
    original's `upfirdn2d` and `filtered_lrelu` accept it."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    return tuple(int(p) for p in padding)  # type: ignore[return-value]


def upfirdn2d(
    x: torch.Tensor, f, up=1, down=1, padding=0, gain: float = 1.0, flip_filter: bool = False
) -> torch.Tensor:
    """`upfirdn` over the last two axes (H, W), as the original `upfirdn2d`.

    A 1-D filter is applied separably (W then H) with the gain split between the axes; a 2-D
    `[fh, fw]` filter is applied as is. `up`, `down` are ints or (x, y) pairs; `padding` is an
    int, (x, y) or (x0, x1, y0, y1). `flip_filter` turns the convolution into a correlation.
    """
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = padding4(padding)
    if _is_1d(f):
        taps = filter_taps(f)
        if flip_filter:
            taps = taps[::-1]
        g = float(gain) ** 0.5
        x = upfirdn(x, taps, dim=-1, up=upx, down=downx, padding=(px0, px1), gain=g)
        return upfirdn(x, taps, dim=-2, up=upy, down=downy, padding=(py0, py1), gain=g)
    taps = np.asarray(f.detach().cpu() if torch.is_tensor(f) else f, dtype=np.float64)
    if flip_filter:
        taps = np.flip(taps)
    if taps.ndim != 2:
        raise ValueError(f"upfirdn2d filter must be 1-D or 2-D, got shape {taps.shape}")
    rank1 = _separate(taps)
    if rank1 is not None:
        fy, fx = rank1
        x = upfirdn(x, fx, dim=-1, up=upx, down=downx, padding=(px0, px1), gain=gain)
        return upfirdn(x, fy, dim=-2, up=upy, down=downy, padding=(py0, py1))
    return _upfirdn2d_direct(x, taps, upx, upy, downx, downy, (px0, px1, py0, py1), gain)


def _is_1d(f) -> bool:
    """Whether `f` is a 1-D filter (a flat sequence of numbers, or a 1-D array or tensor)."""
    if isinstance(f, (tuple, list)):
        return not f or not isinstance(f[0], (tuple, list, np.ndarray, torch.Tensor))
    return np.ndim(f) == 1 if not torch.is_tensor(f) else f.ndim == 1


def _separate(taps: np.ndarray):
    """(fy, fx) with taps == outer(fy, fx) exactly enough for float32, else None."""
    u, s, vt = np.linalg.svd(taps)
    if s.size > 1 and s[1] > 1e-12 * s[0]:
        return None
    fy, fx = u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])
    if fy.sum() < 0:
        fy, fx = -fy, -fx
    return fy, fx


def _upfirdn2d_direct(x, taps, upx, upy, downx, downy, pad4, gain):
    """General non-separable 2-D filter: zero-stuff, pad, conv2d. Rarely used (no filter of the
    paper's networks needs it), kept simple."""
    shape = x.shape
    h, w = shape[-2:]
    x = x.reshape(-1, 1, h, w)
    if upx > 1 or upy > 1:
        xu = x.new_zeros(x.shape[0], 1, h * upy, w * upx)
        xu[:, :, ::upy, ::upx] = x
        x = xu
    px0, px1, py0, py1 = pad4
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[
        :,
        :,
        max(-py0, 0) : x.shape[2] - max(-py1, 0),
        max(-px0, 0) : x.shape[3] - max(-px1, 0),
    ]
    weight = torch.as_tensor(np.flip(taps).copy() * gain, dtype=x.dtype, device=x.device)
    y = F.conv2d(x, weight[None, None], stride=(downy, downx))
    return y.reshape(*shape[:-2], y.shape[-2], y.shape[-1])


def default_up_padding(num_taps: int, up: int) -> Padding:
    """The original's padding for an `up`-times upsampler: output = input * up."""
    return (num_taps + up - 1) // 2, (num_taps - up) // 2


def default_down_padding(num_taps: int, down: int) -> Padding:
    """The original's padding for a `down`-times downsampler."""
    return (num_taps - down + 1) // 2, (num_taps - down) // 2


def upsample(
    x: torch.Tensor, f, up: int = 2, dims: Sequence[int] = (-2, -1), gain: float = 1.0
) -> torch.Tensor:
    """Upsample by `up` along each axis in `dims` with the default padding and gain `up` per
    axis (zero borders), e.g. `dims=(2,)` for the time axis of an `n c t h w` video. An extra
    `gain` multiplies the result (folded into the first axis' filter)."""
    taps = filter_taps(f)
    pad = default_up_padding(len(taps), up)
    for i, d in enumerate(dims):
        x = upfirdn(x, taps, dim=d, up=up, padding=pad, gain=up * (gain if i == 0 else 1.0))
    return x


def downsample(x: torch.Tensor, f, down: int = 2, dims: Sequence[int] = (-2, -1)) -> torch.Tensor:
    """Downsample by `down` along each axis in `dims` with the default padding (zero borders)."""
    taps = filter_taps(f)
    pad = default_down_padding(len(taps), down)
    for d in dims:
        x = upfirdn(x, taps, dim=d, down=down, padding=pad)
    return x
