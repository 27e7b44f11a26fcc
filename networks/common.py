"""Building blocks both generators share: the magnitude EMA that normalises every modulated
convolution's input (docs/networks.md#magnitude-ema) and the mapping network
(docs/networks.md#mapping-network)."""

from __future__ import annotations

import torch
from torch import nn

from torch_utils.distributed import all_reduce_mean
from torch_utils.layers import FullyConnected


class MagnitudeEMA(nn.Module):
    """Running mean square of a layer's input; returns the input gain rsqrt(m)
    (docs/networks.md#magnitude-ema).

    Updated only when called with beta < 1 (the D step's fake forward in training)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("value", torch.ones([]))

    def forward(self, x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        if beta < 1:
            stat = all_reduce_mean(x.detach().float().square().mean()).to(self.value.dtype)
            self.value.copy_(stat.lerp(self.value, beta))
        return self.value.rsqrt()


class MappingNetwork(nn.Module):
    """Per-frame 2nd-moment normalisation, then FC layers with lrelu at lr_mul 0.01.
    Input and output are `n l c` (channels last)."""

    def __init__(self, channels: int, num_layers: int = 2, lr_mul: float = 0.01):
        super().__init__()
        self.layers = nn.ModuleList(
            FullyConnected(channels, channels, activation="lrelu", lr_mul=lr_mul)
            for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (x.square().mean(dim=-1, keepdim=True) + 1e-8).rsqrt()
        for layer in self.layers:
            x = layer(x)
        return x
