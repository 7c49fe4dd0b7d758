"""A composition plan against the edit it is for.  (pure)

``check_against_edit(file, score_plan)`` runs before anything is sent; each problem names its
timecode, all in one ``InputError``:

* A plan file for another edit: a different timeline name, rate, scored range (total length) or
  scene count. The first scene start that differs is named.
* The edit changed: a request whose range differs from the one planned now, or a section boundary
  (from the durations, as the file says them) that lands on no cut within half a millisecond. A
  boundary may lie on a scene start, on an inner cut passed in ``cuts``, or inside a scene longer
  than a section can be (where ``compose`` splits).
* Then the service's limits (``compose.check_limits``).

Drafted plans (``--draft-plan``) are laid on the cut by ``reelscore.draft``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from reelscore.compose import (
    CompositionFile,
    check_limits,
    frames_at,
    ms_at,
    where,
)
from reelscore.errors import InputError
from reelscore.musicplan import (
    PlanLimits,
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
        return frames_to_tc(sf + frame, rate, drop_frame=score_plan.drop_frame)

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
