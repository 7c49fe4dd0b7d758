"""``--duck`` from the Resolve front ends: ``reelscore resolve score --duck`` against the fake
Resolve (the ducked score placed, the unducked one on a muted track) and the dialog's fields
reaching the settings through the one builder. (CLI and hook: tests/test_duck_route.py.)"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reelscore.config import ConfigLayer, EffectiveConfig
from reelscore.resolve.connect import connect
from reelscore.resolve.dialog import (
    DialogValues,
    build_dialog,
    built_settings,
    dialog_defaults,
    read_values,
)
from reelscore.wavfile import read_wav, write_wav
from tests.fake_resolve import StubDispatcher, StubUIManager, build_cut


def _bursts_wav(path: Path, seconds: float, bursts: list[tuple[float, float]]) -> Path:
    n = round(seconds * 48000)
    x = np.random.default_rng(4).normal(0, 1e-4, (n, 2))
    t = np.arange(n) / 48000
    for a, b in bursts:
        i, j = round(a * 48000), round(b * 48000)
        x[i:j] += 0.1 * np.sin(2 * np.pi * 800 * t[i:j])[:, None]
    write_wav(path, x.astype(np.float32), 48000, bits=24)
    return path


def test_resolve_score_ducks_and_places_the_unducked_score_muted(tmp_path, media_cache,
                                                                 monkeypatch) -> None:
    from reelscore.cli import app

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "x"))
    monkeypatch.delenv("REELSCORE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    cut = build_cut(media_cache / "resolve", Fraction(25), dialogue=False)
    wav = _bursts_wav(tmp_path / "dx.wav", 5.0, [(1.0, 2.0)])
    tl = cut.timeline
    mpi = cut.resolve.project.import_media(wav)
    tl.add_audio_track("DX")
    tl.put("audio", 1, mpi, 0, 0, 110)
    monkeypatch.setattr("reelscore.resolve.connect.connect",
                        lambda *a, **k: connect({"resolve": cut.resolve}))
    result = CliRunner().invoke(app, [
        "resolve", "score", "--render", "ffmpeg", "--provider", "local", "--work-dir",
        str(tmp_path / "job"), "--json", "--duck", "--dialogue-track", "dx", "--duck-depth",
        "-8", "--duck-hold", "100"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "job" / "manifest.json").read_text())
    ducking = manifest["ducking"]
    assert ducking["tracks"] == ["A1 'DX'"] and ducking["depth_db"] == -8
    assert ducking["hold_ms"] == 100
    assert ducking["seconds"] == pytest.approx(1.1, abs=0.03)  # burst + hold
    # the delivered (placed) score is the ducked one: 8 dB down against the unducked inside
    ducked, _ = read_wav(Path(manifest["outputs"]["music_wav"]))
    unducked, _ = read_wav(Path(ducking["alternative_wav"]))

    def rms(x: np.ndarray, a: float, b: float) -> float:
        seg = x[round(a * 48000):round(b * 48000)].astype(np.float64)
        return 10 * np.log10(np.mean(seg ** 2))

    inside = rms(ducked, 1.1, 1.9) - rms(unducked, 1.1, 1.9)
    outside = rms(ducked, 3.0, 4.0) - rms(unducked, 3.0, 4.0)
    assert abs(inside - outside - (-8)) < 0.5
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["ducked_seconds"] == pytest.approx(1.1, abs=0.03)
    assert "the unducked score is on A3 'Score (unducked)', muted" in summary["notes"]
    names = {t.name: t for t in tl.tracks["audio"]}
    assert names["Score"].enabled and names["Score"].items
    assert not names["Score (unducked)"].enabled and names["Score (unducked)"].items


def test_dialog_duck_fields_reach_the_settings() -> None:
    ui = StubUIManager()
    win = build_dialog(ui, StubDispatcher(ui), header="h")
    items = win.GetItems()
    assert items["Duck"].Checked is False and items["DuckDepth"].Value == -10
    items["Duck"].Checked = True
    items["DuckDepth"].Value = -14
    items["DialogueTracks"].Text = " DX, VO ,"
    values = read_values(win)
    assert (values.duck, values.duck_depth, values.dialogue_track) == (True, -14.0, ("DX", "VO"))
    settings = built_settings(values, EffectiveConfig()).settings
    assert (settings.duck, settings.duck_depth, settings.dialogue_track) == (True, -14.0,
                                                                            ["DX", "VO"])
    # the dialog opens at the configuration's values, and an untouched field keeps them
    config = EffectiveConfig(layers=(ConfigLayer("house.toml", {
        "duck": True, "duck_depth": -6.0, "duck_release": 800.0}),))
    start = dialog_defaults(config)
    assert (start.duck, start.duck_depth) == (True, -6.0)
    kept = built_settings(start, config).settings
    assert (kept.duck, kept.duck_depth, kept.duck_release) == (True, -6.0, 800.0)
    assert built_settings(DialogValues(), EffectiveConfig()).settings.duck is False
