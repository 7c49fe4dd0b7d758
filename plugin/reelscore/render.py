"""Render planned videos to small H.264 proxy clips that show exactly what the edit shows.

How frame accuracy is kept, whatever the sources' keyframe spacing:

* The picture layer says, for every output frame, which source frame is visible
  (:mod:`reelscore.picture`). Each run of frames from one source is decoded by its own ffmpeg
  process with an *input* seek half a frame before the first wanted frame (ffmpeg decodes from the
  keyframe before it and drops everything earlier, so the first frame out is the wanted one) and
  ``-frames:v`` for the count. Frames come out as raw YUV at the proxy size (scaled in the
  decoder) on a pipe. A run's file frames may be any sequence: speed changes skip or repeat
  frames, a freeze decodes one frame, a reversed run is decoded forwards once and played from
  memory, in chunks of at most ``MAX_HOLD_BYTES`` (each chunk seeks to its own keyframe).
* Dissolves and fades: the parts of a blend are decoded side by side and mixed in numpy with the
  weight the picture gives each output frame (black for fades).
* Media kinds: movies (frame index from the edit's media time, the file's own rate for seeking),
  still images (one frame held), image sequences (ffmpeg's image2 demuxer from the first image
  needed).
* One encoder process per clip reads those frames from a pipe at the timeline's exact rate. We
  count every frame that passes, so a source that ends early is an error naming the clip and the
  record timecode, never a silently shorter clip. Black (gaps, generators) is written by us.
* The clip is constant frame rate at the timeline rate, in an MP4 whose track timescale holds each
  frame duration exactly (24000 for 23.976, a multiple of the rate otherwise).

Speed: clips render in parallel (bounded by cores and available memory; each decoder gets its
share of the cores), and a clip is reused when its cache key (sources' size and mtime, the exact
frame maps and blend weights, encode settings, render version) is unchanged. A request whose
clips exceed the service's byte limit is re-rendered at a lower bitrate (:func:`fit_requests`).

ffmpeg-python is used here, and only here, as a command builder; ``reelscore.ffmpeg_cli`` runs
and locates ffmpeg."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import ffmpeg
import numpy as np
import opentimelineio as otio

from reelscore._version import __version__
from reelscore.errors import (
    FFmpegError,
    MediaError,
    OfflineMediaError,
)
from reelscore.ffmpeg_cli import (
    INPUT_PROTOCOLS,
    ffmpeg_exe,
    file_arg,
    probe,
    read_frames,
    write_frames,
)
from reelscore.fsutil import atomic_output
from reelscore.picture import Picture
from reelscore.plan import EncodeSettings, PlannedVideo, ScorePlan
from reelscore.render_sources import STILL_SUFFIXES as STILL_SUFFIXES
from reelscore.render_sources import MediaOrigins, MixRun, Run, SourceRun, source_runs
from reelscore.render_sources import MixPartRuns as MixPartRuns
from reelscore.render_sources import SourceMedia as SourceMedia
from reelscore.timecode import exact_rate, frames_to_tc
from reelscore.timeline import MediaLookup, MediaResolver

log = logging.getLogger(__name__)

RENDER_VERSION = "render/2"  # bump when output pixels could change for the same inputs

FrameCallback = Callable[[int], None]
Frames = Generator[bytes, None, None]


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
MAX_HOLD_BYTES = 64 * 1024 * 1024


# ------------------------------------------------------------------------------- commands


def seek_rate(run: SourceRun) -> Fraction:
    """The rate a movie's frames are timed at: the file's own (probed, cached), else the run's."""
    assert run.path is not None
    try:
        info = probe(run.path)
    except MediaError:
        return run.src_rate
    return info.frame_rate or run.src_rate


