"""What a video shows at each frame: one seed's world, a seamless loop, or a transition between
two worlds. Everything here is a function of the absolute frame index, so any stretch of a
video can be computed on its own (docs/generation.md#frame-positions).

**Frame positions.** The temporal embedding `E(g)` at frame position `g` (1024 channels) is the
noise filter bank applied to noise samples `g + lead .. g + lead + 4999`, with
`lead = temporal_padding * 32 = 256`. Frame `f` of the video is the synthesis output driven by
`W(g) = mapping(E(g))` around `g = f`. For a plain seed this is exactly:

    frame f of seed s = output frame f - c of G.from_noise(n_s[c : c + noise_length(T)], T)
    for every c and T that are multiples of 32 with c <= f < c + T

(the generator is exactly shift-equivariant by 32 frames, and a 32-aligned window's frames do
not depend on its length; float rounding aside, ~1e-6). `n_s` is the seed's `NoiseStream`.

**Loops** (`Loop(P)`, P a multiple of 32) make `E` P-periodic, so frame t equals frame t + P
and a file of P frames loops without a seam. Two constructions:

* `mode="blend"` (default): for u = g mod P, with theta = pi/2 * smoothstep(u / P),
  `E(g) = (sin(theta) X(u) + cos(theta) X(u + P)) / sqrt(1 + 2 sin(theta) cos(theta) rho)`,
  where X is the seed's plain embedding and rho (per channel) the correlation of X(u) and
  X(u + P), i.e. the filter's normalised autocorrelation at lag P. At u = 0 it equals
  X(P), and as u -> P it tends to X(P) again; the smoothstep makes the wrap C1-smooth; the
  normalisation keeps every channel at exactly unit variance, as in training.
  With `anchor=a` and `ramp=R` (R <= P), u = (g - a) mod P, X(u) reads X(a + u) and the
  smoothstep runs over u in [0, R) only: for u in [R, P) the loop shows the plain embedding
  X(a + u) unchanged (a projected clip placed there is seen as projected); the wrap stays
  C1-smooth. The defaults (a = 0, R = P) are the construction above.
* `mode="noise"`: periodic noise, `n[i] = n_s[i mod P]`. Its embedding is P-periodic too, but
  the slow filters (up to 5000 taps) then sum many copies of the same samples: for P = 256
  the slowest channels' variance grows ~5x (25x for P = 64), and the mapping's per-frame
  normalisation then shrinks all the others. Fine for P of several thousand frames.

**Transitions** (`Transition(seed2, at=F, over=N)`): `E(g) = cos(theta) E_1(g) + sin(theta)
E_2(g)` with theta = pi/2 * smoothstep((g - F) / N) clipped to [0, pi/2]: variance-preserving
(the two worlds are independent), pure seed 1 up to F, pure seed 2 from F + N (frames within
the synthesis' receptive field, about 150 frames, of either end are mixed). The blend is on
the embedding rather than on the raw noise: with the 5000-tap filters, a noise blend would
leave the slow channels on seed 1 for about 5000 frames after the blend. The
super-resolution latent blends the same way: `z = cos(theta) z_1 + sin(theta) z_2`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import torch

from generation.noise_stream import NoisePatch, NoiseStream, seeded_normal
from networks.noise import TemporalNoiseBank

LOOP_PIECE = 1024  # loop embeddings are computed (and cached) in aligned pieces of this length
LOOP_CACHE = 3  # pieces kept per timeline (4 MiB each); a 128-frame chunk reads at most 3
# Frame positions (start frames, loop periods, transition frames) stay within +-2^52, so they
# are exact in float64 (transition angles) and their int64 arithmetic cannot overflow
# (docs/generation.md#limits); seeds are 64-bit integers.
MAX_POSITION = 2**52
SEED_RANGE = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Loop:
    """A seamless loop of `period` frames (a multiple of 32)."""

    period: int
    mode: Literal["blend", "noise"] = "blend"
    anchor: int = 0  # blend: the loop repeats frames anchor .. anchor + period - 1
    ramp: int | None = None  # blend: frames of the cross-fade (period when None)


@dataclass(frozen=True)
class Transition:
    """Cross over to `seed`'s world from frame `at` to frame `at + over` (`patch`: that
    world's noise override, e.g. a projection's window, docs/projection.md)."""

    seed: int
    at: int
    over: int
    patch: NoisePatch | None = None


def check_seed(seed: int, name: str = "seed") -> None:
    """ValueError unless `seed` is a 64-bit signed integer (docs/generation.md#limits)."""
    low, high = SEED_RANGE
    if not low <= seed <= high:
        raise ValueError(f"`{name}` must be a 64-bit integer ({low} .. {high}), got {seed}")


@dataclass(frozen=True)
class Timeline:
    """The content of one video: a seed, optionally looped or transitioning to another seed."""

    seed: int
    loop: Loop | None = None
    transition: Transition | None = None
    patch: NoisePatch | None = None  # the seed's noise override (a projection's window)

    def validate(self, time_factor: int = 32) -> None:
        """Raise ValueError (one line, option-style) for impossible settings
        (docs/generation.md#limits)."""
        check_seed(self.seed, "seed")
        if self.loop is not None:
            if not time_factor <= self.loop.period <= MAX_POSITION:
                raise ValueError(
                    f"`loop` must be between {time_factor} and 2^52 ({MAX_POSITION}) frames, "
                    f"got {self.loop.period}"
                )
            if self.loop.period % time_factor:
                raise ValueError(
                    f"`loop` must be a positive multiple of {time_factor} frames (the generator is "
                    f"shift-equivariant only by multiples of {time_factor}), got {self.loop.period}"
                )
            if self.loop.mode not in ("blend", "noise"):
                raise ValueError(f"unknown loop mode {self.loop.mode!r}; use blend or noise")
            ramp = self.loop.ramp
            if ramp is not None and not 1 <= ramp <= self.loop.period:
                raise ValueError(f"the loop's ramp must be 1 .. {self.loop.period}, got {ramp}")
            if abs(self.loop.anchor) > MAX_POSITION:
                raise ValueError(
                    f"the loop's anchor must be within -2^52 .. 2^52, got {self.loop.anchor}"
                )
            if self.transition is not None:
                raise ValueError("`loop` and `transition_to` cannot be combined")
        if self.transition is not None:
            check_seed(self.transition.seed, "transition_to")
            if not 0 <= self.transition.over <= MAX_POSITION:
                raise ValueError(
                    f"`over` must be between 0 and 2^52 ({MAX_POSITION}) frames, "
                    f"got {self.transition.over}"
                )
            if abs(self.transition.at) > MAX_POSITION:
                raise ValueError(
                    f"`at` must be a frame within -2^52 .. 2^52 ({MAX_POSITION}), "
                    f"got {self.transition.at}"
                )

    def transition_angle(self, positions: torch.Tensor) -> torch.Tensor | None:
        """theta(g) in [0, pi/2] (float64) for a transition, None without one."""
        if self.transition is None:
            return None
        x = positions.double() - self.transition.at
        if self.transition.over > 0:
            x = (x / self.transition.over).clamp(0, 1)
            return math.pi / 2 * x * x * (3 - 2 * x)
        return math.pi / 2 * (x >= 0).double()

    def sres_latents(self, frames: torch.Tensor, z_dim: int) -> torch.Tensor:
        """The super-resolution latent of each frame `[len(frames), z_dim]` (one z per
        video, drawn from the seed; blended like the embedding during a transition)."""
        z1 = seeded_normal(self.seed, (z_dim,), "sres-z")
        theta = self.transition_angle(frames)
        if theta is None:
            return z1.expand(len(frames), z_dim)
        z2 = seeded_normal(self.transition.seed, (z_dim,), "sres-z")
        c, s = theta.cos().float()[:, None], theta.sin().float()[:, None]
        return c * z1 + s * z2


class TimelineEmbedding:
    """`E(g)` of a timeline for a generator's noise bank: `emb(start, length)` -> `[1024, length]`
    float32 on the bank's device (see the module docstring for the definitions)."""

    def __init__(self, timeline: Timeline, bank: TemporalNoiseBank, lead: int):
        self.timeline, self.bank, self.lead = timeline, bank, lead
        cfg = bank.cfg
        loop = timeline.loop
        period = loop.period if loop is not None and loop.mode == "noise" else None
        self.stream = NoiseStream(
            timeline.seed, cfg.noise_channels, period=period, patch=timeline.patch
        )
        self.other = (
            NoiseStream(
                timeline.transition.seed, cfg.noise_channels, patch=timeline.transition.patch
            )
            if timeline.transition is not None
            else None
        )
        self.blend_period = loop.period if loop is not None and loop.mode == "blend" else None
        self._pieces: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._rho: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return self.bank.filters.device

    def _plain(self, stream: NoiseStream, start: int, length: int) -> torch.Tensor:
        noise = stream.window(start + self.lead, length + self.bank.context)
        return self.bank(noise[None].to(self.device))[0]

    def __call__(self, start: int, length: int) -> torch.Tensor:
        if self.blend_period is not None:
            return self._looped(start, length)
        positions = torch.arange(start, start + length)
        theta = self.timeline.transition_angle(positions)
        if theta is None or theta.max() == 0:
            return self._plain(self.stream, start, length)
        if theta.min() == math.pi / 2:
            return self._plain(self.other, start, length)
        c, s = (v.float().to(self.device) for v in (theta.cos(), theta.sin()))
        e1, e2 = self._plain(self.stream, start, length), self._plain(self.other, start, length)
        return e1 * c + e2 * s

    # -- blend loops ----------------------------------------------------------------------------

    def _lag_correlation(self) -> torch.Tensor:
        """Per-channel correlation of X(u) and X(u + P): the unit-norm filters' autocorrelation
        at lag P (zero when P >= the filter length). Channel = noise_channel * F + filter."""
        if self._rho is None:
            taps = self.bank.filters * self.bank.scale[:, None]  # float64, unit L2 norm per row
            p = self.blend_period
            rho = (taps[:, p:] * taps[:, :-p]).sum(1) if p < taps.shape[1] else taps[:, 0] * 0
            self._rho = rho.repeat(self.bank.cfg.noise_channels)
        return self._rho

    def _piece(self, k: int) -> torch.Tensor:
        """E over u in [k * piece, min(P, (k + 1) * piece)), cached: every u is always computed
        in the same piece, so E(g) and E(g + P) are bit-identical."""
        if k in self._pieces:
            self._pieces.move_to_end(k)
            return self._pieces[k]
        p, a = self.blend_period, self.timeline.loop.anchor
        ramp = self.timeline.loop.ramp or p
        u0 = k * LOOP_PIECE
        u1 = min(p, u0 + LOOP_PIECE)
        x0 = self._plain(self.stream, a + u0, u1 - u0)
        x1 = self._plain(self.stream, a + u0 + p, u1 - u0)
        x = (torch.arange(u0, u1, dtype=torch.float64) / ramp).clamp(max=1)
        theta = math.pi / 2 * x * x * (3 - 2 * x)
        s, c = (v.to(self.device) for v in (theta.sin(), theta.cos()))
        rho = self._lag_correlation()
        norm = (1 + 2 * s[None] * c[None] * rho[:, None]).rsqrt()
        value = ((x0.double() * s + x1.double() * c) * norm).float()
        self._pieces[k] = value
        if len(self._pieces) > LOOP_CACHE:
            self._pieces.popitem(last=False)
        return value

    def _looped(self, start: int, length: int) -> torch.Tensor:
        p, out, g = self.blend_period, [], start
        while g < start + length:
            u = (g - self.timeline.loop.anchor) % p
            k = u // LOOP_PIECE
            piece = self._piece(k)
            off = u - k * LOOP_PIECE
            n = min(start + length - g, piece.shape[1] - off)
            out.append(piece[:, off : off + n])
            g += n
        return torch.cat(out, dim=1)
