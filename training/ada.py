"""Adaptive discriminator augmentation for the super-resolution stage
(docs/training.md#ada-and-in-augmentation).

`AugmentPipe` is StyleGAN2-ADA's pipeline applied to videos: every parameter is drawn once per
clip and the same transform is applied to all its frames. Geometric operations compose one
affine matrix per clip (flip, 90-degree rotations, integer translation, isotropic scale,
rotation, anisotropic scale, fractional translation) that is applied by bilinear resampling
with reflected borders; colour operations compose one 4x4 colour matrix per clip (brightness,
contrast, luma flip, hue rotation, saturation); additive noise is i.i.d. per pixel and frame.

Difference from the original: the original resamples at 2x with a sym6 wavelet filter around
the bilinear warp to reduce aliasing; here the warp is a single bilinear `grid_sample`.

Two configurations are used: `BGC` for ADA (p adapted toward a target sign of the
real logits, capped at 0.5) and `IN_AUGMENT` for the fixed, weak augmentation of the real
low-resolution conditioning that imitates the low-resolution generator's imperfections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from torch_utils import distributed


@dataclass(frozen=True)
class AugmentConfig:
    """Per-operation probability multipliers and strengths (StyleGAN2-ADA's names)."""

    xflip: float = 0.0
    rotate90: float = 0.0
    xint: float = 0.0
    scale: float = 0.0
    rotate: float = 0.0
    aniso: float = 0.0
    xfrac: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    lumaflip: float = 0.0
    hue: float = 0.0
    saturation: float = 0.0
    noise: float = 0.0
    xint_max: float = 0.125
    scale_std: float = 0.2
    rotate_max: float = 1.0
    aniso_std: float = 0.2
    xfrac_std: float = 0.125
    brightness_std: float = 0.2
    contrast_std: float = 0.5
    hue_max: float = 1.0
    saturation_std: float = 1.0
    noise_std: float = 0.1


BGC = AugmentConfig(
    xflip=1,
    rotate90=1,
    xint=1,
    scale=1,
    rotate=1,
    aniso=1,
    xfrac=1,
    brightness=1,
    contrast=1,
    lumaflip=1,
    hue=1,
    saturation=1,
)
IN_AUGMENT = AugmentConfig(
    scale=1,
    rotate=1,
    aniso=1,
    xfrac=1,
    noise=1,
    scale_std=0.08,
    rotate_max=0.016,
    aniso_std=0.08,
    xfrac_std=0.016,
    noise_std=0.08,
)


def _affine(n: int, rows) -> torch.Tensor:
    """Stack per-sample 3x3 matrices from nested lists of [n] tensors or scalars."""
    return torch.stack(
        [
            torch.stack([torch.as_tensor(v, dtype=torch.float64).expand(n) for v in row], -1)
            for row in rows
        ],
        -2,
    )


def _translate(tx, ty, n):
    return _affine(n, [[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def _scale(sx, sy, n):
    return _affine(n, [[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def _rotate(theta, n):
    return _affine(
        n,
        [
            [torch.cos(theta), -torch.sin(theta), 0],
            [torch.sin(theta), torch.cos(theta), 0],
            [0, 0, 1],
        ],
    )


class AugmentPipe:
    """`pipe(video, gen)` augments `[n, c, t, h, w]` clips with probability `pipe.p` per op."""

    def __init__(self, cfg: AugmentConfig, p: float = 0.0):
        self.cfg, self.p = cfg, float(p)

    def _enabled(self, weight: float, n: int, gen) -> torch.Tensor:
        return torch.rand(n, generator=gen, dtype=torch.float64) < weight * self.p

    def geometry(self, n: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
        """Inverse affine maps `[n, 3, 3]` in pixel units, origin at the image centre."""
        c, G = self.cfg, torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
        rand = lambda: torch.rand(n, generator=gen, dtype=torch.float64)  # noqa: E731
        randn = lambda: torch.randn(n, generator=gen, dtype=torch.float64)  # noqa: E731
        if c.xflip:
            i = torch.where(self._enabled(c.xflip, n, gen), torch.floor(rand() * 2), 0)
            G = G @ _scale(1 - 2 * i, 1, n)
        if c.rotate90:
            i = torch.where(self._enabled(c.rotate90, n, gen), torch.floor(rand() * 4), 0)
            G = G @ _rotate(math.pi / 2 * i, n)
        if c.xint:
            on = self._enabled(c.xint, n, gen)
            tx, ty = (torch.where(on, (rand() * 2 - 1) * c.xint_max, 0) for _ in range(2))
            G = G @ _translate(-torch.round(tx * w), -torch.round(ty * h), n)
        if c.scale:
            s = torch.where(self._enabled(c.scale, n, gen), torch.exp2(randn() * c.scale_std), 1)
            G = G @ _scale(1 / s, 1 / s, n)
        p_rot = 1 - math.sqrt(max(1 - c.rotate * self.p, 0))  # pre- and post-rotation together ~ p
        if c.rotate:
            theta = torch.where(rand() < p_rot, (rand() * 2 - 1) * math.pi * c.rotate_max, 0)
            G = G @ _rotate(theta, n)
        if c.aniso:
            s = torch.where(self._enabled(c.aniso, n, gen), torch.exp2(randn() * c.aniso_std), 1)
            G = G @ _scale(1 / s, s, n)
        if c.rotate:
            theta = torch.where(rand() < p_rot, (rand() * 2 - 1) * math.pi * c.rotate_max, 0)
            G = G @ _rotate(theta, n)
        if c.xfrac:
            on = self._enabled(c.xfrac, n, gen)
            tx, ty = (torch.where(on, randn() * c.xfrac_std, 0) for _ in range(2))
            G = G @ _translate(-tx * w, -ty * h, n)
        return G

    def color(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """Colour matrices `[n, 4, 4]` acting on (r, g, b, 1)."""
        c, C = self.cfg, torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
        rand = lambda: torch.rand(n, generator=gen, dtype=torch.float64)  # noqa: E731
        randn = lambda: torch.randn(n, generator=gen, dtype=torch.float64)  # noqa: E731
        eye = torch.eye(4, dtype=torch.float64)
        v = torch.tensor([1, 1, 1, 0], dtype=torch.float64) / math.sqrt(3)  # the luma axis
        vv = torch.outer(v, v)
        if c.brightness:
            b = torch.where(self._enabled(c.brightness, n, gen), randn() * c.brightness_std, 0)
            T = eye.repeat(n, 1, 1)
            T[:, :3, 3] = b[:, None]
            C = T @ C
        if c.contrast:
            s = torch.where(
                self._enabled(c.contrast, n, gen), torch.exp2(randn() * c.contrast_std), 1
            )
            S = eye.repeat(n, 1, 1)
            S[:, 0, 0] = S[:, 1, 1] = S[:, 2, 2] = s
            C = S @ C
        if c.lumaflip:
            i = torch.where(self._enabled(c.lumaflip, n, gen), torch.floor(rand() * 2), 0)
            C = (eye - 2 * vv * i[:, None, None]) @ C
        if c.hue:
            theta = torch.where(
                self._enabled(c.hue, n, gen), (rand() * 2 - 1) * math.pi * c.hue_max, 0
            )
            C = _rotate3d(v[:3], theta) @ C
        if c.saturation:
            s = torch.where(
                self._enabled(c.saturation, n, gen), torch.exp2(randn() * c.saturation_std), 1
            )
            C = (vv + (eye - vv) * s[:, None, None]) @ C
        return C

    def __call__(self, video: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, ch, t, h, w = video.shape
        G = self.geometry(n, h, w, gen)
        if not torch.equal(G, torch.eye(3, dtype=G.dtype).expand_as(G)):
            # Pixel units (origin at the centre) -> the normalised units of affine_grid.
            S = torch.diag(torch.tensor([w / 2, h / 2, 1.0], dtype=torch.float64))
            theta = (torch.linalg.inv(S) @ G @ S)[:, :2].to(video)
            grid = F.affine_grid(theta, [n, ch * t, h, w], align_corners=False)
            flat = video.reshape(n, ch * t, h, w)
            video = F.grid_sample(
                flat, grid, mode="bilinear", padding_mode="reflection", align_corners=False
            ).reshape(n, ch, t, h, w)
        C = self.color(n, gen)
        if not torch.equal(C, torch.eye(4, dtype=C.dtype).expand_as(C)):
            C = C.to(video)
            flat = video.reshape(n, ch, t * h * w)
            video = (C[:, :3, :3] @ flat + C[:, :3, 3:]).reshape(n, ch, t, h, w)
        if self.cfg.noise:  # a no-op at p = 0 (nothing enabled), though it still draws numbers
            on = self._enabled(self.cfg.noise, n, gen)
            sigma = torch.where(
                on, torch.randn(n, generator=gen, dtype=torch.float64).abs() * self.cfg.noise_std, 0
            )
            if bool(on.any()):
                noise = torch.randn(video.shape, generator=gen).to(video)
                video = video + noise * sigma.to(video).view(n, 1, 1, 1, 1)
        return video


def _rotate3d(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotations by `theta` `[n]` about the unit `axis` (3,), as 4x4 matrices (Rodrigues)."""
    n = theta.shape[0]
    x, y, z = axis.tolist()
    K = torch.tensor([[0, -z, y], [z, 0, -x], [-y, x, 0]], dtype=torch.float64)
    R = (
        torch.eye(3, dtype=torch.float64)
        + torch.sin(theta)[:, None, None] * K
        + (1 - torch.cos(theta))[:, None, None] * (K @ K)
    )
    out = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    out[:, :3, :3] = R
    return out


class AdaController:
    """Adapts p every `interval` steps toward E[sign(D(real))] = target."""

    def __init__(
        self,
        pipe: AugmentPipe,
        target: float = 0.6,
        interval: int = 4,
        speed: float = 0.000125,
        cap: float = 0.5,
    ):
        self.pipe, self.target, self.interval, self.speed, self.cap = (
            pipe,
            target,
            interval,
            speed,
            cap,
        )
        self.sum, self.count = torch.zeros([], dtype=torch.float64), 0

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add a chunk's sign(D(real)) on the logits' device (read only at `update`)."""
        self.sum = self.sum.to(real_logits.device) + real_logits.detach().sign().sum().double()
        self.count += real_logits.numel()

    def update(self, step: int) -> float | None:
        """Call after the D step of `step` (0-based). p moves by speed * interval toward the
        target after the D steps of steps 0, k, 2k, ... (k = interval, `step % k == 0`), from the
        real logits accumulated since the previous update; returns the sign statistic then,
        None otherwise. Reading the statistic waits for the device, once per `interval` steps,
        as in the original: p decides on the host which augmentations the next step draws."""
        if step % self.interval or self.count == 0:
            return None
        count = torch.tensor(float(self.count), dtype=torch.float64, device=self.sum.device)
        stats = torch.stack([self.sum, count])
        distributed.all_reduce_mean(stats)
        signs = float(stats[0] / stats[1])
        delta = (
            math.copysign(self.speed * self.interval, signs - self.target)
            if signs != self.target
            else 0.0
        )
        self.pipe.p = min(max(self.pipe.p + delta, 0.0), self.cap)
        self.sum = torch.zeros([], dtype=torch.float64, device=self.sum.device)
        self.count = 0
        return signs

    def state_dict(self) -> dict:
        return {"p": self.pipe.p, "sum": self.sum.cpu(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.pipe.p, self.sum, self.count = (
            float(state["p"]),
            state["sum"].clone(),
            int(state["count"]),
        )
