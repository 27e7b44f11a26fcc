"""Video generation (generation/): chunked = single-shot, seeking, loops, transitions, the
super-resolution streaming, the mp4 output and the command line's errors. Small random-weight
networks (the `tiny` preset) and a frame-wise stand-in for the super-resolution network."""

import os
import re
from dataclasses import dataclass

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from recipe import original_lres_names, original_object, write_original_pickle
from torch import nn

import networks
from generation import cli as gen_cli
from generation.noise_stream import NoiseStream
from generation.pipeline import Segment, generate_video, lres_segments, sres_segments
from generation.timeline import Loop, Timeline, Transition
from networks.contract import SuperResolutionBase
from networks.lres_discriminator import LowResDiscriminator
from networks.lres_generator import LowResGenerator
from networks.presets import PRESETS
from torch_utils.frames import Mp4Writer, display_factor, grid_shape, make_grid, to_uint8_hwc

ATOL = 1e-5  # float rounding (the global style max, FFT sizes); videos are ~0.1 here


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return LowResGenerator(PRESETS["tiny"].lres_generator).eval().requires_grad_(False)


def frames(G, timeline, start, stop, batch_frames=32):
    segs = list(lres_segments(G, [timeline], start, stop, batch_frames))
    assert segs[0].start == start and segs[-1].stop == stop
    return torch.cat([s.video for s in segs], dim=2)[0]  # [3, t, h, w]


# ------------------------------------------------------------------------------------------------
# A stand-in for the super-resolution network: the same contract (networks.contract), frame-wise.


@dataclass(frozen=True)
class StandInConfig:
    lr_height: int = 36
    lr_width: int = 64
    hr_height: int = 72
    hr_width: int = 128
    temporal_context: int = 4
    z_dim: int = 512


class StandInSres(SuperResolutionBase):
    """Output frame t = 2x upsampled weighted mix of LR frames t-4..t+4, plus a colour shift from z."""

    kind = "sres_generator"

    def __init__(self, cfg=StandInConfig()):
        super().__init__()
        self.cfg = cfg
        self.lr_size, self.hr_size = (cfg.lr_height, cfg.lr_width), (cfg.hr_height, cfg.hr_width)
        self.context, self.z_dim = cfg.temporal_context, cfg.z_dim
        taps = torch.exp(-(torch.linspace(-2, 2, 2 * cfg.temporal_context + 1) ** 2))
        self.register_buffer("taps", taps / taps.sum())
        self.register_buffer(
            "colour", torch.randn(cfg.z_dim, 3, generator=torch.Generator().manual_seed(1))
        )
        self.calls: list[tuple[int, int]] = []

    def forward(self, lr_video, z, precision="auto"):
        n, c, t, h, w = lr_video.shape
        assert (h, w) == (self.cfg.lr_height, self.cfg.lr_width) and z.shape == (n, self.cfg.z_dim)
        win = self.taps.numel()
        self.calls.append((n, t - win + 1))
        x = (lr_video.unfold(2, win, 1) * self.taps).sum(-1)  # [n, c, T, h, w]
        x = nn.functional.interpolate(
            x.transpose(1, 2).reshape(-1, c, h, w), size=(self.cfg.hr_height, self.cfg.hr_width)
        )
        x = x.reshape(n, -1, c, *x.shape[-2:]).transpose(1, 2)
        return x + 0.1 * torch.tanh(z @ self.colour / 20)[:, :, None, None, None]


# ------------------------------------------------------------------------------------------------
# Low-res stream: definition, chunking, seeking


def test_frame_definition_and_chunking(G):
    """Frame f = output f - c of from_noise on the stream window at c (module docstring of
    generation.timeline); chunks of 32 frames = one call of 64."""
    direct = G.from_noise(NoiseStream(5).window(-64, G.cfg.noise_length(64))[None], 64)[0]
    chunked = frames(G, Timeline(5), -64, 0, batch_frames=32)
    torch.testing.assert_close(chunked, direct, rtol=0, atol=ATOL)
    assert direct.abs().max() > 0.05 and (direct[:, 32:] - direct[:, :32]).abs().max() > 0.05


