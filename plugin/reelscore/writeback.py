"""Write-back: the input edit plus one new audio track holding the score.

The new track is added to a deep copy of the timeline *as it was read* (not the normalised copy),
so every original track survives exactly; its items use the file's own rate value and, for EDLs,
the CMX reader's track convention (record start as a negative track start), so the score clip sits
at the scored range's record position however the edit counts time. Provenance goes under
``metadata["reelscore"]``. The output format follows the output path's extension; the file is
written atomically and never over an existing file unless asked.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import opentimelineio as otio
from opentimelineio import opentime

from reelscore.errors import OutputError
from reelscore.fsutil import atomic_output
from reelscore.plan import ScorePlan
from reelscore.timeline import LoadedEdit

DEFAULT_TRACK_NAME = "Score"


@dataclass(frozen=True)
class ScoreMedia:
    """One file to place on its own new audio track over the scored range."""

    path: Path
    track_name: str
    clip_name: str
    metadata: dict[str, Any]


def media_url(path: Path) -> str:
    """A percent-encoded file:// URL (what OTIO, FCP XML and most editors read)."""
    return path.absolute().as_uri()


def add_score_tracks(
    loaded: LoadedEdit,
    plan: ScorePlan,
    media: Sequence[ScoreMedia],
    *,
    markers: bool = False,
) -> otio.schema.Timeline:
    """Return a copy of the original timeline with one new audio track per *media* item."""
    timeline: otio.schema.Timeline = copy.deepcopy(loaded.original)
    rate = loaded.raw_rate
    start = plan.range.start
    duration = plan.range.duration

    def t(frames: int) -> opentime.RationalTime:
        return opentime.RationalTime(frames, rate)

    for item in media:
        track = otio.schema.Track(name=item.track_name, kind=otio.schema.TrackKind.Audio)
        if loaded.record_offset_in_tracks:
            # CMX convention: the track's own time starts at minus the record start.
            track.source_range = opentime.TimeRange(
                t(-loaded.record_offset_in_tracks), t(start + duration)
            )
        if start > 0:
            track.append(otio.schema.Gap(source_range=opentime.TimeRange(t(0), t(start))))
        clip = otio.schema.Clip(
            name=item.clip_name,
            media_reference=otio.schema.ExternalReference(
                target_url=media_url(item.path),
                available_range=opentime.TimeRange(t(0), t(duration)),
            ),
            source_range=opentime.TimeRange(t(0), t(duration)),
        )
        clip.metadata["reelscore"] = dict(item.metadata)
        if markers:
            for scene in plan.scenes:
                offset = scene.range.start - start
                clip.markers.append(otio.schema.Marker(
                    name=scene.name or scene.id,
                    marked_range=opentime.TimeRange(t(offset), t(0)),
                    metadata={"reelscore": {"scene": scene.id, "record_in": scene.range.record_in}},
                ))
        track.append(clip)
        track.metadata["reelscore"] = {"generated": True}
        timeline.tracks.append(track)
    return timeline


def score_clip_stack_range(timeline: otio.schema.Timeline, track_name: str) -> opentime.TimeRange:
    """Where the score clip on *track_name* sits in stack time (for verification)."""
    for track in timeline.audio_tracks():
        if track.name == track_name:
            for i, item in enumerate(track):
                if isinstance(item, otio.schema.Clip):
                    r = track.trimmed_range_of_child_at_index(i)
                    return track.transformed_time_range(r, timeline.tracks)
    raise OutputError(f"no clip on a track named {track_name!r}")


def check_output_path(path: Path, *, force: bool, inputs: Sequence[Path] = ()) -> None:
    """Refuse to overwrite an input, or an existing output without --force."""
    resolved = path.absolute()
    for inp in inputs:
        if inp.exists() and resolved == inp.absolute():
            raise OutputError(
                f"the output {str(path)!r} is the input edit; reelscore never modifies its input",
                hint="choose another -o path",
            )
    if path.exists() and not force:
        raise OutputError(
            f"{str(path)!r} already exists",
            hint="choose another -o path, or pass --force to replace it",
        )
    parent = resolved.parent
    if not parent.exists():
        raise OutputError(f"the output folder {str(parent)!r} does not exist",
                          hint="create it first or choose another -o path")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write to the output folder {str(parent)!r}",
                          hint="choose a folder you can write to")


def adapter_for_output(path: Path) -> str:
    suffix = path.suffix.lower()
    try:
        adapter = otio.adapters.from_filepath(str(path))
    except Exception as exc:
        raise OutputError(
            f"no OTIO adapter writes {suffix or 'files without an extension'!r}",
            hint="use .otio, .otioz, .xml (FCP 7), .fcpxml, .aaf or .edl",
        ) from exc
    return str(adapter.name)


def write_edit(timeline: otio.schema.Timeline, path: Path, **adapter_args: Any) -> str:
    """Write *timeline* to *path* (format from the extension) atomically; return the adapter."""
    adapter = adapter_for_output(path)
    with atomic_output(path) as tmp:
        try:
            otio.adapters.write_to_file(timeline, str(tmp), adapter_name=adapter, **adapter_args)
        except OutputError:
            raise
        except Exception as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OutputError(f"the {adapter} adapter cannot write this edit: {msg}",
                              hint="write .otio instead, which keeps everything") from exc
    return adapter
