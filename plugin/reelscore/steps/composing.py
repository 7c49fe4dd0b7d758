"""The compose step (``--method compose``): the cut -> composition plans -> the provider.

Nothing is rendered: ``composition_for`` builds one composition plan per planned request from
the scenes (``reelscore.compose``, styles from ``--description``/``--tag`` and an optional
``--brief``), or reads a reviewed plan file (``--composition``) and checks it against the edit
first (``reelscore.composition_check``): a plan for another edit, or one that breaks a limit, is
refused before any request. ``compose_all`` sends each plan through the generation step's rules
(``decide``/``send``/``GenerationPool``): the request key holds the whole plan, so a stored
answer is reused only for the same plan, and a request that may have been charged is never sent
again without ``--resubmit``. The plans sent are kept in the job folder (``composition.json``).
With ``--draft-plan`` the styles are drafted first (``reelscore.steps.drafting``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from reelscore.brief import parse_brief
from reelscore.compose import (
    ComposeSettings,
    CompositionFile,
    compose,
    composition_json,
    read_composition,
    section_starts,
)
from reelscore.composition_check import check_against_edit
from reelscore.errors import InputError, PlanRejectedError
from reelscore.fsutil import atomic_write_text
from reelscore.job import Job
from reelscore.musicplan import plan_kind, plan_model, sections_of
from reelscore.plan import ScorePlan
from reelscore.providers import ComposeRequest, GeneratedAudio, Provider
from reelscore.settings import ProgressSink, RequestState, ScoreSettings
from reelscore.slots import ServiceSlots
from reelscore.steps.drafting import DRAFTS_FILE, draft_composition, read_drafts, write_drafts
from reelscore.steps.generation import GenerationPool, Outgoing, decide, send
from reelscore.timecode import frames_to_tc
from reelscore.writeback import ScoreMark

DEFAULT_MODEL = "music_v2"
SUGGESTED = "composition.suggested.json"  # a bad_composition_plan answer's suggestion
SUGGESTION_RAW = "composition.suggestion.raw.json"


def _read(path: Path, what: str, flag: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the {what} {path}: {exc.strerror or exc}",
                         hint=f"check the path given to {flag}") from None


def compose_settings(settings: ScoreSettings) -> ComposeSettings:
    g = settings.generation
    return ComposeSettings(model_id=plan_model(g.model_id or DEFAULT_MODEL),
                           description=g.description or "", tags=list(g.tags))


def composition_for(plan: ScorePlan, settings: ScoreSettings,
                    cuts: Sequence[int] = ()) -> CompositionFile:
    """The plans to send: the reviewed file (checked against the edit) or built from the cut.
    *cuts*: the picture's cuts (stack frames), where a scene longer than a section is split."""
    if settings.composition is not None:
        path = settings.composition
        file = read_composition(_read(path, "composition plan", "--composition"), str(path))
        check_against_edit(file, plan, source=str(path), cuts=cuts)
        if settings.generation.model_id is not None:
            wanted = plan_model(settings.generation.model_id)
            other = [r.id for r in file.requests if r.model_id != wanted]
            if other:
                raise InputError(f"{path}: requests {', '.join(other)} were planned for another "
                                 f"model than --model {wanted}",
                                 hint="leave --model out to use the file's, or re-plan")
        return file
    brief = None
    if settings.brief is not None:
        brief = parse_brief(_read(settings.brief, "brief", "--brief"), str(settings.brief), plan)
    return compose(plan, compose_settings(settings), brief=brief, cuts=cuts)


def write_composition(path: Path, file: CompositionFile) -> None:
    atomic_write_text(path, composition_json(file))


def requests_of(file: CompositionFile, settings: ScoreSettings) -> list[ComposeRequest]:
    return [ComposeRequest(request_id=r.id, model_id=r.model_id, composition_plan=r.composition_plan,
                           settings=settings.generation,
                           respect_sections_durations=True if r.model_id == "music_v1" else None)
            for r in file.requests]


