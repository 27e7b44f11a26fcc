"""The low-resolution video discriminator (docs/networks.md#low-res-discriminator).

    video [n, 3, 128, 36, 64] -> zero-pad to a 64x64 square
      -> 4 residual blocks of 3-D convs ([1,3,3,1] blur-downsampling in space, and in time from
         the second block on; the first block has no temporal conv)      -> [n, 512, 16, 4, 4]
      -> fold space into channels -> 1-D temporal convs -> flatten -> 2 FC layers -> logit [n, 1]

The flatten fixes the clip length (`seq_length`, 128 in the paper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from torch_utils.layers import Conv, FullyConnected
from torch_utils.misc import assert_shape
from torch_utils.resample import blur_taps, downsample

SQRT_HALF = math.sqrt(0.5)


@dataclass(frozen=True)
class LowResDiscriminatorConfig:
    """Defaults are the paper's (docs/networks.md#low-res-discriminator)."""

    height: int = 36
    width: int = 64
    seq_length: int = 128
    # Channels after the fromRGB layer, then the output of each of the 4 blocks.
    channels: tuple[int, ...] = (32, 64, 128, 256, 512)
    temporal_kernel: int = 5
    spatial_kernel: int = 3
    head_channels: int = 1024
    head_kernel: int = 3
    head_convs: int = 4
    conv_clamp: float = 256.0

    @property
    def max_edge(self) -> int:
        return max(self.height, self.width)

    def block_downs(self) -> list[tuple[bool, bool]]:
        """(spatial, temporal) downsampling of each block: the first block halves space only
        when the padded square is larger than 32; block i >= 1 halves time when
        seq_length >= 2^(i+1)."""
        flags = [(self.max_edge > 32, False)]
        for i in range(1, len(self.channels) - 1):
            flags.append((True, self.seq_length >= 2 ** (i + 1)))
        return flags

    def head_shape(self) -> tuple[int, int]:
        """(side of the square, frames) entering the temporal head."""
        side, frames = self.max_edge, self.seq_length
        for spatial, temporal in self.block_downs():
            side, frames = side // (2 if spatial else 1), frames // (2 if temporal else 1)
        return side, frames


class DownConv3d(nn.Module):
    """Conv3d, then optional [1,3,3,1] blur-decimation x2 in space and/or time, then bias,
    activation and clamp: the downsample sits between the conv and the bias
    (docs/networks.md#low-res-discriminator)."""

    def __init__(
        self,
        c_in,
        c_out,
        kernel,
        spatial_down,
        temporal_down,
        bias=True,
        activation="lrelu",
        clamp=256.0,
    ):
        super().__init__()
        self.conv = Conv(c_in, c_out, kernel, dims=3, bias=bias, activation=activation, clamp=clamp)
        self.dims = (3, 4) * spatial_down + (2,) * temporal_down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv.convolve(x)
        if self.dims:
            y = downsample(y, blur_taps(), 2, dims=self.dims)
        return self.conv.activate(y)


class DiscriminatorBlock(nn.Module):
    def __init__(
        self, c_in, c_out, kernel, spatial_down, temporal_down, from_rgb: int = 0, clamp=256.0
    ):
        super().__init__()
        self.from_rgb = (
            Conv(from_rgb, c_in, 1, dims=3, activation="lrelu", clamp=clamp) if from_rgb else None
        )
        self.conv0 = DownConv3d(c_in, c_in, kernel, False, False, clamp=clamp)
        self.conv1 = DownConv3d(c_in, c_out, kernel, spatial_down, temporal_down, clamp=clamp)
        self.skip = DownConv3d(
            c_in,
            c_out,
            1,
            spatial_down,
            temporal_down,
            bias=False,
            activation="linear",
            clamp=clamp,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.from_rgb is not None:
            x = self.from_rgb(x)
        return (self.conv1(self.conv0(x)) + self.skip(x)) * SQRT_HALF


class TemporalHead(nn.Module):
    """Space folded into channels, 1-D convs over time, flatten, two FC layers."""

    def __init__(self, cfg: LowResDiscriminatorConfig):
        super().__init__()
        side, frames = cfg.head_shape()
        c_in = cfg.channels[-1] * side * side
        self.convs = nn.ModuleList(
            Conv(
                c_in if i == 0 else cfg.head_channels,
                cfg.head_channels,
                1 if i == 0 else cfg.head_kernel,
                dims=1,
                activation="lrelu",
            )
            for i in range(cfg.head_convs)
        )
        self.fc = FullyConnected(cfg.head_channels * frames, cfg.head_channels, activation="lrelu")
        self.out = FullyConnected(cfg.head_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(x.float(), "n c t h w -> n (c h w) t")
        for conv in self.convs:
            x = conv(x)
        return self.out(self.fc(rearrange(x, "n c t -> n (c t)")))


class LowResDiscriminator(nn.Module):
    """`D(video)`: `[n, 3, seq_length, H, W]` in [-1, 1] -> logits `[n, 1]`."""

    kind = "lres_discriminator"

    def __init__(self, cfg: LowResDiscriminatorConfig = LowResDiscriminatorConfig()):
        super().__init__()
        self.cfg = cfg
        kernels = [(1, cfg.spatial_kernel, cfg.spatial_kernel)] + [
            (cfg.temporal_kernel, cfg.spatial_kernel, cfg.spatial_kernel)
        ] * (len(cfg.channels) - 2)
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(
                c_in, c_out, k, s, t, from_rgb=3 if i == 0 else 0, clamp=cfg.conv_clamp
            )
            for i, (c_in, c_out, k, (s, t)) in enumerate(
                zip(cfg.channels[:-1], cfg.channels[1:], kernels, cfg.block_downs())
            )
        )
        self.head = TemporalHead(cfg)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        assert_shape(video, "n c t h w", c=3, t=cfg.seq_length, h=cfg.height, w=cfg.width)
        dh, dw = cfg.max_edge - cfg.height, cfg.max_edge - cfg.width
        x = nn.functional.pad(video, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
        for block in self.blocks:
            x = block(x)
        return self.head(x)
