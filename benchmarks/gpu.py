"""Throughput and memory of the paper-size networks where users train: one GPU (issue #18).

    python benchmarks/gpu.py                       # CUDA, paper preset: the figures of README
    python benchmarks/gpu.py --device cpu --quick  # the same code at tiny size (~3 min on 2 cores)
    python benchmarks/gpu.py --device cpu --quick --no-compile  # what the test suite runs
    python benchmarks/gpu.py --train-compiled      # also training steps with compiled networks

Prints, for each generator, frames per second of inference in float32 and bfloat16 autocast,
eager and under `torch.compile` (with the compile time), then training steps per second of each
stage at the paper's per-GPU batch (the paper's total batch over its 8 GPUs), and the peak
memory of each measurement (GPU memory on CUDA, the process's peak RSS on the CPU). The
training config is the stage's `paper` preset (`tiny` with `--quick`); the real clips are random
tensors of the dataset's shape, so the figures are the networks' own, not the data loader's.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext

import torch

from networks.lres_generator import LowResGenerator
from networks.presets import get_preset
from networks.sres_generator import SuperResGenerator
from torch_utils.misc import disable_tf32
from training.config import resolve
from training.lres_gan import LowResGAN, lres_networks
from training.sres_gan import SuperResGAN, sres_networks

PAPER_GPUS = 8  # the paper's total batches are over 8 GPUs


@dataclasses.dataclass
class Row:
    what: str
    rate: float  # frames/s or steps/s
    unit: str
    peak_mb: float
    note: str = ""

    def __str__(self) -> str:
        rate = f"{self.rate:10.2f} {self.unit}" if self.rate == self.rate else "       n/a"
        return f"{self.what:<44} {rate:<16} peak {self.peak_mb:8.0f} MB  {self.note}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup=True) -> float:
    """Median seconds of `repeats` calls after one warm-up call (which also compiles); without
    the warm-up (`--quick` training steps, a smoke run) the first call's set-up counts too."""
    if warmup:
        fn()
        sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def autocast(device: torch.device, dtype: str):
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def generator_rows(args, device: torch.device) -> Iterator[Row]:
    """Inference throughput of both generators: eager and compiled, float32 and bfloat16."""
    preset = get_preset(args.preset)
    gen = torch.Generator(device="cpu").manual_seed(0)
    G = LowResGenerator(preset.lres_generator).to(device).eval().requires_grad_(False)
    S = SuperResGenerator(preset.sres_generator).to(device).eval().requires_grad_(False)
    n, frames = args.lres_batch, args.lres_frames
    noise = G.draw_noise(n, frames, gen).to(device)
    lr = torch.rand(n, 3, args.sres_frames + 2 * S.context, *S.lr_size, generator=gen) * 2 - 1
    lr, z = lr.to(device), torch.randn(n, S.z_dim, generator=gen).to(device)
    # (name, callable, inputs, frames per call, how a dtype is applied): the low-res generator
    # runs under autocast; the super-resolution network takes its own `precision` (its layers'
    # dtypes, docs/networks.md#data-types).
    cases = [
        ("low-res G", G.from_noise, (noise, frames), n * frames, "autocast"),
        ("super-res G", S, (lr, z), n * args.sres_frames, "precision"),
    ]
    for name, fn, inputs, count, how in cases:
        for compiled in (False, True):
            if compiled and args.no_compile:
                continue
            target = torch.compile(fn) if compiled else fn
            for dtype in ("float32", "bfloat16"):
                if compiled and args.quick and dtype != "float32":
                    continue  # --quick: one compile per network (minutes each on a CPU)
                label = f"{name} {'compiled' if compiled else 'eager'} {dtype}"
                kwargs = {"precision": dtype} if how == "precision" else {}
                context = (
                    (lambda d=dtype: autocast(device, d)) if how == "autocast" else nullcontext
                )

                def call(t=target, i=inputs, k=kwargs, c=context):
                    with torch.no_grad(), c():
                        return t(*i, **k)

                reset_peak(device)
                note = ""
                try:
                    t0 = time.perf_counter()
                    call()  # the first call compiles
                    sync(device)
                    if compiled:
                        note = f"(compile {time.perf_counter() - t0:.0f} s)"
                    seconds = timed(call, device, args.repeats)
                    yield Row(label, count / seconds, "frames/s", peak_mb(device), note)
                except Exception as e:  # a compile failure is a figure too: say why
                    reason = str(e).strip().splitlines()[0][:90] if str(e).strip() else ""
                    yield Row(label, float("nan"), "", peak_mb(device), f"failed: {reason}")
            torch._dynamo.reset()


