"""The stretches of music on a job's score track, in record order: what the cue sheet lists.

A first score's stretches are its delivered requests, those that follow each other without a
gap joined into one (a request that did not deliver breaks the stretch). After a recut update
(``reelscore score NEW --previous OLD``; the manifest's ``recut``) every kept stretch — music
copied from the previous job — and every request generated anew is a stretch of its own, even
where two meet: a kept stretch and new music are different recordings with different origins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reelscore.errors import JobError
from reelscore.reports.jobfolder import JobFolder
from reelscore.reports.records import KeptStretch


@dataclass(frozen=True)
class Stretch:
    start: int  # stack frames, end exclusive
    end: int
    requests: list[str] = field(default_factory=list)  # this job's requests that made it
    kept: KeptStretch | None = None  # copied from the previous job


def stretches_of(job: JobFolder) -> list[Stretch]:
    """The job's stretches of delivered music (see the module docstring); JobError if none."""
    plan = job.plan
    if plan is None:
        raise JobError(f"the job folder {str(job.dir)!r} has no plan: there is no music to list",
                       hint="score the edit first (reelscore score ... --work-dir FOLDER)")
    ranges = {r.id: (r.range.start, r.range.start + r.range.duration) for r in plan.requests}
    found: list[Stretch] = []
    recut = job.recut
    if recut is not None and not recut.dry_run:
        found += [Stretch(k.new_start, k.new_end, kept=k) for k in recut.kept]
        for g in recut.generated():
            made_by = g.requests or [g.id]
            recs = [job.requests.get(rid) for rid in made_by]
            if (any(rec is None or rec.status != "done" for rec in recs)
                    or (g.new_start is None and g.id not in ranges)):
                continue
            start, end = ranges.get(g.id, (0, 0))
            found.append(Stretch(start if g.new_start is None else g.new_start,
                                 end if g.new_end is None else g.new_end, made_by))
        found.sort(key=lambda s: s.start)
    else:
        for req in plan.requests:
            rec = job.requests.get(req.id)
            if rec is None or rec.status != "done":
                continue
            start, end = ranges[req.id]
            if found and found[-1].end == start:
                last = found.pop()
                found.append(Stretch(last.start, end, [*last.requests, req.id]))
            else:
                found.append(Stretch(start, end, [req.id]))
    if not found:
        raise JobError(f"no music was delivered in {str(job.dir)!r} yet (no request is done)",
                       hint="finish the run (rerun the same reelscore score command), then "
                       "make the cue sheet")
    return found
