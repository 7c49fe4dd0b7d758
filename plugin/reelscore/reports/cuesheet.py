"""The music cue sheet of a job: one row per cue, as broadcasters and collecting societies ask.

A cue is a continuous stretch of music on the score track: requests whose music was delivered
and that follow each other without a gap join into one cue (today one score is one cue). The
columns (docs/cuesheet.md) follow the usual cue-sheet templates: programme fields, cue number
and title, record in/out and duration in the edit's own timecode form (drop frame included),
usage code, rights holders, and the origin of the music (AI-generated: provider, model, the
service's song ids, C2PA signing).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from reelscore.config import CUE_USAGES, CueSheetSection
from reelscore.errors import InputError, JobError
from reelscore.fsutil import atomic_write_text
from reelscore.reports.jobfolder import JobFolder
from reelscore.timecode import frames_to_tc

CUES_NAME = "cues.csv"
DEFAULT_USAGE = "BI"
MAX_TITLE_SCENES = 3

# The CSV's columns, in order (documented in docs/cuesheet.md).
COLUMNS = ("programme_title", "episode", "production", "cue", "title", "record_in",
           "record_out", "duration", "duration_tc", "duration_seconds", "usage",
           "usage_description", "composer", "publisher", "rights", "origin", "provider", "model",
           "source_ids", "c2pa_signed", "requests", "lineage")


@dataclass(frozen=True)
class Cue:
    programme_title: str
    episode: str
    production: str
    cue: str
    title: str
    record_in: str
    record_out: str
    duration: str  # MM:SS, rounded to the second, as cue sheets show it
    duration_tc: str  # the length in the edit's timecode form
    duration_seconds: str
    usage: str
    usage_description: str
    composer: str
    publisher: str
    rights: str
    origin: str
    provider: str
    model: str
    source_ids: str
    c2pa_signed: str
    requests: str
    lineage: str  # where the stretch came from: generated in this job, or kept from another
    frames: int  # the cue's length in frames (not a CSV column: the XLSX's numbers come from it)

    def row(self) -> list[str]:
        values = asdict(self)
        return [values[c] for c in COLUMNS]


def check_usage(usage: str) -> str:
    """An upper-cased usage code, or an InputError listing the allowed ones."""
    code = usage.strip().upper()
    if code not in CUE_USAGES:
        allowed = ", ".join(f"{k} ({v})" for k, v in CUE_USAGES.items())
        raise InputError(f"unknown cue usage {usage!r}", hint=f"use one of {allowed}")
    return code


def fields_of(job: JobFolder, override: CueSheetSection | None = None) -> CueSheetSection:
    """The run's ``[cuesheet]`` fields (kept in the manifest's settings) with *override*'s set
    values on top."""
    stored = job.settings.get("cuesheet")
    base = CueSheetSection.model_validate(stored) if isinstance(stored, dict) else CueSheetSection()
    if override is None:
        return base
    return base.model_copy(update=override.model_dump(exclude_none=True))


def build_cues(job: JobFolder, fields: CueSheetSection, *, usage: str | None = None) -> list[Cue]:
    """One :class:`Cue` per continuous stretch of delivered music."""
    plan = job.plan
    if plan is None:
        raise JobError(f"the job folder {str(job.dir)!r} has no plan: there is no music to list",
                       hint="score the edit first (reelscore score ... --work-dir FOLDER)")
    code = check_usage(usage or fields.usage or DEFAULT_USAGE)
    stretches: list[list[str]] = []
    bounds: list[tuple[int, int]] = []
    for req in plan.requests:
        rec = job.requests.get(req.id)
        if rec is None or rec.status != "done":
            continue
        start, end = req.range.start, req.range.start + req.range.duration
        if bounds and bounds[-1][1] == start:
            bounds[-1] = (bounds[-1][0], end)
            stretches[-1].append(req.id)
        else:
            bounds.append((start, end))
            stretches.append([req.id])
    if not bounds:
        raise JobError(f"no music was delivered in {str(job.dir)!r} yet (no request is done)",
                       hint="finish the run (rerun the same reelscore score command), then "
                       "make the cue sheet")
    rate = job.rate
    programme = fields.programme or job.title
    job_id = str(job.manifest.get("job_id", "")) or job.dir.name
    signed = bool(job.settings.get("generation", {}).get("sign_with_c2pa"))
    cues: list[Cue] = []
    for n, ((start, end), ids) in enumerate(zip(bounds, stretches), 1):
        frames = end - start
        seconds = Fraction(frames) / rate
        whole = round(seconds)
        records = [job.requests[i] for i in ids]
        providers = sorted({r.response.provider for r in records if r.response is not None})
        models = sorted({r.response.model for r in records
                         if r.response is not None and r.response.model})
        sources = [_source_id(i, job) for i in ids]
        cues.append(Cue(
            programme_title=programme, episode=fields.episode or "",
            production=fields.production or "", cue=f"{n:02d}",
            title=_title(job, start, end, programme, n),
            record_in=job.label(start), record_out=job.label(end),
            duration=f"{whole // 60:02d}:{whole % 60:02d}",
            duration_tc=frames_to_tc(frames, rate, drop_frame=plan.drop_frame),
            duration_seconds=f"{float(seconds):.3f}", usage=code,
            usage_description=CUE_USAGES[code], composer=fields.composer or "",
            publisher=fields.publisher or "", rights=fields.rights or "",
            origin="AI-generated", provider="; ".join(providers), model="; ".join(models),
            source_ids="; ".join(sources),
            c2pa_signed="yes" if signed and providers != ["local"] else "no",
            requests="; ".join(ids), lineage=f"generated in job {job_id} ({', '.join(ids)})",
            frames=frames))
    return cues


def _source_id(request_id: str, job: JobFolder) -> str:
    """The service's song id for the request's answer, else ``request:ID``."""
    rec = job.requests[request_id]
    song = rec.response.metadata.get("song_id") if rec.response is not None else None
    return f"song:{song}" if song else f"request:{request_id}"


def _title(job: JobFolder, start: int, end: int, programme: str, n: int) -> str:
    """The names of the scenes the cue plays under, else the programme's name and the cue."""
    assert job.plan is not None
    names: list[str] = []
    for scene in job.plan.scenes:
        s, e = scene.range.start, scene.range.start + scene.range.duration
        if s < end and e > start and scene.name and scene.name not in names:
            names.append(scene.name)
    if not names:
        return f"{programme} - cue {n:02d}"
    more = len(names) - MAX_TITLE_SCENES
    return " / ".join(names[:MAX_TITLE_SCENES]) + (f" (+{more} more)" if more > 0 else "")


def cues_csv(cues: list[Cue]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for cue in cues:
        writer.writerow(cue.row())
    return buf.getvalue()


def write_cuesheet(cues: list[Cue], path: Path) -> Path:
    """The cue sheet as CSV (UTF-8 with a byte-order mark, so spreadsheets read accents),
    written atomically."""
    atomic_write_text(path, "\ufeff" + cues_csv(cues))
    return path
