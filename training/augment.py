"""Augmentations of the low-resolution discriminator's inputs
(docs/training.md#diffaugment-and-time-stretch).

Applied identically to real and generated clips and inside R1: DiffAugment (colour,
translation, cutout), then the fractional time stretch. Every parameter is drawn once per clip
and held constant over time, so augmentation never creates motion that is not in the data.
All randomness comes from the `torch.Generator` passed in (on the CPU), which keeps training
reproducible and resumable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from torch_utils.misc import assert_shape


def _uniform(
    n: int, lo: float, hi: float, gen: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    u = torch.rand(n, generator=gen) * (hi - lo) + lo
    return u.to(device=like.device, dtype=like.dtype).view(n, 1, 1, 1, 1)


def augment_color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness +U(-0.5, 0.5); saturation x U(0, 2) about the per-pixel channel mean; contrast
    x U(0.5, 1.5) about the clip mean (DiffAugment)."""
    n = x.shape[0]
    x = x + _uniform(n, -0.5, 0.5, gen, x)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(n, 0.0, 2.0, gen, x) + mean
    mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
    return (x - mean) * _uniform(n, 0.5, 1.5, gen, x) + mean


def augment_translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.25) -> torch.Tensor:
    """Integer shift of the whole clip by up to round(ratio * max(H, W)) pixels on each axis
    (16 px for 36x64 on both axes, as the original), zero fill."""
    n, c, t, h, w = x.shape
    s = round(ratio * max(h, w))
    ty = torch.randint(-s, s + 1, (n,), generator=gen).to(x.device)
    tx = torch.randint(-s, s + 1, (n,), generator=gen).to(x.device)
    padded = F.pad(x, [s, s, s, s])
    rows = (torch.arange(h, device=x.device)[None] + s - ty[:, None])[:, :, None]  # [n, h, 1]
    cols = (torch.arange(w, device=x.device)[None] + s - tx[:, None])[:, None, :]  # [n, 1, w]
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 3, 4, 1, 2)[batch, rows, cols]  # [n, h, w, c, t]
    return out.permute(0, 3, 4, 1, 2)


def augment_cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero a round(ratio*H) x round(ratio*W) rectangle (18x32 for 36x64) at a random centre,
    clipped at the borders, in every frame of the clip."""
    n, _, _, h, w = x.shape
    ch, cw = round(ratio * h), round(ratio * w)
    cy = torch.randint(0, h + (1 - ch % 2), (n,), generator=gen).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n,), generator=gen).to(x.device)
    ys = torch.arange(h, device=x.device)[None]
    xs = torch.arange(w, device=x.device)[None]
    inside_y = (ys >= (cy - ch // 2)[:, None]) & (ys < (cy - ch // 2 + ch)[:, None])
    inside_x = (xs >= (cx - cw // 2)[:, None]) & (xs < (cx - cw // 2 + cw)[:, None])
    mask = ~(inside_y[:, :, None] & inside_x[:, None, :])  # [n, h, w]
    return x * mask[:, None, None].to(x.dtype)


def time_stretch(x: torch.Tensor, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Resample time by 2^U(-strength, strength) with linear interpolation (align_corners
    False), zero-pad a result shorter than T at a random split, take a random T-frame crop."""
    n, c, t, h, w = x.shape
    factors = torch.exp2(torch.rand(n, generator=gen) * 2 * strength - strength)
    out = []
    for clip, f in zip(x, factors.tolist()):
        length = max(1, int(t * f))
        resized = F.interpolate(
            clip.reshape(c, t, h * w)[None],
            size=(length, h * w),
            mode="bilinear",
            align_corners=False,
        )
        clip = resized[0].reshape(c, length, h, w)
        if length < t:
            before = int(torch.randint(0, t - length + 1, (), generator=gen))
            clip = F.pad(clip, [0, 0, 0, 0, before, t - length - before])
        elif length > t:
            start = int(torch.randint(0, length - t + 1, (), generator=gen))
            clip = clip[:, start : start + t]
        out.append(clip)
    return torch.stack(out)


DIFFAUGMENT = {"color": augment_color, "translation": augment_translation, "cutout": augment_cutout}


def parse_policy(policy: str) -> list[str]:
    """ "color,translation,cutout" -> the op names in order; "" or "none" -> no ops."""
    names = [p.strip() for p in policy.split(",") if p.strip() and p.strip() != "none"]
    unknown = sorted(set(names) - set(DIFFAUGMENT))
    if unknown:
        raise ValueError(
            f"unknown DiffAugment policy {', '.join(unknown)}; use any of "
            f"{','.join(DIFFAUGMENT)} (comma-separated), or none"
        )
    return names


def augment_video(
    x: torch.Tensor,
    gen: torch.Generator,
    policy: str = "color,translation,cutout",
    time_strength: float = 1.0,
) -> torch.Tensor:
    """The discriminator-input augmentation of the low-resolution stage."""
    assert_shape(x, "n c t h w")
    for name in parse_policy(policy):
        x = DIFFAUGMENT[name](x, gen)
    if time_strength > 0:
        x = time_stretch(x, gen, time_strength)
    return x
