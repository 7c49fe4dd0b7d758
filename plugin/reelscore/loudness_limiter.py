"""The look-ahead true-peak limiter behind :func:`reelscore.loudness.normalise`, and its gain solver.

It runs only when plain gain would not fit: if the predicted true peak (measured TP + gain) fits
under the ceiling, the normaliser applies one static gain and nothing here is used. Otherwise the
limiter detects on the 8x true-peak envelope (:mod:`reelscore.loudness_meter`) and aims 0.5 dB
under the ceiling (``LIMITER_MARGIN_DB``). Its gain curve is computed per control period
(~0.33 ms) without loops: required reduction -> running maximum over the look-ahead (attack and
hold) -> exponential release as a running maximum in the log domain -> moving average, then
interpolated to every sample. The static gain is solved against a model of the limited loudness
(cheap: no re-filtering), and the real output is measured exactly by the normaliser; what the
model missed shifts its target and the loop repeats until the output is within 0.05 LU of the
target with its true peak under the ceiling (usually one exact pass).

Imports point one way: this module uses :mod:`reelscore.loudness_meter` and never imports
:mod:`reelscore.loudness`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from reelscore.loudness_meter import F64, _gated_integrated, _Grid, _window_powers

# ------------------------------------------------------------------------------------ constants

LIMITER_MARGIN_DB = 0.5  # the limiter aims this far under the requested ceiling
_LIMITER_LOOKAHEAD_S = 0.0025  # gain ramps down over 2 x this before a peak
_LIMITER_RELEASE_S = 0.05  # exponential recovery (in dB) after the hold
_LIMITER_EPS_DB = 1e-4  # reductions smaller than this are treated as none
_MAX_MODEL_STEPS = 25  # secant steps of the gain solver per exact pass


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
