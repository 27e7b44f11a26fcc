"""Speed and memory of video generation with the paper-size networks (random weights) on CPU.

Prints frames/s of the streaming pipeline, low-res only and low-res + super-resolution (if
`networks.sres_generator` exists), and the peak resident memory (ru_maxrss) of streaming 300
vs 3,000 low-res frames to an mp4 (they must be within 10 % of each other: memory does not grow
with the length), next to the original's one-shot low-res call (`G(1, T)`,
docs/generation.md#the-original-procedure), whose memory grows linearly. Every measurement
runs in a fresh subprocess.

    python benchmarks/generate.py [--frames 300 3000] [--batch-frames 128] [--sres-frames 4]

The one-shot call at the longest length is skipped (with its projected peak) when the
projection exceeds 70 % of the available memory, rather than risk the OOM killer.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


# ------------------------------------------------------------------------------------------------
# Workers (run in a fresh process each)


def worker(kind: str, frames: int, batch_frames: int, sres_batch: int) -> dict:
    import torch

    from generation.pipeline import generate_segments
    from generation.timeline import Timeline
    from networks.lres_generator import LowResGenerator
    from torch_utils.frames import Mp4Writer, display_factor, nearest_upscale, to_uint8_hwc

    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    G = LowResGenerator().eval()
    S = None
    if kind == "sres":
        from networks.sres_generator import SuperResGenerator

        S = SuperResGenerator().eval().requires_grad_(False)
    base = _maxrss_mb()
    t0 = time.perf_counter()
    if kind == "oneshot":  # the original: the whole low-res video in one call
        video = G(1, frames, generator=torch.Generator().manual_seed(0))
        count = to_uint8_hwc(video[0].transpose(0, 1)).shape[0]
    else:
        factor = display_factor(G.cfg.height, G.cfg.width)
        count = 0
        with tempfile.TemporaryDirectory() as tmp:
            with Mp4Writer(Path(tmp) / "v.mp4") as writer:
                for seg in generate_segments(
                    G, S, [Timeline(0)], 0, frames, batch_frames, sres_batch
                ):
                    images = to_uint8_hwc(seg.video[0].transpose(0, 1))
                    if S is None:
                        images = nearest_upscale(images, factor)
                    for image in images:
                        writer.write(image)
                        count += 1
    seconds = time.perf_counter() - t0
    return {
        "frames": count,
        "seconds": seconds,
        "fps": count / seconds,
        "model_mb": base,
        "peak_mb": _maxrss_mb(),
    }


def run_worker(kind: str, frames: int, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--worker-frames", str(frames)]
    cmd += ["--batch-frames", str(args.batch_frames), "--sres-batch", str(args.sres_batch)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, nargs=2, default=[300, 3000])
    parser.add_argument("--batch-frames", type=int, default=128)
    parser.add_argument("--sres-batch", type=int, default=4)
    parser.add_argument("--sres-frames", type=int, default=4)
    parser.add_argument("--worker", choices=["stream", "oneshot", "sres"], help=argparse.SUPPRESS)
    parser.add_argument("--worker-frames", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.worker_frames, args.batch_frames, args.sres_batch)
        print(json.dumps(result))
        return

    import torch

    short, long = args.frames
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"paper-size networks with random weights, batch-frames {args.batch_frames}"
    )
    stream = {n: run_worker("stream", n, args) for n in (short, long)}
    for n, r in stream.items():
        if "error" in r:
            print(f"streaming {n} LR frames: failed: {r['error']}")
            return
        print(
            f"streaming, LR only, {n:>5} frames -> mp4: {r['fps']:.1f} frames/s "
            f"({1e3 / r['fps']:.0f} ms/frame), peak RSS {r['peak_mb']:.0f} MB "
            f"(after building the model: {r['model_mb']:.0f} MB)"
        )
    ratio = stream[long]["peak_mb"] / stream[short]["peak_mb"]
    verdict = "OK" if abs(ratio - 1) <= 0.10 else "FAIL"
    print(f"  peak RSS {long} vs {short} frames: x{ratio:.3f} ({verdict}: must be within 10 %)")

    oneshot = {short: run_worker("oneshot", short, args)}
    r = oneshot[short]
    if "error" in r:
        print(f"one-shot {short} frames: failed: {r['error']}")
    else:
        growth = (r["peak_mb"] - r["model_mb"]) / short  # activation memory per frame
        projected = r["model_mb"] + growth * long
        print(
            f"one-shot G(1, T), {short:>5} frames: {r['fps']:.1f} frames/s, "
            f"peak RSS {r['peak_mb']:.0f} MB"
        )
        if projected > 0.7 * (_available_mb() + r["model_mb"]):
            print(
                f"one-shot G(1, T), {long:>5} frames: skipped, projected peak RSS "
                f"~{projected / 1024:.1f} GB (> 70 % of this machine's available memory)"
            )
        else:
            r = run_worker("oneshot", long, args)
            if "error" in r:
                print(f"one-shot {long} frames: failed: {r['error']}")
            else:
                print(
                    f"one-shot G(1, T), {long:>5} frames: {r['fps']:.1f} frames/s, "
                    f"peak RSS {r['peak_mb']:.0f} MB (x{r['peak_mb'] / oneshot[short]['peak_mb']:.2f})"
                )

    try:
        import networks.sres_generator  # noqa: F401
    except ImportError:
        print("LR + SR: skipped (networks/sres_generator.py is not there yet)")
        return
    r = run_worker("sres", args.sres_frames, args)
    if "error" in r:
        print(f"LR + SR: failed: {r['error']}")
    else:
        print(
            f"streaming, LR + SR, {r['frames']} frames (sres-batch {args.sres_batch}): "
            f"{r['fps']:.3f} frames/s ({1 / r['fps']:.1f} s/frame), peak RSS {r['peak_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
