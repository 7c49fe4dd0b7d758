"""Scenes and plans (pure): tiling, merging, limits, balance, crossfade handles, bitrate."""

from __future__ import annotations

from fractions import Fraction

import pytest

from reelscore.plan import PlanLimits, choose_kbps, make_plan, partition
from reelscore.scenes import Boundary, SceneCut, check_tiling, cut_scenes, merge_short

R24 = Fraction(24)


def scenes_of(lengths: list[int], start: int = 0) -> list[SceneCut]:
    out, pos = [], start
    for n in lengths:
        out.append(SceneCut(pos, pos + n))
        pos += n
    return out


def test_cut_scenes_tile_and_gaps_belong_to_their_scene():
    scenes = cut_scenes([Boundary(100), Boundary(250, "B"), Boundary(900)], 50, 400, min_frames=1)
    check_tiling(scenes, 50, 400)
    assert [(s.start, s.end) for s in scenes] == [(50, 100), (100, 250), (250, 400)]
    assert scenes[1].name == "" and scenes[2].name == "B"


def test_merge_short_into_shorter_neighbour():
    scenes = merge_short(scenes_of([100, 10, 40, 200]), 48)
    assert [s.duration for s in scenes] == [100, 50, 200]
    assert merge_short(scenes_of([10]), 48)[0].duration == 10  # a lone short scene stays
    merged = merge_short(scenes_of([30, 30, 30, 30]), 48)
    assert all(s.duration >= 48 for s in merged) and sum(s.duration for s in merged) == 120


def test_partition_balanced_and_bounded():
    sizes = partition([10] * 25, 10)
    assert len(sizes) == 10 and sum(sizes) == 25 and max(sizes) - min(sizes) <= 1
    assert partition([5, 5, 100, 5, 5], 3) == [2, 1, 2]
    assert partition([3, 3, 3], 10) == [1, 1, 1]
    # capacity: fewest groups under the capacity, balanced
    sizes = partition([60] * 10, 99, capacity=250)
    assert len(sizes) == 3 and max(sizes) <= 4


def test_more_than_ten_scenes_merge_into_ten_balanced_videos():
    plan = make_plan(scenes_of([72] * 23), rate=R24, start_frame=86400, scene_policy="cuts")
    (req,) = plan.requests
    assert len(req.videos) == 10
    lengths = [v.range.duration for v in req.videos]
    assert max(lengths) - min(lengths) <= 72
    assert sum(lengths) == 72 * 23
    assert [sid for v in req.videos for sid in v.scene_ids] == [s.id for s in plan.scenes]
    assert req.videos[0].range.record_in == "01:00:00:00"


def test_programme_over_600s_splits_at_scene_boundaries_with_handles():
    # 25 minutes of 30 s scenes at 24 fps
    plan = make_plan(scenes_of([720] * 50), rate=R24, start_frame=0, scene_policy="cuts")
    assert len(plan.requests) == 3
    boundaries = {s.range.start for s in plan.scenes}
    for i, req in enumerate(plan.requests):
        secs = (req.range.duration + req.handle_frames) / 24
        assert secs <= 600
        assert len(req.videos) <= 10
        assert req.range.start in boundaries
        if i < len(plan.requests) - 1:
            assert req.handle_frames == plan.crossfade_frames == 12
            assert req.videos[-1].range.end == plan.requests[i + 1].range.start + 12
        else:
            assert req.handle_frames == 0
    durations = [r.range.duration for r in plan.requests]
    assert max(durations) - min(durations) <= 720  # balanced to a scene


def test_scene_longer_than_a_request_is_split_and_reported():
    plan = make_plan(scenes_of([24 * 700]), rate=R24, start_frame=0, scene_policy="cuts")
    assert len(plan.requests) == 2 and any("split into 2 parts" in n for n in plan.notes)


def test_bitrate_keeps_requests_under_200mb():
    limits = PlanLimits()
    for seconds in (10, 120, 599.9):
        kbps = choose_kbps(seconds, limits)
        assert kbps * 1000 / 8 * seconds <= 200e6 * limits.byte_margin
    assert choose_kbps(10, limits) == limits.max_kbps
    assert choose_kbps(600, PlanLimits(max_bytes=20_000_000)) < 300


@pytest.mark.parametrize("rate", [Fraction(24000, 1001), Fraction(30000, 1001), Fraction(25)])
def test_plan_json_round_trip_keeps_exact_rates(rate):
    from reelscore.plan import ScorePlan

    plan = make_plan(scenes_of([100, 200, 300]), rate=rate, start_frame=3600 * round(rate),
                     scene_policy="cuts", drop_frame=False)  # 29.97 non-drop: 108000 = 1 h
    again = ScorePlan.model_validate_json(plan.model_dump_json())
    assert again == plan and again.fraction_rate == rate
    assert again.range.record_in == "01:00:00:00"
