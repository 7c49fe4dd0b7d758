"""Every setting through every front end: ``reelscore score``, the OTIO hook, ``reelscore resolve
score`` and the Resolve dialog build their settings with the same function, from the same
configuration layers, and each value reaches the run (the manifest's settings) or the request
(the contract server's log).

What each front end takes from its own values and what from the configuration is the table
below; a setting a front end cannot express comes from the configuration file (the Resolve
dialog shows only the per-run fields, README "Which front end sets what").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from reelscore.resolve.connect import connect
from tests.contract_fixtures import (
    TEST_KEY,
    assert_no_secret_in_dir,
    contract,
    s3_bucket,
    s3_server,
)
from tests.contract_server import V2M, ContractServer
from tests.edits import build_timeline
from tests.fake_resolve import StubBmd, StubFusion, build_cut

__all__ = ["contract", "s3_bucket", "s3_server"]  # fixtures

# The configuration every front end reads: a profile holds the house loudness spec.
BASE_CONFIG = """\
track_name = "Config Name"
min_scene = 4.0
[provider.elevenlabs]
enable_logging = false
[profile.house]
loudness = "ebu-r128"
true_peak = -2.0
"""
# What the dialog has no field for (README: the dialog shows the per-run fields only).
DIALOG_EXTRA = """\
sign_c2pa = true
add_sfx = true
model = "music_v2"
output_format = "mp3_44100_192"
scenes = "cuts"
track_name = "Walk Score"
min_scene = 0.5
timecode = "ndf"
workers = 1
concurrency = 3
"""

DESCRIPTION = "walk: slow strings"
TAGS = ["noir", "tense"]


@pytest.fixture
def media_dir(media_cache: Path) -> Path:
    return media_cache / "resolve"


def _flags(server: ContractServer, config: Path) -> list[str]:
    return ["--config", str(config), "--profile", "house", "--provider", "elevenlabs",
            "--base-url", server.url, "--description", DESCRIPTION, "--tag", TAGS[0],
            "--tag", TAGS[1], "--model", "music_v2", "--output-format", "mp3_44100_192",
            "--scenes", "clips", "--min-scene", "0.5", "--track-name", "Walk Score", "--markers",
            "--timecode", "ndf", "--workers", "1", "--concurrency", "3", "--read-timeout", "300",
            "--connect-timeout", "7", "--max-retries", "2", "--sign-c2pa", "--add-sfx"]


def _check(manifest: dict[str, Any], server: ContractServer, scenes: str = "clips") -> None:
    s = manifest["settings"]
    assert s["provider"] == "elevenlabs" and s["scenes"] == scenes
    assert (s["min_scene_seconds"], s["track_name"], s["markers"]) == (0.5, "Walk Score", True)
    assert (s["target_lufs"], s["true_peak"]) == (-23.0, -2.0)  # profile: preset + its own number
    assert (s["timecode"], s["workers"], s["concurrency"]) == ("ndf", 1, 3)
    g = s["generation"]
    assert (g["description"], g["tags"], g["model_id"], g["output_format"]) == (
        DESCRIPTION, TAGS, "music_v2", "mp3_44100_192")
    assert (g["sign_with_c2pa"], g["add_sfx"]) == (True, True)
    delivered = manifest["loudness"]["delivered"]
    assert abs(delivered["integrated_lufs"] + 23) <= 1.0 and delivered["true_peak_dbtp"] <= -2.0
    requests = [r for r in server.state.requests_to(V2M) if r.status == 200]
    assert requests, [(r.path, r.status) for r in server.state.log]
    for r in requests:
        fields = r.fields
        assert ("description", DESCRIPTION) in fields and ("model_id", "music_v2") in fields
        assert [v for n, v in fields if n == "tags"] == TAGS
        assert r.query["output_format"] == ["mp3_44100_192"]
        assert r.query["enable_logging"] == ["false"]  # from [provider.elevenlabs]
        assert ("sign_with_c2pa", "true") in fields and ("add_sfx", "true") in fields


@pytest.fixture
def edit(tmp_path: Path, coded_video) -> Path:
    r = Fraction(25)
    a = coded_video(frames=300, rate=r, source_id=21, gop=50)
    tl = build_timeline([[("clip", a, 21, 0, 40), ("clip", a, 21, 150, 35)]], r,
                        start_frame=90000)
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


@pytest.fixture
def base_config(tmp_path: Path) -> Path:
    path = tmp_path / "house.toml"
    path.write_text(BASE_CONFIG)
    return path


def test_reelscore_score(tmp_path, edit, base_config, contract):
    out = tmp_path / "scored.otio"
    env = {**os.environ, "ELEVENLABS_API_KEY": TEST_KEY, "XDG_CONFIG_HOME": str(tmp_path / "x")}
    env.pop("REELSCORE_CONFIG", None)
    proc = subprocess.run([sys.executable, "-m", "reelscore", "score", str(edit), "-o", str(out),
                           "--json", *_flags(contract, base_config)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(Path(json.loads(proc.stdout)["manifest"]).read_text())
    _check(manifest, contract)
    back = otio.adapters.read_from_file(str(out))
    assert [t.name for t in back.tracks][-1] == "Walk Score"
    assert TEST_KEY not in proc.stdout + proc.stderr
    assert_no_secret_in_dir(tmp_path)


def test_otio_hook(tmp_path, edit, base_config, contract, monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "x"))
    monkeypatch.chdir(tmp_path)
    tl = otio.adapters.read_from_file(str(edit))
    out = tmp_path / "scored.otio"
    otio.adapters.write_to_file(tl, str(out), hook_function_argument_map={
        "reelscore.config": str(base_config), "reelscore.profile": "house",
        "reelscore.provider": "elevenlabs", "reelscore.base_url": contract.url,
        "reelscore.description": DESCRIPTION, "reelscore.tags": ",".join(TAGS),
        "reelscore.model": "music_v2", "reelscore.output_format": "mp3_44100_192",
        "reelscore.scenes": "clips", "reelscore.min_scene": "0.5",
        "reelscore.track_name": "Walk Score", "reelscore.markers": "true",
        "reelscore.timecode": "ndf", "reelscore.workers": "1", "reelscore.concurrency": "3",
        "reelscore.read_timeout": "300", "reelscore.work_dir": str(tmp_path / "job"),
        "reelscore.sign_c2pa": "true", "reelscore.add_sfx": "true",
        "reelscore.source": str(edit)})
    _check(json.loads((tmp_path / "job" / "manifest.json").read_text()), contract)
    back = otio.adapters.read_from_file(str(out))
    assert [t.name for t in back.tracks][-1] == "Walk Score"


def test_hook_builds_provider_options_and_connection(tmp_path, base_config, monkeypatch):
    from reelscore.hook import settings_from_args

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REELSCORE_MOUNTSEA_KEY", "msk-walk")
    run = settings_from_args({
        "config": str(base_config), "provider": "mountsea", "base_url": "https://proxy.example",
        "connect_timeout": "7", "read_timeout": "300", "max_retries": "2",
        "allow_insecure": "true", "resubmit": "true", "loudness": "atsc-a85",
        "provider.mountsea.poll_interval_s": "2", "provider.mountsea.deadline_s": "60",
        "uploader.bucket": "b", "uploader.endpoint_url": "http://127.0.0.1:1",
        "uploader.keep": "true", "range": "01:00:00:00 01:00:02:00", "rate": "25"})
    pc, s = run.built.provider_config, run.built.settings
    assert (pc.base_url, pc.connect_timeout_s, pc.read_timeout_s, pc.max_retries) == (
        "https://proxy.example", 7.0, 300.0, 2)
    assert pc.allow_insecure and pc.allow_resubmit and s.resubmit
    assert pc.options == {"poll_interval_s": 2.0, "deadline_s": 60.0, "uploader": {
        "type": "s3", "bucket": "b", "endpoint_url": "http://127.0.0.1:1", "keep": True}}
    assert (s.target_lufs, s.true_peak, s.range_in, s.range_out, s.rate) == (
        -24.0, -2.0, "01:00:00:00", "01:00:02:00", "25")
    assert run.built.sources["uploader.bucket"] == "hook"
    assert run.built.sources["track_name"] == str(base_config)


def test_reelscore_resolve_score(tmp_path, media_dir, base_config, contract, monkeypatch):
    from reelscore.cli import app

    monkeypatch.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "x"))
    monkeypatch.chdir(tmp_path)
    cut = build_cut(media_dir, Fraction(25))
    monkeypatch.setattr("reelscore.resolve.connect.connect",
                        lambda *a, **k: connect({"resolve": cut.resolve}))
    result = CliRunner().invoke(app, [
        "resolve", "score", "--render", "ffmpeg", "--work-dir", str(tmp_path / "job"), "--json",
        *_flags(contract, base_config)])
    assert result.exit_code == 0, result.output
    _check(json.loads((tmp_path / "job" / "manifest.json").read_text()), contract)
    assert json.loads(result.stdout[result.stdout.index("{"):])["track_name"] == "Walk Score"


def test_resolve_dialog(tmp_path, media_dir, base_config, contract, monkeypatch):
    from reelscore.resolve.dialog import run_in_resolve

    config = tmp_path / "dialog.toml"
    config.write_text(DIALOG_EXTRA + BASE_CONFIG.replace('track_name = "Config Name"\n', "")
                      .replace("min_scene = 4.0\n", ""))
    monkeypatch.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    monkeypatch.setenv("REELSCORE_CONFIG", str(config))
    monkeypatch.setenv("REELSCORE_PROFILE", "house")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "x"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    cut = build_cut(media_dir, Fraction(24000, 1001))
    bmd = StubBmd(cut.resolve)
    opened: dict[str, Any] = {}

    def click(win) -> None:
        items = win.GetItems()
        opened["loudness"] = (items["LoudnessPreset"].CurrentText, items["Loudness"].Value)
        items["Scenes"].CurrentIndex = 2  # clips
        items["Description"].PlainText = DESCRIPTION
        items["Tags"].Text = ", ".join(TAGS)
        items["Provider"].CurrentIndex = 1  # elevenlabs
        items["BaseUrl"].Text = contract.url
        items["Markers"].Checked = True
        items["Render"].CurrentIndex = 1  # ffmpeg
        win.fire("Score", "Clicked")

    original = StubBmd.UIDispatcher

    def dispatcher(self, ui):
        d = original(self, ui)
        d.script = [click, lambda win: win.fire("Close", "Clicked")]
        return d

    monkeypatch.setattr(StubBmd, "UIDispatcher", dispatcher)
    assert run_in_resolve({"resolve": cut.resolve, "fusion": StubFusion(), "bmd": bmd}) == 0
    win = bmd.dispatchers[0].windows[0]
    assert win.Find("Status").Text == "Done: the music is on its new track.", win.Find("Log").PlainText
    assert opened["loudness"] == ("ebu-r128", -23)  # the dialog opens at the configuration's spec
    [manifest] = (tmp_path / "reelscore" / "resolve").rglob("manifest.json")
    _check(json.loads(manifest.read_text()), contract)


# ------------------------------------------------------------- the proxy route from the front ends


@pytest.fixture
def proxy_env(monkeypatch) -> dict[str, str]:
    from tests.contract_fixtures import MOUNTSEA_KEY, S3_ACCESS, S3_SECRET

    env = {"REELSCORE_MOUNTSEA_KEY": MOUNTSEA_KEY, "REELSCORE_NO_KEYRING": "1",
           # S3 credentials come from the standard AWS chain only
           "AWS_ACCESS_KEY_ID": S3_ACCESS, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _proxy_config(tmp_path: Path, s3_server: str, bucket: str) -> Path:
    path = tmp_path / "proxy.toml"
    path.write_text(f"""\
