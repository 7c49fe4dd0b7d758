"""The visible picture: which source frame(s) the edit shows at every timeline frame.  (pure)

All video tracks are composited the way an editor shows them: the topmost enabled clip wins,
disabled clips and tracks are transparent, gaps show what is beneath or black. Nested stacks and
tracks (compound clips, nested sequences) are walked with their own trims. Everything is in whole
frames of the timeline rate, in stack time (0 = ``global_start_time``).

Honoured:

* **Transitions** are rendered as dissolves over ``[cut - in_offset, cut + out_offset)``, using the
  outgoing item's media past its out point and the incoming item's media before its in point
  (otio.md §2.4). The incoming side's weight at transition frame ``k`` of ``N`` is the SMPTE
  ``(k + 0.5) / N``, the outgoing side's ``1 -`` that; the two are added (a cross-dissolve). A
  dissolve to or from a gap (or a disabled clip, or the end of a track) fades against what is
  beneath: black on the bottom track. Types other than ``SMPTE_Dissolve`` are rendered as
  dissolves and reported. :meth:`Picture.transition_spans` tells scenes where transitions are
  (a scene boundary inside one moves to its midpoint frame).
* **Time effects** on clips, nested stacks and tracks: ``LinearTimeWarp`` (media consumed =
  record duration × ``time_scalar`` from ``source_range.start_time``), ``FreezeFrame`` (holds
  ``start_time``). A **negative** scalar plays the media span ``[start, start + duration × |s|)``
  backwards: the first record frame shows the *last* frame of that span. That is the anchor
  Avid's AAF uses (``time_warp_test.avid_media_composer.aaf``: with the other anchor, starting at
  ``start_time`` and going back, "Reverse 50%" and "Reverse 200% - trimmed" would start before the
  media's first frame). Several time effects on one item multiply.
* **Mixed rates**: each timeline frame shows the media frame visible at that frame's instant
  (``floor`` of the media time, with exact rationals; ``ceil - 1`` when playing backwards), in
  the clip's own OTIO rate (a 25 fps clip in a 24 fps edit steps 25/24 media frames per frame).

Other effects are *reported* in :attr:`Picture.ignored`, never dropped silently.

The walk is one linear pass: a composition maps stack frames to its internal time with an affine
map ``tau(t) = a + b·t`` (``b`` = the product of the time scalars above it); every clip becomes a
:class:`Piece` on a z-ordered layer with its own affine map to media time and, inside a
transition, the fades that blend it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import opentimelineio as otio
from opentimelineio import opentime

from reelscore.timecode import exact_rate, rt_frames

# Sub-layers of a track: items in place (and the outgoing sides of transitions, fading out)
# below, the incoming sides (fading in) just above; _composite mixes the two sides of one
# transition additively, so pieces of one track never overlap on one layer.
_MAIN, _INCOMING = 0, 1
DISSOLVE = "SMPTE_Dissolve"


# Exact numbers: ints where whole (fast), Fractions otherwise.
Num = Fraction | int


def _exact(value: float) -> Num:
    if value == int(value):
        return int(value)
    return Fraction(value).limit_denominator(1_000_000)


def _whole(x: Num) -> Num:
    return int(x) if isinstance(x, Fraction) and x.denominator == 1 else x


def _ceil_div(a: Num, b: Num) -> int:
    if b == 1:
        return math.ceil(a)
    return math.ceil(Fraction(a) / b)


def media_frame(instant: Num, backward: bool = False) -> int:
    """The frame whose interval holds *instant*, approached in the direction of play.

    Forward playback shows ``floor(instant)``; backward playback shows the frame just below the
    instant, ``ceil(instant) - 1`` (an instant of 10 played backwards shows 9). A frozen picture
    keeps the direction of the media inside it (a freeze of a reversed clip shows the frame the
    reversed clip shows there).
    """
    if not backward:
        return math.floor(instant)
    return math.ceil(instant) - 1


def media_frames(media_start: Num, step: Num, count: int,
                 backward: bool = False) -> list[int]:
    """Media frames shown by *count* output frames starting at *media_start*, *step* apart."""
    if step == 1 and media_start.denominator == 1 and not backward:
        first = int(media_start)
        return list(range(first, first + count))
    return [media_frame(media_start + i * step, backward) for i in range(count)]


@dataclass(frozen=True)
class Fade:
    """The alpha ramp of one side of one transition, as a function of the stack frame.

    ``k(t) = a + b·t`` is the position in the transition (in the transition's own frames, 0 at
    its first frame); the incoming side's alpha is ``(k + 0.5) / n`` (the SMPTE dissolve weight),
    the outgoing side's ``1 -`` that, both clamped to [0, 1].
    """

    gid: int  # one id per transition occurrence (both sides share it, each side is one group)
    a: Num
    b: Num
    n: int
    rising: bool
    span: tuple[int, int]  # the whole transition in stack frames [start, end)

    def alpha(self, t: int) -> float:
        k = self.a + self.b * t
        w = float((2 * k + 1) / (2 * self.n))
        w = min(1.0, max(0.0, w))
        return w if self.rising else 1.0 - w


@dataclass(frozen=True)
class Piece:
    """A clip's contribution to one layer: stack frames [start, end)."""

    start: int
    end: int
    z: tuple[int, ...]  # compositing order, larger = on top (lexicographic over nesting)
    clip: otio.schema.Clip
    media_start: Num  # media instant (in src_rate frames) at stack frame `start`
    src_rate: Fraction
    step: Num = 1  # media frames per stack frame (speed × src_rate / rate)
    fades: tuple[Fade, ...] = ()  # outermost transition first; () = opaque
    backward: bool = False  # media plays backwards (see media_frame)

    def media_at(self, t: int) -> Num:
        return self.media_start + (t - self.start) * self.step


