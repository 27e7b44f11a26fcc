"""The low-resolution generator and discriminator compute exactly what the original computes
(docs/networks.md#low-res-generator), proven on the original's outputs in
tests/fixtures/official."""

import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from recipe import FIXTURES, as_persistent, original_object, recipe_state, write_original_pickle

import networks
from networks.cli import main as convert_main
from networks.common import MappingNetwork
from networks.lres_discriminator import LowResDiscriminator, LowResDiscriminatorConfig
from networks.lres_generator import LowResGenerator, LowResGeneratorConfig
from networks.noise import NoiseBankConfig, kaiser_bank
from networks.official import (
    LRES_DISCRIMINATOR_MAP,
    MAPPING_NETWORK_MAP,
    OfficialCheckpointError,
    flatten_state,
    import_network,
    load_official,
    lres_generator_map,
    map_names,
)
from networks.presets import PRESETS
from torch_utils import resample


@pytest.fixture(scope="module")
def lres_recipe():
    return recipe_state("lres_names.json")


@pytest.fixture(scope="module")
def generator(lres_recipe):
    G = LowResGenerator().eval().requires_grad_(False)
    G.load_state_dict(map_names(lres_recipe, lres_generator_map()))
    return G


@pytest.mark.parametrize("name,frames", [("lres_T16_b1_s1", 16), ("lres_T48_b1_s2", 48)])
def test_generator_reproduces_original(generator, name, frames):
    ref = np.load(FIXTURES / f"{name}.npz")
    noise = torch.from_numpy(ref["noise"])
    assert noise.shape[-1] == generator.cfg.noise_length(frames)
    emb, ws = generator.latents(noise, frames)
    video = generator.synthesis(ws, frames)
    np.testing.assert_allclose(emb.numpy(), ref["temporal_emb"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(
        ws[0].transpose(1, 2).numpy(), ref["latent_w_first"], atol=1e-4, rtol=0
    )
    np.testing.assert_allclose(
        ws[-1].transpose(1, 2).numpy(), ref["latent_w_last"], atol=1e-4, rtol=0
    )
    assert video.shape == ref["video"].shape
    np.testing.assert_allclose(video.numpy(), ref["video"], atol=1e-4, rtol=0)
    torch.testing.assert_close(generator.from_noise(noise, frames), video)


def test_discriminator_reproduces_original():
    D = LowResDiscriminator().eval().requires_grad_(False)
    D.load_state_dict(map_names(recipe_state("dlres_names.json"), LRES_DISCRIMINATOR_MAP))
    ref = np.load(FIXTURES / "dlres_b2_s1.npz")
    logits = D(torch.from_numpy(ref["video"])).numpy()
    np.testing.assert_allclose(logits, ref["logits"], rtol=1e-5, atol=0)
    # The bar is tight because a random D is nearly blind: a time-reversed clip moves it ~1%.
    flipped = D(torch.from_numpy(ref["video"]).flip(2)).numpy()
    assert np.abs(flipped / ref["logits"] - 1).max() > 1e-4


def test_paper_parameter_counts():
    assert sum(p.numel() for p in LowResGenerator().parameters()) == 83_215_939
    assert sum(p.numel() for p in LowResDiscriminator().parameters()) == 46_424_609


def test_noise_bank_matches_spec():
    bank, inv_norm = kaiser_bank(NoiseBankConfig())
    taps = (bank != 0).sum(axis=1)
    assert bank.shape == (128, 5000)
    assert list(taps[:5]) == [125, 129, 133, 137, 141] and list(taps[-3:]) == [4718, 4857, 5000]
    assert (bank[:, -1] != 0).all()  # right-aligned: all filters share the newest sample
    np.testing.assert_allclose(1 / inv_norm[[0, -1]], [0.129, 0.0204], rtol=0.01)


def test_sequence_bookkeeping():
    """The worked examples of docs/networks.md#latents-and-lengths."""
    cfg = LowResGeneratorConfig()
    assert cfg.sequence_lengths(128) == [20, 24, 32, 48, 80, 144, 128]
    assert cfg.sequence_lengths(160) == [21, 26, 36, 56, 96, 176, 160]
    assert cfg.sequence_lengths(16) == [17, 17, 18, 20, 24, 32, 16]
    assert cfg.sequence_lengths(312) == [26, 36, 55, 94, 172, 328, 312]
    assert cfg.noise_length(16) == 5543 and cfg.noise_length(48) == 5575
    assert cfg.canvases() == [(3, 4), (5, 8), (9, 16), (18, 32), (36, 64)]


@pytest.mark.parametrize("size", [(36, 64), (48, 64), (64, 64), (64, 36), (72, 128)])
def test_any_aspect(size):
    cfg = PRESETS["tiny"].lres_generator
    G = LowResGenerator(
        LowResGeneratorConfig(**{**cfg.__dict__, "height": size[0], "width": size[1]})
    )
    with torch.no_grad():
        video = G(1, 8, generator=torch.Generator().manual_seed(0))
    assert video.shape == (1, 3, 8, *size) and torch.isfinite(video).all()


def test_shift_equivariance_by_multiples_of_32():
    """Shifting the noise by 32k samples shifts the video by exactly 32k frames
    (docs/networks.md#shift-equivariance)."""
    torch.manual_seed(0)
    G = LowResGenerator(PRESETS["tiny"].lres_generator).eval()
    frames = 96
    length = G.cfg.noise_length(frames)
    noise = torch.randn(1, 8, length + 64)
    with torch.no_grad():
        base = G.from_noise(noise[..., :length], frames)
        for shift in (32, 64):
            moved = G.from_noise(noise[..., shift : shift + length], frames)
            assert (moved[:, :, : frames - shift] - base[:, :, shift:]).abs().max() < 1e-4
        # 16 frames is not a multiple of 32: the phase of the x2 upsampling changes the output.
        moved = G.from_noise(noise[..., 16 : 16 + length], frames)
        assert (moved[:, :, : frames - 16] - base[:, :, 16:]).abs().max() > 1e-3
    assert base.std() > 0.01  # the comparison is not between near-zero videos


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ref_and_fast_impls_agree(dtype):
    """`impl="ref"` (docs/networks.md#residual-block step by step, unfolded gains, plain NCDHW
    convolutions) and the default "fast" (folded gains, channels-last, in-place lrelu) give the
    same video, the same magnitude-EMA updates and the same parameter gradients, to float32
    rounding (gradients: relative to each tensor's largest entry, since they sum over every
    voxel) and to float64 rounding in float64."""
    torch.manual_seed(0)
    G = LowResGenerator(networks.presets.get_preset("tiny").lres_generator).to(dtype)
    with torch.no_grad():  # exercise the biases and magnitude-EMA gains (zeros / ones at init)
        for name, p in G.named_parameters():
            if name.startswith(("blocks.", "to_rgb.")) and "bias" in name and "affine" not in name:
                p.normal_(0, 0.3)
        for name, buf in G.named_buffers():
            if name.endswith("value"):
                buf.uniform_(0.5, 2.0)
    state = {k: v.clone() for k, v in G.state_dict().items()}
    frames = 16
    noise = torch.randn(2, 8, G.cfg.noise_length(frames), dtype=dtype)
    videos, grads, emas = {}, {}, {}
    for impl in ("ref", "fast"):
        G.load_state_dict(state)
        G.zero_grad(set_to_none=True)
        videos[impl] = G.from_noise(noise, frames, impl=impl)
        videos[impl].square().mean().backward()
        grads[impl] = {n: p.grad.clone() for n, p in G.named_parameters()}
        if dtype == torch.float32:  # (MagnitudeEMA updates in float32 only)
            G.from_noise(noise, frames, magnitude_ema_beta=0.9, impl=impl)
        emas[impl] = {n: b.clone() for n, b in G.named_buffers() if n.endswith("value")}
    assert videos["ref"].shape == (2, 3, frames, *G.size) and videos["ref"].std() > 0.01
    torch.testing.assert_close(videos["fast"], videos["ref"], rtol=1e-5, atol=1e-5)
    tol = 1e-3 if dtype == torch.float32 else 1e-10
    for name, g in grads["ref"].items():
        assert (grads["fast"][name] - g).abs().max() <= tol * g.abs().max(), name
    for name, v in emas["ref"].items():
        torch.testing.assert_close(emas["fast"][name], v, rtol=1e-5, atol=0, msg=name)
    with pytest.raises(ValueError, match="impl"):
        G.from_noise(noise, frames, impl="cuda")


def test_magnitude_ema_updates_only_when_asked():
    G = LowResGenerator(PRESETS["tiny"].lres_generator)
    before = {k: v.clone() for k, v in G.state_dict().items() if k.endswith("value")}
    G(1, 8)
    assert all(torch.equal(G.state_dict()[k], v) for k, v in before.items())
    G(1, 8, magnitude_ema_beta=0.999)
    assert all(not torch.equal(G.state_dict()[k], v) for k, v in before.items())


def test_generator_gradients_and_determinism():
    G = LowResGenerator(PRESETS["tiny"].lres_generator)
    a = G(2, 16, generator=torch.Generator().manual_seed(3))
    b = G(2, 16, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    a.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())
    D = LowResDiscriminator(PRESETS["tiny"].lres_discriminator)
    assert D(G(2, 32)).shape == (2, 1)


# ------------------------------------------------------------------------------------------------
# Checkpoints


def test_checkpoint_round_trip_and_errors(tmp_path):
    G = LowResGenerator(PRESETS["tiny"].lres_generator)
    G(1, 8, magnitude_ema_beta=0.5)  # non-default buffers must survive too
    path = networks.save(G, tmp_path / "g.safetensors")
    G2 = networks.load(path, kind="lres_generator")
    assert G2.cfg == G.cfg
    noise = torch.randn(1, 8, G.cfg.noise_length(8))
    with torch.no_grad():
        torch.testing.assert_close(G2.from_noise(noise, 8), G.from_noise(noise, 8))
    with pytest.raises(networks.CheckpointError, match="lres_discriminator is needed"):
        networks.load(path, kind="lres_discriminator")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(networks.CheckpointError, match="truncated"):
        networks.load(tmp_path / "cut.safetensors")
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        networks.load(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file(
        {"x": torch.zeros(1)},
        str(tmp_path / "newer.safetensors"),
        metadata={
            "format": "longvideogan",
            "format_version": "99",
            "kind": "lres_generator",
            "config": "{}",
        },
    )
    with pytest.raises(networks.CheckpointError, match="newer"):
        networks.load(tmp_path / "newer.safetensors")
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temp files


def test_discriminator_checkpoint(tmp_path):
    D = LowResDiscriminator(PRESETS["tiny"].lres_discriminator)
    D2 = networks.load(networks.save(D, tmp_path / "d.safetensors"))
    x = torch.randn(2, 3, 32, 36, 64)
    with torch.no_grad():
        torch.testing.assert_close(D2(x), D(x))


# ------------------------------------------------------------------------------------------------
# Importer of the original checkpoints


def test_import_original_mapping_pickle():
    obj = load_official(FIXTURES / "official_mapping_tiny.pkl")
    assert obj.class_name == "LatentMappingNetwork"
    ref = np.load(FIXTURES / "official_mapping_tiny_io.npz")
    state = flatten_state(obj)
    for name, value in state.items():
        np.testing.assert_array_equal(value.numpy(), ref[f"param/{name}"])
    mapping = MappingNetwork(16, num_layers=2, lr_mul=0.01)
    mapping.load_state_dict(map_names(state, MAPPING_NETWORK_MAP))
    with torch.no_grad():
        out = mapping(torch.from_numpy(ref["input"]).transpose(1, 2)).transpose(1, 2)
    np.testing.assert_allclose(out.numpy(), ref["output"], atol=1e-5, rtol=0)
    with pytest.raises(OfficialCheckpointError, match="not a whole"):
        import_network(obj)


class _Exploit:
    def __reduce__(self):
        import os

        return os.system, ("echo pwned > /tmp/lvg-pwned",)


def test_importer_refuses_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Exploit()}))
    with pytest.raises(OfficialCheckpointError, match=r"refers to (posix|os)\.system"):
        load_official(path)
    path.write_bytes(pickle.dumps(print))
    with pytest.raises(OfficialCheckpointError, match="builtins.print"):
        load_official(path)
    result = CliRunner().invoke(
        convert_main, ["official", str(path), "--out", str(tmp_path / "out.safetensors")]
    )
    assert result.exit_code != 0 and "not an original LongVideoGAN checkpoint" in result.output
    assert not (tmp_path / "out.safetensors").exists()
    (tmp_path / "cut.pkl").write_bytes((FIXTURES / "official_mapping_tiny.pkl").read_bytes()[:1000])
    with pytest.raises(OfficialCheckpointError, match="complete"):
        load_official(tmp_path / "cut.pkl")


