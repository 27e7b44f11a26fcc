"""The temporal noise embedding: i.i.d. noise through a bank of Kaiser lowpass filters
(docs/networks.md#temporal-noise-embedding).

Every frame gets `noise_channels` (8) i.i.d. N(0,1) samples. Each noise channel is filtered by
`num_filters` (128) causal lowpass filters whose footprints grow geometrically from 125 to 5000
frames, so the embedding (8 x 128 = 1024 channels per frame) carries variation on every time
scale from seconds to minutes. Each filter's output is scaled to unit variance.

Layout and alignment follow the original exactly: the filters are right-aligned in a buffer of
`max_taps` columns, and output frame t reads noise samples t .. t + max_taps - 1 (a valid
cross-correlation), so all filters share the newest sample. Channel order is noise-major:
channel = noise_channel * num_filters + filter_index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.signal
import torch
from torch import nn

from torch_utils.misc import assert_shape


@dataclass(frozen=True)
class NoiseBankConfig:
    """Defaults are the paper's (docs/networks.md#temporal-noise-embedding)."""

    noise_channels: int = 8
    num_filters: int = 128
    min_sampling_rate: float = 250.0
    max_sampling_rate: float = 10000.0
    cutoff: float = 2.0
    width: float = 12.0

    @property
    def channels(self) -> int:
        return self.noise_channels * self.num_filters


def kaiser_bank(cfg: NoiseBankConfig) -> tuple[np.ndarray, np.ndarray]:
    """The right-aligned filter bank `[num_filters, max_taps]` and each filter's 1/L2-norm."""
    rates = 2 ** np.linspace(
        math.log2(cfg.min_sampling_rate), math.log2(cfg.max_sampling_rate), cfg.num_filters
    )
    rates = np.clip(rates, cfg.min_sampling_rate, cfg.max_sampling_rate)
    taps = [int(math.ceil(r / 2)) for r in rates]
    bank = np.zeros([cfg.num_filters, max(taps)])
    for i, (n, r) in enumerate(zip(taps, rates)):
        bank[i, bank.shape[1] - n :] = scipy.signal.firwin(n, cfg.cutoff, width=cfg.width, fs=r)
    return bank, 1.0 / np.linalg.norm(bank, axis=1)


class TemporalNoiseBank(nn.Module):
    """`[n, noise_channels, L + max_taps - 1]` raw noise -> `[n, channels, L]` embedding.

    Computed by FFT (exact up to float rounding), which costs O(L log L) instead of the direct
    convolution's O(L * 5000) per channel; the filter spectra are cached per FFT size.
    """

    def __init__(self, cfg: NoiseBankConfig = NoiseBankConfig()):
        super().__init__()
        self.cfg = cfg
        bank, inv_norm = kaiser_bank(cfg)
        self.register_buffer("filters", torch.tensor(bank, dtype=torch.float64), persistent=False)
        self.register_buffer("scale", torch.tensor(inv_norm, dtype=torch.float64), persistent=False)
        self._spectra: dict = {}

    @property
    def context(self) -> int:
        """Extra noise samples needed beyond the output length (max_taps - 1 = 4999)."""
        return self.filters.shape[1] - 1

    def _spectrum(self, size: int, device: torch.device) -> torch.Tensor:
        key = (size, str(device))
        if key not in self._spectra:
            # Correlation = convolution with the reversed filter; fold the unit-norm scale in.
            taps = (self.filters * self.scale[:, None]).flip(1).to(device)
            self._spectra = {key: torch.fft.rfft(taps, n=size)}  # keep only the latest size
        return self._spectra[key]

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        sizes = assert_shape(noise, "n c l", c=self.cfg.noise_channels)
        length = sizes["l"] - self.context
        if length < 1:
            raise ValueError(
                f"noise has {sizes['l']} samples; at least {self.context + 1} are needed "
                f"(output length + {self.context})"
            )
        size = 1 << (sizes["l"] - 1).bit_length()  # FFT size >= signal length, no wrap-around
        spec = torch.fft.rfft(noise.double(), n=size)  # [n, c, size/2+1]
        full = torch.fft.irfft(spec[:, :, None] * self._spectrum(size, noise.device), n=size)
        out = full[..., self.context : self.context + length]  # valid part, [n, c, f, L]
        return out.flatten(1, 2).to(noise.dtype if noise.is_floating_point() else torch.float32)