@dataclass(frozen=True)
class MixPart:
    """One picture in a blend: a clip (or black, ``clip is None``) and its weight per frame."""

    clip: otio.schema.Clip | None
    media_start: Num
    src_rate: Fraction
    step: Num
    weights: tuple[float, ...]
    backward: bool = False

    def frame(self, i: int) -> int:
        """Media frame of this part at output frame *i* of the blend."""
        return media_frame(self.media_start + i * self.step, self.backward)


@dataclass(frozen=True)
class Segment:
    """A run of output frames [start, start + count): one source, black, or a blend of several.

    A plain segment shows ``clip`` (None = black) at media frames
    ``media_frames(media_start, step, count)``. A blend (inside a transition) has ``parts``; each
    output frame is the weighted sum of its parts (weights sum to 1).
    """

    start: int
    count: int
    clip: otio.schema.Clip | None  # None = black (or a blend: see parts)
    media_start: Num = 0
    src_rate: Fraction = Fraction(0)
    reason: str = ""  # why black: "gap", "generator", ...
    step: Num = 1
    parts: tuple[MixPart, ...] = ()
    transitions: tuple[tuple[int, int], ...] = ()  # spans of the transitions blended here
    backward: bool = False  # media plays backwards (see media_frame)

    @property
    def end(self) -> int:
        return self.start + self.count

    @property
    def is_black(self) -> bool:
        return self.clip is None and not self.parts

    @property
    def is_mix(self) -> bool:
        return bool(self.parts)

    def clips(self) -> list[otio.schema.Clip]:
        """Every clip whose media this segment shows."""
        if self.parts:
            return [p.clip for p in self.parts if p.clip is not None]
        return [self.clip] if self.clip is not None else []

    def frames(self) -> list[int]:
        """Media frames (at ``src_rate``) of a plain segment, one per output frame."""
        return media_frames(self.media_start, self.step, self.count, self.backward)

    def dominant_index(self, i: int) -> int:
        """The part that contributes most to output frame *i* of a blend (ties: the upper)."""
        return max(range(len(self.parts)), key=lambda j: (self.parts[j].weights[i], -j))


