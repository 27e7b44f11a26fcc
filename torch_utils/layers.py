"""Equalized-learning-rate layers (docs/networks.md#equalized-learning-rate).

Parameters are stored as N(0,1)·(init/lr_mul) and scaled at run time by lr_mul/sqrt(fan_in)
(weights) and lr_mul (biases), so Adam sees every layer at the same scale (StyleGAN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from torch_utils.bias_act import ACTIVATIONS, bias_act


class FullyConnected(nn.Module):
    """y = act(x·(W·lr_mul/sqrt(in))ᵀ + b·lr_mul) over the last axis of `x` (`... in`)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_mul: float = 1.0,
        bias_init: float = 0.0,
        weight_init: float = 1.0,
    ):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation, self.lr_mul = activation, lr_mul
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * (weight_init / lr_mul))
        self.bias = (
            nn.Parameter(torch.full([out_features], float(bias_init) / lr_mul)) if bias else None
        )
        self.weight_gain = lr_mul / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.lr_mul
        if self.activation == "linear":
            return F.linear(x, w, b)
        return bias_act(F.linear(x, w), b, dim=-1, act=self.activation)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}, lr_mul={self.lr_mul}"


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


IMPLS = ("ref", "fast")


def check_impl(impl: str, op: str) -> None:
    """Raise ValueError unless `impl` is "ref" or "fast" (the ops' speed switch)."""
    if impl not in IMPLS:
        raise ValueError(f"unknown {op} impl {impl!r}; choose one of {IMPLS}")


def conv3d(x: torch.Tensor, weight: torch.Tensor, padding=0, impl: str = "fast") -> torch.Tensor:
    """`F.conv3d(x, weight, padding=padding)`; `impl` says how (same values and gradients).

    * `"ref"`: exactly that, on contiguous NCDHW tensors.
    * `"fast"` (default): on the CPU it runs channels-last, where oneDNN's NDHWC kernels are
      1.2-3x faster than NCDHW ones for this project's shapes (benchmarks/README.md); the output
      stays channels-last, which the elementwise ops that follow preserve. A 1x1x1 kernel (the
      skips and ToRGB) is a channel mix of every voxel: on the CPU it runs as one matrix
      product over the channels-last voxels. PyTorch would send it to its slow im2col path,
      which copies the input twice and took about 10% of the generator's time."""
    check_impl(impl, "conv3d")
    if impl == "ref":
        return F.conv3d(x.contiguous(), weight.contiguous(), padding=padding)
    if x.device.type != "cpu":
        return F.conv3d(x, weight, padding=padding)
    x = x.contiguous(memory_format=torch.channels_last_3d)
    if weight.shape[2:] == (1, 1, 1) and padding in (0, (0, 0, 0)):
        return F.linear(x.movedim(1, -1), weight.flatten(1)).movedim(-1, 1)
    return F.conv3d(x, weight, padding=padding)


class Conv(nn.Module):
    """Equalized-lr convolution in 1, 2 or 3 dimensions with zero 'same' padding by default,
    then bias + activation + gain + clamp (docs/networks.md#bias-and-activation)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, Sequence[int]],
        dims: int = 2,
        bias: bool = True,
        activation: str = "linear",
        lr_mul: float = 1.0,
        clamp: Optional[float] = None,
        padding: Union[str, int, Sequence[int]] = "same",
    ):
        super().__init__()
        if dims not in _CONV:
            raise ValueError(f"dims must be 1, 2 or 3, got {dims}")
        kernel = (kernel_size,) * dims if isinstance(kernel_size, int) else tuple(kernel_size)
        if len(kernel) != dims:
            raise ValueError(f"kernel_size {kernel_size} does not have {dims} dimensions")
        self.dims, self.kernel = dims, kernel
        self.in_channels, self.out_channels = in_channels, out_channels
        self.activation, self.lr_mul, self.clamp = activation, lr_mul, clamp
        self.padding = tuple(k // 2 for k in kernel) if padding == "same" else padding
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *kernel) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_channels * math.prod(kernel))

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution alone (callers may resample before `activate`)."""
        conv = conv3d if self.dims == 3 else _CONV[self.dims]
        return conv(x, self.weight.to(x.dtype) * self.weight_gain, padding=self.padding)

    def activate(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """Bias, activation with its default gain times `gain`, clamp times `gain`."""
        b = None if self.bias is None else self.bias * self.lr_mul
        clamp = None if self.clamp is None else self.clamp * gain
        act_gain = ACTIVATIONS[self.activation].default_gain * gain
        return bias_act(x, b, dim=1, act=self.activation, gain=act_gain, clamp=clamp)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        return self.activate(self.convolve(x), gain)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}->{self.out_channels}, kernel={self.kernel}, act={self.activation}, "
            f"clamp={self.clamp}"
        )
