"""bias_act, equalized-lr layers (docs/networks.md#equalized-learning-rate), shape checks and
atomic writes."""

import math

import numpy as np
import pytest
import torch

from torch_utils.bias_act import bias_act
from torch_utils.layers import Conv, FullyConnected, conv3d
from torch_utils.misc import assert_shape, atomic_path, choose_device, write_atomic


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bias_act_reference(dtype):
    x = torch.randn(2, 5, 7, dtype=dtype) * 300
    b = torch.randn(5, dtype=dtype)
    y = bias_act(x, b, dim=1, act="lrelu", clamp=256)
    z = x.numpy() + b.numpy()[None, :, None]
    want = np.clip(np.where(z >= 0, z, 0.2 * z) * math.sqrt(2), -256, 256)  # clamp after gain
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6, atol=1e-6)
    lin = bias_act(x, b, dim=1, act="linear", gain=0.5)
    np.testing.assert_allclose(lin.numpy(), z * 0.5, rtol=1e-6)
    assert bias_act(x, b, dim=1, act="lrelu", clamp=256).abs().max() <= 256


def test_bias_act_other_axis_and_errors():
    x = torch.randn(3, 4)
    b = torch.randn(4)
    torch.testing.assert_close(bias_act(x, b, dim=-1), x + b)
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(x, act="swish2")
    with pytest.raises(ValueError, match="does not fit"):
        bias_act(x, torch.zeros(3), dim=-1)


def test_fully_connected_equalized_lr():
    torch.manual_seed(0)
    fc = FullyConnected(16, 8, activation="lrelu", lr_mul=0.01, bias_init=1.0)
    assert fc.bias.detach().eq(100.0).all()  # stored as bias_init / lr_mul
    x = torch.randn(3, 16)
    w = fc.weight.detach().numpy() * 0.01 / math.sqrt(16)
    z = x.numpy() @ w.T + fc.bias.detach().numpy() * 0.01
    want = np.where(z >= 0, z, 0.2 * z) * math.sqrt(2)
    np.testing.assert_allclose(fc(x).detach().numpy(), want, rtol=1e-5, atol=1e-6)
    # Applies over the last axis of any leading shape, e.g. per time step.
    assert fc(torch.randn(2, 5, 16)).shape == (2, 5, 8)


