"""Before rendering: every source the scored range shows must be a picture ffmpeg can read.

The edit can point at anything: a zero-byte or truncated file, a text file with a video
extension, an audio-only file, a document. Rather than letting the first decoder fail with
ffmpeg's own words halfway through a render, every visible clip's media is probed once (the
renderer probes the same files anyway; results are cached) and all problems are reported
together, like offline media: clip name, record timecode, file and what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio

from reelscore.errors import MediaError
from reelscore.ffmpeg_cli import probe
from reelscore.picture import Picture
from reelscore.timecode import frames_to_tc
from reelscore.timeline import MediaResolver


def unreadable_media(picture: Picture, resolver: MediaResolver, start: int, end: int,
                     start_frame: int, *, drop_frame: bool = False) -> list[tuple[str, str, str, str]]:
    """(clip name, record timecode, file, problem) for every visible clip whose file has no
    readable picture. Offline clips and image sequences are left to their own checks."""
    seen: set[int] = set()
    verdicts: dict[str, str | None] = {}
    out: list[tuple[str, str, str, str]] = []
    for seg in picture.segments(start, end):
        for clip in seg.clips():
            if id(clip) in seen:
                continue
            seen.add(id(clip))
            ref = clip.media_reference
            if isinstance(ref, (otio.schema.GeneratorReference, otio.schema.ImageSequenceReference)):
                continue
            path = resolver.resolve_clip(clip).path
            if path is None:
                continue
            key = str(path)
            if key not in verdicts:
                verdicts[key] = _problem(path)
            problem = verdicts[key]
            if problem:
                tc = frames_to_tc(start_frame + seg.start, picture.rate, drop_frame=drop_frame)
                out.append((clip.name or "(unnamed)", tc, key, problem))
    return out


def _problem(path: Path) -> str | None:
    try:
        if path.stat().st_size == 0:
            return "the file is empty (0 bytes)"
        info = probe(path)
    except MediaError as exc:
        detail = exc.message.rsplit(" as media: ", 1)[-1]
        return f"ffmpeg cannot read it as media ({detail})"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not info.has_video:
        return "has no video stream (audio only?)" if info.has_audio else "has no video stream"
    return None


def check_media(picture: Picture, resolver: MediaResolver, start: int, end: int,
                start_frame: int, *, drop_frame: bool = False) -> None:
    bad = unreadable_media(picture, resolver, start, end, start_frame, drop_frame=drop_frame)
    if not bad:
        return
    lines = [f"{len(bad)} clip(s) use media that is not a readable video; nothing was rendered:"]
    for name, tc, path, problem in bad:
        lines.append(f"  - {name!r} at {tc}: {path}: {problem}")
    raise MediaError("\n".join(lines), hint="relink these clips to their video files "
                     "(--media-root DIR) or replace them in the edit")


__all__ = ["check_media", "unreadable_media"]
