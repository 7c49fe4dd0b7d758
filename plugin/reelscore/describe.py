"""The plan as lines a person reads (``reelscore plan`` and ``score --dry-run``)."""

from __future__ import annotations

from fractions import Fraction

from reelscore.plan import ScorePlan
from reelscore.timecode import is_drop_frame_rate


def describe_plan(plan: ScorePlan) -> list[str]:
    """Human-readable plan lines (used by `reelscore plan` and --dry-run)."""
    rate = plan.fraction_rate
    # Timecodes are the plan's labels: HH:MM:SS;FF for a drop-frame timeline, as its NLE shows.
    form = (" drop frame" if plan.drop_frame else " non-drop") if is_drop_frame_rate(rate) else ""
    lines = [
        f"timeline {plan.timeline_name!r} at {float(rate):.3f} fps{form}, scored "
        f"{plan.range.record_in}-{plan.range.record_out} ({float(plan.range.seconds):.2f} s), "
        f"{len(plan.scenes)} scene(s) by {plan.scene_policy}, {len(plan.requests)} request(s)",
    ]
    for req in plan.requests:
        secs = float(Fraction(req.total_frames) / rate)
        lines.append(f"  {req.id}: {req.range.record_in}-{req.range.record_out}, "
                     f"{len(req.videos)} video(s), {secs:.2f} s, {req.video_kbps} kb/s"
                     + (f", handle {req.handle_frames} frames" if req.handle_frames else ""))
        for v in req.videos:
            lines.append(f"    {v.id}: {v.range.record_in}-{v.range.record_out} "
                         f"({v.range.duration} frames) scenes {', '.join(v.scene_ids)}")
    for item in plan.ignored:
        lines.append(f"  ignored: {item}")
    for note in plan.notes:
        lines.append(f"  note: {note}")
    return lines
