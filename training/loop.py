"""The training loop shared by both stages: ticks, logging, snapshots, samples, states, resume.

    <outdir>/config.json            the resolved configuration
    <outdir>/stats.jsonl            one line per tick (mean/std/num of every statistic)
    <outdir>/tensorboard/           TensorBoard event files (scalars and sample frames)
    <outdir>/samples/*.mp4          G_ema samples every `sample_ticks` ticks
    <outdir>/snapshots/*.safetensors  G_ema inference snapshots (networks.load)
    <outdir>/states/state-*.pt      resumable training states (last `keep_states`)

Re-running the same command resumes from the newest complete state.
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import networks
from torch_utils import distributed
from torch_utils.frames import video_grid
from torch_utils.misc import (
    choose_device,
    disable_tf32,
    format_resolution,
    seed_everything,
    use_compile,
    write_atomic,
)
from training.config import GPU_SIZED_PRESETS, TrainConfig
from training.data import ClipStream
from training.gan import Stats
from training.state import list_states, load_state, rng_state, save_state, set_rng_state, state_path

# Settings that define a run: changing them on resume would silently train something else.
RUN_DEFINING = ("stage", "preset", "data", "batch", "grad_accum", "seq_length", "seed")


class TrainingError(RuntimeError):
    """Training cannot start or go on; the message says why and what to do."""


def build_stage(cfg: TrainConfig, device: torch.device, gen: torch.Generator):
    """The stage's GAN object and its dataset: `build_lres_stage` or `build_sres_stage`."""
    from networks.presets import get_preset

    preset = get_preset(cfg.preset)
    if cfg.stage == "lres":
        from training.lres_gan import build_lres_stage

        return build_lres_stage(cfg, preset, device, gen)
    from training.sres_gan import build_sres_stage

    return build_sres_stage(cfg, preset, device, gen)


def stage_resolutions(cfg: TrainConfig) -> list[tuple[int, int]]:
    """The dataset resolutions the stage reads: the low-res generator's output size (lres), or
    the super-resolution network's input and output sizes (sres)."""
    from networks.presets import get_preset

    preset = get_preset(cfg.preset)
    if cfg.stage == "lres":
        return [(preset.lres_generator.height, preset.lres_generator.width)]
    g_cfg = preset.sres_generator
    return [(g_cfg.lr_height, g_cfg.lr_width), (g_cfg.hr_height, g_cfg.hr_width)]


def _check_data(cfg: TrainConfig) -> None:
    """FileNotFoundError naming every resolution folder of the stage missing from `data`, with
    one command that makes them all (docs/training.md#start-up)."""
    from datasets.shards import missing_resolution_message, resolution_dirname

    root = Path(cfg.data)
    missing = [r for r in stage_resolutions(cfg) if not (root / resolution_dirname(r)).is_dir()]
    if missing:
        raise FileNotFoundError(missing_resolution_message(root, *missing))


def _check_config(outdir: Path, cfg: TrainConfig) -> None:
    path = outdir / "config.json"
    if path.exists():
        saved = json.loads(path.read_text())
        changed = [k for k in RUN_DEFINING if saved.get(k) != getattr(cfg, k)]
        if changed:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {getattr(cfg, k)!r}" for k in changed)
            raise TrainingError(
                f"{outdir} holds a run with different settings ({details}); resume it with the same settings or use a new `outdir`"
            )
    write_atomic(path, json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")


class RunLog:
    """stats.jsonl + TensorBoard + one status line per tick (rank 0 only)."""

    def __init__(self, outdir: Path, enabled: bool, echo: Callable[[str], None]):
        self.enabled, self.echo, self.outdir = enabled, echo, outdir
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(outdir / "tensorboard"))

    def tick(
        self, step: int, tick: int, stats: dict[str, list[float]], extra: dict[str, float]
    ) -> None:
        if not self.enabled:
            return
        summary = {
            k: {"num": len(v), "mean": float(np.mean(v)), "std": float(np.std(v))}
            for k, v in stats.items()
        }
        summary.update({k: {"num": 1, "mean": v, "std": 0.0} for k, v in extra.items()})
        with open(self.outdir / "stats.jsonl", "a") as f:
            f.write(
                json.dumps({"step": step, "tick": tick, "timestamp": time.time(), **summary}) + "\n"
            )
        for k, v in summary.items():
            self.writer.add_scalar(k, v["mean"], step)
        self.writer.flush()
        parts = [f"step {step}", f"tick {tick}"]
        for key, label in [
            ("timing/sec_per_step", "s/step"),
            ("loss/G", "G"),
            ("loss/D", "D"),
            ("loss/r1_penalty", "r1"),
            ("progress/G_ema_beta", "ema"),
            ("progress/augment_p", "p"),
            ("resources/cpu_mem_gb", "mem GB"),
        ]:
            if key in summary:
                parts.append(f"{label} {summary[key]['mean']:.4g}")
        if summary.get("data/damaged_clips", {}).get("mean"):  # docs/datasets.md#damaged-data
            parts.append(f"damaged clips {summary['data/damaged_clips']['mean']:.0f}")
        self.echo(" | ".join(parts))
        sys.stdout.flush()  # one line per tick, visible at once even when redirected to a file

    def images(self, tag: str, frames: torch.Tensor, step: int) -> None:
        """frames `[n, 3, h, w]` uint8."""
        if self.enabled:
            self.writer.add_images(tag, frames, step, dataformats="NCHW")
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclasses.dataclass(frozen=True)
class _Run:
    """What every part of `train` needs: the configuration, this process and where to write."""

    cfg: TrainConfig
    device: torch.device
    rank: int
    world: int
    outdir: Path
    echo: Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class _Parts:
    """The objects the tick loop works with, made once `train` has set up and restored."""

    gan: Any
    data: ClipStream
    gen: torch.Generator
    log: RunLog
    sample_noise: Any


