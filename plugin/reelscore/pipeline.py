"""Run the whole job: load -> scenes -> plan -> render -> generate -> conform -> loudness -> write.

``score_timeline`` runs the steps (``reelscore.steps``) inside a job folder and records everything
in its manifest; ``score_file`` adds reading the edit and writing the result. ``plan_edit`` (pure
planning) and the result types are re-exported here for front ends.

Render and generation overlap: requests are rendered one at a time in plan order, and each is
handed to the generation pool as soon as its clips exist, so request k+1 renders while request k
uploads and generates; up to ``settings.concurrency`` requests are at the service at once. The
answers are joined in plan order, whatever order they arrive in.

With ``settings.previous`` the run is an update of that score: kept music is copied from it and
only the new stretches are rendered and sent (``reelscore.recut_update``).

Stages (``run_until``, ``reelscore score --stop-after render|generate``): a run can stop once
every clip is rendered (no provider is made, no key is needed) or once every answer is stored; the
next run on the same job folder reuses them and goes on. A render farm runs the three stages as
dependent tasks (``reelscore.openjd``).

Slots: with *slots* (:mod:`reelscore.slots`, shared by the jobs of a batch) every request also
holds a slot while it is at the service.

Resume: rerunning with the same job folder reuses every clip whose cache key and sha256 still
match and every provider response already stored; a request that was sent but whose response was
not stored is never sent again without ``resubmit`` (it may have been charged).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import opentimelineio as otio

from reelscore.clip_audio import check_audio_route, with_sound
from reelscore.errors import InputError, UnsupportedError
from reelscore.fsutil import sha256_file
from reelscore.job import Job
from reelscore.media_check import check_media
from reelscore.plan import PlannedRequest
from reelscore.providers import GeneratedAudio, Provider, ProviderConfig, make_provider
from reelscore.recut import fingerprint
from reelscore.render import FFmpegRenderer, Renderer
from reelscore.scenes import picture_cuts
from reelscore.settings import NoProgress, ProgressSink, RequestState, ScoreSettings
from reelscore.slots import ServiceSlots
from reelscore.steps.drafting import check_draft_settings
from reelscore.steps.finishing import ScoreResult, finish, safe_name
from reelscore.steps.generation import GenerationPool, Outgoing, prepare, send
from reelscore.steps.planning import PlannedEdit, default_renderer, plan_edit
from reelscore.steps.rendering import ClipRenderer, render_clips
from reelscore.timecode import exact_rate
from reelscore.timeline import LoadedEdit, load_edit, normalise
from reelscore.writeback import check_output_format, check_output_path

StopAfter = Literal["render", "generate"]


@dataclass(frozen=True)
class StageDone:
    """A run stopped after a stage (``stop_after``): what the job folder now holds."""

    stage: StopAfter
    manifest_path: Path
    requests: int  # requests in the plan
    answered: int  # requests whose answer is stored (0 after "render")


def parse_stop_after(value: str | None) -> StopAfter | None:
    """``--stop-after``'s value as a stage (None: run to the end)."""
    if value is None:
        return None
    if value == "render":
        return "render"
    if value == "generate":
        return "generate"
    raise InputError(f"--stop-after {value!r}: not a stage",
                     hint="use --stop-after render or --stop-after generate")


class _GenerateProgress:
    """The "generate" stage and each request's state, reported from several threads.

    The stage is opened once rendering is over (a front end may close the previous stage when
    a new one opens); requests answered before that are counted in when it opens.
    """

    def __init__(self, progress: ProgressSink, total: int) -> None:
        self.progress = progress
        self.total = total
        self._lock = threading.Lock()
        self._open = False
        self._done = 0

    def state(self, request_id: str, state: RequestState) -> None:
        with self._lock:
            self.progress.request_state(request_id, state)
            if state == "done":
                self._done += 1
                if self._open:
                    self.progress.advance("generate")

    def open(self) -> None:
        with self._lock:
            self.progress.stage("generate", self.total)
            self._open = True
            if self._done:
                self.progress.advance("generate", self._done)


def _render_and_generate(
    planned: PlannedEdit, job: Job, renderer: Renderer, provider: Provider,
    settings: ScoreSettings, progress: ProgressSink, slots: ServiceSlots | None = None,
) -> dict[str, GeneratedAudio]:
    """Render request by request while earlier requests are at the service."""
    plan = planned.plan
    progress.stage("render", sum(v.frames for v in plan.videos()))
    clips = ClipRenderer(planned, job, renderer, settings, progress)
    gen = _GenerateProgress(progress, len(plan.requests))
    results: dict[str, GeneratedAudio] = {}
    lock = threading.Lock()

    def answered(request_id: str, audio: GeneratedAudio) -> None:
        with lock:
            results[request_id] = audio

    def run(out: Outgoing) -> GeneratedAudio:
        try:
            return send(out, job, provider, gen.state)
        except BaseException:
            gen.state(out.request.request_id, "failed")
            raise

    pool = GenerationPool(settings.concurrency, run, answered, slots)
    try:
        for req in plan.requests:
            pool.check()  # a request failed: render nothing more
            gen.state(req.id, "rendering")
            decision = prepare(req, clips.render_request(req), job, provider, settings)
            if isinstance(decision, GeneratedAudio):
                answered(req.id, decision)
                progress.note(f"{req.id}: reusing the stored response (not sent again)")
                gen.state(req.id, "done")
            else:
                gen.state(req.id, "queued")
                pool.submit(decision)
        clips.summarise()
        gen.open()
        pool.finish()
    except Exception:
        # Requests already at the service are waited for: their answers are paid for and kept.
        pool.stop(wait=True)
        raise
    except BaseException:
        pool.stop(wait=False)  # interrupted: stop now; sent requests stay "sent"
        raise
    return {r.id: results[r.id] for r in plan.requests}


