"""FIR resampling against independent references: a direct loop and scipy
(docs/networks.md#fir-resampling)."""

import numpy as np
import pytest
import scipy.signal
import torch

from torch_utils import resample


def upfirdn_loop(x: np.ndarray, f: np.ndarray, up: int, down: int, p0: int, p1: int, gain=1.0):
    """docs/networks.md#fir-resampling, literally, on the last axis: zero-stuff, pad/crop, true
    convolution, decimate."""
    length = x.shape[-1]
    xu = np.zeros(x.shape[:-1] + (length * up,))
    xu[..., ::up] = x
    xp = np.concatenate(
        [np.zeros(x.shape[:-1] + (max(p0, 0),)), xu, np.zeros(x.shape[:-1] + (max(p1, 0),))], -1
    )
    xp = xp[..., max(-p0, 0) : xp.shape[-1] - max(-p1, 0)]
    k = len(f)
    out = np.zeros(x.shape[:-1] + (xp.shape[-1] - k + 1,))
    for j in range(out.shape[-1]):
        for i in range(k):
            out[..., j] += xp[..., j + i] * f[k - 1 - i]  # flipped: true convolution
    return out[..., ::down] * gain


CASES = [
    # (filter, up, down, p0, p1)
    (resample.linear_filter(2), 2, 1, 2, 1),
    (resample.linear_filter(4), 4, 1, 5, 2),
    (resample.kaiser_filter(2), 2, 1, 6, 5),
    (resample.kaiser_filter(4), 4, 1, 13, 10),
    (resample.kaiser_filter(2), 1, 2, 5, 5),
    (resample.kaiser_filter(4), 1, 4, 10, 10),
    (resample.blur_filter(), 1, 2, 1, 1),
    (np.array([0.1, 0.5, 0.2, -0.3, 0.7]), 3, 2, 4, -2),  # asymmetric, up and down, crop
    (np.array([0.1, 0.5, 0.2, -0.3, 0.7]), 2, 1, -3, 9),
    (np.array([1.0]), 1, 1, 0, 0),
]


@pytest.mark.parametrize("method", ["polyphase", "matrix"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("f,up,down,p0,p1", CASES)
def test_upfirdn_matches_direct_loop(f, up, down, p0, p1, dtype, tol, method):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 13))
    want = upfirdn_loop(x, f, up, down, p0, p1, gain=1.7)
    got = resample.upfirdn(
        torch.tensor(x, dtype=dtype), f, -1, up, down, (p0, p1), gain=1.7, method=method
    )
    assert got.dtype == dtype
    np.testing.assert_allclose(got.numpy(), want, atol=tol * 10, rtol=tol)


@pytest.mark.parametrize("method", ["polyphase", "matrix"])
def test_upfirdn_matches_scipy_and_any_axis(method):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 11, 3, 5))
    f = rng.standard_normal(7)
    for up, down in [(1, 1), (2, 1), (1, 3), (3, 2), (4, 1)]:
        # scipy.signal.upfirdn = zero-stuff, full convolution, decimate: padding (k-1, k-1).
        want = scipy.signal.upfirdn(f, np.moveaxis(x, 1, -1), up, down)
        pad = (6, 6 - up + 1)
        got = resample.upfirdn(torch.tensor(x), f, 1, up, down, pad, method=method)
        got = np.moveaxis(got.numpy(), 1, -1)
        np.testing.assert_allclose(got, want[..., : got.shape[-1]], atol=1e-12)


@pytest.mark.parametrize("method", ["polyphase", "matrix"])
def test_channels_last_in_channels_last_out(method):
    """Channels-last videos and images are filtered in place of a format conversion: same
    values, and the result stays channels-last for the convolution that follows."""
    x = torch.randn(2, 5, 6, 7, 9, dtype=torch.float64)
    for t, fmt in [(x, torch.channels_last_3d), (x[:, :, 0], torch.channels_last)]:
        for dim in range(2, t.ndim):
            want = resample.upfirdn(t, [1, 3, 3, 1], dim, up=2, padding=(2, 1), method=method)
            got = resample.upfirdn(
                t.contiguous(memory_format=fmt), [1, 3, 3, 1], dim, 2, 1, (2, 1), method=method
            )
            assert got.is_contiguous(memory_format=fmt)
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_named_filters():
    np.testing.assert_allclose(resample.linear_filter(2), [0.125, 0.375, 0.375, 0.125])
    np.testing.assert_allclose(resample.linear_filter(4), np.array([1, 3, 5, 7, 7, 5, 3, 1]) / 32)
    k2 = resample.kaiser_filter(2)
    expected = [0, -0.00019, 0.00266, 0.0392, 0.1585, 0.2999]  # docs/networks.md#named-resamplers
    assert len(k2) == 12 and len(resample.kaiser_filter(4)) == 24
    np.testing.assert_allclose(k2[:6], expected, atol=6e-5)
    np.testing.assert_allclose(k2, k2[::-1])
    assert abs(k2.sum() - 1) < 1e-12 and abs(resample.kaiser_filter(4).sum() - 1) < 1e-12
    np.testing.assert_allclose(resample.blur_filter(), [0.125, 0.375, 0.375, 0.125])


