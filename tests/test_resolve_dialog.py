"""The menu script's dialog against a stub UIManager: its fields and defaults, what it reads back,
progress and summary on Score, errors kept in the window, and the launcher's in-process path."""

from __future__ import annotations

import importlib.util
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from reelscore.errors import InputError, ProviderError
from reelscore.resolve.connect import connect
from reelscore.resolve.dialog import (
    RANGES,
    RENDERS,
    DialogValues,
    build_dialog,
    read_values,
    run_dialog,
    run_in_resolve,
)
from reelscore.resolve.install import (
    Environment,
    current_environment,
    render_launcher,
    template_text,
)
from tests.fake_resolve import FakeResolve, StubBmd, StubDispatcher, StubFusion, StubUIManager

FIELDS = {"ReelscoreWindow", "Header", "Scenes", "Description", "Tags", "Provider", "BaseUrl",
          "LoudnessPreset", "Loudness", "Range", "Render", "Markers", "Status", "Log", "Score",
          "Close",
          "Method", "Composition", "Brief", "DraftPlan",
          "Duck", "DuckDepth", "DialogueTracks"}  # --method compose (issue 13), --duck (15)
FIELDS |= {"HearSound"}  # --use-audio-as-reference


def _session() -> Any:
    fake = FakeResolve()
    fake.project.add_timeline("Cut v3", Fraction(24000, 1001))
    return connect({"resolve": fake})


def test_dialog_fields_and_defaults() -> None:
    ui = StubUIManager()
    disp = StubDispatcher(ui)
    win = build_dialog(ui, disp, header="timeline 'Cut v3'")
    items = win.GetItems()
    assert set(items) == FIELDS
    assert items["Scenes"].items == ["cuts", "markers", "clips"]
    assert items["Provider"].items == ["local", "elevenlabs", "mountsea"]
    assert items["Range"].items == list(RANGES) and items["Render"].items == list(RENDERS)
    assert read_values(win) == DialogValues()
    assert items["Loudness"].Value == -14
    assert win.props["ID"] == "ReelscoreWindow"


def test_values_read_back() -> None:
    ui = StubUIManager()
    win = build_dialog(ui, StubDispatcher(ui), header="h")
    items = win.GetItems()
    items["Scenes"].CurrentIndex = 1
    items["Description"].PlainText = "  slow strings, rising  "
    items["Tags"].Text = "strings, cinematic,, tense "
    items["Provider"].CurrentIndex = 1
    items["Loudness"].Value = -16
    items["Range"].CurrentIndex = 1
    items["Render"].CurrentIndex = 1
    items["Markers"].Checked = True
    assert read_values(win) == DialogValues(
        scenes="markers", description="slow strings, rising", tags=("strings", "cinematic", "tense"),
        provider="elevenlabs", target_lufs=-16.0, use_marks=True, render="ffmpeg", markers=True)
    items["Tags"].Text = ",".join(f"t{i}" for i in range(11))
    with pytest.raises(InputError, match="11 tags"):
        read_values(win)


def _script(disp: StubDispatcher, *steps) -> None:
    disp.script = list(steps)


def test_score_click_shows_progress_and_summary() -> None:
    session = _session()
    ui = StubUIManager()
    disp = StubDispatcher(ui)
    seen: dict[str, Any] = {}
    statuses: list[str] = []

    def runner(s, values, progress) -> list[str]:
        seen["values"], seen["session"] = values, s
        seen["enabled_during_run"] = progress.items["Score"].Enabled
        progress.stage("render", 120)
        progress.advance("render", 48)
        statuses.append(progress.items["Status"].Text)
        progress.note("r01: reusing the stored response")
        return ["music on audio track A2 'Score' at record frame 86400"]

    def click(win) -> None:
        win.GetItems()["Tags"].Text = "noir"
        win.fire("Score", "Clicked")

    _script(disp, click, lambda win: win.fire("Close", "Clicked"))
    win = run_dialog(session, ui, disp, runner=runner)
    items = win.GetItems()
    assert "timeline 'Cut v3'" in items["Header"].Text and "23.976 fps" in items["Header"].Text
    assert "01:00:00:00" in items["Header"].Text
    assert seen["values"].tags == ("noir",) and seen["session"] is session
    assert seen["enabled_during_run"] is False and items["Score"].Enabled is True
    assert statuses == ["render: 48/120 frames"]
    assert items["Status"].Text == "Done: the music is on its new track."
    log = items["Log"].PlainText.splitlines()
    assert log[1:] == ["r01: reusing the stored response",
                       "music on audio track A2 'Score' at record frame 86400"]
    assert disp.exited and not win.shown


