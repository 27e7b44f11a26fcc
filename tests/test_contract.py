"""The two-stage chain's contract (networks.contract, LowResGenerator's public attributes): the
metrics and the generation pipeline read the super-resolution network's context, sizes and z_dim
from the network itself, and sample low-res clips with the generator's own random-offset method."""

import dataclasses

import pytest
import torch
from test_generation import StandInConfig, StandInSres
from test_metrics import FakeSR

from generation.pipeline import generate_video, lres_segments
from generation.timeline import Timeline
from metrics import sources
from networks.contract import SuperResolution, check_chain, check_lr_size
from networks.lres_generator import LowResGenerator, random_windows
from networks.presets import PRESETS
from networks.sres_generator import SuperResGenerator, SuperResGeneratorConfig

CONTEXT = 2  # not the paper's 4: whatever the network says must reach every caller
ATOL = 1e-5


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return LowResGenerator(PRESETS["tiny"].lres_generator).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def S():
    """A small SR network with 2 context frames on each side, taking the tiny G's 36x64 frames."""
    torch.manual_seed(0)
    cfg = SuperResGeneratorConfig(
        temporal_context=CONTEXT,
        z_dim=16,
        w_dim=16,
        channel_base=512,
        channel_max=16,
        num_layers=6,
        hr_height=72,
        hr_width=128,
    )
    return SuperResGenerator(cfg).eval().requires_grad_(False)


def record_calls(S):
    """(LR frames in, output frames out) of every call of S."""
    calls = []

    def hook(module, args, kwargs, out):
        lr = args[0] if args else kwargs["lr_video"]
        calls.append((lr.shape[2], out.shape[2]))

    return calls, S.register_forward_hook(hook, with_kwargs=True)


# ------------------------------------------------------------------------------------------------
# The interface


def test_networks_and_stand_ins_satisfy_the_protocol(S):
    for net in (S, SuperResGenerator(PRESETS["tiny"].sres_generator), FakeSR(), StandInSres()):
        assert isinstance(net, SuperResolution)
    assert not isinstance(torch.nn.Identity(), SuperResolution)
    assert (S.lr_size, S.hr_size, S.context, S.z_dim) == ((36, 64), (72, 128), CONTEXT, 16)
    stand_in = StandInSres(StandInConfig(temporal_context=3, z_dim=7))
    assert (stand_in.lr_size, stand_in.hr_size, stand_in.context, stand_in.z_dim) == (
        (36, 64),
        (72, 128),
        3,
        7,
    )


def test_lres_contract_from_config(G):
    cfg = G.cfg
    assert G.size == (cfg.height, cfg.width) == (36, 64)
    assert G.shift_period == cfg.time_factor == 32
    assert G.embedding_lead == cfg.temporal_padding * cfg.time_factor == 256
    fast = dataclasses.replace(cfg, temporal_up=(True, True, True, False, False, False))
    assert LowResGenerator(fast).shift_period == 8


def test_segments_use_the_networks_context(S):
    lr, z = torch.randn(2, 3, 11 + 2 * CONTEXT, 36, 64), torch.randn(2, 16)
    calls, handle = record_calls(S)
    try:
        whole = S(lr, z=z)
        parts = list(S.segments(lr, z=z, segment_length=4))
    finally:
        handle.remove()
    assert calls == [(15, 11), (8, 4), (8, 4), (7, 3)]
    torch.testing.assert_close(torch.cat(parts, 2), whole, rtol=0, atol=ATOL)
    with pytest.raises(ValueError, match="too short"):
        next(S.segments(lr[:, :, : 2 * CONTEXT], z=z))


# ------------------------------------------------------------------------------------------------
# Callers: metrics and generation


def test_metrics_chain_sampler_feeds_the_networks_context(G, S):
    calls, handle = record_calls(S)
    try:
        with torch.no_grad():
            got = sources.chain_sampler(G, S, segment=4)(2, 6, torch.Generator().manual_seed(3))
    finally:
        handle.remove()
    assert got.shape == (2, 3, 6, 72, 128)
    assert calls == [(4 + 2 * CONTEXT, 4), (2 + 2 * CONTEXT, 2)]
    g = torch.Generator().manual_seed(3)  # the same draws: low-res clips, then one z per video
    lr = G.random_clips(2, 6 + 2 * CONTEXT, generator=g)
    want = S(lr, z=torch.randn(2, S.z_dim, generator=g))
    torch.testing.assert_close(got, want, rtol=0, atol=ATOL)


class OneVideo:
    """A dataset of one low-res video, with `VideoDataset`'s reading contract."""

    def __init__(self, video):
        self.video, self.num_frames = video, [video.shape[1]]

    def __len__(self):
        return 1

    def read_frames(self, index, start, length, spacing=1):
        return self.video[:, start : start + (length - 1) * spacing + 1 : spacing]


