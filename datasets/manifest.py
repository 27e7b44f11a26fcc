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

from datasets import embeddings
from datasets import shots as boundaries
from datasets import text as text_detection
from datasets.curate import (
    PRESETS,
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


def limit_reason(clip: Shot, thresholds: Thresholds) -> str | None:
    """The first limit a clip fails, in `judge_clips`' order (None: it passes them all)."""
    if min(clip.content_size) < thresholds.min_resolution:
        return "low_resolution"
    if clip.seconds < thresholds.min_seconds:
        return "too_short"
    if clip.motion < thresholds.min_motion:
        return "static"
    if clip.motion > thresholds.max_motion:
        return "too_much_motion"
    if clip.sharpness < thresholds.min_sharpness:
        return "blurry"
    if clip.text > thresholds.max_text:
        return "text"
    return None


def judge_clips(clips: list[Shot], thresholds: Thresholds) -> None:
    """Set each clip's `reason` (None keeps it), checked in this order: low_resolution (short side
    of the content after the border crop), too_short, static, too_much_motion, blurry, text
    (burned-in text over `max_text` of the frame, docs/datasets.md#burned-in-text), duplicate
    (of an earlier kept clip, across all videos: perceptual hashes within `dedup` bits, then
    clip embeddings at least `embed_dedup` similar; `dedup` -1 turns both off,
    docs/datasets.md#content-level-de-duplication-and-balance)."""
    kept_hashes = np.zeros((len(clips), REPRESENTATIVE_FRAMES), np.uint64)
    kept_names: list[str] = []
    kept_vectors: np.ndarray | None = None  # unit embeddings of the kept clips that have one
    kept_windows: list[np.ndarray] = []  # ... and their windows'
    vector_names: list[str] = []
    for clip in clips:
        clip.duplicate_of = clip.similarity = None
        clip.reason = limit_reason(clip, thresholds)
        if clip.reason is None and thresholds.dedup >= 0 and kept_names:
            distance = clip_distance(
                kept_hashes[: len(kept_names)], np.array(clip.phash, np.uint64)
            )
            nearest = int(np.argmin(distance))
            if distance[nearest] <= thresholds.dedup:
                clip.reason, clip.duplicate_of = "duplicate", kept_names[nearest]
        embedded = clip.windows is not None and min(thresholds.dedup, thresholds.embed_dedup) >= 0
        if clip.reason is None and embedded:
            if kept_vectors is not None and vector_names:
                best, similarity = embeddings.nearest_copy(
                    kept_vectors[: len(vector_names)], kept_windows, clip.embedding, clip.windows
                )
                if similarity >= thresholds.embed_dedup:
                    clip.reason, clip.duplicate_of = "duplicate", vector_names[best]
                    clip.similarity = round(similarity, 4)
        if clip.reason is None:
            kept_hashes[len(kept_names)] = clip.phash
            kept_names.append(clip.name)
            if clip.windows is not None:
                if kept_vectors is None:
                    kept_vectors = np.zeros((len(clips), len(clip.embedding)), np.float32)
                kept_vectors[len(vector_names)] = clip.embedding
                kept_windows.append(clip.windows)
                vector_names.append(clip.name)


def check_embeddings(settings: AnalysisSettings, thresholds: Thresholds) -> None:
    """ValueError if `thresholds` balance clusters without the embeddings `settings` would make."""
    if thresholds.balance and settings.embed == "off":
        raise ValueError(
            f"`balance` clusters clip embeddings: use `embed` i3d ({embeddings.I3D_INSTALL})"
        )


def balance_clips(clips: list[Shot], thresholds: Thresholds) -> None:
    """With `balance` K > 0, cluster the kept clips' embeddings into K clusters (k-means) and
    drop kept clips at random from the clusters holding more frames than the median cluster, as
    `over_represented` (docs/datasets.md#content-level-de-duplication-and-balance). Every clip
    with an embedding gets its `cluster` (dropped ones: the nearest centroid's). Runs after
    `judge_clips`; kept clips without an embedding (shorter than a window) stay out of it."""
    for clip in clips:
        clip.cluster = None
    kept = [clip for clip in clips if clip.reason is None and clip.embedding is not None]
    if thresholds.balance <= 0 or not kept:
        return
    found = embeddings.cluster(np.stack([clip.embedding for clip in kept]), thresholds.balance)
    others = [clip for clip in clips if clip.reason is not None and clip.embedding is not None]
    if others:
        labels = found.assign(np.stack([clip.embedding for clip in others]))
        for clip, label in zip(others, labels.tolist()):
            clip.cluster = label
    keep = embeddings.balance([clip.num_frames for clip in kept], found.labels)
    for clip, label, keep_it in zip(kept, found.labels.tolist(), keep.tolist()):
        clip.cluster = label
        if not keep_it:
            clip.reason = "over_represented"


def judge_stages(clips: list[Shot], thresholds: Thresholds) -> None:
    """Record in each clip's `stages` its verdict at every preset, loose to strict
    (docs/datasets.md#strictness-stages): a stage judges only the clips the previous stage kept,
    so the kept sets nest; with `balance`, each stage balances what it keeps. Leaves `reason`
    and `duplicate_of` unset: `judge_clips` and `balance_clips` come after."""
    survivors = list(clips)
    for clip in clips:
        clip.stages = {}
    for name in PRESETS:
        judge_clips(survivors, thresholds.stage(name))
        balance_clips(survivors, thresholds.stage(name))
        for clip in survivors:
            clip.stages[name] = clip.reason or "kept"
        survivors = [clip for clip in survivors if clip.reason is None]
    for clip in clips:
        clip.reason = clip.duplicate_of = None


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
            "text": round(shot.text, 5),
            "phash": [f"{h:016x}" for h in shot.phash],
        },
    }
    if shot.reason:
        entry["reason"] = shot.reason
    if shot.duplicate_of:
        entry["duplicate_of"] = shot.duplicate_of
    if shot.similarity is not None:
        entry["similarity"] = shot.similarity
    if shot.cluster is not None:
        entry["cluster"] = shot.cluster
    if shot.stages:
        entry["stages"] = dict(shot.stages)
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
    text = _number(scores, "text", f"{where}.scores") if "text" in scores else 0.0
    hashes = _field(scores, "phash", list, f"{where}.scores")
    if not all(isinstance(h, str) and re.fullmatch(r"[0-9a-fA-F]{1,16}", h) for h in hashes):
        raise ValueError(f"{where}.scores.phash is not a list of 64-bit hex strings")
    reason, duplicate_of = (
        _field(entry, key, (str, type(None)), where, None) for key in ("reason", "duplicate_of")
    )
    boundary = _field(entry, "boundary", str, where, "start")
    stages = _field(entry, "stages", dict, where, {})
    for name, verdict in stages.items():
        if name not in PRESETS or not isinstance(verdict, str):
            raise ValueError(
                f"{where}.stages has {_shown(name)}: {_shown(verdict)}; stages are "
                f'{", ".join(PRESETS)}, each "kept" or a reason'
            )
    cluster = _field(entry, "cluster", (int, type(None)), where, None)
    if cluster is not None and not 0 <= cluster < LIMIT:
        raise ValueError(f"{where}.cluster {cluster} is not a cluster number (>= 0)")
    similarity = None if entry.get("similarity") is None else _number(entry, "similarity", where)
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
        text=text,
        phash=tuple(int(h, 16) for h in hashes),
        boundary=boundary,
        crop=tuple(crop) if crop else None,
        reason=reason,
        duplicate_of=duplicate_of,
        stages=dict(stages),
        similarity=similarity,
        cluster=cluster,
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
    (int, type(None)): "an integer or null",
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
    embed_weights: str = ""  # sha256 of the I3D weights of the analyses' embeddings

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
            "dedup": self.dedup()["method"],
        }

    def dedup(self) -> dict[str, Any]:
        """Which near-duplicate checks ran (`method`: hash, i3d, hash+i3d or off), the embedding's
        model, weights and sampling, and the balance's clusters
        (docs/datasets.md#content-level-de-duplication-and-balance)."""
        t, embedded = self.thresholds, self.settings.embed == "i3d"
        methods = [
            name
            for name, on in (("hash", t.dedup >= 0), ("i3d", embedded and t.embed_dedup >= 0))
            if on and t.dedup >= 0  # `dedup` -1 turns both off
        ]
        out: dict[str, Any] = {"method": "+".join(methods) or "off", "hash_bits": t.dedup}
        if embedded:
            out["embed_dedup"] = t.embed_dedup
            out["embedding"] = {
                "model": "i3d-kinetics-400",
                "weights_sha256": self.embed_weights,
                "features": "400-d logits of the window's features pooled over time and space",
                "input_frames": "cropped to the content box, grey, levels standardised",
                "similarity": "per window the best match's cosine, averaged; the smaller way",
                "window_frames": embeddings.WINDOW,
                "every_seconds": embeddings.EVERY,
                "input": f"{embeddings.INPUT_SIZE}x{embeddings.INPUT_SIZE}",
            }
        if t.balance:
            clusters = sorted({clip.cluster for clip in self.clips if clip.cluster is not None})
            rows = []
            for c in clusters:
                members = [clip for clip in self.clips if clip.cluster == c]
                kept = [clip for clip in members if clip.reason is None]
                trimmed = [clip for clip in members if clip.reason == "over_represented"]
                rows.append(
                    {
                        "cluster": c,
                        "kept": len(kept),
                        "kept_frames": sum(clip.num_frames for clip in kept),
                        "dropped": len(trimmed),
                        "dropped_frames": sum(clip.num_frames for clip in trimmed),
                    }
                )
            before = [row["kept_frames"] + row["dropped_frames"] for row in rows]
            out["balance"] = {
                "clusters": t.balance,
                "found": len(rows),
                "target_frames": float(np.median(before)) if before else 0.0,
                "per_cluster": rows,
            }
        return out

    def stage_summaries(self) -> list[dict[str, Any]]:
        """Per preset, loose to strict: its limits, what it judged, kept and dropped, and why
        (docs/datasets.md#strictness-stages)."""
        out = []
        for name in PRESETS:
            judged = [clip for clip in self.clips if name in clip.stages]
            kept = [clip for clip in judged if clip.stages[name] == "kept"]
            dropped = Counter(clip.stages[name] for clip in judged if clip.stages[name] != "kept")
            out.append(
                {
                    "name": name,
                    "limits": PRESETS[name],
                    "judged": len(judged),
                    "kept": len(kept),
                    "kept_seconds": round(sum(clip.seconds for clip in kept), 3),
                    "dropped": dict(sorted(dropped.items())),
                }
            )
        return out

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
            "dedup": self.dedup(),
            "text": text_detection.describe(self.settings.text),
            "transitions": [
                {"video": video, **t.to_json()}
                for video, found in self.transitions.items()
                for t in found
            ],
            "summary": self.summary(),
            "stages": self.stage_summaries(),
            "kept": [shot_to_json(clip) for clip in self.kept],
            "dropped": dropped,
        }


