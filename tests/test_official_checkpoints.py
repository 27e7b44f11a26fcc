"""The original project's real checkpoint structure (tests/fixtures/official/checkpoints): every
network of every file imports with the right value in every tensor, through the one loader and
every entry point; hostile pickles run nothing; damaged ones get a one-line error."""

import builtins
import importlib
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from recipe import FIXTURES, original_lres_names, original_object, write_original_pickle

import networks
from generation.cli import main as generate_main
from networks.checkpoint import CheckpointError, open_checkpoint
from networks.cli import main as convert_main
from networks.lres_generator import LowResGenerator
from networks.official import (
    PersistentObject,
    find_networks,
    flatten_state,
    load_official,
    original_names,
)
from networks.presets import PRESETS

CHECKPOINTS = FIXTURES / "checkpoints"
VALUES = json.loads((CHECKPOINTS / "skeleton_values.json").read_text())
FILES = sorted(p.name for p in CHECKPOINTS.glob("*.pkl"))
ROLES = {
    "lres_G_ema": {"G_ema": "lres_generator"},
    "lres_train": {"G": "lres_generator", "D": "lres_discriminator"},
    "sres_G_ema": {"G_ema": "sres_generator"},
    "sres_train": {"G": "sres_generator", "D": "sres_discriminator"},
}


def _stem(name: str) -> str:
    return name.removesuffix(".pkl").removesuffix("_np1")


def test_all_eight_files_are_there():
    assert len(FILES) == 8 and {_stem(f) for f in FILES} == set(ROLES)


@pytest.mark.parametrize("name", FILES)
def test_every_network_imports_with_every_value(name):
    """Each tensor of each imported network carries the value skeleton_values.json lists for its
    original name (derived filter buffers are recomputed, not imported, and are skipped)."""
    values = VALUES[_stem(name)]
    ckpt = open_checkpoint(CHECKPOINTS / name)
    assert ckpt.format == "original pickle" and ckpt.kinds == ROLES[_stem(name)]
    nets = find_networks(load_official(CHECKPOINTS / name))
    for role, kind in ckpt.kinds.items():
        net = ckpt.network(role)
        assert net.kind == kind and not net.training
        assert net.cfg == getattr(PRESETS["paper"], kind)  # the paper's networks
        ours = net.state_dict()
        prefix = "" if role == "G_ema" else f"{role}."
        state = flatten_state(nets[role])
        imported = 0
        for original, our_name in original_names(nets[role]).items():
            expected = values[prefix + original]
            if our_name is None:
                continue
            assert torch.all(ours[our_name] == torch.tensor(expected, dtype=torch.float32)), (
                f"{name}: {prefix}{original} -> {our_name}"
            )
            imported += 1
        assert imported == len(ours)  # every tensor of our network came from the file
        assert {k for k in values if k.startswith(prefix)} >= {prefix + k for k in state}
    if _stem(name) == "sres_train":
        assert ckpt.info == {"augment_p": pytest.approx(0.123)}


@pytest.mark.parametrize("stem", sorted(ROLES))
def test_numpy1_protocol2_files_equal_numpy2_protocol4_files(stem):
    a, b = (
        open_checkpoint(CHECKPOINTS / f"{stem}.pkl"),
        open_checkpoint(CHECKPOINTS / f"{stem}_np1.pkl"),
    )
    for role in a.kinds:
        sa, sb = a.network(role).state_dict(), b.network(role).state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_real_structure_is_read_as_data():
    """ModuleLists become network objects, numpy fields become numpy values, and the stats
    collector with its regular expression stays an inert record."""
    data = load_official(CHECKPOINTS / "sres_train_np1.pkl")
    assert sorted(data) == [
        "D",
        "D_opt",
        "G",
        "G_opt",
        "augment",
        "in_augment",
        "real_sign_collector",
    ]
    resamples = data["G"].state["_modules"]["SG3"].state["_modules"]["resamples"]
    assert isinstance(resamples, PersistentObject) and resamples.class_name == "ModuleList"
    layer = data["G"].state["_modules"]["SG3"].state["_modules"]["synthesis"].state["_modules"]
    fields = layer["L0_36_29_512"].state
    assert fields["use_fp16"] is False and list(fields["in_size"]) == [36, 29]
    collector = data["real_sign_collector"]
    assert collector.module == "torch_utils.training_stats" and collector.name == "Collector"
    assert collector.state["_regex"].args == ("loss/D_sign_real", 32)


def test_one_loader_picks_roles(tmp_path):
    train = CHECKPOINTS / "lres_train.pkl"
    assert networks.load(train, kind="lres_generator").kind == "lres_generator"  # G stands in
    assert networks.load(train, net="D").kind == "lres_discriminator"
    assert networks.load(train, kind="lres_discriminator").kind == "lres_discriminator"
    with pytest.raises(
        CheckpointError, match=r"has no network 'G_ema'; it has G \(lres_generator\), D"
    ):
        networks.load(train, net="G_ema")
    with pytest.raises(CheckpointError, match="but a sres_generator is needed here"):
        networks.load(train, kind="sres_generator")
    # A converted network keeps its role; the safetensors file loads through the same function.
    out = tmp_path / "d.safetensors"
    result = CliRunner().invoke(
        convert_main, ["official", str(train), "--out", str(out), "--net", "D"]
    )
    assert result.exit_code == 0, result.output
    assert "lres_discriminator (D), 46,424,609 parameters" in result.output
    assert open_checkpoint(out).kinds == {"D": "lres_discriminator"}
    with pytest.raises(CheckpointError, match="holds a lres_discriminator, but a lres_generator"):
        networks.load(out, kind="lres_generator")


