"""The fixtures' deterministic "recipe" weights (tests/fixtures/official/README.md).

Every original parameter NAME gets `randn(shape, generator=manual_seed(crc32(NAME)))`, scaled by
its role; magnitude-EMA buffers get `0.5 + rand`. The result is a state dict with the ORIGINAL
names, which the tests push through the same importer as a real checkpoint.
"""

import collections
import io
import json
import pickle
import re
import sys
import types
import warnings
import zlib
from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "fixtures" / "official"


def recipe_value(name: str, shape, seed_name: str | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32((seed_name or name).encode()))
    if name.endswith("magnitude_ema"):
        return 0.5 + torch.rand(shape, generator=g)
    v = torch.randn(shape, generator=g)
    parts = (seed_name or name).split(".")
    mapping = parts[0] in ("latent_mapping",) or (seed_name or name).startswith("SG3.mapping.")
    if mapping and parts[-1] == "weight":
        return 100 * v
    if mapping and parts[-1] == "bias":
        return 10 * v
    if parts[-1] == "bias" and len(parts) > 1 and parts[-2].startswith("affine"):
        return 1 + 0.1 * v
    if re.fullmatch(r"_?bias(_[0-9]+)?", parts[-1]):
        return 0.1 * v
    return v


def recipe_state(names_file: str) -> dict[str, torch.Tensor]:
    """Original-named parameters and magnitude-EMA buffers for one fixture network."""
    spec = json.loads((FIXTURES / names_file).read_text())
    state = {name: recipe_value(name, shape) for name, shape in spec["params"].items()}
    for name, shape in spec.get("buffers", {}).items():
        if name.endswith("magnitude_ema"):
            state[name] = recipe_value(name, shape)
    return state


# ------------------------------------------------------------------------------------------------
# Writing checkpoints in the original project's pickle format (for importer tests).


def _fake_reconstruct(meta):  # stands in for torch_utils.persistence._reconstruct_persistent_obj
    raise AssertionError("never called: the tests only write such pickles")


_fake_reconstruct.__module__ = "torch_utils.persistence"
_fake_reconstruct.__qualname__ = _fake_reconstruct.__name__ = "_reconstruct_persistent_obj"


class _OriginalObject:
    """Pickles as the original `persistence` module does: a call with a `meta` dict."""

    def __init__(self, class_name: str, state: dict):
        self.meta = {
            "type": "class",
            "version": 6,
            "module_src": "raise RuntimeError('this source must never run')\n",
            "class_name": class_name,
            "state": state,
        }

    def __reduce__(self):
        return _fake_reconstruct, (self.meta,)


class _CudaStorage:
    """A CPU tensor's storage pickled as if it had been saved on a CUDA device."""

    def __init__(self, tensor: torch.Tensor):
        buf = io.BytesIO()
        with warnings.catch_warnings():  # TypedStorage is what the original's pickles hold
            warnings.simplefilter("ignore", UserWarning)
            torch.save(tensor.contiguous().storage(), buf, _use_new_zipfile_serialization=False)
        self.data = buf.getvalue().replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")

    def __reduce__(self):
        return torch.storage._load_from_bytes, (self.data,)


class _CudaTensor:
    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor.contiguous()

    def __reduce__(self):
        t = self.tensor
        args = (_CudaStorage(t), 0, tuple(t.shape), t.stride(), False, collections.OrderedDict())
        return torch._utils._rebuild_tensor_v2, args


def original_object(state: dict[str, torch.Tensor], class_name: str, cuda: bool = False, **fields):
    """Nest a flat original-named state dict into original-style persistent objects."""
    tree: dict = {}
    for name, value in state.items():
        node = tree
        *path, leaf = name.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value

    def build(node: dict, cls: str, extra: dict) -> _OriginalObject:
        params, buffers, modules = (collections.OrderedDict() for _ in range(3))
        for key, value in node.items():
            if isinstance(value, dict):
                modules[key] = build(value, "Module", {})
            else:
                value = _CudaTensor(value) if cuda else value
                (buffers if key.endswith("magnitude_ema") else params)[key] = value
        return _OriginalObject(
            cls,
            {
                **extra,
                "training": False,
                "_parameters": params,
                "_buffers": buffers,
                "_modules": modules,
            },
        )

    return build(tree, class_name, fields)


def write_original_pickle(path, obj) -> None:
    """Pickle `obj` with a stand-in `torch_utils.persistence` module, as the original did."""
    fake = types.ModuleType("torch_utils.persistence")
    fake._reconstruct_persistent_obj = _fake_reconstruct
    saved = sys.modules.get("torch_utils.persistence")
    sys.modules["torch_utils.persistence"] = fake
    try:
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    finally:
        if saved is None:
            del sys.modules["torch_utils.persistence"]
        else:
            sys.modules["torch_utils.persistence"] = saved


def as_persistent(obj: _OriginalObject):
    """The object `networks.official.load_official` would return for `obj`, without pickling."""
    from networks.official import PersistentObject

    state = dict(obj.meta["state"])
    state["_modules"] = {k: as_persistent(v) for k, v in state["_modules"].items()}
    return PersistentObject(obj.meta["class_name"], state)


def original_lres_names(G) -> dict[str, torch.Tensor]:
    """Our tiny generator's state under the original's names (inverse of lres_generator_map)."""
    nt, out = G.cfg.num_temporal_blocks, {}
    for k, v in G.state_dict().items():
        if m := re.fullmatch(r"blocks\.(\d+)\.(.+)", k):
            i = int(m[1])
            rest = re.sub(r"^ema(\d)\.value$", r"input_magnitude_ema_\1.magnitude_ema", m[2])
            rest = re.sub(
                r"^affine(\d)\.", r"affine_\1.", re.sub(r"^(weight|bias)(\d)$", r"\1_\2", rest)
            )
            out[(f"temporal_layers.{i}." if i < nt else f"spatial_layers.{i - nt}.") + rest] = v
        else:
            k = re.sub(r"^mapping\.layers\.(\d+)\.", r"latent_mapping.layer_\1.", k)
            k = re.sub(r"^temporal_input\.", "w_to_temp_input.", k)
            k = {
                "spatial_const": "spatial_input",
                "to_rgb.ema.value": "to_rgb.input_magnitude_ema.magnitude_ema",
            }.get(k, k)
            out[k] = v
    out["temporal_emb.blur_filters"] = G.noise_bank.filters.float()[:, None]
    return out
