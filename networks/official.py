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

import dataclasses
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


_SG3_LAYER = re.compile(r"SG3\.synthesis\.L(\d+)_(\d+)_(\d+)_(\d+)\.weight")


def _check_filter(name: str, state: dict, ours) -> None:
    """Compare a derived filter buffer of the checkpoint (if it has it) with ours."""
    if name not in state:
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
    """Original `generator_sres.VideoGenerator` (the StyleGAN3 generator under `SG3.`). The
    layer names hold the sizes and channels; the LR size comes from the object's fields."""
    from networks.sres_generator import SuperResGenerator, SuperResGeneratorConfig

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
    probe = SuperResGeneratorConfig(**base, margin=0)
    margin = (layers[0][1] - probe.layers[0].out_size[0]) // 2
    cfg = None
    estimates = [
        round(2 * c * spec.out_cutoff)
        for c, spec in zip(channels, probe.layers)
        if c < max(channels)
    ]
    for channel_base in [2**k for k in range(4, 21)] + estimates:
        candidate = SuperResGeneratorConfig(**base, margin=margin, channel_base=channel_base)
        names = [spec.name for spec in candidate.layers]
        if names == [f"L{i}_{w}_{h}_{c}" for i, w, h, c in layers]:
            cfg = candidate
            break
    if cfg is None:
        raise OfficialCheckpointError(
            "the checkpoint's layer sizes and channels do not follow the StyleGAN3 schedule of "
            "this project (spec §4.2); unsupported variant"
        )
    net = SuperResGenerator(cfg)
    for layer in net.layers:
        prefix = f"SG3.synthesis.{layer.spec.name}."
        for which, ours in (("up", layer.up_filter), ("down", layer.down_filter)):
            name = f"{prefix}{which}_filter"
            _check_filter(name, state, ours)
    from torch_utils.resample import kaiser_filter

    for i, spec in enumerate(cfg.layers):
        name = f"SG3.resamples.{i}.filter"
        mode, factor = spec.cond_resample
        _check_filter(name, state, None if mode == "none" else kaiser_filter(factor))
    return net, SRES_GENERATOR_MAP


def _sres_discriminator(obj: PersistentObject, state: dict, height: int | None, width: int | None):
    """Original `discriminator_sres.VideoDiscriminator` (StyleGAN2 ResNet D on stacked frames)."""
    from networks.sres_discriminator import SuperResDiscriminator, SuperResDiscriminatorConfig

    resolutions = sorted({int(k.split(".")[0][1:]) for k in state if re.match(r"b\d+\.", k)})
    res = max(resolutions)
    rgb = state[f"b{res}.fromrgb.weight"]
    channels = {r: state[f"b{r}.conv0.weight"].shape[0] for r in resolutions if r > 4}
    channel_max = max(channels.values())
    first = channels[res]
    hr_h = _state_int(obj, "hr_height") or height or round(res * 9 / 16)
    hr_w = _state_int(obj, "hr_width") or width or res
    cfg = SuperResDiscriminatorConfig(
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
        cfg = dataclasses.replace(cfg, num_fp16_res=fp16)
    if cfg.resolution != res or any(cfg.channels(r) != c for r, c in channels.items()):
        raise OfficialCheckpointError(
            "the checkpoint's block resolutions or channels do not fit a StyleGAN2 ResNet "
            f"discriminator for {hr_h}x{hr_w}; unsupported variant"
        )
    from torch_utils.resample import linear_filter

    _check_filter("upsample.filter", state, linear_filter(cfg.scale))
    return SuperResDiscriminator(cfg), SRES_DISCRIMINATOR_MAP


_KINDS = [
    ("temporal_emb.blur_filters", _lres_generator),
    ("epilogue.linear_0.weight", _lres_discriminator),
    ("SG3.mapping.fc0.weight", _sres_generator),
    ("b4.fc.weight", _sres_discriminator),
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
