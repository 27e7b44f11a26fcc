"""SIGTERM is handled like Ctrl-C, and the next writer of an output removes the temp files that
killed writers left behind (docs/architecture.md#files-are-written-atomically)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from torch_utils.misc import AtomicTarget, remove_stale_temps, write_atomic


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_next_writer_removes_temps_of_dead_processes_only(tmp_path):
    out = tmp_path / "out.mp4"
    dead = _dead_pid()
    stale = [tmp_path / f"out.mp4.tmp-{dead}", tmp_path / f".out.mp4.tmp-{dead}"]
    live = tmp_path / f"out.mp4.tmp-{os.getppid()}"  # a running process (pytest's parent)
    other = tmp_path / f"other.mp4.tmp-{dead}"  # another output: not ours to clean
    for p in [*stale, live, other]:
        p.write_bytes(b"partial")
    write_atomic(out, b"done")
    assert out.read_bytes() == b"done"
    assert not any(p.exists() for p in stale)
    assert live.exists() and other.exists()
    assert remove_stale_temps(tmp_path / "other.mp4") == [other]


def test_atomic_target_sweeps_on_open(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f"partition_0000.zip.tmp-{dead}"
    stale.write_bytes(b"x")
    AtomicTarget(tmp_path / "partition_0000.zip", hidden=False)
    assert not stale.exists()


SCRIPT = """
import sys, time
from pathlib import Path
from torch_utils.cli import interrupt_on_sigterm
from torch_utils.misc import AtomicTarget
interrupt_on_sigterm()
target = AtomicTarget(Path(sys.argv[1]))
target.tmp.write_bytes(b"partial")
try:
    print("ready", flush=True)
    time.sleep(60)
    target.commit()
except KeyboardInterrupt:
    target.discard()
    sys.exit(3)
"""


def test_sigterm_is_an_interrupt(tmp_path):
    out = tmp_path / "video.mp4"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out)], stdout=subprocess.PIPE, cwd=root, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 3
    assert list(tmp_path.iterdir()) == []


def _start_dataset_writer(dst: Path) -> subprocess.Popen:
    root = Path(__file__).resolve().parents[1]
    args = ["synthetic", "--outdir", str(dst), "--videos", "40", "--frames", "400"]
    return subprocess.Popen(
        [sys.executable, "-c", "from datasets.cli import main; main()", *args, "--res", "36x64"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_temp(folder: Path, proc: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        temps = list(folder.glob("*/*.zip.tmp-*"))
        if temps:
            return temps[0]
        time.sleep(0.05)
    raise AssertionError(f"no temp shard appeared (exit {proc.poll()})")


def test_sigterm_during_dataset_writing_leaves_nothing(tmp_path):
    dst = tmp_path / "ds"
    proc = _start_dataset_writer(dst)
    _wait_for_temp(dst, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert not list(dst.glob("*/*.zip*"))


def test_sigkilled_dataset_temp_is_removed_by_the_next_run(tmp_path):
    dst = tmp_path / "ds"
    proc = _start_dataset_writer(dst)
    temp = _wait_for_temp(dst, proc)
    proc.kill()
    proc.wait(timeout=30)
    assert temp.exists()  # SIGKILL cannot be caught: the temp file stays behind ...
    rerun = subprocess.run(
        [sys.executable, "-c", "from datasets.cli import main; main()", "synthetic"]
        + ["--outdir", str(dst), "--videos", "1", "--frames", "8", "--res", "36x64"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert not temp.exists()  # ... until the next run writing the same shard
    assert [p.name for p in dst.glob("*/*")] == ["partition_0000.zip"]
