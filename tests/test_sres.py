"""The super-resolution generator and discriminator compute exactly what the original computes
(docs/networks.md#sr-generator), proven on the original's outputs in tests/fixtures/official."""

import math

import numpy as np
import pytest
import scipy.signal
import torch
from click.testing import CliRunner
from recipe import FIXTURES, as_persistent, original_object, recipe_state, write_original_pickle

import networks
from networks.cli import main as convert_main
from networks.official import (
    SRES_DISCRIMINATOR_MAP,
    SRES_GENERATOR_MAP,
    OfficialCheckpointError,
    import_network,
    map_names,
)
from networks.presets import PRESETS
from networks.sres_discriminator import SuperResDiscriminator, SuperResDiscriminatorConfig
from networks.sres_generator import (
    SuperResGenerator,
    SuperResGeneratorConfig,
    SynthesisLayer,
    fit_canvas,
    resample_conditioning,
    stack_windows,
)
from torch_utils import resample

TINY_G = PRESETS["tiny"].sres_generator
TINY_D = PRESETS["tiny"].sres_discriminator
# Smaller still, for the tests that run many frames: 8x16 -> 32x64, 8 layers + ToRGB.
MICRO_G = SuperResGeneratorConfig(
    hr_height=32,
    hr_width=64,
    lr_height=8,
    lr_width=16,
    z_dim=16,
    w_dim=16,
    num_layers=8,
    channel_base=256,
    channel_max=16,
    margin=4,
)
MICRO_D = SuperResDiscriminatorConfig(
    hr_height=32, hr_width=64, lr_height=8, lr_width=16, channel_base=128, channel_max=16
)


# ------------------------------------------------------------------------------------------------
# The paper's layer schedule, written out from docs/networks.md#layer-schedule independently
# of the code.

RATES = [16, 16, 16, 32, 32, 64, 64, 128, 128, 128, 256, 256, 256, 256, 256]  # output rates
UP4 = {3, 5, 7, 10}


def spec_filters() -> dict[str, np.ndarray]:
    """The original's derived filter buffers (formulas: docs/networks.md#exact-details)."""
    i = np.arange(15)
    cutoffs = 2 * 64 ** np.minimum(i / 12, 1)
    stopbands = 2**2.1 * (128 * 2**0.3 / 2**2.1) ** np.minimum(i / 12, 1)
    half_widths = np.maximum(stopbands, np.array(RATES) / 2) - cutoffs
    names = SuperResGeneratorConfig().layers
    out = {}
    for k in range(14):
        prev = max(k - 1, 0)
        tmp = max(RATES[prev], RATES[k]) * 2
        up, down = tmp // RATES[prev], tmp // RATES[k]
        prefix = f"SG3.synthesis.{names[k].name}."
        f32 = lambda f: torch.tensor(f, dtype=torch.float32)  # noqa: E731
        out[prefix + "up_filter"] = f32(
            scipy.signal.firwin(6 * up, cutoffs[prev], width=2 * half_widths[prev], fs=tmp)
        )
        out[prefix + "down_filter"] = f32(
            scipy.signal.firwin(6 * down, cutoffs[k], width=2 * half_widths[k], fs=tmp)
        )
    for k in range(15):
        rate = RATES[max(k - 1, 0)]  # the conditioning is resampled to the input rate
        if rate != 64:
            scale = max(rate, 64) // min(rate, 64)
            taps = scipy.signal.firwin(6 * scale, 1.0, width=6.0, fs=4.0 * scale)
            out[f"SG3.resamples.{k}.filter"] = torch.tensor(taps, dtype=torch.float32)
    return out


@pytest.fixture(scope="module")
def sres_state():
    """Original-named recipe weights plus the buffers the original derives from its config."""
    return {
        **recipe_state("sres_names.json"),
        **spec_filters(),
        "SG3.mapping.w_avg": torch.zeros(512),
    }


@pytest.fixture(scope="module")
def generator(sres_state):
    G = SuperResGenerator().eval().requires_grad_(False)
    G.load_state_dict(map_names(sres_state, SRES_GENERATOR_MAP))
    return G


def tiny_clip(frames: int, videos: int = 1, seed: int = 0, cfg=TINY_G) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(videos, 3, frames + 8, cfg.lr_height, cfg.lr_width, generator=g) * 2 - 1


