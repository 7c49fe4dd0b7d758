"""The side chain of reelscore.ducking on synthetic dialogue: timing, depth, hold, smoothness."""

from __future__ import annotations

import numpy as np
import pytest

from reelscore.ducking import DuckParams, duck, gain_curve, speech_gate

SR = 48000


def _bursts(seconds: float, bursts: list[tuple[float, float]], level_db: float = -20.0,
            noise_db: float = -70.0) -> np.ndarray:
    """A stereo 'dialogue' track: 300 Hz tone bursts over low noise (room tone)."""
    n = round(seconds * SR)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 10 ** (noise_db / 20), (n, 2))
    t = np.arange(n) / SR
    for a, b in bursts:
        i, j = round(a * SR), round(b * SR)
        x[i:j, 0] += np.sqrt(2) * 10 ** (level_db / 20) * np.sin(2 * np.pi * 300 * t[i:j])
    return x.astype(np.float32)


def _db(g: np.ndarray) -> np.ndarray:
    return 20 * np.log10(g.astype(np.float64))


def test_reaches_depth_within_attack_and_holds() -> None:
    p = DuckParams(attack_ms=50, release_ms=500, hold_ms=200, depth_db=-10)
    gain, report = gain_curve(_bursts(3.0, [(1.0, 1.5)]), p)
    db = _db(gain)
    assert np.all(np.abs(db[: SR - 1]) < 1e-6)  # untouched before speech
    # at depth no later than attack + the detector's window after the burst starts
    at_depth = round((1.0 + 0.050 + 0.010) * SR)
    assert db[at_depth] == pytest.approx(-10, abs=1e-3)
    assert db[round(1.02 * SR)] > -10 + 0.5  # and not instantly: it ramps
    # holds for hold after the speech stops, then releases
    assert np.all(np.abs(db[at_depth:round(1.69 * SR)] + 10) < 1e-3)
    assert report.stretches[0][1] == pytest.approx(round(1.7 * SR), abs=0.012 * SR)
    assert report.seconds == pytest.approx(0.7, abs=0.015)
    assert report.depth_db == -10


def test_release_takes_the_release_time_and_is_halfway_at_half() -> None:
    p = DuckParams(attack_ms=50, release_ms=400, hold_ms=100, depth_db=-12)
    gain, report = gain_curve(_bursts(3.0, [(0.5, 1.0)]), p)
    db = _db(gain)
    end = report.stretches[0][1]
    assert db[end - 1] == pytest.approx(-12, abs=1e-3)
    assert db[end + round(0.2 * SR)] == pytest.approx(-6, abs=0.05)  # raised cosine: half at half
    assert db[end + round(0.4 * SR)] == pytest.approx(0, abs=1e-3)
    assert db[end + round(0.35 * SR)] < -0.1  # not early
    assert np.all(np.abs(db[end + round(0.41 * SR):]) < 1e-6)


def test_no_zipper_gain_moves_smoothly() -> None:
    p = DuckParams(attack_ms=30, release_ms=300, hold_ms=50, depth_db=-20)
    gain, _ = gain_curve(_bursts(4.0, [(0.3, 0.6), (0.75, 0.8), (1.0, 2.2), (2.5, 2.52)]), p)
    step = np.abs(np.diff(_db(gain)))
    limit = np.pi / 2 * 20 / (0.030 * SR)  # the documented bound
    assert step.max() <= limit * 1.001
    assert step.max() > limit * 0.5  # the bound is tight: a test that can fail


def test_speech_in_release_attacks_from_the_level_reached() -> None:
    p = DuckParams(attack_ms=100, release_ms=1000, hold_ms=0, depth_db=-10)
    gain, report = gain_curve(_bursts(3.0, [(0.2, 0.6), (0.9, 1.4)]), p)
    db = _db(gain)
    assert len(report.stretches) == 2
    second = report.stretches[1][0]
    assert -10 < db[second - 1] < -1  # partly released when speech came back
    assert np.all(np.abs(np.diff(db[second - 10:second + 10])) < 0.01)  # no jump
    assert db[second + round(0.1 * SR)] == pytest.approx(-10, abs=1e-3)


def test_quiet_dialogue_below_threshold_does_nothing() -> None:
    quiet = _bursts(2.0, [(0.5, 1.5)], level_db=-50)
    score = np.full((quiet.shape[0], 2), 0.25, dtype=np.float32)
    ducked, _gain, report = duck(score, quiet, DuckParams(threshold_db=-40))
    assert report.stretches == () and report.seconds == 0
    assert np.array_equal(ducked, score)
    loud = _bursts(2.0, [(0.5, 1.5)], level_db=-30)
    assert speech_gate(loud, DuckParams(threshold_db=-40)).any()


def test_ducked_score_is_score_times_gain() -> None:
    dx = _bursts(2.0, [(0.5, 1.0)])
    score = np.random.default_rng(2).uniform(-0.5, 0.5, (dx.shape[0], 2)).astype(np.float32)
    ducked, _gain, _ = duck(score, dx, DuckParams(depth_db=-10))
    mid = slice(round(0.7 * SR), round(0.9 * SR))
    assert np.sqrt(np.mean(ducked[mid] ** 2)) / np.sqrt(np.mean(score[mid] ** 2)) == \
        pytest.approx(10 ** (-10 / 20), rel=1e-4)
    assert np.array_equal(ducked[: SR // 4], score[: SR // 4])


@pytest.mark.parametrize("bad", [dict(depth_db=0), dict(depth_db=-80), dict(attack_ms=0),
                                 dict(hold_ms=-1), dict(threshold_db=3)])
def test_bad_params_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DuckParams(**bad)
