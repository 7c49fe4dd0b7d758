"""``reelscore score --method compose`` end to end: the cut becomes a composition plan, the plan
goes to ``POST /v1/music`` (the contract server validates it strictly and answers a tone per
section, each exactly its ``duration_ms``) or to the offline engine, and the delivered WAV plays
each scene's own section on the scene's record range. The sources are offline on purpose:
compose mode renders nothing.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from reelscore.cli import app
from reelscore.wavfile import read_wav
from tests import contract_music
from tests.contract_fixtures import TEST_KEY, contract
from tests.contract_server import ContractServer, tone_of

__all__ = ["contract"]

RATE = 24
START = 86400  # 01:00:00:00
SCENES = (120, 96, 144)  # 5 s, 4 s, 6 s


def _edit(path: Path, frames: tuple[int, ...] = SCENES, name: str = "compose cut") -> Path:
    tl = otio.schema.Timeline(name=name)
    tl.global_start_time = otio.opentime.RationalTime(START, RATE)
    track = otio.schema.Track(name="V1")
    for i, n in enumerate(frames):
        ref = otio.schema.ExternalReference(
            target_url=str(path.parent / f"offline_{i}.mov"),
            available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, RATE),
                                                    otio.opentime.RationalTime(1000, RATE)))
        track.append(otio.schema.Clip(name=f"shot {i + 1}", media_reference=ref,
                                      source_range=otio.opentime.TimeRange(
                                          otio.opentime.RationalTime(0, RATE),
                                          otio.opentime.RationalTime(n, RATE))))
    tl.tracks.append(track)
    otio.adapters.write_to_file(tl, str(path))
    return path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _dominant(samples: np.ndarray, a: int, b: int) -> float:
    x = samples[a:b].mean(axis=1) if samples.ndim == 2 else samples[a:b]
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * 48000 / len(x))


def _scene_ranges() -> list[tuple[int, int]]:
    """Each scene's middle second, in samples of the delivered WAV (which starts at the cut's
    first frame)."""
    out, f = [], 0
    for n in SCENES:
        mid = Fraction(2 * f + n, 2 * RATE)
        out.append((int((mid - Fraction(1, 2)) * 48000), int((mid + Fraction(1, 2)) * 48000)))
        f += n
    return out


def _manifest(out: Path) -> dict:
    return json.loads((out.parent / f"{out.name}.reelscore" / "manifest.json").read_text())


def test_compose_through_the_contract_server(env: Path, contract: ContractServer) -> None:
    edit = _edit(env / "cut.otio")
    out = env / "scored.otio"
    code, text = _run("score", str(edit), "-o", str(out), "--method", "compose",
                      "--provider", "elevenlabs", "--base-url", contract.url,
                      "--description", "tense, dark strings", "--tag", "noir",
                      "--scenes", "cuts", "--min-scene", "0.5", "--seed", "11")
    assert code == 0, text
    sent = contract.state.requests_to("/v1/music")
    assert len(sent) == 1 and not contract.state.requests_to("/v1/music/video-to-music")
    body = sent[0].json
    errors, durations = contract_music.validate(body)
    assert errors == [] and sent[0].status == 200
    assert durations == [5000, 4000, 6000]
    assert body["model_id"] == "music_v2" and body["seed"] == 11
    assert set(body) == {"composition_plan", "model_id", "seed"}
    chunks = body["composition_plan"]["chunks"]
    assert [c["text"] for c in chunks] == ["[Scene 1]", "[Scene 2]", "[Scene 3]"]
    assert all({"tense", "dark strings", "noir", "instrumental"} <= set(c["positive_styles"])
               for c in chunks)
    # By samples: each scene's record range plays its own section's tone.
    manifest = _manifest(out)
    samples, sr = read_wav(Path(manifest["outputs"]["music_wav"]))
    assert sr == 48000 and len(samples) == sum(SCENES) * 2000
    for i, (a, b) in enumerate(_scene_ranges()):
        assert abs(_dominant(samples, a, b) - tone_of(i)) < 3, i
    # Verified, not trusted: the changes land on the two cuts.
    assert "music changes within 2 frames of 2 of 2 cuts" in text
    changes = manifest["music_changes"]
    assert changes["hits"] == 2
    assert [c["record_tc"] for c in changes["cuts"]] == ["01:00:05:00", "01:00:09:00"]
    assert all(abs(c["nearest_change_frames"]) <= 1 for c in changes["cuts"])
    song = manifest["requests"]["r01"]["response"]["metadata"]["song_id"]
    assert isinstance(song, str) and song
    assert (out.parent / f"{out.name}.reelscore" / "composition.json").is_file()
    # Resume: the same plan is not sent (or paid for) twice.
    code, text = _run("score", str(edit), "-o", str(out), "--force", "--method", "compose",
                      "--provider", "elevenlabs", "--base-url", contract.url,
                      "--description", "tense, dark strings", "--tag", "noir",
                      "--scenes", "cuts", "--min-scene", "0.5", "--seed", "11")
    assert code == 0, text
    assert len(contract.state.requests_to("/v1/music")) == 1


def test_compose_with_the_local_engine_changes_on_the_cuts(env: Path) -> None:
    edit = _edit(env / "cut.otio")
    out = env / "scored.otio"
    code, text = _run("score", str(edit), "-o", str(out), "--method", "compose",
                      "--provider", "local", "--model", "music_v1", "--scenes", "cuts",
                      "--min-scene", "0.5")
    assert code == 0, text
    manifest = _manifest(out)
    # The engine's sections are the plan's, to the sample (48 per millisecond).
    meta = manifest["requests"]["r01"]["response"]["metadata"]
    assert [s["length_samples"] for s in meta["sections"]] == [240000, 192000, 288000]
    # Measured, not assumed: the calm-to-lively change lands on the first cut. (The sketch's
    # lively-to-calm change measures weaker; the report says so rather than claiming it.)
    changes = manifest["music_changes"]
    assert changes["summary"] in text
    first = changes["cuts"][0]
    assert first["record_tc"] == "01:00:05:00" and abs(first["nearest_change_frames"]) <= 2
    assert changes["hits"] >= 1


def test_a_reviewed_plan_is_used_and_a_plan_for_another_edit_is_refused(
        env: Path, contract: ContractServer) -> None:
    edit = _edit(env / "cut.otio")
    plan = env / "plan.json"
    code, text = _run("plan", str(edit), "--composition", str(plan), "--scenes", "cuts",
                      "--min-scene", "0.5", "--model", "music_v1")
    assert code == 0, text
    doc = json.loads(plan.read_text())
    sections = doc["requests"][0]["composition_plan"]["sections"]
    assert [s["duration_ms"] for s in sections] == [5000, 4000, 6000]
    sections[1]["positive_local_styles"] = ["solo cello"]  # the reviewer's change
    plan.write_text(json.dumps(doc))
    flags = ["--method", "compose", "--provider", "elevenlabs", "--base-url", contract.url,
             "--scenes", "cuts", "--min-scene", "0.5", "--composition", str(plan)]
    code, text = _run("score", str(edit), "-o", str(env / "a.otio"), *flags)
    assert code == 0, text
    body = contract.state.requests_to("/v1/music")[0].json
    assert contract_music.validate(body)[0] == []
    assert body["model_id"] == "music_v1" and body["respect_sections_durations"] is True
    assert body["composition_plan"]["sections"][1]["positive_local_styles"] == ["solo cello"]

    # Another edit (the second scene re-cut): refused before any request, naming the change.
    other = _edit(env / "recut.otio", (120, 72, 168))
    code, text = _run("score", str(other), "-o", str(env / "b.otio"), *flags)
    assert code != 0
    assert "no longer matches the edit" in text and "01:00:08:00" in text
    # A boundary moved off its cut in the file: refused too.
    sections[0]["duration_ms"], sections[1]["duration_ms"] = 5500, 3500
    plan.write_text(json.dumps(doc))
    code, text = _run("score", str(edit), "-o", str(env / "c.otio"), *flags)
    assert code != 0 and "starts on no cut" in text
    assert len(contract.state.requests_to("/v1/music")) == 1


def test_the_contract_server_refuses_a_wrong_plan_shape() -> None:
    errors, _ = contract_music.validate({"model_id": "music_v1", "composition_plan": {
        "chunks": [{"text": "[a]", "duration_ms": 3000, "positive_styles": []}]}})
    assert errors and "MusicPrompt" in errors[0]["msg"]
    errors, _ = contract_music.validate({"model_id": "music_v2", "bogus": 1, "composition_plan": {
        "chunks": [{"text": "[a]", "duration_ms": 2999, "positive_styles": []}]}})
    assert {e["type"] for e in errors} >= {"extra_forbidden", "value_error"}


def test_a_provider_that_cannot_compose_says_so() -> None:
    from reelscore.errors import UnsupportedError
    from reelscore.musicplan import CompositionPlan, GenerationChunk
    from reelscore.providers import ProviderDefaults
    from reelscore.providers.base import ComposeRequest, GenerationSettings

    class NoCompose(ProviderDefaults):
        name = "demo"

    req = ComposeRequest(request_id="r01", model_id="music_v2", settings=GenerationSettings(),
                         composition_plan=CompositionPlan(chunks=[GenerationChunk(
                             text="[a]", duration_ms=3000, positive_styles=[])]))
    with pytest.raises(UnsupportedError, match="demo provider cannot compose") as info:
        NoCompose().compose(req, Path(os.devnull))
    assert "--method video" in (info.value.hint or "")


def test_a_brief_names_and_styles_a_scene(env: Path, contract: ContractServer) -> None:
    edit = _edit(env / "cut.otio")
    brief = env / "brief.csv"
    brief.write_text("scene,name,styles\n01:00:05:00,Chase,driving; brass\n")
    code, text = _run("score", str(edit), "-o", str(env / "b.otio"), "--method", "compose",
                      "--provider", "elevenlabs", "--base-url", contract.url, "--scenes", "cuts",
                      "--min-scene", "0.5", "--brief", str(brief))
    assert code == 0, text
    chunk = contract.state.requests_to("/v1/music")[0].json["composition_plan"]["chunks"][1]
    assert chunk["text"] == "[Chase]" and {"driving", "brass"} <= set(chunk["positive_styles"])
    empty = env / "empty.csv"
    empty.write_text("scene,name\n")
    code, text = _run("score", str(edit), "-o", str(env / "c.otio"), "--method", "compose",
                      "--provider", "elevenlabs", "--base-url", contract.url, "--scenes", "cuts",
                      "--min-scene", "0.5", "--brief", str(empty))
    assert code != 0 and "the brief has no scenes" in text
    assert len(contract.state.requests_to("/v1/music")) == 1


def test_the_otio_hook_composes_with_method_compose(env: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OTIO_PLUGIN_MANIFEST_PATH", "OTIO_DISABLE_ENTRYPOINTS_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    otio.plugins.ActiveManifest(force_reload=True)
    try:
        tl = otio.adapters.read_from_file(str(_edit(env / "cut.otio")))
        out = env / "hooked.otio"
        otio.adapters.write_to_file(tl, str(out), hook_function_argument_map={
            "reelscore.provider": "local", "reelscore.method": "compose",
            "reelscore.scenes": "cuts", "reelscore.min_scene": 0.5,
            "reelscore.work_dir": str(env / "job")})
    finally:
        otio.plugins.ActiveManifest(force_reload=True)
    manifest = json.loads((env / "job" / "manifest.json").read_text())
    assert manifest["settings"]["method"] == "compose"
    assert manifest["composition"]["requests"][0]["sections"] == 3
    assert not manifest.get("renders")  # nothing rendered: the sources are offline
    back = otio.adapters.read_from_file(str(out))
    assert [t.name for t in back.tracks] == ["V1", "Score"]


def test_the_video_route_reports_its_music_changes_too(env: Path) -> None:
    from tests.contract_fixtures import make_clip

    edit = _edit(env / "cut.otio")
    for i in range(len(SCENES)):  # the sources the edit names, now online
        make_clip(env / f"offline_{i}.mov", 1000 / RATE)
    out = env / "video.otio"
    code, text = _run("score", str(edit), "-o", str(out), "--provider", "local",
                      "--scenes", "cuts", "--min-scene", "0.5", "--seed", "3")
    assert code == 0, text
    changes = _manifest(out)["music_changes"]
    assert changes["summary"] in text and changes["summary"].endswith("of 2 cuts")
    assert [c["record_tc"] for c in changes["cuts"]] == ["01:00:05:00", "01:00:09:00"]


def test_a_refused_plan_leaves_its_suggestion_for_review(env: Path,
                                                         contract: ContractServer) -> None:
    from tests.contract_server import Fault

    edit = _edit(env / "cut.otio")
    contract.state.add(Fault("bad_plan", path="/v1/music", body=["Zimmer"]))
    flags = ["--method", "compose", "--provider", "elevenlabs", "--base-url", contract.url,
             "--scenes", "cuts", "--min-scene", "0.5"]
    code, text = _run("score", str(edit), "-o", str(env / "a.otio"), *flags,
                      "--description", "like Hans Zimmer, strings")
    job = env / "a.otio.reelscore"
    suggested = job / "composition.suggested.json"
    assert code != 0 and "request r01" in text and "bad_composition_plan" in text
    assert "review it and pass --composition" in text and str(suggested) in " ".join(text.split())
    assert contract.state.charges == 0 and not (env / "a.otio").exists()
    doc = json.loads(suggested.read_text())
    styles = [c["positive_styles"] for c in doc["requests"][0]["composition_plan"]["chunks"]]
    assert all("strings" in s and not any("Zimmer" in x for x in s) for s in styles)
    assert _manifest(env / "a.otio")["composition_suggested"] == {
        "request": "r01", "file": "composition.suggested.json"}
    # The reviewed suggestion goes through as it is (checked against the edit first).
    code, text = _run("score", str(edit), "-o", str(env / "b.otio"), *flags,
                      "--composition", str(suggested))
    assert code == 0, text
    sent = contract.state.requests_to("/v1/music")[-1].json
    assert sent["composition_plan"] == doc["requests"][0]["composition_plan"]
