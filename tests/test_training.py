"""Training on CPU with tiny presets (docs/training.md): real steps, artefacts, exact resume,
DDP, errors."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

import networks
from datasets.cli import main as dataset_main
from training.cli import main as train_main
from training.config import TrainConfig, resolve
from training.loop import TrainingError, train
from training.state import list_states, load_state

# A few tiny steps: small batch and short clips keep each step well under a second.
TINY = dict(
    batch=2,
    seq_length=16,
    steps_per_tick=2,
    snapshot_ticks=1,
    state_ticks=1,
    sample_ticks=2,
    r1_interval=2,
    sample_frames=16,
)


def tiny_cfg(synth, outdir, **overrides) -> TrainConfig:
    return resolve(
        "lres", "tiny", **{"data": str(synth), "outdir": str(outdir), **TINY, **overrides}
    )


@pytest.fixture(scope="module")
def straight_run(synth, tmp_path_factory) -> dict[str, torch.Tensor]:
    """The weights after 4 uninterrupted steps."""
    out = tmp_path_factory.mktemp("straight")
    train(tiny_cfg(synth, out, total_steps=4), echo=lambda s: None)
    return weights(list_states(out)[-1])


def weights(path: Path) -> dict[str, torch.Tensor]:
    return (
        {k: v.clone() for k, v in load_state(path)["modules"]["G"].items()}
        | {f"D.{k}": v for k, v in load_state(path)["modules"]["D"].items()}
        | {f"ema.{k}": v for k, v in load_state(path)["modules"]["G_ema"].items()}
    )


def test_ema_beta_schedule():
    """The sample values of docs/training.md#generator-ema."""
    cfg = TrainConfig()
    for step, beta in [
        (0, "0.0235"),
        (10, "0.711"),
        (100, "0.9635"),
        (1000, "0.99626"),
        (5000, "0.99925"),
        (24999, "0.99985"),
        (90000, "0.99985"),
    ]:
        digits = len(beta.split(".")[1])  # as printed in the docs: equal after rounding
        assert round(cfg.ema_beta_at(step), digits) == float(beta), (step, cfg.ema_beta_at(step))
    assert cfg.d_lr_corrected == pytest.approx(0.0018824, abs=1e-7)
    assert cfg.d_beta2_corrected == pytest.approx(0.990585, abs=1e-6)