def curate(analyses: list[VideoAnalysis], src: str, thresholds: Thresholds) -> Curation:
    """Shots and verdicts for `analyses` (in their order, which decides who is a duplicate)."""
    settings = analyses[0].settings if analyses else AnalysisSettings()
    check_embeddings(settings, thresholds)
    readable = [a for a in analyses if a.error is None]
    clips = [clip for a in readable for clip in split_clips(a, thresholds)]
    judge_stages(clips, thresholds)
    judge_clips(clips, thresholds)
    balance_clips(clips, thresholds)
    unreadable = {a.video: a.error for a in analyses if a.error is not None}
    transitions = {a.video: find_transitions(a, thresholds) for a in readable}
    weights = next((a.embed_weights for a in readable if a.embed_weights), "")
    return Curation(
        src, settings, thresholds, clips, unreadable, len(analyses), transitions, weights
    )


def write_manifest(path: str | os.PathLike, curation: Curation) -> None:
    write_atomic(path, (json.dumps(curation.to_json(), indent=2) + "\n").encode())


def read_manifest(path: str | os.PathLike, stage: str | None = None) -> list[Shot]:
    """The kept clips of a manifest written by `write_manifest`, or those kept at strictness
    `stage` (a preset name); ValueError says what is wrong."""
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
    entries = [(f"kept[{i}]", entry) for i, entry in enumerate(kept)]
    if stage is not None:
        entries = _stage_entries(path, data, stage)
    try:
        return [shot_from_json(entry, where) for where, entry in entries]
    except ValueError as e:
        raise ValueError(
            f"manifest {path}: {e}; fix the entry or make a new manifest with lvg-dataset curate SRC"
        ) from None


