"""A composition plan against the edit it is for, and drafted plans cut to the edit.  (pure)

``check_against_edit(file, score_plan)`` runs before anything is sent; each problem names its
timecode, all in one ``InputError``:

* A plan file for another edit: a different timeline name, rate, scored range (total length) or
  scene count. The first scene start that differs is named.
* The edit changed: a request whose range differs from the one planned now, or a section boundary
  (from the durations, as the file says them) that lands on no cut within half a millisecond. A
  boundary may lie on a scene start, on an inner cut passed in ``cuts``, or inside a scene longer
  than a section can be (where ``compose`` splits).
* Then the service's limits (``compose.check_limits``).

``draft_request`` is the body for the free plan endpoint (``POST /v1/music/plan``): the brief as a
prompt, the request's length and the cut's plan as ``source_composition_plan``.
``draft_overwrite(drafted, cut)`` keeps the drafted styles and takes section durations and names
from the cut: each cut section takes the styles of the drafted section it overlaps most (drafted
times scaled to the cut's length), the cut's own styles where the drafted ones are empty. Lyric
lines are dropped when instrumental (and "instrumental" kept among the styles); otherwise a drafted
section's lines go to the first cut section that takes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from pydantic import BaseModel, ConfigDict

from reelscore.compose import (
    ComposedRequest,
    ComposeSettings,
    CompositionFile,
    check_limits,
    frames_at,
    ms_at,
    split_styles,
    where,
)
from reelscore.errors import InputError
from reelscore.musicplan import (
    AudioRefChunk,
    CompositionPlan,
    GenerationChunk,
    ModelId,
    MusicPrompt,
    Plan,
    PlanField,
    PlanLimits,
    SongSection,
    chunk_lines,
    chunk_text,
    sections_of,
)
from reelscore.plan import ScorePlan
from reelscore.timecode import frames_to_tc


def check_against_edit(
    file: CompositionFile,
    score_plan: ScorePlan,
    *,
    source: str = "the composition plan",
    cuts: Sequence[int] = (),
    limits: PlanLimits | None = None,
) -> None:
    lim = limits or PlanLimits()
    rate = score_plan.fraction_rate
    sf = score_plan.start_frame

    def tc(frame: int) -> str:
        return frames_to_tc(sf + frame, rate)

    other: list[str] = []
    if file.timeline_name and score_plan.timeline_name and file.timeline_name != score_plan.timeline_name:
        other.append(f"it was made for timeline {file.timeline_name!r}; this edit is "
                     f"{score_plan.timeline_name!r}")
    if Fraction(file.rate) != rate:
        other.append(f"it was made at {file.rate} fps; this edit runs at {score_plan.rate}")
    fr, sr = file.range, score_plan.range
    if (fr.start, fr.duration) != (sr.start, sr.duration) or file.start_frame != sf:
        other.append(f"it covers {fr.record_in}-{fr.record_out} ({fr.duration} frames); this edit's "
                     f"scored range is {sr.record_in}-{sr.record_out} ({sr.duration} frames)")
    starts = [s.range.start for s in score_plan.scenes]
    if len(file.scene_starts) != len(starts):
        diff = next((i for i, (a, b) in enumerate(zip(file.scene_starts, starts)) if a != b),
                    min(len(starts), len(file.scene_starts)))
        at = (f"; the first difference is at {tc(starts[diff])}" if diff < len(starts)
              else f"; scenes from {tc(file.scene_starts[diff])} are gone")
        other.append(f"it was made from {len(file.scene_starts)} scenes; this edit has {len(starts)}{at}")
    if other:
        raise InputError(
            f"{source} is for another edit:\n" + "\n".join(f"  - {p}" for p in other),
            hint="write a plan for this edit with `reelscore plan EDIT --composition FILE`, "
                 "or score the edit the plan was made for")

    problems: list[str] = []
    max_f = math.floor(Fraction(lim.max_section_ms) * rate / 1000)
    long_scenes = [(s.range.start, s.range.end) for s in score_plan.scenes if s.range.duration > max_f]
    if len(file.requests) != len(score_plan.requests):
        problems.append(f"it has {len(file.requests)} requests; this edit plans "
                        f"{len(score_plan.requests)}")
    for req, planned in zip(file.requests, score_plan.requests):
        want = (planned.range.start, planned.range.duration + planned.handle_frames)
        if (req.range.start, req.range.duration) != want:
            problems.append(f"request {req.id} covers {req.range.record_in}-{req.range.record_out}; "
                            f"this edit plans {tc(want[0])}-{tc(want[0] + want[1])}")
            continue
        allowed = sorted({c for c in (*starts, *cuts) if req.range.start < c < req.range.end})
        acc = 0
        for i, v in enumerate(sections_of(req.composition_plan)):
            if i:
                exact = Fraction(acc) * rate / 1000 + req.range.start  # frames, maybe fractional
                near = min(allowed, key=lambda c: abs(c - exact)) if allowed else None
                on_cut = near is not None and ms_at(near - req.range.start, rate) == acc
                in_long = any(a < exact < b for a, b in long_scenes)
                if not (on_cut or in_long):
                    hint = f"; the nearest cut is {tc(near)}" if near is not None else ""
                    problems.append(f"{where(req, i, v.name, req.range.start + frames_at(acc, rate), file)}"
                                    f" ({acc} ms into the request) starts on no cut{hint}")
            acc += v.duration_ms
    if problems:
        raise InputError(
            f"{source} no longer matches the edit:\n" + "\n".join(f"  - {p}" for p in problems),
            hint="the edit changed since the plan was written: move the named boundaries onto the "
                 "cuts, or write a fresh plan with `reelscore plan EDIT --composition FILE`")
    check_limits(file, lim)


class PlanDraft(BaseModel):
    """The body of ``POST /v1/music/plan``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str
    music_length_ms: int
    model_id: ModelId
    source_composition_plan: PlanField | None = None