@pytest.mark.parametrize("a", [10_000_000 + 5, -60])
def test_seeking(G, a):
    """Frames [a, a+20) computed directly equal those frames of a longer run started elsewhere."""
    long = frames(G, Timeline(2), a - 37, a + 20, batch_frames=96)
    short = frames(G, Timeline(2), a, a + 20)
    torch.testing.assert_close(short, long[:, 37:57], rtol=0, atol=ATOL)


# ------------------------------------------------------------------------------------------------
# Loops and transitions


@pytest.mark.parametrize("mode", ["blend", "noise"])
def test_loop_is_exact_and_seamless(G, mode):
    p, tl = 64, Timeline(3, Loop(p := 64, mode))
    first, again = frames(G, tl, -8, 24), frames(G, tl, p - 8, p + 24)
    torch.testing.assert_close(again, first, rtol=0, atol=ATOL)  # frame t == frame t + P
    steps = (again[:, 1:] - again[:, :-1]).abs().mean(dim=(0, 2, 3))
    # Playing frames 0..P-1 in a loop, the wrap P-1 -> 0 is the step P-1 -> P: an ordinary step.
    assert steps[7] < 3 * steps.median()
    far = frames(G, tl, 1000 * p + 1, 1000 * p + 11)
    torch.testing.assert_close(far, first[:, 9:19], rtol=0, atol=ATOL)


def test_loop_blend_keeps_embedding_statistics(G):
    """The blend loop keeps every embedding channel at unit variance; periodic noise does not."""
    from generation.timeline import TimelineEmbedding

    def channel_var(mode):
        e = torch.stack(
            [
                TimelineEmbedding(Timeline(s, Loop(64, mode)), G.noise_bank, 256)(0, 64)
                for s in range(24)
            ]
        )
        return e.reshape(24, 8, -1, 64).square().mean(dim=(0, 1, 3))  # per filter

    blend, noise = channel_var("blend"), channel_var("noise")
    assert (blend - 1).abs().max() < 0.35 and noise.max() > 5


def test_transition_starts_as_seed1_and_ends_as_seed2(G):
    tr = Timeline(1, transition=Transition(2, at=0, over=32))
    before, after = (-256, -226), (256, 286)  # farther than the receptive field (~150 frames)
    torch.testing.assert_close(
        frames(G, tr, *before), frames(G, Timeline(1), *before), rtol=0, atol=ATOL
    )
    torch.testing.assert_close(
        frames(G, tr, *after), frames(G, Timeline(2), *after), rtol=0, atol=ATOL
    )
    mid = frames(G, tr, 0, 32)
    for seed in (1, 2):
        assert (mid - frames(G, Timeline(seed), 0, 32)).abs().max() > 100 * ATOL
    z = tr.sres_latents(torch.tensor([-1, 16, 32]), 512)
    z1, z2 = (
        Timeline(1).sres_latents(torch.tensor([0]), 512),
        Timeline(2).sres_latents(torch.tensor([0]), 512),
    )
    torch.testing.assert_close(z[0], z1[0])
    torch.testing.assert_close(z[2], z2[0])
    assert abs(z[1].norm() / z1[0].norm() - 1) < 0.2  # variance-preserving blend


# ------------------------------------------------------------------------------------------------
# Super-resolution streaming and frames


