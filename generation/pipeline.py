"""Streaming video generation: noise stream -> low-res chunks -> super-resolution segments ->
frames (docs/generation.md#streaming-pipeline).

The original computes the whole low-res video in one call (memory grows with the length) and
only segments the super-resolution. Here both stages stream:

* The low-res generator runs on 32-aligned chunks of `batch_frames` frames. A chunk starting at
  frame c with T frames reads the embedding at positions c - 256 .. c + T + 255 (see
  `generation.timeline`), and its output frames are exactly frames c .. c + T - 1 of the
  infinite video, whatever the chunk size (exact 32-frame shift equivariance).
* The super-resolution network is frame-wise with a 4-frame low-res context on each side
  (docs/networks.md#conditioning): low-res frames are buffered, and they go through it in
  calls of `sres_batch` frames in all (all videos together).

Peak memory therefore depends on `batch_frames` and `sres_batch`, not on the video's length,
and any range of frames (frame 10,000,000, or negative ones) can be produced directly. The
videos of several seeds are computed side by side, so memory grows with their number;
`lvg-generate` streams the seeds one at a time (docs/generation.md#many-seeds).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from generation.noise_stream import NoisePatch
from generation.timeline import MAX_POSITION, Loop, Timeline, TimelineEmbedding, Transition
from networks.contract import SuperResolution, check_chain
from networks.lres_generator import LowResGenerator
from torch_utils.frames import to_uint8_hwc
from torch_utils.misc import PRECISIONS, module_device

DEFAULT_BATCH_FRAMES = 128
DEFAULT_SRES_BATCH = 8
# Upper limits (docs/generation.md#limits): the networks' activations grow with the two batch
# sizes; an mp4 counts its frames in 32 bits.
MAX_BATCH_FRAMES = 1024
MAX_SRES_BATCH = 64
MAX_FRAMES = 2**31 - 1


def check_frame_range(start_frame: int, num_frames: int) -> None:
    """ValueError unless frames `start_frame .. start_frame + num_frames - 1` are a video
    `generate_video` can make: 1 .. 2^31 - 1 frames within -2^52 .. 2^52
    (docs/generation.md#limits)."""
    if not 1 <= num_frames <= MAX_FRAMES:
        raise ValueError(f"`num_frames` must be between 1 and {MAX_FRAMES}, got {num_frames}")
    if start_frame < -MAX_POSITION or start_frame + num_frames > MAX_POSITION:
        raise ValueError(
            f"`start_frame` must keep the video within frames -2^52 .. 2^52 ({MAX_POSITION}), "
            f"got {start_frame} with {num_frames} frames"
        )


def check_batch_sizes(batch_frames: int, sres_batch: int) -> None:
    """ValueError unless 1 <= `batch_frames` <= 1024 and 1 <= `sres_batch` <= 64."""
    if not 1 <= batch_frames <= MAX_BATCH_FRAMES:
        raise ValueError(
            f"`batch_frames` must be between 1 and {MAX_BATCH_FRAMES}, got {batch_frames}"
        )
    if not 1 <= sres_batch <= MAX_SRES_BATCH:
        raise ValueError(f"`sres_batch` must be between 1 and {MAX_SRES_BATCH}, got {sres_batch}")


# ------------------------------------------------------------------------------------------------
# Networks


def _autocast(device: torch.device, precision: str):
    if precision in ("auto", "float32", "mixed"):  # the low-res generator runs in float32
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, precision))


def compile_generators(
    lres: LowResGenerator, sres: SuperResolution | None, backend: str = "inductor"
) -> tuple[LowResGenerator, SuperResolution | None]:
    """The networks with their per-chunk work under `torch.compile` (`lvg-generate --compile`,
    docs/networks.md#compiling): the low-res generator's `synthesis` (the mapping and noise
    bank stay eager: under 2 % of its time) and the SR network's forward pass. Each new chunk
    length (the last chunk is usually shorter) or batch compiles once more. `lres` is changed in
    place (its `synthesis` attribute); the SR network is wrapped, its contract unchanged.
    `backend`: torch.compile's."""
    lres.synthesis = torch.compile(lres.synthesis, backend=backend)
    return lres, (None if sres is None else torch.compile(sres, backend=backend))


# ------------------------------------------------------------------------------------------------
# Streaming stages


@dataclass
class Segment:
    """Consecutive frames `start .. start + k - 1` of n videos, float32 on the CPU, about [-1, 1].

    `video` `[n, 3, k, H, W]` is the final output (super-resolved if there is an SR network);
    `lres` `[n, 3, k, h, w]` holds the low-res frames aligned with it (the same as `video`
    without SR)."""

    start: int
    video: torch.Tensor
    lres: torch.Tensor

    @property
    def stop(self) -> int:
        return self.start + self.video.shape[2]