@dataclass
class Picture:
    """All layers of a timeline, ready to be queried for any range."""

    rate: Fraction
    duration: int  # frames of the whole stack
    layers: list[list[Piece]]  # one sorted, non-overlapping list per z-ordered layer
    ignored: list[str] = field(default_factory=list)
    honoured: list[str] = field(default_factory=list)
    _segments: dict[tuple[int, int], list[Segment]] = field(default_factory=dict, repr=False)
    _starts: list[list[int]] | None = field(default=None, repr=False)

    def segments(self, start: int, end: int) -> list[Segment]:
        """The visible picture over stack frames [start, end) as contiguous segments."""
        key = (start, end)
        if key not in self._segments:
            self._segments[key] = list(self._iter_segments(start, end))
        return self._segments[key]

    def _layer_starts(self) -> list[list[int]]:
        if self._starts is None:
            self._starts = [[p.start for p in layer] for layer in self.layers]
        return self._starts

    def _iter_segments(self, start: int, end: int) -> Iterator[Segment]:
        if end <= start:
            return
        starts = self._layer_starts()
        t = start
        while t < end:
            covering: list[Piece] = []
            next_change = end
            # Walk layers from the top: covering pieces are collected until an opaque one; the
            # boundaries of every layer consulted bound the segment.
            for li in range(len(self.layers) - 1, -1, -1):
                layer = self.layers[li]
                i = bisect.bisect_right(starts[li], t) - 1
                if i >= 0 and layer[i].end > t:
                    piece = layer[i]
                    covering.append(piece)
                    next_change = min(next_change, piece.end)
                    if not piece.fades:
                        break
                elif i + 1 < len(layer):
                    next_change = min(next_change, layer[i + 1].start)
            count = next_change - t
            if not covering:
                yield Segment(t, count, None, reason="gap")
            elif len(covering) == 1 and not covering[0].fades:
                top = covering[0]
                yield Segment(t, count, top.clip, top.media_at(t), top.src_rate, step=top.step,
                              backward=top.backward)
            else:
                yield _blend(covering, t, count)
            t = next_change

    def edit_points(self, start: int, end: int) -> list[int]:
        """Frames in (start, end) where a different picture becomes the visible one (black
        excluded). A clip that continues the previous one's media frame for frame (an EDL
        dissolve's split B clip, a razor cut) is no edit. Inside a blend the clip contributing
        most counts; scenes move points inside a transition to its midpoint
        (:meth:`transition_spans`)."""
        points: list[int] = []
        prev: tuple[otio.schema.Clip, tuple[str, str], Num, Num] | None = None

        def visit(frame: int, clip: otio.schema.Clip | None, instant: Num, step: Num) -> None:
            nonlocal prev
            if clip is None:
                return
            key = _media_key(clip)
            if prev is not None:
                same = clip is prev[0] or (key == prev[1] and instant == prev[2]
                                           and step == prev[3])
                if not same and frame > start:
                    points.append(frame)
            elif frame > start:
                points.append(frame)
            prev = (clip, key, instant + step, step)

        for seg in self.segments(start, end):
            if not seg.parts:
                if seg.clip is not None:
                    visit(seg.start, seg.clip, seg.media_start, seg.step)
                    assert prev is not None
                    prev = (prev[0], prev[1], seg.media_start + seg.count * seg.step, seg.step)
                continue
            for i in range(seg.count):
                j = seg.dominant_index(i)
                part = seg.parts[j]
                visit(seg.start + i, part.clip, part.media_start + i * part.step, part.step)
        return points

    def transition_spans(self, start: int, end: int) -> list[tuple[int, int]]:
        """Stack-frame spans [s, e) of the transitions visible in [start, end), sorted."""
        spans: set[tuple[int, int]] = set()
        for seg in self.segments(start, end):
            spans.update(seg.transitions)
        return sorted(spans)


