"""Evidence that the low-resolution stage learns: train the tiny preset on the synthetic
benchmark for a fixed wall-clock budget, then compare generated and real clips before and after.

Two figures, each printed for the untrained network (step 0) and for the final G_ema:
  * colour-similarity gap: mean absolute gap between the generated and the real colour-
    similarity curves (docs/metrics.md#colour-similarity: histogram intersection with frame 0
    vs frame separation);
  * frame-statistics Frechet distance: FD between per-frame features (8x8 RGB thumbnails plus
    the absolute difference to the next frame) of generated and real clips.
Both must fall clearly.

    python benchmarks/learn_tiny.py --minutes 20 --outdir runs/learn-tiny

Training is resumable: re-running with the same --outdir continues for another budget.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import networks
from datasets.cli import main as dataset_main
from datasets.shards import VideoDataset
from metrics.color_similarity import similarity_rows
from metrics.curves import curve_from_rows, curve_gap
from metrics.frechet import frechet_distance
from networks.lres_generator import LowResGenerator
from networks.presets import get_preset
from torch_utils.misc import seed_everything
from training.config import resolve
from training.loop import train
from training.state import list_states


def frame_features(videos: torch.Tensor) -> np.ndarray:
    """`[n, 3, t, h, w]` -> `[n*(t-1), 384]`: 8x8 RGB thumbnails and their change to the next frame."""
    n, c, t, h, w = videos.shape
    thumbs = F.adaptive_avg_pool2d(videos.transpose(1, 2).reshape(n * t, c, h, w), 8).reshape(
        n, t, -1
    )
    feats = torch.cat([thumbs[:, :-1], (thumbs[:, 1:] - thumbs[:, :-1]).abs() * 4], dim=-1)
    return feats.reshape(-1, feats.shape[-1]).double().numpy()


def fd(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def real_clips(data: Path, frames: int, count: int, seed: int) -> torch.Tensor:
    dataset = VideoDataset(data, (36, 64), frames, seed=seed)
    return torch.stack([dataset[(0, i % len(dataset))] for i in range(count)])


@torch.no_grad()
def fake_clips(G: LowResGenerator, frames: int, count: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([G(1, frames, generator=gen) for _ in range(count)])


SEPARATIONS = (1, 8, 32, 64, 127)  # frame separations printed from the colour-similarity curves


def evaluate(G: LowResGenerator, real: torch.Tensor, seed: int) -> tuple[float, float, np.ndarray]:
    """(colour-sim gap, frame-stat FD, colour-sim curve at SEPARATIONS) of G against `real`."""
    fake = fake_clips(G.eval(), real.shape[2], real.shape[0], seed)
    curve = curve_from_rows(similarity_rows(fake))
    gap = curve_gap(curve, curve_from_rows(similarity_rows(real)))
    return gap, fd(frame_features(fake), frame_features(real)), curve.mean[list(SEPARATIONS)]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument(
        "--outdir", type=Path, default=Path(tempfile.gettempdir()) / "lvg-learn-tiny"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="A dataset with 36x64 frames (default: a synthetic one in OUTDIR)",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--chunk-steps", type=int, default=50, help="Steps between wall-clock checks"
    )
    parser.add_argument("--eval-clips", type=int, default=24)
    parser.add_argument("--eval-frames", type=int, default=128)
    args = parser.parse_args()

    data = args.data or args.outdir / "data"
    if not (data / "0036x0064").is_dir():
        result = CliRunner().invoke(
            dataset_main,
            ["synthetic", str(data), "--videos", "48", "--frames", "300", "--res", "36x64"],
        )
        assert result.exit_code == 0, result.output
    real = real_clips(data, args.eval_frames, args.eval_clips, seed=123)

    overrides = dict(
        data=str(data),
        outdir=str(args.outdir / "run"),
        batch=args.batch,
        steps_per_tick=args.chunk_steps,
    )
    overrides.update(snapshot_ticks=1, state_ticks=1, sample_ticks=10**6)
    cfg = resolve("lres", "tiny", **overrides)
    seed_everything(cfg.seed)  # as the training loop does before building G: the step-0 network
    untrained = LowResGenerator(get_preset(cfg.preset).lres_generator)

    states = list_states(Path(cfg.outdir))
    step = int(states[-1].stem.split("-")[1]) if states else 0
    start = time.time()
    while time.time() - start < args.minutes * 60:
        step += args.chunk_steps
        snapshot = train(cfg.replace(total_steps=step), echo=lambda s: None)
    elapsed = time.time() - start
    trained = networks.load(snapshot, kind="lres_generator")

    print(
        f"trained {elapsed / 60:.1f} min to step {step} (tiny preset, batch {args.batch}, {torch.get_num_threads()} threads)"
    )
    seps = "".join(f"{s:>7}" for s in SEPARATIONS)
    print(f"{'':22}{'colour-sim gap':>16}{'frame-stat FD':>16}   colour sim. at separation{seps}")
    real_curve = curve_from_rows(similarity_rows(real)).mean[list(SEPARATIONS)]
    print(f"{'real clips':54}{'':26}{''.join(f'{v:7.3f}' for v in real_curve)}")
    for name, G in [("untrained (step 0)", untrained), (f"G_ema at step {step}", trained)]:
        gap, dist, curve = evaluate(G, real, seed=7)
        print(f"{name:22}{gap:16.4f}{dist:16.3f}{'':26}{''.join(f'{v:7.3f}' for v in curve)}")


if __name__ == "__main__":
    main()
