"""Reference-movie mode: scenes cut from a flattened movie are the frames the sources give."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from reelscore.errors import InputError, OfflineMediaError, RangeError
from reelscore.ffmpeg_cli import decode_gray_frames
from reelscore.pipeline import ScoreSettings, default_renderer, plan_edit, score_timeline
from reelscore.plan import EncodeSettings, PlannedVideo
from reelscore.reference import ReferenceRenderer
from reelscore.render import FFmpegRenderer
from reelscore.timeline import normalise
from tests.edits import Mix, build_timeline, oracle
from tests.framecode import read_code
from tests.test_render_frames import BLEND_TOLERANCE, blend_error

R = Fraction(24)
START = 86400  # 01:00:00:00


def _edit(coded_video, offline: bool = False):
    a = coded_video(frames=400, rate=R, source_id=21, gop=250)
    b = coded_video(frames=400, rate=R, source_id=22, gop=250)
    if offline:
        a, b = Path("/offline/a.mov"), Path("/offline/b.mov")
    return [
        [("clip", a, 21, 137, 40), ("dissolve", 5, 5), ("clip", b, 22, 251, 37), ("gap", 9),
         ("clip", a, 21, 3, 30)],
        [("gap", 60), ("clip", b, 22, 101, 20)],
    ]


def _flatten(planned, path: Path) -> Path:
    """The edit's picture as one movie (what an editor exports as a reference)."""
    plan = planned.plan
    whole = PlannedVideo(id="reference", scene_ids=[], range=plan.range,
                         start_frame=plan.start_frame)
    encode = EncodeSettings(width=640, height=360, rate=plan.rate, video_kbps=8000, crf=10)
    FFmpegRenderer(planned.loaded.timeline, planned.picture, planned.resolver).render_video(
        whole, path, encode)
    return path


def test_reference_movie_gives_the_same_frames_as_the_sources(tmp_path, coded_video):
    tracks = _edit(coded_video)
    loaded = normalise(build_timeline(tracks, R, start_frame=START))
    from_sources = plan_edit(loaded, ScoreSettings(min_scene_seconds=0.3))
    movie = _flatten(from_sources, tmp_path / "reference.mp4")

    settings = ScoreSettings(min_scene_seconds=0.3, reference=movie, reference_start="01:00:00:00")
    from_movie = plan_edit(loaded, settings)
    assert from_movie.plan.videos() == from_sources.plan.videos()
    assert any("reference movie reference.mp4" in n for n in from_movie.plan.notes)
    src_renderer = default_renderer(from_sources, ScoreSettings())
    ref_renderer = default_renderer(from_movie, settings)
    assert isinstance(ref_renderer, ReferenceRenderer)
    blends = 0
    for video in from_sources.plan.videos():
        a = tmp_path / f"{video.id}.sources.mp4"
        b = tmp_path / f"{video.id}.reference.mp4"
        src_renderer.render_video(video, a, from_sources.plan.encode)
        ref_renderer.render_video(video, b, from_movie.plan.encode)
        fa = decode_gray_frames(a, width=320, height=180)
        fb = decode_gray_frames(b, width=320, height=180)
        want = oracle(tracks, video.range.start, video.range.end, rate=R)
        assert len(fa) == len(fb) == len(want) == video.frames
        for i, w in enumerate(want):
            if isinstance(w, Mix):
                blends += 1
                assert blend_error(fa[i], w) <= BLEND_TOLERANCE
                assert blend_error(fb[i], w) <= BLEND_TOLERANCE, (video.id, i)
            else:
                assert read_code(fa[i]) == read_code(fb[i]) == w, (video.id, i)
    assert blends == 10


def test_reference_mode_ignores_offline_sources_and_uses_the_movie_timecode(tmp_path, coded_video):
    # The movie's first frame is 01:00:00:00 by its own timecode; frame k shows number k.
    movie = coded_video(frames=300, rate=R, source_id=23, gop=48, timecode="01:00:00:00",
                        name="turnover.mp4")
    tracks = _edit(coded_video, offline=True)
    loaded = normalise(build_timeline(tracks, R, start_frame=START + 24))
    with pytest.raises(OfflineMediaError):
        plan_edit(loaded, ScoreSettings())
    settings = ScoreSettings(min_scene_seconds=0.3, reference=movie)
    planned = plan_edit(loaded, settings)
    assert any("first frame 01:00:00:00 from its timecode" in n for n in planned.plan.notes)
    renderer = default_renderer(planned, settings)
    for video in planned.plan.videos():
        out = tmp_path / f"{video.id}.mp4"
        renderer.render_video(video, out, planned.plan.encode)
        got = [read_code(f) for f in decode_gray_frames(out, width=320, height=180)]
        first = 24 + video.range.start  # record frame - reference start
        assert got == [(23, first + i) for i in range(video.frames)]


