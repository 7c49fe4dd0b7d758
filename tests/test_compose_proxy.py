"""``reelscore score --provider mountsea --method compose``: the plan goes to the proxy's
``POST /eleven/music`` task route (camelCase body, the v1 plan inside in snake_case; the contract
server validates it strictly and answers a task whose audio has a tone per section), and the
delivered WAV plays each scene's own section on the scene's record range. No uploader is needed:
composing sends no clips. The same never-pay-twice rules as the proxy's video route.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reelscore.cli import app
from reelscore.wavfile import read_wav
from tests import contract_music
from tests.contract_fixtures import MOUNTSEA_KEY, contract
from tests.contract_server import ContractServer, Fault, tone_of
from tests.test_compose_route import SCENES, _dominant, _edit, _scene_ranges

__all__ = ["contract"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REELSCORE_MOUNTSEA_KEY", MOUNTSEA_KEY)
    monkeypatch.setenv("REELSCORE_NO_KEYRING", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reelscore.toml").write_text(
        "[provider.mountsea]\npoll_interval_s = 0.05\ndeadline_s = 30.0\n")
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _flags(contract: ContractServer, *more: str) -> list[str]:
    return ["--method", "compose", "--provider", "mountsea", "--base-url", contract.url,
            "--scenes", "cuts", "--min-scene", "0.5", *more]


def test_the_proxy_composes_each_section_on_its_scene(env: Path, contract: ContractServer) -> None:
    edit = _edit(env / "cut.otio")
    out = env / "scored.otio"
    code, text = _run("score", str(edit), "-o", str(out),
                      *_flags(contract, "--model", "music_v1", "--seed", "5"))
    assert code == 0, text
    [sent] = contract.state.requests_to("/eleven/music")
    body = sent.json
    assert set(body) == {"compositionPlan", "model", "respectSectionsDurations", "seed",
                         "outputFormat"}
    assert body["model"] == "music_v1" and body["respectSectionsDurations"] is True
    errors, durations = contract_music.validate({"composition_plan": body["compositionPlan"],
                                                 "model_id": "music_v1"})
    assert errors == [] and durations == [5000, 4000, 6000]
    assert not contract.state.requests_to("/eleven/video-to-music")
    manifest = json.loads((env / "scored.otio.reelscore" / "manifest.json").read_text())
    samples, sr = read_wav(Path(manifest["outputs"]["music_wav"]))
    assert sr == 48000 and len(samples) == sum(SCENES) * 2000
    for i, (a, b) in enumerate(_scene_ranges()):
        assert abs(_dominant(samples, a, b) - tone_of(i)) < 3, i
    meta = manifest["requests"]["r01"]["response"]["metadata"]
    assert meta["endpoint"] == "/eleven/music" and meta["task_id"].startswith("task_")
    # Resume: the same plan is neither submitted nor paid for twice.
    code, text = _run("score", str(edit), "-o", str(out), "--force",
                      *_flags(contract, "--model", "music_v1", "--seed", "5"))
    assert code == 0, text
    assert len(contract.state.requests_to("/eleven/music")) == 1 and contract.state.charges == 1


def test_a_refused_plan_through_the_proxy_leaves_its_suggestion(env: Path,
                                                                 contract: ContractServer) -> None:
    edit = _edit(env / "cut.otio")
    contract.state.add(Fault("bad_plan", path="/eleven/music", body=["Zimmer"]))
    code, text = _run("score", str(edit), "-o", str(env / "a.otio"),
                      *_flags(contract, "--model", "music_v1", "--tag", "Zimmer epic"))
    assert code != 0 and "bad_composition_plan" in text and "pass --composition" in text
    doc = json.loads((env / "a.otio.reelscore" / "composition.suggested.json").read_text())
    plan = doc["requests"][0]["composition_plan"]
    assert "Zimmer epic" not in plan["positive_global_styles"]
    assert [s["duration_ms"] for s in plan["sections"]] == [5000, 4000, 6000]
    assert contract.state.charges == 0


def test_a_lost_submit_is_never_sent_twice_and_v2_is_refused(env: Path,
                                                             contract: ContractServer) -> None:
    edit = _edit(env / "cut.otio")
    code, text = _run("score", str(edit), "-o", str(env / "v2.otio"), *_flags(contract))
    assert code != 0 and "music_v1 plans only" in text and "--model music_v1" in text
    assert contract.state.requests_to("/eleven/music") == []
    contract.state.add(Fault("no_response", path="/eleven/music"))
    flags = _flags(contract, "--model", "music_v1")
    code, text = _run("score", str(edit), "-o", str(env / "a.otio"), *flags)
    assert code != 0 and "may have been created and charged" in text
    code, text = _run("score", str(edit), "-o", str(env / "a.otio"), *flags)
    assert code != 0 and "--resubmit" in text
    assert len(contract.state.requests_to("/eleven/music")) == 1
    code, text = _run("score", str(edit), "-o", str(env / "a.otio"), *flags, "--resubmit")
    assert code == 0, text
    assert len(contract.state.requests_to("/eleven/music")) == 2
