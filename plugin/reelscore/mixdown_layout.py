"""Where every audio clip of an edit sounds: the edit's audio tracks as placed pieces.  (pure)

The layout is what :mod:`reelscore.mixdown` decodes and sums. Time is exact (``Fraction``
seconds of stack time, 0 = the timeline's ``global_start_time``, as ``ScorePlan`` frames are);
samples come only at the end, through one rounding rule (``floor(s * rate + 1/2)``, the rule of
``conform.frames_to_samples``), so a clip cut on a frame starts on that frame's sample.

What is honoured:

* **Tracks**: the timeline's audio tracks, numbered 1.. in the order the NLE shows them (A1,
  A2, …). ``tracks=None`` takes every *enabled* track; a track named or numbered explicitly is
  taken even when it is disabled (muted), so a muted guide track can be heard on request.
* **Clips** at their record positions with their source ranges; **gaps** are silent;
  **disabled** clips (muted in the NLE: AAF, FCP 7 XML ``enabled FALSE``, OTIO) are left out.
  A video track's clips are never in the mix: a picture's own sound is heard only where the edit
  places it on an audio track.
* **Nested** stacks and tracks (compound clips, nested sequences) are walked with their trims;
  only their audio tracks sound.
* **Transitions** on an audio track are crossfades over ``[cut - in_offset, cut + out_offset)``:
  the outgoing clip plays on past its out point fading out, the incoming one starts before its in
  point fading in, both equal power (sin/cos, the NLEs' "constant power" default). A crossfade to
  or from a gap fades against silence.
* **Levels**: see :mod:`reelscore.mixdown_levels` (what each format carries).

Left out and reported in :attr:`AudioLayout.ignored` (never silently): clips with a time effect
(speed change, freeze: their sound would be pitched or held, which this mixdown does not do)
and generator clips on audio tracks (tone, silence).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import opentimelineio as otio
from opentimelineio import opentime

from reelscore.errors import InputError
from reelscore.mixdown_levels import clip_gain, track_gain
from reelscore.timecode import exact_rate


@dataclass(frozen=True)
class AudioTrackInfo:
    """One audio track of the edit as the NLE numbers it (A1 = index 1)."""

    index: int
    name: str
    enabled: bool
    clips: int


@dataclass(frozen=True)
class Ramp:
    """An equal-power fade over stack seconds ``[start, end)``: gain rises 0 → 1 (``rising``)
    as ``sin(pi/2 · x)`` or falls 1 → 0 as ``cos(pi/2 · x)``, x the position in the span."""

    start: Fraction
    end: Fraction
    rising: bool


@dataclass(frozen=True)
class AudioPiece:
    """One clip sounding over stack seconds ``[start, end)``.

    ``source`` is the clip's media time (seconds, in the clip's own media space: the space of its
    ``source_range`` and ``available_range``) heard at ``start``; the media plays at normal speed.
    """

    track: int  # 1-based audio track index (top-level track the clip sounds on)
    clip: otio.schema.Clip
    start: Fraction
    end: Fraction
    source: Fraction
    gain: float  # linear: the clip's level times its tracks' levels
    ramps: tuple[Ramp, ...] = ()

    @property
    def name(self) -> str:
        return self.clip.name or "(unnamed)"


@dataclass
class AudioLayout:
    tracks: list[AudioTrackInfo]
    pieces: list[AudioPiece] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def seconds(t: opentime.RationalTime) -> Fraction:
    """Exact seconds of *t* (NTSC rates snapped to their exact rationals)."""
    value = Fraction(t.value).limit_denominator(1_000_000)
    return value / exact_rate(t.rate)


def to_sample(secs: Fraction, sample_rate: int) -> int:
    """The sample of an instant: rounded half up, the rule of ``conform.frames_to_samples``."""
    return math.floor(secs * sample_rate + Fraction(1, 2))


def audio_track_objects(timeline: otio.schema.Timeline) -> list[otio.schema.Track]:
    return [t for t in timeline.tracks
            if isinstance(t, otio.schema.Track) and t.kind == otio.schema.TrackKind.Audio]


def describe_tracks(timeline: otio.schema.Timeline) -> list[AudioTrackInfo]:
    out = []
    for i, track in enumerate(audio_track_objects(timeline), start=1):
        clips = sum(1 for _ in track.find_clips())
        out.append(AudioTrackInfo(i, track.name or f"A{i}", bool(track.enabled), clips))
    return out


def select_tracks(infos: list[AudioTrackInfo],
                  wanted: Sequence[int | str] | None) -> list[int]:
    """Indices of the tracks to mix: every enabled one, or those named (``"DX"``, ``"A2"``) or
    numbered (2). An unknown name or number raises InputError listing the tracks there are."""
    if wanted is None:
        return [t.index for t in infos if t.enabled]
    chosen: list[int] = []
    for want in wanted:
        found = _find_track(infos, want)
        if found is None:
            have = ", ".join(f"A{t.index} {t.name!r}" for t in infos) or "none"
            raise InputError(
                f"the edit has no audio track {want!r}; its audio tracks are: {have}",
                hint="name a track by its name or as A1, A2…, or by number")
        if found not in chosen:
            chosen.append(found)
    return chosen


def _find_track(infos: list[AudioTrackInfo], want: int | str) -> int | None:
    if isinstance(want, int):
        return want if any(t.index == want for t in infos) else None
    text = want.strip()
    exact = [t.index for t in infos if t.name == text]
    if exact:
        return exact[0]
    folded = [t.index for t in infos if t.name.casefold() == text.casefold()]
    if folded:
        return folded[0]
    if text[:1] in "aA" and text[1:].isdigit():
        number = int(text[1:])
        return number if any(t.index == number for t in infos) else None
    return None


def build_layout(timeline: otio.schema.Timeline, lo: Fraction, hi: Fraction,
                 tracks: Sequence[int | str] | None = None) -> AudioLayout:
    """The pieces sounding within stack seconds ``[lo, hi)`` on the chosen audio tracks."""
    infos = describe_tracks(timeline)
    layout = AudioLayout(infos)
    objects = audio_track_objects(timeline)
    for index in select_tracks(infos, tracks):
        track = objects[index - 1]
        walker = _Walker(layout, index, lo, hi)
        walker.track(track, Fraction(0), lo, hi, track_gain(track))
    layout.pieces.sort(key=lambda p: (p.start, p.track))
    return layout


def _trim_start(item: otio.core.Item) -> Fraction:
    sr = item.source_range
    return seconds(sr.start_time) if sr is not None else Fraction(0)


def _duration(item: otio.core.Item) -> Fraction:
    return seconds(item.trimmed_range().duration)


class _Walker:
    """Walks one top-level audio track; ``place`` maps an item's internal time to stack time."""

    def __init__(self, layout: AudioLayout, index: int, lo: Fraction, hi: Fraction) -> None:
        self.layout = layout
        self.index = index
        self.lo = lo
        self.hi = hi

    def track(self, track: otio.schema.Track, at: Fraction, w0: Fraction, w1: Fraction,
              gain: float) -> None:
        """Items of *track* whose trimmed start sounds at stack second *at*, heard in [w0, w1)."""
        items = list(track)
        origin = at - _trim_start(track)  # stack second of the track's internal time 0
        positions: list[Fraction] = []
        cursor = Fraction(0)
        for item in items:
            positions.append(cursor)
            if not isinstance(item, otio.schema.Transition):
                cursor += _duration(item)
        for i, item in enumerate(items):
            if isinstance(item, (otio.schema.Transition, otio.schema.Gap)):
                continue
            if not item.enabled:
                continue
            start = origin + positions[i]
            end = start + _duration(item)
            head = tail = Fraction(0)
            ramps: list[Ramp] = []
            before = items[i - 1] if i > 0 else None
            after = items[i + 1] if i + 1 < len(items) else None
            if isinstance(before, otio.schema.Transition):
                head = seconds(before.in_offset)
                ramps.append(Ramp(start - head, start + seconds(before.out_offset), True))
            if isinstance(after, otio.schema.Transition):
                tail = seconds(after.out_offset)
                ramps.append(Ramp(end - seconds(after.in_offset), end + tail, False))
            a, b = max(start - head, w0), min(end + tail, w1)
            if a >= b:
                continue
            if isinstance(item, otio.schema.Clip):
                self.clip(item, a, b, start, tuple(ramps), gain)
            elif isinstance(item, otio.schema.Stack):
                self.stack(item, start, a, b, gain * clip_gain(item))
            elif isinstance(item, otio.schema.Track):
                self.track(item, start, a, b, gain * track_gain(item))

    def stack(self, stack: otio.schema.Stack, at: Fraction, w0: Fraction, w1: Fraction,
              gain: float) -> None:
        if self._time_effect(stack):
            return
        origin = at - _trim_start(stack)
        for child in stack:
            if (isinstance(child, otio.schema.Track) and child.enabled
                    and child.kind == otio.schema.TrackKind.Audio):
                # Children of a stack start at its internal time 0 (their own trims apart).
                self.track(child, origin, w0, w1, gain * track_gain(child))

    def clip(self, clip: otio.schema.Clip, a: Fraction, b: Fraction, start: Fraction,
             ramps: tuple[Ramp, ...], gain: float) -> None:
        if isinstance(clip.media_reference, otio.schema.GeneratorReference):
            self.layout.ignored.append(f"A{self.index} {clip.name!r}: a generator on an audio "
                                       "track is not mixed")
            return
        if self._time_effect(clip):
            return
        source = _trim_start(clip) + (a - start)
        level = gain * clip_gain(clip)
        kept = tuple(r for r in ramps if r.start < b and r.end > a)
        self.layout.pieces.append(AudioPiece(self.index, clip, a, b, source, level, kept))

    def _time_effect(self, item: otio.core.Item) -> bool:
        for effect in item.effects:
            if isinstance(effect, otio.schema.TimeEffect):
                self.layout.ignored.append(
                    f"A{self.index} {item.name!r}: a speed change or freeze on audio "
                    f"({effect.effect_name or type(effect).__name__}) is not mixed")
                return True
        return False


__all__ = ["AudioLayout", "AudioPiece", "AudioTrackInfo", "Ramp", "build_layout",
           "describe_tracks", "seconds", "select_tracks", "to_sample"]