def test_cli_steps_change_weights_and_write_every_artefact(synth, tmp_path):
    out = tmp_path / "run"
    args = [
        "lres",
        "--data",
        str(synth),
        "--outdir",
        str(out),
        "--preset",
        "tiny",
        "--batch",
        "2",
        "--steps",
        "4",
        "--tick",
        "2",
        "--snapshot-ticks",
        "1",
        "--state-ticks",
        "1",
        "--sample-ticks",
        "2",
        "--seed",
        "3",
        "--augment",  # the paper's D augmentations (the tiny preset has none)
        "color,translation,cutout",
        "--time-stretch",
        "1",
    ]
    result = CliRunner().invoke(train_main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "step 2 | tick 1" in result.output and "step 4 | tick 2" in result.output
    # The start-up summary (docs/training.md#start-up), once, before the first tick line.
    assert result.output.startswith("lvg-train lres, preset tiny: G 0.34M parameters, D 0.24M\n")
    assert f"  data {synth}: 4 clips at 36x64\n" in result.output
    assert "  steps 0 -> 4, ticks of 2\n" in result.output and "warning" not in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["batch"] == 2 and config["preset"] == "tiny" and config["seed"] == 3
    assert config["diffaugment"] == "color,translation,cutout" and config["time_stretch"] == 1
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [2, 4]
    for key in [
        "loss/G",
        "loss/D",
        "progress/G_ema_beta",
        "timing/sec_per_step",
        "resources/cpu_mem_gb",
    ]:
        assert key in stats[-1], key
    assert "loss/r1_penalty" in stats[0]  # R1 runs at step 0, then every 16 steps
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "samples" / "fake-00000004.mp4").stat().st_size > 1000
    snaps = sorted((out / "snapshots").glob("*.safetensors"))
    assert [s.name for s in snaps] == ["lres-00000002.safetensors", "lres-00000004.safetensors"]
    G = networks.load(snaps[-1], kind="lres_generator")
    with safe_open(str(snaps[-1]), "pt") as f:
        assert f.metadata()["step"] == "4"
    init = networks.presets.get_preset("tiny").lres_generator
    assert G.cfg == init
    state = load_state(list_states(out)[-1])
    assert state["step"] == 4 and set(state["modules"]) == {"G", "D", "G_ema"}
    assert set(state["optimizers"]) == {"opt_G", "opt_D"} and len(state["rng"]) == 1
    first = load_state(list_states(out)[0])["modules"]["G"]
    changed = [k for k, v in state["modules"]["G"].items() if not torch.equal(v, first[k])]
    assert len(changed) > len(first) // 2  # training moves the weights
    # Re-running the same command resumes: nothing left to do at the same --steps.
    again = CliRunner().invoke(train_main, args)
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_resume_equals_uninterrupted(synth, tmp_path, straight_run):
    """N steps + resume + M steps == N + M steps in one go, bit for bit (CPU)."""
    train(tiny_cfg(synth, tmp_path / "two", total_steps=2), echo=lambda s: None)
    train(tiny_cfg(synth, tmp_path / "two", total_steps=4), echo=lambda s: None)
    a, b = straight_run, weights(list_states(tmp_path / "two")[-1])
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][
        :5
    ]


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, torch
    import training.state as state
    from training.config import resolve
    from training.loop import train

    original = state.save_state
    def dying_save(path, data, keep):
        if data["step"] == int(os.environ["KILL_AT"]):
            # Die (SIGKILL) half-way through writing the temporary file.
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            torch.save(data, tmp)
            with open(tmp, "r+b") as f:
                f.truncate(tmp.stat().st_size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(path, data, keep)
    import training.loop
    training.loop.save_state = dying_save
    cfg = resolve("lres", "tiny", **eval(sys.argv[1]))
    train(cfg, echo=lambda s: None)
    """
)


def test_sigkill_while_writing_a_state_loses_nothing(synth, tmp_path, straight_run):
    options = dict(data=str(synth), outdir=str(tmp_path / "killed"), total_steps=4, **TINY)
    env = {**os.environ, "KILL_AT": "4"}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, repr(options)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == -9, proc.stderr
    states = list_states(tmp_path / "killed")
    assert [p.name for p in states] == ["state-00000002.pt"]  # the half-written one is not a state
    env["KILL_AT"] = "-1"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, repr(options)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    a = weights(list_states(tmp_path / "killed")[-1])
    assert all(torch.equal(a[k], straight_run[k]) for k in a)


def test_errors(synth, tmp_path):
    with pytest.raises(TrainingError, match="not divisible"):
        train(tiny_cfg(synth, tmp_path / "a", batch=3, grad_accum=2))
    with pytest.raises(ValueError, match="seq_length"):
        train(tiny_cfg(synth, tmp_path / "b", seq_length=64))  # videos have 48 frames
    with pytest.raises((FileNotFoundError, ValueError), match="0036x0064|36x64"):
        train(tiny_cfg(synth, tmp_path / "c", data=str(tmp_path)))
    bad = ["lres", "--data", str(synth), "--outdir", str(tmp_path / "e"), "--augment", "blur"]
    result = CliRunner().invoke(train_main, [*bad, "--preset", "tiny"])
    assert result.exit_code != 0 and "unknown DiffAugment policy blur" in result.output
    bad = ["sres", "--data", str(synth), "--outdir", str(tmp_path / "f"), "--lr-cond-prob", "2"]
    result = CliRunner().invoke(train_main, [*bad, "--preset", "tiny"])
    assert result.exit_code != 0 and "'--lr-cond-prob': 2.0 is not in the range 0<=x<=1" in (
        result.output
    )
    with pytest.raises(ValueError, match=r"lr_cond_prob must be in \[0, 1\], got 2.0"):
        tiny_cfg(synth, tmp_path / "f", lr_cond_prob=2.0)
    train(tiny_cfg(synth, tmp_path / "d", total_steps=2), echo=lambda s: None)
    with pytest.raises(TrainingError, match="different settings"):
        train(tiny_cfg(synth, tmp_path / "d", total_steps=4, seed=9), echo=lambda s: None)


def test_nan_losses_stop_and_keep_the_last_good_state(synth, tmp_path, monkeypatch):
    from training import lres_gan

    cfg = tiny_cfg(synth, tmp_path / "nan", total_steps=20, nan_patience=3, sample_ticks=100)
    original = lres_gan.LowResGAN.train_step

    def poisoned(self, step, data):
        stats = original(self, step, data)
        if step >= 2:
            stats["loss/G"] = float("nan")
        return stats

    monkeypatch.setattr(lres_gan.LowResGAN, "train_step", poisoned)
    with pytest.raises(
        TrainingError, match=r"not finite for 3 consecutive steps.*state-00000002\.pt"
    ):
        train(cfg, echo=lambda s: None)
    assert [p.name for p in list_states(tmp_path / "nan")] == ["state-00000002.pt"]


# ------------------------------------------------------------------------------------------------
# Several processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, real: torch.Tensor, fake: torch.Tensor, out: str):
    import torch.distributed as dist
    import torch.nn.functional as F

    from networks.lres_discriminator import LowResDiscriminator
    from networks.presets import get_preset
    from torch_utils import distributed

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    torch.manual_seed(rank + 100)  # different init on each rank...
    D = LowResDiscriminator(get_preset("tiny").lres_discriminator)
    distributed.broadcast_module(D)  # ...made equal by the broadcast from rank 0
    half = real.shape[0] // world
    sl = slice(rank * half, (rank + 1) * half)
    loss = F.softplus(D(fake[sl])).mean() + F.softplus(-D(real[sl])).mean()
    loss.backward()
    distributed.sync_gradients(D.parameters())
    if rank == 0:
        torch.save(
            {k: p.grad for k, p in D.named_parameters()}
            | {"init." + k: p.detach() for k, p in D.named_parameters()},
            out,
        )
    dist.destroy_process_group()


def test_two_process_gradients_equal_one_process_whole_batch(tmp_path):
    import torch.nn.functional as F

    from networks.lres_discriminator import LowResDiscriminator
    from networks.presets import get_preset

    real, fake = torch.randn(4, 3, 32, 36, 64), torch.randn(4, 3, 32, 36, 64)
    out = tmp_path / "grads.pt"
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), real, fake, str(out)), nprocs=2)
    got = torch.load(out)
    D = LowResDiscriminator(get_preset("tiny").lres_discriminator)
    D.load_state_dict({k[5:]: v for k, v in got.items() if k.startswith("init.")})
    loss = F.softplus(D(fake)).mean() + F.softplus(-D(real)).mean()
    loss.backward()
    for name, p in D.named_parameters():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-4, atol=1e-6)


def test_torchrun_two_processes_on_cpu(synth, tmp_path):
    """A real 2-process gloo run through torchrun."""
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "training.cli",
        "lres",
        "--data",
        str(synth),
        "--outdir",
        str(out),
        "--preset",
        "tiny",
        "--batch",
        "2",
        "--steps",
        "2",
        "--tick",
        "2",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("step 2 | tick 1") == 1  # one status line: rank 0 only
    state = load_state(list_states(out)[-1])
    assert len(state["rng"]) == 2 and state["step"] == 2
    assert (out / "snapshots" / "lres-00000002.safetensors").exists()


# ------------------------------------------------------------------------------------------------
# Super-resolution stage


@pytest.fixture(scope="module")
def synth_pairs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    args = [
        "synthetic",
        "--outdir",
        str(root),
        "--videos",
        "3",
        "--frames",
        "24",
        "--res",
        "18x32",
        "--res",
        "72x128",
    ]
    result = CliRunner().invoke(dataset_main, args)
    assert result.exit_code == 0, result.output
    return root


def test_sres_steps_artefacts_and_exact_resume(synth_pairs, tmp_path):
    options = dict(
        data=str(synth_pairs),
        batch=2,
        steps_per_tick=1,
        snapshot_ticks=1,
        state_ticks=1,
        sample_ticks=3,
        r1_interval=2,
        sample_frames=4,
        ada_interval=1,
    )
    train(
        resolve("sres", "tiny", outdir=str(tmp_path / "one"), total_steps=3, **options),
        echo=lambda s: None,
    )
    train(
        resolve("sres", "tiny", outdir=str(tmp_path / "two"), total_steps=2, **options),
        echo=lambda s: None,
    )
    train(
        resolve("sres", "tiny", outdir=str(tmp_path / "two"), total_steps=3, **options),
        echo=lambda s: None,
    )
    one, two = (
        load_state(list_states(tmp_path / "one")[-1]),
        load_state(list_states(tmp_path / "two")[-1]),
    )
    for name in ("G", "D", "G_ema"):
        a, b = one["modules"][name], two["modules"][name]
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert one["extra"]["ada"]["p"] == two["extra"]["ada"]["p"] > 0  # ADA moved p, and resumed it
    first = load_state(list_states(tmp_path / "one")[0])["modules"]["G"]
    assert any(not torch.equal(v, first[k]) for k, v in one["modules"]["G"].items())
    S = networks.load(
        tmp_path / "one" / "snapshots" / "sres-00000003.safetensors", kind="sres_generator"
    )
    assert S.cfg.hr_height == 72
    assert (tmp_path / "one" / "samples" / "fake-00000003.mp4").exists()
    stats = [
        json.loads(line) for line in (tmp_path / "one" / "stats.jsonl").read_text().splitlines()
    ]
    assert "progress/augment_p" in stats[-1] and "loss/r1_penalty" in stats[0]


def test_metrics_during_training(synth, tmp_path):
    """`lvg-train ... --metric` computes metrics of each snapshot into metric-<name>.jsonl."""
    out = tmp_path / "metric-run"
    with pytest.raises(ValueError, match="unknown metric"):
        train(tiny_cfg(synth, out, total_steps=2, metrics=("fid_nonsense",)), echo=lambda s: None)
    lines = []
    train(
        tiny_cfg(synth, out, total_steps=2, sample_ticks=100, metrics=("colorsim4_16f",)),
        echo=lines.append,
    )
    records = [
        json.loads(line) for line in (out / "metric-colorsim4_16f.jsonl").read_text().splitlines()
    ]
    assert len(records) == 1 and records[0]["details"]["step"] == 2
    assert records[0]["results"] and any("metric colorsim4_16f" in line for line in lines)
