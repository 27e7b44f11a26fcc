"""Speed of the paper-size super-resolution generator (36x64 -> 144x256) on this machine's CPU.

Prints ms per 144x256 output frame in float32 and in bfloat16 (all synthesis layers in
bfloat16, and the original's mixed layout with bfloat16 standing in for float16), each with its
max deviation from float32; the time split between the modulated convolutions, the filtered
leaky ReLUs and the rest; the floating-point operations per frame and the achieved GFLOP/s next
to a plain matmul's on this machine. Random weights: the speed does not depend on them.

    python benchmarks/sres.py [--frames 4] [--repeats 2] [--threads N] [--baseline]

Reference: the original code (CPU reference ops, float32) takes about 9.4 s per frame on the
2-core machine where this project is developed. `--baseline` also times an original-like path
in this process (zero-stuffing filtered leaky ReLU with depthwise convolutions, one grouped
convolution with per-frame weights), which is the fairer comparison when the machine is busy.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from timing import matmul_gflops, timed
from torch.profiler import ProfilerActivity, profile

import networks.sres_generator as sres
from networks.sres_generator import SuperResGenerator
from torch_utils import filtered_lrelu as flrelu

ORIGINAL_S_PER_FRAME = 9.4


def conv_flops_per_frame(cfg) -> tuple[float, float]:
    """(as computed here, as the original computes it): 2 * co * ci * k^2 per conv output; the
    original computes the full (padding k-1) outputs, this project skips the discarded ones."""
    ours = full = 0.0
    for s in cfg.layers:
        x0, x1, y0, y1 = flrelu.skipped_border(s.in_size, s.kernel, s.up, s.padding)
        h, w = s.in_size[0] + s.kernel - 1, s.in_size[1] + s.kernel - 1
        per_output = 2 * s.out_channels * s.in_channels * s.kernel**2
        full += per_output * w * h
        ours += per_output * (w - x0 - x1) * (h - y0 - y1)
    return ours, full


def filter_flops_per_frame(cfg) -> float:
    """Matrix-product FLOPs of the fused filtered lrelus, from their plans."""
    total = 0.0
    for s in cfg.layers:
        x = torch.empty(1, 1, *s.in_size)
        window, cpad, pad = flrelu.conv_window(x, s.kernel, s.up, s.padding, "fast")
        h = window.shape[2] + cpad[2] + cpad[3] - s.kernel + 1  # the conv outputs computed
        w = window.shape[3] + cpad[0] + cpad[1] - s.kernel + 1
        in_hw = (h, w)
        fu, fd = (np.ones(1) if f is None else f for f in (s.up_filter(), s.down_filter()))
        plan = flrelu._fused_plan(in_hw, fu.tobytes(), fd.tobytes(), s.up, s.down, pad)
        total += plan.matmul_flops(s.out_channels)
    return total


def split(S, lr, z, precision="float32"):
    """Seconds in the convolutions, the filtered lrelus and in total (profiled call)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        S(lr, z=z, precision=precision)
        total = time.perf_counter() - t0
    ranges = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages()}
    return ranges.get("sres.conv", 0.0), ranges.get("sres.filtered_lrelu", 0.0), total


# ------------------------------------------------------------------------------------------------
# An original-like path (StyleGAN3's reference ops) for --baseline.


def naive_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, concat=None, **_):
    """bias -> zero-stuff, pad, depthwise conv along W then H -> lrelu, clamp -> depthwise
    conv, decimate: every intermediate at the full upsampled rate, as the reference ops; then
    the concatenation."""
    n, c, h, w = x.shape
    x = x + b.view(1, -1, 1, 1)
    px0, px1, py0, py1 = padding

    def fir(x, f, g):
        if f is None:
            return x
        k = torch.tensor(np.flip(f).copy() * g, dtype=x.dtype)
        x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)

    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    x = fir(x, fu, up)
    x = (F.leaky_relu(x, slope) * gain).clamp(-clamp, clamp)
    x = fir(x, fd, 1)[:, :, ::down, ::down]
    return x if concat is None else torch.cat([x, concat.to(x.dtype)], dim=1)


def naive_modulated_conv2d(x, weights, frames, padding, **_):
    """One grouped convolution with the modulated weights repeated for every frame (the full
    convolution: `padding` is the same on every side)."""
    padding = padding[0]
    w = weights.repeat_interleave(frames, dim=0).to(x.dtype)  # [n*frames, co, ci, k, k]
    b, co, ci, kh, kw = w.shape
    y = F.conv2d(
        x.reshape(1, b * ci, *x.shape[2:]),
        w.reshape(b * co, ci, kh, kw),
        padding=padding,
        groups=b,
    )
    return y.reshape(b, co, *y.shape[2:])


