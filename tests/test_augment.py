"""Discriminator augmentations hold every parameter constant over a clip
(docs/training.md#diffaugment-and-time-stretch)."""

import pytest
import torch

from training.augment import (
    augment_color,
    augment_cutout,
    augment_translation,
    augment_video,
    time_stretch,
)


def static_video(n=3, t=6, h=12, w=20):
    frame = torch.randn(n, 3, 1, h, w)
    return frame.expand(n, 3, t, h, w).contiguous()


@pytest.mark.parametrize("op", [augment_color, augment_translation, augment_cutout])
def test_diffaugment_same_transform_for_every_frame(op):
    x = static_video()
    y = op(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert torch.equal(y, y[:, :, :1].expand_as(y))  # a static clip stays static
    assert not torch.equal(y, x)  # and something did change


def test_translation_range_and_cutout_size():
    x = torch.ones(64, 1, 1, 36, 64)
    y = augment_translation(x, torch.Generator().manual_seed(1))
    zero_rows = (y[:, 0, 0] == 0).all(dim=2).sum(dim=1)
    zero_cols = (y[:, 0, 0] == 0).all(dim=1).sum(dim=1)
    assert (
        zero_rows.max() <= 16 and zero_cols.max() <= 16 and zero_cols.max() > 8
    )  # +-16 px both axes
    z = augment_cutout(x, torch.Generator().manual_seed(2))
    assert ((z == 0).sum(dim=(1, 2, 3, 4)) <= 18 * 32).all()
    assert ((z == 0).sum(dim=(1, 2, 3, 4)) == 18 * 32).any()


def test_time_stretch_is_a_pure_time_resampling():
    """Frames x_t = t * pattern stay multiples of the same pattern: time is resampled, space is not."""
    n, t = 8, 16
    pattern = torch.rand(n, 3, 1, 5, 7) + 0.5
    ramp = torch.arange(1, t + 1, dtype=torch.float32).view(1, 1, t, 1, 1)
    y = time_stretch(pattern * ramp, torch.Generator().manual_seed(3))
    assert y.shape == (n, 3, t, 5, 7)
    ratio = y / pattern
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), atol=1e-4)
    lengths = (ratio[:, 0, :, 0, 0] != 0).sum(dim=1)
    assert (lengths < t).any()  # some clips were slowed down... (zero-padded in time)
    steps = ratio[:, 0, 1:, 0, 0] - ratio[:, 0, :-1, 0, 0]
    assert (steps.abs() > 1.5).any()  # ...and some sped up


def test_augment_video_is_differentiable_and_checks_policy():
    x = torch.randn(2, 3, 8, 12, 20, requires_grad=True)
    augment_video(x, torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        augment_video(x, torch.Generator(), policy="color,warp")
