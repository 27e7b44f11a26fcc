"""Analysis speed of `lvg-dataset curate` (datasets/curate.py) on CPU, in source frames per second.

Encodes a panning test video with one hard cut at a few source sizes, then times one process
decoding at the analysis width alone, decoding + measuring every frame with each motion method
and the classic shot detector, and the same with the TransNetV2 shot detector (when installed),
all on one core (`torch.set_num_threads(1)`, BLAS and OpenCV single-threaded). The TransNetV2
figure is the whole analysis (decoding, motion, sharpness, hashes and the network); the network
alone on pre-scaled 48x27 frames is timed too. `--workers` in the real command runs this many
processes over videos.

Usage: python benchmarks/curate.py [--frames N] [--width PX]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.ndimage  # noqa: E402
import torch  # noqa: E402

import datasets.curate as curation  # noqa: E402
import datasets.shots as shots  # noqa: E402
from torch_utils.frames import Mp4Writer  # noqa: E402

SIZES = ((360, 640), (720, 1280))


def write_test_video(path: Path, frames: int, height: int, width: int) -> None:
    """A smooth random texture panning 1 % of the width per frame, cut to another at the middle."""
    rng = np.random.default_rng(0)
    pan = max(1, width // 100)
    with Mp4Writer(path, fps=30, crf=23) as writer:
        for _ in range(2):
            noise = rng.random((height, width + pan * frames, 3), dtype=np.float32)
            texture = scipy.ndimage.gaussian_filter(noise, (height / 60, height / 60, 0))
            texture = (texture - texture.min()) / np.ptp(texture) * 255
            texture = texture.astype(np.uint8)
            for t in range(frames // 2):
                writer.write(texture[:, t * pan : t * pan + width])


def best_rate(fn, frames: int, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return frames / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="frames per test video")
    parser.add_argument("--width", type=int, default=128, help="analysis width in pixels")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if curation.cv2 is not None:
        curation.cv2.setNumThreads(1)
    methods = [m for m in curation.MOTION_METHODS if m != "farneback" or curation.cv2 is not None]
    with tempfile.TemporaryDirectory() as tmp:
        for height, width in SIZES:
            name = f"test_{height}x{width}.mp4"
            write_test_video(Path(tmp) / name, args.frames, height, width)

            def decode_only():
                with curation.SmallVideo(Path(tmp) / name, args.width) as reader:
                    for _ in reader.frames():
                        pass

            rates = {"decode": best_rate(decode_only, args.frames)}
            detectors = [(m, "classic") for m in methods]
            if shots.transnetv2_version():
                detectors.append((methods[0], "transnetv2"))
            for method, detector in detectors:
                settings = curation.AnalysisSettings(args.width, method, detector, "cpu")
                analysis = curation.analyse_video(tmp, name, settings)
                cuts = curation.find_transitions(analysis, curation.Thresholds())
                assert [(t.start, t.kind) for t in cuts] == [(args.frames // 2, "cut")], cuts
                key = method if detector == "classic" else f"{method}+transnetv2"
                rates[key] = best_rate(
                    lambda s=settings: curation.analyse_video(tmp, name, s), args.frames
                )
            print(
                f"{height}x{width} source, analysed at {args.width} px: "
                + ", ".join(f"{key} {rate:6.0f} frames/s" for key, rate in rates.items())
                + " (1 process; FFmpeg may add decoding threads)"
            )
    if shots.transnetv2_version():
        frames = np.random.default_rng(0).integers(0, 256, (args.frames, 27, 48, 3), np.uint8)

        def network_only():
            scores = shots.TransNetV2Scores("cpu")
            for frame in frames:
                scores.add(frame)
            scores.finish()

        network_only()  # loads the model once
        rate = best_rate(network_only, args.frames)
        print(f"TransNetV2 network alone on 48x27 frames: {rate:6.0f} frames/s (1 thread)")


if __name__ == "__main__":
    main()
