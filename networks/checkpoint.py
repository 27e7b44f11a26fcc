"""Saving and loading networks (`docs/checkpoints.md`).

This project's format: one `.safetensors` file holds the network's parameters and persistent
buffers; its metadata holds `format` ("longvideogan"), `format_version`, the network `kind`, its
`role` (G_ema, G or D) and its full `config` as JSON. Loading reads tensors and JSON only:
nothing in the file is ever executed (unlike pickles).

`load` is the one loader of every entry point: it also reads the original project's pickles
(through the restricted importer of `networks.official`) and `lvg-train`'s training states. In
every format the config is checked field by field and the tensor shapes against it before a
network is built (`networks.validate`,
docs/checkpoints.md#what-is-checked-before-a-file-is-trusted).

    networks.save(G, "lres.safetensors")
    G = networks.load("lres.safetensors", kind="lres_generator")
    D = networks.load("ckpt-00100000-train.pkl", net="D")
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from networks.validate import ValidationError, check_config, check_shapes, expected_shapes
from torch_utils.misc import atomic_path, load_tensors

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
    """Rebuild a (possibly nested) config dataclass from its JSON object, every field checked
    for type and range first (docs/checkpoints.md#what-is-checked-before-a-file-is-trusted).
    Unknown fields are an error (a newer config)."""
    try:
        return check_config(cls, data)
    except ValidationError as e:
        raise CheckpointError(str(e)) from None


def _checked_network(path: Path, where: str, kind: object, config: object) -> tuple[type, object]:
    """The network class and checked config of a file's `kind` and `config` (JSON text), before
    anything is built; one line naming the file and the field otherwise."""
    registry = _registry()
    if not isinstance(kind, str) or kind not in registry:
        known = ", ".join(registry)
        raise CheckpointError(
            f"{path}: {where}unknown network kind {kind!r} (known: {known}); "
            "the file is damaged or was edited"
        )
    if not isinstance(config, str):
        raise CheckpointError(
            f"{path}: {where}the network config is missing or not JSON text; "
            "the file is damaged or was edited"
        )
    net_cls, cfg_cls = registry[kind]
    try:
        data = json.loads(config)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, too long numbers, too deep
        raise CheckpointError(
            f"{path}: {where}the config is not valid JSON ({e}); the file is damaged or was edited"
        ) from None
    try:
        return net_cls, check_config(cfg_cls, data)
    except ValidationError as e:
        raise CheckpointError(f"{path}: {where}{e}; the file is damaged or was edited") from None


def _check_tensor_shapes(
    path: Path, where: str, net_cls: type, cfg, found: dict[str, tuple[int, ...]]
) -> None:
    """The file's tensor shapes against those `cfg` implies (derived on the meta device)."""
    try:
        check_shapes(found, expected_shapes(net_cls, cfg), net_cls.kind)
    except ValidationError as e:
        raise CheckpointError(f"{path}: {where}{e}; the file is damaged or was edited") from None


# ------------------------------------------------------------------------------------------------
# Save / load


def save(
    net: nn.Module,
    path: str | Path,
    metadata: dict[str, str] | None = None,
    role: str | None = None,
) -> Path:
    """Write `net` (a network of this project) atomically: temp file, then rename. `role`
    (G_ema, G or D) is recorded for `load(..., net=...)`."""
    path = Path(path)
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "kind": net.kind,
        "config": json.dumps(config_to_dict(net.cfg)),
        **({"role": role} if role else {}),
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
            "give a .safetensors of this project, an original .pkl or a training state"
        )
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError:
        raise CheckpointError(
            f"{path}: metadata 'format_version' = {meta['format_version']!r} is not an integer; "
            "the file is damaged or was edited"
        ) from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version}, newer than this code's {FORMAT_VERSION}; upgrade longvideogan"
        )
    return meta


