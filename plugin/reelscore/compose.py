"""Composition plans built from the edit: one plan per request, one section per scene.  (pure)

Input: a ``ScorePlan`` (scenes tiling the scored range, grouped into requests of at most 600 s),
``ComposeSettings`` (model, description, tags, instrumental), optionally a per-scene brief
(``reelscore.brief``) and the picture's inner cuts. Output: a ``CompositionFile`` holding, per
request, the plan in its model's shape (``MusicPrompt`` for ``music_v1``, ``CompositionPlan`` for
``music_v2``/``music_v2_5``; see ``reelscore.musicplan``) and where it sits on the timeline, so a
reviewed file can be checked against the edit later (``reelscore.composition_check``).

Sections
* One per scene of the request. A request's music covers its range plus its crossfade handle (as
  the video route's audio does); the handle belongs to the last section.
* Scenes shorter than 3 s merge into a neighbour, shortest first, into the shorter neighbour that
  keeps the result within 120 s (the shorter neighbour if neither does).
* Sections longer than 120 s split into the fewest parts that fit, each split at the inner cut
  (``cuts``, or a scene boundary absorbed by merging) nearest an even split that keeps every part
  within 3–120 s, else at the even split itself, on a whole frame. Parts are named "Name (1/2)".
* More sections than the cap (30): the neighbouring pair with the shortest sum that fits merges,
  repeatedly (reported in ``notes``).

Durations: a boundary's exact time from the request's start (frames × 1000 / rate, a Fraction) is
rounded half up to a whole millisecond; a section lasts the difference of its rounded boundaries.
So durations add up exactly to the request's rounded length, every boundary lands within half a
millisecond of its cut, and (rounding being monotone) a section of 3–120 s stays 3000–120000 ms.

Text
* Section name: the brief's name, else the scene's (marker name, or clip name with ``--scenes
  clips``), names of merged scenes joined with " / "; "Scene N" where nothing names it. Names are
  cut to 100 characters.
* Local styles: the brief's styles, then the scene's notes split at commas, semicolons and line
  breaks; the brief's negative styles are the negative ones.
* Global styles: ``description`` split the same way, then ``tags``, then "instrumental" when
  instrumental. v1 puts them in ``positive_global_styles``; v2 has no global field, so every chunk
  carries them before its local styles (the tone holds across chunks).
* Instrumental by default: no lyric lines (a v2 chunk's text is just ``[name]``).
  ``force_instrumental`` is prompt-only, so it is never sent with a plan.

Limits (``check_limits``): plan type matches the model; every section 3000–120000 ms; a plan at
most 600000 ms and adding up to its request; section cap; name, line and style lengths. Every
problem is named with its request, section and record timecode, all in one ``InputError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelscore.errors import InputError
from reelscore.musicplan import (
    CompositionPlan,
    GenerationChunk,
    ModelId,
    MusicPrompt,
    Plan,
    PlanField,
    PlanLimits,
    SongSection,
    chunk_text,
    plan_kind,
    sections_of,
)
from reelscore.plan import FrameRange, ScorePlan, frame_range
from reelscore.timecode import frames_to_tc

if TYPE_CHECKING:
    from reelscore.brief import SceneBrief

COMPOSITION_SCHEMA: Literal["reelscore.composition/1"] = "reelscore.composition/1"
_SPLIT = re.compile(r"[,;\n]+")


class ComposeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: ModelId = "music_v2"
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    negative_styles: list[str] = Field(default_factory=list)
    instrumental: bool = True
    limits: PlanLimits = Field(default_factory=PlanLimits)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ComposedRequest(_Strict):
    id: str
    range: FrameRange  # the music on the timeline: the request's range plus its handle
    handle_frames: int
    model_id: ModelId
    composition_plan: PlanField


class CompositionFile(_Strict):
    schema_version: Literal["reelscore.composition/1"] = COMPOSITION_SCHEMA
    timeline_name: str
    rate: str
    start_frame: int  # record frame of stack frame 0
    range: FrameRange  # the scored range
    scene_policy: str
    scene_starts: list[int]  # stack frames of the edit's scenes when the plan was made
    drop_frame: bool = False  # its timecode labels are drop-frame (HH:MM:SS;FF), as the edit's
    requests: list[ComposedRequest]
    notes: list[str] = Field(default_factory=list)

    @property
    def fraction_rate(self) -> Fraction:
        return Fraction(self.rate)


def split_styles(*texts: str) -> list[str]:
    """Phrases from free text (commas, semicolons, line breaks), stripped, first spelling kept."""
    return _dedupe([p.strip() for t in texts for p in _SPLIT.split(t)])


def _dedupe(styles: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for s in styles:
        key = s.strip().casefold()
        if key and key not in seen:
            seen.add(key)
            out.append(s.strip())
    return out


def ms_at(frames: int | Fraction, rate: Fraction) -> int:
    """Whole ms nearest to *frames* (half up, so monotone): within half a ms of the exact time."""
    return math.floor(Fraction(frames) * 1000 / rate + Fraction(1, 2))


def frames_at(ms: int, rate: Fraction) -> int:
    return math.floor(Fraction(ms) * rate / 1000 + Fraction(1, 2))


@dataclass
class _Part:
    start: int
    end: int
    names: list[str]
    fallback: str
    styles: list[str]
    negative: list[str]
    inner: list[int] = field(default_factory=list)  # scene boundaries absorbed by merging

    @property
    def duration(self) -> int:
        return self.end - self.start

    def name(self, max_chars: int) -> str:
        return (" / ".join(_dedupe(self.names)) or self.fallback)[:max_chars]


def _join(a: _Part, b: _Part) -> _Part:
    return _Part(a.start, b.end, a.names + b.names, a.fallback, _dedupe(a.styles + b.styles),
                 _dedupe(a.negative + b.negative), a.inner + [b.start] + b.inner)


def _merge_short(parts: list[_Part], min_f: int, max_f: int) -> list[_Part]:
    parts = list(parts)
    while len(parts) > 1:
        short = [i for i, p in enumerate(parts) if p.duration < min_f]
        if not short:
            break
        i = min(short, key=lambda k: parts[k].duration)
        nbrs = [j for j in (i - 1, i + 1) if 0 <= j < len(parts)]
        fits = [j for j in nbrs if parts[i].duration + parts[j].duration <= max_f]
        j = min(fits or nbrs, key=lambda k: parts[k].duration)
        a, b = min(i, j), max(i, j)
        parts[a:b + 1] = [_join(parts[a], parts[b])]
    return parts


def _split_long(parts: list[_Part], min_f: int, max_f: int, cuts: Sequence[int]) -> list[_Part]:
    out: list[_Part] = []
    for p in parts:
        if p.duration <= max_f:
            out.append(p)
            continue
        k = -(-p.duration // max_f)
        inner = sorted({c for c in (*p.inner, *cuts) if p.start < c < p.end})
        points: list[int] = []
        prev = p.start
        for i in range(1, k):
            left = k - i + 1  # parts still to make, this one included
            target = math.floor(Fraction(p.end - prev, left) + Fraction(1, 2)) + prev
            ok = [c for c in inner if min_f <= c - prev <= max_f
                  and (left - 1) * min_f <= p.end - c <= (left - 1) * max_f]
            prev = min(ok, key=lambda c: (abs(c - target), c)) if ok else target
            points.append(prev)
        edges = [p.start, *points, p.end]
        base = p.name(10_000)
        for n, (s, e) in enumerate(zip(edges, edges[1:]), 1):
            out.append(_Part(s, e, [f"{base} ({n}/{k})"], p.fallback, list(p.styles),
                             list(p.negative), [c for c in p.inner if s < c < e]))
    return out


def _merge_to_cap(parts: list[_Part], cap: int, max_f: int) -> list[_Part]:
    parts = list(parts)
    while len(parts) > cap:
        pairs = [i for i in range(len(parts) - 1)
                 if parts[i].duration + parts[i + 1].duration <= max_f]
        if not pairs:
            break
        i = min(pairs, key=lambda k: parts[k].duration + parts[k + 1].duration)
        parts[i:i + 2] = [_join(parts[i], parts[i + 1])]
    return parts


def compose(
    score_plan: ScorePlan,
    settings: ComposeSettings,
    *,
    brief: Mapping[str, SceneBrief] | None = None,
    cuts: Sequence[int] = (),
) -> CompositionFile:
    """Build the composition plan(s) for *score_plan*; *brief* is keyed by scene id."""
    rate = score_plan.fraction_rate
    lim = settings.limits
    min_f = math.ceil(Fraction(lim.min_section_ms) * rate / 1000)
    max_f = math.floor(Fraction(lim.max_section_ms) * rate / 1000)
    brief = brief or {}
    scenes = {s.id: s for s in score_plan.scenes}
    order = {s.id: i + 1 for i, s in enumerate(score_plan.scenes)}
    glob = _dedupe([*split_styles(settings.description), *settings.tags,
                    *(["instrumental"] if settings.instrumental else [])])
    neg_glob = _dedupe(settings.negative_styles)
    notes: list[str] = []
    composed: list[ComposedRequest] = []
    for req in score_plan.requests:
        parts: list[_Part] = []
        for sid in (sid for v in req.videos for sid in v.scene_ids):
            sc, b = scenes[sid], brief.get(sid)
            parts.append(_Part(
                sc.range.start, sc.range.end, [b.name] if b and b.name else [sc.name] if sc.name else [],
                f"Scene {order[sid]}", _dedupe([*(b.styles if b else []), *split_styles(*sc.notes)]),
                _dedupe(b.negative_styles if b else [])))
        end = req.range.end + req.handle_frames
        parts[-1].end = end
        count = len(parts)
        parts = _merge_short(parts, min_f, max_f)
        parts = _split_long(parts, min_f, max_f, cuts)
        before_cap = len(parts)
        parts = _merge_to_cap(parts, lim.max_sections, max_f)
        if len(parts) < before_cap:
            notes.append(f"request {req.id}: {count} scenes merged into {len(parts)} sections "
                         f"(at most {lim.max_sections} per plan)")
        ms = [ms_at(p.start - req.range.start, rate) for p in parts] + [ms_at(end - req.range.start, rate)]
        durations = [b - a for a, b in zip(ms, ms[1:])]
        names = [p.name(lim.max_name_chars) for p in parts]
        plan: Plan
        if settings.model_id == "music_v1":
            plan = MusicPrompt(
                positive_global_styles=glob, negative_global_styles=neg_glob,
                sections=[SongSection(section_name=n, positive_local_styles=p.styles,
                                      negative_local_styles=p.negative, duration_ms=d, lines=[])
                          for n, p, d in zip(names, parts, durations)])
        else:
            plan = CompositionPlan(chunks=[
                GenerationChunk(text=chunk_text(n, []), duration_ms=d,
                                positive_styles=_dedupe(glob + p.styles),
                                negative_styles=_dedupe(neg_glob + p.negative))
                for n, p, d in zip(names, parts, durations)])
        composed.append(ComposedRequest(
            id=req.id, range=frame_range(req.range.start, end - req.range.start, rate,
                                         score_plan.start_frame, score_plan.drop_frame),
            handle_frames=req.handle_frames, model_id=settings.model_id, composition_plan=plan))
    out = CompositionFile(
        timeline_name=score_plan.timeline_name, rate=score_plan.rate,
        start_frame=score_plan.start_frame, range=score_plan.range,
        scene_policy=score_plan.scene_policy, drop_frame=score_plan.drop_frame,
        scene_starts=[s.range.start for s in score_plan.scenes], requests=composed, notes=notes)
    check_limits(out, lim)
    return out


def section_starts(request: ComposedRequest, rate: Fraction) -> list[int]:
    """Stack frame nearest each section's start (from the durations, as the file says them)."""
    starts, acc = [], 0
    for s in sections_of(request.composition_plan):
        starts.append(request.range.start + frames_at(acc, rate))
        acc += s.duration_ms
    return starts


