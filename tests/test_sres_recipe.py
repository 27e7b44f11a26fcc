"""The super-resolution stage's training recipe (docs/training.md#sr-step): the D step's fakes
generated once per step, the ADA update timing, and the switchable LR in-augmentation."""

import dataclasses

import pytest
import torch

from networks.presets import get_preset
from networks.sres_discriminator import SuperResDiscriminator
from networks.sres_generator import SuperResGenerator
from training.ada import BGC, IN_AUGMENT, AdaController, AugmentPipe
from training.config import TrainConfig, resolve
from training.sres_gan import SuperResGAN

SEQ = 2  # frames seen by D; the LR/HR clips have SEQ + 8 (the generator's context)


def tiny_gan(seed: int = 0, **overrides) -> SuperResGAN:
    """A tiny SR GAN on the CPU with weights drawn from `seed`; no dataset (only
    `sample_inputs` reads it, and these tests never call it)."""
    cfg = resolve("sres", "tiny", **{"batch": 2, "seq_length": SEQ, **overrides})
    preset = get_preset("tiny")
    g_cfg = preset.sres_generator
    d_cfg = dataclasses.replace(
        preset.sres_discriminator,
        seq_length=SEQ,
        lr_height=g_cfg.lr_height,
        lr_width=g_cfg.lr_width,
        hr_height=g_cfg.hr_height,
        hr_width=g_cfg.hr_width,
    )
    torch.manual_seed(seed)
    G, D = SuperResGenerator(g_cfg), SuperResDiscriminator(d_cfg)
    return SuperResGAN(cfg, G, D, torch.device("cpu"), torch.Generator().manual_seed(seed), None)


def clips(n: int = 2, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic LR/HR batch: `[n, 3, SEQ + 8, 18, 32]` and `[n, 3, SEQ + 8, 72, 128]`."""
    g = torch.Generator().manual_seed(seed)
    lr = torch.rand(n, 3, SEQ + 8, 18, 32, generator=g) * 2 - 1
    hr = torch.rand(n, 3, SEQ + 8, 72, 128, generator=g) * 2 - 1
    return lr, hr


def d_step(grad_accum: int):
    """One `update_D` from the same weights, batch and random stream; returns the generator's
    floating-point buffers (magnitude EMAs, w_avg) after it and D's gradients as the optimizer
    saw them (after the 1/grad_accum scaling)."""
    gan = tiny_gan(grad_accum=grad_accum, lr_cond_prob=1.0, in_augment_p=0.0)
    assert gan.ada.pipe.p == 0.0
    grads = {}

    def capture(opt, args, kwargs):
        grads.update({name: p.grad.clone() for name, p in gan.D.named_parameters()})

    gan.opt_D.register_step_pre_hook(capture)
    before = {k: v.clone() for k, v in gan.G.named_buffers() if v.is_floating_point()}
    gan.update_D(*clips())
    after = {k: v.clone() for k, v in gan.G.named_buffers() if v.is_floating_point()}
    return before, after, grads


def test_d_step_generates_the_fakes_once_per_step():
    """With grad_accum = 2 the generator still runs once, on the whole batch: its magnitude
    EMAs and w_avg move once, from the full batch's statistics, exactly as with grad_accum = 1,
    and D's accumulated gradient is the same.

    The comparison is deterministic because every random draw that depends on the chunking is
    neutralised: the LR in-augmentation is off (in_augment_p = 0; it would be drawn for the
    whole batch anyway), ADA's p is 0 (its per-chunk draws leave the clips unchanged), and
    lr_cond_prob = 1 (the per-chunk keep mask is always 1). float64 is not used: the networks
    compute in float32 whatever their parameters' dtype, hence the float32 tolerances."""
    before, after_1, grads_1 = d_step(grad_accum=1)
    _, after_2, grads_2 = d_step(grad_accum=2)
    ema_names = [k for k in before if k.endswith("ema.value")]
    assert len(ema_names) == len(get_preset("tiny").sres_generator.layers)
    assert set(before) == {"w_avg", *ema_names}
    for name in before:
        assert not torch.equal(after_1[name], before[name]), f"{name} did not move"
        torch.testing.assert_close(after_2[name], after_1[name], rtol=1e-6, atol=1e-8, msg=name)
    assert set(grads_1) == set(grads_2) == {k for k, _ in tiny_gan().D.named_parameters()}
    for name, g1 in grads_1.items():
        scale = g1.abs().max().item()
        assert scale > 0, name
        torch.testing.assert_close(grads_2[name], g1, rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_ada_controller_updates_after_steps_0_k_2k():
    pipe = AugmentPipe(BGC)
    ada = AdaController(pipe, target=0.6, interval=4, speed=0.000125, cap=0.5)
    changed = []
    for step in range(13):
        ada.accumulate(torch.ones(2, 1))  # the D step: reals judged real, p must rise
        p = pipe.p
        signs = ada.update(step)
        assert (signs is None) == (pipe.p == p)
        if pipe.p != p:
            changed.append(step)
            assert pipe.p == pytest.approx(p + 4 * 0.000125)
    assert changed == [0, 4, 8, 12]


def test_train_step_updates_ada_after_steps_0_k_2k():
    """The wiring of `SuperResGAN.train_step`, with the G, D and R1 updates stubbed out (the D
    stub feeds ADA confident real logits, as a real D step would)."""
    gan = tiny_gan(ada_interval=4, r1_interval=1000)
    gan.update_G = lambda lr: {}
    gan.update_D = lambda lr, hr: gan.ada.accumulate(torch.ones(2, 1)) or {}
    gan.update_r1 = lambda lr, hr: {}
    data = iter(lambda: (torch.zeros(1), torch.zeros(1)), None)
    changed = []
    for step in range(10):
        p = gan.ada.pipe.p
        stats = gan.train_step(step, data)
        assert ("progress/ada_sign" in stats) == (gan.ada.pipe.p != p)
        if gan.ada.pipe.p != p:
            changed.append(step)
    assert changed == [0, 4, 8]
    assert gan.ada.pipe.p == pytest.approx(3 * 4 * 0.000125)


def test_in_augment_p_switches_the_lr_in_augmentation():
    lr, _ = clips(n=4)
    off = tiny_gan(in_augment_p=0.0).in_augment
    assert off.cfg == IN_AUGMENT and off.p == 0.0
    assert torch.equal(off(lr, torch.Generator().manual_seed(0)), lr)
    on = tiny_gan().in_augment
    assert on.p == 0.5 == TrainConfig().in_augment_p  # the paper's
    assert not torch.equal(on(lr, torch.Generator().manual_seed(0)), lr)
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match=r"in_augment_p must be in \[0, 1\]"):
            TrainConfig(stage="sres", in_augment_p=bad)
