"""Conform: make what the service returned cover the scored range exactly.

The service has no duration parameter and returns no timing data, so the length drifts. Each
request's audio is decoded, its length measured against the planned length (the request's range
plus its handle), the drift reported in frames, then trimmed (with a short fade-out) or padded with
silence (after a short fade-out) to the planned length. The music is anchored at the request's
first frame: the service joins the clips in order from its start.

Requests are then joined: the handle of request *n* (music past its last cut) is crossfaded with
equal power into the start of request *n + 1*, so the crossfade starts on the cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from reelscore.errors import AudioError
from reelscore.ffmpeg_cli import decode_audio
from reelscore.plan import PlannedRequest, ScorePlan
from reelscore.providers.base import GeneratedAudio

SAMPLE_RATE = 48000
EDGE_FADE_S = 0.02


def frames_to_samples(frames: int | Fraction, rate: Fraction, sample_rate: int = SAMPLE_RATE) -> int:
    """Exact sample position of a frame boundary (rounded half up, consistently everywhere)."""
    return math.floor(Fraction(frames) * sample_rate / rate + Fraction(1, 2))


@dataclass(frozen=True)
class ConformReport:
    request_id: str
    planned_samples: int
    received_samples: int
    drift_samples: int
    drift_frames: float
    action: str  # "exact", "trimmed", "padded"

    def to_dict(self) -> dict[str, object]:
        return {
            "request": self.request_id,
            "planned_samples": self.planned_samples,
            "received_samples": self.received_samples,
            "drift_samples": self.drift_samples,
            "drift_frames": round(self.drift_frames, 3),
            "action": self.action,
        }


def load_generated(audio: GeneratedAudio, path: Path | None = None) -> np.ndarray:
    """Decode a provider's file (any container, headerless PCM included) to 48 kHz stereo."""
    src = path or audio.path
    if not src.exists() or src.stat().st_size == 0:
        raise AudioError(f"the {audio.provider} provider returned empty audio ({src.name})",
                         hint="rerun; if it repeats, the service failed to generate")
    if audio.container == "pcm":
        rate = audio.pcm_sample_rate or SAMPLE_RATE
        channels = int(audio.metadata.get("pcm_channels", 1))
        # Headerless 16-bit little-endian PCM (mono unless the provider says otherwise).
        pcm = decode_audio(src, fmt="s16le", sample_rate=rate, channels=channels)
        return _to_stereo48(pcm.mean(axis=1, keepdims=True) if channels > 2 else pcm, rate)
    raw_format = audio.metadata.get("raw_format")
    if audio.container == "other" and raw_format in ("mulaw", "alaw"):
        # ulaw_8000 / alaw_8000: headerless companded mono.
        rate = int(audio.metadata.get("raw_sample_rate", 8000))
        return _to_stereo48(decode_audio(src, fmt=str(raw_format), sample_rate=rate, channels=1), rate)
    data = decode_audio(src, sample_rate=SAMPLE_RATE, channels=2)
    if data.shape[0] == 0:
        raise AudioError(f"the {audio.provider} provider returned audio with no samples ({src.name})")
    return data


def _to_stereo48(pcm: np.ndarray, rate: int) -> np.ndarray:
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = math.gcd(rate, SAMPLE_RATE)
        pcm = resample_poly(pcm, SAMPLE_RATE // g, rate // g, axis=0).astype(np.float32)
    return pcm if pcm.shape[1] == 2 else np.repeat(pcm[:, :1], 2, axis=1)


def _fade(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, n, dtype=np.float64))).astype(np.float32)


def conform_request(audio: np.ndarray, request: PlannedRequest, rate: Fraction) -> tuple[np.ndarray, ConformReport]:
    """Trim or pad one request's audio to its planned length (range + handle)."""
    planned = frames_to_samples(request.range.duration + request.handle_frames, rate)
    got = audio.shape[0]
    drift = got - planned
    fade_n = min(int(EDGE_FADE_S * SAMPLE_RATE), max(1, planned // 4))
    out = np.zeros((planned, audio.shape[1]), dtype=np.float32)
    keep = min(got, planned)
    out[:keep] = audio[:keep]
    action = "exact"
    if drift > 0:
        action = "trimmed"
        out[planned - fade_n:] *= _fade(fade_n)[::-1, None]
    elif drift < 0:
        action = "padded"
        n = min(fade_n, keep)
        if n:
            out[keep - n:keep] *= _fade(n)[::-1, None]
    report = ConformReport(request.id, planned, got, drift,
                           float(Fraction(drift) * rate / SAMPLE_RATE), action)
    return out, report


def join_requests(parts: list[np.ndarray], plan: ScorePlan) -> np.ndarray:
    """Lay conformed request audio end to end on the scored range, crossfading each handle.

    Every request's audio (body and handle, as :func:`conform_request` shaped it) is anchored on
    its first frame. Where a request starts, the previous request's handle is still sounding: it
    fades out with equal power (cos) while the new request fades in (sin), starting exactly on
    the cut, over the handle's length (or the new request's body, if that is shorter). Every
    request's handle is laid down, so no join passes through silence and no music that was paid
    for is dropped; the last request's handle is zero frames (nothing follows it). When a request's
    answer was short and padded with silence, the crossfade ends where its music ends.
    """
    rate = plan.fraction_rate
    total = frames_to_samples(plan.range.duration, rate)
    channels = max(p.shape[1] for p in parts)
    out = np.zeros((total, channels), dtype=np.float32)
    origin = plan.range.start
    laid_end = 0  # first sample after the audio laid so far (the previous request's handle end)
    for part, req in zip(parts, plan.requests, strict=True):
        s = frames_to_samples(req.range.start - origin, rate)
        cut_out = frames_to_samples(req.range.end - origin, rate)
        end = min(s + part.shape[0], total)
        if end <= s:
            continue
        seg = part[: end - s, :channels] if part.shape[1] >= channels else np.repeat(
            part[: end - s], channels, axis=1)
        # The overlap is what the previous request left sounding past this cut, within this body.
        h = max(0, min(laid_end, cut_out, end) - s)
        if h > 0:
            t = np.linspace(0.0, 1.0, h, dtype=np.float64)[:, None]
            out[s:s + h] = out[s:s + h] * np.cos(t * math.pi / 2) + seg[:h] * np.sin(t * math.pi / 2)
        out[s + h:end] = seg[h:]
        # A short answer was padded with silence after a fade: crossfade only what sounds.
        laid_end = s + _sounding_length(seg)
    return out


def _sounding_length(x: np.ndarray, chunk: int = SAMPLE_RATE) -> int:
    """Samples up to and including the last non-zero one (0 for digital silence)."""
    stop = x.shape[0]
    while stop > 0:
        start = max(0, stop - chunk)
        nonzero = np.flatnonzero(np.any(x[start:stop] != 0, axis=1))
        if nonzero.size:
            return start + int(nonzero[-1]) + 1
        stop = start
    return 0