def real_batches(shape: tuple[int, ...], device: torch.device) -> Iterator[torch.Tensor]:
    gen = torch.Generator(device="cpu").manual_seed(1)
    while True:
        yield (torch.rand(shape, generator=gen) * 2 - 1).to(device, non_blocking=True)


def training_rows(args, device: torch.device) -> Iterator[Row]:
    """Training steps/s of each stage at the paper's per-GPU batch: eager, and with
    `--train-compiled` also with the steps' networks compiled (`GAN.compile_networks`, float32:
    compiling both stages' forward and backward passes takes minutes)."""
    preset = get_preset(args.preset)
    gen = torch.Generator(device=device).manual_seed(0)
    for stage in ("lres", "sres"):
        base = resolve(stage, args.train_preset)
        batch = max(1, base.batch // PAPER_GPUS) if args.train_preset == "paper" else base.batch
        cfg = base.replace(batch=batch, grad_accum=min(base.grad_accum, batch))
        if args.quick:  # the smallest step that still runs every part (G, D, R1, EMA)
            cfg = cfg.replace(batch=1, grad_accum=1, seq_length=min(cfg.seq_length, 8))
            batch = 1
        modes = [("float32", False), ("bfloat16", False)]
        if stage == "sres" and device.type == "cuda":
            modes.append(("mixed", False))  # the original's float16 layers (`--precision auto`)
        if args.train_compiled and not args.no_compile:
            modes.append(("float32", True))
        for dtype, compiled in modes:
            cfg = cfg.replace(precision=dtype)
            reset_peak(device)
            if stage == "lres":
                G, D = (net.to(device) for net in lres_networks(cfg, preset))
                gan = LowResGAN(cfg, G, D, device, gen)
                data = real_batches((batch, 3, cfg.seq_length, *G.size), device)
            else:
                G, D = (net.to(device) for net in sres_networks(cfg, preset))
                gan = SuperResGAN(cfg, G, D, device, gen, dataset=None)
                frames = cfg.seq_length + 2 * G.context
                lrs = real_batches((batch, 3, frames, *G.lr_size), device)
                hrs = real_batches((batch, 3, frames, *G.hr_size), device)
                data = zip(lrs, hrs)
            if compiled:
                gan.compile_networks()
            step = iter(range(1, 10**9))  # steps > 0: R1 every r1_interval steps, as in a run
            seconds = timed(
                lambda g=gan, d=data: g.train_step(next(step), d),
                device,
                args.train_steps,
                warmup=compiled or not args.quick,
            )
            label = f"{stage} training step {dtype} (batch {batch}, accum {cfg.grad_accum})"
            yield Row(
                label, 1 / seconds, "steps/s", peak_mb(device), "compiled" if compiled else "eager"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny networks (CPU smoke run)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled rows")
    parser.add_argument(
        "--train-compiled",
        action="store_true",
        help="also time training steps with the networks compiled (several minutes more)",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but this machine has no CUDA GPU; use --device cpu --quick")
    quick = args.quick
    args.preset = args.train_preset = "tiny" if quick else "paper"
    args.lres_batch, args.lres_frames = (1, 16) if quick else (8, 128)
    args.sres_frames = 4 if quick else 16
    args.repeats, args.train_steps = (1, 1) if quick else (5, 5)
    if device.type == "cuda":
        disable_tf32()  # as lvg-train does on CUDA (docs/training.md#precision-on-gpus)
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    print(f"# {name}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"preset {args.preset}, python {sys.version.split()[0]}")  # fmt: skip
    start = time.perf_counter()
    for rows in (generator_rows(args, device), training_rows(args, device)):
        for row in rows:
            print(row, flush=True)
    print(f"# total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
