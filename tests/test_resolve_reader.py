"""Reading a live (fake) Resolve timeline into OTIO: rates, absolute start frames, items, media
ranges, disabled items, titles, markers, in/out marks, and the cross-check with Resolve's export."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from reelscore.resolve.connect import connect
from reelscore.resolve.reader import parse_rate_setting, read_timeline, signature
from reelscore.timecode import rt_frames
from tests.fake_resolve import (
    CUT_END,
    MARK_IN,
    MARK_OUT,
    RATES,
    START_FRAMES,
    build_cut,
    expected_picture,
    read_codes,
)


@pytest.fixture()
def media_dir(media_cache: Path) -> Path:
    return media_cache / "resolve"


def _read(cut, **kwargs):
    session = connect({"resolve": cut.resolve})
    project = session.project()
    return read_timeline(session.timeline(project), project=project, resolve=cut.resolve, **kwargs)


@pytest.mark.parametrize("rate", RATES, ids=["23.976", "25", "29.97"])
def test_reads_rate_start_items_markers_and_marks(media_dir: Path, rate: Fraction) -> None:
    cut = build_cut(media_dir, rate)
    edit = _read(cut)
    start = START_FRAMES[rate]
    assert edit.rate == rate
    assert cut.start == start  # the fake numbers frames like Resolve: TC at the nominal rate
    assert edit.start_frame == start
    assert edit.start_timecode == "01:00:00:00"
    gst = edit.timeline.global_start_time
    assert gst is not None and rt_frames(gst, rate) == start
    assert edit.source == "Resolve OTIO export"  # it agreed with the item list
    assert signature(edit.timeline, rate) == [
        [(0, 30, str(cut.media_a), True), (30, 40, str(cut.media_b), True),
         (80, 30, str(cut.media_a), True)],
        [(20, 5, None, True), (90, 10, str(cut.media_b), False)],
    ]
    v1 = edit.timeline.video_tracks()[0]
    clip_a = v1[0]
    assert isinstance(clip_a, otio.schema.Clip)
    # Source ranges in the media's timecode frames, as Resolve's export writes them.
    assert rt_frames(clip_a.source_range.start_time, rate) == cut.tc_a + 10
    avail = clip_a.media_reference.available_range
    assert rt_frames(avail.start_time, rate) == cut.tc_a
    assert rt_frames(avail.duration, rate) == 120
    clip_b = v1[1]
    assert rt_frames(clip_b.source_range.start_time, rate) == 5  # no embedded TC: 0-based
    assert isinstance(v1[2], otio.schema.Gap) and rt_frames(v1[2].duration(), rate) == 10
    title = edit.timeline.video_tracks()[1][1]
    assert isinstance(title.media_reference, otio.schema.GeneratorReference)
    markers = [(m.name, rt_frames(m.marked_range.start_time, rate), m.comment)
               for m in edit.timeline.tracks.markers]
    assert markers == [("Scene 2", 30, "the chase"), ("Scene 3", 80, "")]
    assert edit.marks is not None
    assert rt_frames(edit.marks.start_time, rate) == MARK_IN
    assert rt_frames(edit.marks.duration, rate) == MARK_OUT - MARK_IN + 1  # out inclusive
    assert edit.duration_frames == CUT_END


def test_item_list_only_when_export_is_unavailable(media_dir: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add("no_export_otio")
    edit = _read(cut)
    assert edit.source == "item list"
    assert any("EXPORT_OTIO" in n for n in edit.notes)
    assert [len(t) for t in signature(edit.timeline, edit.rate)] == [3, 2]
    assert edit.timeline.metadata["reelscore_resolve"]["start_frame"] == 90000


def test_disagreeing_export_falls_back_to_the_item_list(media_dir: Path, monkeypatch) -> None:
    cut = build_cut(media_dir, Fraction(25))
    original = type(cut.timeline)._to_resolve_otio

    def shifted(self):  # an export whose second clip starts one frame late
        tl = original(self)
        clip = tl.video_tracks()[0][1]
        sr = clip.source_range
        clip.source_range = otio.opentime.TimeRange(sr.start_time, sr.duration - otio.opentime.RationalTime(1, 25))
        return tl

    monkeypatch.setattr(type(cut.timeline), "_to_resolve_otio", shifted)
    edit = _read(cut)
    assert edit.source == "item list"
    note = next(n for n in edit.notes if "disagrees" in n)
    assert "video track 1" in note
    assert signature(edit.timeline, edit.rate)[0][1] == (30, 40, str(cut.media_b), True)


def test_marks_given_relative_to_the_start_are_understood(media_dir: Path) -> None:
    cut = build_cut(media_dir, Fraction(24000, 1001), marks=False)
    cut.timeline.SetMarkInOut(MARK_IN, MARK_OUT)  # 21.1's stubs say marks are relative
    edit = _read(cut)
    assert edit.marks is not None
    assert (rt_frames(edit.marks.start_time, edit.rate),
            rt_frames(edit.marks.duration, edit.rate)) == (MARK_IN, MARK_OUT - MARK_IN + 1)


def test_no_marks_gives_no_range(media_dir: Path) -> None:
    cut = build_cut(media_dir, Fraction(25), marks=False)
    assert _read(cut).marks is None


@pytest.mark.parametrize(("text", "rate", "drop"), [
    ("23.976", Fraction(24000, 1001), False), ("24", Fraction(24), False),
    ("29.97 DF", Fraction(30000, 1001), True), ("29.97", Fraction(30000, 1001), False),
    ("59.94", Fraction(60000, 1001), False), ("47.952", Fraction(48000, 1001), False),
])
def test_rate_settings(text: str, rate: Fraction, drop: bool) -> None:
    assert parse_rate_setting(text) == (rate, drop)


def test_read_timeline_renders_the_same_frames_with_ffmpeg(media_dir: Path, tmp_path: Path) -> None:
    """What the reader built drives the core's ffmpeg renderer to the same pictures Resolve
    shows (the title is Resolve-only: ffmpeg renders it black)."""
    from reelscore.pipeline import ScoreSettings, plan_edit
    from reelscore.plan import EncodeSettings
    from reelscore.render import FFmpegRenderer

    rate = Fraction(30000, 1001)
    cut = build_cut(media_dir, rate)
    loaded = _read(cut).loaded()
    planned = plan_edit(loaded, ScoreSettings(min_scene_seconds=0))
    assert planned.plan.start_frame == START_FRAMES[rate]
    renderer = FFmpegRenderer(loaded.timeline, planned.picture, planned.resolver)
    encode = EncodeSettings(width=64, height=64, rate=f"{rate.numerator}/{rate.denominator}")
    codes: list[tuple[int, int]] = []
    videos = planned.plan.videos()
    assert [v.range.start for v in videos] == [0, 20, 25, 30, 80]  # cuts (the gap is no cut)
    for v in videos:
        renderer.render_video(v, tmp_path / f"{v.id}.mp4", encode)
        codes += read_codes(tmp_path / f"{v.id}.mp4")
    want = [expected_picture(f) for f in range(CUT_END)]
    assert codes == [(-1, -1) if w == (-2, -2) else w for w in want]
