"""Drafted plans (``--draft-plan``): a brief for the free plan endpoint, and the draft laid on the cut.  (pure)

The free plan endpoint (ElevenLabs ``POST /v1/music/plan``, the proxy's ``/eleven/plan``) drafts a
plan from a text brief and a length, with styles a person would have to write otherwise; it knows
nothing of the cut. So reelscore

1. builds the plan from the cut first (``reelscore.compose``: one section per scene, names and
   styles from markers, notes, ``--brief``, ``--description``/``--tag``);
2. writes that plan out as the brief (``draft_prompt``): the programme's global styles, then one
   line per section with its name, its record timecodes, its length and its own styles;
3. asks for a draft of exactly the request's length (``music_length_ms``) for the request's model
   (ElevenLabs also gets the cut's plan as ``source_composition_plan`` to start from);
4. lays the draft on the cut (``apply_draft``): every section keeps the cut's name and duration
   (so the boundaries still land on the cuts, within half a millisecond) and takes the styles of
   the drafted section it overlaps most in time.

Overlap. The draft's sections are laid end to end and their time line scaled to the request's
length (a draft whose durations do not add up to the length asked for is stretched or squeezed
evenly). Each of the cut's sections takes the positive and negative styles of the drafted section
that covers most of it (the earlier one on a tie). When the counts differ:

* fewer drafted sections than the cut's: one drafted section styles several neighbouring
  sections of the cut;
* more drafted sections than the cut's: a drafted section that is no section's largest overlap
  is dropped (its styles are not merged into a neighbour's: a draft's styles belong together).

A drafted section with no styles leaves the cut's own styles in place. Drafted lyric lines and
section names are dropped (the cut names the sections; scores are instrumental). A v1 draft's
global styles become the v1 plan's global styles, or lead every v2 chunk's styles (v2 has no
global field). "instrumental" stays in the styles when the cut's plan had it.
"""

from __future__ import annotations

from fractions import Fraction

from reelscore.compose import ComposedRequest, CompositionFile, frames_at
from reelscore.musicplan import (
    AudioRefChunk,
    CompositionPlan,
    GenerationChunk,
    MusicPrompt,
    Plan,
    SongSection,
    sections_of,
)
from reelscore.timecode import frames_to_tc

INSTRUMENTAL = "instrumental"