def test_convert_and_info_on_every_kind(tmp_path):
    runner = CliRunner()
    result = runner.invoke(convert_main, ["info", str(CHECKPOINTS / "sres_train_np1.pkl")])
    assert result.exit_code == 0, result.output
    assert "G: sres_generator, 27,169,940 parameters" in result.output
    assert "D: sres_discriminator, 23,997,825 parameters" in result.output
    assert "augment_p: 0.123" in result.output
    out = tmp_path / "s.safetensors"
    result = runner.invoke(
        convert_main, ["official", str(CHECKPOINTS / "sres_G_ema.pkl"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    S = networks.load(out, kind="sres_generator")
    ref = open_checkpoint(CHECKPOINTS / "sres_G_ema.pkl").network("G_ema").state_dict()
    assert all(torch.equal(S.state_dict()[k], v) for k, v in ref.items())


# ------------------------------------------------------------------------------------------------
# Hostile pickles: nothing runs, and the file is rejected with one line.


class _Payload:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.eval": _Payload(builtins.eval, code),
        "builtins.exec": _Payload(builtins.exec, code),
        "subprocess.Popen": _Payload(subprocess.Popen, ["touch", str(marker)]),
        "importlib.import_module": _Payload(importlib.import_module, "antigravity"),
    }


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize(
    "payload",
    ["os.system", "builtins.eval", "builtins.exec", "subprocess.Popen", "importlib.import_module"],
)
def test_crafted_payloads_do_nothing_and_are_rejected(tmp_path, payload, protocol):
    marker = tmp_path / "pwned"
    obj = _payloads(marker)[payload]
    path = tmp_path / "evil.pkl"
    # The payload hides inside the structure a real training pickle has.
    real = load_official(CHECKPOINTS / "lres_G_ema.pkl")
    assert isinstance(real, PersistentObject)
    path.write_bytes(pickle.dumps({"G_opt": {"state": obj}, "D_opt": {}}, protocol=protocol))
    modules_before = set(sys.modules)
    with pytest.raises(CheckpointError) as error:
        networks.load(path)
    message = str(error.value)
    assert "is not an original LongVideoGAN checkpoint" in message and "\n" not in message
    assert not marker.exists()
    assert "antigravity" not in sys.modules and set(sys.modules) <= modules_before | {"antigravity"}
    result = CliRunner().invoke(
        convert_main, ["official", str(path), "--out", str(tmp_path / "o.safetensors")]
    )
    assert result.exit_code != 0 and "not an original LongVideoGAN checkpoint" in result.output
    assert not (tmp_path / "o.safetensors").exists() and not marker.exists()


def test_globals_of_trusted_namespaces_stay_inert(tmp_path):
    """A reduce of a function in a namespace whose records original files hold as data
    (here torch_utils) is recorded, never called."""
    from torch_utils import misc

    marker = tmp_path / "written"
    path = tmp_path / "sneaky.pkl"
    path.write_bytes(pickle.dumps({"G": _Payload(misc.write_atomic, str(marker), "x")}))
    with pytest.raises(CheckpointError, match="holds no LongVideoGAN network"):
        networks.load(path)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------
# Damaged or wrong files: one line that names the problem.


def test_empty_truncated_and_networkless_pickles(tmp_path):
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        networks.load(empty)
    cut = tmp_path / "cut.pkl"
    cut.write_bytes((CHECKPOINTS / "lres_G_ema.pkl").read_bytes()[:30_000])
    with pytest.raises(CheckpointError, match="truncated|complete"):
        networks.load(cut)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(
        CheckpointError, match=r"holds no LongVideoGAN network \(a dict with keys \['weights'\]\)"
    ):
        networks.load(plain)


def test_wrong_tensor_shape_names_the_tensor_and_both_shapes(tmp_path):
    G = LowResGenerator(PRESETS["tiny"].lres_generator)
    state = original_lres_names(G)
    state["temporal_layers.2.weight_0"] = torch.zeros(3, 3, 3, 3, 3)
    path = tmp_path / "bad.pkl"
    write_original_pickle(path, original_object(state, "VideoGenerator"))
    with pytest.raises(CheckpointError) as error:
        networks.load(path)
    message = str(error.value)
    assert "temporal_layers.2.weight_0 has shape (3, 3, 3, 3, 3)" in message
    assert f"needs {tuple(G.blocks[2].weight0.shape)}" in message, message


def test_generate_refuses_the_wrong_stage(tmp_path):
    runner = CliRunner()
    out = str(tmp_path / "x.mp4")
    lres, sres = str(CHECKPOINTS / "lres_G_ema.pkl"), str(CHECKPOINTS / "sres_G_ema.pkl")
    result = runner.invoke(generate_main, ["--lres", sres, "--frames", "1", "--out", out])
    assert result.exit_code != 0
    assert "--lres:" in result.output and "but a lres_generator is needed here" in result.output
    result = runner.invoke(generate_main, ["--lres", lres, "--sres", lres, "--out", out])
    assert result.exit_code != 0
    assert "--sres:" in result.output and "but a sres_generator is needed here" in result.output
    result = runner.invoke(
        generate_main,
        [
            "--lres",
            str(CHECKPOINTS / "lres_train.pkl"),
            "--sres",
            str(CHECKPOINTS / "sres_train.pkl"),
            "--frames",
            "0",
            "--out",
            out,
        ],
    )
    assert result.exit_code != 0 and not os.path.exists(out)
