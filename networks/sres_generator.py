"""The super-resolution video generator (docs/networks.md#sr-generator): StyleGAN3-T conditioned
on 9 low-res frames.

    lr_video [n, 3, T+8, h, w]
      -> replicate-pad to a square + margin (84x84 for 36x64)
      -> Kaiser-resampled to every layer's input rate, fitted to its canvas (replicate borders),
         9-frame windows stacked as 27 channels (colour-major, then time)
    z [n, 512] -> 2-layer mapping (lr_mul 0.01) -> w, one per video, shared by all layers
      -> 14 alias-free layers + ToRGB: [features, conditioning] -> magnitude EMA gain ->
         modulated 3x3 conv -> filtered leaky ReLU (up-FIR, lrelu, clamp, down-FIR)
      -> x 0.25                                                         -> video [n, 3, T, H, W]

The network is frame-wise: output frame t depends only on LR frames t .. t+8 and on z, so a long
video is super-resolved in segments (`segments`) with bounded memory and the same result as one
call. Frames are batch elements `n*T + t`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function

from networks.common import MagnitudeEMA, MappingNetwork
from networks.contract import SuperResolutionBase
from torch_utils.filtered_lrelu import conv_window, filtered_lrelu
from torch_utils.layers import FullyConnected
from torch_utils.misc import PRECISIONS, assert_shape
from torch_utils.resample import downsample, filter_taps, kaiser_taps, upsample


@dataclass(frozen=True)
class LayerSpec:
    """One synthesis layer of the StyleGAN3 schedule (docs/networks.md#layer-schedule).
    Sizes are (h, w), as everywhere in the project; the name keeps the original's
    `L{index}_{w}_{h}_{channels}`."""

    index: int
    name: str
    in_channels: int  # features + conditioning
    out_channels: int
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    in_rate: int
    out_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    is_torgb: bool
    is_critical: bool
    use_fp16: bool
    kernel: int
    up: int
    down: int
    up_taps: int
    down_taps: int
    padding: tuple[int, int, int, int]  # filtered-lrelu (x0, x1, y0, y1)
    cond_resample: tuple[str, int]  # ("down" | "up" | "none", factor)

    @property
    def tmp_rate(self) -> int:
        return self.in_rate * self.up

    def up_filter(self) -> Optional[np.ndarray]:
        if self.up_taps == 1:
            return None
        return _lowpass(self.up_taps, self.in_cutoff, 2 * self.in_half_width, self.tmp_rate)

    def down_filter(self) -> Optional[np.ndarray]:
        if self.down_taps == 1:
            return None
        return _lowpass(self.down_taps, self.out_cutoff, 2 * self.out_half_width, self.tmp_rate)


def _lowpass(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """SG3's separable Kaiser lowpass, rounded to float32 as the original stores it."""
    f = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
    return f.astype(np.float32).astype(np.float64)


@dataclass(frozen=True)
class SuperResGeneratorConfig:
    """Defaults are the paper's (docs/networks.md#sr-generator); see `networks.presets` for
    small ones."""

    hr_height: int = 144
    hr_width: int = 256
    lr_height: int = 36
    lr_width: int = 64
    temporal_context: int = 4  # LR frames on each side of the output frame
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 2
    mapping_lr_mul: float = 0.01
    w_avg_beta: float = 0.998
    num_layers: int = 14  # synthesis layers before ToRGB
    num_critical: int = 2
    first_cutoff: float = 2.0
    first_stopband: float = 2**2.1
    last_stopband_rel: float = 2**0.3
    channel_base: int = 32768
    channel_max: int = 512
    margin: int = 10
    output_scale: float = 0.25
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    conv_clamp: float = 256.0
    # The original's decay, kept so that saved configs load; the decay used is the one `forward`
    # is given (training passes TrainConfig.magnitude_ema_beta, also 0.999).
    magnitude_ema_beta: float = 0.999
    num_fp16_res: int = 4

    def __post_init__(self):
        if min(self.hr_height, self.hr_width, self.lr_height, self.lr_width) < 1:
            raise ValueError("impossible frame size")
        if self.num_layers <= self.num_critical:
            raise ValueError("num_layers must exceed num_critical")

    @property
    def img_resolution(self) -> int:
        return max(self.hr_height, self.hr_width)

    @property
    def lr_resolution(self) -> int:
        return max(self.lr_height, self.lr_width)

    @property
    def window(self) -> int:
        return 2 * self.temporal_context + 1

    @property
    def cond_channels(self) -> int:
        return 3 * self.window

    def lr_padding(self) -> tuple[int, int, int, int]:
        """Replicate padding of the LR frames (left, right, top, bottom): to a square, then the
        margin on every side (10/10 and 24/24 for 36x64)."""
        dh, dw = self.lr_resolution - self.lr_height, self.lr_resolution - self.lr_width
        m = self.margin
        return (dw // 2 + m, dw - dw // 2 + m, dh // 2 + m, dh - dh // 2 + m)

    def _canvas(self, rate: int) -> tuple[int, int]:
        """(h, w) of a layer at `rate`: the long side is `rate`, the short side scaled by the
        aspect ratio and rounded up, plus the margin on both sides."""
        long_side, short_side = self.img_resolution, min(self.hr_height, self.hr_width)
        short = -(-rate * short_side // long_side)
        w, h = (rate, short) if self.hr_width >= self.hr_height else (short, rate)
        return h + 2 * self.margin, w + 2 * self.margin

    def _schedule(self) -> tuple[np.ndarray, ...]:
        """Per layer 0..n: cutoffs, rates, half widths, channels (design by cutoff)."""
        n = self.num_layers
        res = self.img_resolution
        last_cutoff = res / 2
        last_stopband = last_cutoff * self.last_stopband_rel
        exponents = np.minimum(np.arange(n + 1) / (n - self.num_critical), 1)
        cutoffs = self.first_cutoff * (last_cutoff / self.first_cutoff) ** exponents
        stopbands = self.first_stopband * (last_stopband / self.first_stopband) ** exponents
        rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, res))))
        half_widths = np.maximum(stopbands, rates / 2) - cutoffs
        channels = np.rint(np.minimum((self.channel_base / 2) / cutoffs, self.channel_max))
        channels[-1] = 3
        return cutoffs, rates, half_widths, channels

    def _cond_resample(self, rate_in: int) -> tuple[str, int]:
        """How the LR frames reach a layer's input rate."""
        ratio = rate_in / self.lr_resolution
        if ratio < 1:
            return ("down", math.ceil(self.lr_resolution / rate_in))
        if ratio > 1:
            return ("up", math.ceil(rate_in / self.lr_resolution))
        return ("none", 1)

    @cached_property
    def layers(self) -> tuple[LayerSpec, ...]:
        """The 15 layers (14 + ToRGB) with the design-by-cutoff schedule
        (docs/networks.md#layer-schedule, docs/networks.md#exact-details)."""
        n = self.num_layers
        cutoffs, rates, half_widths, channels = self._schedule()
        sizes = [self._canvas(int(r)) for r in rates]
        sizes[-2:] = [(self.hr_height, self.hr_width)] * 2
        specs = []
        for i in range(n + 1):
            prev = max(i - 1, 0)
            torgb = i == n
            rate_in, rate_out = int(rates[prev]), int(rates[i])
            tmp = max(rate_in, rate_out) * (1 if torgb else self.lrelu_upsampling)
            up, down = tmp // rate_in, tmp // rate_out
            up_taps = self.filter_size * up if up > 1 and not torgb else 1
            down_taps = self.filter_size * down if down > 1 and not torgb else 1
            kernel = 1 if torgb else self.conv_kernel
            pads = []
            for axis in (1, 0):  # x (w), then y (h): the filtered lrelu's padding order
                total = (sizes[i][axis] - 1) * down + 1 - (sizes[prev][axis] + kernel - 1) * up
                total += up_taps + down_taps - 2
                lo = (total + up) // 2
                pads += [lo, total - lo]
            c_out = int(channels[i])
            specs.append(
                LayerSpec(
                    index=i,
                    name=f"L{i}_{sizes[i][1]}_{sizes[i][0]}_{c_out}",
                    in_channels=self.cond_channels + (int(channels[prev]) if i > 0 else 0),
                    out_channels=c_out,
                    in_size=sizes[prev],
                    out_size=sizes[i],
                    in_rate=rate_in,
                    out_rate=rate_out,
                    in_cutoff=float(cutoffs[prev]),
                    out_cutoff=float(cutoffs[i]),
                    in_half_width=float(half_widths[prev]),
                    out_half_width=float(half_widths[i]),
                    is_torgb=torgb,
                    is_critical=i >= n - self.num_critical,
                    use_fp16=bool(rate_out * 2**self.num_fp16_res > self.img_resolution),
                    kernel=kernel,
                    up=up,
                    down=down,
                    up_taps=up_taps,
                    down_taps=down_taps,
                    padding=tuple(pads),
                    cond_resample=self._cond_resample(rate_in),
                )
            )
        return tuple(specs)


