"""The curation manifest (docs/datasets.md#curation): the verdicts on the shots of
`datasets.curate` and the JSON file that records them.

`judge_clips` applies `Thresholds` (too_short, static, too_much_motion, blurry, duplicate);
`curate` gathers the verdicts of every video in a `Curation`; `write_manifest` writes it and
`read_manifest` reads back the kept shots for `lvg-dataset from-videos --manifest`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from datasets import shots as boundaries
from datasets.curate import (
    REPRESENTATIVE_FRAMES,
    AnalysisSettings,
    Shot,
    Thresholds,
    VideoAnalysis,
    find_transitions,
    hamming,
    split_clips,
)
from datasets.video_io import VIDEO_EXTENSIONS, name_problem
from torch_utils.misc import write_atomic

MANIFEST_FORMAT = "lvg-dataset curate manifest"
MANIFEST_VERSION = 1
LIMIT = 1e9  # frame numbers, times and scores of a manifest entry lie within +-LIMIT


# ---------------------------------------------------------------------------------------------------
# Verdicts


def judge_clips(clips: list[Shot], thresholds: Thresholds) -> None:
    """Set each clip's `reason` (None keeps it), checked in this order: low_resolution (short side
    of the content after the border crop), too_short, static, too_much_motion, blurry, duplicate
    (of an earlier kept clip, across all videos)."""
    kept_hashes = np.zeros((len(clips), REPRESENTATIVE_FRAMES), np.uint64)
    kept_names: list[str] = []
    for clip in clips:
        clip.reason = clip.duplicate_of = None
        if min(clip.content_size) < thresholds.min_resolution:
            clip.reason = "low_resolution"
        elif clip.seconds < thresholds.min_seconds:
            clip.reason = "too_short"
        elif clip.motion < thresholds.min_motion:
            clip.reason = "static"
        elif clip.motion > thresholds.max_motion:
            clip.reason = "too_much_motion"
        elif clip.sharpness < thresholds.min_sharpness:
            clip.reason = "blurry"
        elif thresholds.dedup >= 0 and kept_names:
            distance = clip_distance(
                kept_hashes[: len(kept_names)], np.array(clip.phash, np.uint64)
            )
            nearest = int(np.argmin(distance))
            if distance[nearest] <= thresholds.dedup:
                clip.reason, clip.duplicate_of = "duplicate", kept_names[nearest]
        if clip.reason is None:
            kept_hashes[len(kept_names)] = clip.phash
            kept_names.append(clip.name)


def clip_distance(hashes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Distance of a clip's hashes `[R]` to every row of `[K, R]`: for each hash the nearest one
    of the other clip, averaged, taking the larger of the two directions."""
    d = hamming(hashes[:, :, None], query[None, None, :])  # [K, R, R]
    return np.maximum(d.min(2).mean(1), d.min(1).mean(1))


# ---------------------------------------------------------------------------------------------------
# The manifest file


def shot_to_json(shot: Shot) -> dict[str, Any]:
    """A manifest entry: the shot's place, scores and verdict."""
    entry: dict[str, Any] = {
        "clip": shot.name,
        "video": shot.video,
        "start_frame": shot.start_frame,
        "end_frame": shot.end_frame,
        "start": round(shot.start, 4),
        "end": round(shot.end, 4),
        "fps": round(shot.fps, 4),
        "boundary": shot.boundary,
        "source": {"height": shot.source[0], "width": shot.source[1]},
        "crop": list(shot.crop) if shot.crop else None,
        "orientation": shot.orientation,
        "skipped_start": shot.skipped_start,
        "scores": {
            "seconds": round(shot.seconds, 4),
            "motion": round(shot.motion, 4),
            "sharpness": round(shot.sharpness, 2),
            "cut": round(shot.cut_score, 4),
            "phash": [f"{h:016x}" for h in shot.phash],
        },
    }
    if shot.reason:
        entry["reason"] = shot.reason
    if shot.duplicate_of:
        entry["duplicate_of"] = shot.duplicate_of
    return entry


