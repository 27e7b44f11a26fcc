"""The super-resolution video discriminator (docs/networks.md#sr-discriminator): a
StyleGAN2 ResNet D on stacked frames.

    lr_video [n, 3, 4, 36, 64] -> x4 linear upsampling (8 taps, zero borders)  -> [n, 3, 4, 144, 256]
    [lr, hr] along channels, zero-padded to a 256x256 square, time folded into channels (24)
      -> fromRGB 1x1 -> ResNet blocks b256 ... b8 (conv 3x3, blur + stride-2 conv 3x3,
         skip: blur-decimate + 1x1 conv; each branch x sqrt(0.5))
      -> epilogue at 4x4: conv 3x3 -> flatten (channel-major) -> FC -> FC   -> logits [n, 1]

No minibatch-std layer. The flatten fixes the frame size and the folded clip length
(`seq_length`, 4 in the paper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from torch_utils.layers import Conv, FullyConnected
from torch_utils.misc import PRECISIONS, assert_shape
from torch_utils.resample import blur_taps, linear_taps, upfirdn2d, upsample

SQRT_HALF = math.sqrt(0.5)


@dataclass(frozen=True)
class SuperResDiscriminatorConfig:
    """Defaults are the paper's (docs/networks.md#sr-discriminator)."""

    hr_height: int = 144
    hr_width: int = 256
    lr_height: int = 36
    lr_width: int = 64
    seq_length: int = 4
    channel_base: int = 16384
    channel_max: int = 512
    num_fp16_res: int = 4
    conv_clamp: float = 256.0

    def __post_init__(self):
        if self.hr_height % self.lr_height or self.hr_width % self.lr_width:
            raise ValueError("the HR size must be an integer multiple of the LR size")
        if self.hr_height // self.lr_height != self.hr_width // self.lr_width:
            raise ValueError("the LR->HR scale must be the same for both axes")
        if self.resolution < 8:
            raise ValueError("the padded square must be at least 8x8")

    @property
    def scale(self) -> int:
        return self.hr_height // self.lr_height

    @property
    def resolution(self) -> int:
        """Side of the zero-padded square (a power of two, 256 for 144x256)."""
        return 2 ** math.ceil(math.log2(max(self.hr_height, self.hr_width)))

    @property
    def in_channels(self) -> int:
        return 2 * 3 * self.seq_length

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    def block_resolutions(self) -> list[int]:
        """256, 128, ..., 8: the blocks before the 4x4 epilogue."""
        return [2**i for i in range(int(math.log2(self.resolution)), 2, -1)]

    @property
    def fp16_resolution(self) -> int:
        return max(2 ** (int(math.log2(self.resolution)) + 1 - self.num_fp16_res), 8)


class DownConv2d(Conv):
    """Conv with x2 downsampling as StyleGAN2's `conv2d_resample`: k x k kernels blur with
    [1,3,3,1] (padding k//2 + 1) then convolve with stride 2; 1x1 kernels blur-decimate
    (padding 1) then convolve. Then bias, activation, gain and clamp x gain."""

    def __init__(self, c_in, c_out, kernel, bias=True, activation="lrelu", clamp=None):
        super().__init__(
            c_in, c_out, kernel, dims=2, bias=bias, activation=activation, clamp=clamp, padding=0
        )

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        if self.kernel[0] == 1:
            return F.conv2d(upfirdn2d(x, blur_taps(), down=2, padding=1), w)
        pad = self.kernel[0] // 2 + 1
        return F.conv2d(upfirdn2d(x, blur_taps(), padding=pad), w, stride=2)