def _blend(covering: list[Piece], t0: int, count: int) -> Segment:
    """A segment where partly transparent pieces (transitions) are composited top-down."""
    per_piece: list[list[float]] = [[] for _ in covering]
    black: list[float] = []
    for t in range(t0, t0 + count):
        weights, rest = _composite(covering, t)
        for j, w in enumerate(weights):
            per_piece[j].append(w)
        black.append(rest)
    parts = [
        MixPart(p.clip, p.media_at(t0), p.src_rate, p.step, tuple(ws), p.backward)
        for p, ws in zip(covering, per_piece) if any(w > 1e-9 for w in ws)
    ]
    if any(b > 1e-9 for b in black):
        parts.append(MixPart(None, 0, Fraction(0), 0, tuple(black)))
    spans = tuple(sorted({f.span for p in covering for f in p.fades}))
    if len(parts) == 1 and all(w >= 1 - 1e-9 for w in parts[0].weights):
        only = parts[0]
        if only.clip is None:
            return Segment(t0, count, None, reason="gap", transitions=spans)
        return Segment(t0, count, only.clip, only.media_start, only.src_rate, step=only.step,
                       transitions=spans, backward=only.backward)
    return Segment(t0, count, None, parts=tuple(parts), transitions=spans)


def _composite(pieces: list[Piece], t: int) -> tuple[list[float], float]:
    """Weights of *pieces* (top-down) at stack frame *t*, and the weight left for black.

    Pieces that share a fade form a group (one side of one transition, maybe several layers of
    a compound clip); a group is composited on its own first. The two sides of a transition are
    then mixed *additively* (a cross-dissolve: ``w·B + (1 - w)·A``, with coverage
    ``w·cov(B) + (1 - w)·cov(A)``) and laid over what is below.
    """
    weights = [0.0] * len(pieces)

    def group_end(i: int, hi: int, depth: int) -> int:
        f = pieces[i].fades[depth]
        j = i + 1
        while (j < hi and len(pieces[j].fades) > depth and pieces[j].fades[depth].gid == f.gid
               and pieces[j].fades[depth].rising == f.rising):
            j += 1
        return j

    def run(lo: int, hi: int, depth: int) -> float:
        transmit = 1.0
        i = lo
        while i < hi and transmit > 1e-12:
            p = pieces[i]
            if len(p.fades) <= depth:  # opaque at this level
                weights[i] = transmit
                transmit = 0.0
                i += 1
                continue
            fade = p.fades[depth]
            j = group_end(i, hi, depth)
            sides = [(i, j, fade.alpha(t))]
            if (j < hi and len(pieces[j].fades) > depth and pieces[j].fades[depth].gid == fade.gid
                    and pieces[j].fades[depth].rising != fade.rising):
                k = group_end(j, hi, depth)  # the other side of the same transition
                sides.append((j, k, pieces[j].fades[depth].alpha(t)))
                j = k
            covered = 0.0
            for a, b, alpha in sides:
                coverage = run(a, b, depth + 1)
                for q in range(a, b):
                    weights[q] *= transmit * alpha
                covered += alpha * coverage
            transmit *= max(0.0, 1.0 - covered)
            i = j
        return 1.0 - transmit

    covered = run(0, len(pieces), 0)
    return weights, max(0.0, 1.0 - covered)


def _media_key(clip: otio.schema.Clip) -> tuple[str, str]:
    ref = clip.media_reference
    url = getattr(ref, "target_url", None) or getattr(ref, "target_url_base", None)
    return type(ref).__name__, str(url or clip.name or id(ref))


def _is_enabled(item: otio.core.SerializableObject) -> bool:
    return bool(getattr(item, "enabled", True))


def _describe(item: otio.core.SerializableObject) -> str:
    name = getattr(item, "name", "") or type(item).__name__
    return f"{type(item).__name__} {name!r}"


def _frames(t: opentime.RationalTime, rate: Fraction) -> int:
    return rt_frames(t, rate)


