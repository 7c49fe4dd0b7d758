"""Run the whole job: load -> scenes -> plan -> render -> generate -> conform -> loudness -> write.

``score_timeline`` runs the steps (``reelscore.steps``) inside a job folder and records everything
in its manifest; ``score_file`` adds reading the edit and writing the result. ``plan_edit`` (pure
planning) and the result types are re-exported here for front ends.

Render and generation overlap: requests are rendered one at a time in plan order, and each is
handed to the generation pool as soon as its clips exist, so request k+1 renders while request k
uploads and generates; up to ``settings.concurrency`` requests are at the service at once. The
answers are joined in plan order, whatever order they arrive in.

Resume: rerunning with the same job folder reuses every clip whose cache key and sha256 still
match and every provider response already stored; a request that was sent but whose response was
not stored is never sent again without ``resubmit`` (it may have been charged).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import opentimelineio as otio

from reelscore.clip_audio import check_audio_route, with_sound
from reelscore.fsutil import sha256_file
from reelscore.job import Job
from reelscore.media_check import check_media
from reelscore.plan import PlannedRequest
from reelscore.providers import GeneratedAudio, Provider, ProviderConfig, make_provider
from reelscore.recut import fingerprint
from reelscore.render import FFmpegRenderer, Renderer
from reelscore.settings import NoProgress, ProgressSink, RequestState, ScoreSettings
from reelscore.steps.finishing import ScoreResult, finish, safe_name
from reelscore.steps.generation import GenerationPool, Outgoing, prepare, send
from reelscore.steps.planning import PlannedEdit, default_renderer, plan_edit
from reelscore.steps.rendering import ClipRenderer
from reelscore.timecode import exact_rate
from reelscore.timeline import LoadedEdit, load_edit, normalise
from reelscore.writeback import check_output_path


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
    settings: ScoreSettings, progress: ProgressSink,
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

    pool = GenerationPool(settings.concurrency, run, answered)
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
) -> ScoreResult:
    """Score a timeline: returns a scored copy (the input object is never modified).

    With *output_path*, the scored edit is also written there (format from the extension).
    The job folder defaults to ``OUTPUT.reelscore`` beside the output, else
    ``<timeline name>.reelscore`` in the current directory.
    """
    settings = settings or ScoreSettings()
    use_audio = bool(settings.generation.use_audio_as_reference)
    check_audio_route(use_audio=use_audio, method=settings.method)  # before any file is written
    progress = progress or NoProgress()
    loaded = timeline if isinstance(timeline, LoadedEdit) else normalise(timeline, path=source_path)
    if work_dir is None:
        work_dir = (default_work_dir(output_path) if output_path is not None
                    else Path.cwd() / f"{safe_name(loaded.timeline.name or 'score')}.reelscore")
    job = Job(work_dir)
    with job.locked():
        job.open()
        progress.stage("plan")
        compose_mode = settings.method == "compose"  # no clips: the sources need not be online
        planned = plan_edit(loaded, settings, check_media=not compose_mode)
        plan = planned.plan
        job.set("input", {"path": str(loaded.path) if loaded.path else None,
                          "sha256": sha256_file(loaded.path) if loaded.path and loaded.path.is_file()
                          else None,
                          "adapter": loaded.adapter, "timeline": loaded.timeline.name},
                save=False)
        job.set("settings", settings.model_dump(mode="json"), save=False)
        job.set("plan", plan.model_dump(mode="json"))
        if compose_mode:
            from reelscore.steps.composing import compose_all

            provider = provider or make_provider(settings.provider, provider_config)
            provider.preflight()
            answers = compose_all(plan, job, provider, settings, progress)
            return finish(loaded, plan, job, answers, settings, progress,
                          provider_name=provider.name, output_path=output_path)
        renderer = renderer or default_renderer(
            planned, settings, on_frames=lambda n: progress.advance("render", n))
        if isinstance(renderer, FFmpegRenderer):  # it reads the sources: are they video?
            check_media(planned.picture, planned.resolver, plan.range.start, plan.range.end,
                        plan.start_frame, drop_frame=plan.drop_frame)
        if use_audio:  # the clips carry their range's sound (the edit's audio checked first)
            renderer = with_sound(renderer, loaded, planned.resolver, plan)
        provider = provider or make_provider(settings.provider, provider_config)
        provider.preflight()  # fail on a missing key or a refused plan before rendering anything

        results = _render_and_generate(planned, job, renderer, provider, settings, progress)
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
) -> ScoreResult:
    """Read an edit file, score it and write the scored edit (format from the extension)."""
    settings = settings or ScoreSettings()
    check_output_path(output_path, force=force, inputs=[input_path])
    loaded = load_edit(input_path, rate=exact_rate(settings.rate) if settings.rate else None)
    renderer = None
    if renderer_factory is not None:
        renderer = renderer_factory(plan_edit(loaded, settings))
    return score_timeline(loaded, settings, work_dir=work_dir or default_work_dir(output_path),
                          renderer=renderer, provider=provider, provider_config=provider_config,
                          progress=progress, output_path=output_path)


__all__ = [
    "PlannedEdit",
    "PlannedRequest",
    "ScoreResult",
    "ScoreSettings",
    "default_renderer",
    "default_work_dir",
    "plan_edit",
    "score_file",
    "score_timeline",
]
