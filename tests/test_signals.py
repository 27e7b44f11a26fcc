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
