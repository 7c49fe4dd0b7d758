"""The configuration files: layers and their precedence, profiles, XDG, loudness presets, and
the one-line refusals (malformed TOML, unknown key, wrong type, a key in the file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reelscore.config import load_config, user_config_path
from reelscore.errors import InputError
from reelscore.settings import build_settings, front_end_values


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def homes(tmp_path: Path) -> dict[str, Path]:
    """An XDG config home and a working directory, both empty."""
    xdg, cwd = tmp_path / "xdg", tmp_path / "work"
    cwd.mkdir()
    return {"xdg": xdg, "cwd": cwd}


def _env(homes: dict[str, Path], **extra: str) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(homes["xdg"]), "HOME": str(homes["cwd"]), **extra}


def _listing(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p), p.stat().st_size) for p in root.rglob("*"))


def test_layers_win_in_order_and_record_their_source(homes, tmp_path):
    env = _env(homes)
    user = _write(user_config_path(env), 'track_name = "User"\nscenes = "markers"\n'
                  'min_scene = 3.0\nmarkers = true\n')
    assert user == homes["xdg"] / "reelscore" / "config.toml"
    project = _write(homes["cwd"] / "reelscore.toml", 'track_name = "Project"\nmin_scene = 1.5\n'
                     '[provider.elevenlabs]\nenable_logging = false\n')
    explicit = _write(tmp_path / "site.toml", 'track_name = "Site"\n[uploader]\nbucket = "b1"\n'
                      '[profile.broadcast]\nloudness = "ebu-r128"\ntrack_name = "Broadcast"\n')
    config = load_config(explicit, "broadcast", cwd=homes["cwd"], environ=env)
    assert config.files == (user, project, explicit)
    values = config.values()
    assert values["track_name"] == "Broadcast" and values["scenes"] == "markers"
    assert values["min_scene"] == 1.5 and values["markers"] is True
    assert values["provider.elevenlabs.enable_logging"] is False
    assert (values["target_lufs"], values["true_peak"]) == (-23.0, -1.0)
    src = config.sources
    assert src["scenes"] == str(user) and src["min_scene"] == str(project)
    assert src["uploader.bucket"] == str(explicit)
    assert src["track_name"] == f"{explicit} [profile.broadcast]"
    assert src["target_lufs"] == f"{explicit} [profile.broadcast] (loudness ebu-r128)"
    # the front end wins over every file; sources say "flag" for what it set
    built = build_settings(config, front_end_values("flag", track_name="Flag", min_scene=0.2))
    s = built.settings
    assert (s.track_name, s.min_scene_seconds, s.scenes, s.markers) == ("Flag", 0.2, "markers", True)
    assert (s.target_lufs, s.true_peak) == (-23.0, -1.0)
    assert built.sources["track_name"] == "flag" and built.sources["scenes"] == str(user)
    assert built.provider_config.options == {}  # local: no provider options


def test_reelscore_config_env_and_home_fallback(homes, tmp_path):
    site = _write(tmp_path / "env.toml", 'description = "from env"\n')
    env = {"HOME": str(tmp_path / "home"), "REELSCORE_CONFIG": str(site)}
    _write(tmp_path / "home" / ".config" / "reelscore" / "config.toml", 'tags = ["home"]\n')
    values = load_config(cwd=homes["cwd"], environ=env).values()
    assert values == {"tags": ["home"], "description": "from env"}
    with pytest.raises(InputError, match=r"configuration file not found: .*nope.toml \(--config\)"):
        load_config(tmp_path / "nope.toml", cwd=homes["cwd"], environ=env)


@pytest.mark.parametrize(("flags", "expected"), [
    ({}, (-14.0, -1.0)),
    ({"loudness": "atsc-a85"}, (-24.0, -2.0)),
    ({"loudness": "ebu-r128", "true_peak": -3.0}, (-23.0, -3.0)),
    ({"target_lufs": -16.0}, (-16.0, -1.0)),
])
def test_loudness_presets_and_numbers(homes, flags, expected):
    config = load_config(cwd=homes["cwd"], environ=_env(homes))
    s = build_settings(config, front_end_values("flag", **flags)).settings
    assert (s.target_lufs, s.true_peak) == expected


def test_a_preset_in_a_later_layer_replaces_numbers_of_an_earlier_one(homes):
    env = _env(homes)
    _write(user_config_path(env), "target_lufs = -20.0\n")
    _write(homes["cwd"] / "reelscore.toml", 'loudness = "atsc-a85"\n')
    s = build_settings(load_config(cwd=homes["cwd"], environ=env), front_end_values("flag")).settings
    assert (s.target_lufs, s.true_peak) == (-24.0, -2.0)


def test_provider_options_reach_the_provider_config(homes, tmp_path, monkeypatch):
    monkeypatch.setenv("REELSCORE_MOUNTSEA_KEY", "msk-not-a-real-key")
    site = _write(tmp_path / "s.toml", """
        base_url = "https://proxy.example"
        read_timeout = 120.0
        [provider]
        name = "mountsea"
        [provider.mountsea]
        poll_interval_s = 2.5
        deadline_s = 600.0
        max_description = 400
        [provider.elevenlabs]
        enable_logging = false
        [uploader]
        type = "s3"
        bucket = "house-bucket"
        endpoint_url = "http://127.0.0.1:9000"
        region = "eu-west-1"
        prefix = "jobs/"
        expires_s = 900
        keep = true
    """.replace("\n        ", "\n"))
    built = build_settings(load_config(site, cwd=homes["cwd"], environ=_env(homes)),
                           front_end_values("flag"))
    pc = built.provider_config
    assert built.settings.provider == "mountsea"
    assert (pc.base_url, pc.read_timeout_s) == ("https://proxy.example", 120.0)
    assert pc.options == {
        "poll_interval_s": 2.5, "deadline_s": 600.0, "max_description": 400,
        "uploader": {"type": "s3", "bucket": "house-bucket", "endpoint_url": "http://127.0.0.1:9000",
                     "region": "eu-west-1", "prefix": "jobs/", "expires_s": 900, "keep": True}}
    assert "msk-not-a-real-key" not in repr(built)


def test_mountsea_without_an_uploader_stops_before_any_work(homes):
    config = load_config(cwd=homes["cwd"], environ=_env(homes))
    with pytest.raises(InputError, match="needs an uploader") as info:
        build_settings(config, front_end_values("flag", provider="mountsea"), load_key=False)
    assert "[uploader]" in (info.value.hint or "")


@pytest.mark.parametrize(("text", "needles"), [
    ('scenes = "cuts"\ntrack_name = \n', ["not valid TOML", "line 2"]),
    ('scenes = "cuts"\nscenez = "clips"\n', ["unknown key 'scenez'", "allowed here:", "scenes"]),
    ('[uploader]\nbukket = "x"\n', ["unknown key 'uploader.bukket'", "bucket, endpoint_url"]),
    ('[provider.elevenlabs]\nenable_loging = true\n',
     ["unknown key 'provider.elevenlabs.enable_loging'", "enable_logging, max_description"]),
    ('min_scene = "long"\n', ["min_scene:", "valid number", "'long'"]),
    ('scenes = "sideways"\n', ["scenes:", "'cuts', 'markers' or 'clips'"]),
    ('loudness = "loud"\n', ["loudness:", "'streaming', 'ebu-r128' or 'atsc-a85'"]),
    ('[profile.tv]\ntrue_peak = "high"\n', ["profile.tv.true_peak:", "valid number"]),
    ('[provider.elevenlabs]\napi_key = "sk-SECRET-VALUE"\n',
     ["provider.elevenlabs.api_key: keys and secrets never go in a configuration file",
      "credentials file", "keyring", "ELEVENLABS_API_KEY"]),
    ('[uploader]\nbucket = "b"\naws_secret_access_key = "SECRET-VALUE"\n',
     ["uploader.aws_secret_access_key: keys and secrets never go"]),
])
def test_bad_files_are_one_line_naming_file_and_key(homes, tmp_path, text, needles):
    bad = _write(tmp_path / "bad.toml", text)
    before = _listing(tmp_path)
    with pytest.raises(InputError) as info:
        load_config(bad, cwd=homes["cwd"], environ=_env(homes))
    message = str(info.value)
    assert message.startswith(f"{bad}:") and len(info.value.message.splitlines()) == 1
    for needle in needles:
        assert needle in message, message
    assert "SECRET-VALUE" not in message
    assert _listing(tmp_path) == before  # nothing written


def test_unknown_profile_lists_the_defined_ones(homes, tmp_path):
    site = _write(tmp_path / "s.toml", "[profile.tv]\nloudness = \"ebu-r128\"\n")
    with pytest.raises(InputError, match="no profile 'film'") as info:
        load_config(site, "film", cwd=homes["cwd"], environ=_env(homes))
    assert "profiles defined: tv" in (info.value.hint or "")


def test_cli_reports_a_bad_config_in_one_line_before_any_work(tmp_path):
    (tmp_path / "reelscore.toml").write_text("min_scene = -1\n")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "COLUMNS": "200"}
    env.pop("REELSCORE_CONFIG", None)
    proc = subprocess.run([sys.executable, "-m", "reelscore", "score", "missing.otio", "-o",
                           "out.otio"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    [line, *_hint] = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and "reelscore.toml: min_scene:" in line
    assert "greater than or equal to 0" in line and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reelscore.toml"]