@contextmanager
def original_like():
    saved = sres.filtered_lrelu, sres.modulated_conv2d, sres.conv_window
    sres.filtered_lrelu, sres.modulated_conv2d = naive_filtered_lrelu, naive_modulated_conv2d
    sres.conv_window = lambda x, kernel, up, padding, impl: saved[2](x, kernel, up, padding, "ref")
    try:
        yield
    finally:
        sres.filtered_lrelu, sres.modulated_conv2d, sres.conv_window = saved


# ------------------------------------------------------------------------------------------------


def time_float32(S, lr, z, frames: int, repeats: int, mm32: float):
    """Time the float32 network and print its time split and FLOP rates (`mm32`: a plain
    matmul's GFLOP/s); returns (seconds, output)."""
    cfg = S.cfg
    t32, ref = timed(lambda: S(lr, z=z, precision="float32"), repeats)
    per_frame = t32 / frames
    print(f"\nfloat32: {per_frame * 1e3:.0f} ms/frame")
    conv_s, filt_s, total_s = split(S, lr, z)
    other = max(total_s - conv_s - filt_s, 0.0)
    print(
        f"  time split (profiled call): modulated conv {conv_s / total_s:.0%}, filtered lrelu "
        f"{filt_s / total_s:.0%}, other {other / total_s:.0%} (conditioning, mapping, copies)"
    )
    ours, full = conv_flops_per_frame(cfg)
    filt = filter_flops_per_frame(cfg)
    print(
        f"  FLOPs/frame: convolutions {ours / 1e9:.1f} G (the original's full convolutions: "
        f"{full / 1e9:.1f} G), filtered-lrelu matrix products {filt / 1e9:.1f} G"
    )
    print(
        f"  convolutions: {ours * frames / conv_s / 1e9:.0f} GFLOP/s "
        f"({ours * frames / conv_s / 1e9 / mm32:.0%} of matmul); filtered lrelu "
        f"{filt * frames / filt_s / 1e9:.0f} GFLOP/s; whole network "
        f"{(ours + filt) / per_frame / 1e9:.0f} GFLOP/s"
    )
    print(
        f"  vs the original's ~{ORIGINAL_S_PER_FRAME:.1f} s/frame: "
        f"{ORIGINAL_S_PER_FRAME / per_frame:.1f}x faster"
    )
    return t32, ref


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=4, help="output frames per call")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--baseline", action="store_true", help="also time an original-like path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    S = SuperResGenerator().eval()
    cfg = S.cfg
    frames = args.frames
    lr = torch.rand(1, 3, frames + 8, cfg.lr_height, cfg.lr_width) * 2 - 1
    z = torch.randn(1, cfg.z_dim)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, paper-size SR generator "
        f"(27.2M params), {frames} frames of 144x256 per call"
    )
    mm32, mm16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    print(f"plain 2048^3 matmul: {mm32:.0f} GFLOP/s float32, {mm16:.0f} GFLOP/s bfloat16")

    t32, ref = time_float32(S, lr, z, frames, args.repeats, mm32)
    for precision, label in (("bfloat16", "bfloat16 (all layers)"), ("mixed", "mixed (L3+)")):
        t16, out16 = timed(lambda p=precision: S(lr, z=z, precision=p), args.repeats)
        dev = (out16 - ref).abs().max().item()
        print(
            f"{label}: {t16 / frames * 1e3:.0f} ms/frame ({t32 / t16:.2f}x float32, "
            f"{ORIGINAL_S_PER_FRAME / (t16 / frames):.1f}x the original), max |deviation| "
            f"{dev:.3g} (output std {ref.std().item():.2f})"
        )

    if args.baseline:
        one = lr[:, :, :9]
        with original_like():
            tb, base = timed(lambda: S(one, z=z, precision="float32"), 1)
        dev = (base - ref[:, :, :1]).abs().max().item()
        print(
            f"\noriginal-like path (reference ops), here and now: {tb * 1e3:.0f} ms/frame; "
            f"this implementation is {tb / (t32 / frames):.1f}x faster (max |difference| {dev:.2g})"
        )


if __name__ == "__main__":
    main()
