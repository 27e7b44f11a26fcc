"""The zip-shard dataset format (docs/datasets.md#on-disk-format): atomic writer and clip readers
for training and metrics.

Layout: `<root>/<HHHH>x<WWWW>/*.zip`, each an uncompressed zip of JPEG frames at
`<clip_dir>/<frame_name>.jpg` plus `frame_paths.json` at its root (clip_dir -> ordered frame names).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
import tqdm
from PIL import Image
from torch.utils.data import Dataset

from torch_utils.misc import (
    AtomicTarget,
    Resolution,
    ResolutionLike,
    StreamingWriter,
    format_resolution,
    parse_resolution,
)

FRAME_LIST = "frame_paths.json"

# ---------------------------------------------------------------------------------------------------
# Resolutions and JPEG frames


def resolution_dirname(resolution: ResolutionLike) -> str:
    """`(36, 64)` -> `"0036x0064"`, the folder name of that resolution (docs/datasets.md)."""
    height, width = parse_resolution(resolution)
    return f"{height:04d}x{width:04d}"


def list_resolutions(root: str | os.PathLike) -> list[Resolution]:
    """Resolutions present under a dataset root (folders named HHHHxWWWW), smallest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p.name for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d{4}x\d{4}", p.name)]
    return sorted(parse_resolution(name) for name in found)