def test_errors_stay_in_the_window() -> None:
    ui = StubUIManager()
    disp = StubDispatcher(ui)

    def runner(s, values, progress) -> list[str]:
        raise ProviderError("the service refused the request", hint="check your plan")

    _script(disp, lambda win: win.fire("Score", "Clicked"), lambda win: win.fire("ReelscoreWindow", "Close"))
    win = run_dialog(_session(), ui, disp, runner=runner)
    items = win.GetItems()
    assert items["Status"].Text == "Stopped: the service refused the request"
    assert "error: the service refused the request\n  hint: check your plan" in items["Log"].PlainText
    assert items["Score"].Enabled is True and disp.exited


def test_no_project_opens_an_error_window_instead() -> None:
    fake = FakeResolve()
    fake.faults.add("no_project")
    bmd = StubBmd(fake)
    code = run_in_resolve({"resolve": fake, "fusion": StubFusion(), "bmd": bmd})
    assert code == 8
    [disp] = bmd.dispatchers
    assert [w.props["ID"] for w in disp.windows] == ["ReelscoreError"]
    assert "no project is open" in disp.windows[0].Find("Text").PlainText


def test_menu_script_launcher_runs_the_dialog_in_process() -> None:
    """The installed launcher, loaded like Resolve loads it, imports reelscore and opens the
    dialog with the globals Resolve provides (stub UIManager)."""
    env = current_environment()
    text = render_launcher(template_text(), Environment(env.python, env.version_info, env.site_dirs, env.paths))
    fake = FakeResolve()
    fake.project.add_timeline("Cut v3", Fraction(25))
    bmd = StubBmd(fake)
    ns: dict[str, Any] = {"__name__": "reelscore_launcher_under_test", "resolve": fake,
                          "fusion": StubFusion(), "bmd": bmd}
    exec(compile(text, "Score with reelscore.py", "exec"), ns)  # defines main(), runs nothing
    assert bmd.dispatchers == []
    ns["main"](ns)  # the stub RunLoop has no script: the window opens and the loop returns
    [disp] = bmd.dispatchers
    [win] = disp.windows
    assert set(win.GetItems()) == FIELDS
    assert "timeline 'Cut v3'" in win.Find("Header").Text and "25 fps" in win.Find("Header").Text


def test_launcher_file_imports_without_running() -> None:
    path = Path(__file__).resolve().parents[1] / "resolve_scripts" / "score_with_reelscore.py"
    spec = importlib.util.spec_from_file_location("reelscore_launcher_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.REELSCORE_PYTHON == "" and callable(module.main)
    assert "reelscore_launcher_under_test" not in sys.modules


def test_the_sound_checkbox_reaches_the_settings() -> None:
    from reelscore.config import load_config
    from reelscore.resolve.dialog import built_settings

    ui = StubUIManager()
    win = build_dialog(ui, StubDispatcher(ui), header="h")
    assert win.GetItems()["HearSound"].Checked is False
    win.GetItems()["HearSound"].Checked = True
    values = read_values(win)
    assert values.use_audio_as_reference is True
    built = built_settings(values, load_config())
    assert built.settings.generation.use_audio_as_reference is True
    assert built_settings(DialogValues(), load_config()).settings.generation \
        .use_audio_as_reference is None
