"""Checks a checkpoint's network configuration and tensor shapes before anything is built from
it (docs/checkpoints.md#what-is-checked-before-a-file-is-trusted).

A file's config decides how much memory the network takes, so it is checked field by field
against the config dataclass's type hints and generous ranges (`RANGES`) first; then the tensor
shapes the config implies are derived on the meta device (nothing is allocated) and compared
with the shapes the file holds. Only then is the real network built.

    cfg = check_config(LowResGeneratorConfig, json.loads(meta["config"]))
    check_shapes(file_shapes, expected_shapes(LowResGenerator, cfg), "lres_generator")
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

MAX_CHANNELS = 4096
MAX_SIZE = 4096  # pixels per side
MAX_FRAMES = 4096

# Inclusive (low, high) of the numeric config fields of the five config classes, by name (a
# nested config's fields also by `noise.cutoff`); tuple fields apply it to each entry. A field
# without an entry only has to be finite.
RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(
        ("height", "width", "hr_height", "hr_width", "lr_height", "lr_width"), (1, MAX_SIZE)
    ),  # fmt: skip
    **dict.fromkeys(
        (
            "input_channels",
            "channels",
            "latent_dim",
            "head_channels",
            "z_dim",
            "w_dim",
            "channel_max",
            "noise_channels",
        ),
        (1, MAX_CHANNELS),
    ),  # fmt: skip
    "channel_base": (1, 2**20),
    "num_filters": (1, 1024),
    "min_sampling_rate": (1, 40000),
    "max_sampling_rate": (1, 40000),
    "noise.cutoff": (1e-6, 1e6),
    "noise.width": (1e-6, 1e6),
    "seq_length": (1, MAX_FRAMES),
    "temporal_context": (0, 256),
    "temporal_padding": (0, 256),
    "margin": (0, 256),
    **dict.fromkeys(("temporal_kernel", "spatial_kernel", "head_kernel", "conv_kernel"), (1, 31)),
    "filter_size": (1, 64),
    "lrelu_upsampling": (1, 16),
    **dict.fromkeys(("mapping_layers", "head_convs", "num_critical", "num_fp16_res"), (0, 64)),
    "num_layers": (1, 64),
    "mapping_lr_mul": (1e-6, 1e3),
    "conv_clamp": (1e-6, 1e6),
    **dict.fromkeys(("w_avg_beta", "magnitude_ema_beta"), (0, 1)),
    "first_cutoff": (1e-6, MAX_SIZE),
    "first_stopband": (1e-6, MAX_SIZE),
    "last_stopband_rel": (1e-6, 16),
}
MAX_TUPLE = 64  # entries of a variable-length tuple field


class ValidationError(ValueError):
    """A config or tensor table that does not describe a network we can build; the message
    names the field or tensor in quotes (the loader adds the file's name). Not in backticks:
    those are parameter names, which the CLIs turn into flags."""


def check_config(cls: type, data: object, prefix: str = ""):
    """The config dataclass `cls` built from `data` (a JSON object, tuples as lists), after
    checking every field's type and range. Missing fields take their defaults; unknown ones are
    an error (a file of a newer version)."""
    if not isinstance(data, Mapping):
        what = f"config field '{prefix.rstrip('.')}'" if prefix else "the config"
        raise ValidationError(f"{what} is a {_json_type(data)}, not an object")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise ValidationError(
            f"{cls.__name__} has no fields {unknown}; was the file written by a newer version?"
        )
    kwargs = {name: _value(hints[name], data[name], prefix + name) for name in data}
    try:
        return cls(**kwargs)
    except (ValueError, ArithmeticError, TypeError) as e:  # the config's own consistency checks
        raise ValidationError(f"config {cls.__name__} is inconsistent: {e}") from None


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    return {dict: "object", list: "list", tuple: "list", str: "string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _field_error(name: str, value: object, problem: str) -> ValidationError:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return ValidationError(f"config field '{name}' = {shown} {problem}")


def _value(hint, value, name: str):
    """`value` checked against `hint` (int, float, bool, str, a tuple or a nested config)."""
    if dataclasses.is_dataclass(hint):
        return check_config(hint, value, name + ".")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, value, name)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _field_error(name, value, f"is a {_json_type(value)}, not a list")
        if len(args) == 2 and args[1] is Ellipsis:
            if not 1 <= len(value) <= MAX_TUPLE:
                raise _field_error(name, value, f"has {len(value)} entries (1..{MAX_TUPLE})")
            inners = [args[0]] * len(value)
        else:
            if len(value) != len(args):
                raise _field_error(name, value, f"has {len(value)} entries, not {len(args)}")
            inners = list(args)
        return tuple(_value(h, v, f"{name}[{i}]") for i, (h, v) in enumerate(zip(inners, value)))
    return _scalar(hint, value, name)


def _scalar(hint, value, name: str):
    """`value` checked against the scalar type `hint`, numbers also against `RANGES`."""
    if hint in (bool, str):
        if not isinstance(value, hint):
            wanted = "true or false" if hint is bool else "a string"
            raise _field_error(name, value, f"is a {_json_type(value)}, not {wanted}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _field_error(name, value, f"is a {_json_type(value)}, not an integer")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _field_error(name, value, f"is a {_json_type(value)}, not a number")
        if not math.isfinite(value):
            raise _field_error(name, value, "is not a finite number")
        value = float(value)
    else:
        raise ValidationError(f"config field '{name}' has an unsupported type {hint!r}")
    key = re.sub(r"\[\d+\]", "", name)  # `channels[3]` -> `channels`
    low, high = RANGES.get(key, RANGES.get(key.split(".")[-1], (-math.inf, math.inf)))
    if not low <= value <= high:
        raise _field_error(name, value, f"is out of range ({low:g}..{high:g})")
    return value


class _ShapesOnly(TorchFunctionMode):
    """Inside `torch.device("meta")`: random factories become `torch.empty`, and a meta tensor
    times or over a number is a new empty meta tensor. The network is the same, but torch's meta
    kernels for these ops are Python code that imports torch._dynamo on first use (seconds per
    process). Every other op runs its own meta kernel."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RANDOM_FACTORIES:
            kwargs.pop("generator", None)
            func = torch.empty
        elif (
            func in _SCALAR_OPS
            and not kwargs
            and len(args) == 2
            and isinstance(args[0], torch.Tensor)
            and args[0].is_meta
            and isinstance(args[1], (int, float))
            and not isinstance(args[1], bool)
        ):
            dtype = torch.result_type(args[0], args[1])
            return torch.empty(args[0].shape, dtype=dtype, device="meta")
        return func(*args, **kwargs)


_RANDOM_FACTORIES = {torch.randn, torch.rand}
_SCALAR_OPS = {
    torch.mul,
    torch.div,
    torch._C.TensorBase.mul,
    torch._C.TensorBase.div,
    torch.Tensor.__mul__,
    torch.Tensor.__rmul__,
    torch.Tensor.__truediv__,
}


def expected_shapes(net_cls: type, cfg) -> dict[str, tuple[int, ...]]:
    """The state dict's tensor shapes of `net_cls(cfg)`, built on the meta device: no memory is
    allocated for parameters or buffers (derived filters are still designed, which is cheap once
    the config is in range)."""
    try:
        with torch.device("meta"), _ShapesOnly():
            net: nn.Module = net_cls(cfg)
    except (ValueError, ArithmeticError, TypeError, IndexError, RuntimeError) as e:
        raise ValidationError(f"config does not describe a buildable {net_cls.kind}: {e}") from None
    return {name: tuple(t.shape) for name, t in net.state_dict().items()}


def check_shapes(
    found: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]], kind: str
) -> None:
    """Every tensor the network needs is in `found` with its shape, and there is no other."""
    for name, shape in expected.items():
        if name not in found:
            raise ValidationError(f"tensor '{name}' of the {kind} is missing")
        if tuple(found[name]) != tuple(shape):
            raise ValidationError(
                f"tensor '{name}' has shape {tuple(found[name])} in the file, but the {kind} "
                f"its config describes needs {tuple(shape)}"
            )
    extra = sorted(set(found) - set(expected))
    if extra:
        raise ValidationError(f"tensor '{extra[0]}' is not part of a {kind}")
