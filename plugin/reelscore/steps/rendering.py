"""The render step: a request's videos -> proxy clips in the job folder, recorded as each is written.

Requests are rendered one at a time, in plan order, so the runner can send request k to the
service while request k+1 renders. Within a request the clips render in parallel (bounded by the
run's workers and the renderer's own ``max_workers``). A clip whose cache key and sha256 still
match its record is reused; a renderer that cannot fingerprint its inputs (``cache_key`` None,
e.g. Resolve, whose grades we cannot see) always renders afresh. A request whose clips came out
over the byte limit is re-rendered smaller (a ``refit`` event).
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

from reelscore.errors import FFmpegError, OutputError
from reelscore.fsutil import sha256_file
from reelscore.job import Job, RenderRecord, TimelineSpan
from reelscore.plan import EncodeSettings, PlannedRequest, PlannedVideo
from reelscore.providers import ClipRef
from reelscore.render import Renderer, fit_requests, plan_encode, render_all
from reelscore.settings import ProgressSink, ScoreSettings
from reelscore.steps.planning import PlannedEdit
from reelscore.timecode import rate_str


def clip_record(video: PlannedVideo, path: Path, encode: EncodeSettings, key: str | None,
                rate: Fraction) -> RenderRecord:
    """A rendered clip's record: the clip as sent to providers, its key, hash and place."""
    digest = sha256_file(path)
    ref = ClipRef(path=path, frames=video.frames, rate=rate_str(rate),
                  duration_s=float(Fraction(video.frames) / rate), bytes=path.stat().st_size,
                  sha256=digest, scene_ids=tuple(video.scene_ids))
    return RenderRecord(
        cache_key=key, sha256=digest, clip=ref,
        timeline_range=TimelineSpan(start=video.range.start, duration=video.range.duration,
                                    rate=video.range.rate),
        record_in=video.range.record_in, record_out=video.range.record_out, encode=encode)


class ClipRenderer:
    """Renders the plan's requests one by one into ``job.clips_dir``."""

    def __init__(self, planned: PlannedEdit, job: Job, renderer: Renderer,
                 settings: ScoreSettings, progress: ProgressSink) -> None:
        self.plan = planned.plan
        self.job = job
        self.renderer = renderer
        self.progress = progress
        self.max_bytes = settings.limits().max_bytes
        self.encodes = plan_encode(self.plan)
        # A renderer may limit its own parallelism (Resolve has one render queue).
        self.workers = renderer.max_workers or settings.workers
        self.rendered = 0  # clips rendered (not reused) by this run, and the time it took
        self.seconds = 0.0

    def render_request(self, req: PlannedRequest) -> list[ClipRef]:
        """The request's clips in order, rendered (or reused) and recorded."""
        job, rate = self.job, self.plan.fraction_rate
        clips: dict[str, ClipRef] = {}
        todo: list[tuple[PlannedVideo, Path, str | None]] = []
        for video in req.videos:
            path = job.clips_dir / f"{video.id}.mp4"
            key = self.renderer.cache_key(video, self.encodes[req.id])
            rec = job.render(video.id)
            if (key is not None and rec is not None and rec.cache_key == key and path.exists()
                    and sha256_file(path) == rec.sha256):
                self.progress.advance("render", video.frames)
                clips[video.id] = rec.clip
                continue
            todo.append((video, path, key))
        keys = {v.id: k for v, _, k in todo}

        def rendered(video: PlannedVideo, path: Path, encode: EncodeSettings) -> None:
            # Recorded as soon as it is written: a run killed while rendering keeps its clips.
            job.record_render(video.id, clip_record(video, path, encode, keys[video.id], rate))

        t0 = time.monotonic()
        try:
            render_all(self.renderer, [(v, p, self.encodes[req.id]) for v, p, _ in todo],
                       workers=self.workers, on_done=rendered)
        except FFmpegError as exc:
            if "No space left on device" in exc.stderr_tail:
                raise OutputError(f"disk full while rendering clips into {str(job.clips_dir)!r}",
                                  hint="free some space or choose another --work-dir; finished "
                                  "clips are kept and reused") from exc
            raise
        refit = fit_requests(self.renderer, self.plan.model_copy(update={"requests": [req]}),
                             {v.id: job.clips_dir / f"{v.id}.mp4" for v in req.videos},
                             self.encodes, self.max_bytes, workers=self.workers).get(req.id)
        if refit is not None:
            job.event("refit", {"request": req.id, **refit})
            self.encodes[req.id] = EncodeSettings.model_validate(refit["encode"])
            done = set(keys)
            for video in req.videos:
                if video.id not in done:  # reused from cache: record the smaller clip too
                    old = job.render(video.id)
                    todo.append((video, job.clips_dir / f"{video.id}.mp4",
                                 old.cache_key if old is not None else None))
        for video, path, key in todo:
            record = clip_record(video, path, self.encodes[req.id], key, rate)
            clips[video.id] = record.clip
            job.record_render(video.id, record, save=False)
        self.rendered += len(todo)
        self.seconds += time.monotonic() - t0
        return [clips[v.id] for v in req.videos]

    def summarise(self) -> None:
        """One ``rendered`` event for the run (none when every clip was reused)."""
        if self.rendered:
            self.job.event("rendered", {"clips": self.rendered, "seconds": round(self.seconds, 3)})


def render_clips(planned: PlannedEdit, job: Job, renderer: Renderer, settings: ScoreSettings,
                 progress: ProgressSink) -> dict[str, ClipRef]:
    """Render every request (no generation): the clips by video id."""
    progress.stage("render", sum(v.frames for v in planned.plan.videos()))
    step = ClipRenderer(planned, job, renderer, settings, progress)
    out: dict[str, ClipRef] = {}
    for req in planned.plan.requests:
        out.update(zip([v.id for v in req.videos], step.render_request(req), strict=True))
    step.summarise()
    return out