def _load_safetensors(path: Path, net_cls: type, cfg) -> nn.Module:
    try:
        with safe_open(str(path), framework="pt") as f:  # the header only: no tensor is read
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is truncated or corrupt ({e}); re-create or re-download it"
        ) from e
    _check_tensor_shapes(path, "", net_cls, cfg, shapes)
    net = net_cls(cfg)
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(
            f"{path} is truncated or corrupt ({e}); re-create or re-download it"
        ) from e
    return _with_state(net, state, path)


def _with_state(net: nn.Module, state: dict, path: Path) -> nn.Module:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not match its own config: {e}") from e
    return net


# ------------------------------------------------------------------------------------------------
# One loader for every file that holds networks (docs/checkpoints.md)

ROLES = ("G_ema", "G", "D")  # preference order when the caller names no network


def network_record(net: nn.Module) -> dict[str, str]:
    """What a container (a training state) stores beside a network's state dict so that
    `load` can rebuild it: its kind and config."""
    return {"kind": net.kind, "config": json.dumps(config_to_dict(net.cfg))}


@dataclass
class Checkpoint:
    """The networks in one file, by role ("G_ema", "G", "D"), whatever the file's format:

    * this project's `.safetensors` (one network; role from its metadata, else G_ema for a
      generator and D for a discriminator);
    * an original `.pkl`: a G_ema pickle (role G_ema) or a training pickle (G and D);
    * a training state of `lvg-train` (`states/state-*.pt`: G, D and G_ema)."""

    path: Path
    format: str
    kinds: dict[str, str]  # role -> network kind
    build: Callable[[str], nn.Module]
    info: dict = dataclasses.field(default_factory=dict)

    def find(self, kind: str | None = None, prefer: tuple[str, ...] = ROLES) -> str | None:
        """The first role in `prefer` that the file holds with a network of `kind` (of any
        kind when None); None if there is none."""
        return next((r for r in prefer if r in self.kinds and kind in (None, self.kinds[r])), None)

    def choose(self, kind: str | None = None, net: str | None = None) -> str:
        """The role to load: `net` if given, else the first of G_ema, G, D of `kind`."""
        roles = ", ".join(f"{role} ({k})" for role, k in self.kinds.items())
        if net is not None:
            if net not in self.kinds:
                raise CheckpointError(f"{self.path} has no network {net!r}; it has {roles}")
            role = net
        else:
            role = self.find(kind) or next(iter(self.kinds))
        if kind is not None and self.kinds[role] != kind:
            held = f"a {self.kinds[role]}" if len(self.kinds) == 1 else roles
            raise CheckpointError(f"{self.path} holds {held}, but a {kind} is needed here")
        return role

    def network(self, role: str) -> nn.Module:
        if role not in self.kinds:
            raise CheckpointError(f"{self.path} has no network {role!r}")
        return self.build(role).eval().requires_grad_(False)


