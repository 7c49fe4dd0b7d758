"""Scene clips through the (fake) render queue: absolute MarkIn, inclusive MarkOut, frame count
verified by decoding, jobs removed, the user's page/timeline/render settings put back."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from reelscore.plan import EncodeSettings, FrameRange, PlannedVideo
from reelscore.resolve.api import ResolveCallError, ResolveRenderError
from reelscore.resolve.connect import connect
from reelscore.resolve.render_queue import ResolveRenderer
from reelscore.timecode import frames_to_tc, rate_str
from tests.fake_resolve import RATES, START_FRAMES, Cut, build_cut, expected_picture, read_codes


@pytest.fixture()
def media_dir(media_cache: Path) -> Path:
    return media_cache / "resolve"


def _renderer(cut: Cut, **kwargs) -> ResolveRenderer:
    session = connect({"resolve": cut.resolve})
    project = session.project()
    return ResolveRenderer(session.ref(), project, session.timeline(project, "Cut v3"),
                           start_frame=cut.start, rate=cut.rate, poll_s=0.02, **kwargs)


def _user_state(cut: Cut) -> None:
    """A user mid-session: on the Color page, another timeline current, ProRes, a queued job."""
    project = cut.resolve.project
    other = project.add_timeline("Reel 2", cut.rate)
    project.current_timeline = other
    cut.resolve.page = "color"
    project.SetRenderSettings({"TargetDir": "/Volumes/Deliveries", "CustomName": "master"})
    project.AddRenderJob()  # the user's own job: must survive
    project.current_timeline = other


@pytest.mark.parametrize("rate", RATES, ids=["23.976", "25", "29.97"])
def test_render_range_marks_are_absolute_and_inclusive(media_dir: Path, tmp_path: Path, rate: Fraction) -> None:
    cut = build_cut(media_dir, rate)
    _user_state(cut)
    before = cut.resolve.snapshot()
    first_rel, count = 18, 15  # crosses A -> title -> A -> B
    out = tmp_path / "scene.mp4"
    with _renderer(cut) as r:
        rendered = r.render_range(cut.start + first_rel, count, out, width=128, height=72)
    start = START_FRAMES[rate]
    assert (rendered.mark_in, rendered.mark_out) == (start + 18, start + 32)
    job = cut.resolve.rendered[-1]
    assert (job["MarkIn"], job["MarkOut"]) == (start + 18, start + 32)
    assert job["MarkOut"] - job["MarkIn"] + 1 == count
    assert (job["VideoFormat"], job["VideoCodec"], job["IsExportVideo"]) == ("mp4", "H264", True)
    assert job["TimelineName"] == "Cut v3"  # rendered the right timeline, not the current one
    assert read_codes(out) == [expected_picture(first_rel + i) for i in range(count)]
    assert rendered.frames == count
    # Everything the user had is back: page, current timeline, format/codec, settings, jobs.
    assert cut.resolve.snapshot() == before
    assert not list(tmp_path.glob(".resolve-render-*"))


def test_single_frame_render_has_mark_in_equal_mark_out(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    with _renderer(cut) as r:
        rendered = r.render_range(cut.start + 31, 1, tmp_path / "one.mp4", width=64, height=64)
    assert rendered.mark_in == rendered.mark_out == 90031
    assert read_codes(tmp_path / "one.mp4") == [expected_picture(31)]


def test_render_video_uses_the_planned_video_and_encode(media_dir: Path, tmp_path: Path) -> None:
    rate = Fraction(24000, 1001)
    cut = build_cut(media_dir, rate)
    start = START_FRAMES[rate]
    rng = FrameRange(start=75, duration=12, rate=rate_str(rate),
                     record_in=frames_to_tc(start + 75, rate), record_out=frames_to_tc(start + 87, rate))
    video = PlannedVideo(id="r01v02", scene_ids=["s002"], range=rng, start_frame=start)
    encode = EncodeSettings(width=96, height=54, rate=rate_str(rate), video_kbps=800)
    with _renderer(cut) as r:
        r.render_video(video, tmp_path / "r01v02.mp4", encode)
    job = cut.resolve.rendered[-1]
    assert (job["MarkIn"], job["MarkOut"]) == (start + 75, start + 86)
    assert (job["FormatWidth"], job["FormatHeight"]) == (96, 54)
    assert read_codes(tmp_path / "r01v02.mp4") == [expected_picture(75 + i) for i in range(12)]


def test_wrong_frame_count_is_caught(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add("render_drops_last_frame")  # a build treating MarkOut as exclusive
    before = cut.resolve.snapshot()
    with pytest.raises(ResolveRenderError) as info, _renderer(cut) as r:
        r.render_range(cut.start, 10, tmp_path / "x.mp4", width=64, height=64)
    assert "rendered 9 frames" in str(info.value) and "expected 10" in str(info.value)
    assert "MarkIn 90000, MarkOut 90009" in str(info.value)
    assert not (tmp_path / "x.mp4").exists()
    assert cut.resolve.snapshot() == before  # job deleted, settings restored


def test_failed_job_is_reported_and_removed(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add("render_fails")
    before = cut.resolve.snapshot()
    with pytest.raises(ResolveRenderError) as info, _renderer(cut) as r:
        r.render_range(cut.start + 5, 10, tmp_path / "x.mp4", width=64, height=64)
    msg = str(info.value)
    assert "01:00:00:05-01:00:00:14" in msg and "'Failed'" in msg and "injected" in msg
    assert "--render ffmpeg" in msg
    assert cut.resolve.snapshot() == before


def test_hanging_render_hits_the_deadline(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add("render_hangs")
    before = cut.resolve.snapshot()
    with pytest.raises(ResolveRenderError) as info, _renderer(cut, timeout_s=0.3) as r:
        r.render_range(cut.start, 10, tmp_path / "x.mp4", width=64, height=64)
    assert "01:00:00:00-01:00:00:09 did not finish within 0 s" in str(info.value)
    assert "--render-timeout" in str(info.value)
    assert not cut.resolve.project.IsRenderingInProgress()  # StopRendering was called
    assert cut.resolve.snapshot() == before


def test_refused_job_names_the_call(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add("add_job_fails")
    before = cut.resolve.snapshot()
    with pytest.raises(ResolveCallError) as info, _renderer(cut) as r:
        r.render_range(cut.start, 10, tmp_path / "x.mp4", width=64, height=64)
    assert info.value.call == "Project.AddRenderJob()"
    assert "returned ''" in str(info.value)
    assert cut.resolve.snapshot() == before


def test_proxy_rate_other_than_the_timeline_is_refused(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    rng = FrameRange(start=0, duration=5, rate="25", record_in="01:00:00:00", record_out="01:00:00:05")
    video = PlannedVideo(id="v", scene_ids=["s"], range=rng, start_frame=cut.start)
    with pytest.raises(ResolveRenderError, match="proxy rate 24 differs"), _renderer(cut) as r:
        r.render_video(video, tmp_path / "v.mp4", EncodeSettings(rate="24"))
    assert cut.resolve.rendered == []
