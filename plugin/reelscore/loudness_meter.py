"""Loudness measurement internals: ITU-R BS.1770-4 / EBU R128 K-weighting, gating, LRA, true peak.

The meter behind :mod:`reelscore.loudness` (the public API: :func:`~reelscore.loudness.measure`,
:func:`~reelscore.loudness.integrated_loudness`, :func:`~reelscore.loudness.true_peak_dbtp`),
and the measurement the normaliser and the limiter reuse. It never imports
:mod:`reelscore.loudness`; the names that module documents (``k_weighting_sos``,
``channel_weights``, ``LoudnessMeasurement``, the gate constants) are re-exported there.

* **Measurement** (:func:`~reelscore.loudness.measure`): exact K-weighting recomputed for the
  sample rate from the analogue prototype as libebur128 does (at 48 kHz it reproduces the BS.1770
  table), 400 ms blocks every 100 ms, absolute gate -70 LUFS, relative gate -10 LU, channel
  weights L/R/C 1.0, Ls/Rs 1.41, LFE excluded. LRA by EBU Tech 3342 (3 s windows, -70 LUFS /
  -20 LU gates, 10th-95th percentile). All vectorised: one IIR pass per chunk, then block sums
  from 100 ms partial sums (exact, no long cumulative sums that lose precision on quiet blocks).
* **Mono is measured as one channel**, as BS.1770 defines it: a mono file at -14 LUFS plays about
  3 dB quieter than a stereo one on two speakers. reelscore's pipeline works in stereo.
* **True peak**: 8x polyphase oversampling (BS.1770 asks for at least 4x) with a 2049-tap
  Kaiser-windowed sinc cut at the input Nyquist (see ``TRUE_PEAK_OVERSAMPLE`` for why), done as
  FFT overlap-save, max'ed with the sample peak. The short 48-tap FIR printed in BS.1770 Annex 2
  reads up to 0.5 dB low on clipped music.
* **Undefined loudness is an error** (:class:`~reelscore.errors.AudioError`): shorter than 0.4 s,
  digital silence, or nothing above -70 LUFS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy import fft as sfft
from scipy import signal

from reelscore.errors import AudioError

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

