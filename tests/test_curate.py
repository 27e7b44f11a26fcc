"""Tests for `lvg-dataset curate` and `from-videos --manifest` (datasets/curate.py): real mp4s."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
from click.testing import CliRunner
from PIL import Image

import datasets.curate as curation
import datasets.manifest as manifests
from datasets.cli import main
from datasets.shards import VideoDataset
from datasets.synthetic import render_video
from datasets.video_io import resize_frame
from torch_utils.frames import write_mp4

FPS, H, W, N = 10, 72, 128, 25  # every test video: 10 fps, 72x128, 2.5 s (unless said otherwise)
CUT = N  # cut.mp4 changes scene at this frame


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def scene(seed: int, num_frames: int = N, height: int = H, width: int = W) -> np.ndarray:
    return render_video(seed, num_frames, height, width)[0]


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """A hard cut, a static shot, a blurred shot, a short shot, the same scene saved twice (the
    second copy rendered at another size) and a file of random bytes."""
    src = tmp_path_factory.mktemp("footage")
    (src / "dup").mkdir()
    write_mp4(src / "cut.mp4", np.concatenate([scene(1), scene(2)]), fps=FPS)
    write_mp4(src / "static.mp4", [scene(3, 1)[0]] * N, fps=FPS)
    blurred = scipy.ndimage.gaussian_filter(scene(4).astype(np.float32), (0, 2.5, 2.5, 0))
    write_mp4(src / "blurry.mp4", blurred.round().astype(np.uint8), fps=FPS)
    write_mp4(src / "short.mp4", scene(6, 8), fps=FPS)
    write_mp4(src / "dup" / "a.mp4", scene(5), fps=FPS)
    write_mp4(src / "dup" / "b.mp4", scene(5, N, 90, 160), fps=FPS)
    (src / "bad.mp4").write_bytes(np.random.default_rng(0).bytes(2000))
    return src


@pytest.fixture(scope="module")
def curated(src, tmp_path_factory) -> tuple[Path, object, dict]:
    out = tmp_path_factory.mktemp("curated") / "manifest.json"
    args = ["curate", src, out, "--min-seconds", 1.5, "--workers", 2]
    result = run(*args, "--report", out.with_name("report.html"))
    return out, result, json.loads(out.read_text())


def verdicts(manifest: dict) -> dict[str, str]:
    entries = manifest["kept"] + manifest["dropped"]
    return {e.get("clip", e["video"]): e.get("reason", "kept") for e in entries}


# ---------------------------------------------------------------------------------------------------
# curate


def test_curate_finds_cut_and_drops_bad_shots(curated, src):
    out, result, manifest = curated
    assert result.exit_code == 0, result.output
    assert verdicts(manifest) == {
        "cut/000000-000025": "kept",
        "cut/000025-000050": "kept",  # the cut, found at the exact frame
        "dup/a/000000-000025": "kept",
        "dup/b/000000-000025": "duplicate",
        "blurry/000000-000025": "blurry",
        "short/000000-000008": "too_short",
        "static/000000-000025": "static",
        "bad.mp4": "unreadable",
    }
    dropped = {e.get("clip", e["video"]): e for e in manifest["dropped"]}
    assert dropped["dup/b/000000-000025"]["duplicate_of"] == "dup/a/000000-000025"
    assert dropped["bad.mp4"]["error"].startswith("cannot open")
    assert f"warning: skipped {src / 'bad.mp4'}: cannot open" in result.output
    assert "7 videos (7 analysed, 0 from cache), 7 shots: 3 kept" in result.output

    second = manifest["kept"][1]
    assert (second["video"], second["fps"]) == ("cut.mp4", FPS)
    assert (second["start"], second["end"]) == pytest.approx((CUT / FPS, 2 * N / FPS))
    assert second["scores"]["cut"] > 0.15 and len(second["scores"]["phash"]) == 3
    static = dropped["static/000000-000025"]["scores"]
    assert static["motion"] < 0.01 < manifest["kept"][0]["scores"]["motion"]
    assert dropped["blurry/000000-000025"]["scores"]["sharpness"] < 20
    assert manifest["summary"]["kept_frames"] == 3 * N
    assert manifest["thresholds"]["min_seconds"] == 1.5
    assert not list(out.parent.glob("*.tmp-*"))


def test_resume_uses_cache_and_reapplies_thresholds(curated, src, tmp_path, monkeypatch):
    out, _, _ = curated
    moved = tmp_path / "moved"
    shutil.copytree(src, moved)  # keeps sizes and mtimes: the cache is keyed by path under SRC

    def no_decoding(*args):
        raise AssertionError("a cached video was decoded again")

    monkeypatch.setattr(curation, "analyse_video", no_decoding)
    looser = tmp_path / "looser.json"
    args = ["--cache", out.with_suffix(".cache"), "--workers", 1]
    result = run("curate", moved, looser, *args, "--min-sharpness", 0, "--dedup", -1)
    assert result.exit_code == 0, result.output
    assert "7 videos (0 analysed, 7 from cache)" in result.output
    kept = verdicts(json.loads(looser.read_text()))
    assert kept["blurry/000000-000025"] == kept["dup/b/000000-000025"] == "kept"

    monkeypatch.undo()
    write_mp4(moved / "short.mp4", scene(9, 4), fps=FPS)  # a changed video is analysed again
    result = run("curate", moved, looser, *args)
    assert "7 videos (1 analysed, 6 from cache)" in result.output
    assert verdicts(json.loads(looser.read_text()))["short/000000-000004"] == "too_short"


def test_report_html_and_png(curated, src, tmp_path):
    out, _, manifest = curated
    page = out.with_name("report.html").read_text()
    assert (
        page.count("data:image/jpeg;base64,") == 3 * 7
    )  # first, middle and last frame of each shot
    for name, reason in verdicts(manifest).items():
        assert name in page and (reason == "kept" or f"dropped: {reason}" in page)
    png = tmp_path / "sheet.png"
    cache = out.with_suffix(".cache")
    result = run("curate", src, tmp_path / "m.json", "--cache", cache, "--report", png)
    assert result.exit_code == 0, result.output
    with Image.open(png) as image:
        assert image.format == "PNG" and image.height > 7 * 72


def test_from_videos_manifest_round_trip(curated, src, tmp_path):
    out, _, _ = curated
    dst = tmp_path / "ds"
    result = run("from-videos", src, dst, "--res", "36x64", "--manifest", out, "--workers", 1)
    assert result.exit_code == 0, result.output
    assert "3 videos written, 0 skipped (75 frames)" in result.output
    info = run("info", dst)
    assert info.exit_code == 0 and info.output.splitlines()[2].split() == [
        "0036x0064",
        "1",
        "3",
        "75",
        "25",
        "25",
    ]
    ds = VideoDataset(dst, "36x64", seq_length=N)
    assert ds.clip_names == ["cut/000000-000025", "cut/000025-000050", "dup/a/000000-000025"]
    # The second clip holds exactly source frames 25..49: each stored frame is nearest to its own
    # source frame, not to its neighbours.
    source = [resize_frame(f, 36, 64).astype(np.float32) / 127.5 - 1 for f in scene(2)]
    stored = ds.read_frames(1, 0, N).permute(1, 2, 3, 0).numpy()
    for k in [0, 1, N // 2, N - 1]:
        errors = [np.abs(stored[k] - source[j]).mean() for j in range(N)]
        assert int(np.argmin(errors)) == k


# ---------------------------------------------------------------------------------------------------
# Errors: one line, non-zero exit, nothing written


@pytest.mark.parametrize(
    "args, message",
    [
        (["curate", "{tmp}/missing", "{tmp}/m.json"], "does not exist"),
        (["curate", "{tmp}/empty", "{tmp}/m.json"], "no videos"),
        (["curate", "{src}", "{tmp}/nowhere/m.json"], "does not exist; create it first"),
        (["curate", "{src}", "{tmp}/empty"], "is a folder"),
        (["curate", "{src}", "{tmp}/m.json", "--report", "{tmp}/r.pdf"], "use a .html or .png"),
        (["curate", "{src}", "{tmp}/m.json", "--min-motion", "2", "--max-motion", "1"], "below"),
        (
            ["from-videos", "{src}", "{tmp}/ds", "--res", "36x64", "--manifest", "{tmp}/no.json"],
            "does not exist",
        ),
        (
            ["from-videos", "{src}", "{tmp}/ds", "--res", "36x64", "--manifest", "{tmp}/x.txt"],
            "not a manifest of lvg-dataset curate",
        ),
        (
            ["from-videos", "{src}", "{tmp}/ds", "--res", "36x64", "--manifest", "{manifest}"]
            + ["--trim-start", "1"],
            "do not apply with --manifest",
        ),
    ],
)
def test_usage_errors(args, message, src, curated, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.txt").write_text('{"kept": []}')
    before = sorted(tmp_path.rglob("*"))
    fields = {"tmp": tmp_path, "src": src, "manifest": curated[0]}
    result = run(*(a.format(**fields) for a in args))
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("Error: ") and message in result.output
    assert sorted(tmp_path.rglob("*")) == before


def test_failed_run_keeps_existing_manifest(src, curated, tmp_path, monkeypatch):
    out = tmp_path / "m.json"
    out.write_text("previous manifest")

    def broken(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(manifests, "judge_clips", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run("curate", src, out, "--cache", curated[0].with_suffix(".cache"))
    assert out.read_text() == "previous manifest" and not list(tmp_path.glob("*.tmp-*"))


# ---------------------------------------------------------------------------------------------------
# The pieces


def test_adaptive_cut_threshold():
    rng = np.random.default_rng(0)
    calm = 0.02 + 0.005 * rng.random(100)
    busy = 0.25 + 0.08 * rng.random(100)  # fast motion: every score above cut_min, no cut
    score = np.concatenate([[0.0], calm, busy, calm])
    score[[50, 150, 250]] = 0.5, 0.7, 0.9  # hard cuts in calm, busy and calm footage
    thresholds = curation.Thresholds()
    assert curation.detect_cuts(score, fps=25, thresholds=thresholds).tolist() == [50, 150, 250]
    score[251] = 0.8  # a second spike right after a cut (a flash): one cut, the stronger
    assert curation.detect_cuts(score, 25, thresholds).tolist() == [50, 150, 250]
    assert curation.detect_cuts(score, 25, curation.Thresholds(cut_min=0.95)).tolist() == []


def test_phash_and_hamming():
    frame = scene(7, 1)[0]
    luma = curation.grey(frame)
    other = curation.grey(scene(8, 1)[0])
    brighter = np.clip(luma * 1.1 + 5, 0, 255)
    a, b, c = (np.uint64(curation.phash(x)) for x in (luma, brighter, other))
    assert curation.hamming(a, b) <= 4 < 16 <= curation.hamming(a, c)
    assert curation.hamming(np.uint64(0), np.uint64(2**64 - 1)) == 64


@pytest.mark.parametrize("method", curation.MOTION_METHODS)
def test_motion_measures_a_shift(method):
    if method == "farneback" and curation.cv2 is None:
        pytest.skip("OpenCV is not installed")
    luma = scipy.ndimage.gaussian_filter(np.random.default_rng(0).random((72, 128)) * 255, 1.5)
    shifted = np.roll(luma, 2, axis=1)
    measure = curation.MOTION_FUNCTIONS[method]
    assert measure(luma, luma) == 0
    assert measure(luma, shifted) == pytest.approx(2, rel=0.35)


def test_framediff_fallback_without_opencv(src, monkeypatch):
    monkeypatch.setattr(curation, "cv2", None)
    assert curation.default_motion_method() == "framediff"
    with pytest.raises(ValueError, match="pip install opencv-python-headless"):
        curation.AnalysisSettings(motion_method="farneback")
    settings = curation.AnalysisSettings(motion_method="framediff")
    still = curation.analyse_video(src, "static.mp4", settings).motion[1:].mean()
    moving = curation.analyse_video(src, "dup/a.mp4", settings).motion[1:].mean()
    assert still < 0.01 < 0.2 < moving


def test_judge_clips_reasons_in_order():
    def clip(start, seconds=3.0, motion=1.0, sharpness=100.0, phash=(0, 0, 0)):
        return curation.Shot("v.mp4", start, start + 1, 0, seconds, 10, motion, sharpness, 0, phash)

    clips = [
        clip(0, seconds=1, motion=0),  # too short and static: the first rule wins
        clip(1, motion=0.01),
        clip(2, motion=20),
        clip(3, sharpness=5),
        clip(4, phash=(0xFF, 0, 0)),
        clip(5, phash=(0xFF, 0x3, 0)),  # (0 + 2 + 0) / 3 bits from the kept clip above
        clip(6, phash=(2**64 - 1,) * 3),
    ]
    manifests.judge_clips(clips, curation.Thresholds(dedup=2))
    assert [c.reason for c in clips] == [
        "too_short",
        "static",
        "too_much_motion",
        "blurry",
        None,
        "duplicate",
        None,
    ]
    assert clips[5].duplicate_of == "v/000004-000005"
    manifests.judge_clips(clips, curation.Thresholds(dedup=-1))
    assert clips[5].reason is None


def test_help():
    result = run("curate", "--help")
    assert result.exit_code == 0 and "Example" in result.output
    assert "--manifest" in run("from-videos", "--help").output


# ---------------------------------------------------------------------------------------------------
# Strictness presets and stages (docs/datasets.md#strictness-stages)


def test_presets_standard_is_the_default_and_flags_override():
    assert curation.Thresholds.preset("standard") == curation.Thresholds()
    strict = curation.Thresholds.preset("strict", min_seconds=3.0)
    assert (strict.min_seconds, strict.min_sharpness) == (3.0, 40.0)
    assert curation.Thresholds(cut_k=5.0).stage("loose").cut_k == 5.0  # detection unchanged
    names = list(curation.PRESETS)
    for field in curation.PRESETS["standard"]:  # every limit moves from loose to strict
        values = [curation.Thresholds.preset(n) for n in names]
        loose, standard, strict = (getattr(t, field) for t in values)
        higher_is_stricter = not field.startswith("max_")
        ordered = (loose, standard, strict) if higher_is_stricter else (strict, standard, loose)
        assert ordered[0] <= ordered[1] <= ordered[2], field
    with pytest.raises(ValueError, match="`preset` 'harsh' is not one of loose, standard"):
        curation.Thresholds.preset("harsh")


def test_stages_nest_and_from_videos_writes_a_stage(curated, src, tmp_path):
    out, result, manifest = curated
    entries = {e["clip"]: e for e in manifest["kept"] + manifest["dropped"] if "clip" in e}
    stages = {name: e["stages"] for name, e in entries.items()}
    assert stages["short/000000-000008"] == {"loose": "too_short"}  # 0.8 s < loose's 1 s
    assert stages["cut/000000-000025"] == {
        "loose": "kept",
        "standard": "kept",
        "strict": "low_resolution",  # 72x128 sources, under strict's 288
    }
    kept_at = {
        name: {clip for clip, s in stages.items() if s.get(name) == "kept"}
        for name in curation.PRESETS
    }
    assert kept_at["strict"] <= kept_at["standard"] <= kept_at["loose"]
    summaries = manifest["stages"]
    assert [s["name"] for s in summaries] == list(curation.PRESETS)
    assert summaries[0]["judged"] == len(entries)
    for before, after in zip(summaries, summaries[1:]):
        assert after["judged"] == before["kept"]  # a stage judges what the previous one kept
    assert summaries[2] == {**summaries[2], "kept": 0, "dropped": {"low_resolution": 3}}
    assert "kept at each strictness stage: loose 3, standard 3, strict 0" in result.output
    # the manifest's own verdict (standard, --min-seconds 1.5) is unchanged by the stages
    assert {e["clip"] for e in manifest["kept"]} == kept_at["standard"]

    page = out.with_name("report.html").read_text()
    for title in (
        "dropped at stage loose: 4",
        "dropped at stage strict: 3",
        "stage standard: judged 3",
    ):
        assert title in page


def test_preset_flag_with_override_from_cache(curated, src, tmp_path):
    out, _, _ = curated
    strict = tmp_path / "strict.json"
    cache = ["--cache", out.with_suffix(".cache")]
    result = run("curate", src, strict, *cache, "--preset", "strict", "--min-seconds", 1)
    assert result.exit_code == 0 and "0 analysed" in result.output, result.output
    manifest = json.loads(strict.read_text())
    assert manifest["thresholds"]["min_seconds"] == 1  # the flag
    assert manifest["thresholds"]["min_sharpness"] == 40  # the preset
    assert manifest["thresholds"]["min_resolution"] == 288
    assert manifest["summary"]["dropped"]["low_resolution"] == 7  # 72x128, 90x160 sources
    loose = [shot.name for shot in manifests.read_manifest(strict, "loose")]  # from `dropped`
    assert not manifest["kept"] and len(loose) == 3 and loose == sorted(loose)
    dst = tmp_path / "loose"
    args = ["from-videos", src, "--outdir", dst, "--res", "36x64", "--manifest", strict]
    result = run(*args, "--stage", "loose")
    assert result.exit_code == 0, result.output
    assert VideoDataset(dst, "36x64", seq_length=N).clip_names == loose
    result = run(*args, "--stage", "strict")
    assert result.exit_code == 1 and "its strict stage keeps no clips" in result.output
    result = run(*args[:-2], "--stage", "loose")
    assert result.exit_code == 1 and "add --manifest FILE.json" in result.output
    result = run("curate", src, strict, *cache, "--preset", "harsh")
    assert result.exit_code == 2 and "'harsh' is not one of" in result.output
