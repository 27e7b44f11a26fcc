"""Speed of the paper-size low-resolution generator on this machine's CPU.

Prints ms/frame for 128 and 512 frames in float32 and under bfloat16 autocast (with the max
deviation from float32), the time split between the noise filter bank, the mapping (with the
per-layer latents) and the synthesis, and the achieved GFLOP/s of the 3-D convolutions next to
a plain matmul's. Random weights; the speed does not depend on them.

    python benchmarks/lres.py [--frames 128 512] [--repeats 2]

Reference: the original code (CPU reference ops) takes about 33 ms/frame at 128 frames in
float32 on the 2-core machine where this project is developed (spec §2.10).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from networks.lres_generator import LowResGenerator

ORIGINAL_MS_PER_FRAME_128 = 33.0


def timed(fn, repeats: int):
    fn()  # warm-up (allocator, oneDNN primitive caches)
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def matmul_gflops(dtype=torch.float32, n: int = 2048) -> float:
    a = torch.randn(n, n, dtype=dtype)
    seconds, _ = timed(lambda: a @ a, 3)
    return 2 * n**3 / seconds / 1e9


def conv_share(G, ws, frames):
    """(conv3d FLOPs, conv3d seconds) of one synthesis call."""
    with FlopCounterMode(display=False) as counter:
        G.synthesis(ws, frames)
    flops = sum(
        v for k, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(k)
    )
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        G.synthesis(ws, frames)
    conv_us = sum(e.self_cpu_time_total for e in prof.key_averages() if "convolution" in e.key)
    return flops, conv_us / 1e6


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
            f"  conv3d: {flops / frames / 1e9:.2f} GFLOP/frame, {conv_s * 1e3:.0f} ms, "
            f"{flops / conv_s / 1e9:.0f} GFLOP/s ({flops / conv_s / 1e9 / mm32:.0%} of matmul)"
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
