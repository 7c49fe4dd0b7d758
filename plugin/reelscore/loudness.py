"""Loudness: ITU-R BS.1770-4 / EBU R128 measurement and normalisation to -14 LUFS / -1 dBTP.

Why not ffmpeg ``loudnorm`` (see the project's ``shared/reference/loudness.md``): it leaves
linear mode whenever the peak-to-loudness ratio is above 13 dB (most generated music), then runs
an AGC at 192 kHz that misses -14 LUFS and, once resampled back, the -1 dBTP ceiling. Here:

* **Measurement** (:func:`measure`): exact K-weighting recomputed for the sample rate from the
  analogue prototype as libebur128 does (at 48 kHz it reproduces the BS.1770 table), 400 ms blocks
  every 100 ms, absolute gate -70 LUFS, relative gate -10 LU, channel weights L/R/C 1.0,
  Ls/Rs 1.41, LFE excluded. LRA by EBU Tech 3342 (3 s windows, -70 LUFS / -20 LU gates,
  10th-95th percentile). All vectorised: one IIR pass per chunk, then block sums from 100 ms
  partial sums (exact, no long cumulative sums that lose precision on quiet blocks).
* **Mono is measured as one channel**, as BS.1770 defines it: a mono file at -14 LUFS plays about
  3 dB quieter than a stereo one on two speakers. reelscore's pipeline works in stereo.
* **True peak**: 8x polyphase oversampling (BS.1770 asks for at least 4x) with a 2049-tap
  Kaiser-windowed sinc cut at the input Nyquist (see ``TRUE_PEAK_OVERSAMPLE`` for why), done as
  FFT overlap-save, max'ed with the sample peak. The short 48-tap FIR printed in BS.1770 Annex 2
  reads up to 0.5 dB low on clipped music.
* **Undefined loudness is an error** (:class:`~reelscore.errors.AudioError`): shorter than 0.4 s,
  digital silence, or nothing above -70 LUFS. :func:`normalise` also refuses near-silence (below
  ``silence_floor_lufs``) instead of raising noise by 40+ dB.
* **Normalisation** (:func:`normalise`): one static gain ``target - I``. If the predicted true
  peak (measured TP + gain) fits under the ceiling, that is all: no limiter, dynamics untouched.
  Otherwise a look-ahead true-peak limiter runs, detecting on the 8x true-peak envelope and aiming
  0.5 dB under the ceiling. Its gain curve is computed per control period (~0.33 ms) without
  loops: required reduction -> running maximum over the look-ahead (attack and hold) ->
  exponential release as a running maximum in the log domain -> moving average, then
  interpolated to every sample. The static gain is solved against a model of the limited
  loudness (cheap: no re-filtering), and the real output is measured exactly; what the model
  missed shifts its target and the loop repeats until the output is within 0.05 LU of the target
  with its true peak under the ceiling (usually one exact pass). Sample rate, channel count and
  length are kept.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy import fft as sfft
from scipy import ndimage, signal

from reelscore import ffmpeg_cli, wavfile
from reelscore.errors import AudioError
from reelscore.fsutil import atomic_output

log = logging.getLogger(__name__)

F64 = NDArray[np.float64]

# ------------------------------------------------------------------------------------ constants

BLOCK_S = 0.4  # gating block (momentary window)
HOP_S = 0.1  # 75 % overlap
SHORT_TERM_S = 3.0  # LRA window
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LRA_RELATIVE_GATE_LU = -20.0
_OFFSET = -0.691  # cancels the K-weighting gain at 997 Hz

# libebur128's analogue prototypes for the two K-weighting biquads (full precision).
_SHELF_F0 = 1681.974450955533
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_SHELF_VB_EXP = 0.4996667741545416
_HP_F0 = 38.13547087602444
_HP_Q = 0.5003270373238773

# True-peak interpolator: 8x, a 2049-tap Kaiser-windowed sinc (256 input samples long) cut off at
# the input Nyquist.
# * 8x rather than BS.1770's minimum 4x: a limiter flattens peaks to its ceiling at the detector's
#   points, and between 4x points a signal can still rise by up to 0.7 dB (Bernstein's bound at
#   Nyquist). At 8x the bound is 0.17 dB, inside the limiter's margin.
# * Cut-off at Nyquist, not below: measured, a 0.98 cut-off read a 23 kHz tone 0.6 dB low and
#   limited music with clicks 0.3 dB under ffmpeg's meter. A windowed sinc cut at Nyquist passes a
#   tone and its image with gains that sum to 1, so nothing over-reads either, and its phase 0
#   is the input itself (covered by the sample peak, so it is not computed).
TRUE_PEAK_OVERSAMPLE = 8
_TP_HALF_TAPS = 128 * TRUE_PEAK_OVERSAMPLE
_TP_KAISER_BETA = 10.0  # ~100 dB stopband
_TP_FFT = 1 << 13  # small frames in small batches stay in cache: measured fastest
_TP_GROUP = 16

# Limiter and normaliser.
LIMITER_MARGIN_DB = 0.5  # the limiter aims this far under the requested ceiling
_LIMITER_LOOKAHEAD_S = 0.0025  # gain ramps down over 2 x this before a peak
_LIMITER_RELEASE_S = 0.05  # exponential recovery (in dB) after the hold
_LIMITER_EPS_DB = 1e-4  # reductions smaller than this are treated as none
_TOLERANCE_LU = 0.05  # aim; the hard requirement below is what we refuse to ship
_HARD_TOLERANCE_LU = 0.5
_GAIN_TRIM_LU = 0.05  # give up this much loudness rather than limit a peak that barely touches
_QUANT_HEADROOM_DB = 0.002  # room for 16/24-bit rounding and dither under the ceiling
_MAX_VERIFY = 5  # exact measurements of a limited output
_MAX_MODEL_STEPS = 25
_MAX_LIMITING_DB = 24.0  # static gain beyond the plain-gain value the limiter may take back
SILENCE_FLOOR_LUFS = -60.0  # below this, normalising would mostly amplify noise

_CHUNK = 1 << 20  # samples per K-weighting chunk


# ------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class LoudnessMeasurement:
    """BS.1770-4 / EBU R128 figures for one signal.

    ``loudness_range_lu`` is ``None`` when there is no short-term (3 s) value to compute it from.
    """

    integrated_lufs: float
    true_peak_dbtp: float
    sample_peak_dbfs: float
    loudness_range_lu: float | None
    duration_s: float

    def to_dict(self) -> dict[str, float | None]:
        return {
            "integrated_lufs": _r(self.integrated_lufs),
            "true_peak_dbtp": _r(self.true_peak_dbtp),
            "sample_peak_dbfs": _r(self.sample_peak_dbfs),
            "loudness_range_lu": None
            if self.loudness_range_lu is None
            else _r(self.loudness_range_lu),
            "duration_s": round(self.duration_s, 6),
        }


@dataclass(frozen=True)
class NormalisationReport:
    """What :func:`normalise` did: the measurements either side, the gain, and the limiter.

    ``gain_db`` is the static gain applied to the whole signal; ``limiter_gain_reduction_db`` the
    largest extra reduction the limiter applied at any sample (0 when it did not run);
    ``iterations`` the number of outputs that were measured exactly.
    """

    before: LoudnessMeasurement
    after: LoudnessMeasurement
    gain_db: float
    limiter_used: bool
    limiter_gain_reduction_db: float
    target_lufs: float
    ceiling_dbtp: float
    iterations: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for the job manifest (dB figures rounded to 0.001)."""
        data = asdict(self)
        data["before"] = self.before.to_dict()
        data["after"] = self.after.to_dict()
        for key in ("gain_db", "limiter_gain_reduction_db", "target_lufs", "ceiling_dbtp"):
            data[key] = _r(data[key])
        data["method"] = (
            "ITU-R BS.1770-4 / EBU R128 (mono as one channel, LFE excluded); "
            f"true peak {TRUE_PEAK_OVERSAMPLE}x oversampled, "
            f"{2 * _TP_HALF_TAPS + 1}-tap Kaiser sinc"
        )
        return data


