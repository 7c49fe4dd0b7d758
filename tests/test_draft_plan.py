"""``--draft-plan`` through every front end, against the contract server's free plan endpoints.

The contract server drafts one section per started 7 s with styles "drafted N" (and "not N"), so a
15 s cut of 5 / 4 / 6 s gets a draft of two 7.5 s sections: by time overlap the first scene and the
second (2.5 s of it under draft 1, 1.5 s under draft 2) take draft 1, the third takes draft 2;
the names and the durations sent are still the cut's. Nothing here renders: the sources are
offline on purpose.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from reelscore.cli import app
from reelscore.draft import apply_draft
from reelscore.musicplan import CompositionPlan, GenerationChunk, MusicPrompt, SongSection
from reelscore.resolve.connect import connect
from tests import contract_music
from tests.contract_fixtures import MOUNTSEA_KEY, TEST_KEY, contract
from tests.contract_server import ContractServer
from tests.fake_resolve import build_cut
from tests.test_compose_route import _edit

__all__ = ["contract"]

COMPOSE = ["--method", "compose", "--scenes", "cuts", "--min-scene", "0.5"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    monkeypatch.setenv("REELSCORE_MOUNTSEA_KEY", MOUNTSEA_KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _job(out: Path) -> Path:
    return out.parent / f"{out.name}.reelscore"


def test_score_drafts_the_styles_and_keeps_the_cut(env: Path, contract: ContractServer) -> None:
    edit = _edit(env / "cut.otio")
    out = env / "scored.otio"
    flags = ["score", str(edit), "-o", str(out), *COMPOSE, "--provider", "elevenlabs",
             "--base-url", contract.url, "--description", "tense, dark strings", "--draft-plan"]
    code, text = _run(*flags)
    assert code == 0, text
    [asked] = contract.state.requests_to("/v1/music/plan")
    assert asked.json["music_length_ms"] == 15000 and asked.json["model_id"] == "music_v2"
    prompt = asked.json["prompt"]
    assert "tense, dark strings" in prompt and "Scene 2 at 01:00:05:00, 4 s" in prompt
    source = asked.json["source_composition_plan"]["chunks"]  # the cut's plan to start from
    assert [c["duration_ms"] for c in source] == [5000, 4000, 6000]
    [sent] = contract.state.requests_to("/v1/music")
    errors, durations = contract_music.validate(sent.json)
    assert errors == [] and durations == [5000, 4000, 6000]  # the cut's, not the draft's 7.5 s
    chunks = sent.json["composition_plan"]["chunks"]
    assert [c["text"] for c in chunks] == ["[Scene 1]", "[Scene 2]", "[Scene 3]"]
    assert [c["positive_styles"] for c in chunks] == [
        ["drafted 1", "instrumental"], ["drafted 1", "instrumental"], ["drafted 2", "instrumental"]]
    assert [c["negative_styles"] for c in chunks] == [["not 1"], ["not 1"], ["not 2"]]
    manifest = json.loads((_job(out) / "manifest.json").read_text())
    assert manifest["composition"]["drafted"] == {"file": "composition.drafted.json",
                                                  "provider": "elevenlabs", "requests": 1,
                                                  "reused": 0}
    stored = json.loads((_job(out) / "composition.drafted.json").read_text())
    assert stored["requests"][0]["prompt"] == prompt
    assert len(stored["requests"][0]["draft"]["chunks"]) == 2
    # Same cut, same brief: the stored draft is reused, so the plan (and its key) is unchanged
    # and the finished request is neither redrafted nor composed (and paid for) again.
    code, text = _run(*flags, "--force")
    assert code == 0, text
    assert len(contract.state.requests_to("/v1/music/plan")) == 1
    assert len(contract.state.requests_to("/v1/music")) == 1
    assert "reusing 1 drafted plan(s)" in text


def test_batch_drafts_with_draft_plan(env: Path, contract: ContractServer) -> None:
    """``reelscore batch --method compose --draft-plan``: each edit's styles drafted by the
    free plan endpoint, the cut's names and durations composed."""
    edit = _edit(env / "cut.otio")
    code, text = _run("batch", str(edit), "-o", str(env / "out"), *COMPOSE,
                      "--provider", "elevenlabs", "--base-url", contract.url,
                      "--description", "tense, dark strings", "--draft-plan")
    assert code == 0, text
    assert len(contract.state.requests_to("/v1/music/plan")) == 1
    [sent] = contract.state.requests_to("/v1/music")
    chunks = sent.json["composition_plan"]["chunks"]
    assert [c["duration_ms"] for c in chunks] == [5000, 4000, 6000]
    assert [c["positive_styles"][0] for c in chunks] == ["drafted 1", "drafted 1", "drafted 2"]
    [manifest] = (env / "out").glob("*/manifest.json")
    assert json.loads(manifest.read_text())["composition"]["drafted"]["requests"] == 1


def test_draft_plan_is_refused_where_it_cannot_apply(env: Path, contract: ContractServer) -> None:
    edit = _edit(env / "cut.otio")
    code, text = _run("score", str(edit), "-o", str(env / "a.otio"), *COMPOSE,
                      "--provider", "local", "--draft-plan")
    assert code != 0 and "--draft-plan" in text and "local provider has none" in text
    assert not (env / "a.otio").exists() and not (env / "a.otio.reelscore" / "raw").exists()
    code, text = _run("score", str(edit), "-o", str(env / "b.otio"), "--provider", "elevenlabs",
                      "--base-url", contract.url, "--draft-plan")
    assert code != 0 and "only --method compose" in text
    assert not (env / "b.otio.reelscore").exists()  # refused before the job folder
    assert contract.state.log == []


