"""Colour similarity against frame separation (the paper's colour-drift figure,
docs/metrics.md#colour-similarity).

For each video, every frame's RGB is quantised into 20 bins per channel (an 8000-bin joint
histogram); the similarity at separation k is the histogram intersection of frame k with frame 0,
divided by the number of pixels (1 at k = 0). Curves are mean ± std over videos, for generated
and real videos (`metrics.curves`).
"""

from __future__ import annotations

import numpy as np
import torch

from torch_utils.frames import to_uint8
from torch_utils.misc import assert_shape

BINS = 20


def joint_histograms(video_uint8: np.ndarray, bins: int = BINS) -> np.ndarray:
    """`[T, H, W, 3]` uint8 -> `[T, bins³]` pixel counts of the quantised joint RGB histogram."""
    q = (video_uint8.astype(np.int64) * bins) // 256  # bin of each channel value, 0..bins-1
    index = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    t = index.shape[0]
    offsets = (np.arange(t) * bins**3)[:, None]
    counts = np.bincount((index.reshape(t, -1) + offsets).ravel(), minlength=t * bins**3)
    return counts.reshape(t, bins**3)


def similarity_to_first(video_uint8: np.ndarray, bins: int = BINS) -> np.ndarray:
    """`[T, H, W, 3]` uint8 -> `[T]`: histogram intersection with frame 0 / pixel count."""
    hist = joint_histograms(video_uint8, bins)
    pixels = video_uint8.shape[1] * video_uint8.shape[2]
    return np.minimum(hist, hist[:1]).sum(axis=1) / pixels


def similarity_rows(videos: torch.Tensor, bins: int = BINS) -> list[np.ndarray]:
    """Float videos `[n, 3, T, H, W]` in [−1, 1] -> one similarity row per video."""
    assert_shape(videos, "n c t h w", c=3)
    frames = to_uint8(videos).permute(0, 2, 3, 4, 1).cpu().numpy()
    return [similarity_to_first(v, bins) for v in frames]
