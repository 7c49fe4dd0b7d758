"""The visible picture: which source frame the edit shows at every timeline frame.  (pure)

All video tracks are composited the way an editor shows them: the topmost enabled clip wins,
disabled clips and tracks are transparent, gaps show what is beneath or black. Nested stacks and
tracks (compound clips, nested sequences) are walked with their own trims. Everything is in whole
frames of the timeline rate, in stack time (0 = ``global_start_time``).

What this module cannot honour yet is *reported*, never dropped silently: transitions are played
as cuts at the cut point, time effects (speed, freeze) and other effects are ignored.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import opentimelineio as otio
from opentimelineio import opentime

from reelscore.timecode import exact_rate, rt_frames


@dataclass(frozen=True)
class Piece:
    """A clip's contribution to one layer: stack frames [start, end)."""

    start: int
    end: int
    z: tuple[int, ...]  # compositing order, larger = on top (lexicographic over nesting)
    clip: otio.schema.Clip
    media_start: Fraction  # media-space frame (at src_rate) shown at stack frame `start`
    src_rate: Fraction


@dataclass(frozen=True)
class Segment:
    """A run of output frames [start, start + count) taken from one source, or black."""

    start: int
    count: int
    clip: otio.schema.Clip | None  # None = black
    media_start: Fraction = Fraction(0)
    src_rate: Fraction = Fraction(0)
    reason: str = ""  # why black: "gap", "generator", ...

    @property
    def end(self) -> int:
        return self.start + self.count

    @property
    def is_black(self) -> bool:
        return self.clip is None


@dataclass
class Picture:
    """All layers of a timeline, ready to be queried for any range."""

    rate: Fraction
    duration: int  # frames of the whole stack
    layers: list[list[Piece]]  # one sorted, non-overlapping list per z-ordered layer
    ignored: list[str] = field(default_factory=list)
    _segments: dict[tuple[int, int], list[Segment]] = field(default_factory=dict, repr=False)

    def segments(self, start: int, end: int) -> list[Segment]:
        """The visible picture over stack frames [start, end) as contiguous segments."""
        key = (start, end)
        if key not in self._segments:
            self._segments[key] = list(self._iter_segments(start, end))
        return self._segments[key]

    def _iter_segments(self, start: int, end: int) -> Iterator[Segment]:
        if end <= start:
            return
        starts = [[p.start for p in layer] for layer in self.layers]
        t = start
        while t < end:
            top: Piece | None = None
            next_change = end
            # Walk layers from the top: the first covering piece wins; boundaries of the layers
            # above it (where something may appear on top) bound the segment.
            for li in range(len(self.layers) - 1, -1, -1):
                layer = self.layers[li]
                i = bisect.bisect_right(starts[li], t) - 1
                if i >= 0 and layer[i].end > t:
                    top = layer[i]
                    next_change = min(next_change, layer[i].end)
                    break
                if i + 1 < len(layer):
                    next_change = min(next_change, layer[i + 1].start)
            if top is None:
                yield Segment(t, next_change - t, None, reason="gap")
            else:
                offset = (Fraction(t - top.start) if top.src_rate == self.rate
                          else Fraction(t - top.start) * top.src_rate / self.rate)
                yield Segment(
                    t, next_change - t, top.clip, top.media_start + offset, top.src_rate
                )
            t = next_change

    def edit_points(self, start: int, end: int) -> list[int]:
        """Frames in (start, end) where a different clip becomes visible (black excluded)."""
        points: list[int] = []
        previous: otio.schema.Clip | None = None
        for seg in self.segments(start, end):
            if seg.clip is not None and seg.clip is not previous and seg.start > start:
                points.append(seg.start)
            if seg.clip is not None:
                previous = seg.clip
        return points


def _is_enabled(item: otio.core.Item) -> bool:
    return bool(getattr(item, "enabled", True))


def _describe(item: otio.core.SerializableObject) -> str:
    name = getattr(item, "name", "") or type(item).__name__
    return f"{type(item).__name__} {name!r}"


def _frames(t: opentime.RationalTime, rate: Fraction) -> int:
    return rt_frames(t, rate)


def _trim_start(item: otio.core.Item, rate: Fraction) -> int:
    """Where an item's trimmed range starts in its own internal time."""
    sr = item.source_range
    if sr is not None:
        return _frames(sr.start_time, rate)
    return 0 if isinstance(item, otio.core.Composition) else _frames(item.trimmed_range().start_time, rate)


