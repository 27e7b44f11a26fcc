"""torch_utils.frames: the one uint8 conversion and grid layout of every writer."""

import numpy as np
import torch

from torch_utils.frames import make_grid, to_uint8, video_grid


def test_video_grid_layout_and_upscale():
    n, t, h, w = 6, 2, 36, 64
    videos = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1).expand(n, 3, t, h, w)
    videos = videos / 127.5 - 1  # video i has the uint8 value i (after the +128 truncation)
    grid = video_grid(videos)
    assert grid.shape == (t, 2 * h * 2, 3 * w * 2, 3) and grid.dtype == np.uint8  # x2: 72 -> 144
    for i in range(n):
        r, c = divmod(i, 3)  # row-major, 2 rows of 3
        block = grid[:, r * 72 : (r + 1) * 72, c * 128 : (c + 1) * 128]
        assert (block == to_uint8(videos[i, 0, 0, 0, 0]).item()).all(), i


def test_make_grid_keeps_leading_axes():
    frames = np.random.default_rng(0).integers(0, 255, (5, 4, 3, 2, 1), dtype=np.uint8)
    grid = make_grid(frames)
    assert grid.shape == (5, 2 * 3, 2 * 2, 1)
    for k in range(5):
        assert (grid[k] == make_grid(frames[k])).all()
    assert (grid[:, 3:6, 2:4] == frames[:, 3]).all()
