"""Where metric clips come from: real videos (datasets, mp4 folders) and generators
(docs/metrics.md#what-is-evaluated).

Every source hands out float clips `[n, 3, T, H, W]` in [−1, 1].

* Real videos: a `VideoSource` is a list of videos with `num_frames(i)` and
  `read_frames(i, start, length, spacing)`; `datasets.shards.VideoDataset` is one, `Mp4Folder`
  another. `sample_real_clips` draws clips as the original metrics do: videos in a shuffled order,
  epoch after epoch (so short datasets are sampled repeatedly), a uniform random start, no flips.
* Generators: a `ClipSampler` is any callable `(batch, num_frames, generator) -> clips`. The
  factories below wrap the networks: `lres_sampler` (the low-res generator alone, a random
  offset in [0, shift_period): `LowResGenerator.random_clips`), `sres_sampler` (the
  super-resolution network on real low-res clips), `chain_sampler` (low-res generator, then
  super-resolution), and `video_sampler` (clips of another folder, to compare two sets of videos).

A super-resolution network is a `networks.contract.SuperResolution`: its `context` says how many
low-res frames it needs on each side of an output frame (4 in the paper: T + 8 frames for T), its
`z_dim` the width of the one latent drawn per video, and its `segments` runs a long clip.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import torch

from datasets.shards import (
    Damage,
    DamagedClipError,
    DamagedDataError,
    DamageTally,
    VideoDataset,
    list_resolutions,
    parse_resolution,
)
from datasets.video_io import VIDEO_EXTENSIONS, VideoReadError, list_files, read_video
from networks.contract import DEFAULT_SEGMENT, SuperResolution
from networks.lres_generator import LowResGenerator


class VideoSource(Protocol):
    def __len__(self) -> int: ...
    def read_frames(
        self, index: int, start: int, length: int, spacing: int = 1
    ) -> torch.Tensor: ...


class ClipSampler(Protocol):
    def __call__(self, batch: int, num_frames: int, generator: torch.Generator) -> torch.Tensor: ...


# ------------------------------------------------------------------------------------------------
# Real videos


class Mp4Folder:
    """All video files under a folder (recursive, sorted), read as `[3, T, H, W]` clips.

    A file that cannot be opened or decoded is skipped with a one-line warning and counted in
    `damage` (docs/metrics.md#damaged-and-unreadable-videos): when the folder is opened if its
    header does not give its frame count, else when a clip of it is first read
    (`sample_real_clips`). DamagedDataError if no file can be read, or too many cannot."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        paths = list_files(self.root, VIDEO_EXTENSIONS)
        if not paths:
            raise FileNotFoundError(
                f"no video files ({', '.join(VIDEO_EXTENSIONS)}) under {self.root}; check the path"
            )
        self.damage = DamageTally(
            len(paths),
            f"video files under {self.root}",
            "check them with ffprobe, or replace them",
            state="unreadable",
        )
        self._cached: tuple[Path, np.ndarray] | None = None
        self._unreadable: dict[Path, Damage] = {}  # found undecodable after the header was read
        self.paths: list[Path] = []
        self.num_frames: list[int] = []
        for path in paths:
            count = _count_frames(path)
            if not count:
                try:
                    count = len(self._decode_path(path))
                except VideoReadError as e:
                    self.damage.add([Damage(str(path), str(path), "", e.reason)])
                    continue
            self.paths.append(path)
            self.num_frames.append(count)

    def __len__(self) -> int:
        return len(self.paths)

    def _decode_path(self, path: Path) -> np.ndarray:
        """Every frame of `path`, kept for the next `_decode` of the same file."""
        frames = np.stack(list(read_video(path)))
        self._cached = (path, frames)
        return frames

    def _decode(self, index: int) -> np.ndarray:
        """Every frame of video `index`; DamagedClipError if it cannot be decoded (remembered,
        so a bad file is decoded once)."""
        path = self.paths[index]
        if self._cached is not None and self._cached[0] == path:
            return self._cached[1]
        if path not in self._unreadable:
            try:
                return self._decode_path(path)
            except VideoReadError as e:
                self._unreadable[path] = Damage(str(path), str(path), "", e.reason)
        raise DamagedClipError(self._unreadable[path])

    def read_frames(self, index: int, start: int, length: int, spacing: int = 1) -> torch.Tensor:
        frames = self._decode(index)[start : start + (length - 1) * spacing + 1 : spacing]
        if len(frames) != length:
            raise IndexError(f"{length} frames from {start} do not fit in {self.paths[index]}")
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)
        return 2 * video.float() / 255 - 1

    def content_key(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for path in self.paths:
            digest.update(path.relative_to(self.root).as_posix().encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


def _count_frames(path: Path) -> int:
    """Frames in a video file from its header (0 when the container does not say)."""
    try:
        with av.open(str(path)) as container:
            return int(container.streams.video[0].frames) if container.streams.video else 0
    except av.FFmpegError:
        return 0


def dataset_content_key(dataset: VideoDataset) -> str:
    """A hash of what a dataset folder holds: every zip entry's name, size and CRC-32 (read from
    the zip directories, so no frame is decoded), per shard."""
    import zipfile

    digest = hashlib.blake2b(digest_size=16)
    for shard in sorted(dataset.shards.path.glob("*.zip")):
        digest.update(shard.name.encode())
        with zipfile.ZipFile(shard) as zf:
            for info in zf.infolist():
                digest.update(f"{info.filename}\0{info.file_size}\0{info.CRC}\n".encode())
    return digest.hexdigest()


def content_key(source) -> str:
    return dataset_content_key(source) if isinstance(source, VideoDataset) else source.content_key()


def source_num_frames(source) -> list[int]:
    return list(source.num_frames)


def is_dataset_dir(path: str | os.PathLike) -> bool:
    return bool(list_resolutions(path))


def open_videos(
    path: str | os.PathLike, resolution=None, min_frames: int = 1
) -> VideoDataset | Mp4Folder:
    """A dataset folder (at `resolution`, default its largest) or a folder of video files."""
    if is_dataset_dir(path):
        res = parse_resolution(resolution) if resolution else list_resolutions(path)[-1]
        return VideoDataset(path, res, seq_length=min_frames)
    return Mp4Folder(path)


def sample_real_clips(
    source, num_frames: int, spacing: int = 1, seed: int = 0
) -> Iterator[torch.Tensor]:
    """Endless `[3, T, H, W]` clips: videos in shuffled order epoch after epoch, uniform start.

    A clip that cannot be read (a damaged dataset clip, an undecodable video file) is skipped
    and counted in `source.damage`, which warns once per video and raises DamagedDataError past
    its limit (docs/datasets.md#damaged-data); so does a whole pass without a readable clip."""
    span = (num_frames - 1) * spacing + 1
    lengths = source_num_frames(source)
    eligible = np.array([i for i, n in enumerate(lengths) if n >= span])
    if len(eligible) == 0:
        raise ValueError(
            f"no video has the {span} frames a clip of {num_frames} frames every {spacing} needs "
            f"(longest has {max(lengths, default=0)}); use a shorter protocol or longer videos"
        )
    rng = np.random.default_rng(seed)
    failed: set[int] = set()  # videos that failed since the last clip read
    while True:
        for index in rng.permutation(eligible):
            start = int(rng.integers(lengths[index] - span + 1))
            try:
                clip = source.read_frames(int(index), start, num_frames, spacing)
            except DamagedClipError as e:
                source.damage.add([e.damage])
                failed.add(int(index))
                if len(failed) == len(eligible):
                    tally = source.damage
                    raise DamagedDataError(
                        f"no clip of {span} frames can be read from the {len(eligible)} "
                        f"{tally.what} long enough, the first: {tally.first}; {tally.fix}"
                    ) from None
                continue
            failed.clear()
            yield clip


# ------------------------------------------------------------------------------------------------
# Generators


def lres_sampler(G: LowResGenerator) -> ClipSampler:
    """The low-res generator alone: T frames at a random offset in [0, G.shift_period)."""

    def sample(batch: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
        return G.random_clips(batch, num_frames, generator=generator)

    return sample


def run_sres(
    S: SuperResolution, lr: torch.Tensor, z: torch.Tensor, segment: int = DEFAULT_SEGMENT
) -> torch.Tensor:
    """`S` over `lr [n, 3, T + 2 S.context, h, w]`, `segment` output frames per call, one z per
    video (`S.segments`, joined)."""
    return torch.cat(list(S.segments(lr, z=z, segment_length=segment)), dim=2)


def _latents(S: SuperResolution, batch: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(batch, S.z_dim, generator=generator, device=generator.device)


def chain_sampler(
    G: LowResGenerator, S: SuperResolution, segment: int = DEFAULT_SEGMENT
) -> ClipSampler:
    """The whole chain (docs/metrics.md#what-is-evaluated): G makes T + 2 S.context low-res
    frames at a random offset in [0, G.shift_period), and S super-resolves them to T frames."""

    def sample(batch: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
        lr = G.random_clips(batch, num_frames + 2 * S.context, generator=generator)
        return run_sres(S, lr, _latents(S, batch, generator), segment)

    return sample


def sres_sampler(
    S: SuperResolution,
    dataset: VideoDataset,
    seed: int = 1,
    segment: int = DEFAULT_SEGMENT,
) -> ClipSampler:
    """The SR network on real LR clips of T + 2 context frames, as in training
    (docs/training.md#sr-step), from the low-res `dataset`."""
    streams: dict[int, Iterator[torch.Tensor]] = {}

    def sample(batch: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
        if num_frames not in streams:
            streams[num_frames] = sample_real_clips(dataset, num_frames + 2 * S.context, 1, seed)
        lr = torch.stack([next(streams[num_frames]) for _ in range(batch)]).to(generator.device)
        return run_sres(S, lr, _latents(S, batch, generator), segment)

    return sample


def video_sampler(source, seed: int = 1) -> ClipSampler:
    """Clips of a folder of videos or a dataset, as the 'generated' side of a comparison."""
    streams: dict[int, Iterator[torch.Tensor]] = {}

    def sample(batch: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
        if num_frames not in streams:
            streams[num_frames] = sample_real_clips(source, num_frames, 1, seed)
        return torch.stack([next(streams[num_frames]) for _ in range(batch)])

    return sample
