"""datasets/video_io.py and datasets/shards.py (docs/datasets.md): tiny sizes, real files."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from datasets.shards import (
    FRAME_LIST,
    ShardFolder,
    ShardWriter,
    VideoDataset,
    VideoDatasetTwoRes,
    encode_jpeg,
    format_resolution,
    parse_resolution,
    resolution_dirname,
    shard_path,
    write_clip,
)
from datasets.video_io import (
    VideoReadError,
    crop_box,
    list_files,
    read_image,
    read_video,
    resize_frame,
)
from torch_utils.frames import write_mp4

LR, HR = (18, 32), (36, 64)
CLIPS = {"partition_0000": {"a/clip0": 12, "b": 8}, "partition_0001": {"c": 3, "d": 20}}


def source_frame(clip_index: int, t: int) -> np.ndarray:
    """A 72x128 frame: red codes the clip, green the frame index, blue ramps left to right."""
    frame = np.empty((72, 128, 3), np.uint8)
    frame[..., 0] = 40 * clip_index + 20
    frame[..., 1] = 10 * t + 5
    frame[..., 2] = np.linspace(0, 255, 128).round().astype(np.uint8)[None, :]
    return frame


def to_uint8(video: torch.Tensor) -> np.ndarray:
    return ((video + 1) * 127.5).numpy()


def frame_ids(video: torch.Tensor) -> list[int]:
    """Frame indices coded in the green channel of a `[C, T, H, W]` clip."""
    green = to_uint8(video)[1].mean(axis=(1, 2))
    return [round((g - 5) / 10) for g in green]


def is_flipped(video: torch.Tensor) -> bool:
    blue = to_uint8(video)[2]
    return bool(blue[..., 0].mean() > blue[..., -1].mean())


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    """Two shards at two resolutions, clips of 12, 8, 3 and 20 frames."""
    root = tmp_path_factory.mktemp("ds")
    clip_index = 0
    for shard, clips in CLIPS.items():
        with (
            ShardWriter(shard_path(root, LR, shard)) as lr,
            ShardWriter(shard_path(root, HR, shard)) as hr,
        ):
            for clip_dir, length in clips.items():
                frames = (
                    (
                        f"frame_{t:06d}.jpg",
                        {
                            res: encode_jpeg(resize_frame(source_frame(clip_index, t), *res))
                            for res in (LR, HR)
                        },
                    )
                    for t in range(length)
                )
                assert write_clip({LR: lr, HR: hr}, clip_dir, frames) == length
                clip_index += 1
    return root


# ---------------------------------------------------------------------------------------------------
# video_io


def test_parse_resolution():
    assert (
        parse_resolution("36x64")
        == parse_resolution("0036x0064")
        == parse_resolution((36, 64))
        == (36, 64)
    )
    assert resolution_dirname("144x256") == "0144x0256" and format_resolution((36, 64)) == "36x64"
    for bad in ["36x", "x64", "0x64", "36x-64", "36*64", "10000x64", "abc"]:
        with pytest.raises(ValueError):
            parse_resolution(bad)


def test_crop_box_and_resize():
    assert crop_box(72, 128, 36, 64) == (0, 0, 128, 72)  # same aspect: no crop
    assert crop_box(100, 100, 36, 64) == (0, 22, 100, 78)  # too tall: crop rows
    assert crop_box(36, 100, 36, 64) == (18, 0, 82, 36)  # too wide: crop columns
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[:22] = 255  # only in the cropped-away band
    out = resize_frame(frame, 9, 16)
    assert out.shape == (9, 16, 3) and out.dtype == np.uint8 and out.max() < 8
    assert resize_frame(out, 9, 16) is out


def test_mp4_round_trip_and_trim(tmp_path):
    frames = [np.full((36, 64, 3), 8 * t, np.uint8) for t in range(20)]
    path = write_mp4(tmp_path / "v.mp4", frames, fps=10)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left
    decoded = list(read_video(path))
    assert len(decoded) == 20 and decoded[0].shape == (36, 64, 3) and decoded[0].dtype == np.uint8
    assert np.abs(np.stack(decoded).astype(int) - np.stack(frames)).mean() < 3
    trimmed = list(read_video(path, trim_start=0.5, trim_end=0.5))  # 2 s: keep t in [0.5, 1.5]
    assert len(trimmed) == 11 and abs(int(trimmed[0].mean()) - 8 * 5) < 4
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "odd.mp4", [np.zeros((35, 64, 3), np.uint8)])
    assert not (tmp_path / "odd.mp4").exists()


def test_read_video_errors(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(VideoReadError, match="cannot open") as info:
        list(read_video(tmp_path / "bad.mp4"))
    assert info.value.path == tmp_path / "bad.mp4"
    with pytest.raises(VideoReadError, match="cannot open"):
        list(read_video(tmp_path / "missing.mp4"))
    # Index at the start, data cut at 60 %: decodes "cleanly" but stops early.
    rng = np.random.default_rng(0)
    good = write_mp4(
        tmp_path / "good.mp4",
        (rng.integers(0, 256, (36, 64, 3), np.uint8) for _ in range(30)),
        fps=10,
    )
    data = good.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(VideoReadError, match="truncated"):
        list(read_video(tmp_path / "cut.mp4"))
    (tmp_path / "frame.png").write_bytes(b"not a png")
    with pytest.raises(VideoReadError, match="cannot read image"):
        read_image(tmp_path / "frame.png")


def test_list_files(tmp_path):
    for name in ["b/x.MP4", "a.mov", "c.txt", "b/c/y.mkv"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [
        p.relative_to(tmp_path).as_posix() for p in list_files(tmp_path, (".mp4", ".mov", ".mkv"))
    ]
    assert found == ["a.mov", "b/c/y.mkv", "b/x.MP4"]


# ---------------------------------------------------------------------------------------------------
# Shard writer


def test_shard_writer_format(tmp_path):
    path = tmp_path / "0009x0016" / "partition_0000.zip"
    with ShardWriter(path) as writer:
        write_clip(
            {(9, 16): writer},
            "z/clip",
            [("frame_000000.jpg", {(9, 16): b"1"}), ("frame_000001.jpg", {(9, 16): b"2"})],
        )
        write_clip({(9, 16): writer}, "a", [("f.jpg", {(9, 16): b"3"})])
    with zipfile.ZipFile(path) as zf:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
        assert zf.read("z/clip/frame_000001.jpg") == b"2"
        text = zf.read(FRAME_LIST).decode()
    assert text == json.dumps(
        {"a": ["f.jpg"], "z/clip": ["frame_000000.jpg", "frame_000001.jpg"]},
        indent=2,
        sort_keys=True,
    )
    assert sorted(os.listdir(path.parent)) == ["partition_0000.zip"]
    with pytest.raises(FileExistsError):
        ShardWriter(path)


def test_shards_are_byte_reproducible(tmp_path):
    frame = encode_jpeg(np.random.default_rng(0).integers(0, 256, (9, 16, 3), np.uint8))
    for name in ["a.zip", "b.zip"]:
        with ShardWriter(tmp_path / name) as writer:
            write_clip({(9, 16): writer}, "clip", [("f.jpg", {(9, 16): frame})])
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_jpeg_is_444_quality_100():
    frame = np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)
    with Image.open(BytesIO(encode_jpeg(frame))) as image:
        assert image.layer[0][1:3] == image.layer[1][1:3] == (1, 1)  # no chroma subsampling
        assert np.abs(np.asarray(image).astype(int) - frame).mean() < 3


def test_shard_writer_interrupted_leaves_nothing(tmp_path):
    path = tmp_path / "partition_0000.zip"
    with pytest.raises(RuntimeError, match="boom"), ShardWriter(path) as writer:
        writer.begin_clip("clip")
        writer.add_frame("frame_000000.jpg", b"x" * 1000)
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_failed_clip_is_cut_off(tmp_path):
    def failing_frames():
        yield "frame_000000.jpg", {(9, 16): b"x" * 5000}
        raise VideoReadError("v.mp4", "truncated")

    path = tmp_path / "partition_0000.zip"
    with ShardWriter(path) as writer:
        write_clip({(9, 16): writer}, "keep1", [("f.jpg", {(9, 16): b"a"})])
        with pytest.raises(VideoReadError):
            write_clip({(9, 16): writer}, "bad", failing_frames())
        with pytest.raises(ValueError, match="no frames"):
            write_clip({(9, 16): writer}, "empty", [])
        write_clip({(9, 16): writer}, "keep2", [("f.jpg", {(9, 16): b"b"})])
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == ["keep1/f.jpg", "keep2/f.jpg", FRAME_LIST]
        assert sorted(json.loads(zf.read(FRAME_LIST))) == ["keep1", "keep2"]
    assert path.stat().st_size < 2000  # the failed clip's 5000 bytes were cut off


# ---------------------------------------------------------------------------------------------------
# Readers


def test_video_dataset_items(dataset_root):
    ds = VideoDataset(dataset_root, "18x32", seq_length=5, seed=0)
    assert ds.clip_names == ["a/clip0", "b", "d"]  # "c" (3 frames) is too short
    assert ds.num_frames == [12, 8, 20] and len(ds) == 3
    for index in range(len(ds)):
        video = ds[index]
        assert video.shape == (3, 5, 18, 32) and video.dtype == torch.float32
        assert -1 <= video.min() and video.max() <= 1
        ids = frame_ids(video)
        assert ids == list(range(ids[0], ids[0] + 5)) and ids[-1] < ds.num_frames[index]
        assert not is_flipped(video)
    assert torch.equal(ds[1], ds[1])  # seeded: a pure function of (seed, epoch, index)
    starts = set()
    for epoch in range(20):
        ds.set_epoch(epoch)
        starts.add(frame_ids(ds[2])[0])
    assert len(starts) > 5 and max(starts) <= 15  # uniform over the 16 valid starts of "d"


def test_video_dataset_spacing_flip_and_read_frames(dataset_root):
    ds = VideoDataset(dataset_root, LR, seq_length=4, frame_spacing=(2, 3), x_flip=True, seed=1)
    assert ds.clip_names == ["a/clip0", "b", "d"]  # needs (4 - 1) * 2 + 1 = 7 frames
    spacings, flips = set(), []
    for epoch in range(24):
        ds.set_epoch(epoch)
        video = ds[2]
        ids = frame_ids(video)
        spacings.add(ids[1] - ids[0])
        assert np.all(np.diff(ids) == ids[1] - ids[0])
        flips.append(is_flipped(video))
        unflipped = ds.read_frames(2, ids[0], 4, ids[1] - ids[0])
        assert torch.equal(video, unflipped.flip(-1) if flips[-1] else unflipped)
    assert spacings == {2, 3} and 0 < sum(flips) < len(flips)
    assert frame_ids(ds.read_frames(0, 3, 3)) == [3, 4, 5]
    with pytest.raises(IndexError):
        ds.read_frames(1, 6, 3)  # "b" has 8 frames


def test_two_res_pairs(dataset_root):
    ds = VideoDatasetTwoRes(dataset_root, LR, HR, seq_length=6, x_flip=True, seed=0)
    flips = []
    for epoch in range(8):
        ds.set_epoch(epoch)
        lr, hr = ds[0]
        assert lr.shape == (3, 6, 18, 32) and hr.shape == (3, 6, 36, 64)
        assert frame_ids(lr) == frame_ids(hr)
        assert is_flipped(lr) == is_flipped(hr)
        flips.append(is_flipped(lr))
        downscaled = torch.nn.functional.avg_pool2d(hr.transpose(0, 1), 2).transpose(0, 1)
        assert (downscaled - lr).abs().mean() < 0.03
    assert 0 < sum(flips) < len(flips)
    lr, hr = ds.read_frames(2, 10, 2)
    assert frame_ids(lr) == frame_ids(hr) == [10, 11]


def test_original_tool_layout_is_readable(tmp_path):
    """A shard as the original tools wrote it: appended in chunks, frames at quality 95 with
    default subsampling, frame_paths.json last, nested and root-level ('.') clip dirs."""
    folder = tmp_path / "0036x0064"
    folder.mkdir()
    frame_paths = {
        "0N0vCfvPpzA/0_01-0_08": ["frame_000000.jpg", "frame_000001.jpg"],
        ".": ["0001.jpg"],
    }
    for clip_dir, names in frame_paths.items():
        with zipfile.ZipFile(folder / "shard_x.zip", "a", compression=zipfile.ZIP_STORED) as zf:
            for name in names:
                buffer = BytesIO()
                Image.new("RGB", (64, 36), (200, 30, 30)).save(buffer, "JPEG", quality=95)
                zf.writestr(str(Path(clip_dir) / name), buffer.getvalue())
    with zipfile.ZipFile(folder / "shard_x.zip", "a", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("frame_paths.json", json.dumps(frame_paths, indent=2, sort_keys=True))
    ds = VideoDataset(tmp_path, (36, 64), seq_length=1, seed=0)
    assert ds.clip_names == [".", "0N0vCfvPpzA/0_01-0_08"]
    video = ds[1]
    assert video.shape == (3, 1, 36, 64)
    assert torch.allclose(video[:, 0, 18, 32], torch.tensor([200, 30, 30]) / 127.5 - 1, atol=0.05)


def test_reader_errors(dataset_root, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        VideoDataset(dataset_root, "144x256", seq_length=2)
    message = str(info.value)
    assert "0144x0256" in message and "0018x0032, 0036x0064" in message
    assert "lvg-dataset from-videos SRC" in message and "--res 144x256" in message
    with pytest.raises(ValueError, match="longest has 20"):
        VideoDataset(dataset_root, LR, seq_length=21)
    # Two resolutions that disagree: one clip missing at the high resolution.
    with (
        ShardWriter(shard_path(tmp_path, LR, "p")) as lr,
        ShardWriter(shard_path(tmp_path, HR, "p")) as hr,
    ):
        write_clip(
            {LR: lr, HR: hr},
            "both",
            [
                (
                    "f.jpg",
                    {
                        LR: encode_jpeg(np.zeros((*LR, 3), np.uint8)),
                        HR: encode_jpeg(np.zeros((*HR, 3), np.uint8)),
                    },
                )
            ],
        )
        write_clip(
            {LR: lr}, "lr_only", [("f.jpg", {LR: encode_jpeg(np.zeros((*LR, 3), np.uint8))})]
        )
    with pytest.raises(ValueError) as info:
        VideoDatasetTwoRes(tmp_path, LR, HR, seq_length=1)
    message = str(info.value)
    assert "0018x0032" in message and "0036x0064" in message and "lr_only" in message
    assert "--res 18x32 --res 36x64" in message


def test_dataloader_workers_and_pickling(dataset_root):
    ds = VideoDataset(dataset_root, LR, seq_length=3, x_flip=True)
    ds[0]  # opens a zip handle in this process: workers must not share it
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.shards._zips == {} and clone[0].shape == (3, 3, 18, 32)
    loader = DataLoader(
        ds, batch_size=2, shuffle=True, drop_last=True, num_workers=2, persistent_workers=True
    )
    batches = [batch for _ in range(2) for batch in loader]
    assert len(batches) == 4 and all(b.shape == (2, 3, 3, 18, 32) for b in batches)


def test_distributed_sampler(dataset_root):
    ds = VideoDatasetTwoRes(dataset_root, LR, HR, seq_length=2, x_flip=True, seed=3)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(1)
        ds.set_epoch(1)
        indices = list(sampler)
        seen += indices
        loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=2)
        ((lr, hr),) = list(loader)
        assert lr.shape == (2, 3, 2, 18, 32) and hr.shape == (2, 3, 2, 36, 64)
        expected = [ds[i] for i in indices]  # seeded items do not depend on the worker
        assert all(torch.equal(lr[k], expected[k][0]) for k in range(2))
    assert sorted(seen) == list(range(len(ds)))


def test_shard_folder_order(dataset_root):
    folder = ShardFolder(dataset_root, LR)
    assert [(c.shard, c.clip_dir, c.num_frames) for c in folder.clips] == [
        ("partition_0000", "a/clip0", 12),
        ("partition_0000", "b", 8),
        ("partition_0001", "c", 3),
        ("partition_0001", "d", 20),
    ]
