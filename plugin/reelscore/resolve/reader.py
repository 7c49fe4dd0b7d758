"""A live Resolve timeline -> the OTIO timeline the rest of the pipeline reads.

Two readings, cross-checked:

* the **item list** (always): frame rate from the timeline's own ``timelineFrameRate`` (project
  setting as fallback), ``global_start_time`` from ``GetStartFrame()`` (absolute, timecode-derived
  at the nominal rate), each video item from ``GetStart()/GetEnd()`` (absolute, end exclusive) and
  ``GetLeftOffset()``, its media from the media pool item's properties (raw POSIX ``File Path`` as
  ``target_url``; ``available_range`` from ``Start TC``/``Frames``/``FPS`` so source ranges are in
  the media's timecode frames, as Resolve's own export writes them);
* **Resolve's OTIO export** (when the build has ``EXPORT_OTIO``): richer (transitions, effects,
  retimes). It is used only if its video tracks agree item by item with the item list (record
  range, media path, enabled); otherwise the item list wins and the differences are noted.

Timeline markers (frames relative to the timeline start) become markers on ``timeline.tracks``;
the in/out marks become a stack-time range.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
from opentimelineio import opentime

from reelscore.errors import RangeError, ReelscoreError
from reelscore.resolve.api import Ref, ResolveError, as_float, as_int
from reelscore.timecode import (
    exact_rate,
    frames_to_tc,
    is_drop_frame_rate,
    rt,
    rt_frames,
    tc_to_frames,
    tr,
)
from reelscore.timeline import LoadedEdit, normalise

log = logging.getLogger(__name__)

# Resolve marker colours -> the nearest OTIO MarkerColor.
MARKER_COLORS = {
    "Blue": "BLUE", "Cyan": "CYAN", "Green": "GREEN", "Yellow": "YELLOW", "Red": "RED",
    "Pink": "PINK", "Purple": "PURPLE", "Fuchsia": "MAGENTA", "Rose": "PINK",
    "Lavender": "PURPLE", "Sky": "CYAN", "Mint": "GREEN", "Lemon": "YELLOW", "Sand": "ORANGE",
    "Cocoa": "ORANGE", "Cream": "WHITE",
}

META_KEY = "reelscore_resolve"


@dataclass
class ResolveEdit:
    """What was read from one Resolve timeline."""

    name: str
    timeline: otio.schema.Timeline
    rate: Fraction
    drop_frame: bool
    start_frame: int
    start_timecode: str
    marks: opentime.TimeRange | None  # in/out marks in stack time (0-based), end exclusive
    source: str  # "item list" | "Resolve OTIO export"
    notes: list[str] = field(default_factory=list)

    @property
    def duration_frames(self) -> int:
        return rt_frames(self.timeline.duration(), self.rate)

    def loaded(self) -> LoadedEdit:
        edit = normalise(self.timeline, adapter="resolve", rate=self.rate,
                         drop_frame=self.drop_frame)
        edit.notes.extend(self.notes)
        return edit


def parse_rate_setting(text: Any) -> tuple[Fraction, bool]:
    """``timelineFrameRate`` ("23.976", "25", "29.97 DF", "29.97 NDF") -> exact rate, drop frame."""
    raw = str(text).strip()
    drop = raw.upper().endswith(" DF")
    raw = raw.upper().removesuffix(" DF").removesuffix(" NDF").strip()
    return exact_rate(raw), drop


def read_rate(timeline: Ref, project: Ref | None) -> tuple[Fraction, bool]:
    """The timeline's own rate setting first (timelines may override the project)."""
    for owner in (timeline, project):
        if owner is None:
            continue
        value = owner.probe("GetSetting", "timelineFrameRate")
        if isinstance(value, (str, int, float)) and str(value).strip():
            rate, drop = parse_rate_setting(value)
            df = owner.probe("GetSetting", "timelineDropFrameTimecode")
            drop = drop or str(df).strip().lower() in ("1", "true")
            return rate, drop and is_drop_frame_rate(rate)
    raise ResolveError(
        f"cannot read the frame rate of {timeline.label}: GetSetting('timelineFrameRate') "
        "returned nothing on the timeline and the project",
        hint="check Project Settings > Master Settings > Timeline frame rate, then run again",
    )