@pytest.mark.parametrize("dims,kernel", [(1, 3), (2, 3), (3, (5, 3, 3))])
def test_conv_equalized_lr(dims, kernel):
    torch.manual_seed(0)
    conv = Conv(4, 6, kernel, dims=dims, activation="lrelu", clamp=256)
    x = torch.randn(2, 4, *([7] * dims), dtype=torch.float64)
    k = (kernel,) * dims if isinstance(kernel, int) else kernel
    gain = 1 / math.sqrt(4 * math.prod(k))
    ref = getattr(torch.nn.functional, f"conv{dims}d")(
        x, conv.weight.double() * gain, padding=tuple(s // 2 for s in k)
    )
    want = torch.nn.functional.leaky_relu(ref, 0.2) * math.sqrt(2)
    torch.testing.assert_close(conv.double()(x), want)
    assert conv(x).shape == want.shape  # 'same' padding keeps the size


@pytest.mark.parametrize("kernel", [(1, 1, 1), (3, 3, 3), (1, 3, 3)])
def test_conv3d_equals_channels_first_conv(kernel):
    """The CPU paths (channels-last oneDNN, a matmul for 1x1x1) against plain NCDHW F.conv3d,
    values and gradients, for a channels-first and a channels-last input."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 5, 4, 7, generator=gen)
    weight = torch.randn(3, 6, *kernel, generator=gen)
    padding = tuple(k // 2 for k in kernel)
    want = torch.nn.functional.conv3d(x, weight, padding=padding)
    for inp in (x, x.contiguous(memory_format=torch.channels_last_3d)):
        inp = inp.clone().requires_grad_(True)
        got = conv3d(inp, weight, padding=padding)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        assert got.is_contiguous(memory_format=torch.channels_last_3d)
        (grad,) = torch.autograd.grad((got * want).sum(), inp)
        x_ref = x.clone().requires_grad_(True)
        conv = torch.nn.functional.conv3d(x_ref, weight, padding=padding)
        (grad_ref,) = torch.autograd.grad((conv * want).sum(), x_ref)
        torch.testing.assert_close(grad, grad_ref, rtol=1e-4, atol=1e-4)


def _values_and_grads(fn, *inputs):
    """fn(*inputs) and the gradients of a fixed random projection of it w.r.t. every input."""
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    y = fn(*inputs)
    proj = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    return y.detach(), torch.autograd.grad((y * proj).sum(), inputs)


@pytest.mark.parametrize("kernel", [(1, 1, 1), (3, 3, 3)])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_conv3d_ref_equals_fast(kernel, layout):
    """impl="ref" (plain NCDHW F.conv3d) and "fast" (channels-last, 1x1x1 as a matmul) agree
    to float32 rounding, values and gradients w.r.t. input and weight."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 5, 4, 7, generator=gen)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    weight = torch.randn(3, 6, *kernel, generator=gen)
    padding = tuple(k // 2 for k in kernel)
    ref, ref_grads = _values_and_grads(
        lambda a, w: conv3d(a, w, padding=padding, impl="ref"), x, weight
    )
    fast, fast_grads = _values_and_grads(
        lambda a, w: conv3d(a, w, padding=padding, impl="fast"), x, weight
    )
    assert ref.is_contiguous()  # the reference keeps NCDHW
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    for g_fast, g_ref in zip(fast_grads, ref_grads):
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="impl"):
        conv3d(x, weight, impl="cuda")


@pytest.mark.parametrize("videos,frames", [(1, 1), (1, 3), (2, 1), (2, 3)])
@pytest.mark.parametrize("padding", [1, (2, 1, 0, 2)])
def test_modulated_conv2d_ref_equals_fast(videos, frames, padding):
    """networks.sres_generator.modulated_conv2d: "ref" (pad, one NCHW F.conv2d per video) and
    "fast" (channels-last, grouped conv for single frames) agree, values and gradients."""
    from networks.sres_generator import modulated_conv2d

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(videos * frames, 4, 6, 5, generator=gen)
    weights = torch.randn(videos, 3, 4, 3, 3, generator=gen)
    results = {
        impl: _values_and_grads(
            lambda a, w, impl=impl: modulated_conv2d(a, w, frames, padding, impl=impl), x, weights
        )
        for impl in ("ref", "fast")
    }
    (ref, ref_grads), (fast, fast_grads) = results["ref"], results["fast"]
    pads = (padding,) * 4 if isinstance(padding, int) else padding
    assert ref.shape == (videos * frames, 3, 6 + pads[2] + pads[3] - 2, 5 + pads[0] + pads[1] - 2)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    for g_fast, g_ref in zip(fast_grads, ref_grads):
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="impl"):
        modulated_conv2d(x, weights, frames, padding, impl="cuda")


def test_assert_shape():
    x = torch.zeros(2, 3, 4, 5, 6)
    assert assert_shape(x, "n c t h w", c=3, h=5) == {"n": 2, "c": 3, "t": 4, "h": 5, "w": 6}
    with pytest.raises(ValueError, match="axis 'c'"):
        assert_shape(x, "n c t h w", c=4)
    with pytest.raises(ValueError, match="5 axes"):
        assert_shape(x[0], "n c t h w")


def test_choose_device():
    assert choose_device("cpu").type == "cpu"
    assert choose_device(None).type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="--device cpu"):
            choose_device("cuda")


def test_atomic_path_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "sub" / "out.json"
    assert write_atomic(path, "first") == path and path.read_text() == "first"
    with pytest.raises(RuntimeError, match="died"), atomic_path(path) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("died while writing")
    assert path.read_text() == "first"  # untouched, and no temporary file left behind
    with atomic_path(path) as tmp:
        assert tmp.parent == path.parent  # same file system: the rename is atomic
        tmp.write_bytes(b"second")
        assert path.read_text() == "first"  # replaced only on a clean exit
    assert path.read_text() == "second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]
