"""Frames as files show them: uint8 conversion, the layout of video grids and the streaming
H.264 writer, shared by the sample videos of training, `lvg-generate` and the metrics
(docs/generation.md#writing-frames)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from torch_utils.misc import AtomicTarget, StreamingWriter

# Frame rates an mp4 stores as written (docs/generation.md#frame-rate): measured by writing and
# reading back with PyAV/libx264, 0.01 .. 1,000,000 fps round-trip, 1e-4 is stored as 24 and 1e9
# gives a zero duration; beyond 1000 fps players drop frames, so that is the limit.
MIN_FPS, MAX_FPS = 0.01, 1000.0
FPS_DENOMINATOR = 1001  # the rate is stored as a fraction with at most this denominator
FPS_TOLERANCE = 1e-6  # relative; a rate no such fraction matches this closely is refused


def mp4_rate(fps: float) -> Fraction:
    """The frame rate an mp4 written at `fps` stores (and players report): the nearest fraction
    with a denominator of at most 1001 (30000/1001 for 29.97003). ValueError (one line) for a
    rate outside [0.01, 1000] fps or one that no such fraction matches to 1e-6
    (docs/generation.md#frame-rate)."""
    if not (math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
        raise ValueError(
            f"`fps` must be between {MIN_FPS:g} and {MAX_FPS:g} frames per second, got {fps:g}"
        )
    rate = Fraction(fps).limit_denominator(FPS_DENOMINATOR)
    if abs(float(rate) - fps) > FPS_TOLERANCE * fps:
        raise ValueError(
            f"`fps` {fps:g} cannot be stored in an mp4 (a fraction with a denominator of at most "
            f"{FPS_DENOMINATOR}); the nearest that can is {float(rate):.9g} ({rate})"
        )
    return rate


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """Frames in [-1, 1] -> uint8 as the original writes and evaluates them:
    clamp(x * 127.5 + 128, 0, 255), truncated."""
    return (video.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def to_uint8_hwc(video: torch.Tensor) -> np.ndarray:
    """`[..., 3, H, W]` in [-1, 1] -> `[..., H, W, 3]` uint8 images."""
    return to_uint8(video).movedim(-3, -1).cpu().numpy()


def display_factor(height: int, width: int, multiple: int = 16) -> int:
    """The smallest integer upscale after which both edges are multiples of `multiple`
    (36x64 -> x4 = 144x256)."""
    a, b = multiple // math.gcd(height, multiple), multiple // math.gcd(width, multiple)
    return a * b // math.gcd(a, b)


def nearest_upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of `[..., H, W, C]` images by an integer factor."""
    if factor == 1:
        return frames
    return frames.repeat(factor, axis=-3).repeat(factor, axis=-2)


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns): rows = the largest divisor of n that is <= sqrt(n)."""
    rows = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return rows, n // rows


def make_grid(frames: np.ndarray) -> np.ndarray:
    """`[..., n, H, W, C]` -> `[..., rows * H, cols * W, C]`: the n images in one grid, in
    row-major order."""
    *lead, n, h, w, c = frames.shape
    rows, cols = grid_shape(n)
    grid = np.swapaxes(frames.reshape(*lead, rows, cols, h, w, c), -4, -3)
    return grid.reshape(*lead, rows * h, cols * w, c)


def video_grid(videos: torch.Tensor, multiple: int = 16) -> np.ndarray:
    """`[n, 3, t, h, w]` in [-1, 1] -> uint8 `[t, H, W, 3]`: the videos in one grid,
    nearest-upscaled so that both edges are multiples of `multiple`, as the original writes its
    samples (36x64 videos at 144x256)."""
    grid = make_grid(to_uint8_hwc(videos.permute(2, 0, 1, 3, 4)))
    return nearest_upscale(grid, display_factor(*grid.shape[1:3], multiple))


class Mp4Writer(StreamingWriter):
    """Streaming H.264 (yuv420p) mp4 writer: frames are encoded as they arrive, so memory does not
    grow with the video's length. Atomic: frames go to a temporary file beside `path`, fsynced
    and renamed to `path` by `close()` (`torch_utils.misc.AtomicTarget`); `abort()` (or leaving the `with` block by an exception) deletes it.

    The index (moov atom) is placed at the start of the file ("faststart") for streaming players.
    `crf` is x264's quality knob: 0 lossless, 18 visually lossless, 23 default, 51 worst. Height
    and width must be even (a 4:2:0 requirement). The file's frame rate is `mp4_rate(fps)`
    (`rate`); an `fps` it refuses raises ValueError before anything is written.

        with Mp4Writer("out.mp4", fps=30) as writer:
            for frame in frames:  # RGB uint8 [H, W, 3]
                writer.write(frame)
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, crf: int = 18):
        self.path = Path(path)
        self.fps, self.crf = fps, crf
        self.rate = mp4_rate(fps)
        self._target = AtomicTarget(self.path, hidden=False)
        self.tmp_path = self._target.tmp
        self.num_frames = 0
        self._stream = None
        self._container = av.open(
            str(self.tmp_path), "w", format="mp4", options={"movflags": "+faststart"}
        )

    def write(self, frame: np.ndarray) -> None:
        """Encode one RGB uint8 `[H, W, 3]` frame (all frames must have the first one's size)."""
        if self._container is None:
            raise ValueError(f"{self.path}: the writer is closed")
        if self._stream is None:
            height, width = frame.shape[:2]
            if height % 2 or width % 2:
                self.abort()
                raise ValueError(f"H.264 mp4 needs even height and width, got {height}x{width}")
            stream = self._container.add_stream("libx264", rate=self.rate)
            stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
            stream.options = {"crf": str(self.crf)}
            self._stream = stream
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        self._container.mux(self._stream.encode(video_frame))
        self.num_frames += 1

    def close(self) -> Path:
        """Flush the encoder and move the finished file to `path`; returns `path`."""
        if self._container is None:
            raise ValueError(f"{self.path}: the writer is already closed")
        try:
            if self._stream is None:
                raise ValueError("write_mp4 got no frames")
            self._container.mux(self._stream.encode())
            self._container.close()
            self._container = None
            self._target.commit()
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Stop without writing `path` (removes the temporary file); safe to call twice."""
        if self._container is not None:
            container, self._container = self._container, None
            try:
                container.close()
            except (av.FFmpegError, OSError, ValueError):
                pass
        self._target.discard()


def write_mp4(
    path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 30.0, crf: int = 18
) -> Path:
    """Encode RGB uint8 `[H, W, 3]` frames as an H.264 mp4 (see `Mp4Writer`); atomic (temp file,
    then rename). Returns the written path."""
    with Mp4Writer(path, fps=fps, crf=crf) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path
