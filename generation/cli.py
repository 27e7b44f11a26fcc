"""`lvg-generate`: write videos of any length from trained generators (docs/generation.md)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

import networks
from generation.pipeline import (
    DEFAULT_BATCH_FRAMES,
    DEFAULT_SRES_BATCH,
    MAX_BATCH_FRAMES,
    MAX_FRAMES,
    MAX_SRES_BATCH,
    Frame,
    check_frame_range,
    compile_generators,
    generate_video,
    make_timelines,
)
from generation.projection import Projection, load_projection, loop_for
from generation.timeline import SEED_RANGE, Loop, Transition
from networks.checkpoint import CheckpointError
from networks.contract import check_chain
from torch_utils.cli import (
    CONTEXT_SETTINGS,
    FRAMES_HELP,
    click_errors,
    interrupt_on_sigterm,
)
from torch_utils.frames import Mp4Writer, display_factor, make_grid, mp4_rate, nearest_upscale
from torch_utils.misc import (
    COMPILE_CHOICES,
    PRECISIONS,
    atomic_path,
    choose_device,
    use_compile,
)

# The shipped demo models (generation/demo/MODEL_CARD.md), used when --lres is not given.
DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_LRES, DEMO_SRES = DEMO_DIR / "lres.safetensors", DEMO_DIR / "sres.safetensors"

# docs/generation.md#many-seeds: seeds are generated one at a time, one file after another, so
# memory does not grow with their number; a --grid needs every seed for each frame, so its seeds
# are generated side by side (memory grows with their number) and their number is limited.
MAX_SEEDS = 10_000
MAX_GRID_SEEDS = 64

# Library parameter names whose flag is not `--name` (flags_in)
FLAGS = {"num_frames": "--frames"}


def _seed(text: str) -> int:
    low, high = SEED_RANGE
    if len(text.lstrip("-")) > 19 or not low <= int(text) <= high:
        raise ValueError(f"{text} is not a 64-bit integer ({low} .. {high})")
    return int(text)


def parse_seeds(text: str) -> list[int]:
    """ "1", "1,5,9", "0-3" or "-2--1,7" -> list of ints (StyleGAN3's num_range, with negatives);
    ValueError for anything else, for 64-bit overflows and for more than `MAX_SEEDS` seeds
    (checked before any list is made: 0-10**12 allocates nothing)."""
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?", part)
        if not m:
            raise ValueError(f"{part!r} is not a seed or a range like 0-3")
        a = _seed(m[1])
        b = _seed(m[2]) if m[2] is not None else a
        if b < a:
            raise ValueError(f"empty range {part!r}")
        if len(seeds) + (b - a + 1) > MAX_SEEDS:
            raise ValueError(
                f"{text.strip()} is more than {MAX_SEEDS} seeds, the most one run takes"
            )
        seeds.extend(range(a, b + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError("a seed is listed twice")
    return seeds


# ------------------------------------------------------------------------------------------------
# Planning: options -> a validated plan (ValueErrors with the user-facing message; `main` turns
# them into one-line click errors)


def _with_suffix(path: Path, tag: str, suffix: str | None = None) -> Path:
    return path.with_name(f"{path.stem}{tag}{suffix or path.suffix}")


@dataclass(frozen=True)
class Output:
    """One file to write: an mp4 (streamed) or a PNG (one frame) of the `which` video ("video"
    or "lres") of seed `index` (None: all seeds in a grid)."""

    path: Path
    which: str
    index: int | None
    frame: int | None = None  # PNGs: the output frame (0 = the first written) to save


@dataclass(frozen=True)
class Plan:
    """What `lvg-generate` makes and writes, checked before any network is loaded."""

    lres_path: Path
    sres_path: Path | None
    seeds: tuple[int, ...]
    num_frames: int
    start_frame: int
    loop: Loop | None
    transition: Transition | None
    videos: tuple[Output, ...]
    pngs: tuple[Output, ...]
    save_lres: bool
    lres_native: bool
    out: Path
    fps: float
    crf: int
    rate: Fraction  # the frame rate the mp4s store (`mp4_rate(fps)`)
    # --from and --transition-to projections (docs/projection.md#using-a-projection): the one
    # played, and every one read (path, projection), checked against --lres once it is loaded.
    source: Projection | None = field(default=None, compare=False)
    projections: tuple[tuple[Path, Projection], ...] = field(default=(), compare=False)


def choose_models(lres_path: Path | None, sres_path: Path | None) -> tuple[Path, Path | None]:
    """The checkpoints to load: the given ones, or the shipped demo pair when none is given."""
    if lres_path is not None:
        return lres_path, sres_path
    if sres_path is not None:
        raise ValueError(
            "--sres needs --lres: give the low-res generator the super-resolution network "
            "was trained with"
        )
    return DEMO_LRES, DEMO_SRES


def frame_count(
    num_frames: int | None, seconds: float | None, fps: float, loop_period: int | None
) -> int:
    """--frames, or --seconds at --fps (a finite time > 0, at least one frame), or one loop
    period, or 301; at most `MAX_FRAMES` (docs/generation.md#limits)."""
    if num_frames is not None and seconds is not None:
        raise ValueError("give --frames or --seconds, not both")
    if seconds is not None:
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"--seconds must be a finite time > 0, got {seconds:g}")
        if seconds * fps > MAX_FRAMES:
            raise ValueError(
                f"--seconds {seconds:g} at {fps:g} fps is more than {MAX_FRAMES} frames, the most "
                f"a video can have ({MAX_FRAMES / fps / 86400:.0f} days at {fps:g} fps)"
            )
        return max(1, round(seconds * fps))
    if num_frames is None:
        if loop_period is not None and loop_period > MAX_FRAMES:
            raise ValueError(
                f"one --loop period ({loop_period} frames) is more than a video can have "
                f"({MAX_FRAMES}); give --frames"
            )
        return loop_period if loop_period and loop_period > 0 else 301
    return num_frames


def make_transition(
    seed: int | None, at: int | None, over: int | None, start_frame: int, num_frames: int
) -> Transition | None:
    """The --transition-to crossover: 64 frames centred in the video unless --at/--over say."""
    if seed is None:
        if at is not None or over is not None:
            raise ValueError("--at/--over need --transition-to")
        return None
    over = 64 if over is None else over
    at = start_frame + (num_frames - over) // 2 if at is None else at
    return Transition(seed, at, over)


def plan_outputs(
    out: Path, seeds: list[int], grid: bool, save_lres: bool, save_frames: tuple[int, ...]
) -> tuple[list[Output], list[Output]]:
    """The mp4s and PNGs to write: one set per seed (-seed<k>) unless one seed or --grid."""
    separate = len(seeds) > 1 and not grid
    videos: list[Output] = []
    pngs: list[Output] = []
    for k, seed in enumerate(seeds if separate else [None]):
        tag = f"-seed{seed}" if separate else ""
        index = k if separate else (0 if len(seeds) == 1 else None)
        videos.append(Output(_with_suffix(out, tag), "video", index))
        if save_lres:
            videos.append(Output(_with_suffix(out, f"{tag}-lres"), "lres", index))
        for i in sorted(set(save_frames)):
            pngs.append(Output(_with_suffix(out, f"{tag}-frame{i:06d}", ".png"), "video", index, i))
    return videos, pngs


def plan_generation(
    lres_path: Path,
    sres_path: Path | None,
    seeds: list[int],
    *,
    num_frames: int | None,
    seconds: float | None,
    fps: float,
    out: Path,
    start_frame: int,
    loop_period: int | None,
    loop_mode: str,
    transition_seed: int | str | None,
    transition_at: int | None,
    transition_over: int | None,
    grid: bool,
    save_lres: bool,
    lres_native: bool,
    save_frames: tuple[int, ...],
    crf: int,
    from_path: Path | None = None,
) -> Plan:
    """Checks the options that need no network and resolves them into a `Plan`
    (docs/generation.md#limits). `from_path`: play a projection (its base seed replaces
    `seeds`); `transition_seed` may be a projection file too (docs/projection.md)."""
    projections: list[tuple[Path, Projection]] = []
    source = None
    if from_path is not None:
        source = load_projection(from_path)
        projections.append((from_path, source))
        seeds = [source.base_seed]
    transition_patch = None
    if isinstance(transition_seed, str):
        if re.fullmatch(r"\s*-?\d+\s*", transition_seed):
            transition_seed = int(transition_seed)  # range: checked with the timeline
        else:
            other = load_projection(Path(transition_seed))
            projections.append((Path(transition_seed), other))
            transition_seed, transition_patch = other.base_seed, other.patch
    rate = mp4_rate(fps)
    n = frame_count(num_frames, seconds, fps, loop_period)
    check_frame_range(start_frame, n)
    if grid and len(seeds) > MAX_GRID_SEEDS:
        raise ValueError(
            f"--grid takes at most {MAX_GRID_SEEDS} seeds (each frame needs all of them at "
            f"once), got {len(seeds)}; without --grid each seed gets its own file"
        )
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"--out must be an .mp4 file, got {out}")
    if save_lres and sres_path is None:
        raise ValueError("--save-lres needs --sres (without it the video is the low-res one)")
    for i in save_frames:
        if not 0 <= i < n:
            raise ValueError(f"--save-frame {i} is outside the video's 0..{n - 1}")
    transition = make_transition(transition_seed, transition_at, transition_over, start_frame, n)
    if transition is not None and transition_patch is not None:
        transition = replace(transition, patch=transition_patch)
    loop = Loop(loop_period, loop_mode) if loop_period is not None else None
    make_timelines(seeds, loop, transition)  # validation only
    videos, pngs = plan_outputs(out, seeds, grid, save_lres, save_frames)
    return Plan(
        lres_path, sres_path, tuple(seeds), n, start_frame, loop, transition,
        tuple(videos), tuple(pngs), save_lres, lres_native, out, fps, crf, rate,
        source, tuple(projections),
    )  # fmt: skip


