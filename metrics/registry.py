"""Metric names -> computations, and the Python API (`compute`) shared by the CLI and training.

Names (N clips or videos, F frames):

| name | what | result keys |
| --- | --- | --- |
| `fvd{N}_{F}f`, e.g. fvd2048_16f, fvd2048_128f | FVD (docs/metrics.md#fvd) | the name |
| `fvd{N}_{F}f_subsample{S}f`, e.g. fvd2048_128f_subsample8f | FVD on every S-th frame | the name |
| `colorsim{N}_{F}f`, e.g. colorsim1000_128f | colour similarity vs separation 0..F | the name: mean abs gap of the curves |
| `lpips_curve{N}_{F}f[_vgg]` | LPIPS(frame 0, frame k), k = 0..F | the name: mean abs gap; `_fake_last`, `_real_last` |
| `lpips_flicker{N}_{F}f[_vgg]` | LPIPS between consecutive frames of F-frame clips | the name (generated), `_real` |

With `num_runs > 1` every key k becomes `k_run01`, ..., `k_mean`, `k_std`
(docs/metrics.md#results-files). Curves go to `MetricResult.details` (and a PNG per curve
metric when `outdir` is set).

    ctx = MetricContext(data="~/data/synth", resolution=(36, 64), sampler=lres_sampler(G))
    result = compute("fvd2048_128f", ctx)       # -> MetricResult; result.results["fvd2048_128f"]
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from datasets.shards import VideoDataset, VideoDatasetTwoRes, list_resolutions, parse_resolution
from datasets.video_io import VIDEO_EXTENSIONS, list_files
from metrics import color_similarity, fvd
from metrics.curves import Curve, curve_from_rows, curve_gap, plot_curves
from metrics.sources import (
    ClipSampler,
    Mp4Folder,
    chain_sampler,
    lres_sampler,
    open_videos,
    sample_real_clips,
    sres_sampler,
    video_sampler,
)
from networks.contract import check_chain, check_lr_size
from networks.i3d import Detector, load_detector
from torch_utils.misc import choose_device

CURVE_BATCH = 4


class MetricError(ValueError):
    """A metric that cannot be computed as asked (unknown name, missing input, ...)."""


@dataclass
class MetricContext:
    """Everything a metric needs: real videos, generated clips, device and options.

    `sampler(batch, num_frames, generator)` returns generated clips `[n, 3, T, H, W]` in [−1, 1]
    (see `metrics.sources` for the network wrappers); `generated` describes it for the record."""

    data: str | os.PathLike  # a dataset, or a folder of video files
    resolution: tuple[int, int] | str | None  # of the dataset's real clips; None for video files
    sampler: ClipSampler
    generated: dict = field(default_factory=lambda: {"kind": "callable"})
    device: str | torch.device | None = None
    detector_path: str | os.PathLike | None = None
    allow_random_detector: bool = False
    seed: int = 0
    real_seed: int = 0
    num_runs: int = 1
    cache: bool = True
    replace_cache: bool = False
    progress: bool = True
    outdir: str | os.PathLike | None = None
    _detector: Detector | None = field(default=None, repr=False)
    _lpips: dict = field(default_factory=dict, repr=False)
    _videos: Mp4Folder | None = field(default=None, repr=False)
    # The sources read so far, whose `damage` counts the videos skipped (`skipped_videos`).
    _real_sources: list = field(default_factory=list, repr=False)
    _generated_sources: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.resolution = parse_resolution(self.resolution) if self.resolution else None
        self.data = Path(self.data).expanduser()
        if self.resolution is None and list_resolutions(self.data):
            raise MetricError(f"{self.data} is a dataset: give the resolution of its real clips")
        self.device = choose_device(self.device)
        if self.num_runs < 1:
            raise MetricError("num_runs must be at least 1")

    def detector(self) -> Detector:
        if self._detector is None:
            self._detector = load_detector(
                self.detector_path, self.device, self.allow_random_detector
            )
        return self._detector

    def lpips(self, net: str):
        if net not in self._lpips:
            from metrics.lpips_curves import load_lpips

            self._lpips[net] = load_lpips(net, self.device)
        return self._lpips[net]

    def real(self, min_frames: int, spacing: int = 1) -> VideoDataset | Mp4Folder:
        """The real videos (clips too short for `min_frames` frames every `spacing` dropped)."""
        if self.resolution is None:
            if self._videos is None:
                self._videos = Mp4Folder(self.data)
                self._real_sources.append(self._videos)
            return self._videos
        dataset = VideoDataset(
            self.data, self.resolution, seq_length=min_frames, frame_spacing=spacing
        )
        self._real_sources.append(dataset)
        return dataset

    def track_generated(self, source) -> None:
        """Count `source`'s damaged videos (its `damage` tally) as skipped generated videos:
        for generated videos read from files rather than made by a network."""
        self._generated_sources.append(source)

    def skipped_videos(self) -> dict[str, int]:
        """Damaged or unreadable videos (clips of a dataset, files of a folder) skipped so far,
        real and generated (docs/metrics.md#damaged-and-unreadable-videos)."""
        return {
            "real": _count_damaged(self._real_sources),
            "generated": _count_damaged(self._generated_sources),
        }

    def generator(self, run: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed + run)


def _count_damaged(sources: list) -> int:
    """Distinct damaged videos met by `sources` (each a source with a `damage` tally)."""
    return len(set().union(*(s.damage.found.keys() for s in sources)))


@dataclass
class MetricResult:
    """One line of a results JSONL file."""

    metric: str
    results: dict[str, float]
    protocol: dict
    inputs: dict
    detector: dict | None = None
    details: dict = field(default_factory=dict)
    total_time: float = 0.0
    timestamp: str = ""

    def to_json(self) -> str:
        record = asdict(self)
        record["total_time_str"] = str(datetime.timedelta(seconds=round(self.total_time)))
        return json.dumps(record)


def append_jsonl(path: str | os.PathLike, result: MetricResult) -> None:
    """Append one line; the line is written with a single write call."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(result.to_json() + "\n")


def summarise_runs(runs: list[dict[str, float]]) -> dict[str, float]:
    """One run: its keys. Several: `k_run01`, ..., `k_mean`, `k_std`."""
    if len(runs) == 1:
        return runs[0]
    out: dict[str, float] = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        out.update({f"{key}_run{i + 1:02d}": v for i, v in enumerate(values)})
        out[f"{key}_mean"] = float(np.mean(values))
        out[f"{key}_std"] = float(np.std(values))
    return out


# ------------------------------------------------------------------------------------------------
# Metrics


def _fvd(name: str, match: re.Match, ctx: MetricContext) -> MetricResult:
    protocol = fvd.parse_fvd_name(name, ctx.real_seed)
    detector = ctx.detector()
    real_source = ctx.real(protocol.num_frames, protocol.subsample)
    label = ctx.data.resolve().name
    if ctx.resolution is not None:
        label += f"-{ctx.resolution[0]}x{ctx.resolution[1]}"
    real, record = fvd.real_stats(
        detector, real_source, protocol, ctx.cache, ctx.replace_cache, ctx.progress, label
    )
    runs = []
    for run in range(ctx.num_runs):
        fake = fvd.fake_stats(
            detector, ctx.sampler, protocol, ctx.seed + run, ctx.device, ctx.progress
        )
        runs.append({name: fvd.frechet_between(fake, real)})
    return MetricResult(
        name,
        summarise_runs(runs),
        {**protocol.describe(), "seed": ctx.seed, "num_runs": ctx.num_runs},
        {},
        detector.describe(),
        {"real_stats": record},
    )


def _curve_rows(
    ctx: MetricContext, num: int, frames: int, fn: Callable, run: int | None
) -> list[np.ndarray]:
    """Per-video rows of `fn(clips)` for `num` real (run None) or generated clips."""
    rows: list[np.ndarray] = []
    desc = "real videos" if run is None else "generated videos"
    if run is None:
        clips = sample_real_clips(ctx.real(frames), frames, 1, ctx.real_seed)
    else:
        generator = ctx.generator(run)
    with tqdm(total=num, desc=desc, unit="video", disable=not ctx.progress, leave=False) as bar:
        while len(rows) < num:
            batch = min(CURVE_BATCH, num - len(rows))
            if run is None:
                video = torch.stack([next(clips) for _ in range(batch)])
            else:
                with torch.no_grad():
                    video = ctx.sampler(batch, frames, generator)
            rows.extend(fn(video))
            bar.update(batch)
    return rows


def _curve_metric(
    name: str,
    ctx: MetricContext,
    num: int,
    frames: int,
    fn: Callable,
    summarise: Callable[[Curve, Curve], dict[str, float]],
    what: dict,
    ylabel: str,
) -> MetricResult:
    real = curve_from_rows(_curve_rows(ctx, num, frames, fn, None))
    runs, fakes = [], []
    for run in range(ctx.num_runs):
        fakes.append(curve_from_rows(_curve_rows(ctx, num, frames, fn, run)))
        runs.append(summarise(fakes[-1], real))
    details = {"real": real.to_dict(), "generated": [c.to_dict() for c in fakes]}
    if ctx.outdir is not None:
        png = plot_curves(
            {"generated": fakes[0], "real": real}, Path(ctx.outdir) / f"{name}.png", name, ylabel
        )
        details["plot"] = str(png)
    protocol = {
        "num_videos": num,
        "frames": frames,
        "seed": ctx.seed,
        "real_seed": ctx.real_seed,
        **what,
    }
    return MetricResult(name, summarise_runs(runs), protocol, {}, None, details)


def _colorsim(name: str, match: re.Match, ctx: MetricContext) -> MetricResult:
    num, separation = int(match[1]), int(match[2])
    what = {
        "quantity": "joint RGB histogram intersection with frame 0 / pixels",
        "bins_per_channel": color_similarity.BINS,
        "binning": "floor(v*20/256) of uint8 clamp(x*127.5+128) truncated",
        "summary": "mean |generated mean − real mean| over separations 0..F",
    }
    return _curve_metric(
        name,
        ctx,
        num,
        separation + 1,
        color_similarity.similarity_rows,
        lambda fake, real: {name: curve_gap(fake, real)},
        what,
        "histogram intersection with frame 0",
    )


def _lpips_curve(name: str, match: re.Match, ctx: MetricContext) -> MetricResult:
    from metrics.lpips_curves import lpips_from_first

    num, separation, net = int(match[1]), int(match[2]), match[3] or "alex"
    model = ctx.lpips(net)
    what = {
        "quantity": "LPIPS(frame 0, frame k), frames at their own resolution",
        "lpips": model.describe(),
        "summary": "mean |generated mean − real mean| over separations 0..F",
    }
    return _curve_metric(
        name,
        ctx,
        num,
        separation + 1,
        lambda video: list(lpips_from_first(model, video)),
        lambda fake, real: {
            name: curve_gap(fake, real),
            f"{name}_fake_last": float(fake.mean[-1]),
            f"{name}_real_last": float(real.mean[-1]),
        },
        what,
        "LPIPS to frame 0",
    )


def _lpips_flicker(name: str, match: re.Match, ctx: MetricContext) -> MetricResult:
    from metrics.lpips_curves import lpips_consecutive

    num, frames, net = int(match[1]), int(match[2]), match[3] or "alex"
    if frames < 2:
        raise MetricError(f"{name}: flicker needs clips of at least 2 frames")
    model = ctx.lpips(net)
    what = {
        "quantity": "LPIPS between consecutive frames, mean over frames and videos",
        "lpips": model.describe(),
    }
    result = _curve_metric(
        name,
        ctx,
        num,
        frames,
        lambda video: list(lpips_consecutive(model, video)),
        lambda fake, real: {name: float(fake.mean.mean()), f"{name}_real": float(real.mean.mean())},
        what,
        "LPIPS(frame t, frame t+1)",
    )
    return result


METRICS: list[tuple[re.Pattern, Callable[[str, re.Match, MetricContext], MetricResult], str]] = [
    (fvd.FVD_NAME, _fvd, "fvd{N}_{F}f[_subsample{S}f]"),
    (re.compile(r"colorsim(\d+)_(\d+)f"), _colorsim, "colorsim{N}_{F}f"),
    (
        re.compile(r"lpips_curve(\d+)_(\d+)f(?:_(vgg|alex))?"),
        _lpips_curve,
        "lpips_curve{N}_{F}f[_vgg]",
    ),
    (
        re.compile(r"lpips_flicker(\d+)_(\d+)f(?:_(vgg|alex))?"),
        _lpips_flicker,
        "lpips_flicker{N}_{F}f[_vgg]",
    ),
]


def is_fvd(name: str) -> bool:
    return fvd.FVD_NAME.fullmatch(name) is not None


def check_name(name: str) -> None:
    """Raise a MetricError unless `name` is a metric this registry knows."""
    if not any(p.fullmatch(name) for p, _, _ in METRICS):
        forms = ", ".join(form for _, _, form in METRICS)
        raise MetricError(f"unknown metric {name!r}; names look like: {forms}")


def compute(name: str, ctx: MetricContext) -> MetricResult:
    """Compute metric `name` (see the module docstring) and return its record."""
    check_name(name)
    start = time.time()
    for pattern, fn, _ in METRICS:
        match = pattern.fullmatch(name)
        if match:
            result = fn(name, match, ctx)
            break
    result.inputs = {
        "data": str(ctx.data),
        "resolution": list(ctx.resolution) if ctx.resolution else "as stored",
        "generated": ctx.generated,
        "device": str(ctx.device),
        "skipped_videos": ctx.skipped_videos(),
    }
    result.total_time = time.time() - start
    result.timestamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return result


# ------------------------------------------------------------------------------------------------
# Building a context from paths (the CLI's inputs)


def context_from_paths(
    data: str | os.PathLike,
    lres: str | os.PathLike | None = None,
    sres: str | os.PathLike | None = None,
    videos: str | os.PathLike | None = None,
    resolution=None,
    lr_resolution=None,
    device=None,
    **options,
) -> MetricContext:
    """A MetricContext for checkpoints or a folder of videos (exactly one of the three setups):

    * `lres` alone: the low-res generator; real clips at its output size.
    * `lres` and `sres`: the whole chain; real clips at `resolution` (default: the SR output size).
    * `sres` alone: super-resolution of real low-res clips (`lr_resolution`, default: the SR
      network's input size).
    * `videos`: a folder of video files or a dataset; real clips at `resolution` (default largest).

    `data` is a dataset, or a folder of video files (read at their own size; not with `sres`
    alone).
    """
    data = Path(data).expanduser()
    present = list_resolutions(data)
    _check_setup(data, present, lres, sres, videos)
    device = choose_device(device)
    res = parse_resolution(resolution) if resolution else (present[-1] if present else None)
    seed = options.get("seed", 0)
    if videos is not None:
        source = open_videos(Path(videos).expanduser(), res if resolution else None)
        sampler = video_sampler(source, seed=seed + 1)
        generated: dict = {"kind": "videos", "path": str(videos)}
    else:
        sampler, generated, res = _generator_sampler(
            data, lres, sres, resolution, lr_resolution, device, seed
        )
    if not present:
        res = None  # a folder of video files is read at its own size
    elif res not in present:
        raise MetricError(
            f"{data} has no {res[0]}x{res[1]} folder (it has "
            f"{', '.join(f'{h}x{w}' for h, w in present)}); choose one with `res`"
        )
    ctx = MetricContext(data, res, sampler, generated, device, **options)
    if videos is not None:
        ctx.track_generated(source)
    return ctx


def _check_setup(data: Path, present: list, lres, sres, videos) -> None:
    """MetricErrors for `context_from_paths` inputs that do not make one of its setups."""
    if not present and not (data.is_dir() and list_files(data, VIDEO_EXTENSIONS)):
        raise MetricError(
            f"{data} is neither a dataset (HHHHxWWWW folders) nor a folder of video files; "
            "make a dataset with lvg-dataset"
        )
    if (videos is not None) == (lres is not None or sres is not None):
        raise MetricError("give either `videos`, or `lres` and/or `sres` (generated clips)")
    if sres is not None and lres is None and not present:
        raise MetricError("`sres` alone needs `data` to be a dataset (it reads low-res clips)")


def _generator_sampler(data: Path, lres, sres, resolution, lr_resolution, device, seed: int):
    """(sampler, `generated` record, real clips' resolution) for the checkpoint setups of
    `context_from_paths`: `lres` alone, `lres` and `sres`, or `sres` alone."""
    import networks

    if sres is None:
        G = networks.load(lres, kind="lres_generator", device=device)
        res = parse_resolution(resolution) if resolution else G.size
        return lres_sampler(G), {"kind": "lres", "lres_path": str(lres)}, res
    S = networks.load(sres, kind="sres_generator", device=device)
    res = parse_resolution(resolution) if resolution else S.hr_size
    if lres is not None:
        G = networks.load(lres, kind="lres_generator", device=device)
        check_chain(G, S)
        generated = {"kind": "chain", "lres_path": str(lres), "sres_path": str(sres)}
        return chain_sampler(G, S), generated, res
    lr_res = parse_resolution(lr_resolution) if lr_resolution else S.lr_size
    check_lr_size(S, lr_res, "the dataset at lr_resolution")
    # The pair checks that both resolutions hold the same clips; the network reads low-res ones.
    pairs = VideoDatasetTwoRes(data, lr_res, res, seq_length=1)
    sampler = sres_sampler(S, pairs.lres, seed=seed + 1)
    return sampler, {"kind": "sres", "sres_path": str(sres), "lr_resolution": list(lr_res)}, res
