"""End to end against the fake Resolve with the offline engine: the music lands on a new 'Score'
track at the right absolute frame with the right duration; through the workflow, and through
`reelscore resolve score`. Failures before or during placement leave the project as it was."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reelscore.pipeline import ScoreSettings
from reelscore.resolve.api import PlacementError, ResolveRenderError
from reelscore.resolve.connect import connect
from reelscore.resolve.workflow import ResolveRunOptions, score_in_resolve
from reelscore.wavfile import read_wav
from tests.fake_resolve import MARK_IN, MARK_OUT, START_FRAMES, Cut, build_cut, read_codes

SAMPLE_RATE = 48000


@pytest.fixture()
def media_dir(media_cache: Path) -> Path:
    return media_cache / "resolve"


def _settings(**kw) -> ScoreSettings:
    return ScoreSettings(provider="local", min_scene_seconds=0.1, **kw)


def _unchanged_except_score(before: dict, after: dict) -> None:
    """Only the new audio track, the bin and markers may differ."""
    for key in ("page", "current_timeline", "render", "presets", "jobs", "current_folder"):
        assert after[key] == before[key], key
    for tb, ta in zip(before["timelines"], after["timelines"], strict=True):
        assert ta["tracks"]["video"] == tb["tracks"]["video"]
        assert ta["tracks"]["audio"][: len(tb["tracks"]["audio"])] == tb["tracks"]["audio"]
        assert ta["marks"] == tb["marks"]


def test_score_whole_timeline_through_the_render_queue(media_dir: Path, tmp_path: Path) -> None:
    rate = Fraction(24000, 1001)
    cut = build_cut(media_dir, rate)
    before = cut.resolve.snapshot()
    run = score_in_resolve(connect({"resolve": cut.resolve}), _settings(markers=True),
                           ResolveRunOptions(work_dir=tmp_path / "job"))
    start = START_FRAMES[rate]
    tl = cut.timeline
    # The music: new stereo track A2 'Score', at 01:00:00:00 (86400), 110 frames, our WAV.
    assert tl.GetTrackCount("audio") == 2
    assert (tl.GetTrackName("audio", 2), tl.GetTrackSubType("audio", 2)) == ("Score", "stereo")
    [item] = tl.GetItemListInTrack("audio", 2)
    assert (item.GetStart(), item.GetEnd(), item.GetDuration()) == (start, start + 110, 110)
    assert item.GetMediaPoolItem().GetClipProperty("File Path") == str(run.result.music_wav)
    samples, sr = read_wav(run.result.music_wav)
    assert sr == SAMPLE_RATE and len(samples) == 110 * 2002  # 2002 samples per 23.976 frame
    # Every scene clip came from the render queue with absolute, inclusive marks.
    videos = run.result.plan.videos()
    assert [(j["MarkIn"], j["MarkOut"]) for j in cut.resolve.rendered] == [
        (start + v.range.start, start + v.range.end - 1) for v in videos]
    # Resolve's render has the title in the picture (ffmpeg from the media would show black).
    title_video = next(v for v in videos if v.range.start == 20)
    assert set(read_codes(tmp_path / "job" / "clips" / f"{title_video.id}.mp4")) == {(-2, -2)}
    # One marker per scene start; frames 30 and 80 already hold the user's markers.
    scene_starts = [s.range.start for s in run.result.plan.scenes]
    assert scene_starts == [0, 20, 25, 30, 80]
    assert run.placement.markers_added == [0, 20, 25]
    assert {k: v["name"] for k, v in tl.GetMarkers().items()} == {
        0.0: "s001", 20.0: "s002", 25.0: "s003", 30.0: "Scene 2", 80.0: "Scene 3"}
    _unchanged_except_score(before, cut.resolve.snapshot())
    assert cut.resolve.unknown_calls == []  # no call outside the documented API
    lines = run.summary_lines()
    assert "scored 01:00:00:00-01:00:04:14 (110 frames, 4.59 s), 5 scene(s), rendered by resolve" in lines


def test_score_marks_with_ffmpeg_render(media_dir: Path, tmp_path: Path) -> None:
    rate = Fraction(25)
    cut = build_cut(media_dir, rate)
    run = score_in_resolve(connect({"resolve": cut.resolve}), _settings(),
                           ResolveRunOptions(use_marks=True, render="ffmpeg", work_dir=tmp_path / "job"))
    frames = MARK_OUT - MARK_IN + 1
    [item] = cut.timeline.GetItemListInTrack("audio", 2)
    assert (item.GetStart(), item.GetDuration()) == (START_FRAMES[rate] + MARK_IN, frames)
    assert len(read_wav(run.result.music_wav)[0]) == frames * SAMPLE_RATE // 25
    assert cut.resolve.rendered == []  # nothing went through the render queue
    assert run.result.plan.range.start == MARK_IN and run.result.plan.range.duration == frames


def test_cli_resolve_score(media_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reelscore.cli import app

    rate = Fraction(30000, 1001)
    cut = build_cut(media_dir, rate)
    monkeypatch.setattr("reelscore.resolve.connect.connect",
                        lambda *a, **k: connect({"resolve": cut.resolve}))
    result = CliRunner().invoke(app, [
        "resolve", "score", "--provider", "local", "--range", "marks", "--min-scene", "0.1",
        "--work-dir", str(tmp_path / "job"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    frames = MARK_OUT - MARK_IN + 1
    assert (data["track_index"], data["track_name"]) == (2, "Score")
    assert (data["record_frame"], data["duration_frames"]) == (108000 + MARK_IN, frames)
    [item] = cut.timeline.GetItemListInTrack("audio", 2)
    assert (item.GetStart(), item.GetDuration()) == (108000 + MARK_IN, frames)


def _refused(cut: Cut, tmp_path: Path, exc: type[Exception]) -> Exception:
    before = cut.resolve.snapshot()
    with pytest.raises(exc) as info:
        score_in_resolve(connect({"resolve": cut.resolve}), _settings(),
                         ResolveRunOptions(work_dir=tmp_path / "job"))
    assert cut.resolve.snapshot() == before, "the project changed"
    return info.value


def test_render_failure_places_nothing(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add("render_fails")
    err = _refused(cut, tmp_path, ResolveRenderError)
    assert "ended 'Failed'" in str(err)
    assert not list((tmp_path / "job" / "audio").glob("*.wav"))


def test_import_failure_after_scoring_leaves_the_project_as_it_was(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add("import_fails")
    err = _refused(cut, tmp_path, PlacementError)
    assert "MediaPool.ImportMedia" in str(err)
    assert list((tmp_path / "job" / "audio").glob("*.score.wav"))  # the music is kept on disk


def test_cli_without_resolve_explains_the_otio_route(monkeypatch: pytest.MonkeyPatch) -> None:
    from reelscore.cli import app
    from reelscore.resolve.connect import ScriptModule

    monkeypatch.setattr("reelscore.resolve.connect.find_script_module",
                        lambda **k: ScriptModule(None, "", ["import DaVinciResolveScript: no"]))
    result = CliRunner().invoke(app, ["resolve", "score", "--provider", "local"])
    assert result.exit_code == 8
    assert "cannot connect to DaVinci Resolve" in result.output
    assert "File > Export > Timeline" in result.output


@pytest.mark.parametrize(("fault", "message"), [
    ("no_project", "no project is open in DaVinci Resolve"),
    ("no_timeline", "project 'Feature' has no current timeline"),
])
def test_no_project_or_timeline_is_refused_before_anything_runs(
        media_dir: Path, tmp_path: Path, fault: str, message: str) -> None:
    from reelscore.resolve.api import ResolveCallError

    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add(fault)
    err = _refused(cut, tmp_path, ResolveCallError)
    assert str(err).startswith(message)
    assert not (tmp_path / "job").exists()


def test_menu_dialog_scores_with_the_default_runner(media_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole menu path: globals -> dialog -> Score -> pipeline -> placement -> summary."""
    from reelscore.resolve.dialog import run_in_resolve
    from tests.fake_resolve import StubBmd, StubFusion

    monkeypatch.setenv("HOME", str(tmp_path))  # the default job folder goes under ~/reelscore
    cut = build_cut(media_dir, Fraction(24000, 1001))
    bmd = StubBmd(cut.resolve)

    def click(win) -> None:
        win.GetItems()["Range"].CurrentIndex = 1  # in/out marks
        win.GetItems()["Render"].CurrentIndex = 1  # ffmpeg: quicker here
        win.fire("Score", "Clicked")

    original = StubBmd.UIDispatcher

    def dispatcher(self, ui):
        d = original(self, ui)
        d.script = [click, lambda win: win.fire("Close", "Clicked")]
        return d

    monkeypatch.setattr(StubBmd, "UIDispatcher", dispatcher)
    assert run_in_resolve({"resolve": cut.resolve, "fusion": StubFusion(), "bmd": bmd}) == 0
    win = bmd.dispatchers[0].windows[0]
    log = win.Find("Log").PlainText
    assert win.Find("Status").Text == "Done: the music is on its new track.", log
    frames = MARK_OUT - MARK_IN + 1
    assert f"music on audio track A2 'Score' at record frame {86400 + MARK_IN}, bin 'reelscore'" in log
    [item] = cut.timeline.GetItemListInTrack("audio", 2)
    assert (item.GetStart(), item.GetDuration()) == (86400 + MARK_IN, frames)
    assert list((tmp_path / "reelscore" / "resolve" / "Feature").glob("Cut_v3-*/manifest.json"))