# ------------------------------------------------------------------------------------------------
# The original's outputs


@pytest.mark.parametrize("name,frames,videos", [("sres_T4_b1_s1", 4, 1), ("sres_T1_b2_s3", 1, 2)])
def test_generator_reproduces_original(generator, name, frames, videos):
    ref = np.load(FIXTURES / f"{name}.npz")
    with torch.no_grad():
        video = generator(torch.from_numpy(ref["lr_video"]), z=torch.from_numpy(ref["z"]))
    assert video.shape == ref["hr_video"].shape == (videos, 3, frames, 144, 256)
    assert video.dtype == torch.float32
    err = np.abs(video.numpy() - ref["hr_video"]).max()
    assert err < 2e-3, err  # a loose bound; a correct float32 implementation reaches ~1e-6
    assert ref["hr_video"].std() > 0.05  # not a comparison of flat images


def test_discriminator_reproduces_original():
    D = SuperResDiscriminator().eval().requires_grad_(False)
    D.load_state_dict(map_names(recipe_state("dsres_names.json"), SRES_DISCRIMINATOR_MAP))
    ref = np.load(FIXTURES / "dsres_b2_s1.npz")
    lr, hr = torch.from_numpy(ref["lr_video"]), torch.from_numpy(ref["hr_video"])
    with torch.no_grad():
        np.testing.assert_allclose(D(lr, hr).numpy(), ref["logits"], rtol=1e-5, atol=0)
        # Already-upsampled LR input gives the same logits.
        torch.testing.assert_close(D(D.upsample_lr(lr), hr), D(lr, hr))
        # A random D is nearly blind, so the bar is tight: time reversal moves it ~1e-3.
        flipped = D(lr.flip(2), hr.flip(2)).numpy()
    assert np.abs(flipped / ref["logits"] - 1).max() > 1e-4


def test_paper_parameter_counts(generator):
    assert sum(p.numel() for p in generator.parameters()) == 27_169_940
    assert sum(p.numel() for p in generator.mapping.parameters()) == 525_312
    assert sum(p.numel() for p in SuperResDiscriminator().parameters()) == 23_997_825


# ------------------------------------------------------------------------------------------------
# Architecture details


def test_layer_schedule_matches_spec():
    layers = SuperResGeneratorConfig().layers
    assert [s.name for s in layers] == [
        "L0_36_29_512",
        "L1_36_29_512",
        "L2_36_29_512",
        "L3_52_38_512",
        "L4_52_38_512",
        "L5_84_56_512",
        "L6_84_56_512",
        "L7_148_92_512",
        "L8_148_92_512",
        "L9_148_92_362",
        "L10_276_164_256",
        "L11_276_164_181",
        "L12_276_164_128",
        "L13_256_144_128",
        "L14_256_144_3",
    ]
    assert [s.in_channels for s in layers] == [27] + [539] * 9 + [389, 283, 208, 155, 155]
    assert [s.out_rate for s in layers] == RATES
    for s in layers[:-1]:
        assert (s.up, s.down) == ((4, 2) if s.index in UP4 else (2, 2))
        assert s.up_taps == 6 * s.up and s.down_taps == 6 * s.down
    assert layers[0].padding == (9, 8, 9, 8) and layers[1].padding == (9, 8, 9, 8)
    assert all(layers[i].padding == (-6, -9, -6, -9) for i in UP4)
    assert layers[13].padding == (-11, -12, -11, -12) and layers[14].padding == (0, 0, 0, 0)
    assert [s.use_fp16 for s in layers] == [False] * 3 + [True] * 12
    assert [s.cond_resample for s in layers] == [("down", 4)] * 4 + [("down", 2)] * 2 + [
        ("none", 1)
    ] * 2 + [("up", 2)] * 3 + [("up", 4)] * 4
    np.testing.assert_allclose(
        [s.out_half_width for s in layers[:13]],
        [6, 5.17, 4, 10.34, 8, 20.69, 16, 41.37, 32, 18.75, 64, 37.49, 29.59],
        atol=0.01,
    )
    # Filters: as docs/networks.md#exact-details designs them, and the 12-tap Kaiser resampler.
    for name, taps in spec_filters().items():
        if name.startswith("SG3.synthesis."):
            layer = next(s for s in layers if f".{s.name}." in name)
            ours = layer.up_filter() if name.endswith("up_filter") else layer.down_filter()
            np.testing.assert_allclose(ours, taps.numpy(), atol=1e-7)
    np.testing.assert_allclose(
        resample.kaiser_filter(2),
        [
            0,
            -0.00019,
            0.00266,
            0.0392,
            0.1585,
            0.2999,
            0.2999,
            0.1585,
            0.0392,
            0.00266,
            -0.00019,
            0,
        ],
        atol=1e-4,
    )