def decoder_args(run: SourceRun, encode: EncodeSettings, *, threads: int | None = None) -> list[str]:
    """One source run -> raw yuv420p frames at the proxy size on stdout."""
    assert run.path is not None
    lo = min(run.file_frames)
    need = max(run.file_frames) - lo + 1
    inp_kwargs: dict[str, object] = {"protocol_whitelist": INPUT_PROTOCOLS}
    if threads:
        inp_kwargs["threads"] = threads
    if run.kind == "sequence":
        rate = run.src_rate
        inp_kwargs.update(f="image2", framerate=f"{rate.numerator}/{rate.denominator}",
                          start_number=run.first_number + lo)
        source = "file:" + run.pattern
    else:
        source = file_arg(run.path)
        if lo > 0:
            # Half a frame early: the decoder drops every frame before this instant, so frame
            # `lo` is the first one out even when timestamps carry rounding noise. Frame `lo`
            # is timed at the file's own rate (an edit may call a 23.976 file 24).
            rate = seek_rate(run)
            inp_kwargs["ss"] = f"{float((Fraction(lo) - Fraction(1, 2)) / rate):.6f}"
    stream = ffmpeg.input(source, **inp_kwargs)
    video = (
        stream.video.filter("scale", encode.width, encode.height,
                            force_original_aspect_ratio="decrease", flags="bilinear")
        .filter("pad", encode.width, encode.height, -1, -1, color="black")
        .filter("setsar", 1)
        .filter("format", "yuv420p")
    )
    out = ffmpeg.output(video, "pipe:1", format="rawvideo", pix_fmt="yuv420p",
                        **{"frames:v": need, "fps_mode": "passthrough"})
    args: list[str] = out.compile(cmd=ffmpeg_exe())
    return [args[0], "-hide_banner", "-nostdin", "-loglevel", "error", *args[1:]]


def track_timescale(rate: Fraction) -> int:
    if rate.denominator == 1:
        return rate.numerator * max(1, math.ceil(10000 / rate.numerator))
    return rate.numerator


def encoder_args(encode: EncodeSettings, out_path: Path, frames: int, *,
                 threads: int | None = None) -> list[str]:
    rate = encode.fraction_rate
    gop = max(1, round(rate * 2))
    inp = ffmpeg.input("pipe:0", format="rawvideo", pix_fmt="yuv420p",
                       s=f"{encode.width}x{encode.height}",
                       framerate=f"{rate.numerator}/{rate.denominator}")
    out = ffmpeg.output(
        inp, file_arg(out_path), vcodec="libx264", preset=encode.preset, crf=encode.crf,
        maxrate=f"{encode.video_kbps}k", bufsize=f"{encode.video_kbps * 2}k", g=gop,
        pix_fmt="yuv420p", movflags="+faststart", an=None,
        video_track_timescale=track_timescale(rate), f="mp4",
        **{"frames:v": frames, "fps_mode": "passthrough"},
        **({"threads": threads} if threads else {}),
    )
    args: list[str] = out.compile(cmd=ffmpeg_exe(), overwrite_output=True)
    return [args[0], "-hide_banner", "-nostdin", "-loglevel", "error", *args[1:]]


# ----------------------------------------------------------------------------- rendering


