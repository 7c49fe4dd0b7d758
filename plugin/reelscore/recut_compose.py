"""Recut with ``--method compose``: the new stretches as composition plans, nothing rendered.

Each stretch's requests (:mod:`reelscore.recut_requests`, handles included) become composition
plans built from the cut as for a first compose (:func:`reelscore.compose.compose`): one section
per scene of the stretch's own small plan (a request shorter than a section may be — 3 s —
reaches further into the kept music on both sides: :func:`min_compose_frames`) — the new cut's scenes clipped to the requested span, so
the handles are sections of their own (merged into their neighbour when shorter than a section may
be) and the cut into kept music falls on a section boundary. Those scenes take the name and notes
of the new cut's scene they lie in; their ids are prefixed with the stretch (``g01s002``). The
answers go through the same conform, level match and crossfades as generated stretches
(:mod:`reelscore.recut_generate`). A reviewed ``--composition`` file or a ``--brief`` names the new
cut's scenes, not these, so an update refuses them.
"""

from __future__ import annotations

import math
from fractions import Fraction

from reelscore.errors import InputError
from reelscore.job import Job
from reelscore.musicplan import MIN_SECTION_MS
from reelscore.plan import ScorePlan
from reelscore.providers import GeneratedAudio, Provider
from reelscore.recut_generate import GenerateFn
from reelscore.recut_requests import Stretch
from reelscore.render import Renderer
from reelscore.settings import ProgressSink, ScoreSettings
from reelscore.steps.composing import compose_all
from reelscore.steps.planning import PlannedEdit


def min_compose_frames(rate: Fraction) -> int:
    """A composition plan's shortest section, in frames: the least an update's request asks."""
    return math.ceil(Fraction(MIN_SECTION_MS) * rate / 1000)


def compose_plan(plan: ScorePlan, stretches: list[Stretch]) -> ScorePlan:
    """The new cut's plan with the stretches' scenes and requests, as :func:`compose` reads it."""
    scenes = []
    requests = []
    for s in stretches:
        ids = {}
        for sub in s.plan.scenes:
            outer = next(o for o in plan.scenes
                         if o.range.start <= sub.range.start < o.range.end)
            ids[sub.id] = f"{s.id}{sub.id}"
            scenes.append(sub.model_copy(update={"id": ids[sub.id], "name": outer.name,
                                                 "notes": list(outer.notes)}))
        requests += [r.model_copy(update={"videos": [
            v.model_copy(update={"scene_ids": [ids[i] for i in v.scene_ids]}) for v in r.videos]})
            for r in s.plan.requests]
    return plan.model_copy(update={"scenes": scenes, "requests": requests})


def compose_stretches(plan: ScorePlan, stretches: list[Stretch],
                      settings: ScoreSettings) -> GenerateFn:
    """The generate step for an update with ``--method compose`` (see the module docstring)."""
    if settings.composition is not None or settings.brief is not None:
        flag = "--composition" if settings.composition is not None else "--brief"
        raise InputError(f"{flag} names the new cut's scenes; an update composes only its new "
                         "stretches, whose sections are built from the cut",
                         hint=f"leave {flag} out of the update (description and tags apply)")
    composed = compose_plan(plan, stretches)

    def run(planned: PlannedEdit, job: Job, renderer: Renderer, provider: Provider,
            settings: ScoreSettings, progress: ProgressSink) -> dict[str, GeneratedAudio]:
        return compose_all(composed, job, provider, settings, progress)[0]  # no section markers on an update

    return run
