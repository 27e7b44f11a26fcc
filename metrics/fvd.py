"""Fréchet Video Distance with the StyleGAN-V / LongVideoGAN protocol (docs/metrics.md#fvd).

`fvd{N}_{F}f` compares N real and N generated clips of F frames; `fvd{N}_{F}f_subsample{S}f` takes
every S-th frame of an F-frame span (F/S frames; real clips are read with spacing S). Features are
the I3D logits (`networks.i3d`), statistics are float64 population moments (`metrics.frechet`).

Real statistics are cached on disk (`torch_utils.weights.cache_dir()/fvd-real/`), keyed by the
dataset's content (zip entry CRCs), the resolution, the protocol, the real-sampling seed and the
detector's sha256 and preprocessing, so a cache can never be reused for something else.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from metrics.frechet import FeatureStats, frechet_between
from metrics.sources import ClipSampler, content_key, sample_real_clips
from networks.i3d import NUM_CLASSES, Detector
from torch_utils.frames import to_uint8
from torch_utils.weights import cache_dir

CACHE_VERSION = 1
GEN_BATCH_MAX = 4  # generator batch = min(detector batch, 4) (docs/metrics.md#generated-clips)


@dataclass(frozen=True)
class FVDProtocol:
    """What an FVD number means: clip counts, frames, temporal subsampling, real-clip seed."""

    num_real: int
    num_fake: int
    span: int  # frames of the (generated) span, F
    subsample: int = 1  # S: keep every S-th frame; the detector sees span // S frames
    real_seed: int = 0

    def __post_init__(self):
        if self.num_real < 2 or self.num_fake < 2:
            raise ValueError("FVD needs at least 2 real and 2 generated clips")
        if self.subsample < 1 or self.span % self.subsample:
            raise ValueError(
                f"the span ({self.span}) must be a multiple of the subsampling ({self.subsample})"
            )

    @property
    def num_frames(self) -> int:
        """Frames per clip given to the detector."""
        return self.span // self.subsample

    @property
    def name(self) -> str:
        base = f"fvd{self.num_real}_{self.span}f"
        return base if self.subsample == 1 else f"{base}_subsample{self.subsample}f"

    @property
    def detector_batch(self) -> int:
        return max(1, 64 // self.span)

    def describe(self) -> dict:
        return {
            **asdict(self),
            "frames_per_clip": self.num_frames,
            "real_clips": "shuffled videos, epoch after epoch; uniform start; no flip",
            "statistics": "float64 sums; population covariance; scipy sqrtm, real part",
        }


FVD_NAME = re.compile(r"fvd(\d+)_(\d+)f(?:_subsample(\d+)f)?")


def parse_fvd_name(name: str, real_seed: int = 0) -> FVDProtocol | None:
    """`fvd2048_128f_subsample8f` -> FVDProtocol(2048, 2048, 128, 8); None if not an FVD name."""
    match = FVD_NAME.fullmatch(name)
    if match is None:
        return None
    num, span, sub = int(match[1]), int(match[2]), int(match[3] or 1)
    return FVDProtocol(num, num, span, sub, real_seed)


# ------------------------------------------------------------------------------------------------
# Features


def accumulate(
    detector: Detector,
    clips: Iterator[torch.Tensor],
    num: int,
    desc: str = "",
    progress: bool = True,
) -> FeatureStats:
    """Feed `num` clips (from batches `[n, 3, T, H, W]` in [−1, 1]) to the detector."""
    stats = FeatureStats(NUM_CLASSES)
    with tqdm(total=num, desc=desc, unit="clip", disable=not progress, leave=False) as bar:
        while stats.count < num:
            batch = next(clips)[: num - stats.count]
            stats.append(detector(to_uint8(batch)))
            bar.update(len(batch))
    return stats


def _batched(clips: Iterator[torch.Tensor], batch: int) -> Iterator[torch.Tensor]:
    while True:
        yield torch.stack([next(clips) for _ in range(batch)])


def generated_clips(
    sampler: ClipSampler, protocol: FVDProtocol, generator: torch.Generator, batch: int
) -> Iterator[torch.Tensor]:
    """Endless batches of generated clips, subsampled in time."""
    with torch.no_grad():
        while True:
            video = sampler(batch, protocol.span, generator)
            yield video[:, :, :: protocol.subsample]


def real_stats(
    detector: Detector,
    source,
    protocol: FVDProtocol,
    cache: bool = True,
    replace_cache: bool = False,
    progress: bool = True,
    label: str = "",
) -> tuple[FeatureStats, dict]:
    """Statistics of `protocol.num_real` real clips, from the on-disk cache when possible.

    Returns the stats and a small record (cache path, hit or miss)."""
    key_fields = {
        "version": CACHE_VERSION,
        "content": content_key(source),
        "resolution": list(getattr(source, "resolution", ()) or ()),
        "num_real": protocol.num_real,
        "num_frames": protocol.num_frames,
        "spacing": protocol.subsample,
        "real_seed": protocol.real_seed,
        "detector_sha256": detector.sha256,
        "preprocess": detector.describe()["preprocess"],
    }
    key = hashlib.blake2b(
        json.dumps(key_fields, sort_keys=True).encode(), digest_size=8
    ).hexdigest()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", label or "dataset")
    path = cache_dir() / "fvd-real" / name / f"{protocol.name}-{key}.npz"
    if cache and path.is_file() and not replace_cache:
        stats, _ = FeatureStats.load(path)
        return stats, {"cache": str(path), "cache_hit": True}
    clips = sample_real_clips(source, protocol.num_frames, protocol.subsample, protocol.real_seed)
    stats = accumulate(
        detector,
        _batched(clips, protocol.detector_batch),
        protocol.num_real,
        "real clips",
        progress,
    )
    if cache and not detector.is_random:
        stats.save(path, metadata=key_fields)
    return stats, {"cache": str(path) if cache else None, "cache_hit": False}


def fake_stats(
    detector: Detector,
    sampler: ClipSampler,
    protocol: FVDProtocol,
    seed: int,
    device: torch.device,
    progress: bool = True,
) -> FeatureStats:
    generator = torch.Generator(device=device).manual_seed(seed)
    batch = min(protocol.detector_batch, GEN_BATCH_MAX)
    clips = generated_clips(sampler, protocol, generator, batch)
    return accumulate(detector, clips, protocol.num_fake, "generated clips", progress)


def compute_fvd(
    detector: Detector,
    real_source,
    sampler: ClipSampler,
    protocol: FVDProtocol,
    seed: int = 0,
    device: torch.device | str = "cpu",
    cache: bool = True,
    replace_cache: bool = False,
    progress: bool = True,
    label: str = "",
) -> tuple[float, dict]:
    """One FVD value and a record of how the real statistics were obtained."""
    real, record = real_stats(
        detector, real_source, protocol, cache, replace_cache, progress, label
    )
    fake = fake_stats(detector, sampler, protocol, seed, torch.device(device), progress)
    return frechet_between(fake, real), record
