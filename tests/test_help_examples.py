"""The `--help` examples of the five CLIs work as written (docs/architecture.md).

Every example command line is collected from the help pages of lvg-dataset, lvg-convert,
lvg-generate, lvg-train and lvg-metrics (and their subcommands). Each one is either run, in
order in one temp dir (footage -> dataset -> train -> generate -> metrics), or listed in
`NOT_RUN` with the reason; an example that is neither fails the test. Runs may shrink the
work with `shrink` (fewer videos, frames, steps: options each command documents), and every
example, run or not, must parse exactly as written.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from datasets.cli import main as dataset_main
from generation.cli import main as generate_main
from metrics.cli import main as metrics_main
from networks.cli import main as convert_main
from torch_utils.frames import write_mp4
from training.cli import main as train_main

# In the order the examples run: each of the first three makes the input of the next.
CLIS: dict[str, click.Command] = {
    "lvg-dataset": dataset_main,
    "lvg-train": train_main,
    "lvg-generate": generate_main,
    "lvg-metrics": metrics_main,
    "lvg-convert": convert_main,
}

# Placeholders of the examples, and what stands in for them here.
PLACEHOLDERS = {"K": "0"}

# Examples that cannot run on a CPU without downloads, and why.
_ORIGINAL = "needs a released checkpoint of the original project (a download)"
_I3D = "FVD of 2048 clips through I3D: GPU-sized (tests/test_metrics.py runs FVD at tiny size)"
_LPIPS = "needs the LPIPS network weights (a download)"
NOT_RUN: dict[str, str] = {
    "lvg-convert official horseback_lres.pkl --out horseback_lres.safetensors": _ORIGINAL,
    "lvg-convert official ckpt-00100000-train.pkl --out D.safetensors --net D": _ORIGINAL,
    "lvg-convert info ckpt-00100000-train.pkl": _ORIGINAL,
    "lvg-generate --lres horseback_lres.pkl --sres horseback_sres.pkl --seed 7 --frames 301 "
    "--save-lres -i 0 -i 300 --out horse.mp4": _ORIGINAL,
    "lvg-train lres --data data/mine --outdir runs/lres-mine --preset paper "
    "--init horseback_lres.pkl": _ORIGINAL,
    "torchrun --standalone --nproc_per_node 8 $(which lvg-train) lres --data data/horseback "
    "--outdir runs/lres": "8 GPUs (tests/test_training.py runs torchrun with 2 CPU processes)",
    "torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --rdzv_backend c10d "
    "--rdzv_endpoint HOST:29500 $(which lvg-train) lres --data data/horseback "
    "--outdir runs/lres": "two nodes of 8 GPUs",
    "lvg-metrics calc --metric fvd2048_128f --data ~/data/horses --lres lres.safetensors": _I3D,
    "lvg-metrics calc -m fvd2048_16f -m fvd2048_128f --data ~/data/horses "
    "--lres lres.safetensors --sres sres.safetensors": _I3D,
    "lvg-metrics calc -m fvd2048_16f --data ~/data/horses --videos ~/samples/ --res 144x256": _I3D,
    "lvg-metrics calc -m fvd256_16f --data ~/real_mp4s/ --videos ~/fake_mp4s/": _I3D,
    "lvg-metrics calc -m colorsim1000_128f --data ~/data/horses --lres lres.safetensors "
    "--outdir runs/eval": "1000 videos of 128 frames: GPU-sized (tests/test_metrics.py)",
    "lvg-metrics calc -m fvd2048_16f --data ~/data/synth --lres runs/00001/lres.safetensors": _I3D,
    "lvg-metrics calc -m fvd256_16f -m fvd256_128f_subsample8f --data ~/data/synth "
    "--videos ~/data/synth-seed1 --res 36x64 --num-runs 3": _I3D,
    "lvg-metrics calc -m lpips_curve64_64f -m lpips_flicker64_16f_vgg --data ~/data/synth "
    "--lres lres.safetensors --outdir runs/eval": _LPIPS,
}

_RAY = "needs a running Ray cluster (tests/test_ray.py runs both commands on a local one)"
NOT_RUN["lvg-dataset curate ~/footage --out ~/footage.json --ray auto"] = _RAY
NOT_RUN["lvg-dataset from-videos ~/footage --outdir ~/data/horses --res 36x64 --ray auto"] = _RAY

# Before these runs, the dataset folder they write is removed (the writers refuse to overwrite
# shards, and several examples write the same folder).
FRESH_OUTDIR = ("lvg-dataset from-videos", "lvg-dataset from-frames", "lvg-dataset synthetic")


def help_pages(prog: str, command: click.Command, parent: click.Context | None = None) -> list[str]:
    """The --help text of `command` and of every subcommand below it."""
    # Contexts as click makes them (the command's own settings, subcommands under their group's
    # context): click caches a command's help option the first time a context asks for it, so a
    # bare Context here would drop -h for every later test in the process.
    ctx = click.Context(command, info_name=prog, parent=parent, **(command.context_settings or {}))
    pages = [command.get_help(ctx)]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            pages += help_pages(f"{prog} {name}", command.get_command(ctx, name), ctx)
    return pages


def collect_examples() -> list[str]:
    """Every example command line of the five CLIs' help pages, continuation lines joined, in
    order of appearance (each once)."""
    examples: list[str] = []
    for prog, command in CLIS.items():
        for page in help_pages(prog, command):
            lines = iter(page.splitlines())
            for line in lines:
                line = line.strip()
                while line.endswith("\\"):
                    line = line[:-1].rstrip() + " " + next(lines).strip()
                if line.split(" ")[0] in (*CLIS, "torchrun"):
                    line = line.split("   #")[0].strip()  # a trailing comment
                    if line not in examples:
                        examples.append(line)
    return examples


def lvg_args(example: str, home: Path) -> tuple[str, list[str]]:
    """(program, arguments) of an example as a shell would pass them: `~` expanded, the
    placeholders filled in; a torchrun line gives the command it starts."""
    words = shlex.split(example)
    if words[0] == "torchrun":
        words = words[words.index("$(which") + 1 :]
        words[0] = words[0].rstrip(")")
    words = [PLACEHOLDERS.get(w, w) for w in words]
    words = [str(home) + w[1:] if w.startswith("~/") else w for w in words]
    return words[0], words[1:]


def parse(command: click.Command, prog: str, args: list[str]) -> None:
    """Parse `args` as `command` would (types, ranges, required options, callbacks), without
    running it."""
    ctx = command.make_context(prog, list(args))
    if isinstance(command, click.Group):
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"{prog} has no command {args[0]}"
        sub.make_context(args[0], list(args[1:]), parent=ctx)


def shrink(prog: str, args: list[str]) -> list[str]:
    """`args` of a run made small with options the command documents: fewer videos, frames,
    steps and seeds, and --quiet. An option given is replaced, one not given is added."""
    args = list(args)

    def put(flag: str, value: str | None = None) -> None:
        if flag not in args:
            args.extend([flag] if value is None else [flag, value])
        elif value is not None:
            args[args.index(flag) + 1] = value

    if prog == "lvg-dataset" and args[0] == "synthetic":
        put("--videos", "2")
        put("--frames", "40")
    if prog == "lvg-dataset" and args[0] != "info":
        put("--quiet")
    if prog == "lvg-train":
        put("--steps", "1")
        put("--batch", "1")
        put("--quiet")
    if prog == "lvg-generate":
        put("--quiet")
        if "--seconds" in args:
            put("--seconds", "0.2")
        else:
            put("--frames", "6")
        if "--at" in args:
            put("--at", "2")
            put("--over", "2")
        if "-" in args[args.index("--seed") + 1]:  # a range of seeds: two of them
            put("--seed", "0-1")
    return args


def make_inputs(home: Path) -> None:
    """What the examples take from the user: a folder of footage (one 8.5 s shot, longer than
    the trims of 2 + 5 s) and a folder of frame images (~/frames/ride_01/0001.png, ...)."""
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)
    base = np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))
    (home / "footage").mkdir(parents=True)
    write_mp4(home / "footage" / "ride.mp4", (np.roll(base, t, axis=1) for t in range(255)))
    from PIL import Image

    for clip in ("ride_01", "ride_02"):
        (home / "frames" / clip).mkdir(parents=True)
        for t in range(4):
            Image.fromarray(np.roll(base, 3 * t, axis=0)).save(
                home / "frames" / clip / f"{t:04d}.png"
            )


def test_help_examples_run_as_written(tmp_path, monkeypatch):
    home = tmp_path / "home"
    make_inputs(home)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LVG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    examples = collect_examples()
    assert len(examples) > 20, examples  # the collector finds the help pages' examples
    unknown = [e for e in NOT_RUN if e not in examples]
    assert not unknown, f"NOT_RUN lists examples that no --help shows any more: {unknown}"

    ran = []
    for example in examples:
        prog, args = lvg_args(example, home)
        parse(CLIS[prog], prog, args)  # exactly as written
        if example in NOT_RUN:
            continue
        if example.startswith(FRESH_OUTDIR):
            shutil.rmtree(args[args.index("--outdir") + 1], ignore_errors=True)
        if "--lres lres.safetensors" in example and not Path("lres.safetensors").exists():
            snapshots = sorted(Path("runs/lres-tiny/snapshots").glob("*.safetensors"))
            assert snapshots, "the lvg-train example writes the lres.safetensors used here"
            shutil.copy(snapshots[-1], "lres.safetensors")
        result = CliRunner().invoke(CLIS[prog], shrink(prog, args))
        assert result.exit_code == 0, f"{example}\n{result.output}{result.exception!r}"
        ran.append(example)
    assert Path("clips-seed1.mp4").is_file() and Path("grid.mp4").is_file()
    assert (home / "data" / "synth" / "0144x0256").is_dir()
    assert len(ran) >= 20, ran


def test_the_parse_check_refuses_a_wrong_example_and_fills_placeholders(tmp_path):
    prog, args = lvg_args("lvg-train lres --data d --outdir o --batch 0", tmp_path)
    with pytest.raises(click.BadParameter) as error:
        parse(CLIS[prog], prog, args)
    assert "'--batch': 0 is not in the range x>=1" in error.value.format_message()
    prog, args = lvg_args(
        "lvg-dataset from-videos ~/x --outdir ~/y --res 36x64 --partition K", tmp_path
    )
    parse(CLIS[prog], prog, args)  # K is a placeholder filled in by the test
    assert args[-1] == "0" and args[0] == "from-videos" and args[1] == str(tmp_path / "x")
