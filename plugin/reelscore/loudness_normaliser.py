"""The normaliser behind :mod:`reelscore.loudness`: measure -> gain (+ the limiter only if needed).

One engine for :func:`~reelscore.loudness.normalise` (in memory),
:func:`~reelscore.loudness.normalise_file` (measured as written) and
:func:`~reelscore.loudness.normalise_stems` (on the stems' sum); *verify* measures a candidate
output exactly, wherever it lives.

* One static gain ``target - I``. If the predicted true peak (measured TP + gain) fits under the
  ceiling, that is all: no limiter, dynamics untouched (a peak that would touch the ceiling by a
  hair costs a hair of gain, ``_GAIN_TRIM_LU``).
* Otherwise the look-ahead true-peak limiter of :mod:`reelscore.loudness_limiter` runs, aiming
  ``LIMITER_MARGIN_DB`` under the ceiling, with the static gain solved against its model of the
  limited loudness; the real output is measured exactly, what the model missed shifts its target
  and the loop repeats until the output is within 0.05 LU of the target with its true peak under
  the ceiling (usually one exact pass). Sample rate, channel count and length are kept.
* Refused (:class:`~reelscore.errors.AudioError`): near-silence below the silence floor (it would
  be amplified into noise), and a target that cannot be met within 0.5 LU under the ceiling.

Imports point one way: this module uses the meter and the limiter and never imports
:mod:`reelscore.loudness`, which re-exports :class:`NormalisationReport` and
``SILENCE_FLOOR_LUFS``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from reelscore.errors import AudioError
from reelscore.loudness_limiter import LIMITER_MARGIN_DB, _apply, _LimitedModel, _solve_gain
from reelscore.loudness_meter import (
    _TP_HALF_TAPS,
    TRUE_PEAK_OVERSAMPLE,
    LoudnessMeasurement,
    _analyse,
    _Detail,
    _Grid,
    _r,
)

log = logging.getLogger("reelscore.loudness")  # the name its messages always had

# ------------------------------------------------------------------------------------ constants

_TOLERANCE_LU = 0.05  # aim; the hard requirement below is what we refuse to ship
_HARD_TOLERANCE_LU = 0.5
_GAIN_TRIM_LU = 0.05  # give up this much loudness rather than limit a peak that barely touches
_QUANT_HEADROOM_DB = 0.002  # room for 16/24-bit rounding and dither under the ceiling
_MAX_VERIFY = 5  # exact measurements of a limited output
_MAX_LIMITING_DB = 24.0  # static gain beyond the plain-gain value the limiter may take back
SILENCE_FLOOR_LUFS = -60.0  # below this, normalising would mostly amplify noise


# ------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class NormalisationReport:
    """What :func:`~reelscore.loudness.normalise` did: the measurements either side, the gain, and the limiter.

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


# ----------------------------------------------------------------------------- normalisation


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