def test_conditioning_geometry():
    cfg = SuperResGeneratorConfig()
    assert cfg.lr_padding() == (10, 10, 24, 24)
    x = torch.rand(2, 3, 84, 84)
    assert resample_conditioning(x, "down", 4).shape[-2:] == (21, 21)
    assert resample_conditioning(x, "down", 2).shape[-2:] == (42, 42)
    assert resample_conditioning(x, "up", 2).shape[-2:] == (168, 168)
    assert resample_conditioning(x, "up", 4).shape[-2:] == (336, 336)
    # Replicate borders: a constant stays ~constant up to the edges (zero borders would give
    # ~0.5 there); only the 1-pixel replicate pre-padding is short of the longer filters.
    ones = torch.ones(1, 1, 84, 84)
    for mode, scale in (("down", 4), ("down", 2), ("up", 2), ("up", 4)):
        y = resample_conditioning(ones, mode, scale)
        centre = y[..., 8:-8, 8:-8]
        assert (centre - 1).abs().max() < 1e-5 and y.min() > 0.97, (mode, scale)
    # Canvas: 21 -> 36 pads 7 left / 8 right by replication; 168 -> 92 crops the centre.
    ramp = torch.arange(21.0).expand(1, 1, 21, 21)
    fitted = fit_canvas(ramp, (29, 36))  # (h, w)
    assert fitted.shape[-2:] == (29, 36)
    assert fitted[0, 0, 0, :8].tolist() == [0.0] * 8 and fitted[0, 0, 0, 7:28].tolist() == list(
        map(float, range(21))
    )
    assert fitted[0, 0, 0, 28:].tolist() == [20.0] * 8
    big = torch.arange(168.0).expand(1, 1, 168, 168)
    assert fit_canvas(big, (92, 148))[0, 0, 0, 0].item() == 10.0


def test_window_stacking_is_colour_major_then_time():
    videos, frames, window = 2, 3, 9
    lr = torch.zeros(videos * (frames + 8), 3, 2, 2)
    for v in range(videos):
        for t in range(frames + 8):
            for c in range(3):
                lr[v * (frames + 8) + t, c] = 1000 * v + 100 * c + t
    stacked = stack_windows(lr, videos, window)
    assert stacked.shape == (videos * frames, 27, 2, 2)
    for v in range(videos):
        for t in range(frames):
            got = stacked[v * frames + t, :, 0, 0].tolist()
            want = [1000 * v + 100 * c + t + k for c in range(3) for k in range(window)]
            assert got == want


def test_segments_equal_one_call():
    """The segment iterator over a 40-frame clip (segments 16, 16, 8) gives the frames of one
    call: the network is frame-wise."""
    torch.manual_seed(0)
    S = SuperResGenerator(MICRO_G).eval()
    lr = tiny_clip(40, cfg=MICRO_G)
    z = torch.randn(1, MICRO_G.z_dim)
    with torch.no_grad():
        whole = S(lr, z=z)
        parts = list(S.segments(lr, z, segment_length=16))
    assert whole.shape == (1, 3, 40, 32, 64) and whole.std() > 0.01
    assert [p.shape[2] for p in parts] == [16, 16, 8]
    torch.testing.assert_close(torch.cat(parts, dim=2), whole, atol=1e-6, rtol=0)


