"""Joins between requests, on samples: every handle crossfades into the next request.

Each request's audio is a tone of its own frequency, so what sounds on either side of a cut can be
told apart by FFT; the level is checked in short windows through every join.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from reelscore.conform import SAMPLE_RATE, conform_request, frames_to_samples, join_requests
from reelscore.plan import PlanLimits, ScorePlan, make_plan
from reelscore.scenes import SceneCut

R = Fraction(30000, 1001)
TONES = [330.0, 440.0, 550.0, 660.0, 880.0, 990.0]
AMP = 0.5
WINDOW = 960  # 20 ms level windows
HOP = 240


def plan_of(requests: int) -> ScorePlan:
    """Two 45-frame scenes per request: 4-second requests at 29.97 with a 15-frame handle."""
    scenes = [SceneCut(i * 45, (i + 1) * 45) for i in range(2 * requests)]
    plan = make_plan(scenes, rate=R, start_frame=107892, scene_policy="cuts",
                     limits=PlanLimits(max_seconds=4.0))
    assert len(plan.requests) == requests
    return plan


def tone(freq: float, n: int) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    x = (AMP * np.sin(2 * math.pi * freq * t)).astype(np.float32)
    return np.stack([x, x], axis=1)


def answers(plan: ScorePlan, drift_s: list[float]) -> list[np.ndarray]:
    """What the service returned per request (its tone), *drift_s* longer or shorter than asked."""
    out = []
    for k, (req, drift) in enumerate(zip(plan.requests, drift_s)):
        planned = frames_to_samples(req.range.duration + req.handle_frames, R)
        out.append(tone(TONES[k], planned + round(drift * SAMPLE_RATE)))
    return out


def dominant_hz(x: np.ndarray) -> float:
    mono = x.mean(axis=1) * np.hanning(x.shape[0])
    spec = np.abs(np.fft.rfft(mono))
    return float(np.fft.rfftfreq(x.shape[0], 1 / SAMPLE_RATE)[np.argmax(spec)])


def window_levels(x: np.ndarray) -> np.ndarray:
    starts = range(0, x.shape[0] - WINDOW + 1, HOP)
    return np.array([np.sqrt(np.mean(x[s:s + WINDOW, 0].astype(np.float64) ** 2)) for s in starts])


def check_joins(plan: ScorePlan, parts: list[np.ndarray], out: np.ndarray) -> None:
    steady = AMP / math.sqrt(2)
    origin = plan.range.start
    assert out.shape[0] == frames_to_samples(plan.range.duration, R)
    for k, (prev, nxt) in enumerate(zip(plan.requests, plan.requests[1:])):
        cut = frames_to_samples(nxt.range.start - origin, R)
        prev_start = frames_to_samples(prev.range.start - origin, R)
        handle = frames_to_samples(prev.range.end + prev.handle_frames - origin, R) - cut
        assert handle > 0
        # Level: no 20 ms window from 0.2 s before the cut to 0.2 s after the handle dips more
        # than 3 dB under the steady level (a fade from silence starts some 30 dB under it).
        span = out[cut - 9600: cut + handle + 9600]
        levels = window_levels(span)
        assert levels.min() >= steady * 10 ** (-3 / 20), (
            f"join {k + 1}: level falls to {20 * math.log10(levels.min() / steady):.1f} dB")
        # Origin: request k alone up to the cut, request k + 1 alone after the handle.
        assert dominant_hz(out[cut - 9600:cut]) == pytest.approx(TONES[k], abs=6)
        after = out[cut + handle + 480: cut + handle + 9600]
        assert dominant_hz(after) == pytest.approx(TONES[k + 1], abs=6)
        # Paid audio kept, sample for sample: the previous request's handle fades out (cos)
        # while the next request fades in (sin), from the cut.
        sounding = parts[k][:, 0]
        sounding_end = int(np.flatnonzero(sounding)[-1]) + 1
        h = min(handle, prev_start + sounding_end - cut)
        t = np.linspace(0.0, 1.0, h)
        expected = (parts[k][cut - prev_start: cut - prev_start + h, 0] * np.cos(t * math.pi / 2)
                    + parts[k + 1][:h, 0] * np.sin(t * math.pi / 2))
        np.testing.assert_allclose(out[cut:cut + h, 0], expected, atol=2e-6)
        np.testing.assert_array_equal(out[cut - 4800:cut, 0],
                                      parts[k][cut - prev_start - 4800: cut - prev_start, 0])
        np.testing.assert_array_equal(out[cut + h: cut + h + 4800, 0], parts[k + 1][h:h + 4800, 0])
    last = plan.requests[-1]
    tail = out[frames_to_samples(last.range.end - origin, R) - 9600:]
    assert dominant_hz(tail) == pytest.approx(TONES[len(plan.requests) - 1], abs=6)


@pytest.mark.parametrize("requests", [2, 3, 6])
def test_every_join_crossfades_the_handle_into_the_next_request(requests):
    plan = plan_of(requests)
    drift = [0.0, 0.3, 0.0, 1.2, 0.0, 0.0][:requests]  # exact and longer answers (trimmed)
    parts = [conform_request(a, req, R)[0] for a, req in zip(answers(plan, drift), plan.requests)]
    out = join_requests(parts, plan)
    check_joins(plan, parts, out)


def test_a_short_answer_crossfades_only_what_sounds():
    """A request answered 0.2 s short keeps 0.3 s of its 0.5 s handle: the join uses that."""
    plan = plan_of(3)
    conformed = [conform_request(a, req, R) for a, req in zip(answers(plan, [0.0, -0.2, 0.0]),
                                                             plan.requests)]
    assert [report.action for _, report in conformed] == ["exact", "padded", "exact"]
    parts = [part for part, _ in conformed]
    out = join_requests(parts, plan)
    check_joins(plan, parts, out)
