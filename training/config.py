"""Training configurations: named presets that the command line only overrides (docs/training.md).

A run's resolved configuration is written to `<outdir>/config.json`; re-running the same
command resumes the run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from torch_utils.misc import COMPILE_CHOICES
from training.augment import parse_policy

# Precisions of a training step (docs/training.md#mixed-precision): "auto" is the original's
# ("mixed" for the SR stage on CUDA, else float32); "mixed" runs the SR networks' original
# half-precision layers; bfloat16 / float16 autocast all layers.
TRAIN_PRECISIONS = ("auto", "float32", "mixed", "bfloat16", "float16")
# Seeds torch.Generator takes, with room for the per-process seeds `seed * processes + rank`.
MAX_SEED = 2**63 - 1
# Presets sized for GPUs: on a CPU a step takes minutes (docs/training.md#start-up).
GPU_SIZED_PRESETS = ("paper", "small")


@dataclass(frozen=True)
class TrainConfig:
    stage: str = "lres"  # "lres" or "sres"
    preset: str = "paper"  # the network preset (networks.presets)
    data: str = ""
    outdir: str = ""
    init: str = ""  # fine-tune from the networks in this file (docs/fine-tuning.md); "" = fresh

    # Optimisation (docs/training.md#hyper-parameters).
    batch: int = 64  # total over all processes and accumulation rounds
    grad_accum: int = 2
    total_steps: int = 100_000
    g_lr: float = 0.003
    d_lr: float = 0.002  # before the lazy-regularisation correction r1_interval/(r1_interval+1)
    beta1: float = 0.0
    beta2: float = 0.99
    gamma: float = 1.0  # R1 weight
    r1_interval: int = 16
    ema_beta: float = 0.99985
    ema_rampup_steps: int = 25_000
    magnitude_ema_beta: float = 0.999

    # Data and augmentation.
    seq_length: int = 128  # frames seen by the discriminator
    time_margin: int = 32  # extra generated frames; a random window of seq_length is kept
    x_flip: bool = True
    diffaugment: str = "color,translation,cutout"
    time_stretch: float = 1.0
    # Super-resolution stage (docs/training.md#sr-step).
    lr_cond_prob: float = 0.1
    # Probability multiplier of the SR stage's fixed LR in-augmentation; 0 turns it off (paper 0.5).
    in_augment_p: float = 0.5
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_speed: float = 0.000125  # change of p per step (applied every ada_interval steps)
    ada_max_p: float = 0.5

    # Book-keeping (docs/training.md#run-folder): ticks of 500 steps, snapshots every 5k.
    steps_per_tick: int = 500
    snapshot_ticks: int = 10
    state_ticks: int = 10
    sample_ticks: int = 10
    keep_states: int = 3
    sample_frames: int = 256
    sample_videos: int = 4
    nan_patience: int = 20  # consecutive non-finite losses before stopping
    metrics: tuple[str, ...] = ()

    # Execution.
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | float32 | mixed | bfloat16 | float16
    workers: int = 2
    compile: str = (
        "auto"  # auto | on | off: torch.compile the steps' networks (docs/training.md#compiling)
    )

    def __post_init__(self):
        if self.stage not in ("lres", "sres"):
            raise ValueError(f"stage must be 'lres' or 'sres', got {self.stage!r}")
        if self.precision not in TRAIN_PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(TRAIN_PRECISIONS)}, got {self.precision!r}"
            )
        if self.compile not in COMPILE_CHOICES:
            raise ValueError(f"compile must be auto, on or off, got {self.compile!r}")
        parse_policy(self.diffaugment)  # raises on an unknown op
        if not (math.isfinite(self.time_stretch) and self.time_stretch >= 0):
            raise ValueError(f"time_stretch must be >= 0, got {self.time_stretch}")
        if not 0 <= self.lr_cond_prob <= 1:
            raise ValueError(f"lr_cond_prob must be in [0, 1], got {self.lr_cond_prob}")
        if not 0 <= self.in_augment_p <= 1:
            raise ValueError(f"in_augment_p must be in [0, 1], got {self.in_augment_p}")
        for name in (
            "batch",
            "grad_accum",
            "total_steps",
            "r1_interval",
            "steps_per_tick",
            "snapshot_ticks",
            "state_ticks",
            "sample_ticks",
            "keep_states",
            "seq_length",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"`workers` must be >= 0, got {self.workers}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"`seed` must be in [0, 2**63), got {self.seed}")
        for name, zero_ok in (("g_lr", False), ("d_lr", False), ("gamma", True)):
            value = getattr(self, name)
            if not (math.isfinite(value) and (value > 0 or (zero_ok and value == 0))):
                bound = ">= 0" if zero_ok else "> 0"
                raise ValueError(f"`{name}` must be a finite number {bound}, got {value}")

    def precision_on(self, device_type: str) -> str:
        """The step's precision on a device type, "auto" resolved (docs/training.md#mixed-precision):
        the original trains the low-res stage in float32 and the SR networks' higher-resolution
        layers in float16 on CUDA ("mixed"); on CPUs "auto" is float32."""
        if self.precision != "auto":
            return self.precision
        return "mixed" if self.stage == "sres" and device_type == "cuda" else "float32"

    @property
    def d_lr_corrected(self) -> float:
        """D learning rate with the lazy-R1 correction c = k/(k+1) (StyleGAN2)."""
        return self.d_lr * self.r1_interval / (self.r1_interval + 1)

    @property
    def d_beta2_corrected(self) -> float:
        return self.beta2 ** (self.r1_interval / (self.r1_interval + 1))

    def ema_beta_at(self, step: int) -> float:
        """G_ema decay at `step` (docs/training.md#generator-ema): the half-life grows linearly
        until the ramp ends."""
        if self.ema_rampup_steps <= 0:
            return self.ema_beta
        exponent = math.log(self.ema_beta, 0.5) * (self.ema_rampup_steps + 1) / (step + 1)
        return min(0.5**exponent, self.ema_beta)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


# Presets: the paper's recipes and CPU-sized ones. Keys that are not given keep the defaults.
_LRES_PAPER = TrainConfig(stage="lres", preset="paper")
_SRES_PAPER = TrainConfig(
    stage="sres",
    preset="paper",
    batch=32,
    grad_accum=1,
    total_steps=275_000,
    d_lr=0.003,
    seq_length=4,
    time_margin=0,
)
# Book-keeping of the CPU-sized (tiny) runs: short ticks, frequent snapshots, no data workers.
_CPU_RUN = dict(
    total_steps=2_000,
    ema_rampup_steps=500,
    ema_beta=0.9925,  # half-life 92 steps: the paper's ratio to the ramp (4621 : 25k)
    steps_per_tick=50,
    snapshot_ticks=2,
    state_ticks=2,
    sample_ticks=4,
    workers=0,
)
TRAIN_PRESETS: dict[str, dict[str, TrainConfig]] = {
    "lres": {
        "paper": _LRES_PAPER,
        "small": _LRES_PAPER.replace(preset="small", batch=16, grad_accum=1, total_steps=50_000),
        "tiny": _LRES_PAPER.replace(
            preset="tiny",
            batch=4,
            grad_accum=1,
            seq_length=32,
            # Runs of a few hundred CPU steps, not 100k: twice the paper's rates, and no D
            # augmentation, which is there against D overfitting in long runs but in short ones
            # hides the layout and contrast a tiny D must learn first (benchmarks/learn_tiny.py:
            # with it, frames lose their spatial contrast; without it, they gain it).
            g_lr=0.006,
            d_lr=0.004,
            diffaugment="",
            time_stretch=0.0,
            sample_frames=64,
            sample_videos=2,
            **_CPU_RUN,
        ),
    },
    "sres": {
        "paper": _SRES_PAPER,
        "small": _SRES_PAPER.replace(preset="small", batch=8, total_steps=100_000),
        "tiny": _SRES_PAPER.replace(
            preset="tiny", batch=2, sample_frames=16, sample_videos=1, **_CPU_RUN
        ),
    },
}
# The shipped demo models (generation/demo/): the tiny recipes with the demo networks.
TRAIN_PRESETS["lres"]["demo"] = TRAIN_PRESETS["lres"]["tiny"].replace(
    preset="demo",
    seq_length=64,  # longer clips than tiny's: steadier over a long video
)
TRAIN_PRESETS["sres"]["demo"] = TRAIN_PRESETS["sres"]["tiny"].replace(preset="demo")


def resolve(stage: str, preset: str, **overrides) -> TrainConfig:
    """The preset of `stage` with the given (non-None) fields overridden."""
    try:
        base = TRAIN_PRESETS[stage][preset]
    except KeyError:
        raise ValueError(
            f"unknown {stage} preset {preset!r}; choose one of {', '.join(TRAIN_PRESETS[stage])}"
        ) from None
    return base.replace(**{k: v for k, v in overrides.items() if v is not None})
