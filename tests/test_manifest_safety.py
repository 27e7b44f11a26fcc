"""Manifests are data, never paths to follow; `lvg-dataset` writers fail loudly
(docs/datasets.md#names-and-paths): real mp4s, real symlinks, real shards, tiny sizes."""

from __future__ import annotations

import gc
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import datasets.synthetic
import datasets.video_io
from datasets.cli import main
from datasets.shards import FRAME_LIST, ShardWriter
from torch_utils.frames import write_mp4

RES = "18x32"


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def tiny_mp4(path: Path, seed: int = 0, num_frames: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    return write_mp4(path, rng.integers(0, 256, (num_frames, 18, 32, 3), np.uint8), fps=10)


def entry(video: str, **fields) -> dict:
    """A kept entry of a curate manifest, as `manifest.shot_to_json` writes it."""
    scores = {"seconds": 0.3, "motion": 1.0, "sharpness": 50.0, "cut": 0.0, "phash": ["0"] * 3}
    base = {"video": video, "start_frame": 0, "end_frame": 3, "start": 0.0, "end": 0.3}
    return {**base, "fps": 10.0, "scores": scores, **fields}


def write_manifest(path: Path, kept: list[dict]) -> Path:
    data = {"format": "lvg-dataset curate manifest", "version": 1, "src": "", "kept": kept}
    path.write_text(json.dumps(data))  # NaN is written as the JSON extension NaN, as json does
    return path


@pytest.fixture()
def layout(tmp_path, monkeypatch) -> tuple[Path, Path, list[Path]]:
    """SRC = tmp/a/src holding v.mp4 and link.mp4 (a symlink to tmp/x/seed7.mp4, outside SRC),
    the outside video itself, and the list of every file PyAV opens."""
    outside = tiny_mp4(tmp_path / "x" / "seed7.mp4", seed=7)
    src = tmp_path / "a" / "src"
    tiny_mp4(src / "v.mp4")
    (src / "link.mp4").symlink_to(outside)
    (src / "...mp4").symlink_to(src / "v.mp4")  # its stem is '..'
    opened: list[Path] = []
    real_open = datasets.video_io.av.open

    def recording_open(file, *args, **kwargs):
        opened.append(Path(file).resolve())
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(datasets.video_io.av, "open", recording_open)
    return src, outside, opened


def test_a_good_manifest_is_written(layout, tmp_path):
    """The control: the same set-up with a good entry reads SRC's video and writes its clip."""
    src, outside, opened = layout
    manifest = write_manifest(tmp_path / "m.json", [entry("v.mp4")])
    result = run(
        "from-videos", src, "--outdir", tmp_path / "ds", "--res", RES, "--manifest", manifest
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "ds" / "0018x0032" / "partition_0000.zip") as zf:
        assert json.loads(zf.read(FRAME_LIST)) == {
            "v/000000-000003": [f"frame_{i:06d}.jpg" for i in range(3)]
        }
    assert opened and all(p.is_relative_to(src) for p in opened)
    assert next(datasets.video_io.read_video(outside)).shape == (18, 32, 3)  # readable, if asked


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"video": "../../x/seed7.mp4"}, "kept[1].video '../../x/seed7.mp4' has a '..' component"),
        ({"video": "{outside}"}, "is absolute"),
        ({"video": "link.mp4"}, "kept[1].video 'link.mp4' resolves to"),
        ({"video": "v\x00.mp4"}, "kept[1].video 'v\\x00.mp4' contains the character \\x00"),
        ({"video": "..\\..\\x\\seed7.mp4"}, "contains a backslash"),
        ({"video": "C:/x/seed7.mp4"}, "is absolute"),
        ({"video": "./v.mp4"}, "is not normalised"),
        ({"video": "...mp4"}, "gives the clip dir '../000000-000003', which has a '..' component"),
        ({"video": "notes.txt"}, "is not a video file"),
        ({"video": 7}, "kept[1].video 7 is not a string"),
        ({"start_frame": math.nan}, "kept[1].start_frame NaN is not an integer"),
        ({"start_frame": -1}, "kept[1].start_frame -1 is not a frame number"),
        ({"start_frame": 3}, "kept[1].end_frame 3 is not after start_frame 3"),
        ({"end": math.inf}, "kept[1].end Infinity is not a finite number"),
        ({"fps": 0}, "kept[1].fps 0.0 is not positive"),
        ({"scores": {"motion": 1}}, "kept[1].scores.sharpness is missing"),
        ({"start_frame": None}, "kept[1].start_frame null is not an integer"),
    ],
)
def test_bad_entries_are_refused(bad, message, layout, tmp_path):
    src, outside, opened = layout
    bad = {k: v.format(outside=outside) if isinstance(v, str) else v for k, v in bad.items()}
    manifest = write_manifest(
        tmp_path / "m.json", [entry("v.mp4"), entry(**{"video": "v.mp4", **bad})]
    )
    dst = tmp_path / "ds"
    result = run("from-videos", src, "--outdir", dst, "--res", RES, "--manifest", manifest)
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith(f"Error: manifest {manifest}: ") and message in result.output
    assert not dst.exists() and opened == []  # nothing written, no video opened at all


