"""ADA and the low-resolution in-augmentation (docs/training.md#ada-and-in-augmentation)."""

import math

import pytest
import torch

from training.ada import BGC, IN_AUGMENT, AdaController, AugmentConfig, AugmentPipe


def static_video(n=4, t=5, h=16, w=24):
    return torch.rand(n, 3, 1, h, w).mul(2).sub(1).expand(n, 3, t, h, w).contiguous()


def test_identity_at_p0_and_same_transform_for_every_frame():
    x = static_video()
    assert torch.equal(AugmentPipe(BGC, p=0.0)(x, torch.Generator().manual_seed(0)), x)
    y = AugmentPipe(BGC, p=1.0)(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.allclose(y, x)
    torch.testing.assert_close(y, y[:, :, :1].expand_as(y))


def test_xflip_and_rotate90_are_exact():
    x = static_video(n=64, h=16, w=16)
    pipe = AugmentPipe(AugmentConfig(xflip=1, rotate90=1), p=1.0)
    y = pipe(x, torch.Generator().manual_seed(1))
    candidates = [torch.rot90(x, k, dims=(3, 4)) for k in range(4)] + [
        torch.rot90(x.flip(4), k, dims=(3, 4)) for k in range(4)
    ]
    for i in range(x.shape[0]):
        assert min((y[i] - c[i]).abs().max().item() for c in candidates) < 1e-5


def test_colour_matrix_keeps_grey_axis_under_hue_and_saturation():
    pipe = AugmentPipe(AugmentConfig(hue=1, saturation=1), p=1.0)
    grey = torch.full((8, 3, 2, 4, 4), 0.3)
    torch.testing.assert_close(
        pipe(grey, torch.Generator().manual_seed(2)), grey, atol=1e-5, rtol=0
    )


def test_in_augment_noise_is_iid_per_frame():
    x = static_video(n=32)
    y = AugmentPipe(AugmentConfig(noise=1, noise_std=0.08), p=1.0)(
        x, torch.Generator().manual_seed(3)
    )
    frame_diff = (y[:, :, 1:] - y[:, :, :1]).abs().amax(dim=(1, 2, 3, 4))
    assert (frame_diff > 0).float().mean() > 0.5
    assert IN_AUGMENT.rotate_max == pytest.approx(0.016) and IN_AUGMENT.noise_std == 0.08


def test_ada_controller_moves_p_toward_the_target():
    pipe = AugmentPipe(BGC)
    ada = AdaController(pipe, target=0.6, interval=4, speed=0.000125, cap=0.5)
    for step in range(1, 41):
        ada.accumulate(torch.ones(8, 1))  # D is sure the reals are real: overfitting
        ada.update(step)
    assert pipe.p == pytest.approx(10 * 4 * 0.000125)
    for step in range(41, 1001):
        ada.accumulate(-torch.ones(8, 1))
        ada.update(step)
    assert pipe.p == 0.0
    pipe.p = 0.4999
    ada.accumulate(torch.ones(1, 1))
    ada.update(4)
    assert pipe.p == 0.5  # capped
    state = ada.state_dict()
    other = AdaController(AugmentPipe(BGC))
    other.load_state_dict(state)
    assert other.pipe.p == 0.5 and math.isclose(other.sum.item(), state["sum"].item())


def test_gradients_flow_through_the_pipe():
    x = torch.rand(2, 3, 2, 8, 8, requires_grad=True)
    AugmentPipe(BGC, p=1.0)(x, torch.Generator().manual_seed(4)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
