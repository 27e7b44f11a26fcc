"""lvg-generate under hostile options, many seeds and signals (docs/generation.md#limits,
docs/generation.md#many-seeds): every option is checked before anything is written, seeds stream
one after another with the same frames as alone, frame rates are stored as the CLI says, and a
stopped or killed run leaves no file behind. Tiny random-weight networks."""

import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_generation import StandInSres

import networks
from generation import cli as gen_cli
from networks.lres_generator import LowResGenerator
from networks.presets import PRESETS
from torch_utils.frames import Mp4Writer, mp4_rate

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return LowResGenerator(PRESETS["tiny"].lres_generator).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def ckpt(G, tmp_path_factory):
    return networks.save(G, tmp_path_factory.mktemp("ckpt") / "lres.safetensors")


def run(*args):
    return CliRunner().invoke(gen_cli.main, [str(a) for a in args] + ["--quiet"])


def decoded(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


# ------------------------------------------------------------------------------------------------
# Every option checked: one line, non-zero exit, no traceback, nothing written

BAD = [
    (["--start-frame", 10**20], 1, "--start-frame must keep the video within frames -2\\^52"),
    (["--start-frame", -(2**52) - 1, "--frames", 1], 1, "--start-frame must keep"),
    (["--start-frame", 2**52 - 1, "--frames", 2], 1, "--start-frame must keep"),
    (["--seconds", "inf"], 1, "--seconds must be a finite time > 0, got inf"),
    (["--seconds", "nan"], 1, "--seconds must be a finite time > 0, got nan"),
    (["--seconds", "-1"], 1, "--seconds must be a finite time > 0"),
    (["--seconds", "1e300"], 1, "--seconds 1e\\+300 at 30 fps is more than 2147483647 frames"),
    (["--fps", "1e-4"], 1, "--fps must be between 0.01 and 1000 frames per second, got 0.0001"),
    (["--fps", "1e9"], 1, "--fps must be between 0.01 and 1000"),
    (["--fps", "nan"], 1, "--fps must be between 0.01 and 1000 .*got nan"),
    (["--fps", "inf"], 1, "--fps must be between"),
    (["--fps", "0.0123456"], 1, "--fps 0.0123456 cannot be stored in an mp4 .*\\(1/81\\)"),
    (["--frames", 2**31], 2, "--frames.*not in the range 1<=x<=2147483647"),
    (["--loop", 2**53, "--frames", 4], 1, "--loop must be between 32 and 2\\^52"),
    (["--loop", 2**40], 1, "one --loop period .* give --frames"),
    (["--loop", 2**40, "--frames", 4, "--transition-to", 1], 1, "cannot be combined"),
    (["--transition-to", 2**64], 1, "--transition-to must be a 64-bit integer"),
    (["--transition-to", 1, "--at", 2**60], 1, "--at must be a frame within -2\\^52"),
    (["--transition-to", 1, "--over", 2**53], 1, "--over must be between 0 and 2\\^52"),
    (["--batch-frames", 0], 2, "--batch-frames.*not in the range 1<=x<=1024"),
    (["--batch-frames", 5000], 2, "--batch-frames.*not in the range 1<=x<=1024"),
    (["--sres-batch", 65], 2, "--sres-batch.*not in the range 1<=x<=64"),
    (["--seed", "0-1000000000000"], 2, "more than 10000 seeds"),
    (["--seed", "99999999999999999999"], 2, "not a 64-bit integer"),
    (["--seed", "0-64", "--grid"], 1, "--grid takes at most 64 seeds .*got 65"),
    (["--save-frame", -1, "--frames", 3], 1, "--save-frame -1 is outside the video's 0..2"),
]


@pytest.mark.parametrize("args, status, message", BAD, ids=[" ".join(map(str, b[0])) for b in BAD])
def test_every_option_is_checked(ckpt, tmp_path, args, status, message):
    t0 = time.perf_counter()
    r = run("--lres", ckpt, "--out", tmp_path / "o.mp4", *args)
    assert isinstance(r.exception, SystemExit) and r.exit_code == status, r.output  # no traceback
    errors = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and re.search(message, errors[0]), r.output
    if status == 1:
        assert len(r.output.strip().splitlines()) == 1, r.output
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert time.perf_counter() - t0 < 10  # 0-10**12 is refused before any list is made


def test_options_at_their_limits_work(ckpt, tmp_path):
    """The edges of the frame range are accepted: frames up to 2^52 - 1 and from -2^52."""
    r = run("--lres", ckpt, "--start-frame", 2**52 - 2, "--frames", 2, "--out", tmp_path / "a.mp4")
    assert r.exit_code == 0, r.output
    r = run("--lres", ckpt, "--start-frame", -(2**52), "--frames", 1, "--out", tmp_path / "b.mp4")
    assert r.exit_code == 0, r.output
    assert len(decoded(tmp_path / "a.mp4")) == 2 and len(decoded(tmp_path / "b.mp4")) == 1


# ------------------------------------------------------------------------------------------------
# Frame rates: what the CLI says is what the file says


@pytest.mark.parametrize("fps", [0.01, 0.5, 23.976, 29.97003, 30, 240, 1000])
def test_frame_rate_round_trips(tmp_path, fps):
    rate = mp4_rate(fps)
    with Mp4Writer(tmp_path / "r.mp4", fps=fps) as writer:
        for i in range(3):
            writer.write(np.full((8, 8, 3), 80 * i, np.uint8))
    with av.open(str(tmp_path / "r.mp4")) as c:
        assert c.streams.video[0].average_rate == rate
    assert abs(float(rate) - fps) <= 1e-6 * fps


def test_refused_frame_rate_writes_nothing(tmp_path):
    for fps in (1e-4, 1e9, float("nan"), 0.0123456):
        with pytest.raises(ValueError, match="`fps`"):
            Mp4Writer(tmp_path / "x.mp4", fps=fps)
    assert list(tmp_path.iterdir()) == []
    assert mp4_rate(29.97003) == Fraction(30000, 1001)


def test_cli_prints_the_stored_rate(ckpt, tmp_path):
    r = run("--lres", ckpt, "--fps", 29.97003, "--frames", 2, "--out", tmp_path / "n.mp4")
    assert r.exit_code == 0 and "29.97 fps" in r.output, r.output
    with av.open(str(tmp_path / "n.mp4")) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)


