"""Projection: find the temporal noise that makes a low-res generator reproduce given clips
(docs/projection.md).

A projection is a **window of raw temporal noise** `[noise_channels, L]` that replaces samples
`start .. start + L - 1` of a base seed's `NoiseStream` (docs/projection.md#what-is-optimised).
The clips occupy frame positions `[offset, offset + T)` of that stream. Frame f reads the
embedding at positions f - lead .. f + lead (lead = `G.embedding_lead`, through the chunk that
holds it, a multiple of `G.shift_period`), and embedding position g reads noise samples
g + lead .. g + lead + context (context = `G.noise_bank.context`); so the window of a clip is
the noise the pipeline reads for the aligned chunk that holds it:
`[c0, c1 + 2 lead + context)` with c0 / c1 the clip's first / last frame rounded down / up to
multiples of the shift period. Outside the window the base seed's noise continues, so the
timeline machinery (seeking, loops, transitions, super-resolution) plays and extends a
projection like a seed (`generation.noise_stream.NoisePatch`).

Optimisation (docs/projection.md#optimisation): Adam on the window, loss = LPIPS (the offline
`LPIPSNet` that `lvg-metrics` uses) + pixel MSE + a prior that keeps the window white N(0, 1)
(lag-autocorrelation penalties at several scales, and per-channel renormalisation after each
step), with a cosine learning-rate ramp-down (docs/projection.md#the-prior).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from datasets.video_io import (
    IMAGE_EXTENSIONS,
    VideoReadError,
    list_files,
    read_image,
    read_video,
    resize_frame,
)
from generation.noise_stream import NoisePatch, NoiseStream
from generation.timeline import Loop
from metrics.lpips_curves import load_lpips
from networks.checkpoint import config_to_dict
from networks.lres_generator import LowResGenerator
from torch_utils.misc import atomic_path, choose_device

FORMAT = "longvideogan-projection"
FORMAT_VERSION = 1
MIN_LPIPS_SIDE = 32  # AlexNet's five LPIPS slices need frames of at least about 31 pixels


class ProjectionError(ValueError):
    """A projection file that cannot be used (unreadable, damaged, or made with another
    generator); the message is one line naming the file, the mismatch and the fix."""


# ------------------------------------------------------------------------------------------------
# Identity of a generator


def config_hash(G: LowResGenerator) -> str:
    """sha256 of the generator's config as sorted JSON (what shapes the network)."""
    text = json.dumps(config_to_dict(G.cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def generator_identity(G: LowResGenerator) -> str:
    """sha256 of the generator's parameters and persistent buffers (names, shapes, dtypes and
    bytes), the same whatever file format they were loaded from."""
    h = hashlib.sha256()
    for name, value in sorted(G.state_dict().items()):
        t = value.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# Clips and windows


@dataclass(frozen=True)
class Clip:
    """Target frames `[T, 3, H, W]` float32 in [-1, 1] at the generator's size, placed at frame
    positions `offset .. offset + T - 1` of the stream."""

    frames: torch.Tensor
    offset: int

    @property
    def stop(self) -> int:
        return self.offset + self.frames.shape[0]


def as_clip(frames, offset: int, size: tuple[int, int]) -> Clip:
    """A `Clip` from uint8 or float frames `[T, H, W, 3]` or `[3, T, H, W]` (numpy or torch;
    uint8 in 0..255, float in [-1, 1]). uint8 frames of another size are centre-cropped and
    resized as `lvg-dataset` does (`datasets.video_io.resize_frame`); float ones must be at
    `size` already."""
    x = frames if isinstance(frames, torch.Tensor) else torch.tensor(np.asarray(frames))
    x = x.detach().cpu()
    if x.ndim == 3 and x.shape[-1] == 3:  # one image [H, W, 3]
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"a clip must be [T, H, W, 3] or [3, T, H, W], got shape {tuple(x.shape)}")
    channels_last = x.shape[-1] == 3 and not (x.shape[0] == 3 and tuple(x.shape[2:]) == size)
    if not channels_last and x.shape[0] != 3:
        raise ValueError(f"a clip must be [T, H, W, 3] or [3, T, H, W], got shape {tuple(x.shape)}")
    thwc = x if channels_last else x.permute(1, 2, 3, 0)
    if thwc.shape[0] < 1:
        raise ValueError("a clip needs at least one frame")
    if tuple(thwc.shape[1:3]) != tuple(size):
        if thwc.dtype != torch.uint8:
            raise ValueError(
                f"float frames must be at the generator's size {size[0]}x{size[1]}, got "
                f"{thwc.shape[1]}x{thwc.shape[2]} (give uint8 frames to have them resized)"
            )
        thwc = torch.from_numpy(np.stack([resize_frame(f, *size) for f in thwc.numpy()]))
    if thwc.dtype == torch.uint8:
        video = thwc.float() / 127.5 - 1
    else:
        video = thwc.float()
        if not torch.isfinite(video).all():
            raise ValueError("a clip has frames with NaN or infinite values")
    return Clip(video.permute(0, 3, 1, 2).contiguous(), int(offset))


def read_clip(path: str | os.PathLike, size: tuple[int, int], max_frames: int) -> np.ndarray:
    """uint8 `[T, H, W, 3]` frames of a video file or a folder of images (name order), each
    centre-cropped and resized to `size` as `lvg-dataset` does; at most `max_frames`.
    Raises `VideoReadError` (one line) when nothing can be read."""
    path = Path(path)
    if path.is_dir():
        files = list_files(path, IMAGE_EXTENSIONS)
        if not files:
            raise VideoReadError(path, f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
        frames = (read_image(f) for f in files)
    elif path.is_file():
        frames = read_video(path)
    else:
        raise VideoReadError(path, "no such file or folder")
    out = []
    for frame in frames:
        out.append(resize_frame(frame, *size))
        if len(out) == max_frames:
            break
    return np.stack(out)


@dataclass(frozen=True)
class Window:
    """The noise samples `[start, start + length)` that the frames of some clips read."""

    start: int
    length: int


def chunk_of(G: LowResGenerator, first: int, stop: int) -> tuple[int, int]:
    """(c, T'): the chunk of frames aligned to `G.shift_period` that holds frames
    `first .. stop - 1`."""
    p = G.shift_period
    c = (first // p) * p
    return c, -(-(stop - c) // p) * p


def chunk_noise_length(G: LowResGenerator, frames: int) -> int:
    """Noise samples an aligned chunk of `frames` frames reads (docs/projection.md)."""
    return frames + 2 * G.embedding_lead + G.noise_bank.context


def noise_window(G: LowResGenerator, ranges: Sequence[tuple[int, int]]) -> Window:
    """The window of raw noise that frames `first .. stop - 1` of every range depend on."""
    chunks = [chunk_of(G, a, b) for a, b in ranges]
    start = min(c for c, _ in chunks)
    end = max(c + chunk_noise_length(G, t) for c, t in chunks)
    return Window(start, end - start)


# ------------------------------------------------------------------------------------------------
# The prior


def whiteness_penalty(
    x: torch.Tensor, tolerance: float = 4.0, min_length: int = 16
) -> torch.Tensor:
    """How far `x` `[channels, L]` is from white N(0, 1) noise, beyond sampling variation
    (docs/projection.md#the-prior). Statistics, per channel, each scaled so that white noise
    gives a chi-square(1) value `z`: the mean (`L m^2`), the variance (`L (v - 1)^2 / 2`), and
    the lag-1 and lag-2 autocorrelations (`L r^2`) of x and of x average-pooled by 2, 4, ...
    (rescaled to unit variance; StyleGAN2's noise regulariser, in 1-D). The penalty is the mean
    of `relu(z - tolerance)`: zero for a typical white window (z > 4 has a 4.6% chance), growing
    with structure: slow drifts, periodic patterns, clumps of large values."""
    terms = [
        x.shape[1] * x.mean(1).square(),
        x.shape[1] * (x.square().mean(1) - 1).square() / 2,
    ]
    while x.shape[1] >= min_length:
        for lag in (1, 2):
            terms.append(x.shape[1] * (x[:, lag:] * x[:, :-lag]).mean(1).square())
        n = x.shape[1] // 2 * 2
        x = (x[:, :n:2] + x[:, 1:n:2]) * math.sqrt(0.5)
    return torch.relu(torch.stack(terms) - tolerance).mean()


def renormalise(x: torch.Tensor) -> torch.Tensor:
    """Each channel to mean 0 and standard deviation 1 over the window."""
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp_min(1e-8)


# ------------------------------------------------------------------------------------------------
# The projection


@dataclass
class Projection:
    """A projected noise window and what it was made from (docs/projection.md#the-file)."""

    noise: torch.Tensor  # [noise_channels, L] float32: samples start .. start + L - 1
    start: int
    base_seed: int
    clips: tuple[tuple[int, int], ...]  # (first frame, stop frame) of each projected clip
    generator: str  # generator_identity of the generator it was made with
    config_hash: str
    size: tuple[int, int]
    losses: list[float] = field(default_factory=list)  # total loss per step
    psnr: list[float] = field(default_factory=list)  # final, per clip (dB)
    lpips: list[float] = field(default_factory=list)  # final, per clip (mean over frames)
    steps: int = 0
    settings: dict = field(default_factory=dict)

    @property
    def patch(self) -> NoisePatch:
        """The noise override of the base seed's stream."""
        return NoisePatch(self.start, self.noise)

    def stream(self) -> NoiseStream:
        """The base seed's stream with the window in place."""
        return NoiseStream(self.base_seed, self.noise.shape[0], patch=self.patch)

    def metadata(self) -> dict[str, str]:
        body = {
            "start": self.start,
            "base_seed": self.base_seed,
            "clips": [list(c) for c in self.clips],
            "generator": self.generator,
            "config_hash": self.config_hash,
            "size": list(self.size),
            "losses": self.losses,
            "psnr": self.psnr,
            "lpips": self.lpips,
            "steps": self.steps,
            "settings": self.settings,
        }
        return {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "projection": json.dumps(body),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write `.safetensors` (tensor `noise`, JSON metadata) atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            save_file({"noise": self.noise.detach().cpu().float().contiguous()}, str(tmp),
                      metadata=self.metadata())  # fmt: skip
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Projection:
        """Read a projection file: tensors and JSON only, nothing executed; every field is
        checked (ProjectionError, one line)."""
        path = Path(path)
        if not path.is_file():
            raise ProjectionError(f"{path}: no such projection file")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                keys = set(f.keys())
                if meta.get("format") != FORMAT:
                    raise ProjectionError(
                        f"{path} is not a projection file (no '{FORMAT}' metadata); "
                        "make one with lvg-project"
                    )
                if keys != {"noise"}:
                    raise ProjectionError(
                        f"{path}: expected one tensor 'noise', found {sorted(keys)}; "
                        "the file is damaged or was edited"
                    )
                shape = tuple(f.get_slice("noise").get_shape())
                dtype = f.get_slice("noise").get_dtype()
                if len(shape) != 2 or dtype != "F32":
                    raise ProjectionError(
                        f"{path}: 'noise' is {dtype} {list(shape)}, expected F32 [channels, "
                        "length]; the file is damaged or was edited"
                    )
                noise = f.get_tensor("noise")
        except (SafetensorError, OSError, RuntimeError) as e:
            raise ProjectionError(
                f"{path} is truncated or not a .safetensors file ({type(e).__name__}); "
                "make it again with lvg-project"
            ) from None
        try:
            version = int(meta.get("format_version", ""))
            body = json.loads(meta["projection"])
            proj = cls(
                noise=noise,
                start=_int(body["start"]),
                base_seed=_int(body["base_seed"]),
                clips=tuple((_int(a), _int(b)) for a, b in body["clips"]),
                generator=str(body["generator"]),
                config_hash=str(body["config_hash"]),
                size=(_int(body["size"][0]), _int(body["size"][1])),
                losses=[float(v) for v in body.get("losses", [])],
                psnr=[float(v) for v in body.get("psnr", [])],
                lpips=[float(v) for v in body.get("lpips", [])],
                steps=_int(body.get("steps", 0)),
                settings=dict(body.get("settings", {})),
            )
        except (KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
            raise ProjectionError(
                f"{path}: malformed projection metadata ({type(e).__name__}: {e}); "
                "make it again with lvg-project"
            ) from None
        if version > FORMAT_VERSION:
            raise ProjectionError(
                f"{path} has projection format version {version}, newer than this code's "
                f"{FORMAT_VERSION}; upgrade longvideogan"
            )
        if not proj.clips or any(a >= b for a, b in proj.clips):
            raise ProjectionError(f"{path}: empty clip frame ranges {list(proj.clips)}")
        if not torch.isfinite(noise).all():
            raise ProjectionError(f"{path}: the noise window holds NaN or infinite values")
        return proj

    def check_generator(self, G: LowResGenerator, path: str | os.PathLike = "projection") -> None:
        """ProjectionError (one line) unless `G` is the generator this projection was made
        with: the same config hash, noise channels, window length and weights."""
        fix = "use the --lres it was projected with, or project the clip again with this one"
        if config_hash(G) != self.config_hash:
            raise ProjectionError(
                f"{path} was projected with a generator of another config (config hash "
                f"{self.config_hash[:12]}, this one {config_hash(G)[:12]}); {fix}"
            )
        channels = G.cfg.noise.noise_channels
        if self.noise.shape[0] != channels:
            raise ProjectionError(
                f"{path}: the window has {self.noise.shape[0]} noise channels, the generator "
                f"{channels}; {fix}"
            )
        if tuple(self.size) != tuple(G.size):
            raise ProjectionError(
                f"{path}: made for {self.size[0]}x{self.size[1]} frames, the generator makes "
                f"{G.size[0]}x{G.size[1]}; {fix}"
            )
        expected = noise_window(G, self.clips)
        if (self.start, self.noise.shape[1]) != (expected.start, expected.length):
            raise ProjectionError(
                f"{path}: the window is samples {self.start} + {self.noise.shape[1]}, but clips "
                f"{list(self.clips)} need {expected.start} + {expected.length}; the file is "
                "damaged or was edited"
            )
        if generator_identity(G) != self.generator:
            raise ProjectionError(
                f"{path} was projected with other weights (generator {self.generator[:12]}, "
                f"this one {generator_identity(G)[:12]}); {fix}"
            )


def loop_for(proj: Projection, loop: Loop, G: LowResGenerator) -> Loop:
    """A blend loop of `loop.period` frames in which the projected frames are seen as
    projected (docs/projection.md#loops): the cross-fade (`Loop.ramp`) is placed outside the
    clips' frames and a margin of up to `G.embedding_lead` frames around them (the embedding
    a frame reads); when the clips span more than the period, the loop starts at the first
    clip frame and shows what fits. Noise loops are returned unchanged."""
    if loop.mode != "blend":
        return loop
    first, stop = min(a for a, _ in proj.clips), max(b for _, b in proj.clips)
    free = loop.period - (stop - first)
    if free < 2:
        ramp = max(1, loop.period // 4)
        return replace(loop, anchor=first - ramp, ramp=ramp)
    margin = min(G.embedding_lead, free // 4)
    ramp = free - 2 * margin
    return replace(loop, anchor=stop + margin - loop.period, ramp=ramp)


def _int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    return value


def load_projection(path: str | os.PathLike, G: LowResGenerator | None = None) -> Projection:
    """`Projection.load`, checked against `G` when given."""
    proj = Projection.load(path)
    if G is not None:
        proj.check_generator(G, path)
    return proj


# ------------------------------------------------------------------------------------------------
# Optimisation


@dataclass(frozen=True)
class Settings:
    """Optimisation settings (docs/projection.md#optimisation)."""

    steps: int = 200
    lr: float = 0.05
    lpips_weight: float = 1.0
    mse_weight: float = 10.0
    prior_weight: float = 10.0
    renormalise: bool = True
    batch_frames: int = 64  # frames per generator call (memory), rounded up to a multiple


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).square().mean().item()
    return 10 * math.log10(4 / max(mse, 1e-12))  # frames span [-1, 1]: peak-to-peak 2


def lpips_input(x: torch.Tensor) -> torch.Tensor:
    """Frames bilinearly enlarged so that the short side is at least `MIN_LPIPS_SIDE`."""
    h, w = x.shape[-2:]
    if min(h, w) >= MIN_LPIPS_SIDE:
        return x
    f = MIN_LPIPS_SIDE / min(h, w)
    size = (math.ceil(h * f), math.ceil(w * f))
    return torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


@contextlib.contextmanager
def _deterministic(device: torch.device):
    """cuDNN in deterministic mode on CUDA (restored afterwards)."""
    if device.type != "cuda":
        yield
        return
    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


def _pieces(G: LowResGenerator, clip: Clip, batch_frames: int) -> list[tuple[int, int]]:
    """The clip's frames cut at multiples of the shift period into pieces of at most
    `batch_frames` (rounded up to the shift period) frames: (first, stop)."""
    p = G.shift_period
    size = max(p, -(-batch_frames // p) * p)
    out, a = [], clip.offset
    while a < clip.stop:
        b = min(clip.stop, (a // p) * p + size)
        out.append((a, b))
        a = b
    return out


def render(G: LowResGenerator, noise: torch.Tensor, start: int, first: int, stop: int):
    """Frames `first .. stop - 1` `[3, T, H, W]` from a noise window starting at sample
    `start` (differentiable in `noise`)."""
    c, t = chunk_of(G, first, stop)
    a = c - start
    piece = noise[:, a : a + chunk_noise_length(G, t)]
    video = G.from_noise(piece[None], t)[0]
    return video[:, first - c : stop - c]


def project(
    G: LowResGenerator,
    clips: Sequence[tuple[object, int]],
    *,
    steps: int = 200,
    seed: int = 0,
    device: str | torch.device | None = None,
    settings: Settings | None = None,
    lpips_net: str = "alex",
    progress: Callable[[int, float], None] | None = None,
) -> Projection:
    """Project `clips` ((frames, frame offset) pairs, see `as_clip`) into one noise window of
    seed `seed`'s stream (docs/projection.md). The window starts as that seed's own noise, so
    the result is a pure function of (G, clips, steps, seed, settings) on a device. `device`:
    None or "auto" picks CUDA when present; G is moved there. `progress(step, loss)` is called
    after each step. Raises WeightsError (one line naming what to install) when the LPIPS
    weights are missing, ValueError for clips that overlap or cannot be used."""
    settings = (
        Settings(steps=steps)
        if settings is None
        else Settings(**{**settings.__dict__, "steps": steps})
    )
    if steps < 0:
        raise ValueError(f"`steps` must be >= 0, got {steps}")
    dev = choose_device(device)
    lpips = load_lpips(lpips_net, dev).net if settings.lpips_weight > 0 else None
    targets = sorted((as_clip(f, o, G.size) for f, o in clips), key=lambda c: c.offset)
    if not targets:
        raise ValueError("no clip to project")
    for a, b in zip(targets, targets[1:]):
        if b.offset < a.stop:
            raise ValueError(
                f"clips overlap: frames {a.offset}..{a.stop - 1} and {b.offset}..{b.stop - 1}"
            )
    ranges = tuple((c.offset, c.stop) for c in targets)
    window = noise_window(G, ranges)
    base = NoiseStream(seed, G.cfg.noise.noise_channels)
    G = G.to(dev)
    flags = [p.requires_grad for p in G.parameters()]
    G.requires_grad_(False)
    noise = base.window(window.start, window.length).to(dev).requires_grad_(True)
    optim = torch.optim.Adam([noise], lr=settings.lr, betas=(0.9, 0.999))
    pieces = [(clip, a, b) for clip in targets for a, b in _pieces(G, clip, settings.batch_frames)]
    total_frames = sum(c.frames.shape[0] for c in targets)
    losses: list[float] = []
    try:
        with _deterministic(dev):
            for step in range(settings.steps):
                t = step / max(1, settings.steps)
                lr = settings.lr * min(1.0, t / 0.05) * 0.5 * (1 + math.cos(math.pi * t))
                lr = max(lr, settings.lr * 0.01)
                for group in optim.param_groups:
                    group["lr"] = lr
                optim.zero_grad(set_to_none=True)
                value = 0.0
                for clip, a, b in pieces:
                    fake = render(G, noise, window.start, a, b).transpose(0, 1)  # [T, 3, H, W]
                    real = clip.frames[a - clip.offset : b - clip.offset].to(dev)
                    share = fake.shape[0] / total_frames
                    loss = settings.mse_weight * (fake - real).square().mean() * share
                    if lpips is not None:
                        d = lpips(lpips_input(fake), lpips_input(real)).mean()
                        loss = loss + settings.lpips_weight * d * share
                    loss.backward()
                    value += loss.item()
                if settings.prior_weight > 0:
                    prior = settings.prior_weight * whiteness_penalty(noise)
                    prior.backward()
                    value += prior.item()
                optim.step()
                if settings.renormalise:
                    with torch.no_grad():
                        noise.copy_(renormalise(noise))
                losses.append(value)
                if progress is not None:
                    progress(step, value)
            final = noise.detach()
            psnr, dist = [], []
            with torch.no_grad():
                for clip in targets:
                    fake = torch.cat(
                        [render(G, final, window.start, a, b) for a, b in
                         _pieces(G, clip, settings.batch_frames)], dim=1,
                    ).transpose(0, 1)  # fmt: skip
                    real = clip.frames.to(dev)
                    psnr.append(_psnr(fake, real))
                    if lpips is not None:
                        dist.append(lpips(lpips_input(fake), lpips_input(real)).mean().item())
    finally:
        for p, f in zip(G.parameters(), flags):
            p.requires_grad_(f)
    return Projection(
        noise=final.float().cpu(),
        start=window.start,
        base_seed=seed,
        clips=ranges,
        generator=generator_identity(G),
        config_hash=config_hash(G),
        size=tuple(G.size),
        losses=losses,
        psnr=psnr,
        lpips=dist,
        steps=settings.steps,
        settings={k: v for k, v in settings.__dict__.items()},
    )


def reconstruct(G: LowResGenerator, proj: Projection, first: int, stop: int) -> torch.Tensor:
    """Frames `first .. stop - 1` `[3, T, H, W]` of the projection's window (no gradients);
    the same frames `lvg-generate --from` plays, for frames the window covers."""
    dev = next(G.parameters()).device
    with torch.no_grad():
        return render(G, proj.noise.to(dev), proj.start, first, stop).float().cpu()
