"""Render planned videos to small H.264 proxy clips that show exactly what the edit shows.

How frame accuracy is kept, whatever the sources' keyframe spacing:

* The picture layer says, for every output frame, which source frame is visible
  (:mod:`reelscore.picture`). Each run of frames from one source is decoded by its own ffmpeg
  process with an *input* seek half a frame before the first wanted frame (ffmpeg decodes from the
  keyframe before it and drops everything earlier, so the first frame out is the wanted one) and
  ``-frames:v`` for the count. Frames come out as raw YUV on a pipe.
* One encoder process per clip reads those frames from a pipe at the timeline's exact rate. We
  count every frame that passes, so a source that ends early is an error naming the clip and the
  record timecode, never a silently shorter clip. Black (gaps, generators) is written by us.
* The clip is constant frame rate at the timeline rate, in an MP4 whose track timescale holds each
  frame duration exactly (24000 for 23.976, a multiple of the rate otherwise).

ffmpeg-python is used here, and only here, as a command builder; ``reelscore.ffmpeg_cli`` runs
and locates ffmpeg.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Protocol

import ffmpeg
import numpy as np
import opentimelineio as otio

from reelscore import __version__
from reelscore.errors import FFmpegError, MediaError, OfflineMediaError
from reelscore.ffmpeg_cli import INPUT_PROTOCOLS, ffmpeg_exe, file_arg, probe
from reelscore.fsutil import atomic_output
from reelscore.picture import Picture, Segment
from reelscore.plan import EncodeSettings, PlannedVideo, ScorePlan
from reelscore.timecode import exact_rate, frames_to_tc, rt_frames, tc_to_frames
from reelscore.timeline import MediaLookup, MediaResolver

log = logging.getLogger(__name__)

RENDER_VERSION = "render/1"  # bump when output pixels could change for the same inputs

FrameCallback = Callable[[int], None]


class Renderer(Protocol):
    def render_video(self, video: PlannedVideo, out_path: Path, encode: EncodeSettings) -> None:
        """Write *video* (its ``timeline_range``) as an H.264 MP4 at *out_path*."""
        ...


# ----------------------------------------------------------------------------- source runs


@dataclass(frozen=True)
class SourceRun:
    """Output frames [start, start+count) taken from one media file."""

    start: int
    count: int
    path: Path | None  # None = black
    file_frames: tuple[int, ...] = ()  # file frame index (0-based) for every output frame
    src_rate: Fraction = Fraction(0)
    clip_name: str = ""
    reason: str = ""

    def key(self) -> dict[str, object]:
        if self.path is None:
            return {"black": self.count}
        st = self.path.stat()
        return {"path": str(self.path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                "first": self.file_frames[0], "last": self.file_frames[-1],
                "n": self.count, "step": _describe_steps(self.file_frames), "rate": str(self.src_rate)}


def _describe_steps(frames: tuple[int, ...]) -> str:
    h = hashlib.sha1(np.asarray(frames, dtype=np.int64).tobytes()).hexdigest()
    return h[:16]


class MediaOrigins:
    """Where a clip's media space starts in its file (available_range, else embedded timecode)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], int] = {}

    def origin(self, clip: otio.schema.Clip, path: Path, src_rate: Fraction) -> int:
        ref = clip.media_reference
        avail = getattr(ref, "available_range", None)
        if avail is not None:
            return rt_frames(avail.start_time, src_rate)
        key = (str(path), str(src_rate))
        if key not in self._cache:
            info = probe(path)
            origin = 0
            if info.timecode:
                try:
                    origin = tc_to_frames(info.timecode, src_rate)
                except Exception:
                    origin = 0
            self._cache[key] = origin
        return self._cache[key]


def source_runs(
    segments: list[Segment],
    *,
    timeline_rate: Fraction,
    lookups: dict[int, MediaLookup],
    origins: MediaOrigins,
) -> list[SourceRun]:
    """Turn picture segments into runs of file frames (impure only for origin probing)."""
    runs: list[SourceRun] = []
    for seg in segments:
        if seg.clip is None:
            runs.append(SourceRun(seg.start, seg.count, None, reason=seg.reason or "gap"))
            continue
        lookup = lookups.get(id(seg.clip))
        if lookup is None or lookup.path is None:
            runs.append(SourceRun(seg.start, seg.count, None, clip_name=seg.clip.name,
                                  reason="generator" if lookup is None else "offline"))
            continue
        origin = origins.origin(seg.clip, lookup.path, seg.src_rate)
        step = seg.src_rate / timeline_rate
        # The source frame visible at each timeline frame's instant (floor, with a guard against
        # float noise in the media start).
        frames = tuple(
            math.floor(seg.media_start + i * step + Fraction(1, 10_000)) - origin
            for i in range(seg.count)
        )
        if frames[0] < 0:
            raise MediaError(
                f"clip {seg.clip.name!r} starts {-frames[0]} frame(s) before its media "
                f"({lookup.path.name})",
                hint="the edit's source in point lies before the file's first frame; check the "
                "clip's available range or the file's start timecode",
            )
        runs.append(SourceRun(seg.start, seg.count, lookup.path, frames, seg.src_rate,
                              seg.clip.name))
    return runs


