"""Import the original LongVideoGAN checkpoints without executing anything they contain.

The original project pickles each network as a call of
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, where `meta["module_src"]` is the
source text of the defining module; a plain `pickle.load` would execute it. Its pickles also hold
`torch.nn` containers (`ModuleList`, `Identity`), numpy scalars, dtypes and arrays, optimizer
states and a statistics collector with a compiled regular expression (`docs/checkpoints.md`).

`load_official` reads them with a restricted unpickler in which

* tensors are rebuilt by torch's own functions, the storage bytes read by
  `torch.load(weights_only=True, map_location="cpu")` (CUDA-saved files load on CPU-only
  machines);
* every other global of the namespaces original files use (`torch.nn.modules`, `torch_utils`,
  `dnnlib`, numpy's array and scalar reconstructors, `re._compile`) becomes an inert `Record` of
  its name, the arguments it was called with and the state it was given: nothing is imported
  and nothing is called. Any other global (`os.system`, `builtins.eval`, ...) rejects the file
  at once, before anything else is read;
* after loading, the records that are data are turned into data: persistent objects and `torch.nn`
  modules into `PersistentObject(class_name, state)`, numpy records into numpy values.

`flatten_state` turns the nested objects into the original dotted names, the name maps translate
those to this project's modules, and `import_network` builds the equivalent network.
"""

from __future__ import annotations

import _codecs
import _compat_pickle
import dataclasses
import io
import pickle
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from networks.validate import ValidationError, check_config, expected_shapes
from torch_utils.misc import load_tensors


class OfficialCheckpointError(ValueError):
    """The file is not an original checkpoint we can read, or holds something unsafe."""


@dataclass
class PersistentObject:
    """An original network object (or `torch.nn` container), as data: class name and `__dict__`."""

    class_name: str
    state: dict


class Record:
    """An inert stand-in for a global named by the pickle: what it was called with and given.

    Subclassed once per global (`_record_type`) so that the pickle's NEWOBJ, REDUCE, BUILD,
    APPEND and SETITEM opcodes all land here and only store their arguments."""

    module = name = ""

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self.args, self.kwargs, self.state, self.items, self.entries = args, kwargs, None, [], {}
        return self

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def append(self, item):
        self.items.append(item)

    def extend(self, items):
        self.items.extend(items)

    def __setitem__(self, key, value):
        self.entries[key] = value

    def __repr__(self) -> str:
        return f"Record({self.module}.{self.name})"


_RECORD_TYPES: dict[tuple[str, str], type] = {}


def _record_type(module: str, name: str) -> type:
    key = (module, name)
    if key not in _RECORD_TYPES:
        _RECORD_TYPES[key] = type("Record", (Record,), {"module": module, "name": name})
    return _RECORD_TYPES[key]


def _reconstruct_persistent_obj(meta: dict) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise OfficialCheckpointError(f"unsupported persistent object: {type(meta).__name__}")
    state = meta.get("state")
    return PersistentObject(
        str(meta.get("class_name", "?")), state if isinstance(state, dict) else {}
    )


def _load_storage_bytes(data: bytes):
    # The legacy torch.save format of one storage; torch's own restricted loader reads it.
    if not isinstance(data, bytes):
        raise OfficialCheckpointError("a tensor storage is not stored as bytes")
    return load_tensors(io.BytesIO(data))


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, backward_hooks=None, *_):
    # Hooks and extra metadata are dropped: an imported tensor is plain data.
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_):
    return data  # plain tensors: requires_grad is irrelevant for importing


def _latin1_encode(text, encoding="latin1", errors="strict"):
    # Protocol-2 pickles store bytes as `_codecs.encode(text, "latin1")`; nothing else is allowed.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise OfficialCheckpointError("unexpected use of _codecs.encode in the pickle")
    return _codecs.encode(text, "latin1")


