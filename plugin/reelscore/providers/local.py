"""The ``local`` provider: an offline *sketch* engine for previews.

This is not a music model and not a substitute for the service. It needs no network and no model
download: it looks at the clips (cut positions, motion and brightness over time, via ffmpeg) and
synthesises a simple instrumental bed - chords, bass, a pulse - whose tempo and intensity follow
the picture and whose changes land exactly on the clip boundaries. It exists so that the demo, the
tests and offline previews can run the whole pipeline; the real score comes from the service.

What it guarantees (the pipeline and its tests rely on these):

* Length: exactly the sum of the clips' exact durations (frames / rate) at 48 kHz, rounded to the
  nearest sample. The service drifts; this engine does not.
* Sections: one per clip, starting on its boundary sample with a chord change, a downbeat and a
  clear onset; the previous section fades out over the last 15 ms before the boundary.
* Harmony: each section holds one chord root (bass, kick and the doubled chord root all sit on it),
  so the dominant pitch class of a section's window is the ``root_pc`` reported in the metadata;
  consecutive sections have different roots.
* Determinism: the same clips and seed give bit-identical audio (all randomness comes from
  ``numpy.random.default_rng`` seeded with the seed, per section with ``[seed, index]``); with no
  seed, one is derived from the clips' sha256.
* Level: about -20 dBFS RMS with every sample under -1 dBFS; loudness is normalised later.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from reelscore import ffmpeg_cli
from reelscore.errors import FFmpegError, InputError, MediaError
from reelscore.providers.base import (
    ClipRef,
    EventSink,
    GeneratedAudio,
    GenerationRequest,
    ProviderConfig,
    ProviderDefaults,
)
from reelscore.wavfile import write_wav

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
CHANNELS = 2
MODEL = "reelscore-sketch-1"
ENGINE_NOTE = "offline sketch engine for previews; not a substitute for the service"

# Analysis: tiny grey frames are enough for brightness, motion and hard cuts, and keep the pipe
# small; decoding the H.264 itself is the cost, so every frame is used at the clip's own rate.
_AN_W, _AN_H = 64, 36
_CUT_MIN_DIFF = 0.08  # mean |frame difference| (0..1) a hard cut must reach ...
_CUT_RATIO = 3.0  # ... and this many times the local median difference (+ _CUT_MARGIN)
_CUT_MARGIN = 0.05
_CUT_EDGE_S = 0.5  # cuts this close to a clip edge would crowd the section downbeat/fade
_CUT_SPACING_S = 0.5  # a flash frame gives two spikes; keep the first
_MOTION_SCALE = 0.015  # 24-fps-equivalent mean difference that reads as "moving" (~63 %)

_TEMPO_MIN, _TEMPO_MAX = 70.0, 130.0
_END_FADE_S = 0.015  # fade-out before every boundary: no click, and room for the next onset
_CEILING = 10 ** (-1.2 / 20)  # every sample stays under this, so under -1 dBFS after 24-bit rounding
_LIMIT_KNEE = 10 ** (-6 / 20)
_TARGET_RMS = 10 ** (-20 / 20)
_SAT_RMS = 0.25  # level the mix is brought to before tanh, so saturation is the same for every request
_BLOCK = 1 << 18  # samples per channel processed at a time while mastering

_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII")
# Scale-degree cycles (0-based) with no repeated neighbour, wrap-around included, and no
# diminished triad, so every section gets a stable chord with a different root from the last.
_PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "major": ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 5, 4), (1, 4, 0, 5), (0, 2, 3, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 6, 2), (0, 5, 3, 4), (0, 6, 5, 6), (0, 3, 5, 6)),
}
_MINOR_BRIGHTNESS = 0.3  # below this mean picture brightness the key is minor


def _ignore(_name: str, _data: dict[str, Any]) -> None:
    return None


# ------------------------------------------------------------------------------------- timing


def _parse_rate(clip: ClipRef, index: int) -> Fraction:
    text = clip.rate.strip()
    try:
        rate = Fraction(text) if "/" in text else ffmpeg_cli.snap_rate(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise InputError(
            f"clip {index + 1} ({clip.path.name}) has an unreadable frame rate {clip.rate!r}",
            hint='rates are exact rationals such as "24000/1001"',
        ) from exc
    if rate <= 0:
        raise InputError(f"clip {index + 1} ({clip.path.name}) has frame rate {clip.rate!r} <= 0")
    return rate


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def section_bounds(clips: tuple[ClipRef, ...] | list[ClipRef]) -> list[int]:
    """Sample positions of every clip boundary (len(clips) + 1 values, first 0, last the total).

    Each is the exact cumulative duration (frames / rate) at 48 kHz, rounded to the nearest sample,
    so rounding never accumulates from clip to clip.
    """
    bounds = [0]
    elapsed = Fraction(0)
    for i, clip in enumerate(clips):
        elapsed += Fraction(clip.frames) / _parse_rate(clip, i)
        bounds.append(_round_half_up(elapsed * SAMPLE_RATE))
    return bounds


def derive_seed(request: GenerationRequest) -> int:
    """The seed used when none is set: stable for the same clips, so reruns give the same audio."""
    h = hashlib.sha256("\n".join(c.sha256 for c in request.clips).encode("ascii", "replace"))
    return int.from_bytes(h.digest()[:4], "big") & 0x7FFFFFFF


# ------------------------------------------------------------------------------------ analysis


@dataclass(frozen=True)
class _ClipAnalysis:
    decoded_frames: int
    duration_s: float
    times_s: np.ndarray  # frame times on the clip's exact duration
    brightness: np.ndarray  # mean grey level per frame, 0..1
    motion: np.ndarray  # mean |difference| to the previous frame, 24 fps equivalent, cuts removed
    cuts_s: tuple[float, ...]  # hard cuts inside the clip, seconds from its start

    @property
    def mean_brightness(self) -> float:
        return float(self.brightness.mean())

    @property
    def motion_level(self) -> float:
        # Mean and upper percentile together: a mostly calm shot with bursts still reads as lively.
        return float(0.5 * self.motion.mean() + 0.5 * np.percentile(self.motion, 80))


def _analyse_clip(clip: ClipRef, index: int, duration_s: float) -> _ClipAnalysis:
    label = f"clip {index + 1} ({clip.path.name})"
    hint = "re-render the clip; the local engine needs a decodable video stream to follow the picture"
    if not clip.path.is_file():
        raise MediaError(f"{label} does not exist: {str(clip.path)!r}", hint=hint)
    try:
        frames = ffmpeg_cli.decode_gray_frames(
            clip.path, width=_AN_W, height=_AN_H, purpose=f"analysing {label}"
        )
    except MediaError as exc:
        detail = exc.stderr_tail if isinstance(exc, FFmpegError) else exc.message
        lines = [re.sub(r"^\[[^]]*\]\s*", "", ln.strip()) for ln in detail.splitlines()]
        reason = next((ln for ln in reversed(lines) if ln), "no details from ffmpeg")
        raise MediaError(
            f"{label} cannot be decoded as video ({reason}): {str(clip.path)!r}", hint=hint
        ) from exc
    n = len(frames)
    if n == 0:
        raise MediaError(f"{label} has no video frames ffmpeg can decode", hint=hint)

    flat = frames.reshape(n, -1)
    brightness = flat.mean(axis=1) / 255.0
    if n > 1:
        diff = np.abs(np.diff(flat.astype(np.int16), axis=0)).mean(axis=1) / 255.0
    else:
        diff = np.zeros(0)
    # Map decoded frames onto the exact clip duration: the request's frames/rate is the truth even
    # if the container reports one frame more or less.
    frame_s = duration_s / n
    times = (np.arange(n) + 0.5) * frame_s

    clean = diff.copy()
    cuts: list[float] = []
    for i in np.flatnonzero(diff > _CUT_MIN_DIFF):
        neighbours = np.concatenate([diff[max(0, i - 6) : i], diff[i + 1 : i + 7]])
        base = float(np.median(neighbours)) if len(neighbours) else 0.0
        if diff[i] <= _CUT_RATIO * base + _CUT_MARGIN:
            continue
        clean[i] = base  # a cut is an edit, not motion
        t = (i + 1) * frame_s
        if _CUT_EDGE_S <= t <= duration_s - _CUT_EDGE_S and (
            not cuts or t - cuts[-1] >= _CUT_SPACING_S
        ):
            cuts.append(round(t, 6))
    # Per-frame differences shrink with the frame rate; express them at 24 fps.
    motion = np.concatenate([clean[:1], clean]) * ((n / duration_s) / 24.0) if n > 1 else np.zeros(1)
    return _ClipAnalysis(n, duration_s, times, brightness, motion, tuple(cuts))


def _analyse(clips: tuple[ClipRef, ...], durations: list[float]) -> list[_ClipAnalysis]:
    # ffmpeg runs in subprocesses, so threads decode clips in parallel; results keep clip order
    # and the first failing clip (in order) is the one reported.
    workers = max(1, min(len(clips), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reelscore-analyse") as pool:
        futures = [
            pool.submit(_analyse_clip, clip, i, durations[i]) for i, clip in enumerate(clips)
        ]
        return [f.result() for f in futures]


# ---------------------------------------------------------------------------------- the score


@dataclass(frozen=True)
class _Section:
    index: int
    clip: ClipRef
    start: int
    length: int
    degree: int
    root_pc: int
    third: int  # semitones above the root
    colours: tuple[int, ...]  # diatonic sus2 / sus4 / seventh intervals that suit this chord
    tempo_bpm: float
    tempo_fits: bool  # the section holds a whole number of beats (or half-beats) at this tempo
    intensity: float
    timbre: float  # 0 dark .. 1 bright
    motion: float  # normalised 0..1
    brightness: float
    accents: tuple[int, ...]  # section-relative samples of internal cuts


def _motion_norm(m: np.ndarray | float) -> Any:
    return 1.0 - np.exp(-np.asarray(m) / _MOTION_SCALE)


def _fit_tempo(target: float, dur_s: float) -> tuple[float, bool]:
    """The tempo nearest *target* that fills the section with whole beats (else whole half-beats),
    so its last beat ends on the boundary. Only within 8 % of *target*, so the tempo still follows
    the picture; otherwise *target* itself (the section then ends mid-beat, under its fade)."""
    exact = dur_s * target / 60.0
    for per_beat in (1, 2):
        counts = {math.floor(exact * per_beat), math.ceil(exact * per_beat)} - {0}
        fitted = [n * 60.0 / (dur_s * per_beat) for n in sorted(counts)]
        fitted = [b for b in fitted if _TEMPO_MIN <= b <= _TEMPO_MAX and abs(b - target) <= 0.08 * target]
        if fitted:
            return min(fitted, key=lambda b: abs(b - target)), True
    return target, False


def _plan(
    clips: tuple[ClipRef, ...],
    bounds: list[int],
    analyses: list[_ClipAnalysis],
    rng: np.random.Generator,
) -> tuple[int, str, tuple[int, ...], list[_Section]]:
    durations = [(bounds[i + 1] - bounds[i]) / SAMPLE_RATE for i in range(len(clips))]
    weights = np.array([max(d, 1e-9) for d in durations])
    picture = float(np.average([a.mean_brightness for a in analyses], weights=weights))
    mode = "major" if picture >= _MINOR_BRIGHTNESS else "minor"
    tonic = int(rng.integers(12))
    choices = _PROGRESSIONS[mode]
    progression = choices[int(rng.integers(len(choices)))]
    scale = _SCALES[mode]

    sections = []
    for i, (clip, a) in enumerate(zip(clips, analyses, strict=True)):
        degree = progression[i % len(progression)]
        root_pc = (tonic + scale[degree]) % 12
        third = (scale[(degree + 2) % 7] - scale[degree]) % 12
        second, fourth, seventh = ((scale[(degree + k) % 7] - scale[degree]) % 12 for k in (1, 3, 6))
        colours = tuple(
            c for c, ok in ((second, second == 2), (fourth, fourth == 5), (seventh, seventh >= 10)) if ok
        )
        length = bounds[i + 1] - bounds[i]
        dur = length / SAMPLE_RATE
        motion = float(_motion_norm(a.motion_level))
        bright = a.mean_brightness
        cut_rate = len(a.cuts_s) / max(dur, 1e-9)
        intensity = float(np.clip(0.12 + 0.58 * motion + 0.2 * bright + 0.1 * min(1.0, cut_rate / 0.5), 0, 1))
        tempo, fits = _fit_tempo(float(round(_TEMPO_MIN + (_TEMPO_MAX - _TEMPO_MIN) * motion)), dur)
        accents = tuple(min(length - 1, round(t * SAMPLE_RATE)) for t in a.cuts_s)
        sections.append(
            _Section(
                index=i, clip=clip, start=bounds[i], length=length, degree=degree, root_pc=root_pc,
                third=third, colours=colours, tempo_bpm=tempo, tempo_fits=fits, intensity=intensity,
                timbre=float(np.clip(0.5 * intensity + 0.5 * bright, 0, 1)), motion=motion,
                brightness=bright, accents=accents,
            )
        )
    return tonic, mode, progression, sections


# ---------------------------------------------------------------------------------- synthesis

_TABLE_SIZE = 4096


@functools.lru_cache(maxsize=64)
def _wavetable(amps: tuple[float, ...]) -> np.ndarray:
    phase = np.arange(_TABLE_SIZE) * (2 * np.pi / _TABLE_SIZE)
    table = np.zeros(_TABLE_SIZE)
    for k, a in enumerate(amps):
        table += a * np.sin((k + 1) * phase)
    return (table / np.abs(table).max()).astype(np.float32)


def _harmonics(rolloff: float, count: int) -> tuple[float, ...]:
    """Partial amplitudes: brighter with *rolloff*, with the 3rd and 5th partials halved so a note
    feeds its own pitch class (octaves) more than its fifth and third. Quantised for the cache."""
    r = round(rolloff, 2)
    return tuple(round(r**k / (k + 1) * (0.5 if k in (2, 4) else 1.0), 4) for k in range(count))


_PHASE_BITS = 20


def _osc(table: np.ndarray, freq: float, index: np.ndarray) -> np.ndarray:
    """Wavetable oscillator over sample *index* (int64, counted from the section start), in fixed
    point. Counting from the section start makes the same note in two overlapping chunks
    sample-identical, so chord chunks crossfade without a dip."""
    step = round(freq * _TABLE_SIZE / SAMPLE_RATE * (1 << _PHASE_BITS))
    return table[((index * step) >> _PHASE_BITS) & (_TABLE_SIZE - 1)]


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def _in_range(pc: int, low: int) -> int:
    """The MIDI note of pitch class *pc* in the octave starting at *low*."""
    return low + (pc - low) % 12


def _ramp(n: int, attack: int, release: int) -> np.ndarray:
    i = np.arange(n, dtype=np.float32)
    return np.minimum(1.0, np.minimum((i + 1) / max(attack, 1), (n - i) / max(release, 1)))


def _decay(n: int, tau_s: float, floor: float = 0.0) -> np.ndarray:
    e = np.exp(np.arange(n, dtype=np.float32) * np.float32(-1.0 / (tau_s * SAMPLE_RATE)))
    return (floor + (1.0 - floor) * e).astype(np.float32)


def _pan(p: float) -> tuple[float, float]:
    angle = (p + 1.0) * np.pi / 4
    return math.cos(angle), math.sin(angle)


def _add(buf: np.ndarray, pos: int, sound: np.ndarray, gain: float, pan: float = 0.0) -> None:
    """Mix a mono (m,) or stereo (2, m) *sound* into *buf* (2, n) at *pos*, cut at the end."""
    n = buf.shape[1]
    if not 0 <= pos < n:
        return
    m = min(sound.shape[-1], n - pos)
    if sound.ndim == 1:
        gl, gr = _pan(pan)
        buf[0, pos : pos + m] += sound[:m] * np.float32(gain * gl)
        buf[1, pos : pos + m] += sound[:m] * np.float32(gain * gr)
    else:
        buf[:, pos : pos + m] += sound[:, :m] * np.float32(gain)


def _filtered_noise(
    rng: np.random.Generator, n: int, sos: np.ndarray, channels: int = 1
) -> np.ndarray:
    noise = rng.standard_normal((channels, n) if channels > 1 else n)
    out = signal.sosfilt(sos, noise, axis=-1)
    return (out / np.abs(out).max()).astype(np.float32)


_KIT_STREAM = 1 << 20  # generator stream for the drum kit; sections use their index
_REVERB_DECIMATE = 3  # the reverb runs at 16 kHz: its input is dark and it is the costliest part


@dataclass(frozen=True)
class _Kit:
    snare_noise: np.ndarray
    hats: tuple[np.ndarray, ...]
    shaker: np.ndarray
    crash: np.ndarray  # stereo (2, m)
    click: np.ndarray
    ir: np.ndarray  # stereo (2, m) reverb impulse response at SAMPLE_RATE / _REVERB_DECIMATE

    @classmethod
    def make(cls, rng: np.random.Generator) -> _Kit:
        sr = SAMPLE_RATE
        band = signal.butter(2, [1200, 7000], btype="bandpass", fs=sr, output="sos")
        high = signal.butter(2, 7000, btype="highpass", fs=sr, output="sos")
        shake = signal.butter(2, [3500, 10000], btype="bandpass", fs=sr, output="sos")
        crash_f = signal.butter(2, 3500, btype="highpass", fs=sr, output="sos")
        n_sn, n_hat, n_sh, n_cr = int(0.25 * sr), int(0.07 * sr), int(0.08 * sr), int(1.4 * sr)
        snare = _filtered_noise(rng, n_sn, band) * _decay(n_sn, 0.055) * _ramp(n_sn, 24, 48)
        hats = tuple(
            _filtered_noise(rng, n_hat, high) * _decay(n_hat, 0.014) * _ramp(n_hat, 8, 48)
            for _ in range(3)
        )
        # A shaker swells in over ~12 ms instead of starting on a hard edge.
        shaker = _filtered_noise(rng, n_sh, shake) * _decay(n_sh, 0.02) * _ramp(n_sh, 576, 96)
        crash = _filtered_noise(rng, n_cr, crash_f, channels=2) * _decay(n_cr, 0.45)
        crash *= _ramp(n_cr, 24, 480)
        click = (rng.standard_normal(96) * np.exp(-np.arange(96) / 20.0)).astype(np.float32)
        # Reverb: decaying noise, different per side (width), darker as it decays, pre-delayed.
        rsr = sr // _REVERB_DECIMATE
        n_ir, pre = int(0.6 * rsr), int(0.012 * rsr)
        raw = rng.standard_normal((2, n_ir)) * np.exp(-np.arange(n_ir) / (0.17 * rsr))
        lp = signal.butter(1, 5000, btype="lowpass", fs=rsr, output="sos")
        ir = np.zeros((2, pre + n_ir))
        ir[:, pre:] = signal.sosfilt(lp, raw, axis=-1)
        ir /= np.sqrt((ir**2).sum(axis=1, keepdims=True))
        return cls(snare, hats, shaker, crash, click, ir.astype(np.float32))


def _kick(root_pc: int, kit: _Kit) -> np.ndarray:
    # Tuned to the chord root: the low end reinforces the section's pitch class instead of blurring it.
    n = int(0.45 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f_end = _hz(_in_range(root_pc, 28))  # E1 .. D#2
    freq = f_end * (1.0 + 2.5 * np.exp(-t / 0.035))
    body = np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * np.exp(-t / 0.28)
    body[: len(kit.click)] += 0.25 * kit.click
    return (body * _ramp(n, 24, 240)).astype(np.float32)


def _snare(root_pc: int, kit: _Kit) -> np.ndarray:
    n = len(kit.snare_noise)
    t = np.arange(n) / SAMPLE_RATE
    body = np.sin(2 * np.pi * _hz(_in_range(root_pc, 53)) * t) * np.exp(-t / 0.045)
    return (kit.snare_noise + 0.5 * body.astype(np.float32)) * np.float32(0.8)


def _motion_envelope(a: _ClipAnalysis, length: int) -> np.ndarray:
    """Per-sample gain 0.75..1 following the motion curve, smoothed over about a second."""
    m = a.motion
    if len(m) > 2:
        w = max(1, min(len(m), round(len(m) / a.duration_s)))  # about one second of frames
        kernel = np.ones(w) / w
        m = np.convolve(m, kernel, mode="same") / np.convolve(np.ones(len(m)), kernel, mode="same")
    env = 0.75 + 0.25 * _motion_norm(m)
    hop = 256  # a control rate is plenty for a one-second envelope
    ctrl = np.interp(
        (np.arange(length // hop + 1) * hop + hop / 2) / SAMPLE_RATE, a.times_s, env
    ).astype(np.float32)
    return np.repeat(ctrl, hop)[:length]


def _add_reverb(out: np.ndarray, send: np.ndarray, ir: np.ndarray, gain: float) -> None:
    """Add *send* (2, n) convolved with the kit's IR into *out*, computed at a third of the rate;
    the tail is cut at n (the section end)."""
    d, n = _REVERB_DECIMATE, send.shape[1]
    m = -(-n // d)
    low = np.zeros((2, m), np.float32)
    for j in range(d):  # box filter: the send is dark, so its aliasing is inaudible
        low[:, : len(range(j, n, d))] += send[:, j::d]
    low *= np.float32(gain / d)
    wet = np.zeros((2, m + 1), np.float32)
    for ch in range(2):
        wet[ch, :m] = signal.oaconvolve(low[ch], ir[ch])[:m]
    for j in range(d):  # linear interpolation back to the full rate, straight into out
        k = len(range(j, n, d))
        out[:, j::d] += wet[:, :k] * np.float32(1 - j / d) + wet[:, 1 : k + 1] * np.float32(j / d)


def _render_section(
    sec: _Section, a: _ClipAnalysis, kit: _Kit, rng: np.random.Generator
) -> np.ndarray:
    """One section as (2, length) float32; starts with its onset, ends faded to silence."""
    sr, n_len = SAMPLE_RATE, sec.length
    index = np.arange(n_len, dtype=np.int64)
    tonal = np.zeros((2, n_len), np.float32)  # pad + arp: also sent to the reverb
    rhythm = np.zeros((2, n_len), np.float32)  # drums: follow the motion envelope
    bass = np.zeros(n_len, np.float32)
    send = np.zeros((2, n_len), np.float32)
    beat = sr * 60.0 / sec.tempo_bpm
    beats = [round(k * beat) for k in range(math.ceil(n_len / beat))]
    intensity, root, third = sec.intensity, sec.root_pc, sec.third

    # --- pad: the chord, root doubled; voicing colours change every two bars, the root never does.
    colours = (third, third, *sec.colours)  # plain triads stay the most common voicing
    pad_table = _wavetable(_harmonics(0.15 + 0.45 * sec.timbre, 6))
    r3 = _in_range(root, 45)  # A2 .. G#3
    chunk_starts = beats[::8]
    xfade = int(0.06 * sr)
    for c, c0 in enumerate(chunk_starts):
        c1 = chunk_starts[c + 1] if c + 1 < len(chunk_starts) else n_len
        colour = third if c == 0 else colours[int(rng.integers(len(colours)))]
        voices = [(r3, 1.0, 0.0), (r3 + 7, 0.4, -0.35), (r3 + 12, 0.9, 0.3), (r3 + 24, 0.3, 0.1)]
        if colour in (2, 5):  # sus chord: the colour replaces the third
            voices.append((r3 + 12 + colour, 0.4, -0.2))
        else:
            voices.append((r3 + 12 + third, 0.45, -0.2))
            if colour != third:
                voices.append((r3 + 12 + colour, 0.3, 0.45))
        end = n_len if c1 == n_len else min(n_len, c1 + xfade)
        idx = index[c0:end]
        left = np.zeros(end - c0, np.float32)
        right = np.zeros(end - c0, np.float32)
        tmp = np.empty(end - c0, np.float32)
        for midi, g, p in voices:
            v = _osc(pad_table, _hz(midi), idx)
            gl, gr = _pan(p)
            left += np.multiply(v, np.float32(0.11 * g * gl), out=tmp)
            right += np.multiply(v, np.float32(0.11 * g * gr), out=tmp)
        # First chunk: near-instant attack for a clear onset; later chunks crossfade linearly.
        env = _ramp(end - c0, 240 if c == 0 else xfade, xfade if end < n_len else 48)
        tonal[0, c0:end] += left * env
        tonal[1, c0:end] += right * env

    # --- bass: always the root (octaves only), pattern denser with intensity.
    bass_table = _wavetable((1.0, 0.3, 0.08))
    b_root = _in_range(root, 33)  # A1 .. G#2
    notes: list[tuple[int, int]] = []  # (start sample, midi)
    step = 4.0 if intensity < 0.35 else 2.0 if intensity < 0.65 else 0.5
    k = 0.0
    while round(k * beat) < n_len:
        octave = 12 if step == 0.5 and int(k * 2) % 2 == 1 and rng.random() < 0.4 else 0
        notes.append((round(k * beat), b_root + octave))
        k += step
    for j, (s, midi) in enumerate(notes):
        e = notes[j + 1][0] if j + 1 < len(notes) else n_len
        n = e - s
        env = _ramp(n, 144, min(1440, n // 4)) * _decay(n, 0.35, 0.55)
        env *= np.float32(0.9 + 0.1 * rng.random())
        bass[s:e] += _osc(bass_table, _hz(midi), index[s:e]) * env

    # --- arpeggio: chord tones an octave up, root-weighted, only when the picture has energy.
    if intensity >= 0.4:
        pluck_table = _wavetable(_harmonics(0.45, 5))
        tones = [r3 + 12, r3 + 19, r3 + 24, r3 + 12 + third]
        # Roots on the strong steps keep the section's pitch class on top in the upper register.
        pattern = [0, int(rng.choice([1, 3])), int(rng.choice([0, 2])), int(rng.choice([1, 3]))]
        half = beat / 2
        n_pl = int(0.45 * sr)
        pl_env = _decay(n_pl, 0.16) * _ramp(n_pl, 96, 480)
        for j in range(math.ceil(n_len / half)):
            s = round(j * half)
            n = min(n_pl, n_len - s)
            note = _osc(pluck_table, _hz(tones[pattern[j % 4]]), index[s : s + n]) * pl_env[:n]
            vel = (1.0 if j % 2 == 0 else 0.7) * (0.85 + 0.15 * rng.random())
            _add(tonal, s, note, 0.07 * (0.6 + 0.4 * intensity) * vel, -0.4 if j % 2 else 0.4)

    # --- drums: downbeat on the boundary, pattern density from intensity.
    kick, snare = _kick(root, kit), _snare(root, kit)
    _add(rhythm, 0, kick, 0.55)
    _add(rhythm, 0, kit.crash, 0.10 + 0.12 * intensity)
    for b, pos in enumerate(beats):
        in_bar, vel = b % 4, 0.9 + 0.1 * rng.random()
        if intensity < 0.35:
            if b and in_bar == 0:
                _add(rhythm, pos, kick, 0.4 * vel)
            _add(rhythm, pos, kit.shaker, 0.10 * vel * (1.0 if in_bar % 2 == 0 else 0.7), 0.25)
            continue
        if b and in_bar in (0, 2):
            _add(rhythm, pos, kick, 0.48 * vel)
        if in_bar in (1, 3):
            _add(rhythm, pos, snare, (0.22 + 0.15 * intensity) * vel, -0.1)
            _add(send, pos, snare, 0.05 * vel)
        subdivisions = 4 if intensity >= 0.65 else 2
        for h in range(subdivisions):
            hp = pos + round(h * beat / subdivisions)
            accent = 1.0 if h == 0 else 0.65 if h * 2 == subdivisions else 0.45
            hat = kit.hats[int(rng.integers(len(kit.hats)))]
            _add(rhythm, hp, hat, 0.09 * accent * (0.8 + 0.2 * rng.random()), 0.3)
        if intensity >= 0.65 and in_bar == 2 and rng.random() < 0.5:
            _add(rhythm, pos + round(beat / 2), kick, 0.35 * vel)
    for acc in sec.accents:  # hits on the cuts inside the clip
        _add(rhythm, acc, kick, 0.5)
        _add(rhythm, acc, kit.crash, 0.08 + 0.1 * intensity)

    # --- mix: motion envelope on the pulse, bass warmed by tanh, reverb cut at the section end.
    rhythm *= _motion_envelope(a, n_len)
    bass = np.tanh(bass * np.float32(1.0)) * np.float32(0.3 / math.tanh(1.0))
    send += tonal * np.float32(0.5)
    out = tonal
    out += rhythm
    out += bass
    _add_reverb(out, send, kit.ir, 0.35)
    out *= np.float32(0.55 + 0.45 * intensity)
    fade = min(int(_END_FADE_S * sr), n_len // 3)
    if fade > 0:
        out[:, n_len - fade :] *= 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, fade, dtype=np.float32))
    return out


def _synthesise(
    sections: list[_Section], analyses: list[_ClipAnalysis], seed: int, total: int
) -> np.ndarray:
    """All sections, mastered, as (2, total) float32.

    Each section draws from its own generator seeded by (seed, index), so sections can render in
    parallel (numpy releases the GIL) and the result does not depend on scheduling; a section's
    details also stay put when another clip changes.
    """
    kit = _Kit.make(np.random.default_rng([seed, _KIT_STREAM]))
    audio = np.zeros((CHANNELS, total), np.float32)  # channel-major while synthesising

    def render(sec: _Section) -> None:
        rng = np.random.default_rng([seed, sec.index])
        audio[:, sec.start : sec.start + sec.length] = _render_section(
            sec, analyses[sec.index], kit, rng
        )

    workers = max(1, min(len(sections), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reelscore-synth") as pool:
        for future in [pool.submit(render, sec) for sec in sections]:
            future.result()
    _master(audio)
    return audio


def _master(audio: np.ndarray) -> None:
    """In place: fixed-level soft saturation, then -20 dBFS RMS, then a soft ceiling at -1.2 dBFS."""

    def rms(x: np.ndarray) -> float:
        # float64 pairwise sums per block: exact enough and independent of BLAS threading.
        blocks = range(0, x.shape[1], _BLOCK)
        total = sum(float(np.square(x[:, i : i + _BLOCK], dtype=np.float64).sum()) for i in blocks)
        return math.sqrt(total / max(x.size, 1))

    level = rms(audio)
    if level <= 1e-9:
        return
    audio *= np.float32(_SAT_RMS / level)
    np.tanh(audio, out=audio)
    audio *= np.float32(_TARGET_RMS / rms(audio))
    # The knee only engages on rare transients; tanh keeps every sample strictly under the ceiling.
    # In blocks, so the temporaries stay small on a 10-minute track.
    span = _CEILING - _LIMIT_KNEE
    for i in range(0, audio.shape[1], _BLOCK):
        block = audio[:, i : i + _BLOCK]
        over = np.abs(block) > _LIMIT_KNEE
        if over.any():
            x = block[over]
            block[over] = np.sign(x) * (_LIMIT_KNEE + span * np.tanh((np.abs(x) - _LIMIT_KNEE) / span))


# ------------------------------------------------------------------------------------- provider


class LocalProvider(ProviderDefaults):
    """Offline sketch engine (see the module docstring): no network, no model, deterministic."""

    name = "local"
    charges = False  # nothing is paid: an interrupted request is simply generated again
    reports_upload_complete = False

    def preflight(self) -> None:
        return None  # no key, no service

    def __init__(self, config: ProviderConfig | None = None) -> None:
        self.config = config or ProviderConfig()

    def generate(
        self, request: GenerationRequest, out_dir: Path, *, on_event: EventSink = _ignore
    ) -> GeneratedAudio:
        t0 = time.perf_counter()
        clips = request.clips
        if not clips:
            raise InputError(
                f"request {request.request_id} has no clips; there is nothing to score",
                hint="check the scored range and scene policy: the plan produced an empty request",
            )
        seed = request.settings.seed
        seed_source = "settings"
        if seed is None:
            seed, seed_source = derive_seed(request), "clips_sha256"
        if seed < 0:
            raise InputError(f"seed {seed} is negative", hint="use a seed of 0 or more")

        bounds = section_bounds(clips)
        durations = [(bounds[i + 1] - bounds[i]) / SAMPLE_RATE for i in range(len(clips))]
        for i, clip in enumerate(clips):
            if bounds[i + 1] <= bounds[i]:
                raise InputError(f"clip {i + 1} ({clip.path.name}) is shorter than one audio sample")
            if abs(clip.duration_s - durations[i]) > 0.5 / float(_parse_rate(clip, i)):
                log.warning(
                    "clip %s: duration_s %.6f disagrees with frames/rate %.6f; using frames/rate",
                    clip.path.name, clip.duration_s, durations[i],
                )

        analyses = _analyse(clips, durations)
        t_an = time.perf_counter()
        on_event(
            "analysis",
            {
                "clips": len(clips),
                "frames": sum(a.decoded_frames for a in analyses),
                "internal_cuts": sum(len(a.cuts_s) for a in analyses),
                "brightness": [round(a.mean_brightness, 3) for a in analyses],
                "motion": [round(float(_motion_norm(a.motion_level)), 3) for a in analyses],
                "elapsed_s": round(t_an - t0, 3),
            },
        )

        tonic, mode, progression, sections = _plan(
            clips, bounds, analyses, np.random.default_rng(seed)
        )
        audio = _synthesise(sections, analyses, seed, bounds[-1])

        path = Path(out_dir) / f"{request.request_id}.local.wav"
        # (2, n) synthesis buffer -> (n, 2) frames: a view; wavfile converts it in blocks.
        write_wav(path, audio.T, SAMPLE_RATE, bits=24)
        key = f"{_NAMES[tonic]} {mode}"
        metadata = self._metadata(request, seed_source, key, mode, progression, sections, bounds)
        elapsed = time.perf_counter() - t0
        log.info(
            "local sketch %s: %d section(s), %.2f s of audio in %.2f s (analysis %.2f s)",
            path.name, len(sections), bounds[-1] / SAMPLE_RATE, elapsed, t_an - t0,
        )
        on_event(
            "generated",
            {
                "file": path.name,
                "samples": bounds[-1],
                "seconds": round(bounds[-1] / SAMPLE_RATE, 6),
                "key": key,
                "seed": seed,
                "sections": len(sections),
                "elapsed_s": round(elapsed, 3),
            },
        )
        return GeneratedAudio(
            path=path, container="wav", provider=self.name, model=MODEL, seed=seed,
            metadata=metadata,
        )

    @staticmethod
    def _metadata(
        request: GenerationRequest,
        seed_source: str,
        key: str,
        mode: str,
        progression: tuple[int, ...],
        sections: list[_Section],
        bounds: list[int],
    ) -> dict[str, Any]:
        scale = _SCALES[mode]
        ignored = [
            name for name in ("description", "tags", "model_id", "add_sfx", "separate_tracks",
                              "use_audio_as_reference", "sign_with_c2pa")
            if getattr(request.settings, name) not in (None, ())
        ]
        out_sections = []
        for s in sections:
            numeral = _ROMAN[s.degree] if s.third == 4 else _ROMAN[s.degree].lower()
            out_sections.append(
                {
                    "index": s.index,
                    "clip": s.clip.path.name,
                    "scene_ids": list(s.clip.scene_ids),
                    "start_sample": s.start,
                    "length_samples": s.length,
                    "root_pc": s.root_pc,
                    "root": _NAMES[s.root_pc],
                    "chord": _NAMES[s.root_pc] + ("" if s.third == 4 else "m"),
                    "degree": numeral,
                    "tempo_bpm": round(s.tempo_bpm, 3),
                    "tempo_fits_section": s.tempo_fits,
                    "intensity": round(s.intensity, 3),
                    "motion": round(s.motion, 3),
                    "brightness": round(s.brightness, 3),
                    "accent_samples": [s.start + a for a in s.accents],
                }
            )
        return {
            "engine_note": ENGINE_NOTE,
            "sample_rate": SAMPLE_RATE,
            "channels": CHANNELS,
            "total_samples": bounds[-1],
            "duration_s": round(bounds[-1] / SAMPLE_RATE, 6),
            "seed_source": seed_source,
            "key": key,
            "scale": list(scale),
            "progression": [
                _ROMAN[d] if (scale[(d + 2) % 7] - scale[d]) % 12 == 4 else _ROMAN[d].lower()
                for d in progression
            ],
            "ignored_settings": ignored,
            "sections": out_sections,
        }
