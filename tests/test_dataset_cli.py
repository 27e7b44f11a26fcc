"""Tests for `lvg-dataset` (datasets/cli.py, docs/datasets.md): real mp4 files, tiny sizes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import datasets.synthetic
import datasets.writer
from datasets.cli import main
from datasets.shards import FRAME_LIST, ShardWriter, VideoDataset, VideoDatasetTwoRes, write_clip
from datasets.video_io import resize_frame
from torch_utils.frames import write_mp4

LR, HR = "18x32", "36x64"
VIDEOS = {"ride/v0.mp4": (14, 48, 96), "ride/deep/v1.MP4": (9, 40, 64), "v2.mp4": (11, 64, 64)}


def smooth_video(num_frames: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    """Smooth moving gradients (so a downscale of the HR frame is close to the LR frame)."""
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    frames = []
    for t in range(num_frames):
        r = 128 + 100 * np.sin(2 * np.pi * (x + 0.05 * t + 0.1 * seed))
        g = 40 + 180 * y
        b = 60 + 150 * x  # increases left to right: shows flips
        frames.append(np.stack([r, g, b], -1).round().astype(np.uint8))
    return frames


def run(*args: str):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def listing(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Three good videos (nested, mixed-case suffix, different aspects), a file of random bytes
    named bad.mp4, an mp4 cut at 60 %, and a non-video file."""
    src = tmp_path_factory.mktemp("videos")
    for seed, (name, shape) in enumerate(VIDEOS.items()):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        write_mp4(src / name, smooth_video(*shape, seed), fps=10)
    (src / "bad.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    rng = np.random.default_rng(1)
    noise = write_mp4(
        src / "noise.mp4", (rng.integers(0, 256, (36, 64, 3), np.uint8) for _ in range(30)), fps=10
    )
    data = noise.read_bytes()
    (src / "ride" / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    noise.unlink()
    (src / "notes.txt").write_text("not a video")
    return src


@pytest.fixture(scope="module")
def dataset(videos, tmp_path_factory) -> tuple[Path, object]:
    dst = tmp_path_factory.mktemp("out") / "ds"
    return dst, run(
        "from-videos", videos, "--outdir", dst, "--res", HR, "--res", LR, "--workers", 2
    )


# ---------------------------------------------------------------------------------------------------
# from-videos and the round trip


def test_from_videos_writes_good_and_reports_bad(dataset, videos):
    dst, result = dataset
    assert result.exit_code == 0, result.output
    assert "3 videos written, 2 skipped (34 frames)" in result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert any(f"{videos / 'bad.mp4'}: cannot open" in w for w in warnings)
    assert any(f"{videos / 'ride' / 'cut.mp4'}: truncated" in w for w in warnings)
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()) == [
        "0018x0032/partition_0000.zip",
        "0036x0064/partition_0000.zip",
    ]
    with zipfile.ZipFile(dst / "0036x0064" / "partition_0000.zip") as zf:
        frame_paths = json.loads(zf.read(FRAME_LIST))
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
        with zf.open("ride/v0/frame_000013.jpg") as fp, Image.open(fp) as image:
            assert image.size == (64, 36) and image.layer[0][1:3] == (1, 1)  # 4:4:4
    assert {k: len(v) for k, v in frame_paths.items()} == {
        "ride/deep/v1": 9,
        "ride/v0": 14,
        "v2": 11,
    }
    assert frame_paths["ride/v0"][:2] == ["frame_000000.jpg", "frame_000001.jpg"]


def test_info(dataset):
    dst, _ = dataset
    result = run("info", dst)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[2].split() == ["0018x0032", "1", "3", "34", "9", "14"]
    assert lines[3].split() == ["0036x0064", "1", "3", "34", "9", "14"]
    assert "consistent" in lines[-1]


def test_round_trip_with_readers(dataset, videos):
    dst, _ = dataset
    ds = VideoDataset(dst, LR, seq_length=10, seed=0)
    assert ds.clip_names == ["ride/v0", "v2"] and ds.num_frames == [14, 11]
    # The stored frame is the source frame cropped to 9:16 and resized (docs/datasets.md#resizing).
    source = smooth_video(*VIDEOS["v2.mp4"], seed=2)
    expected = resize_frame(source[4], 18, 32).astype(np.float32) / 127.5 - 1
    stored = ds.read_frames(1, 4, 1)[:, 0].permute(1, 2, 0).numpy()
    assert np.abs(stored - expected).mean() < 0.05

    pairs = VideoDatasetTwoRes(dst, LR, HR, seq_length=4, x_flip=True, seed=0)
    flips = []
    for epoch in range(10):
        pairs.set_epoch(epoch)
        lr, hr = pairs[0]
        down = torch.nn.functional.avg_pool2d(hr.transpose(0, 1), 2).transpose(0, 1)
        assert (down - lr).abs().mean() < 0.05
        lr_flip, hr_flip = (bool(v[2, :, :, 0].mean() > v[2, :, :, -1].mean()) for v in (lr, hr))
        assert lr_flip == hr_flip
        flips.append(lr_flip)
    assert 0 < sum(flips) < len(flips)


def test_partitions_and_trim(videos, tmp_path):
    dst = tmp_path / "ds"
    for k in range(2):
        result = run(
            "from-videos",
            videos,
            "--outdir",
            dst,
            "--res",
            LR,
            "--num-partitions",
            2,
            "--partition",
            k,
            "--trim-start",
            0.3,
        )
        assert result.exit_code == 0, result.output
    ds = VideoDataset(dst, LR, seq_length=1)
    # Sorted videos split 3 + 2: [bad, ride/cut, ride/deep/v1], [ride/v0, v2]; bad and cut skipped.
    assert [(c.shard, c.clip_dir) for c in ds.clips] == [
        ("partition_0000", "ride/deep/v1"),
        ("partition_0001", "ride/v0"),
        ("partition_0001", "v2"),
    ]
    assert ds.num_frames == [9 - 3, 14 - 3, 11 - 3]  # 0.3 s at 10 fps
    assert run("info", dst).output.splitlines()[2].split()[:3] == ["0018x0032", "2", "3"]


# ---------------------------------------------------------------------------------------------------
# Errors: one line, non-zero exit, nothing touched


@pytest.mark.parametrize(
    "args, message",
    [
        (["from-videos", "{tmp}/missing", "--outdir", "{dst}", "--res", LR], "does not exist"),
        (["from-videos", "{tmp}/empty", "--outdir", "{dst}", "--res", LR], "no videos"),
        (["from-frames", "{tmp}/empty", "--outdir", "{dst}", "--res", LR], "no images"),
        (["from-videos", "{src}", "--outdir", "{dst}", "--res", "36x"], "not HxW"),
        (["from-videos", "{src}", "--outdir", "{dst}", "--res", "0x64"], "between 1 and 9999"),
        (["from-videos", "{src}", "--outdir", "{dst}", "--res", "-36x64"], "not HxW"),
        (["from-videos", "{src}", "--outdir", "{dst}", "--res", "36x99999"], "between 1 and 9999"),
        (
            [
                "from-videos",
                "{src}",
                "--outdir",
                "{dst}",
                "--res",
                LR,
                "--partition",
                "3",
                "--num-partitions",
                "3",
            ],
            "out of range",
        ),
        (
            ["from-videos", "{src}", "--outdir", "{dst}", "--res", LR, "--trim-end", "-1"],
            "must be >= 0",
        ),
        (
            ["from-videos", "{src}", "--outdir", "{existing}", "--res", LR],
            "already exists; choose another DST or delete it",
        ),
        (["info", "{tmp}/empty"], "no HHHHxWWWW folders"),
    ],
)
def test_usage_errors(args, message, videos, dataset, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("nothing here")
    existing = dataset[0]
    before = listing(existing), listing(tmp_path)
    fields = {"tmp": tmp_path, "src": videos, "dst": tmp_path / "out", "existing": existing}
    result = run(*(a.format(**fields) for a in args))
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("Error: ") and message in result.output
    assert (listing(existing), listing(tmp_path)) == before


def test_duplicate_clip_names(tmp_path):
    (tmp_path / "src").mkdir()
    for name in ["a.mp4", "a.mov"]:
        write_mp4(tmp_path / "src" / name, smooth_video(2, 18, 32, 0))
    result = run("from-videos", tmp_path / "src", "--outdir", tmp_path / "dst", "--res", LR)
    assert result.exit_code != 0 and "would both be clip 'a'" in result.output
    assert not (tmp_path / "dst").exists()


def test_inconsistent_resolutions(videos, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "ds"
    shutil.copytree(videos, src)
    run("from-videos", src, "--outdir", dst, "--res", LR)
    (src / "ride" / "v0.mp4").unlink()  # HR made without one video
    run("from-videos", src, "--outdir", dst, "--res", HR)
    result = run("info", dst)
    assert result.exit_code != 0
    assert "0018x0032 and 0036x0064 disagree" in result.output and "ride/v0" in result.output
    with pytest.raises(ValueError, match="do not hold the same clips"):
        VideoDatasetTwoRes(dst, LR, HR, seq_length=1)


def test_info_reports_unfinished_shards(tmp_path):
    folder = tmp_path / "ds" / "0018x0032"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "partition_0000.zip", "w") as zf:
        zf.writestr("clip/frame_000000.jpg", b"")  # no frame_paths.json: the original tool died
    (folder / "partition_0001.zip.tmp-123").write_bytes(b"")
    result = run("info", tmp_path / "ds")
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
    assert "partition_0000.zip is not a finished shard" in result.output
    (folder / "partition_0000.zip").unlink()
    with ShardWriter(folder / "partition_0000.zip") as writer:
        write_clip({(18, 32): writer}, "clip", [("f.jpg", {(18, 32): b""})])
    result = run("info", tmp_path / "ds")
    assert result.exit_code == 0 and "note: 1 temp file(s)" in result.output


def test_interrupted_run_leaves_no_shard(videos, tmp_path, monkeypatch):
    calls = []

    def failing_encode(frame, resolutions):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("disk on fire")
        return original(frame, resolutions)

    original = datasets.writer.encode_frame
    monkeypatch.setattr(datasets.writer, "encode_frame", failing_encode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run(
            "from-videos",
            videos,
            "--outdir",
            tmp_path / "ds",
            "--res",
            LR,
            "--res",
            HR,
            "--workers",
            2,
        )
    assert [p for p in (tmp_path / "ds").rglob("*") if p.is_file()] == []


# ---------------------------------------------------------------------------------------------------
# from-frames, synthetic, help


def test_from_frames_round_trip(tmp_path):
    src = tmp_path / "frames"
    sources = {}
    for clip, (n, h, w) in {"walk": (4, 36, 64), "runs/sprint": (3, 72, 72)}.items():
        (src / clip).mkdir(parents=True)
        sources[clip] = smooth_video(n, h, w, seed=len(sources))
        for t, frame in enumerate(sources[clip]):
            Image.fromarray(frame).save(src / clip / f"{t:04d}.png")
    (src / "walk" / "broken.png").write_bytes(b"not a png")  # "walk" is skipped, with a warning
    (src / "runs" / "sprint" / "notes.txt").write_text("ignored")
    result = run("from-frames", src, "--outdir", tmp_path / "ds", "--res", LR, "--res", HR)
    assert result.exit_code == 0, result.output
    assert "1 videos written, 1 skipped" in result.output and "broken.png" in result.output
    with zipfile.ZipFile(tmp_path / "ds" / "0036x0064" / "partition_0000.zip") as zf:
        assert json.loads(zf.read(FRAME_LIST)) == {
            "runs/sprint": ["0000.jpg", "0001.jpg", "0002.jpg"]
        }
    video = VideoDataset(tmp_path / "ds", HR, seq_length=3, seed=0)[0]
    expected = (
        np.stack([resize_frame(f, 36, 64) for f in sources["runs/sprint"]]).astype(np.float32)
        / 127.5
        - 1
    )
    assert np.abs(video.permute(1, 2, 3, 0).numpy() - expected).mean() < 0.03


def test_synthetic_wiring(tmp_path, monkeypatch):
    """Seed scheme and per-resolution rendering, with a stand-in renderer."""
    calls = []

    def fake_render(seed, num_frames, height, width, start_frame=0):
        calls.append((seed, num_frames, height, width))
        frames = np.full((num_frames, height, width, 3), seed % 256, np.uint8)
        return frames, {"frame": np.arange(num_frames, dtype=np.float64)}

    monkeypatch.setattr(datasets.synthetic, "render_video", fake_render)
    result = run(
        "synthetic",
        "--outdir",
        tmp_path / "ds",
        "--videos",
        3,
        "--frames",
        4,
        "--res",
        LR,
        "--res",
        HR,
        "--seed",
        2,
    )
    assert result.exit_code == 0, result.output
    assert sorted(calls) == [
        (2 * 100003 + i, 4, h, w) for i in range(3) for h, w in [(18, 32), (36, 64)]
    ]
    ds = VideoDatasetTwoRes(tmp_path / "ds", LR, HR, seq_length=4, seed=0)
    assert ds.clip_names == ["video_00000", "video_00001", "video_00002"]
    lr, hr = ds[1]
    assert abs(((lr + 1) * 127.5).mean().item() - (2 * 100003 + 1) % 256) < 1.5
    assert abs(((hr + 1) * 127.5).mean().item() - (2 * 100003 + 1) % 256) < 1.5


def test_synthetic_real_renderer(tmp_path):
    result = run(
        "synthetic",
        "--outdir",
        tmp_path / "ds",
        "--videos",
        2,
        "--frames",
        3,
        "--res",
        LR,
        "--res",
        HR,
        "--seed",
        0,
    )
    assert result.exit_code == 0, result.output
    assert run("info", tmp_path / "ds").exit_code == 0
    frames = datasets.synthetic.render_video(1, 3, 18, 32)[0]
    stored = VideoDataset(tmp_path / "ds", LR, seq_length=3).read_frames(1, 0, 3)
    assert np.abs((stored.permute(1, 2, 3, 0).numpy() + 1) * 127.5 - frames).mean() < 3


def test_help_and_console_script():
    for command in ["from-videos", "from-frames", "synthetic", "info"]:
        result = run(command, "--help")
        assert result.exit_code == 0 and "Example" in result.output
    script = Path(sys.executable).with_name("lvg-dataset")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "from-videos" in result.stdout
