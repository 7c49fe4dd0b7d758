"""Render planned videos to small H.264 proxy clips that show exactly what the edit shows.

How frame accuracy is kept, whatever the sources' keyframe spacing:

* The picture layer says, for every output frame, which source frame is visible
  (:mod:`reelscore.picture`); :mod:`reelscore.render_sources` turns that into runs of file
  frames from one source each (speed changes, freezes, reversed runs in chunks of at most
  ``MAX_HOLD_BYTES``), blends of them (dissolves, fades) and black, for movies, still images and
  image sequences.
* :mod:`reelscore.render_ffmpeg` decodes each run by its own ffmpeg process with an *input* seek
  half a frame before the first wanted frame, mixes blends in numpy, and encodes one clip per
  video at the timeline's exact rate, counting every frame: a source that ends early is an error
  naming the clip and the record timecode, never a silently shorter clip.

This module: the :class:`Renderer` Protocol, :class:`FFmpegRenderer` (the edit's own media),
:func:`render_all`, the online check before rendering (:func:`check_online`), and the
per-request encode (:func:`plan_encode`, :func:`fit_requests`). Every name the rest of
reelscore uses is imported from here, including those defined in the two modules above.

Speed: clips render in parallel (bounded by cores and available memory; each decoder gets its
share of the cores), and a clip is reused when its cache key (sources' size and mtime, the exact
frame maps and blend weights, encode settings, render version) is unchanged. A request whose
clips exceed the service's byte limit is re-rendered at a lower bitrate (:func:`fit_requests`).

ffmpeg-python builds commands only in :mod:`reelscore.render_ffmpeg`; ``reelscore.ffmpeg_cli``
runs and locates ffmpeg."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import opentimelineio as otio

from reelscore._version import __version__
from reelscore.errors import MediaError, OfflineMediaError
from reelscore.picture import Picture
from reelscore.plan import EncodeSettings, PlannedVideo, ScorePlan
from reelscore.render_ffmpeg import FrameCallback, frame_bytes, render_runs
from reelscore.render_ffmpeg import Frames as Frames
from reelscore.render_ffmpeg import black_frame as black_frame
from reelscore.render_ffmpeg import decoder_args as decoder_args
from reelscore.render_ffmpeg import encoder_args as encoder_args
from reelscore.render_ffmpeg import seek_rate as seek_rate
from reelscore.render_ffmpeg import track_timescale as track_timescale
from reelscore.render_sources import STILL_SUFFIXES as STILL_SUFFIXES
from reelscore.render_sources import MediaOrigins, MixRun, Run, SourceRun, source_runs
from reelscore.render_sources import MixPartRuns as MixPartRuns
from reelscore.render_sources import SourceMedia as SourceMedia
from reelscore.timecode import exact_rate, frames_to_tc
from reelscore.timeline import MediaLookup, MediaResolver

log = logging.getLogger(__name__)

RENDER_VERSION = "render/2"  # bump when output pixels could change for the same inputs


class Renderer(Protocol):
    """Writes planned videos as proxy clips; its members say what the runner may do with it.

    ``max_workers``: the most clips it can render at once (Resolve: 1, one render queue);
    None leaves the choice to :func:`render_all`. ``decoder_threads``: threads each of its ffmpeg
    decoders may use; None lets :func:`render_all` share the cores among its parallel renders
    (a renderer that runs no decoder of ours ignores it). ``cache_key`` fingerprints everything
    the clip's pixels depend on, so an unchanged clip is reused; None means "never reuse" (a
    renderer that cannot see all of its inputs, such as Resolve's grades).
    """

    max_workers: int | None
    decoder_threads: int | None

    def cache_key(self, video: PlannedVideo, encode: EncodeSettings) -> str | None:
        """A fingerprint of *video*'s inputs and *encode*, or None if clips must not be reused."""
        ...

    def render_video(self, video: PlannedVideo, out_path: Path, encode: EncodeSettings) -> None:
        """Write *video* (its ``timeline_range``) as an H.264 MP4 at *out_path*."""
        ...


RenderDone = Callable[[PlannedVideo, Path, EncodeSettings], None]


# ----------------------------------------------------------------------------- source runs
# (reelscore.render_sources: which frames of which file make each clip)

