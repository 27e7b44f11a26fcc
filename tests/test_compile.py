"""The four networks' compile targets trace into one graph, with no graph breaks, and compiled
they compute what they compute eagerly (docs/networks.md#compiling). Tiny preset networks."""

import pytest
import torch
import torch._dynamo

from networks.lres_discriminator import LowResDiscriminator
from networks.lres_generator import LowResGenerator
from networks.presets import get_preset
from networks.sres_discriminator import SuperResDiscriminator
from networks.sres_generator import SuperResGenerator

PRESET = get_preset("tiny")


def _lres_generator():
    G = LowResGenerator(PRESET.lres_generator).eval()
    noise = G.draw_noise(1, 16, torch.Generator().manual_seed(1))
    return G.from_noise, (noise, 16)


def _lres_discriminator():
    D = LowResDiscriminator(PRESET.lres_discriminator).eval()
    c = D.cfg
    video = torch.rand(1, 3, c.seq_length, c.height, c.width, generator=_seed()) * 2 - 1
    return D, (video,)


def _sres_generator():
    S = SuperResGenerator(PRESET.sres_generator).eval()
    c = S.cfg
    lr = torch.rand(1, 3, 2 + c.window - 1, c.lr_height, c.lr_width, generator=_seed()) * 2 - 1
    return S, (lr, torch.randn(1, c.z_dim, generator=_seed()))


def _sres_discriminator():
    D = SuperResDiscriminator(PRESET.sres_discriminator).eval()
    c = D.cfg
    lr = torch.rand(1, 3, c.seq_length, c.lr_height, c.lr_width, generator=_seed()) * 2 - 1
    hr = torch.rand(1, 3, c.seq_length, c.hr_height, c.hr_width, generator=_seed()) * 2 - 1
    return D, (lr, hr)


def _seed() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# The compile target of each network (docs/networks.md#compiling) and its arguments.
TARGETS = {
    "lres_generator": _lres_generator,
    "lres_discriminator": _lres_discriminator,
    "sres_generator": _sres_generator,
    "sres_discriminator": _sres_discriminator,
}


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch.manual_seed(0)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float) -> None:
    scale = want.abs().max().item()
    torch.testing.assert_close(got, want, rtol=0, atol=rtol * max(scale, 1e-6))


@pytest.mark.parametrize("name", TARGETS)
def test_no_graph_breaks(name):
    fn, args = TARGETS[name]()
    with torch.no_grad():
        explained = torch._dynamo.explain(fn)(*args)
    reasons = [str(b.reason)[:200] for b in explained.break_reasons]
    assert explained.graph_break_count == 0, reasons
    assert explained.graph_count == 1


@pytest.mark.parametrize("name", TARGETS)
def test_compiled_matches_eager(name):
    fn, args = TARGETS[name]()
    with torch.no_grad():
        want = fn(*args)
        got = torch.compile(fn, backend="aot_eager", fullgraph=True)(*args)
    _close(got, want, 1e-5)


def test_inductor_matches_eager():
    """Real code generation (C++ on the CPU) on the smallest network."""
    fn, args = TARGETS["sres_discriminator"]()
    with torch.no_grad():
        want = fn(*args)
        got = torch.compile(fn, fullgraph=True)(*args)
    _close(got, want, 1e-4)