def score_timeline(
    timeline: otio.schema.Timeline | LoadedEdit,
    settings: ScoreSettings | None = None,
    *,
    work_dir: Path | None = None,
    renderer: Renderer | None = None,
    provider: Provider | None = None,
    provider_config: ProviderConfig | None = None,
    progress: ProgressSink | None = None,
    source_path: Path | None = None,
    output_path: Path | None = None,
    slots: ServiceSlots | None = None,
    written_as: Path | None = None,
) -> ScoreResult:
    """Score a timeline: returns a scored copy (the input object is never modified).

    With *output_path*, the scored edit is also written there (format from the extension).
    *written_as*: where another writer (the OTIO hook's adapter) will write the result; its
    format is checked like *output_path*'s, after planning and before any rendering.
    The job folder defaults to ``OUTPUT.reelscore`` beside the output, else
    ``<timeline name>.reelscore`` in the current directory.
    """
    result = _run(timeline, settings, None, work_dir=work_dir, renderer=renderer,
                  provider=provider, provider_config=provider_config, progress=progress,
                  source_path=source_path, output_path=output_path, slots=slots,
                  written_as=written_as)
    assert isinstance(result, ScoreResult)
    return result


def _run(
    timeline: otio.schema.Timeline | LoadedEdit,
    settings: ScoreSettings | None,
    stop_after: StopAfter | None,
    *,
    work_dir: Path | None,
    renderer: Renderer | None,
    provider: Provider | None,
    provider_config: ProviderConfig | None,
    progress: ProgressSink | None,
    source_path: Path | None,
    output_path: Path | None,
    slots: ServiceSlots | None,
    written_as: Path | None = None,
) -> ScoreResult | StageDone:
    settings = settings or ScoreSettings()
    written_as = output_path or written_as
    use_audio = bool(settings.generation.use_audio_as_reference)
    check_audio_route(use_audio=use_audio, method=settings.method)  # before any file is written
    if settings.previous is not None and settings.duck:
        raise InputError("--duck with --previous: an update keeps the previous score's samples "
                         "as they were delivered, so it cannot duck them anew",
                         hint="update without --duck (a ducked previous score stays ducked), or "
                         "score the new cut afresh with --duck")
    progress = progress or NoProgress()
    loaded = timeline if isinstance(timeline, LoadedEdit) else normalise(timeline, path=source_path)
    if work_dir is None:
        work_dir = (default_work_dir(output_path) if output_path is not None
                    else Path.cwd() / f"{safe_name(loaded.timeline.name or 'score')}.reelscore")
    if use_audio or settings.draft_plan:  # capabilities checked before the job folder is touched
        provider = provider or make_provider(settings.provider, provider_config)
    if use_audio and provider is not None and not provider.hears_clip_audio:
        raise UnsupportedError(
            f"--use-audio-as-reference: the {provider.name} provider does not take clips "
            "with their sound", hint="drop --use-audio-as-reference, or use --provider "
            "elevenlabs")
    check_draft_settings(settings, provider)
    if settings.previous is not None:  # an update of a previous score (reelscore.recut_update)
        from reelscore.recut_update import update_from_previous

        progress.stage("plan")
        planned = plan_edit(loaded, settings, check_media=settings.method != "compose")
        if written_as is not None:
            check_output_format(loaded, planned.plan, written_as)
        return update_from_previous(
            planned, settings.previous, output_path, work_dir, settings,
            generate=_render_and_generate, renderer=renderer, provider=provider,
            provider_config=provider_config, progress=progress)
    job = Job(work_dir)
    with job.locked():
        job.open()
        progress.stage("plan")
        compose_mode = settings.method == "compose"  # no clips: the sources need not be online
        planned = plan_edit(loaded, settings, check_media=not compose_mode)
        plan = planned.plan
        if written_as is not None:  # a writer that cannot hold the edit: before any render
            check_output_format(loaded, plan, written_as)
        job.set("input", {"path": str(loaded.path) if loaded.path else None,
                          "sha256": sha256_file(loaded.path) if loaded.path and loaded.path.is_file()
                          else None,
                          "adapter": loaded.adapter, "timeline": loaded.timeline.name},
                save=False)
        job.set("settings", settings.model_dump(mode="json"), save=False)
        job.set("plan", plan.model_dump(mode="json"))
        if compose_mode:
            from reelscore.steps.composing import compose_all

            if stop_after == "render":  # composing renders nothing
                return StageDone("render", job.manifest_path, len(plan.requests), 0)
            provider = provider or make_provider(settings.provider, provider_config)
            provider.preflight_compose()
            answers, marks = compose_all(
                plan, job, provider, settings, progress,
                cuts=picture_cuts(planned.picture, plan.range.start, plan.range.end),
                slots=slots)
            if stop_after == "generate":
                return StageDone("generate", job.manifest_path, len(plan.requests), len(answers))
            return finish(loaded, plan, job, answers, settings, progress,
                          provider_name=provider.name, output_path=output_path, marks=marks)
        renderer = renderer or default_renderer(
            planned, settings, on_frames=lambda n: progress.advance("render", n))
        if isinstance(renderer, FFmpegRenderer):  # it reads the sources: are they video?
            check_media(planned.picture, planned.resolver, plan.range.start, plan.range.end,
                        plan.start_frame, drop_frame=plan.drop_frame)
        if use_audio:  # the clips carry their range's sound (the edit's audio checked first)
            renderer = with_sound(renderer, loaded, planned.resolver, plan)
        if stop_after == "render":  # no provider: a render node needs no key
            render_clips(planned, job, renderer, settings, progress)
            return StageDone("render", job.manifest_path, len(plan.requests), 0)
        provider = provider or make_provider(settings.provider, provider_config)
        provider.preflight()  # fail on a missing key or a refused plan before rendering anything

        results = _render_and_generate(planned, job, renderer, provider, settings, progress,
                                       slots)
        if stop_after == "generate":
            return StageDone("generate", job.manifest_path, len(plan.requests), len(results))
        cut = fingerprint(planned.picture, plan.scenes, start_frame=plan.start_frame)
        return finish(loaded, plan, job, results, settings, progress, provider_name=provider.name,
                      output_path=output_path, cut=cut)