def draft_request(request: ComposedRequest, settings: ComposeSettings) -> PlanDraft:
    styles = [*split_styles(settings.description), *settings.tags]
    if settings.instrumental:
        styles.append("instrumental")
    prompt = settings.description.strip() or ", ".join(styles) or "a score for this cut"
    if settings.instrumental and "instrumental" not in prompt.casefold():
        prompt += ". Instrumental."
    return PlanDraft(prompt=prompt,
                     music_length_ms=sum(v.duration_ms for v in sections_of(request.composition_plan)),
                     model_id=request.model_id, source_composition_plan=request.composition_plan)


def _match(drafted_ms: list[int], cut_ms: list[int]) -> list[int]:
    """For each cut section, the drafted section it overlaps most (drafted scaled to the cut)."""
    total_d, total_c = sum(drafted_ms) or 1, sum(cut_ms)
    d_edges = [Fraction(sum(drafted_ms[:i]) * total_c, total_d) for i in range(len(drafted_ms) + 1)]
    out: list[int] = []
    start = 0
    for dur in cut_ms:
        a, b = Fraction(start), Fraction(start + dur)
        overlaps = [max(Fraction(0), min(b, d_edges[j + 1]) - max(a, d_edges[j]))
                    for j in range(len(drafted_ms))]
        out.append(max(range(len(overlaps)), key=lambda j: (overlaps[j], -j)))
        start += dur
    return out


def _with_instrumental(styles: list[str], instrumental: bool) -> list[str]:
    if instrumental and "instrumental" not in {s.casefold() for s in styles}:
        return [*styles, "instrumental"]
    return styles


def draft_overwrite(drafted: Plan, cut: Plan, *, instrumental: bool = True) -> Plan:
    """The drafted plan's styles on the cut's sections (durations and names)."""
    if type(drafted) is not type(cut):
        raise InputError(
            f"the drafted plan is a {type(drafted).__name__} but the model takes a {type(cut).__name__}",
            hint="draft with the same model_id as the one that will compose")
    d_views, c_views = sections_of(drafted), sections_of(cut)
    if not d_views:
        raise InputError("the drafted plan has no sections", hint="draft again or go without --draft-plan")
    match = _match([v.duration_ms for v in d_views], [v.duration_ms for v in c_views])
    used: set[int] = set()

    def lines_for(j: int) -> list[str]:
        if instrumental or j in used:
            return []
        used.add(j)
        return list(d_views[j].lines)

    if isinstance(drafted, MusicPrompt) and isinstance(cut, MusicPrompt):
        sections = []
        for sec, j in zip(cut.sections, match):
            d = drafted.sections[j]
            sections.append(SongSection(
                section_name=sec.section_name,
                positive_local_styles=d.positive_local_styles or sec.positive_local_styles,
                negative_local_styles=d.negative_local_styles or sec.negative_local_styles,
                duration_ms=sec.duration_ms, lines=lines_for(j)))
        return MusicPrompt(
            positive_global_styles=_with_instrumental(
                drafted.positive_global_styles or cut.positive_global_styles, instrumental),
            negative_global_styles=drafted.negative_global_styles or cut.negative_global_styles,
            sections=sections)
    assert isinstance(drafted, CompositionPlan) and isinstance(cut, CompositionPlan)
    chunks: list[GenerationChunk | AudioRefChunk] = []
    for chunk, view, j in zip(cut.chunks, c_views, match):
        dc = drafted.chunks[j]
        if isinstance(chunk, AudioRefChunk) or isinstance(dc, AudioRefChunk):
            chunks.append(chunk)
            continue
        lines = lines_for(j) if chunk_lines(dc.text) else []
        chunks.append(GenerationChunk(
            text=chunk_text(view.name, lines), duration_ms=chunk.duration_ms,
            positive_styles=_with_instrumental(dc.positive_styles or chunk.positive_styles, instrumental),
            negative_styles=dc.negative_styles or chunk.negative_styles,
            context_adherence=dc.context_adherence, condition_strength=dc.condition_strength))
    return CompositionPlan(chunks=chunks)
