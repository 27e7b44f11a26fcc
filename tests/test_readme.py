"""Every command in README.md runs, in order, at a tiny size (issue #8).

The README's bash and python blocks are parsed. Each shell command is rewritten by `SHRINK`:
fewer videos, frames, clips and steps; 2 CPU processes instead of 8 GPUs; one local node
instead of two. It then runs in bash, with HOME and the working directory set to a scratch
folder that holds small inputs named as in the README (footage, frames, checkpoints, an
original-format pickle, generated mp4s). Later commands use what earlier ones wrote, as they
would for a reader who follows the README. The set-up and test commands are not re-run here:
they must appear verbatim in `.ci/run`, which runs them on a clean checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from PIL import Image
from recipe import original_lres_names, original_object, write_original_pickle

from datasets.synthetic import render_video
from networks.lres_generator import LowResGenerator
from networks.presets import PRESETS
from torch_utils.frames import write_mp4

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# (pattern, replacement) applied in order to every shell command before it runs.
SHRINK = [
    (r"--seconds 20\b", "--seconds 0.5"),  # 15 frames
    (r"--seconds 10\b", "--seconds 0.4"),  # the others
    (r"--frames 1200\b", "--frames 96"),
    (r"--at 600 --over 120", "--at 32 --over 32"),
    (r"--frames (300|301)\b", "--frames 9"),
    (r"--videos 64 --frames 256", "--videos 2 --frames 40"),
    (r"--videos 16 --frames 160", "--videos 3 --frames 72"),
    (r"--min-seconds 5\b", "--min-seconds 1"),
    (r"--preset paper", "--preset demo"),
    (r"--nproc_per_node 8", "--nproc_per_node 2"),
    (r"--nnodes 2", "--nnodes 1"),
    (r"HOST:29500", "127.0.0.1:{port}"),
    (r"fvd2048_", "fvd6_"),
    (r"_128f", "_16f"),
    (r"colorsim64_", "colorsim4_"),
    (r"lpips_curve64_64f", "lpips_curve4_16f"),
    (r"--steps 200\b", "--steps 2"),  # lvg-project
]
TRAIN_EXTRA = " --steps 2 --tick 1 --batch 2 --device cpu --workers 0"


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.S | re.M)


def readme_commands() -> list[str]:
    """Shell commands of the README, in order: continuations joined, comments dropped."""
    commands = []
    for block in readme_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                commands.append(re.sub(r"\s+", " ", line))
    return commands


def shrink(command: str) -> str:
    for pattern, replacement in SHRINK:
        command = re.sub(pattern, replacement.format(port=_free_port()), command)
    if "lvg-train" in command:
        command += TRAIN_EXTRA + ("" if "--preset" in command else " --preset demo")
    return command


def frame_count(path: Path) -> tuple[int, int, int]:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return len(frames), *frames[0].shape[:2]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A working folder inside a home folder, with the README's inputs at tiny size."""
    home = tmp_path_factory.mktemp("home")
    work = home / "work"
    for folder in (work / "my_mp4s", home / "footage"):
        folder.mkdir(parents=True)
    for seed in (1, 2):  # footage with motion, 2 s each
        write_mp4(home / "footage" / f"clip{seed}.mp4", render_video(seed, 40, 72, 128)[0], fps=20)
    for seed in (3, 4):
        for i, frame in enumerate(render_video(seed, 36, 72, 128)[0]):
            (home / "frames" / f"take{seed}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(home / "frames" / f"take{seed}" / f"{i:04d}.png")
    for seed in (5, 6, 7, 8, 9, 10):  # "generated" videos for --videos
        write_mp4(work / "my_mp4s" / f"v{seed}.mp4", render_video(seed, 20, 36, 64)[0], fps=30)
    demo = ROOT / "generation" / "demo"
    shutil.copy(demo / "lres.safetensors", work / "lres.safetensors")
    shutil.copy(demo / "sres.safetensors", work / "sres.safetensors")
    G = LowResGenerator(PRESETS["tiny"].lres_generator)
    write_original_pickle(
        work / "horseback_lres.pkl", original_object(original_lres_names(G), "VideoGenerator")
    )
    return work


def test_setup_and_test_commands_are_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    ci = re.sub(r"python -m pip install -q", "pip install", ci)
    commands = readme_commands()
    setup = [c for c in commands if c.startswith("pip install") and "index-url" not in c]
    assert len(setup) == 2, setup
    for command in setup + ["python -m pytest -q"]:
        assert command in commands and command in ci, command
    assert "lvg-generate --seed 0 --seconds 20 --out demo.mp4" in commands  # the main command


def test_readme_commands_run(scratch):
    env = {
        **os.environ,
        "HOME": str(scratch.parent),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "LVG_CACHE_DIR": str(scratch / "cache"),
    }
    ran, seconds = [], {}
    for command in readme_commands():
        if command.startswith(("pip install", "python -m pytest")):
            continue  # checked against .ci/run above
        small = shrink(command)
        threads = {"OMP_NUM_THREADS": "1"} if small.startswith("torchrun") else {}
        start = time.perf_counter()
        proc = subprocess.run(
            ["bash", "-c", small],
            cwd=scratch,
            env={**env, **threads},
            capture_output=True,
            text=True,
            timeout=900,
        )
        seconds[small] = time.perf_counter() - start
        assert proc.returncode == 0, f"README command failed: {small}\n{proc.stdout}\n{proc.stderr}"
        ran.append(small)
    assert len(ran) >= 25, ran
    for command, t in sorted(seconds.items(), key=lambda item: -item[1])[:8]:
        print(f"{t:6.1f} s  {command}")  # shown with -s: where the test's time goes

    # The main command: a playable mp4 of the requested length (0.5 s at 30 fps), 256x144.
    assert frame_count(scratch / "demo.mp4") == (15, 144, 256)
    assert frame_count(scratch / "hr.mp4")[0] == 9 and (scratch / "hr-lres.mp4").exists()
    assert frame_count(scratch / "cross.mp4")[0] == 96
    assert (scratch / "horseback_lres.safetensors").exists()
    for run in ("lres-demo", "sres-demo", "lres-1gpu", "lres", "sres", "lres-2nodes"):
        assert list((scratch / "runs" / run / "snapshots").glob("*.safetensors")), run
    assert (scratch / "clips.html").exists() and (scratch.parent / "data" / "curated").is_dir()


def test_readme_python_block(scratch):
    (block,) = readme_blocks("python")
    proc = subprocess.run(
        [sys.executable, "-c", block], cwd=scratch, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert (scratch / "G.safetensors").stat().st_size > 10_000