def test_resolve_renders_the_clips_with_the_timelines_sound_when_asked(
        media_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`reelscore resolve score --use-audio-as-reference`: every render-queue job exports audio
    (AAC, 48 kHz) and every clip kept in the job carries it; without the flag, none does."""
    from reelscore.cli import app
    from reelscore.ffmpeg_cli import decode_audio, probe

    cut = build_cut(media_dir, Fraction(25))
    monkeypatch.setattr("reelscore.resolve.connect.connect",
                        lambda *a, **k: connect({"resolve": cut.resolve}))
    result = CliRunner().invoke(app, [
        "resolve", "score", "--provider", "local", "--range", "marks", "--min-scene", "0.1",
        "--use-audio-as-reference", "--work-dir", str(tmp_path / "job")])
    assert result.exit_code == 0, result.output
    jobs = cut.resolve.rendered
    assert jobs and all(j["IsExportAudio"] for j in jobs)
    assert {(j["AudioCodec"], j["AudioSampleRate"]) for j in jobs} == {("aac", 48000)}
    clips = sorted((tmp_path / "job" / "clips").glob("*.mp4"))
    assert len(clips) == len(jobs)
    for clip in clips:
        info = probe(clip)
        assert info.has_audio and info.sample_rate == 48000
        sound = decode_audio(clip)
        spectrum = np.abs(np.fft.rfft(sound[:, 0] * np.hanning(len(sound))))
        assert abs(np.argmax(spectrum) * 48000 / len(sound) - 440) < 30  # the fake's mix

    plain = build_cut(media_dir, Fraction(25))
    run = score_in_resolve(connect({"resolve": plain.resolve}), _settings(),
                           ResolveRunOptions(use_marks=True, work_dir=tmp_path / "plain"))
    assert run.result.plan.videos() and not any(j["IsExportAudio"] for j in plain.resolve.rendered)


def test_resolve_rendering_no_sound_when_asked_is_an_error(media_dir: Path,
                                                           tmp_path: Path) -> None:
    from reelscore.resolve.render_queue import ResolveRenderer

    cut = build_cut(media_dir, Fraction(25))
    session = connect({"resolve": cut.resolve})
    project = session.project()
    renderer = ResolveRenderer(session.ref(), project, session.timeline(project, "Cut v3"),
                               start_frame=cut.start, rate=cut.rate, poll_s=0.02)
    original = cut.resolve.project.AddRenderJob

    def silent_job() -> str:  # a preset that turns audio export off behind our back
        job = original()
        for j in cut.resolve.project.jobs:
            j.info["IsExportAudio"] = False
        return job

    cut.resolve.project.AddRenderJob = silent_job  # type: ignore[method-assign]
    with renderer, pytest.raises(ResolveRenderError) as err:
        renderer.render_range(cut.start + 10, 5, tmp_path / "x.mp4", width=64, height=36,
                              audio=True)
    assert "without sound" in str(err.value)