def _derived_lres_buffers(cfg: LowResGeneratorConfig) -> dict[str, torch.Tensor]:
    """The buffers the original computes from its configuration (not part of the recipe)."""
    bank, inv_norm = kaiser_bank(cfg.noise)
    out = {
        "temporal_emb.blur_filters": torch.tensor(bank, dtype=torch.float32)[:, None],
        "temporal_emb.output_scale": torch.tensor(inv_norm, dtype=torch.float32)[None, :, None],
        "temporal_downsample_latent.filter": torch.tensor(
            resample.kaiser_filter(2), dtype=torch.float32
        ),
    }
    for i in range(5):
        out[f"temporal_layers.{i}.temporal_upsample.filter"] = torch.tensor(
            resample.linear_filter(2)
        )
    return out


def test_convert_original_generator_saved_on_cuda(tmp_path, lres_recipe):
    """`lvg-convert official` on a full original-format pickle whose tensors were saved on a
    CUDA device, read on this CPU machine, reproduces the original's output."""
    state = {**lres_recipe, **_derived_lres_buffers(LowResGeneratorConfig())}
    src, dst = tmp_path / "lres.pkl", tmp_path / "lres.safetensors"
    write_original_pickle(src, original_object(state, "VideoGenerator", cuda=True))
    result = CliRunner().invoke(convert_main, ["official", str(src), "--out", str(dst)])
    assert result.exit_code == 0, result.output
    assert "83,215,939 parameters" in result.output
    G = networks.load(dst, kind="lres_generator")
    ref = np.load(FIXTURES / "lres_T16_b1_s1.npz")
    with torch.no_grad():
        video = G.from_noise(torch.from_numpy(ref["noise"]), 16)
    np.testing.assert_allclose(video.numpy(), ref["video"], atol=1e-4, rtol=0)
    again = CliRunner().invoke(convert_main, ["official", str(src), "--out", str(dst)])
    assert again.exit_code != 0 and "already exists" in again.output


def test_import_original_discriminator_from_training_pickle_layout():
    obj = as_persistent(
        original_object(
            recipe_state("dlres_names.json"), "VideoDiscriminator", seq_length=128, max_edge=64
        )
    )
    D = import_network(obj)
    assert isinstance(D, LowResDiscriminator) and D.cfg == LowResDiscriminatorConfig()
    ref = np.load(FIXTURES / "dlres_b2_s1.npz")
    with torch.no_grad():
        np.testing.assert_allclose(
            D(torch.from_numpy(ref["video"])).numpy(), ref["logits"], rtol=1e-5
        )
