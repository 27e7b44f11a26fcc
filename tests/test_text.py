"""Burned-in text (datasets/text.py, docs/datasets.md#burned-in-text): the PP-OCRv4 detector on
synthetic road frames with and without text drawn on them, and the `text` verdict of a real
`lvg-dataset curate` run on mp4s."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw, ImageFont

import datasets.text as text
from datasets.cli import main
from datasets.synthetic import render_video
from torch_utils.frames import write_mp4

pytestmark = pytest.mark.skipif(not text.available(), reason=f"needs {text.INSTALL}")


def caption(frames: np.ndarray, words: str, size: int, at: tuple[int, int]) -> np.ndarray:
    """`words` drawn on every frame at the same place: white, black outline, as subtitles are."""
    font = ImageFont.load_default(size=size)
    out = []
    for frame in frames:
        image = Image.fromarray(frame)
        ImageDraw.Draw(image).text(at, words, fill="white", font=font, stroke_width=1)
        out.append(np.asarray(image))
    return np.stack(out)


@pytest.fixture(scope="module")
def detector() -> text.TextDetector:
    return text.TextDetector()


def test_detector_finds_captions_not_scenes(detector):
    size = text.input_size(288, 512)
    assert size == (352, 640)
    for seed in (1, 2):
        frames = render_video(seed, 2, *size)[0]
        plain = [detector.share(f) for f in frames]
        named = [detector.share(f) for f in caption(frames, "@channel", 20, (24, 300))]
        captioned = caption(frames, "WORLD RIDES 4K  @channel", 34, (24, 290))
        subtitled = [detector.share(f) for f in captioned]
        assert max(plain) < 0.001, plain
        assert 0.002 < min(named) < 0.01, named
        assert min(subtitled) > 0.01, subtitled


def test_shot_share_is_the_median_of_its_samples():
    frames, shares = np.array([0, 30, 60, 90]), np.array([0.0, 0.02, 0.03, 0.0])
    assert text.shot_share(frames, shares, 0, 90) == pytest.approx(0.02)  # samples 0, 30, 60
    assert text.shot_share(frames, shares, 35, 50) == pytest.approx(0.02)  # none inside: nearest
    assert text.shot_share(frames[:0], shares[:0], 0, 90) == 0.0
    with pytest.raises(ValueError, match="rapidocr-onnxruntime"):
        real = text.available
        text.available = lambda: False
        try:
            text.TextDetector()
        finally:
            text.available = real


def test_curate_drops_a_captioned_shot(tmp_path):
    src, out = tmp_path / "footage", tmp_path / "m.json"
    src.mkdir()
    frames = render_video(3, 30, 144, 256)[0]  # 3 s at 10 fps
    write_mp4(src / "plain.mp4", frames, fps=10)
    write_mp4(src / "captioned.mp4", caption(frames, "WORLD RIDES 4K", 14, (12, 120)), 10)
    runner = CliRunner()
    common = ["curate", str(src), "--out", str(out), "--embed", "off", "--workers", "1"]
    result = runner.invoke(main, common)
    assert result.exit_code == 0, result.output
    manifest = json.loads(out.read_text())
    assert manifest["text"]["detector"] == "ppocr" and len(manifest["text"]["sha256"]) == 64
    (kept,), (dropped,) = manifest["kept"], manifest["dropped"]
    assert kept["video"] == "plain.mp4" and kept["scores"]["text"] < 0.001
    assert dropped["video"] == "captioned.mp4" and dropped["reason"] == "text"
    assert dropped["scores"]["text"] > 0.01
    assert dropped["stages"] == {"loose": "kept", "standard": "text"}

    result = runner.invoke(main, [*common, "--max-text", "0.5"])  # from the cache: no decoding
    assert "0 analysed" in result.output and "dropped: none" in result.output, result.output
    result = runner.invoke(main, [*common, "--text", "off"])
    manifest = json.loads(out.read_text())
    assert manifest["text"] == {"detector": "off"} and not manifest["dropped"]
    assert all(entry["scores"]["text"] == 0 for entry in manifest["kept"])