def test_reference_start_defaults_to_zero_without_timecode(tmp_path, coded_video):
    movie = coded_video(frames=120, rate=R, source_id=24, gop=48, name="no_tc.mp4")
    tracks = [[("clip", Path("/offline/x.mov"), 1, 0, 50)]]
    loaded = normalise(build_timeline(tracks, R, start_frame=10))
    settings = ScoreSettings(min_scene_seconds=0.3, reference=movie)
    planned = plan_edit(loaded, settings)
    (video,) = planned.plan.videos()
    out = tmp_path / "v.mp4"
    default_renderer(planned, settings).render_video(video, out, planned.plan.encode)
    got = [read_code(f) for f in decode_gray_frames(out, width=320, height=180)]
    assert got == [(24, 10 + i) for i in range(50)]


def test_reference_at_another_rate_is_refused(coded_video):
    movie = coded_video(frames=100, rate=Fraction(25), source_id=25, gop=25, name="pal.mp4")
    loaded = normalise(build_timeline([[("clip", Path("/offline/x.mov"), 1, 0, 50)]], R))
    with pytest.raises(InputError, match=r"runs at 25 fps but the timeline runs at 24 fps"):
        plan_edit(loaded, ScoreSettings(reference=movie))


@pytest.mark.parametrize("start_tc,record_start,message", [
    ("01:00:10:00", START, "starts at 01:00:10:00"),
    ("01:00:00:00", START + 100, "ends at 01:00:05:00"),
])
def test_reference_must_cover_the_scored_range(coded_video, start_tc, record_start, message):
    movie = coded_video(frames=120, rate=R, source_id=26, gop=48, name="short.mp4")
    loaded = normalise(build_timeline([[("clip", Path("/offline/x.mov"), 1, 0, 50)]], R,
                                      start_frame=record_start))
    with pytest.raises(RangeError, match=message):
        plan_edit(loaded, ScoreSettings(reference=movie, reference_start=start_tc))


def test_score_with_reference_then_nothing_changed_renders_nothing(tmp_path, coded_video):
    movie = coded_video(frames=300, rate=R, source_id=27, gop=48, timecode="01:00:00:00",
                        name="turnover27.mp4")
    tracks = _edit(coded_video, offline=True)
    loaded = normalise(build_timeline(tracks, R, start_frame=START))
    settings = ScoreSettings(min_scene_seconds=0.3, reference=movie)
    first = score_timeline(loaded, settings, work_dir=tmp_path / "job")
    second = score_timeline(loaded, settings, work_dir=tmp_path / "job")
    manifest = json.loads(second.manifest_path.read_text())
    rendered = [e for e in manifest.get("events", []) if e.get("event") == "rendered"]
    assert len(rendered) == 1, rendered  # the first run only
    assert first.plan.videos() == second.plan.videos()


def test_cli_plan_with_reference(tmp_path, coded_video):
    from reelscore.cli import app

    movie = coded_video(frames=300, rate=R, source_id=28, gop=48, timecode="01:00:00:00",
                        name="turnover28.mp4")
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(build_timeline(_edit(coded_video, offline=True), R,
                                               start_frame=START), str(edit))
    result = CliRunner().invoke(app, ["plan", str(edit), "--reference", str(movie),
                                      "--reference-start", "01:00:00:00"])
    assert result.exit_code == 0, result.output
    assert "note: picture cut from reference movie turnover28.mp4" in result.output
    offline = CliRunner().invoke(app, ["plan", str(edit)])
    assert offline.exit_code == 2 and "--reference MOVIE" in offline.output


def test_render_all_reports_each_written_clip_and_keeps_a_renderers_worker_cap(tmp_path, coded_video):
    import threading

    from reelscore.render import render_all

    tracks = _edit(coded_video)
    loaded = normalise(build_timeline(tracks, R, start_frame=START))
    from_sources = plan_edit(loaded, ScoreSettings(min_scene_seconds=0.3))
    movie = _flatten(from_sources, tmp_path / "reference.mp4")
    settings = ScoreSettings(min_scene_seconds=0.3, reference=movie, reference_start="01:00:00:00")
    planned = plan_edit(loaded, settings)
    videos = planned.plan.videos()
    assert len(videos) >= 2
    encode = planned.plan.encode

    for cap, folder in ((None, "parallel"), (1, "capped")):
        renderer = default_renderer(planned, settings)
        renderer.max_workers = cap
        done: list[tuple[str, int, str]] = []

        def on_done(video: PlannedVideo, path: Path, enc: EncodeSettings) -> None:
            # Called once the clip is whole: it decodes to every frame of the video.
            frames = len(decode_gray_frames(path, width=32, height=18))
            done.append((video.id, frames, threading.current_thread().name))  # noqa: B023

        jobs = [(v, tmp_path / folder / f"{v.id}.mp4", encode) for v in videos]
        render_all(renderer, jobs, workers=2, on_done=on_done)
        assert sorted((vid, n) for vid, n, _ in done) == sorted((v.id, v.frames) for v in videos)
        threads = {name for _, _, name in done}
        if cap == 1:  # the renderer's cap wins over workers=2: rendered one by one, here
            assert threads == {threading.main_thread().name}
        else:
            assert threading.main_thread().name not in threads
        assert renderer.decoder_threads is not None and renderer.decoder_threads >= 1