def test_non_json_numbers_and_nesting_are_one_line_errors(layout, tmp_path):
    src, _, _ = layout
    manifest = tmp_path / "m.json"
    # No garbage collection meanwhile: a finalizer of an earlier test's object (Ray, decoders)
    # that ran while the JSON decoder is 1,000 frames deep would hit the recursion limit itself.
    gc.collect()
    gc.disable()
    try:
        for text in ['{"kept": [' + "9" * 5000 + "]}", "[" * 100_000 + "]" * 100_000]:
            manifest.write_text(text)
            args = ["--outdir", tmp_path / "ds", "--res", RES, "--manifest", manifest]
            result = run("from-videos", src, *args)
            assert result.exit_code != 0 and "is not readable JSON" in result.output
            assert len(result.output.strip().splitlines()) == 1, result.output
    finally:
        gc.enable()


# ---------------------------------------------------------------------------------------------------
# Names from the file system, and shards that hold nothing


def test_hostile_file_names_are_skipped(tmp_path):
    src = tmp_path / "src"
    tiny_mp4(src / "good.mp4")
    tiny_mp4(src / "...mp4", seed=1)  # clip dir '..'
    tiny_mp4(src / "new\nline.mp4", seed=2)
    tiny_mp4(src / "back\\slash.mp4", seed=3)
    result = run("from-videos", src, "--outdir", tmp_path / "ds", "--res", RES)
    assert result.exit_code == 0, result.output
    assert "1 videos written, 3 skipped" in result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3 and "its clip dir '..' has a '..' component" in result.output
    with zipfile.ZipFile(tmp_path / "ds" / "0018x0032" / "partition_0000.zip") as zf:
        assert sorted(zf.namelist()) == [FRAME_LIST] + [f"good/frame_{i:06d}.jpg" for i in range(3)]
    assert not (tmp_path / "ds" / "frame_000000.jpg").exists()


def test_hostile_frame_folder_names_are_skipped(tmp_path):
    src = tmp_path / "src"
    for folder, image in [("ok", "0.png"), ("bad\nname", "0.png"), ("ok2", "x\\y.png")]:
        (src / folder).mkdir(parents=True)
        Image.fromarray(np.zeros((18, 32, 3), np.uint8)).save(src / folder / image)
    result = run("from-frames", src, "--outdir", tmp_path / "ds", "--res", RES)
    assert result.exit_code == 0, result.output
    assert "1 videos written, 2 skipped" in result.output
    assert (
        "'bad\\nname'" in result.output
        and "its image 'x\\\\y.jpg' contains a backslash" in result.output
    )
    with zipfile.ZipFile(tmp_path / "ds" / "0018x0032" / "partition_0000.zip") as zf:
        assert sorted(zf.namelist()) == [FRAME_LIST, "ok/0.jpg"]


@pytest.mark.parametrize("command", ["from-videos", "from-frames"])
def test_nothing_readable_is_an_error_and_no_shard(command, tmp_path):
    src = tmp_path / "src"
    for i, name in enumerate(["a", "b", "c"]):
        if command == "from-videos":
            (src / f"{name}.mp4").parent.mkdir(parents=True, exist_ok=True)
            (src / f"{name}.mp4").write_bytes(np.random.default_rng(i).bytes(500))
        else:
            (src / name).mkdir(parents=True)
            (src / name / "0001.png").write_bytes(b"not a png")
    dst = tmp_path / "ds"
    result = run(command, src, "--outdir", dst, "--res", RES, "--res", "36x64")
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: all 3 videos were skipped: ")
    assert errors[0].endswith("; nothing was written") and str(src / "a") in errors[0]
    assert [p for p in dst.rglob("*") if p.is_file()] == []  # no shard, no temp file


@pytest.mark.parametrize(
    "clip_dir", ["../evil", "/abs", "a/../../b", "a\\b", "a//b", "a/./b", "", "a/", "a\nb", "C:/x"]
)
def test_shard_writer_refuses_unsafe_clip_dirs(clip_dir, tmp_path):
    path = tmp_path / "s.zip"
    with pytest.raises(ValueError, match="clip dir .* clip dirs are relative POSIX paths") as e:
        with ShardWriter(path) as writer:
            writer.begin_clip(clip_dir)
    assert "\n" not in str(e.value)
    assert not path.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("frame_name", ["../x.jpg", "a/b.jpg", ".", "..", FRAME_LIST, "x\x00.jpg"])
