"""Frame accuracy, checked by decoding every frame of every rendered clip.

Sources carry their own frame number in every frame (reelscore.framecode). Each test builds an
edit, plans it, renders every planned video with real ffmpeg, decodes the clips and compares each
frame with what an independent oracle says the edit shows at that instant.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from reelscore.framecode import read_codes
from reelscore.pipeline import ScoreSettings, plan_edit
from reelscore.render import FFmpegRenderer
from reelscore.timeline import normalise
from tests.edits import build_timeline, oracle

RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30)]


def render_and_check(tmp_path: Path, tracks, rate: Fraction, *, start_frame: int = 0,
                     origin: int = 0, min_scene: float = 0.2, disabled=None) -> int:
    tl = build_timeline(tracks, rate, start_frame=start_frame, origin=origin, disabled=disabled)
    loaded = normalise(tl)
    planned = plan_edit(loaded, ScoreSettings(min_scene_seconds=min_scene))
    renderer = FFmpegRenderer(loaded.timeline, planned.picture, planned.resolver)
    checked = 0
    for video in planned.plan.videos():
        out = tmp_path / f"{video.id}.mp4"
        renderer.render_video(video, out, planned.plan.encode)
        got = read_codes(out)
        want = oracle(tracks, video.range.start, video.range.end, disabled)
        assert len(got) == video.range.duration, f"{video.id}: {len(got)} frames, planned {video.range.duration}"
        mismatches = [(i, w, g) for i, (w, g) in enumerate(zip(want, got)) if w != g]
        assert not mismatches, f"{video.id} ({video.range.record_in}): first mismatches {mismatches[:5]}"
        checked += len(got)
    return checked


@pytest.mark.parametrize("rate", RATES, ids=lambda r: f"{float(r):.3f}")
def test_cuts_gaps_two_tracks_long_gop_at_01h(tmp_path, coded_video, rate):
    a = coded_video(frames=400, rate=rate, source_id=1, gop=250)  # long GOP: cuts off keyframes
    b = coded_video(frames=400, rate=rate, source_id=2, gop=250)
    c = coded_video(frames=200, rate=rate, source_id=3, gop=12)
    tracks = [
        [("clip", a, 1, 137, 41), ("gap", 9), ("clip", b, 2, 251, 37), ("clip", a, 1, 3, 30),
         ("clip", b, 2, 5, 29)],
        [("gap", 20), ("clip", c, 3, 101, 25), ("gap", 60), ("clip", c, 3, 7, 11)],
    ]
    nominal = round(rate)
    start = 3600 * nominal  # 01:00:00:00
    checked = render_and_check(tmp_path, tracks, rate, start_frame=start)
    assert checked == 41 + 9 + 37 + 30 + 29


def test_sources_with_start_timecode(tmp_path, coded_video):
    """available_range starts at 01:00:00:00: media frame 86400 is the file's first frame."""
    rate = Fraction(24)
    a = coded_video(frames=300, rate=rate, source_id=4, gop=100)
    tracks = [[("clip", a, 4, 211, 30), ("clip", a, 4, 17, 25)]]
    render_and_check(tmp_path, tracks, rate, start_frame=86400, origin=86400)


def test_disabled_clip_shows_what_is_beneath(tmp_path, coded_video):
    rate = Fraction(25)
    a = coded_video(frames=200, rate=rate, source_id=5, gop=50)
    b = coded_video(frames=200, rate=rate, source_id=6, gop=50)
    tracks = [[("clip", a, 5, 10, 60)], [("gap", 10), ("clip", b, 6, 40, 30)]]
    render_and_check(tmp_path, tracks, rate, disabled={(1, 1)})


def test_first_frame_of_file_and_last_frame(tmp_path, coded_video):
    rate = Fraction(24)
    a = coded_video(frames=120, rate=rate, source_id=7, gop=48)
    tracks = [[("clip", a, 7, 0, 12), ("clip", a, 7, 100, 20)]]  # uses frames 0 and 119
    render_and_check(tmp_path, tracks, rate)


def test_media_too_short_is_an_error_naming_the_clip(tmp_path, coded_video):
    from reelscore.errors import MediaError

    rate = Fraction(24)
    a = coded_video(frames=50, rate=rate, source_id=8, gop=24)
    tracks = [[("clip", a, 8, 30, 40)]]  # needs frames 30..69, file has 0..49
    with pytest.raises(MediaError, match=r"ends before file frame 50"):
        render_and_check(tmp_path, tracks, rate)