def _stage_entries(path, data: dict, stage: str) -> list[tuple[str, Any]]:
    """The entries of kept and dropped shots that strictness `stage` kept, in video and frame
    order (docs/datasets.md#strictness-stages)."""
    if stage not in PRESETS:
        raise ValueError(f"`stage` {stage!r} is not one of {', '.join(PRESETS)}")
    if not isinstance(data.get("stages"), list):
        raise ValueError(
            f"manifest {path} has no strictness stages; re-run lvg-dataset curate with the same "
            "--out (the cached analyses make it quick)"
        )
    dropped = data.get("dropped")
    if not isinstance(dropped, list):
        raise ValueError(f"manifest {path}: dropped is not a list; make a new one")
    entries = [(f"kept[{i}]", e) for i, e in enumerate(data["kept"])]
    entries += [(f"dropped[{i}]", e) for i, e in enumerate(dropped)]
    chosen = [
        (where, e)
        for where, e in entries
        if isinstance(e, dict)
        and isinstance(e.get("stages"), dict)
        and e["stages"].get(stage) == "kept"
    ]
    return sorted(chosen, key=lambda item: (str(item[1].get("video")), _order(item[1])))


def _order(entry: dict) -> int:
    value = entry.get("start_frame")
    return value if isinstance(value, int) else -1