def shot_from_json(entry: Any, where: str = "entry") -> Shot:
    """The `Shot` of a manifest entry written by `shot_to_json`, checked as data, never trusted
    as a path (docs/datasets.md#names-and-paths). ValueError naming `where` and the field: `video`
    must be a relative, normalised POSIX path of a video file (`name_problem`), frame numbers
    non-negative integers with start < end, times and scores finite numbers, fps positive."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not a JSON object")
    video = _field(entry, "video", str, where)
    problem = name_problem(video)
    if problem:
        raise ValueError(f"{where}.video {_shown(video)} {problem}")
    if PurePosixPath(video).suffix.lower() not in VIDEO_EXTENSIONS:
        raise ValueError(
            f"{where}.video {_shown(video)} is not a video file ({' '.join(VIDEO_EXTENSIONS)})"
        )
    start_frame, end_frame = (
        _frame_number(entry, key, where) for key in ("start_frame", "end_frame")
    )
    if end_frame <= start_frame:
        raise ValueError(f"{where}.end_frame {end_frame} is not after start_frame {start_frame}")
    start, end, fps = (_number(entry, key, where) for key in ("start", "end", "fps"))
    if end <= start:
        raise ValueError(f"{where}.end {end} is not after start {start}")
    if fps <= 0:
        raise ValueError(f"{where}.fps {fps} is not positive")
    scores = _field(entry, "scores", dict, where)
    motion, sharpness, cut = (
        _number(scores, key, f"{where}.scores") for key in ("motion", "sharpness", "cut")
    )
    hashes = _field(scores, "phash", list, f"{where}.scores")
    if not all(isinstance(h, str) and re.fullmatch(r"[0-9a-fA-F]{1,16}", h) for h in hashes):
        raise ValueError(f"{where}.scores.phash is not a list of 64-bit hex strings")
    reason, duplicate_of = (
        _field(entry, key, (str, type(None)), where, None) for key in ("reason", "duplicate_of")
    )
    boundary = _field(entry, "boundary", str, where, "start")
    crop = _field(entry, "crop", (list, type(None)), where, None)
    if crop is not None and not (
        len(crop) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < LIMIT for v in crop)
        and crop[0] < crop[2]
        and crop[1] < crop[3]
    ):
        raise ValueError(f"{where}.crop {_shown(crop)} is not a box [x0, y0, x1, y1] of pixels")
    shot = Shot(
        video=video,
        start_frame=start_frame,
        end_frame=end_frame,
        start=start,
        end=end,
        fps=fps,
        motion=motion,
        sharpness=sharpness,
        cut_score=cut,
        phash=tuple(int(h, 16) for h in hashes),
        boundary=boundary,
        crop=tuple(crop) if crop else None,
        reason=reason,
        duplicate_of=duplicate_of,
    )
    problem = name_problem(shot.name)
    if problem:
        raise ValueError(
            f"{where}.video {_shown(video)} gives the clip dir {_shown(shot.name)}, which {problem}"
        )
    return shot


_MISSING = object()


def _field(
    entry: dict, key: str, types: type | tuple[type, ...], where: str, default: Any = _MISSING
) -> Any:
    """`entry[key]`, which must be of `types` (or absent, if there is a `default`)."""
    if key not in entry:
        if default is _MISSING:
            raise ValueError(f"{where}.{key} is missing")
        return default
    value = entry[key]
    if not isinstance(value, types) or isinstance(value, bool):
        raise ValueError(
            f"{where}.{key} {_shown(value)} is not {_TYPE_NAMES.get(types, 'of the right type')}"
        )
    return value


_TYPE_NAMES: dict[Any, str] = {
    str: "a string",
    int: "an integer",
    dict: "a JSON object",
    list: "a list",
    (str, type(None)): "a string",
    (list, type(None)): "a list or null",
}


def _frame_number(entry: dict, key: str, where: str) -> int:
    value = _field(entry, key, int, where)
    if not 0 <= value < LIMIT:
        raise ValueError(f"{where}.{key} {_shown(value)} is not a frame number (0 .. {LIMIT:.0e})")
    return value


def _number(entry: dict, key: str, where: str) -> float:
    value = entry.get(key, _MISSING)
    if value is _MISSING:
        raise ValueError(f"{where}.{key} is missing")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{where}.{key} {_shown(value)} is not a finite number")
    if abs(value) > LIMIT:
        raise ValueError(f"{where}.{key} {value} is out of range (+-{LIMIT:.0e})")
    return float(value)


def _shown(value: Any) -> str:
    """A JSON value in a message: one line, at most 60 characters."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, allow_nan=True)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Curation:
    """Everything a manifest says: the clips with their verdicts and the unreadable videos."""

    src: str
    settings: AnalysisSettings
    thresholds: Thresholds
    clips: list[Shot]
    unreadable: dict[str, str]  # video -> reason
    num_videos: int
    transitions: dict[str, list[boundaries.Transition]] = field(default_factory=dict)

    @property
    def kept(self) -> list[Shot]:
        return [clip for clip in self.clips if clip.reason is None]

    def summary(self) -> dict[str, Any]:
        kept = self.kept
        dropped = Counter(clip.reason for clip in self.clips if clip.reason)
        if self.unreadable:
            dropped["unreadable"] = len(self.unreadable)
        return {
            "videos": self.num_videos,
            "clips": len(self.clips),
            "kept": len(kept),
            "kept_seconds": round(sum(clip.seconds for clip in kept), 3),
            "kept_frames": sum(clip.num_frames for clip in kept),
            "dropped": dict(sorted(dropped.items())),
        }

    def detector(self) -> dict[str, Any]:
        """Which shot detector ran, its version, thresholds and device
        (docs/datasets.md#shot-detection)."""
        name, t = self.settings.shots, self.thresholds
        if name == "transnetv2":
            limits = {"shot_threshold": t.shot_threshold, "shot_extent": t.shot_extent}
            limits |= {"window": boundaries.WINDOW, "context": boundaries.CONTEXT}
            device = boundaries.resolve_device(self.settings.device)
        else:
            limits = {"cut_k": t.cut_k, "cut_min": t.cut_min, "cut_window": t.cut_window}
            device = "cpu"
        version = boundaries.detector_version(name)
        return {"detector": name, "version": version, "thresholds": limits, "device": device}

    def to_json(self) -> dict[str, Any]:
        dropped = [shot_to_json(clip) for clip in self.clips if clip.reason]
        dropped += [
            {"video": video, "reason": "unreadable", "error": error}
            for video, error in sorted(self.unreadable.items())
        ]
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "src": self.src,
            "analysis": asdict(self.settings),
            "thresholds": asdict(self.thresholds),
            "shots": self.detector(),
            "transitions": [
                {"video": video, **t.to_json()}
                for video, found in self.transitions.items()
                for t in found
            ],
            "summary": self.summary(),
            "kept": [shot_to_json(clip) for clip in self.kept],
            "dropped": dropped,
        }