def test_shard_writer_refuses_unsafe_frame_names(frame_name, tmp_path):
    with pytest.raises(ValueError, match="frame name"):
        with ShardWriter(tmp_path / "s.zip") as writer:
            writer.begin_clip("ok")
            writer.add_frame(frame_name, b"")
    assert list(tmp_path.iterdir()) == []


def test_shard_writer_keeps_ordinary_names(tmp_path):
    with ShardWriter(tmp_path / "s.zip") as writer:
        for clip_dir in ["ride/deep/v1", ".", "v2 (final) é", "cut/000025-000050"]:
            writer.begin_clip(clip_dir)
            writer.add_frame("frame_000000.jpg", b"")
            writer.end_clip()
    with zipfile.ZipFile(tmp_path / "s.zip") as zf:
        assert (
            "ride/deep/v1/frame_000000.jpg" in zf.namelist() and "frame_000000.jpg" in zf.namelist()
        )


# ---------------------------------------------------------------------------------------------------
# Options: one line each, non-zero exit, nothing written


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workers", "0"], "--workers must be between 1 and 256, got 0"),
        (["--workers", "-3"], "--workers must be between 1 and 256"),
        (["--workers", "100000"], "--workers must be between 1 and 256"),
        (["--trim-start", "nan"], "must be >= 0 seconds and finite"),
        (["--trim-end", "inf"], "must be >= 0 seconds and finite"),
        (["--num-partitions", "0"], "--num-partitions must be >= 1"),
        (["--num-partitions", "-2"], "--num-partitions must be >= 1"),
        (["--partition", "-1"], "--partition -1 is out of range for --num-partitions 1"),
        (["--num-partitions", "3", "--partition", "2"], "gets none of the 1 clips"),
    ],
)
def test_from_videos_option_errors(args, message, tmp_path):
    tiny_mp4(tmp_path / "src" / "v.mp4")
    result = run("from-videos", tmp_path / "src", "--outdir", tmp_path / "ds", "--res", RES, *args)
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("Error: ") and message in result.output
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["synthetic", "--videos", "0", "--frames", "2"], "'--videos': 0 is not in the range"),
        (["synthetic", "--videos", "1", "--frames", "0"], "'--frames': 0 is not in the range"),
        (["synthetic", "--videos", "1", "--frames", "99999999"], "'--frames': 99999999 is not in"),
        (["synthetic", "--videos", "10000000", "--frames", "2"], "'--videos': 10000000 is not in"),
        (
            ["curate", "{src}", "--out", "{tmp}/m.json", "--min-seconds", "nan"],
            "--min-seconds must be a finite",
        ),
        (
            ["curate", "{src}", "--out", "{tmp}/m.json", "--max-motion", "inf"],
            "--max-motion must be a finite",
        ),
        (
            ["curate", "{src}", "--out", "{tmp}/m.json", "--cut-min", "nan"],
            "--cut-min must be a finite",
        ),
        (
            ["curate", "{src}", "--out", "{tmp}/m.json", "--workers", "100000"],
            "'--workers': 100000",
        ),
    ],
)
def test_synthetic_and_curate_option_errors(args, message, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the options were accepted: nothing should be rendered")

    monkeypatch.setattr(datasets.synthetic, "render_video", never)  # fail fast, not out of memory
    tiny_mp4(tmp_path / "src" / "v.mp4")
    fields = {"src": tmp_path / "src", "tmp": tmp_path}
    before = sorted(tmp_path.rglob("*"))
    result = run(
        *(a.format(**fields) for a in args),
        *(["--outdir", tmp_path / "ds", "--res", RES] if args[0] == "synthetic" else []),
    )
    assert result.exit_code != 0 and message in result.output, result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error")] != []
    assert sorted(tmp_path.rglob("*")) == before


def test_curate_lists_unusable_names_as_unreadable(tmp_path):
    src = tmp_path / "src"
    tiny_mp4(src / "...mp4")
    out = tmp_path / "m.json"
    result = run("curate", src, "--out", out, "--workers", 1, "--min-seconds", 0.1)
    assert result.exit_code == 0, result.output
    manifest = json.loads(out.read_text())
    assert manifest["kept"] == [] and manifest["dropped"][0]["reason"] == "unreadable"
    assert "would give the clip dirs '..'" in manifest["dropped"][0]["error"]


def test_chunked_synthetic_frames_equal_one_render(tmp_path, monkeypatch):
    """Synthetic videos are rendered a chunk at a time (memory does not grow with --frames)."""
    import datasets.writer
    from datasets.synthetic import render_video

    monkeypatch.setattr(datasets.writer, "SYNTHETIC_CHUNK", 2)
    (source,) = datasets.writer.synthetic_sources(1, 5, [(18, 32)], seed=3)
    frames = [frame[(18, 32)] for _, frame in source.frames()]
    assert np.array_equal(np.stack(frames), render_video(3 * 100003, 5, 18, 32)[0])