def encode_jpeg(frame: np.ndarray, quality: int = 100) -> bytes:
    """RGB uint8 `[H, W, 3]` -> JPEG bytes, 4:4:4 (no chroma subsampling) (docs/datasets.md)."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG (or any PIL-readable) bytes -> RGB uint8 `[H, W, 3]`."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


class BadFrameError(ValueError):
    """Frame bytes that are not a frame of the expected size; the message is the reason."""


def decode_frame(data: bytes, resolution: Resolution) -> np.ndarray:
    """Checked JPEG bytes -> RGB uint8 `[H, W, 3]` (docs/datasets.md#damaged-data).

    The size and channels are checked from the header, before any pixel is decoded, so a huge
    image (a decode bomb) costs nothing. BadFrameError if the bytes are no image, are truncated or
    corrupt, or are not `resolution` with 3 channels.
    """
    height, width = resolution
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            if image.size != (width, height):
                raise BadFrameError(
                    f"the frame is {image.height}x{image.width}, not {height}x{width} "
                    "(the folder's resolution)"
                )
            if image.mode != "RGB":
                bands = len(image.getbands())
                raise BadFrameError(f"the frame has {bands} channel(s) ({image.mode}), not 3 (RGB)")
            image.load()
            return np.asarray(image)
    except BadFrameError:
        raise
    except Image.DecompressionBombError as e:
        raise BadFrameError(f"the frame is far too large to decode ({e})") from None
    except Image.UnidentifiedImageError:
        raise BadFrameError("not a JPEG image (no image format recognises the bytes)") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL's truncated and corrupt-data errors
        raise BadFrameError(f"corrupt or truncated JPEG data ({e})") from None


# ---------------------------------------------------------------------------------------------------
# Writing


def shard_path(root: str | os.PathLike, resolution: ResolutionLike, shard_name: str) -> Path:
    """`<root>/<HHHH>x<WWWW>/<shard_name>.zip`."""
    return Path(root) / resolution_dirname(resolution) / f"{shard_name}.zip"


@dataclass
class _OpenClip:
    clip_dir: str
    frame_names: list[str]
    offset: int  # temp-file size when the clip began
    num_entries: int  # zip entries when the clip began


class ShardWriter(StreamingWriter):
    """Writes one shard atomically: frames go to `<name>.zip.tmp-<pid>`, fsynced and renamed on
    `close()` (`torch_utils.misc.AtomicTarget`).

    Frames are added clip by clip (`begin_clip`, `add_frame`, `end_clip`). `discard_clip()` cuts
    the open clip's frames off the end of the temp file, so a video that fails part way leaves no
    trace. An exception inside a `with ShardWriter(...)` block deletes the temp file, so an
    interrupted run never leaves a (half) shard under the real name.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} already exists")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._target = AtomicTarget(self.path, hidden=False)
        self.tmp_path = self._target.tmp
        self.frame_paths: dict[str, list[str]] = {}
        self._zip = zipfile.ZipFile(self.tmp_path, "w", compression=zipfile.ZIP_STORED)
        self._clip: _OpenClip | None = None

    def begin_clip(self, clip_dir: str) -> None:
        if self._clip is not None:
            raise RuntimeError(f"clip {self._clip.clip_dir!r} is still open")
        if clip_dir in self.frame_paths:
            raise ValueError(f"clip {clip_dir!r} is already in {self.path.name}")
        from datasets.video_io import name_problem  # here: reading shards needs no video code

        problem = name_problem(clip_dir)
        if problem:
            raise ValueError(
                f"clip dir {clip_dir!r} {problem}; clip dirs are relative POSIX paths such as "
                "'ride/v0' (docs/datasets.md#names-and-paths)"
            )
        self._clip = _OpenClip(clip_dir, [], self._zip.start_dir, len(self._zip.filelist))

    def add_frame(self, frame_name: str, data: bytes) -> None:
        from datasets.video_io import name_problem

        problem = name_problem(frame_name)
        if problem or "/" in frame_name or frame_name in (".", FRAME_LIST):
            raise ValueError(
                f"frame name {frame_name!r} {problem or 'is not a plain file name'}; frame names "
                "are file names such as 'frame_000000.jpg' (docs/datasets.md#names-and-paths)"
            )
        self._write(str(PurePosixPath(self._clip.clip_dir, frame_name)), data)
        self._clip.frame_names.append(frame_name)

    def _write(self, name: str, data: bytes) -> None:
        """A stored entry with a fixed timestamp, so the same input gives a byte-identical shard."""
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        self._zip.writestr(info, data)

    def end_clip(self) -> None:
        self.frame_paths[self._clip.clip_dir] = self._clip.frame_names
        self._clip = None

    def discard_clip(self) -> None:
        """Forget the open clip and truncate the temp zip back to where the clip began.

        ZipFile has no public delete, but the clip's entries are the last ones written and the
        central directory is only written on close, so cutting the file at the clip's start and
        dropping its entries from ZipFile's in-memory directory is exact.
        """
        clip, zf = self._clip, self._zip
        for info in zf.filelist[clip.num_entries :]:
            del zf.NameToInfo[info.filename]
        del zf.filelist[clip.num_entries :]
        zf.fp.seek(clip.offset)
        zf.fp.truncate()
        zf.start_dir = clip.offset
        self._clip = None

    def close(self) -> Path:
        """Write `frame_paths.json` (keys sorted, indent 2) and move the shard to its real name."""
        if self._clip is not None:
            self.discard_clip()
        self._write(FRAME_LIST, json.dumps(self.frame_paths, indent=2, sort_keys=True).encode())
        self._zip.close()
        return self._target.commit()

    def abort(self) -> None:
        """Delete the temp file; the real name is never created."""
        self._zip.close()
        self._target.discard()


def write_clip(
    writers: Mapping[Resolution, ShardWriter],
    clip_dir: str,
    frames: Iterable[tuple[str, Mapping[Resolution, bytes]]],
) -> int:
    """Write one clip to several shard writers (one per resolution) in a single pass.

    `frames` yields `(frame_name, {resolution: jpeg_bytes})`. If it raises (e.g. `VideoReadError`
    on a truncated video) or yields nothing, the clip is discarded from every writer and the error
    is re-raised (ValueError for an empty clip). Returns the number of frames written.
    """
    for writer in writers.values():
        writer.begin_clip(clip_dir)
    try:
        num_frames = 0
        for frame_name, data in frames:
            for resolution, writer in writers.items():
                writer.add_frame(frame_name, data[resolution])
            num_frames += 1
        if num_frames == 0:
            raise ValueError(f"clip {clip_dir!r} has no frames")
    except BaseException:
        for writer in writers.values():
            writer.discard_clip()
        raise
    for writer in writers.values():
        writer.end_clip()
    return num_frames