# ------------------------------------------------------------------------------- commands


def decoder_args(run: SourceRun, encode: EncodeSettings) -> list[str]:
    """One source run -> raw yuv420p frames at the proxy size on stdout."""
    assert run.path is not None
    first = run.file_frames[0]
    last = max(run.file_frames)
    need = last - min(first, min(run.file_frames)) + 1
    lo = min(run.file_frames)
    inp_kwargs: dict[str, object] = {"protocol_whitelist": INPUT_PROTOCOLS}
    if lo > 0:
        # Half a frame early: the decoder drops every frame before this instant, so frame `lo`
        # is the first one out even when timestamps carry rounding noise.
        inp_kwargs["ss"] = f"{float((Fraction(lo) - Fraction(1, 2)) / run.src_rate):.6f}"
    stream = ffmpeg.input(file_arg(run.path), **inp_kwargs)
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


def encoder_args(encode: EncodeSettings, out_path: Path, frames: int) -> list[str]:
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


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < n:
        block = stream.read(n - got)
        if not block:
            break
        chunks.append(block)
        got += len(block)
    return b"".join(chunks)


def _decode_run(run: SourceRun, encode: EncodeSettings) -> Iterator[bytes]:
    """Yield the run's frames in output order (decoding each source frame once)."""
    fb = _frame_bytes(encode)
    args = decoder_args(run, encode)
    lo = min(run.file_frames)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        try:
            monotonic = all(b >= a for a, b in zip(run.file_frames, run.file_frames[1:]))
            if monotonic:
                current_index = lo - 1
                current = b""
                for wanted in run.file_frames:
                    while current_index < wanted:
                        data = _read_exact(proc.stdout, fb)
                        if len(data) < fb:
                            raise _short_source(run, current_index + 1, err, proc)
                        current, current_index = data, current_index + 1
                    yield current
            else:  # reverse or shuffled order: hold the decoded range in memory
                need = max(run.file_frames) - lo + 1
                frames: list[bytes] = []
                for _ in range(need):
                    data = _read_exact(proc.stdout, fb)
                    if len(data) < fb:
                        raise _short_source(run, lo + len(frames), err, proc)
                    frames.append(data)
                for wanted in run.file_frames:
                    yield frames[wanted - lo]
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _short_source(run: SourceRun, missing: int, err: IO[bytes], proc: subprocess.Popen[bytes]) -> MediaError:
    proc.kill()
    proc.wait()
    err.seek(0)
    tail = err.read().decode("utf-8", "replace").strip()
    if tail:
        return FFmpegError(f"decoding {run.path} for clip {run.clip_name!r}", proc.returncode or 1, tail)
    return MediaError(
        f"clip {run.clip_name!r}: its media {run.path.name if run.path else '?'} ends before "
        f"file frame {missing}, but the edit uses it up to file frame {max(run.file_frames)}",
        hint="the edit refers to frames the file does not have: relink to the right media, "
        "or check the clip's source range",
    )


def render_runs(
    runs: list[SourceRun],
    encode: EncodeSettings,
    out_path: Path,
    *,
    on_frames: FrameCallback | None = None,
) -> int:
    """Encode the runs, in order, into one clip at *out_path* (atomic). Returns frames written."""
    total = sum(r.count for r in runs)
    black = black_frame(encode)
    written = 0
    with atomic_output(out_path) as tmp, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(encoder_args(encode, tmp, total), stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=err)
        assert proc.stdin is not None
        try:
            for run in runs:
                frames: Iterator[bytes] = (
                    iter([black] * run.count) if run.path is None else _decode_run(run, encode)
                )
                for frame in frames:
                    proc.stdin.write(frame)
                    written += 1
                    if on_frames is not None and written % 12 == 0:
                        on_frames(12)
            proc.stdin.close()
            rc = proc.wait()
        except BrokenPipeError:
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if rc != 0 or written != total:
            err.seek(0)
            raise FFmpegError(f"encoding {out_path.name}", rc,
                              err.read().decode("utf-8", "replace"))
    if on_frames is not None and written % 12:
        on_frames(written % 12)
    return written


