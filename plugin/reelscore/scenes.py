"""Scenes: the scored range cut into pieces the music should follow.  (pure)

Policies (``--scenes``):
  cuts     every edit point of the visible picture (all video tracks flattened)  [default]
  markers  timeline markers are boundaries; their names and notes become scene notes
  clips    one scene per clip of one chosen video track (``--scene-track``, 1-based)

Scenes tile the scored range exactly (no holes, no overlaps). Black gaps inside the range belong to
the scene they fall in (boundaries are only where picture starts). Scenes shorter than the minimum
are merged into a neighbour, shortest first, into the shorter neighbour.

Timecode typed (``--range``) and shown (errors) follows the timeline's drop-frame flag: passed as
``drop_frame``, else the one the normalised timeline carries (``timeline_drop_frame``).
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import opentimelineio as otio

from reelscore.errors import InputError, RangeError
from reelscore.picture import Picture
from reelscore.timecode import exact_rate, frames_to_tc, rate_label, rt_frames, tc_to_frames
from reelscore.timeline import timeline_drop_frame

ScenePolicy = Literal["cuts", "markers", "clips"]


@dataclass(frozen=True)
class Boundary:
    frame: int
    name: str = ""
    notes: tuple[str, ...] = ()


@dataclass
class SceneCut:
    """A scene in stack frames [start, end), with what the edit says about it."""

    start: int
    end: int
    name: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def duration(self) -> int:
        return self.end - self.start


def scored_range(
    timeline: otio.schema.Timeline,
    picture: Picture,
    rate: Fraction,
    start_frame: int,
    range_in: str | None = None,
    range_out: str | None = None,
    *,
    drop_frame: bool | None = None,
) -> tuple[int, int]:
    """Stack frames [start, end) to score: the whole picture, or ``--range IN OUT`` (OUT exclusive,
    record timecode, like an EDL's record out).

    IN and OUT are read by the timeline's drop-frame flag (``:`` and ``;`` alike; a ``;`` also
    means drop frame). A label that is unreadable, does not exist in drop frame, lies outside the
    picture or makes the range empty is refused with the nearest valid values.
    """
    if drop_frame is None:
        drop_frame = timeline_drop_frame(timeline, rate)
    video_end = 0
    for layer in picture.layers:
        if layer:
            video_end = max(video_end, layer[-1].end)
    if video_end == 0:
        raise RangeError(
            "the timeline has no enabled video clips to score",
            hint="check that the video tracks are enabled and hold clips",
        )

    def label(frame: int) -> str:
        return frames_to_tc(start_frame + frame, rate, drop_frame=drop_frame)

    first_tc, last_tc = label(0), label(video_end)
    shown = ("drop-frame" if drop_frame else "non-drop") + f" {rate_label(rate)} fps timecode"

    def read(tc: str, which: str) -> int:
        try:
            return tc_to_frames(tc, rate, drop_frame=drop_frame) - start_frame
        except InputError as exc:
            raise RangeError(f"--range {which} {exc.message}",
                             hint=exc.hint or f"the picture runs {first_tc} to {last_tc}") from exc

    lo = read(range_in, "IN") if range_in is not None else 0
    hi = read(range_out, "OUT") if range_out is not None else video_end
    if hi <= lo:
        raise RangeError(
            f"--range {range_in or first_tc} {range_out or last_tc} is empty or reversed "
            f"(read as {shown}: {label(lo)} to {label(hi)})",
            hint=f"OUT is exclusive and must come after IN, e.g. --range {label(max(0, min(lo, video_end - 1)))} "
                 f"{label(min(video_end, max(lo, 0) + 1))}",
        )
    if lo < 0 or hi > video_end:
        raise RangeError(
            f"--range {range_in or first_tc} {range_out or last_tc} is outside the timeline's "
            f"picture, which runs {first_tc} to {last_tc} ({shown}, OUT exclusive)",
            hint=f"give a range inside it; the nearest is --range {label(min(max(lo, 0), video_end - 1))} "
                 f"{label(max(min(hi, video_end), 1))}",
        )
    return lo, hi


def _marker_stack_frame(
    owner: otio.core.SerializableObject, marker: otio.schema.Marker,
    timeline: otio.schema.Timeline, rate: Fraction, start_frame: int, adapter: str,
) -> int | None:
    t = marker.marked_range.start_time
    if adapter == "cmx_3600" and isinstance(owner, otio.schema.Clip):
        # The CMX reader stores LOC markers as *record* timecode in clip space.
        return round(t.value) - start_frame
    if owner is timeline.tracks:
        return rt_frames(t, rate)
    try:
        mapped = owner.transformed_time(t, timeline.tracks)
    except ValueError:  # OTIO: the owner's range in its parent is invalid, so no place to show
        return None
    return rt_frames(mapped, rate)


def marker_boundaries(
    timeline: otio.schema.Timeline, rate: Fraction, start_frame: int, adapter: str = ""
) -> list[Boundary]:
    """Every marker on the timeline, its tracks and its video clips, in stack frames."""
    owners: list[otio.core.SerializableObject] = [timeline.tracks]
    for track in timeline.tracks:
        owners.append(track)
        if getattr(track, "kind", None) == otio.schema.TrackKind.Video:
            owners.extend(track.find_children())
    out: list[Boundary] = []
    for owner in owners:
        for m in getattr(owner, "markers", []):
            frame = _marker_stack_frame(owner, m, timeline, rate, start_frame, adapter)
            if frame is None:
                continue
            notes = tuple(n for n in (m.comment if hasattr(m, "comment") else "",) if n)
            out.append(Boundary(frame, m.name or "", notes))
    out.sort(key=lambda b: b.frame)
    return out


def clip_boundaries(
    timeline: otio.schema.Timeline, rate: Fraction, track_number: int
) -> list[Boundary]:
    tracks = [t for t in timeline.tracks if getattr(t, "kind", None) == otio.schema.TrackKind.Video]
    if not 1 <= track_number <= len(tracks):
        raise InputError(
            f"--scene-track {track_number} does not exist: the timeline has {len(tracks)} video track(s)",
            hint=f"use a number from 1 to {len(tracks)} (V1 is the bottom track)",
        )
    track = tracks[track_number - 1]
    out: list[Boundary] = []
    for i, item in enumerate(track):
        if isinstance(item, otio.schema.Clip) and item.enabled:
            r = track.transformed_time_range(track.trimmed_range_of_child_at_index(i), timeline.tracks)
            out.append(Boundary(rt_frames(r.start_time, rate), item.name or ""))
    return out


def cut_scenes(
    boundaries: list[Boundary], start: int, end: int, *, min_frames: int,
    first_name: str = "",
) -> list[SceneCut]:
    """Tile [start, end) at the boundaries inside it, then merge scenes shorter than min_frames."""
    scenes = [SceneCut(start, end, first_name)]
    for b in sorted(boundaries, key=lambda x: x.frame):
        if b.frame <= start or b.frame >= end:
            if b.frame == start and (b.name or b.notes):
                scenes[0].name = scenes[0].name or b.name
                scenes[0].notes.extend(b.notes)
            continue
        last = scenes[-1]
        if b.frame <= last.start:
            last.notes.extend(n for n in (b.name, *b.notes) if n)
            continue
        last.end = b.frame
        scenes.append(SceneCut(b.frame, end, b.name, list(b.notes)))
    return merge_short(scenes, min_frames)


def merge_short(scenes: list[SceneCut], min_frames: int) -> list[SceneCut]:
    """Merge scenes shorter than *min_frames*, shortest first, each into its shorter neighbour.

    A heap over a doubly linked list keeps this O(n log n) for timelines with thousands of cuts.
    """
    items = [SceneCut(s.start, s.end, s.name, list(s.notes)) for s in scenes]
    n = len(items)
    prev = list(range(-1, n - 1))
    nxt = list(range(1, n + 1))
    if n:
        nxt[-1] = -1
    alive = [True] * n
    heap = [(s.duration, i) for i, s in enumerate(items) if s.duration < min_frames]
    heapq.heapify(heap)
    count = n
    while heap and count > 1:
        dur, i = heapq.heappop(heap)
        if not alive[i] or items[i].duration != dur or dur >= min_frames:
            continue
        p, q = prev[i], nxt[i]
        if p == -1:
            j = q
        elif q == -1:
            j = p
        else:
            j = p if items[p].duration <= items[q].duration else q
        a, b = (j, i) if j == p else (i, j)
        sa, sb = items[a], items[b]
        items[a] = SceneCut(sa.start, sb.end, sa.name or sb.name,
                            sa.notes + ([sb.name] if sb.name and sa.name else []) + sb.notes)
        alive[b] = False
        nxt[a] = nxt[b]
        if nxt[b] != -1:
            prev[nxt[b]] = a
        count -= 1
        if items[a].duration < min_frames:
            heapq.heappush(heap, (items[a].duration, a))
    return [s for s, ok in zip(items, alive) if ok]


def find_scenes(
    timeline: otio.schema.Timeline,
    picture: Picture,
    *,
    policy: ScenePolicy,
    start: int,
    end: int,
    start_frame: int,
    min_seconds: float = 2.0,
    scene_track: int = 1,
    adapter: str = "",
    drop_frame: bool | None = None,
) -> list[SceneCut]:
    rate = picture.rate
    if drop_frame is None:
        drop_frame = timeline_drop_frame(timeline, rate)
    min_frames = max(1, round(Fraction(str(min_seconds)) * rate))
    if policy == "cuts":
        bounds = [Boundary(f) for f in picture.edit_points(start, end)]
    elif policy == "markers":
        bounds = marker_boundaries(timeline, rate, start_frame, adapter)
        if not [b for b in bounds if start <= b.frame < end]:
            raise InputError(
                "--scenes markers: the timeline has no markers inside the scored range "
                f"({frames_to_tc(start_frame + start, rate, drop_frame=drop_frame)}-"
                f"{frames_to_tc(start_frame + end, rate, drop_frame=drop_frame)})",
                hint="add timeline markers at the scene changes, or use --scenes cuts",
            )
    elif policy == "clips":
        bounds = clip_boundaries(timeline, rate, scene_track)
    else:  # pragma: no cover - typer restricts choices
        raise InputError(f"unknown scene policy {policy!r}", hint="use cuts, markers or clips")
    bounds = snap_to_transitions(bounds, picture.transition_spans(start, end))
    return cut_scenes(bounds, start, end, min_frames=min_frames)


def snap_to_transitions(bounds: list[Boundary], spans: list[tuple[int, int]]) -> list[Boundary]:
    """A boundary strictly inside a transition [s, e) moves to its midpoint frame s + (e-s)//2,
    where the dissolve is half way: music never changes on a frame of its own inside a blend."""
    if not spans:
        return bounds
    starts = [s for s, _ in spans]
    out: list[Boundary] = []
    for b in bounds:
        i = bisect.bisect_left(starts, b.frame)  # spans[:i] start strictly before b
        inside = [sp for sp in spans[max(0, i - 16):i] if sp[0] < b.frame < sp[1]]
        if inside:
            s, e = inside[-1]
            out.append(Boundary(s + (e - s) // 2, b.name, b.notes))
        else:
            out.append(b)
    out.sort(key=lambda x: x.frame)
    return out


def picture_cuts(picture: Picture, start: int, end: int) -> list[int]:
    """The picture's own cuts in (start, end), where ``--scenes cuts`` would put them (inside a
    transition, at its midpoint): with ``--scenes markers`` or ``clips`` a scene can span several,
    and ``--method compose`` splits a scene longer than a section can be at one of them."""
    bounds = [Boundary(f) for f in picture.edit_points(start, end)]
    return sorted({b.frame for b in snap_to_transitions(bounds, picture.transition_spans(start, end))
                   if start < b.frame < end})


def check_tiling(scenes: list[SceneCut], start: int, end: int) -> None:
    """Invariant: scenes tile [start, end) exactly. Raises AssertionError otherwise."""
    assert scenes and scenes[0].start == start and scenes[-1].end == end, (start, end)
    for a, b in zip(scenes, scenes[1:]):
        assert a.end == b.start and a.duration > 0, (a, b)


__all__ = [
    "Boundary",
    "SceneCut",
    "ScenePolicy",
    "check_tiling",
    "cut_scenes",
    "exact_rate",
    "find_scenes",
    "merge_short",
    "scored_range",
    "snap_to_transitions",
]