def _media_clip(item: Ref, mpi: Any, rate: Fraction, dur: int, name: str) -> otio.schema.Clip:
    props = mpi.GetClipProperty()
    props = props if isinstance(props, dict) else {}
    path = str(props.get("File Path") or "")
    fps_value = as_float(props.get("FPS"))
    fps = exact_rate(fps_value) if fps_value else rate
    frames = as_int(props.get("Frames"))
    tc0 = 0
    start_tc = str(props.get("Start TC") or "")
    if start_tc:
        try:
            tc0 = tc_to_frames(start_tc, fps)
        except ReelscoreError:
            tc0 = 0
    left = as_int(item.probe("GetLeftOffset"), 0) or 0
    # The record duration in media frames (differs only for mixed-rate media).
    media_dur = Fraction(dur) * fps / rate
    source = opentime.TimeRange(rt(tc0 + left, fps), rt(float(media_dur), fps))
    available = tr(tc0, frames, fps) if frames else None
    ref: otio.core.MediaReference
    if path:
        ref = otio.schema.ExternalReference(target_url=path, available_range=available)
    else:
        ref = otio.schema.MissingReference(name=name, available_range=available)
    clip = otio.schema.Clip(name=name, media_reference=ref, source_range=source)
    clip.metadata[META_KEY] = {"file_path": path, "clip_fps": str(fps), "start_tc": start_tc}
    return clip


def _generated_clip(name: str, rate: Fraction, dur: int) -> otio.schema.Clip:
    """Titles, generators, Fusion comps: no media; only Resolve's own render shows them."""
    ref = otio.schema.GeneratorReference(
        name=name, generator_kind="ResolveGenerated", available_range=tr(0, dur, rate)
    )
    return otio.schema.Clip(name=name, media_reference=ref, source_range=tr(0, dur, rate))


def read_video_tracks(timeline: Ref, rate: Fraction, start_frame: int, *,
                      drop_frame: bool = False) -> tuple[list[otio.schema.Track], list[str]]:
    return read_tracks(timeline, "video", rate, start_frame, drop_frame=drop_frame)


def read_tracks(timeline: Ref, kind: str, rate: Fraction, start_frame: int, *,
                drop_frame: bool = False) -> tuple[list[otio.schema.Track], list[str]]:
    """The ``video`` or ``audio`` tracks of the item list, items at their record frames."""
    tracks: list[otio.schema.Track] = []
    notes: list[str] = []
    count = int(timeline.call("GetTrackCount", kind, expect="number"))
    otio_kind = otio.schema.TrackKind.Video if kind == "video" else otio.schema.TrackKind.Audio
    for index in range(1, count + 1):
        tname = timeline.probe("GetTrackName", kind, index) or f"{kind.title()} {index}"
        track = otio.schema.Track(name=str(tname), kind=otio_kind)
        enabled = timeline.probe("GetIsTrackEnabled", kind, index)
        track.enabled = enabled is not False
        # An empty track may answer [] or None.
        raw_items = timeline.call("GetItemListInTrack", kind, index, expect="any") or []
        items = [Ref(it, "TimelineItem", f"item on {tname}") for it in raw_items]
        items.sort(key=lambda r: as_int(r.call("GetStart"), 0) or 0)
        pos = start_frame
        for it in items:
            start = as_int(it.call("GetStart", expect="number"), 0) or 0
            end = as_int(it.call("GetEnd", expect="number"), 0) or 0  # exclusive
            name = str(it.probe("GetName") or "")
            label = f"{name!r} on {tname} at {frames_to_tc(start, rate, drop_frame=drop_frame)}"
            if end <= start:
                notes.append(f"skipped {label}: empty item (GetStart {start}, GetEnd {end})")
                continue
            if start < pos:
                notes.append(f"{label} overlaps the previous item by {pos - start} frame(s); "
                             "its head is ignored")
                start = pos
                if end <= start:
                    continue
            if start > pos:
                track.append(otio.schema.Gap(source_range=tr(0, start - pos, rate)))
            dur = end - start
            mpi = it.probe("GetMediaPoolItem")
            path = mpi.GetClipProperty("File Path") if mpi is not None else None
            if mpi is not None and isinstance(path, str):
                clip = _media_clip(it, mpi, rate, dur, name)
            else:
                clip = _generated_clip(name or "generated", rate, dur)
                notes.append(f"{label} has no media file (title/generator/compound): only "
                             "--render resolve shows it")
            clip.enabled = it.probe("GetClipEnabled") is not False
            meta = clip.metadata.setdefault(META_KEY, {})
            meta.update({"unique_id": str(it.probe("GetUniqueId") or ""), "record_start": start,
                         "record_end": end, "track_index": index})
            track.append(clip)
            pos = end
        tracks.append(track)
    return tracks, notes


