"""The seekable noise stream (generation/noise_stream.py): any window of the infinite stream is
computable on its own, at any index, negative ones included."""

import pytest
import torch

from generation.noise_stream import BLOCK_SIZE, NoiseStream, block_seed, seeded_normal


def test_windows_agree_anywhere():
    s = NoiseStream(seed=11)
    for start in (0, -1, -BLOCK_SIZE - 7, 10_000_000, 2 * BLOCK_SIZE - 3):
        long = s.window(start - 100, 3 * BLOCK_SIZE)
        short = s.window(start, 50)
        assert short.shape == (8, 50) and short.dtype == torch.float32
        torch.testing.assert_close(short, long[:, 100:150], rtol=0, atol=0)
    assert s.window(5, 0).shape == (8, 0)
    with pytest.raises(ValueError):
        s.window(0, -1)


def test_seeds_blocks_and_domains_are_independent():
    a, b = NoiseStream(1).window(0, 2 * BLOCK_SIZE), NoiseStream(2).window(0, 2 * BLOCK_SIZE)
    assert not torch.equal(a, b)
    assert not torch.equal(a[:, :BLOCK_SIZE], a[:, BLOCK_SIZE:])
    assert block_seed(1, 0) != block_seed(0, 1) and block_seed(1, 0) != block_seed(1, 0, "sres-z")
    assert block_seed(-(2**70), 3) != block_seed(2**70, 3)  # big and negative seeds are fine
    x = NoiseStream(3).window(-50_000, 100_000)
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1) < 0.01
    torch.testing.assert_close(seeded_normal(5, (4,), "x"), seeded_normal(5, (4,), "x"))


def test_periodic_stream():
    p = 96
    s, base = NoiseStream(4, period=p), NoiseStream(4)
    w = s.window(-2 * p - 5, 5 * p)
    torch.testing.assert_close(w[:, p:], w[:, :-p], rtol=0, atol=0)
    torch.testing.assert_close(s.window(0, p), base.window(0, p), rtol=0, atol=0)
    torch.testing.assert_close(s.window(10_000_000 * p + 3, 5), base.window(3, 5), rtol=0, atol=0)
    with pytest.raises(ValueError):
        NoiseStream(0, period=0)
