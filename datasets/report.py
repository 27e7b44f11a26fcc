"""The curation contact sheet (`lvg-dataset curate --report`): thumbnails of every shot of a
`datasets.manifest.Curation` with its scores and verdict, as HTML or PNG, to tune thresholds by eye.
Shots are grouped by the strictness stage that dropped them (docs/datasets.md#strictness-stages).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

from PIL import Image, ImageDraw

from datasets.curate import PRESETS, Shot, SmallVideo, parallel_map
from datasets.manifest import Curation
from datasets.video_io import VideoReadError
from torch_utils.misc import write_atomic

REPORT_SUFFIXES = (".html", ".htm", ".png")
THUMB_WIDTH = 128
T = TypeVar("T")


def clip_thumbnail_frames(clip: Shot) -> list[int]:
    """First, middle and last frame of a clip."""
    return sorted(
        {clip.start_frame, (clip.start_frame + clip.end_frame - 1) // 2, clip.end_frame - 1}
    )


def video_thumbnails(src: str, video: str, frames: list[int], width: int) -> dict[int, bytes]:
    """JPEG thumbnails of the given frame numbers of one video (decoding stops after the last)."""
    wanted, thumbs = set(frames), {}
    try:
        with SmallVideo(Path(src) / video, width) as reader:
            for index, (_, rgb) in enumerate(reader.frames(stop=max(frames) + 1)):
                if index in wanted:
                    buffer = io.BytesIO()
                    Image.fromarray(rgb).save(buffer, format="JPEG", quality=85)
                    thumbs[index] = buffer.getvalue()
    except VideoReadError:
        pass  # the video changed since the analysis: its clips show without thumbnails
    return thumbs


def write_report(
    path: str | os.PathLike,
    curation: Curation,
    workers: int = 1,
    progress: Callable[[Iterable[T], int], Iterable[T]] | None = None,
) -> None:
    """A contact sheet of every clip (thumbnails, scores, verdict): `.html` or `.png`."""
    path = Path(path)
    by_video: dict[str, list[Shot]] = {}
    for clip in curation.clips:
        by_video.setdefault(clip.video, []).append(clip)
    videos = sorted(by_video)
    tasks = [
        (
            curation.src,
            v,
            sorted({f for c in by_video[v] for f in clip_thumbnail_frames(c)}),
            THUMB_WIDTH,
        )
        for v in videos
    ]
    thumbs: dict[str, dict[int, bytes]] = {}
    done = parallel_map(video_thumbnails, tasks, workers)
    for i, result in progress(done, len(tasks)) if progress else done:
        thumbs[videos[i]] = result
    render = _report_png if path.suffix.lower() == ".png" else _report_html
    write_atomic(path, render(curation, thumbs))


def stage_groups(curation: Curation) -> list[tuple[str, list[Shot]]]:
    """The clips by the strictness stage that dropped them, loose to strict, then those every
    stage kept; one group of all clips when no stages were judged."""
    if not any(clip.stages for clip in curation.clips):
        return [("all shots", list(curation.clips))]
    groups = [
        (
            f"dropped at stage {name}",
            [c for c in curation.clips if c.stages.get(name, "kept") != "kept"],
        )
        for name in PRESETS
    ]
    last = list(PRESETS)[-1]
    kept = [c for c in curation.clips if c.stages.get(last) == "kept"]
    return groups + [(f"kept at every stage (through {last})", kept)]


def _clip_lines(clip: Shot) -> tuple[str, str, str]:
    verdict = "kept" if clip.reason is None else f"dropped: {clip.reason}"
    if clip.duplicate_of:
        verdict += f" of {clip.duplicate_of}"
    stages = " | ".join(f"{name}: {v}" for name, v in clip.stages.items())
    if stages:
        verdict += f"  (stages: {stages})"
    scores = (
        f"{clip.seconds:.2f} s ({clip.num_frames} frames), motion {clip.motion:.3f}, "
        f"sharpness {clip.sharpness:.1f}, cut {clip.cut_score:.2f}, text {100 * clip.text:.2f} %"
    )
    height, width = clip.content_size
    place = f"after: {clip.boundary}, content {width}x{height} {clip.orientation}"
    if clip.crop:
        place += f", crop {list(clip.crop)} of {clip.source[1]}x{clip.source[0]}"
    return verdict, scores, place


def _stage_lines(curation: Curation) -> list[str]:
    return [
        f"stage {st['name']}: judged {st['judged']}, kept {st['kept']} "
        f"({st['kept_seconds']:.1f} s), dropped {json.dumps(st['dropped'])}, "
        f"limits {json.dumps(st['limits'])}"
        for st in curation.stage_summaries()
    ]


def _report_html(curation: Curation, thumbs: dict[str, dict[int, bytes]]) -> bytes:
    esc = html.escape
    summary = curation.summary()
    rows = []
    for title, clips in stage_groups(curation):
        rows.append(f'<tr><th colspan="2">{esc(title)}: {len(clips)} shots</th></tr>')
        for clip in clips:
            verdict, scores, place = _clip_lines(clip)
            images = "".join(
                f'<img src="data:image/jpeg;base64,{base64.b64encode(data).decode()}" '
                f'title="frame {f}">'
                for f in clip_thumbnail_frames(clip)
                if (data := thumbs.get(clip.video, {}).get(f))
            )
            status = "kept" if clip.reason is None else "dropped"
            rows.append(
                f'<tr class="{status}"><td>{images}</td><td><b>{esc(clip.name)}</b><br>'
                f'<span class="verdict">{esc(verdict)}</span><br>{esc(scores)}<br>'
                f"{esc(place)}</td></tr>"
            )
    rows += [
        f'<tr class="dropped"><td></td><td><b>{esc(video)}</b><br>'
        f'<span class="verdict">dropped: unreadable</span><br>{esc(error)}</td></tr>'
        for video, error in sorted(curation.unreadable.items())
    ]
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>lvg-dataset curate: {esc(curation.src)}</title>
<style>
body {{ font: 13px sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; }}
td {{ padding: 4px 8px; vertical-align: top; border-bottom: 1px solid #ccc; }}
th {{ text-align: left; padding: 12px 8px 4px; font-size: 15px; }}
img {{ margin-right: 2px; }}
tr.kept .verdict {{ color: #070; font-weight: bold; }}
tr.dropped .verdict {{ color: #b00; font-weight: bold; }}
tr.dropped img {{ opacity: 0.6; }}
</style></head><body>
<h2>{esc(curation.src)}</h2>
<p>{esc(json.dumps(summary))}</p>
<p>{"<br>".join(esc(line) for line in _stage_lines(curation))}</p>
<p>thresholds: {esc(json.dumps(asdict(curation.thresholds)))}<br>
analysis: {esc(json.dumps(asdict(curation.settings)))}</p>
<table>
{chr(10).join(rows)}
</table></body></html>
"""
    return page.encode()


