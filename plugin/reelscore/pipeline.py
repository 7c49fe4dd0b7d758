"""Run the whole job: load -> scenes -> plan -> render -> generate -> conform -> loudness -> write.

``plan_edit`` is pure planning (no ffmpeg except probing a source for its aspect ratio, no
network). ``score_timeline`` runs the steps with side effects inside a job folder and records
everything in its manifest; ``score_file`` adds reading the edit and writing the result.

Resume: rerunning with the same job folder reuses every clip whose cache key and sha256 still
match and every provider response already stored; a request that was sent but whose response was
not stored is never sent again without ``resubmit`` (it may have been charged).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import opentimelineio as otio
from opentimelineio import opentime

from reelscore._version import __version__
from reelscore.conform import (
    SAMPLE_RATE,
    ConformReport,
    conform_request,
    join_requests,
    load_generated,
)
from reelscore.errors import (
    AudioError,
    FFmpegError,
    MediaError,
    OutputError,
    PossiblyChargedError,
    ProviderError,
)
from reelscore.ffmpeg_cli import probe
from reelscore.fsutil import sha256_file
from reelscore.job import Job
from reelscore.media_check import check_media
from reelscore.picture import Picture, build_picture
from reelscore.plan import (
    EncodeSettings,
    PlanLimits,
    PlannedRequest,
    PlannedVideo,
    ScorePlan,
    make_plan,
)
from reelscore.providers import (
    ClipRef,
    GeneratedAudio,
    GenerationRequest,
    Provider,
    ProviderConfig,
    make_provider,
)
from reelscore.render import FFmpegRenderer, Renderer, check_online, plan_encode
from reelscore.scenes import find_scenes, scored_range
from reelscore.settings import NoProgress, ProgressSink, ScoreSettings
from reelscore.timecode import exact_rate, rate_str
from reelscore.timeline import LoadedEdit, MediaResolver, load_edit, normalise
from reelscore.writeback import (
    ScoreMedia,
    add_score_tracks,
    check_output_path,
    verify_written,
    write_edit,
)

log = logging.getLogger(__name__)


@dataclass
class PlannedEdit:
    loaded: LoadedEdit
    picture: Picture
    plan: ScorePlan
    resolver: MediaResolver


@dataclass
class ScoreResult:
    timeline: otio.schema.Timeline
    plan: ScorePlan
    manifest_path: Path
    music_wav: Path
    sfx_wav: Path | None
    record_start: opentime.RationalTime
    duration: opentime.RationalTime
    loudness: dict[str, Any]
    conform: list[dict[str, Any]]
    job_id: str
    output_path: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- plan


def _proxy_size(picture: Picture, resolver: MediaResolver, width: int) -> tuple[int, int]:
    """Proxy frame size from the first online source's aspect ratio (16:9 if none)."""
    for layer in picture.layers:
        for piece in layer:
            ref = piece.clip.media_reference
            if isinstance(ref, otio.schema.GeneratorReference):
                continue
            lookup = resolver.resolve_clip(piece.clip)
            if lookup.path is None:
                continue
            try:
                info = probe(lookup.path)
            except MediaError:
                continue
            if info.width and info.height:
                h = round(width * info.height / info.width / 2) * 2
                return width, max(2, h)
    return width, round(width * 9 / 16 / 2) * 2


def plan_edit(
    loaded: LoadedEdit, settings: ScoreSettings, *, check_media: bool = True,
    limits: PlanLimits | None = None,
) -> PlannedEdit:
    """Decide everything that can be decided without rendering or the network."""
    tl = loaded.timeline
    rate = loaded.rate
    picture = build_picture(tl, rate)
    start, end = scored_range(tl, picture, rate, loaded.start_frame, settings.range_in,
                              settings.range_out)
    edit_dir = loaded.path.parent if loaded.path else None
    resolver = MediaResolver(edit_dir, settings.media_roots,
                             allow_remote=settings.allow_remote_media)
    movie = None
    if settings.reference is not None:  # reference mode: the sources may well be offline
        from reelscore.reference import check_coverage, open_reference

        movie = open_reference(settings.reference, rate, settings.reference_start)
        check_coverage(movie, loaded.start_frame + start, loaded.start_frame + end)
    elif check_media:
        check_online(tl, picture, resolver, start, end, loaded.start_frame)
    scenes = find_scenes(tl, picture, policy=settings.scenes, start=start, end=end,
                         start_frame=loaded.start_frame, min_seconds=settings.min_scene_seconds,
                         scene_track=settings.scene_track, adapter=loaded.adapter)
    width, height = (_proxy_size(picture, resolver, settings.proxy_width) if check_media
                     else (settings.proxy_width, round(settings.proxy_width * 9 / 32) * 2))
    if movie is not None and movie.width and movie.height:
        width = settings.proxy_width
        height = max(2, round(width * movie.height / movie.width / 2) * 2)
    plan = make_plan(
        scenes, rate=rate, start_frame=loaded.start_frame, scene_policy=settings.scenes,
        width=width, height=height, crossfade_seconds=settings.crossfade_seconds,
        limits=limits or settings.limits(), source=str(loaded.path) if loaded.path else None, adapter=loaded.adapter,
        timeline_name=tl.name or "", ignored=picture.ignored,
        notes=loaded.notes + ([movie.describe()] if movie is not None else [])
        + ([f"rendered as the edit plays: {', '.join(picture.honoured)}"]
           if picture.honoured and movie is None else []),
        clip_audio=settings.clip_audio,
    )
    return PlannedEdit(loaded, picture, plan, resolver)


