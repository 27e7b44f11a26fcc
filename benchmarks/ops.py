"""Throughput of the FIR resamplers on CPU vs a naive zero-stuffing implementation.

The sizes are those of the filtered leaky ReLU in the super-resolution generator
(docs/networks.md#exact-details): the conv output of each layer is upsampled by `up` with a
6*up-tap Kaiser filter, then downsampled by `down` with a 6*down-tap filter. The naive baseline
is the original's reference path: zero-stuff the full tensor, pad, depthwise conv2d along W
then H, then keep every `down`-th sample of the full-rate result.

    python benchmarks/ops.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

from torch_utils.resample import upfirdn2d

# name, channels, in (w, h), out (w, h), rate_in, rate_out, cutoff_in, cutoff_out, hw_in, hw_out
SR_LAYERS = [
    ("L0", 512, (36, 29), (36, 29), 16, 16, 2.0, 2.0, 6.0, 6.0),
    ("L3", 512, (36, 29), (52, 38), 16, 32, 4.0, 5.66, 4.0, 10.34),
    ("L5", 512, (52, 38), (84, 56), 32, 64, 8.0, 11.31, 8.0, 20.69),
    ("L7", 512, (84, 56), (148, 92), 64, 128, 16.0, 22.63, 16.0, 41.37),
    ("L8", 512, (148, 92), (148, 92), 128, 128, 22.63, 32.0, 41.37, 32.0),
    ("L10", 256, (148, 92), (276, 164), 128, 256, 45.25, 64.0, 18.75, 64.0),
    ("L11", 181, (276, 164), (276, 164), 256, 256, 64.0, 90.51, 64.0, 37.49),
    ("L13", 128, (276, 164), (256, 144), 256, 256, 128.0, 128.0, 29.59, 29.59),
]


def layer_filters(rate_in, rate_out, cutoff_in, cutoff_out, hw_in, hw_out):
    tmp = max(rate_in, rate_out) * 2
    up, down = tmp // rate_in, tmp // rate_out
    fu = scipy.signal.firwin(6 * up, cutoff=cutoff_in, width=2 * hw_in, fs=tmp)
    fd = scipy.signal.firwin(6 * down, cutoff=cutoff_out, width=2 * hw_out, fs=tmp)
    return up, down, fu, fd


def pads(size_in, size_out, up, down, nu, nd, k=3):
    total = (size_out - 1) * down + 1 - (size_in + k - 1) * up + nu + nd - 2
    lo = (total + up) // 2
    return lo, total - lo


def naive(x, f, up, down, px, py, gain):
    """Zero-stuff, pad, depthwise conv along W and H, decimate (the reference path)."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [max(px[0], 0), max(px[1], 0), max(py[0], 0), max(py[1], 0)])
    x = x[
        :,
        :,
        max(-py[0], 0) : x.shape[2] - max(-py[1], 0),
        max(-px[0], 0) : x.shape[3] - max(-px[1], 0),
    ]
    k = torch.tensor(np.flip(f).copy() * gain**0.5, dtype=x.dtype)
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return x[:, :, ::down, ::down]


def timed(fn, repeats):
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return (time.perf_counter() - t0) / repeats, out


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, float32, batch 1")
    print(
        f"{'layer':6} {'tensor':>22} {'up/down':>7} {'ours ms':>9} {'naive ms':>9} {'speedup':>8} {'max|diff|':>10}"
    )
    tot_fast = tot_naive = 0.0
    for name, c, (wi, hi), (wo, ho), *rates in SR_LAYERS:
        up, down, fu, fd = layer_filters(*rates)
        px, py = pads(wi, wo, up, down, len(fu), len(fd)), pads(hi, ho, up, down, len(fu), len(fd))
        x = torch.randn(1, c, hi + 2, wi + 2)  # the 3x3 conv output with padding 2

        def ours(x=x, fu=fu, fd=fd, up=up, down=down, px=px, py=py):
            y = upfirdn2d(x, fu, up=up, padding=(*px, *py), gain=up * up)
            return upfirdn2d(y, fd, down=down)

        def ref(x=x, fu=fu, fd=fd, up=up, down=down, px=px, py=py):
            return naive(naive(x, fu, up, 1, px, py, up * up), fd, 1, down, (0, 0), (0, 0), 1)

        t_fast, a = timed(ours, args.repeats)
        t_naive, b = timed(ref, args.repeats)
        assert a.shape == b.shape == (1, c, ho, wo), (a.shape, b.shape)
        tot_fast, tot_naive = tot_fast + t_fast, tot_naive + t_naive
        print(
            f"{name:6} {str(tuple(x.shape)):>22} {f'{up}/{down}':>7} {t_fast * 1e3:9.1f} "
            f"{t_naive * 1e3:9.1f} {t_naive / t_fast:7.1f}x {(a - b).abs().max().item():10.2e}"
        )
    print(
        f"total: ours {tot_fast * 1e3:.0f} ms, naive {tot_naive * 1e3:.0f} ms, speedup {tot_naive / tot_fast:.1f}x"
    )


if __name__ == "__main__":
    main()