def read_markers(timeline: Ref, rate: Fraction) -> list[otio.schema.Marker]:
    raw = timeline.probe("GetMarkers")
    out: list[otio.schema.Marker] = []
    if not isinstance(raw, dict):
        return out
    for frame, info in sorted(raw.items(), key=lambda kv: float(kv[0])):
        info = info if isinstance(info, dict) else {}
        dur = max(as_float(info.get("duration"), 1.0) or 1.0, 0.0)
        color = MARKER_COLORS.get(str(info.get("color", "")), "RED")
        marker = otio.schema.Marker(
            name=str(info.get("name", "")),
            marked_range=opentime.TimeRange(rt(float(frame), rate), rt(dur, rate)),
            color=color,
        )
        marker.comment = str(info.get("note", ""))
        marker.metadata[META_KEY] = {"color": str(info.get("color", "")),
                                     "customData": str(info.get("customData", ""))}
        out.append(marker)
    return out


def read_marks(timeline: Ref, rate: Fraction, start_frame: int, duration: int, *,
               drop_frame: bool = False) -> opentime.TimeRange | None:
    """In/out marks as a stack range. Out is inclusive. The frame space is undocumented (21.1's
    stubs say relative): values at or past the start frame are taken as absolute."""
    raw = timeline.probe("GetMarkInOut")
    if not isinstance(raw, dict):
        return None
    marks = raw.get("video") or raw.get("audio")
    if not isinstance(marks, dict) or ("in" not in marks and "out" not in marks):
        return None

    def rel(v: Any, default: int) -> int:
        f = as_int(v)
        if f is None:
            return default
        return f - start_frame if start_frame > 0 and f >= start_frame else f

    first = rel(marks.get("in"), 0)
    last = rel(marks.get("out"), duration - 1)
    if last < first:
        raise RangeError(
            f"the in/out marks of {timeline.label} are reversed "
            f"({frames_to_tc(start_frame + first, rate, drop_frame=drop_frame)} > "
            f"{frames_to_tc(start_frame + last, rate, drop_frame=drop_frame)})",
            hint="set the in mark before the out mark, or score the whole timeline",
        )
    return tr(first, last - first + 1, rate)


# ------------------------------------------------------------------------------- cross-check

Signature = list[list[tuple[int, int, str | None, bool]]]


def signature(timeline: otio.schema.Timeline, rate: Fraction) -> Signature:
    """Per video track: (record start, duration, media path, enabled) of each clip."""
    out: Signature = []
    for track in timeline.video_tracks():
        rows: list[tuple[int, int, str | None, bool]] = []
        for i, child in enumerate(track):
            if not isinstance(child, otio.schema.Clip):
                continue
            r = track.range_of_child_at_index(i)
            ref = child.media_reference
            path: str | None = None
            if isinstance(ref, otio.schema.ExternalReference):
                path = ref.target_url or None
            rows.append((rt_frames(r.start_time, rate), rt_frames(r.duration, rate), path,
                         bool(child.enabled)))
        out.append(rows)
    return out


def export_otio(resolve: Any, timeline: Ref, folder: Path) -> tuple[otio.schema.Timeline | None, str]:
    """Resolve's own OTIO export, or None with the reason."""
    # Live constants only: strings are silently rejected. Unknown attributes are not ints.
    kind = getattr(resolve, "EXPORT_OTIO", None) if resolve is not None else None
    subkind = getattr(resolve, "EXPORT_NONE", None) if resolve is not None else None
    if not isinstance(kind, int) or not isinstance(subkind, int):
        return None, "this Resolve has no EXPORT_OTIO (OTIO export needs 18.5 or later)"
    path = folder / "resolve_export.otio"
    ok = timeline.probe("Export", str(path), kind, subkind)
    if not ok or not path.is_file():
        return None, f"Timeline.Export(..., EXPORT_OTIO) returned {ok!r}, no file"
    try:
        result = otio.adapters.read_from_file(str(path))
    except Exception as exc:  # whatever the export holds, the item list still works
        return None, f"Resolve's OTIO export could not be read: {exc}"
    if not isinstance(result, otio.schema.Timeline):
        return None, "Resolve's OTIO export holds no timeline"
    return result, ""