def check_writable(paths: list[Path], overwrite: bool) -> None:
    """ValueErrors for outputs that cannot be written, before any work is done."""
    for path in paths:
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise ValueError(f"cannot write {path}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"cannot write {path}: directory {parent} is not writable")
        if path.is_dir():
            raise ValueError(f"cannot write {path}: it is a directory")
        if path.exists() and not overwrite:
            raise ValueError(f"{path} already exists; pass --overwrite to replace it")


# ------------------------------------------------------------------------------------------------
# Loading


class NetworkError(ValueError):
    """The checkpoints cannot be used: missing, not the networks needed, or not a pair."""


def load_network(option: str, path: Path, kind: str, device: torch.device):
    """The `kind` network in `path` on `device`; NetworkError naming `option` otherwise."""
    try:
        return networks.load(path, kind=kind, device=device)
    except FileNotFoundError:
        raise NetworkError(f"{option}: no such checkpoint: {path}") from None
    except CheckpointError as e:
        raise NetworkError(f"{option}: {e}") from None


def load_networks(
    plan: Plan, device: torch.device
) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """The low-res generator and the optional SR network of `plan`, checked to fit together."""
    G = load_network("--lres", plan.lres_path, "lres_generator", device)
    S = None
    if plan.sres_path is not None:
        S = load_network("--sres", plan.sres_path, "sres_generator", device)
    try:
        check_chain(G, S)
    except ValueError as e:
        raise NetworkError(str(e)) from None
    h, w = G.size
    if plan.lres_native and (h % 2 or w % 2) and (S is None or plan.save_lres):
        raise NetworkError(f"--lres-native: H.264 needs even sizes, the low-res frames are {h}x{w}")
    return G, S


# ------------------------------------------------------------------------------------------------
# Running and writing


@dataclass(frozen=True)
class Job:
    """Seeds generated together and the files they make: one seed and its own files, or all
    the seeds of a --grid (docs/generation.md#many-seeds)."""

    seeds: tuple[int, ...]
    videos: tuple[Output, ...]
    pngs: tuple[Output, ...]


def plan_jobs(plan: Plan) -> list[Job]:
    """The plan's work, one job after another: one per seed, or one for a whole grid."""
    if any(o.index is None for o in plan.videos):
        return [Job(plan.seeds, plan.videos, plan.pngs)]
    videos: dict[int, list[Output]] = {k: [] for k in range(len(plan.seeds))}
    pngs: dict[int, list[Output]] = {k: [] for k in range(len(plan.seeds))}
    for o in plan.videos:
        videos[o.index].append(o)
    for o in plan.pngs:
        pngs[o.index].append(o)
    return [Job((seed,), tuple(videos[k]), tuple(pngs[k])) for k, seed in enumerate(plan.seeds)]


def _side_by_side(frames: tuple[Frame, ...]) -> Frame:
    lres = None if frames[0].lres is None else np.concatenate([f.lres for f in frames])
    return Frame(frames[0].index, np.concatenate([f.video for f in frames]), lres)


def stream_frames(
    plan: Plan, seeds: tuple[int, ...], G, S, batch_frames: int, sres_batch: int, precision: str
) -> Iterator[Frame]:
    """The frames of `seeds` (lazily, as the writers take them): each seed is streamed on its
    own (`generate_video` with one seed), so its frames are the same whatever other seeds the
    run has and the network calls never hold more than `batch_frames` low-res or `sres_batch`
    super-resolved frames; several seeds (a grid) advance side by side, one frame at a time."""
    streams = [
        generate_video(
            G,
            S,
            [seed],
            plan.num_frames,
            start_frame=plan.start_frame,
            loop=plan.loop,
            transition=plan.transition,
            batch_frames=batch_frames,
            sres_batch=sres_batch,
            precision=precision,
            keep_lres=plan.save_lres,
            patch=None if plan.source is None else plan.source.patch,
        )
        for seed in seeds
    ]
    if len(streams) == 1:
        return streams[0]
    return map(_side_by_side, zip(*streams))


def pick_image(frame: Frame, o: Output, lres_scale: int, upscale_video: bool) -> np.ndarray:
    """The image of output `o` in `frame` (the frame of `o`'s job: its one seed, or the grid's
    seeds); low-res frames are nearest-upscaled by `lres_scale`."""
    x = frame.video if o.which == "video" else frame.lres
    if o.which == "lres" or upscale_video:  # low-res frames: upscaled for display
        x = nearest_upscale(x, lres_scale)
    return x[0] if o.index is not None else make_grid(x)


def _save_png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def write_job(
    plan: Plan,
    job: Job,
    frames: Iterable[Frame],
    lres_scale: int,
    upscale_video: bool,
    bar: tqdm,
) -> None:
    """Streams `frames` into the job's mp4s and saves its PNG frames once the videos are
    complete; on any error (or an interrupt) the job's mp4s are aborted, leaving no file."""
    images: dict[Path, np.ndarray] = {}  # PNG frames, written once the videos are complete
    writers: list[Mp4Writer] = []
    try:
        writers.extend(Mp4Writer(o.path, fps=plan.fps, crf=plan.crf) for o in job.videos)
        with torch.inference_mode():
            for frame in frames:
                for o, writer in zip(job.videos, writers):
                    writer.write(pick_image(frame, o, lres_scale, upscale_video))
                for o in job.pngs:
                    if frame.index - plan.start_frame == o.frame:
                        images[o.path] = pick_image(frame, o, lres_scale, upscale_video)
                bar.update(1)
        for writer in writers:
            writer.close()
        for path, img in images.items():
            _save_png(path, img)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise


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


@click.command(epilog=EXAMPLES, context_settings=CONTEXT_SETTINGS)
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
    help="Seed(s): 7, 1,5,9 or 0-3 (64-bit integers, at most 10000 per run).",
)
@click.option(
    "--frames",
    "num_frames",
    type=click.IntRange(1, MAX_FRAMES),
    help=FRAMES_HELP + f" (at most {MAX_FRAMES}) [default: 301, or one period with --loop].",
)
@click.option(
    "--seconds",
    type=float,
    help="Length of each video in seconds, instead of --frames (finite, > 0).",
)
@click.option(
    "--fps",
    type=float,
    default=30.0,
    show_default=True,
    help="Frame rate of the video file: 0.01 to 1000, stored as a fraction with a denominator "
    "of at most 1001 (29.97003 is 30000/1001).",
)
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, help="Output .mp4 file."
)
@click.option(
    "--start-frame",
    type=int,
    default=0,
    show_default=True,
    help="First frame (any integer, negative too; the video must lie within -2^52 .. 2^52).",
)
@click.option(
    "--loop",
    "loop_period",
    type=int,
    help="Seamless loop with this period in frames (a multiple of 32, at most 2^52).",
)
@click.option(
    "--loop-mode",
    type=click.Choice(["blend", "noise"]),
    default="blend",
    show_default=True,
    help="Loop construction (see generation/timeline.py).",
)
@click.option(
    "--transition-to",
    "transition_seed",
    metavar="SEED|PROJ",
    help="Cross over to this seed's world, or to a projection's (a .safetensors of lvg-project).",
)
@click.option(
    "--from",
    "from_path",
    type=click.Path(path_type=Path),
    help="Play a projection made by lvg-project (PROJ.safetensors) instead of a seed, and "
    "continue it forward and backward (docs/projection.md).",
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
    "--grid",
    is_flag=True,
    help=f"Several seeds (at most {MAX_GRID_SEEDS}): one grid video instead of one file per seed. "
    "The grid's seeds advance side by side, so memory grows with their number (each holds "
    "--batch-frames low-res and --sres-batch output frames); without --grid the seeds are "
    "generated one after another and memory does not depend on their number.",
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
    "--compile",
    "compile_choice",
    type=click.Choice(COMPILE_CHOICES),
    default="auto",
    show_default=True,
    help="torch.compile the networks (each new chunk length compiles once, minutes on a CPU); "
    "auto: off on CPUs, where it was measured slower, and, until measured, on GPUs.",
)
@click.option(
    "--batch-frames",
    type=click.IntRange(1, MAX_BATCH_FRAMES),
    default=DEFAULT_BATCH_FRAMES,
    show_default=True,
    help=f"Low-res frames per generator call (rounded up to a multiple of 32; at most "
    f"{MAX_BATCH_FRAMES}).",
)
@click.option(
    "--sres-batch",
    type=click.IntRange(1, MAX_SRES_BATCH),
    default=DEFAULT_SRES_BATCH,
    show_default=True,
    help=f"Frames per super-resolution call, in all (at most {MAX_SRES_BATCH}).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(
    device: str,
    precision: str,
    compile_choice: str,
    batch_frames: int,
    sres_batch: int,
    overwrite: bool,
    quiet: bool,
    **options: Any,
) -> None:
    """Generate videos with a LongVideoGAN low-res generator (and optionally its
    super-resolution network), streamed to H.264 mp4 files."""
    interrupt_on_sigterm()
    given_lres, seeds = options.pop("lres_path"), options.pop("seeds")
    with _click_errors(ValueError):
        lres_path, sres_path = choose_models(given_lres, options.pop("sres_path"))
    try:
        seed_list = parse_seeds(seeds)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--seed") from None
    ctx = click.get_current_context()
    if options["from_path"] is not None and ctx.get_parameter_source("seeds").name == "COMMANDLINE":
        raise click.UsageError("give --seed or --from, not both (a projection has its own seed)")
    with _click_errors(ValueError):
        plan = plan_generation(lres_path, sres_path, seed_list, **options)
        check_writable([o.path for o in plan.videos + plan.pngs], overwrite)
    if given_lres is None and not quiet:  # after the checks: an error stays one line
        click.echo(f"no --lres given: using the demo models in {DEMO_DIR}", err=True)
    with _click_errors(RuntimeError):
        dev = choose_device(device)
    with _click_errors(NetworkError):
        G, S = load_networks(plan, dev)
    if use_compile(compile_choice, dev):
        G, S = compile_generators(G, S)
    with _click_errors(ValueError):
        for path, proj in plan.projections:  # made with this generator? (one-line error)
            proj.check_generator(G, path)
        if plan.source is not None and plan.loop is not None:  # the clip seen in the loop
            plan = replace(plan, loop=loop_for(plan.source, plan.loop, G))
    lres_scale = 1 if plan.lres_native else display_factor(*G.size)
    jobs = plan_jobs(plan)
    total = plan.num_frames * len(jobs)
    with tqdm(total=total, unit="frame", disable=quiet, desc=plan.out.name) as bar:
        for job in jobs:  # one seed (or one grid) at a time: memory does not grow with seeds
            frames = stream_frames(plan, job.seeds, G, S, batch_frames, sres_batch, precision)
            with _click_errors(ValueError):  # e.g. odd frame sizes for H.264: a one-line error
                write_job(plan, job, frames, lres_scale, S is None, bar)
            for o in job.videos + job.pngs:
                bar.write(f"wrote {o.path}")
    what = "super-resolved" if S is not None else "low-res"
    click.echo(
        f"{plan.num_frames} {what} frames from frame {plan.start_frame}, "
        f"{f'seed(s) {seeds}' if plan.source is None else f'from {plan.projections[0][0]}'}, "
        f"{float(plan.rate):g} fps, on {dev}"
    )


def _click_errors(*types: type[Exception]):
    """`torch_utils.cli.click_errors` with this CLI's flag names."""
    return click_errors(*types, flags=FLAGS)


if __name__ == "__main__":
    main()
