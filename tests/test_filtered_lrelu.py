"""The filtered leaky ReLU (docs/networks.md#synthesis-layer) against a direct float64
reference written here independently: zero-stuff, pad, 2-D convolution, activation,
convolution, decimation."""

import math
import threading

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from torch_utils.filtered_lrelu import (
    BandedOperator,
    RowOperator,
    conv_window,
    filtered_lrelu,
    output_size,
    skipped_border,
)


def direct(x, fu, fd, b, up, down, pad, gain, slope, clamp):
    """Literal definition in float64 with torch.conv2d: every step materialised."""
    x = torch.as_tensor(x, dtype=torch.float64)
    n, c, h, w = x.shape
    x = x + torch.as_tensor(b, dtype=torch.float64).view(1, -1, 1, 1)
    z = torch.zeros(n, c, h * up, w * up, dtype=torch.float64)
    z[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = pad
    z = F.pad(z, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    z = z[:, :, max(-py0, 0) : z.shape[2] - max(-py1, 0), max(-px0, 0) : z.shape[3] - max(-px1, 0)]
    ku = torch.as_tensor(np.outer(fu, fu)[::-1, ::-1].copy() * up * up)  # true convolution
    z = F.conv2d(z.reshape(n * c, 1, *z.shape[2:]), ku[None, None])
    z = torch.where(z >= 0, z, z * slope) * gain
    if clamp is not None:
        z = z.clamp(-clamp, clamp)
    kd = torch.as_tensor(np.outer(fd, fd)[::-1, ::-1].copy())
    z = F.conv2d(z, kd[None, None])[:, :, ::down, ::down]
    return z.reshape(n, c, *z.shape[2:])


def random_case(rng, up, down, size, pad_shift=0):
    fu = (
        scipy.signal.firwin(6 * up, 0.8 / up, fs=2) + 0.01 * rng.standard_normal(6 * up)
        if up > 1
        else np.ones(1)
    )
    fd = (
        scipy.signal.firwin(6 * down, 0.8 / down, fs=2) + 0.01 * rng.standard_normal(6 * down)
        if down > 1
        else np.ones(1)
    )
    h, w = size
    out_h, out_w = (h + 2) // down + 3, (w + 2) // down - 2
    pads = []
    for length, out in ((w, out_w), (h, out_h)):
        total = (out - 1) * down + 1 - length * up + len(fu) + len(fd) - 2 + pad_shift
        lo = (total + up) // 2
        pads += [lo, total - lo]
    return fu, fd, tuple(pads)


@pytest.mark.parametrize("up", [1, 2, 4])
@pytest.mark.parametrize("down", [1, 2])
@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_matches_direct_definition(up, down, impl):
    rng = np.random.default_rng(10 * up + down)
    for size, shift in (((11, 19), 0), ((23, 9), -3), ((5, 7), 4)):
        fu, fd, pad = random_case(rng, up, down, size, shift)
        x = rng.standard_normal((2, 5, *size)) * 30
        b = rng.standard_normal(5)
        args = dict(up=up, down=down, gain=math.sqrt(2), slope=0.2, clamp=40.0)
        want = direct(x, fu, fd, b, pad=pad, **args)
        got = filtered_lrelu(
            torch.as_tensor(x), fu, fd, torch.as_tensor(b), padding=pad, impl=impl, **args
        )
        assert got.dtype == torch.float64 and got.shape == want.shape
        assert got.shape[-1] == output_size(size[1], up, down, pad[:2], len(fu), len(fd))
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
        # The clamp and the negative slope both matter on these inputs.
        assert not torch.allclose(want, direct(x, fu, fd, b, pad=pad, **{**args, "clamp": None}))
        assert not torch.allclose(want, direct(x, fu, fd, b, pad=pad, **{**args, "slope": 0.3}))


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_out_into_the_first_channels_of_a_bigger_buffer(impl, layout):
    """As the SR generator calls it: the result fills the first c channels of the next layer's
    input buffer (channels-last on the CPU) and leaves the rest alone."""
    rng = np.random.default_rng(5)
    fu, fd, pad = random_case(rng, 2, 2, (12, 18))
    x = rng.standard_normal((3, 5, 12, 18)) * 30
    b = rng.standard_normal(5)
    args = dict(up=2, down=2, gain=math.sqrt(2), slope=0.2, clamp=40.0)
    want = direct(x, fu, fd, b, pad=pad, **args)
    buffer = torch.full((3, 7, *want.shape[2:]), -7.0, dtype=torch.float64)
    buffer = buffer.contiguous(memory_format=layout)
    got = filtered_lrelu(
        torch.as_tensor(x),
        fu,
        fd,
        torch.as_tensor(b),
        padding=pad,
        impl=impl,
        out=buffer[:, :5],
        **args,
    )
    assert got.data_ptr() == buffer.data_ptr()
    torch.testing.assert_close(buffer[:, :5], want, atol=1e-10, rtol=1e-10)
    assert (buffer[:, 5:] == -7).all()


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_float32_linear_torgb_and_identity_filters(impl):
    """ToRGB: no filters, slope 1, gain 1, zero padding: bias + clamp only."""
    x = torch.randn(3, 4, 6, 7) * 100
    b = torch.randn(4)
    y = filtered_lrelu(x, None, None, b, gain=1, slope=1, clamp=50, impl=impl)
    torch.testing.assert_close(y, (x + b.view(1, -1, 1, 1)).clamp(-50, 50))


def test_fast_equals_ref_on_the_paper_layers():
    from networks.sres_generator import SuperResGeneratorConfig

    for spec in SuperResGeneratorConfig().layers[2:12:3]:  # up 2 and up 4 layers, all sizes
        h, w = spec.in_size
        x = torch.randn(1, 7, h + 2, w + 2) * 50
        args = dict(
            fu=spec.up_filter(),
            fd=spec.down_filter(),
            b=torch.randn(7),
            up=spec.up,
            down=spec.down,
            padding=spec.padding,
            clamp=256,
        )
        ref = filtered_lrelu(x, impl="ref", **args)
        fused = filtered_lrelu(x, impl="fast", **args)
        assert fused.shape == (1, 7, *spec.out_size)
        torch.testing.assert_close(fused, ref, atol=1e-4, rtol=1e-5)


def test_banded_operators_are_exact():
    rng = np.random.default_rng(0)
    m = np.zeros((37, 20))
    taps = rng.standard_normal(7)
    for i in range(37):  # x2 upsampling-like band with a shift
        for k, t in enumerate(taps):
            j = (i + k - 3) // 2
            if (i + k - 3) % 2 == 0 and 0 <= j < 20:
                m[i, j] += t
    x = torch.as_tensor(rng.standard_normal((20, 13)))
    for block in (2, 4, 8, 64):
        torch.testing.assert_close(BandedOperator(m, block, block // 2)(x), torch.as_tensor(m) @ x)
        op = RowOperator(m, block, block // 2)
        xt = x.T.contiguous()
        buf = torch.zeros(13, op.padded_width(), dtype=torch.float64)
        buf[:, op.pad_lo : op.pad_lo + 20] = xt
        got = op(buf if op.needs_padding(20) else xt)[:, :37]
        torch.testing.assert_close(got, xt @ torch.as_tensor(m).T)


def test_autograd_uses_the_reference_path():
    x = torch.randn(1, 3, 10, 10, requires_grad=True)
    b = torch.zeros(3, requires_grad=True)
    fu = scipy.signal.firwin(12, 0.25)
    y = filtered_lrelu(x, fu, fu, b, up=2, down=2, padding=(9, 8, 9, 8), clamp=256)
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and b.grad.abs().sum() > 0
    with torch.no_grad():
        fused = filtered_lrelu(x, fu, fu, b, up=2, down=2, padding=(9, 8, 9, 8), clamp=256)
    torch.testing.assert_close(fused, y.detach(), atol=1e-5, rtol=1e-5)


def test_bad_arguments():
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match="empty"):
        filtered_lrelu(x, np.ones(12), np.ones(12), up=2, down=2, padding=-20)
    with pytest.raises(ValueError, match="bias"):
        filtered_lrelu(x, b=torch.zeros(3))
    with pytest.raises(ValueError, match="impl"):
        filtered_lrelu(x, impl="cuda")


def _globals():
    """Process- and thread-wide torch settings an op must not change."""
    seen = []
    t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    t.start()
    t.join()
    return (
        torch.get_num_threads(),
        seen[0],
        torch.get_num_interop_threads(),
        torch.is_grad_enabled(),
        torch.is_inference_mode_enabled(),
        torch.get_default_dtype(),
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.mkldnn.enabled,
        torch.get_float32_matmul_precision(),
    )


def test_worker_threads_give_the_same_result(monkeypatch):
    """The fast path shares its slices among single-threaded workers: same numbers as one
    thread doing all slices."""
    from torch_utils import filtered_lrelu as module

    threads = torch.get_num_threads()
    fu = scipy.signal.firwin(12, 0.25)
    x = torch.randn(3, 40, 30, 30) * 30
    b = torch.randn(40)
    args = dict(up=2, down=2, padding=(9, 8, 9, 8), clamp=256, impl="fast")
    monkeypatch.setattr(module, "CACHE_BYTES", 64 << 10)  # many slices
    monkeypatch.setattr(module, "PARALLEL_SLICES", False)
    serial = filtered_lrelu(x, fu, fu, b, **args)
    monkeypatch.setattr(module, "PARALLEL_SLICES", True)
    torch.set_num_threads(2)
    try:
        pool = module._worker_pool(2)
        if module._thread_local_setters() is not None:  # OpenMP build: workers are 1-threaded
            assert pool.submit(torch.get_num_threads).result() == 1
        parallel = filtered_lrelu(x, fu, fu, b, **args)
        with torch.inference_mode():  # workers write into inference tensors (lvg-generate)
            channels_last = x.contiguous(memory_format=torch.channels_last)
            inference = filtered_lrelu(channels_last, fu, fu, b, **args)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(parallel, serial) and torch.equal(inference, serial)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_ops_leave_global_state_alone(threads):
    """No op changes the thread count (of this thread or of threads started later) or any
    other global setting, on either path, with or without autograd or inference mode."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        before = _globals()
        fu = scipy.signal.firwin(12, 0.25)
        x = torch.randn(3, 40, 30, 30) * 30
        b = torch.randn(40)
        args = dict(up=2, down=2, padding=(9, 8, 9, 8), clamp=256)
        cond = torch.randn(3, 5, 28, 28)
        for impl in ("ref", "fast"):
            filtered_lrelu(x, fu, fu, b, impl=impl, **args)
            filtered_lrelu(x, fu, fu, b, impl=impl, concat=cond, **args)
            conv_window(x, 3, 2, args["padding"], impl)
            with torch.inference_mode():
                filtered_lrelu(x.contiguous(memory_format=torch.channels_last), fu, fu, b, **args)
            filtered_lrelu(x.requires_grad_(True), fu, fu, b, impl=impl, **args).sum().backward()
            x = x.detach()
            assert _globals() == before
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_concat_is_torch_cat_on_both_paths(layout):
    """`concat` = torch.cat([filtered_lrelu(x), concat], 1); the fast path writes one buffer
    (channels-last when narrow on the CPU), the values do not depend on it."""
    rng = np.random.default_rng(3)
    fu, fd, pad = random_case(rng, 2, 2, (12, 18))
    x = torch.as_tensor(rng.standard_normal((3, 5, 12, 18)) * 30).float()
    x = x.contiguous(memory_format=layout)
    b = torch.randn(5)
    args = dict(up=2, down=2, padding=pad, clamp=40.0)
    y = filtered_lrelu(x, fu, fd, b, impl="ref", **args)
    cond = torch.randn(3, 4, *y.shape[2:], dtype=torch.float64)  # converted to x's dtype
    want = torch.cat([y, cond.float()], dim=1)
    ref = filtered_lrelu(x, fu, fd, b, impl="ref", concat=cond, **args)
    fast = filtered_lrelu(x, fu, fd, b, impl="fast", concat=cond, **args)
    assert torch.equal(ref, want)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast, want, atol=1e-4, rtol=1e-5)
    with pytest.raises(ValueError, match="concatenate"):
        filtered_lrelu(x, fu, fd, b, concat=cond[:, :, 1:], **args)


@pytest.mark.parametrize("up,kernel", [(1, 3), (2, 3), (4, 3), (4, 1)])
def test_conv_window_skips_only_discarded_outputs(up, kernel):
    """The fast convolution window (outputs the negative padding discards are not computed)
    gives the same filtered lrelu as the full convolution."""
    rng = np.random.default_rng(up)
    h, w = 14, 20
    fu, fd, pad = random_case(rng, up, 2, (h + kernel - 1, w + kernel - 1), pad_shift=-6)
    x = torch.randn(2, 4, h, w, dtype=torch.float64)
    weight = torch.randn(3, 4, kernel, kernel, dtype=torch.float64)
    outs = []
    for impl in ("ref", "fast"):
        window, cpad, lpad = conv_window(x, kernel, up, pad, impl)
        y = F.conv2d(F.pad(window, list(cpad)), weight)
        outs.append(filtered_lrelu(y, fu, fd, None, up, 2, lpad, clamp=40.0, impl=impl))
    torch.testing.assert_close(outs[1], outs[0], atol=1e-10, rtol=1e-10)
    if up > 1:
        assert sum(skipped_border((h, w), kernel, up, pad)) > 0  # something is skipped
