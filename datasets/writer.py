"""The dataset-writing engine behind `lvg-dataset from-videos / from-frames / synthetic`
(docs/datasets.md): clip sources, resizing and JPEG encoding on threads, sharding and writing.

Library code: bad arguments raise `ValueError`s that name the parameter in backticks (e.g.
"`res` '36x' is not HxW ..."); `datasets.cli` turns those names into its flags.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, Union

import numpy as np
import tqdm

from datasets.shards import (
    Resolution,
    ResolutionLike,
    ShardWriter,
    encode_jpeg,
    parse_resolution,
    shard_path,
    write_clip,
)
from datasets.video_io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoReadError,
    list_files,
    name_problem,
    read_image,
    read_video,
    resize_frame,
)

if TYPE_CHECKING:
    from datasets.cluster import RayCluster
    from datasets.curate import Shot

# A source frame: one RGB uint8 array of any size (resized to every resolution), or one array per
# resolution already at that size (the synthetic benchmark renders each resolution directly).
SourceFrame = Union[np.ndarray, Mapping[Resolution, np.ndarray]]
MAX_WORKERS = 256  # threads for resizing and encoding; each holds 2 frames in flight
SYNTHETIC_CHUNK = 64  # synthetic frames rendered at a time (memory does not grow with `num_frames`)
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class ClipSource:
    """One clip to write: its clip_dir in the shard, what to name in warnings, and its frames.
    `problem`: why it is skipped without reading it (a name that cannot be a clip dir)."""

    clip_dir: str
    label: str
    frames: Callable[[], Iterator[tuple[str, SourceFrame]]]
    problem: str | None = None


@dataclass
class EncodedClip:
    """One source's frames, encoded at every resolution (`encode_clip`), or why it failed."""

    frames: list[tuple[str, dict[Resolution, bytes]]]
    error: str | None = None


class NothingWritten(ValueError):
    """Every source of a partition was skipped, so no shard was written."""


@dataclass
class WriteSummary:
    """What `write_partition` did."""

    written: int
    skipped: int
    frames: int
    paths: list[Path]

    def __str__(self) -> str:
        return (
            f"{self.written} videos written, {self.skipped} skipped ({self.frames} frames) -> "
            + ", ".join(str(p) for p in self.paths)
        )


# ---------------------------------------------------------------------------------------------------
# The shared writing path of all three commands


def encode_frame(frame: SourceFrame, resolutions: list[Resolution]) -> dict[Resolution, bytes]:
    """Resize (crop to aspect + Lanczos, docs/datasets.md#resizing) and JPEG-encode one frame at
    every resolution."""
    return {
        res: encode_jpeg(resize_frame(frame[res] if isinstance(frame, Mapping) else frame, *res))
        for res in resolutions
    }


