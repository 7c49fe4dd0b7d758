"""Recut: match a new version of the cut to the previous one by picture identity.  (pure, JSON)

A scene is identified by what it *shows* — which source media and which source frames, at each
record frame — never by where it sits on the timeline (an EDL change list compares record
positions, so a moved scene looks deleted and re-inserted there).

**Fingerprint.** :func:`fingerprint` turns a :class:`~reelscore.picture.Picture` and its scenes
into a :class:`CutFingerprint`: per scene, the runs of record frames that show one source
continuously (:class:`SourceRun`: source identity, source rate, record start and length, the media
instant at the first frame and the media frames per record frame, direction). Inside a dissolve
the part that contributes most to the frame counts. Black (gaps) is a run with ``source == ""``.
A source's identity is its media reference kind and file name (``ExternalReference:A001.mov``;
an image sequence: folder name, prefix and suffix), so a relinked copy of the same file still
matches; without a file (an EDL), the reel (``reel:A001``), else the clip's name. The
fingerprint is all a previous job must keep (in its manifest) to be matched later.

**Matching** (:func:`match_cuts`). Offsets between versions are exact ``Fraction`` seconds of
stack time (0 = ``global_start_time``), so versions at different rates can be compared. For
each new scene, in order, every old run of the same source, source rate, speed and direction
that shows an overlapping media span votes for the old scene it lies in at the offset that lines
the two media spans up, weighted by the seconds they share. The best candidate wins (ties: an
old scene not yet used, then the one nearest the old scene matched just before). It is then
verified frame by frame: the longest run of the scene's frames that show, at that offset, what
the old cut showed there (the same rate: the same source frame; different rates: within one
source frame; black where black) is the scene's *kept* stretch. It may run across old scene
boundaries (scenes merged or split differently: ``old_ids`` lists every old scene it draws on);
the scene's other frames have no old music. A scene with such a run is

* ``unchanged`` — all of it, showing exactly the old scene(s) (``moved`` when its stack time
  changed);
* ``trimmed`` — ``head_frames``/``tail_frames`` > 0 were cut off the old scenes' head/tail,
  < 0 are frames before/after the run that the old cut did not show there (extended, or a new
  shot merged into the scene);
* ``reordered`` — an old scene matched out of old order (the old scenes not on the longest
  increasing run of matched old scenes, in new order); it keeps its trim figures;

otherwise (no old frame shows any of its frames at one offset) it is ``new``. Old scenes no new scene matched
are ``deleted``. A scene used twice keeps its music in both places (the second is reordered,
unless it follows in old order).

**Refusals** (:class:`~reelscore.errors.InputError`). Versions at different frame rates are
compared only when the sources they share play at the same source rate in both (otherwise the
picture cannot be the same); the message names the rates and the sources. When no new scene
matches any old one, the previous job belongs to another programme: score afresh.

Kept music, the stretches to generate, the cost and the printed change list are in
:mod:`reelscore.recut_keep`.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import unquote, urlparse

import opentimelineio as otio
from pydantic import BaseModel, ConfigDict, Field

from reelscore.errors import InputError
from reelscore.picture import Num, Picture, Segment, media_frame, media_frames
from reelscore.plan import PlannedScene
from reelscore.scenes import SceneCut
from reelscore.timecode import rate_label, rate_str

FINGERPRINT_SCHEMA = "reelscore.cutprint/1"
CHANGES_SCHEMA = "reelscore.changes/1"
BLACK = ""

ChangeKind = Literal["unchanged", "trimmed", "new", "reordered", "deleted"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceRun(_Model):
    """Record frames [start, start + count) showing one source continuously.

    Record frame ``t`` shows media frame ``media_frame(media_start + (t - start)·step,
    backward)`` of *source* (frames counted at ``src_rate``, as the clip's source range does).
    """

    source: str  # identity (see source_identity); "" = black
    src_rate: str = "0"
    start: int
    count: int = Field(gt=0)
    media_start: str = "0"  # a Fraction: media instant at `start`
    step: str = "1"  # a Fraction: media frames per record frame (0 = freeze)
    backward: bool = False

    @property
    def end(self) -> int:
        return self.start + self.count

    def media_at(self, t: int) -> Fraction:
        return Fraction(self.media_start) + (t - self.start) * Fraction(self.step)

    def frame_at(self, t: int) -> int:
        return media_frame(self.media_at(t), self.backward)


class SceneFingerprint(_Model):
    id: str
    start: int  # stack frames [start, end)
    end: int
    name: str = ""
    runs: list[SourceRun]


class CutFingerprint(_Model):
    """What each scene of one version shows; stored in a job's manifest for later recuts."""

    schema_version: str = FINGERPRINT_SCHEMA
    rate: str
    start_frame: int  # record frame of stack frame 0
    scenes: list[SceneFingerprint]

    @property
    def fraction_rate(self) -> Fraction:
        return Fraction(self.rate)

    @property
    def range(self) -> tuple[int, int]:
        return (self.scenes[0].start, self.scenes[-1].end) if self.scenes else (0, 0)


class SceneChange(_Model):
    """One event of the change list. Frames are stack frames of their own version."""

    kind: ChangeKind
    new_id: str | None = None
    new_start: int | None = None
    new_end: int | None = None
    old_id: str | None = None  # the old scene this one matched
    old_ids: list[str] = Field(default_factory=list)  # every old scene the kept frames come from
    old_start: int | None = None
    old_end: int | None = None
    # The matched stretch: new frames [keep_start, keep_end) show old time + offset_seconds.
    keep_start: int | None = None
    keep_end: int | None = None
    offset_seconds: str | None = None  # a Fraction: old stack time - new stack time
    moved: bool = False
    head_frames: int = 0  # > 0 trimmed off the old head, < 0 added before it (new-rate frames)
    tail_frames: int = 0

    @property
    def offset(self) -> Fraction:
        return Fraction(self.offset_seconds or "0")

    @property
    def kept(self) -> bool:
        return self.kind in ("unchanged", "trimmed", "reordered")


class ChangeList(_Model):
    schema_version: str = CHANGES_SCHEMA
    old_rate: str
    new_rate: str
    old_start_frame: int
    new_start_frame: int
    old_range: tuple[int, int]
    new_range: tuple[int, int]
    changes: list[SceneChange]  # new scenes in new order, then deleted ones in old order

    def of_kind(self, kind: ChangeKind) -> list[SceneChange]:
        return [c for c in self.changes if c.kind == kind]


# ---------------------------------------------------------------------------- fingerprints


def source_identity(clip: otio.schema.Clip) -> str:
    """A source's identity across versions: the file name of its media (not the folder), else
    an EDL's reel (its event numbers change between versions), else the clip's name."""
    ref = clip.media_reference
    kind = type(ref).__name__
    if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
        return f"{kind}:{_basename(ref.target_url)}"
    if isinstance(ref, otio.schema.ImageSequenceReference) and ref.target_url_base:
        folder = _basename(ref.target_url_base.rstrip("/"))
        return f"{kind}:{folder}/{ref.name_prefix}#{ref.name_suffix}"
    cmx = clip.metadata.get("cmx_3600")
    if isinstance(cmx, Mapping) and cmx.get("reel"):
        return f"reel:{cmx['reel']}"
    return f"{kind}:{clip.name}"


def _basename(url: str) -> str:
    path = urlparse(url).path if "://" in url else url
    return PurePosixPath(unquote(path).replace("\\", "/")).name


def _run(source: str, src_rate: Fraction, start: int, count: int, media_start: Num, step: Num,
         backward: bool) -> SourceRun:
    if source == BLACK:
        return SourceRun(source=BLACK, start=start, count=count)
    return SourceRun(source=source, src_rate=rate_str(src_rate), start=start, count=count,
                     media_start=str(Fraction(media_start)), step=str(Fraction(step)),
                     backward=backward)


def _segment_runs(seg: Segment) -> list[SourceRun]:
    if not seg.parts:
        if seg.clip is None:
            return [_run(BLACK, Fraction(0), seg.start, seg.count, 0, 0, False)]
        return [_run(source_identity(seg.clip), seg.src_rate, seg.start, seg.count,
                     seg.media_start, seg.step, seg.backward)]
    out: list[SourceRun] = []
    i = 0
    while i < seg.count:  # frames whose dominant part is the same form one run
        j = seg.dominant_index(i)
        k = i + 1
        while k < seg.count and seg.dominant_index(k) == j:
            k += 1
        part = seg.parts[j]
        if part.clip is None:
            out.append(_run(BLACK, Fraction(0), seg.start + i, k - i, 0, 0, False))
        else:
            out.append(_run(source_identity(part.clip), part.src_rate, seg.start + i, k - i,
                            part.media_start + i * part.step, part.step, part.backward))
        i = k
    return out


def _merge_runs(runs: list[SourceRun]) -> list[SourceRun]:
    """Join a run to the previous one when it continues it frame for frame (a razor cut)."""
    out: list[SourceRun] = []
    for r in runs:
        if out:
            p = out[-1]
            same = (p.source, p.src_rate, p.step, p.backward) == (r.source, r.src_rate, r.step,
                                                                  r.backward)
            if same and p.end == r.start and (r.source == BLACK or p.media_at(r.start)
                                              == Fraction(r.media_start)):
                out[-1] = p.model_copy(update={"count": p.count + r.count})
                continue
        out.append(r)
    return out


def fingerprint(picture: Picture, scenes: Sequence[SceneCut | PlannedScene], *,
                start_frame: int) -> CutFingerprint:
    """The fingerprint of a cut: its scenes (a plan's, or ``find_scenes``') and what they show.

    Scenes without an id (``SceneCut``) are numbered as the plan numbers them (``s001``...).
    """
    out: list[SceneFingerprint] = []
    for i, s in enumerate(scenes):
        if isinstance(s, PlannedScene):
            sid, start, end, name = s.id, s.range.start, s.range.end, s.name
        else:
            sid, start, end, name = f"s{i + 1:03d}", s.start, s.end, s.name
        runs = [r for seg in picture.segments(start, end) for r in _segment_runs(seg)]
        out.append(SceneFingerprint(id=sid, start=start, end=end, name=name,
                                    runs=_merge_runs(runs)))
    return CutFingerprint(rate=rate_str(picture.rate), start_frame=start_frame, scenes=out)


# ------------------------------------------------------------------------------- matching

Key = tuple[str, str, int] | None  # (source, src_rate, media frame); None = black


@dataclass(frozen=True)
class _OldRun:
    scene: int
    run: SourceRun
    lo: Fraction  # media span [lo, hi) in source frames, whichever the direction
    hi: Fraction
    speed: Fraction


def _speed(run: SourceRun, rate: Fraction) -> Fraction:
    """Media seconds per record second."""
    return Fraction(run.step) * rate / Fraction(run.src_rate)


def _media_span(run: SourceRun) -> tuple[Fraction, Fraction]:
    a, b = run.media_at(run.start), run.media_at(run.end)
    lo, hi = min(a, b), max(a, b)
    return lo, (hi if hi > lo else lo + 1)


class _Cut:
    """One version, indexed for matching."""

    def __init__(self, fp: CutFingerprint) -> None:
        self.fp = fp
        self.rate = fp.fraction_rate
        self.scene_starts = [s.start for s in fp.scenes]
        self._keys: dict[int, list[Key]] = {}
        self.by_source: dict[tuple[str, str, bool], list[_OldRun]] = {}
        for si, s in enumerate(fp.scenes):
            for r in s.runs:
                if r.source != BLACK:
                    lo, hi = _media_span(r)
                    self.by_source.setdefault((r.source, r.src_rate, r.backward), []).append(
                        _OldRun(si, r, lo, hi, _speed(r, self.rate)))
        for runs in self.by_source.values():
            runs.sort(key=lambda o: o.lo)
        self.los = {k: [o.lo for o in v] for k, v in self.by_source.items()}
        self.longest = {k: max(o.hi - o.lo for o in v) for k, v in self.by_source.items()}

    def scene_of(self, frame: int) -> int:
        return bisect.bisect_right(self.scene_starts, frame) - 1

    def key_at(self, frame: int) -> Key:
        si = self.scene_of(frame)
        return self.keys(si)[frame - self.fp.scenes[si].start]

    def keys(self, si: int) -> list[Key]:
        """Per record frame of scene *si*, what it shows."""
        if si not in self._keys:
            keys: list[Key] = []
            for r in self.fp.scenes[si].runs:
                if r.source == BLACK:
                    keys.extend([None] * r.count)
                else:
                    frames = media_frames(Fraction(r.media_start), Fraction(r.step), r.count,
                                          r.backward)
                    keys.extend((r.source, r.src_rate, f) for f in frames)
            self._keys[si] = keys
        return self._keys[si]


def _candidates(new: _Cut, old: _Cut, ns: SceneFingerprint) -> dict[tuple[int, Fraction], Fraction]:
    """Votes (shared seconds) per (old scene, offset in seconds) for new scene *ns*."""
    votes: dict[tuple[int, Fraction], Fraction] = {}
    same_rate = new.rate == old.rate
    for r in ns.runs:
        if r.source == BLACK:
            continue
        key = (r.source, r.src_rate, r.backward)
        pool = old.by_source.get(key)
        if not pool:
            continue
        lo, hi = _media_span(r)
        v = _speed(r, new.rate)
        first = bisect.bisect_left(old.los[key], lo - old.longest[key])
        for o in pool[first:]:
            if o.lo >= hi:
                break
            if o.hi <= lo or o.speed != v:
                continue
            for d in _offsets(r, new.rate, o.run, old.rate, v):
                if same_rate and (d * new.rate).denominator != 1:
                    continue
                a = max(Fraction(r.start) / new.rate, Fraction(o.run.start) / old.rate - d)
                b = min(Fraction(r.end) / new.rate, Fraction(o.run.end) / old.rate - d)
                if b > a:
                    votes[(o.scene, d)] = votes.get((o.scene, d), Fraction(0)) + (b - a)
    return votes


def _offsets(r: SourceRun, rn: Fraction, o: SourceRun, ro: Fraction, v: Fraction) -> list[Fraction]:
    """Offsets (old time - new time) at which old run *o* shows what new run *r* shows."""
    tn, to = Fraction(r.start) / rn, Fraction(o.start) / ro
    if v == 0:  # a freeze: any offset shows the same frame; line up starts, or ends
        if r.frame_at(r.start) != o.frame_at(o.start):
            return []
        return sorted({to - tn, Fraction(o.end) / ro - Fraction(r.end) / rn})
    src = Fraction(r.src_rate)
    # media seconds: M(T) = m0/src + (T - t0)·v on both sides; equal M -> T_old - T_new.
    return [(Fraction(r.media_start) - Fraction(o.media_start)) / (src * v) + to - tn]


def _same(a: Key, b: Key, exact: bool) -> bool:
    if a is None or b is None:
        return a is b
    return a == b if exact else (a[:2] == b[:2] and abs(a[2] - b[2]) <= 1)


def _verify(new: _Cut, old: _Cut, ni: int, d: Fraction) -> tuple[int, int, int, int] | None:
    """The longest run of new frames [lo, hi) of scene *ni* that show, at offset *d*, what the
    old cut showed (across old scene boundaries), with the old frames of its ends; None if none.
    """
    ns = new.fp.scenes[ni]
    nkeys = new.keys(ni)
    o_lo, o_hi = old.fp.range
    exact = new.rate == old.rate
    best: tuple[int, int, int, int] | None = None
    run: tuple[int, int] | None = None  # (first new frame, its old frame)
    shift = d * old.rate  # whole frames at one rate (match_cuts only offers those)

    def old_frame(t: int) -> int:
        if exact:
            return t + int(shift)
        return int((Fraction(t) / new.rate + d) * old.rate // 1)

    for t in range(ns.start, ns.end + 1):
        u = -1
        if t < ns.end:
            u = old_frame(t)
            if not (o_lo <= u < o_hi and _same(nkeys[t - ns.start], old.key_at(u), exact)):
                u = -1
        if u >= 0 and run is None:
            run = (t, u)
        elif u < 0 and run is not None:
            if best is None or t - run[0] > best[1] - best[0]:
                last = old_frame(t - 1)
                best = (run[0], t, run[1], last)
            run = None
    return best


def _longest_increasing(seq: list[int]) -> set[int]:
    """Positions of a longest strictly increasing subsequence of *seq*."""
    tails: list[int] = []
    tail_pos: list[int] = []
    prev = [-1] * len(seq)
    for i, x in enumerate(seq):
        k = bisect.bisect_left(tails, x)
        if k == len(tails):
            tails.append(x)
            tail_pos.append(i)
        else:
            tails[k] = x
            tail_pos[k] = i
        prev[i] = tail_pos[k - 1] if k else -1
    out: set[int] = set()
    i = tail_pos[-1] if tail_pos else -1
    while i >= 0:
        out.add(i)
        i = prev[i]
    return out


def check_rates(old: CutFingerprint, new: CutFingerprint) -> None:
    """Refuse versions at different rates unless the sources they share play at one rate."""
    if old.fraction_rate == new.fraction_rate:
        return

    def rates(fp: CutFingerprint) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for s in fp.scenes:
            for r in s.runs:
                if r.source != BLACK:
                    out.setdefault(r.source, set()).add(r.src_rate)
        return out

    ro, rn = rates(old), rates(new)
    shared = sorted(set(ro) & set(rn))
    differ = [s for s in shared if ro[s] != rn[s]]
    label = (f"the previous version runs at {rate_label(old.fraction_rate)} fps and the new cut "
             f"at {rate_label(new.fraction_rate)} fps")
    if not shared:
        raise InputError(f"{label}, and they share no source media",
                         hint="score the new cut afresh (without --previous)")
    if differ:
        shown = ", ".join(f"{s} ({'/'.join(sorted(ro[s]))} then {'/'.join(sorted(rn[s]))} fps)"
                          for s in differ[:5])
        raise InputError(f"{label}, and their sources play at different rates: {shown}",
                         hint="conform both versions to the same rate, or score the new cut "
                              "afresh (without --previous)")


def match_cuts(old: CutFingerprint, new: CutFingerprint) -> ChangeList:
    """The change list from *old* to *new* (see the module docstring)."""
    check_rates(old, new)
    oc, nc = _Cut(old), _Cut(new)
    used: set[int] = set()
    found: list[tuple[int, int, Fraction, tuple[int, int, int, int]] | None] = []
    prev_old, prev_d = -1, Fraction(0)
    for ni, ns in enumerate(new.scenes):
        votes = _candidates(nc, oc, ns)
        ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0][0] in used,
                                                       abs(kv[0][0] - prev_old - 1),
                                                       abs(kv[0][1] - prev_d)))
        hit = None
        for (oi, d), _ in ranked[:8]:
            span = _verify(nc, oc, ni, d)
            if span is not None:
                hit = (ni, oi, d, span)
                used.update(range(oc.scene_of(span[2]), oc.scene_of(span[3]) + 1))
                prev_old, prev_d = oi, d
                break
        found.append(hit)
    matched = [h for h in found if h is not None]
    if not matched and old.scenes and new.scenes:
        raise InputError(
            f"none of the {len(new.scenes)} scene(s) of the new cut shows the pictures of any of "
            f"the {len(old.scenes)} scene(s) of the previous version: it is not an edit of the "
            "same programme",
            hint="score the new cut afresh (without --previous), or point --previous at the job "
                 "of an earlier version of this edit")
    in_order = _longest_increasing([h[1] for h in matched])
    changes: list[SceneChange] = []
    k = 0
    for ns, h in zip(new.scenes, found):
        if h is None:
            changes.append(SceneChange(kind="new", new_id=ns.id, new_start=ns.start,
                                       new_end=ns.end))
            continue
        _, oi, d, (lo, hi, first, last) = h
        covered = old.scenes[oc.scene_of(first): oc.scene_of(last) + 1]
        o_start, o_end = covered[0].start, covered[-1].end
        ratio = nc.rate / oc.rate
        head = -(lo - ns.start) if lo > ns.start else round((first - o_start) * ratio)
        tail = -(ns.end - hi) if hi < ns.end else round((o_end - last - 1) * ratio)
        kind: ChangeKind = "unchanged" if head == tail == 0 else "trimmed"
        if k not in in_order:
            kind = "reordered"
        k += 1
        changes.append(SceneChange(
            kind=kind, new_id=ns.id, new_start=ns.start, new_end=ns.end,
            old_id=old.scenes[oi].id, old_ids=[c.id for c in covered], old_start=o_start,
            old_end=o_end, keep_start=lo, keep_end=hi,
            offset_seconds=str(d), moved=d != 0, head_frames=head, tail_frames=tail))
    for oi, os_ in enumerate(old.scenes):
        if oi not in used:
            changes.append(SceneChange(kind="deleted", old_id=os_.id, old_start=os_.start,
                                       old_end=os_.end))
    return ChangeList(old_rate=old.rate, new_rate=new.rate, old_start_frame=old.start_frame,
                      new_start_frame=new.start_frame, old_range=old.range, new_range=new.range,
                      changes=changes)
