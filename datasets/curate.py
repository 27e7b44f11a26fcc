"""Dataset curation, the analysis (issue 9): split source videos into shots and measure them.

Pipeline, one obvious place per step (three modules):

* `analyse_video` decodes a video once at a small width (`AnalysisSettings.width`, ~128 px) and
  measures per frame: a cut score against the previous frame (colour-histogram distance plus
  mean absolute grey difference), motion (mean optical-flow magnitude in % of the frame width per
  frame: OpenCV Farneback, or without OpenCV the normal flow of frame differences), sharpness
  (variance of the Laplacian) and a 64-bit DCT perceptual hash.
* `AnalysisCache` keeps those per-frame arrays, one `.npz` per video keyed by path + size + mtime,
  so shots and thresholds can be re-derived without decoding and an interrupted run resumes;
  `analyse_videos` runs the analyses on a process pool or a Ray cluster (`parallel_map`).
* Shot boundaries (`--shots`, `datasets.shots`): TransNetV2 scores every frame for hard cuts and
  gradual transitions (fades, dissolves) from the same decode at 48x27; the `classic` fallback,
  `detect_cuts`, starts a new shot where the cut score exceeds a rolling median + k MAD.
  `split_clips` turns shots into scored `Shot`s, gradual transitions cut out.
* `datasets.manifest`: `judge_clips` applies `Thresholds` (the verdicts), `curate` gathers them in
  a `Curation`, `write_manifest` writes the JSON manifest that `lvg-dataset from-videos
  --manifest` reads back with `read_manifest`.
* `datasets.report`: `write_report` draws a contact sheet (HTML or PNG) to check thresholds.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TypeVar

import av
import numpy as np
import scipy.fft
import scipy.ndimage
import torch
from av.video.reformatter import VideoReformatter
from PIL import Image

from datasets import embeddings, filters
from datasets import shots as boundaries
from datasets import text as text_detection
from datasets.video_io import TRUNCATION_SLACK, VideoReadError, av_reason, name_problem
from torch_utils.misc import write_atomic

if TYPE_CHECKING:
    from datasets.cluster import RayCluster

try:  # OpenCV is only needed for Farneback optical flow; frame differences are the fallback.
    import cv2
except ImportError:  # pragma: no cover - depends on the environment
    cv2 = None

ANALYSIS_VERSION = 3  # bump when per-frame measurements change: invalidates every cache entry
MOTION_METHODS = ("farneback", "framediff")
REPRESENTATIVE_FRAMES = 3  # frames per clip hashed for near-duplicate detection
MIN_CUT_GAP_SECONDS = 0.25  # of several cut candidates closer than this, the strongest wins
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------
# Settings


def default_motion_method() -> str:
    """Farneback optical flow if OpenCV is installed, else frame differences."""
    return "farneback" if cv2 is not None else "framediff"


@dataclass(frozen=True)
class AnalysisSettings:
    """How per-frame measurements are taken; a cache entry is reused only for equal settings."""

    width: int = 128  # analysis width in pixels (height keeps the aspect ratio)
    motion_method: str = field(default_factory=default_motion_method)
    shots: str = field(default_factory=boundaries.default_detector)  # `datasets.shots` detector
    device: str = field(default="auto", compare=False)  # TransNetV2's device; results agree
    border_black: int = 32  # grey level (0..255) up to which a pixel counts as black border
    embed: str = "off"  # clip embeddings for near-duplicates and balance: i3d or off
    text: str = "off"  # burned-in text detector (`datasets.text`): ppocr or off

    def __post_init__(self) -> None:
        if self.shots not in boundaries.SHOT_DETECTORS:
            raise ValueError(f"`shots` must be one of {boundaries.SHOT_DETECTORS}")
        if self.shots == "transnetv2" and boundaries.transnetv2_version() is None:
            raise ValueError(
                f"`shots` transnetv2 needs the model: {boundaries.TRANSNETV2_INSTALL} "
                "(or use the classic detector: `shots` classic)"
            )
        boundaries.resolve_device(self.device)
        if self.embed not in embeddings.EMBED_METHODS:
            raise ValueError(f"`embed` must be one of {embeddings.EMBED_METHODS}")
        if self.embed == "i3d" and embeddings.weights() is None:
            raise ValueError(
                f"`embed` i3d needs the I3D weights: {embeddings.I3D_INSTALL} (or `embed` off)"
            )
        if self.text not in text_detection.TEXT_DETECTORS:
            raise ValueError(f"`text` must be one of {text_detection.TEXT_DETECTORS}")
        if self.text == "ppocr" and not text_detection.available():
            raise ValueError(
                f"`text` ppocr needs the PP-OCR detector: {text_detection.INSTALL} (or `text` off)"
            )
        if not 0 <= self.border_black < 255:
            raise ValueError(f"`border_black` must be a grey level 0..254, got {self.border_black}")
        if self.width < 16:
            raise ValueError(f"`analysis_width` must be >= 16 pixels, got {self.width}")
        if self.motion_method not in MOTION_METHODS:
            raise ValueError(f"`motion_method` must be one of {MOTION_METHODS}")
        if self.motion_method == "farneback" and cv2 is None:
            raise ValueError(
                "Farneback motion needs OpenCV: pip install opencv-python-headless "
                "(or use frame differences: `motion_method` framediff)"
            )


@dataclass(frozen=True)
class Thresholds:
    """Shot detection and the rules that keep or drop a clip (re-applied without decoding)."""

    min_seconds: float = 2.0  # shorter clips: too_short
    min_motion: float = 0.05  # % of the frame width per frame; less: static
    max_motion: float = 8.0  # more: too_much_motion
    min_sharpness: float = 20.0  # variance of the Laplacian at the analysis width; less: blurry
    dedup: int = 6  # Hamming distance (of 64 bits) for a near-duplicate; -1 turns dedup off
    cut_k: float = 8.0  # a cut scores this many (normal-scaled) MADs above the rolling median
    cut_min: float = 0.15  # ... and at least this much (scores are in [0, 1])
    cut_window: float = 1.0  # seconds on each side of the rolling median
    shot_threshold: float = 0.35  # TransNetV2: a transition's score peaks above this ...
    shot_extent: float = 0.05  # ... and spans the frames scoring above this (both in [0, 1])
    min_border: float = filters.MIN_BORDER  # black bars at least this share are cropped away
    min_resolution: int = (
        0  # short side (pixels) of the content after cropping; less: low_resolution
    )
    sharp_start: float = 0.5  # seconds: a shot starts at the sharpest frame this near its cut
    # clip embeddings (docs/datasets.md#content-level-de-duplication-and-balance):
    embed_dedup: float = 0.85  # window similarity to an earlier kept shot: duplicate; -1: off
    # (`dedup` -1 turns both checks off)
    balance: int = 0  # k-means clusters of the kept shots trimmed to the median one; 0: off
    max_text: float = 0.01  # share of the frame covered by burned-in text; more: text

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not math.isfinite(value):
                raise ValueError(f"`{name}` must be a finite number, got {value}")
        if self.min_seconds < 0 or self.min_motion < 0 or self.min_sharpness < 0:
            raise ValueError("`min_seconds`, `min_motion` and `min_sharpness` must be >= 0")
        if self.max_motion < self.min_motion:
            raise ValueError(
                f"`max_motion` {self.max_motion} is below `min_motion` {self.min_motion}"
            )
        if not -1 <= self.dedup <= 64:
            raise ValueError(f"`dedup` must be -1 (off) or 0..64 bits, got {self.dedup}")
        if self.cut_k < 0 or not 0 <= self.cut_min <= 1 or self.cut_window <= 0:
            raise ValueError("need `cut_k` >= 0, 0 <= `cut_min` <= 1 and a positive cut window")
        if not 0 <= self.min_border < 0.5 or self.min_resolution < 0 or self.sharp_start < 0:
            raise ValueError(
                "need 0 <= `min_border` < 0.5, `min_resolution` >= 0 and `sharp_start` >= 0"
            )
        if not 0 <= self.shot_extent <= self.shot_threshold <= 1:
            raise ValueError(
                f"need 0 <= `shot_extent` {self.shot_extent} <= `shot_threshold` "
                f"{self.shot_threshold} <= 1"
            )
        if not (0 <= self.embed_dedup <= 1 or self.embed_dedup == -1):
            raise ValueError(
                f"`embed_dedup` must be -1 (off) or a similarity 0..1, got {self.embed_dedup}"
            )
        if not 0 <= self.max_text <= 1:
            raise ValueError(f"`max_text` must be a share of the frame 0..1, got {self.max_text}")
        if self.balance < 0 or self.balance == 1 or self.balance != int(self.balance):
            raise ValueError(
                f"`balance` must be 0 (off) or a number of clusters >= 2, got {self.balance}"
            )

    @classmethod
    def preset(cls, name: str, **overrides: float) -> Thresholds:
        """The named preset's limits (docs/datasets.md#strictness-stages), `overrides` on top."""
        if name not in PRESETS:
            raise ValueError(f"`preset` {name!r} is not one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def stage(self, name: str) -> Thresholds:
        """These thresholds with the filter limits of preset `name`; shot detection unchanged."""
        return replace(self, **PRESETS[name])


# Named strictness presets, loose to strict (docs/datasets.md#strictness-stages): the filter limits
# only; shot detection is shared by every stage. `standard` is the `Thresholds` defaults.
PRESETS: dict[str, dict[str, float]] = {
    "loose": dict(
        min_seconds=1.0,
        min_motion=0.02,
        max_motion=12.0,
        min_sharpness=10.0,
        dedup=4,
        min_resolution=0,
        max_text=0.03,
    ),
    "standard": dict(
        min_seconds=2.0,
        min_motion=0.05,
        max_motion=8.0,
        min_sharpness=20.0,
        dedup=6,
        min_resolution=0,
        max_text=0.01,
    ),
    "strict": dict(
        min_seconds=4.0,
        min_motion=0.1,
        max_motion=5.0,
        min_sharpness=40.0,
        dedup=10,
        min_resolution=288,  # twice the super-resolution frames' height (144)
        max_text=0.002,
    ),
}


# ---------------------------------------------------------------------------------------------------
# Decoding at a small size


class SmallVideo:
    """Decode the first video stream at `width` pixels wide (swscale area filter), RGB uint8.

    Frames are numbered and timed exactly as `video_io.read_video` numbers them (every decoded
    frame, seconds from the stream's first timestamp), so clip frame ranges carry over. Errors,
    truncation included, raise `VideoReadError` like `read_video`.
    """

    def __init__(self, path: str | os.PathLike, width: int):
        self.path = Path(path)
        try:
            self._container = av.open(str(path))
        except (av.FFmpegError, OSError) as e:
            raise VideoReadError(path, f"cannot open ({av_reason(e)})") from e
        if not self._container.streams.video:
            self._container.close()
            raise VideoReadError(path, "no video stream")
        self._stream = stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        self.fps = float(rate)
        self.width = width
        self._reformatter = VideoReformatter()  # reused: keeps one sws context
        self._network_reformatter = VideoReformatter()
        self.source_size = (stream.height, stream.width)  # of the last decoded frame
        self._t0 = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        self._duration = float(stream.duration * stream.time_base) if stream.duration else None

    def frames(self, stop: int | None = None) -> Iterator[tuple[float, np.ndarray]]:
        """(seconds from the stream start, RGB uint8 `[h, width, 3]`) per frame; `stop` ends
        early after that many frames (skipping the truncation check)."""
        for t, image, *_ in self.analysis_frames(stop):
            yield t, image

    def analysis_frames(
        self,
        stop: int | None = None,
        network_size: tuple[int, int] | None = None,
        border_every: int = 0,
        border_black: int = 0,
        text_every: int = 0,
    ) -> Iterator[
        tuple[float, np.ndarray, np.ndarray | None, tuple[int, ...] | None, np.ndarray | None]
    ]:
        """`frames`, each also scaled to `network_size` (height, width; bicubic, aspect ignored,
        as ffmpeg's `-s 48x27` scales TransNetV2's input; None without a size), and every
        `border_every`-th frame's `filters.content_box` at full resolution (else None; (-1,) * 4
        for a black frame), and every `text_every`-th frame at the text detector's input size
        (`datasets.text.input_size`, else None)."""
        count, last_time = 0, None
        try:
            for frame in self._container.decode(self._stream):
                if stop is not None and count >= stop:
                    return
                height = max(2, 2 * round(self.width * frame.height / frame.width / 2))
                image = self._reformatter.reformat(
                    frame, width=self.width, height=height, format="rgb24", interpolation="AREA"
                ).to_ndarray()
                network = None
                if network_size is not None:
                    network = self._network_reformatter.reformat(
                        frame,
                        width=network_size[1],
                        height=network_size[0],
                        format="rgb24",
                        interpolation="BICUBIC",
                    ).to_ndarray()
                box = None
                if border_every and count % border_every == 0:
                    luma = frame.to_ndarray(format="gray")
                    box = filters.content_box(luma, border_black) or (-1, -1, -1, -1)
                text_image = None
                if text_every and count % text_every == 0:
                    text_image = self._text_input(frame, border_black)
                self.source_size = (frame.height, frame.width)
                last_time = count / self.fps if frame.time is None else frame.time - self._t0
                count += 1
                yield last_time, image, network, box, text_image
        except av.FFmpegError as e:
            reason = f"decoding failed after {count} frames ({av_reason(e)})"
            raise VideoReadError(self.path, reason) from e
        if count == 0:
            raise VideoReadError(self.path, "no frames decoded")
        if (
            self._duration
            and last_time is not None
            and last_time < self._duration - TRUNCATION_SLACK
        ):
            reason = f"truncated (frames stop at {last_time:.2f} s of {self._duration:.2f} s)"
            raise VideoReadError(self.path, reason)

    @staticmethod
    def _text_input(frame: av.VideoFrame, border_black: int) -> np.ndarray:
        """The frame's content (black borders cropped away: `filters.content_box`) scaled to
        the text detector's input size (docs/datasets.md#burned-in-text)."""
        rgb = frame.to_ndarray(format="rgb24")
        box = filters.content_box(frame.to_ndarray(format="gray"), border_black)
        if box is not None:
            x0, y0, x1, y1 = box
            rgb = rgb[y0:y1, x0:x1]
        height, width = text_detection.input_size(*rgb.shape[:2])
        return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> SmallVideo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------
# Per-frame measurements


def grey(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB uint8 frame, float32 in [0, 255]."""
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """Normalised joint RGB histogram with 8 bins per channel (512 bins, sums to 1)."""
    q = rgb >> 5
    index = (q[..., 0].astype(np.int32) << 6) | (q[..., 1].astype(np.int32) << 3) | q[..., 2]
    return np.bincount(index.ravel(), minlength=512).astype(np.float32) / index.size


def laplacian_variance(luma: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (OpenCV's ksize=1 kernel): low means blurry."""
    lap = luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4 * luma[1:-1, 1:-1]
    return float(lap.var())


def phash(luma: np.ndarray) -> int:
    """64-bit DCT perceptual hash: box-resize to 32x32, 2-D DCT, top-left 8x8 coefficients,
    bit = coefficient above their median (the DC term is left out of the median)."""
    small = Image.fromarray(np.clip(luma, 0, 255).astype(np.uint8)).resize((32, 32), Image.BOX)
    coefficients = scipy.fft.dctn(np.asarray(small, np.float32), norm="ortho")[:8, :8].ravel()
    bits = coefficients > np.median(coefficients[1:])
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance of broadcastable uint64 hash arrays."""
    x = np.ascontiguousarray(np.bitwise_xor(a, b), dtype=np.uint64)
    return _POPCOUNT[x.view(np.uint8).reshape(*x.shape, 8)].sum(-1, dtype=np.int64)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def motion_farneback(prev: np.ndarray, cur: np.ndarray) -> float:
    """Mean Farneback optical-flow magnitude between two grey frames, in pixels.

    Pixels that did not change count as still: Farneback reports a spurious ~0.1 px flow on
    identical frames with stripe-like texture, which would make a frozen shot look alive.
    """
    a, b = _to_uint8(prev), _to_uint8(cur)
    flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return float((np.hypot(flow[..., 0], flow[..., 1]) * (a != b)).mean())


def motion_framediff(prev: np.ndarray, cur: np.ndarray) -> float:
    """Optical-flow magnitude estimated without OpenCV, in pixels: the normal flow |dI/dt| / |grad I|
    summed over the frame (for isotropic texture the mean |grad I| along the motion is 2/pi of
    |grad I|). Close to Farneback for small motions; saturates beyond the texture's scale."""
    dt = np.abs(cur - prev).sum()
    mean = 0.5 * (cur + prev)
    gy, gx = np.gradient(mean)
    gradient = np.hypot(gx, gy).sum() * (2 / math.pi)
    return float(dt / gradient) if gradient > 1e-3 else 0.0


def _to_uint8(luma: np.ndarray) -> np.ndarray:
    return np.clip(luma + 0.5, 0, 255).astype(np.uint8)


MOTION_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "farneback": motion_farneback,
    "framediff": motion_framediff,
}


# ---------------------------------------------------------------------------------------------------
# One video's analysis and its cache


@dataclass
class VideoAnalysis:
    """Per-frame measurements of one video (`error` set if it could not be read)."""

    video: str  # path relative to SRC, with '/' separators
    size: int
    mtime_ns: int
    settings: AnalysisSettings
    fps: float = 0.0
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))  # seconds from the start
    cut_score: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [0] is 0
    motion: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [0] is 0
    sharpness: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    phash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    # TransNetV2's one-hot and many-hot transition probabilities (empty with the classic detector)
    transition: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    transition_many: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    # frames sampled for black borders and their content boxes (x0, y0, x1, y1; -1: black frame)
    border_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    border_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int32))
    # I3D windows (`datasets.embeddings`): first frames and embeddings (empty with `embed` off)
    embed_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    embed_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float16))
    # frames sampled for burned-in text and the share of each covered by text (`datasets.text`)
    text_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    text_shares: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    error: str | None = None
    source_height: int = 0  # the decoded frames' size
    source_width: int = 0
    embed_weights: str = ""  # sha256 of the I3D weights that made `embed_vectors`

    ARRAYS = (
        "times",
        "cut_score",
        "motion",
        "sharpness",
        "phash",
        "transition",
        "transition_many",
        "border_frames",
        "border_boxes",
        "embed_starts",
        "embed_vectors",
        "text_frames",
        "text_shares",
    )

    @property
    def num_frames(self) -> int:
        return len(self.times)

    def matches(self, size: int, mtime_ns: int, settings: AnalysisSettings) -> bool:
        """Made from this file with these settings (and, for embeddings, the installed weights)."""
        if (self.size, self.mtime_ns, self.settings) != (size, mtime_ns, settings):
            return False
        without_vectors = settings.embed == "off" or self.error is not None
        return without_vectors or self.embed_weights == embeddings.weights_sha256()


