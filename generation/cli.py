"""`lvg-generate`: write videos of any length from trained generators (docs/generation.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

import networks
from datasets.video_io import Mp4Writer
from generation.pipeline import (
    DEFAULT_BATCH_FRAMES,
    DEFAULT_SRES_BATCH,
    PRECISIONS,
    Frame,
    check_compatible,
    display_factor,
    generate_video,
    make_grid,
    make_timelines,
    nearest_upscale,
)
from generation.timeline import Loop, Transition
from networks.checkpoint import CheckpointError
from torch_utils.misc import atomic_path, choose_device

# The shipped demo models (generation/demo/MODEL_CARD.md), used when --lres is not given.
DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_LRES, DEMO_SRES = DEMO_DIR / "lres.safetensors", DEMO_DIR / "sres.safetensors"


def parse_seeds(text: str) -> list[int]:
    """ "1", "1,5,9", "0-3" or "-2--1,7" -> list of ints (StyleGAN3's num_range, with negatives)."""
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?", part)
        if not m:
            raise click.BadParameter(
                f"{part!r} is not a seed or a range like 0-3", param_hint="--seed"
            )
        a = int(m[1])
        b = int(m[2]) if m[2] is not None else a
        if b < a:
            raise click.BadParameter(f"empty range {part!r}", param_hint="--seed")
        seeds.extend(range(a, b + 1))
    if len(set(seeds)) != len(seeds):
        raise click.BadParameter("a seed is listed twice", param_hint="--seed")
    return seeds


# ------------------------------------------------------------------------------------------------
# Outputs


def _with_suffix(path: Path, tag: str, suffix: str | None = None) -> Path:
    return path.with_name(f"{path.stem}{tag}{suffix or path.suffix}")


@dataclass
class Output:
    """One file to write: an mp4 (streamed) or a PNG (one frame); `pick` makes its image."""

    path: Path
    pick: Callable[[Frame], np.ndarray]
    frame: int | None = None  # PNGs: the output frame (0 = the first written) to save


def check_writable(paths: list[Path], overwrite: bool) -> None:
    """One-line ClickExceptions for outputs that cannot be written, before any work is done."""
    for path in paths:
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise click.ClickException(f"cannot write {path}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise click.ClickException(f"cannot write {path}: directory {parent} is not writable")
        if path.is_dir():
            raise click.ClickException(f"cannot write {path}: it is a directory")
        if path.exists() and not overwrite:
            raise click.ClickException(f"{path} already exists; pass --overwrite to replace it")


def _save_png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


# ------------------------------------------------------------------------------------------------
# Command


EXAMPLES = """
\b
Examples:
\b
  # 20 s from the shipped demo models (trained on the synthetic benchmark), 144x256:
  lvg-generate --seed 0 --seconds 20 --out demo.mp4
\b
  # 10 s of seed 7 at 30 fps, low-res generator only (written nearest-upscaled x4, as the
  # original writes its 36x64 samples):
  lvg-generate --lres lres.safetensors --seed 7 --seconds 10 --out seed7.mp4
\b
  # Low-res + super-resolution, 301 frames, the LR video beside it and two PNG frames:
  lvg-generate --lres horseback_lres.pkl --sres horseback_sres.pkl --seed 7 --frames 301 \\
      --save-lres -i 0 -i 300 --out horse.mp4
\b
  # Enter the video at frame 10,000,000 (no need to generate what comes before):
  lvg-generate --lres lres.safetensors --seed 7 --start-frame 10000000 --frames 300 --out far.mp4
\b
  # A seamless 256-frame loop (frame t equals frame t+256):
  lvg-generate --lres lres.safetensors --seed 3 --loop 256 --out loop.mp4
\b
  # Cross over from seed 1's world to seed 2's during frames 600-720:
  lvg-generate --lres lres.safetensors --seed 1 --transition-to 2 --at 600 --over 120 \\
      --frames 1200 --out cross.mp4
\b
  # Seeds 0-8 in one 3x3 grid, bfloat16 on the CPU, or one file per seed:
  lvg-generate --lres lres.safetensors --seed 0-8 --grid --precision bfloat16 --out grid.mp4
  lvg-generate --lres lres.safetensors --seed 0-3 --out clips.mp4   # clips-seed0.mp4, ...
\b
Frame f of a seed is the same in every run, whatever the start frame, length or chunk size.
Memory does not grow with the length: videos of hours stream straight to the encoder.
"""


@click.command(epilog=EXAMPLES)
@click.option(
    "--lres",
    "lres_path",
    type=click.Path(path_type=Path),
    help="Low-res generator: a .safetensors snapshot, an original .pkl (G_ema or training "
    "pickle) or a training state [default: the shipped demo models, low-res and "
    "super-resolution].",
)
@click.option(
    "--sres",
    "sres_path",
    type=click.Path(path_type=Path),
    help="Super-resolution generator (optional; same formats as --lres).",
)
@click.option(
    "--seed",
    "seeds",
    metavar="SEEDS",
    default="0",
    show_default=True,
    help="Seed(s): 7, 1,5,9 or 0-3.",
)
@click.option(
    "--frames",
    "num_frames",
    type=click.IntRange(min=1),
    help="Number of frames [default: 301, or one period with --loop].",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="Length in seconds instead of --frames.",
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Frame rate of the video file.",
)
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, help="Output .mp4 file."
)
@click.option(
    "--start-frame",
    type=int,
    default=0,
    show_default=True,
    help="First frame (any integer, negative too).",
)
@click.option(
    "--loop",
    "loop_period",
    type=int,
    help="Seamless loop with this period in frames (a multiple of 32).",
)
@click.option(
    "--loop-mode",
    type=click.Choice(["blend", "noise"]),
    default="blend",
    show_default=True,
    help="Loop construction (see generation/timeline.py).",
)
@click.option(
    "--transition-to", "transition_seed", type=int, help="Cross over to this seed's world."
)
@click.option(
    "--at",
    "transition_at",
    type=int,
    help="Frame where the transition starts [default: centred in the video].",
)
@click.option(
    "--over",
    "transition_over",
    type=click.IntRange(min=0),
    help="Length of the transition in frames [default: 64].",
)
@click.option(
    "--grid", is_flag=True, help="Several seeds: one grid video instead of one file per seed."
)
@click.option(
    "--save-lres", is_flag=True, help="With --sres: also write the low-res video (<out>-lres.mp4)."
)
@click.option(
    "--lres-native",
    is_flag=True,
    help="Write low-res frames at their native size instead of nearest-upscaled to multiples of 16.",
)
@click.option(
    "--save-frame",
    "-i",
    "save_frames",
    type=int,
    multiple=True,
    help="Also save this frame (0 = the first written) as PNG; repeatable.",
)
@click.option(
    "--crf",
    type=click.IntRange(0, 51),
    default=18,
    show_default=True,
    help="H.264 quality: 0 lossless, 18 visually lossless, 23 x264's default.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (CUDA if present), cpu, cuda, cuda:1, ...",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="auto",
    show_default=True,
    help="auto: float32, except the SR network's float16 layers on CUDA (as the original).",
)
@click.option(
    "--batch-frames",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_FRAMES,
    show_default=True,
    help="Low-res frames per generator call (rounded up to a multiple of 32).",
)
@click.option(
    "--sres-batch",
    type=click.IntRange(min=1),
    default=DEFAULT_SRES_BATCH,
    show_default=True,
    help="Frames per super-resolution call.",
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(
    lres_path: Path | None,
    sres_path: Path | None,
    seeds: str,
    num_frames: int | None,
    seconds: float | None,
    fps: float,
    out: Path,
    start_frame: int,
    loop_period: int | None,
    loop_mode: str,
    transition_seed: int | None,
    transition_at: int | None,
    transition_over: int | None,
    grid: bool,
    save_lres: bool,
    lres_native: bool,
    save_frames: tuple[int, ...],
    crf: int,
    device: str,
    precision: str,
    batch_frames: int,
    sres_batch: int,
    overwrite: bool,
    quiet: bool,
):
    """Generate videos with a LongVideoGAN low-res generator (and optionally its
    super-resolution network), streamed to H.264 mp4 files."""
    # -- options that need no network ----------------------------------------------------------
    if lres_path is None:
        if sres_path is not None:
            raise click.ClickException(
                "--sres needs --lres: give the low-res generator the super-resolution network "
                "was trained with"
            )
        lres_path, sres_path = DEMO_LRES, DEMO_SRES
        if not quiet:
            click.echo(f"no --lres given: using the demo models in {DEMO_DIR}", err=True)
    seed_list = parse_seeds(seeds)
    if num_frames is not None and seconds is not None:
        raise click.ClickException("give --frames or --seconds, not both")
    if seconds is not None:
        num_frames = max(1, round(seconds * fps))
    if num_frames is None:
        num_frames = loop_period if loop_period and loop_period > 0 else 301
    if out.suffix.lower() != ".mp4":
        raise click.ClickException(f"--out must be an .mp4 file, got {out}")
    if save_lres and sres_path is None:
        raise click.ClickException(
            "--save-lres needs --sres (without it the video is the low-res one)"
        )
    for i in save_frames:
        if not 0 <= i < num_frames:
            raise click.ClickException(
                f"--save-frame {i} is outside the video's 0..{num_frames - 1}"
            )
    if (transition_at is not None or transition_over is not None) and transition_seed is None:
        raise click.ClickException("--at/--over need --transition-to")
    transition = None
    if transition_seed is not None:
        over = 64 if transition_over is None else transition_over
        at = start_frame + (num_frames - over) // 2 if transition_at is None else transition_at
        transition = Transition(transition_seed, at, over)
    loop = Loop(loop_period, loop_mode) if loop_period is not None else None
    try:
        make_timelines(seed_list, loop, transition)  # validation only
    except ValueError as e:
        raise click.ClickException(str(e)) from None

    # -- outputs (checked before any work) -----------------------------------------------------
    separate = len(seed_list) > 1 and not grid
    lres_scale = 1  # set once the generator's size is known

    def image(which: str, k: int | None):
        def pick(frame: Frame) -> np.ndarray:
            x = frame.video if which == "video" else frame.lres
            if which == "lres" or sres_path is None:  # low-res frames: upscaled for display
                x = nearest_upscale(x, lres_scale)
            return x[k] if k is not None else make_grid(x)

        return pick

    videos: list[Output] = []
    pngs: list[Output] = []
    for k, seed in enumerate(seed_list if separate else [None]):
        tag = f"-seed{seed}" if separate else ""
        index = k if separate else (0 if len(seed_list) == 1 else None)
        videos.append(Output(_with_suffix(out, tag), image("video", index)))
        if save_lres:
            videos.append(Output(_with_suffix(out, f"{tag}-lres"), image("lres", index)))
        for i in sorted(set(save_frames)):
            pngs.append(
                Output(_with_suffix(out, f"{tag}-frame{i:06d}", ".png"), image("video", index), i)
            )
    check_writable([o.path for o in videos + pngs], overwrite)

    # -- networks ------------------------------------------------------------------------------
    try:
        dev = choose_device(device)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None
    G = _load("--lres", lres_path, "lres_generator", dev)
    S = _load("--sres", sres_path, "sres_generator", dev) if sres_path is not None else None
    try:
        check_compatible(G, S)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    h, w = G.size
    lres_scale = 1 if lres_native else display_factor(h, w)
    if lres_native and (h % 2 or w % 2) and (S is None or save_lres):
        raise click.ClickException(
            f"--lres-native: H.264 needs even sizes, the low-res frames are {h}x{w}"
        )

    # -- generate ------------------------------------------------------------------------------
    frames = generate_video(
        G,
        S,
        seed_list,
        num_frames,
        start_frame=start_frame,
        loop=loop,
        transition=transition,
        batch_frames=batch_frames,
        sres_batch=sres_batch,
        precision=precision,
        keep_lres=save_lres,
    )
    writers = [Mp4Writer(o.path, fps=fps, crf=crf) for o in videos]
    images: dict[Path, np.ndarray] = {}  # PNG frames, written once the videos are complete
    try:
        with torch.inference_mode():
            bar = tqdm(frames, total=num_frames, unit="frame", disable=quiet, desc=out.name)
            for frame in bar:
                for o, writer in zip(videos, writers):
                    writer.write(o.pick(frame))
                for o in pngs:
                    if frame.index - start_frame == o.frame:
                        images[o.path] = o.pick(frame)
        for writer in writers:
            writer.close()
        for path, img in images.items():
            _save_png(path, img)
    except BaseException as e:
        for writer in writers:
            writer.abort()
        if isinstance(e, ValueError):  # e.g. odd frame sizes for H.264: a one-line error
            raise click.ClickException(str(e)) from None
        raise
    what = "super-resolved" if S is not None else "low-res"
    for o in videos + pngs:
        click.echo(f"wrote {o.path}")
    click.echo(
        f"{num_frames} {what} frames from frame {start_frame}, seed(s) {seeds}, {fps:g} fps, on {dev}"
    )


def _load(option: str, path: Path, kind: str, device: torch.device):
    try:
        return networks.load(path, kind=kind, device=device)
    except FileNotFoundError:
        raise click.ClickException(f"{option}: no such checkpoint: {path}") from None
    except CheckpointError as e:
        raise click.ClickException(f"{option}: {e}") from None


if __name__ == "__main__":
    main()