def _r(value: float) -> float:
    return round(float(value), 3)


# ------------------------------------------------------------------------------------ filters


def k_weighting_sos(sample_rate: int) -> F64:
    """The two K-weighting biquads for *sample_rate* as second-order sections, shape (2, 6).

    Recomputed from the analogue prototypes (libebur128/ffmpeg): at 48 kHz this is the BS.1770
    table; at other rates the 48 kHz coefficients would give the wrong response.
    """
    k = math.tan(math.pi * _SHELF_F0 / sample_rate)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh**_SHELF_VB_EXP
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf = [
        (vh + vb * k / _SHELF_Q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / _SHELF_Q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / _SHELF_Q + k * k) / a0,
    ]
    k = math.tan(math.pi * _HP_F0 / sample_rate)
    a0 = 1.0 + k / _HP_Q + k * k
    # The numerator stays [1, -2, 1] (not divided by a0), as in the BS.1770 table.
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HP_Q + k * k) / a0]
    return np.array([shelf, highpass], dtype=np.float64)


def channel_weights(channels: int) -> F64:
    """BS.1770 weights by channel count, in ffmpeg/WAV channel order.

    1 mono; 2 L R; 3 L R C; 4 L R Ls Rs (quad); 5 L R C Ls Rs; 6 L R C LFE Ls Rs (LFE = 0);
    8 L R C LFE Lb Rb Ls Rs (7.1: sides 1.41, backs 1.0 per BS.1770-5 Table 4).
    """
    table = {
        1: [1.0],
        2: [1.0, 1.0],
        3: [1.0, 1.0, 1.0],
        4: [1.0, 1.0, 1.41, 1.41],
        5: [1.0, 1.0, 1.0, 1.41, 1.41],
        6: [1.0, 1.0, 1.0, 0.0, 1.41, 1.41],
        8: [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.41, 1.41],
    }
    if channels not in table:
        raise AudioError(
            f"cannot measure loudness of {channels}-channel audio: no BS.1770 channel layout "
            "is known for that count",
            hint="use mono, stereo, 5.0, 5.1 (L R C LFE Ls Rs) or 7.1 audio",
        )
    return np.array(table[channels], dtype=np.float64)