def default_renderer(planned: PlannedEdit, settings: ScoreSettings,
                     on_frames: Callable[[int], None] | None = None) -> Renderer:
    """The renderer a run uses: the reference movie (--reference), else the edit's sources."""
    if settings.reference is not None:
        from reelscore.reference import ReferenceRenderer, open_reference

        movie = open_reference(settings.reference, planned.loaded.rate, settings.reference_start)
        return ReferenceRenderer(movie, on_frames=on_frames)
    return FFmpegRenderer(planned.loaded.timeline, planned.picture, planned.resolver,
                          on_frames=on_frames)


# ------------------------------------------------------------------------------------ run


def _request_key(req: GenerationRequest, provider: str) -> str:
    blob = json.dumps({"provider": provider, "clips": [c.sha256 for c in req.clips],
                       "settings": req.settings.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _clip_record(video: PlannedVideo, path: Path, encode: EncodeSettings, key: str | None,
                 rate: Fraction) -> tuple[ClipRef, dict[str, Any]]:
    """A rendered clip as sent to providers, and its manifest record (``renders{video_id}``)."""
    digest = sha256_file(path)
    ref = ClipRef(path=path, frames=video.frames, rate=rate_str(rate),
                  duration_s=float(Fraction(video.frames) / rate), bytes=path.stat().st_size,
                  sha256=digest, scene_ids=tuple(video.scene_ids))
    return ref, {
        "cache_key": key, "sha256": digest, "clip": ref.model_dump(mode="json"),
        "timeline_range": {"start": video.range.start, "duration": video.range.duration,
                           "rate": video.range.rate},
        "record_in": video.range.record_in, "record_out": video.range.record_out,
        "encode": encode.model_dump(),
    }


class _RecordingRenderer:
    """A renderer that reports each clip once it is written (attributes pass through)."""

    def __init__(self, inner: Renderer,
                 on_done: Callable[[PlannedVideo, Path, EncodeSettings], None]) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_on_done", on_done)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)  # e.g. render_all sets decoder_threads

    def render_video(self, video: PlannedVideo, out_path: Path, encode: EncodeSettings) -> None:
        self._inner.render_video(video, out_path, encode)
        self._on_done(video, out_path, encode)


def _render(
    planned: PlannedEdit, job: Job, renderer: Renderer, settings: ScoreSettings,
    progress: ProgressSink,
) -> dict[str, ClipRef]:
    plan = planned.plan
    encodes = plan_encode(plan)
    rate = plan.fraction_rate
    total_frames = sum(v.frames for v in plan.videos())
    progress.stage("render", total_frames)
    clips: dict[str, ClipRef] = {}
    todo = []
    for req in plan.requests:
        for video in req.videos:
            path = job.clips_dir / f"{video.id}.mp4"
            encode = encodes[req.id]
            # Only a renderer that can fingerprint its inputs (sources, frame maps, settings)
            # may reuse clips; others (e.g. Resolve, whose grades we cannot see) render afresh.
            fingerprint = getattr(renderer, "cache_key", None)
            key = fingerprint(video, encode) if fingerprint is not None else None
            rec = job.render_record(video.id)
            if (key is not None and rec and rec.get("cache_key") == key and path.exists()
                    and sha256_file(path) == rec.get("sha256")):
                progress.advance("render", video.frames)
                clips[video.id] = ClipRef.model_validate(rec["clip"])
                continue
            todo.append((video, path, encode, key))
    from reelscore.render import render_all

    t0 = time.monotonic()
    # A renderer may limit its own parallelism (Resolve has one render queue).
    workers = getattr(renderer, "max_workers", None) or settings.workers
    keys = {v.id: k for v, _, _, k in todo}
    lock = threading.Lock()

    def rendered(video: PlannedVideo, path: Path, encode: EncodeSettings) -> None:
        # Recorded as soon as it is written: a run killed while rendering keeps its clips.
        _, record = _clip_record(video, path, encode, keys[video.id], rate)
        with lock:
            job.data.setdefault("renders", {})[video.id] = record
            job.save()

    try:
        render_all(_RecordingRenderer(renderer, rendered),
                   [(v, p, e) for v, p, e, _ in todo], workers=workers)
    except FFmpegError as exc:
        if "No space left on device" in exc.stderr_tail:
            raise OutputError(f"disk full while rendering clips into {str(job.clips_dir)!r}",
                              hint="free some space or choose another --work-dir; finished "
                              "clips are kept and reused") from exc
        raise
    # A request whose clips came out over the byte limit is re-rendered smaller (recorded).
    from reelscore.render import fit_requests

    refits = fit_requests(renderer, plan, {v.id: job.clips_dir / f"{v.id}.mp4" for v in plan.videos()},
                          encodes, settings.limits().max_bytes, workers=workers)
    for req_id, refit in refits.items():
        job.event("refit", {"request": req_id, **refit})
        encodes[req_id] = EncodeSettings.model_validate(refit["encode"])
        done = {v.id for v, _, _, _ in todo}
        for video in next(r for r in plan.requests if r.id == req_id).videos:
            if video.id not in done:  # reused from cache: record the smaller clip too
                rec = job.render_record(video.id) or {}
                todo.append((video, job.clips_dir / f"{video.id}.mp4", encodes[req_id],
                             rec.get("cache_key")))
    for video, path, encode, key in todo:
        encode = encodes[next(r.id for r in plan.requests if video in r.videos)]
        ref, record = _clip_record(video, path, encode, key, rate)
        clips[video.id] = ref
        job.data.setdefault("renders", {})[video.id] = record
    if todo:
        job.event("rendered", {"clips": len(todo), "seconds": round(time.monotonic() - t0, 3)})
    return clips


def _generate(
    planned: PlannedEdit, job: Job, provider: Provider, clips: dict[str, ClipRef],
    settings: ScoreSettings, progress: ProgressSink,
) -> dict[str, GeneratedAudio]:
    plan = planned.plan
    progress.stage("generate", len(plan.requests))
    results: dict[str, GeneratedAudio] = {}
    for req in plan.requests:
        gen_req = GenerationRequest(
            request_id=req.id,
            clips=tuple(clips[v.id] for v in req.videos),
            settings=settings.generation,
        )
        key = _request_key(gen_req, provider.name)
        rec = job.request_record(req.id)
        stored = rec.get("response")
        if rec.get("key") == key and rec.get("status") == "done" and isinstance(stored, dict):
            audio = GeneratedAudio.model_validate(stored)
            if audio.path.exists() and sha256_file(audio.path) == rec.get("response_sha256"):
                results[req.id] = audio
                progress.advance("generate")
                progress.note(f"{req.id}: reusing the stored response (not sent again)")
                continue
        if rec.get("key") == key and rec.get("status") in ("sent", "possibly_charged",
                                                            "unusable"):
            if not settings.resubmit and getattr(provider, "charges", True):
                what = ("its answer could not be used (" + str(rec.get("error")) + ")"
                        if rec.get("status") == "unusable" else "its response was not stored")
                raise PossiblyChargedError(
                    f"request {req.id} was sent to {provider.name} in an earlier run, but "
                    f"{what}: it may already have been charged",
                    hint="rerun with --resubmit to send it again (it may be charged twice)",
                )
            job.event("resubmit", {"request": req.id, "decision": "user passed --resubmit"
                                   if settings.resubmit else f"{provider.name} does not charge"})
        if rec.get("key") == key and rec.get("status") == "uploading":
            job.event("resend", {"request": req.id, "reason": "the earlier run stopped before "
                                 "the whole request was uploaded: nothing can have been charged"},
                      save=False)
        # A provider that reports "upload_complete" (just before the last byte) lets an unfinished
        # upload be resent safely; for others the request counts as sent from the start.
        first = "uploading" if getattr(provider, "reports_upload_complete", False) else "sent"
        rec.update({"key": key, "provider": provider.name, "status": first,
                    "sent_at": time.time(), "clips": [c.model_dump(mode="json") for c in gen_req.clips],
                    "total_seconds": round(gen_req.total_seconds, 6),
                    "total_bytes": gen_req.total_bytes})
        rec.setdefault("attempts", [])
        job.save()

        def on_event(name: str, data: dict[str, Any], _rec: dict[str, Any] = rec) -> None:
            _rec.setdefault("attempts" if name == "attempt" else "events", []).append(
                {"event": name, **data})
            if name == "upload_complete":
                _rec["status"] = "sent"  # saved before the last byte leaves
            job.save()

        try:
            audio = provider.generate(gen_req, job.raw_dir, on_event=on_event)
        except PossiblyChargedError:
            rec["status"] = "possibly_charged"
            job.save()
            raise
        except ProviderError as exc:
            # Rejected before generation started (validation, auth, limits): safe to resend --
            # unless a task API had already accepted the task (then it may be charged).
            rec["status"] = "possibly_charged" if _task_accepted(rec) else "failed"
            rec["error"] = str(exc)
            job.save()
            raise
        except BaseException:
            # Anything else after sending (crash, Ctrl-C): the status stays "sent", so the next
            # run asks for --resubmit instead of paying twice.
            job.save()
            raise
        rec.update({"status": "done", "response": audio.model_dump(mode="json"),
                    "response_sha256": sha256_file(audio.path),
                    "response_bytes": audio.path.stat().st_size})
        job.save()
        results[req.id] = audio
        progress.advance("generate")
    return results


def _task_accepted(rec: dict[str, Any]) -> bool:
    """Whether a task API accepted this request (a task that may be charged) and the task did
    not end as failed (failed tasks are not charged)."""
    events = rec.get("events", [])
    accepted = any(e.get("event") == "task_submitted" for e in events) or any(
        a.get("purpose") == "submit" and isinstance(a.get("status"), int)
        and 200 <= a["status"] < 300 for a in rec.get("attempts", []))
    failed = any(e.get("event") == "task_status" and e.get("state") == "failed" for e in events)
    return accepted and not failed


def _conform_all(
    plan: ScorePlan, results: dict[str, GeneratedAudio], which: str = "music",
    job: Job | None = None,
) -> tuple[np.ndarray | None, list[ConformReport]]:
    parts: list[np.ndarray] = []
    reports: list[ConformReport] = []
    for req in plan.requests:
        audio = results[req.id]
        path = audio.path if which == "music" else audio.sfx_path
        if path is None:
            return None, []
        try:
            data = load_generated(audio, path)
        except (AudioError, MediaError) as exc:
            # Generated (and paid for) but undecodable: never silently reused, never silently
            # sent again; the next run asks for --resubmit.
            detail = exc.message.splitlines()[0]
            if job is not None:
                rec = job.request_record(req.id)
                rec.update({"status": "unusable", "error": detail})
                job.save()
            raise AudioError(
                f"the {which} {audio.provider} returned for request {req.id} cannot be used: "
                f"{detail}",
                hint=f"it was generated and probably charged (the answer is kept at {path}); "
                "rerun with --resubmit to generate it again") from exc
        conformed, report = conform_request(data, req, plan.fraction_rate)
        parts.append(conformed)
        reports.append(report)
    return join_requests(parts, plan), reports


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
    progress = progress or NoProgress()
    loaded = timeline if isinstance(timeline, LoadedEdit) else normalise(timeline, path=source_path)
    if work_dir is None:
        work_dir = (default_work_dir(output_path) if output_path is not None
                    else Path.cwd() / f"{_safe(loaded.timeline.name or 'score')}.reelscore")
    job = Job(work_dir)
    with job.locked():
        job.open()
        progress.stage("plan")
        planned = plan_edit(loaded, settings)
        plan = planned.plan
        job.set("input", {"path": str(loaded.path) if loaded.path else None,
                          "sha256": sha256_file(loaded.path) if loaded.path and loaded.path.is_file() else None,
                          "adapter": loaded.adapter, "timeline": loaded.timeline.name},
                save=False)
        job.set("settings", settings.model_dump(mode="json"), save=False)
        job.set("plan", plan.model_dump(mode="json"))
        renderer = renderer or default_renderer(
            planned, settings, on_frames=lambda n: progress.advance("render", n))
        if isinstance(renderer, FFmpegRenderer):  # it reads the sources: are they video?
            check_media(planned.picture, planned.resolver, plan.range.start, plan.range.end,
                        plan.start_frame)
        provider = provider or make_provider(settings.provider, provider_config)
        preflight = getattr(provider, "preflight", None)
        if callable(preflight):
            preflight()  # fail on a missing key or a refused plan before rendering anything

        clips = _render(planned, job, renderer, settings, progress)
        results = _generate(planned, job, provider, clips, settings, progress)

        progress.stage("normalise", 3)
        music, reports = _conform_all(plan, results, "music", job=job)
        assert music is not None
        for r in reports:
            if abs(r.drift_frames) >= 1:
                progress.note(f"{r.request_id}: the service returned {r.drift_frames:+.1f} frames "
                              f"against the plan; {r.action} to fit")
        job.set("conform", [r.to_dict() for r in reports])
        progress.advance("normalise")
        from reelscore import loudness

        normalised, lreport = loudness.normalise(music, SAMPLE_RATE, target_lufs=settings.target_lufs,
                                                 true_peak_dbtp=settings.true_peak)
        music_wav = job.audio_dir / f"{_safe(loaded.timeline.name or 'score')}.score.wav"
        loudness.write_wav(music_wav, normalised, SAMPLE_RATE, bits=settings.wav_bits)
        progress.advance("normalise")
        after = loudness.measure(loudness.read_wav(music_wav)[0], SAMPLE_RATE)
        ldict = lreport.to_dict()
        ldict["delivered"] = {"integrated_lufs": round(after.integrated_lufs, 3),
                              "true_peak_dbtp": round(after.true_peak_dbtp, 3)}
        job.set("loudness", ldict)
        sfx_wav: Path | None = None
        sfx, _ = _conform_all(plan, results, "sfx", job=job)
        if sfx is not None:
            sfx_norm, sfx_report = loudness.normalise(sfx, SAMPLE_RATE, target_lufs=settings.target_lufs,
                                                      true_peak_dbtp=settings.true_peak)
            sfx_wav = job.audio_dir / f"{_safe(loaded.timeline.name or 'score')}.sfx.wav"
            loudness.write_wav(sfx_wav, sfx_norm, SAMPLE_RATE, bits=settings.wav_bits)
            job.data["loudness"]["sfx"] = sfx_report.to_dict()
        progress.advance("normalise")

        first = next(iter(results.values()))
        provenance = {
            "job_id": job.job_id, "provider": provider.name, "model": first.model,
            "seed": first.seed, "reelscore_version": __version__,
            "requests": [r.id for r in plan.requests],
            "record_in": plan.range.record_in, "record_out": plan.range.record_out,
            "loudness": {"target_lufs": settings.target_lufs,
                         "integrated_lufs": round(after.integrated_lufs, 3),
                         "true_peak_dbtp": round(after.true_peak_dbtp, 3)},
            "scene_policy": plan.scene_policy, "scenes": len(plan.scenes),
        }
        media = [ScoreMedia(music_wav, settings.track_name, f"{settings.track_name} - reelscore",
                            provenance)]
        if sfx_wav is not None:
            media.append(ScoreMedia(sfx_wav, f"{settings.track_name} SFX",
                                    f"{settings.track_name} SFX - reelscore",
                                    {**provenance, "stem": "sfx"}))
        scored = add_score_tracks(loaded, plan, media, markers=settings.markers)
        rate = plan.fraction_rate
        record_start = opentime.RationalTime(plan.start_frame + plan.range.start, float(rate))
        duration = opentime.RationalTime(plan.range.duration, float(rate))
        summary = {
            "scenes": len(plan.scenes), "requests": len(plan.requests),
            "videos": len(plan.videos()),
            "record_in": plan.range.record_in, "record_out": plan.range.record_out,
            "seconds": float(plan.range.seconds),
            "drift_frames": [round(r.drift_frames, 2) for r in reports],
            "integrated_lufs": round(after.integrated_lufs, 2),
            "true_peak_dbtp": round(after.true_peak_dbtp, 2),
            "limiter": lreport.limiter_used,
            "music_wav": str(music_wav),
        }
        outputs: dict[str, Any] = {"music_wav": str(music_wav),
                                   "sfx_wav": str(sfx_wav) if sfx_wav else None}
        if output_path is not None:
            progress.stage("write")
            outputs["edit_adapter"] = write_edit(scored, output_path)
            outputs["edit_verified"] = verify_written(output_path, scored, plan)
            outputs["edit"] = str(output_path)
            summary["output"] = str(output_path)
        job.set("outputs", outputs)
        return ScoreResult(
            timeline=scored, plan=plan, manifest_path=job.manifest_path, music_wav=music_wav,
            sfx_wav=sfx_wav, record_start=record_start, duration=duration, loudness=ldict,
            conform=[r.to_dict() for r in reports], job_id=job.job_id, summary=summary,
            output_path=output_path,
        )


def _safe(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return keep[:60] or "score"


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
    "default_work_dir",
    "plan_edit",
    "score_file",
    "score_timeline",
]
