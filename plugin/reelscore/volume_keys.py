"""Volume keyframes: a gain curve as the few level keys an editor can move. Pure numpy.

The spec:

keys      A key is a frame, counted from the clip's first frame, and a level in dB. Between
          two keys the level moves in a straight line in dB; before the first and after the last
          key it holds. A curve of *n* samples gets keys on frames ``0 .. F`` where *F* is the
          frame whose boundary is the last sample's (``F = ceil(n * rate / sample_rate) - 1``).
frames    The curve is read at each frame boundary (sample ``floor(f * sample_rate / rate +
          1/2)``, the rule of :func:`reelscore.conform.frames_to_samples`), so keys sit on
          frames as NLEs keyframe audio levels; a ramp shorter than a frame (an attack of 50 ms
          at 25 fps) becomes one frame long.
fewest    Of those frame values, :func:`volume_keys` keeps the first, the last, both ends of
          every run of equal values (so a plateau stays flat) and, on the ramps between runs,
          as few others as keep every frame value within ``tolerance_db`` (default 0.5 dB) of
          the straight lines between the kept ones (greedy: each line runs as far as it can).
          A ducked stretch is an attack, a hold at depth and a release of a few keys; the
          curve between stretches costs nothing.
offset    ``offset_db`` is added to every key (the make-up gain of an automated clip).

:func:`keys_gain` turns keys back into a linear gain per sample by the same straight lines, so
what an editor's NLE plays (media times keys) can be computed and measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

MAX_KEY_DB = 12.0  # the highest clip level FCP 7 (Level 3.98109) and FCPX take: +12 dB
# Levels within this of each other are one run (float32 dB values of a flat curve jitter).
_FLAT_DB = 1e-3


@dataclass(frozen=True)
class VolumeKey:
    """A level key: *frame* counted from the clip's first frame, *db* the level there."""

    frame: int
    db: float


def frame_sample(frame: int, rate: Fraction, sample_rate: int) -> int:
    """Sample of the boundary of *frame* (the rule of ``conform.frames_to_samples``)."""
    return math.floor(Fraction(frame) * sample_rate / rate + Fraction(1, 2))


def _frame_values(gain: np.ndarray, rate: Fraction, sample_rate: int) -> np.ndarray:
    """The curve in dB at each frame boundary inside it."""
    n = gain.shape[0]
    frames = max(1, math.ceil(Fraction(n) * rate / sample_rate))
    idx = np.array([min(frame_sample(f, rate, sample_rate), n - 1) for f in range(frames)])
    with np.errstate(divide="ignore"):
        db = 20.0 * np.log10(np.maximum(np.asarray(gain, dtype=np.float64)[idx], 1e-12))
    return db


def _candidates(db: np.ndarray) -> np.ndarray:
    """Frames that end or start a run of equal values (plus the first and the last)."""
    n = db.shape[0]
    if n <= 2:
        return np.arange(n)
    changes = np.abs(np.diff(db)) > _FLAT_DB
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    keep[1:] |= changes  # the frame after a change
    keep[:-1] |= changes  # the frame before it
    return np.flatnonzero(keep)


def _fits(db: np.ndarray, pts: np.ndarray, i: int, j: int, tolerance: float) -> bool:
    """Does the line from candidate *i* to candidate *j* stay within *tolerance* of the curve?

    Checked at the candidates between them: elsewhere the curve is flat, so its distance from
    the line is largest at a flat run's ends, which are candidates.
    """
    a, b = pts[i], pts[j]
    if j - i < 2:
        return True
    mid = pts[i + 1:j]
    line = db[a] + (db[b] - db[a]) * (mid - a) / (b - a)
    return bool(np.max(np.abs(line - db[mid])) <= tolerance)


def _anchors(db: np.ndarray, pts: np.ndarray) -> set[int]:
    """Indexes into *pts* of the candidates that end a flat run (kept whatever the tolerance:
    a plateau stays flat, it is never drawn as a gentle slope)."""
    n = db.shape[0]
    out = {0, len(pts) - 1}
    for i, f in enumerate(pts):
        if (f > 0 and abs(db[f] - db[f - 1]) <= _FLAT_DB) or (
                f < n - 1 and abs(db[f + 1] - db[f]) <= _FLAT_DB):
            out.add(i)
    return out


def volume_keys(gain: np.ndarray, rate: Fraction, sample_rate: int = 48000, *,
                tolerance_db: float = 0.5, offset_db: float = 0.0) -> tuple[VolumeKey, ...]:
    """The fewest frame keys that follow the linear *gain* curve (see the module docstring)."""
    if tolerance_db <= 0:
        raise ValueError(f"tolerance_db must be above 0, not {tolerance_db}")
    if gain.shape[0] == 0:
        return ()
    db = _frame_values(gain, rate, sample_rate)
    pts = _candidates(db)
    anchors = _anchors(db, pts)
    kept = [0]
    i = 0
    while i < len(pts) - 1:
        j = i + 1
        while (j not in anchors and j + 1 < len(pts)
               and _fits(db, pts, i, j + 1, tolerance_db)):
            j += 1
        kept.append(j)
        i = j
    # + 0.0: a level of -0.0 dB reads oddly in an XML file
    return tuple(VolumeKey(int(pts[k]), round(float(db[pts[k]]) + offset_db, 3) + 0.0)
                 for k in kept)


def keys_gain(keys: tuple[VolumeKey, ...] | list[VolumeKey], n: int, rate: Fraction,
              sample_rate: int = 48000, start: int = 0) -> np.ndarray:
    """Linear gain per sample for samples ``start .. start + n`` of a clip with *keys*."""
    if not keys:
        return np.ones(n, dtype=np.float32)
    at = np.array([frame_sample(k.frame, rate, sample_rate) for k in keys], dtype=np.float64)
    db = np.array([k.db for k in keys], dtype=np.float64)
    samples = np.arange(start, start + n, dtype=np.float64)
    return np.power(10.0, np.interp(samples, at, db) / 20.0).astype(np.float32)