# ---------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class Clip:
    """One video in a shard: `frame_names` in temporal order."""

    shard: str  # shard file stem, e.g. "partition_0000"
    clip_dir: str
    frame_names: tuple[str, ...]

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)


# Damaged data (docs/datasets.md#damaged-data)

MAX_DAMAGED_FRACTION = 0.01  # reading stops when more than this share of the clips is damaged ...
MIN_DAMAGED = 5  # ... and at least this many are (or when every clip is)


@dataclass(frozen=True)
class Damage:
    """Where a clip is damaged: the file (a shard, or a video file), the clip in it, the member
    (`<clip_dir>/<frame_name>` in a shard, '' for a video file) and the reason."""

    path: str
    clip: str
    member: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}: {self.member}" if self.member else self.path
        return f"{where}: {self.reason}"


class DamagedClipError(ValueError):
    """A clip that cannot be read: a bad CRC-32, a truncated or missing zip member, undecodable
    JPEG data, or a frame of the wrong size or channels. `damage` says where and why."""

    def __init__(self, damage: Damage):
        super().__init__(str(damage))
        self.damage = damage

    def __reduce__(self):
        return type(self), (self.damage,)


class DamagedDataError(ValueError):
    """Too much of a dataset (or folder of videos) is damaged to go on; the message says how much,
    names the first damaged file and how to find the rest."""


def _warn(message: str) -> None:
    tqdm.tqdm.write(message, file=sys.stderr)


class DamageTally:
    """The damaged clips met while reading `num_clips` clips, each warned about once, and the limit
    past which reading stops (docs/datasets.md#damaged-data): DamagedDataError when every clip is
    damaged, or when more than `MAX_DAMAGED_FRACTION` of them and at least `MIN_DAMAGED` are.

    `what` names the clips in messages ("clips in /data"), `fix` is the advice that ends the error
    message, `state` what is wrong with them ("damaged", "unreadable")."""

    def __init__(
        self,
        num_clips: int,
        what: str,
        fix: str,
        state: str = "damaged",
        warn: Callable[[str], None] = _warn,
    ):
        self.num_clips, self.what, self.fix, self.warn = num_clips, what, fix, warn
        self.state = state
        self.found: dict[tuple[str, str], Damage] = {}
        self.skipped_reads = 0  # reads replaced by another clip's (one clip may fail many times)

    def __len__(self) -> int:
        return len(self.found)

    @property
    def first(self) -> Damage | None:
        return next(iter(self.found.values()), None)

    def add(self, damages: Iterable[Damage]) -> None:
        """Count `damages` (warning once per new clip), then stop if past the limit."""
        for damage in damages:
            self.skipped_reads += 1
            key = (Path(damage.path).stem, damage.clip)
            if key not in self.found:
                self.found[key] = damage
                kind = "clip" if damage.member else "file"
                self.warn(f"warning: skipped {self.state} {kind} {damage}")
        self.check()

    def too_many(self) -> bool:
        count = len(self.found)
        if count >= self.num_clips:
            return True
        return count >= MIN_DAMAGED and count > MAX_DAMAGED_FRACTION * self.num_clips

    def check(self) -> None:
        if not self.too_many():
            return
        count = len(self.found)
        amount = (
            f"every one of the {self.num_clips} {self.what} is {self.state}"
            if count >= self.num_clips
            else f"{count} of the {self.num_clips} {self.what} are {self.state} (more than "
            f"{MAX_DAMAGED_FRACTION:.0%} and at least {MIN_DAMAGED})"
        )
        raise DamagedDataError(f"{amount}, the first: {self.first}; {self.fix}")