class _EasyDict(dict):
    """Stand-in for `dnnlib.EasyDict` (a dict with attribute access) in training pickles."""


# Globals rebuilt for real: torch's tensor builders and plain containers.
_BUILDERS = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_encode,
    ("torch", "Size"): torch.Size,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
}
_NUMPY_MODULES = ("numpy", "numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NAMES = ("dtype", "ndarray", "scalar", "_reconstruct")


def _is_data_global(module: str, name: str) -> bool:
    """Globals whose records original checkpoints hold as data (never imported or called)."""
    return (
        module.startswith("torch.nn.modules.")  # ModuleList, Identity, ...
        or module.split(".")[0] in ("torch_utils", "dnnlib")  # training_stats.Collector, ...
        or (module in _NUMPY_MODULES and name in _NUMPY_NAMES)
        or (module, name) == ("re", "_compile")  # the Collector's regular expression
    )


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        # Python 2 names of protocol-2 pickles (`__builtin__.set`), as pickle's fix_imports does.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _BUILDERS:
            return _BUILDERS[(module, name)]
        if _is_data_global(module, name):
            return _record_type(module, name)
        raise OfficialCheckpointError(
            f"{self.path} is not an original LongVideoGAN checkpoint: it refers to {module}.{name}, "
            "which original checkpoints never contain; nothing in it was run"
        )

    def persistent_load(self, pid):
        raise OfficialCheckpointError(
            f"{self.path} is not an original LongVideoGAN checkpoint (it uses persistent ids, "
            "as torch.save files do); for this project's files use networks.load"
        )


_SIMPLE_DTYPES = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248]|c(8|16))")


def _numpy_dtype(record: Record) -> np.dtype:
    code = record.args[0] if record.args else None
    order = record.state[1] if isinstance(record.state, tuple) and len(record.state) > 1 else "="
    if not isinstance(code, str) or not _SIMPLE_DTYPES.fullmatch(code) or order not in "<>|=":
        raise OfficialCheckpointError(f"unsupported numpy dtype {code!r} in the pickle")
    return np.dtype(code).newbyteorder(order) if order in "<>" else np.dtype(code)


def _numpy_value(record: Record):
    """A numpy record as its value: a dtype, a Python scalar, or an array (numeric only)."""
    if record.name == "dtype":
        return _numpy_dtype(record)
    if record.name == "scalar" and len(record.args) == 2:
        dtype, raw = record.args
        if isinstance(dtype, np.dtype) and isinstance(raw, bytes) and len(raw) == dtype.itemsize:
            return np.frombuffer(raw, dtype=dtype)[0].item()
    if record.name == "_reconstruct" and isinstance(record.state, tuple) and len(record.state) == 5:
        _, shape, dtype, fortran, raw = record.state
        if isinstance(dtype, np.dtype) and isinstance(raw, bytes):
            count = int(np.prod(shape)) if shape else 1
            if count * dtype.itemsize == len(raw):
                array = np.frombuffer(raw, dtype=dtype).copy()
                return array.reshape(shape, order="F" if fortran else "C")
    raise OfficialCheckpointError(f"unsupported numpy object {record.module}.{record.name}")


def _materialise(obj, memo: dict):
    """Turn the data records of a freshly unpickled checkpoint into data, bottom-up. `memo`
    maps id(original) -> (original, result); holding the original keeps its id unique."""
    key = id(obj)
    if key in memo:
        return memo[key][1]
    if isinstance(obj, PersistentObject):
        memo[key] = (obj, obj)
        obj.state = {k: _materialise(v, memo) for k, v in obj.state.items()}
        return obj
    if isinstance(obj, Record):
        memo[key] = (obj, obj)
        obj.args = tuple(_materialise(a, memo) for a in obj.args)
        obj.state = _materialise(obj.state, memo)
        result = obj
        if obj.module.startswith("torch.nn.modules.") and isinstance(obj.state, dict):
            result = PersistentObject(obj.name, obj.state)
        elif obj.module in _NUMPY_MODULES and obj.name != "ndarray":
            result = _numpy_value(obj)
        memo[key] = (obj, result)
        return result
    if isinstance(obj, dict):
        memo[key] = (obj, obj)
        for k in list(obj):
            obj[k] = _materialise(obj[k], memo)
        return obj
    if isinstance(obj, list):
        memo[key] = (obj, obj)
        obj[:] = [_materialise(v, memo) for v in obj]
        return obj
    if isinstance(obj, tuple):
        result = tuple(_materialise(v, memo) for v in obj)
        memo[key] = (obj, result)
        return result
    return obj


