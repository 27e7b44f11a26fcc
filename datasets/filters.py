"""Visual filters of `lvg-dataset curate` (docs/datasets.md#visual-filters): black borders found
and cropped away, the source resolution and orientation, and the sharpest first frame.

* `content_box`: the box of a full-resolution grey frame that is not black border (letterbox bars
  above and below, pillarbox bars left and right). Rows and columns count as border while at most
  `BRIGHT_SHARE` of their pixels are brighter than the black level, so compression noise and a
  thin bright line do not end a bar early. Frames are sampled a few times a second during the
  analysis; a shot's content is the union of its samples' boxes (a dark or faded frame leaves its
  bars to the others), and a bar narrower than `min_border` of the frame is not cropped.
* `orientation`: landscape, portrait or square, of the content after the crop.
* `sharp_start`: the sharpest frame within the first seconds of a shot becomes its first frame
  when it is clearly sharper than the cut's own frame (motion blur and focus pulls right after a
  cut make a poor first frame for the generator's conditioning).
"""

from __future__ import annotations

import numpy as np

MIN_BORDER = 0.02  # default: black bars at least this share of the frame are cropped away
BRIGHT_SHARE = 0.02  # a row or column with more of its pixels above the black level is content
SAMPLES_PER_SECOND = 4  # full-resolution frames checked for borders
SHARPER = 1.25  # the first frame moves only to a frame this many times as sharp


def content_box(luma: np.ndarray, black: int) -> tuple[int, int, int, int] | None:
    """`(x0, y0, x1, y1)` of the non-border content of a grey uint8 frame, or None if it is black
    throughout (a fade)."""
    bright = luma > black
    rows = np.flatnonzero(bright.mean(1) > BRIGHT_SHARE)
    cols = np.flatnonzero(bright.mean(0) > BRIGHT_SHARE)
    if not len(rows) or not len(cols):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def shot_crop(
    boxes: np.ndarray, height: int, width: int, min_border: float
) -> tuple[int, int, int, int] | None:
    """The crop of a shot from its samples' boxes `[K, 4]` (rows of -1: black frames): their
    union, each bar kept only if at least `min_border` of the frame's height or width, snapped
    inwards to even pixels (for the encoders' 4:2:0 chroma); None if nothing is cropped."""
    boxes = boxes[boxes[:, 0] >= 0]
    if not len(boxes):
        return None
    x0, y0 = int(boxes[:, 0].min()), int(boxes[:, 1].min())
    x1, y1 = int(boxes[:, 2].max()), int(boxes[:, 3].max())
    min_x, min_y = min_border * width, min_border * height
    x0 = x0 + (x0 % 2) if x0 >= min_x else 0
    y0 = y0 + (y0 % 2) if y0 >= min_y else 0
    x1 = x1 - (x1 % 2) if width - x1 >= min_x else width
    y1 = y1 - (y1 % 2) if height - y1 >= min_y else height
    if (x0, y0, x1, y1) == (0, 0, width, height) or x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def orientation(height: int, width: int) -> str:
    """landscape, portrait or square (within 2 %)."""
    if abs(width - height) <= 0.02 * max(width, height):
        return "square"
    return "landscape" if width > height else "portrait"


def sharp_start(sharpness: np.ndarray, start: int, end: int, frames: int) -> int:
    """The first frame of the shot [start, end): the sharpest of its first `frames` frames if that
    is `SHARPER` times as sharp as frame `start`, else `start`. Never leaves fewer than half the
    shot."""
    window = min(frames, (end - start) // 2)
    if window <= 1:
        return start
    best = start + int(np.argmax(sharpness[start : start + window]))
    return best if sharpness[best] > SHARPER * sharpness[start] else start
