"""The compose step (``--method compose``): the cut -> composition plans -> the provider.

Nothing is rendered: ``composition_for`` builds one composition plan per planned request from
the scenes (``reelscore.compose``, styles from ``--description``/``--tag`` and an optional
``--brief``), or reads a reviewed plan file (``--composition``) and checks it against the edit
first (``reelscore.composition_check``): a plan for another edit, or one that breaks a limit, is
refused before any request. ``compose_all`` sends each plan through the generation step's rules
(``decide``/``send``/``GenerationPool``): the request key holds the whole plan, so a stored
answer is reused only for the same plan, and a request that may have been charged is never sent
again without ``--resubmit``. The plans sent are kept in the job folder (``composition.json``).
"""

from __future__ import annotations

import threading
from pathlib import Path

from reelscore.brief import parse_brief
from reelscore.compose import (
    ComposeSettings,
    CompositionFile,
    compose,
    composition_json,
    read_composition,
)
from reelscore.composition_check import check_against_edit
from reelscore.errors import InputError
from reelscore.fsutil import atomic_write_text
from reelscore.job import Job
from reelscore.musicplan import plan_model, sections_of
from reelscore.plan import ScorePlan
from reelscore.providers import ComposeRequest, GeneratedAudio, Provider
from reelscore.settings import ProgressSink, RequestState, ScoreSettings
from reelscore.slots import ServiceSlots
from reelscore.steps.generation import GenerationPool, Outgoing, decide, send

DEFAULT_MODEL = "music_v2"


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


def composition_for(plan: ScorePlan, settings: ScoreSettings) -> CompositionFile:
    """The plans to send: the reviewed file (checked against the edit) or built from the cut."""
    if settings.composition is not None:
        path = settings.composition
        file = read_composition(_read(path, "composition plan", "--composition"), str(path))
        check_against_edit(file, plan, source=str(path))
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
    return compose(plan, compose_settings(settings), brief=brief)


def write_composition(path: Path, file: CompositionFile) -> None:
    atomic_write_text(path, composition_json(file))


def requests_of(file: CompositionFile, settings: ScoreSettings) -> list[ComposeRequest]:
    return [ComposeRequest(request_id=r.id, model_id=r.model_id, composition_plan=r.composition_plan,
                           settings=settings.generation,
                           respect_sections_durations=True if r.model_id == "music_v1" else None)
            for r in file.requests]


def compose_all(plan: ScorePlan, job: Job, provider: Provider, settings: ScoreSettings,
                progress: ProgressSink,
                slots: ServiceSlots | None = None) -> dict[str, GeneratedAudio]:
    """Compose every request's plan, reusing stored answers; answers in plan order."""
    file = composition_for(plan, settings)
    write_composition(job.dir / "composition.json", file)
    job.set("composition", {"file": "composition.json", "source": str(settings.composition)
                            if settings.composition else "built from the cut",
                            "requests": [{"id": r.id, "model_id": r.model_id,
                                          "sections": len(sections_of(r.composition_plan))}
                                         for r in file.requests]})
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

    pool = GenerationPool(settings.concurrency, lambda out: send(out, job, provider, state),
                          answered, slots)
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
    except Exception:
        pool.stop(wait=True)
        raise
    except BaseException:
        pool.stop(wait=False)
        raise
    return {r.id: results[r.id] for r in plan.requests}