def default_work_dir(output: Path) -> Path:
    return output.parent / f"{output.name}.reelscore"


def score_file(
    input_path: Path,
    output_path: Path,
    settings: ScoreSettings | None = None,
    *,
    work_dir: Path | None = None,
    force: bool = False,
    provider: Provider | None = None,
    provider_config: ProviderConfig | None = None,
    progress: ProgressSink | None = None,
    renderer_factory: Callable[[PlannedEdit], Renderer] | None = None,
    slots: ServiceSlots | None = None,
) -> ScoreResult:
    """Read an edit file, score it and write the scored edit (format from the extension)."""
    result = _run_file(input_path, output_path, settings, None, work_dir=work_dir, force=force,
                       provider=provider, provider_config=provider_config, progress=progress,
                       renderer_factory=renderer_factory, slots=slots)
    assert isinstance(result, ScoreResult)
    return result


def run_until(
    input_path: Path,
    output_path: Path,
    settings: ScoreSettings,
    stop_after: StopAfter,
    *,
    work_dir: Path | None = None,
    force: bool = False,
    provider_config: ProviderConfig | None = None,
    progress: ProgressSink | None = None,
    slots: ServiceSlots | None = None,
) -> StageDone:
    """Run ``score_file``'s stages up to *stop_after* into the job folder of *output_path*;
    the output itself is written by a later full run (which resumes from the job folder)."""
    result = _run_file(input_path, output_path, settings, stop_after, work_dir=work_dir,
                       force=force, provider=None, provider_config=provider_config,
                       progress=progress, renderer_factory=None, slots=slots)
    assert isinstance(result, StageDone)
    return result


def _run_file(
    input_path: Path, output_path: Path, settings: ScoreSettings | None,
    stop_after: StopAfter | None, *, work_dir: Path | None, force: bool,
    provider: Provider | None, provider_config: ProviderConfig | None,
    progress: ProgressSink | None, renderer_factory: Callable[[PlannedEdit], Renderer] | None,
    slots: ServiceSlots | None,
) -> ScoreResult | StageDone:
    settings = settings or ScoreSettings()
    check_output_path(output_path, force=force, inputs=[input_path])
    loaded = load_edit(input_path, rate=exact_rate(settings.rate) if settings.rate else None)
    renderer = None
    if renderer_factory is not None:
        renderer = renderer_factory(plan_edit(loaded, settings))
    return _run(loaded, settings, stop_after, work_dir=work_dir or default_work_dir(output_path),
                renderer=renderer, provider=provider, provider_config=provider_config,
                progress=progress, source_path=None, output_path=output_path, slots=slots)


__all__ = [
    "PlannedEdit",
    "PlannedRequest",
    "ScoreResult",
    "ScoreSettings",
    "StageDone",
    "StopAfter",
    "default_renderer",
    "default_work_dir",
    "parse_stop_after",
    "plan_edit",
    "run_until",
    "score_file",
    "score_timeline",
]
