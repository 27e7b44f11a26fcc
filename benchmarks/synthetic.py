"""Single-core throughput of the synthetic benchmark renderer (datasets/synthetic.py).

Usage: python benchmarks/synthetic.py [--frames N]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

from datasets.synthetic import render_video  # noqa: E402


def frames_per_second(height: int, width: int, frames: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` rendering rate for ``frames`` frames starting deep into a video."""
    render_video(0, 8, height, width)  # warm the per-seed cache
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        render_video(r, frames, height, width, start_frame=10_000 * r)
        best = min(best, time.perf_counter() - start)
    return frames / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames per run at 36x64")
    args = parser.parse_args()
    for height, width, frames in ((36, 64, args.frames), (144, 256, max(1, args.frames // 10))):
        fps = frames_per_second(height, width, frames)
        print(f"{height}x{width}: {fps:8.0f} frames/s ({frames} frames per run, 1 thread)")


if __name__ == "__main__":
    main()
