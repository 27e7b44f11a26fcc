"""Where metric clips come from: real videos (datasets, mp4 folders) and generators (spec §9.2).

Every source hands out float clips `[n, 3, T, H, W]` in [−1, 1].

* Real videos: a `VideoSource` is a list of videos with `num_frames(i)` and
  `read_frames(i, start, length, spacing)`; `datasets.shards.VideoDataset` is one, `Mp4Folder`
  another. `sample_real_clips` draws clips as the original metrics do: videos in a shuffled order,
  epoch after epoch (so short datasets are sampled repeatedly), a uniform random start, no flips.
* Generators: a `ClipSampler` is any callable `(batch, num_frames, generator) -> clips`. The
  factories below wrap the networks: `lres_sampler` (the low-res generator alone, 32 extra frames
  and a random offset in [0, 32)), `sres_sampler` (the super-resolution network on real low-res
  clips), `chain_sampler` (low-res generator, then super-resolution), and `video_sampler` (clips
  of another folder, to compare two sets of videos).

A super-resolution network is called as `S(lr, z=z)` with `lr [n, 3, T + 8, h, w]` and
`z [n, z_dim]` (`S.z_dim`, default 512) and returns `[n, 3, T, H, W]`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import torch

from datasets.shards import VideoDataset, VideoDatasetTwoRes, list_resolutions, parse_resolution
from datasets.video_io import VIDEO_EXTENSIONS, list_files, read_video

SR_CONTEXT = 4  # LR frames of context on each side of an SR output frame (spec §4.1)
LRES_MARGIN = 32  # extra LR frames generated for the random time offset (spec §11.7)
SR_SEGMENT = 16  # SR output frames per call (spec §8.4)


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
    """All video files under a folder (recursive, sorted), read as `[3, T, H, W]` clips."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.paths = list_files(self.root, VIDEO_EXTENSIONS)
        if not self.paths:
            raise FileNotFoundError(
                f"no video files ({', '.join(VIDEO_EXTENSIONS)}) under {self.root}; check the path"
            )
        self._cached: tuple[int, np.ndarray] | None = None
        self.num_frames = [
            _count_frames(p) or len(self._decode(i)) for i, p in enumerate(self.paths)
        ]

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, index: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != index:
            self._cached = (index, np.stack(list(read_video(self.paths[index]))))
        return self._cached[1]

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
    """Endless `[3, T, H, W]` clips: videos in shuffled order epoch after epoch, uniform start."""
    span = (num_frames - 1) * spacing + 1
    lengths = source_num_frames(source)
    eligible = np.array([i for i, n in enumerate(lengths) if n >= span])
    if len(eligible) == 0:
        raise ValueError(
            f"no video has the {span} frames a clip of {num_frames} frames every {spacing} needs "
            f"(longest has {max(lengths, default=0)}); use a shorter protocol or longer videos"
        )
    rng = np.random.default_rng(seed)
    while True:
        for index in rng.permutation(eligible):
            start = int(rng.integers(lengths[index] - span + 1))
            yield source.read_frames(int(index), start, num_frames, spacing)


# ------------------------------------------------------------------------------------------------
# Generators


def _device_of(net: torch.nn.Module) -> torch.device:
    tensor = next(iter(net.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def random_crops(video: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """A window of `length` frames per sample at a random offset in [0, margin), where `margin`
    = frames beyond `length` (32 in the metrics: offsets 0..31, as the original, spec §9.2)."""
    margin = video.shape[2] - length
    if margin < 1:
        raise ValueError(f"need more than {length} frames to crop, got {video.shape[2]}")
    offsets = torch.randint(margin, (video.shape[0],), generator=generator, device=generator.device)
    return torch.stack([v[:, o : o + length] for v, o in zip(video, offsets.tolist())])


def lres_sampler(G: torch.nn.Module) -> ClipSampler:
    """The low-res generator alone: T + 32 frames, then a random window of T (offset in [0, 32))."""

    def sample(batch: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
        video = G(batch, num_frames + LRES_MARGIN, generator=generator)
        return random_crops(video, num_frames, generator)

    return sample


def run_sres(
    S: Callable, lr: torch.Tensor, z: torch.Tensor, segment: int = SR_SEGMENT
) -> torch.Tensor:
    """`S` over `lr [n, 3, T + 8, h, w]` in segments of `segment` output frames, one z per video."""
    num_frames = lr.shape[2] - 2 * SR_CONTEXT
    if num_frames < 1:
        raise ValueError(f"super-resolution needs more than {2 * SR_CONTEXT} LR frames")
    outs = []
    for start in range(0, num_frames, segment):
        length = min(segment, num_frames - start)
        outs.append(S(lr[:, :, start : start + length + 2 * SR_CONTEXT], z=z))
    return torch.cat(outs, dim=2)


def _z(S, batch: int, generator: torch.Generator) -> torch.Tensor:
    z_dim = getattr(S, "z_dim", None) or getattr(getattr(S, "cfg", None), "z_dim", None) or 512
    return torch.randn(batch, z_dim, generator=generator, device=generator.device)


def chain_sampler(G: torch.nn.Module, S: Callable, segment: int = SR_SEGMENT) -> ClipSampler:
    """The whole chain (spec §9.2): LR G makes T + 8 + 32 frames, a random window of T + 8 goes
    through SR."""

    def sample(batch: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
        lr = G(batch, num_frames + 2 * SR_CONTEXT + LRES_MARGIN, generator=generator)
        lr = random_crops(lr, num_frames + 2 * SR_CONTEXT, generator)
        return run_sres(S, lr, _z(S, batch, generator), segment)

    return sample


def sres_sampler(
    S: Callable,
    dataset: VideoDatasetTwoRes | VideoDataset,
    seed: int = 1,
    segment: int = SR_SEGMENT,
) -> ClipSampler:
    """The SR network on real LR clips of T + 8 frames from `dataset` (spec §6.3, §9.2)."""
    streams: dict[int, Iterator[torch.Tensor]] = {}

    def sample(batch: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
        if num_frames not in streams:
            streams[num_frames] = sample_real_clips(
                _LowRes(dataset), num_frames + 2 * SR_CONTEXT, 1, seed
            )
        lr = torch.stack([next(streams[num_frames]) for _ in range(batch)]).to(generator.device)
        return run_sres(S, lr, _z(S, batch, generator), segment)

    return sample


class _LowRes:
    """The low-res half of a two-resolution dataset, as a VideoSource."""

    def __init__(self, dataset):
        self.dataset, self.num_frames = dataset, dataset.num_frames

    def __len__(self) -> int:
        return len(self.dataset)

    def read_frames(self, index, start, length, spacing=1):
        frames = self.dataset.read_frames(index, start, length, spacing)
        return frames[0] if isinstance(frames, tuple) else frames


def video_sampler(source, seed: int = 1) -> ClipSampler:
    """Clips of a folder of videos or a dataset, as the 'generated' side of a comparison."""
    streams: dict[int, Iterator[torch.Tensor]] = {}

    def sample(batch: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
        if num_frames not in streams:
            streams[num_frames] = sample_real_clips(source, num_frames, 1, seed)
        return torch.stack([next(streams[num_frames]) for _ in range(batch)])

    return sample