def first_readable(
    num_items: int, index: int, read: Callable[[int], Any]
) -> tuple[Any, list[Damage]]:
    """`read(index)`, or if that clip is damaged `read(index + 1)`, ... (wrapping around): the
    first clip that reads cleanly, and the damage met on the way. `(None, damages)` if every clip
    is damaged. A pure function of `index` and the data, so substitutes stay reproducible."""
    damages: list[Damage] = []
    for offset in range(num_items):
        try:
            return read((index + offset) % num_items), damages
        except DamagedClipError as e:
            damages.append(e.damage)
    return None, damages


def missing_resolution_message(root: Path, *resolutions: Resolution) -> str:
    """The error for resolution folders missing from `root`: the fix command makes all of them
    in one pass (docs/datasets.md#making-a-dataset)."""
    present = ", ".join(resolution_dirname(r) for r in list_resolutions(root)) or "none"
    folders = " and ".join(resolution_dirname(r) for r in resolutions)
    flags = " ".join(f"--res {format_resolution(r)}" for r in resolutions)
    return (
        f"no {folders} folder{'s' if len(resolutions) > 1 else ''} in {root} (resolutions present: {present}); "
        f"make {'them' if len(resolutions) > 1 else 'it'} with: lvg-dataset from-videos SRC --outdir {root} {flags}"
    )


class ShardFolder:
    """All shards of one resolution: the clip index and lazily opened, per-process zip handles."""

    def __init__(
        self, root: str | os.PathLike, resolution: ResolutionLike, skip_unfinished: bool = False
    ):
        """ValueError for a shard that is not a finished zip with its `frame_paths.json`; with
        `skip_unfinished` such shards are left out instead and listed in `unfinished`."""
        self.root = Path(root)
        self.resolution = parse_resolution(resolution)
        self.path = self.root / resolution_dirname(self.resolution)
        if not self.path.is_dir():
            raise FileNotFoundError(missing_resolution_message(self.root, self.resolution))
        shards = sorted(self.path.glob("*.zip"))
        if not shards:
            raise FileNotFoundError(
                f"no *.zip shards in {self.path}; is the dataset still being written?"
            )
        self.clips: list[Clip] = []
        self.unfinished: list[Damage] = []
        for shard in shards:
            try:
                with zipfile.ZipFile(shard) as zf:
                    frame_paths = json.loads(zf.read(FRAME_LIST))
            except (zipfile.BadZipFile, KeyError, EOFError, ValueError) as e:
                if not skip_unfinished:
                    raise ValueError(
                        f"{shard} is not a finished shard ({e}); delete it and write it again"
                    ) from e
                reason = f"not a finished shard ({e}); delete it and write it again"
                self.unfinished.append(Damage(str(shard), "", "", reason))
                continue
            for clip_dir, names in sorted(frame_paths.items()):
                self.clips.append(Clip(shard.stem, clip_dir, tuple(names)))
        self._zips: dict[str, zipfile.ZipFile] = {}
        self._pid = os.getpid()

    def _zip(self, shard: str) -> zipfile.ZipFile:
        if self._pid != os.getpid():  # forked DataLoader worker: never share the parent's handles
            self._zips, self._pid = {}, os.getpid()
        if shard not in self._zips:
            self._zips[shard] = zipfile.ZipFile(self.path / f"{shard}.zip")
        return self._zips[shard]

    def shard_file(self, clip: Clip) -> Path:
        return self.path / f"{clip.shard}.zip"

    def read_frame(self, clip: Clip, frame_index: int) -> np.ndarray:
        """One frame as RGB uint8 `[H, W, 3]`; DamagedClipError (naming the shard file and the
        member) if its bytes or its JPEG data are damaged (docs/datasets.md#damaged-data)."""
        member = str(PurePosixPath(clip.clip_dir, clip.frame_names[frame_index]))
        try:
            return decode_frame(self._zip(clip.shard).read(member), self.resolution)
        except KeyError:
            reason = "missing from the shard (listed in frame_paths.json)"
        except zipfile.BadZipFile as e:
            reason = str(e)
            if reason.startswith("Bad CRC-32"):
                reason = "bad CRC-32: the stored bytes changed after the shard was written"
        except EOFError:
            reason = "truncated: the shard file ends inside this frame"
        except OSError as e:
            reason = f"cannot read the shard ({e.strerror or e})"
        except BadFrameError as e:
            reason = str(e)
        raise DamagedClipError(Damage(str(self.shard_file(clip)), clip.clip_dir, member, reason))

    def check_clip(self, clip: Clip) -> list[Damage]:
        """Read and decode every frame of `clip`; the damaged ones (`lvg-dataset verify`)."""
        damages = []
        for i in range(clip.num_frames):
            try:
                self.read_frame(clip, i)
            except DamagedClipError as e:
                damages.append(e.damage)
        return damages

    def read_video(self, clip: Clip, frame_indices: Sequence[int]) -> torch.Tensor:
        """Frames of `clip` as float `[C, T, H, W]` in [-1, 1] (2·x/255 − 1, docs/datasets.md)."""
        frames = np.stack([self.read_frame(clip, i) for i in frame_indices])  # t h w c
        video = torch.from_numpy(frames).permute(3, 0, 1, 2)
        return 2 * video.to(torch.float32) / 255 - 1

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _zips={})


