"""Build small OTIO edits from a compact spec, and an independent oracle of what they show.

A spec is a list of video tracks (bottom first); each track a list of items:

``("clip", source, source_id, src_in, frames)`` or ``(..., opts)``
    *source* is a movie or still image ``Path``, or a :class:`Seq` (image sequence). Source
    frames are numbered from ``origin`` (the media's available_range start, e.g. 86400 for a
    01:00:00:00 source); file frame ``k`` shows number ``k``. *opts* (a dict):
    ``speed`` (LinearTimeWarp scalar; negative = reverse), ``freeze`` (FreezeFrame),
    ``rate`` (the source's rate; src_in and frames count at that rate), ``origin`` (this
    clip's available_range start), ``no_avail`` (no available_range: the file's timecode
    says where it starts), ``avail_frames`` (available_range length, e.g. 1 for a Resolve
    still), ``still`` (the number an image shows), ``disabled``,
    ``effect`` (an opaque Effect name, to be reported).
``("gap", frames)``
``("dissolve", in_offset, out_offset)`` or ``(..., transition_type)``
    a transition between its neighbours (a gap or the track's end = fade).
``("nest", tracks, src_in, frames)`` or ``(..., opts)``
    a nested Stack of *tracks* (same spec), trimmed to [src_in, src_in + frames);
    opts ``speed`` (a positive integer) or ``freeze``.

The oracle walks the spec with plain loops and fractions (no OTIO, no reelscore code) so the
render tests compare decoded frames against something we did not compute with the code under
test. It composites with the premultiplied "over" operator, per frame, and returns for every
stack frame ``(source_id, number)``, ``None`` (black) or a :class:`Mix` of weighted codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
from opentimelineio import opentime

Item = tuple  # see the module docstring
Code = tuple[int, int]


@dataclass(frozen=True)
class Seq:
    """An image sequence: ``folder/prefix + number (zero padded) + suffix``."""

    folder: Path
    prefix: str
    suffix: str
    start_number: int
    padding: int


class Mix(dict):  # type: ignore[type-arg]
    """A blended frame: {code or None (black): weight}, weights summing to 1."""


def _opts(it: Item, n: int) -> dict[str, Any]:
    return it[n] if len(it) > n and isinstance(it[n], dict) else {}


def record_length(it: Item, rate: Fraction) -> int:
    """Frames an item takes on its track (transitions take none)."""
    kind = it[0]
    if kind == "gap":
        return int(it[1])
    if kind == "dissolve":
        return 0
    frames = int(it[4] if kind == "clip" else it[3])
    src_rate = _opts(it, 5 if kind == "clip" else 4).get("rate")
    if src_rate is None or Fraction(src_rate) == rate:
        return frames
    return round(Fraction(frames) * rate / Fraction(src_rate))


# ------------------------------------------------------------------------------ building


def build_timeline(tracks: list[list[Item]], rate: Fraction, *, start_frame: int = 0,
                   origin: int = 0, source_frames: int = 10_000, name: str = "spec",
                   disabled: set[tuple[int, int]] | None = None) -> otio.schema.Timeline:
    r = float(rate)

    def t(v: float, at: float = r) -> opentime.RationalTime:
        return opentime.RationalTime(v, at)

    def make_track(items: list[Item], ti: int | None, track_name: str) -> otio.schema.Track:
        track = otio.schema.Track(name=track_name)
        for ii, it in enumerate(items):
            kind = it[0]
            if kind == "gap":
                track.append(otio.schema.Gap(source_range=opentime.TimeRange(t(0), t(it[1]))))
                continue
            if kind == "dissolve":
                ttype = it[3] if len(it) > 3 else otio.schema.TransitionTypes.SMPTE_Dissolve
                track.append(otio.schema.Transition(
                    name=f"dissolve {ii}", transition_type=ttype, in_offset=t(it[1]),
                    out_offset=t(it[2])))
                continue
            if kind == "nest":
                _, sub_tracks, src_in, frames = it[:4]
                opts = _opts(it, 4)
                stack = otio.schema.Stack(
                    name=f"nest {ii}",
                    children=[make_track(sub, None, f"N{k + 1}") for k, sub in enumerate(sub_tracks)],
                    source_range=opentime.TimeRange(t(src_in), t(frames)))
                _add_time_effect(stack, opts)
                track.append(stack)
                continue
            _, source, _sid, src_in, frames = it[:5]
            opts = _opts(it, 5)
            clip_rate = float(opts.get("rate", rate))
            clip_origin = int(opts.get("origin", origin))
            avail = (None if opts.get("no_avail") else opentime.TimeRange(
                t(clip_origin, clip_rate), t(opts.get("avail_frames", source_frames), clip_rate)))
            if isinstance(source, Seq):
                ref: otio.core.MediaReference = otio.schema.ImageSequenceReference(
                    target_url_base=source.folder.as_uri() + "/", name_prefix=source.prefix,
                    name_suffix=source.suffix, start_frame=source.start_number, frame_step=1,
                    rate=clip_rate, frame_zero_padding=source.padding, available_range=avail)
                stem = source.prefix.rstrip(".")
            else:
                ref = otio.schema.ExternalReference(target_url=Path(source).as_uri(),
                                                    available_range=avail)
                stem = Path(source).stem
            clip = otio.schema.Clip(
                name=f"{stem}@{src_in}",
                media_reference=ref,
                source_range=opentime.TimeRange(t(clip_origin + src_in, clip_rate),
                                                t(frames, clip_rate)),
            )
            clip.metadata["spec"] = {"sid": _sid, "origin": clip_origin}
            _add_time_effect(clip, opts)
            if opts.get("effect"):
                clip.effects.append(otio.schema.Effect(name=opts["effect"],
                                                       effect_name=opts["effect"]))
            if opts.get("disabled") or (disabled and ti is not None and (ti, ii) in disabled):
                clip.enabled = False
            track.append(clip)
        return track

    otio_tracks = [make_track(items, ti, f"V{ti + 1}") for ti, items in enumerate(tracks)]
    return otio.schema.Timeline(name=name, tracks=otio_tracks, global_start_time=t(start_frame))


def _add_time_effect(item: otio.core.Item, opts: dict[str, Any]) -> None:
    if opts.get("freeze"):
        item.effects.append(otio.schema.FreezeFrame())
    elif "speed" in opts:
        item.effects.append(otio.schema.LinearTimeWarp(time_scalar=float(opts["speed"])))


# -------------------------------------------------------------------------------- oracle

Content = dict[Code, Fraction]  # premultiplied: weights of visible codes
Layer = tuple[Content, Fraction]  # (content, coverage)
_EMPTY: Layer = ({}, Fraction(0))


def _clip_frame(it: Item, o: int, rate: Fraction) -> Code:
    _, _source, sid, src_in, _frames = it[:5]
    opts = _opts(it, 5)
    if "still" in opts:
        return sid, int(opts["still"])
    if opts.get("freeze"):
        return sid, src_in
    r = Fraction(opts["rate"]) / rate if "rate" in opts else Fraction(1)
    speed = Fraction(opts.get("speed", 1)).limit_denominator(1000)
    if speed > 0:
        return sid, src_in + math.floor(o * speed * r)
    # Reverse: the span [src_in, src_in + L·|speed|) played from its last frame.
    length = record_length(it, rate)
    span = length * -speed * r
    assert span.denominator == 1, "keep reversed test spans whole frames"
    return sid, src_in + int(span) - 1 - math.floor(o * -speed * r)


def _item_layer(it: Item, o: int, rate: Fraction, off: bool) -> Layer:
    """What item *it* shows at record offset *o* from its start (o may fall in its handles)."""
    kind = it[0]
    if kind == "gap" or off:
        return _EMPTY
    if kind == "clip":
        if _opts(it, 5).get("disabled"):
            return _EMPTY
        return {_clip_frame(it, o, rate): Fraction(1)}, Fraction(1)
    # nest: the nested stack at its internal frame
    _, sub_tracks, src_in, _frames = it[:4]
    opts = _opts(it, 4)
    if opts.get("freeze"):
        inner = src_in
    else:
        inner = src_in + o * int(opts.get("speed", 1))
    return _stack_layer(sub_tracks, inner, rate, None)


def _track_layer(items: list[Item], f: int, rate: Fraction, ti: int | None,
                 disabled: set[tuple[int, int]] | None) -> Layer:
    starts: list[int] = []
    pos = 0
    for it in items:
        starts.append(pos)
        pos += record_length(it, rate)

    def off(i: int) -> bool:
        return bool(disabled and ti is not None and (ti, i) in disabled)

    def neighbour(i: int, o_abs: int) -> Layer:
        if not 0 <= i < len(items) or items[i][0] == "dissolve":
            return _EMPTY
        return _item_layer(items[i], o_abs - starts[i], rate, off(i))

    for i, it in enumerate(items):
        if it[0] != "dissolve":
            continue
        cut = starts[i]
        t_in, t_out = int(it[1]), int(it[2])
        if cut - t_in <= f < cut + t_out:
            k = f - (cut - t_in)
            w = Fraction(2 * k + 1, 2 * (t_in + t_out))  # SMPTE: incoming (k + 0.5) / N
            a_content, a_cov = neighbour(i - 1, f)
            b_content, b_cov = neighbour(i + 1, f)
            content: Content = {}
            for key, v in a_content.items():
                content[key] = content.get(key, Fraction(0)) + (1 - w) * v
            for key, v in b_content.items():
                content[key] = content.get(key, Fraction(0)) + w * v
            return content, (1 - w) * a_cov + w * b_cov
    for i, it in enumerate(items):
        length = record_length(it, rate)
        if it[0] != "dissolve" and starts[i] <= f < starts[i] + length:
            return _item_layer(it, f - starts[i], rate, off(i))
    return _EMPTY


def _stack_layer(tracks: list[list[Item]], f: int, rate: Fraction,
                 disabled: set[tuple[int, int]] | None, top_level: bool = False) -> Layer:
    content: Content = {}
    coverage = Fraction(0)
    for ti, items in enumerate(tracks):  # bottom to top: "over"
        c, a = _track_layer(items, f, rate, ti if top_level else None, disabled)
        content = {k: v * (1 - a) for k, v in content.items()}
        for k, v in c.items():
            content[k] = content.get(k, Fraction(0)) + v
        coverage = a + coverage * (1 - a)
    return content, coverage


def oracle(tracks: list[list[Item]], start: int, end: int,
           disabled: set[tuple[int, int]] | None = None, *,
           rate: Fraction = Fraction(24)) -> list[Code | Mix | None]:
    """What each stack frame in [start, end) shows: a code, None (black) or a Mix."""
    shown: list[Code | Mix | None] = []
    for f in range(start, end):
        content, coverage = _stack_layer(tracks, f, rate, disabled, top_level=True)
        content = {k: v for k, v in content.items() if v > 0}
        if coverage == 0 or not content:
            shown.append(None)
        elif coverage == 1 and len(content) == 1:
            shown.append(next(iter(content)))
        else:
            mix = Mix({k: float(v) for k, v in content.items()})
            if coverage < 1:
                mix[None] = float(1 - coverage)
            shown.append(mix)
    return shown