def keep_suggestion(exc: PlanRejectedError, file: CompositionFile, job: Job) -> PlanRejectedError:
    """Save the service's suggested plan beside the job (``composition.suggested.json``, the
    composition sent with the refused request's plan replaced, so ``--composition`` takes it)
    and return the error naming it. A suggestion that is not a plan for the request's model is
    saved as it came (``composition.suggestion.raw.json``) and said so."""
    rid = exc.request_id or ""
    req = next((r for r in file.requests if r.id == rid), None)
    kind = plan_kind(req.model_id) if req is not None else None
    try:
        plan = kind.model_validate(exc.suggestion) if kind is not None else None
    except ValidationError:
        plan = None
    if req is None or plan is None:
        path = job.dir / SUGGESTION_RAW
        atomic_write_text(path, json.dumps(exc.suggestion, indent=2) + "\n")
        what = f"its suggestion is not a plan reelscore can send as it is; saved as it came in {path}"
        hint = "copy what fits into a plan from `reelscore plan EDIT --composition FILE`, then pass --composition FILE"
    else:
        suggested = file.model_copy(update={"requests": [
            r.model_copy(update={"composition_plan": plan}) if r.id == rid else r
            for r in file.requests]})
        path = job.dir / SUGGESTED
        write_composition(path, suggested)
        what = f"its suggested plan is saved in {path}"
        hint = (f"review it and pass --composition {path} (it is checked against the edit "
                "first: sections the suggestion moved off their cuts are named)")
    job.set("composition_suggested", {"request": rid, "file": path.name})
    out = PlanRejectedError(f"request {rid}: {exc.message}; {what}", suggestion=exc.suggestion,
                            hint=hint, status_code=exc.status_code)
    out.request_id = rid
    return out


def section_marks(file: CompositionFile, *, drop_frame: bool = False) -> list[ScoreMark]:
    """A marker at every section's first frame, named as the section (``--markers`` with
    ``--method compose``): where the music is asked to change, not where the scenes were."""
    rate = file.fraction_rate
    marks: list[ScoreMark] = []
    for req in file.requests:
        views = sections_of(req.composition_plan)
        for i, (view, frame) in enumerate(zip(views, section_starts(req, rate)), 1):
            record = frames_to_tc(file.start_frame + frame, rate, drop_frame=drop_frame)
            marks.append(ScoreMark(frame, view.name or f"Section {len(marks) + 1}",
                                   f"{req.id} section {i}: {record}, {view.duration_ms} ms",
                                   {"request": req.id, "section": i,
                                    "duration_ms": view.duration_ms}))
    return marks


def compose_all(plan: ScorePlan, job: Job, provider: Provider, settings: ScoreSettings,
                progress: ProgressSink, *, cuts: Sequence[int] = (),
                slots: ServiceSlots | None = None,
                ) -> tuple[dict[str, GeneratedAudio], list[ScoreMark]]:
    """Compose every request's plan, reusing stored answers; answers in plan order, and the
    sections' markers."""
    file = composition_for(plan, settings, cuts)
    drafted: dict[str, object] | None = None
    if settings.draft_plan:
        progress.stage("draft plan", len(file.requests))
        file, drafts, reused = draft_composition(
            file, provider, stored=read_drafts(job.dir / DRAFTS_FILE), drop_frame=plan.drop_frame,
            on_event=lambda name, data: job.event(f"draft_{name}", data, save=False))
        write_drafts(job.dir / DRAFTS_FILE, drafts)
        drafted = {"file": DRAFTS_FILE, "provider": drafts.provider,
                   "requests": len(drafts.requests), "reused": reused}
        if reused:
            progress.note(f"reusing {reused} drafted plan(s) of an earlier run (same cut, same brief)")
    write_composition(job.dir / "composition.json", file)
    job.set("composition", {"file": "composition.json", "source": str(settings.composition)
                            if settings.composition else "built from the cut",
                            "requests": [{"id": r.id, "model_id": r.model_id,
                                          "sections": len(sections_of(r.composition_plan))}
                                         for r in file.requests],
                            **({"drafted": drafted} if drafted else {})})
    progress.stage("generate", len(file.requests))
    results: dict[str, GeneratedAudio] = {}
    lock = threading.Lock()

    def answered(request_id: str, audio: GeneratedAudio) -> None:
        with lock:
            results[request_id] = audio

    def state(request_id: str, value: RequestState) -> None:
        progress.request_state(request_id, value)
        if value == "done":
            progress.advance("generate")

    def send_one(out: Outgoing) -> GeneratedAudio:
        try:
            return send(out, job, provider, state)
        except PlanRejectedError as exc:
            exc.request_id = out.request.request_id
            raise

    pool = GenerationPool(settings.concurrency, send_one, answered, slots)
    try:
        for req in requests_of(file, settings):
            pool.check()
            decision = decide(req, job, provider, settings)
            if isinstance(decision, GeneratedAudio):
                answered(req.request_id, decision)
                progress.note(f"{req.request_id}: reusing the stored response (not sent again)")
                state(req.request_id, "done")
            else:
                assert isinstance(decision, Outgoing)
                state(req.request_id, "queued")
                pool.submit(decision)
        pool.finish()
    except PlanRejectedError as exc:
        pool.stop(wait=True)
        raise keep_suggestion(exc, file, job) from None
    except Exception:
        pool.stop(wait=True)
        raise
    except BaseException:
        pool.stop(wait=False)
        raise
    return ({r.id: results[r.id] for r in plan.requests},
            section_marks(file, drop_frame=plan.drop_frame))
