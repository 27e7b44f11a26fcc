"""The alias-free nonlinearity of the super-resolution generator (docs/networks.md#synthesis-layer).

    y = down_FIR( clamp( lrelu( up_FIR( x + b ) ) ) )

with the exact semantics of StyleGAN3's `filtered_lrelu` reference path:

1. add the per-channel bias;
2. upsample by `up` along H and W: zero-stuff, pad (negative pads crop), convolve with the 1-D
   filter `fu` separably, gain `up` per axis (`up**2` in all);
3. leaky ReLU with `slope`, times `gain`, clamped to [-clamp, clamp];
4. convolve with `fd` separably (no padding) and keep every `down`-th sample.

Nothing zero-stuffed is ever materialised. As StyleGAN3's ops, every function here takes one
switch, `impl`, and computes the same thing either way:

* `impl="ref"`: the four steps with `torch_utils.resample.upfirdn`, the plain definition. Any
  dtype, twice differentiable.
* `impl="fast"` (the default): each 1-D resampling is its exact banded matrix applied block by
  block as a few large matrix products (`BandedOperator` along the leading axis, `RowOperator`
  along the last one), on slices of (frame, channel) planes small enough that the upsampled
  slice stays in the CPU caches (`_FusedPlan`); on the CPU the slices are shared among
  single-threaded worker threads, one per intra-op thread (set per thread through OpenMP and
  MKL, never through the process-wide `torch.set_num_threads`), which avoids a thread
  synchronisation per operation. It writes into reused buffers and so has no
  autograd: when gradients are needed, "fast" computes the core with the "ref" resamplers and
  keeps only the layout and border savings below, which are autograd-safe.

For a synthesis layer (modulated conv -> filtered lrelu -> concatenation with the next layer's
conditioning) the fast path also saves work around the op, which is why `conv_window` and the
`concat` argument exist: under "fast", the convolution outputs that the negative padding would
discard are never computed, and the result is written with the concatenated channels into one
buffer, channels-last for narrow outputs on the CPU (the layout the next convolution wants).
Under "ref" they are the plain full convolution and `torch.cat`.

Under `torch.compile` (docs/networks.md#compiling) "fast" takes the reference core and
concatenation, which the compiler fuses itself: the fused path's reused buffers and worker
threads are host logic that cannot be traced. Filters given as tuples of floats keep the
traced path free of numpy.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import NamedTuple, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils import resample

Filter = Union[None, np.ndarray, torch.Tensor, Sequence[float]]

SQRT2 = math.sqrt(2)
IMPLS = ("ref", "fast")
# Widest output (with the concatenated channels) that the fast path writes channels-last on the
# CPU: the op writes a few channels at a time, so each pixel's channel run should span few cache
# lines (demo network: 1.2-1.4x faster; with the paper's 128-512 channels it was slower).
CHANNELS_LAST_MAX = 64


def _taps(f: Filter) -> tuple[float, ...]:
    """A filter as a tuple of float64 taps; None is the identity (one tap of 1)."""
    return (1.0,) if f is None else resample.filter_taps(f)


def _check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"unknown filtered_lrelu impl {impl!r}; choose one of {IMPLS}")


def output_size(
    in_size: int, up: int, down: int, pad: tuple[int, int], up_taps: int, down_taps: int
) -> int:
    """Length of one axis after `filtered_lrelu` (StyleGAN3's formula)."""
    return (in_size * up + pad[0] + pad[1] - (up_taps - 1) - (down_taps - 1) + (down - 1)) // down


def filtered_lrelu(
    x: torch.Tensor,
    fu: Filter = None,
    fd: Filter = None,
    b: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding=0,
    gain: float = SQRT2,
    slope: float = 0.2,
    clamp: Optional[float] = None,
    impl: str = "fast",
    out: Optional[torch.Tensor] = None,
    concat: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Bias, upsample, leaky ReLU, clamp, downsample of `x` `[n, c, h, w]` (see module doc).

    `fu`, `fd`: 1-D filters (None = identity); `padding`: int, (x, y) or (x0, x1, y0, y1),
    applied at the upsampled rate before the up-filter. The output has `x`'s dtype.
    `impl`: "ref" or "fast" (see the module doc; both give the same values and gradients).
    `out`: optional `[n, c, h', w']` destination of any layout; it is returned.
    `concat`: optional `[n, c2, h', w']` channels appended to the result, which is then
    `torch.cat([y, concat.to(y.dtype)], dim=1)` (not with `out`).
    """
    _check_impl(impl)
    fu_taps, fd_taps = _taps(fu), _taps(fd)
    pad4 = resample.padding4(padding)
    _check_arguments(x, b, up, down, pad4, len(fu_taps), len(fd_taps))
    if concat is not None:
        if out is not None:
            raise ValueError("filtered_lrelu takes `out` or `concat`, not both")
        out = _concat_buffer(x, _output_hw(x, up, down, pad4, fu_taps, fd_taps), concat, impl)
        if out is None:  # the reference concatenation
            y = filtered_lrelu(x, fu, fd, b, up, down, pad4, gain, slope, clamp, impl)
            return torch.cat([y, concat.to(y.dtype)], dim=1)
        filtered_lrelu(x, fu, fd, b, up, down, pad4, gain, slope, clamp, impl, out[:, : x.shape[1]])
        return out
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or (b is not None and b.requires_grad)
    )
    traced = torch.compiler.is_compiling()
    if impl == "ref" or needs_grad or traced or not x.is_floating_point():
        y = _reference(x, fu_taps, fd_taps, b, up, down, pad4, gain, slope, clamp)
        return y if out is None else out.copy_(y)
    fu_bytes, fd_bytes = np.array(fu_taps).tobytes(), np.array(fd_taps).tobytes()
    plan = _fused_plan(tuple(x.shape[2:]), fu_bytes, fd_bytes, up, down, pad4)
    return plan(x, b, gain, slope, clamp, out)


def _check_arguments(x, b, up, down, pad4, up_taps, down_taps) -> None:
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu needs an [n, c, h, w] tensor, got {tuple(x.shape)}")
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be >= 1, got {up} and {down}")
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[1]):
        raise ValueError(f"bias of shape {tuple(b.shape)} does not fit {tuple(x.shape)}")
    for axis, length, pad in (("width", x.shape[3], pad4[:2]), ("height", x.shape[2], pad4[2:])):
        if output_size(length, up, down, pad, up_taps, down_taps) < 1:
            raise ValueError(f"filtered_lrelu output {axis} would be empty for input {length}")


def _output_hw(x, up, down, pad4, fu_taps, fd_taps) -> tuple[int, int]:
    nu, nd = len(fu_taps), len(fd_taps)
    return (
        output_size(x.shape[2], up, down, pad4[2:], nu, nd),
        output_size(x.shape[3], up, down, pad4[:2], nu, nd),
    )


def _concat_buffer(x, out_hw, concat, impl) -> Optional[torch.Tensor]:
    """Fast path of `concat`: one `[n, c + c2, h', w']` buffer with `concat` already in its last
    channels (channels-last when narrow, on the CPU); None under "ref"."""
    n, c = x.shape[:2]
    if concat.ndim != 4 or concat.shape[0] != n or tuple(concat.shape[2:]) != out_hw:
        raise ValueError(f"cannot concatenate {tuple(concat.shape)} to [{n}, {c}, {out_hw}]")
    if impl == "ref" or torch.compiler.is_compiling():
        return None
    shape = (n, c + concat.shape[1], *out_hw)
    narrow = shape[1] <= CHANNELS_LAST_MAX and x.device.type == "cpu"
    layout = torch.channels_last if narrow else torch.contiguous_format
    buffer = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=layout)
    buffer[:, c:] = concat
    return buffer


class ConvWindow(NamedTuple):
    """What `conv_window` returns: the convolution's input, its zero padding (x0, x1, y0, y1)
    and the filtered lrelu's padding that together compute the same as the full convolution."""

    x: torch.Tensor
    conv_padding: tuple[int, int, int, int]
    padding: tuple[int, int, int, int]


def skipped_border(
    in_hw: tuple[int, int], kernel: int, up: int, padding
) -> tuple[int, int, int, int]:
    """Outputs (x0, x1, y0, y1) at each border of a "full" convolution (padding kernel - 1) of
    an `in_hw` input that a following `filtered_lrelu(up=up, padding=padding)` discards through
    its negative padding (2 per side on the paper's x4 layers, 6 on L13)."""
    pad4 = resample.padding4(padding)
    out = []
    for size, (p0, p1) in ((in_hw[1], pad4[:2]), (in_hw[0], pad4[2:])):
        length = size + kernel - 1
        lo = max(0, -(p0 // up))  # ceil(-p0 / up)
        keep_hi = (length * up + p1 - 1) // up
        out += [lo, max(0, length - 1 - keep_hi)]
    return tuple(out)


def conv_window(x: torch.Tensor, kernel: int, up: int, padding, impl: str = "fast") -> ConvWindow:
    """The input window of the "full" convolution (padding kernel - 1, a `kernel`-sized square
    kernel) of `x` that feeds `filtered_lrelu(up=up, padding=padding)`.

    "ref": `x` itself, padding kernel - 1 on every side, `padding` unchanged. "fast": the
    convolution outputs the filtered lrelu would discard (`skipped_border`) are cut off: a
    narrower input window, less convolution padding, and the lrelu padding moved by the same
    amount (at the upsampled rate). Both give the same filtered-lrelu output."""
    _check_impl(impl)
    pad = kernel - 1
    pad4 = resample.padding4(padding)
    if impl == "ref":
        return ConvWindow(x, (pad,) * 4, pad4)
    h, w = x.shape[-2:]
    x0, x1, y0, y1 = skipped_border((h, w), kernel, up, pad4)
    window = x[
        ..., max(0, y0 - pad) : h - max(0, y1 - pad), max(0, x0 - pad) : w - max(0, x1 - pad)
    ]
    conv_padding = tuple(max(0, pad - s) for s in (x0, x1, y0, y1))
    moved = tuple(p + up * s for p, s in zip(pad4, (x0, x1, y0, y1)))
    return ConvWindow(window, conv_padding, moved)


def _activate(x: torch.Tensor, gain: float, slope: float, clamp: Optional[float], inplace: bool):
    if slope != 1:
        x = F.leaky_relu_(x, slope) if inplace else F.leaky_relu(x, slope)
    if gain != 1:
        x = x.mul_(gain) if inplace else x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return x


def _reference(x, fu, fd, b, up, down, pad4, gain, slope, clamp):
    """StyleGAN3's reference path, on the polyphase/matrix resamplers."""
    px0, px1, py0, py1 = pad4
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    x = resample.upfirdn(x, fu, dim=3, up=up, padding=(px0, px1), gain=up)
    x = resample.upfirdn(x, fu, dim=2, up=up, padding=(py0, py1), gain=up)
    x = _activate(x, gain, slope, clamp, inplace=False)
    x = resample.upfirdn(x, fd, dim=3, down=down)
    return resample.upfirdn(x, fd, dim=2, down=down)


# ------------------------------------------------------------------------------------------------
# Fused path.


@lru_cache(maxsize=64)
def _fused_plan(in_hw, fu_bytes, fd_bytes, up, down, pad4) -> _FusedPlan:
    fu, fd = np.frombuffer(fu_bytes), np.frombuffer(fd_bytes)
    return _FusedPlan(in_hw, fu, fd, up, down, pad4)


class BandedOperator:
    """y = M @ x along the leading axis of `x` `[L_in, N]`, for an exact banded resampling
    matrix M `[L_out, L_in]` (float64), computed as a few large matrix products.

    The output rows are cut into blocks of `block` rows. Away from the borders, block b reads
    the input rows [b*step + offset, b*step + offset + width) through the same small matrix
    (the filter is shift-invariant), so all those blocks are one batched product over
    overlapping windows of the input, a strided view and never a copy. The few border blocks
    (where the window leaves the input, or the last, partial block) are plain products with
    their own exact sub-matrices of M. Every product is a dense GEMM with N = the length of a
    whole row of the other axes, which is what makes this fast on CPUs.
    """

    def __init__(self, matrix: np.ndarray, block: int, step: int):
        self.matrix = matrix = np.asarray(matrix, dtype=np.float64)
        self.out_len, self.in_len = matrix.shape
        nz = matrix != 0
        rows_any = nz.any(axis=1)
        num_blocks = -(-self.out_len // block)
        spans = []
        for k in range(num_blocks):
            cols = np.nonzero(nz[k * block : (k + 1) * block].any(axis=0))[0]
            spans.append((cols[0] - k * step, cols[-1] - k * step) if cols.size else None)
        used = [s for s in spans if s is not None]
        offset = min(s[0] for s in used) if used else 0
        width = (max(s[1] for s in used) - offset + 1) if used else 1
        full = [
            k
            for k in range(num_blocks)
            if (k + 1) * block <= self.out_len
            and k * step + offset >= 0
            and k * step + offset + width <= self.in_len
        ]
        self.block, self.step, self.offset, self.width = block, step, offset, width
        self.first, self.count = (full[0], len(full)) if full else (0, 0)
        if self.count:
            k0 = self.first
            core = matrix[k0 * block : (k0 + 1) * block, k0 * step + offset :][:, :width]
            for k in full:
                s = k * step + offset
                if not np.array_equal(matrix[k * block : (k + 1) * block, s : s + width], core):
                    raise AssertionError("resampling matrix is not shift-invariant")
            self.core = core
        self.edges = []  # (row0, row1, col0, col1, sub-matrix)
        for k in range(num_blocks):
            if self.first <= k < self.first + self.count:
                continue
            r0, r1 = k * block, min((k + 1) * block, self.out_len)
            cols = np.nonzero(nz[r0:r1].any(axis=0))[0]
            if not rows_any[r0:r1].any():
                self.edges.append((r0, r1, 0, 0, None))
                continue
            c0, c1 = int(cols[0]), int(cols[-1]) + 1
            self.edges.append((r0, r1, c0, c1, matrix[r0:r1, c0:c1]))
        self._tensors: dict = {}

    @property
    def macs_per_output(self) -> float:
        """Multiply-adds per output sample (the ideal polyphase count is taps/up or taps)."""
        total = self.count * self.block * self.width
        total += sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1, _ in self.edges)
        return total / self.out_len

    def _get(self, dtype, device):
        key = (dtype, device)
        if key not in self._tensors:
            core = torch.as_tensor(self.core, dtype=dtype, device=device) if self.count else None
            edges = [
                (
                    r0,
                    r1,
                    c0,
                    c1,
                    None if m is None else torch.as_tensor(m, dtype=dtype, device=device),
                )
                for r0, r1, c0, c1, m in self.edges
            ]
            self._tensors[key] = (core, edges)
        return self._tensors[key]

    def __call__(self, x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x `[L_in, N]` contiguous -> `[L_out, N]` (written into `out` when given)."""
        if x.shape[0] != self.in_len or not x.is_contiguous():
            raise ValueError(
                f"expected a contiguous [{self.in_len}, N] tensor, got {tuple(x.shape)}"
            )
        n = x.shape[1]
        y = x.new_empty(self.out_len, n) if out is None else out
        core, edges = self._get(x.dtype, x.device)
        if self.count:
            start = self.first * self.step + self.offset
            windows = x.as_strided(
                (self.count, self.width, n),
                (self.step * n, n, 1),
                x.storage_offset() + start * n,
            )
            r0 = self.first * self.block
            dst = y[r0 : r0 + self.count * self.block].view(self.count, self.block, n)
            torch.bmm(core.expand(self.count, -1, -1), windows, out=dst)
        for r0, r1, c0, c1, m in edges:
            if m is None:
                y[r0:r1].zero_()
            else:
                torch.mm(m, x[c0:c1], out=y[r0:r1])
        return y


class RowOperator:
    """y = x @ M^T along the last axis of `x` `[R, L_in]` for an exact banded resampling matrix
    M `[L_out, L_in]`, as one matrix product over overlapping windows of the (zero-extended)
    rows: output block j (`block` samples) = window j (`width` samples from j*`step`) @ core.

    The input is zero-extended (`pad_lo` before, enough after) so that every block, borders
    included, uses the same small `core` matrix: upfirdn is shift-invariant on the zero-extended
    signal. The output has `num_blocks * block` >= L_out columns; the columns past L_out hold
    the filter's response beyond the signal's end (finite, never read as valid samples).
    `min_out` asks for at least that many output columns (the next operator's window span).
    """

    def __init__(self, matrix: np.ndarray, block: int, step: int, min_out: int = 0):
        matrix = np.asarray(matrix, dtype=np.float64)
        self.out_len, self.in_len = out_len, in_len = matrix.shape
        rows, cols = np.nonzero(matrix)
        if rows.size == 0:
            raise ValueError("all-zero resampling matrix")
        # Window start of block j is j*step + offset (input coordinates).
        blk = rows // block
        offset = int((cols - blk * step).min())
        width = int((cols - blk * step).max()) - offset + 1
        num_blocks = max(-(-out_len // block), -(-min_out // block))
        core = np.zeros((block, width))
        seen = np.zeros((block, width), dtype=bool)
        r_in, c_in = rows % block, cols - blk * step - offset
        vals = matrix[rows, cols]
        for r, c, v in zip(r_in, c_in, vals):
            if seen[r, c] and core[r, c] != v:
                raise AssertionError("resampling matrix is not shift-invariant")
            core[r, c], seen[r, c] = v, True
        # Zero entries inside the band must be zero for every block too.
        for j in range(-(-out_len // block)):
            r0, r1 = j * block, min((j + 1) * block, out_len)
            c0 = j * step + offset
            lo, hi = max(c0, 0), min(c0 + width, in_len)
            if hi > lo and not np.array_equal(
                matrix[r0:r1, lo:hi], core[: r1 - r0, lo - c0 : hi - c0]
            ):
                raise AssertionError("resampling matrix is not shift-invariant")
        self.block, self.step, self.offset, self.width = block, step, offset, width
        self.num_blocks = num_blocks
        self.pad_lo = max(0, -offset)
        self.crop_lo = max(0, offset)
        # Input columns the windows span, counted from crop_lo (after pad_lo zeros).
        self.span = (num_blocks - 1) * step + width
        self.out_cols = num_blocks * block
        self.core = core
        self._tensors: dict = {}

    @property
    def macs_per_output(self) -> float:
        return self.width * self.out_cols / self.out_len

    def needs_padding(self, pitch: int) -> bool:
        """Whether rows of `pitch` columns must be copied into a zero-extended buffer."""
        return self.pad_lo > 0 or self.crop_lo + self.span > pitch

    def padded_width(self) -> int:
        """Columns of the zero-extended input buffer (input column i at pad_lo + i)."""
        return max(self.pad_lo + self.in_len, self.crop_lo + self.span)

    def core_t(self, dtype, device) -> torch.Tensor:
        key = (dtype, device)
        if key not in self._tensors:
            self._tensors[key] = torch.as_tensor(self.core.T.copy(), dtype=dtype, device=device)
        return self._tensors[key]

    def __call__(self, x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x `[R, pitch]` with the valid samples in columns [crop_lo - pad_lo ...]: either a
        zero-extended buffer laid out as `padded_width()` (when `needs_padding`), or the raw
        rows with pitch >= crop_lo + span. Returns `[R, out_cols]`."""
        r, pitch = x.shape
        start = self.crop_lo
        if x.stride(1) != 1 or x.stride(0) != pitch or start + self.span > pitch:
            raise ValueError("RowOperator input has the wrong layout")
        windows = x.as_strided(
            (r, self.num_blocks, self.width), (pitch, self.step, 1), x.storage_offset() + start
        )
        core = self.core_t(x.dtype, x.device)
        # One copy of the overlapping windows (im2col), then one matrix product.
        cols = windows.reshape(r * self.num_blocks, self.width)
        if out is None:
            return torch.mm(cols, core).view(r, self.out_cols)
        torch.mm(cols, core, out=out.view(r * self.num_blocks, self.block))
        return out


# Block sizes (output samples per block) of the up- and down-sampling stages; each block's
# window is block*down/up + taps/up - 1 input samples. Larger blocks mean fewer, larger products
# but more multiply-adds by zeros.
UP_BLOCK = 32
DOWN_BLOCK = 16
# Upsampled bytes per slice of planes: the slice should stay in the CPU caches.
CACHE_BYTES = 3 << 20


class _FusedPlan:
    """The four separable resampling steps of one layer geometry as banded operators.

    The planes (frame, channel) are processed in slices of k planes laid out `[rows, k, cols]`:
    bias-add into a zero-margined buffer, up along W (`RowOperator`, on the input rows), up
    along H (`BandedOperator`, rows of k*W'), activation in place, down along H, down along W,
    store. The lrelu gain is folded into the down-W matrix (the clamp divided by it), and all
    buffers are reused across slices."""

    def __init__(self, in_hw, fu, fd, up, down, pad4):
        px0, px1, py0, py1 = pad4
        h, w = in_hw
        self.in_hw = in_hw

        def matrix(length, taps, u, d, p0, p1, gain):
            return resample.resampling_matrix(length, taps, u, d, (p0, p1), gain).numpy()

        mwu = matrix(w, fu, up, 1, px0, px1, up)
        mhu = matrix(h, fu, up, 1, py0, py1, up)
        self.hup, self.wup = mhu.shape[0], mwu.shape[0]
        mwd = matrix(self.wup, fd, 1, down, 0, 0, 1.0)
        mhd = matrix(self.hup, fd, 1, down, 0, 0, 1.0)
        self.ho, self.wo = mhd.shape[0], mwd.shape[0]
        ub = max(UP_BLOCK // up, 1) * up
        self.mwd = mwd
        self.down_w = RowOperator(mwd, DOWN_BLOCK, DOWN_BLOCK * down)
        self.up_w = RowOperator(mwu, ub, ub // up, min_out=self.down_w.crop_lo + self.down_w.span)
        if self.down_w.needs_padding(self.up_w.out_cols):
            raise AssertionError("down-W operator would need a padded copy")
        self.up_h = BandedOperator(mhu, ub, ub // up)
        self.down_h = BandedOperator(mhd, DOWN_BLOCK, DOWN_BLOCK * down)
        self._scaled: dict = {}

    def matmul_flops(self, planes: int) -> int:
        """Floating-point operations of the four matrix-product steps for `planes` planes (the
        banded products multiply some zeros: this is what is executed, not the ideal count)."""
        h, w = self.in_hw
        up_w, down_w = self.up_w, self.down_w
        macs = h * up_w.out_cols * up_w.width  # per plane
        macs += self.up_h.macs_per_output * self.up_h.out_len * up_w.out_cols
        macs += self.down_h.macs_per_output * self.down_h.out_len * up_w.out_cols
        macs += self.ho * down_w.out_cols * down_w.width
        return int(2 * macs * planes)

    def _down_w(self, gain: float) -> RowOperator:
        if gain == 1:
            return self.down_w
        if gain not in self._scaled:
            self._scaled[gain] = RowOperator(self.mwd * gain, DOWN_BLOCK, self.down_w.step)
        return self._scaled[gain]

    def __call__(self, x, b, gain, slope, clamp, out=None):
        n, c, h, w = x.shape
        planes = n * c
        k = max(
            1, min(planes, CACHE_BYTES // max(1, self.hup * self.up_w.out_cols * x.element_size()))
        )
        dst = x.new_empty(n, c, self.ho, self.wo) if out is None else out
        # A channels-last input (a convolution's output) is converted once: gathering planes
        # from it slice by slice is several times slower.
        x = x.contiguous()
        if dst.is_contiguous():  # slices of k planes may span frames
            slices = [(p, min(planes, p + k)) for p in range(0, planes, k)]
            flat = True
        else:  # the first channels of a bigger output buffer: slices stay within a frame
            k = min(k, c)
            slices = [(i * c + p, i * c + min(c, p + k)) for i in range(n) for p in range(0, c, k)]
            flat = False
        bias = None if b is None else b.to(x.dtype).repeat(n)
        lim = None if clamp is None or clamp < 0 else clamp / gain
        args = (x, dst, flat, bias, self._down_w(gain), slope, lim)
        pool = _worker_pool(torch.get_num_threads()) if x.device.type == "cpu" else None
        workers = min(len(slices), pool._max_workers) if pool is not None else 1
        if workers > 1:
            # One single-threaded worker per core, each on its own slices: no per-operation
            # thread synchronisation (which dominates on a busy machine: demo network 2x),
            # same results. Inference mode is thread-local: the workers must share the
            # caller's, or they could not write into an inference-mode `dst`.
            mode = torch.is_inference_mode_enabled()
            jobs = [
                pool.submit(self._run_in_mode, mode, slices[i::workers], *args)
                for i in range(workers)
            ]
            for job in jobs:
                job.result()
        else:
            self._run(slices, *args)
        return dst

    def _run_in_mode(self, inference: bool, *args) -> None:
        with torch.inference_mode(inference):
            self._run(*args)

    def _run(self, slices, x, dst, flat, bias, down_w, slope, lim):
        """Process the plane ranges `slices` of `x` into `dst` (see the class doc)."""
        n, c, h, w = x.shape
        up_w, up_h, down_h = self.up_w, self.up_h, self.down_h
        hup, ho, wo = self.hup, self.ho, self.wo
        wup = up_w.out_cols  # pitch of the upsampled rows
        src = x.view(n * c, h, w) if flat else None
        dst_planes = dst.view(n * c, ho, wo) if flat else None
        pad_w = up_w.needs_padding(w)
        a_width = up_w.padded_width() if pad_w else w
        buffers: dict = {}
        for p0, p1 in slices:
            kk = p1 - p0
            if kk not in buffers:  # allocated once per slice size, reused (cache-warm)
                buffers[kk] = (
                    x.new_zeros(h, kk, a_width),
                    x.new_empty(h * kk, wup),
                    x.new_empty(hup, kk * wup),
                    x.new_empty(ho, kk * wup),
                    x.new_empty(ho * kk, down_w.out_cols),
                )
            a_full, t1, t2, t3, t4 = buffers[kk]
            a = a_full[:, :, up_w.pad_lo : up_w.pad_lo + w] if pad_w else a_full
            planes_in = src[p0:p1] if flat else x[p0 // c, p0 % c : p0 % c + kk]
            if bias is None:
                a.copy_(planes_in.transpose(0, 1))
            else:
                torch.add(planes_in.transpose(0, 1), bias[p0:p1, None], out=a)
            up_w(a_full.view(h * kk, a_width), out=t1)
            up_h(t1.view(h, kk * wup), out=t2)
            if slope != 1:
                F.leaky_relu_(t2, slope)
            if lim is not None:
                t2.clamp_(-lim, lim)
            down_h(t2, out=t3)
            down_w(t3.view(ho * kk, wup), out=t4)
            target = dst_planes[p0:p1] if flat else dst[p0 // c, p0 % c : p0 % c + kk]
            target.copy_(t4.view(ho, kk, -1)[:, :, :wo].transpose(0, 1))


# Run the slices of a large CPU call on single-threaded worker threads (one per intra-op thread).
PARALLEL_SLICES = True
_POOL: Optional[tuple[int, int, ThreadPoolExecutor]] = None  # (pid, workers, pool)
_POOL_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _thread_local_setters():
    """(omp_set_num_threads, mkl_set_num_threads_local) of the OpenMP runtime and MKL that torch
    loaded, both of which set the *calling thread's* count only; None where they are not found
    (another backend or platform: then no worker pool is used)."""
    if "ATen parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {
                line.split()[-1] for line in maps if line.rstrip().endswith(".so") or ".so." in line
            }
        gomp = next(p for p in paths if os.path.basename(p).startswith(("libgomp", "libiomp")))
        omp = ctypes.CDLL(gomp).omp_set_num_threads
        torch_cpu = next(p for p in paths if os.path.basename(p) == "libtorch_cpu.so")
        mkl = getattr(ctypes.CDLL(torch_cpu), "MKL_Set_Num_Threads_Local", None)  # by value
    except (OSError, StopIteration, AttributeError):
        return None
    return omp, mkl


def _single_threaded_worker(ready: threading.Barrier) -> None:
    """Worker initialiser: torch kernels in this thread run on one thread. Unlike
    `torch.set_num_threads`, which also changes the default of every thread started later,
    this only sets this thread's OpenMP and MKL counts."""
    try:
        torch.get_num_threads()  # torch's lazy per-thread setup first, or it would undo this
        omp, mkl = _thread_local_setters()
        omp(1)
        if mkl is not None:
            mkl(1)
    finally:
        ready.wait()


def _worker_pool(workers: int) -> Optional[ThreadPoolExecutor]:
    """A pool of `workers` single-threaded worker threads (see `_single_threaded_worker`), or
    None when one would not help or cannot be made without changing global settings."""
    global _POOL
    if workers < 2 or not PARALLEL_SLICES or _thread_local_setters() is None:
        return None
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] != workers:
            if _POOL is not None and _POOL[0] == os.getpid():
                _POOL[2].shutdown(wait=False)
            ready = threading.Barrier(workers + 1)
            pool = ThreadPoolExecutor(
                workers, "filtered_lrelu", initializer=_single_threaded_worker, initargs=(ready,)
            )
            for _ in range(workers):
                pool.submit(lambda: None)  # starts every worker (each blocks in its initialiser)
            ready.wait()
            _POOL = (os.getpid(), workers, pool)
        return _POOL[2]