def _trim_start(item: otio.core.Item, rate: Fraction) -> int:
    """Where an item's trimmed range starts in its own internal time (timeline frames)."""
    sr = item.source_range
    if sr is not None:
        return _frames(sr.start_time, rate)
    return 0 if isinstance(item, otio.core.Composition) else _frames(item.trimmed_range().start_time, rate)


class _Walker:
    """One linear walk over the stack that fills z-ordered layers with pieces."""

    def __init__(self, rate: Fraction) -> None:
        self.rate = rate
        self.layers: dict[tuple[int, ...], list[Piece]] = {}
        self.ignored: list[str] = []
        self.honoured: list[str] = []
        self._gid = 0
        self._scalars: dict[int, Num] = {}
        self._lengths: dict[int, int] = {}
        self._keep: list[object] = []

    # -- effects ---------------------------------------------------------------------------

    def time_scalar(self, item: otio.core.SerializableObject) -> Num:
        """Product of the item's time effects; other effects are reported as ignored (once per
        item, however often the item is emitted)."""
        key = id(item)
        cached = self._scalars.get(key)
        if cached is not None:
            return cached
        scalar: Num = 1
        effects = getattr(item, "effects", ())
        for n in range(len(effects)):  # indexing: iterating OTIO's list wrapper is slow
            eff = effects[n]
            if not _is_enabled(eff):
                continue
            if isinstance(eff, otio.schema.LinearTimeWarp):
                value = _exact(float(eff.time_scalar))
                scalar *= value
                if value != 1:
                    self.honoured.append("freeze frame" if value == 0 else
                                         "reversed clip" if value < 0 else "speed change")
            else:
                self.ignored.append(f"{type(eff).__name__} {eff.effect_name or eff.name!r} on "
                                    f"{_describe(item)} ignored")
        scalar = _whole(scalar)
        self._scalars[key] = scalar
        self._keep.append(item)  # ids stay unique while the walk runs
        return scalar

    # -- geometry --------------------------------------------------------------------------

    def item_frames(self, item: otio.core.Item) -> int:
        """Record frames an item takes, with every track position a whole timeline frame.

        A clip at another rate takes its duration rounded to timeline frames; an untrimmed
        composition takes the sum (track) or maximum (stack) of its items' whole-frame lengths
        (OTIO's own sum of mixed-rate durations may fall between frames).
        """
        if item.source_range is not None or not isinstance(item, otio.core.Composition):
            return _frames(item.trimmed_range().duration, self.rate)
        key = id(item)
        known = self._lengths.get(key)
        if known is not None:
            return known
        children = list(item)
        if isinstance(item, otio.schema.Track):
            total = sum(self.item_frames(c) for c in children
                        if not isinstance(c, otio.schema.Transition))
            if children and isinstance(children[-1], otio.schema.Transition):
                total += _frames(children[-1].out_offset, self.rate)  # a trailing fade
        else:
            total = max((self.item_frames(c) for c in children
                         if not isinstance(c, otio.schema.Transition)
                         and not (isinstance(c, otio.schema.Track)
                                  and c.kind != otio.schema.TrackKind.Video)), default=0)
        self._lengths[key] = total
        self._keep.append(item)
        return total

    @staticmethod
    def frames_where(a: Num, b: Num, x0: Num, x1: Num,
                     window: tuple[int, int], backward: bool = False) -> tuple[int, int]:
        """Stack frames t in *window* whose instant ``a + b·t`` lies in [x0, x1) (forward) or
        (x0, x1] (backward: the instant is approached from above)."""
        lo, hi = window
        if b > 0:
            t0, t1 = _ceil_div(x0 - a, b), _ceil_div(x1 - a, b)
        elif b < 0:
            t0, t1 = _ceil_div(x1 - a, b), _ceil_div(x0 - a, b)
        else:
            inside = x0 < a <= x1 if backward else x0 <= a < x1
            t0, t1 = (lo, hi) if inside else (lo, lo)
        return max(lo, t0), min(hi, t1)

    # -- compositions ----------------------------------------------------------------------

    def composition(self, comp: otio.core.Composition, z: tuple[int, ...], a: Num,
                    b: Num, window: tuple[int, int], fades: tuple[Fade, ...],
                    backward: bool = False) -> None:
        """Walk *comp*, whose internal instant at stack frame t is ``a + b·t`` (*backward*: its
        time runs backwards, which matters for frozen time, b = 0)."""
        if window[1] <= window[0]:
            return
        if isinstance(comp, otio.schema.Track):
            self.track(comp, z, a, b, window, fades, backward)
            return
        # A Stack: every child starts at the stack's internal 0; later children are on top.
        for idx, child in enumerate(comp):
            if isinstance(child, otio.schema.Track) and child.kind != otio.schema.TrackKind.Video:
                continue
            if isinstance(child, (otio.schema.Transition, otio.schema.Gap)) or not _is_enabled(child):
                continue
            dur = self.item_frames(child)
            self.emit(child, (*z, idx), 0, dur, 0, dur, a, b, window, fades,
                      backward)

    def track(self, track: otio.schema.Track, z: tuple[int, ...], a: Num, b: Num,
              window: tuple[int, int], fades: tuple[Fade, ...], backward: bool = False) -> None:
        children = list(track)
        # Positions of the items (transitions take no time).
        pos: list[int] = []
        durs: list[int] = []
        cursor = 0
        for child in children:
            pos.append(cursor)
            if isinstance(child, otio.schema.Transition):
                durs.append(0)
                continue
            length = self.item_frames(child)
            durs.append(length)
            cursor += length

        def visible(i: int) -> bool:
            if not 0 <= i < len(children):
                return False
            c = children[i]
            return (not isinstance(c, (otio.schema.Gap, otio.schema.Transition))
                    and _is_enabled(c))

        # Transitions: [cut - in, cut + out) in track time, with an id and their fades.
        trans: dict[int, tuple[int, int, int]] = {}  # index -> (start, end, gid)
        for i, child in enumerate(children):
            if not isinstance(child, otio.schema.Transition):
                continue
            cut = pos[i]
            t_in = _frames(child.in_offset, self.rate)
            t_out = _frames(child.out_offset, self.rate)
            if t_in + t_out <= 0:
                continue
            self._gid += 1
            trans[i] = (cut - t_in, cut + t_out, self._gid)
            s0, s1 = self.frames_where(a, b, cut - t_in, cut + t_out, window, backward)
            if s1 > s0 and (visible(i - 1) or visible(i + 1)):
                kind = child.transition_type or "(no type)"
                if kind == DISSOLVE:
                    self.honoured.append("dissolve")
                else:
                    self.ignored.append(f"{_describe(child)} ({kind}) rendered as a dissolve")

        def fade(i: int, rising: bool) -> Fade:
            ts, te, gid = trans[i]
            span = self.frames_where(a, b, ts, te, window, backward)
            return Fade(gid, a - ts, b, te - ts, rising, span)

        for i, child in enumerate(children):
            if not visible(i):
                continue
            placed, length = pos[i], durs[i]
            head = trans.get(i - 1)  # transition into this item
            tail = trans.get(i + 1)  # transition out of it
            main_from = placed
            if head is not None:
                hs, he, _ = head
                self.emit(child, (*z, _INCOMING), placed, length, hs, he, a, b,
                          window, (*fades, fade(i - 1, True)), backward)
                main_from = he
            if tail is not None:
                # The outgoing side fades out over the transition; the incoming side (if any)
                # fades in above it and the two are mixed as a cross-dissolve.
                ts, te, _ = tail
                self.emit(child, (*z, _MAIN), placed, length, main_from, ts,
                          a, b, window, fades, backward)
                self.emit(child, (*z, _MAIN), placed, length, max(ts, main_from),
                          te, a, b, window, (*fades, fade(i + 1, False)), backward)
            else:
                self.emit(child, (*z, _MAIN), placed, length, main_from, placed + length,
                          a, b, window, fades, backward)

    def emit(self, item: otio.core.Item, z: tuple[int, ...], placed: int, length: int,
             x0: Num, x1: Num, a: Num, b: Num, window: tuple[int, int],
             fades: tuple[Fade, ...], backward: bool = False) -> None:
        """Show *item* (placed at parent time [placed, placed + length)) over parent time [x0, x1).

        x0/x1 may reach past the item's own range (transition handles): the item's media then
        continues linearly past its in or out point.
        """
        if x1 <= x0:
            return
        lo, hi = self.frames_where(a, b, x0, x1, window, backward)
        if hi <= lo:
            return
        k = self.time_scalar(item)
        inner_backward = backward != (k < 0)
        if isinstance(item, otio.schema.Clip):
            trimmed = item.trimmed_range()
            src_rate = exact_rate(trimmed.start_time.rate)
            r: Num = 1 if src_rate == self.rate else src_rate / self.rate
            s = _exact(trimmed.start_time.value)
            # Internal instant u = s + (tau - placed)·k·r, tau = a + b·t; reversed: anchored at
            # the end of the media span [s, s + length·r·|k|).
            anchor = s + (length * r * -k if k < 0 else 0)
            step = _whole(b * k * r)
            media_lo = _whole(anchor + (a + b * lo - placed) * k * r)
            self.layers.setdefault(z, []).append(
                Piece(lo, hi, z, item, media_lo, src_rate, step, fades, inner_backward))
        elif isinstance(item, otio.core.Composition):
            s_c = _trim_start(item, self.rate)
            anchor = s_c + (length * -k if k < 0 else 0)
            self.composition(item, z, _whole(anchor + (a - placed) * k), _whole(b * k), (lo, hi),
                             fades, inner_backward)
        # Other item types (e.g. a bare Item) show nothing.


