"""Analysis speed of `lvg-dataset curate` (datasets/curate.py) on CPU, in source frames per second.

Encodes a panning test video with one hard cut at a few source sizes, then times one process
decoding at the analysis width alone, decoding + measuring every frame with each motion method
and the classic shot detector, and the same with the TransNetV2 shot detector (when installed),
all on one core (`torch.set_num_threads(1)`, BLAS and OpenCV single-threaded). The TransNetV2
figure is the whole analysis (decoding, motion, sharpness, hashes and the network); the network
alone on pre-scaled 48x27 frames is timed too. The `+i3d` and `+text` figures add the I3D clip
embeddings (docs/datasets.md#content-level-de-duplication-and-balance) and the PP-OCR text
detector (docs/datasets.md#burned-in-text) to the classic analysis, when installed. `--workers` in the real command runs this many
processes over videos.

With Ray installed (`pip install -e ".[scale]"`), the Ray rows time `analyse_videos` over
`--videos` copies of the 360x640 video, each detector, in one process, in two local processes
(`--workers 2`) and on a local Ray cluster of two one-CPU workers (`--ray local`;
docs/datasets.md#running-on-a-cluster-ray), a fresh cache per run, with the CPU time per frame
in one process and inside the Ray tasks; Ray's start-up is printed apart. `--quick`: 30
frames, the 360x640 size only, the network-alone row left out (a smoke run).

Usage: python benchmarks/curate.py [--frames N] [--width PX] [--videos N] [--quick]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import shutil  # noqa: E402
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
RAY_WORKERS = 2


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


def timed_analysis(src: str, video: str, settings: curation.AnalysisSettings) -> float:
    """CPU seconds of one `analyse_video` in the process that runs it (a Ray worker: defined in
    __main__, cloudpickle ships this function by value)."""
    start = time.process_time()
    curation.analyse_video(src, video, settings)
    return time.process_time() - start


def ray_rows(folder: Path, name: str, args, detectors: list[tuple[str, str]]) -> None:
    """Print, per detector, `analyse_videos` frames/s over `args.videos` copies of `folder/name`
    in one process and on a local Ray cluster of `RAY_WORKERS` workers, and the CPU time per
    frame in each (equal CPU times mean a lower Ray figure is other load on the machine)."""
    try:
        from datasets.cluster import RayCluster

        RayCluster("local")  # raises ValueError without Ray
    except ValueError:
        print("Ray rows skipped: Ray is not installed (pip install -e '.[scale]')")
        return
    videos = []
    for i in range(args.videos):
        videos.append(f"copy_{i}.mp4")
        shutil.copyfile(folder / name, folder / videos[-1])
    total = args.frames * len(videos)
    start = time.perf_counter()
    with RayCluster("local", num_cpus=RAY_WORKERS) as cluster:
        startup = time.perf_counter() - start
        for method, detector in detectors:
            settings = curation.AnalysisSettings(args.width, method, detector, "cpu")
            tasks = [(str(folder), video, settings) for video in videos]

            def analyse(on, workers=1, s=settings):
                cache = curation.AnalysisCache(tempfile.mkdtemp(dir=folder))
                _, decoded = curation.analyse_videos(folder, videos, s, cache, workers, None, on)
                assert decoded == len(videos)

            def ray_cpu(t=tasks) -> float:  # CPU s per frame inside the Ray tasks
                done = curation.parallel_map(timed_analysis, t, 1, cluster)
                return sum(cpu for _, cpu in done) / total

            ray_cpu()  # warm-up: the workers start and import torch
            cpu = time.process_time()
            local = best_rate(lambda: analyse(None), total)
            local_cpu = (time.process_time() - cpu) / (2 * total)  # best_rate runs it twice
            pool = best_rate(lambda: analyse(None, RAY_WORKERS), total)
            on_ray = best_rate(lambda: analyse(cluster), total)
            print(
                f"{detector} shots ({method}), {len(videos)} videos of {args.frames} frames, "
                f"{name}: 1 process {local:6.0f} frames/s ({1000 * local_cpu:.2f} ms CPU/frame), "
                f"{RAY_WORKERS} local processes {pool:6.0f} frames/s (x{pool / local:.2f}), "
                f"Ray on {RAY_WORKERS} workers {on_ray:6.0f} frames/s (x{on_ray / local:.2f}; "
                f"{1000 * ray_cpu():.2f} ms CPU/frame in the tasks); Ray start-up {startup:.1f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="frames per test video")
    parser.add_argument("--width", type=int, default=128, help="analysis width in pixels")
    parser.add_argument("--videos", type=int, default=4, help="videos of the Ray rows")
    parser.add_argument("--quick", action="store_true", help="a smoke run (see the doc)")
    args = parser.parse_args()
    if args.quick:
        args.frames = min(args.frames, 30)
    sizes = SIZES[:1] if args.quick else SIZES
    torch.set_num_threads(1)
    if curation.cv2 is not None:
        curation.cv2.setNumThreads(1)
    methods = [m for m in curation.MOTION_METHODS if m != "farneback" or curation.cv2 is not None]
    with tempfile.TemporaryDirectory() as tmp:
        for height, width in sizes:
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
            extras = []  # the optional per-shot detectors, each on top of the classic analysis
            if curation.embeddings.weights() is not None:
                extras.append(("i3d", {"embed": "i3d"}))
            if curation.text_detection.available():
                extras.append(("text", {"text": "ppocr"}))
            for key, extra in extras:
                settings = curation.AnalysisSettings(args.width, methods[0], "classic", **extra)
                curation.analyse_video(tmp, name, settings)  # loads the network once
                rates[f"{methods[0]}+{key}"] = best_rate(
                    lambda s=settings: curation.analyse_video(tmp, name, s), args.frames
                )
            print(
                f"{height}x{width} source, analysed at {args.width} px: "
                + ", ".join(f"{key} {rate:6.0f} frames/s" for key, rate in rates.items())
                + " (1 process; FFmpeg may add decoding threads)"
            )
            if (height, width) == SIZES[0]:
                ray_rows(Path(tmp), name, args, detectors)
    if shots.transnetv2_version() and not args.quick:
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
