"""Dialogue ducking: a side-chain gain curve from the dialogue, and the score ducked by it. Pure numpy.

The spec (every time in the same samples as the signals, 48 kHz unless told):

detection  The dialogue is folded to mono by taking, per sample, the largest absolute value of
           its channels; its level is the RMS over the last ``window_ms`` (10 ms, trailing: no
           look-ahead), evaluated every millisecond. Speech is *on* in a millisecond where
           that level is at or above ``threshold_db`` (dBFS, default -40; a full-scale sine
           reads -3 dBFS).
hold       The gate stays on for ``hold_ms`` (default 250) after the level last was on, so the
           music does not pump between words.
attack     When the gate opens the gain moves from where it is to ``depth_db`` (default -10 dB)
           along a raised cosine in dB that lasts ``attack_ms`` (default 50) for the full depth
           and proportionally less from a partly ducked level: the gain is at depth at most
           ``attack_ms`` after speech starts (plus the detector's window).
release    When the gate closes the gain returns to 0 dB along the same curve in ``release_ms``
           (default 500) for the full depth. Speech during a release attacks from the level
           reached.
smoothness The gain is continuous and its slope is zero at both ends of every ramp, so it has
           no steps (no zipper noise): between two samples it moves by at most
           ``pi/2 * |depth| / (attack or release in samples)`` dB.

:func:`duck` returns the gain curve (linear, one value per sample) with the ducked score and a
:class:`DuckReport` (seconds the gate was on, the depth, the gated stretches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 48000


@dataclass(frozen=True)
class DuckParams:
    """The side chain's settings (see the module docstring)."""

    threshold_db: float = -40.0
    attack_ms: float = 50.0
    release_ms: float = 500.0
    hold_ms: float = 250.0
    depth_db: float = -10.0
    window_ms: float = 10.0

    def __post_init__(self) -> None:
        for name in ("attack_ms", "release_ms", "window_ms"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, not {getattr(self, name)}")
        if self.hold_ms < 0:
            raise ValueError(f"hold_ms must be 0 or more, not {self.hold_ms}")
        if not -60.0 <= self.depth_db < 0:
            raise ValueError(f"depth_db must be below 0 and at least -60, not {self.depth_db}")
        if self.threshold_db >= 0:
            raise ValueError(f"threshold_db must be below 0 dBFS, not {self.threshold_db}")


@dataclass(frozen=True)
class DuckReport:
    """What the side chain did: where the gate was on (sample ranges, end exclusive)."""

    sample_rate: int
    depth_db: float
    stretches: tuple[tuple[int, int], ...]

    @property
    def seconds(self) -> float:
        """Seconds the gate was on (speech plus hold)."""
        return sum(b - a for a, b in self.stretches) / self.sample_rate


def speech_gate(dialogue: np.ndarray, params: DuckParams,
                sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Boolean per sample: the detector's level at or above the threshold, extended by hold.

    The level is evaluated once per millisecond block (48 samples at 48 kHz) over the blocks of
    the last ``window_ms``, so an hour of dialogue costs a few arrays of 3.6 million values, not
    of 173 million.
    """
    x = np.asarray(dialogue, dtype=np.float32)
    x = x.reshape(-1, 1) if x.ndim == 1 else x
    mono = np.abs(x[:, 0])
    for c in range(1, x.shape[1]):  # column by column: a reduction along axis 1 is slow
        np.maximum(mono, np.abs(x[:, c]), out=mono)
    n = mono.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    block = max(1, sample_rate // 1000)
    blocks = -(-n // block)
    squares = np.square(mono, dtype=np.float32)
    energy = np.pad(squares, (0, blocks * block - n)).reshape(blocks, block).sum(
        axis=1, dtype=np.float64)
    del squares
    window = max(1, round(params.window_ms * sample_rate / 1000 / block))
    total = np.concatenate(([0.0], np.cumsum(energy)))
    idx = np.arange(blocks)
    mean_sq = (total[idx + 1] - total[np.maximum(idx + 1 - window, 0)]) / (window * block)
    threshold = 10.0 ** (params.threshold_db / 10.0)  # on mean square: (10^(dB/20))^2
    key = mean_sq >= threshold
    hold = round(params.hold_ms * sample_rate / 1000 / block)
    if hold and key.any():
        last_on = np.maximum.accumulate(np.where(key, idx, -hold - 1))
        key = (idx - last_on) <= hold
    return np.repeat(key, block)[:n]


def _stretches(gate: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate(([0], gate.astype(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _ramp(frm: float, to: float, full: float, depth: float) -> np.ndarray:
    """Raised-cosine dB values from *frm* to *to* (exclusive of *frm*, inclusive of *to*)."""
    length = max(1, round(full * abs(to - frm) / abs(depth)))
    t = np.arange(1, length + 1) / length
    return frm + (to - frm) * (1.0 - np.cos(np.pi * t)) / 2.0


def gain_curve(dialogue: np.ndarray, params: DuckParams = DuckParams(),
               sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, DuckReport]:
    """The linear gain per sample (float32, 1.0 = untouched) and what the side chain did."""
    gate = speech_gate(dialogue, params, sample_rate)
    n = gate.shape[0]
    stretches = _stretches(gate)
    db = np.zeros(n, dtype=np.float32)
    attack = params.attack_ms * sample_rate / 1000
    release = params.release_ms * sample_rate / 1000
    depth = params.depth_db
    for a, b in stretches:
        level = float(db[a - 1]) if a > 0 else 0.0  # partly released: attack from there
        down = _ramp(level, depth, attack, depth) if level > depth else np.zeros(0)
        down = down[: b - a]
        db[a:a + down.size] = down
        db[a + down.size:b] = depth
        level = float(db[b - 1])
        up = _ramp(level, 0.0, release, depth)[: n - b]
        db[b:b + up.size] = up  # a later stretch overwrites from its own start
    gain = np.power(np.float32(10.0), db * np.float32(0.05))
    return gain, DuckReport(sample_rate, depth, tuple(stretches))


def duck(score: np.ndarray, dialogue: np.ndarray, params: DuckParams = DuckParams(),
         sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray, DuckReport]:
    """(ducked score, linear gain per sample, report); *score* and *dialogue* are sample-aligned
    ``(n, channels)`` arrays of the same length."""
    if score.shape[0] != dialogue.shape[0]:
        raise ValueError(f"score has {score.shape[0]} samples, dialogue {dialogue.shape[0]}")
    gain, report = gain_curve(dialogue, params, sample_rate)
    shaped = gain[:, None] if score.ndim == 2 else gain
    return (score * shaped).astype(np.float32), gain, report
