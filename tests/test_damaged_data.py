"""Damaged data never takes a run down (docs/datasets.md#damaged-data): real shards with flipped
bytes, wrong-size, huge-header and truncated JPEG members; `lvg-dataset verify`, training that
skips and counts, the stop past the limit, and metrics on folders with garbage mp4 files."""

import json
import os
import re
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import metrics.cli
from datasets.cli import main as dataset_main
from datasets.shards import (
    DamagedClipError,
    DamagedDataError,
    VideoDataset,
    VideoDatasetTwoRes,
    encode_jpeg,
)
from datasets.synthetic import render_video
from torch_utils.frames import write_mp4
from training.config import resolve
from training.data import ClipStream
from training.loop import train

RES = "36x64"


def make_dataset(root: Path, videos: int, frames: int) -> Path:
    result = CliRunner().invoke(
        dataset_main,
        ["synthetic", "--outdir", str(root), "--videos", str(videos), "--frames", str(frames),
         "--res", RES, "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return root


def shard_of(root: Path) -> Path:
    return root / "0036x0064" / "partition_0000.zip"


def frame_member(clip: int, frame: int) -> str:
    return f"video_{clip:05d}/frame_{frame:06d}.jpg"


def flip_bytes(shard: Path, member: str, count: int = 64) -> None:
    """Invert `count` bytes in the middle of `member`'s stored data, in place."""
    with zipfile.ZipFile(shard) as zf:
        info = zf.getinfo(member)
    with open(shard, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", f.read(4))
        start = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
        f.seek(start - count // 2)
        data = f.read(count)
        f.seek(start - count // 2)
        f.write(bytes(b ^ 0xFF for b in data))


def replace_members(shard: Path, replacements: dict[str, bytes]) -> None:
    """Rewrite the shard with some members' bytes replaced (valid CRCs: only the JPEGs are bad)."""
    tmp = shard.with_name(shard.name + ".rewrite")
    with zipfile.ZipFile(shard) as src, zipfile.ZipFile(tmp, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, replacements.get(info.filename, src.read(info.filename)))
    os.replace(tmp, shard)


def huge_header_jpeg() -> bytes:
    """A small JPEG whose header says 12000x12000: decoding it would need 432 MB."""
    data = bytearray(encode_jpeg(np.zeros((16, 16, 3), np.uint8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 12000, 12000)
    return bytes(data)


def wrong_size_jpeg() -> bytes:
    return encode_jpeg(np.full((48, 80, 3), 128, np.uint8))


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    """6 clips of 16 frames: 0 and 5 clean, 1 flipped bytes, 2 a wrong-size frame, 3 a truncated
    frame, 4 a frame whose header claims 12000x12000."""
    root = make_dataset(tmp_path_factory.mktemp("damaged"), 6, 16)
    shard = shard_of(root)
    with zipfile.ZipFile(shard) as zf:
        truncated = zf.read(frame_member(3, 9))[:-400]
    replace_members(
        shard,
        {
            frame_member(2, 4): wrong_size_jpeg(),
            frame_member(3, 9): truncated,
            frame_member(4, 0): huge_header_jpeg(),
        },
    )
    flip_bytes(shard, frame_member(1, 7))
    return root


def test_verify_names_each_damaged_clip_by_shard_and_member(damaged, tmp_path):
    shard = shard_of(damaged)
    for args in (
        ["verify", str(damaged), "--quiet"],
        ["info", str(damaged), "--verify", "--quiet"],
    ):
        start = time.time()
        result = CliRunner().invoke(dataset_main, args)
        assert time.time() - start < 20  # the 12000x12000 frame is never decoded
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.startswith("damaged:")]
        assert len(lines) == 4, result.output
        expected = [
            (frame_member(1, 7), "bad CRC-32"),
            (frame_member(2, 4), "the frame is 48x80, not 36x64"),
            (frame_member(3, 9), "corrupt or truncated JPEG data"),
            (frame_member(4, 0), "the frame is 12000x12000, not 36x64"),
        ]
        for line, (member, reason) in zip(lines, expected):
            assert line.startswith(f"damaged: {shard}: {member}: {reason}"), line
        assert "verified 6 clips (96 frames) at 1 resolution(s): 4 damaged" in result.output
        assert "Error: 4 damaged clip(s) or shard(s)" in result.output
        assert "Traceback" not in result.output
    clean = make_dataset(tmp_path / "clean", 2, 4)
    result = CliRunner().invoke(dataset_main, ["verify", str(clean)])
    assert result.exit_code == 0 and "verified: all 2 clips (8 frames)" in result.output
    result = CliRunner().invoke(dataset_main, ["info", str(clean), "--verify", "--quiet"])
    assert result.exit_code == 0 and "read cleanly" in result.output


def test_verify_reports_an_unfinished_shard_and_reads_the_others(tmp_path):
    root = make_dataset(tmp_path / "data", 2, 4)
    broken = shard_of(root).with_name("partition_0001.zip")
    broken.write_bytes(shard_of(root).read_bytes()[:-100])  # its central directory is cut off
    result = CliRunner().invoke(dataset_main, ["verify", str(root), "--quiet"])
    assert result.exit_code == 1
    assert f"damaged: {broken}: not a finished shard" in result.output
    assert "verified 2 clips (8 frames)" in result.output


def test_reading_a_damaged_clip_raises_one_error_type_and_items_are_substituted(damaged):
    dataset = VideoDataset(damaged, RES, seq_length=16, seed=7)
    with pytest.raises(DamagedClipError) as error:
        dataset.read(1, range(16))
    assert error.value.damage.member == frame_member(1, 7)
    assert str(error.value).startswith(f"{shard_of(damaged)}: {frame_member(1, 7)}: bad CRC-32")
    # Clips 1 to 4 are damaged, so item (epoch 3, index 1) is clip 5's own draw.
    item, damages = dataset.get((3, 1))
    assert [d.clip for d in damages] == [f"video_{i:05d}" for i in (1, 2, 3, 4)]
    assert torch.equal(item, dataset[(3, 5)])
    assert torch.equal(dataset.get((3, 1))[0], item)  # a pure function of (seed, epoch, index)
    assert torch.equal(dataset[(3, 0)], dataset.get((3, 0))[0]) and not dataset.get((3, 0))[1]


def test_pairs_skip_a_clip_damaged_at_either_resolution(tmp_path):
    root = tmp_path / "data"
    result = CliRunner().invoke(
        dataset_main,
        ["synthetic", "--outdir", str(root), "--videos", "3", "--frames", "4", "--res", "9x16",
         "--res", RES, "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    flip_bytes(shard_of(root), frame_member(1, 2))  # the 36x64 frame only
    pairs = VideoDatasetTwoRes(root, "9x16", RES, seq_length=4, seed=0)
    (lr, hr), damages = pairs.get((0, 1))
    assert [(d.path, d.member) for d in damages] == [(str(shard_of(root)), frame_member(1, 2))]
    want_lr, want_hr = pairs[(0, 2)]
    assert torch.equal(lr, want_lr) and torch.equal(hr, want_hr) and lr.shape[-2:] == (9, 16)


def test_clip_stream_counts_damage_from_worker_processes(damaged, capfd):
    dataset = VideoDataset(damaged, RES, seq_length=16, seed=0)
    stream = ClipStream(dataset, 3, 0, 0, 1, torch.device("cpu"), workers=1)
    batches = [next(stream) for _ in range(2)]  # one epoch: every clip is tried
    assert all(b.shape == (3, 3, 16, 36, 64) for b in batches)
    assert len(stream.damage) == 4 and stream.damage.skipped_reads >= 4
    err = capfd.readouterr().err
    assert err.count("warning: skipped damaged clip") == 4, err
    assert f"{shard_of(damaged)}: {frame_member(2, 4)}" in err


TINY = dict(
    batch=2, seq_length=16, total_steps=1, steps_per_tick=1, r1_interval=2, sample_frames=16
)


def test_training_skips_a_damaged_clip_and_reports_the_count(tmp_path, capsys):
    root = make_dataset(tmp_path / "data", 4, 16)
    flip_bytes(shard_of(root), frame_member(2, 8))
    out = tmp_path / "run"
    cfg = resolve("lres", "tiny", data=str(root), outdir=str(out), **TINY)
    lines: list[str] = []
    train(cfg, echo=lines.append)  # step 0 reads a batch for D and one for R1: every clip
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["data/damaged_clips"]["mean"] == 1
    assert stats[-1]["data/skipped_reads"]["mean"] >= 1
    assert any("damaged clips 1" in line for line in lines), lines
    err = capsys.readouterr().err
    assert f"warning: skipped damaged clip {shard_of(root)}: {frame_member(2, 8)}" in err


def test_reading_stops_with_one_line_past_the_limit(tmp_path):
    """The stream training reads from: 6 of 8 clips damaged is past the limit (5 and 1%)."""
    root = make_dataset(tmp_path / "data", 8, 16)
    for clip in range(1, 7):
        flip_bytes(shard_of(root), frame_member(clip, 3))
    stream = ClipStream(VideoDataset(root, RES, 16, seed=0), 2, 0, 0, 1, torch.device("cpu"), 0)
    with pytest.raises(DamagedDataError) as error:
        for _ in range(4):  # one epoch
            next(stream)
    message = str(error.value)
    assert "\n" not in message
    assert re.match(
        rf"[56] of the 8 clips in {root} are damaged \(more than 1% and at least 5\), ", message
    ), message
    assert f"the first: {shard_of(root)}: video_0000" in message
    assert message.endswith(f"list every damaged clip with: lvg-dataset verify {root}")


def test_lvg_train_stops_past_the_limit_with_one_line(tmp_path):
    from training.cli import main as train_main

    root = make_dataset(tmp_path / "data", 6, 32)  # the tiny preset reads 32-frame clips
    for clip in range(6):
        flip_bytes(shard_of(root), frame_member(clip, 20))
    args = ["lres", "--data", str(root), "--outdir", str(tmp_path / "run"), "--preset", "tiny",
            "--batch", "2", "--steps", "1", "--quiet"]  # fmt: skip
    result = CliRunner().invoke(train_main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, result.output
    assert f"Error: every one of the 6 clips in {root} is damaged, the first: " in error[0]
    assert error[0].endswith(f"lvg-dataset verify {root}")


def test_a_dataset_with_every_clip_damaged_stops_at_once(tmp_path):
    root = make_dataset(tmp_path / "data", 2, 4)
    replace_members(shard_of(root), {frame_member(0, 1): b"garbage", frame_member(1, 2): b""})
    dataset = VideoDataset(root, RES, seq_length=4, seed=0)
    with pytest.raises(DamagedDataError, match=f"every one of the 2 clips in {root} is damaged"):
        dataset[0]


def mp4_folder(path: Path, seeds, garbage: int) -> Path:
    path.mkdir()
    for seed in seeds:
        write_mp4(path / f"v{seed}.mp4", render_video(seed, 12, 36, 64)[0], fps=10)
    rng = np.random.default_rng(0)
    for i in range(garbage):
        (path / f"garbage{i}.mp4").write_bytes(rng.bytes(3000))
    return path


def test_metrics_skip_unreadable_mp4_files_and_damaged_clips(tmp_path):
    data = make_dataset(tmp_path / "data", 3, 12)
    flip_bytes(shard_of(data), frame_member(1, 5))  # in every 11-frame clip of video 1
    folder = mp4_folder(tmp_path / "mp4", [10, 11, 12], garbage=1)
    cut = folder / "v12.mp4"  # its header still says 12 frames: found when a clip is read
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 6 // 10])
    result = CliRunner().invoke(
        metrics.cli.main,
        ["calc", "-m", "colorsim3_10f", "--data", str(data), "--videos", str(folder),
         "--quiet", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert (
        f"warning: skipped unreadable file {folder / 'garbage0.mp4'}: cannot open" in result.output
    )
    assert f"warning: skipped unreadable file {cut}: truncated" in result.output
    assert f"warning: skipped damaged clip {shard_of(data)}: {frame_member(1, 5)}" in result.output
    record = json.loads(next(x for x in result.output.splitlines() if x.startswith("{")))
    assert record["inputs"]["skipped_videos"] == {"real": 1, "generated": 2}


def test_metrics_with_only_unreadable_mp4_files_fail_with_one_line(damaged, tmp_path):
    folder = mp4_folder(tmp_path / "mp4", [], garbage=2)
    result = CliRunner().invoke(
        metrics.cli.main,
        ["calc", "-m", "colorsim3_10f", "--data", str(damaged), "--videos", str(folder),
         "--quiet", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, result.output
    assert f"every one of the 2 video files under {folder} is unreadable" in error[0]


def test_sres_training_skips_a_damaged_first_clip(tmp_path, capsys):
    """The fixed sample clips of the SR stage are the first readable ones."""
    root = tmp_path / "pairs"
    result = CliRunner().invoke(
        dataset_main,
        ["synthetic", "--outdir", str(root), "--videos", "3", "--frames", "16",
         "--res", "18x32", "--res", "72x128", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shard = root / "0018x0032" / "partition_0000.zip"
    flip_bytes(shard, frame_member(0, 1))
    out = tmp_path / "run"
    options = dict(batch=2, total_steps=1, steps_per_tick=1, r1_interval=2, sample_frames=4)
    train(resolve("sres", "tiny", data=str(root), outdir=str(out), **options), echo=print)
    assert (out / "stats.jsonl").exists()
    err = capsys.readouterr().err
    assert f"warning: skipped damaged clip {shard}: {frame_member(0, 1)}" in err
