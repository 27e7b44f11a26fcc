"""Frames as files show them: uint8 conversion and the layout of video grids, shared by the
sample videos of training, `lvg-generate` and the metrics (docs/generation.md#writing-frames)."""

from __future__ import annotations

import math

import numpy as np
import torch


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """Frames in [-1, 1] -> uint8 as the original writes and evaluates them:
    clamp(x * 127.5 + 128, 0, 255), truncated."""
    return (video.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def to_uint8_hwc(video: torch.Tensor) -> np.ndarray:
    """`[..., 3, H, W]` in [-1, 1] -> `[..., H, W, 3]` uint8 images."""
    return to_uint8(video).movedim(-3, -1).cpu().numpy()


def display_factor(height: int, width: int, multiple: int = 16) -> int:
    """The smallest integer upscale after which both edges are multiples of `multiple`
    (36x64 -> x4 = 144x256)."""
    a, b = multiple // math.gcd(height, multiple), multiple // math.gcd(width, multiple)
    return a * b // math.gcd(a, b)


def nearest_upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of `[..., H, W, C]` images by an integer factor."""
    if factor == 1:
        return frames
    return frames.repeat(factor, axis=-3).repeat(factor, axis=-2)


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns): rows = the largest divisor of n that is <= sqrt(n)."""
    rows = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return rows, n // rows


def make_grid(frames: np.ndarray) -> np.ndarray:
    """`[..., n, H, W, C]` -> `[..., rows * H, cols * W, C]`: the n images in one grid, in
    row-major order."""
    *lead, n, h, w, c = frames.shape
    rows, cols = grid_shape(n)
    grid = np.swapaxes(frames.reshape(*lead, rows, cols, h, w, c), -4, -3)
    return grid.reshape(*lead, rows * h, cols * w, c)


def video_grid(videos: torch.Tensor, multiple: int = 16) -> np.ndarray:
    """`[n, 3, t, h, w]` in [-1, 1] -> uint8 `[t, H, W, 3]`: the videos in one grid,
    nearest-upscaled so that both edges are multiples of `multiple`, as the original writes its
    samples (36x64 videos at 144x256)."""
    grid = make_grid(to_uint8_hwc(videos.permute(2, 0, 1, 3, 4)))
    return nearest_upscale(grid, display_factor(*grid.shape[1:3], multiple))
