"""Curves against frame separation (mean ± std over videos), their gap, and their PNG plot.

Used by the colour-similarity figure (docs/metrics.md#colour-similarity) and the temporal LPIPS
curves. `plot_curves` draws with matplotlib if it is installed, else with Pillow (no new
dependency).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torch_utils.misc import atomic_path


@dataclass
class Curve:
    """Mean and std over videos of a per-distance quantity; `x` is the frame separation."""

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    num_videos: int

    def to_dict(self) -> dict:
        return {
            "x": self.x.tolist(),
            "mean": [round(float(v), 6) for v in self.mean],
            "std": [round(float(v), 6) for v in self.std],
            "num_videos": self.num_videos,
        }


def curve_from_rows(rows: list[np.ndarray]) -> Curve:
    values = np.stack(rows).astype(np.float64)
    return Curve(np.arange(values.shape[1]), values.mean(0), values.std(0), len(values))


def curve_gap(a: Curve, b: Curve) -> float:
    """Mean absolute difference of two mean curves (over the separations both have)."""
    n = min(len(a.mean), len(b.mean))
    return float(np.abs(a.mean[:n] - b.mean[:n]).mean())


# ------------------------------------------------------------------------------------------------
# Plot


COLOURS = {"generated": (31, 119, 180), "real": (255, 127, 14)}


def plot_curves(
    curves: dict[str, Curve],
    path: str | os.PathLike,
    title: str = "Colour similarity",
    ylabel: str = "histogram intersection with frame 0",
) -> Path:
    """Mean ± std bands of each curve against frame separation; PNG, written atomically."""
    with atomic_path(path) as tmp:
        try:
            _plot_matplotlib(curves, tmp, title, ylabel)
        except ImportError:
            _plot_pillow(curves, tmp, title, ylabel)
    return Path(path)


def _plot_matplotlib(curves, path, title, ylabel) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, c in curves.items():
        colour = np.array(COLOURS.get(label, (90, 90, 90))) / 255
        ax.plot(c.x, c.mean, color=colour, label=f"{label} (n={c.num_videos})")
        ax.fill_between(c.x, c.mean - c.std, c.mean + c.std, color=colour, alpha=0.2)
    ax.set(title=title, xlabel="frame separation", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def _plot_pillow(curves, path, title, ylabel, size=(720, 480)) -> None:
    from PIL import Image, ImageDraw

    width, height = size
    left, right, top, bottom = 70, 20, 40, 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image, "RGBA")
    x_max = max(max(float(c.x[-1]), 1.0) for c in curves.values())
    lows = [float(np.min(c.mean - c.std)) for c in curves.values()]
    highs = [float(np.max(c.mean + c.std)) for c in curves.values()]
    y_min, y_max = min(lows + [0.0]), max(highs + [1.0])

    def to_px(x, y):
        px = left + (np.asarray(x) / x_max) * (width - left - right)
        py = top + (y_max - np.asarray(y)) / (y_max - y_min) * (height - top - bottom)
        return px, py

    for i in range(6):  # grid and tick labels
        y = y_min + i * (y_max - y_min) / 5
        _, py = to_px(0, y)
        draw.line([(left, py), (width - right, py)], fill=(225, 225, 225))
        draw.text((5, py - 6), f"{y:.2f}", fill="black")
        x = i * x_max / 5
        px, _ = to_px(x, y_min)
        draw.text((px - 8, height - bottom + 6), f"{x:.0f}", fill="black")
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for n, (label, c) in enumerate(curves.items()):
        colour = COLOURS.get(label, (90, 90, 90))
        px, lo = to_px(c.x, c.mean - c.std)
        _, hi = to_px(c.x, c.mean + c.std)
        band = list(zip(px, hi)) + list(zip(px[::-1], lo[::-1]))
        if len(band) >= 3:
            draw.polygon(band, fill=(*colour, 50))
        _, py = to_px(c.x, c.mean)
        draw.line(list(zip(px, py)), fill=colour, width=2)
        draw.line(
            [(width - 190, top + 12 + 16 * n), (width - 170, top + 12 + 16 * n)],
            fill=colour,
            width=3,
        )
        draw.text((width - 165, top + 6 + 16 * n), f"{label} (n={c.num_videos})", fill="black")
    draw.text((left, 12), title, fill="black")
    draw.text((left, height - 20), f"frame separation        (y: {ylabel})", fill="black")
    image.save(path, format="PNG")
