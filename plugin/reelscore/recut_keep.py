"""Recut: which old music is kept, what is generated afresh, what it costs.  (pure, JSON)

From a :class:`~reelscore.recut.ChangeList`, :func:`kept_ranges` lays the new cut out as
alternating stretches, in new stack frames, tiling the new scored range:

* :class:`KeptRange` — new frames [new_start, new_end) whose music is the old music of old stack
  time ``new_start / new_rate + offset`` on (an unchanged, trimmed or reordered scene's matched
  frames; neighbours that were neighbours in the old cut too, at the same offset, form one range).
  Samples at ``sample_rate`` (48 kHz) are exact: frame ``f`` starts at sample
  ``floor(f · sample_rate / rate)``; the old music is copied from ``old_sample_start`` for
  ``new_samples[1] - new_samples[0]`` samples, so kept ranges tile the new audio without gaps.
  ``old_before``/``old_after`` are how many frames of old music exist beyond each edge (at most
  the handle): the material a crossfade or fade on that edge can use.
* :class:`GenerateRange` — new frames to score afresh: new scenes, the frames a trimmed scene
  gained (``extended``), and, with ``join_frames`` > 0, a window around each *broken join* — a cut
  where two kept ranges meet that did not meet in the old music (``join``: half the window from
  each side, never more than half of either range). ``handle_before``/``handle_after`` are the
  frames the new music must run into the kept music on each side (at most ``handle_frames``; 0 at
  the ends of the programme), so the two can be crossfaded on the cut.

``regenerate_trimmed`` treats trimmed scenes as new. :class:`RecutCost` compares the seconds
kept, generated and sent (with handles) against a full rescore. :func:`change_list_text` prints
the change list with old and new record timecode (drop-frame if asked and the rate has it).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from reelscore.recut import ChangeList, SceneChange
from reelscore.timecode import frames_to_tc, rate_label

RECUT_SCHEMA = "reelscore.recut/1"
SAMPLE_RATE = 48_000

GenerateReason = Literal["new", "extended", "join"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeptRange(_Model):
    new_start: int
    new_end: int
    old_start: int  # old stack frames (rounded when the rates differ)
    old_end: int
    offset_seconds: str  # a Fraction: old stack time - new stack time
    new_samples: tuple[int, int]
    old_sample_start: int
    scene_ids: list[str]  # new scene ids
    old_scene_ids: list[str]
    old_before: int = 0  # frames of old music before/after this range in the old programme
    old_after: int = 0

    @property
    def frames(self) -> int:
        return self.new_end - self.new_start


class GenerateRange(_Model):
    new_start: int
    new_end: int
    reasons: list[GenerateReason]
    scene_ids: list[str]
    handle_before: int = 0
    handle_after: int = 0

    @property
    def frames(self) -> int:
        return self.new_end - self.new_start


class RecutCost(_Model):
    rate: str
    total_frames: int  # the new scored range: what a full rescore generates
    kept_frames: int
    generate_frames: int
    handle_frames: int  # extra frames sent for crossfades into kept music
    stretches: int  # separate generated stretches (each at least one request)

    def seconds(self, frames: int) -> Fraction:
        return Fraction(frames) / Fraction(self.rate)


class RecutPlan(_Model):
    schema_version: str = RECUT_SCHEMA
    rate: str
    sample_rate: int = SAMPLE_RATE
    handle_frames: int
    join_frames: int
    regenerate_trimmed: bool = False
    kept: list[KeptRange]
    generate: list[GenerateRange]
    cost: RecutCost
    stretches: list[Literal["kept", "generate"]] = Field(default_factory=list)  # tiling order


def frame_to_sample(frame: int | Fraction, rate: Fraction, sample_rate: int = SAMPLE_RATE) -> int:
    """The first sample of stack frame *frame* (or of stack time ``frame / rate``)."""
    return math.floor(Fraction(frame) * sample_rate / rate)


def _kept(c: SceneChange, lo: int, hi: int, rn: Fraction, ro: Fraction, sr: int) -> KeptRange:
    d = c.offset
    old_lo = (Fraction(lo) / rn + d) * ro
    old_hi = (Fraction(hi) / rn + d) * ro
    return KeptRange(
        new_start=lo, new_end=hi, old_start=round(old_lo), old_end=round(old_hi),
        offset_seconds=str(d), new_samples=(frame_to_sample(lo, rn, sr), frame_to_sample(hi, rn, sr)),
        old_sample_start=frame_to_sample(old_lo, ro, sr),
        scene_ids=[c.new_id or ""], old_scene_ids=list(c.old_ids) or [c.old_id or ""])


def _gen(lo: int, hi: int, reason: GenerateReason, sid: str | None) -> GenerateRange:
    return GenerateRange(new_start=lo, new_end=hi, reasons=[reason], scene_ids=[sid or ""])


T = TypeVar("T")


def _union(a: list[T], b: list[T]) -> list[T]:
    return a + [x for x in b if x not in a]


def kept_ranges(changes: ChangeList, *, handle_frames: int = 12, join_frames: int = 0,
                regenerate_trimmed: bool = False, sample_rate: int = SAMPLE_RATE) -> RecutPlan:
    """Kept and generated stretches of the new cut (see the module docstring)."""
    rn, ro = Fraction(changes.new_rate), Fraction(changes.old_rate)
    pieces: list[KeptRange | GenerateRange] = []

    def add(p: KeptRange | GenerateRange) -> None:
        last = pieces[-1] if pieces else None
        if isinstance(p, GenerateRange) and isinstance(last, GenerateRange):
            pieces[-1] = last.model_copy(update={
                "new_end": p.new_end, "reasons": _union(last.reasons, p.reasons),
                "scene_ids": _union(last.scene_ids, p.scene_ids)})
        elif (isinstance(p, KeptRange) and isinstance(last, KeptRange)
              and last.offset_seconds == p.offset_seconds and last.new_end == p.new_start):
            pieces[-1] = last.model_copy(update={
                "new_end": p.new_end, "old_end": p.old_end, "new_samples": (
                    last.new_samples[0], p.new_samples[1]),
                "scene_ids": last.scene_ids + p.scene_ids,
                "old_scene_ids": _union(last.old_scene_ids, p.old_scene_ids)})
        else:
            pieces.append(p)

    for c in changes.changes:
        if c.kind == "deleted" or c.new_start is None or c.new_end is None:
            continue
        keep = c.kept and not (regenerate_trimmed and (c.head_frames or c.tail_frames))
        if not keep or c.keep_start is None or c.keep_end is None:
            add(_gen(c.new_start, c.new_end, "new", c.new_id))
            continue
        if c.keep_start > c.new_start:
            add(_gen(c.new_start, c.keep_start, "extended", c.new_id))
        add(_kept(c, c.keep_start, c.keep_end, rn, ro, sample_rate))
        if c.keep_end < c.new_end:
            add(_gen(c.keep_end, c.new_end, "extended", c.new_id))

    if join_frames > 0:
        pieces = _open_joins(pieces, join_frames, rn, ro, sample_rate)
    kept = [_with_old_handles(p, changes, handle_frames, rn, ro) for p in pieces
            if isinstance(p, KeptRange)]
    generate = []
    for i, p in enumerate(pieces):
        if isinstance(p, GenerateRange):
            before = pieces[i - 1] if i > 0 else None
            after = pieces[i + 1] if i + 1 < len(pieces) else None
            generate.append(p.model_copy(update={
                "handle_before": min(handle_frames, before.frames) if before else 0,
                "handle_after": min(handle_frames, after.frames) if after else 0}))
    lo, hi = changes.new_range
    cost = RecutCost(
        rate=changes.new_rate, total_frames=hi - lo,
        kept_frames=sum(k.frames for k in kept),
        generate_frames=sum(g.frames for g in generate),
        handle_frames=sum(g.handle_before + g.handle_after for g in generate),
        stretches=len(generate))
    return RecutPlan(rate=changes.new_rate, sample_rate=sample_rate, handle_frames=handle_frames,
                     join_frames=join_frames, regenerate_trimmed=regenerate_trimmed, kept=kept,
                     generate=generate, cost=cost,
                     stretches=["kept" if isinstance(p, KeptRange) else "generate"
                                for p in pieces])


def _open_joins(pieces: list[KeptRange | GenerateRange], join: int, rn: Fraction, ro: Fraction,
                sr: int) -> list[KeptRange | GenerateRange]:
    """Carve a generated window around every cut where two kept ranges meet (see docstring)."""
    out: list[KeptRange | GenerateRange] = []
    for p in pieces:
        last = out[-1] if out else None
        if not (isinstance(p, KeptRange) and isinstance(last, KeptRange)):
            out.append(p)
            continue
        take_a = min(join // 2, last.frames // 2)
        take_b = min(join - join // 2, p.frames // 2)
        cut = p.new_start
        if take_a:
            out[-1] = _trim_kept(last, last.new_start, cut - take_a, rn, ro, sr)
        out.append(GenerateRange(new_start=cut - take_a, new_end=cut + take_b, reasons=["join"],
                                 scene_ids=_union(last.scene_ids[-1:], p.scene_ids[:1])))
        out.append(_trim_kept(p, cut + take_b, p.new_end, rn, ro, sr) if take_b else p)
    return [p for p in out if p.frames > 0]


def _trim_kept(k: KeptRange, lo: int, hi: int, rn: Fraction, ro: Fraction, sr: int) -> KeptRange:
    d = Fraction(k.offset_seconds)
    old_lo, old_hi = (Fraction(lo) / rn + d) * ro, (Fraction(hi) / rn + d) * ro
    return k.model_copy(update={
        "new_start": lo, "new_end": hi, "old_start": round(old_lo), "old_end": round(old_hi),
        "new_samples": (frame_to_sample(lo, rn, sr), frame_to_sample(hi, rn, sr)),
        "old_sample_start": frame_to_sample(old_lo, ro, sr)})


def _with_old_handles(k: KeptRange, changes: ChangeList, handle: int, rn: Fraction,
                      ro: Fraction) -> KeptRange:
    o_lo, o_hi = changes.old_range
    ratio = rn / ro
    before = math.floor((k.old_start - o_lo) * ratio)
    after = math.floor((o_hi - k.old_end) * ratio)
    return k.model_copy(update={"old_before": max(0, min(handle, before)),
                                "old_after": max(0, min(handle, after))})


# ----------------------------------------------------------------------------------- text


def _tc(frame: int | None, start_frame: int, rate: Fraction, drop_frame: bool) -> str:
    if frame is None:
        return ""
    return frames_to_tc(start_frame + frame, rate, drop_frame=drop_frame)


def _note(c: SceneChange, rate: Fraction) -> str:
    parts: list[str] = []
    if c.moved and c.kind != "deleted":
        shift = -c.offset  # new time - old time
        parts.append(f"moved {'+' if shift > 0 else '-'}{round(abs(shift) * rate)}f")
    for side, n in (("head", c.head_frames), ("tail", c.tail_frames)):
        if n > 0:
            parts.append(f"{side} trimmed {n}f")
        elif n < 0:
            parts.append(f"{side} extended {-n}f")
    return ", ".join(parts)


def change_list_text(changes: ChangeList, *, drop_frame: bool = False) -> str:
    """The change list as a table: one event per line, old and new record timecode."""
    rn, ro = Fraction(changes.new_rate), Fraction(changes.old_rate)
    rows = [("#", "EVENT", "NEW", "NEW IN", "NEW OUT", "OLD", "OLD IN", "OLD OUT", "NOTE")]
    for i, c in enumerate(changes.changes, 1):
        rows.append((
            f"{i:03d}", c.kind.upper(), c.new_id or "",
            _tc(c.new_start, changes.new_start_frame, rn, drop_frame),
            _tc(c.new_end, changes.new_start_frame, rn, drop_frame),
            c.old_id or "",
            _tc(c.old_start, changes.old_start_frame, ro, drop_frame),
            _tc(c.old_end, changes.old_start_frame, ro, drop_frame),
            _note(c, rn)))
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    head = (f"change list: previous version {rate_label(ro)} fps -> new cut {rate_label(rn)} fps "
            "(OUT exclusive)")
    return "\n".join([head, *lines])


def cost_text(plan: RecutPlan) -> str:
    """One paragraph: what is kept and generated against a full rescore, in seconds."""
    c = plan.cost

    def s(frames: int) -> str:
        return f"{float(c.seconds(frames)):.2f} s"

    return (f"kept {s(c.kept_frames)} of old music; generate {s(c.generate_frames)} in "
            f"{c.stretches} stretch(es), {s(c.generate_frames + c.handle_frames)} with handles; "
            f"a full rescore generates {s(c.total_frames)}")