[provider]
name = "mountsea"
[provider.mountsea]
poll_interval_s = 0.05
deadline_s = 60.0
[uploader]
type = "s3"
bucket = "{bucket}"
endpoint_url = "{s3_server}"
region = "us-east-1"
prefix = "walk/"
expires_s = 600
""")
    return path


def test_cli_scores_through_the_proxy_with_an_s3_bucket(tmp_path, edit, contract, s3_server,
                                                        s3_bucket, proxy_env):
    from tests.contract_fixtures import s3_keys

    config = _proxy_config(tmp_path, s3_server, s3_bucket)
    env = {**os.environ, **proxy_env, "XDG_CONFIG_HOME": str(tmp_path / "x")}
    env.pop("REELSCORE_CONFIG", None)
    proc = subprocess.run([sys.executable, "-m", "reelscore", "score", str(edit), "-o",
                           str(tmp_path / "scored.otio"), "--config", str(config), "--base-url",
                           contract.url, "--description", DESCRIPTION, "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    [submit] = contract.state.requests_to("/eleven/video-to-music")
    assert submit.json["description"] == DESCRIPTION
    assert all("/walk/" in url for url in submit.json["videoUrls"])
    assert s3_keys(s3_server, s3_bucket) == []  # the clips are gone after the job
    assert_no_secret_in_dir(tmp_path)


def test_hook_scores_through_the_proxy_with_uploader_arguments(tmp_path, edit, contract,
                                                               s3_server, s3_bucket, proxy_env,
                                                               monkeypatch):
    from tests.contract_fixtures import s3_keys

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "x"))
    monkeypatch.chdir(tmp_path)
    tl = otio.adapters.read_from_file(str(edit))
    otio.adapters.write_to_file(tl, str(tmp_path / "scored.otio"), hook_function_argument_map={
        "reelscore.provider": "mountsea", "reelscore.base_url": contract.url,
        "reelscore.provider.mountsea.poll_interval_s": "0.05",
        "reelscore.uploader.bucket": s3_bucket, "reelscore.uploader.endpoint_url": s3_server,
        "reelscore.uploader.prefix": "hook/", "reelscore.source": str(edit)})
    [submit] = contract.state.requests_to("/eleven/video-to-music")
    assert all("/hook/" in url for url in submit.json["videoUrls"])
    assert s3_keys(s3_server, s3_bucket) == []


def test_a_misconfigured_proxy_stops_before_any_render(tmp_path, edit, proxy_env):
    env = {**os.environ, **proxy_env, "XDG_CONFIG_HOME": str(tmp_path / "x")}
    env.pop("REELSCORE_CONFIG", None)
    out = tmp_path / "scored.otio"
    proc = subprocess.run([sys.executable, "-m", "reelscore", "score", str(edit), "-o", str(out),
                           "--provider", "mountsea", "--base-url", "https://proxy.example"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2 and "needs an uploader" in proc.stderr
    assert not out.exists() and not (tmp_path / "scored.otio.reelscore").exists()


def test_no_front_end_imports_another():
    script = ("import sys\nimport reelscore.resolve.cli, reelscore.resolve.dialog, reelscore.hook\n"
              "print(sorted(m for m in ('reelscore.cli', 'reelscore.demo') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    assert proc.stdout.strip() == "[]"