class ResBlock(nn.Module):
    """conv0 3x3, conv1 3x3 down x2, skip 1x1 down x2 (no bias, no clamp); each branch scaled
    by sqrt(0.5) inside its layer."""

    def __init__(self, c_in: int, c_tmp: int, c_out: int, from_rgb: int, clamp: float):
        super().__init__()
        self.from_rgb = (
            Conv(from_rgb, c_tmp, 1, dims=2, activation="lrelu", clamp=clamp) if from_rgb else None
        )
        self.conv0 = Conv(c_tmp, c_tmp, 3, dims=2, activation="lrelu", clamp=clamp)
        self.conv1 = DownConv2d(c_tmp, c_out, 3, clamp=clamp)
        self.skip = DownConv2d(c_tmp, c_out, 1, bias=False, activation="linear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.from_rgb is not None:
            x = self.from_rgb(x)
        y = self.skip(x, gain=SQRT_HALF)
        return y + self.conv1(self.conv0(x), gain=SQRT_HALF)


class Epilogue(nn.Module):
    def __init__(self, channels: int, resolution: int, clamp: float):
        super().__init__()
        self.conv = Conv(channels, channels, 3, dims=2, activation="lrelu", clamp=clamp)
        self.fc = FullyConnected(channels * resolution**2, channels, activation="lrelu")
        self.out = FullyConnected(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x.float())
        return self.out(self.fc(x.flatten(1)))


class SuperResDiscriminator(nn.Module):
    """`D(lr_video, hr_video)` -> logits `[n, 1]`. The LR clip may be given at LR size (it is
    upsampled x4 inside) or already upsampled to the HR size.

    `precision`: "float32"; "mixed" (the original's: the blocks at resolution >=
    `fp16_resolution` in float16 on CUDA, bfloat16 on CPU); "float16"/"bfloat16" for all blocks;
    "auto" = "mixed" on CUDA, "float32" on CPU. The epilogue is always float32."""

    kind = "sres_discriminator"

    def __init__(self, cfg: SuperResDiscriminatorConfig = SuperResDiscriminatorConfig()):
        super().__init__()
        self.cfg = cfg
        blocks = {}
        for res in cfg.block_resolutions():
            first = res == cfg.resolution
            blocks[f"b{res}"] = ResBlock(
                0 if first else cfg.channels(res),
                cfg.channels(res),
                cfg.channels(res // 2),
                from_rgb=cfg.in_channels if first else 0,
                clamp=cfg.conv_clamp,
            )
        self.blocks = nn.ModuleDict(blocks)
        self.epilogue = Epilogue(cfg.channels(4), 4, cfg.conv_clamp)

    def upsample_lr(self, lr_video: torch.Tensor) -> torch.Tensor:
        """x`scale` linear upsampling (8 taps for x4, padding [5, 2], gain 16, zero borders)."""
        s = self.cfg.scale
        return upsample(lr_video, linear_taps(s), s, dims=(-2, -1))

    def _dtype(self, res: int, precision: str, device: torch.device) -> torch.dtype:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "auto":
            precision = "mixed" if device.type == "cuda" else "float32"
        if precision == "float32" or (precision == "mixed" and res < self.cfg.fp16_resolution):
            return torch.float32
        if precision == "mixed":
            return torch.float16 if device.type == "cuda" else torch.bfloat16
        return getattr(torch, precision)

    def forward(
        self, lr_video: torch.Tensor, hr_video: torch.Tensor, precision: str = "auto"
    ) -> torch.Tensor:
        cfg = self.cfg
        sizes = assert_shape(
            hr_video, "n c t h w", c=3, t=cfg.seq_length, h=cfg.hr_height, w=cfg.hr_width
        )
        assert_shape(lr_video, "n c t h w", n=sizes["n"], c=3, t=cfg.seq_length)
        if tuple(lr_video.shape[-2:]) == (cfg.lr_height, cfg.lr_width):
            lr_video = self.upsample_lr(lr_video.float())
        elif tuple(lr_video.shape[-2:]) != (cfg.hr_height, cfg.hr_width):
            raise ValueError(
                f"lr_video must be {cfg.lr_height}x{cfg.lr_width} or already upsampled to "
                f"{cfg.hr_height}x{cfg.hr_width}, got {tuple(lr_video.shape[-2:])}"
            )
        x = rearrange(
            torch.cat([lr_video.float(), hr_video.float()], 1), "n c t h w -> n (c t) h w"
        )
        dh, dw = cfg.resolution - cfg.hr_height, cfg.resolution - cfg.hr_width
        x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
        for name, block in self.blocks.items():
            x = block(x.to(self._dtype(int(name[1:]), precision, x.device)))
        return self.epilogue(x)
