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


def _stage(stage: str, compiled: str | None):
    """A tiny stage's GAN (fixed init) and its batches, the networks compiled or not."""
    import dataclasses
    import itertools

    from training.config import resolve
    from training.lres_gan import LowResGAN, lres_networks
    from training.sres_gan import SuperResGAN, sres_networks

    torch.manual_seed(0)
    cfg = resolve(stage, "tiny", data="x", outdir="x", batch=2, r1_interval=1, seq_length=4)
    cpu = torch.device("cpu")
    if stage == "lres":
        G, D = lres_networks(cfg, PRESET)
        gan = LowResGAN(cfg, G, D, cpu, torch.Generator().manual_seed(1))
        real = torch.rand(2, 3, cfg.seq_length, *G.size, generator=_seed()) * 2 - 1
        data = itertools.repeat(real)
    else:
        # Fewer SR layers than the tiny preset's 14 (the same layer types): half the tracing.
        small = dataclasses.replace(PRESET.sres_generator, num_layers=6, channel_max=16)
        G, D = sres_networks(cfg, dataclasses.replace(PRESET, sres_generator=small))
        gan = SuperResGAN(cfg, G, D, cpu, torch.Generator().manual_seed(1), None)
        c, t = G.cfg, cfg.seq_length + 2 * G.context
        lr = torch.rand(2, 3, t, c.lr_height, c.lr_width, generator=_seed()) * 2 - 1
        hr = torch.rand(2, 3, t, c.hr_height, c.hr_width, generator=_seed()) * 2 - 1
        data = itertools.repeat((lr, hr))
    if compiled:
        gan.compile_networks(backend=compiled)
    return gan, data


# The training-step test traces, functionalises and differentiates as inductor does, without
# generating C++ kernels (with inductor, both stages took 14 minutes on 2 loaded cores); the
# forward tests above cover inductor's numerics.
TRAIN_BACKEND = "aot_eager"


@pytest.mark.parametrize("stage", ["lres", "sres"])
def test_compiled_training_step_equals_eager(stage):
    """A full step (G, D with the magnitude EMAs moving, R1 on the eager D, G_ema) with the
    steps' networks compiled leaves the same weights and buffers as the eager step
    (docs/training.md#compiling)."""
    results = []
    for compiled in (None, TRAIN_BACKEND):
        gan, data = _stage(stage, compiled)
        stats = gan.train_step(0, data)
        assert {"loss/G", "loss/D", "loss/r1_penalty"} <= set(stats)
        results.append((stats, {k: m.state_dict() for k, m in gan.modules().items()}))
    (eager_stats, eager), (compiled_stats, compiled) = results
    for key in ("loss/G", "loss/D", "loss/r1_penalty"):
        _close(torch.as_tensor(compiled_stats[key]), torch.as_tensor(eager_stats[key]), 1e-4)
    for name, tensors in eager.items():
        for key, want in tensors.items():
            if want.is_floating_point():
                _close(compiled[name][key], want, 1e-4)


def test_compiled_generation_equals_eager():
    """`generation.pipeline.compile_generators` (`lvg-generate --compile on`): the same frames
    through the streaming path (two 32-frame chunks); the wrapped SR network keeps its
    contract (its compiled forward is `test_compiled_equals_eager[sres_generator]`)."""
    from generation.pipeline import compile_generators, generate_video
    from networks.contract import check_chain

    torch.manual_seed(0)
    G = LowResGenerator(PRESET.lres_generator).eval().requires_grad_(False)
    S = SuperResGenerator(PRESET.sres_generator).eval().requires_grad_(False)
    lres_only = dict(seed=3, num_frames=40, batch_frames=32, output="float")
    want = torch.stack([f.video for f in generate_video(G, **lres_only)])
    G, compiled_S = compile_generators(G, S, backend=TRAIN_BACKEND)
    got = torch.stack([f.video for f in generate_video(G, **lres_only)])
    _close(got, want, 1e-5)
    with pytest.raises(ValueError, match="expects 18x32"):  # the tiny presets do not chain
        check_chain(G, compiled_S)
    assert (compiled_S.z_dim, compiled_S.context, compiled_S.lr_size, compiled_S.hr_size) == (
        S.z_dim,
        S.context,
        S.lr_size,
        S.hr_size,
    )


def test_generate_cli_compile_choice(tmp_path, monkeypatch):
    """`--compile on` compiles the loaded networks, `auto` does not on a CPU."""
    from click.testing import CliRunner

    import networks
    from generation import cli as gen_cli

    G = LowResGenerator(PRESET.lres_generator).eval()
    ckpt = networks.save(G, tmp_path / "lres.safetensors")
    calls = []

    def spy(lres, sres):
        calls.append((lres.kind, sres))
        return gen_cli.compile_generators.__wrapped__(lres, sres, backend=TRAIN_BACKEND)

    spy.__wrapped__ = gen_cli.compile_generators
    monkeypatch.setattr(gen_cli, "compile_generators", spy)
    for choice, compiled in (("auto", False), ("off", False), ("on", True)):
        calls.clear()
        out = tmp_path / f"{choice}.mp4"
        args = ["--lres", ckpt, "--frames", 8, "--compile", choice, "--out", out, "--quiet"]
        result = CliRunner().invoke(gen_cli.main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        assert out.exists() and bool(calls) == compiled, choice
