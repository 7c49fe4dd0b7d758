# ruff: noqa: F811  (pytest fixtures imported by name and taken as arguments)
"""``reelscore doctor`` as a user runs it: the table's facts, the exit code, never a key.

Against the local contract server (the free plan endpoints) and a real S3-compatible server
(moto) on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reelscore.cli import app
from tests.contract_fixtures import (  # noqa: F401  (fixtures)
    MOUNTSEA_KEY,
    S3_SECRET,
    TEST_KEY,
    assert_no_secret,
    contract,
    s3_bucket,
    s3_env,
    s3_keys,
    s3_server,
)


@pytest.fixture(autouse=True)
def _no_site(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key, configuration or credentials from the machine running the tests."""
    for var in ("ELEVENLABS_API_KEY", "REELSCORE_MOUNTSEA_KEY", "MOUNTSEA_API_KEY",
                "REELSCORE_CONFIG", "REELSCORE_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("REELSCORE_CREDENTIALS", str(tmp_path / "no-credentials.toml"))
    monkeypatch.setenv("REELSCORE_NO_KEYRING", "1")
    monkeypatch.chdir(tmp_path)


def _doctor(*args: str) -> tuple[int, dict, str]:
    result = CliRunner().invoke(app, ["doctor", "--json", *args])
    text = result.stdout
    return result.exit_code, json.loads(text), text


def _check(report: dict, group: str, name: str) -> dict:
    return next(c for c in report["checks"] if c["group"] == group and c["name"] == name)


def test_offline_engine_needs_only_ffmpeg():
    code, report, _ = _doctor("--provider", "local")
    assert code == 0 and report["ok"] is True
    ffmpeg = _check(report, "ffmpeg", "ffmpeg")
    assert ffmpeg["status"] == "ok" and ffmpeg["required"] and "version" in ffmpeg["detail"]
    assert _check(report, "ffmpeg", "encoders")["detail"] == "libx264, aac, pcm_s24le"
    assert _check(report, "otio", "plugin")["status"] == "ok"
    assert _check(report, "keys", "elevenlabs")["status"] == "skip"


def test_a_missing_key_fails_and_says_where_keys_go():
    code, report, _ = _doctor("--provider", "elevenlabs")
    assert code == 1 and report["ok"] is False
    key = _check(report, "keys", "elevenlabs")
    assert key["status"] == "fail" and key["required"]
    assert "ELEVENLABS_API_KEY" in key["fix"] and "credentials.toml" in key["fix"]


def test_online_check_calls_the_free_plan_endpoint(contract, monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    code, report, text = _doctor("--provider", "elevenlabs", "--base-url", contract.url,
                                 "--online")
    assert code == 0, text
    assert _check(report, "keys", "elevenlabs")["detail"] == "key found in $ELEVENLABS_API_KEY"
    online = _check(report, "online", "elevenlabs")
    assert online["status"] == "ok" and "music access" in online["detail"]
    plan_calls = contract.state.requests_to("/v1/music/plan")
    assert len(plan_calls) == 1 and plan_calls[0].headers["xi-api-key"] == TEST_KEY
    assert contract.state.requests_to("/v1/music/video-to-music") == []  # nothing paid
    assert_no_secret(text)


def test_online_check_reports_a_refused_key_without_showing_it(contract, monkeypatch):
    wrong = "rsk-WRONGKEY-00000000000000000000000000000000"
    monkeypatch.setenv("ELEVENLABS_API_KEY", wrong)
    code, report, text = _doctor("--provider", "elevenlabs", "--base-url", contract.url,
                                 "--online")
    assert code == 1
    online = _check(report, "online", "elevenlabs")
    assert online["status"] == "fail" and "401" in online["detail"]
    assert wrong not in text


def test_proxy_route_round_trips_the_bucket_and_leaves_it_empty(
        contract, s3_server, s3_bucket, s3_env, monkeypatch, tmp_path):
    monkeypatch.setenv("REELSCORE_MOUNTSEA_KEY", MOUNTSEA_KEY)
    (tmp_path / "reelscore.toml").write_text(
        f'provider = "mountsea"\nbase_url = "{contract.url}"\n\n'
        f'[uploader]\ntype = "s3"\nbucket = "{s3_bucket}"\nendpoint_url = "{s3_server}"\n'
        'region = "us-east-1"\nprefix = "doctor/"\n')
    code, report, text = _doctor("--online")
    assert code == 0, text
    up = _check(report, "uploader", "s3")
    assert up["status"] == "ok" and up["required"] and s3_bucket in up["detail"]
    assert s3_keys(s3_server, s3_bucket) == []
    assert _check(report, "online", "mountsea")["status"] == "ok"
    assert len(contract.state.requests_to("/eleven/plan")) == 1
    sources = {v["key"]: v["source"] for v in report["config"]}
    assert sources["uploader.bucket"] == str(tmp_path / "reelscore.toml")
    assert_no_secret(text)


def test_an_unreachable_bucket_names_the_bucket_and_the_operation(
        s3_server, s3_env, monkeypatch, tmp_path):
    monkeypatch.setenv("REELSCORE_MOUNTSEA_KEY", MOUNTSEA_KEY)
    (tmp_path / "reelscore.toml").write_text(
        'provider = "mountsea"\nbase_url = "http://127.0.0.1:9"\n\n'
        f'[uploader]\ntype = "s3"\nbucket = "no-such-bucket-here"\nendpoint_url = "{s3_server}"\n'
        'region = "us-east-1"\n')
    code, report, text = _doctor()
    assert code == 1
    up = _check(report, "uploader", "s3")
    assert up["status"] == "fail"
    assert "no-such-bucket-here" in up["detail"] and "PutObject" in up["detail"]
    assert S3_SECRET not in text


def test_the_table_shows_bracketed_names_as_typed():
    result = CliRunner().invoke(app, ["doctor", "--provider", "elevenlabs"])
    assert result.exit_code == 1
    # the fix column keeps "[elevenlabs] api_key" (rich would otherwise eat it as markup)
    cells = "".join(ch for ch in result.stdout if ch not in "│┃ \n")
    assert "[elevenlabs]api_key" in cells