def train(
    cfg: TrainConfig,
    resume: str | Path | None = None,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> Path:
    """Train (or resume) one stage; returns the newest snapshot path. `progress=False` drops
    the per-tick status lines (stats.jsonl and TensorBoard still get every tick)."""
    run = _setup(cfg, echo)
    gen = torch.Generator().manual_seed(cfg.seed * run.world + run.rank)
    gan, dataset = build_stage(cfg, run.device, gen)
    if use_compile(cfg.compile, run.device):
        gan.compile_networks()
    state_file = Path(resume) if resume else (list_states(run.outdir) or [None])[-1]
    step, position = _restore(run, gan, gen, state_file)
    if step >= cfg.total_steps:
        echo(f"already trained for {step} steps (total_steps {cfg.total_steps}); nothing to do")
        return _latest_snapshot(run.outdir)
    if run.rank == 0:
        for line in start_up_summary(cfg, run, gan, dataset, step):
            echo(line)

    data = ClipStream(
        dataset, gan.batch_per_rank, cfg.seed, run.rank, run.world, run.device, cfg.workers,
        start=position,
    )  # fmt: skip
    log = RunLog(run.outdir, run.rank == 0, echo if progress else (lambda s: None))
    sample_noise = gan.sample_inputs(torch.Generator().manual_seed(cfg.seed + 1))
    try:
        _tick_loop(run, _Parts(gan, data, gen, log, sample_noise), step, state_file)
    finally:
        log.close()
        distributed.barrier()
    return _latest_snapshot(run.outdir)


def _setup(cfg: TrainConfig, echo: Callable[[str], None]) -> _Run:
    """Device, process group, the checks that need no network (batch split, seeds, data
    folders, metric names: all before anything is written, docs/training.md#start-up), the output
    directory (its config.json checked against `cfg`) and the per-rank seeds
    (docs/training.md#initialisation-and-seeds)."""
    device = choose_device(cfg.device)
    if device.type == "cuda":
        disable_tf32()
    distributed.init(device.type)
    rank, world = distributed.rank(), distributed.world_size()
    if cfg.batch % (cfg.grad_accum * world):
        raise TrainingError(
            f"`batch` {cfg.batch} is not divisible by `grad_accum` x processes = {cfg.grad_accum} x {world}; change `batch` or `grad_accum`"
        )
    if cfg.seed * world + world - 1 >= 2**64:  # torch.Generator seeds are 64-bit
        raise TrainingError(
            f"`seed` {cfg.seed} x {world} processes does not fit in 64 bits; use a `seed` below {2**64 // world}"
        )
    _check_data(cfg)
    if cfg.metrics:
        from metrics.registry import check_name

        for name in cfg.metrics:
            check_name(name)  # fail before training, not at the first snapshot
    outdir = Path(cfg.outdir)
    if rank == 0:
        outdir.mkdir(parents=True, exist_ok=True)
        _check_config(outdir, cfg)
    distributed.barrier()
    seed_everything(cfg.seed * world + rank)
    return _Run(cfg, device, rank, world, outdir, echo)


def _millions(module: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f}M"


def start_up_summary(cfg: TrainConfig, run: _Run, gan, dataset, step: int) -> list[str]:
    """The lines printed once before the first step (docs/training.md#start-up): what trains,
    where, on what and how much; a warning when a GPU-sized preset runs on a CPU."""
    sizes = " -> ".join(format_resolution(r) for r in stage_resolutions(cfg))
    per_process = cfg.batch // run.world
    lines = [
        f"lvg-train {cfg.stage}, preset {cfg.preset}: G {_millions(gan.G)} parameters, "
        f"D {_millions(gan.D)}",
        f"  device {run.device}, precision {gan.precision}, "
        f"compile {'on' if use_compile(cfg.compile, run.device) else 'off'}",
        f"  data {cfg.data}: {len(dataset.clip_names)} clips at {sizes}",
        f"  batch {cfg.batch} per step = {run.world} process{'es' if run.world > 1 else ''} "
        f"x {per_process}; {cfg.grad_accum} accumulation round{'s' if cfg.grad_accum > 1 else ''} "
        f"of {per_process // cfg.grad_accum}",
        f"  steps {step} -> {cfg.total_steps}, ticks of {cfg.steps_per_tick}",
        f"  run folder {run.outdir}",
    ]
    if run.device.type == "cpu" and cfg.preset in GPU_SIZED_PRESETS:
        lines.append(
            f"warning: the {cfg.preset} preset is sized for GPUs ({cfg.total_steps} steps of "
            f"batch {cfg.batch}) and this run is on the CPU; for a smoke test use --preset tiny "
            "(the first status line shows the seconds per step)"
        )
    return lines


def _restore(run: _Run, gan, gen: torch.Generator, state_file: Path | None) -> tuple[int, int]:
    """(step, data position) to start from: a training state's, with its modules, optimisers,
    extra state and (same number of processes) random streams restored; else (0, 0), after
    loading `--init`'s weights if given (fine-tuning: weights only, optimisers fresh)."""
    cfg, echo = run.cfg, run.echo
    if state_file is None:
        if cfg.init:
            for line in gan.init_from(cfg.init):
                echo(f"init: {line}")
        return 0, 0
    state = load_state(state_file)
    for name, module in gan.modules().items():
        module.load_state_dict(state["modules"][name])
    for name, opt in gan.optimizers().items():
        opt.load_state_dict(state["optimizers"][name])
    gan.load_extra_state(state.get("extra", {}))
    step, position = state["step"], state["data_position"]
    rngs = state["rng"]
    if len(rngs) == run.world:
        set_rng_state(rngs[run.rank], gen)
    else:
        echo(
            f"warning: the state was written by {len(rngs)} processes, not {run.world}; random streams restart"
        )
    if run.rank == 0:
        echo(f"resuming from {state_file} at step {step}")
        if cfg.init:
            echo(f"note: the run resumes, so {cfg.init} is not loaded (init only starts a run)")
    return step, position


def read_tick(steps: list[Stats]) -> list[dict[str, float]]:
    """The steps' statistics as numbers: every tensor among them is copied to the host in one
    transfer, the one wait for the device per tick (docs/training.md#no-waiting-inside-a-step)."""
    tensors = [v for s in steps for v in s.values() if isinstance(v, torch.Tensor)]
    values = iter(())
    if tensors:
        device = tensors[0].device
        flat = torch.stack([t.detach().reshape(()).to(device, torch.float64) for t in tensors])
        values = iter(flat.cpu().tolist())
    return [
        {k: next(values) if isinstance(v, torch.Tensor) else float(v) for k, v in s.items()}
        for s in steps
    ]


def _tick_loop(run: _Run, parts: _Parts, step: int, last_state: Path | None) -> None:
    """Training steps from `step` to `total_steps`, with `_end_tick` every `steps_per_tick`.
    Statistics stay on the device until the tick ends (`read_tick`)."""
    cfg = run.cfg
    steps: list[Stats] = []
    nan_streak, tick_start = 0, time.time()
    while step < cfg.total_steps:
        steps.append(parts.gan.train_step(step, parts.data))
        step += 1
        if step % cfg.steps_per_tick and step != cfg.total_steps:
            continue
        rows = read_tick(steps)
        steps = []
        nan_streak = _nan_streak(run, rows, nan_streak, step - len(rows), last_state)
        tick_stats: dict[str, list[float]] = defaultdict(list)
        for row in rows:
            for k, v in row.items():
                tick_stats[k].append(v)
        last_state = _end_tick(run, parts, step, tick_stats, tick_start, nan_streak) or last_state
        tick_start = time.time()


def _nan_streak(
    run: _Run, rows: list[dict[str, float]], streak: int, first: int, last_state: Path | None
) -> int:
    """The number of consecutive steps with non-finite losses at the end of the tick whose
    steps `first`, `first + 1`, ... gave `rows`, continuing `streak`; TrainingError once it
    reaches `nan_patience` (naming the step at which it did)."""
    for i, row in enumerate(rows):
        finite = all(math.isfinite(v) for k, v in row.items() if k.startswith("loss/"))
        streak = 0 if finite else streak + 1
        if streak >= run.cfg.nan_patience:
            raise TrainingError(
                f"the losses were not finite for {streak} consecutive steps (step {first + i + 1}); stopping. "
                f"The last good state is {last_state or 'none (no state was written yet)'}; lower the learning rates or `gamma` and resume"
            )
    return streak


def _end_tick(
    run: _Run,
    parts: _Parts,
    step: int,
    tick_stats: dict[str, list[float]],
    tick_start: float,
    nan_streak: int,
) -> Path | None:
    """The end of a tick: its log line (`tick_stats` then cleared), then, unless the losses are
    diverging, the snapshot + metrics, samples and training state that are due; returns the
    state written, if any."""
    cfg, device = run.cfg, run.device
    tick = math.ceil(step / cfg.steps_per_tick)
    extra = {
        "timing/sec_per_step": (time.time() - tick_start) / len(tick_stats["loss/G"]),
        "resources/cpu_mem_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "progress/step": step,
        "data/damaged_clips": len(parts.data.damage),  # this process, since it started
        "data/skipped_reads": parts.data.damage.skipped_reads,
        **parts.gan.progress(),
    }
    if device.type == "cuda":
        extra["resources/peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    parts.log.tick(step, tick, tick_stats, extra)
    tick_stats.clear()
    if nan_streak:  # keep the last good checkpoint: write nothing from a diverging state
        run.echo(f"warning: non-finite losses in the last {nan_streak} steps; not saving this tick")
        return None
    done = step >= cfg.total_steps
    if run.rank == 0 and (tick % cfg.snapshot_ticks == 0 or done):
        snapshot = run.outdir / "snapshots" / f"{cfg.stage}-{step:08d}.safetensors"
        networks.save(parts.gan.snapshot(), snapshot, metadata={"step": str(step)}, role="G_ema")
        _compute_metrics(cfg, snapshot, step, device, run.echo)
    if tick % cfg.sample_ticks == 0 or done:
        _write_samples(parts.gan, parts.sample_noise, parts.log, run.outdir, cfg, step, run.rank)
    if tick % cfg.state_ticks == 0 or done:
        return _save_training_state(
            parts.gan, run.outdir, cfg, step, parts.data.position, parts.gen, run.rank
        )
    return None


def _compute_metrics(cfg: TrainConfig, snapshot: Path, step: int, device, echo) -> None:
    """The `--metric`s of a snapshot, appended to `<outdir>/metric-<name>.jsonl`.
    A metric that cannot be computed (e.g. no I3D weights) is reported and training goes on."""
    if not cfg.metrics:
        return
    from metrics.registry import MetricError, append_jsonl, compute, context_from_paths

    nets = {"lres": snapshot} if cfg.stage == "lres" else {"sres": snapshot}
    for name in cfg.metrics:
        try:
            result = compute(name, context_from_paths(cfg.data, device=device, **nets))
        except (MetricError, FileNotFoundError, ValueError) as e:
            echo(f"warning: metric {name} at step {step} failed: {e}")
            continue
        result.details["step"] = step
        result.details["snapshot"] = str(snapshot)
        append_jsonl(Path(cfg.outdir) / f"metric-{name}.jsonl", result)
        echo(f"metric {name} at step {step}: {result.results}")


def _save_training_state(
    gan, outdir: Path, cfg: TrainConfig, step: int, position: int, gen, rank: int
) -> Path:
    rngs = [rng_state(gen)]
    if distributed.is_initialized():
        rngs = [None] * distributed.world_size()
        torch.distributed.all_gather_object(rngs, rng_state(gen))
    path = state_path(outdir, step)
    if rank == 0:
        state = {
            "step": step,
            "data_position": position,
            "modules": {k: m.state_dict() for k, m in gan.modules().items()},
            "networks": {k: networks.network_record(m) for k, m in gan.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in gan.optimizers().items()},
            "extra": gan.extra_state(),
            "rng": rngs,
        }
        save_state(path, state, cfg.keep_states)
    distributed.barrier()
    return path


def _write_samples(
    gan, sample_noise, log: RunLog, outdir: Path, cfg: TrainConfig, step: int, rank: int
) -> None:
    if rank != 0:
        return
    from torch_utils.frames import write_mp4

    videos = gan.sample(sample_noise)
    grid = video_grid(videos)
    (outdir / "samples").mkdir(exist_ok=True)
    write_mp4(outdir / "samples" / f"fake-{step:08d}.mp4", grid, fps=30)
    picks = np.linspace(0, grid.shape[0] - 1, num=min(8, grid.shape[0])).astype(int)
    log.images("samples/frames", torch.from_numpy(grid[picks]).permute(0, 3, 1, 2), step)


def _latest_snapshot(outdir: Path) -> Path | None:
    snaps = sorted((outdir / "snapshots").glob("*.safetensors"))
    return snaps[-1] if snaps else None
