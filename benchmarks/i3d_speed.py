"""Speed of the FVD detector (Inception-I3D at 224x224) on this machine's CPU.

Prints clips/s of the I3D forward for 16- and 128-frame clips in float32 and under bfloat16
autocast, with the bfloat16 logits' max deviation from float32 (absolute, and relative to the
largest float32 logit), plus the time of the preprocessing alone and the implied time of an
fvd2048_16f evaluation (generated side only; the real side is cached). Input: synthetic
benchmark videos at 36x64, as the low-res metrics see them.

    python benchmarks/i3d_speed.py [--frames 16 128] [--batch 4] [--repeats 2]

Uses the I3D weights that FVD would use (`lvg-metrics detector`), or random ones if none.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from timing import timed

from datasets.synthetic import render_video
from networks.i3d import load_detector, preprocess


def clips(batch: int, frames: int, height: int, width: int) -> torch.Tensor:
    videos = np.stack([render_video(seed, frames, height, width)[0] for seed in range(batch)])
    return torch.from_numpy(videos).permute(0, 4, 1, 2, 3).contiguous()  # uint8 n c t h w


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--batch", type=int, default=4, help="clips per forward (16 frames)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--res", default="36x64", help="input clip size HxW")
    args = parser.parse_args()
    height, width = (int(v) for v in args.res.split("x"))

    detector = load_detector(allow_random=True)
    weights = detector.describe()["weights"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"detector weights: {weights if isinstance(weights, str) else weights['source']}")
    print(f"{'frames':>6} {'batch':>5} {'dtype':>9} {'clips/s':>8} {'s/clip':>7}  deviation")
    for frames in args.frames:
        batch = max(1, args.batch * 16 // frames)
        video = clips(batch, frames, height, width)
        seconds, _ = timed(lambda: preprocess(video), args.repeats)
        print(
            f"{frames:>6} {batch:>5} {'(prep)':>9} {batch / seconds:>8.2f} {seconds / batch:>7.3f}"
        )
        t32, ref = timed(lambda: detector(video), args.repeats)
        print(f"{frames:>6} {batch:>5} {'float32':>9} {batch / t32:>8.2f} {t32 / batch:>7.3f}")
        t16, out = timed(lambda: detector(video, autocast_dtype=torch.bfloat16), args.repeats)
        dev = (out - ref).abs().max().item()
        rel = dev / ref.abs().max().item()
        top1 = (out.argmax(1) == ref.argmax(1)).float().mean().item()
        print(
            f"{frames:>6} {batch:>5} {'bfloat16':>9} {batch / t16:>8.2f} {t16 / batch:>7.3f}  "
            f"max |Δlogit| {dev:.3f} ({rel:.1%} of max |logit|), top-1 agreement {top1:.0%}"
        )
        if frames == 16:
            print(
                f"        fvd2048_16f, generated side, float32: ~{2048 * t32 / batch / 60:.0f} min"
            )


if __name__ == "__main__":
    main()
