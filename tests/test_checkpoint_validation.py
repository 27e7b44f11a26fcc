"""Checkpoints are checked before they are trusted
(docs/checkpoints.md#what-is-checked-before-a-file-is-trusted): damaged or edited `.safetensors`
files, original pickles and training states are refused with one line naming the file and the
field or tensor, before any network is built."""

import json
import resource
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner
from recipe import original_lres_names, original_object, write_original_pickle
from safetensors import safe_open
from safetensors.torch import save_file

import networks
from generation.cli import main as generate_main
from networks.checkpoint import CheckpointError, _registry
from networks.cli import main as convert_main
from networks.lres_generator import LowResGenerator
from networks.presets import PRESETS
from networks.sres_generator import SuperResGenerator
from networks.validate import expected_shapes

DAMAGED = "the file is damaged or was edited"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny low-res generator, saved as this project's .safetensors."""
    root = tmp_path_factory.mktemp("ckpt")
    G = LowResGenerator(PRESETS["tiny"].lres_generator)
    return G, networks.save(G, root / "lres.safetensors")


def _rewrite(src, dst, meta_edit=None, tensor_edit=None):
    """A copy of the .safetensors file `src` with its metadata and tensors edited."""
    with safe_open(str(src), framework="pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    if meta_edit:
        meta_edit(meta)
    if tensor_edit:
        tensor_edit(tensors)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def _config(**fields):
    def edit(meta):
        meta["config"] = json.dumps({**json.loads(meta["config"]), **fields})

    return edit


def _refused(path, *parts):
    """networks.load refuses `path` with one CheckpointError line holding the file and `parts`."""
    with pytest.raises(CheckpointError) as error:
        networks.load(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message
    for part in parts:
        assert part in message, message
    return message


def test_a_config_edited_to_a_billion_channels_fails_at_once(tiny, tmp_path):
    _, src = tiny
    path = _rewrite(src, tmp_path / "big.safetensors", _config(input_channels=10**9))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    _refused(path, "config field 'input_channels' = 1000000000 is out of range (1..4096)", DAMAGED)
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 50 * 1024


CONFIG_CASES = {
    "bad JSON": (lambda m: m.update(config="{not json"), "the config is not valid JSON"),
    "missing kind": (lambda m: m.pop("kind"), "metadata 'kind' is missing"),
    "missing config": (lambda m: m.pop("config"), "metadata 'config' is missing"),
    "unknown kind": (lambda m: m.update(kind="vae"), "unknown network kind 'vae'"),
    "config not an object": (lambda m: m.update(config="[1, 2]"), "is a list, not an object"),
    "string for int": (_config(height="36"), "field 'height' = '36' is a string, not an integer"),
    "bool for int": (_config(mapping_layers=True), "'mapping_layers' = True is a bool, not an"),
    "float for int": (_config(width=64.5), "field 'width' = 64.5 is a float, not an integer"),
    "NaN float": (_config(output_scale=float("nan")), "'output_scale' = nan is not a finite"),
    "string in a tuple": (_config(channels=["32"] * 10), "'channels[0]' = '32' is a string"),
    "list of wrong length": (_config(channels=[8, 8, 8]), "channels needs 10 entries, got 3"),
    "zero size": (_config(height=0), "field 'height' = 0 is out of range (1..4096)"),
    "negative size": (_config(width=-64), "field 'width' = -64 is out of range (1..4096)"),
    "nested field": (_config(noise={"num_filters": 10**6}), "'noise.num_filters' = 1000000"),
    "newer field": (_config(colour_depth=10), "has no fields ['colour_depth']"),
    "bad version": (lambda m: m.update(format_version="one"), "'format_version' = 'one' is not"),
    "bad role": (lambda m: m.update(role="boss"), "metadata 'role' = 'boss' is none of"),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_malformed_metadata_is_one_line(tiny, tmp_path, case):
    edit, expected = CONFIG_CASES[case]
    path = _rewrite(tiny[1], tmp_path / "bad.safetensors", edit)
    _refused(path, expected)


TENSOR_CASES = {
    "wrong shape": (
        lambda t: t.update(spatial_const=torch.zeros(1, 2, 3)),
        "tensor 'spatial_const' has shape (1, 2, 3) in the file, but the lres_generator its "
        "config describes needs (1, 32, 1, 3, 4)",
    ),
    "missing tensor": (
        lambda t: t.pop("to_rgb.bias"),
        "tensor 'to_rgb.bias' of the lres_generator is missing",
    ),
    "extra tensor": (
        lambda t: t.update(extra=torch.zeros(2)),
        "tensor 'extra' is not part of a lres_generator",
    ),
}


@pytest.mark.parametrize("case", TENSOR_CASES)
def test_tensor_table_is_checked_against_the_config(tiny, tmp_path, case):
    edit, expected = TENSOR_CASES[case]
    path = _rewrite(tiny[1], tmp_path / "bad.safetensors", tensor_edit=edit)
    _refused(path, expected, DAMAGED)


def test_other_kinds_are_checked_too(tmp_path):
    S = SuperResGenerator(PRESETS["tiny"].sres_generator)
    src = networks.save(S, tmp_path / "sres.safetensors")
    path = _rewrite(src, tmp_path / "bad.safetensors", _config(channel_max=10**9))
    _refused(path, "config field 'channel_max' = 1000000000 is out of range (1..4096)")
    assert networks.load(src, kind="sres_generator").cfg == S.cfg  # the untouched file loads


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_shapes_without_allocating_are_the_real_shapes(preset):
    for kind, (net_cls, _) in _registry().items():
        cfg = getattr(PRESETS[preset], kind)
        real = {k: tuple(v.shape) for k, v in net_cls(cfg).state_dict().items()}
        assert expected_shapes(net_cls, cfg) == real, kind


def test_checking_shapes_costs_no_dynamo_import(tiny):
    """torch's Python meta kernels import torch._dynamo (seconds); the shape check avoids them."""
    code = (
        "import sys, networks; networks.load(sys.argv[1]); "
        "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tiny[1])], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------------------------
# Original pickles: the config rebuilt from the file is checked before anything is built.


def _original(tmp_path, name, edit=None, **fields):
    G = LowResGenerator(PRESETS["tiny"].lres_generator)
    state = original_lres_names(G)
    if edit:
        edit(state)
    path = tmp_path / name
    write_original_pickle(path, original_object(state, "VideoGenerator", **fields))
    return path


def test_original_pickle_with_a_huge_frame_size(tmp_path):
    path = _original(tmp_path, "huge.pkl", out_height=10**6, out_width=64)
    start = time.perf_counter()
    _refused(path, "G_ema: config field 'height' = 1000000 is out of range (1..4096)", DAMAGED)
    assert time.perf_counter() - start < 1.0


def test_original_pickle_with_a_missing_tensor(tmp_path):
    path = _original(tmp_path, "nomap.pkl", lambda s: s.pop("temporal_layers.0.affine_0.weight"))
    _refused(path, "lacks the tensor temporal_layers.0.affine_0.weight that a lres_generator has")
    path = _original(tmp_path, "norgb.pkl", lambda s: s.pop("to_rgb.bias"))
    _refused(path, "lacks tensors this architecture needs, e.g. to_rgb.bias")


def test_original_pickle_with_a_wrong_shape(tmp_path):
    path = _original(
        tmp_path, "shape.pkl", lambda s: s.update({"to_rgb.weight": torch.zeros(3, 7, 1, 1, 1)})
    )
    _refused(
        path, "tensor to_rgb.weight has shape (3, 7, 1, 1, 1) in the checkpoint", "needs (3, 8"
    )


def test_original_pickle_with_a_non_dict_buffer_table(tmp_path):
    """A `_buffers` that is not a dict holds nothing: its tensors are then missing."""
    G = LowResGenerator(PRESETS["tiny"].lres_generator)
    obj = original_object(original_lres_names(G), "VideoGenerator")
    ema = obj.meta["state"]["_modules"]["to_rgb"].meta["state"]["_modules"]["input_magnitude_ema"]
    ema.meta["state"]["_buffers"] = [1, 2]
    path = tmp_path / "odd.pkl"
    write_original_pickle(path, obj)
    _refused(path, "lacks tensors this architecture needs, e.g. to_rgb.ema.value")


# ------------------------------------------------------------------------------------------------
# Training states of lvg-train, read through networks.load.


def _state(tmp_path, G, record_edit=None, module_edit=None):
    record, module = networks.network_record(G), dict(G.state_dict())
    if record_edit:
        record_edit(record)
    if module_edit:
        module_edit(module)
    path = tmp_path / "state-00000001.pt"
    torch.save({"networks": {"G": record}, "modules": {"G": module}, "step": 1}, path)
    return path


def test_training_state_config_and_tensors_are_checked(tmp_path):
    G = LowResGenerator(PRESETS["tiny"].lres_generator)
    assert networks.load(_state(tmp_path, G), net="G").cfg == G.cfg

    def huge(record):
        record["config"] = json.dumps({**json.loads(record["config"]), "latent_dim": 10**9})

    _refused(_state(tmp_path, G, huge), "G: config field 'latent_dim' = 1000000000 is out of")
    _refused(_state(tmp_path, G, lambda r: r.pop("config")), "G: the network config is missing")
    _refused(
        _state(tmp_path, G, module_edit=lambda m: m.update(spatial_const=torch.zeros(1))),
        "G: tensor 'spatial_const' has shape (1,) in the file",
    )
    _refused(
        _state(tmp_path, G, module_edit=lambda m: m.update(spatial_const="x")),
        "G: the state dict is missing or holds something other than named tensors",
    )


# ------------------------------------------------------------------------------------------------
# Every CLI that loads a checkpoint: one line, non-zero exit, no traceback.


def _bad_files(tiny, tmp_path):
    return {
        "big": _rewrite(tiny[1], tmp_path / "big.safetensors", _config(input_channels=10**9)),
        "json": _rewrite(tiny[1], tmp_path / "json.safetensors", _config(height="36")),
        "shape": _rewrite(
            tiny[1], tmp_path / "shape.safetensors", tensor_edit=TENSOR_CASES["wrong shape"][0]
        ),
        "pickle": _original(tmp_path, "huge.pkl", out_height=10**6, out_width=64),
        "state": _state(
            tmp_path,
            tiny[0],
            lambda r: r.update(config=r["config"].replace('"height": 36', '"height": -1')),
        ),
    }


def _one_error_line(result, path, field):
    assert result.exit_code not in (0, None) and result.exception is not None
    assert isinstance(result.exception, SystemExit), result.exception  # click's error exit
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert str(path) in lines[0] and field in lines[0], lines[0]


@pytest.mark.parametrize("command", ["convert-info", "generate"])
def test_clis_give_one_line(tiny, tmp_path, command):
    fields = {"big": "'input_channels'", "json": "'height'", "shape": "'spatial_const'"}
    fields |= {"pickle": "'height'", "state": "'height'"}
    for name, path in _bad_files(tiny, tmp_path).items():
        if command == "convert-info":
            result = CliRunner().invoke(convert_main, ["info", str(path)])
        else:
            out = tmp_path / f"{name}.mp4"
            args = ["--lres", str(path), "--frames", "1", "--out", str(out)]
            result = CliRunner().invoke(generate_main, args)
            assert not out.exists()
        _one_error_line(result, path, fields[name])


def test_real_process_exits_with_one_line(tiny, tmp_path):
    path = _rewrite(tiny[1], tmp_path / "big.safetensors", _config(input_channels=10**9))
    proc = subprocess.run(
        [sys.executable, "-m", "networks.cli", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"Error: {path}: config field 'input_channels' = 1000000000 is out of range (1..4096); "
        f"{DAMAGED}"
    ]


def test_train_init_and_metrics_give_one_line(tiny, synth, tmp_path):
    from metrics.cli import main as metrics_main
    from training.cli import main as train_main

    path = _rewrite(tiny[1], tmp_path / "big.safetensors", _config(input_channels=10**9))
    expected = f"{path}: config field 'input_channels' = 1000000000 is out of range (1..4096)"
    train = ["lres", "--data", str(synth), "--outdir", str(tmp_path / "run"), "--preset", "tiny"]
    result = CliRunner().invoke(train_main, [*train, "--steps", "1", "--init", str(path)])
    _one_error_line(result, path, "'input_channels'")
    assert expected in result.output
    calc = ["calc", "-m", "colorsim2_16f", "--data", str(synth), "--lres", str(path)]
    result = CliRunner().invoke(metrics_main, [*calc, "--no-cache", "--quiet"])
    _one_error_line(result, path, "'input_channels'")
    assert expected in result.output
