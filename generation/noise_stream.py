"""A seekable, infinite temporal noise stream (docs/generation.md#noise-stream).

The low-resolution generator turns white noise (8 channels per frame) into a video. The
original draws that noise as one `randn` tensor per call, so a video cannot be extended or
entered in the middle. Here the noise of seed `s` is a fixed, infinite sequence `n_s[i]`,
`i` any integer (negative too), defined by a counter-based scheme:

* the stream is cut into blocks of `block_size` (4096) samples x `channels` (8);
* block `b` (b = floor(i / block_size)) is `torch.randn(channels, block_size)` drawn on the
  CPU from a `torch.Generator` seeded with `block_seed(s, b)`, a keyed BLAKE2b hash of (s, b);
* `n_s[i] = block[:, i - b * block_size]`.

So any window `n_s[a : a + L]` costs `ceil(L / 4096) + 1` block draws, whatever `a` is
(a = 10,000,000 or a = -5,000 alike). Draws are on the CPU so that a seed means the same
video on every device; the values are stable for a given torch version (torch does not
promise `randn` streams across versions).

With `period=P`, the stream is periodic: `n[i] = n_s[i mod P]` (used by `--loop-mode noise`).

With `patch=NoisePatch(a, w)` (a projection, docs/projection.md), samples `a .. a + len(w) - 1`
are `w` instead of the seed's own; the rest of the stream is unchanged (a periodic stream reads
the patched samples at `i mod P`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import torch

BLOCK_SIZE = 4096
_CACHE_BLOCKS = 16  # per process; a block of 8 x 4096 float32 is 128 KiB


def block_seed(seed: int, index: int, domain: str = "noise") -> int:
    """A 64-bit torch seed for block `index` of seed `seed` (both any integers, |x| < 2^127).

    Keyed BLAKE2b of the two numbers, separated by `domain` so that other random quantities
    derived from a seed (e.g. the super-resolution latent) are independent of the noise."""
    h = hashlib.blake2b(digest_size=8, person=f"lvg-{domain}"[:16].encode())
    h.update(int(seed).to_bytes(16, "little", signed=True))
    h.update(int(index).to_bytes(16, "little", signed=True))
    return int.from_bytes(h.digest(), "little")


def seeded_normal(seed: int, shape: tuple[int, ...], domain: str, index: int = 0) -> torch.Tensor:
    """`randn(shape)` (float32, CPU) from the generator seeded by `block_seed(seed, index, domain)`."""
    g = torch.Generator().manual_seed(block_seed(seed, index, domain))
    return torch.randn(shape, generator=g)


_blocks: OrderedDict[tuple[int, int, int, int], torch.Tensor] = OrderedDict()


def _block(seed: int, index: int, channels: int, block_size: int) -> torch.Tensor:
    key = (seed, index, channels, block_size)
    if key in _blocks:
        _blocks.move_to_end(key)
        return _blocks[key]
    value = seeded_normal(seed, (channels, block_size), "noise", index)
    _blocks[key] = value
    if len(_blocks) > _CACHE_BLOCKS:
        _blocks.popitem(last=False)
    return value


@dataclass(frozen=True, eq=False)
class NoisePatch:
    """Noise samples `start .. start + noise.shape[1] - 1` that replace a seed's own
    (a projection's window, docs/projection.md); compared by identity."""

    start: int
    noise: torch.Tensor  # [channels, L] float32, CPU

    @property
    def stop(self) -> int:
        return self.start + self.noise.shape[1]


@dataclass(frozen=True)
class NoiseStream:
    """The infinite noise stream of one seed; `window(a, L)` is `n[a : a + L]`, `[channels, L]`."""

    seed: int
    channels: int = 8
    block_size: int = BLOCK_SIZE
    period: int | None = None
    patch: NoisePatch | None = None

    def __post_init__(self):
        if self.period is not None and self.period < 1:
            raise ValueError(f"period must be positive, got {self.period}")
        if self.channels < 1 or self.block_size < 1:
            raise ValueError("channels and block_size must be positive")
        if self.patch is not None and self.patch.noise.shape[0] != self.channels:
            raise ValueError(
                f"the patch has {self.patch.noise.shape[0]} channels, the stream {self.channels}"
            )

    def window(self, start: int, length: int) -> torch.Tensor:
        """Samples `start .. start + length - 1` as a float32 CPU tensor `[channels, length]`."""
        if length < 0:
            raise ValueError(f"negative window length {length}")
        if self.period is None:
            return self._aperiodic(start, length)
        pieces, i, stop = [], start, start + length
        while i < stop:  # split at period boundaries, each piece read from [0, period)
            u = i % self.period
            n = min(stop - i, self.period - u)
            pieces.append(self._aperiodic(u, n))
            i += n
        return torch.cat(pieces, dim=1) if pieces else torch.zeros(self.channels, 0)

    def _aperiodic(self, start: int, length: int) -> torch.Tensor:
        if length == 0:
            return torch.zeros(self.channels, 0)
        b0, b1 = start // self.block_size, (start + length - 1) // self.block_size
        blocks = [_block(self.seed, b, self.channels, self.block_size) for b in range(b0, b1 + 1)]
        offset = start - b0 * self.block_size
        out = torch.cat(blocks, dim=1)[:, offset : offset + length].clone()
        p = self.patch
        if p is not None and p.start < start + length and start < p.stop:
            a, b = max(start, p.start), min(start + length, p.stop)
            out[:, a - start : b - start] = p.noise[:, a - p.start : b - p.start].to(out)
        return out
