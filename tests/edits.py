"""Build small OTIO edits from a compact spec, and an independent oracle of what they show.

A spec is a list of video tracks (bottom first); each track a list of items:
``("clip", source_path, source_id, src_in, frames)`` or ``("gap", frames)``. Source frames are
numbered from ``origin`` (the media's available_range start, e.g. 86400 for a 01:00:00:00 source).
The oracle walks the spec with plain loops (no OTIO, no reelscore code) so the render tests compare
decoded frames against something we did not compute with the code under test.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
from opentimelineio import opentime

Item = tuple  # ("clip", path, source_id, src_in, frames) | ("gap", frames)


def build_timeline(tracks: list[list[Item]], rate: Fraction, *, start_frame: int = 0,
                   origin: int = 0, source_frames: int = 10_000, name: str = "spec",
                   disabled: set[tuple[int, int]] | None = None) -> otio.schema.Timeline:
    r = float(rate)

    def t(v: int) -> opentime.RationalTime:
        return opentime.RationalTime(v, r)

    otio_tracks = []
    for ti, items in enumerate(tracks):
        track = otio.schema.Track(name=f"V{ti + 1}")
        for ii, it in enumerate(items):
            if it[0] == "gap":
                track.append(otio.schema.Gap(source_range=opentime.TimeRange(t(0), t(it[1]))))
                continue
            _, path, _sid, src_in, frames = it
            clip = otio.schema.Clip(
                name=f"{Path(path).stem}@{src_in}",
                media_reference=otio.schema.ExternalReference(
                    target_url=Path(path).as_uri(),
                    available_range=opentime.TimeRange(t(origin), t(source_frames)),
                ),
                source_range=opentime.TimeRange(t(origin + src_in), t(frames)),
            )
            if disabled and (ti, ii) in disabled:
                clip.enabled = False
            track.append(clip)
        otio_tracks.append(track)
    return otio.schema.Timeline(name=name, tracks=otio_tracks,
                                global_start_time=t(start_frame))


def oracle(tracks: list[list[Item]], start: int, end: int,
           disabled: set[tuple[int, int]] | None = None) -> list[tuple[int, int] | None]:
    """(source_id, source frame number) shown at each stack frame in [start, end); None = black."""
    shown: list[tuple[int, int] | None] = []
    for f in range(start, end):
        value = None
        for ti in range(len(tracks) - 1, -1, -1):
            pos = 0
            hit = None
            for ii, it in enumerate(tracks[ti]):
                length = it[1] if it[0] == "gap" else it[4]
                if pos <= f < pos + length:
                    if it[0] == "clip" and not (disabled and (ti, ii) in disabled):
                        hit = (it[2], it[3] + (f - pos))
                    break
                pos += length
            if hit is not None:
                value = hit
                break
        shown.append(value)
    return shown