# ------------------------------------------------------------------------------------------------
# Conditioning (docs/networks.md#conditioning)


def resample_conditioning(x: torch.Tensor, mode: str, scale: int) -> torch.Tensor:
    """Kaiser-resample LR frames `[b, c, h, w]` by `scale` with replicate borders: pad 1 input
    pixel (up) or `scale` pixels (down) by replication, resample with the default paddings
    (gain scale^2 when upsampling), crop `scale` (up) or 1 (down) output pixels per side."""
    if mode == "none":
        return x
    f = kaiser_taps(scale)
    if mode == "up":
        y = upsample(F.pad(x, [1, 1, 1, 1], mode="replicate"), f, scale)
        return y[..., scale:-scale, scale:-scale]
    if mode == "down":
        y = downsample(F.pad(x, [scale] * 4, mode="replicate"), f, scale)
        return y[..., 1:-1, 1:-1]
    raise ValueError(f"unknown conditioning resampling {mode!r}")


def fit_canvas(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre-crop `[..., h, w]` to `size` = (h, w), or replicate-pad where it is smaller (the
    floor half on the low side)."""
    pads = []
    for dim, want in ((-1, size[1]), (-2, size[0])):
        have = x.shape[dim]
        if have > want:
            x = x.narrow(dim, (have - want) // 2, want)
            pads += [0, 0]
        else:
            d = want - have
            pads += [d // 2, d - d // 2]
    if any(pads):
        x = F.pad(x, pads, mode="replicate")
    return x


def stack_windows(frames: torch.Tensor, videos: int, window: int) -> torch.Tensor:
    """`[n*(T+window-1), 3, h, w]` LR frames -> `[n*T, 3*window, h, w]`: output frame t of
    video i gets LR frames t .. t+window-1, colour-major then time (all R, then G, then B)."""
    t_lr = frames.shape[0] // videos
    x = frames.reshape(videos, t_lr, frames.shape[1], *frames.shape[-2:])
    x = x.unfold(1, window, 1).permute(0, 1, 2, 5, 3, 4)  # [n, T, 3, window, h, w]
    return x.reshape(videos * (t_lr - window + 1), frames.shape[1] * window, *x.shape[-2:])


# ------------------------------------------------------------------------------------------------
# Layers


def modulate(
    weight: torch.Tensor, styles: torch.Tensor, gain: torch.Tensor, demodulate: bool
) -> torch.Tensor:
    """Per-video modulated weights `[n, co, ci, k, k]` (docs/networks.md#synthesis-layer): RMS
    pre-normalisation of the weight (per output channel) and of the styles (over the whole
    tensor) when demodulating, modulation, demodulation (eps 1e-8), then the input gain."""
    w = weight.float()
    s = styles.float()
    if demodulate:
        w = w * w.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    w = w[None] * s[:, None, :, None, None]
    if demodulate:
        w = w * (w.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    return w * gain


def modulated_conv2d(
    x: torch.Tensor, weights: torch.Tensor, frames: int, padding, impl: str = "fast"
) -> torch.Tensor:
    """Convolve the frames of video i (`x[i*frames:(i+1)*frames]`) with `weights[i]`, with zero
    `padding`: an int or (x0, x1, y0, y1). `impl` says how (same values and gradients):

    * `"ref"`: zero-pad, then one plain `F.conv2d` per video on contiguous NCHW tensors.
    * `"fast"` (default): channels-last on the CPU (oneDNN's NHWC kernels are 1.5-3x faster
      here, see `torch_utils.layers.conv3d`), symmetric padding left to the convolution, and
      one grouped convolution over the batch when every video is a single frame."""
    if impl not in ("ref", "fast"):
        raise ValueError(f"unknown modulated_conv2d impl {impl!r}; choose one of ('ref', 'fast')")
    n = weights.shape[0]
    w = weights.to(x.dtype)
    pads = [padding] * 4 if isinstance(padding, int) else list(padding)
    if impl == "ref":
        x, w = F.pad(x, pads).contiguous(), w.contiguous()
        return torch.cat([F.conv2d(x[i * frames : (i + 1) * frames], w[i]) for i in range(n)])
    if len(set(pads)) > 1:
        x, pads = F.pad(x, pads), [0]
    padding = pads[0]
    if x.device.type == "cpu":  # oneDNN's NHWC kernels are 1.5-3x faster here (see conv3d)
        x = x.contiguous(memory_format=torch.channels_last)
    if n == 1:
        return F.conv2d(x, w[0], padding=padding)
    if frames == 1:  # one grouped convolution over the batch, as the original
        co, ci, kh, kw = w.shape[1:]
        y = F.conv2d(
            x.reshape(1, n * ci, *x.shape[2:]),
            w.reshape(n * co, ci, kh, kw),
            padding=padding,
            groups=n,
        )
        return y.reshape(n, co, *y.shape[2:])
    return torch.cat(
        [F.conv2d(x[i * frames : (i + 1) * frames], w[i], padding=padding) for i in range(n)]
    )


def _profiled(name: str):
    """A profiler range, none while compiling (the compiler would drop it, with a warning)."""
    return contextlib.nullcontext() if torch.compiler.is_compiling() else record_function(name)


class SynthesisLayer(nn.Module):
    """Magnitude-EMA gain, affine styles, modulated conv, filtered leaky ReLU
    (docs/networks.md#synthesis-layer)."""

    def __init__(self, spec: LayerSpec, w_dim: int, conv_clamp: float):
        super().__init__()
        self.spec, self.conv_clamp = spec, conv_clamp
        k = spec.kernel
        self.affine = FullyConnected(w_dim, spec.in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(spec.out_channels, spec.in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(spec.out_channels))
        self.ema = MagnitudeEMA()
        # Designed once, as tuples of floats: the forward path stays free of numpy and scipy
        # (docs/networks.md#compiling). Plain attributes, not state: checkpoints are unchanged.
        self.up_filter, self.down_filter = (
            None if f is None else filter_taps(f) for f in (spec.up_filter(), spec.down_filter())
        )

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        frames: int,
        ema_beta: float = 1.0,
        concat: Optional[torch.Tensor] = None,
        impl: str = "fast",
    ) -> torch.Tensor:
        """x `[n*frames, c_in, h, w]` (any float dtype), w `[n, w_dim]` -> `[n*frames, c_out,
        h', w']`, followed by the channels of `concat` (the next layer's conditioning) when
        given. `impl`: the ops' ("ref" or "fast", same result)."""
        spec = self.spec
        gain = self.ema(x, ema_beta)
        styles = self.affine(w.float())
        if spec.is_torgb:
            styles = styles * (1 / math.sqrt(spec.in_channels * spec.kernel**2))
        weights = modulate(self.weight, styles, gain, demodulate=not spec.is_torgb)
        # The "full" convolution (padding kernel - 1); "fast" skips the outputs the filtered
        # lrelu discards.
        x, conv_padding, padding = conv_window(x, spec.kernel, spec.up, spec.padding, impl)
        with _profiled("sres.conv"):
            y = modulated_conv2d(x, weights, frames, conv_padding, impl=impl)
        with _profiled("sres.filtered_lrelu"):
            return filtered_lrelu(
                y,
                self.up_filter,
                self.down_filter,
                self.bias.to(y.dtype),
                up=spec.up,
                down=spec.down,
                padding=padding,
                gain=1.0 if spec.is_torgb else math.sqrt(2),
                slope=1.0 if spec.is_torgb else 0.2,
                clamp=self.conv_clamp,
                impl=impl,
                concat=concat,
            )

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"{s.name}: {s.in_channels}->{s.out_channels}, {s.in_size}->{s.out_size}, "
            f"rate {s.in_rate}->{s.out_rate}, up {s.up}, down {s.down}, pad {s.padding}"
        )


# ------------------------------------------------------------------------------------------------
# The generator


class SuperResGenerator(SuperResolutionBase):
    """`S(lr_video, z=z)`: `[n, 3, T+8, h, w]` in [-1, 1] and `[n, z_dim]` -> `[n, 3, T, H, W]`.

    `precision`: "float32"; "mixed" (the original's: layers whose output rate times
    2^num_fp16_res exceeds the resolution run in float16 on CUDA, bfloat16 on CPU); "float16" or
    "bfloat16" (all synthesis layers); "auto" = "mixed" on CUDA, "float32" on CPU.
    """

    kind = "sres_generator"

    def __init__(self, cfg: SuperResGeneratorConfig = SuperResGeneratorConfig()):
        super().__init__()
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg.z_dim, cfg.mapping_layers, cfg.mapping_lr_mul)
        if cfg.z_dim != cfg.w_dim:
            raise ValueError("the mapping keeps the width: w_dim must equal z_dim")
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        self.layers = nn.ModuleList(
            SynthesisLayer(spec, cfg.w_dim, cfg.conv_clamp) for spec in cfg.layers
        )

    # -- the contract (networks.contract.SuperResolution) -----------------------------------

    @property
    def lr_size(self) -> tuple[int, int]:
        """(h, w) of the low-res input frames."""
        return (self.cfg.lr_height, self.cfg.lr_width)

    @property
    def hr_size(self) -> tuple[int, int]:
        """(h, w) of the output frames."""
        return (self.cfg.hr_height, self.cfg.hr_width)

    @property
    def context(self) -> int:
        """Low-res frames needed on each side of an output frame (4 in the paper)."""
        return self.cfg.temporal_context

    @property
    def z_dim(self) -> int:
        return self.cfg.z_dim

    # -- pieces --------------------------------------------------------------------------------

    def map(self, z: torch.Tensor, update_emas: bool = False) -> torch.Tensor:
        """z `[n, z_dim]` -> w `[n, w_dim]`; tracks `w_avg` (beta 0.998) when `update_emas`."""
        w = self.mapping(z.float())
        if update_emas:
            self.w_avg.copy_(w.detach().mean(dim=0).lerp(self.w_avg, self.cfg.w_avg_beta))
        return w

    def conditioning(self, lr_video: torch.Tensor) -> dict[tuple, torch.Tensor]:
        """LR frames padded and resampled to every rate the layers need:
        {(mode, factor): [n*(T+8), 3, h', w']} in float32."""
        cfg = self.cfg
        n, c, t, h, w = assert_shape(
            lr_video, "n c t h w", c=3, h=cfg.lr_height, w=cfg.lr_width
        ).values()
        x = lr_video.float().transpose(1, 2).reshape(n * t, c, h, w)
        x = F.pad(x, list(cfg.lr_padding()), mode="replicate")
        return {
            key: resample_conditioning(x, *key) for key in {s.cond_resample for s in cfg.layers}
        }

    def _dtypes(self, precision: str, device: torch.device) -> list[torch.dtype]:
        """The compute dtype of every layer for a `precision` (see the class doc)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "auto":
            precision = "mixed" if device.type == "cuda" else "float32"
        if precision == "mixed":
            reduced = torch.float16 if device.type == "cuda" else torch.bfloat16
            return [reduced if s.use_fp16 else torch.float32 for s in self.cfg.layers]
        return [getattr(torch, precision)] * len(self.cfg.layers)

    def layer_conditioning(self, levels: dict[tuple, torch.Tensor], videos: int) -> list:
        """Every layer's conditioning input `[n*frames, 27, h, w]` (float32): its level fitted to
        the layer's input canvas, 9-frame windows stacked (computed once per level and size)."""
        cache: dict[tuple, torch.Tensor] = {}
        out = []
        for spec in self.cfg.layers:
            key = (spec.cond_resample, spec.in_size)
            if key not in cache:
                level = fit_canvas(levels[spec.cond_resample], spec.in_size)
                cache[key] = stack_windows(level, videos, self.cfg.window)
            out.append(cache[key])
        return out

    def synthesis(
        self,
        levels: dict[tuple, torch.Tensor],
        w: torch.Tensor,
        frames: int,
        magnitude_ema_beta: float = 1.0,
        precision: str = "auto",
        impl: str = "fast",
    ) -> torch.Tensor:
        """Conditioning levels of n videos x (frames+8) LR frames and w `[n, w_dim]` ->
        `[n*frames, 3, H, W]` float32. Each layer's input is the previous layer's output
        followed by its conditioning channels (layer 0: the conditioning alone); `impl` is
        the filtered lrelus' ("ref" or "fast")."""
        cfg = self.cfg
        beta = magnitude_ema_beta
        conds = self.layer_conditioning(levels, w.shape[0])
        dtypes = self._dtypes(precision, w.device)
        x = conds[0]
        for i, layer in enumerate(self.layers):
            concat = conds[i + 1] if i + 1 < len(conds) else None
            x = layer(x.to(dtypes[i]), w, frames, beta, concat=concat, impl=impl)
        return x.float() * cfg.output_scale

    # -- calls ---------------------------------------------------------------------------------

    def forward(
        self,
        lr_video: torch.Tensor,
        z: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
        magnitude_ema_beta: float = 1.0,
        precision: str = "auto",
    ) -> torch.Tensor:
        """`[n, 3, T+8, h, w]` LR clip (and `[n, z_dim]` latents, drawn from `generator` when
        None) -> `[n, 3, T, H, W]`. `magnitude_ema_beta` < 1 updates the magnitude EMAs with that
        decay (training: 0.999) and w_avg with `cfg.w_avg_beta` (0.998), as the original does."""
        cfg = self.cfg
        n = lr_video.shape[0]
        frames = self._output_frames(lr_video)
        device = self.w_avg.device
        if z is None:
            z = torch.randn(n, cfg.z_dim, generator=generator, device=device)
        assert_shape(z, "n c", n=n, c=cfg.z_dim)
        w = self.map(z.to(device), update_emas=magnitude_ema_beta < 1)
        levels = self.conditioning(lr_video.to(device))
        x = self.synthesis(levels, w, frames, magnitude_ema_beta, precision=precision)
        return x.reshape(n, frames, 3, cfg.hr_height, cfg.hr_width).transpose(1, 2).contiguous()

    def _output_frames(self, lr_video: torch.Tensor) -> int:
        """Output frames of an LR clip `[n, 3, T+8, h, w]` (T), or a ValueError."""
        t_lr = lr_video.shape[2]
        frames = t_lr - (self.cfg.window - 1)
        if frames < 1:
            raise ValueError(
                f"an LR clip of {t_lr} frames is too short: {self.cfg.window - 1} context frames "
                "are needed around the output frames"
            )
        return frames
