"""Projection (generation/projection.py, lvg-project, lvg-generate --from; docs/projection.md):
self-projection quality, determinism, continuity, loops, the file format and its checks, the
two command lines end to end, still images and connected clips.

Quality (30 dB, seams, loops) is checked with the shipped demo model (the tiny preset,
trained): an untrained tiny generator's videos are either nearly flat (a few dB of contrast) or,
scaled up, so chaotic that 100 steps reach only 17-18 dB (docs/projection.md#limits). The
command lines, determinism and file checks use a small random-weight generator (18x32, short
noise filters). One thread: these networks are so small that thread synchronisation would
dominate on a busy machine."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from test_help_examples import make_inputs

import networks
from generation import cli as gen_cli
from generation import project_cli
from generation.cli import DEMO_LRES
from generation.pipeline import generate_video
from generation.projection import (
    Projection,
    ProjectionError,
    Settings,
    loop_for,
    noise_window,
    project,
    reconstruct,
)
from generation.timeline import Loop
from metrics.lpips_curves import load_lpips
from networks.lres_generator import LowResGenerator, LowResGeneratorConfig
from networks.noise import NoiseBankConfig
from torch_utils.frames import to_uint8_hwc, write_mp4

OFFSET, T = 4, 8
STEPS = 50  # lr 0.05: 31 dB on the demo model for 8 frames (30.7 dB at 40 steps)


def small_config(**changes) -> LowResGeneratorConfig:
    base = dict(
        height=18,
        width=32,
        input_channels=16,
        channels=(16, 16, 16, 16, 8, 8, 8, 8, 8, 8),
        latent_dim=32,
        noise=NoiseBankConfig(num_filters=4, min_sampling_rate=64.0, max_sampling_rate=512.0),
        output_scale=1.5,  # frames with some contrast (0.25 leaves them nearly flat)
    )
    return LowResGeneratorConfig(**{**base, **changes})


def make_G(seed: int = 0, **changes) -> LowResGenerator:
    torch.manual_seed(seed)
    return LowResGenerator(small_config(**changes)).eval().requires_grad_(False)


def video(G, seed, start, count, patch=None, loop=None, batch_frames=128) -> torch.Tensor:
    """`[3, T, H, W]` float frames as lvg-generate computes them."""
    frames = generate_video(
        G,
        None,
        seed,
        count,
        start_frame=start,
        output="float",
        patch=patch,
        loop=loop,
        batch_frames=batch_frames,
    )
    return torch.stack([f.video[0] for f in frames], dim=1)


def psnr(a, b) -> float:
    return float(10 * np.log10(4 / (a - b).square().mean().item()))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def G():
    return make_G()


@pytest.fixture(scope="module")
def demo():
    return networks.load(DEMO_LRES, kind="lres_generator")


@pytest.fixture(scope="module")
def target(demo):
    return video(demo, 1, OFFSET, T)


@pytest.fixture(scope="module")
def proj(demo, target):
    return project(demo, [(target, OFFSET)], steps=STEPS, seed=2, device="cpu")


@pytest.fixture(scope="module")
def gfile(G, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("g") / "g.safetensors"
    networks.save(G, path)
    return path


def test_self_projection_reaches_30_db(demo, target, proj):
    start = psnr(video(demo, 2, OFFSET, T), target)  # where the optimisation starts
    assert start < 25, start
    assert proj.psnr[0] >= 30, proj.psnr
    assert len(proj.losses) == STEPS and proj.losses[-1] < proj.losses[0] / 5
    assert proj.clips == ((OFFSET, OFFSET + T),) and proj.base_seed == 2
    window = noise_window(demo, proj.clips)
    assert (proj.start, proj.noise.shape) == (window.start, (8, window.length))
    # the window is what the aligned chunk reads: frames 0..31, 2 x lead, the filters' context
    assert window.length == demo.shift_period + 2 * demo.embedding_lead + demo.noise_bank.context
    # the prior keeps the window white-ish N(0, 1)
    assert abs(proj.noise.mean()) < 0.05 and abs(proj.noise.std() - 1) < 0.05


def test_playback_is_the_reconstruction_and_the_base_seed_outside(demo, target, proj):
    played = video(demo, 2, OFFSET - 3, T + 6, proj.patch)
    clip = played[:, 3 : 3 + T]
    assert torch.allclose(clip, reconstruct(demo, proj, OFFSET, OFFSET + T), atol=1e-5)
    assert psnr(clip, target) >= 30
    # chunks that read no sample of the window: the base seed's video, bit for bit
    p, reach = demo.shift_period, 2 * demo.embedding_lead + demo.noise_bank.context
    before = (proj.start - p - reach) // p * p - p
    after = proj.start + proj.noise.shape[1]
    for first in (before, after):
        a = video(demo, 2, first, p, proj.patch, batch_frames=p)
        assert torch.equal(a, video(demo, 2, first, p, batch_frames=p)), first
    # the chunk after the clip's continues the projection, not the base seed
    nxt = video(demo, 2, p, p, proj.patch, batch_frames=p)
    assert (nxt - video(demo, 2, p, p, batch_frames=p)).abs().max() > 0.05


def test_determinism_with_seed(G):
    clip = video(G, 1, 0, 4)
    a = project(G, [(clip, 0)], steps=3, seed=5, device="cpu")
    b = project(G, [(clip, 0)], steps=3, seed=5, device="cpu")
    c = project(G, [(clip, 0)], steps=3, seed=6, device="cpu")
    assert torch.equal(a.noise, b.noise) and a.losses == b.losses
    assert not torch.equal(a.noise, c.noise)


def test_continuity_across_the_seams(demo, proj):
    """LPIPS from the last projected frame to the first extended one, and from the frame
    before the clip to its first, at most 1.5x the median LPIPS between consecutive frames of
    the model's own videos (the issue's criterion)."""
    lpips = load_lpips("alex")

    def steps(v):
        x = v.transpose(0, 1)
        return lpips(x[:-1], x[1:]).numpy()

    own = np.median(np.concatenate([steps(video(demo, s, 0, 32)) for s in (10, 11, 12)]))
    seam = steps(video(demo, 2, OFFSET - 1, T + 2, proj.patch))
    backward, forward = seam[0], seam[-1]
    assert max(backward, forward) <= 1.5 * own, (backward, forward, own)


def test_a_looped_projection_repeats_exactly_and_shows_the_clip(demo, proj):
    period = 128
    loop = loop_for(proj, Loop(period), demo)
    assert loop.anchor + loop.ramp <= OFFSET and OFFSET + T <= loop.anchor + period
    v = video(demo, 2, 0, period + 16, proj.patch, loop)
    assert torch.allclose(v[:, :16], v[:, period:], atol=1e-5)
    clip = reconstruct(demo, proj, OFFSET, OFFSET + T)
    assert psnr(v[:, OFFSET : OFFSET + T], clip) > 30  # seen (up to the receptive field)


def test_save_load_round_trip(demo, proj, tmp_path):
    path = proj.save(tmp_path / "p.safetensors")
    back = Projection.load(path)
    back.check_generator(demo, path)
    assert torch.equal(back.noise, proj.noise)
    for name in ("start", "base_seed", "clips", "generator", "config_hash", "losses", "psnr"):
        assert getattr(back, name) == getattr(proj, name), name
    assert not list(tmp_path.glob("*.tmp-*"))


def test_mismatched_generator_and_damaged_files_are_refused(demo, G, proj, tmp_path):
    path = proj.save(tmp_path / "p.safetensors")
    with pytest.raises(ProjectionError, match="another config.*project the clip again"):
        Projection.load(path).check_generator(G, path)
    torch.manual_seed(1)
    retrained = LowResGenerator(demo.cfg).eval()
    with pytest.raises(ProjectionError, match="p.safetensors was projected with other weights"):
        Projection.load(path).check_generator(retrained, path)
    moved = Projection(**{**proj.__dict__, "start": proj.start + 32})
    with pytest.raises(ProjectionError, match="the window is samples"):
        moved.check_generator(demo, "moved")
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ProjectionError, match="cut.safetensors is truncated"):
        Projection.load(tmp_path / "cut.safetensors")
    with pytest.raises(ProjectionError, match="not a projection file"):
        Projection.load(networks.save(G, tmp_path / "g.safetensors"))


def test_two_clips_joined_and_a_still(G):
    target, later = video(G, 1, OFFSET, T), video(G, 3, 64, 4)
    joined = project(G, [(target, OFFSET), (later, 64)], steps=2, seed=2, device="cpu")
    assert joined.clips == ((OFFSET, OFFSET + T), (64, 68)) and len(joined.psnr) == 2
    window = noise_window(G, joined.clips)
    assert window.start == 0 and window.length == 96 + 2 * G.embedding_lead + 255
    with pytest.raises(ValueError, match="clips overlap"):
        project(G, [(target, 0), (later, 4)], steps=1, device="cpu")
    still = to_uint8_hwc(target[:, :1].transpose(0, 1))  # uint8 [1, H, W, 3]
    image = project(G, [(still, 0)], steps=2, seed=2, device="cpu")
    assert image.clips == ((0, 1),)
    big = np.kron(still[0], np.ones((4, 4, 1), np.uint8))  # resized as lvg-dataset does
    again = project(G, [(big, 0)], steps=2, seed=2, device="cpu", settings=Settings(lr=0.1))
    assert again.clips == ((0, 1),) and np.isfinite(again.losses).all()


def read_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_lvg_project_and_generate_from_end_to_end(G, gfile, tmp_path):
    clip = to_uint8_hwc(video(G, 1, 0, 12).transpose(0, 1))
    write_mp4(tmp_path / "clip.mp4", clip)
    out = tmp_path / "proj"
    args = [f"{tmp_path / 'clip.mp4'}@{OFFSET}", "--lres", gfile, "--steps", 4, "--max-frames",
            T, "--out", out, "--device", "cpu", "--quiet"]  # fmt: skip
    result = CliRunner().invoke(project_cli.main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "PSNR" in result.output and "wrote" in result.output
    compare = read_frames(tmp_path / "proj-compare.mp4")
    assert compare.shape[0] == T and compare.shape[2] == 2 * compare.shape[1] * 32 // 18
    proj = Projection.load(tmp_path / "proj.safetensors")
    assert proj.clips == ((OFFSET, OFFSET + T),) and len(proj.losses) == 4
    assert not list(tmp_path.glob("*.tmp-*"))

    def generate(*extra):
        args = ["--lres", gfile, "--from", tmp_path / "proj.safetensors", "--quiet", *extra]
        return CliRunner().invoke(gen_cli.main, [str(a) for a in args])

    for name, extra in {
        "fwd": ["--frames", 40],
        "back": ["--start-frame", -40, "--frames", 48],
        "loop": ["--loop", 64],
        "seed": ["--transition-to", 7, "--frames", 16],
        "proj": ["--transition-to", tmp_path / "proj.safetensors", "--frames", 16],
    }.items():
        result = generate(*extra, "--out", tmp_path / f"{name}.mp4", "--lres-native", "--crf", 0)
        assert result.exit_code == 0, (name, result.output)
    loop = read_frames(tmp_path / "loop.mp4")
    assert loop.shape[0] == 64
    fwd, back = read_frames(tmp_path / "fwd.mp4"), read_frames(tmp_path / "back.mp4")
    assert np.abs(fwd[:8].astype(int) - back[40:48].astype(int)).max() <= 1  # same frames
    # a seed and a projection together, a projection of another generator, a bad clip
    both = generate("--seed", 3, "--out", tmp_path / "x.mp4")
    assert both.exit_code == 2 and "give --seed or --from" in both.output
    other = tmp_path / "other.safetensors"
    networks.save(make_G(seed=1), other)
    wrong = CliRunner().invoke(gen_cli.main, ["--lres", str(other), "--from",
                               str(tmp_path / "proj.safetensors"), "--out", str(tmp_path / "y.mp4")])  # fmt: skip
    assert wrong.exit_code == 1 and "other weights" in wrong.output
    assert len(wrong.output.strip().splitlines()) == 1
    bad = CliRunner().invoke(project_cli.main, [str(tmp_path / "nothing.mp4"), "--lres",
                             str(gfile), "--out", str(tmp_path / "bad"), "--quiet"])  # fmt: skip
    assert bad.exit_code == 1 and "no such file" in bad.output
    assert not list(tmp_path.glob("bad*")) and not (tmp_path / "y.mp4").exists()


def test_lvg_project_image_mode(G, gfile, tmp_path):
    still = to_uint8_hwc(video(G, 1, 0, 1).transpose(0, 1))[0]
    Image.fromarray(np.kron(still, np.ones((2, 2, 1), np.uint8))).save(tmp_path / "s.png")
    args = [tmp_path / "s.png", "--image", "--lres", gfile, "--steps", 2, "--out",
            tmp_path / "still.safetensors", "--device", "cpu", "--quiet"]  # fmt: skip
    result = CliRunner().invoke(project_cli.main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert Projection.load(tmp_path / "still.safetensors").clips == ((0, 1),)


def test_help_examples_run(tmp_path, monkeypatch):
    """lvg-project's --help examples (and the lvg-generate --from line there) run as written,
    shrunk to 1 step and 6 frames, with the demo model, on the inputs of
    tests/test_help_examples.py."""
    home = tmp_path / "home"
    make_inputs(home)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    # (through -h, as a user types it: a bare click.Context would cache a help option without -h)
    page = CliRunner().invoke(project_cli.main, ["-h"], prog_name="lvg-project").output
    lines, examples = iter(page.splitlines()), []
    for line in lines:
        line = line.strip()
        while line.endswith("\\"):
            line = line[:-1].rstrip() + " " + next(lines).strip()
        if line.startswith(("lvg-project ", "lvg-generate ")):
            examples.append(line)
    assert len(examples) == 4, examples
    for example in examples:
        words = [str(home) + w[1:] if w.startswith("~/") else w for w in shlex.split(example)]
        prog, args = words[0], words[1:]
        if prog == "lvg-project":
            args[args.index("--steps") + 1] = "1"
            command = project_cli.main
        else:
            args[args.index("--frames") + 1] = "6"
            command = gen_cli.main
        result = CliRunner().invoke(command, [*args, "--quiet"])
        assert result.exit_code == 0, f"{example}\n{result.output}"


def test_benchmark_quick(tmp_path):
    """benchmarks/project.py --quick runs end to end and reports every figure."""
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "q.json"
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "project.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    row = result["self"]["default"]
    for key in ("psnr", "lpips", "seam_forward_ratio", "seam_backward_ratio", "after_ratio"):
        assert np.isfinite(row[key]), key
    held = result["held_out"][0]
    assert np.isfinite(held["psnr"]) and np.isfinite(held["baseline_lpips"])
