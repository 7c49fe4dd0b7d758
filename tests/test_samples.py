"""Every real edit in ../shared/otio_samples plans, or fails with a clear message naming why."""

from __future__ import annotations

from fractions import Fraction

import pytest

from reelscore.errors import EditReadError, InputError, RangeError, ReelscoreError, UnsupportedError
from reelscore.pipeline import ScoreSettings, plan_edit
from reelscore.scenes import check_tiling
from reelscore.timeline import load_edit

RATES = {"25fps.edl": Fraction(25), "timecode_mismatch.edl": Fraction(25)}
# Files that cannot be scored, and the error each must give.
EXPECTED_FAILURES = {
    "premiere_example.MARKER3_post0181.otio": (EditReadError, "newer OpenTimelineIO"),
    "fcpx_clips.fcpxml": (UnsupportedError, "clips but no timeline"),
    "sample_blanks.ale": (EditReadError, "no OTIO adapter reads '.ale'"),
    "multi_audio.edl": (RangeError, "no enabled video clips"),
    "test_muted_clip.aaf": (RangeError, "no enabled video clips"),  # its only clip is muted
}


def _sample_names():
    from tests.conftest import SAMPLES

    return sorted(p.name for p in SAMPLES.iterdir() if p.name != "MANIFEST.txt") if SAMPLES.is_dir() else []


@pytest.mark.parametrize("name", _sample_names())
@pytest.mark.parametrize("policy", ["cuts", "clips"])
def test_sample_plans_or_fails_clearly(samples_dir, name, policy):
    path = samples_dir / name
    rate = RATES.get(name, Fraction(24) if name.endswith(".edl") else None)
    args = {"ignore_timecode_mismatch": True} if name == "timecode_mismatch.edl" else None
    if name in EXPECTED_FAILURES:
        exc_type, text = EXPECTED_FAILURES[name]
        with pytest.raises(exc_type) as info:
            loaded = load_edit(path, rate=rate, adapter_args=args)
            plan_edit(loaded, ScoreSettings(scenes=policy), check_media=False)
        assert text in str(info.value)
        return
    loaded = load_edit(path, rate=rate, adapter_args=args)
    planned = plan_edit(loaded, ScoreSettings(scenes=policy), check_media=False)
    plan = planned.plan
    # Scenes tile the scored range; requests and videos tile it too and respect the limits.
    from reelscore.scenes import SceneCut

    check_tiling([SceneCut(s.range.start, s.range.end) for s in plan.scenes],
                 plan.range.start, plan.range.end)
    starts = [r.range.start for r in plan.requests]
    assert starts[0] == plan.range.start and plan.requests[-1].range.end == plan.range.end
    for req in plan.requests:
        assert len(req.videos) <= 10
        assert req.total_frames / float(plan.fraction_rate) <= 600
    assert plan.range.record_in == plan.scenes[0].range.record_in


def test_edl_without_rate_is_refused_with_the_flag(samples_dir):
    with pytest.raises(InputError) as info:
        load_edit(samples_dir / "screening_example.edl")
    assert "--rate" in str(info.value)


def test_edl_wrong_rate_names_the_problem(samples_dir):
    with pytest.raises(EditReadError) as info:
        load_edit(samples_dir / "25fps.edl", rate=Fraction(24))
    assert "--rate" in str(info.value) and "25fps.edl" in str(info.value)


def test_cmx_record_start_becomes_global_start(samples_dir):
    loaded = load_edit(samples_dir / "screening_example.edl", rate=Fraction(24))
    assert loaded.start_frame == 86243  # 00:59:53:11
    planned = plan_edit(loaded, ScoreSettings(), check_media=False)
    assert planned.plan.range.record_in == "00:59:53:11"
    # the original timeline object is left exactly as the adapter made it
    assert loaded.original.tracks[0].source_range.start_time.value == -86243


def test_ntsc_float_rates_snap_to_exact(samples_dir):
    loaded = load_edit(samples_dir / "premiere_generators.xml")
    assert loaded.rate == Fraction(24000, 1001)
    dfa = load_edit(samples_dir / "2997fps-DFTC.aaf")
    assert dfa.rate == Fraction(30000, 1001) and dfa.start_frame == 539460


def test_markers_become_scene_names(samples_dir):
    loaded = load_edit(samples_dir / "screening_example.edl", rate=Fraction(24))
    planned = plan_edit(loaded, ScoreSettings(scenes="markers", min_scene_seconds=0.5),
                        check_media=False)
    names = [s.name for s in planned.plan.scenes]
    assert "ANIM FIX NEEDED" in names
    # LOC 01:00:01:14 stored as record timecode -> stack frame 86438 - 86243 = 195 (... and merges)
    starts = {s.range.record_in for s in planned.plan.scenes}
    assert "01:00:01:14" in starts or "01:00:02:14" in starts


def test_offline_media_is_listed_before_any_work(samples_dir):
    from reelscore.errors import OfflineMediaError

    loaded = load_edit(samples_dir / "simple_cut.otio")
    with pytest.raises(OfflineMediaError) as info:
        plan_edit(loaded, ScoreSettings())
    msg = str(info.value)
    assert "4 clip(s) are offline" in msg or "clip(s) are offline" in msg
    assert "/folder/" in msg and "--media-root" in msg
    assert isinstance(info.value, ReelscoreError)
