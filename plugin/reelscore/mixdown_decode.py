"""Decoding one stretch of one file and adding its clips into the mix (see reelscore.mixdown).

A :class:`Span` is decoded by one ffmpeg that seeks to a whole 10 ms (a whole second when the
file's rate is not a multiple of 100 Hz): at such an instant both the file's samples and the
48 kHz samples fall exactly, so sample 0 of the output is file sample ``seek`` of the mix rate
and every clip lands on its sample. The seek is an input seek ``PREROLL_S`` early followed by an
output seek over the pre-roll (decoded, then dropped by timestamp): an input seek alone is not
sample-exact for AAC in MP4/MOV (it landed 32 to 480 samples late in our measurements). Samples stream in chunks of ``CHUNK_S`` seconds; each chunk
is folded to stereo once and added, with each clip's gain and crossfade ramps, where the clips
using it sound.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reelscore.ffmpeg_cli import INPUT_PROTOCOLS, MediaInfo, base_args, file_arg, read_chunks

log = logging.getLogger(__name__)

CHUNK_S = 2
PREROLL_S = 1.0


@dataclass(frozen=True)
class PlacedPiece:
    """File samples [file_start, file_start + count) (at the mix rate) sounding at output
    samples [out_start, out_start + count), times *gain*, through the crossfade *ramps*."""

    name: str  # the clip, for messages
    track: int  # its audio track (A1 = 1; 0 = not a track)
    path: Path
    channels: int
    file_start: int
    out_start: int
    count: int
    gain: float = 1.0
    ramps: tuple[tuple[int, int, bool], ...] = ()  # output samples [a, b), rising or falling

    def key(self) -> list[object]:
        return [self.file_start, self.out_start, self.count, round(self.gain, 9),
                [list(r) for r in self.ramps]]


@dataclass(frozen=True)
class Span:
    """File samples [seek, seek + length) at the mix rate, and the pieces that use them."""

    path: Path
    channels: int
    seek: int
    length: int
    pieces: tuple[PlacedPiece, ...]

    @classmethod
    def of(cls, path: Path, info: MediaInfo, pieces: list[PlacedPiece],
           sample_rate: int) -> Span:
        src_rate = info.sample_rate or sample_rate
        grain = sample_rate // 100 if src_rate % 100 == 0 and sample_rate % 100 == 0 \
            else sample_rate
        first = min(p.file_start for p in pieces)
        last = max(p.file_start + p.count for p in pieces)
        seek = max(0, first // grain * grain)
        assert info.channels is not None
        return cls(path, info.channels, seek, max(0, last - seek), tuple(pieces))

    def key(self) -> dict[str, object]:
        st = self.path.stat()
        return {"path": str(self.path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                "seek": self.seek, "pieces": [p.key() for p in self.pieces]}


def _args(span: Span, sample_rate: int) -> list[str]:
    seek_s = span.seek / sample_rate  # a whole 10 ms or second: exact in decimal
    # Input-seek PREROLL_S early, then drop the pre-roll by timestamp on the output side: an
    # input seek alone lands up to an AAC frame off in MP4 (measured: 32-480 samples).
    pre_s = min(seek_s, PREROLL_S)
    # One extra 10 ms so ffmpeg's rounding of -t never cuts the last wanted sample.
    duration_s = math.ceil((span.length + sample_rate // 100) * 1000 / sample_rate) / 1000
    return base_args() + [
        "-protocol_whitelist", INPUT_PROTOCOLS, "-ss", f"{seek_s - pre_s:.3f}",
        "-i", file_arg(span.path), "-ss", f"{pre_s:.3f}", "-t", f"{duration_s:.3f}",
        "-map", "0:a:0", "-vn", "-af", f"aresample={sample_rate}",
        "-f", "f32le", "-c:a", "pcm_f32le", "pipe:1"]


def _apply_ramps(part: np.ndarray, out_lo: int,
                 ramps: tuple[tuple[int, int, bool], ...]) -> np.ndarray:
    """*part* (output samples from *out_lo*) through the crossfade ramps that overlap it; only
    the overlapping samples are computed (a ramp covers a piece's head or tail)."""
    out_hi = out_lo + len(part)
    copied = False
    for start, end, rising in ramps:
        a, b = max(out_lo, start), min(out_hi, end)
        if a >= b:
            continue
        if not copied:
            part = part.copy() if part.shape[1] == 2 else np.repeat(part, 2, axis=1)
            copied = True
        x = (np.arange(a, b, dtype=np.float64) - start + 0.5) / max(1, end - start)
        gain = np.sin(np.pi / 2 * x) if rising else np.cos(np.pi / 2 * x)
        part[a - out_lo:b - out_lo] *= gain.astype(np.float32)[:, None]
    return part


def decode_span(span: Span, mix: np.ndarray, lock: threading.Lock, sample_rate: int,
                fold: np.ndarray | None) -> None:
    """Decode *span* and add every piece of it into *mix* (output samples, under *lock*)."""
    assert fold is not None
    chunk_bytes = CHUNK_S * sample_rate * span.channels * 4
    purpose = f"decoding audio from {span.path.name!r} for the mixdown"
    chunks = read_chunks(_args(span, sample_rate), chunk_bytes, purpose)
    with contextlib.closing(chunks):  # stopping early kills the decoder
        got = _add_chunks(span, chunks, mix, lock, fold)
    _report_short(span, got, sample_rate)


def _add_chunks(span: Span, chunks: Iterator[bytes], mix: np.ndarray, lock: threading.Lock,
                fold: np.ndarray) -> int:
    got = 0  # span samples decoded so far
    for raw in chunks:
        block = np.frombuffer(raw, dtype="<f4").reshape(-1, span.channels)
        # Mono stays one column (it broadcasts into both sides when added; its -3 dB joins the
        # clip's gain): half the work.
        scale = float(fold[0, 0]) if span.channels == 1 else 1.0
        stereo = block if span.channels <= 2 else block @ fold.T
        lo, hi = span.seek + got, span.seek + got + len(block)  # file samples of this chunk
        got += len(block)
        for piece in span.pieces:
            a = max(lo, piece.file_start)
            b = min(hi, piece.file_start + piece.count)
            if a >= b:
                continue
            out_lo = piece.out_start + (a - piece.file_start)
            out_hi = out_lo + (b - a)
            part = stereo[a - lo:b - lo]
            gain = piece.gain * scale
            if gain != 1.0:
                part = part * np.float32(gain)
            if piece.ramps:
                part = _apply_ramps(part, out_lo, piece.ramps)
            with lock:
                mix[out_lo:out_hi] += part
        if got >= span.length:
            break
    return got


def _report_short(span: Span, got: int, sample_rate: int) -> None:
    end = span.seek + got
    for piece in span.pieces:
        if piece.file_start + piece.count > end:
            short = piece.file_start + piece.count - max(end, piece.file_start)
            log.warning("mixdown: %r on A%d ends %.3f s after its media (%s); silence there",
                        piece.name, piece.track, short / sample_rate, span.path.name)
        if piece.file_start < 0:
            log.warning("mixdown: %r on A%d starts %.3f s before its media (%s); silence there",
                        piece.name, piece.track, -piece.file_start / sample_rate,
                        span.path.name)


__all__ = ["PlacedPiece", "Span", "decode_span"]
