"""Conform and join (pure numpy): drift measured in frames, exact lengths, crossfade on the cut."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from reelscore.conform import conform_request, frames_to_samples, join_requests
from reelscore.plan import make_plan
from reelscore.scenes import SceneCut

R = Fraction(24000, 1001)


def plan_with(lengths: list[int], max_seconds: float = 600.0):
    from reelscore.plan import PlanLimits

    scenes, pos = [], 0
    for n in lengths:
        scenes.append(SceneCut(pos, pos + n))
        pos += n
    return make_plan(scenes, rate=R, start_frame=86400, scene_policy="cuts",
                     limits=PlanLimits(max_seconds=max_seconds))


def test_frames_to_samples_exact_at_ntsc():
    assert frames_to_samples(24000, R) == 48048000  # 1001 s
    assert frames_to_samples(1, R) == 2002
    assert frames_to_samples(1, Fraction(25)) == 1920


@pytest.mark.parametrize("drift", [-4004, -1, 0, 1, 9600])
def test_conform_trims_or_pads_to_the_planned_length(drift):
    plan = plan_with([240])
    req = plan.requests[0]
    planned = frames_to_samples(240, R)
    audio = np.full((planned + drift, 2), 0.5, dtype=np.float32)
    out, report = conform_request(audio, req, R)
    assert out.shape == (planned, 2)
    assert report.drift_samples == drift
    assert report.drift_frames == pytest.approx(drift / 2002)
    assert report.action == ("exact" if drift == 0 else "trimmed" if drift > 0 else "padded")
    assert np.all(out[:1000] == 0.5)  # the start is never touched: music is anchored at the cut
    if drift < 0:
        assert np.all(out[planned + drift:] == 0)  # padding is silence
        assert out[planned + drift - 1, 0] < 0.01  # after a fade, not a click
    if drift > 0:
        assert abs(out[-1, 0]) < 0.01


def test_join_crossfades_with_equal_power_starting_on_the_cut():
    plan = plan_with([240, 240, 240], max_seconds=21.0)  # 10 s scenes, 21 s requests
    assert len(plan.requests) == 2
    a_req, b_req = plan.requests
    h = a_req.handle_frames
    assert h == plan.crossfade_frames == 12
    a = np.ones((frames_to_samples(a_req.range.duration + h, R), 2), dtype=np.float32)
    b = np.full((frames_to_samples(b_req.range.duration, R), 2), 2.0, dtype=np.float32)
    out = join_requests([a, b], plan)
    assert out.shape[0] == frames_to_samples(plan.range.duration, R)
    cut = frames_to_samples(b_req.range.start - plan.range.start, R)
    hs = frames_to_samples(h, R)
    assert np.all(out[:cut] == 1.0)
    assert np.all(out[cut + hs:] == 2.0)
    t = np.linspace(0, 1, hs)
    expected = np.cos(t * math.pi / 2) * 1.0 + np.sin(t * math.pi / 2) * 2.0
    np.testing.assert_allclose(out[cut:cut + hs, 0], expected, rtol=1e-5)