def test_constant_upsampling_borders():
    """Upsampling a constant 1 gives 0.75 at the ends, 0.5625 in corners (zero borders,
    docs/networks.md#fir-resampling)."""
    x = torch.ones(1, 1, 4, 6)
    y = resample.upsample(x, resample.linear_filter(2), up=2)
    assert y.shape == (1, 1, 8, 12)
    assert y[0, 0, 0, 0].item() == pytest.approx(0.5625)
    assert y[0, 0, 0, 5].item() == pytest.approx(0.75)
    assert y[0, 0, 3, 0].item() == pytest.approx(0.75)
    assert y[0, 0, 3, 5].item() == pytest.approx(1.0)
    # The same with a full 2-D (outer product) filter, and along time only.
    f2 = np.outer(resample.linear_filter(2), resample.linear_filter(2))
    y2 = resample.upfirdn2d(x, f2, up=2, padding=(2, 1, 2, 1), gain=4)
    torch.testing.assert_close(y2, y)
    t = resample.upsample(torch.ones(1, 1, 5, 2, 2), resample.linear_filter(2), up=2, dims=(2,))
    assert t.shape == (1, 1, 10, 2, 2)
    assert t[0, 0, 0, 0, 0].item() == pytest.approx(0.75) and t[0, 0, 4, 0, 0].item() == 1.0


def test_linear_upsampler_interpolates():
    """out[2k] = 0.25 x[k-1] + 0.75 x[k], out[2k+1] = 0.75 x[k] + 0.25 x[k+1] (linear x2)."""
    x = torch.randn(3, 10, dtype=torch.float64)
    y = resample.upsample(x[:, None], resample.linear_filter(2), up=2, dims=(-1,))[:, 0]
    xp = torch.nn.functional.pad(x, (1, 1))
    torch.testing.assert_close(y[:, 0::2], 0.25 * xp[:, :-2] + 0.75 * x)
    torch.testing.assert_close(y[:, 1::2], 0.75 * x + 0.25 * xp[:, 2:])


def test_upfirdn2d_separable_gain_and_general_filter():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 9))
    f = resample.kaiser_filter(2)
    got = resample.upfirdn2d(torch.tensor(x), f, up=2, padding=(6, 5, 6, 5), gain=4)
    want = upfirdn_loop(x, f, 2, 1, 6, 5, gain=2)
    want = np.swapaxes(upfirdn_loop(np.swapaxes(want, -1, -2), f, 2, 1, 6, 5, gain=2), -1, -2)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12)
    # A non-separable 2-D filter goes through the direct path: compare with scipy.
    f2 = rng.standard_normal((3, 4))
    got = resample.upfirdn2d(torch.tensor(x), f2, down=(2, 1), padding=(3, 0, 2, 2))
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (3, 0)))
    full = scipy.signal.convolve(xp, f2[None, None], mode="valid")
    np.testing.assert_allclose(got.numpy(), full[..., ::2], atol=1e-12)


def test_downsample_default_padding_and_length():
    x = torch.randn(1, 2, 36, 64)
    y = resample.downsample(x, resample.blur_filter(), down=2)
    assert y.shape == (1, 2, 18, 32)
    assert resample.default_up_padding(4, 2) == (2, 1)
    assert resample.default_down_padding(12, 2) == (5, 5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision(dtype):
    x = torch.randn(2, 4, 9, 16)
    f = resample.kaiser_filter(2)
    ref = resample.upfirdn2d(x, f, up=2, padding=(6, 5, 6, 5), gain=4)
    got = resample.upfirdn2d(x.to(dtype), f, up=2, padding=(6, 5, 6, 5), gain=4)
    assert got.dtype == dtype
    torch.testing.assert_close(got.float(), ref, atol=0.05, rtol=0.05)


def test_double_backward():
    """R1 needs gradients of gradients through the resamplers."""
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    f = resample.kaiser_filter(2)

    def fn(x):
        return resample.upfirdn2d(x, f, up=2, down=1, padding=(6, 5, 6, 5), gain=4).square().sum()

    for method in ["polyphase", "matrix"]:
        y = lambda x, m=method: resample.upfirdn(x, f, -1, 2, 1, (6, 5), method=m)  # noqa: E731
        assert torch.autograd.gradcheck(y, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    # The polyphase path's own backward (one gradient buffer for all taps), every case.
    taps = [0.1, 0.5, 0.3, -0.2, 0.05]
    for up, down, pad in [(1, 2, (0, 0)), (2, 1, (3, 2)), (2, 2, (-1, 4)), (1, 1, (2, -1))]:
        y = lambda x, u=up, d=down, p=pad: resample.upfirdn(  # noqa: E731
            x, taps, 2, u, d, p, method="polyphase"
        )
        assert torch.autograd.gradcheck(y, (x,)) and torch.autograd.gradgradcheck(y, (x,))


def test_errors():
    with pytest.raises(ValueError, match="1-D filter"):
        resample.upfirdn(torch.zeros(3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="empty"):
        resample.upfirdn(torch.zeros(3), np.ones(8))
