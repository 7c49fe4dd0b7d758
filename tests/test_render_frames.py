"""Frame accuracy, checked by decoding every frame of every rendered clip.

Sources carry their own frame number in every frame (tests/framecode.py). Each test builds an
edit, plans it, renders every planned video with real ffmpeg, decodes the clips and compares each
frame with what an independent oracle (tests/edits.py) says the edit shows at that instant:
exact frames must carry exactly the expected code; blended frames (dissolves, fades) must show,
block by block, the oracle's weighted mix of the expected codes.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from reelscore.ffmpeg_cli import decode_gray_frames
from reelscore.pipeline import PlannedEdit, ScoreSettings, plan_edit
from reelscore.render import FFmpegRenderer
from reelscore.timeline import normalise
from tests.edits import Mix, Seq, build_timeline, oracle
from tests.framecode import (
    FRAME_BITS,
    block_levels,
    code_bits,
    read_code,
    write_coded_sequence,
    write_coded_still,
)

RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30)]
# Grey levels after decoding: a code's white and black blocks, and black frames (gaps) - the
# codes are written from full-range grey, the black we insert is video black (Y 16).
WHITE, BLACK, BLACK_FRAME = 235.0, 16.0, 0.0
BLEND_TOLERANCE = 0.04  # of the black-to-white range, per block centre


def blend_error(frame, want: Mix) -> float:
    """Largest difference, over all code blocks, between the frame and the weighted codes."""
    expect = [0.0] * (2 * FRAME_BITS)
    for key, weight in want.items():
        if key is None:
            levels = [BLACK_FRAME] * (2 * FRAME_BITS)
        else:
            bits1, bits2 = code_bits(key[1], key[0])
            levels = [WHITE if bit else BLACK for bit in bits1 + bits2]
        for j, level in enumerate(levels):
            expect[j] += weight * level
    row1, row2 = block_levels(frame)
    return max(abs(g - e) for g, e in zip(row1 + row2, expect)) / (WHITE - BLACK)


def assert_frames(path: Path, want: list, label: str) -> int:
    frames = decode_gray_frames(path, width=320, height=180)
    assert len(frames) == len(want), f"{label}: {len(frames)} frames, planned {len(want)}"
    bad = []
    for i, (frame, w) in enumerate(zip(frames, want)):
        if isinstance(w, Mix):
            err = blend_error(frame, w)
            if err > BLEND_TOLERANCE:
                bad.append((i, dict(w), f"blend off by {err:.3f}"))
        else:
            got = read_code(frame)
            if got != w:
                bad.append((i, w, got))
    assert not bad, f"{label}: {len(bad)} wrong frame(s), first {bad[:4]}"
    return len(frames)


def plan_spec(tracks, rate: Fraction, *, start_frame: int = 0, origin: int = 0,
              min_scene: float = 0.2, disabled=None) -> PlannedEdit:
    tl = build_timeline(tracks, rate, start_frame=start_frame, origin=origin, disabled=disabled)
    return plan_edit(normalise(tl), ScoreSettings(min_scene_seconds=min_scene))


def render_and_check(tmp_path: Path, tracks, rate: Fraction, *, start_frame: int = 0,
                     origin: int = 0, min_scene: float = 0.2, disabled=None) -> int:
    planned = plan_spec(tracks, rate, start_frame=start_frame, origin=origin,
                        min_scene=min_scene, disabled=disabled)
    renderer = FFmpegRenderer(planned.loaded.timeline, planned.picture, planned.resolver)
    checked = 0
    for video in planned.plan.videos():
        out = tmp_path / f"{video.id}.mp4"
        renderer.render_video(video, out, planned.plan.encode)
        want = oracle(tracks, video.range.start, video.range.end, disabled, rate=rate)
        checked += assert_frames(out, want, f"{video.id} ({video.range.record_in})")
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


# ------------------------------------------------------------------ transitions and layers


def test_dissolves_and_fades_on_one_track(tmp_path, coded_video):
    """Outside each transition every frame is exact; inside, the SMPTE mix of both sides, the
    outgoing clip's media running past its out point, the incoming clip's before its in point."""
    rate = Fraction(24)
    a = coded_video(frames=400, rate=rate, source_id=1, gop=250)
    b = coded_video(frames=400, rate=rate, source_id=2, gop=250)
    tracks = [[("clip", a, 1, 137, 30), ("dissolve", 6, 6), ("clip", b, 2, 251, 30),
               ("dissolve", 4, 4), ("gap", 12), ("dissolve", 0, 5), ("clip", a, 1, 20, 16)]]
    checked = render_and_check(tmp_path, tracks, rate, start_frame=86400, min_scene=0.1)
    assert checked == 30 + 30 + 12 + 16
    # The scene change of the A->B dissolve [24, 36) sits on its midpoint frame.
    planned = plan_spec(tracks, rate, start_frame=86400, min_scene=0.1)
    starts = [s.range.start for s in planned.plan.scenes]
    assert 30 in starts and not any(24 < s < 36 and s != 30 for s in starts)


def test_dissolve_on_upper_track_mixes_with_the_track_below(tmp_path, coded_video):
    """EDL-style dissolve (in 0 / out N) from a gap on V2: V2 fades in over V1, then fades
    out to V1 again; a third track covers part of it."""
    rate = Fraction(25)
    a = coded_video(frames=300, rate=rate, source_id=3, gop=100)
    b = coded_video(frames=300, rate=rate, source_id=4, gop=100)
    c = coded_video(frames=300, rate=rate, source_id=5, gop=25)
    tracks = [
        [("clip", a, 3, 40, 70)],
        [("gap", 10), ("dissolve", 0, 8), ("clip", b, 4, 120, 30), ("dissolve", 5, 5),
         ("gap", 20)],
        [("gap", 50), ("clip", c, 5, 7, 12)],
    ]
    render_and_check(tmp_path, tracks, rate)


def test_three_tracks_partial_overlaps_disabled_and_nested(tmp_path, coded_video):
    rate = Fraction(30000, 1001)
    a = coded_video(frames=300, rate=rate, source_id=6, gop=60)
    b = coded_video(frames=300, rate=rate, source_id=7, gop=60)
    c = coded_video(frames=300, rate=rate, source_id=8, gop=15)
    inner = [[("clip", a, 6, 200, 40)], [("gap", 8), ("clip", c, 8, 50, 10)]]
    tracks = [
        [("clip", a, 6, 10, 36), ("nest", inner, 4, 24)],
        [("gap", 6), ("clip", b, 7, 30, 20), ("gap", 10), ("clip", b, 7, 100, 14)],
        [("gap", 12), ("clip", c, 8, 5, 10, {"disabled": True}), ("clip", c, 8, 150, 9)],
    ]
    render_and_check(tmp_path, tracks, rate)


# -------------------------------------------------------------------------------- speed


def test_speed_reverse_and_freeze(tmp_path, coded_video, monkeypatch):
    """2x, 0.5x, reverse at 100 % and 200 %, reverse slow motion, freeze frames; the long
    reverse is decoded in bounded chunks (the hold limit is lowered to force several)."""
    import reelscore.render as render

    monkeypatch.setattr(render, "MAX_HOLD_BYTES", 16 * 640 * 360 * 3 // 2)  # 16 frames
    rate = Fraction(24)
    a = coded_video(frames=600, rate=rate, source_id=9, gop=250)
    tracks = [[
        ("clip", a, 9, 100, 20, {"speed": 2.0}),
        ("clip", a, 9, 300, 16, {"speed": 0.5}),
        ("clip", a, 9, 400, 40, {"speed": -1.0}),
        ("clip", a, 9, 10, 15, {"speed": -2.0}),
        ("clip", a, 9, 250, 12, {"speed": -0.5}),
        ("clip", a, 9, 333, 10, {"freeze": True}),
    ]]
    render_and_check(tmp_path, tracks, rate, min_scene=0.3)


# ---------------------------------------------------------------------------- mixed rates


@pytest.mark.parametrize("timeline_rate,source_rate", [
    (Fraction(24), Fraction(25)),
    (Fraction(24000, 1001), Fraction(30000, 1001)),
], ids=["25-in-24", "29.97-in-23.976"])
def test_sources_at_another_rate_show_the_frame_of_each_instant(tmp_path, coded_video,
                                                                timeline_rate, source_rate):
    src = coded_video(frames=400, rate=source_rate, source_id=10, gop=50)
    same = coded_video(frames=200, rate=timeline_rate, source_id=11, gop=48)
    tracks = [[("clip", same, 11, 20, 20), ("clip", src, 10, 101, 61, {"rate": source_rate}),
               ("clip", src, 10, 7, 30, {"rate": source_rate})]]
    checked = render_and_check(tmp_path, tracks, timeline_rate, start_frame=86400)
    assert checked > 20 + 40


# ------------------------------------------------------------------------- media kinds


def test_image_sequence_and_stills(tmp_path, media_cache):
    rate = Fraction(24)
    folder = media_cache / "seq_frames"
    first = folder / "shot.1001.png"
    if not first.exists():
        write_coded_sequence(folder, frames=60, source_id=12, start_number=1001,
                             prefix="shot.", padding=4)
    still = media_cache / "title.png"
    if not still.exists():
        write_coded_still(still, number=77, source_id=13)
    seq = Seq(folder, "shot.", ".png", 1001, 4)
    tracks = [[
        ("clip", seq, 12, 17, 20),
        ("clip", still, 13, 0, 30, {"still": 77, "avail_frames": 1}),  # Resolve: 1-frame still
        ("clip", seq, 12, 3, 9),
    ]]
    render_and_check(tmp_path, tracks, rate)


def test_source_without_available_range_starts_at_its_timecode(tmp_path, coded_video):
    """EDL-style: no available_range; the file's own timecode (01:00:00:00) is media frame 0."""
    rate = Fraction(25)
    a = coded_video(frames=200, rate=rate, source_id=14, gop=50, timecode="01:00:00:00",
                    name="tc_src.mp4")
    tracks = [[("clip", a, 14, 61, 20, {"no_avail": True, "origin": 90000}),
               ("clip", a, 14, 5, 12, {"no_avail": True, "origin": 90000})]]
    render_and_check(tmp_path, tracks, rate, start_frame=90000)