def video_name_problem(video: str) -> str | None:
    """Why the video at `video` (relative to SRC) cannot be curated, or None: the path and the
    clip dirs named after it must be relative, normalised POSIX paths
    (docs/datasets.md#names-and-paths); e.g. `...mp4` would give clip dirs under `..`."""
    problem = name_problem(video)
    if problem or video == ".":
        return problem or "is not a file name"
    stem = PurePosixPath(video).with_suffix("").as_posix()
    return name_problem(stem) and f"would give the clip dirs {stem!r}/..."


def analyse_video(src: str | os.PathLike, video: str, settings: AnalysisSettings) -> VideoAnalysis:
    """Decode `src/video` once at `settings.width` and measure every frame (see module doc)."""
    path = Path(src) / video
    stat = path.stat()
    result = VideoAnalysis(video, stat.st_size, stat.st_mtime_ns, settings)
    problem = video_name_problem(video)
    if problem:  # its shots could not be written: say so now, not after from-videos reads it
        result.error = f"its path {problem}; rename it"
        return result
    motion_fn = MOTION_FUNCTIONS[settings.motion_method]
    rows: list[tuple[float, float, float, float, int]] = []
    prev_luma = prev_hist = None
    network = None
    if settings.shots == "transnetv2":
        network = boundaries.TransNetV2Scores(settings.device)
    network_size = boundaries.NETWORK_SIZE if network else None
    border_frames: list[int] = []
    border_boxes: list[tuple[int, ...]] = []
    embedder = None
    detector = text_detection.detector() if settings.text == "ppocr" else None
    text_frames: list[int] = []
    text_shares: list[float] = []
    try:
        with SmallVideo(path, settings.width) as reader:
            result.fps = reader.fps
            if settings.embed == "i3d":
                embedder = embeddings.WindowEmbedder(reader.fps)
            every = max(1, round(reader.fps / filters.SAMPLES_PER_SECOND))
            text_every = max(1, round(reader.fps / text_detection.SAMPLES_PER_SECOND))
            frames = reader.analysis_frames(
                None, network_size, every, settings.border_black, text_every if detector else 0
            )
            for t, rgb, small, box, text_image in frames:
                if network is not None:
                    network.add(small)
                if box is not None:
                    border_frames.append(len(rows))
                    border_boxes.append(box)
                if embedder is not None:
                    embedder.add(len(rows), rgb, box, reader.source_size)
                if text_image is not None:
                    text_frames.append(len(rows))
                    text_shares.append(detector.share(text_image))
                luma, hist = grey(rgb), colour_histogram(rgb)
                cut = motion = 0.0
                if prev_luma is not None and prev_luma.shape != luma.shape:
                    cut = 1.0  # the frame size changed mid-stream: certainly a new shot
                elif prev_luma is not None:
                    hist_distance = 0.5 * float(np.abs(hist - prev_hist).sum())
                    cut = 0.5 * (hist_distance + float(np.abs(luma - prev_luma).mean()) / 255)
                    motion = 100 * motion_fn(prev_luma, luma) / luma.shape[1]
                rows.append((t, cut, motion, laplacian_variance(luma), phash(luma)))
                prev_luma, prev_hist = luma, hist
    except VideoReadError as e:
        result.error = e.reason
        return result
    columns = list(zip(*rows))
    result.times = np.asarray(columns[0], np.float64)
    result.cut_score, result.motion, result.sharpness = (
        np.asarray(c, np.float32) for c in columns[1:4]
    )
    result.phash = np.asarray(columns[4], np.uint64)
    if network is not None:
        result.transition, result.transition_many = network.finish()
    result.border_frames = np.asarray(border_frames, np.int64)
    result.border_boxes = np.asarray(border_boxes, np.int32).reshape(-1, 4)
    result.text_frames = np.asarray(text_frames, np.int64)
    result.text_shares = np.asarray(text_shares, np.float32)
    result.source_height, result.source_width = reader.source_size
    if embedder is not None:
        result.embed_starts, result.embed_vectors = embedder.finish()
        result.embed_weights = embeddings.weights_sha256()
    return result


