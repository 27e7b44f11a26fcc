"""The low-resolution video generator (docs/networks.md#low-res-generator).

    noise [n, 8, L_in*32 + 4999]
      -> TemporalNoiseBank (128 Kaiser lowpass filters)      -> embedding [n, 1024, L_in*32]
      -> MappingNetwork (per frame)                          -> w [n, L_in*32, 1024]
      -> per-layer latent sequences (Kaiser x2 down in time, centre crops)
      -> temporal input (FC of the coarsest w + learned 3x4 constant)
      -> 6 spacetime blocks (3x3x3, five x2 time ups, two x2 space ups)
      -> 4 spatial blocks (1x3x3, two x2 space ups) -> ToRGB -> x 0.25  -> video [n, 3, T, H, W]

It is fully convolutional in time with 8-frame margins per layer, so it is exactly
shift-equivariant for shifts of 32 frames (docs/networks.md#shift-equivariance): that is what
makes chunked, seekable generation of unbounded videos possible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from networks.common import MagnitudeEMA, MappingNetwork
from networks.noise import NoiseBankConfig, TemporalNoiseBank
from torch_utils.bias_act import bias_act
from torch_utils.layers import FullyConnected, check_impl, conv3d
from torch_utils.misc import assert_shape
from torch_utils.resample import downsample, kaiser_taps, linear_taps, upsample

SQRT_HALF = math.sqrt(0.5)
SQRT_2 = math.sqrt(2)


@dataclass(frozen=True)
class LowResGeneratorConfig:
    """Defaults are the paper's (docs/networks.md#low-res-generator); see `networks.presets`
    for small ones."""

    height: int = 36
    width: int = 64
    input_channels: int = 512  # of the temporal input / learned spatial constant
    # Output channels of the 6 spacetime blocks, then the 4 spatial blocks.
    channels: tuple[int, ...] = (512, 512, 512, 512, 256, 256, 128, 128, 64, 64)
    latent_dim: int = 1024
    noise: NoiseBankConfig = field(default_factory=NoiseBankConfig)
    mapping_layers: int = 2
    mapping_lr_mul: float = 0.01
    temporal_padding: int = 8
    temporal_kernel: int = 3
    spatial_kernel: int = 3
    output_scale: float = 0.25
    conv_clamp: float = 256.0

    # The block schedule of docs/networks.md#synthesis-blocks (fixed by the architecture).
    temporal_up: tuple[bool, ...] = (True, True, True, True, True, False)
    spatial_up: tuple[bool, ...] = (
        False,
        True,
        False,
        True,
        False,
        False,
        True,
        False,
        True,
        False,
    )

    def __post_init__(self):
        if len(self.channels) != len(self.spatial_up):
            raise ValueError(
                f"channels needs {len(self.spatial_up)} entries, got {len(self.channels)}"
            )
        if min(self.height, self.width) < 1:
            raise ValueError(f"impossible output size {self.height}x{self.width}")

    @property
    def num_temporal_blocks(self) -> int:
        return len(self.temporal_up)

    @property
    def time_factor(self) -> int:
        return 2 ** sum(self.temporal_up)  # 32

    def canvases(self) -> list[tuple[int, int]]:
        """(h, w) after each spatial doubling: ceil(size / 2^k) (e.g. 3x4, 5x8,
        9x16, 18x32, 36x64 for 36x64; 4:3, 1:1 and portrait sizes work the same way)."""
        ups = sum(self.spatial_up)
        return [
            (math.ceil(self.height / 2 ** (ups - k)), math.ceil(self.width / 2 ** (ups - k)))
            for k in range(ups + 1)
        ]

    def sequence_lengths(self, num_frames: int) -> list[int]:
        """Temporal lengths: the input, then each spacetime block's output
        (docs/networks.md#latents-and-lengths)."""
        p, ups = self.temporal_padding, sum(self.temporal_up)
        lengths = [math.ceil(num_frames / 2**ups) + 2 * p]
        level = ups
        for up in self.temporal_up:
            level -= int(up)
            lengths.append(math.ceil(num_frames / 2**level) + 2 * p if up else num_frames)
        return lengths

    def noise_length(self, num_frames: int) -> int:
        """Raw noise samples needed for `num_frames` frames: L_in*32 + max_taps - 1."""
        return self.sequence_lengths(num_frames)[0] * self.time_factor + self.max_taps - 1

    @property
    def max_taps(self) -> int:
        return math.ceil(self.noise.max_sampling_rate / 2)


def centre_crop(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Keep `size` samples along `dim`, starting at floor((len - size) / 2)."""
    length = x.shape[dim]
    if size > length:
        raise ValueError(f"cannot crop {length} samples to {size}")
    return x.narrow(dim, (length - size) // 2, size)


def modulated_conv3d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    input_gain: torch.Tensor | float = 1.0,
    demodulate: bool = True,
    impl: str = "fast",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-frame modulated 3-D convolution (docs/networks.md#modulated-3-d-convolution) of
    `x * input_gain`.

    x `[n, ci, t, h, w]`, weight `[co, ci, kt, kh, kw]`, styles `[n, ci, t]` (one per frame).
    Activations are modulated frame by frame; with demodulation, weight and styles are first
    max-abs normalised and each output frame is demodulated with its own frame's style.

    `impl="ref"` computes these steps literally and returns (the demodulated output, None).
    `impl="fast"` (default) returns (conv output, demodulation coefficients `[n, co, t]`), the
    coefficients still to be multiplied in, so callers can fuse them into what follows; the
    weight's normalisation rides on them rather than on the (large) weight. Without
    demodulation both return (output, None).
    """
    check_impl(impl, "modulated_conv3d")
    co, ci, kt, kh, kw = weight.shape
    padding = (kt // 2, kh // 2, kw // 2)
    if impl == "ref":
        x = x * input_gain
        if demodulate:
            weight = weight / weight.abs().amax(dim=(1, 2, 3, 4), keepdim=True)
            styles = styles / styles.abs().amax(dim=(1, 2), keepdim=True)
        weight = weight / math.sqrt(ci * kt * kh * kw)
        x = x * styles.to(x.dtype)[..., None, None]
        y = conv3d(x, weight.to(x.dtype), padding=padding, impl="ref")
        if demodulate:
            wsq = weight.square().sum(dim=(2, 3, 4))  # [co, ci]
            d = (torch.einsum("oi,nit->not", wsq, styles.square()) + 1e-8).rsqrt()
            y = y * d[..., None, None].to(y.dtype)
        return y, None
    if not demodulate:
        weight = weight / math.sqrt(ci * kt * kh * kw)
        x = x * (styles * input_gain).to(x.dtype)[..., None, None]
        return conv3d(x, weight.to(x.dtype), padding=padding), None
    # The weight's scale 1/(max|w_o| * sqrt(fan_in)) per output channel is applied to the conv
    # output, folded into the demodulation coefficients, rather than to the (large) weight.
    lo, hi = torch.aminmax(weight.reshape(co, -1), dim=1)
    scale = 1 / (torch.maximum(hi, -lo) * math.sqrt(ci * kt * kh * kw))
    styles = styles / styles.abs().amax(dim=(1, 2), keepdim=True)
    x = x * (styles * input_gain).to(x.dtype)[..., None, None]  # one pass over x
    y = conv3d(x, weight.to(x.dtype), padding=padding)
    # d[n, o, t] = rsqrt(sum_i (sum_{z,y,x} w[o, i]^2) * s[n, i, t]^2 + 1e-8), normalised weight
    wsq = weight.square().sum(dim=(2, 3, 4)) * scale[:, None].square()
    dcoefs = (torch.einsum("oi,nit->not", wsq, styles.square()) + 1e-8).rsqrt()
    return y, dcoefs * scale[None, :, None]


def _frames(coefs: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`[n, c, t]` per-frame coefficients, broadcastable over `[n, c, t, h, w]`."""
    return coefs[..., None, None].to(like.dtype)


def lrelu_clamp(x: torch.Tensor, clamp: float) -> torch.Tensor:
    """lrelu (slope 0.2) and clamp of an input already multiplied by the lrelu gain sqrt(2):
    since lrelu(a) * g == lrelu(a * g) for g > 0, folding the gain into the preceding linear
    step saves a pass over the tensor."""
    x = nn.functional.leaky_relu(x, 0.2, inplace=True)
    if torch.is_grad_enabled() and x.requires_grad:
        return x.clamp(-clamp, clamp)  # autograd keeps the lrelu output: no second in-place op
    return x.clamp_(-clamp, clamp)


class ResBlock3d(nn.Module):
    """A residual block of modulated 3-D convs (docs/networks.md#residual-block). With
    `temporal_kernel` 1 it is a "spatial" block: every frame is processed on its own (styles
    still vary per frame)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        latent_dim: int,
        temporal_kernel: int,
        spatial_kernel: int,
        temporal_up: bool,
        spatial_up: bool,
        conv_clamp: float,
    ):
        super().__init__()
        kernel = (temporal_kernel, spatial_kernel, spatial_kernel)
        self.temporal_up, self.spatial_up, self.conv_clamp = temporal_up, spatial_up, conv_clamp
        self.affine0 = FullyConnected(latent_dim, in_channels, bias_init=1.0)
        self.affine1 = FullyConnected(latent_dim, in_channels, bias_init=1.0)
        self.weight0 = nn.Parameter(torch.randn(in_channels, in_channels, *kernel))
        self.weight1 = nn.Parameter(torch.randn(out_channels, in_channels, *kernel))
        self.weight_skip = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1, 1))
        self.bias0 = nn.Parameter(torch.zeros(in_channels))
        self.bias1 = nn.Parameter(torch.zeros(out_channels))
        self.ema0, self.ema1 = MagnitudeEMA(), MagnitudeEMA()

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        out_length: int,
        out_size: tuple[int, int],
        beta: float = 1.0,
        impl: str = "fast",
    ) -> torch.Tensor:
        """x `[n, ci, t, h, w]`, w `[n, t, latent]` at the block's input rate and length.

        `impl="ref"` is docs/networks.md#residual-block step by step (`_reference`);
        `impl="fast"` (default) computes the same with the scalar gains folded into neighbouring
        linear steps (the input gain into the styles and the skip weight; sqrt(0.5) and the lrelu
        gain sqrt(2) into the demodulation and the upsampling), which saves passes over the
        activations.
        """
        check_impl(impl, "ResBlock3d")
        if impl == "ref":
            return self._reference(x, w, out_length, out_size, beta)
        g0 = self.ema0(x, beta)  # x itself is never rescaled: the gain rides on s0 and the skip
        h, d0 = modulated_conv3d(x, self.weight0, self.affine0(w).transpose(1, 2), g0)
        bias0 = (self.bias0 * SQRT_2).reshape(1, -1, 1, 1, 1).to(h.dtype)
        h = lrelu_clamp(torch.addcmul(bias0, h, _frames(d0 * SQRT_2, h)), self.conv_clamp)
        s1 = self.affine1(w).transpose(1, 2)
        h, d1 = modulated_conv3d(h, self.weight1, s1, self.ema1(h, beta))
        skip_gain = g0 * SQRT_HALF / math.sqrt(self.weight_skip.shape[1])
        skip = conv3d(x, (self.weight_skip * skip_gain).to(x.dtype))
        h = torch.addcmul(skip, h, _frames(d1 * SQRT_HALF, h))  # (conv1 * d1 + skip) * sqrt(.5)
        gain = SQRT_2  # the output lrelu's gain, applied by the first linear step below
        if self.temporal_up:
            h = upsample(h, linear_taps(2), 2, dims=(2,), gain=gain)
            gain = 1.0
        h = centre_crop(h, 2, out_length)  # the last spacetime block only crops (T+16 -> T)
        if self.spatial_up:
            h = upsample(h, linear_taps(2), 2, dims=(3, 4), gain=gain)
            h = centre_crop(centre_crop(h, 3, out_size[0]), 4, out_size[1])
            gain = 1.0
        bias1 = (self.bias1 * SQRT_2).reshape(1, -1, 1, 1, 1).to(h.dtype)
        h = h + bias1 if gain == 1.0 else torch.add(bias1, h, alpha=gain)
        return lrelu_clamp(h, self.conv_clamp)

    def _reference(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        out_length: int,
        out_size: tuple[int, int],
        beta: float,
    ) -> torch.Tensor:
        """The block in the paper's order with unfolded gains (`forward(..., impl="ref")`)."""
        x = x * self.ema0(x, beta)  # 1. normalise by the magnitude-EMA gain g0
        h, _ = modulated_conv3d(x, self.weight0, self.affine0(w).transpose(1, 2), impl="ref")  # 2.
        h = bias_act(h, self.bias0, act="lrelu", clamp=self.conv_clamp)  # 3. lrelu * sqrt(2)
        h = h * self.ema1(h, beta)  # 4. normalise by g1, modulated conv
        h, _ = modulated_conv3d(h, self.weight1, self.affine1(w).transpose(1, 2), impl="ref")
        weight_skip = self.weight_skip / math.sqrt(self.weight_skip.shape[1])
        skip = conv3d(x, weight_skip.to(x.dtype), impl="ref")  # 5. 1x1x1 skip of x * g0
        h = (h + skip) * SQRT_HALF  # 6.
        if self.temporal_up:  # 7.
            h = upsample(h, linear_taps(2), 2, dims=(2,))
        h = centre_crop(h, 2, out_length)
        if self.spatial_up:
            h = upsample(h, linear_taps(2), 2, dims=(3, 4))
            h = centre_crop(centre_crop(h, 3, out_size[0]), 4, out_size[1])
        return bias_act(h, self.bias1, act="lrelu", clamp=self.conv_clamp)  # 8.


class ToRGB(nn.Module):
    """1x1x1 modulated conv without demodulation, bias, clamp (docs/networks.md#torgb)."""

    def __init__(
        self, in_channels: int, latent_dim: int, out_channels: int = 3, conv_clamp: float = 256.0
    ):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(latent_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.ema = MagnitudeEMA()

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, beta: float = 1.0, impl: str = "fast"
    ) -> torch.Tensor:
        styles = self.affine(w).transpose(1, 2)
        gain = self.ema(x, beta)
        y, _ = modulated_conv3d(x, self.weight, styles, gain, demodulate=False, impl=impl)
        return bias_act(y, self.bias, clamp=self.conv_clamp)


class LowResGenerator(nn.Module):
    """Noise -> video, fully convolutional in time (docs/networks.md#low-res-generator).

    `from_noise(noise, T)` is the core call (the caller owns randomness and time offsets);
    `forward(batch, T, generator=...)` draws the noise itself; `random_clips(batch, T, ...)`
    draws clips at a random time offset, as training and the metrics sample it.

    What callers may rely on: `size` (h, w) of the frames, `shift_period` (the video is exactly
    equivariant to shifts by multiples of it) and `embedding_lead` (noise-embedding positions a
    chunk reads before and after its frames).
    """

    kind = "lres_generator"

    def __init__(self, cfg: LowResGeneratorConfig = LowResGeneratorConfig()):
        super().__init__()
        self.cfg = cfg
        h0, w0 = cfg.canvases()[0]
        self.noise_bank = TemporalNoiseBank(cfg.noise)
        self.mapping = MappingNetwork(cfg.noise.channels, cfg.mapping_layers, cfg.mapping_lr_mul)
        if cfg.noise.channels != cfg.latent_dim:
            raise ValueError(
                "the mapping keeps the width: latent_dim must equal the noise embedding's"
            )
        self.temporal_input = FullyConnected(cfg.latent_dim, cfg.input_channels)
        self.spatial_const = nn.Parameter(torch.randn(1, cfg.input_channels, 1, h0, w0))
        blocks, c_in = [], cfg.input_channels
        for i, c_out in enumerate(cfg.channels):
            spacetime = i < cfg.num_temporal_blocks
            blocks.append(
                ResBlock3d(
                    c_in,
                    c_out,
                    cfg.latent_dim,
                    temporal_kernel=cfg.temporal_kernel if spacetime else 1,
                    spatial_kernel=cfg.spatial_kernel,
                    temporal_up=spacetime and cfg.temporal_up[i],
                    spatial_up=cfg.spatial_up[i],
                    conv_clamp=cfg.conv_clamp,
                )
            )
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = ToRGB(c_in, cfg.latent_dim, conv_clamp=cfg.conv_clamp)

    # -- the contract ----------------------------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        """(h, w) of the output frames."""
        return (self.cfg.height, self.cfg.width)

    @property
    def shift_period(self) -> int:
        """Frames by whose multiples the generator is exactly shift-equivariant (32 in the paper):
        the time factor of its temporal upsampling."""
        return self.cfg.time_factor

    @property
    def embedding_lead(self) -> int:
        """Noise-embedding positions read before and after the frames of a chunk that starts at
        a multiple of `shift_period` (temporal_padding x shift_period, 256 in the paper)."""
        return self.cfg.temporal_padding * self.cfg.time_factor

    # -- latents -------------------------------------------------------------------------------

    def latents(
        self, noise: torch.Tensor, num_frames: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Noise -> (embedding `[n, c, L_emb]`, per-layer latent sequences `[n, t, latent]`)."""
        cfg = self.cfg
        assert_shape(noise, "n c l", c=cfg.noise.noise_channels, l=cfg.noise_length(num_frames))
        emb = self.noise_bank(noise)
        return emb, self.latents_from_embedding(emb, num_frames)

    def latents_from_embedding(self, emb: torch.Tensor, num_frames: int) -> list[torch.Tensor]:
        """Embedding `[n, c, L_in*32]` -> the per-layer latent sequences (docs/networks.md): one per
        spacetime block (at its input rate and length; the first also drives the temporal
        input), then one per spatial block and ToRGB. Taking the embedding lets callers blend
        embeddings (seamless loops, transitions between seeds)."""
        cfg = self.cfg
        lengths = cfg.sequence_lengths(num_frames)
        assert_shape(emb, "n c l", c=cfg.noise.channels, l=lengths[0] * cfg.time_factor)
        w = self.mapping(emb.transpose(1, 2))  # [n, L_emb, latent] at full frame rate
        kaiser = kaiser_taps(2)
        per_block = [None] * cfg.num_temporal_blocks
        level = w
        for i in reversed(range(cfg.num_temporal_blocks)):
            # Block i reads w at its input rate; every x2 downsample starts from the uncropped
            # sequence of the finer level (docs/networks.md#latents-and-lengths).
            if i + 1 < cfg.num_temporal_blocks and cfg.temporal_up[i]:
                level = downsample(level, kaiser, 2, dims=(1,))
            per_block[i] = centre_crop(level, 1, lengths[i])
        frame_rate = centre_crop(w, 1, num_frames)
        num_spatial = len(cfg.channels) - cfg.num_temporal_blocks
        return per_block + [frame_rate] * (num_spatial + 1)

    # -- synthesis -----------------------------------------------------------------------------

    def synthesis(
        self, ws: list[torch.Tensor], num_frames: int, beta: float = 1.0, impl: str = "fast"
    ) -> torch.Tensor:
        """Per-layer latents -> video. `impl`: "fast" (default) or "ref", the blocks' and ops'
        reference computation (docs/networks.md#residual-block); both give the same video."""
        cfg = self.cfg
        lengths = cfg.sequence_lengths(num_frames)
        canvases = iter(cfg.canvases())
        size = next(canvases)
        x = self.temporal_input(ws[0]).transpose(1, 2)[..., None, None]  # [n, c, t, 1, 1]
        x = (x + self.spatial_const.to(x.dtype)) * SQRT_HALF
        for i, block in enumerate(self.blocks):
            if block.spatial_up:
                size = next(canvases)
            out_len = lengths[i + 1] if i < cfg.num_temporal_blocks else num_frames
            x = block(x, ws[i], out_len, size, beta, impl)
        x = self.to_rgb(x, ws[-1], beta, impl)
        return x.float() * cfg.output_scale

    def from_noise(
        self,
        noise: torch.Tensor,
        num_frames: int,
        magnitude_ema_beta: float = 1.0,
        impl: str = "fast",
    ) -> torch.Tensor:
        """`[n, 8, noise_length(T)]` raw noise -> `[n, 3, T, H, W]` video in about [-1, 1].
        `impl`: "fast" (default) or "ref" (see `synthesis`)."""
        _, ws = self.latents(noise, num_frames)
        return self.synthesis(ws, num_frames, magnitude_ema_beta, impl)

    def forward(
        self,
        batch: int,
        num_frames: int,
        generator: torch.Generator | None = None,
        magnitude_ema_beta: float = 1.0,
        impl: str = "fast",
    ) -> torch.Tensor:
        noise = self.draw_noise(batch, num_frames, generator)
        return self.from_noise(noise, num_frames, magnitude_ema_beta, impl)

    def draw_noise(
        self, batch: int, num_frames: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """i.i.d. N(0, 1) raw noise `[batch, 8, noise_length(T)]` for `from_noise`, drawn on the
        generator's device (this network's when None) and returned on this network's device."""
        device = self.spatial_const.device
        noise = torch.randn(
            batch,
            self.cfg.noise.noise_channels,
            self.cfg.noise_length(num_frames),
            generator=generator,
            device=device if generator is None else generator.device,
        )
        return noise.to(device)

    def random_clips(
        self,
        batch: int,
        num_frames: int,
        generator: torch.Generator | None = None,
        margin: int | None = None,
        magnitude_ema_beta: float = 1.0,
    ) -> torch.Tensor:
        """`[batch, 3, T, H, W]`: per video, T frames at a random offset in [0, margin) of a
        video of T + margin frames. Since the generator is equivariant only to shifts by
        multiples of `shift_period` (the default margin), this samples every phase. The noise,
        then the offsets, are drawn from `generator` (on its device; the default generator on
        this network's device when None); margin 0 keeps the first T frames."""
        margin = self.shift_period if margin is None else margin
        noise = self.draw_noise(batch, num_frames + margin, generator)
        video = self.from_noise(noise, num_frames + margin, magnitude_ema_beta)
        return random_windows(video, num_frames, generator)


def random_windows(
    video: torch.Tensor, length: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A window of `length` frames of each video `[n, c, T, h, w]` at a random offset in
    [0, T - length) (drawn on the generator's device, the CPU when None); the whole video, and
    no draw, when T equals `length`."""
    margin = video.shape[2] - length
    if margin < 0:
        raise ValueError(f"cannot take {length} frames of a {video.shape[2]}-frame video")
    if margin == 0:
        return video
    device = "cpu" if generator is None else generator.device
    offsets = torch.randint(margin, (video.shape[0],), generator=generator, device=device)
    return torch.stack([v[:, o : o + length] for v, o in zip(video, offsets.tolist())])