def load_official(path: str | Path):
    """Unpickle an original checkpoint safely: `PersistentObject`s, tensors and plain data.

    Raises OfficialCheckpointError (a ValueError) with a one-line reason for an empty,
    truncated or foreign file, and for any file that names a global original checkpoints never
    contain; nothing in the file is run in any case."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if path.stat().st_size == 0:
        raise OfficialCheckpointError(f"{path} is empty; re-download or re-create it")
    try:
        with open(path, "rb") as f:
            data = _RestrictedUnpickler(f, path).load()
        return _materialise(data, {})
    except OfficialCheckpointError:
        raise
    except EOFError as e:
        raise OfficialCheckpointError(
            f"{path} is truncated (the pickle ends early); is the file complete? Re-download it."
        ) from e
    except (pickle.UnpicklingError, AttributeError, IndexError, KeyError, TypeError, ValueError,
            RuntimeError, RecursionError, MemoryError) as e:  # fmt: skip
        raise OfficialCheckpointError(
            f"{path} is not a readable original checkpoint ({type(e).__name__}: {e}); "
            "is the file complete? Re-download it."
        ) from e


def flatten_state(obj: PersistentObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """All parameters and buffers of a network object, under the original dotted names."""
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, value in _entries(obj.state.get(group)):
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value
    for name, child in _entries(obj.state.get("_modules")):
        if isinstance(child, PersistentObject):
            out.update(flatten_state(child, f"{prefix}{name}."))
    return out


def _entries(group) -> list[tuple[str, object]]:
    """The named entries of a `_parameters` / `_buffers` / `_modules` dict; a damaged file may
    hold anything there, and what is not a dict of named entries holds nothing."""
    return (
        [(k, v) for k, v in group.items() if isinstance(k, str)] if isinstance(group, dict) else []
    )


def find_networks(data) -> dict[str, PersistentObject]:
    """Network objects in an unpickled checkpoint by role: a `G_ema` pickle holds the network
    itself (role "G_ema"), a training pickle a dict {"G", "D", ...} (`docs/checkpoints.md`)."""
    if isinstance(data, PersistentObject):
        return {"G_ema": data}
    if isinstance(data, dict):
        return {
            k: v for k, v in data.items() if isinstance(v, PersistentObject) and network_kind(v)
        }
    return {}


def augment_probability(data) -> float | None:
    """The ADA probability `augment.p` of an original super-resolution training pickle."""
    augment = data.get("augment") if isinstance(data, dict) else None
    if isinstance(augment, PersistentObject):
        p = dict(_entries(augment.state.get("_buffers"))).get("p")
        if isinstance(p, torch.Tensor) and p.numel() == 1:
            return float(p.reshape(-1)[0])
    return None


# ------------------------------------------------------------------------------------------------
# Name maps: (regex on the original name, replacement) tried in order; `None` = derived buffer
# that this project recomputes from the config (it is compared, not imported).

NameMap = list[tuple[str, "str | Callable[[re.Match], str] | None"]]


MAPPING_NETWORK_MAP: NameMap = [(r"layer_(\d+)\.(weight|bias)", r"layers.\1.\2")]


def lres_generator_map(num_temporal: int = 6) -> NameMap:
    """Original low-res generator names -> ours; spatial layer i is our block num_temporal + i."""
    layer = r"(?P<kind>temporal|spatial)_layers\.(?P<i>\d+)\."

    def block(tail: str):
        def rename(m: re.Match) -> str:
            index = int(m["i"]) + (0 if m["kind"] == "temporal" else num_temporal)
            return f"blocks.{index}.{m.expand(tail)}"

        return rename

    return [
        (r"spatial_input", "spatial_const"),
        (r"w_to_temp_input\.(weight|bias)", r"temporal_input.\1"),
        (r"latent_mapping\.layer_(\d+)\.(weight|bias)", r"mapping.layers.\1.\2"),
        (r"to_rgb\.input_magnitude_ema\.magnitude_ema", "to_rgb.ema.value"),
        (r"to_rgb\.(weight|bias|affine\.weight|affine\.bias)", r"to_rgb.\1"),
        (layer + r"input_magnitude_ema_(?P<k>\d)\.magnitude_ema", block(r"ema\g<k>.value")),
        (layer + r"weight_skip", block("weight_skip")),
        (layer + r"(?P<p>weight|bias)_(?P<k>0|1)", block(r"\g<p>\g<k>")),
        (layer + r"affine_(?P<k>\d)\.(?P<p>weight|bias)", block(r"affine\g<k>.\g<p>")),
        (r"temporal_emb\.(blur_filters|output_scale)", None),
        (r".*\.(temporal|spatial)_upsample\.filter|temporal_downsample_latent\.filter", None),
    ]


def renames(names, name_map: NameMap) -> dict[str, str | None]:
    """Original name -> ours (None: a derived buffer that is recomputed, not imported). Unknown
    names are an error: nothing is silently lost."""
    out, unknown = {}, []
    for name in names:
        for pattern, repl in name_map:
            m = re.fullmatch(pattern, name)
            if m:
                out[name] = None if repl is None else repl(m) if callable(repl) else m.expand(repl)
                break
        else:
            unknown.append(name)
    if unknown:
        raise OfficialCheckpointError(f"unknown tensors in the original checkpoint: {unknown[:5]}")
    return out


def map_names(state: dict[str, torch.Tensor], name_map: NameMap) -> dict[str, torch.Tensor]:
    """Rename an original state dict to ours, dropping the derived buffers."""
    return {ours: state[name] for name, ours in renames(state, name_map).items() if ours}


LRES_DISCRIMINATOR_MAP: NameMap = [
    (r"blocks\.(\d+)\.conv_vid\.weight", r"blocks.\1.from_rgb.weight"),
    (r"blocks\.(\d+)\.conv_vid\._bias", r"blocks.\1.from_rgb.bias"),
    (r"blocks\.(\d+)\.conv_(0|1)\.weight", r"blocks.\1.conv\2.conv.weight"),
    (r"blocks\.(\d+)\.conv_(0|1)\._bias", r"blocks.\1.conv\2.conv.bias"),
    (r"blocks\.(\d+)\.conv_skip\.weight", r"blocks.\1.skip.conv.weight"),
    (r"epilogue\.conv1d_(\d+)\.weight", r"head.convs.\1.weight"),
    (r"epilogue\.conv1d_(\d+)\._bias", r"head.convs.\1.bias"),
    (r"epilogue\.linear_0\.(weight|bias)", r"head.fc.\1"),
    (r"epilogue\.linear_1\.(weight|bias)", r"head.out.\1"),
    (r".*\.downsample\._downsample_filter", None),
]


SRES_GENERATOR_MAP: NameMap = [
    (r"SG3\.mapping\.fc(\d+)\.(weight|bias)", r"mapping.layers.\1.\2"),
    (r"SG3\.mapping\.w_avg", "w_avg"),
    (r"SG3\.synthesis\.L(\d+)_\d+_\d+_\d+\.magnitude_ema", r"layers.\1.ema.value"),
    (
        r"SG3\.synthesis\.L(\d+)_\d+_\d+_\d+\.(weight|bias|affine\.weight|affine\.bias)",
        r"layers.\1.\2",
    ),
    (r"SG3\.synthesis\.L\d+_\d+_\d+_\d+\.(up|down)_filter", None),
    (r"SG3\.resamples\.\d+\.filter", None),
]


SRES_DISCRIMINATOR_MAP: NameMap = [
    (r"b(\d+)\.fromrgb\.(weight|bias)", r"blocks.b\1.from_rgb.\2"),
    (r"b(\d+)\.(conv0|conv1|skip)\.(weight|bias)", r"blocks.b\1.\2.\3"),
    (r"b4\.(conv|fc|out)\.(weight|bias)", r"epilogue.\1.\2"),
    (r"(b\d+\.)?(\w+\.)?resample_filter|upsample\.filter", None),
]


# ------------------------------------------------------------------------------------------------
# Whole networks: recognise the kind, rebuild our config from the tensor shapes, load weights.


def _config(cls: type, **fields):
    """Config `cls` of the fields read from the checkpoint, each checked for type and range
    before anything is built (docs/checkpoints.md#what-is-checked-before-a-file-is-trusted)."""
    try:
        return check_config(cls, fields)
    except ValidationError as e:
        raise OfficialCheckpointError(f"{e}; the file is damaged or was edited") from None


def _state_int(obj: PersistentObject, *names: str) -> int | None:
    for name in names:
        value = obj.state.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _count(state: dict, pattern: str) -> int:
    return len({m.group(1) for k in state if (m := re.match(pattern, k))})


def _lres_generator(obj: PersistentObject, state: dict, height: int | None, width: int | None):
    from networks.lres_generator import LowResGenerator, LowResGeneratorConfig
    from networks.noise import kaiser_bank

    num_t, num_s = (
        _count(state, r"temporal_layers\.(\d+)\."),
        _count(state, r"spatial_layers\.(\d+)\."),
    )
    channels = tuple(state[f"temporal_layers.{i}.weight_1"].shape[0] for i in range(num_t)) + tuple(
        state[f"spatial_layers.{i}.weight_1"].shape[0] for i in range(num_s)
    )
    bank = state["temporal_emb.blur_filters"]
    latent_dim = state["temporal_layers.0.affine_0.weight"].shape[1]
    kernel = state["temporal_layers.0.weight_0"].shape
    cfg = _config(
        LowResGeneratorConfig,
        height=_state_int(obj, "out_height", "height") or height or 36,
        width=_state_int(obj, "out_width", "width") or width or 64,
        input_channels=state["spatial_input"].shape[1],
        channels=channels,
        latent_dim=latent_dim,
        noise=dict(
            noise_channels=latent_dim // max(bank.shape[0], 1),
            num_filters=bank.shape[0],
            max_sampling_rate=2.0 * bank.shape[-1],
        ),
        mapping_layers=_count(state, r"latent_mapping\.layer_(\d+)\."),
        temporal_padding=_state_int(obj, "temporal_padding") or 8,
        temporal_kernel=kernel[2],
        spatial_kernel=kernel[3],
    )
    ours = torch.from_numpy(kaiser_bank(cfg.noise)[0]).float()
    if bank.numel() != ours.numel() or (
        not _one_value(bank) and (ours - bank.reshape(ours.shape).float()).abs().max() > 1e-5
    ):
        raise OfficialCheckpointError(
            "the checkpoint's noise filter bank differs from the paper's; unsupported variant"
        )
    if tuple(state["spatial_input"].shape[-2:]) != cfg.canvases()[0]:
        raise OfficialCheckpointError(
            f"the checkpoint's 4x-coarsest canvas {tuple(state['spatial_input'].shape[-2:])} does not fit "
            f"{cfg.height}x{cfg.width}; give the frame size it was trained at (res)"
        )
    return LowResGenerator, cfg


def _lres_discriminator(obj: PersistentObject, state: dict, height: int | None, width: int | None):
    from networks.lres_discriminator import LowResDiscriminator, LowResDiscriminatorConfig

    num_blocks = _count(state, r"blocks\.(\d+)\.")
    channels = (state["blocks.0.conv_vid.weight"].shape[0],) + tuple(
        state[f"blocks.{i}.conv_1.weight"].shape[0] for i in range(num_blocks)
    )
    head = state["epilogue.conv1d_1.weight"].shape
    cfg = _config(
        LowResDiscriminatorConfig,
        height=height or 36,
        width=width or 64,
        seq_length=_state_int(obj, "seq_length") or 128,
        channels=channels,
        temporal_kernel=state["blocks.1.conv_0.weight"].shape[2],
        spatial_kernel=state["blocks.1.conv_0.weight"].shape[3],
        head_channels=head[0],
        head_kernel=head[2],
        head_convs=_count(state, r"epilogue\.conv1d_(\d+)\."),
    )
    return LowResDiscriminator, cfg


_SG3_LAYER = re.compile(r"SG3\.synthesis\.L(\d+)_(\d+)_(\d+)_(\d+)\.weight")


def _one_value(t: torch.Tensor) -> bool:
    """A tensor that is one value broadcast over its shape (stride 0 everywhere): the compact
    "skeleton" form of test checkpoints. Such a derived buffer holds nothing to compare."""
    return t.numel() > 1 and all(s == 0 for s in t.stride())


def _check_filter(name: str, state: dict, ours) -> None:
    """Compare a derived filter buffer of the checkpoint (if it has it) with ours."""
    if name not in state or _one_value(state[name]):
        return
    theirs = state[name]
    if ours is None:
        raise OfficialCheckpointError(f"{name}: the checkpoint filters where we do not")
    ours = torch.as_tensor(ours, dtype=torch.float32)
    if theirs.shape != ours.shape or (theirs.float() - ours).abs().max() > 1e-6:
        raise OfficialCheckpointError(
            f"{name} differs from the filter this configuration designs; unsupported variant"
        )


def _sres_generator(obj: PersistentObject, state: dict, height: int | None, width: int | None):
    """Original `generator_sres.VideoGenerator` (the StyleGAN3 generator under `SG3.`)."""
    from networks.sres_generator import SuperResGenerator
    from torch_utils.resample import kaiser_filter

    cfg = _sres_generator_config(obj, state, height, width)
    for spec in cfg.layers:  # the derived filters the checkpoint holds must be ours
        prefix = f"SG3.synthesis.{spec.name}."
        _check_filter(prefix + "up_filter", state, spec.up_filter())
        _check_filter(prefix + "down_filter", state, spec.down_filter())
        mode, factor = spec.cond_resample
        _check_filter(
            f"SG3.resamples.{spec.index}.filter",
            state,
            None if mode == "none" else kaiser_filter(factor),
        )
    return SuperResGenerator, cfg


def _sres_generator_config(obj: PersistentObject, state: dict, height, width):
    """The config whose StyleGAN3 schedule gives exactly the checkpoint's layers: the layer
    names hold sizes and channels (`L{i}_{w}_{h}_{c}`), the LR size comes from the fields."""
    from networks.sres_generator import SuperResGeneratorConfig

    layers = sorted(
        (tuple(int(g) for g in m.groups()) for k in state if (m := _SG3_LAYER.fullmatch(k))),
    )
    if not layers or [i for i, *_ in layers] != list(range(len(layers))):
        raise OfficialCheckpointError("the SG3 synthesis layers are not numbered L0 ... LN")
    _, hr_w, hr_h, _ = layers[-1]
    if (height, width) != (None, None) and (height, width) != (hr_h, hr_w):
        raise OfficialCheckpointError(
            f"this super-resolution generator outputs {hr_h}x{hr_w}, not {height}x{width}"
        )
    fc0 = state["SG3.mapping.fc0.weight"]
    cond = state[f"SG3.synthesis.L0_{layers[0][1]}_{layers[0][2]}_{layers[0][3]}.affine.weight"]
    channels = [c for *_, c in layers[:-1]]
    base = dict(
        hr_height=hr_h,
        hr_width=hr_w,
        lr_height=_state_int(obj, "lr_height") or hr_h // 4,
        lr_width=_state_int(obj, "lr_width") or hr_w // 4,
        temporal_context=(cond.shape[0] // 3 - 1) // 2,
        z_dim=fc0.shape[1],
        w_dim=fc0.shape[0],
        mapping_layers=_count(state, r"SG3\.mapping\.fc(\d+)\."),
        num_layers=len(layers) - 1,
        channel_max=max(channels),
    )
    probe = _config(SuperResGeneratorConfig, **base, margin=0)
    margin = (layers[0][1] - probe.layers[0].out_size[1]) // 2  # the name holds w, h
    estimates = [
        round(2 * c * spec.out_cutoff)
        for c, spec in zip(channels, probe.layers)
        if c < max(channels)
    ]
    wanted = [f"L{i}_{w}_{h}_{c}" for i, w, h, c in layers]
    for channel_base in [2**k for k in range(4, 21)] + estimates:
        cfg = SuperResGeneratorConfig(**base, margin=margin, channel_base=channel_base)
        if [spec.name for spec in cfg.layers] == wanted:
            return _config(SuperResGeneratorConfig, **dataclasses.asdict(cfg))
    raise OfficialCheckpointError(
        "the checkpoint's layer sizes and channels do not follow the StyleGAN3 schedule of "
        "this project (docs/networks.md#layer-schedule); unsupported variant"
    )


def _sres_discriminator(obj: PersistentObject, state: dict, height: int | None, width: int | None):
    """Original `discriminator_sres.VideoDiscriminator` (StyleGAN2 ResNet D on stacked frames)."""
    from networks.sres_discriminator import SuperResDiscriminator, SuperResDiscriminatorConfig

    resolutions = sorted({int(k.split(".")[0][1:]) for k in state if re.match(r"b\d+\.", k)})
    if not resolutions:
        raise OfficialCheckpointError("the discriminator has no blocks b4 ... bN")
    res = max(resolutions)
    rgb = state[f"b{res}.fromrgb.weight"]
    channels = {r: state[f"b{r}.conv0.weight"].shape[0] for r in resolutions if r > 4}
    channel_max = max(channels.values())
    first = channels[res]
    hr_h = _state_int(obj, "hr_height") or height or round(res * 9 / 16)
    hr_w = _state_int(obj, "hr_width") or width or res
    cfg = _config(
        SuperResDiscriminatorConfig,
        hr_height=hr_h,
        hr_width=hr_w,
        lr_height=_state_int(obj, "lr_height") or hr_h // 4,
        lr_width=_state_int(obj, "lr_width") or hr_w // 4,
        seq_length=rgb.shape[1] // 6,
        channel_base=first * res if first < channel_max else channel_max * res,
        channel_max=channel_max,
    )
    fp16 = _state_int(obj, "num_fp16_res")
    if fp16 is not None:
        cfg = _config(
            SuperResDiscriminatorConfig, **{**dataclasses.asdict(cfg), "num_fp16_res": fp16}
        )
    if cfg.resolution != res or any(cfg.channels(r) != c for r, c in channels.items()):
        raise OfficialCheckpointError(
            "the checkpoint's block resolutions or channels do not fit a StyleGAN2 ResNet "
            f"discriminator for {hr_h}x{hr_w}; unsupported variant"
        )
    from torch_utils.resample import linear_filter

    _check_filter("upsample.filter", state, linear_filter(cfg.scale))
    return SuperResDiscriminator, cfg


_KINDS = {
    "lres_generator": ("temporal_emb.blur_filters", _lres_generator),
    "lres_discriminator": ("epilogue.linear_0.weight", _lres_discriminator),
    "sres_generator": ("SG3.mapping.fc0.weight", _sres_generator),
    "sres_discriminator": ("b4.fc.weight", _sres_discriminator),
}


def network_kind(obj: PersistentObject) -> str | None:
    """The project kind ("lres_generator", ...) an original network object imports as, from
    its tensor names alone; None for anything that is not a whole network."""
    names = flatten_state(obj)
    return next((kind for kind, (marker, _) in _KINDS.items() if marker in names), None)


def original_names(obj: PersistentObject) -> dict[str, str | None]:
    """Each original tensor name of a network object -> our name (None: a derived buffer,
    recomputed from the config rather than imported)."""
    state = flatten_state(obj)
    kind = network_kind(obj)
    if kind == "lres_generator":
        name_map = lres_generator_map(_count(state, r"temporal_layers\.(\d+)\."))
    else:
        name_map = {
            "lres_discriminator": LRES_DISCRIMINATOR_MAP,
            "sres_generator": SRES_GENERATOR_MAP,
            "sres_discriminator": SRES_DISCRIMINATOR_MAP,
        }[kind]
    return renames(state, name_map)


def import_network(obj: PersistentObject, height: int | None = None, width: int | None = None):
    """An original network object -> the equivalent network of this project, weights loaded.

    `height`/`width` are used only where the object does not record its size. The rebuilt config
    is checked field by field, and every tensor against the shape it implies (derived on the meta
    device), before the network is built
    (docs/checkpoints.md#what-is-checked-before-a-file-is-trusted)."""
    state = flatten_state(obj)
    kind = network_kind(obj)
    if kind is None:
        raise OfficialCheckpointError(
            f"the checkpoint holds a {obj.class_name} that is not a whole LongVideoGAN generator "
            "or discriminator; nothing to convert"
        )
    try:
        net_cls, cfg = _KINDS[kind][1](obj, state, height, width)
    except KeyError as e:
        raise OfficialCheckpointError(
            f"the checkpoint's {obj.class_name} lacks the tensor {e.args[0]} that a {kind} has"
        ) from None
    except IndexError as e:
        raise OfficialCheckpointError(
            f"the checkpoint's {obj.class_name} has tensors of unexpected rank ({e})"
        ) from None
    except OfficialCheckpointError:
        raise
    except (ValueError, ArithmeticError, TypeError) as e:
        raise OfficialCheckpointError(
            f"the checkpoint's {obj.class_name} does not describe a {kind} ({e}); "
            "the file is damaged or an unsupported variant"
        ) from None
    try:  # the shapes the config implies, without allocating (the meta device)
        ours = expected_shapes(net_cls, cfg)
    except ValidationError as e:
        raise OfficialCheckpointError(
            f"{e}; the file is damaged or an unsupported variant"
        ) from None
    mapped = {}
    for name, our_name in original_names(obj).items():
        if our_name is None:
            continue
        got = tuple(state[name].shape)
        want = ours.get(our_name)
        if want != got:
            raise OfficialCheckpointError(
                f"tensor {name} has shape {got} in the checkpoint, but the {kind} it describes "
                + (f"needs {want}" if want else "has no such tensor")
                + "; the file is damaged or an unsupported variant"
            )
        mapped[our_name] = state[name]
    missing = sorted(set(ours) - set(mapped))
    if missing:
        raise OfficialCheckpointError(
            f"the checkpoint's {kind} lacks tensors this architecture needs, e.g. {missing[0]}"
        )
    net = net_cls(cfg)  # every shape is known to fit: only now is memory allocated
    net.load_state_dict(mapped)
    return net.eval().requires_grad_(False)
