"""Recut: the requests that generate the new stretches of an updated score.  (pure, JSON)

Each :class:`~reelscore.recut_keep.GenerateRange` of a :class:`~reelscore.recut_keep.RecutPlan`
(new scenes, frames a trimmed scene gained, trimmed scenes with ``--regenerate-trimmed``) becomes
its own stretch of requests. A stretch asks for the new frames **plus its handles**: up to the
plan's crossfade of the kept picture before and after it (``handle_before`` / ``handle_after``;
none at the ends of the programme), so the service hears the music's context on both sides and
the new music can be crossfaded into the kept music on each cut.

The requested span ``[new_start - handle_before, new_end + handle_after)`` is planned as a small
programme of its own (:func:`reelscore.plan.make_plan`, the run's limits and crossfade): the new
cut's scenes clipped to the span are its scenes (a handle is a video of its own, so the cut into
kept music falls between two videos), so a long stretch splits into several requests joined like
any other. Ids are prefixed with the stretch (``g01r01``, video ``g01r01v02``); each video names
the new cut's scenes it shows. :func:`job_plan` is the new cut's plan with only these requests:
what the generate step renders and sends, and what the manifest records.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from reelscore.plan import PlanLimits, PlannedRequest, ScorePlan, make_plan
from reelscore.recut_keep import GenerateRange, RecutPlan
from reelscore.scenes import SceneCut


@dataclass(frozen=True)
class Stretch:
    """One new stretch: the frames it fills and the small plan that generates them."""

    id: str  # g01, g02 ... in timeline order
    generate: GenerateRange
    plan: ScorePlan  # range = the requested span, handles included; its own scenes (s001...)
    requests: list[PlannedRequest]  # plan's requests, videos naming the new cut's scenes

    @property
    def span(self) -> tuple[int, int]:
        return self.plan.range.start, self.plan.range.end


def _scenes_in(plan: ScorePlan, lo: int, hi: int) -> list[str]:
    return [s.id for s in plan.scenes if s.range.start < hi and s.range.end > lo]


def _widen(recut: RecutPlan, g: GenerateRange, min_frames: int) -> tuple[int, int]:
    """The span asked for: the stretch and its handles, reaching further into the kept music on
    both sides (half each, as far as the kept neighbours go) when shorter than *min_frames*."""
    lo, hi = g.new_start - g.handle_before, g.new_end + g.handle_after
    short = min_frames - (hi - lo)
    if short <= 0:
        return lo, hi
    before = next((k.new_start for k in recut.kept if k.new_end == g.new_start), lo)
    after = next((k.new_end for k in recut.kept if k.new_start == g.new_end), hi)
    grow_lo = min(lo - before, max(short // 2, short - (after - hi)))
    grow_hi = min(after - hi, short - grow_lo)
    return lo - grow_lo, hi + grow_hi


def plan_stretches(plan: ScorePlan, recut: RecutPlan, limits: PlanLimits, *,
                   min_frames: int = 0) -> list[Stretch]:
    """The requests for every stretch *recut* generates (see the module docstring); a request
    shorter than *min_frames* (a composition plan's shortest section) reaches further into the
    kept music for context, its crossfades staying in the handles."""
    rate = plan.fraction_rate
    out: list[Stretch] = []
    for i, g in enumerate(recut.generate, 1):
        lo, hi = _widen(recut, g, min_frames)
        cuts = sorted({lo, hi, g.new_start, g.new_end}
                      | {s.range.start for s in plan.scenes if lo < s.range.start < hi})
        scenes = [SceneCut(a, b, "") for a, b in zip(cuts, cuts[1:]) if b > a]
        sub = make_plan(
            scenes, rate=rate, start_frame=plan.start_frame, scene_policy=plan.scene_policy,
            width=plan.encode.width, height=plan.encode.height,
            crossfade_seconds=float(Fraction(plan.crossfade_frames) / rate), limits=limits,
            source=plan.source, adapter=plan.adapter, timeline_name=plan.timeline_name,
            clip_audio=plan.encode.audio, drop_frame=plan.drop_frame)
        sid = f"g{i:02d}"
        renamed = [r.model_copy(update={"id": f"{sid}{r.id}", "videos": [
            v.model_copy(update={"id": f"{sid}{v.id}"}) for v in r.videos]})
            for r in sub.requests]
        requests = [r.model_copy(update={"videos": [
            v.model_copy(update={"scene_ids": _scenes_in(plan, v.range.start, v.range.end)})
            for v in r.videos]}) for r in renamed]
        out.append(Stretch(sid, g, sub.model_copy(update={"requests": renamed}), requests))
    return out


def job_plan(plan: ScorePlan, stretches: list[Stretch]) -> ScorePlan:
    """The new cut's plan whose requests are only the stretches' (what is rendered and sent)."""
    requests = [r for s in stretches for r in s.requests]
    if not requests:
        return plan.model_copy(update={"requests": []})
    return plan.model_copy(update={
        "requests": requests,
        "encode": plan.encode.model_copy(update={
            "video_kbps": min(r.video_kbps for r in requests)})})


def requested_frames(stretches: list[Stretch]) -> int:
    """Frames sent to the service (bodies, handles into kept music, and inner request handles)."""
    return sum(v.frames for s in stretches for r in s.requests for v in r.videos)


def requests_text(stretches: list[Stretch], plan: ScorePlan) -> str:
    """What an update sends, request by request (record timecode, videos, seconds), against a
    full rescore of the new cut."""
    rate = plan.fraction_rate

    def sec(frames: int) -> str:
        return f"{float(Fraction(frames) / rate):.2f} s"

    full = plan.range.duration
    if not stretches:
        return f"would send nothing (a full rescore sends {sec(full)})"
    lines = [f"would send {sum(len(s.requests) for s in stretches)} request(s), "
             f"{sec(requested_frames(stretches))} of picture with handles "
             f"(a full rescore sends {sec(full)}):"]
    for s in stretches:
        g = s.generate
        for r in s.requests:
            first, last = r.videos[0].range, r.videos[-1].range
            lines.append(
                f"  {r.id}  {first.record_in}-{last.record_out}  {len(r.videos)} video(s) "
                f"{sec(r.total_frames)}  for {'/'.join(g.scene_ids)} ({'/'.join(g.reasons)}); "
                f"handles {sec(g.handle_before)} before, {sec(g.handle_after)} after")
    return "\n".join(lines)
