"""A scene longer than a section can be (120 s) is split at an inner picture cut where it has one:
with ``--scenes markers`` one scene spans several picture cuts. Written with ``reelscore plan
--composition`` (no rendering, no network), then used by ``score`` (checked against the edit)."""

from __future__ import annotations

import json
from pathlib import Path

import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from reelscore.cli import app

RATE = 24


def _edit(path: Path, frames: tuple[int, ...]) -> Path:
    """One marker at the start ("Long walk"): one scene over clips of *frames*."""
    tl = otio.schema.Timeline(name="walk")
    tl.global_start_time = otio.opentime.RationalTime(86400, RATE)
    track = otio.schema.Track(name="V1")
    for i, n in enumerate(frames):
        ref = otio.schema.ExternalReference(
            target_url=str(path.parent / f"offline_{i}.mov"),
            available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, RATE),
                                                    otio.opentime.RationalTime(10_000, RATE)))
        track.append(otio.schema.Clip(name=f"shot {i + 1}", media_reference=ref,
                                      source_range=otio.opentime.TimeRange(
                                          otio.opentime.RationalTime(0, RATE),
                                          otio.opentime.RationalTime(n, RATE))))
    tl.tracks.append(track)
    tl.tracks.markers.append(otio.schema.Marker(
        name="Long walk", marked_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, RATE), otio.opentime.RationalTime(0, RATE))))
    otio.adapters.write_to_file(tl, str(path))
    return path


def _sections(edit: Path, out: Path) -> list[tuple[str, int]]:
    result = CliRunner().invoke(app, ["plan", str(edit), "--composition", str(out), "--scenes",
                                      "markers"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    chunks = json.loads(out.read_text())["requests"][0]["composition_plan"]["chunks"]
    return [(c["text"], c["duration_ms"]) for c in chunks]


def test_a_long_scene_splits_at_its_inner_cut_else_evenly(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    # 60 s + 70 s + 20 s: an even split would fall at 75 s; the cut at 60 s is the nearest that
    # keeps both parts within 3-120 s (130 s would leave a 20 s part but a 130 s first part).
    cuts = _edit(tmp_path / "cuts.otio", (1440, 1680, 480))
    assert _sections(cuts, tmp_path / "a.json") == [("[Long walk (1/2)]", 60000),
                                                   ("[Long walk (2/2)]", 90000)]
    one = _edit(tmp_path / "one.otio", (3600,))  # no inner cut: evenly
    assert _sections(one, tmp_path / "b.json") == [("[Long walk (1/2)]", 75000),
                                                  ("[Long walk (2/2)]", 75000)]