def black_frame(encode: EncodeSettings) -> bytes:
    y = bytes([16]) * (encode.width * encode.height)
    c = bytes([128]) * ((encode.width // 2) * (encode.height // 2))
    return y + c + c


def _frame_bytes(encode: EncodeSettings) -> int:
    return encode.width * encode.height * 3 // 2


def _decode_run(run: SourceRun, encode: EncodeSettings, *,
                threads: int | None = None) -> Frames:
    """Yield the run's frames in output order (decoding each source frame once)."""
    lo = min(run.file_frames)
    decoded = read_frames(decoder_args(run, encode, threads=threads), _frame_bytes(encode),
                          f"decoding {run.path} for clip {run.clip_name!r}")
    try:
        monotonic = all(b >= a for a, b in zip(run.file_frames, run.file_frames[1:]))
        if monotonic:
            current_index = lo - 1
            current = b""
            for wanted in run.file_frames:
                while current_index < wanted:
                    frame = next(decoded, None)
                    if frame is None:
                        raise _short_source(run, current_index + 1)
                    current, current_index = frame, current_index + 1
                yield current
        else:  # reverse or shuffled order: hold the decoded range (bounded by the caller)
            need = max(run.file_frames) - lo + 1
            held: list[bytes] = []
            for _ in range(need):
                frame = next(decoded, None)
                if frame is None:
                    raise _short_source(run, lo + len(held))
                held.append(frame)
            for wanted in run.file_frames:
                yield held[wanted - lo]
    finally:
        decoded.close()  # kills the decoder when the run needed fewer frames than it had


def _short_source(run: SourceRun, missing: int) -> MediaError:
    """The decoder ended cleanly before file frame *missing*: the media is shorter than the edit."""
    what = (f"image {run.first_number + missing} of the sequence" if run.kind == "sequence"
            else f"file frame {missing}")
    return MediaError(
        f"clip {run.clip_name!r}: its media {run.path.name if run.path else '?'} ends before "
        f"{what}, but the edit uses it up to file frame {max(run.file_frames)}",
        hint="the edit refers to frames the file does not have: relink to the right media, "
        "or check the clip's source range",
    )


def _frames_of(runs: tuple[SourceRun, ...] | list[SourceRun], encode: EncodeSettings,
               threads: int | None) -> Frames:
    """The frames of consecutive runs; the open decoder is closed however iteration ends."""
    black = black_frame(encode)
    for run in runs:
        if run.path is None:
            for _ in range(run.count):
                yield black
            continue
        inner = _decode_run(run, encode, threads=threads)
        try:
            yield from inner
        finally:
            inner.close()


def _mix_frames(run: MixRun, encode: EncodeSettings, threads: int | None) -> Frames:
    """A dissolve: every output frame is the weighted sum of its parts' frames (numpy)."""
    iters = [_frames_of(part.runs, encode, threads) for part in run.parts]
    fb = _frame_bytes(encode)
    acc = np.empty(fb, dtype=np.float32)
    tmp = np.empty(fb, dtype=np.float32)
    try:
        for i in range(run.count):
            acc.fill(0.5)  # rounds to nearest on the cast below
            for part, it in zip(run.parts, iters):
                data = next(it, None)
                if data is None:
                    raise MediaError(f"a dissolve part ended early at output frame {run.start + i}")
                w = part.weights[i]
                if w > 0:
                    np.multiply(np.frombuffer(data, dtype=np.uint8), np.float32(w), out=tmp)
                    acc += tmp
            yield np.clip(acc, 0, 255).astype(np.uint8).tobytes()
    finally:
        for it in iters:
            it.close()


def render_runs(
    runs: list[Run] | list[SourceRun],
    encode: EncodeSettings,
    out_path: Path,
    *,
    on_frames: FrameCallback | None = None,
    threads: int | None = None,
) -> int:
    """Encode the runs, in order, into one clip at *out_path* (atomic). Returns frames written."""
    total = sum(r.count for r in runs)
    purpose = f"encoding {out_path.name}"
    with atomic_output(out_path) as tmp, \
            write_frames(encoder_args(encode, tmp, total, threads=threads), purpose) as encoder:
        for run in runs:
            frames = (_mix_frames(run, encode, threads) if isinstance(run, MixRun)
                      else _frames_of([run], encode, threads))
            try:
                for frame in frames:
                    encoder.write(frame)
                    if on_frames is not None and encoder.frames % 12 == 0:
                        on_frames(12)
            finally:
                frames.close()
        if encoder.frames != total:
            raise FFmpegError(purpose, 0, f"{encoder.frames} of {total} frames were produced")
    if on_frames is not None and total % 12:
        on_frames(total % 12)
    return total


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
        hold = max(8, MAX_HOLD_BYTES // _frame_bytes(encode))
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
