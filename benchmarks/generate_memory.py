"""Peak memory of `lvg-generate` against the number of seeds, with the shipped demo models.

Runs `lvg-generate --seed 0 --frames 8` and `--seed 0-63 --frames 8` (one file per seed), low-res
only and with the shipped super-resolution network, each in a fresh subprocess, and prints the
peak resident memory of each (the child's own ru_maxrss, from `os.wait4`) and the ratio of many
seeds to one. Seeds are generated one after another (docs/generation.md#many-seeds), so the
ratio must stay within 1.3; the script exits with status 1 when it does not.

    python benchmarks/generate_memory.py [--seeds 64] [--frames 8] [--quick]

`--quick` (4 seeds, 2 frames, low-res only) takes well under a minute; the test suite runs it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT = 1.3  # peak RSS of many seeds / one seed


def measure(args: list[str], outdir: Path) -> tuple[float, float, float]:
    """Runs `lvg-generate ARGS` in a fresh process; (peak RSS in MB, wall seconds, CPU seconds,
    which the other processes of a loaded machine do not inflate). Raises
    RuntimeError with its last error line if it fails."""
    cmd = [sys.executable, "-m", "generation.cli", *args, "--quiet"]
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=outdir)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            lines = err.read().strip().splitlines() or [f"exit status {proc.returncode}"]
            raise RuntimeError(f"lvg-generate {' '.join(args)}: {lines[-1]}")
    return usage.ru_maxrss / 1024, seconds, usage.ru_utime + usage.ru_stime  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=64, help="seeds of the many-seed run")
    parser.add_argument("--frames", type=int, default=8, help="frames per video")
    parser.add_argument("--quick", action="store_true", help="4 seeds, 2 frames, low-res only")
    args = parser.parse_args()
    seeds, frames = (4, 2) if args.quick else (args.seeds, args.frames)
    root = Path(__file__).resolve().parent.parent
    variants = [("low-res only", ["--lres", str(root / "generation/demo/lres.safetensors")])]
    if not args.quick:
        variants.append(("with super-resolution", []))  # the default: the shipped demo pair

    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
        f"lvg-generate with the shipped demo models, --frames {frames}, one file per seed"
    )
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, model) in enumerate(variants):
            peaks = []
            for spec in ("0", f"0-{seeds - 1}"):
                out = Path(tmp) / f"v{i}-{len(peaks)}.mp4"
                run_args = [*model, "--seed", spec, "--frames", str(frames), "--out", str(out)]
                try:
                    peak, seconds, cpu = measure(run_args, root)
                except RuntimeError as e:
                    print(f"failed: {e}")
                    return 1
                count = 1 if spec == "0" else seeds
                print(
                    f"{name}, {count:>3} seed(s): peak RSS {peak:.0f} MB, {seconds:.1f} s, "
                    f"CPU {cpu:.1f} s"
                )
                peaks.append(peak)
            ratio = peaks[1] / peaks[0]
            worst = max(worst, ratio)
            verdict = "OK" if ratio <= LIMIT else "FAIL"
            print(f"  {name}: {seeds} seeds / 1 seed = x{ratio:.3f} ({verdict}: at most x{LIMIT})")
    return 0 if worst <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