def lres_segments(
    lres: LowResGenerator,
    timelines: Sequence[Timeline],
    start: int,
    stop: int,
    batch_frames: int = DEFAULT_BATCH_FRAMES,
    precision: str = "auto",
) -> Iterator[Segment]:
    """Low-res frames `start .. stop - 1` of each timeline, in 32-aligned chunks of
    `batch_frames` (rounded up to a multiple of 32) frames."""
    tf = lres.shift_period
    lead = lres.embedding_lead  # embedding positions before / after a chunk's frames
    chunk = max(tf, -(-batch_frames // tf) * tf)
    device = module_device(lres)
    embeddings = [TimelineEmbedding(t, lres.noise_bank, lead) for t in timelines]
    c = (start // tf) * tf
    while c < stop:
        frames = min(chunk, -(-(stop - c) // tf) * tf)
        emb = torch.stack([e(c - lead, frames + 2 * lead) for e in embeddings])
        with torch.no_grad(), _autocast(device, precision):
            ws = lres.latents_from_embedding(emb, frames)
            video = lres.synthesis(ws, frames)
        a, b = max(start, c), min(stop, c + frames)
        out = video[:, :, a - c : b - c].float().cpu()
        yield Segment(a, out, out)
        c += frames


def _sres_call(
    sres: SuperResolution,
    clip: torch.Tensor,
    z: torch.Tensor,
    precision: str,
    max_frames: int,
) -> torch.Tensor:
    """clip `[n, 3, k + 2 ctx, h, w]`, per-frame latents z `[n, k, z_dim]` -> `[n, 3, k, H, W]`,
    in network calls of at most `max_frames` output frames (n * k) where k allows."""
    group = max(1, max_frames // z.shape[1])
    if z.shape[0] <= group:
        return _sres_group(sres, clip, z, precision)
    parts = [
        _sres_group(sres, clip[i : i + group], z[i : i + group], precision)
        for i in range(0, z.shape[0], group)
    ]
    return torch.cat(parts)


def _sres_group(
    sres: SuperResolution, clip: torch.Tensor, z: torch.Tensor, precision: str
) -> torch.Tensor:
    device = module_device(sres)
    n, k = z.shape[:2]
    with torch.no_grad():
        if torch.equal(z, z[:, :1].expand_as(z)):  # one latent per video: one plain call
            out = sres(clip.to(device), z=z[:, 0].to(device), precision=precision)
            return out.float().cpu()
        # Latents change from frame to frame (a transition): one 2 ctx + 1 window per frame.
        win = clip.shape[2] - k + 1
        windows = clip.unfold(2, win, 1).permute(0, 2, 1, 5, 3, 4)  # [n, k, 3, win, h, w]
        windows = windows.reshape(n * k, *windows.shape[2:])
        out = sres(windows.to(device), z=z.reshape(n * k, -1).to(device), precision=precision)
        return out.float().cpu().reshape(n, k, *out.shape[1:]).squeeze(3).transpose(1, 2)


def sres_segments(
    sres: SuperResolution,
    lr: Iterator[Segment],
    timelines: Sequence[Timeline],
    start: int,
    stop: int,
    sres_batch: int = DEFAULT_SRES_BATCH,
    precision: str = "auto",
) -> Iterator[Segment]:
    """Super-resolve frames `start .. stop - 1` from low-res segments covering
    `start - ctx .. stop + ctx - 1`, `sres_batch` frames per network call in all: segments of
    `sres_batch // n` frames for n timelines (at least one; more timelines than `sres_batch`
    are split over several calls) (docs/networks.md#per-video-latent)."""
    ctx = sres.context
    per_segment = max(1, sres_batch // len(timelines))
    buf: torch.Tensor | None = None
    nxt = start  # next output frame; buf holds low-res frames nxt - ctx ...
    for seg in lr:
        if buf is None and seg.start != start - ctx:
            raise ValueError(f"low-res frames must start at {start - ctx}, got {seg.start}")
        buf = seg.video if buf is None else torch.cat([buf, seg.video], dim=2)
        last = seg.stop >= stop + ctx
        while nxt < stop:
            ready = buf.shape[2] - 2 * ctx
            k = min(per_segment, ready, stop - nxt)
            if k < 1 or (k < per_segment and k < stop - nxt and not last):
                break
            frames = torch.arange(nxt, nxt + k)
            z = torch.stack([t.sres_latents(frames, sres.z_dim) for t in timelines])
            out = _sres_call(sres, buf[:, :, : k + 2 * ctx], z, precision, sres_batch)
            yield Segment(nxt, out, buf[:, :, ctx : ctx + k])
            buf, nxt = buf[:, :, k:], nxt + k


def generate_segments(
    lres: LowResGenerator,
    sres: SuperResolution | None,
    timelines: Sequence[Timeline],
    start: int,
    stop: int,
    batch_frames: int = DEFAULT_BATCH_FRAMES,
    sres_batch: int = DEFAULT_SRES_BATCH,
    precision: str = "auto",
) -> Iterator[Segment]:
    """Frames `start .. stop - 1` of every timeline, streamed (the low-level API)."""
    if sres is None:
        yield from lres_segments(lres, timelines, start, stop, batch_frames, precision)
        return
    ctx = sres.context
    lr = lres_segments(lres, timelines, start - ctx, stop + ctx, batch_frames, precision)
    yield from sres_segments(sres, lr, timelines, start, stop, sres_batch, precision)


# ------------------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True)
class Frame:
    """Frame `index` of n videos: uint8 `[n, H, W, 3]` or float32 `[n, 3, H, W]` (about
    [-1, 1]); `lres` is the aligned low-res frame when an SR network is used and asked for."""

    index: int
    video: np.ndarray | torch.Tensor
    lres: np.ndarray | torch.Tensor | None = None


def make_timelines(
    seeds: int | Sequence[int],
    loop: int | Loop | None = None,
    transition: Transition | None = None,
    time_factor: int = 32,
    patch: NoisePatch | None = None,
) -> list[Timeline]:
    """One validated `Timeline` per seed (ValueError with a one-line reason otherwise);
    `patch` overrides part of the seeds' noise (a projection, docs/projection.md)."""
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("no seed given")
    loop = Loop(loop) if isinstance(loop, int) else loop
    timelines = [Timeline(s, loop, transition, patch) for s in seeds]
    for t in timelines:
        t.validate(time_factor)
    return timelines


def generate_video(
    lres: LowResGenerator,
    sres: SuperResolution | None = None,
    seed: int | Sequence[int] = 0,
    num_frames: int = 301,
    *,
    start_frame: int = 0,
    loop: int | Loop | None = None,
    transition: Transition | None = None,
    batch_frames: int = DEFAULT_BATCH_FRAMES,
    sres_batch: int = DEFAULT_SRES_BATCH,
    precision: str = "auto",
    output: Literal["uint8", "float"] = "uint8",
    keep_lres: bool = False,
    patch: NoisePatch | None = None,
) -> Iterator[Frame]:
    """Frames `start_frame .. start_frame + num_frames - 1` of the video of each seed (n seeds
    give n videos side by side in every `Frame`), computed lazily with bounded memory.

        G = networks.load("lres.safetensors", kind="lres_generator")
        for frame in generate_video(G, seed=7, num_frames=300):
            frame.video[0]  # [36, 64, 3] uint8

    Frame f of a seed is the same whatever the start, length or chunk sizes (float rounding
    aside; see `generation.timeline`). `loop=P` makes frame t equal frame t + P;
    `transition=Transition(seed2, at, over)` crosses over to seed2's world. The networks run
    where they are (move them to the device first). `precision`: "auto" (float32 for the low-res
    generator; the SR network's own default, the original's float16 layers on CUDA), or
    "float32", "bfloat16", "float16" (autocast for the low-res generator; passed on to the SR
    network's `precision` argument). `patch` replaces part of the seed's noise: a projection's
    window (`Projection.patch`, docs/projection.md)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if output not in ("uint8", "float"):
        raise ValueError(f"output must be 'uint8' or 'float', got {output!r}")
    check_frame_range(start_frame, num_frames)
    check_batch_sizes(batch_frames, sres_batch)
    check_chain(lres, sres)
    timelines = make_timelines(seed, loop, transition, lres.shift_period, patch)
    stop = start_frame + num_frames
    segments = generate_segments(
        lres, sres, timelines, start_frame, stop, batch_frames, sres_batch, precision
    )
    convert = to_uint8_hwc if output == "uint8" else (lambda x: x)
    for seg in segments:
        video = convert(seg.video.transpose(1, 2))  # uint8 [n, k, H, W, 3] or [n, k, 3, H, W]
        low = convert(seg.lres.transpose(1, 2)) if keep_lres and sres is not None else None
        for i in range(video.shape[1]):
            yield Frame(seg.start + i, video[:, i], None if low is None else low[:, i])