def test_metrics_sres_sampler_feeds_the_networks_context(S):
    video = torch.rand(3, 5 + 2 * CONTEXT, 36, 64) * 2 - 1  # exactly T + 2 context frames
    calls, handle = record_calls(S)
    try:
        with torch.no_grad():
            got = sources.sres_sampler(S, OneVideo(video))(2, 5, torch.Generator().manual_seed(4))
    finally:
        handle.remove()
    assert calls == [(5 + 2 * CONTEXT, 5)]
    z = torch.randn(2, S.z_dim, generator=torch.Generator().manual_seed(4))
    want = S(video[None].expand(2, -1, -1, -1, -1), z=z)
    torch.testing.assert_close(got, want, rtol=0, atol=ATOL)


def test_generate_video_feeds_the_networks_context(G, S):
    calls, handle = record_calls(S)
    try:
        got = list(generate_video(G, S, seed=1, num_frames=5, sres_batch=3, output="float"))
    finally:
        handle.remove()
    assert [f.index for f in got] == [0, 1, 2, 3, 4]
    assert calls == [(3 + 2 * CONTEXT, 3), (2 + 2 * CONTEXT, 2)]
    segs = lres_segments(G, [Timeline(1)], -CONTEXT, 5 + CONTEXT)
    lr = torch.cat([s.video for s in segs], dim=2)
    z = Timeline(1).sres_latents(torch.tensor([0]), S.z_dim)
    want = S(lr, z=z)
    torch.testing.assert_close(torch.stack([f.video for f in got], 2), want, rtol=0, atol=ATOL)


# ------------------------------------------------------------------------------------------------
# The low-res generator's random-offset clips


def test_random_clips_are_windows_at_offsets_below_the_margin(G):
    g = torch.Generator().manual_seed(5)
    clips = G.random_clips(6, 8, generator=g)
    assert clips.shape == (6, 3, 8, 36, 64)
    g = torch.Generator().manual_seed(5)  # the same noise: the whole videos, 8 + 32 frames
    noise = torch.randn(6, G.cfg.noise.noise_channels, G.cfg.noise_length(8 + 32), generator=g)
    long = G.from_noise(noise, 8 + G.shift_period)
    for clip, video in zip(clips, long):
        offsets = [o for o in range(33) if torch.equal(clip, video[:, o : o + 8])]
        assert len(offsets) == 1 and 0 <= offsets[0] < G.shift_period
    # Offsets cover [0, margin) and nothing else.
    ramp = torch.arange(40.0).reshape(1, 1, 40, 1, 1).expand(512, 1, 40, 1, 1)
    starts = random_windows(ramp, 8, torch.Generator().manual_seed(1))[:, 0, 0, 0, 0]
    assert set(starts.tolist()) == set(range(32))
    # margin 0: the first T frames of a T-frame video, no offset drawn.
    g = torch.Generator().manual_seed(6)
    first = G.random_clips(2, 8, generator=g, margin=0)
    noise = torch.randn(
        2,
        G.cfg.noise.noise_channels,
        G.cfg.noise_length(8),
        generator=torch.Generator().manual_seed(6),
    )
    torch.testing.assert_close(first, G.from_noise(noise, 8), rtol=0, atol=0)


def test_check_chain_is_the_one_compatibility_check(G, S):
    check_chain(G, S)  # 36x64 frames into a 36x64-input network
    check_chain(G, None)
    small = StandInSres(StandInConfig(lr_height=18, lr_width=32))
    with pytest.raises(ValueError, match="expects 18x32 low-res frames, but the low-res generator"):
        check_chain(G, small)
    with pytest.raises(
        ValueError, match="expects 36x64 low-res frames, but the dataset makes 18x32"
    ):
        check_lr_size(S, (18, 32), "the dataset")


def test_sres_magnitude_ema_decay_is_the_one_given(S):
    """`magnitude_ema_beta` is the decay the SR generator uses, as in the low-res one."""
    lr = torch.rand(1, 3, 1 + 2 * CONTEXT, 36, 64) * 2 - 1
    z = torch.randn(1, S.z_dim)
    after = {}
    for beta in (0.5, 0.999):
        net = SuperResGenerator(S.cfg)
        net.load_state_dict(S.state_dict())
        with torch.no_grad():
            net(lr, z=z, magnitude_ema_beta=beta)
        after[beta] = net.layers[0].ema.value.clone()
    before = S.layers[0].ema.value
    moved = {beta: (value - before).abs().item() for beta, value in after.items()}
    assert moved[0.5] > 100 * moved[0.999] > 0
