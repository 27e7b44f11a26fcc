"""`lvg-train` start-up: every option checked before any work, the default preset, the
start-up summary and the GPU-sized-preset warning (docs/training.md#start-up)."""

from __future__ import annotations

import re

import pytest
import torch
from click.testing import CliRunner

import training.loop
from torch_utils.misc import DeviceError, choose_device
from training.cli import default_preset
from training.cli import main as train_main
from training.config import GPU_SIZED_PRESETS, resolve
from training.loop import train


def one_error_line(result, *needles: str) -> str:
    """The `Error: ...` line of a failed run, with no traceback, holding every needle."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, TypeError)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], result.output
    return errors[0]


BAD_OPTIONS = [
    (["--batch", "0"], "'--batch': 0 is not in the range x>=1"),
    (["--grad-accum", "0"], "'--grad-accum'"),
    (["--steps", "-5"], "'--steps'"),
    (["--tick", "0"], "'--tick'"),
    (["--snapshot-ticks", "0"], "'--snapshot-ticks'"),
    (["--state-ticks", "0"], "'--state-ticks'"),
    (["--sample-ticks", "0"], "'--sample-ticks'"),
    (["--workers", "-1"], "'--workers'"),
    (["--gamma", "nan"], "'--gamma': 'nan' is not a finite number"),
    (["--gamma", "-1"], "'--gamma'"),
    (["--g-lr", "0"], "'--g-lr': 0.0 is not in the range x>0"),
    (["--d-lr", "inf"], "'--d-lr': 'inf' is not a finite number"),
    (["--seed", "-1"], "'--seed'"),
    (["--seed", str(2**63)], "'--seed'"),
    (["--batch", "3", "--grad-accum", "2"], "--batch 3 is not divisible by --grad-accum"),
    (["--device", "tpu9"], "unknown device 'tpu9'; use --device cpu, cuda or cuda:N"),
    (["--preset", "huge"], "'huge' is not one of 'paper', 'small', 'tiny', 'demo'"),
    (["--time-stretch", "nan"], "'--time-stretch'"),
    (["--metric", "fvd_bogus"], "fvd_bogus"),
]


@pytest.mark.parametrize("options,message", BAD_OPTIONS, ids=[" ".join(o) for o, _ in BAD_OPTIONS])
def test_bad_options_are_one_line_before_any_work(synth, tmp_path, options, message):
    out = tmp_path / "run"
    args = ["lres", "--data", str(synth), "--outdir", str(out), "--preset", "tiny", *options]
    one_error_line(CliRunner().invoke(train_main, args), message)
    assert not out.exists()  # nothing written


def test_the_library_checks_the_same_values(synth, tmp_path):
    base = dict(data=str(synth), outdir=str(tmp_path))
    for field, value, message in [
        ("g_lr", float("nan"), "`g_lr` must be a finite number > 0, got nan"),
        ("gamma", -1.0, "`gamma` must be a finite number >= 0"),
        ("seed", 2**63, "`seed` must be in [0, 2**63)"),
        ("workers", -1, "`workers` must be >= 0"),
        ("sample_ticks", 0, "sample_ticks must be >= 1"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            resolve("lres", "tiny", **base, **{field: value})


def test_devices_this_machine_lacks_name_the_fix(synth, tmp_path, monkeypatch):
    args = ["lres", "--data", str(synth), "--outdir", str(tmp_path / "run"), "--preset", "tiny"]
    if not torch.cuda.is_available():
        result = CliRunner().invoke(train_main, [*args, "--device", "cuda"])
        one_error_line(result, "no CUDA GPU", "use --device cpu")
    # One GPU: cuda:7 is refused with the indices there are.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    result = CliRunner().invoke(train_main, [*args, "--device", "cuda:7"])
    one_error_line(result, "cuda:7 was requested but this machine has 1 GPU (cuda:0 .. cuda:0)")
    assert not (tmp_path / "run").exists()
    assert choose_device("cuda:0") == torch.device("cuda:0")  # what it has is accepted
    with pytest.raises(DeviceError):  # a ValueError and, for older callers, a RuntimeError
        choose_device("cuda:1")
    assert default_preset(None) == "paper"  # with a GPU, no --preset means the paper recipe


def test_no_preset_on_a_cpu_is_refused_with_both_choices(synth, tmp_path):
    out = tmp_path / "run"
    args = ["sres", "--data", str(synth), "--outdir", str(out), "--device", "cpu"]
    line = one_error_line(CliRunner().invoke(train_main, args), "--preset tiny", "--preset paper")
    assert "sized for GPUs" in line and not out.exists()


def test_missing_resolutions_are_named_together_with_one_fix(synth, tmp_path):
    out = tmp_path / "run"
    args = ["sres", "--data", str(synth), "--outdir", str(out), "--preset", "tiny"]
    one_error_line(
        CliRunner().invoke(train_main, args),
        "no 0018x0032 and 0072x0128 folders in",
        "(resolutions present: 0036x0064)",
        f"--outdir {synth} --res 18x32 --res 72x128",
    )
    assert not out.exists()


def test_a_gpu_sized_preset_on_a_cpu_warns_in_the_summary(synth, tmp_path, monkeypatch):
    """The summary of a real start-up (networks, data, run folder); the steps themselves are
    left out, a small-preset step taking minutes on a CPU."""
    assert {"paper", "small"} == set(GPU_SIZED_PRESETS)
    monkeypatch.setattr(training.loop, "_tick_loop", lambda *args: None)
    lines: list[str] = []
    cfg = resolve(
        "lres", "small", data=str(synth), outdir=str(tmp_path / "run"), device="cpu", workers=0,
        seq_length=16, batch=2,
    )  # fmt: skip
    train(cfg, echo=lines.append)
    text = "\n".join(lines)
    assert lines[0].startswith("lvg-train lres, preset small: G ") and " parameters, D " in text
    assert "  device cpu, precision float32, compile off" in lines
    assert f"  data {synth}: 4 clips at 36x64" in lines
    assert "  batch 2 per step = 1 process x 2; 1 accumulation round of 2" in lines
    assert "  steps 0 -> 50000, ticks of 500" in lines
    assert f"  run folder {tmp_path / 'run'}" in lines
    assert lines[-1].startswith("warning: the small preset is sized for GPUs") and (
        "use --preset tiny" in lines[-1]
    )


def test_compile_choice_reaches_the_stage(synth, tmp_path, monkeypatch):
    """`--compile on` compiles the steps' networks (docs/training.md#compiling); `auto` is off
    on a CPU; the summary says which. The steps themselves are left out here:
    tests/test_compile.py runs compiled steps."""
    from training.gan import GAN

    monkeypatch.setattr(training.loop, "_tick_loop", lambda *args: None)
    calls = []
    monkeypatch.setattr(GAN, "compile_networks", lambda self, backend="inductor": calls.append(1))
    for choice, compiled in (("auto", False), ("off", False), ("on", True)):
        calls.clear()
        lines: list[str] = []
        cfg = resolve(
            "lres", "tiny", data=str(synth), outdir=str(tmp_path / choice), device="cpu",
            workers=0, seq_length=16, batch=2, compile=choice,
        )  # fmt: skip
        train(cfg, echo=lines.append)
        assert bool(calls) == compiled, choice
        assert f"  device cpu, precision float32, compile {'on' if compiled else 'off'}" in lines
    with pytest.raises(ValueError, match="compile must be auto, on or off, got 'yes'"):
        resolve("lres", "tiny", data=str(synth), outdir=str(tmp_path / "x"), compile="yes")


def test_precision_auto_is_the_originals():
    """docs/training.md#mixed-precision: float32 for the low-res stage and on CPUs; the SR
    networks' float16 layers ("mixed") for the SR stage on CUDA; explicit choices stay."""
    lres, sres = (resolve(s, "tiny", data="d", outdir="o") for s in ("lres", "sres"))
    assert lres.precision == sres.precision == "auto"
    assert [c.precision_on(d) for c in (lres, sres) for d in ("cpu", "cuda")] == [
        "float32",
        "float32",
        "float32",
        "mixed",
    ]
    assert (
        resolve("sres", "tiny", data="d", outdir="o", precision="bfloat16").precision_on("cuda")
        == "bfloat16"
    )
    with pytest.raises(ValueError, match="precision must be one of auto, float32, mixed"):
        resolve("lres", "tiny", data="d", outdir="o", precision="half")