def test_channels_last_buffers_change_nothing(monkeypatch):
    """Narrow layers write channels-last buffers on the CPU (the fast filtered lrelu); the output
    is bit-identical to channels-first ones, with the fused and with the autograd path."""
    from torch_utils import filtered_lrelu as flrelu

    torch.manual_seed(0)
    S = SuperResGenerator(MICRO_G).eval()
    lr = tiny_clip(3, videos=2, cfg=MICRO_G)
    z = torch.randn(2, MICRO_G.z_dim)
    assert max(s.out_channels for s in MICRO_G.layers) + MICRO_G.cond_channels <= 64
    outputs = {}
    for widest in (64, 0):
        monkeypatch.setattr(flrelu, "CHANNELS_LAST_MAX", widest)
        with torch.no_grad():
            fused = S(lr, z=z)
        reference = S(lr.requires_grad_(True), z=z)
        outputs[widest] = (fused, reference.detach())
    assert torch.equal(outputs[64][0], outputs[0][0])
    assert torch.equal(outputs[64][1], outputs[0][1])


def _sample_layers(cfg):
    """First layer, an x4-upsampling layer, a critical layer and ToRGB."""
    picks = [
        lambda s: s.index == 0,
        lambda s: s.up == 4 and not s.is_torgb,
        lambda s: s.is_critical and not s.is_torgb,
        lambda s: s.is_torgb,
    ]
    return [next(s for s in cfg.layers if pick(s)) for pick in picks]


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_layers_ref_and_fast_agree(preset):
    """`impl="ref"` (full convolution, plain upfirdn, torch.cat) and `impl="fast"` (skipped
    borders, matrix plans, one concatenation buffer) give the same values and gradients on the
    SR layers: up x2/x4, down x2, critical, ToRGB, with and without the fused plan."""
    cfg = PRESETS[preset].sres_generator
    g = torch.Generator().manual_seed(0)
    for spec in _sample_layers(cfg):
        torch.manual_seed(spec.index)
        layer = SynthesisLayer(spec, cfg.w_dim, cfg.conv_clamp)
        with torch.no_grad():
            layer.bias.normal_()
        videos, frames = (2, 2) if preset == "tiny" else (1, 1)
        x = torch.randn(videos * frames, spec.in_channels, *spec.in_size, generator=g)
        w = torch.randn(videos, cfg.w_dim, generator=g)
        cond = None
        if not spec.is_torgb:
            cond = torch.randn(videos * frames, cfg.cond_channels, *spec.out_size, generator=g)
        results = {}
        for impl in ("ref", "fast"):
            with torch.no_grad():
                fused = layer(x, w, frames, concat=cond, impl=impl)
            xg = x.clone().requires_grad_(True)
            y = layer(xg, w, frames, concat=cond, impl=impl)
            grads = torch.autograd.grad(
                (y * torch.linspace(-1, 1, y.numel()).view(y.shape)).sum(),
                [xg, layer.weight, layer.bias, layer.affine.weight],
            )
            results[impl] = (fused, y.detach(), *grads)
        want_channels = spec.out_channels + (0 if cond is None else cfg.cond_channels)
        assert results["ref"][0].shape == (videos * frames, want_channels, *spec.out_size)
        # Values to float32 rounding. Gradients more loosely: the two convolutions round
        # differently, so a few pre-activations near 0 land on the other side of the leaky ReLU's
        # kink (slope 1 vs 0.2), which moves the gradients there by ~1e-4 of their largest entry.
        for i, (ref, fast) in enumerate(zip(results["ref"], results["fast"])):
            scale = ref.abs().max().item() * (1e-5 if i < 2 else 1e-3)
            torch.testing.assert_close(fast, ref, atol=scale, rtol=1e-5, msg=spec.name)


def test_synthesis_ref_and_fast_agree():
    torch.manual_seed(0)
    S = SuperResGenerator(MICRO_G).eval()
    lr = tiny_clip(2, videos=2, cfg=MICRO_G)
    w = S.map(torch.randn(2, MICRO_G.z_dim))
    with torch.no_grad():
        levels = S.conditioning(lr)
        ref = S.synthesis(levels, w, 2, impl="ref")
        fast = S.synthesis(levels, w, 2, impl="fast")
    assert ref.std() > 0.01
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)