PNG_MAX_CLIPS = 300  # a PNG contact sheet stops here (the HTML report has no limit)


def _report_png(curation: Curation, thumbs: dict[str, dict[int, bytes]]) -> bytes:
    groups, room = [], PNG_MAX_CLIPS
    for title, group in stage_groups(curation):
        groups.append((f"{title}: {len(group)} shots", group[:room]))
        room -= len(groups[-1][1])
    shown = sum(len(group) for _, group in groups)
    images = {
        (video, f): Image.open(io.BytesIO(data)).convert("RGB")
        for video, frames in thumbs.items()
        for f, data in frames.items()
    }
    thumb_height = max((im.height for im in images.values()), default=THUMB_WIDTH * 9 // 16)
    row_height, text_width = max(thumb_height + 8, 72), 720
    header = [
        curation.src,
        json.dumps(curation.summary()),
        *_stage_lines(curation),
        f"thresholds: {json.dumps(asdict(curation.thresholds))}",
    ]
    extra = len(curation.clips) - shown
    if extra > 0:
        header.append(f"... and {extra} more clips: write an .html report to see them all")
    footer = [
        f"{video}: dropped: unreadable ({error})" for video, error in curation.unreadable.items()
    ]
    width = 3 * (THUMB_WIDTH + 4) + text_width
    height = 14 * (len(header) + len(footer)) + (row_height * shown + 20 * len(groups)) + 16
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = 4
    for line in header:
        draw.text((4, y), line, fill="black")
        y += 14
    for title, clips in groups:
        draw.text((4, y + 6), title, fill=(0, 0, 160))
        y += 20
        for clip in clips:
            for k, f in enumerate(clip_thumbnail_frames(clip)):
                if (clip.video, f) in images:
                    sheet.paste(images[clip.video, f], (4 + k * (THUMB_WIDTH + 4), y + 4))
            verdict, scores, place = _clip_lines(clip)
            x = 3 * (THUMB_WIDTH + 4) + 8
            colour = (0, 120, 0) if clip.reason is None else (180, 0, 0)
            draw.text((x, y + 6), clip.name, fill="black")
            draw.text((x, y + 22), verdict, fill=colour)
            draw.text((x, y + 38), scores, fill="black")
            draw.text((x, y + 54), place, fill="black")
            y += row_height
    for line in footer:
        draw.text((4, y), line, fill=(180, 0, 0))
        y += 14
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()
