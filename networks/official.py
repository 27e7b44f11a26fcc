"""Import the original LongVideoGAN checkpoints without executing anything they contain.

The original project pickles each network as a call of
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, where `meta["module_src"]` is the
source text of the defining module; a plain `pickle.load` would execute it. `load_official`
instead uses a restricted unpickler that

* rebuilds tensors (`torch._utils._rebuild_tensor_v2` / `_rebuild_parameter`, with the storage
  bytes read by `torch.load(weights_only=True, map_location="cpu")`, so CUDA-saved checkpoints
  load on CPU-only machines),
* records each persistent object as a `PersistentObject(class_name, state)` without running
  its source, and
* refuses every other global with a clear error.

`flatten_state` turns the nested objects into the original dotted names, and the `map_*`
functions translate those names to this project's modules.
"""

from __future__ import annotations

import io
import pickle
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch


class OfficialCheckpointError(ValueError):
    """The file is not an original checkpoint we can read, or holds something unsafe."""


@dataclass
class PersistentObject:
    """An original network object, as data: its class name and its `__dict__`."""

    class_name: str
    state: dict


def _reconstruct_persistent_obj(meta: dict) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise OfficialCheckpointError(f"unsupported persistent object: {type(meta).__name__}")
    return PersistentObject(meta.get("class_name", "?"), meta.get("state") or {})


def _load_storage_bytes(data: bytes):
    # The legacy torch.save format of one storage; torch's own restricted loader reads it.
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _rebuild_parameter(data, requires_grad, backward_hooks, *args):
    return data  # plain tensors: requires_grad is irrelevant for importing


class _EasyDict(dict):
    """Stand-in for `dnnlib.EasyDict` (a dict with attribute access) in training pickles."""


_ALLOWED = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch", "Size"): torch.Size,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise OfficialCheckpointError(
                f"refusing to load global {module}.{name}: original checkpoints only contain "
                "tensors and network state, so this file is not one (or it was tampered with)"
            ) from None

    def persistent_load(self, pid):
        raise OfficialCheckpointError(f"unexpected persistent id {pid!r} in the pickle")


def load_official(path: str | Path):
    """Unpickle an original checkpoint safely; returns `PersistentObject`s and plain data."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f).load()
    except OfficialCheckpointError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        IndexError,
        TypeError,
        RuntimeError,
    ) as e:
        raise OfficialCheckpointError(
            f"{path} is not a readable original checkpoint ({type(e).__name__}: {e}); "
            "is the file complete? Re-download it."
        ) from e


def flatten_state(obj: PersistentObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """All parameters and buffers of a network object, under the original dotted names."""
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, value in (obj.state.get(group) or {}).items():
            if value is not None:
                out[prefix + name] = value
    for name, child in (obj.state.get("_modules") or {}).items():
        if isinstance(child, PersistentObject):
            out.update(flatten_state(child, f"{prefix}{name}."))
    return out


def find_networks(data) -> dict[str, PersistentObject]:
    """Network objects in an unpickled checkpoint: the object itself, or the values of a dict
    (training pickles hold {"G": ..., "D": ..., "G_ema": ...})."""
    if isinstance(data, PersistentObject):
        return {"": data}
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if isinstance(v, PersistentObject)}
    return {}


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


def map_names(state: dict[str, torch.Tensor], name_map: NameMap) -> dict[str, torch.Tensor]:
    """Rename an original state dict; unknown names are an error (nothing is silently lost)."""
    out, unknown = {}, []
    for name, value in state.items():
        for pattern, repl in name_map:
            m = re.fullmatch(pattern, name)
            if m:
                if repl is not None:
                    out[repl(m) if callable(repl) else m.expand(repl)] = value
                break
        else:
            unknown.append(name)
    if unknown:
        raise OfficialCheckpointError(f"unknown tensors in the original checkpoint: {unknown[:5]}")
    return out


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


# ------------------------------------------------------------------------------------------------
# Whole networks: recognise the kind, rebuild our config from the tensor shapes, load weights.


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
    from networks.noise import NoiseBankConfig

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
    cfg = LowResGeneratorConfig(
        height=height or _state_int(obj, "out_height", "height") or 36,
        width=width or _state_int(obj, "out_width", "width") or 64,
        input_channels=state["spatial_input"].shape[1],
        channels=channels,
        latent_dim=latent_dim,
        noise=NoiseBankConfig(
            noise_channels=latent_dim // bank.shape[0],
            num_filters=bank.shape[0],
            max_sampling_rate=2.0 * bank.shape[-1],
        ),
        mapping_layers=_count(state, r"latent_mapping\.layer_(\d+)\."),
        temporal_padding=_state_int(obj, "temporal_padding") or 8,
        temporal_kernel=kernel[2],
        spatial_kernel=kernel[3],
    )
    net = LowResGenerator(cfg)
    ours = net.noise_bank.filters.float()
    theirs = bank.reshape(ours.shape).float()
    if (ours - theirs).abs().max() > 1e-5:
        raise OfficialCheckpointError(
            "the checkpoint's noise filter bank differs from the paper's; unsupported variant"
        )
    if tuple(state["spatial_input"].shape[-2:]) != cfg.canvases()[0]:
        raise OfficialCheckpointError(
            f"the checkpoint's 4x-coarsest canvas {tuple(state['spatial_input'].shape[-2:])} does not fit "
            f"{cfg.height}x{cfg.width}; pass the right --height/--width"
        )
    return net, lres_generator_map(num_t)


def _lres_discriminator(obj: PersistentObject, state: dict, height: int | None, width: int | None):
    from networks.lres_discriminator import LowResDiscriminator, LowResDiscriminatorConfig

    num_blocks = _count(state, r"blocks\.(\d+)\.")
    channels = (state["blocks.0.conv_vid.weight"].shape[0],) + tuple(
        state[f"blocks.{i}.conv_1.weight"].shape[0] for i in range(num_blocks)
    )
    head = state["epilogue.conv1d_1.weight"].shape
    cfg = LowResDiscriminatorConfig(
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
    return LowResDiscriminator(cfg), LRES_DISCRIMINATOR_MAP


_KINDS = [
    ("temporal_emb.blur_filters", _lres_generator),
    ("epilogue.linear_0.weight", _lres_discriminator),
]


def import_network(obj: PersistentObject, height: int | None = None, width: int | None = None):
    """An original network object -> the equivalent network of this project, weights loaded."""
    state = flatten_state(obj)
    for marker, build in _KINDS:
        if marker in state:
            net, name_map = build(obj, state, height, width)
            net.load_state_dict(map_names(state, name_map))
            return net.eval().requires_grad_(False)
    raise OfficialCheckpointError(
        f"the checkpoint holds a {obj.class_name} that is not a whole LongVideoGAN generator or "
        "discriminator; nothing to convert"
    )
