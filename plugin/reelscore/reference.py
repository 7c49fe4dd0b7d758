"""Reference-movie mode: cut every scene clip from one flattened movie of the edit.

A turnover usually comes with a reference QuickTime of the cut. Rendering from it is the fast
path (one source, one decoder per clip, no compositing) and works when the edit's own media is
offline. The movie's first frame is record timecode ``--reference-start`` (default: the movie's
own start timecode, else 00:00:00:00), so the file frame of record frame ``R`` is
``R - reference_start``. Before anything is rendered the movie is checked: its rate must be the
timeline's, and it must cover the scored range. Frame accuracy is kept exactly as for sources:
an input seek half a frame early and every frame counted (see :mod:`reelscore.render`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from reelscore._version import __version__
from reelscore.errors import InputError, MediaError, RangeError
from reelscore.ffmpeg_cli import probe
from reelscore.plan import EncodeSettings, PlannedVideo
from reelscore.render import RENDER_VERSION, FrameCallback, SourceRun, render_runs
from reelscore.timecode import frames_to_tc, rate_label, tc_to_frames


@dataclass(frozen=True)
class ReferenceMovie:
    path: Path
    rate: Fraction
    start_frame: int  # record frame of the movie's first frame
    frames: int | None  # frame count from the container duration (None if unknown)
    width: int | None
    height: int | None
    start_source: str  # where start_frame came from: "--reference-start", "timecode", "default"

    @property
    def start_tc(self) -> str:
        return frames_to_tc(self.start_frame, self.rate)

    def describe(self) -> str:
        length = f", {self.frames} frames" if self.frames is not None else ""
        return (f"picture cut from reference movie {self.path.name} ({rate_label(self.rate)} fps"
                f"{length}, first frame {self.start_tc} from {self.start_source})")


def open_reference(path: Path, rate: Fraction, start_tc: str | None = None) -> ReferenceMovie:
    """Probe the movie and check that it plays at the timeline *rate*."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--reference {str(p)!r}: no such file",
                         hint="pass the flattened reference movie of this edit")
    info = probe(p)
    if not info.has_video:
        raise InputError(f"--reference {p.name} has no video stream",
                         hint="pass the flattened reference movie (picture) of this edit")
    if info.frame_rate is None:
        raise MediaError(f"--reference {p.name}: cannot read its frame rate",
                         hint="re-export the reference movie at the timeline's rate")
    if info.frame_rate != rate:
        raise InputError(
            f"--reference {p.name} runs at {rate_label(info.frame_rate)} fps but the timeline "
            f"runs at {rate_label(rate)} fps: its frames cannot be cut frame-exactly",
            hint=f"export the reference at {rate_label(rate)} fps, or score from the sources "
            "(without --reference)")
    if start_tc is not None:
        start, source = tc_to_frames(start_tc, rate), "--reference-start"
    elif info.timecode:
        start, source = tc_to_frames(info.timecode, rate), "its timecode"
    else:
        start, source = 0, "the default 00:00:00:00"
    return ReferenceMovie(p, rate, start, info.frame_count, info.width, info.height, source)


def check_coverage(movie: ReferenceMovie, first: int, end: int, *,
                   drop_frame: bool = False) -> None:
    """Record frames [first, end) must be in the movie (OUT exclusive)."""
    rate = movie.rate

    def tc(frame: int) -> str:
        return frames_to_tc(frame, rate, drop_frame=drop_frame)

    if first < movie.start_frame:
        raise RangeError(
            f"--reference {movie.path.name} starts at {tc(movie.start_frame)} "
            f"({movie.start_source}) but the scored range starts at {tc(first)}",
            hint="give the movie's first-frame timecode with --reference-start, or score a "
            "range inside the movie with --range")
    # The container duration is rounded to 1/100 s: allow one frame of slack here; the render
    # counts every frame and fails, naming the frame, if the movie really is short.
    if movie.frames is not None and end > movie.start_frame + movie.frames + 1:
        movie_end = tc(movie.start_frame + movie.frames)
        raise RangeError(
            f"--reference {movie.path.name} ends at {movie_end} but the scored range runs "
            f"to {tc(end)} ({end - movie.start_frame - movie.frames} frame(s) "
            "more)",
            hint="check --reference-start, use the full-length reference, or score a shorter "
            "--range")


class ReferenceRenderer:
    """Render planned videos by cutting them from the reference movie."""

    def __init__(self, movie: ReferenceMovie, *, on_frames: FrameCallback | None = None) -> None:
        self.movie = movie
        self.on_frames = on_frames
        self.max_workers: int | None = None  # one movie, read by as many decoders as fit
        self.decoder_threads: int | None = None  # None: render_all shares the cores

    def runs_for(self, video: PlannedVideo, encode: EncodeSettings) -> list[SourceRun]:
        first = video.start_frame + video.range.start - self.movie.start_frame
        if first < 0:
            check_coverage(self.movie, video.start_frame + video.range.start,
                           video.start_frame + video.range.end)
        frames = tuple(range(first, first + video.range.duration))
        return [SourceRun(0, video.range.duration, self.movie.path, frames, self.movie.rate,
                          clip_name=f"reference {video.range.record_in}")]

    def cache_key(self, video: PlannedVideo, encode: EncodeSettings) -> str:
        runs = self.runs_for(video, encode)
        blob = json.dumps({"v": RENDER_VERSION, "reelscore": __version__, "mode": "reference",
                           "encode": encode.model_dump(), "runs": [r.key() for r in runs]},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def render_video(self, video: PlannedVideo, out_path: Path, encode: EncodeSettings) -> None:
        render_runs(self.runs_for(video, encode), encode, out_path, on_frames=self.on_frames,
                    threads=self.decoder_threads)


__all__ = ["ReferenceMovie", "ReferenceRenderer", "check_coverage", "open_reference"]
