"""A job folder read for reporting: never locked, never written, never refused for a gap.

``read_job_folder`` accepts the job folder itself, its ``manifest.json``, or a scored edit (its
default job folder ``EDIT.reelscore`` beside it, else the folder the edit's score clip points
into). What cannot be read is listed in ``missing`` instead of raised, so an interrupted run
still has something to show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reelscore.errors import JobError
from reelscore.job import MANIFEST_NAME, MANIFEST_SCHEMA, RenderRecord, RequestRecord
from reelscore.plan import ScorePlan
from reelscore.reports.records import MusicChanges, RecutLineage
from reelscore.timecode import exact_rate, frames_to_tc


@dataclass
class JobFolder:
    """What a job folder holds, typed where the manifest is typed."""

    dir: Path
    manifest: dict[str, Any]
    plan: ScorePlan | None
    renders: dict[str, RenderRecord]
    requests: dict[str, RequestRecord]
    missing: list[str] = field(default_factory=list)
    music_changes: MusicChanges | None = None  # measured after loudness (absent: not measured)
    recut: RecutLineage | None = None  # a job made with --previous: where its music came from

    @property
    def settings(self) -> dict[str, Any]:
        value = self.manifest.get("settings")
        return value if isinstance(value, dict) else {}

    @property
    def outputs(self) -> dict[str, Any]:
        value = self.manifest.get("outputs")
        return value if isinstance(value, dict) else {}

    @property
    def music_wav(self) -> Path | None:
        """The written score WAV, when the run got that far and it is still there."""
        name = self.outputs.get("music_wav")
        if not isinstance(name, str):
            return None
        # Recorded as the run named it (relative to the directory it ran in): look there, and
        # in the folder's own audio/ when the job was moved.
        path = Path(name)
        for candidate in (path, self.dir / path, self.dir / "audio" / path.name):
            if candidate.is_file():
                return candidate
        return None

    @property
    def score_wavs(self) -> list[Path]:
        """Every score WAV the run placed or kept to place (music, SFX, ``--duck``'s unducked
        alternative) that is still there, found like :attr:`music_wav`."""
        ducking = self.manifest.get("ducking")
        names = [self.outputs.get("music_wav"), self.outputs.get("sfx_wav"),
                 ducking.get("alternative_wav") if isinstance(ducking, dict) else None]
        found: list[Path] = []
        for name in names:
            if not isinstance(name, str):
                continue
            path = Path(name)
            found.extend(c for c in (path, self.dir / path, self.dir / "audio" / path.name)
                         if c.is_file() and c not in found)
        return found

    @property
    def title(self) -> str:
        """The programme's name: ``[cuesheet] programme``, else the timeline's name."""
        cuesheet = self.settings.get("cuesheet")
        if isinstance(cuesheet, dict) and cuesheet.get("programme"):
            return str(cuesheet["programme"])
        if self.plan is not None and self.plan.timeline_name:
            return self.plan.timeline_name
        return self.dir.name.removesuffix(".reelscore") or "score"

    def label(self, frame: int) -> str:
        """Record timecode of stack frame *frame* in the plan's own form (drop frame or not)."""
        assert self.plan is not None
        return frames_to_tc(self.plan.start_frame + frame, self.rate,
                            drop_frame=self.plan.drop_frame)

    @property
    def rate(self) -> Fraction:
        assert self.plan is not None
        return exact_rate(self.plan.rate)


def find_job_folder(path: Path) -> Path:
    """The job folder for *path*: a folder, its manifest, or a scored edit."""
    path = path.expanduser()
    if path.is_dir():
        return path
    if path.name == MANIFEST_NAME and path.is_file():
        return path.parent
    beside = path.parent / f"{path.name}.reelscore"
    if (beside / MANIFEST_NAME).is_file():
        return beside
    if path.is_file():
        found = _folder_from_score_clip(path)
        if found is not None:
            return found
        raise JobError(f"{str(path)!r} names no reelscore job folder: there is no "
                       f"{beside.name!r} beside it and no score track pointing into one",
                       hint="pass the job folder (the --work-dir of the run) instead")
    raise JobError(f"no job folder or scored edit at {str(path)!r}",
                   hint="pass the job folder (default: OUTPUT.reelscore beside the scored edit)")


