"""Burned-in text in source footage (docs/datasets.md#burned-in-text): captions, subtitles,
channel names and watermarks that a video generator would learn as part of the scene.

The detector is PP-OCRv4's text detector (a DBNet, PaddleOCR), the kind of OCR model the large
video pipelines filter with; its ONNX weights ship inside the `rapidocr-onnxruntime` package
(installed `--no-deps`: its own dependency list pulls `opencv-python`, which clashes with the
headless OpenCV this project uses) and run on `onnxruntime`. Nothing is downloaded.

* `TextDetector.share(rgb)`: the share of a frame covered by text, the pixels whose text
  probability exceeds `BINARY` (DBNet's own binarisation threshold), on the frame scaled to
  `INPUT_WIDTH` pixels wide.
* The analysis measures `SAMPLES_PER_SECOND` frames a second; `shot_share` takes a shot's
  median over its samples, so text that stays on screen counts and a road sign passing by
  does not.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np

from torch_utils.weights import package_file, sha256_file

TEXT_DETECTORS = ("ppocr", "off")
PACKAGE = "rapidocr-onnxruntime"
MODEL = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
INSTALL = "pip install onnxruntime && pip install --no-deps rapidocr-onnxruntime==1.4.4"
INPUT_WIDTH = 640  # frames are scaled to this width, the height to a multiple of 32
BINARY = 0.3  # a pixel is text where its probability exceeds this (PP-OCR's default)
SAMPLES_PER_SECOND = 1.0


def model_path() -> Path | None:
    """The detector's ONNX file inside the installed package, or None."""
    return package_file(PACKAGE, MODEL)


def available() -> bool:
    """The model file and onnxruntime are both installed."""
    if model_path() is None:
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def default_detector() -> str:
    """`auto`: ppocr if installed, else off."""
    return "ppocr" if available() else "off"


def describe(detector: str) -> dict:
    """What the manifest records about the text detector that ran."""
    if detector == "off":
        return {"detector": "off"}
    import onnxruntime

    path = model_path()
    return {
        "detector": detector,
        "version": f"{PACKAGE} {importlib.metadata.version(PACKAGE)}, "
        f"onnxruntime {onnxruntime.__version__}",
        "model": Path(MODEL).name,
        "sha256": sha256_file(path) if path else None,
        "input_width": INPUT_WIDTH,
        "binary": BINARY,
        "samples_per_second": SAMPLES_PER_SECOND,
    }


def input_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) a frame is scaled to for the detector: aspect kept, multiples of 32."""
    return max(32, round(INPUT_WIDTH * height / width / 32) * 32), INPUT_WIDTH


class TextDetector:
    """PP-OCRv4's text detector on one CPU thread (the analysis runs one process per core)."""

    def __init__(self) -> None:
        if not available():
            raise ValueError(f"`text` ppocr needs the PP-OCR detector: {INSTALL}")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(model_path()), options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name

    def share(self, rgb: np.ndarray) -> float:
        """Share of an RGB uint8 frame `[H, W, 3]` (at `input_size`) covered by text."""
        x = rgb.astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1  # PP-OCR: mean/std 0.5
        probability = self.session.run(None, {self.input: x})[0]
        return float((probability > BINARY).mean())


_DETECTOR: TextDetector | None = None


def detector() -> TextDetector:
    """This process's `TextDetector`, made on first use (analysis workers reuse it)."""
    global _DETECTOR
    if _DETECTOR is None:
        _DETECTOR = TextDetector()
    return _DETECTOR


def shot_share(frames: np.ndarray, shares: np.ndarray, start: int, end: int) -> float:
    """A shot's text share: the median of its samples (frame numbers `frames`) in [start, end),
    or the nearest sample's when none falls inside; 0 without samples (detector off)."""
    if not len(frames):
        return 0.0
    inside = (frames >= start) & (frames < end)
    if inside.any():
        return float(np.median(shares[inside]))
    return float(shares[np.argmin(np.abs(frames - (start + end) / 2))])