def test_sres_streaming_equals_one_call(G):
    """LR pieces of any sizes in, SR segments out (4 context frames each side), `sres_batch`
    frames per call for all videos together, equal to one call over the whole clip: the network
    is frame-wise (docs/networks.md#per-video-latent)."""
    S = StandInSres()
    tls = [Timeline(1), Timeline(4)]
    lr = torch.cat([s.video for s in lres_segments(G, tls, 6, 35, 64)], dim=2)
    pieces = [Segment(a, lr[:, :, a - 6 : b - 6], None) for a, b in [(6, 13), (13, 30), (30, 35)]]
    got = list(sres_segments(S, iter(pieces), tls, 10, 31, sres_batch=16))
    assert [s.start for s in got] == [10, 18, 26] and got[-1].stop == 31
    assert S.calls == [(2, 8), (2, 8), (2, 5)]  # 16 frames per call in all: 8 of each video
    z = torch.stack([t.sres_latents(torch.tensor([0]), 512)[0] for t in tls])
    torch.testing.assert_close(torch.cat([s.video for s in got], 2), S(lr, z=z), rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([s.lres for s in got], 2), lr[:, :, 4:-4], rtol=0, atol=0)
    S.calls.clear()  # fewer frames per call than videos: one video at a time, same frames
    one = list(sres_segments(S, iter(pieces), tls, 10, 12, sres_batch=1))
    assert S.calls == [(1, 1)] * 4 and [s.start for s in one] == [10, 11]
    torch.testing.assert_close(torch.cat([s.video for s in one], 2), got[0].video[:, :, :2])
    # A transition changes z from frame to frame: one window per frame, same as frame by frame.
    tr = Timeline(1, transition=Transition(4, at=12, over=4))
    lr = frames(G, tr, 6, 22)[None]
    (seg,) = sres_segments(S, iter([Segment(6, lr, lr)]), [tr], 10, 18, sres_batch=8)
    for i, f in enumerate(range(10, 18)):
        zf = tr.sres_latents(torch.tensor([f]), 512)
        torch.testing.assert_close(
            seg.video[:, :, i : i + 1], S(lr[:, :, i : i + 9], z=zf), rtol=0, atol=ATOL
        )


def test_real_sres_network(G):
    """The project's SuperResGenerator (small config) through the same streaming path."""
    sres = pytest.importorskip("networks.sres_generator")
    torch.manual_seed(0)
    cfg = sres.SuperResGeneratorConfig(
        channel_base=512, channel_max=16, num_layers=6, hr_height=72, hr_width=128
    )
    S = sres.SuperResGenerator(cfg).eval().requires_grad_(False)
    got = list(generate_video(G, S, seed=1, num_frames=1, output="float"))
    lr = frames(G, Timeline(1), -4, 5)[None]
    z = Timeline(1).sres_latents(torch.tensor([0]), cfg.z_dim)
    want = S(lr, z=z, precision="float32")
    assert got[0].video.shape == (1, 3, 72, 128)
    torch.testing.assert_close(torch.stack([f.video for f in got], 2), want, rtol=0, atol=ATOL)


def test_generate_video_frames(G):
    out = list(
        generate_video(G, StandInSres(), seed=[3, 4], num_frames=5, start_frame=-2, keep_lres=True)
    )
    assert [f.index for f in out] == [-2, -1, 0, 1, 2]
    assert out[0].video.shape == (2, 72, 128, 3) and out[0].video.dtype == np.uint8
    assert out[0].lres.shape == (2, 36, 64, 3)
    flt = list(generate_video(G, seed=3, num_frames=2, output="float"))
    assert flt[0].video.shape == (1, 3, 36, 64) and flt[0].lres is None
    (bf16,) = generate_video(G, seed=3, num_frames=1, output="float", precision="bfloat16")
    assert 0 < (bf16.video - flt[0].video).abs().max() < 0.05
    assert np.array_equal(
        to_uint8_hwc(flt[0].video), list(generate_video(G, seed=3, num_frames=1))[0].video
    )
    # docs/generation.md#writing-frames: clamp(x * 127.5 + 128, 0, 255), truncated
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.004, 0.99, 1.0, 3.0]).reshape(1, 1, 8)
    assert to_uint8_hwc(x.expand(3, 1, 8)).ravel()[::3].tolist() == [
        0,
        0,
        64,
        128,
        128,
        254,
        255,
        255,
    ]
    assert display_factor(36, 64) == 4 and display_factor(144, 256) == 1 and grid_shape(6) == (2, 3)
    grid = make_grid(np.arange(6)[:, None, None, None] * np.ones((6, 2, 3, 1), np.uint8))
    assert grid.shape == (4, 9, 1) and grid[0, 3, 0] == 1 and grid[2, 0, 0] == 3
    with pytest.raises(ValueError, match="multiple of 32"):
        next(generate_video(G, seed=0, loop=100))
    with pytest.raises(ValueError, match="expects 18x32"):
        next(generate_video(G, StandInSres(StandInConfig(lr_height=18, lr_width=32)), seed=0))


