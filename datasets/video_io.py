"""Video files in: decoding, crop-to-aspect + Lanczos resizing (docs/datasets.md#resizing).
Video files out: `torch_utils.frames.Mp4Writer`."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
from PIL import Image

VIDEO_EXTENSIONS = (".avi", ".mkv", ".mov", ".mp4", ".mpg", ".mpeg", ".webm", ".wmv")
IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
TRUNCATION_SLACK = 0.5  # seconds a video may end before its stated duration (edit lists, B-frames)


class VideoReadError(Exception):
    """A source video (or frame image) that cannot be read; `reason` says why in a few words."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a clip dir, frame name or manifest video path
    (docs/datasets.md#names-and-paths), or None: it must be a relative, normalised POSIX path of
    printable characters (no leading `/`, drive letter, backslash, empty, `.` or `..` component,
    control character or undecodable byte). A lone `.` (images directly in SRC) is allowed."""
    if name == ".":
        return None
    if not name:
        return "is empty"
    bad = next((c for c in name if c == "\\" or unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        what = "a backslash" if bad == "\\" else f"the character {ascii(bad)[1:-1]}"
        return f"contains {what}"
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "is absolute"
    parts = name.split("/")
    if ".." in parts:
        return "has a '..' component"
    if "" in parts or "." in parts:
        return "is not normalised (an empty or '.' component)"
    return None


def list_files(root: str | os.PathLike, extensions: tuple[str, ...]) -> list[Path]:
    """All files under `root` (recursive) whose suffix is one of `extensions` (any case), sorted."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in extensions and p.is_file())


def av_reason(error: Exception) -> str:
    """A PyAV/OS error in a few words, for `VideoReadError`."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def read_video(
    path: str | os.PathLike, trim_start: float = 0.0, trim_end: float = 0.0
) -> Iterator[np.ndarray]:
    """Decode every frame of the first video stream as RGB uint8 `[H, W, 3]` (docs/datasets.md).

    Native frame rate (no frames dropped or duplicated). `trim_start` / `trim_end` drop that many
    seconds at the start / end, measured from the stream's first timestamp. Raises
    `VideoReadError` if the file cannot be opened, has no video stream, fails to decode, yields no
    frame, or stops more than `TRUNCATION_SLACK` seconds before the stream's stated duration (a
    truncated file with its index at the start decodes "cleanly" up to the cut).
    """
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        raise VideoReadError(path, f"cannot open ({av_reason(e)})") from e
    with container:
        if not container.streams.video:
            raise VideoReadError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        t0 = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        stream_duration = float(stream.duration * stream.time_base) if stream.duration else None
        end_time = float("inf")
        if trim_end > 0:
            duration = stream_duration or (container.duration or 0) / av.time_base
            if not duration:
                raise VideoReadError(path, "unknown duration, cannot apply trim_end")
            end_time = duration - trim_end

        num_frames, last_time = 0, None
        try:
            if trim_start > 0:
                container.seek(round((t0 + trim_start) / stream.time_base), stream=stream)
            for frame in container.decode(stream):
                t = None if frame.time is None else frame.time - t0
                if t is not None and t < trim_start:
                    continue
                if t is not None and t > end_time:
                    break
                num_frames, last_time = num_frames + 1, t
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as e:
            reason = f"decoding failed after {num_frames} frames ({av_reason(e)})"
            raise VideoReadError(path, reason) from e
        if num_frames == 0:
            raise VideoReadError(path, "no frames decoded")
        if stream_duration and last_time is not None:
            expected_end = min(end_time, stream_duration)
            if last_time < expected_end - TRUNCATION_SLACK:
                reason = f"truncated (frames stop at {last_time:.2f} s of {expected_end:.2f} s)"
                raise VideoReadError(path, reason)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One image file as RGB uint8 `[H, W, 3]`; raises `VideoReadError` if it cannot be decoded."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as e:  # PIL.UnidentifiedImageError and truncated-file errors are OSErrors
        raise VideoReadError(path, f"cannot read image {Path(path).name} ({e})") from e


def crop_box(src_height: int, src_width: int, height: int, width: int) -> tuple[int, int, int, int]:
    """Centred crop `(x0, y0, x1, y1)` of the source with the target aspect ratio
    (docs/datasets.md#resizing).

    Crops whichever dimension is relatively larger; keeps the whole frame if aspects match.
    """
    if src_height * width > src_width * height:  # too tall: crop rows
        crop_height = round(src_width * height / width)
        y0 = (src_height - crop_height) // 2
        return 0, y0, src_width, y0 + crop_height
    if src_width * height > src_height * width:  # too wide: crop columns
        crop_width = round(src_height * width / height)
        x0 = (src_width - crop_width) // 2
        return x0, 0, x0 + crop_width, src_height
    return 0, 0, src_width, src_height


def resize_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop to the aspect of `height x width`, then PIL LANCZOS resize (docs/datasets.md)."""
    if frame.shape[:2] == (height, width):
        return frame
    image = Image.fromarray(frame).crop(crop_box(frame.shape[0], frame.shape[1], height, width))
    return np.asarray(image.resize((width, height), Image.LANCZOS))