def open_checkpoint(path: str | Path, res: tuple[int, int] | None = None) -> Checkpoint:
    """Read the file's table of networks. The format is told by its first bytes (or a .pkl
    suffix, for pickles of protocol 0 and 1). `res` (height, width) is used only for original
    pickles that do not record their frame size."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    with open(path, "rb") as f:
        head = f.read(9)
    if not head:
        raise CheckpointError(f"{path} is empty; re-create or re-download it")
    # safetensors: an 8-byte little-endian header size, then the JSON header.
    is_safetensors = head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size
    if not is_safetensors and head.startswith(b"PK"):
        return _open_training_state(path)
    if not is_safetensors and (
        head.startswith(b"\x80") or path.suffix.lower() in (".pkl", ".pickle")
    ):
        return _open_original(path, res)
    meta = read_metadata(path)
    for key in ("kind", "config"):
        if key not in meta:
            raise CheckpointError(
                f"{path}: metadata '{key}' is missing; the file is damaged or was edited"
            )
    net_cls, cfg = _checked_network(path, "", meta["kind"], meta["config"])
    role = meta.get("role") or ("D" if meta["kind"].endswith("discriminator") else "G_ema")
    if role not in ROLES:
        raise CheckpointError(
            f"{path}: metadata 'role' = {role!r} is none of {', '.join(ROLES)}; "
            "the file is damaged or was edited"
        )
    return Checkpoint(
        path, "safetensors", {role: meta["kind"]}, lambda _: _load_safetensors(path, net_cls, cfg)
    )


def _open_original(path: Path, res: tuple[int, int] | None) -> Checkpoint:
    from networks.official import (
        OfficialCheckpointError,
        augment_probability,
        find_networks,
        import_network,
        load_official,
        network_kind,
    )

    try:
        data = load_official(path)
    except OfficialCheckpointError as e:
        raise CheckpointError(str(e)) from None
    nets = find_networks(data)
    if not nets:
        if isinstance(data, dict):
            found = f"a dict with keys {sorted(map(str, data))[:8]}"
        else:
            found = f"a {type(data).__name__}"
        raise CheckpointError(
            f"{path} holds no LongVideoGAN network ({found}); give a G_ema or training pickle"
        )
    # An original low-res D does not record the frame size; the G beside it does.
    g = nets.get("G") or nets.get("G_ema")
    fields = g.state if g is not None else {}
    size = res or tuple(
        v if isinstance(v, int) and not isinstance(v, bool) else None
        for v in (fields.get("out_height"), fields.get("out_width"))
    )

    def build(role: str) -> nn.Module:
        try:
            return import_network(nets[role], *size)
        except OfficialCheckpointError as e:
            raise CheckpointError(f"{path}: {role}: {e}") from None

    info = {}
    if (p := augment_probability(data)) is not None:
        info["augment_p"] = p
    kinds = {role: network_kind(obj) for role, obj in nets.items()}
    return Checkpoint(path, "original pickle", kinds, build, info)


def _open_training_state(path: Path) -> Checkpoint:
    try:
        state = load_tensors(path)
    except Exception as e:  # truncated or foreign zip
        raise CheckpointError(
            f"{path} is not a readable training state ({type(e).__name__}: {e})"
        ) from e
    records = state.get("networks") if isinstance(state, dict) else None
    if not isinstance(records, dict) or not isinstance(state.get("modules"), dict):
        raise CheckpointError(
            f"{path} is not a training state that names its networks (older lvg-train "
            "versions did not); load one of the run's snapshots instead"
        )
    checked = {}
    for role in ROLES:
        if role not in records:
            continue
        record, module = records[role], state["modules"].get(role)
        if not isinstance(record, dict):
            raise CheckpointError(
                f"{path}: {role}: the network record is a {type(record).__name__}, not a dict; "
                "the file is damaged or was edited"
            )
        if not isinstance(module, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in module.items()
        ):
            raise CheckpointError(
                f"{path}: {role}: the state dict is missing or holds something other than "
                "named tensors; the file is damaged or was edited"
            )
        checked[role] = _checked_network(
            path, f"{role}: ", record.get("kind"), record.get("config")
        )
    if not checked:
        raise CheckpointError(f"{path} is a training state without networks G, D or G_ema")

    def build(role: str) -> nn.Module:
        net_cls, cfg = checked[role]
        module = state["modules"][role]
        shapes = {k: tuple(v.shape) for k, v in module.items()}
        _check_tensor_shapes(path, f"{role}: ", net_cls, cfg, shapes)
        return _with_state(net_cls(cfg), module, path)

    kinds = {role: net_cls.kind for role, (net_cls, _) in checked.items()}
    info = {"step": state.get("step")}
    return Checkpoint(path, "training state", kinds, build, info)


def load(
    path: str | Path,
    kind: str | None = None,
    net: str | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """The network stored in `path` (eval mode, no gradients), from any format `Checkpoint`
    reads. `kind` ("lres_generator", ...) guards against the wrong file; `net` picks G_ema, G
    or D (default: G_ema, else G, else D, of that kind)."""
    ckpt = open_checkpoint(path)
    return ckpt.network(ckpt.choose(kind, net)).to(device)
