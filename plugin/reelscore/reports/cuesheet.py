"""The music cue sheet of a job: one row per cue, as broadcasters and collecting societies ask.

A cue is a stretch of music on the score track (:mod:`reelscore.reports.stretches`): requests
whose music was delivered and that follow each other without a gap join into one cue; after a
recut each kept and each newly generated stretch is a cue of its own, its lineage naming the job
it was kept from (followed back) or the request that generated it. The
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
from reelscore.errors import InputError, JobError, ReelscoreError
from reelscore.fsutil import atomic_write_text
from reelscore.reports.jobfolder import JobFolder, read_job_folder
from reelscore.reports.stretches import Stretch, stretches_of
from reelscore.timecode import frames_to_tc

CUES_NAME = "cues.csv"
DEFAULT_USAGE = "BI"
MAX_TITLE_SCENES = 3
MAX_LINEAGE = 20  # recuts of recuts followed back at most this far

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
    frames: int  # not CSV columns: the length in frames (the XLSX's numbers come from it) and
    start: int  # the first stack frame

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


@dataclass(frozen=True)
class _Origin:
    """Where one stretch's music came from."""

    providers: frozenset[str]
    models: frozenset[str]
    sources: tuple[str, ...]
    signed: bool
    lineage: str


def build_cues(job: JobFolder, fields: CueSheetSection, *, usage: str | None = None) -> list[Cue]:
    """One :class:`Cue` per stretch of delivered music (:mod:`reelscore.reports.stretches`)."""
    code = check_usage(usage or fields.usage or DEFAULT_USAGE)
    stretches = stretches_of(job)
    assert job.plan is not None
    rate, drop_frame = job.rate, job.plan.drop_frame
    programme = fields.programme or job.title
    cues: list[Cue] = []
    for n, stretch in enumerate(stretches, 1):
        start, end = stretch.start, stretch.end
        frames = end - start
        seconds = Fraction(frames) / rate
        whole = round(seconds)
        origin = _origin(job, stretch, 0)
        cues.append(Cue(
            programme_title=programme, episode=fields.episode or "",
            production=fields.production or "", cue=f"{n:02d}",
            title=_title(job, start, end, programme, n),
            record_in=job.label(start), record_out=job.label(end),
            duration=f"{whole // 60:02d}:{whole % 60:02d}",
            duration_tc=frames_to_tc(frames, rate, drop_frame=drop_frame),
            duration_seconds=f"{float(seconds):.3f}", usage=code,
            usage_description=CUE_USAGES[code], composer=fields.composer or "",
            publisher=fields.publisher or "", rights=fields.rights or "",
            origin="AI-generated", provider="; ".join(sorted(origin.providers)),
            model="; ".join(sorted(origin.models)), source_ids="; ".join(origin.sources),
            c2pa_signed="yes" if origin.signed else "no",
            requests="; ".join(stretch.requests), lineage=origin.lineage,
            frames=frames, start=start))
    return cues


def _origin(job: JobFolder, stretch: Stretch, depth: int) -> _Origin:
    """The origin of *stretch*: its requests in *job*, or (kept music) the stretches of the
    previous job it was copied from, followed back through earlier recuts."""
    job_id = str(job.manifest.get("job_id", "")) or job.dir.name
    if stretch.kept is None:
        records = [job.requests[i] for i in stretch.requests]
        providers = frozenset(r.response.provider for r in records if r.response is not None)
        signed = bool(job.settings.get("generation", {}).get("sign_with_c2pa"))
        return _Origin(providers,
                       frozenset(r.response.model for r in records
                                 if r.response is not None and r.response.model),
                       tuple(_source_id(i, job) for i in stretch.requests),
                       signed and providers != {"local"},
                       f"generated in job {job_id} ({', '.join(stretch.requests)})")
    kept = stretch.kept.origin
    previous = _previous(job) if depth < MAX_LINEAGE else None
    if previous is None or previous.plan is None:
        return _Origin(frozenset(), frozenset(), (), False,
                       f"kept from job {kept.job_id} (its stack frames {kept.old_start}-"
                       f"{kept.old_end}; its manifest cannot be read, so its origin is not "
                       "listed)")
    try:
        inner = [_origin(previous, s, depth + 1) for s in stretches_of(previous)
                 if s.start < kept.old_end and s.end > kept.old_start]
    except JobError:
        inner = []
    lineage = (f"kept from job {kept.job_id} (its record {previous.label(kept.old_start)}-"
               f"{previous.label(kept.old_end)})")
    if inner:
        lineage += "; there " + "; ".join(o.lineage for o in inner)
    return _Origin(frozenset().union(*(o.providers for o in inner)),
                   frozenset().union(*(o.models for o in inner)),
                   tuple(x for o in inner for x in o.sources),
                   bool(inner) and all(o.signed for o in inner), lineage)


def _previous(job: JobFolder) -> JobFolder | None:
    """The job a recut kept music from, when its manifest can still be read."""
    if job.recut is None or not job.recut.previous_manifest:
        return None
    try:
        return read_job_folder(Path(job.recut.previous_manifest))
    except (ReelscoreError, OSError):
        return None


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