# ------------------------------------------------------------------------------------------------
# Many seeds: one after another, each exactly as alone; --sres-batch is per call in all


def test_many_seeds_equal_one_seed(G, ckpt, tmp_path, monkeypatch):
    common = ["--lres", ckpt, "--frames", 3, "--start-frame", -5, "--crf", 0, "--lres-native"]
    assert run(*common, "--seed", 4, "--out", tmp_path / "a.mp4").exit_code == 0
    r = run(*common, "--seed", "3-5", "--out", tmp_path / "b.mp4")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[:3] == [f"wrote {tmp_path / f'b-seed{s}.mp4'}" for s in (3, 4, 5)]
    assert np.array_equal(decoded(tmp_path / "a.mp4"), decoded(tmp_path / "b-seed4.mp4"))
    # A grid's seeds advance side by side, each still streamed on its own: identical frames.
    S = StandInSres()
    plan = gen_cli.plan_generation(
        ckpt, Path("sr"), [3, 4, 5], num_frames=3, seconds=None, fps=30, out=tmp_path / "g.mp4",
        start_frame=-5, loop_period=None, loop_mode="blend", transition_seed=None,
        transition_at=None, transition_over=None, grid=True, save_lres=True, lres_native=True,
        save_frames=(), crf=18,
    )  # fmt: skip
    grid = list(gen_cli.stream_frames(plan, plan.seeds, G, S, 32, 2, "auto"))
    alone = list(gen_cli.stream_frames(plan, (4,), G, S, 32, 2, "auto"))
    assert [f.index for f in grid] == [-5, -4, -3] and grid[0].video.shape == (3, 72, 128, 3)
    for g, a in zip(grid, alone):
        assert np.array_equal(g.video[1], a.video[0]) and np.array_equal(g.lres[1], a.lres[0])
    assert max(n * k for n, k in S.calls) <= 2  # --sres-batch 2: frames per call in all


def test_sres_batch_is_per_call_not_per_seed(ckpt, tmp_path, monkeypatch):
    S = StandInSres()
    real = networks.load
    monkeypatch.setattr(
        networks,
        "load",
        lambda p, kind, device: (
            S if kind == "sres_generator" else real(p, kind=kind, device=device)
        ),
    )
    args = ["--lres", ckpt, "--sres", "sr", "--frames", 5, "--sres-batch", 4]
    r = run(*args, "--seed", "1-3", "--grid", "--out", tmp_path / "g.mp4")
    assert r.exit_code == 0, r.output
    assert S.calls and all(n * k <= 4 for n, k in S.calls) and sum(k for _, k in S.calls) == 15


# ------------------------------------------------------------------------------------------------
# Signals: SIGTERM stops cleanly; a SIGKILLed run's temp file is removed by the next run


def start(ckpt, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "generation.cli", "--lres", str(ckpt), "--frames", "100000"]
    cmd += ["--lres-native", "--out", str(out), "--quiet"]
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_temp(proc: subprocess.Popen, folder: Path) -> Path:
    deadline = time.monotonic() + 120  # the import alone takes seconds on a loaded machine
    while time.monotonic() < deadline:
        temps = list(folder.glob("*.tmp-*"))
        if temps:
            return temps[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("lvg-generate never opened its temp file")


def test_sigterm_leaves_nothing(ckpt, tmp_path):
    out = tmp_path / "t.mp4"
    proc = start(ckpt, out)
    temp = wait_for_temp(proc, tmp_path)
    assert temp.name == f"t.mp4.tmp-{proc.pid}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err and "Aborted" in err, err
    assert list(tmp_path.iterdir()) == []  # neither the temp file nor the output


def test_sigkilled_temp_is_removed_by_the_next_run(ckpt, tmp_path):
    out = tmp_path / "k.mp4"
    proc = start(ckpt, out)
    temp = wait_for_temp(proc, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and temp.exists()  # a SIGKILL cannot be caught
    r = run("--lres", ckpt, "--frames", 2, "--lres-native", "--out", out)
    assert r.exit_code == 0, r.output
    assert list(tmp_path.iterdir()) == [out] and len(decoded(out)) == 2


# ------------------------------------------------------------------------------------------------
# The benchmark of memory against seeds (benchmarks/README.md)


def test_memory_benchmark_quick():
    r = subprocess.run(
        [sys.executable, "benchmarks/generate_memory.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 seeds / 1 seed = x" in r.stdout and "OK" in r.stdout, r.stdout