def build_picture(timeline: otio.schema.Timeline, rate: Fraction | None = None) -> Picture:
    """Walk every enabled video track of a (normalised) timeline into layers of pieces.

    Positions are accumulated along each track in one pass (OTIO's ``transformed_time_range``
    re-walks the track for every call, which is quadratic on long timelines). A child at
    position ``p`` in its parent, trimmed to start at ``s`` in its own time, maps its internal
    time ``tau`` to the parent's ``p + tau - s``; compositions are windowed by their trims.
    """
    tl_rate = rate or exact_rate(timeline.global_start_time.rate)
    stack = timeline.tracks
    layers: dict[tuple[int, ...], list[Piece]] = {}
    ignored: list[str] = []

    def walk(comp: otio.core.Composition, z: tuple[int, ...], offset: int,
             window: tuple[int, int]) -> None:
        """*offset*: stack frame of comp's internal time 0; *window*: visible stack frames."""
        if isinstance(comp, otio.schema.Stack):
            for idx, child in enumerate(comp):
                if not isinstance(child, otio.schema.Track) or child.kind != otio.schema.TrackKind.Video:
                    continue
                if not _is_enabled(child):
                    continue
                for eff in child.effects:
                    ignored.append(f"{type(eff).__name__} {eff.effect_name or eff.name!r} on "
                                   f"{_describe(child)} ignored")
                s = _trim_start(child, tl_rate)
                dur = _frames(child.trimmed_range().duration, tl_rate)
                lo, hi = max(window[0], offset), min(window[1], offset + dur)
                if hi > lo:
                    walk(child, (*z, idx), offset - s, (lo, hi))
            return
        pos = 0
        for child in comp:
            if isinstance(child, otio.schema.Transition):
                ignored.append(
                    f"{_describe(child)} ({child.transition_type}) played as a cut at its cut point"
                )
                continue
            trimmed = child.trimmed_range()
            dur = _frames(trimmed.duration, tl_rate)
            p = pos
            pos += dur
            if not _is_enabled(child) or isinstance(child, otio.schema.Gap):
                continue
            for eff in getattr(child, "effects", []):
                ignored.append(f"{type(eff).__name__} {eff.effect_name or eff.name!r} on "
                               f"{_describe(child)} ignored")
            s0 = offset + p
            s1 = s0 + dur
            lo, hi = max(s0, window[0]), min(s1, window[1])
            if hi <= lo:
                continue
            if isinstance(child, otio.schema.Clip):
                src_rate = exact_rate(trimmed.start_time.rate)
                value = trimmed.start_time.value
                media_at_s0 = (Fraction(int(value)) if value == int(value)
                               else Fraction(value).limit_denominator(1_000_000))
                media_start = media_at_s0 + (lo - s0 if src_rate == tl_rate
                                             else Fraction(lo - s0) * src_rate / tl_rate)
                layers.setdefault(z, []).append(Piece(lo, hi, z, child, media_start, src_rate))
            elif isinstance(child, otio.core.Composition):
                walk(child, z, s0 - _trim_start(child, tl_rate), (lo, hi))
            # Other item types (e.g. a bare Item) show nothing.

    top_offset = -_frames(stack.source_range.start_time, tl_rate) if stack.source_range else 0
    duration = _frames(stack.duration(), tl_rate)
    walk(stack, (), top_offset, (0, duration))
    ordered = [_without_overlap(sorted(layers[k], key=lambda p: p.start), tl_rate) for k in sorted(layers)]
    return Picture(rate=tl_rate, duration=duration, layers=ordered, ignored=_dedupe(ignored))


def _without_overlap(layer: list[Piece], tl_rate: Fraction) -> list[Piece]:
    # Pieces of one layer never overlap in a valid OTIO track; if rounding of float rates made
    # two neighbours share a frame, the later piece starts after the earlier one ends.
    out: list[Piece] = []
    for p in layer:
        if out and p.start < out[-1].end:
            shift = out[-1].end - p.start
            if p.end <= out[-1].end:
                continue
            p = Piece(out[-1].end, p.end, p.z, p.clip,
                      p.media_start + Fraction(shift) * p.src_rate / tl_rate, p.src_rate)
        out.append(p)
    return out


def _dedupe(items: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    for it in items:
        seen[it] = seen.get(it, 0) + 1
    return [k if n == 1 else f"{k} (x{n})" for k, n in seen.items()]


def clip_record_range(
    clip: otio.schema.Clip, timeline: otio.schema.Timeline, rate: Fraction
) -> tuple[int, int]:
    """Stack frames [start, end) a clip occupies (for messages and scene policies)."""
    r = clip.transformed_time_range(clip.trimmed_range(), timeline.tracks)
    s = rt_frames(r.start_time, rate)
    return s, s + rt_frames(r.duration, rate)


def stack_time(frames: int, rate: Fraction) -> opentime.RationalTime:
    return opentime.RationalTime(frames, float(rate))
