"""Speed of the paper-size low-resolution generator on this machine's CPU.

Prints ms/frame for 128 and 512 frames in float32 and under bfloat16 autocast (with the max
deviation from float32), the time split between the noise filter bank, the mapping (with the
per-layer latents) and the synthesis, and the achieved GFLOP/s of the 3-D convolutions next to
a plain matmul's. Random weights; the speed does not depend on them.

    python benchmarks/lres.py [--frames 128 512] [--repeats 2]

Reference: the original code (CPU reference ops) takes about 33 ms/frame at 128 frames in
float32 on the 2-core machine where this project is developed. Because this machine's speed
drifts by up to 1.5x within a day, the script also times, back to back with ours,
`reference_synthesis`: the same weights run through the original's op sequence of
docs/networks.md#residual-block (unfused steps, channels-first convolutions, zero-stuffing
upsampling as the reference `upfirdn2d`), and prints the ratio and the maximum difference of
the two outputs.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from timing import matmul_gflops, timed
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from networks.lres_generator import LowResGenerator, centre_crop
from torch_utils.resample import linear_filter

ORIGINAL_MS_PER_FRAME_128 = 33.0


def conv_share(G, ws, frames):
    """(conv3d FLOPs, conv3d seconds) of one synthesis call. The 1x1x1 skips and ToRGB run as
    matrix products on the CPU (`torch_utils.layers.conv3d`) and are not counted."""
    with FlopCounterMode(display=False) as counter:
        G.synthesis(ws, frames)
    flops = sum(
        v for k, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(k)
    )
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        G.synthesis(ws, frames)
    conv_us = sum(e.self_cpu_time_total for e in prof.key_averages() if "convolution" in e.key)
    return flops, conv_us / 1e6


# ------------------------------------------------------------------------------------------------
# The original's op sequence (docs/networks.md#residual-block), one step per line, for a
# back-to-back comparison.


def _bias_act_ref(x, b, act: bool, clamp: float = 256.0):
    x = x + b.reshape(1, -1, 1, 1, 1)
    if act:
        x = F.leaky_relu(x, 0.2) * math.sqrt(2)
    return x.clamp(-clamp, clamp)


def _upsample_ref(x, dim: int):
    """Linear x2 upsampling along `dim` as the reference upfirdn: zero-stuff, pad, convolve."""
    n, c = x.shape[:2]
    x = x.movedim(dim, -1)
    shape = x.shape
    x = x.reshape(-1, 1, shape[-1], 1)
    x = F.pad(x, [0, 1]).reshape(-1, 1, shape[-1] * 2)  # zero-stuff
    x = F.pad(x, [2, 1])  # default up padding of a 4-tap filter
    f = torch.as_tensor(linear_filter(2), dtype=x.dtype).flip(0) * 2
    x = F.conv1d(x, f.view(1, 1, -1))
    return x.reshape(*shape[:-1], -1).movedim(-1, dim)


def _modconv_ref(x, weight, styles, demodulate: bool):
    co, ci, kt, kh, kw = weight.shape
    if demodulate:
        weight = weight / weight.reshape(co, -1).abs().amax(dim=1).view(co, 1, 1, 1, 1)
        styles = styles / styles.abs().amax(dim=(1, 2), keepdim=True)
    weight = weight / math.sqrt(ci * kt * kh * kw)
    x = x * styles[..., None, None]
    y = F.conv3d(x, weight, padding=(kt // 2, kh // 2, kw // 2))
    if demodulate:
        d = torch.einsum("oi,nit->not", weight.square().sum((2, 3, 4)), styles.square()) + 1e-8
        y = y * d.rsqrt()[..., None, None]
    return y


def reference_synthesis(G: LowResGenerator, ws, frames: int) -> torch.Tensor:
    cfg = G.cfg
    lengths, canvases = cfg.sequence_lengths(frames), iter(cfg.canvases())
    size = next(canvases)
    x = G.temporal_input(ws[0]).transpose(1, 2)[..., None, None]
    x = (x + G.spatial_const) * math.sqrt(0.5)
    for i, blk in enumerate(G.blocks):
        w = ws[i]
        x = x * blk.ema0.value.rsqrt()
        h = _modconv_ref(x, blk.weight0, blk.affine0(w).transpose(1, 2), True)
        h = _bias_act_ref(h, blk.bias0, act=True)
        h = h * blk.ema1.value.rsqrt()
        h = _modconv_ref(h, blk.weight1, blk.affine1(w).transpose(1, 2), True)
        skip = F.conv3d(x, blk.weight_skip / math.sqrt(blk.weight_skip.shape[1]))
        h = (h + skip) * math.sqrt(0.5)
        if blk.temporal_up:
            h = _upsample_ref(h, 2)
        h = centre_crop(h, 2, lengths[i + 1] if i < cfg.num_temporal_blocks else frames)
        if blk.spatial_up:
            size = next(canvases)
            h = _upsample_ref(_upsample_ref(h, 3), 4)
            h = centre_crop(centre_crop(h, 3, size[0]), 4, size[1])
        x = _bias_act_ref(h, blk.bias1, act=True)
    x = x * G.to_rgb.ema.value.rsqrt()
    x = _modconv_ref(x, G.to_rgb.weight, G.to_rgb.affine(ws[-1]).transpose(1, 2), False)
    return _bias_act_ref(x, G.to_rgb.bias, act=False).float() * cfg.output_scale


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    G = LowResGenerator().eval()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, paper-size LR generator (83.2M params)"
    )
    mm32, mm16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    print(f"plain 2048^3 matmul: {mm32:.0f} GFLOP/s float32, {mm16:.0f} GFLOP/s bfloat16")
    for frames in args.frames:
        noise = torch.randn(1, 8, G.cfg.noise_length(frames))
        t_bank, emb = timed(lambda: G.noise_bank(noise), args.repeats)
        t_lat, (_, ws) = timed(lambda: G.latents(noise, frames), args.repeats)
        t_syn, video = timed(lambda: G.synthesis(ws, frames), args.repeats)
        total = t_lat + t_syn
        print(f"\n{frames} frames, float32: {total / frames * 1e3:.1f} ms/frame")
        print(
            f"  noise filter bank {t_bank * 1e3:.0f} ms ({t_bank / total:.1%}), "
            f"mapping + per-layer latents {(t_lat - t_bank) * 1e3:.0f} ms ({(t_lat - t_bank) / total:.1%}), "
            f"synthesis {t_syn * 1e3:.0f} ms ({t_syn / total:.1%})"
        )
        flops, conv_s = conv_share(G, ws, frames)
        print(
            f"  conv3d (kernels larger than 1x1x1): {flops / frames / 1e9:.2f} GFLOP/frame, "
            f"{conv_s * 1e3:.0f} ms, "
            f"{flops / conv_s / 1e9:.0f} GFLOP/s ({flops / conv_s / 1e9 / mm32:.0%} of matmul)"
        )
        t_ref, video_ref = timed(lambda: reference_synthesis(G, ws, frames), args.repeats)
        print(
            f"  the original's op sequence, same weights, back to back: "
            f"{(t_lat + t_ref) / frames * 1e3:.1f} ms/frame; ours is {(t_lat + t_ref) / total:.2f}x "
            f"as fast, max |difference| {(video_ref - video).abs().max().item():.2g}"
        )
        if frames == 128:
            ratio = ORIGINAL_MS_PER_FRAME_128 / (total / frames * 1e3)
            print(f"  vs the original's ~{ORIGINAL_MS_PER_FRAME_128:.0f} ms/frame: {ratio:.2f}x")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            t16, video16 = timed(lambda: G.from_noise(noise, frames), args.repeats)
        dev = (video16.float() - video).abs().max().item()
        print(
            f"  bfloat16 autocast: {t16 / frames * 1e3:.1f} ms/frame ({total / t16:.2f}x float32), "
            f"max |deviation| {dev:.3g} (video range about [-1, 1])"
        )


if __name__ == "__main__":
    main()