def where(request: ComposedRequest, index: int, name: str, frame: int, file: CompositionFile) -> str:
    label = f' "{name}"' if name else ""
    return (f"request {request.id}, section {index + 1}{label} at "
            f"{frames_to_tc(file.start_frame + frame, file.fraction_rate, drop_frame=file.drop_frame)}")


def check_limits(file: CompositionFile, limits: PlanLimits | None = None) -> None:
    """Refuse a plan the service would refuse, naming every offending section and timecode."""
    lim = limits or PlanLimits()
    rate = file.fraction_rate
    problems: list[str] = []
    for req in file.requests:
        plan = req.composition_plan
        if not isinstance(plan, plan_kind(req.model_id)):
            want = "a MusicPrompt (sections)" if req.model_id == "music_v1" else "a CompositionPlan (chunks)"
            problems.append(f"request {req.id}: model {req.model_id} takes {want}, the plan has "
                            f"{'sections' if isinstance(plan, MusicPrompt) else 'chunks'}")
        views = sections_of(plan)
        if not views:
            problems.append(f"request {req.id}: the plan has no sections")
            continue
        if len(views) > lim.max_sections:
            problems.append(f"request {req.id}: {len(views)} sections; at most {lim.max_sections}")
        total = sum(v.duration_ms for v in views)
        want_ms = ms_at(req.range.duration, rate)
        if total != want_ms:
            problems.append(f"request {req.id} ({req.range.record_in}-{req.range.record_out}): the "
                            f"sections add up to {total} ms but the request lasts {want_ms} ms")
        if total > lim.max_plan_ms:
            problems.append(f"request {req.id}: {total} ms; a plan lasts at most {lim.max_plan_ms} ms")
        if isinstance(plan, MusicPrompt):
            for style in plan.positive_global_styles + plan.negative_global_styles:
                if len(style) > lim.max_style_chars:
                    problems.append(f"request {req.id}: global style {style[:40]!r}… has "
                                    f"{len(style)} characters; at most {lim.max_style_chars}")
        for i, (v, start) in enumerate(zip(views, section_starts(req, rate))):
            at = where(req, i, v.name, start, file)
            if v.audio_ref:
                continue
            if not lim.min_section_ms <= v.duration_ms <= lim.max_section_ms:
                problems.append(f"{at}: lasts {v.duration_ms} ms; a section lasts "
                                f"{lim.min_section_ms}-{lim.max_section_ms} ms")
            if isinstance(plan, MusicPrompt) and not 1 <= len(v.name) <= lim.max_name_chars:
                problems.append(f"{at}: the name has {len(v.name)} characters; "
                                f"1-{lim.max_name_chars} allowed")
            elif len(v.name) > lim.max_name_chars:
                problems.append(f"{at}: the name has {len(v.name)} characters; at most "
                                f"{lim.max_name_chars}")
            if len(v.lines) > lim.max_lines:
                problems.append(f"{at}: {len(v.lines)} lyric lines; at most {lim.max_lines}")
            problems += [f"{at}: line {n} has {len(line)} characters; at most {lim.max_line_chars}"
                         for n, line in enumerate(v.lines, 1) if len(line) > lim.max_line_chars]
            problems += [f"{at}: style {s[:40]!r}… has {len(s)} characters; at most "
                         f"{lim.max_style_chars}" for s in v.styles if len(s) > lim.max_style_chars]
    if problems:
        raise InputError(
            "the composition plan breaks the service's limits:\n" + "\n".join(f"  - {p}" for p in problems),
            hint="edit the named sections (durations must still add up to their request), "
                 "shorten long marker notes or override them in a brief, or re-plan from the edit")


def composition_json(file: CompositionFile) -> str:
    return file.model_dump_json(indent=2, exclude_none=True) + "\n"


def read_composition(text: str, source: str) -> CompositionFile:
    """Parse a (possibly hand-edited) composition file; errors name the file and the field."""
    try:
        return CompositionFile.model_validate_json(text)
    except ValidationError as exc:
        lines = [f"  - {'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:12]]
        raise InputError(
            f"{source} is not a reelscore composition plan:\n" + "\n".join(lines),
            hint="fix the named fields, or write a fresh one with `reelscore plan EDIT --composition FILE`",
        ) from exc
