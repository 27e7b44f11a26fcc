"""The checkpoint format of every network of the project.

One `.safetensors` file holds the network's parameters and persistent buffers; its metadata
holds `format` ("longvideogan"), `format_version`, the network `kind` and its full `config` as
JSON. Loading reads tensors and JSON only: nothing in the file is ever executed (unlike pickles).

    networks.save(G, "lres.safetensors")
    G = networks.load("lres.safetensors", kind="lres_generator")
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from torch_utils.misc import atomic_path

FORMAT = "longvideogan"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated, of another kind, or from a newer version."""


def _registry() -> dict[str, tuple[type, type]]:
    from networks.lres_discriminator import LowResDiscriminator, LowResDiscriminatorConfig
    from networks.lres_generator import LowResGenerator, LowResGeneratorConfig
    from networks.sres_discriminator import SuperResDiscriminator, SuperResDiscriminatorConfig
    from networks.sres_generator import SuperResGenerator, SuperResGeneratorConfig

    return {
        LowResGenerator.kind: (LowResGenerator, LowResGeneratorConfig),
        LowResDiscriminator.kind: (LowResDiscriminator, LowResDiscriminatorConfig),
        SuperResGenerator.kind: (SuperResGenerator, SuperResGeneratorConfig),
        SuperResDiscriminator.kind: (SuperResDiscriminator, SuperResDiscriminatorConfig),
    }


# ------------------------------------------------------------------------------------------------
# Configs <-> JSON


def config_to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(cls, data: dict):
    """Rebuild a (possibly nested) config dataclass; tuples and nested configs restored from
    their JSON lists and objects. Unknown fields are an error (a newer config)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise CheckpointError(
            f"{cls.__name__} has no fields {unknown}; was the file written by a newer version?"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value)
    return cls(**kwargs)


def _coerce(hint, value):
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return config_from_dict(hint, value)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if arg is not type(None):
                return _coerce(arg, value) if value is not None else None
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        inner = args[0] if args else None
        return tuple(_coerce(inner, v) for v in value) if inner else tuple(value)
    return value


# ------------------------------------------------------------------------------------------------
# Save / load


def save(net: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write `net` (a network of this project) atomically: temp file, then rename."""
    path = Path(path)
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "kind": net.kind,
        "config": json.dumps(config_to_dict(net.cfg)),
        **(metadata or {}),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The checkpoint's metadata, checked for format and version."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is truncated or not a .safetensors file ({e}); re-create or re-download it"
        ) from e
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a LongVideoGAN checkpoint (no '{FORMAT}' metadata); "
            "original .pkl checkpoints are converted with `lvg-convert official`"
        )
    version = int(meta.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version}, newer than this code's {FORMAT_VERSION}; upgrade longvideogan"
        )
    return meta


def load(
    path: str | Path, kind: str | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """Rebuild the network stored in `path` (in eval mode, without gradients).

    `kind` ("lres_generator", ...) guards against passing the wrong file."""
    meta = read_metadata(path)
    registry = _registry()
    if kind is not None and meta["kind"] != kind:
        raise CheckpointError(f"{path} holds a {meta['kind']}, but a {kind} is needed here")
    if meta["kind"] not in registry:
        raise CheckpointError(f"{path} holds an unknown network kind {meta['kind']!r}")
    net_cls, cfg_cls = registry[meta["kind"]]
    net = net_cls(config_from_dict(cfg_cls, json.loads(meta["config"])))
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is truncated or corrupt ({e}); re-create or re-download it"
        ) from e
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not match its own config: {e}") from e
    return net.eval().requires_grad_(False).to(device)
