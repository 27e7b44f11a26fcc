"""A training step never waits for the device (docs/training.md#no-waiting-inside-a-step).

Both stages' full steps (G, D, R1, EMA, optimiser steps) run on the `meta` device: a meta tensor
has no values, so any host read of one (`.item()`, `float()`, `bool()`, `.tolist()`, a copy to
the CPU) raises. A step that ran here cannot have synchronised with a GPU either."""

import itertools

import pytest
import torch

from networks.presets import get_preset
from training.config import resolve
from training.loop import read_tick
from training.lres_gan import LowResGAN, lres_networks
from training.sres_gan import SuperResGAN, sres_networks

META = torch.device("meta")
PRESET = get_preset("tiny")


def _on_meta(stats: dict) -> None:
    for key, value in stats.items():
        assert isinstance(value, (torch.Tensor, float)), key
        if isinstance(value, torch.Tensor):
            assert value.device == META, key


def test_a_host_read_of_a_meta_tensor_raises():
    """What makes the tests below able to fail: the old per-step reads."""
    x = torch.zeros(3, device=META)
    for read in (lambda: x.sum().item(), lambda: int(torch.isfinite(x).sum()), x.tolist):
        with pytest.raises((RuntimeError, NotImplementedError)):
            read()


def test_low_res_step_does_not_read_the_device():
    cfg = resolve("lres", "tiny", data="x", outdir="x", batch=2, seq_length=16, r1_interval=1)
    G, D = (net.to(META) for net in lres_networks(cfg, PRESET))
    gan = LowResGAN(cfg, G, D, META, torch.Generator().manual_seed(0))
    real = torch.empty(2, 3, cfg.seq_length, *G.size, device=META)
    stats = gan.train_step(0, itertools.repeat(real))
    assert {"loss/G", "loss/D", "loss/r1_penalty", "grad/D_nonfinite"} <= set(stats)
    _on_meta(stats)


@pytest.mark.parametrize("step,precision", [(1, "auto"), (2, "auto"), (3, "mixed")])
def test_super_res_step_does_not_read_the_device(step, precision):
    """Steps between ADA updates (the update, every `ada_interval` steps, reads one number),
    also with the original's half-precision layers ("mixed": bfloat16 off CUDA)."""
    cfg = resolve(
        "sres", "tiny", data="x", outdir="x", batch=2, seq_length=4, r1_interval=1,
        precision=precision,
    )  # fmt: skip
    G, D = (net.to(META) for net in sres_networks(cfg, PRESET))
    gan = SuperResGAN(cfg, G, D, META, torch.Generator().manual_seed(0), None)
    c, t = G.cfg, cfg.seq_length + 2 * G.context
    lr = torch.empty(2, 3, t, c.lr_height, c.lr_width, device=META)
    hr = torch.empty(2, 3, t, c.hr_height, c.hr_width, device=META)
    stats = gan.train_step(step, itertools.repeat((lr, hr)))
    assert {"loss/G", "loss/D", "loss/r1_penalty"} <= set(stats)
    _on_meta(stats)


def test_read_tick_keeps_order_and_types():
    steps = [
        {"loss/G": torch.tensor(1.5), "grad/G_nonfinite": torch.tensor(2), "beta": 0.5},
        {"loss/G": torch.tensor(float("nan")), "beta": 0.25, "loss/D": torch.tensor(-3.0)},
    ]
    rows = read_tick(steps)
    assert rows[0] == {"loss/G": 1.5, "grad/G_nonfinite": 2.0, "beta": 0.5}
    assert rows[1]["beta"] == 0.25 and rows[1]["loss/D"] == -3.0
    assert rows[1]["loss/G"] != rows[1]["loss/G"]  # nan survives
    assert all(isinstance(v, float) for row in rows for v in row.values())
    assert read_tick([]) == [] and read_tick([{"a": 1}]) == [{"a": 1.0}]
