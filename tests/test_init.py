"""`lvg-train --init`: fine-tuning from an original G_ema or training pickle, a snapshot or a
training state; optimisers fresh; a config that does not fit names the field."""

import dataclasses
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from recipe import FIXTURES, original_lres_names, original_object, write_original_pickle

import networks
from networks.lres_discriminator import LowResDiscriminator
from networks.lres_generator import LowResGenerator
from networks.presets import get_preset
from networks.sres_discriminator import SuperResDiscriminator
from networks.sres_generator import SuperResGenerator
from training.cli import main as train_main
from training.config import resolve
from training.loop import train
from training.lres_gan import LowResGAN
from training.sres_gan import SuperResGAN
from training.state import list_states, load_state

CHECKPOINTS = FIXTURES / "checkpoints"


def lres_gan(preset: str, seed: int = 0, seq_length: int = 32) -> LowResGAN:
    """The stage's networks as `build_stage` makes them, without a dataset."""
    cfg = resolve("lres", preset, batch=2, grad_accum=1, seq_length=seq_length)
    p = get_preset(preset)
    d_cfg = dataclasses.replace(p.lres_discriminator, seq_length=seq_length)
    torch.manual_seed(seed)
    G, D = LowResGenerator(p.lres_generator), LowResDiscriminator(d_cfg)
    return LowResGAN(cfg, G, D, torch.device("cpu"), torch.Generator().manual_seed(seed))


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def tiny_G_ema_pickle(tmp_path_factory) -> tuple[Path, LowResGenerator]:
    """A tiny generator written the way the original writes its G_ema pickles."""
    torch.manual_seed(123)
    G = LowResGenerator(get_preset("tiny").lres_generator).eval()
    path = tmp_path_factory.mktemp("init") / "tiny_G_ema.pkl"
    write_original_pickle(path, original_object(original_lres_names(G), "VideoGenerator"))
    return path, G


def test_init_from_original_G_ema_pickle_then_two_steps(synth, tiny_G_ema_pickle, tmp_path):
    path, G_file = tiny_G_ema_pickle
    gan = lres_gan("tiny")
    fresh_D = {k: v.clone() for k, v in gan.D.state_dict().items()}
    lines = gan.init_from(path)
    assert same(gan.G, G_file) and same(gan.G_ema, G_file)
    assert all(torch.equal(v, fresh_D[k]) for k, v in gan.D.state_dict().items())  # D fresh
    assert lines[-1].startswith("D: freshly initialised")
    assert not gan.opt_G.state and not gan.opt_D.state  # optimisers fresh

    out = tmp_path / "run"
    args = ["lres", "--data", str(synth), "--outdir", str(out), "--preset", "tiny"]
    args += ["--batch", "2", "--steps", "2", "--tick", "1", "--init", str(path)]
    result = CliRunner().invoke(train_main, args)
    assert result.exit_code == 0, result.output
    assert f"init: G: from original pickle {path} (G_ema)" in result.output
    assert "init: D: freshly initialised" in result.output
    state = load_state(list_states(out)[-1])
    assert state["step"] == 2
    # Two real steps moved G a little away from the file's weights, far less than a fresh G is.
    trained = state["modules"]["G"]
    fresh = LowResGenerator(get_preset("tiny").lres_generator).state_dict()
    for name in ("blocks.3.weight1", "mapping.layers.0.weight", "spatial_const"):
        start = G_file.state_dict()[name]
        moved = (trained[name] - start).norm()
        assert 0 < moved < 0.2 * (fresh[name] - start).norm(), name
    assert json_has(out / "config.json", "init", str(path))
    # Re-running the same command resumes; --init only starts a run.
    again = CliRunner().invoke(train_main, [*args[:-4], "--steps", "3", "--init", str(path)])
    assert again.exit_code == 0, again.output
    assert "resuming from" in again.output and "only starts a run" in again.output


def json_has(path: Path, key: str, value) -> bool:
    import json

    return json.loads(path.read_text())[key] == value


def test_init_from_original_training_pickle_takes_G_and_D():
    """The paper-size networks of an original training pickle: G and D from it, G_ema = G."""
    gan = lres_gan("paper", seq_length=128)
    lines = gan.init_from(CHECKPOINTS / "lres_train_np1.pkl")
    ckpt = networks.open_checkpoint(CHECKPOINTS / "lres_train.pkl")
    assert same(gan.G, ckpt.network("G")) and same(gan.G_ema, gan.G)
    assert same(gan.D, ckpt.network("D"))
    assert [line.split(":")[0] for line in lines] == ["G", "G_ema", "D"]


def test_init_from_original_sres_training_pickle_reports_ada_p():
    p = get_preset("paper")
    cfg = resolve("sres", "paper", batch=2)
    gan = SuperResGAN(
        cfg,
        SuperResGenerator(p.sres_generator),
        SuperResDiscriminator(p.sres_discriminator),
        torch.device("cpu"),
        torch.Generator().manual_seed(0),
        None,
    )
    lines = gan.init_from(CHECKPOINTS / "sres_train.pkl")
    assert "the file's ADA probability was 0.123; ADA adapts anew from 0" in lines
    assert gan.ada.pipe.p == 0.0
    ckpt = networks.open_checkpoint(CHECKPOINTS / "sres_train.pkl")
    assert same(gan.G, ckpt.network("G")) and same(gan.D, ckpt.network("D"))


def test_init_from_our_training_state_and_snapshot(synth, tmp_path):
    out = tmp_path / "first"
    cfg = resolve(
        "lres", "tiny", data=str(synth), outdir=str(out), batch=2, seq_length=16, total_steps=2,
        steps_per_tick=1,
    )  # fmt: skip
    train(cfg, echo=lambda s: None)
    state_file = list_states(out)[-1]
    state = load_state(state_file)
    gan = lres_gan("tiny", seed=5, seq_length=16)
    gan.init_from(state_file)
    for name in ("G", "D", "G_ema"):
        ours = gan.modules()[name].state_dict()
        assert all(torch.equal(ours[k], v) for k, v in state["modules"][name].items()), name
    snapshot = sorted((out / "snapshots").glob("*.safetensors"))[-1]
    assert networks.open_checkpoint(snapshot).kinds == {"G_ema": "lres_generator"}
    gan = lres_gan("tiny", seed=6, seq_length=16)
    gan.init_from(snapshot)
    assert same(gan.G, gan.G_ema) and same(gan.G, networks.load(snapshot))


def test_init_errors_name_the_problem(synth, tmp_path):
    runner = CliRunner()
    base = ["lres", "--data", str(synth), "--outdir", str(tmp_path / "r"), "--preset", "tiny"]
    base += ["--batch", "2", "--steps", "1"]
    result = runner.invoke(train_main, [*base, "--init", str(CHECKPOINTS / "lres_G_ema.pkl")])
    assert result.exit_code == 1
    assert "its lres_generator has input_channels=512, but this run builds input_channels=32" in (
        result.output
    )
    assert "--preset paper" in result.output
    result = runner.invoke(train_main, [*base, "--init", str(CHECKPOINTS / "sres_G_ema.pkl")])
    assert result.exit_code == 1 and "but this stage trains a lres_generator" in result.output
    result = runner.invoke(train_main, [*base, "--init", str(tmp_path / "missing.pkl")])
    assert result.exit_code == 1 and "no such checkpoint" in result.output
