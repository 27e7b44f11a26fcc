"""`lvg-train`: train the low-resolution stage or the super-resolution stage (docs/training.md)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from torch_utils import distributed
from torch_utils.cli import CONTEXT_SETTINGS, flags_in, interrupt_on_sigterm, is_quiet, quiet_option
from torch_utils.misc import COMPILE_CHOICES, choose_device
from training.config import MAX_SEED, TRAIN_PRECISIONS, TRAIN_PRESETS, resolve

EXAMPLES = """
\b
Examples:
  # Smoke test on a CPU with the synthetic benchmark:
  lvg-dataset synthetic --outdir data/synth --videos 16 --frames 160 \\
      --res 18x32 --res 36x64 --res 72x128
  lvg-train lres --data data/synth --outdir runs/lres-tiny --preset tiny
  lvg-train sres --data data/synth --outdir runs/sres-tiny --preset tiny
\b
  # Fine-tune the original horseback model on your footage (D starts fresh):
  lvg-train lres --data data/mine --outdir runs/lres-mine --preset paper --init horseback_lres.pkl
\b
  # The paper's recipe on 8 GPUs (resume: run the same command again):
  torchrun --standalone --nproc_per_node 8 $(which lvg-train) lres --data data/horseback --outdir runs/lres
\b
  # Two nodes of 8 GPUs (run on each node; node_rank 0 and 1):
  torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --rdzv_backend c10d \\
      --rdzv_endpoint HOST:29500 $(which lvg-train) lres --data data/horseback --outdir runs/lres
"""


@click.group(epilog=EXAMPLES, context_settings=CONTEXT_SETTINGS)
def main():
    """Train LongVideoGAN: `lres` on long low-resolution clips, `sres` on short high-resolution
    clips. Presets carry the paper's settings; options override them."""
    interrupt_on_sigterm()


class FiniteFloat(click.FloatRange):
    """A float in a range that is also finite: `nan` and `inf` are refused (a range alone lets
    `nan` through, since no comparison with it is true)."""

    name = "float"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = FiniteFloat(min=0)
PROBABILITY = FiniteFloat(min=0, max=1)
RATE = FiniteFloat(min=0, min_open=True)

# The options of both stages, in --help order (click.option decorators make a new Option each
# time they are applied, so the list serves both commands).
COMMON_OPTIONS = [
    click.option(
        "--data",
        required=True,
        type=click.Path(path_type=Path),
        help="Dataset folder (holding HHHHxWWWW/ shard folders).",
    ),
    click.option(
        "--outdir",
        required=True,
        type=click.Path(path_type=Path),
        help="Run folder; re-running the same command resumes.",
    ),
    click.option(
        "--preset",
        type=click.Choice(list(TRAIN_PRESETS["lres"])),
        help="Named configuration: paper, small (both sized for GPUs), tiny or demo (CPU-sized). "
        "Default: paper on a GPU; on a CPU give it.",
    ),
    click.option(
        "--batch", type=POSITIVE, help="Total batch over all processes and accumulation rounds."
    ),
    click.option("--grad-accum", type=POSITIVE, help="Gradient accumulation rounds per step."),
    click.option("--gamma", type=NON_NEGATIVE, help="R1 regularisation weight."),
    click.option("--steps", "total_steps", type=POSITIVE, help="Total training steps."),
    click.option("--g-lr", type=RATE, help="Generator learning rate."),
    click.option(
        "--d-lr",
        type=RATE,
        help="Discriminator learning rate (before the lazy-R1 correction).",
    ),
    click.option(
        "--seed",
        type=click.IntRange(0, MAX_SEED),
        help="Random seed (per-process seeds derive from it).",
    ),
    click.option("--device", help="cpu, cuda, cuda:1, ... (default: CUDA if available)."),
    click.option(
        "--precision",
        type=click.Choice(TRAIN_PRECISIONS),
        help="auto (the original's: the SR networks' float16 layers on CUDA, else float32), "
        "float32, mixed (those layers in float16 on CUDA, bfloat16 on CPUs), or bfloat16/float16 "
        "autocast of every layer.",
    ),
    click.option(
        "--compile",
        type=click.Choice(COMPILE_CHOICES),
        help="torch.compile the networks of the G and D steps; auto: off on CPUs (measured "
        "slower there) and, until measured, on GPUs.",
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=0),
        help="DataLoader worker processes per GPU/process.",
    ),
    click.option(
        "--tick", "steps_per_tick", type=POSITIVE, help="Steps per tick (status line, stats)."
    ),
    click.option("--snapshot-ticks", type=POSITIVE, help="Ticks between G_ema snapshots."),
    click.option("--state-ticks", type=POSITIVE, help="Ticks between resumable training states."),
    click.option("--sample-ticks", type=POSITIVE, help="Ticks between sample videos."),
    click.option(
        "--metric",
        "metrics",
        multiple=True,
        help="Metric to compute at each snapshot (repeatable), e.g. fvd2048_128f.",
    ),
    click.option(
        "--resume",
        type=click.Path(exists=True, path_type=Path),
        help="Resume from this state instead of the newest in --outdir.",
    ),
    click.option(
        "--init",
        type=click.Path(path_type=Path),
        help="Fine-tune: start from the networks in this file (an original G_ema or "
        "training pickle, a snapshot or a training state); optimisers start fresh.",
    ),
    quiet_option,
]


