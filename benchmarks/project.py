"""Projection quality (docs/projection.md#measured): self-projection, continuity across the
seams, held-out synthetic clips against a best-of-N-seeds baseline.

* Self-projection: frames `offset .. offset + T - 1` of seed `--target-seed` are projected
  starting from seed `--base-seed`'s noise; PSNR (target >= 30 dB) and LPIPS of the
  reconstruction at the generator's resolution.
* Continuity: LPIPS between the last projected frame and the first extended one (forward) and
  between the frame before the clip and its first (backward), as `lvg-generate --from` plays
  them, against the median LPIPS between consecutive frames of the model's own videos (target:
  at most 1.5x). Also the median consecutive LPIPS of the 64 frames after the clip.
* Held-out: clips of the synthetic benchmark (`datasets.synthetic.render_video`, seeds the
  demo model never saw), projected; baseline: the best (lowest LPIPS) of `--baseline-seeds`
  random seeds' frames at the same positions.

    python benchmarks/project.py [--steps 200] [--frames 32] [--variants] [--quick]

The default model is the shipped demo model (36x64). `--variants` also compares the priors
(default; no prior term; neither prior nor renormalisation). `--quick` (a small random-weight
generator, 5 steps) runs in seconds; tests/test_projection.py runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import networks  # noqa: E402
from datasets.synthetic import render_video  # noqa: E402
from generation.pipeline import generate_video  # noqa: E402
from generation.projection import Settings, as_clip, lpips_input, project  # noqa: E402
from metrics.lpips_curves import load_lpips  # noqa: E402
from networks.lres_generator import LowResGenerator, LowResGeneratorConfig  # noqa: E402
from networks.noise import NoiseBankConfig  # noqa: E402

DEMO = ROOT / "generation" / "demo" / "lres.safetensors"


def quick_generator() -> LowResGenerator:
    """A small random-weight generator (18x32, tiny channels, short noise filters), as
    tests/test_projection.py uses."""
    torch.manual_seed(0)
    cfg = LowResGeneratorConfig(
        height=18,
        width=32,
        output_scale=1.5,
        input_channels=16,
        channels=(16, 16, 16, 16, 8, 8, 8, 8, 8, 8),
        latent_dim=32,
        noise=NoiseBankConfig(num_filters=4, min_sampling_rate=64.0, max_sampling_rate=512.0),
    )
    return LowResGenerator(cfg).eval().requires_grad_(False)


def frames_of(G, seed: int, start: int, count: int, patch=None) -> torch.Tensor:
    """`[3, T, H, W]` float frames of a seed (or of a projection's patched stream)."""
    frames = generate_video(G, None, seed, count, start_frame=start, output="float", patch=patch)
    return torch.stack([f.video[0] for f in frames], dim=1)


def consecutive(lpips, video: torch.Tensor) -> np.ndarray:
    """LPIPS between consecutive frames of `[3, T, H, W]`."""
    v = video.transpose(0, 1)
    return lpips(v[:-1], v[1:]).numpy()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * np.log10(4 / max((a - b).square().mean().item(), 1e-12)))


def continuity(G, lpips, proj, own_median: float) -> dict:
    """Seam LPIPS forward and backward, and the consecutive LPIPS after the clip."""
    first, stop = proj.clips[0][0], proj.clips[-1][1]
    video = frames_of(G, proj.base_seed, first - 1, stop - first + 66, proj.patch)
    pairs = video.transpose(0, 1)
    back = lpips(pairs[0:1], pairs[1:2]).item()
    fwd = lpips(pairs[stop - first : stop - first + 1], pairs[stop - first + 1 :][:1]).item()
    after = float(np.median(consecutive(lpips, video[:, stop - first + 1 :])))
    return {
        "seam_forward": fwd,
        "seam_backward": back,
        "seam_forward_ratio": fwd / own_median,
        "seam_backward_ratio": back / own_median,
        "after_median": after,
        "after_ratio": after / own_median,
    }


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    G = quick_generator() if args.quick else networks.load(args.lres, kind="lres_generator")
    net = load_lpips("alex")

    def lpips(a, b):  # frames under 32 pixels are enlarged, as the projection does
        return net(lpips_input(a), lpips_input(b))

    T, o = args.frames, args.offset
    t0 = time.time()
    own = [consecutive(lpips, frames_of(G, s, 0, 64)) for s in range(100, 100 + args.own_seeds)]
    own_median = float(np.median(np.concatenate(own)))
    result: dict = {"model": "quick" if args.quick else str(args.lres), "frames": T,
                    "steps": args.steps, "own_consecutive_median": own_median}  # fmt: skip
    target = frames_of(G, args.target_seed, o, T)
    variants = {"default": Settings()}
    if args.variants:
        variants["no prior term"] = Settings(prior_weight=0.0)
        variants["no prior, no renormalisation"] = Settings(prior_weight=0.0, renormalise=False)
    result["self"] = {}
    for name, settings in variants.items():
        t = time.time()
        proj = project(G, [(target, o)], steps=args.steps, seed=args.base_seed, device="cpu",
                       settings=settings)  # fmt: skip
        row = {"psnr": proj.psnr[0], "lpips": proj.lpips[0], "seconds": time.time() - t}
        row.update(continuity(G, lpips, proj, own_median))
        row["window_std"] = proj.noise.std().item()
        result["self"][name] = row
        print(name, json.dumps(row), flush=True)
    held = []
    for k in range(args.held_out):
        uint8, _ = render_video(5000 + k, T, *G.size)
        clip = as_clip(uint8, o, G.size).frames.transpose(0, 1)  # [3, T, H, W]
        t = time.time()
        proj = project(G, [(uint8, o)], steps=args.steps, seed=args.base_seed, device="cpu")
        seconds = time.time() - t
        best = None
        for s in range(args.baseline_seeds):
            v = frames_of(G, s, o, T)
            d = lpips(v.transpose(0, 1), clip.transpose(0, 1)).mean().item()
            if best is None or d < best[0]:
                best = (d, psnr(v, clip), s)
        row = {"clip": 5000 + k, "psnr": proj.psnr[0], "lpips": proj.lpips[0],
               "baseline_psnr": best[1], "baseline_lpips": best[0], "baseline_seed": best[2],
               "seconds": seconds}  # fmt: skip
        print("held-out", json.dumps(row), flush=True)
        held.append(row)
    result["held_out"] = held
    result["wall_seconds"] = time.time() - t0
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lres", type=Path, default=DEMO)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--target-seed", type=int, default=1)
    p.add_argument("--base-seed", type=int, default=2)
    p.add_argument("--own-seeds", type=int, default=4)
    p.add_argument("--held-out", type=int, default=2)
    p.add_argument("--baseline-seeds", type=int, default=16)
    p.add_argument("--variants", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", type=Path, help="Also write the figures here.")
    args = p.parse_args()
    if args.quick:
        args = replace_args(
            args, steps=5, frames=8, own_seeds=1, held_out=1, baseline_seeds=2, threads=1
        )
    result = run(args)
    print(json.dumps(result, indent=1))
    if args.json:
        from torch_utils.misc import write_atomic

        write_atomic(args.json, json.dumps(result, indent=1))
    self_psnr = result["self"]["default"]["psnr"]
    return 0 if args.quick or self_psnr >= 30 else 1


def replace_args(args: argparse.Namespace, **values) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **values})


if __name__ == "__main__":
    sys.exit(main())
