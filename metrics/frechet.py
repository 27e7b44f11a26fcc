"""Feature statistics and the Fréchet distance (docs/metrics.md#statistics-and-distance).

`FeatureStats` accumulates Σw·x and Σw·xxᵀ in float64; μ = Σwx/W and Σ = Σwxxᵀ/W − μμᵀ, the
**population** covariance (divide by W = N for unit weights, not N − 1). The distance is
‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2·sqrtm(Σ₁Σ₂)) with `scipy.linalg.sqrtm` and the real part of the result.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from torch_utils.misc import write_atomic


@dataclass
class FeatureStats:
    """Running float64 sums of features (optionally weighted)."""

    dim: int
    count: int = 0
    weight: float = 0.0
    sum_x: np.ndarray = field(default=None)
    sum_xx: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.sum_x is None:
            self.sum_x = np.zeros(self.dim, np.float64)
        if self.sum_xx is None:
            self.sum_xx = np.zeros((self.dim, self.dim), np.float64)

    def append(self, features: torch.Tensor | np.ndarray, weights=None) -> None:
        """Add `[n, dim]` features, each with weight 1 or `weights[i]`."""
        x = np.asarray(features.detach().cpu() if torch.is_tensor(features) else features)
        x = x.astype(np.float64).reshape(-1, self.dim)
        w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
        self.count += len(x)
        self.weight += float(w.sum())
        self.sum_x += w @ x
        self.sum_xx += (x * w[:, None]).T @ x

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.weight <= 0:
            raise ValueError("no features were accumulated")
        mu = self.sum_x / self.weight
        return mu, self.sum_xx / self.weight - np.outer(mu, mu)

    # -- (de)serialisation: npz with the sums, so caches can be merged and re-weighted

    def to_bytes(self, metadata: dict | None = None) -> bytes:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            count=np.int64(self.count),
            weight=np.float64(self.weight),
            sum_x=self.sum_x,
            sum_xx=self.sum_xx,
            metadata=np.array(json.dumps(metadata or {})),
        )
        return buffer.getvalue()

    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Atomic write (temp file, then rename)."""
        return write_atomic(path, self.to_bytes(metadata))

    @classmethod
    def load(cls, path: str | os.PathLike) -> tuple[FeatureStats, dict]:
        with np.load(path, allow_pickle=False) as data:
            stats = cls(
                dim=data["sum_x"].shape[0],
                count=int(data["count"]),
                weight=float(data["weight"]),
                sum_x=data["sum_x"].copy(),
                sum_xx=data["sum_xx"].copy(),
            )
            return stats, json.loads(str(data["metadata"]))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2·sqrtm(Σ₁Σ₂)), real part of the matrix square root."""
    m = np.square(mu1 - mu2).sum()
    # Called without `disp` (deprecated in SciPy 1.17): the default returns the root alone.
    s = scipy.linalg.sqrtm(np.dot(sigma1, sigma2))
    return float(np.real(m + np.trace(sigma1 + sigma2 - s * 2)))


def frechet_between(a: FeatureStats, b: FeatureStats) -> float:
    return frechet_distance(*a.mean_cov(), *b.mean_cov())