class FFmpegRenderer:
    """Render planned videos from the edit's own media with ffmpeg."""

    def __init__(self, timeline: otio.schema.Timeline, picture: Picture,
                 resolver: MediaResolver, *, on_frames: FrameCallback | None = None) -> None:
        self.timeline = timeline
        self.picture = picture
        self.resolver = resolver
        self.on_frames = on_frames
        self.origins = MediaOrigins()
        self._lookups: dict[int, MediaLookup] = {}
        self._lock = threading.Lock()

    def lookup(self, clip: otio.schema.Clip) -> MediaLookup | None:
        """None for generator references (rendered black); a MediaLookup otherwise."""
        with self._lock:
            key = id(clip)
            if key not in self._lookups:
                if isinstance(clip.media_reference, otio.schema.GeneratorReference):
                    return None
                self._lookups[key] = self.resolver.resolve_clip(clip)
            return self._lookups[key]

    def runs_for(self, video: PlannedVideo, encode: EncodeSettings) -> list[SourceRun]:
        segs = self.picture.segments(video.range.start, video.range.end)
        lookups: dict[int, MediaLookup] = {}
        for seg in segs:
            if seg.clip is not None:
                lk = self.lookup(seg.clip)
                if lk is not None:
                    lookups[id(seg.clip)] = lk
        return source_runs(segs, timeline_rate=self.picture.rate, lookups=lookups,
                           origins=self.origins)

    def cache_key(self, video: PlannedVideo, encode: EncodeSettings) -> str:
        runs = self.runs_for(video, encode)
        blob = json.dumps({"v": RENDER_VERSION, "reelscore": __version__,
                           "encode": encode.model_dump(), "runs": [r.key() for r in runs]},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def render_video(self, video: PlannedVideo, out_path: Path, encode: EncodeSettings) -> None:
        runs = self.runs_for(video, encode)
        render_runs(runs, encode, out_path, on_frames=self.on_frames)


def offline_clips(
    timeline: otio.schema.Timeline, picture: Picture, resolver: MediaResolver,
    start: int, end: int, start_frame: int,
) -> list[tuple[str, str, str]]:
    """(clip name, record timecode, paths tried) for every visible clip in range with no media."""
    seen: set[int] = set()
    out: list[tuple[str, str, str]] = []
    for seg in picture.segments(start, end):
        clip = seg.clip
        if clip is None or id(clip) in seen:
            continue
        seen.add(id(clip))
        if isinstance(clip.media_reference, otio.schema.GeneratorReference):
            continue
        lookup = resolver.resolve_clip(clip)
        if lookup.path is None:
            tc = frames_to_tc(start_frame + seg.start, picture.rate)
            out.append((clip.name or "(unnamed)", tc, "; ".join(lookup.tried) or "nothing"))
    return out


def check_online(timeline: otio.schema.Timeline, picture: Picture, resolver: MediaResolver,
                 start: int, end: int, start_frame: int) -> None:
    missing = offline_clips(timeline, picture, resolver, start, end, start_frame)
    if missing:
        raise OfflineMediaError(missing)


def render_all(
    renderer: Renderer,
    jobs: list[tuple[PlannedVideo, Path, EncodeSettings]],
    *,
    workers: int | None = None,
) -> None:
    """Render several clips in parallel (bounded by cores); the first failure is raised."""
    workers = workers or max(1, min(len(jobs), (os.cpu_count() or 2)))
    if workers == 1 or len(jobs) <= 1:
        for video, path, encode in jobs:
            renderer.render_video(video, path, encode)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(renderer.render_video, v, p, e) for v, p, e in jobs]
        for f in futures:
            f.result()


def plan_encode(plan: ScorePlan) -> dict[str, EncodeSettings]:
    """The encode settings of every request (its own bitrate)."""
    return {r.id: plan.encode.model_copy(update={"video_kbps": r.video_kbps}) for r in plan.requests}


__all__ = [
    "FFmpegRenderer",
    "Renderer",
    "SourceRun",
    "check_online",
    "exact_rate",
    "offline_clips",
    "plan_encode",
    "render_all",
    "render_runs",
    "source_runs",
]