# ------------------------------------------------------------------------------------------------
# Command line


@pytest.fixture(scope="module")
def ckpt(G, tmp_path_factory):
    return networks.save(G, tmp_path_factory.mktemp("ckpt") / "lres.safetensors")


def run(*args):
    return CliRunner().invoke(gen_cli.main, [str(a) for a in args] + ["--quiet"])


def probe(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return n, s.codec_context.height, s.codec_context.width, float(s.average_rate)


def test_cli_lres_video_and_frames(ckpt, tmp_path):
    out = tmp_path / "v.mp4"
    r = run(
        "--lres", ckpt, "--seed", 7, "--frames", 40, "--fps", 12, "--out", out, "-i", 0, "-i", 39
    )
    assert r.exit_code == 0, r.output
    assert probe(out) == (40, 144, 256, 12.0)  # nearest-upscaled x4 like the original
    png = np.asarray(__import__("PIL.Image").Image.open(tmp_path / "v-frame000039.png"))
    (last,) = generate_video(networks.load(ckpt), seed=7, num_frames=1, start_frame=39)
    last = last.video[0]
    assert np.array_equal(png, last.repeat(4, 0).repeat(4, 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "v-frame000000.png",
        "v-frame000039.png",
        "v.mp4",
    ]
    r = run(
        "--lres", ckpt, "--seconds", 1, "--fps", 10, "--lres-native", "--out", tmp_path / "n.mp4"
    )
    assert r.exit_code == 0, r.output
    assert probe(tmp_path / "n.mp4") == (10, 36, 64, 10.0)


def test_cli_sres_grid_and_separate_files(ckpt, tmp_path, monkeypatch):
    real = networks.load
    monkeypatch.setattr(
        networks,
        "load",
        lambda p, kind, device: (
            StandInSres() if kind == "sres_generator" else real(p, kind=kind, device=device)
        ),
    )
    out = tmp_path / "hr.mp4"
    r = run(
        "--lres",
        ckpt,
        "--sres",
        "sr.safetensors",
        "--seed",
        "1-2",
        "--grid",
        "--frames",
        9,
        "--save-lres",
        "--out",
        out,
    )
    assert r.exit_code == 0, r.output
    assert probe(out)[:3] == (9, 72, 256) and probe(tmp_path / "hr-lres.mp4")[:3] == (9, 144, 512)
    r = run("--lres", ckpt, "--seed", "1,3", "--loop", 32, "--out", tmp_path / "s.mp4")
    assert r.exit_code == 0, r.output
    assert (
        probe(tmp_path / "s-seed1.mp4")[:3] == probe(tmp_path / "s-seed3.mp4")[:3] == (32, 144, 256)
    )
    bad = StandInSres(StandInConfig(lr_height=18, lr_width=32))
    monkeypatch.setattr(
        networks,
        "load",
        lambda p, kind, device: (
            bad if kind == "sres_generator" else real(p, kind=kind, device=device)
        ),
    )
    r = run("--lres", ckpt, "--sres", "x", "--out", tmp_path / "m.mp4")
    assert (
        r.exit_code == 1
        and "expects 18x32 low-res frames" in r.output
        and "makes 36x64" in r.output
    )


def test_cli_accepts_original_pickle(G, tmp_path):
    src = tmp_path / "lres.pkl"
    write_original_pickle(src, original_object(original_lres_names(G), "VideoGenerator"))
    r = run("--lres", src, "--seed", 5, "--frames", 3, "--lres-native", "--out", tmp_path / "p.mp4")
    assert r.exit_code == 0, r.output
    r = run("--lres", src, "--sres", src, "--out", tmp_path / "q.mp4")
    assert r.exit_code == 1 and "--sres:" in r.output and "a sres_generator is needed" in r.output


def test_cli_errors(ckpt, tmp_path, monkeypatch):
    D = tmp_path / "D.safetensors"
    networks.save(LowResDiscriminator(PRESETS["tiny"].lres_discriminator), D)
    out = tmp_path / "o.mp4"
    cases = [
        (
            ["--lres", D, "--out", out],
            "--lres: .* holds a lres_discriminator, but a lres_generator is needed",
        ),
        (
            ["--lres", ckpt, "--sres", ckpt, "--out", out],
            "--sres: .* holds a lres_generator, but a sres_generator",
        ),
        (
            ["--lres", ckpt, "--loop", 100, "--out", out],
            "--loop must be a positive multiple of 32 .* got 100",
        ),
        (
            ["--lres", ckpt, "--out", tmp_path / "nodir" / "o.mp4"],
            "directory .*nodir does not exist",
        ),
        (["--lres", ckpt, "--out", ckpt], "must be an .mp4 file"),
        (["--sres", ckpt, "--out", out], "--sres needs --lres"),
        (["--lres", tmp_path / "missing.pkl", "--out", out], "--lres: no such checkpoint"),
        (["--lres", ckpt, "--frames", 5, "--seconds", 1, "--out", out], "not both"),
        (["--lres", ckpt, "--at", 5, "--out", out], "need --transition-to"),
        (["--lres", ckpt, "--frames", 5, "-i", 5, "--out", out], "outside the video"),
        (["--lres", ckpt, "--save-lres", "--out", out], "--save-lres needs --sres"),
    ]
    for args, message in cases:
        r = run(*args)
        assert r.exit_code == 1, (args, r.output)
        assert re.search(message, r.output), (message, r.output)
        assert len(r.output.strip().splitlines()) == 1, r.output  # one line
    out.write_bytes(b"old")
    r = run("--lres", ckpt, "--frames", 2, "--out", out)
    assert r.exit_code == 1 and "already exists; pass --overwrite" in r.output
    assert run("--lres", ckpt, "--frames", 2, "--out", out, "--overwrite").exit_code == 0
    assert probe(out)[0] == 2
    # (root may write anywhere, so pretend the directory is read-only)
    monkeypatch.setattr(gen_cli.os, "access", lambda path, mode: not mode & os.W_OK)
    r = run("--lres", ckpt, "--frames", 2, "--out", tmp_path / "w.mp4")
    assert r.exit_code == 1 and "is not writable" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["D.safetensors", "o.mp4"]  # no leftovers


def test_mp4_writer_is_atomic(tmp_path):
    path = tmp_path / "w.mp4"
    with pytest.raises(RuntimeError), Mp4Writer(path, fps=5) as writer:
        writer.write(np.zeros((8, 8, 3), np.uint8))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    with Mp4Writer(path, fps=5) as writer:
        for i in range(3):
            writer.write(np.full((8, 8, 3), 80 * i, np.uint8))
            assert not path.exists()
    assert probe(path) == (3, 8, 8, 5.0) and list(tmp_path.iterdir()) == [path]


def test_help_has_examples():
    r = CliRunner().invoke(gen_cli.main, ["--help"])
    assert r.exit_code == 0 and "--loop 256" in r.output and "--start-frame 10000000" in r.output
