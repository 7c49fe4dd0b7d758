"""The ffmpeg side of rendering: runs of file frames -> one H.264 proxy clip (:func:`render_runs`).

How frame accuracy is kept, whatever the sources' keyframe spacing (the runs come from
:mod:`reelscore.render_sources`):

* Each run of frames from one source is decoded by its own ffmpeg process with an *input* seek
  half a frame before the first wanted frame (ffmpeg decodes from the keyframe before it and drops
  everything earlier, so the first frame out is the wanted one) and ``-frames:v`` for the count.
  Frames come out as raw YUV at the proxy size (scaled in the decoder) on a pipe. A run's file
  frames may be any sequence: speed changes skip or repeat frames, a freeze decodes one frame, a
  reversed run is decoded forwards once and played from memory (its chunk's size bounded by
  :func:`reelscore.render_sources.source_runs`).
* Dissolves and fades: the parts of a blend are decoded side by side and mixed in numpy with the
  weight the picture gives each output frame (black for fades).
* Media kinds: movies seek at the file's own rate (:func:`seek_rate`), still images decode one
  frame, image sequences use ffmpeg's image2 demuxer from the first image needed.
* One encoder process per clip reads those frames from a pipe at the timeline's exact rate. We
  count every frame that passes, so a source that ends early is an error naming the clip and the
  record timecode, never a silently shorter clip. Black (gaps, generators) is written by us.
* The clip is constant frame rate at the timeline rate, in an MP4 whose track timescale holds each
  frame duration exactly (24000 for 23.976, a multiple of the rate otherwise).

ffmpeg-python is used here, and only here, as a command builder; ``reelscore.ffmpeg_cli`` runs
and locates ffmpeg."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from fractions import Fraction
from pathlib import Path

import ffmpeg
import numpy as np

from reelscore.errors import FFmpegError, MediaError
from reelscore.ffmpeg_cli import (
    INPUT_PROTOCOLS,
    ffmpeg_exe,
    file_arg,
    probe,
    read_frames,
    write_frames,
)
from reelscore.fsutil import atomic_output
from reelscore.plan import EncodeSettings
from reelscore.render_sources import MixRun, Run, SourceRun

FrameCallback = Callable[[int], None]
Frames = Generator[bytes, None, None]


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


# -------------------------------------------------------------------------------- frames


def black_frame(encode: EncodeSettings) -> bytes:
    y = bytes([16]) * (encode.width * encode.height)
    c = bytes([128]) * ((encode.width // 2) * (encode.height // 2))
    return y + c + c


def frame_bytes(encode: EncodeSettings) -> int:
    return encode.width * encode.height * 3 // 2


def _decode_run(run: SourceRun, encode: EncodeSettings, *,
                threads: int | None = None) -> Frames:
    """Yield the run's frames in output order (decoding each source frame once)."""
    lo = min(run.file_frames)
    decoded = read_frames(decoder_args(run, encode, threads=threads), frame_bytes(encode),
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
    fb = frame_bytes(encode)
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