def build_picture(timeline: otio.schema.Timeline, rate: Fraction | None = None) -> Picture:
    """Walk every enabled video track of a (normalised) timeline into layers of pieces.

    Positions are accumulated along each track in one pass (OTIO's ``transformed_time_range``
    re-walks the track for every call, which is quadratic on long timelines).
    """
    tl_rate = rate or exact_rate(timeline.global_start_time.rate)
    stack = timeline.tracks
    walker = _Walker(tl_rate)
    s0 = _trim_start(stack, tl_rate)
    k0 = walker.time_scalar(stack)
    if stack.source_range is not None:
        duration = _frames(stack.source_range.duration, tl_rate)
    else:
        duration = max(_frames(stack.duration(), tl_rate), walker.item_frames(stack))
    walker.composition(stack, (), s0, k0, (0, duration), (), k0 < 0)
    ordered = [_without_overlap(sorted(walker.layers[k], key=lambda p: p.start))
               for k in sorted(walker.layers)]
    return Picture(rate=tl_rate, duration=duration, layers=ordered,
                   ignored=_dedupe(walker.ignored), honoured=_count(walker.honoured))


def _without_overlap(layer: list[Piece]) -> list[Piece]:
    # Pieces of one layer never overlap in a valid OTIO track; if rounding of float rates (or
    # transition offsets longer than their neighbours) made two share frames, the later piece
    # starts after the earlier one ends.
    out: list[Piece] = []
    for p in layer:
        if out and p.start < out[-1].end:
            shift = out[-1].end - p.start
            if p.end <= out[-1].end:
                continue
            p = Piece(out[-1].end, p.end, p.z, p.clip, p.media_start + shift * p.step,
                      p.src_rate, p.step, p.fades, p.backward)
        out.append(p)
    return out


def _count(items: list[str]) -> list[str]:
    counts: dict[str, int] = {}
    for it in items:
        counts[it] = counts.get(it, 0) + 1
    return [f"{n} {k}{'s' if n > 1 else ''}" for k, n in counts.items()]


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