def common_options(fn):
    """`fn` with the `COMMON_OPTIONS` (the first listed first in --help)."""
    for option in reversed(COMMON_OPTIONS):
        fn = option(fn)
    return fn


LRES_OPTIONS = [
    click.option(
        "--augment",
        "diffaugment",
        help="DiffAugment policy of the D's inputs: any of color,translation,cutout, or none.",
    ),
    click.option(
        "--time-stretch",
        type=NON_NEGATIVE,
        help="Strength s of the D's time-stretch augmentation 2^U(-s,s); 0 turns it off.",
    ),
]


SRES_OPTIONS = [
    click.option(
        "--lr-cond-prob",
        type=PROBABILITY,
        help="Probability that the D sees the low-res conditioning of a clip (paper: 0.1).",
    ),
    click.option(
        "--in-augment-p",
        type=PROBABILITY,
        help="Probability multiplier of the low-res in-augmentation (paper: 0.5; 0 = off).",
    ),
]


def default_preset(device: str | None) -> str:
    """`--preset` when none is given (docs/training.md#start-up): `paper` on a GPU; on a CPU
    an error naming both choices, rather than silently starting a GPU-sized run."""
    if choose_device(device).type == "cuda":
        return "paper"
    raise click.ClickException(
        "no --preset given and no GPU in use: the default paper preset is sized for GPUs; "
        "give --preset tiny for a CPU smoke test (or --preset paper to run it here anyway)"
    )


def _run(stage: str, resume: Path | None, **options) -> None:
    from training.loop import TrainingError, train

    options["metrics"] = tuple(options.get("metrics") or ()) or None
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
    try:
        if options["preset"] is None:
            options["preset"] = default_preset(options["device"])
        cfg = resolve(stage, **options)
        snapshot = train(
            cfg,
            resume=resume,
            echo=click.echo if distributed.rank() == 0 else (lambda s: None),
            progress=not is_quiet(),
        )
    except (TrainingError, ValueError, FileNotFoundError) as e:
        raise click.ClickException(flags_in(str(e))) from None
    finally:
        distributed.shutdown()
    if distributed.rank() == 0 and snapshot is not None:
        click.echo(f"done; newest snapshot: {snapshot}")


def _command(stage: str, doc: str, extra_options=()):
    def command(resume, **options):
        _run(stage, resume, **options)

    for option in reversed(extra_options):
        command = option(command)
    return main.command(stage, help=doc, epilog=EXAMPLES)(common_options(command))


lres = _command(
    "lres",
    f"Train the low-resolution video generator (presets: {', '.join(TRAIN_PRESETS['lres'])}). "
    "Paper: 36x64, 128-frame clips, batch 64 (accumulated over 2 rounds), 100k steps.",
    LRES_OPTIONS,
)
sres = _command(
    "sres",
    f"Train the super-resolution network (presets: {', '.join(TRAIN_PRESETS['sres'])}). "
    "Paper: 36x64 -> 144x256, 4-frame clips with 4 context frames each side, batch 32, 275k steps.",
    SRES_OPTIONS,
)

if __name__ == "__main__":
    main()