class VideoDataset(Dataset):
    """One item per clip: `seq_length` frames from a random start, as float `[C, T, H, W]`
    (docs/training.md#real-clip-sampling).

    * Clips shorter than `(seq_length − 1)·min_spacing + 1` frames are dropped.
    * `frame_spacing` is an int or `(min, max)`; the spacing is drawn uniformly in
      `[min, min(max, what the clip allows)]`, then the start uniformly among the valid starts.
    * `x_flip`: the whole clip is mirrored horizontally with probability 0.5.
    * Randomness: with `seed=None` (default) draws come from torch's global RNG, which DataLoader
      seeds differently in every worker and epoch (persistent workers included). With an integer
      `seed`, item `i` is a pure function of `(seed, epoch, i)`; call `set_epoch` (it must reach the
      workers, so do not use persistent workers then).
    * Damaged clips (docs/datasets.md#damaged-data): an item whose frames cannot be read is
      replaced by the next clip that reads cleanly (`get`, with that clip's own draw), so it stays
      a pure function of `(seed, epoch, i)` and the data. `dataset[i]` warns once per damaged clip
      and counts it in `damage`; DamagedDataError past the limit of `DamageTally`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        resolution: ResolutionLike,
        seq_length: int,
        frame_spacing: int | tuple[int, int] = 1,
        x_flip: bool = False,
        seed: int | None = None,
    ):
        if seq_length < 1:
            raise ValueError(f"seq_length must be >= 1, got {seq_length}")
        spacing = (
            (frame_spacing, frame_spacing) if isinstance(frame_spacing, int) else frame_spacing
        )
        self.min_spacing, self.max_spacing = (int(s) for s in spacing)
        if not 1 <= self.min_spacing <= self.max_spacing:
            raise ValueError(f"frame_spacing must satisfy 1 <= min <= max, got {frame_spacing}")
        self.seq_length = seq_length
        self.x_flip = x_flip
        self.seed = seed
        self.epoch = 0
        self.shards = ShardFolder(root, resolution)
        self.resolution = self.shards.resolution
        self.min_length = (seq_length - 1) * self.min_spacing + 1
        self.clips = [c for c in self.shards.clips if c.num_frames >= self.min_length]
        if not self.clips:
            longest = max((c.num_frames for c in self.shards.clips), default=0)
            raise ValueError(
                f"no clip in {self.shards.path} has the {self.min_length} frames needed for "
                f"seq_length {seq_length} (longest has {longest}); use a shorter seq_length"
            )
        self.root = self.shards.root
        self.damage = new_tally(self)

    @property
    def clip_names(self) -> list[str]:
        return [c.clip_dir for c in self.clips]

    @property
    def num_frames(self) -> list[int]:
        return [c.num_frames for c in self.clips]

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rng(self, index: int, epoch: int | None = None) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(torch.randint(2**62, ()).item())
        return np.random.default_rng([self.seed, self.epoch if epoch is None else epoch, index])

    @staticmethod
    def _key(key: int | tuple[int, int]) -> tuple[int | None, int]:
        """Items are addressed by `index` or by `(epoch, index)`: a sampler that yields pairs
        carries the epoch into DataLoader workers, persistent ones included."""
        return (int(key[0]), int(key[1])) if isinstance(key, tuple) else (None, int(key))

    def sample(self, index: int, epoch: int | None = None) -> tuple[list[int], bool]:
        """Random frame indices of item `index` and whether to flip it."""
        rng = self._rng(index, epoch)
        num_frames = self.clips[index].num_frames
        max_spacing = self.max_spacing
        if self.seq_length > 1:
            max_spacing = min(max_spacing, (num_frames - 1) // (self.seq_length - 1))
        spacing = int(rng.integers(self.min_spacing, max_spacing + 1))
        span = (self.seq_length - 1) * spacing + 1
        start = int(rng.integers(num_frames - span + 1))
        flip = self.x_flip and bool(rng.random() < 0.5)
        return list(range(start, start + span, spacing)), flip

    def frame_range(self, index: int, start: int, length: int, spacing: int = 1) -> range:
        """Indices `start, start + spacing, ...` (`length` of them), checked against clip `index`."""
        clip = self.clips[index]
        if (
            start < 0
            or length < 1
            or spacing < 1
            or start + (length - 1) * spacing >= clip.num_frames
        ):
            raise IndexError(
                f"{length} frames from {start} every {spacing} do not fit in {clip.clip_dir!r} "
                f"({clip.num_frames} frames)"
            )
        return range(start, start + (length - 1) * spacing + 1, spacing)

    def read(self, index: int, frame_indices: Sequence[int], flip: bool = False) -> torch.Tensor:
        """Frames `frame_indices` of clip `index`, `[C, T, H, W]`, mirrored if `flip`."""
        video = self.shards.read_video(self.clips[index], frame_indices)
        return video.flip(-1) if flip else video

    def read_frames(self, index: int, start: int, length: int, spacing: int = 1) -> torch.Tensor:
        """A chosen frame range of clip `index` (no flip), `[C, T, H, W]`; for metrics."""
        return self.read(index, self.frame_range(index, start, length, spacing))

    def get(self, key: int | tuple[int, int]) -> tuple[torch.Tensor | None, list[Damage]]:
        """Item `key` and the damage met reading it: the clip's draw, or that of the next clip
        that reads cleanly (`first_readable`); `(None, damages)` if every clip is damaged."""
        epoch, index = self._key(key)
        return first_readable(len(self), index, lambda i: self.read(i, *self.sample(i, epoch)))

    def __getitem__(self, key: int | tuple[int, int]) -> torch.Tensor:
        return checked_item(self.get(key), self.damage)


def new_tally(dataset: VideoDataset | VideoDatasetTwoRes) -> DamageTally:
    """A `DamageTally` for the clips of `dataset`, whose error points to `lvg-dataset verify`."""
    return DamageTally(
        len(dataset),
        "clips in " + str(dataset.root),
        f"list every damaged clip with: lvg-dataset verify {dataset.root}",
    )


def checked_item(item: tuple[Any, list[Damage]], tally: DamageTally) -> Any:
    """The item of a `get`, its damage counted (and warned about) in `tally`."""
    value, damages = item
    tally.add(damages)
    if value is None:  # every clip is damaged: `add` has raised already
        raise DamagedDataError(f"every one of the {tally.what} is {tally.state}; {tally.fix}")
    return value


class VideoDatasetTwoRes(Dataset):
    """Pairs for super-resolution training (docs/training.md#sr-step): the same frames at two
    resolutions.

    Composed of two `VideoDataset`s over the same root, `lres` and `hres`, each with its own
    unchanged contract (use them directly for one resolution, e.g. `pairs.lres.read_frames`).
    Items of the pair are `(lr_video, hr_video)`, both `[C, T, H, W]`: one draw of clip, frame
    indices and flip (`lres.sample`) read at both resolutions. The two resolutions must hold
    identical clip lists (same shards, clips and frame names).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        lr_resolution: ResolutionLike,
        hr_resolution: ResolutionLike,
        seq_length: int,
        frame_spacing: int | tuple[int, int] = 1,
        x_flip: bool = False,
        seed: int | None = None,
    ):
        self.lres = VideoDataset(root, lr_resolution, seq_length, frame_spacing, x_flip, seed)
        self.hres = VideoDataset(root, hr_resolution, seq_length, frame_spacing, x_flip, seed)
        self.root = self.lres.root
        self.damage = new_tally(self)
        difference = describe_difference(self.lres.shards, self.hres.shards)
        if difference:
            raise ValueError(
                f"{self.lres.shards.path} and {self.hres.shards.path} do not hold the same clips "
                f"({difference}); rebuild both in one run, e.g. lvg-dataset from-videos SRC --outdir DST "
                f"--res {format_resolution(self.lres.resolution)} "
                f"--res {format_resolution(self.hres.resolution)}"
            )

    @property
    def clip_names(self) -> list[str]:
        return self.lres.clip_names

    @property
    def num_frames(self) -> list[int]:
        return self.lres.num_frames

    def __len__(self) -> int:
        return len(self.lres)

    def set_epoch(self, epoch: int) -> None:
        self.lres.set_epoch(epoch)
        self.hres.set_epoch(epoch)

    def read_frames(
        self, index: int, start: int, length: int, spacing: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(lres.read_frames(...), hres.read_frames(...))`: the same frames at both resolutions."""
        return tuple(d.read_frames(index, start, length, spacing) for d in (self.lres, self.hres))

    def get(
        self, key: int | tuple[int, int]
    ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, list[Damage]]:
        """As `VideoDataset.get`: a clip damaged at either resolution is replaced by the next."""
        epoch, index = VideoDataset._key(key)

        def read(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            indices, flip = self.lres.sample(i, epoch)  # one draw for both resolutions
            return self.lres.read(i, indices, flip), self.hres.read(i, indices, flip)

        return first_readable(len(self), index, read)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        return checked_item(self.get(key), self.damage)


def describe_difference(a: ShardFolder, b: ShardFolder) -> str:
    """'' if both folders hold the same clips and frames, else a short description of one difference."""
    clips_a = {(c.shard, c.clip_dir): c.frame_names for c in a.clips}
    clips_b = {(c.shard, c.clip_dir): c.frame_names for c in b.clips}
    only_a, only_b = (
        sorted(clips_a.keys() - clips_b.keys()),
        sorted(clips_b.keys() - clips_a.keys()),
    )
    changed = sorted(k for k in clips_a.keys() & clips_b.keys() if clips_a[k] != clips_b[k])
    parts = []
    for keys, what in (
        (only_a, f"only in {a.path.name}"),
        (only_b, f"only in {b.path.name}"),
        (changed, "with different frames"),
    ):
        if keys:
            shard, clip_dir = keys[0]
            parts.append(f"{len(keys)} clip(s) {what}, e.g. {shard}:{clip_dir}")
    return "; ".join(parts)