@lru_cache(maxsize=4)
def _tp_phase_spectra(nfft: int) -> NDArray[np.complex64]:
    """Spectra of the polyphase branches 1..7 of the interpolator, for FFT size *nfft*."""
    n = TRUE_PEAK_OVERSAMPLE
    proto = signal.firwin(2 * _TP_HALF_TAPS + 1, 1.0 / n, window=("kaiser", _TP_KAISER_BETA)) * n
    proto = np.concatenate([proto, np.zeros(n - 1)])  # 257 taps per phase
    phases = proto.reshape(-1, n).T  # phases[p, k] = proto[n*k + p]
    spectra = sfft.rfft(phases[1:], n=nfft, axis=-1).astype(np.complex64)
    spectra.setflags(write=False)
    return spectra


# -------------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class _Grid:
    """Block geometry in samples; ``unit`` divides all of them so blocks are sums of units."""

    block: int
    hop: int
    short: int
    unit: int
    control: int  # the limiter's control period (~0.33 ms), a divisor of unit

    @classmethod
    def for_rate(cls, sample_rate: int) -> _Grid:
        block = round(BLOCK_S * sample_rate)
        hop = round(HOP_S * sample_rate)
        short = round(SHORT_TERM_S * sample_rate)
        unit = math.gcd(math.gcd(block, hop), short)
        most = max(1, sample_rate // 3000)
        control = max(d for d in range(1, min(most, unit) + 1) if unit % d == 0)
        return cls(block, hop, short, unit, control)


@dataclass
class _Detail:
    """What the normaliser reuses from the first measurement (only when asked for)."""

    power: F64 | None = None  # weighted K-weighted energy per control period
    envelope: NDArray[np.float32] | None = None  # per-sample true peak (max over channels)


def _as_2d(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Validate *samples*: float (frames,) or (frames, channels), finite, positive rate."""
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"invalid sample rate {sample_rate!r}: expected a positive integer")
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or (arr.shape[1] > 16 and arr.shape[0] <= 16):  # transposed?
        raise AudioError(f"audio must be shaped (frames, channels); got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise AudioError(f"audio must be floating point in [-1, 1]; got dtype {arr.dtype}")
    if arr.shape[0] == 0:
        raise AudioError("the generated audio is empty (0 samples)")
    if not np.isfinite(arr).all():
        raise AudioError("the generated audio contains NaN or infinite samples")
    return arr


def _kweighted_units(x: np.ndarray, sample_rate: int, grid: _Grid, keep_power: bool
                     ) -> tuple[F64, F64 | None]:
    """Sum of channel-weighted squared K-weighted samples per grid unit (and per control period).
    """
    weights = channel_weights(x.shape[1])
    active = np.flatnonzero(weights > 0)
    w = weights[active]
    every = active.size == weights.size  # plain slices (no fancy-index copy) when no LFE
    sos = k_weighting_sos(sample_rate)
    u = grid.unit
    n_units = x.shape[0] // u
    usable = n_units * u  # a trailing partial unit cannot complete any block
    units = np.empty(n_units, dtype=np.float64)
    d = grid.control
    power = np.empty(usable // d, dtype=np.float64) if keep_power else None
    zi = np.zeros((sos.shape[0], 2, active.size))
    step = max(1, _CHUNK // u) * u
    # Chunked only to bound memory; every chunk is one vectorised IIR pass over all channels.
    for start in range(0, usable, step):
        stop = min(start + step, usable)
        chunk = x[start:stop] if every else x[start:stop, active]
        y, zi = signal.sosfilt(sos, np.asarray(chunk, dtype=np.float64), axis=0, zi=zi)
        np.square(y, out=y)
        z = y @ w
        if power is not None:
            per = z.reshape(-1, d).sum(axis=1)
            power[start // d : stop // d] = per
            units[start // u : stop // u] = per.reshape(-1, u // d).sum(axis=1)
        else:
            units[start // u : stop // u] = z.reshape(-1, u).sum(axis=1)
    return units, power


def _window_powers(units: F64, grid: _Grid, length: int) -> F64:
    """Mean weighted power of every complete *length*-sample window, one every hop."""
    lu, su = length // grid.unit, grid.hop // grid.unit
    if units.size < lu:
        return np.empty(0)
    return sliding_window_view(units, lu)[::su].sum(axis=1) / length


def _lufs(power: F64 | float) -> Any:
    with np.errstate(divide="ignore"):
        return _OFFSET + 10.0 * np.log10(power)


def _gated_integrated(block_powers: F64) -> float | None:
    """BS.1770 two-stage gating; ``None`` when no block passes the absolute gate."""
    if block_powers.size == 0:
        return None
    levels = _lufs(block_powers)
    above_abs = levels > ABSOLUTE_GATE_LUFS
    if not above_abs.any():
        return None
    relative = float(_lufs(block_powers[above_abs].mean())) + RELATIVE_GATE_LU
    kept = above_abs & (levels > relative)
    return float(_lufs(block_powers[kept].mean()))


def _loudness_range(short_powers: F64) -> float | None:
    """EBU Tech 3342 LRA from short-term powers (MATLAB reference percentile indexing)."""
    if short_powers.size == 0:
        return None
    levels = _lufs(short_powers)
    above_abs = levels > ABSOLUTE_GATE_LUFS
    if not above_abs.any():
        return None
    relative = float(_lufs(short_powers[above_abs].mean())) + LRA_RELATIVE_GATE_LU
    kept = np.sort(levels[above_abs & (levels > relative)])
    n = kept.size
    lo = kept[math.floor((n - 1) * 0.10 + 0.5)]
    hi = kept[math.floor((n - 1) * 0.95 + 0.5)]
    return float(hi - lo)


def _peak_envelope(x: np.ndarray) -> tuple[NDArray[np.float32], float]:
    """Per-sample true-peak envelope and the peak of the interpolator's tails outside the signal.

    ``env[i]`` is the largest of |x[i]| and the interpolated values at i + 1/8 ... 7/8, over
    all channels. The interpolation is a full convolution done by FFT overlap-save, so the
    filter's ringing before the first and after the last sample is included (as a meter sees it).
    """
    n, channels = x.shape
    spectra = _tp_phase_spectra(_TP_FFT)
    taps = 2 * _TP_HALF_TAPS // TRUE_PEAK_OVERSAMPLE  # 256: overlap between FFT frames
    delay = taps // 2  # phase-0 output i is input sample i - delay
    hop = _TP_FFT - taps
    n_frames = -(-(n + taps) // hop)
    env = np.abs(x[:, 0]).astype(np.float32)
    for c in range(1, channels):  # not .max(axis=1): a reduction over 2 columns is 10x slower
        np.maximum(env, np.abs(x[:, c]), out=env)
    tail = 0.0
    buf = np.zeros(n_frames * hop + taps, dtype=np.float32)
    for c in range(channels):
        buf[taps : taps + n] = x[:, c]
        frames = sliding_window_view(buf, _TP_FFT)[::hop]
        for g0 in range(0, n_frames, _TP_GROUP):
            spec = sfft.rfft(frames[g0 : g0 + _TP_GROUP], axis=-1, workers=-1)
            spec = spec[:, None, :] * spectra
            up = sfft.irfft(spec, n=_TP_FFT, axis=-1, workers=-1, overwrite_x=True)
            np.abs(up, out=up)
            peak = up[:, :, taps:].max(axis=1).ravel()  # conv outputs i0 .. i0 + len
            i0 = g0 * hop
            i1 = i0 + peak.size
            lo, hi = max(i0, delay), min(i1, n + delay)
            if hi > lo:
                seg = env[lo - delay : hi - delay]
                np.maximum(seg, peak[lo - i0 : hi - i0], out=seg)
            if i0 < delay:
                tail = max(tail, float(peak[: delay - i0].max()))
            if i1 > n + delay:
                tail = max(tail, float(peak[max(0, n + delay - i0) :].max()))
    return env, tail


def _to_db(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else -math.inf


def _too_short(duration: float) -> AudioError:
    return AudioError(
        f"the generated audio is too short to measure: {duration:.3f} s; loudness needs at "
        f"least {BLOCK_S} s (ITU-R BS.1770)",
        hint="check the generation and conform steps; nothing was normalised",
    )


def _silent(duration: float) -> AudioError:
    return AudioError(
        f"the generated audio is silent: no 400 ms block of its {duration:.2f} s is above "
        f"the {ABSOLUTE_GATE_LUFS:.0f} LUFS absolute gate, so it has no loudness to "
        "normalise (refusing to amplify silence into noise)",
        hint="check the provider's output and the conform step",
    )


def _analyse(x: np.ndarray, sample_rate: int, *, detail: _Detail | None = None
             ) -> LoudnessMeasurement:
    """Measure a validated (frames, channels) array; raise AudioError if loudness is undefined."""
    grid = _Grid.for_rate(sample_rate)
    n = x.shape[0]
    duration = n / sample_rate
    if n < grid.block:
        raise _too_short(duration)
    units, power = _kweighted_units(x, sample_rate, grid, keep_power=detail is not None)
    integrated = _gated_integrated(_window_powers(units, grid, grid.block))
    if integrated is None:
        raise _silent(duration)
    lra = _loudness_range(_window_powers(units, grid, grid.short))
    env, tail = _peak_envelope(x)
    sample_peak = float(max(x.max(), -x.min()))
    true_peak = max(float(env.max()), tail, sample_peak)
    if detail is not None:
        detail.power = power
        detail.envelope = env
    return LoudnessMeasurement(
        integrated_lufs=integrated,
        true_peak_dbtp=_to_db(true_peak),
        sample_peak_dbfs=_to_db(sample_peak),
        loudness_range_lu=lra,
        duration_s=duration,
    )


def measure(samples: np.ndarray, sample_rate: int) -> LoudnessMeasurement:
    """Integrated loudness, true peak, sample peak and LRA of float *samples* (frames, channels).

    A 1-D array is mono. Raises :class:`AudioError` when the loudness is undefined (shorter than
    0.4 s, or no block above -70 LUFS) or the input is not finite float audio.
    """
    return _analyse(_as_2d(samples, sample_rate), sample_rate)


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float:
    """BS.1770-4 gated integrated loudness in LUFS; AudioError when undefined."""
    x = _as_2d(samples, sample_rate)
    grid = _Grid.for_rate(sample_rate)
    if x.shape[0] < grid.block:
        raise _too_short(x.shape[0] / sample_rate)
    units, _ = _kweighted_units(x, sample_rate, grid, keep_power=False)
    value = _gated_integrated(_window_powers(units, grid, grid.block))
    if value is None:
        raise _silent(x.shape[0] / sample_rate)
    return value


def true_peak_dbtp(samples: np.ndarray, sample_rate: int) -> float:
    """True peak in dBTP (8x, long interpolator, max'ed with the sample peak); -inf for silence."""
    x = _as_2d(samples, sample_rate)
    env, tail = _peak_envelope(x)
    return _to_db(max(float(env.max()), tail))


# ------------------------------------------------------------------------------------ limiter


def _limiter_curve(peaks_db: NDArray[np.float32], gain_db: float, ceiling_db: float,
                   grid: _Grid, sample_rate: int) -> F64 | None:
    """Reduction (dB, >= 0) a true-peak limiter needs after a static *gain_db*, per control period.

    *peaks_db* is the true-peak envelope reduced to its maximum per control period (a few
    samples). In dB of reduction: required reduction -> maximum over +-(look-ahead + 1 period)
    (attack and hold) -> exponential release (a running maximum in the log domain, so no
    recursion) -> moving average over +-look-ahead. The hold window covers the averaging window
    plus one period, so every period's value, and hence any linear interpolation between
    neighbouring periods (see :func:`_gain_per_sample`), is at least the reduction required at
    every sample it applies to. ``None`` when nothing is over the ceiling.
    """
    need = peaks_db + np.float32(gain_db - ceiling_db)
    if not (need > 0).any():
        return None
    periods_s = grid.control / sample_rate
    look = max(1, math.ceil(_LIMITER_LOOKAHEAD_S / periods_s))
    held = ndimage.maximum_filter1d(np.maximum(need, 0.0).astype(np.float64),
                                    size=2 * look + 3, mode="nearest")
    # r[n] = max_k held[k] * exp(-(n - k) / tau)
    k = np.arange(held.size, dtype=np.float64) * (periods_s / _LIMITER_RELEASE_S)
    with np.errstate(divide="ignore"):
        released = np.exp(np.maximum.accumulate(np.log(held) + k) - k)
    released[released < _LIMITER_EPS_DB] = 0.0  # end the exponential tails
    curve: F64 = ndimage.uniform_filter1d(released, size=2 * look + 1, mode="nearest")
    return curve


def _gain_per_sample(gain_db: float, curve: F64 | None, n: int, period: int,
                     dtype: np.dtype[Any]) -> np.ndarray:
    """Linear gain for every sample: static gain times the limiter curve, interpolated linearly
    between period starts (in linear gain, so each sample gets a convex mix of two periods)."""
    static = 10.0 ** (gain_db / 20.0)
    if curve is None:
        return np.full(n, static, dtype=dtype)
    g = (static * 10.0 ** (-curve / 20.0)).astype(dtype)
    w = (np.arange(period, dtype=dtype) / period)[None, :]
    nxt = np.append(g[1:], g[-1])
    per_sample = (g[:, None] * (1 - w) + nxt[:, None] * w).ravel()
    return per_sample[:n]


def _apply(x: np.ndarray, gain_db: float, curve: F64 | None, period: int) -> np.ndarray:
    """x times the static gain and the limiter curve, in x's float dtype."""
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    if curve is None:
        # Plain gain, computed in float64 so the output is exactly x * 10 ** (gain_db / 20).
        return (x.astype(np.float64) * 10.0 ** (gain_db / 20.0)).astype(dtype)
    out: np.ndarray = x.astype(dtype) * _gain_per_sample(gain_db, curve, x.shape[0], period,
                                                         dtype)[:, None]
    return out


class _LimitedModel:
    """Predicts the integrated loudness of ``limit(x * G)`` without re-filtering the signal.

    Uses K(g * x) ~= g * K(x) for a gain that moves over milliseconds, at the control period's
    resolution, so one prediction costs a few vector operations on ~1/16 of the samples. Exact
    measurements of the real output correct what it misses.
    """

    def __init__(self, power: F64, grid: _Grid) -> None:
        self.power = power
        self.grid = grid
        self.units = power.reshape(-1, grid.unit // grid.control).sum(axis=1)

    def integrated(self, gain_db: float, curve: F64 | None) -> float:
        units = self.units
        if curve is not None:
            g2 = 10.0 ** (-curve[: self.power.size] / 10.0)
            g2 = 0.5 * (g2 + np.append(g2[1:], g2[-1]))  # the per-sample gain is interpolated
            units = (g2 * self.power).reshape(-1, self.grid.unit // self.grid.control).sum(1)
        value = _gated_integrated(_window_powers(units, self.grid, self.grid.block))
        if value is None:  # pragma: no cover - a limiter cannot remove every block
            return -math.inf
        return value + gain_db


# ----------------------------------------------------------------------------- normalisation


def normalise(
    samples: np.ndarray,
    sample_rate: int,
    *,
    target_lufs: float = -14.0,
    true_peak_dbtp: float = -1.0,
    silence_floor_lufs: float = SILENCE_FLOOR_LUFS,
) -> tuple[np.ndarray, NormalisationReport]:
    """Bring *samples* to *target_lufs* integrated with a true peak at or under *true_peak_dbtp*.

    Plain gain when the predicted true peak allows it (then the output is exactly
    ``samples * 10 ** (gain_db / 20)``); otherwise gain plus an 8x-oversampled look-ahead
    true-peak limiter, re-measured until within 0.05 LU. Returns the output (same shape, rate and
    float dtype) and a report whose ``after`` is measured on that output.

    Raises :class:`AudioError` for audio with undefined loudness, for near-silence below
    *silence_floor_lufs* (it would be amplified into noise), and if the target cannot be met
    within 0.5 LU under the ceiling.
    """
    x = _as_2d(samples, sample_rate)
    out, report = _normalise(
        x, sample_rate, target_lufs, true_peak_dbtp, silence_floor_lufs,
        verify=lambda y: _analyse(y, sample_rate),
    )
    return (out[:, 0] if np.asarray(samples).ndim == 1 else out), report


def _normalise(
    x: np.ndarray,
    sample_rate: int,
    target: float,
    ceiling: float,
    floor: float,
    verify: Callable[[np.ndarray], LoudnessMeasurement],
) -> tuple[np.ndarray, NormalisationReport]:
    """The normaliser; *verify* measures a candidate output exactly (in memory or as written)."""
    for name, value in (("target_lufs", target), ("true_peak_dbtp", ceiling),
                        ("silence_floor_lufs", floor)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    detail = _Detail()
    before = _analyse(x, sample_rate, detail=detail)
    if before.integrated_lufs < floor:
        raise AudioError(
            f"the generated audio is silent or nearly so: {before.integrated_lufs:.1f} LUFS "
            f"integrated, under the {floor:.0f} LUFS floor; reaching {target:.0f} LUFS would "
            f"need +{target - before.integrated_lufs:.0f} dB of gain and raise its noise with it",
            hint="check the provider's output; lower silence_floor_lufs only if quiet audio is "
            "intended",
        )
    safe_ceiling = ceiling - _QUANT_HEADROOM_DB
    gain = target - before.integrated_lufs
    over = before.true_peak_dbtp + gain - safe_ceiling
    iterations = 0
    if over <= _GAIN_TRIM_LU:
        # Gain alone fits (a peak that would touch the ceiling by a hair costs a hair of gain).
        gain -= max(0.0, over)
        out = _apply(x, gain, None, 1)
        after = verify(out)
        iterations = 1
        if after.true_peak_dbtp <= ceiling:
            log.info("loudness: %+.2f dB gain, no limiter (%.2f -> %.2f LUFS, TP %.2f dBTP)",
                     gain, before.integrated_lufs, after.integrated_lufs, after.true_peak_dbtp)
            return out, NormalisationReport(before, after, gain, False, 0.0, target, ceiling, 1)
        gain = target - before.integrated_lufs  # rounding broke the ceiling: limit instead

    assert detail.power is not None and detail.envelope is not None
    grid = _Grid.for_rate(sample_rate)
    model = _LimitedModel(detail.power, grid)
    env = detail.envelope
    periods = -(-env.size // grid.control)
    env = np.concatenate([env, np.zeros(periods * grid.control - env.size, np.float32)])
    with np.errstate(divide="ignore"):
        peaks_db = (20.0 * np.log10(env.reshape(periods, grid.control).max(axis=1))).astype(
            np.float32)
    del detail, env

    limit_at = ceiling - LIMITER_MARGIN_DB
    model_target = target  # shifted by what the model misses, once measured
    bounds = (gain - 3.0, gain + _MAX_LIMITING_DB)
    best: tuple[float, np.ndarray, LoudnessMeasurement, float, float, bool] | None = None
    for _ in range(_MAX_VERIFY):
        gain, curve = _solve_gain(model, peaks_db, gain, bounds, limit_at, model_target, grid,
                                  sample_rate)
        out = _apply(x, gain, curve, grid.control)
        after = verify(out)
        iterations += 1
        error = target - after.integrated_lufs
        reduction = float(curve.max()) if curve is not None else 0.0
        log.debug("loudness pass %d: gain %+.3f dB, limiter %.2f dB at %.2f dBTP -> %.3f LUFS, "
                  "%.3f dBTP", iterations, gain, reduction, limit_at, after.integrated_lufs,
                  after.true_peak_dbtp)
        if after.true_peak_dbtp <= ceiling and (best is None or abs(error) < abs(best[0])):
            best = (error, out, after, gain, reduction, curve is not None)
        if after.true_peak_dbtp <= safe_ceiling and abs(error) <= _TOLERANCE_LU:
            break
        if gain >= bounds[1] and error > _HARD_TOLERANCE_LU:
            break  # more gain would only be limited away
        if after.true_peak_dbtp > safe_ceiling:
            limit_at -= after.true_peak_dbtp - safe_ceiling + 0.05
        model_target += error
    if best is None or abs(best[0]) > _HARD_TOLERANCE_LU:
        got = "no output under the ceiling" if best is None else (
            f"{best[2].integrated_lufs:.2f} LUFS at best")
        raise AudioError(
            f"cannot bring the generated audio to {target:.1f} LUFS under {ceiling:.1f} dBTP: "
            f"{got} after {iterations} passes",
            hint="its peaks may come from what loudness does not count (an LFE channel, "
            "sub-bass or a DC offset), or it is clipped or extremely dense; try a lower target",
        )
    error, out, after, gain, reduction, limited = best
    log.info("loudness: %+.2f dB gain and limiter (max %.2f dB), %.2f -> %.2f LUFS, TP %.2f dBTP",
             gain, reduction, before.integrated_lufs, after.integrated_lufs,
             after.true_peak_dbtp)
    return out, NormalisationReport(before, after, gain, limited, reduction, target, ceiling,
                                    iterations)


def _solve_gain(model: _LimitedModel, peaks_db: NDArray[np.float32], gain: float,
                bounds: tuple[float, float], limit_at: float, target: float, grid: _Grid,
                sample_rate: int) -> tuple[float, F64 | None]:
    """Static gain within *bounds* whose limited output the model puts at *target* (secant).

    The bounds matter when peaks come from what loudness does not count (an LFE, sub-bass, DC):
    then more gain only means more limiting and the loudness stops rising.
    """
    prev: tuple[float, float] | None = None
    curve = _limiter_curve(peaks_db, gain, limit_at, grid, sample_rate)
    for _ in range(_MAX_MODEL_STEPS):
        predicted = model.integrated(gain, curve)
        miss = target - predicted
        if abs(miss) <= 0.002:
            break
        slope = 1.0
        if prev is not None and gain != prev[0]:
            slope = min(1.0, max(0.1, (predicted - prev[1]) / (gain - prev[0])))
        prev = (gain, predicted)
        step = min(max(gain + miss / slope, bounds[0]), bounds[1])
        if step == gain:
            break
        gain = step
        curve = _limiter_curve(peaks_db, gain, limit_at, grid, sample_rate)
    return gain, curve


# ------------------------------------------------------------------------------------- files


def normalise_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    target_lufs: float = -14.0,
    true_peak_dbtp: float = -1.0,
    sample_rate: int = 48000,
    bits: int = 24,
) -> NormalisationReport:
    """Normalise the audio in *src* and write it to *dst* as a *sample_rate* WAV of *bits*.

    *src* may be any audio ffmpeg decodes (a WAV already at *sample_rate* is read directly); its
    channel count is kept (mono, stereo, 5.1; other layouts are decoded as stereo). The output
    is written to a temporary file beside *dst* and that file is measured as written; *dst* is
    replaced only if it meets the target within 0.5 LU and the ceiling, and ``report.after`` is
    the measurement of the written file.
    """
    if bits not in (16, 24, 32):
        raise ValueError(f"bits must be 16, 24 or 32 (float), got {bits!r}")
    x = _load(Path(src), sample_rate)
    with atomic_output(dst) as tmp:
        written: list[tuple[np.ndarray, LoudnessMeasurement]] = []

        def verify(y: np.ndarray) -> LoudnessMeasurement:
            wavfile.write_wav_to(tmp, y, sample_rate, bits=bits)
            data, rate = wavfile.parse_wav(tmp)
            written.append((y, _analyse(data, rate)))
            return written[-1][1]

        out, report = _normalise(x, sample_rate, target_lufs, true_peak_dbtp,
                                 SILENCE_FLOOR_LUFS, verify)
        if written[-1][0] is not out:  # the best pass was an earlier one: put it back on disk
            verify(out)
        after = written[-1][1]
        if after.true_peak_dbtp > true_peak_dbtp or abs(
                after.integrated_lufs - target_lufs) > _HARD_TOLERANCE_LU:
            raise AudioError(
                f"the written file measures {after.integrated_lufs:.2f} LUFS / "
                f"{after.true_peak_dbtp:.2f} dBTP, outside {target_lufs:.1f} LUFS / "
                f"{true_peak_dbtp:.1f} dBTP; {str(dst)!r} was not replaced")
    return replace(report, after=after)


def _load(src: Path, sample_rate: int) -> np.ndarray:
    """Decode *src* at *sample_rate*, keeping its channel count where reelscore knows it."""
    if not src.is_file():
        raise AudioError(f"cannot read audio {str(src)!r}: no such file")
    if wavfile.is_wav(src):
        try:
            x, rate = wavfile.parse_wav(src)
            if rate == sample_rate:
                return x  # already what we need: no decode, no resample
        except AudioError:
            pass  # a WAV flavour we do not parse: ffmpeg will
    info = ffmpeg_cli.probe(src)
    if not info.has_audio:
        raise AudioError(f"{str(src)!r} has no audio stream")
    channels = info.channels if info.channels in (1, 2, 6) else 2
    return ffmpeg_cli.decode_audio(src, sample_rate=sample_rate, channels=channels,
                                   purpose=f"decoding {str(src)!r} for loudness normalisation")


# ----------------------------------------------------------------------------- stems together


@dataclass(frozen=True)
class StemsReport:
    """What :func:`normalise_stems` did: one normalisation of the stems' sum, applied to both.

    ``mix`` is the report of the sum (``after`` measured on the normalised sum, which is the sum
    of the returned stems up to float rounding); ``music_lufs`` / ``sfx_lufs`` are each stem's
    integrated loudness before (``None`` when the stem is silent); ``sfx_silent`` flags an SFX
    stem with nothing above the silence floor, which is delivered as it came, not refused.
    """

    mix: NormalisationReport
    music_lufs: float | None
    sfx_lufs: float | None
    sfx_silent: bool

    @property
    def gain_db(self) -> float:
        return self.mix.gain_db

    @property
    def limiter_used(self) -> bool:
        return self.mix.limiter_used

    def to_dict(self) -> dict[str, Any]:
        """The mix's report, plus the stems' levels before and the silent-SFX flag."""
        data = self.mix.to_dict()
        data["stems"] = {
            "applied_to": "music + sfx (one gain, so their balance is kept)",
            "music_lufs_before": None if self.music_lufs is None else _r(self.music_lufs),
            "sfx_lufs_before": None if self.sfx_lufs is None else _r(self.sfx_lufs),
            "sfx_silent": self.sfx_silent,
        }
        return data


def normalise_stems(
    music: np.ndarray,
    sfx: np.ndarray,
    sample_rate: int,
    *,
    target_lufs: float = -14.0,
    true_peak_dbtp: float = -1.0,
    silence_floor_lufs: float = SILENCE_FLOOR_LUFS,
) -> tuple[np.ndarray, np.ndarray, StemsReport]:
    """Normalise a music stem and an SFX stem together: one gain, computed on their sum.

    The service balanced the two stems; normalising each on its own would undo that. Here the
    sum is normalised as :func:`normalise` would (plain gain, or gain plus the true-peak limiter
    when the sum's peaks need it) and the very same per-sample gain is applied to each stem, so
    the stems keep their ratio and their sum meets *target_lufs* under *true_peak_dbtp*.

    A silent SFX stem (nothing above *silence_floor_lufs*) is reported in
    :attr:`StemsReport.sfx_silent`, not refused: the music was paid for. Raises
    :class:`AudioError` when the stems differ in shape, or when the sum itself cannot be
    normalised (silent, too short, or the target out of reach), as :func:`normalise` does.
    """
    m = _as_2d(music, sample_rate)
    s = _as_2d(sfx, sample_rate)
    if m.shape != s.shape:
        raise AudioError(
            f"the music and SFX stems differ in shape ({m.shape} and {s.shape}); they must "
            "cover the same samples to be normalised together",
            hint="conform both stems against the same plan")
    music_lufs = _stem_loudness(m, sample_rate, silence_floor_lufs)
    sfx_lufs = _stem_loudness(s, sample_rate, silence_floor_lufs)
    dtype = np.result_type(m.dtype, s.dtype, np.float32)
    total = m.astype(dtype) + s.astype(dtype)
    mixed, report = _normalise(total, sample_rate, target_lufs, true_peak_dbtp,
                               silence_floor_lufs, verify=lambda y: _analyse(y, sample_rate))
    if report.limiter_used:
        out_m, out_s = np.empty_like(total), np.empty_like(total)
        for a in range(0, total.shape[0], _CHUNK):
            b = min(a + _CHUNK, total.shape[0])
            gain = _gain_read_back(total[a:b], mixed[a:b])[:, None]
            out_m[a:b] = m[a:b] * gain
            out_s[a:b] = s[a:b] * gain
    else:
        out_m = _apply(m.astype(dtype), report.gain_db, None, 1)
        out_s = _apply(s.astype(dtype), report.gain_db, None, 1)
    if sfx_lufs is None:
        log.warning("loudness: the SFX stem is silent (under %.0f LUFS); delivered as it came",
                    silence_floor_lufs)
    stems = StemsReport(report, music_lufs, sfx_lufs, sfx_lufs is None)
    squeeze = np.asarray(music).ndim == 1
    return (out_m[:, 0] if squeeze else out_m), (out_s[:, 0] if squeeze else out_s), stems


def _stem_loudness(x: np.ndarray, sample_rate: int, floor: float) -> float | None:
    """A stem's integrated loudness, or None when it is silent (undefined or under *floor*)."""
    try:
        value = integrated_loudness(x, sample_rate)
    except AudioError:
        return None
    return value if value >= floor else None


def _gain_read_back(x: np.ndarray, y: np.ndarray) -> F64:
    """The per-sample gain g with ``y = g * x`` (one g for all channels, as :func:`_apply` makes).

    Read on each sample's largest channel of *x*; across samples where *x* is zero on every
    channel, interpolated from its neighbours (the limiter's gain moves over milliseconds, and
    there the stems are zero, or cancel exactly in the sum).
    """
    ch = np.argmax(np.abs(x), axis=1)
    rows = np.arange(x.shape[0])
    ref = x[rows, ch].astype(np.float64)
    known = np.abs(ref) > np.finfo(np.float32).tiny
    if not known.any():
        return np.ones(x.shape[0], dtype=np.float64)  # the stems are silent here (or cancel)
    gain = np.empty(x.shape[0], dtype=np.float64)
    gain[known] = y[rows[known], ch[known]].astype(np.float64) / ref[known]
    if not known.all():
        gain[~known] = np.interp(rows[~known], rows[known], gain[known])
    return gain