def _dedupe(styles: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for s in styles:
        if s.casefold() not in seen:
            seen.add(s.casefold())
            out.append(s)
    return out


def _styles(plan: Plan) -> list[tuple[list[str], list[str]]]:
    """(positive, negative) styles of every section or chunk, in order (audio refs: none)."""
    if isinstance(plan, MusicPrompt):
        return [(list(s.positive_local_styles), list(s.negative_local_styles)) for s in plan.sections]
    return [([], []) if isinstance(c, AudioRefChunk) else (list(c.positive_styles),
                                                           list(c.negative_styles))
            for c in plan.chunks]


def _globals(plan: Plan) -> tuple[list[str], list[str]]:
    if isinstance(plan, MusicPrompt):
        return list(plan.positive_global_styles), list(plan.negative_global_styles)
    return [], []


def draft_prompt(request: ComposedRequest, file: CompositionFile, *, drop_frame: bool = False) -> str:
    """The brief sent for *request*: global styles, then one line per section of the cut."""
    rate = file.fraction_rate
    plan = request.composition_plan
    pos, neg = _globals(plan)
    if not pos and isinstance(plan, CompositionPlan):
        # v2 chunks carry the global styles first: the ones every chunk shares are the globals.
        shared = [set(p) for p, _ in _styles(plan)]
        common = set.intersection(*shared) if shared else set()
        pos = [s for s in _styles(plan)[0][0] if s in common] if shared else []
    views = sections_of(plan)
    total = sum(v.duration_ms for v in views)
    lines = [f"Instrumental film score cue for {file.timeline_name!r}, {total / 1000:g} seconds, "
             f"in {len(views)} sections that change on the picture cuts."]
    if pos:
        lines.append("Overall: " + ", ".join(pos) + ".")
    if neg:
        lines.append("Avoid: " + ", ".join(neg) + ".")
    acc = 0
    for i, (v, (p, n)) in enumerate(zip(views, _styles(plan)), 1):
        start = file.start_frame + request.range.start + frames_at(acc, rate)
        own = [s for s in p if s not in pos]
        text = f"{i}. {v.name or f'Section {i}'} at {frames_to_tc(start, rate, drop_frame=drop_frame)}, {v.duration_ms / 1000:g} s"
        if own:
            text += ": " + ", ".join(own)
        if n:
            text += " (avoid " + ", ".join(n) + ")"
        lines.append(text + ".")
        acc += v.duration_ms
    return "\n".join(lines)


def _largest_overlap(start: Fraction, end: Fraction, spans: list[tuple[Fraction, Fraction]]) -> int:
    best, best_len = 0, Fraction(-1)
    for j, (a, b) in enumerate(spans):
        length = min(end, b) - max(start, a)
        if length > best_len:
            best, best_len = j, length
    return best


def apply_draft(built: Plan, drafted: Plan) -> Plan:
    """*built* (the cut's plan) with the drafted styles laid on it by time overlap (see the
    module docstring); names, durations and the plan's shape are the cut's."""
    cut = sections_of(built)
    draft = sections_of(drafted)
    d_styles = _styles(drafted)
    d_total = sum(v.duration_ms for v in draft)
    total = sum(v.duration_ms for v in cut)
    spans: list[tuple[Fraction, Fraction]] = []
    acc = Fraction(0)
    for v in draft:
        step = Fraction(v.duration_ms * total, d_total) if d_total else Fraction(0)
        spans.append((acc, acc + step))
        acc += step
    g_pos, g_neg = _globals(drafted)
    built_styles = _styles(built)
    b_pos, b_neg = _globals(built)
    keep_instrumental = any(INSTRUMENTAL in p for p, _ in built_styles) or INSTRUMENTAL in b_pos
    new_styles: list[tuple[list[str], list[str]]] = []
    at = 0
    for v, own in zip(cut, built_styles):
        j = _largest_overlap(Fraction(at), Fraction(at + v.duration_ms), spans) if spans else -1
        at += v.duration_ms
        pos, neg = d_styles[j] if j >= 0 else ([], [])
        new_styles.append((pos, neg) if pos or neg else own)
    if isinstance(built, MusicPrompt):
        glob = _dedupe(g_pos) or b_pos
        if keep_instrumental:
            glob = _dedupe([*glob, INSTRUMENTAL])
        return MusicPrompt(
            positive_global_styles=glob, negative_global_styles=_dedupe(g_neg) or b_neg,
            sections=[SongSection(section_name=s.section_name, duration_ms=s.duration_ms,
                                  positive_local_styles=_dedupe(p), negative_local_styles=_dedupe(n),
                                  lines=[])
                      for s, (p, n) in zip(built.sections, new_styles)])
    chunks: list[GenerationChunk | AudioRefChunk] = []
    for c, (p, n) in zip(built.chunks, new_styles):
        if isinstance(c, AudioRefChunk):
            chunks.append(c)
            continue
        pos = _dedupe([*g_pos, *p, *([INSTRUMENTAL] if keep_instrumental else [])])
        chunks.append(GenerationChunk(text=c.text, duration_ms=c.duration_ms,
                                      positive_styles=pos, negative_styles=_dedupe([*g_neg, *n])))
    return CompositionPlan(chunks=chunks)


def draft_length_ms(request: ComposedRequest) -> int:
    return sum(v.duration_ms for v in sections_of(request.composition_plan))


__all__ = ["apply_draft", "draft_length_ms", "draft_prompt"]