# ------------------------------------------------------------------------- request size


def test_oversized_request_is_rerendered_smaller_and_reused(tmp_path, coded_video, monkeypatch):
    """Encoders overshoot: a request over the byte limit is re-rendered at a lower bitrate,
    recorded in the manifest, still frame-exact, and reused by the next run."""
    import json

    from reelscore.pipeline import score_timeline
    from reelscore.plan import PlanLimits

    rate = Fraction(24)
    a = coded_video(frames=300, rate=rate, source_id=15, gop=48)
    tracks = [[("clip", a, 15, 10, 60), ("clip", a, 15, 150, 60)]]
    loaded = normalise(build_timeline(tracks, rate, start_frame=86400))
    settings = ScoreSettings(min_scene_seconds=1)
    limit = 60_000  # bytes: far less than these 5 s want at the plan's minimum bitrate
    monkeypatch.setattr(ScoreSettings, "limits",
                        lambda self: PlanLimits(max_bytes=limit, max_videos=self.max_videos))
    result = score_timeline(loaded, settings, work_dir=tmp_path / "job")
    manifest = json.loads(result.manifest_path.read_text())
    refits = [e for e in manifest["events"] if e["event"] == "refit"]
    assert refits and refits[0]["bytes"] <= 0.95 * limit < refits[0]["bytes_before"]
    clips = sorted((tmp_path / "job").rglob("r01v*.mp4"))
    assert sum(c.stat().st_size for c in clips) <= 0.95 * limit
    for video in result.plan.videos():
        rec = manifest["renders"][video.id]
        assert rec["encode"]["video_kbps"] < result.plan.requests[0].video_kbps
        path = Path(rec["clip"]["path"])
        want = oracle(tracks, video.range.start, video.range.end, rate=rate)
        assert_frames(path, want, video.id)
    again = score_timeline(loaded, settings, work_dir=tmp_path / "job")
    events = json.loads(again.manifest_path.read_text())["events"]
    assert sum(e["event"] == "rendered" for e in events) == 1
    assert sum(e["event"] == "refit" for e in events) == 1