def _diff(a: Signature, b: Signature) -> str:
    if len(a) != len(b):
        return f"{len(b)} video tracks in the export vs {len(a)} in the item list"
    for n, (ta, tb) in enumerate(zip(a, b, strict=True), 1):
        if ta != tb:
            for ra, rb in zip(ta, tb, strict=False):
                if ra != rb:
                    return f"video track {n}: item list {ra} vs export {rb}"
            return f"video track {n}: {len(ta)} items in the item list vs {len(tb)} in the export"
    return ""


def read_timeline(
    timeline: Ref,
    *,
    project: Ref | None = None,
    resolve: Any = None,
    work_dir: Path | None = None,
    use_export: bool = True,
) -> ResolveEdit:
    """Read *timeline* (see module docstring)."""
    name = str(timeline.call("GetName", expect="str"))
    rate, drop = read_rate(timeline, project)
    start_frame = as_int(timeline.call("GetStartFrame", expect="number"), 0) or 0
    start_tc = str(timeline.probe("GetStartTimecode")
                   or frames_to_tc(start_frame, rate, drop_frame=drop))
    tracks, notes = read_video_tracks(timeline, rate, start_frame, drop_frame=drop)
    built = otio.schema.Timeline(name=name)
    built.global_start_time = rt(start_frame, rate)
    for t in tracks:
        built.tracks.append(t)
    built.metadata[META_KEY] = {"start_frame": start_frame, "start_timecode": start_tc,
                                "rate": str(rate), "drop_frame": drop}
    markers = read_markers(timeline, rate)
    source = "item list"
    chosen = built
    if use_export:
        with tempfile.TemporaryDirectory(prefix="reelscore-export-", dir=work_dir) as tmp:
            exported, why = export_otio(resolve, timeline, Path(tmp))
        if exported is None:
            notes.append(f"read from the item list only: {why}")
        else:
            diff = _diff(signature(built, rate), signature(exported, rate))
            gst = exported.global_start_time
            if not diff and (gst is None or rt_frames(gst, rate) != start_frame):
                diff = f"export global_start_time {gst} vs GetStartFrame() {start_frame}"
            if diff:
                notes.append(f"Resolve's OTIO export disagrees with the item list ({diff}); "
                             "using the item list")
            else:
                chosen = exported
                chosen.metadata[META_KEY] = built.metadata[META_KEY]
                source = "Resolve OTIO export"
    chosen.tracks.markers.clear()  # the export's marker mapping is undocumented: use ours
    for m in markers:
        chosen.tracks.markers.append(m)
    duration = rt_frames(built.duration(), rate)
    _add_audio(chosen, timeline, rate, start_frame, drop, notes)
    marks = read_marks(timeline, rate, start_frame, duration, drop_frame=drop)
    for n in notes:
        log.info("%s: %s", name, n)
    return ResolveEdit(
        name=name, timeline=chosen, rate=rate, drop_frame=drop, start_frame=start_frame,
        start_timecode=start_tc, marks=marks, source=source, notes=notes,
    )


def _add_audio(chosen: otio.schema.Timeline, timeline: Ref, rate: Fraction, start_frame: int,
               drop: bool, notes: list[str]) -> None:
    """The item list's audio tracks (for ``--duck`` and the review movie's mixdown), unless the
    chosen reading already holds audio clips (Resolve's export: levels and fades included)."""
    if any(True for t in chosen.audio_tracks() for _ in t.find_clips()):
        return
    audio, audio_notes = read_tracks(timeline, "audio", rate, start_frame, drop_frame=drop)
    if not any(True for t in audio for _ in t.find_clips()):
        return
    for t in list(chosen.audio_tracks()):
        chosen.tracks.remove(t)
    for t in audio:
        chosen.tracks.append(t)
    notes.extend(n for n in audio_notes if "no media file" not in n)
