"""The Resolve dialog's compose fields (method, composition plan file, brief file, draft plan)
against the fake Resolve and a stub UIManager: they open at the configuration's values, read
back into the one settings builder, and a Score click composes through the contract server with
the drafted styles."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from reelscore.config import load_config
from reelscore.resolve.dialog import (
    DialogValues,
    build_dialog,
    built_settings,
    dialog_defaults,
    read_values,
    run_in_resolve,
)
from tests.contract_fixtures import TEST_KEY, contract
from tests.contract_server import ContractServer
from tests.fake_resolve import StubBmd, StubDispatcher, StubFusion, StubUIManager, build_cut

__all__ = ["contract"]


def test_compose_fields_open_at_the_config_and_read_back(tmp_path: Path) -> None:
    config = tmp_path / "reelscore.toml"
    config.write_text('method = "compose"\ndraft_plan = true\n')
    loaded = load_config(config, None)
    start = dialog_defaults(loaded)
    assert (start.method, start.draft_plan) == ("compose", True)
    ui = StubUIManager()
    win = build_dialog(ui, StubDispatcher(ui), header="h", defaults=start)
    items = win.GetItems()
    assert items["Method"].items == ["video", "compose"] and items["Method"].CurrentText == "compose"
    assert items["DraftPlan"].Checked is True
    items["Composition"].Text = "  "
    items["Brief"].Text = str(tmp_path / "brief.csv")
    items["DraftPlan"].Checked = False
    values = read_values(win)
    assert values == DialogValues(method="compose", brief=str(tmp_path / "brief.csv"))
    settings = built_settings(values, loaded).settings
    assert settings.method == "compose" and settings.draft_plan is False
    assert settings.brief == tmp_path / "brief.csv" and settings.composition is None
    items["Composition"].Text = str(tmp_path / "plan.json")
    items["Method"].CurrentIndex = 0
    settings = built_settings(read_values(win), loaded).settings
    assert settings.composition == tmp_path / "plan.json" and settings.method == "video"


def test_score_click_composes_with_a_drafted_plan(tmp_path: Path, media_cache: Path,
                                                  contract: ContractServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "x"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("REELSCORE_CONFIG", raising=False)
    monkeypatch.delenv("REELSCORE_PROFILE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reelscore.toml").write_text('min_scene = 0.5\n')
    cut = build_cut(media_cache / "resolve", Fraction(25))
    bmd = StubBmd(cut.resolve)

    def click(win: Any) -> None:
        items = win.GetItems()
        items["Provider"].CurrentIndex = 1  # elevenlabs
        items["BaseUrl"].Text = contract.url
        items["Render"].CurrentIndex = 1  # ffmpeg
        items["Method"].CurrentIndex = 1  # compose
        items["DraftPlan"].Checked = True
        win.fire("Score", "Clicked")

    original = StubBmd.UIDispatcher

    def dispatcher(self: StubBmd, ui: Any) -> StubDispatcher:
        d = original(self, ui)
        d.script = [click, lambda win: win.fire("Close", "Clicked")]
        return d

    monkeypatch.setattr(StubBmd, "UIDispatcher", dispatcher)
    assert run_in_resolve({"resolve": cut.resolve, "fusion": StubFusion(), "bmd": bmd}) == 0
    win = bmd.dispatchers[0].windows[0]
    assert win.Find("Status").Text == "Done: the music is on its new track.", win.Find("Log").PlainText
    assert len(contract.state.requests_to("/v1/music/plan")) == 1
    [sent] = contract.state.requests_to("/v1/music")
    assert all("drafted 1" in c["positive_styles"] for c in sent.json["composition_plan"]["chunks"])
    [manifest] = (tmp_path / "reelscore" / "resolve").rglob("manifest.json")
    doc = json.loads(manifest.read_text())
    assert doc["settings"]["method"] == "compose" and doc["settings"]["draft_plan"] is True
    assert doc["composition"]["drafted"]["requests"] == 1
