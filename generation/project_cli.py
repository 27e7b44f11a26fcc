"""`lvg-project`: project clips or a still into a generator's noise stream
(docs/projection.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np
import torch
from tqdm import tqdm

from datasets.video_io import VideoReadError, read_image, resize_frame
from generation.cli import DEMO_LRES, NetworkError, check_writable, load_network
from generation.projection import Projection, Settings, project, read_clip, reconstruct
from torch_utils.cli import CONTEXT_SETTINGS, click_errors, interrupt_on_sigterm
from torch_utils.frames import Mp4Writer, display_factor, nearest_upscale, to_uint8_hwc
from torch_utils.misc import choose_device
from torch_utils.weights import WeightsError

MAX_CLIP_FRAMES = 4096  # per clip; the optimisation's time grows with the frames


def parse_clip(text: str) -> tuple[Path, int]:
    """`CLIP` or `CLIP@FRAME` -> (path, frame offset); a path that exists as given is taken
    whole (even with an @ in its name)."""
    m = re.fullmatch(r"(.+)@(-?\d{1,16})", text)
    if m and not Path(text).exists():
        return Path(m[1]), int(m[2])
    return Path(text), 0


def output_paths(out: Path) -> tuple[Path, Path]:
    """(PROJ.safetensors, PROJ-compare.mp4) for `--out PROJ` or `--out PROJ.safetensors` (the
    mp4's name cannot be a clip's own, e.g. `lvg-project ride.mp4 --out ride`)."""
    stem = out.with_suffix("") if out.suffix.lower() == ".safetensors" else out
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + "-compare.mp4")


def side_by_side(target: torch.Tensor, recon: torch.Tensor, factor: int) -> Iterator[np.ndarray]:
    """uint8 frames: target | reconstruction, each `[3, T, h, w]` in [-1, 1], nearest-upscaled."""
    a = nearest_upscale(to_uint8_hwc(target.transpose(0, 1)), factor)
    b = nearest_upscale(to_uint8_hwc(recon.transpose(0, 1)), factor)
    yield from np.concatenate([a, b], axis=2)


EXAMPLES = """
\b
Examples:
\b
  # Project the first 32 frames of a clip with the shipped demo model, then extend it:
  lvg-project ~/footage/ride.mp4 --max-frames 32 --steps 200 --out ride
  lvg-generate --from ride.safetensors --start-frame -64 --frames 256 --out ride-long.mp4
\b
  # Animate a still image (frame 0; the rest is free):
  lvg-project ~/frames/ride_01/0000.png --image --steps 200 --out still
\b
  # Connect two clips (folders of frames) placed at frames 0 and 96 of one stream; the
  # frames between them are generated:
  lvg-project ~/frames/ride_01@0 ~/frames/ride_02@96 --steps 200 --out joined
\b
Writes PROJ.safetensors (the projection, for lvg-generate --from) and PROJ-compare.mp4
(target and reconstruction side by side). Clips are centre-cropped and resized to the
generator's size as lvg-dataset does.
"""


@click.command(epilog=EXAMPLES, context_settings=CONTEXT_SETTINGS)
@click.argument("clips", nargs=-1, required=True, metavar="CLIP[@FRAME] ...")
@click.option(
    "--lres",
    "lres_path",
    type=click.Path(path_type=Path),
    help="Low-res generator (any format lvg-generate reads) [default: the shipped demo model].",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output name PROJ: writes PROJ.safetensors and PROJ-compare.mp4.",
)
@click.option(
    "--steps", type=click.IntRange(0, 100_000), default=200, show_default=True,
    help="Optimisation steps.",
)  # fmt: skip
@click.option(
    "--seed", type=int, default=0, show_default=True,
    help="Base seed: its noise starts the window and continues outside it.",
)  # fmt: skip
@click.option(
    "--max-frames", type=click.IntRange(1, MAX_CLIP_FRAMES), default=64, show_default=True,
    help="Frames read from the start of each clip.",
)  # fmt: skip
@click.option("--image", is_flag=True, help="Each CLIP is a still image, projected as one frame.")
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=Settings.lr, show_default=True,
    help="Adam's learning rate on the noise.",
)  # fmt: skip
@click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA if present), cpu, cuda, ..."
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(clips, lres_path, out, steps, seed, max_frames, image, lr, device, overwrite, quiet):
    """Project video clips (files or folders of frames) or still images into the temporal noise
    of a low-res generator, for lvg-generate --from (docs/projection.md)."""
    interrupt_on_sigterm()
    proj_path, mp4_path = output_paths(out)
    with click_errors(ValueError):
        check_writable([proj_path, mp4_path], overwrite)
        parsed = [parse_clip(c) for c in clips]
        for path, _ in parsed:
            if not path.exists():
                raise ValueError(f"{path}: no such file or folder")
            if image and not path.is_file():
                raise ValueError(f"{path}: --image needs an image file")
    with click_errors(RuntimeError):
        dev = choose_device(device)
    with click_errors(NetworkError):
        G = load_network("--lres", lres_path or DEMO_LRES, "lres_generator", dev)
    if lres_path is None and not quiet:
        click.echo(f"no --lres given: using the demo model {DEMO_LRES}", err=True)
    with click_errors(VideoReadError, ValueError):
        frames = [
            (resize_frame(read_image(p), *G.size)[None] if image else
             read_clip(p, G.size, max_frames), offset)
            for p, offset in parsed
        ]  # fmt: skip
    settings = Settings(steps=steps, lr=lr)
    with tqdm(total=steps, unit="step", disable=quiet, desc=proj_path.name) as bar:

        def progress(step: int, loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.update(1)

        with click_errors(WeightsError, ValueError):
            proj = project(G, frames, steps=steps, seed=seed, device=dev, settings=settings,
                           progress=progress)  # fmt: skip
    write_outputs(G, proj, frames, proj_path, mp4_path)
    for (first, stop), p, d in zip(proj.clips, proj.psnr, proj.lpips):
        click.echo(f"frames {first}..{stop - 1}: PSNR {p:.2f} dB, LPIPS {d:.4f}")
    click.echo(f"wrote {proj_path} and {mp4_path}")


def write_outputs(G, proj: Projection, frames, proj_path: Path, mp4_path: Path) -> None:
    """The mp4 (each clip's target beside its reconstruction, clip after clip), then the
    projection file; both atomic, and the mp4 is removed if the projection cannot be written."""
    factor = display_factor(*G.size)
    with Mp4Writer(mp4_path) as writer:
        for (first, stop), (video, _) in zip(proj.clips, sorted(frames, key=lambda f: f[1])):
            target = torch.tensor(np.asarray(video)).float().div(127.5).sub(1)
            recon = reconstruct(G, proj, first, stop)
            for frame in side_by_side(target.permute(3, 0, 1, 2), recon, factor):
                writer.write(frame)
    try:
        proj.save(proj_path)
    except BaseException:
        mp4_path.unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    main()
