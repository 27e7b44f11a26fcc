"""One vocabulary across the five CLIs (issue 16, point 5): -h everywhere, --out FILE and
--outdir DIR for outputs, --res HxW for sizes, --frames per video, and the same names for seed,
device, precision and quiet mode; the old spellings still work, with a note on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from recipe import original_lres_names, original_object, write_original_pickle
from safetensors.torch import load_file

import datasets.cli
import generation.cli
import metrics.cli
import networks.cli
import training.cli
from datasets.synthetic import render_video
from networks.lres_generator import LowResGenerator
from networks.presets import PRESETS
from torch_utils.cli import FRAMES_HELP, parse_res_option
from torch_utils.frames import write_mp4

TOOLS = {
    "lvg-dataset": datasets.cli.main,
    "lvg-convert": networks.cli.main,
    "lvg-generate": generation.cli.main,
    "lvg-train": training.cli.main,
    "lvg-metrics": metrics.cli.main,
}


def commands() -> dict[str, click.Command]:
    """Every command line prefix: the five tools and each subcommand ("lvg-dataset synthetic")."""
    found = {}
    for name, tool in TOOLS.items():
        found[name] = tool
        if isinstance(tool, click.Group):
            for sub, command in tool.commands.items():
                found[f"{name} {sub}"] = command
    return found


COMMANDS = commands()


def command(line: str) -> click.Command:
    return COMMANDS[line]


def options(line: str, hidden: bool = False) -> dict[str, click.Option]:
    """The (visible, unless `hidden`) options of a command, by flag."""
    found = {}
    for param in command(line).params:
        if isinstance(param, click.Option) and (hidden or not param.hidden):
            for flag in param.opts + param.secondary_opts:
                found[flag] = param
    return found


def invoke(line: str, *args):
    tool, *sub = line.split()
    return CliRunner().invoke(TOOLS[tool], [*sub, *(str(a) for a in args)], prog_name=tool)


# ---------------------------------------------------------------------------------------------------
# -h and --help


def test_every_tool_and_subcommand_is_listed():
    assert set(COMMANDS) >= {
        "lvg-dataset from-videos", "lvg-dataset from-frames", "lvg-dataset synthetic",
        "lvg-dataset curate", "lvg-dataset info", "lvg-convert official", "lvg-convert info",
        "lvg-generate", "lvg-train lres", "lvg-train sres", "lvg-metrics calc",
        "lvg-metrics detector",
    }  # fmt: skip


@pytest.mark.parametrize("line", sorted(COMMANDS))
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(line, flag):
    result = invoke(line, flag)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: {line} "), result.output


def test_help_of_the_installed_scripts():
    """`-h` of the console scripts themselves (run side by side: each imports torch)."""
    bin_dir = Path(sys.executable).parent
    procs = {
        name: subprocess.Popen(
            [str(bin_dir / name), "-h"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name in TOOLS
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.startswith(f"Usage: {name} "), out


# ---------------------------------------------------------------------------------------------------
# Shared option names

EXPECTED = {
    "--out": ["lvg-dataset curate", "lvg-convert official", "lvg-generate", "lvg-metrics calc"],
    "--outdir": [
        "lvg-dataset from-videos", "lvg-dataset from-frames", "lvg-dataset synthetic",
        "lvg-train lres", "lvg-train sres", "lvg-metrics calc",
    ],
    "--res": [
        "lvg-dataset from-videos", "lvg-dataset from-frames", "lvg-dataset synthetic",
        "lvg-convert official", "lvg-metrics calc",
    ],
    "--frames": ["lvg-dataset synthetic", "lvg-generate"],
    "--seed": ["lvg-dataset synthetic", "lvg-generate", "lvg-train lres", "lvg-train sres",
               "lvg-metrics calc"],
    "--device": ["lvg-generate", "lvg-train lres", "lvg-train sres", "lvg-metrics calc"],
    "--precision": ["lvg-generate", "lvg-train lres", "lvg-train sres"],
    "--quiet": [
        "lvg-dataset from-videos", "lvg-dataset from-frames", "lvg-dataset synthetic",
        "lvg-dataset curate", "lvg-generate", "lvg-train lres", "lvg-train sres",
        "lvg-metrics calc",
    ],
}  # fmt: skip

# Spellings of these concepts that no command shows (old ones survive only as hidden aliases).
RETIRED = [
    "--path", "--dst", "--output", "--out-dir", "--output-dir", "--height", "--width", "--size",
    "--resolution", "--num-frames", "--length", "--random-seed", "--gpu", "--cuda", "--fp16",
    "--dtype", "--verbose", "--silent", "-q", "-v",
]  # fmt: skip


@pytest.mark.parametrize("flag", sorted(EXPECTED))
def test_shared_option_names(flag):
    for line in EXPECTED[flag]:
        assert flag in options(line), f"{line} has no {flag}"


def test_no_retired_spellings_are_shown():
    for line in COMMANDS:
        shown = set(options(line)) & set(RETIRED)
        assert not shown, f"{line} shows {shown}"


def test_every_size_is_parsed_the_same_way():
    for line in EXPECTED["--res"]:
        assert options(line)["--res"].callback is parse_res_option, line
    assert options("lvg-metrics calc")["--lr-res"].callback is parse_res_option


def test_frames_means_frames_of_each_video():
    for line in EXPECTED["--frames"]:
        assert options(line)["--frames"].help.startswith(FRAMES_HELP), line


# ---------------------------------------------------------------------------------------------------
# --res: the same parsing and errors in every tool

RES_ARGS = {  # enough for each command to parse; nothing runs (make_context only parses)
    "lvg-dataset from-videos": ["SRC", "--outdir", "DST"],
    "lvg-dataset from-frames": ["SRC", "--outdir", "DST"],
    "lvg-dataset synthetic": ["--outdir", "DST", "--videos", "1", "--frames", "1"],
    "lvg-convert official": ["SRC", "--out", "DST"],
    "lvg-metrics calc": ["--data", "DIR"],
}


@pytest.mark.parametrize("line", sorted(RES_ARGS))
@pytest.mark.parametrize("text", ["36x64", "0036x0064", " 36 X 64 "])
def test_res_parsing(line, text):
    ctx = command(line).make_context(line, [*RES_ARGS[line], "--res", text])
    assert ctx.params["res"] in [(36, 64), ((36, 64),)]  # lvg-dataset: --res is repeatable


@pytest.mark.parametrize("line", sorted(RES_ARGS))
@pytest.mark.parametrize(
    "text, message",
    [("36by64", "'36by64' is not HxW"), ("36x", "is not HxW"), ("0x64", "between 1 and 9999")],
)
def test_res_errors(line, text, message):
    result = invoke(line, *RES_ARGS[line], "--res", text)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: --res ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


# ---------------------------------------------------------------------------------------------------
# Old spellings: still accepted for one release, with a one-line note on stderr after success


def _note(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("note:")]


def test_dataset_positional_dst_is_deprecated(tmp_path):
    args = ["--videos", 1, "--frames", 2, "--res", "18x32", "--workers", 1]
    new = invoke("lvg-dataset synthetic", "--outdir", tmp_path / "new", *args)
    old = invoke("lvg-dataset synthetic", tmp_path / "old", *args)
    assert new.exit_code == 0 and old.exit_code == 0, old.output
    assert _note(new) == []
    assert _note(old) == ["note: DST as a positional argument is deprecated; use --outdir DST"]
    files = sorted(p.relative_to(tmp_path / "new") for p in (tmp_path / "new").rglob("*"))
    assert files == sorted(p.relative_to(tmp_path / "old") for p in (tmp_path / "old").rglob("*"))

    src = tmp_path / "frames" / "clip"
    src.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((18, 32, 3), 60 * i, np.uint8)).save(src / f"{i}.png")
    old = invoke("lvg-dataset from-frames", tmp_path / "frames", tmp_path / "f", "--res", "18x32")
    assert old.exit_code == 0 and (tmp_path / "f" / "0018x0032").is_dir(), old.output
    assert _note(old) == ["note: DST as a positional argument is deprecated; use --outdir DST"]

    both = invoke("lvg-dataset synthetic", tmp_path / "a", "--outdir", tmp_path / "b", *args)
    assert both.exit_code == 2 and "give --outdir only" in both.output
    neither = invoke("lvg-dataset synthetic", *args)
    assert neither.exit_code == 2 and "Missing option '--outdir'" in neither.output
    assert "DST" not in invoke("lvg-dataset synthetic", "-h").output.splitlines()[0]


def test_curate_positional_out_is_deprecated(tmp_path):
    (tmp_path / "src").mkdir()
    write_mp4(tmp_path / "src" / "v.mp4", render_video(1, 12, 36, 64)[0], fps=10)
    args = ["--workers", 1, "--motion", "framediff", "--min-seconds", 0.1]
    new = invoke("lvg-dataset curate", tmp_path / "src", "--out", tmp_path / "new.json", *args)
    old = invoke("lvg-dataset curate", tmp_path / "src", tmp_path / "old.json", *args)
    assert new.exit_code == 0 and old.exit_code == 0, old.output
    assert (tmp_path / "new.json").is_file() and (tmp_path / "old.json").is_file()
    assert _note(new) == []
    assert _note(old) == ["note: OUT as a positional argument is deprecated; use --out OUT"]
    # A failing run with the old spelling still fails in one line (the note needs success).
    failed = invoke("lvg-dataset curate", tmp_path / "missing", tmp_path / "m.json")
    assert failed.exit_code == 1 and len(failed.output.strip().splitlines()) == 1


def _same_tensors(a: Path, b: Path) -> bool:
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_convert_positional_dst_and_height_width_are_deprecated(tmp_path):
    G = LowResGenerator(PRESETS["tiny"].lres_generator)
    src = tmp_path / "g.pkl"
    write_original_pickle(src, original_object(original_lres_names(G), "VideoGenerator"))
    new = invoke("lvg-convert official", src, "--out", tmp_path / "new.safetensors")
    old = invoke("lvg-convert official", src, tmp_path / "old.safetensors")
    assert new.exit_code == 0 and old.exit_code == 0, old.output
    assert _note(new) == []
    assert _note(old) == ["note: DST as a positional argument is deprecated; use --out DST"]
    assert _same_tensors(tmp_path / "new.safetensors", tmp_path / "old.safetensors")

    res = invoke("lvg-convert official", src, "--out", tmp_path / "r.safetensors", "--res", "36x64")
    hw = invoke(
        "lvg-convert official", src, "--out", tmp_path / "hw.safetensors",
        "--height", 36, "--width", 64,
    )  # fmt: skip
    assert res.exit_code == 0 and hw.exit_code == 0, hw.output
    assert _note(res) == []
    assert _note(hw) == ["note: --height/--width are deprecated; use --res HxW"]
    assert _same_tensors(tmp_path / "r.safetensors", tmp_path / "hw.safetensors")
    help_text = invoke("lvg-convert official", "-h").output
    assert "--res" in help_text and "--height" not in help_text and "--width" not in help_text


def test_metrics_path_is_deprecated(tmp_path, monkeypatch):
    """`--path FILE` is `--out FILE` (the JSONL of results), with a note; nothing is computed."""
    written = []
    monkeypatch.setattr(metrics.cli, "_check_metrics", lambda *args: None)
    monkeypatch.setattr(metrics.cli.registry, "context_from_paths", lambda *a, **k: None)
    monkeypatch.setattr(metrics.cli, "_note_unknown_weights", lambda *args: None)
    monkeypatch.setattr(
        metrics.cli, "_compute_all", lambda names, ctx, jsonl: written.append(jsonl)
    )
    base = ["--data", tmp_path, "-m", "colorsim4_16f"]
    new = invoke("lvg-metrics calc", *base, "--out", tmp_path / "a.jsonl")
    old = invoke("lvg-metrics calc", *base, "--path", tmp_path / "b.jsonl")
    default = invoke("lvg-metrics calc", *base, "--outdir", tmp_path / "eval")
    assert new.exit_code == old.exit_code == default.exit_code == 0, old.output
    assert written == [tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "eval/metrics.jsonl"]
    assert _note(new) == [] and _note(default) == []
    assert _note(old) == ["note: --path is deprecated; use --out FILE"]
    both = invoke("lvg-metrics calc", *base, "--out", tmp_path / "a", "--path", tmp_path / "b")
    assert both.exit_code == 2 and "give --out only" in both.output
    assert "--path" not in invoke("lvg-metrics calc", "-h").output


def test_quiet_drops_the_progress_bars(tmp_path):
    args = ["synthetic", "--videos", "1", "--frames", "4", "--res", "18x32"]
    loud = CliRunner().invoke(datasets.cli.main, [*args, "--outdir", str(tmp_path / "a")])
    quiet = CliRunner().invoke(
        datasets.cli.main, [*args, "--outdir", str(tmp_path / "b"), "--quiet"]
    )
    assert loud.exit_code == quiet.exit_code == 0, (loud.output, quiet.output)
    assert "video/s" in loud.stderr and "video/s" not in quiet.stderr
    assert "1 videos written" in quiet.output  # the summary is still printed


def test_train_quiet_drops_the_tick_lines(synth, tmp_path):
    from training.cli import main as train_main

    args = ["lres", "--data", str(synth), "--preset", "tiny", "--batch", "2", "--steps", "1"]
    args += ["--tick", "1", "--device", "cpu", "--workers", "0"]
    loud = CliRunner().invoke(train_main, [*args, "--outdir", str(tmp_path / "a")])
    quiet = CliRunner().invoke(train_main, [*args, "--outdir", str(tmp_path / "b"), "--quiet"])
    assert loud.exit_code == quiet.exit_code == 0, (loud.output, quiet.output)
    assert "step 1 | tick 1" in loud.output and "tick 1" not in quiet.output
    assert "done; newest snapshot" in quiet.output
    assert (tmp_path / "b" / "stats.jsonl").read_text().count("\n") == 1  # still logged
