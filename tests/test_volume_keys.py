"""Volume keys (reelscore.volume_keys): the side chain's gain as the few frame keys an editor can
move -- checked against the curve itself, frame by frame, at 29.97 and 25 fps."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from reelscore.conform import frames_to_samples
from reelscore.ducking import DuckParams, gain_curve
from reelscore.volume_keys import VolumeKey, frame_sample, keys_gain, volume_keys

SR = 48000
NTSC = Fraction(30000, 1001)


def _speech(seconds: float, bursts: list[tuple[float, float]]) -> np.ndarray:
    """Noise at -80 dBFS with 1 kHz bursts at -20 dBFS over *bursts* (seconds)."""
    n = round(seconds * SR)
    x = np.random.default_rng(5).normal(0, 1e-4, n)
    t = np.arange(n) / SR
    for a, b in bursts:
        i, j = round(a * SR), round(b * SR)
        x[i:j] += 0.1 * np.sin(2 * np.pi * 1000 * t[i:j])
    return x.astype(np.float32)[:, None]


@pytest.mark.parametrize("rate", [NTSC, Fraction(25)])
def test_keys_follow_the_side_chain_frame_by_frame(rate: Fraction) -> None:
    bursts = [(3.0, 7.5), (9.0, 9.4), (20.0, 41.0)]
    gain, report = gain_curve(_speech(60, bursts), DuckParams(depth_db=-10))
    keys = volume_keys(gain, rate, SR)
    assert len(report.stretches) == 3
    assert 6 <= len(keys) <= 3 * 10 + 2  # an attack, a plateau and a release each
    frames = math.ceil(60 * rate)  # the last frame holds the last sample
    at = [frame_sample(f, rate, SR) for f in range(frames)]
    curve = 20 * np.log10(gain[at].astype(np.float64))
    drawn = 20 * np.log10(keys_gain(keys, gain.shape[0], rate, SR)[at].astype(np.float64))
    assert np.max(np.abs(drawn - curve)) <= 0.5 + 1e-3
    # the long stretch's plateau: two keys at depth (from the attack to the end of the hold)
    plateau = [k for k in keys if 20.05 * rate < k.frame < 41.3 * rate]
    assert [k.db for k in plateau] == [-10.0, -10.0], plateau
    assert keys[0] == VolumeKey(0, 0.0) and keys[-1].frame == frames - 1


def test_a_flat_curve_is_two_keys_and_the_offset_is_in_every_key() -> None:
    assert volume_keys(np.ones(SR * 10, np.float32), Fraction(24), SR, offset_db=1.5) == (
        VolumeKey(0, 1.5), VolumeKey(239, 1.5))
    gain, _ = gain_curve(_speech(10, [(2, 4)]))
    plain = volume_keys(gain, Fraction(24), SR)
    raised = volume_keys(gain, Fraction(24), SR, offset_db=2.0)
    assert [k.frame for k in plain] == [k.frame for k in raised]
    assert all(r.db == pytest.approx(p.db + 2.0) for p, r in zip(plain, raised, strict=True))


def test_keys_gain_in_pieces_is_the_whole() -> None:
    gain, _ = gain_curve(_speech(12, [(2, 5), (8, 9)]))
    keys = volume_keys(gain, NTSC, SR)
    whole = keys_gain(keys, gain.shape[0], NTSC, SR)
    parts = np.concatenate([keys_gain(keys, min(SR, gain.shape[0] - s), NTSC, SR, start=s)
                            for s in range(0, gain.shape[0], SR)])
    assert np.array_equal(whole, parts)


def test_frame_boundaries_are_the_conform_rule() -> None:
    for rate in (NTSC, Fraction(24000, 1001), Fraction(60000, 1001), Fraction(25)):
        for f in (0, 1, 2, 999, 17982, 107892):
            assert frame_sample(f, rate, SR) == frames_to_samples(f, rate)


def test_tolerance_must_be_positive() -> None:
    with pytest.raises(ValueError, match="tolerance_db"):
        volume_keys(np.ones(100, np.float32), Fraction(25), SR, tolerance_db=0)