class AnalysisCache:
    """Per-video analyses in `folder`, one `<sha1 of path>.npz` each, written atomically.

    An entry is used only if the video's size, mtime and the analysis settings are unchanged.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def path_for(self, video: str) -> Path:
        return self.folder / f"{hashlib.sha1(video.encode()).hexdigest()[:20]}.npz"

    def load(
        self, src: str | os.PathLike, video: str, settings: AnalysisSettings
    ) -> VideoAnalysis | None:
        """The cached analysis of `src/video`, or None if missing, stale or unreadable."""
        stat = (Path(src) / video).stat()
        try:
            with np.load(self.path_for(video), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("version") != ANALYSIS_VERSION or meta.get("video") != video:
                    return None
                analysis = VideoAnalysis(
                    video,
                    meta["size"],
                    meta["mtime_ns"],
                    AnalysisSettings(**meta["settings"]),
                    meta["fps"],
                    *(data[name] for name in VideoAnalysis.ARRAYS),
                    error=meta["error"],
                    source_height=meta["source"][0],
                    source_width=meta["source"][1],
                    embed_weights=meta.get("embed_weights", ""),
                )
        except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile):
            return None
        return analysis if analysis.matches(stat.st_size, stat.st_mtime_ns, settings) else None

    def save(self, analysis: VideoAnalysis) -> None:
        meta = {
            "version": ANALYSIS_VERSION,
            "video": analysis.video,
            "size": analysis.size,
            "mtime_ns": analysis.mtime_ns,
            "settings": asdict(analysis.settings),
            "fps": analysis.fps,
            "error": analysis.error,
            "source": [analysis.source_height, analysis.source_width],
            "embed_weights": analysis.embed_weights,
        }
        buffer = io.BytesIO()
        arrays = {name: getattr(analysis, name) for name in VideoAnalysis.ARRAYS}
        np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path_for(analysis.video), buffer.getvalue())


def _init_worker() -> None:
    """One thread per worker: the processes already use every core. For torch (TransNetV2) it
    also matters for correctness: a process forked after its parent ran torch's OpenMP thread
    pool hangs in its first parallel region; with one thread torch never enters one."""
    if cv2 is not None:
        cv2.setNumThreads(1)
    torch.set_num_threads(1)


def parallel_map(
    fn: Callable[..., T], tasks: list[tuple], workers: int, cluster: RayCluster | None = None
) -> Iterator[tuple[int, T]]:
    """(index, fn(*task)) as tasks finish, on `workers` processes (in this process if <= 1), or
    with a `cluster` on its Ray workers, one CPU per task (docs/datasets.md#running-on-a-cluster-ray;
    `fn` and the tasks must pickle, and paths in them be absolute)."""
    if cluster is not None:
        yield from cluster.imap_unordered(fn, tasks)
        return
    if workers <= 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            yield i, fn(*task)
        return
    with ProcessPoolExecutor(min(workers, len(tasks)), initializer=_init_worker) as pool:
        futures = {pool.submit(fn, *task): i for i, task in enumerate(tasks)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()


def analyse_videos(
    src: str | os.PathLike,
    videos: list[str],
    settings: AnalysisSettings,
    cache: AnalysisCache,
    workers: int = 1,
    progress: Callable[[Iterable[T], int], Iterable[T]] | None = None,
    cluster: RayCluster | None = None,
) -> tuple[list[VideoAnalysis], int]:
    """Analyses of `videos` (paths relative to `src`), from the cache where it is current; the
    rest on `workers` processes or the Ray `cluster` (`parallel_map`).

    This process stores each analysis in the cache as it arrives, so an interrupted run (or a
    cluster lost midway) resumes where it stopped. Returns the analyses in the order of
    `videos` and how many were decoded in this call.
    """
    results: list[VideoAnalysis | None] = [cache.load(src, video, settings) for video in videos]
    todo = [i for i, result in enumerate(results) if result is None]
    tasks = [(os.path.abspath(src), videos[i], settings) for i in todo]
    done = parallel_map(analyse_video, tasks, workers, cluster)
    for k, analysis in progress(done, len(tasks)) if progress and tasks else done:
        cache.save(analysis)
        results[todo[k]] = analysis
    return results, len(todo)


# ---------------------------------------------------------------------------------------------------
# Shots, clips and thresholds


def detect_cuts(score: np.ndarray, fps: float, thresholds: Thresholds) -> np.ndarray:
    """Frame indices that start a new shot (hard cuts; gradual fades are not detected).

    Frame t is a cut if its score (change from frame t-1) exceeds both `cut_min` and the rolling
    median + `cut_k` * 1.4826 * MAD over `cut_window` seconds each side. Of candidates closer
    than `MIN_CUT_GAP_SECONDS`, the highest-scoring wins.
    """
    if len(score) < 2:
        return np.zeros(0, np.int64)
    s = np.asarray(score[1:], np.float64)
    size = 2 * max(2, round(thresholds.cut_window * fps)) + 1
    median = scipy.ndimage.median_filter(s, size=size, mode="nearest")
    mad = scipy.ndimage.median_filter(np.abs(s - median), size=size, mode="nearest")
    limit = np.maximum(thresholds.cut_min, median + thresholds.cut_k * MAD_TO_SIGMA * mad)
    gap = max(1, round(MIN_CUT_GAP_SECONDS * fps))
    cuts: list[int] = []
    for i in np.flatnonzero(s > limit):
        if cuts and i - cuts[-1] < gap:
            if s[i] > s[cuts[-1]]:
                cuts[-1] = int(i)
        else:
            cuts.append(int(i))
    return np.asarray(cuts, np.int64) + 1


@dataclass
class Shot:
    """One shot of one video: frames [start_frame, end_frame), scores and the verdict."""

    video: str  # path relative to SRC
    start_frame: int
    end_frame: int  # exclusive
    start: float  # seconds from the stream start
    end: float
    fps: float
    motion: float  # mean flow magnitude, % of the frame width per frame
    sharpness: float  # median variance of the Laplacian
    cut_score: float  # score of the cut that starts the shot (0 at the video start)
    phash: tuple[int, ...]  # hashes of REPRESENTATIVE_FRAMES frames spread over the shot
    boundary: str = "start"  # what the shot follows: start (of the video), cut or gradual
    reason: str | None = None  # None: kept
    duplicate_of: str | None = None
    source: tuple[int, int] = (0, 0)  # (height, width) of the video's frames; (0, 0): unknown
    crop: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1): black borders cut away
    skipped_start: int = 0  # frames after the boundary skipped for a sharper first frame
    stages: dict[str, str] = field(default_factory=dict)  # preset -> "kept" or the reason
    # docs/datasets.md#content-level-de-duplication-and-balance: the unit I3D embeddings of the
    # windows inside the shot and their normalised mean (None without embeddings), the window
    # similarity to `duplicate_of` when that was found by them, and the k-means cluster
    windows: np.ndarray | None = field(default=None, repr=False, compare=False)
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    similarity: float | None = None
    cluster: int | None = None
    text: float = 0.0  # share of the frame covered by burned-in text (median of the samples)

    @property
    def content_size(self) -> tuple[int, int]:
        """(height, width) of the frames after the border crop."""
        if self.crop is None:
            return self.source
        x0, y0, x1, y1 = self.crop
        return y1 - y0, x1 - x0

    @property
    def orientation(self) -> str:
        return filters.orientation(*self.content_size)

    @property
    def name(self) -> str:
        """Clip dir in the dataset: `<video without extension>/<start>-<end>` (frame numbers)."""
        stem = PurePosixPath(self.video).with_suffix("").as_posix()
        return f"{stem}/{self.start_frame:06d}-{self.end_frame:06d}"

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame


def find_transitions(
    analysis: VideoAnalysis, thresholds: Thresholds
) -> list[boundaries.Transition]:
    """The shot boundaries of a readable video by the detector its analysis ran
    (docs/datasets.md#shot-detection): TransNetV2's cuts and gradual transitions, or the classic
    detector's hard cuts (scored by their cut score)."""
    if analysis.settings.shots == "transnetv2":
        return boundaries.find_transitions(
            analysis.transition,
            analysis.transition_many,
            analysis.fps,
            thresholds.shot_threshold,
            thresholds.shot_extent,
        )
    cuts = detect_cuts(analysis.cut_score, analysis.fps, thresholds).tolist()
    return [boundaries.Transition(c, c, "cut", float(analysis.cut_score[c])) for c in cuts]


def split_clips(analysis: VideoAnalysis, thresholds: Thresholds) -> list[Shot]:
    """One scored `Shot` per shot of a readable video (no verdict yet: `manifest.judge_clips`);
    the frames of gradual transitions belong to no shot, each shot starts at its sharpest early
    frame and carries its black-border crop (docs/datasets.md#visual-filters)."""
    n = analysis.num_frames
    transitions = find_transitions(analysis, thresholds)
    clips = []
    sharp_frames = round(thresholds.sharp_start * analysis.fps)
    height, width = analysis.source_height, analysis.source_width
    for first, end, before in boundaries.shot_ranges(n, transitions):
        start = filters.sharp_start(analysis.sharpness, first, end, sharp_frames)
        inside = (analysis.border_frames >= start) & (analysis.border_frames < end)
        crop = filters.shot_crop(
            analysis.border_boxes[inside], height, width, thresholds.min_border
        )
        inner_motion = analysis.motion[start + 1 : end]  # the first frame's motion spans the cut
        picks = start + ((np.arange(REPRESENTATIVE_FRAMES) + 0.5) * (end - start)).astype(int) // (
            REPRESENTATIVE_FRAMES
        )
        end_time = analysis.times[end] if end < n else analysis.times[-1] + 1 / analysis.fps
        windows = embeddings.shot_windows(analysis.embed_starts, analysis.embed_vectors, start, end)
        clips.append(
            Shot(
                video=analysis.video,
                start_frame=start,
                end_frame=end,
                start=float(analysis.times[start]),
                end=float(end_time),
                fps=analysis.fps,
                motion=float(inner_motion.mean()) if len(inner_motion) else 0.0,
                sharpness=float(np.median(analysis.sharpness[start:end])),
                cut_score=transitions[before].score if before >= 0 else 0.0,
                phash=tuple(int(h) for h in analysis.phash[picks]),
                boundary=transitions[before].kind if before >= 0 else "start",
                source=(height, width),
                crop=crop,
                skipped_start=start - first,
                windows=windows,
                embedding=embeddings.shot_embedding(windows),
                text=text_detection.shot_share(
                    analysis.text_frames, analysis.text_shares, start, end
                ),
            )
        )
    return clips