def curate(analyses: list[VideoAnalysis], src: str, thresholds: Thresholds) -> Curation:
    """Shots and verdicts for `analyses` (in their order, which decides who is a duplicate)."""
    readable = [a for a in analyses if a.error is None]
    clips = [clip for a in readable for clip in split_clips(a, thresholds)]
    judge_clips(clips, thresholds)
    unreadable = {a.video: a.error for a in analyses if a.error is not None}
    settings = analyses[0].settings if analyses else AnalysisSettings()
    transitions = {a.video: find_transitions(a, thresholds) for a in readable}
    return Curation(src, settings, thresholds, clips, unreadable, len(analyses), transitions)


def write_manifest(path: str | os.PathLike, curation: Curation) -> None:
    write_atomic(path, (json.dumps(curation.to_json(), indent=2) + "\n").encode())


def read_manifest(path: str | os.PathLike) -> list[Shot]:
    """The kept clips of a manifest written by `write_manifest`; ValueError says what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"manifest {path} does not exist; make one with lvg-dataset curate"
        ) from None
    except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(f"manifest {path} is not readable JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path} is not a manifest of lvg-dataset curate")
    if data.get("version") != MANIFEST_VERSION:
        raise ValueError(
            f"manifest {path} has version {_shown(data.get('version'))}, this tool reads "
            f"{MANIFEST_VERSION}"
        )
    kept = data.get("kept")
    if not isinstance(kept, list):
        raise ValueError(
            f"manifest {path}: kept is not a list; make a new one with lvg-dataset curate"
        )
    try:
        return [shot_from_json(entry, f"kept[{i}]") for i, entry in enumerate(kept)]
    except ValueError as e:
        raise ValueError(
            f"manifest {path}: {e}; fix the entry or make a new manifest with lvg-dataset curate SRC"
        ) from None
