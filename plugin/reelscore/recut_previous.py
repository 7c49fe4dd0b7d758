"""``--previous OLD``: find the previous score's job, check its audio, compare the two cuts.

OLD is the previous scored edit or its job folder. For an edit: ``OLD.reelscore/`` beside it (the
default job folder), else the job named by the ``job_id`` in its score clip's
``metadata["reelscore"]``, found in the folder holding that clip's WAV (``<job>/audio/``). The
job's manifest must carry a ``recut_basis`` (every score since it was recorded does); its music
WAV must exist with the recorded sha256.

:func:`recut_dry_run` matches the new cut against it (:func:`reelscore.recut.match_cuts`), lays out
kept and to-generate stretches (:func:`reelscore.recut_keep.kept_ranges`, handles of the plan's
crossfade), lists the requests an update would send (:mod:`reelscore.recut_requests`) and saves
``recut/changes.json``, ``recut/changes.txt`` and ``recut/plan.json`` in the
new job folder. Nothing is rendered or sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import opentimelineio as otio

from reelscore.errors import InputError
from reelscore.fsutil import atomic_write_text, sha256_file
from reelscore.job import MANIFEST_NAME, Job, RecutBasis, read_recut_basis
from reelscore.plan import PlanLimits
from reelscore.recut import ChangeList, fingerprint, match_cuts
from reelscore.recut_keep import RecutPlan, change_list_text, cost_text, kept_ranges
from reelscore.recut_requests import job_plan, plan_stretches, requests_text
from reelscore.steps.planning import PlannedEdit

AFRESH = "score the new cut afresh (without --previous)"


@dataclass(frozen=True)
class Previous:
    job_dir: Path
    job_id: str
    basis: RecutBasis


@dataclass(frozen=True)
class RecutPreview:
    changes: ChangeList
    plan: RecutPlan
    text: str  # the change list table and the cost paragraph


def _job_of_edit(edit: Path) -> Path:
    beside = edit.parent / f"{edit.name}.reelscore"
    if (beside / MANIFEST_NAME).is_file():
        return beside
    try:
        tl = otio.adapters.read_from_file(str(edit))
    except Exception as exc:
        raise InputError(f"--previous {str(edit)!r} cannot be read as an edit: {exc}",
                         hint="point --previous at the previous scored edit or its job folder "
                              "(OUTPUT.reelscore)") from exc
    for clip in tl.find_clips():
        meta = clip.metadata.get("reelscore")
        ref = clip.media_reference
        if not isinstance(meta, Mapping) or not isinstance(ref, otio.schema.ExternalReference):
            continue
        job_id = str(meta.get("job_id") or "")
        wav = Path(otio.url_utils.filepath_from_url(ref.target_url or ""))
        job_dir = wav.parent.parent
        manifest = job_dir / MANIFEST_NAME
        if job_id and manifest.is_file() and _manifest(manifest).get("job_id") == job_id:
            return job_dir
    raise InputError(
        f"no reelscore job found for --previous {str(edit)!r}: no {beside.name}/ beside it and "
        "no reelscore score clip in it whose job folder still exists",
        hint=f"point --previous at the previous job folder, or {AFRESH}")


def _manifest(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"the previous job's manifest {str(path)!r} is unreadable ({exc})",
                         hint=AFRESH) from exc
    if not isinstance(data, dict):
        raise InputError(f"the previous job's manifest {str(path)!r} is not a reelscore manifest",
                         hint=AFRESH)
    return data


def load_previous(previous: Path) -> Previous:
    """The previous job (see the module docstring), its audio checked."""
    if not previous.exists():
        raise InputError(f"--previous {str(previous)!r} does not exist",
                         hint="point it at the previous scored edit or its job folder")
    job_dir = previous if previous.is_dir() else _job_of_edit(previous)
    manifest = job_dir / MANIFEST_NAME
    if not manifest.is_file():
        raise InputError(f"--previous {str(previous)!r} is a folder without a {MANIFEST_NAME}",
                         hint="point it at the previous scored edit or its job folder "
                              "(OUTPUT.reelscore)")
    data = _manifest(manifest)
    basis = read_recut_basis(data)
    if basis is None:
        raise InputError(
            f"the previous job {str(job_dir)!r} was scored by a reelscore that did not record what "
            "an update needs (no recut_basis in its manifest)",
            hint=f"{AFRESH}; later updates can then build on that score")
    wav = Path(basis.music_wav)
    if not wav.is_file():
        raise InputError(f"the previous score's music {str(wav)!r} is missing",
                         hint=f"restore it, or {AFRESH}")
    digest = sha256_file(wav)
    if digest != basis.sha256:
        raise InputError(
            f"the previous score's music {str(wav)!r} was altered since it was delivered "
            f"(sha256 {digest[:12]}..., recorded {basis.sha256[:12]}...)",
            hint=f"restore the delivered file, or {AFRESH}")
    return Previous(job_dir=job_dir, job_id=str(data.get("job_id", "")), basis=basis)


def preview(planned: PlannedEdit, previous: Previous, *, regenerate_trimmed: bool) -> RecutPreview:
    """The change list and kept/generated stretches of *planned* against *previous*."""
    plan = planned.plan
    new = fingerprint(planned.picture, plan.scenes, start_frame=plan.start_frame)
    changes = match_cuts(previous.basis.fingerprint, new)
    recut = kept_ranges(changes, handle_frames=plan.crossfade_frames,
                        regenerate_trimmed=regenerate_trimmed)
    drop = plan.drop_frame or previous.basis.drop_frame
    text = "\n".join([change_list_text(changes, drop_frame=drop), "", cost_text(recut)])
    return RecutPreview(changes, recut, text)


def save_preview(job: Job, previous: Previous, result: RecutPreview) -> Path:
    """Write the change list (JSON and text) and the recut plan into *job*; the folder."""
    folder = job.dir / "recut"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "changes.json", result.changes.model_dump_json(indent=2) + "\n")
    atomic_write_text(folder / "changes.txt", result.text + "\n")
    atomic_write_text(folder / "plan.json", result.plan.model_dump_json(indent=2) + "\n")
    job.set("recut", {"previous_job_id": previous.job_id,
                      "previous_manifest": str(previous.job_dir / MANIFEST_NAME),
                      "dry_run": True, "changes": "recut/changes.json",
                      "plan": "recut/plan.json"})
    return folder


def check_new_job(previous: Previous, work_dir: Path) -> None:
    """The new version gets its own job folder: the previous one stays as it was delivered."""
    if work_dir.resolve() == previous.job_dir.resolve():
        raise InputError(
            f"the new job folder {str(work_dir)!r} is the previous version's job folder",
            hint="write the new version to another -o OUTPUT (or give it its own --work-dir)")


def recut_dry_run(planned: PlannedEdit, previous_path: Path, work_dir: Path, *,
                  regenerate_trimmed: bool, limits: PlanLimits,
                  min_frames: int = 0) -> tuple[RecutPreview, Path]:
    """Load the previous job, compare, save in the job folder *work_dir*; nothing sent. The
    text ends with the requests an update would send (and the plan saved holds only them)."""
    previous = load_previous(previous_path)
    check_new_job(previous, work_dir)
    result = preview(planned, previous, regenerate_trimmed=regenerate_trimmed)
    stretches = plan_stretches(planned.plan, result.plan, limits, min_frames=min_frames)
    result = replace(result, text="\n".join(
        [result.text, requests_text(stretches, planned.plan)]))
    job = Job(work_dir)
    with job.locked():
        job.open()
        job.set("plan", job_plan(planned.plan, stretches).model_dump(mode="json"), save=False)
        folder = save_preview(job, previous, result)
    return result, folder