# Frames of one reversed (or shuffled) run held in memory at once; longer runs are decoded in
# chunks (each chunk seeks to its own keyframe), so memory stays bounded whatever the edit does.
# FFmpegRenderer.runs_for turns it into source_runs' max_hold_frames at the proxy size.
MAX_HOLD_BYTES = 64 * 1024 * 1024


# ----------------------------------------------------------------------------- rendering


class FFmpegRenderer:
    """Render planned videos from the edit's own media with ffmpeg."""

    def __init__(self, timeline: otio.schema.Timeline, picture: Picture,
                 resolver: MediaResolver, *, on_frames: FrameCallback | None = None) -> None:
        self.timeline = timeline
        self.picture = picture
        self.resolver = resolver
        self.on_frames = on_frames
        self.origins = MediaOrigins()
        self.max_workers: int | None = None  # as many as cores and memory allow
        self.decoder_threads: int | None = None  # None: render_all shares the cores
        self._lookups: dict[int, MediaLookup | None] = {}
        self._lock = threading.Lock()

    def lookup(self, clip: otio.schema.Clip) -> MediaLookup | None:
        """None for generator references (rendered black); a MediaLookup otherwise."""
        with self._lock:
            key = id(clip)
            if key not in self._lookups:
                if isinstance(clip.media_reference, otio.schema.GeneratorReference):
                    self._lookups[key] = None
                else:
                    self._lookups[key] = self.resolver.resolve_clip(clip)
            return self._lookups[key]

    def runs_for(self, video: PlannedVideo, encode: EncodeSettings) -> list[Run]:
        segs = self.picture.segments(video.range.start, video.range.end)
        lookups: dict[int, MediaLookup] = {}
        for seg in segs:
            for clip in seg.clips():
                lookup = self.lookup(clip)
                if lookup is not None:
                    lookups[id(clip)] = lookup
        hold = max(8, MAX_HOLD_BYTES // frame_bytes(encode))
        return source_runs(segs, timeline_rate=self.picture.rate, lookups=lookups,
                           origins=self.origins, max_hold_frames=hold)

    def cache_key(self, video: PlannedVideo, encode: EncodeSettings) -> str:
        runs = self.runs_for(video, encode)
        blob = json.dumps({"v": RENDER_VERSION, "reelscore": __version__,
                           "encode": encode.model_dump(), "runs": [r.key() for r in runs]},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def render_video(self, video: PlannedVideo, out_path: Path, encode: EncodeSettings) -> None:
        runs = self.runs_for(video, encode)
        render_runs(runs, encode, out_path, on_frames=self.on_frames,
                    threads=self.decoder_threads)


def offline_clips(
    timeline: otio.schema.Timeline, picture: Picture, resolver: MediaResolver,
    start: int, end: int, start_frame: int,
) -> list[tuple[str, str, str]]:
    """(clip name, record timecode, paths tried) for every visible clip in range with no media."""
    from reelscore.timeline import timeline_drop_frame

    drop = timeline_drop_frame(timeline, picture.rate)  # the flag plan_edit stamped
    seen: set[int] = set()
    out: list[tuple[str, str, str]] = []
    for seg in picture.segments(start, end):
        for clip in seg.clips():
            if id(clip) in seen:
                continue
            seen.add(id(clip))
            if isinstance(clip.media_reference, otio.schema.GeneratorReference):
                continue
            lookup = resolver.resolve_clip(clip)
            if lookup.path is None:
                tc = frames_to_tc(start_frame + seg.start, picture.rate, drop_frame=drop)
                out.append((clip.name or "(unnamed)", tc, "; ".join(lookup.tried) or "nothing"))
    return out


def check_online(timeline: otio.schema.Timeline, picture: Picture, resolver: MediaResolver,
                 start: int, end: int, start_frame: int) -> None:
    missing = offline_clips(timeline, picture, resolver, start, end, start_frame)
    if missing:
        raise OfflineMediaError(missing)


# Memory one parallel render may need at most: a decoder of a UHD long-GOP source with its
# frame threads, a dissolve's second decoder, the encoder and the raw frames in flight
# (measured peak for a 1080p source: see benchmarks/bench_render.py).
WORKER_MEMORY_BYTES = 400 * 1024 * 1024


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux /proc/meminfo), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def default_workers(jobs: int) -> int:
    """Parallel renders: bounded by the cores, by the available memory and by the job count."""
    cores = os.cpu_count() or 2
    avail = available_memory()
    by_memory = max(1, avail // WORKER_MEMORY_BYTES) if avail else cores
    return max(1, min(jobs, cores, by_memory))


def render_all(
    renderer: Renderer,
    jobs: list[tuple[PlannedVideo, Path, EncodeSettings]],
    *,
    workers: int | None = None,
    on_done: RenderDone | None = None,
) -> None:
    """Render several clips in parallel (bounded by cores, memory and ``renderer.max_workers``);
    the first failure is raised after the renders already running have finished.

    *on_done* is called with each clip once it is written, from the thread that rendered it (the
    caller locks what it shares). A renderer whose ``decoder_threads`` is None gets the cores
    shared among the workers, instead of every decoder oversubscribing them.
    """
    if not jobs:
        return
    workers = workers or default_workers(len(jobs))
    if renderer.max_workers is not None:
        workers = max(1, min(workers, renderer.max_workers))
    if renderer.decoder_threads is None:
        renderer.decoder_threads = max(1, (os.cpu_count() or 2) // max(1, workers))

    def render_one(video: PlannedVideo, path: Path, encode: EncodeSettings) -> None:
        renderer.render_video(video, path, encode)
        if on_done is not None:
            on_done(video, path, encode)

    if workers == 1 or len(jobs) <= 1:
        for video, path, encode in jobs:
            render_one(video, path, encode)
        return
    # Longest first, so one long clip does not start last and run alone.
    ordered = sorted(jobs, key=lambda j: -j[0].frames)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(render_one, v, p, e) for v, p, e in ordered]
        try:
            for f in futures:
                f.result()
        except BaseException:
            for f in futures:  # Ctrl-C / SIGTERM / a failure: start no further clips
                f.cancel()
            raise


def fit_requests(
    renderer: Renderer,
    plan: ScorePlan,
    paths: dict[str, Path],
    encodes: dict[str, EncodeSettings],
    max_bytes: int,
    *,
    margin: float = 0.95,
    attempts: int = 3,
    workers: int | None = None,
) -> dict[str, dict[str, object]]:
    """Re-render requests whose rendered clips exceed ``margin × max_bytes`` at a lower bitrate.

    The plan picks each request's bitrate for 85 % of the limit, but an encoder may overshoot
    (short requests, noisy pictures). Each retry scales the bitrate by what is needed (10 % to
    spare) and raises the CRF by 2. Returns, per re-rendered request, the encode used and the
    sizes, for the manifest; raises MediaError if it still does not fit.
    """
    out: dict[str, dict[str, object]] = {}
    limit = int(max_bytes * margin)
    for req in plan.requests:
        encode = encodes[req.id]
        size = sum(paths[v.id].stat().st_size for v in req.videos)
        before = size
        tries = 0
        while size > limit:
            if tries == attempts:
                raise MediaError(
                    f"request {req.id} is {size / 1e6:.1f} MB after {attempts} smaller re-renders; "
                    f"the service takes {max_bytes / 1e6:.0f} MB per request",
                    hint="score a shorter --range, so each request holds less picture")
            tries += 1
            kbps = max(50, math.floor(encode.video_kbps * limit / size * 0.9))
            encode = encode.model_copy(update={"video_kbps": kbps, "crf": min(51, encode.crf + 2)})
            log.info("request %s is %d bytes (limit %d): re-rendering at %d kb/s", req.id, size,
                     limit, kbps)
            render_all(renderer, [(v, paths[v.id], encode) for v in req.videos], workers=workers)
            size = sum(paths[v.id].stat().st_size for v in req.videos)
        if tries:
            out[req.id] = {"encode": encode.model_dump(), "bytes_before": before, "bytes": size,
                           "limit": limit, "attempts": tries}
    return out


def plan_encode(plan: ScorePlan) -> dict[str, EncodeSettings]:
    """The encode settings of every request (its own bitrate)."""
    return {r.id: plan.encode.model_copy(update={"video_kbps": r.video_kbps}) for r in plan.requests}


__all__ = [
    "FFmpegRenderer",
    "MixRun",
    "Renderer",
    "SourceRun",
    "check_online",
    "exact_rate",
    "fit_requests",
    "offline_clips",
    "plan_encode",
    "render_all",
    "render_runs",
    "source_runs",
]