def _ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """`map(fn, items)` on `workers` threads, in order, with a bounded read-ahead.

    PIL releases the GIL while resizing and encoding, so threads give a real speed-up.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def encode_clip(source: ClipSource, resolutions: list[Resolution], workers: int = 1) -> EncodedClip:
    """Read and encode every frame of `source` on `workers` threads: a Ray task of
    `write_partition` (docs/datasets.md#running-on-a-cluster-ray). A source that cannot be read
    gives its reason instead of frames, and is skipped as a local run skips it."""
    if source.problem:
        return EncodedClip([], source.problem)
    try:
        items = source.frames()
        encoded = _ordered_map(lambda f: (f[0], encode_frame(f[1], resolutions)), items, workers)
        return EncodedClip(list(encoded))
    except VideoReadError as e:
        return EncodedClip([], e.reason)


def check_resolutions(res: Iterable[ResolutionLike]) -> list[Resolution]:
    """The distinct resolutions, smallest first; ValueError naming `res` if one is not HxW."""
    try:
        return sorted({parse_resolution(value) for value in res})
    except ValueError as e:
        raise ValueError(f"`res` {e}") from None


def partition_sources(
    sources: list[ClipSource], num_partitions: int, partition: int
) -> list[ClipSource]:
    """Chunk `partition` of `num_partitions` (`np.array_split` of the sorted sources); ValueError
    for a bad partition or two sources with one clip_dir."""
    if num_partitions < 1:
        raise ValueError(f"`num_partitions` must be >= 1, got {num_partitions}")
    if not 0 <= partition < num_partitions:
        raise ValueError(
            f"`partition` {partition} is out of range for `num_partitions` {num_partitions}; "
            f"use 0..{num_partitions - 1}"
        )
    seen: dict[str, str] = {}
    for source in sources:
        if source.clip_dir in seen:
            raise ValueError(
                f"{seen[source.clip_dir]} and {source.label} would both be clip "
                f"{source.clip_dir!r}; rename or move one of them"
            )
        seen[source.clip_dir] = source.label
    chunks = np.array_split(np.arange(len(sources)), num_partitions)
    return [sources[i] for i in chunks[partition]]


def _warn(message: str) -> None:
    tqdm.tqdm.write(message, file=sys.stderr)


def write_partition(
    dst: str,
    resolutions: list[Resolution],
    sources: list[ClipSource],
    num_partitions: int,
    partition: int,
    workers: int,
    warn: Callable[[str], None] = _warn,
    progress: bool = True,
    cluster: RayCluster | None = None,
) -> WriteSummary:
    """Write shard `partition_<partition>` of `dst` at every resolution in one pass
    (docs/datasets.md#sharding).

    Sources are split with `np.array_split` into `num_partitions` chunks. A source that fails to
    read (or whose name cannot be a clip dir, docs/datasets.md#names-and-paths) is skipped with a
    one-line `warn`ing. ValueError if a shard already exists or the partition gets no source;
    `NothingWritten` (no shard is left) if every source is skipped.

    With a Ray `cluster`, its workers read and encode the sources (`encode_clip`, one CPU per
    source, paths in the sources absolute) and this process writes them in the same order, so
    the shard is byte for byte the local one (docs/datasets.md#running-on-a-cluster-ray).
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"`workers` must be between 1 and {MAX_WORKERS}, got {workers}")
    total = len(sources)
    sources = partition_sources(sources, num_partitions, partition)
    if not sources:
        raise ValueError(
            f"`partition` {partition} of `num_partitions` {num_partitions} gets none of the "
            f"{total} clips; use `num_partitions` <= {total}"
        )
    shard_name = f"partition_{partition:04d}"
    paths = {res: shard_path(dst, res, shard_name) for res in resolutions}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing:
        raise ValueError(
            f"{', '.join(existing)} already exists; choose another `dst` or delete it first"
        )

    summary = WriteSummary(0, 0, 0, list(paths.values()))
    skipped: list[str] = []
    with ExitStack() as stack:
        writers = {res: stack.enter_context(ShardWriter(path)) for res, path in paths.items()}
        remote: Generator[EncodedClip | None, None, None] = (
            cluster.imap(encode_clip, [(source, resolutions) for source in sources])
            if cluster is not None
            else (None for _ in sources)
        )
        stack.callback(remote.close)  # an early exit cancels the tasks still in flight
        bar = tqdm.tqdm(sources, desc=shard_name, unit="video", disable=not progress)
        for source, clip in zip(bar, remote):
            try:
                if source.problem:
                    raise VideoReadError(source.label, source.problem)
                if clip is None:  # read and encoded here
                    encoded: Iterable = _ordered_map(
                        lambda item: (item[0], encode_frame(item[1], resolutions)),
                        source.frames(),
                        workers,
                    )
                elif clip.error is not None:
                    raise VideoReadError(source.label, clip.error)
                else:
                    encoded = clip.frames
                summary.frames += write_clip(writers, source.clip_dir, encoded)
                summary.written += 1
            except VideoReadError as e:
                summary.skipped += 1
                skipped.append(f"{source.label} ({e.reason})")
                warn(f"warning: skipped {source.label}: {e.reason}")
        if not summary.written:  # raised inside the block: the writers discard their temp files
            listed = ", ".join(skipped[:3]) + (
                f", and {len(skipped) - 3} more" if len(skipped) > 3 else ""
            )
            raise NothingWritten(
                f"all {len(skipped)} videos were skipped: {listed}; nothing was written"
            )
    return summary


# ---------------------------------------------------------------------------------------------------
# Sources


def printable(text: str) -> str:
    """`text` for a one-line message: as it is, or `ascii`-escaped if it holds control
    characters or undecodable bytes (a hostile file name cannot break the line)."""
    return text if text.isprintable() else ascii(text)


def _named_source(clip_dir: str, path: Path, frames, problem: str | None = None) -> ClipSource:
    """A `ClipSource`; one whose clip_dir cannot be a zip path (docs/datasets.md#names-and-paths)
    gets a `problem`, so it is skipped with a warning; `printable` keeps that warning one line."""
    clip_problem = name_problem(clip_dir)
    if clip_problem:
        problem = f"its clip dir {clip_dir!r} {clip_problem}; rename it"
    label = printable(str(path))
    return ClipSource(clip_dir, label, frames, problem)


def video_sources(src: Path, trim_start: float = 0.0, trim_end: float = 0.0) -> list[ClipSource]:
    """Every video under `src`; clip_dir = path relative to `src` without extension
    (docs/datasets.md#on-disk-format). A video whose clip dir would not be a plain relative path
    (e.g. `...mp4` -> `..`) is skipped with a warning (docs/datasets.md#names-and-paths)."""

    def frames(path: Path) -> Iterator[tuple[str, SourceFrame]]:
        for i, frame in enumerate(read_video(path, trim_start, trim_end)):
            yield f"frame_{i:06d}.jpg", frame

    return [
        _named_source(
            path.relative_to(src).with_suffix("").as_posix(), path, lambda p=path: frames(p)
        )
        for path in list_files(src, VIDEO_EXTENSIONS)
    ]


def manifest_sources(
    src: Path, shots: list[Shot], manifest: str = "the manifest"
) -> list[ClipSource]:
    """The kept shots of a curate manifest; clip_dir = `Shot.name`, i.e. the video path relative
    to `src` without extension, then `/<start>-<end>` (frame numbers, end exclusive).

    ValueError naming entry `kept[i]` of `manifest` if a video resolves (symlinks followed) to a
    file outside `src`: the manifest is data and only picks videos of `src`
    (docs/datasets.md#names-and-paths). The entries' names are checked by `read_manifest`.
    """
    root = src.resolve()
    for i, shot in enumerate(shots):
        target = (src / shot.video).resolve()
        if not target.is_relative_to(root):
            raise ValueError(
                f"{manifest}: kept[{i}].video {shot.video!r} resolves to {printable(str(target))}, "
                f"outside SRC {root} (a symlink?); copy the video into SRC and run "
                "lvg-dataset curate again"
            )

    def frames(shot: Shot) -> Iterator[tuple[str, SourceFrame]]:
        path = src / shot.video
        # Seek to half a frame before the shot's first timestamp, then count frames from there.
        reader = read_video(path, trim_start=max(0.0, shot.start - 0.5 / shot.fps))
        count = 0
        try:
            for count, frame in enumerate(islice(reader, shot.num_frames), 1):
                if shot.crop:  # black borders found by curate (docs/datasets.md#visual-filters)
                    x0, y0, x1, y1 = shot.crop
                    frame = frame[y0:y1, x0:x1]
                yield f"frame_{count - 1:06d}.jpg", frame
        finally:
            reader.close()
        if count < shot.num_frames:
            reason = f"ended after {count} of the {shot.num_frames} frames of clip {shot.name}"
            raise VideoReadError(path, reason)

    return [
        ClipSource(shot.name, f"{src / shot.video} (clip {shot.name})", lambda s=shot: frames(s))
        for shot in sorted(shots, key=lambda s: s.name)
    ]


def frame_folder_sources(src: Path) -> list[ClipSource]:
    """Every folder of images under `src`; clip_dir = folder relative to `src`, frame name = file
    name with suffix .jpg, frames in name order (docs/datasets.md#on-disk-format). ValueError if
    two images of a folder would get the same frame name."""
    folders: dict[Path, list[Path]] = {}
    for path in list_files(src, IMAGE_EXTENSIONS):
        folders.setdefault(path.parent, []).append(path)

    def frames(paths: list[Path]) -> Iterator[tuple[str, SourceFrame]]:
        for path in paths:
            yield path.with_suffix(".jpg").name, read_image(path)

    sources = []
    for folder, paths in sorted(folders.items()):
        names = [p.with_suffix(".jpg").name for p in paths]
        if len(set(names)) < len(names):
            duplicate = next(n for n in names if names.count(n) > 1)
            raise ValueError(
                f"{folder} has several images that would become {duplicate}; keep one of them"
            )
        clip_dir = folder.relative_to(src).as_posix()  # "." for images directly in SRC
        bad = next((n for n in names if name_problem(n)), None)
        problem = f"its image {bad!r} {name_problem(bad)}; rename it" if bad else None
        sources.append(_named_source(clip_dir, folder, lambda p=paths: frames(p), problem))
    return sources


def synthetic_sources(
    num_videos: int, num_frames: int, resolutions: list[Resolution], seed: int
) -> list[ClipSource]:
    """Synthetic benchmark videos `video_%05d`; video i uses seed `seed * 100003 + i`, and every
    resolution is rendered directly (no resizing), so all resolutions show the same scene.
    Frames are rendered `SYNTHETIC_CHUNK` at a time (`render_video` renders any range exactly)."""
    from datasets.synthetic import render_video  # imported here: only this source needs it

    def frames(video_seed: int) -> Iterator[tuple[str, SourceFrame]]:
        for start in range(0, num_frames, SYNTHETIC_CHUNK):
            count = min(SYNTHETIC_CHUNK, num_frames - start)
            videos = {
                res: render_video(video_seed, count, *res, start_frame=start)[0]
                for res in resolutions
            }
            for i in range(count):
                frame = {res: video[i] for res, video in videos.items()}
                yield f"frame_{start + i:06d}.jpg", frame

    return [
        ClipSource(f"video_{i:05d}", f"synthetic video {i}", lambda s=seed * 100003 + i: frames(s))
        for i in range(num_videos)
    ]