def test_frame_wise_and_batch_layout():
    """Frame t depends only on LR frames t..t+8 and z; videos in a batch are independent."""
    torch.manual_seed(0)
    S = SuperResGenerator(MICRO_G).eval()
    lr = tiny_clip(3, videos=2, cfg=MICRO_G)
    z = torch.randn(2, MICRO_G.z_dim)
    with torch.no_grad():
        both = S(lr, z=z)
        second = S(lr[1:], z=z[1:])
        middle = S(lr[:1, :, 1:10], z=z[:1])
        parts = list(S.segments(lr, z, segment_length=2))
    torch.testing.assert_close(second, both[1:], atol=1e-6, rtol=0)
    torch.testing.assert_close(middle[:, :, 0], both[:1, :, 1], atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.cat(parts, dim=2), both, atol=1e-6, rtol=0)
    assert (both[0] - both[1]).abs().max() > 1e-2  # the two videos differ
    with pytest.raises(ValueError, match="too short"):
        S(lr[:, :, :8], z=z)


def test_emas_update_only_when_asked():
    S = SuperResGenerator(TINY_G)
    before = {k: v.clone() for k, v in S.state_dict().items() if k.endswith(("value", "w_avg"))}
    lr = tiny_clip(1)
    with torch.no_grad():
        S(lr)
    assert all(torch.equal(S.state_dict()[k], v) for k, v in before.items())
    with torch.no_grad():
        S(lr, magnitude_ema_beta=0.999)
    assert all(not torch.equal(S.state_dict()[k], v) for k, v in before.items())


def test_gradients_and_precisions():
    torch.manual_seed(1)
    S = SuperResGenerator(MICRO_G)
    D = SuperResDiscriminator(MICRO_D)
    lr = tiny_clip(4, cfg=MICRO_G)
    z = torch.randn(1, MICRO_G.z_dim)
    fake = S(lr, z=z)
    logits = D(lr[:, :, 4:8], fake)
    assert logits.shape == (1, 1)
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in S.parameters())
    # R1 needs the double backward through the D.
    hr = fake.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(lr[:, :, 4:8], hr).sum(), hr, create_graph=True)
    grad.square().sum().backward()
    with torch.no_grad():
        ref = S(lr, z=z)
        torch.testing.assert_close(ref, fake.detach(), atol=1e-5, rtol=1e-5)
        for precision in ("bfloat16", "mixed"):
            low = S(lr, z=z, precision=precision)
            assert low.dtype == torch.float32 and torch.isfinite(low).all()
            assert (low - ref).abs().max() < 0.05 * ref.abs().max() + 0.02
            d_low = D(lr[:, :, 4:8], ref, precision=precision)
            assert (d_low - D(lr[:, :, 4:8], ref)).abs().max() < 0.05 * d_low.abs().max() + 0.05
    with pytest.raises(ValueError, match="precision"):
        S(lr, z=z, precision="int8")


def test_other_sizes_follow_the_rules():
    for cfg in (
        TINY_G,
        MICRO_G,
        SuperResGeneratorConfig(
            hr_height=128, hr_width=128, lr_height=32, lr_width=32, channel_base=512, channel_max=8
        ),
        SuperResGeneratorConfig(
            hr_height=128, hr_width=72, lr_height=32, lr_width=18, channel_base=512, channel_max=8
        ),
    ):
        S = SuperResGenerator(cfg).eval()
        assert cfg.layers[-1].out_size == (cfg.hr_height, cfg.hr_width)
        with torch.no_grad():
            out = S(torch.rand(1, 3, 9, cfg.lr_height, cfg.lr_width) * 2 - 1)
        assert out.shape == (1, 3, 1, cfg.hr_height, cfg.hr_width) and torch.isfinite(out).all()
    assert PRESETS["paper"].sres_generator == SuperResGeneratorConfig()
    assert PRESETS["paper"].sres_discriminator == SuperResDiscriminatorConfig()


# ------------------------------------------------------------------------------------------------
# Checkpoints and the importer


