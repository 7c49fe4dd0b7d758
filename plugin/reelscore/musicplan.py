"""Composition plans in the music service's own shapes (reference/music_api.md §4–5).  (pure)

A plan must match its model:

* ``music_v1`` takes a ``MusicPrompt``: ``positive_global_styles``, ``negative_global_styles`` and
  ``sections``; each ``SongSection`` has a ``section_name`` (1–100 characters), local styles,
  ``duration_ms`` and lyric ``lines`` (optionally ``source_from``, v1 inpainting).
* ``music_v2`` and ``music_v2_5`` take a ``CompositionPlan``: ``chunks``, each a
  ``GenerationChunk`` (``text`` with an optional leading ``[Section name]`` and lyric lines,
  ``duration_ms``, ``positive_styles``/``negative_styles``, optional adherence and conditioning) or an
  ``AudioRefChunk`` (a range of a stored song, kept unchanged). The service's union has no type tag:
  the shape decides, so both models refuse unknown fields.

All models are strict (JSON types only, unknown fields refused) and round-trip through JSON in the
service's snake_case; ``plan_wire`` gives the body to send (unset optional fields left out).

Limits (the reference; the section cap and the style length are not the service's documented
figures but assumptions kept configurable in ``PlanLimits``): every section 3000–120000 ms, a plan at
most 600000 ms, at most 30 sections, names 1–100 characters, at most 30 lyric lines of at most 200
characters, styles at most 200 characters each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from reelscore.errors import InputError

ModelId = Literal["music_v1", "music_v2", "music_v2_5"]
PLAN_MODELS: tuple[str, ...] = ("music_v1", "music_v2", "music_v2_5")

MIN_SECTION_MS = 3_000
MAX_SECTION_MS = 120_000
MAX_PLAN_MS = 600_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PlanLimits(_Strict):
    min_section_ms: int = MIN_SECTION_MS
    max_section_ms: int = MAX_SECTION_MS
    max_plan_ms: int = MAX_PLAN_MS
    max_sections: int = 30  # a third-party mirror's cap, unverified
    max_name_chars: int = 100
    max_lines: int = 30
    max_line_chars: int = 200
    max_style_chars: int = 200  # the reference gives none; a style is a phrase, not a paragraph


class MsRange(_Strict):
    start_ms: int
    end_ms: int


class SectionSource(_Strict):
    song_id: str
    range: MsRange
    negative_ranges: list[MsRange] = Field(default_factory=list)


class SongSection(_Strict):
    section_name: str
    positive_local_styles: list[str]
    negative_local_styles: list[str]
    duration_ms: int
    lines: list[str]
    source_from: SectionSource | None = None


class MusicPrompt(_Strict):
    """The ``music_v1`` plan."""

    positive_global_styles: list[str]
    negative_global_styles: list[str]
    sections: list[SongSection]


class AudioRefChunk(_Strict):
    song_id: str
    range: MsRange


class GenerationChunk(_Strict):
    """The v2 ``GenerationChunkInput``."""

    text: str
    duration_ms: int
    positive_styles: list[str]
    negative_styles: list[str] = Field(default_factory=list)
    context_adherence: Literal["low", "medium", "high"] | None = None
    conditioning_ref: AudioRefChunk | None = None
    condition_strength: Literal["low", "medium", "high", "xhigh"] | None = None


def _chunk_tag(value: object) -> str:
    if isinstance(value, dict):
        return "generate" if "text" in value or "song_id" not in value else "audio_ref"
    return "audio_ref" if isinstance(value, AudioRefChunk) else "generate"


# The shape decides (no tag on the wire); choosing first keeps errors about the intended shape.
Chunk = Annotated[Annotated[GenerationChunk, Tag("generate")] | Annotated[AudioRefChunk, Tag("audio_ref")],
                  Discriminator(_chunk_tag)]


class CompositionPlan(_Strict):
    """The ``music_v2``/``music_v2_5`` plan."""

    chunks: list[Chunk]


Plan = MusicPrompt | CompositionPlan


def _plan_tag(value: object) -> str:
    if isinstance(value, dict):
        return "chunks" if "chunks" in value else "sections"
    return "chunks" if isinstance(value, CompositionPlan) else "sections"


PlanField = Annotated[Annotated[MusicPrompt, Tag("sections")] | Annotated[CompositionPlan, Tag("chunks")],
                      Discriminator(_plan_tag)]


def plan_model(model_id: str) -> ModelId:
    """*model_id* if it takes a composition plan; an ``InputError`` naming the choices if not."""
    if model_id in PLAN_MODELS:
        return cast(ModelId, model_id)
    raise InputError(f"model {model_id!r} does not take composition plans",
                     hint="use --model music_v1, music_v2 or music_v2_5 with --method compose")


def plan_kind(model_id: str) -> type[MusicPrompt] | type[CompositionPlan]:
    return MusicPrompt if model_id == "music_v1" else CompositionPlan


def plan_wire(plan: Plan) -> dict[str, object]:
    """The JSON body for ``composition_plan`` / ``source_composition_plan``."""
    return plan.model_dump(mode="json", exclude_none=True)


_HEADING = re.compile(r"^\[([^\]\n]*)\]")


def chunk_text(name: str, lines: list[str]) -> str:
    """v2 chunk text: ``[name]`` then lyric lines, one per line."""
    return "\n".join([f"[{name}]", *lines])


def chunk_name(text: str) -> str:
    m = _HEADING.match(text)
    return m.group(1) if m else ""


def chunk_lines(text: str) -> list[str]:
    lines = text.splitlines()
    m = _HEADING.match(lines[0]) if lines else None
    if m:
        rest = lines[0][m.end():].strip()
        lines = ([rest] if rest else []) + lines[1:]
    return [line for line in lines if line.strip()]


@dataclass(frozen=True)
class SectionView:
    """One section or chunk seen the same way whatever the plan's shape."""

    name: str
    duration_ms: int
    lines: tuple[str, ...]
    styles: tuple[str, ...]
    audio_ref: bool = False


def sections_of(plan: Plan) -> list[SectionView]:
    if isinstance(plan, MusicPrompt):
        return [SectionView(s.section_name, s.duration_ms, tuple(s.lines),
                            (*s.positive_local_styles, *s.negative_local_styles))
                for s in plan.sections]
    out: list[SectionView] = []
    for c in plan.chunks:
        if isinstance(c, AudioRefChunk):
            out.append(SectionView("", c.range.end_ms - c.range.start_ms, (), (), audio_ref=True))
        else:
            out.append(SectionView(chunk_name(c.text), c.duration_ms, tuple(chunk_lines(c.text)),
                                   (*c.positive_styles, *c.negative_styles)))
    return out


def global_styles_of(plan: Plan) -> tuple[str, ...]:
    if isinstance(plan, MusicPrompt):
        return (*plan.positive_global_styles, *plan.negative_global_styles)
    return ()