def test_plan_writes_a_draft_through_the_proxy_for_review(env: Path,
                                                          contract: ContractServer) -> None:
    edit = _edit(env / "cut.otio")
    plan = env / "drafted.json"
    code, text = _run("plan", str(edit), "--composition", str(plan), "--draft-plan",
                      "--scenes", "cuts", "--min-scene", "0.5", "--provider", "mountsea",
                      "--base-url", contract.url)
    assert code == 0, text
    [asked] = contract.state.requests_to("/eleven/plan")
    assert asked.json["musicLengthMs"] == 15000 and asked.json["model"] == "music_v1"
    assert asked.headers["authorization"] == f"Bearer {MOUNTSEA_KEY}"
    doc = json.loads(plan.read_text())
    chunks = doc["requests"][0]["composition_plan"]["chunks"]
    assert [c["duration_ms"] for c in chunks] == [5000, 4000, 6000]
    # The proxy drafts v1 plans: the global style leads every v2 chunk's styles.
    assert [c["positive_styles"] for c in chunks] == [
        ["drafted global", "drafted 1", "instrumental"],
        ["drafted global", "drafted 1", "instrumental"],
        ["drafted global", "drafted 2", "instrumental"]]
    # The reviewed draft is a plan `score --composition` takes as it is.
    code, text = _run("score", str(edit), "-o", str(env / "r.otio"), *COMPOSE,
                      "--provider", "elevenlabs", "--base-url", contract.url,
                      "--composition", str(plan))
    assert code == 0, text
    sent = contract.state.requests_to("/v1/music")[0].json
    assert sent["composition_plan"]["chunks"] == chunks
    code, text = _run("plan", str(edit), "--draft-plan", "--provider", "mountsea")
    assert code != 0 and "--composition FILE" in text


def test_the_hook_drafts_with_draft_plan(env: Path, contract: ContractServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OTIO_PLUGIN_MANIFEST_PATH", "OTIO_DISABLE_ENTRYPOINTS_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    otio.plugins.ActiveManifest(force_reload=True)
    try:
        tl = otio.adapters.read_from_file(str(_edit(env / "cut.otio")))
        otio.adapters.write_to_file(tl, str(env / "hooked.otio"), hook_function_argument_map={
            "reelscore.provider": "elevenlabs", "reelscore.base_url": contract.url,
            "reelscore.method": "compose", "reelscore.draft_plan": "true",
            "reelscore.scenes": "cuts", "reelscore.min_scene": 0.5,
            "reelscore.work_dir": str(env / "job")})
    finally:
        otio.plugins.ActiveManifest(force_reload=True)
    assert len(contract.state.requests_to("/v1/music/plan")) == 1
    manifest = json.loads((env / "job" / "manifest.json").read_text())
    assert manifest["settings"]["draft_plan"] is True
    assert manifest["composition"]["drafted"]["requests"] == 1
    chunk = contract.state.requests_to("/v1/music")[0].json["composition_plan"]["chunks"][2]
    assert chunk["positive_styles"][0] == "drafted 2"


def test_resolve_score_drafts_with_draft_plan(env: Path, media_cache: Path,
                                              contract: ContractServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cut = build_cut(media_cache / "resolve", Fraction(25))
    monkeypatch.setattr("reelscore.resolve.connect.connect",
                        lambda *a, **k: connect({"resolve": cut.resolve}))
    result = CliRunner().invoke(app, [
        "resolve", "score", "--render", "ffmpeg", "--work-dir", str(env / "job"), "--json",
        "--provider", "elevenlabs", "--base-url", contract.url, "--method", "compose",
        "--draft-plan", "--scenes", "cuts", "--min-scene", "0.5", "--markers"])
    assert result.exit_code == 0, result.output
    # Composing, the markers are the plan's sections (one 4.4 s section), not the three scenes.
    assert json.loads(result.stdout[result.stdout.index("{"):])["markers"] == 1
    [asked] = contract.state.requests_to("/v1/music/plan")
    sent = contract.state.requests_to("/v1/music")[0].json
    total = sum(c["duration_ms"] for c in sent["composition_plan"]["chunks"])
    assert asked.json["music_length_ms"] == total
    assert all("drafted 1" in c["positive_styles"] for c in sent["composition_plan"]["chunks"])


def test_more_drafted_sections_than_the_cut_has() -> None:
    """Counts differ the other way: each cut section takes its largest overlap; a drafted section
    that is nobody's largest overlap is dropped; a v1 cut plan gets the draft's globals."""
    built = MusicPrompt(positive_global_styles=["instrumental"], negative_global_styles=[],
                        sections=[SongSection(section_name=n, positive_local_styles=["own"],
                                              negative_local_styles=[], duration_ms=d, lines=[])
                                  for n, d in (("A", 10000), ("B", 20000))])
    draft = CompositionPlan(chunks=[GenerationChunk(text=f"[{i}]", duration_ms=d,
                                                    positive_styles=[f"d{i}"])
                                    for i, d in enumerate((4000, 4000, 2000, 20000))])
    got = apply_draft(built, draft)
    assert isinstance(got, MusicPrompt)
    assert [(s.section_name, s.duration_ms, s.positive_local_styles) for s in got.sections] == [
        ("A", 10000, ["d0"]), ("B", 20000, ["d3"])]
    assert got.positive_global_styles == ["instrumental"]