def test_checkpoint_round_trip(tmp_path):
    S = SuperResGenerator(TINY_G)
    lr = tiny_clip(2)
    with torch.no_grad():
        S(lr, magnitude_ema_beta=0.5)  # non-default buffers must survive too
    S2 = networks.load(networks.save(S, tmp_path / "s.safetensors"), kind="sres_generator")
    assert S2.cfg == S.cfg and torch.equal(S2.w_avg, S.w_avg)
    z = torch.randn(1, TINY_G.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(S2(lr, z=z), S(lr, z=z))
    D = SuperResDiscriminator(TINY_D)
    D2 = networks.load(networks.save(D, tmp_path / "d.safetensors"), kind="sres_discriminator")
    hr = torch.rand(2, 3, 4, 72, 128)
    with torch.no_grad():
        torch.testing.assert_close(
            D2(lr[:, :, :4].expand(2, -1, -1, -1, -1), hr),
            D(lr[:, :, :4].expand(2, -1, -1, -1, -1), hr),
        )
    with pytest.raises(networks.CheckpointError, match="sres_discriminator is needed"):
        networks.load(tmp_path / "s.safetensors", kind="sres_discriminator")


def test_import_original_generator(generator, sres_state):
    obj = as_persistent(
        original_object(
            sres_state, "VideoGenerator", hr_height=144, hr_width=256, lr_height=36, lr_width=64
        )
    )
    S = import_network(obj)
    assert S.kind == "sres_generator" and S.cfg == SuperResGeneratorConfig()
    for key, value in generator.state_dict().items():
        assert torch.equal(S.state_dict()[key], value), key
    # A filter that does not match the configuration is refused, not silently replaced.
    bad = dict(sres_state)
    bad["SG3.synthesis.L3_52_38_512.up_filter"] = bad["SG3.synthesis.L3_52_38_512.up_filter"] * 1.01
    with pytest.raises(OfficialCheckpointError, match="up_filter"):
        import_network(as_persistent(original_object(bad, "VideoGenerator")))


def test_import_tiny_generator_infers_its_config(tmp_path):
    S = SuperResGenerator(TINY_G)
    names = {f"layers.{s.index}.": f"SG3.synthesis.{s.name}." for s in TINY_G.layers}
    state = {}
    for key, value in S.state_dict().items():
        if key.startswith("mapping.layers."):
            key = key.replace("mapping.layers.", "SG3.mapping.fc")
        elif key == "w_avg":
            key = "SG3.mapping.w_avg"
        else:
            prefix = ".".join(key.split(".")[:2]) + "."
            key = names[prefix] + key[len(prefix) :].replace("ema.value", "magnitude_ema")
        state[key] = value
    obj = original_object(state, "VideoGenerator", lr_height=18, lr_width=32)
    write_original_pickle(tmp_path / "s.pkl", obj)
    result = CliRunner().invoke(
        convert_main,
        ["official", str(tmp_path / "s.pkl"), "--out", str(tmp_path / "s.safetensors")],
    )
    assert result.exit_code == 0, result.output
    S2 = networks.load(tmp_path / "s.safetensors", kind="sres_generator")
    assert S2.cfg == TINY_G
    lr, z = tiny_clip(1), torch.randn(1, TINY_G.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(S2(lr, z=z), S(lr, z=z))


def test_import_original_discriminator():
    state = {
        **recipe_state("dsres_names.json"),
        "upsample.filter": torch.tensor(resample.linear_filter(4), dtype=torch.float32),
    }
    obj = as_persistent(
        original_object(
            state,
            "VideoDiscriminator",
            seq_length=4,
            lr_height=36,
            lr_width=64,
            hr_height=144,
            hr_width=256,
            num_fp16_res=0,
        )
    )
    D = import_network(obj)
    assert isinstance(D, SuperResDiscriminator)
    assert D.cfg == SuperResDiscriminatorConfig(num_fp16_res=0)
    ref = np.load(FIXTURES / "dsres_b2_s1.npz")
    with torch.no_grad():
        logits = D(torch.from_numpy(ref["lr_video"]), torch.from_numpy(ref["hr_video"]))
    np.testing.assert_allclose(logits.numpy(), ref["logits"], rtol=1e-5)


def test_discriminator_geometry():
    cfg = SuperResDiscriminatorConfig()
    assert cfg.resolution == 256 and cfg.in_channels == 24 and cfg.fp16_resolution == 32
    assert cfg.block_resolutions() == [256, 128, 64, 32, 16, 8]
    # The x4 linear upsampler: 8 taps, padding (5, 2), gain 16, zero borders.
    assert resample.default_up_padding(8, 4) == (5, 2)
    up = SuperResDiscriminator(TINY_D).upsample_lr(torch.ones(1, 3, 4, 18, 32))
    assert up.shape == (1, 3, 4, 72, 128)
    assert math.isclose(up[0, 0, 0, 36, 64].item(), 1.0, rel_tol=1e-6)
    assert up[0, 0, 0, 0, 0].item() < 0.9  # zero border darkens the corner
