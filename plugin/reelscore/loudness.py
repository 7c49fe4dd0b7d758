"""Loudness: ITU-R BS.1770-4 / EBU R128 measurement and normalisation to -14 LUFS / -1 dBTP.

Why not ffmpeg ``loudnorm`` (see the project's ``shared/reference/loudness.md``): it leaves
linear mode whenever the peak-to-loudness ratio is above 13 dB (most generated music), then runs
an AGC at 192 kHz that misses -14 LUFS and, once resampled back, the -1 dBTP ceiling. Here:

* **Measurement** (:func:`measure`, :func:`integrated_loudness`, :func:`true_peak_dbtp`): exact
  K-weighting, BS.1770 gating, LRA by EBU Tech 3342, mono measured as one channel, and true peak
  by 8x polyphase oversampling; how, and why, is the spec of :mod:`reelscore.loudness_meter`.
* **Undefined loudness is an error** (:class:`~reelscore.errors.AudioError`): shorter than 0.4 s,
  digital silence, or nothing above -70 LUFS. :func:`normalise` also refuses near-silence (below
  ``silence_floor_lufs``) instead of raising noise by 40+ dB.
* **Normalisation** (:func:`normalise`): one static gain ``target - I``. If the predicted true
  peak (measured TP + gain) fits under the ceiling, that is all: no limiter, dynamics untouched.
  Otherwise a look-ahead true-peak limiter runs, detecting on the 8x true-peak envelope and aiming
  0.5 dB under the ceiling. The static gain is solved against a model of the limited loudness
  (cheap: no re-filtering), and the real output is measured exactly; what the model missed shifts
  its target and the loop repeats until the output is within 0.05 LU of the target with its true
  peak under the ceiling (usually one exact pass). Sample rate, channel count and length are
  kept. The loop is :mod:`reelscore.loudness_normaliser`; the limiter, its gain curve and its
  model are :mod:`reelscore.loudness_limiter` (each docstring is that module's spec).
* **Files and stems**: :func:`normalise_file` measures its output as written;
  :func:`normalise_stems` normalises a music and an SFX stem with one gain, computed on their sum.

This module is the public API: every name other modules, tests and benchmarks use is importable
from here (``__all__``), including those the internals define. Imports point one way:
``loudness`` -> ``loudness_normaliser`` -> ``loudness_limiter`` -> ``loudness_meter``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from reelscore import ffmpeg_cli, wavfile
from reelscore.errors import AudioError
from reelscore.fsutil import atomic_output
from reelscore.loudness_limiter import LIMITER_MARGIN_DB, _apply, _gain_read_back
from reelscore.loudness_meter import (
    _CHUNK,
    ABSOLUTE_GATE_LUFS,
    BLOCK_S,
    F64,
    HOP_S,
    LRA_RELATIVE_GATE_LU,
    RELATIVE_GATE_LU,
    SHORT_TERM_S,
    TRUE_PEAK_OVERSAMPLE,
    LoudnessMeasurement,
    _analyse,
    _as_2d,
    _gated_integrated,
    _Grid,
    _kweighted_units,
    _peak_envelope,
    _r,
    _silent,
    _to_db,
    _too_short,
    _window_powers,
    channel_weights,
    k_weighting_sos,
)
from reelscore.loudness_normaliser import (
    _HARD_TOLERANCE_LU,
    SILENCE_FLOOR_LUFS,
    NormalisationReport,
    _normalise,
)

log = logging.getLogger(__name__)


# -------------------------------------------------------------------------------- measurement


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


__all__ = [
    "ABSOLUTE_GATE_LUFS", "BLOCK_S", "F64", "HOP_S", "LIMITER_MARGIN_DB", "LRA_RELATIVE_GATE_LU",
    "RELATIVE_GATE_LU", "SHORT_TERM_S", "SILENCE_FLOOR_LUFS", "TRUE_PEAK_OVERSAMPLE",
    "LoudnessMeasurement", "NormalisationReport", "StemsReport", "channel_weights",
    "integrated_loudness", "k_weighting_sos", "measure", "normalise", "normalise_file",
    "normalise_stems", "true_peak_dbtp",
]
