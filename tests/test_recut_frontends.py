"""Updating a score for a new cut from the other front ends: the OTIO hook (``previous``),
``reelscore resolve score --previous OLD_JOB`` and the Resolve dialog's "update the score from
the previous version" (offered when the timeline carries a reelscore score), against the fake
Resolve with the offline engine."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from reelscore.pipeline import ScoreSettings
from reelscore.resolve.connect import connect
from reelscore.resolve.dialog import run_dialog
from reelscore.resolve.previous import previous_score_job
from reelscore.resolve.workflow import ResolveRunOptions, score_in_resolve
from reelscore.wavfile import read_wav
from tests.edits import build_timeline
from tests.fake_resolve import START_FRAMES, StubDispatcher, StubUIManager, build_cut
from tests.test_recut_generate import CASES, check_update
from tests.test_recut_route import COMMON, START, A, B, C, R, cli, manifest, write_cut
from tests.test_recut_route import sources as sources


def test_hook_previous_updates_the_score(tmp_path, sources) -> None:
    old = write_cut(tmp_path / "v1.otio", sources, [A, B, C])
    first = tmp_path / "v1_scored.otio"
    code, text = cli("score", str(old), "-o", str(first), *COMMON)
    assert code == 0, text
    items = [("clip", sources[n][0], sources[n][1], i, f) for n, i, f in CASES["insert"][0]]
    out = tmp_path / "insert_scored.otio"
    otio.adapters.write_to_file(
        build_timeline([items], R, start_frame=START), str(out), hook_function_argument_map={
            "reelscore.provider": "local", "reelscore.scenes": "cuts",
            "reelscore.min_scene": "0.5", "reelscore.seed": "5",
            "reelscore.previous": str(first), "reelscore.regenerate_trimmed": "false"})
    m = manifest(tmp_path / "insert_scored.otio.reelscore")
    assert m["settings"]["previous"] == str(first)
    check_update(tmp_path / "v1_scored.otio.reelscore", out, m, "insert")


# ------------------------------------------------------------------------------------ Resolve

RATE = Fraction(25)


@pytest.fixture()
def scored_cut(media_cache: Path, tmp_path: Path):
    """The fake Resolve cut scored once (ffmpeg route), then B cut into the gap at 70-80."""
    cut = build_cut(media_cache / "resolve", RATE, marks=False)
    first = score_in_resolve(connect({"resolve": cut.resolve}),
                             ScoreSettings(provider="local", min_scene_seconds=0.1),
                             ResolveRunOptions(work_dir=tmp_path / "job1", render="ffmpeg"))
    b = next(i for i in cut.resolve.project.media_pool.root.clips if i.path == cut.media_b)
    cut.timeline.put("video", 1, b, 70, 80, 10)  # the new version: a shot where black was
    return cut, first


def _check_resolve_update(cut, job1: Path, job: Path, track: int) -> None:
    m = manifest(job)
    assert m["recut"]["previous_job_id"] == manifest(job1)["job_id"]
    generated = [(g["new_start"], g["new_end"]) for g in m["recut"]["generated"]]
    assert generated == [(70, 80)]  # only the new shot is generated
    assert list(m["requests"]) == m["recut"]["requests"] and m["recut"]["requests"]
    # its music lands on a new track at the timeline's first frame, the old track untouched
    [item] = cut.timeline.GetItemListInTrack("audio", track)
    start = START_FRAMES[RATE]
    assert (item.GetStart(), item.GetDuration()) == (start, 110)
    assert item.GetMediaPoolItem().GetClipProperty("File Path") == m["outputs"]["music_wav"]
    old = read_wav(Path(manifest(job1)["outputs"]["music_wav"]))[0]
    new = read_wav(Path(m["outputs"]["music_wav"]))[0]
    gain = np.float32(10 ** (m["loudness"]["recut_gain_db"] / 20))
    spf = 48000 // 25
    assert np.max(np.abs(new[:50 * spf] - old[:50 * spf] * gain)) < 1e-6  # kept, far from 70


def test_resolve_cli_previous(scored_cut, tmp_path, monkeypatch) -> None:
    from reelscore.cli import app

    cut, _ = scored_cut
    monkeypatch.setattr("reelscore.resolve.connect.connect",
                        lambda *a, **k: connect({"resolve": cut.resolve}))
    result = CliRunner().invoke(app, [
        "resolve", "score", "--provider", "local", "--render", "ffmpeg", "--min-scene", "0.1",
        "--previous", str(tmp_path / "job1"), "--work-dir", str(tmp_path / "job2"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data["track_index"] == 3 and data["kept_seconds"] > 0
    _check_resolve_update(cut, tmp_path / "job1", tmp_path / "job2", 3)


def test_dialog_offers_the_update_when_the_timeline_has_a_score(scored_cut, tmp_path,
                                                                monkeypatch) -> None:
    cut, _ = scored_cut
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the dialog's job folders go there
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    # the dialog leaves scene length to the configuration: the first score's, so the new shot is
    # a scene of its own (one scene keeps one stretch of old music)
    (tmp_path / "config" / "reelscore").mkdir(parents=True)
    (tmp_path / "config" / "reelscore" / "config.toml").write_text("min_scene = 0.1\n")
    monkeypatch.chdir(tmp_path)
    session = connect({"resolve": cut.resolve})
    assert previous_score_job(session.timeline(session.project())) == tmp_path / "job1"

    ui = StubUIManager()
    disp = StubDispatcher(ui)

    def tick_and_score(win) -> None:
        items = win.GetItems()
        assert items["PreviousJob"].Text == str(tmp_path / "job1")
        items["UpdatePrevious"].Checked = True
        items["Render"].CurrentIndex = 1  # ffmpeg from the media
        win.fire("Score", "Clicked")

    disp.script = [tick_and_score, lambda win: win.fire("Close", "Clicked")]
    win = run_dialog(session, ui, disp)
    items = win.GetItems()
    assert items["Status"].Text == "Done: the music is on its new track.", \
        items["Log"].PlainText
    [job] = [p.parent for p in (tmp_path / "home" / "reelscore").rglob("manifest.json")]
    _check_resolve_update(cut, tmp_path / "job1", job, 3)

    # a timeline without a reelscore score: no update offered
    fresh = build_cut(tmp_path / "media2", RATE, marks=False)
    ui = StubUIManager()
    disp = StubDispatcher(ui)
    disp.script = [lambda win: win.fire("Close", "Clicked")]
    win = run_dialog(connect({"resolve": fresh.resolve}), ui, disp)
    assert "UpdatePrevious" not in win.GetItems()
