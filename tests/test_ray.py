"""Curation and dataset writing on Ray (datasets/cluster.py,
docs/datasets.md#running-on-a-cluster-ray): a local Ray cluster of two workers gives the local
run's manifest and shards, and resumes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

import datasets.curate as curation
from datasets.cli import main
from datasets.cluster import RayCluster
from datasets.synthetic import render_video
from torch_utils.frames import Mp4Writer

FPS, H, W, N = 10, 36, 64, 25  # 2.5 s per scene
VIDEOS = ("cut.mp4", "pan.mp4", "sub/still.mp4")
CLASSIC = ("--shots", "classic", "--min-seconds", 1.5)  # the Ray path is the same for TransNetV2


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def write_video(path: Path, frames: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with Mp4Writer(path, fps=FPS) as writer:
        for frame in frames:
            writer.write(frame)


@pytest.fixture(scope="module")
def cluster():
    """One local Ray session of two one-CPU workers for the whole module."""
    ray = pytest.importorskip("ray", reason="Ray is the optional extra: pip install -e '.[scale]'")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """A hard cut, a moving scene and a still one (in a sub-folder)."""
    src = tmp_path_factory.mktemp("footage")
    scenes = [render_video(seed, N, H, W)[0] for seed in (1, 2, 3)]
    write_video(src / VIDEOS[0], np.concatenate(scenes[:2]))
    write_video(src / VIDEOS[1], scenes[2])
    write_video(src / VIDEOS[2], np.repeat(scenes[0][:1], N, axis=0))
    return src


@pytest.fixture(scope="module")
def local(src, tmp_path_factory) -> Path:
    """The manifest of a local run (one process)."""
    out = tmp_path_factory.mktemp("local") / "manifest.json"
    result = run("curate", src, "--out", out, "--workers", 1, *CLASSIC)
    assert "3 videos (3 analysed, 0 from cache)" in result.output
    return out


def test_curate_on_ray_equals_local_and_resumes(cluster, src, local, tmp_path):
    out = tmp_path / "manifest.json"
    result = run("curate", src, "--out", out, "--ray", "auto", *CLASSIC)
    assert "3 videos (3 analysed, 0 from cache)" in result.output
    expected = json.loads(local.read_text())
    assert json.loads(out.read_text()) == expected  # every field, src path included
    assert expected["kept"] and expected["dropped"]  # the comparison has content

    result = run("curate", src, "--out", out, "--ray", "auto", *CLASSIC)
    assert "3 videos (0 analysed, 3 from cache)" in result.output
    cache = curation.AnalysisCache(out.with_suffix(".cache"))
    cache.path_for(VIDEOS[1]).unlink()  # as if the run had stopped before this video
    result = run("curate", src, "--out", out, "--ray", "auto", *CLASSIC)
    assert "3 videos (1 analysed, 2 from cache)" in result.output
    assert json.loads(out.read_text()) == expected


def test_interrupted_analysis_keeps_what_arrived(cluster, src, tmp_path):
    """The driver caches each analysis as it arrives: a run stopped after the first result
    leaves exactly that one, and the re-run decodes only the others."""
    settings = curation.AnalysisSettings(shots="classic")
    cache = curation.AnalysisCache(tmp_path / "cache")

    def stop_after_first(done, total):
        for item in done:
            yield item
            raise KeyboardInterrupt

    with RayCluster("auto") as on_ray, pytest.raises(KeyboardInterrupt):
        curation.analyse_videos(src, list(VIDEOS), settings, cache, 1, stop_after_first, on_ray)
    assert len(list(cache.folder.glob("*.npz"))) == 1
    with RayCluster("auto") as on_ray:
        analyses, decoded = curation.analyse_videos(
            src, list(VIDEOS), settings, cache, cluster=on_ray
        )
    assert decoded == 2
    local, _ = curation.analyse_videos(src, list(VIDEOS), settings, cache)  # all cached now
    assert [a.video for a in analyses] == list(VIDEOS)
    for a, b in zip(analyses, local):
        assert a.error is None and np.array_equal(a.phash, b.phash)
        assert np.array_equal(a.motion, b.motion) and np.array_equal(a.times, b.times)


@pytest.mark.parametrize("with_manifest", [False, True], ids=["videos", "manifest"])
def test_from_videos_on_ray_writes_the_local_shards(cluster, src, local, tmp_path, with_manifest):
    args = ["--res", "36x64", "--res", "18x32", "--num-partitions", 2, "--partition", 1]
    if with_manifest:
        args += ["--manifest", local]
    run("from-videos", src, "--outdir", tmp_path / "local", *args, "--workers", 1)
    run("from-videos", src, "--outdir", tmp_path / "ray", *args, "--ray", "auto")
    shards = sorted((tmp_path / "local").glob("*/*.zip"))
    assert [p.relative_to(tmp_path / "local") for p in shards] == [
        Path("0018x0032/partition_0001.zip"),
        Path("0036x0064/partition_0001.zip"),
    ]
    for shard in shards:
        twin = tmp_path / "ray" / shard.relative_to(tmp_path / "local")
        assert twin.read_bytes() == shard.read_bytes(), shard


def test_usage_errors(src, tmp_path, monkeypatch):
    result = CliRunner().invoke(main, ["curate", str(src), "--out", str(tmp_path / "m.json"),
                                       "--ray", "nowhere"])  # fmt: skip
    assert result.exit_code != 0
    assert "--ray must be auto, local, HOST:PORT or ray://HOST:PORT" in result.output
    assert not (tmp_path / "m.cache").exists()  # nothing was done
    result = CliRunner().invoke(main, ["curate", str(src), "--out", str(tmp_path / "m.json"),
                                       "--ray", "auto", "--device", "cuda"])  # fmt: skip
    assert "--device cuda does not apply with --ray" in result.output
    assert not (tmp_path / "m.cache").exists()
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    args = ["from-videos", str(src), "--outdir", str(tmp_path / "d"), "--res", "36x64"]
    result = CliRunner().invoke(main, [*args, "--ray", "auto"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        "Error: --ray needs Ray: pip install -e '.[scale]'"
    )
    assert not (tmp_path / "d").exists()


def test_a_worker_that_cannot_see_a_video_says_so(cluster, tmp_path):
    """Storage must be shared: a worker missing a file fails the run with one clear line."""
    from datasets.cli import _cluster

    settings = curation.AnalysisSettings(shots="classic")
    tasks = [(str(tmp_path / "not-mounted"), "ride.mp4", settings)]
    with pytest.raises(click.ClickException) as error, _cluster("auto") as on_ray:
        list(curation.parallel_map(curation.analyse_video, tasks, 1, on_ray))
    message = error.value.message
    assert message.startswith(f"{tmp_path}/not-mounted/ride.mp4 is missing on Ray node ")
    assert "every node must see the source videos at the same path" in message
    assert "\n" not in message