def _folder_from_score_clip(edit: Path) -> Path | None:
    """The job folder a scored edit's score clip points into (``.../audio/NAME.score.wav``)."""
    import opentimelineio as otio

    from reelscore.timeline import url_to_path_candidates
    from reelscore.writeback.score_track import ADAPTER_ERRORS

    try:
        timeline = otio.adapters.read_from_file(str(edit))
    except ADAPTER_ERRORS + (OSError,):  # not an edit OTIO can read: no score clip to follow
        return None
    for clip in timeline.find_clips():
        if "reelscore" not in clip.metadata:
            continue
        ref = clip.media_reference
        if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
            continue
        for candidate in url_to_path_candidates(ref.target_url):
            wav = Path(candidate)
            folder = (wav if wav.is_absolute() else edit.parent / wav).parent.parent
            if (folder / MANIFEST_NAME).is_file():
                return folder
    return None


def read_job_folder(path: Path) -> JobFolder:
    """Read a job folder for reporting; only a folder with no readable manifest is refused."""
    folder = find_job_folder(path)
    manifest_path = folder / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
    except FileNotFoundError:
        raise JobError(f"{str(folder)!r} has no {MANIFEST_NAME}: it is not a reelscore job folder "
                       "(or the run stopped before planning)",
                       hint="pass the --work-dir of a run") from None
    except (OSError, ValueError) as exc:
        raise JobError(f"the manifest {str(manifest_path)!r} is unreadable ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise JobError(f"{str(manifest_path)!r} is not a {MANIFEST_SCHEMA} manifest",
                       hint="use the reelscore version that wrote it")
    missing: list[str] = []
    plan: ScorePlan | None = None
    if "plan" in manifest:
        try:
            plan = ScorePlan.model_validate(manifest["plan"])
        except ValidationError as exc:
            missing.append(f"the plan cannot be read ({exc.errors()[0].get('msg')})")
    else:
        missing.append("the plan (the run stopped before planning finished)")
    renders: dict[str, RenderRecord] = {}
    for vid, raw in dict(manifest.get("renders") or {}).items():
        try:
            renders[vid] = RenderRecord.model_validate(raw)
        except ValidationError:
            missing.append(f"the render record of {vid} cannot be read")
    requests: dict[str, RequestRecord] = {}
    for rid, raw in dict(manifest.get("requests") or {}).items():
        try:
            requests[rid] = RequestRecord.model_validate(raw)
        except ValidationError:
            missing.append(f"the record of request {rid} cannot be read")
    music_changes: MusicChanges | None = None
    if manifest.get("music_changes") is not None:
        try:
            music_changes = MusicChanges.model_validate(manifest["music_changes"])
        except ValidationError:
            missing.append("the music-change measurements cannot be read")
    recut: RecutLineage | None = None
    if manifest.get("recut") is not None:
        try:
            recut = RecutLineage.model_validate(manifest["recut"])
        except ValidationError:
            missing.append("the recut lineage (what was kept from the previous job) cannot be "
                           "read")
    job = JobFolder(folder, manifest, plan, renders, requests, missing, music_changes, recut)
    generated = ({g.id for g in recut.generated()} if recut is not None and not recut.dry_run
                 else None)
    if plan is not None:
        for req in plan.requests:
            if generated is not None and req.id not in generated:
                continue  # a recut sends only the requests its lineage names

            rec = requests.get(req.id)
            if rec is None or rec.status != "done":
                status = rec.status if rec is not None else "not sent"
                missing.append(f"the music of request {req.id} ({req.range.record_in}-"
                               f"{req.range.record_out}): {status}")
    if job.music_wav is None:
        missing.append("the score WAV (the run did not reach loudness normalisation)"
                       if not job.outputs.get("music_wav") else
                       f"the score WAV {job.outputs['music_wav']} (moved or deleted)")
    if "edit" not in job.outputs:
        missing.append("the scored edit (not written yet, or the run wrote none)")
    return job
