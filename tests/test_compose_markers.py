"""``--markers`` with ``--method compose``: one marker per composition-plan section, named as the
section, at the section's first record frame -- not one per scene (a 2 s scene merged into its
neighbour has no section of its own, so no marker). Scored once with the offline engine, written
in every format that carries markers and read back with OTIO's own adapters (AAF drops markers:
docs/formats.md)."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from reelscore.cli import app
from reelscore.writeback import write_edit
from tests.test_compose_route import RATE, START, _edit

SCENES = (120, 48, 144)  # 5 s, 2 s (merged into the first section), 6 s
WANT = [(START, "Scene 1"), (START + 168, "Scene 3")]


def _markers(path: Path) -> list[tuple[int, str]]:
    """(record frame, name) of the score clip's markers as OTIO reads *path* back."""
    tl = otio.adapters.read_from_file(str(path), rate=RATE) if path.suffix == ".edl" \
        else otio.adapters.read_from_file(str(path))
    start = tl.global_start_time.to_frames(RATE) if tl.global_start_time else 0
    for track in tl.audio_tracks():
        for clip in track.find_clips(shallow_search=True):
            url = getattr(clip.media_reference, "target_url", "") or ""
            if not url.endswith(".score.wav"):
                continue
            if path.suffix == ".edl":  # LOC: the record timecode is the marker's position
                return sorted((m.marked_range.start_time.to_frames(), m.name) for m in clip.markers)
            at = clip.transformed_time_range(clip.trimmed_range(), tl.tracks).start_time
            head = clip.trimmed_range().start_time.to_frames()
            return sorted((start + at.to_frames() + m.marked_range.start_time.to_frames() - head,
                           m.name) for m in clip.markers)
    raise AssertionError(f"no score clip in {path.name}")


def test_section_markers_land_on_the_sections_in_every_format(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    edit = _edit(tmp_path / "cut.otio", SCENES)
    out = tmp_path / "scored.otio"
    result = CliRunner().invoke(app, ["score", str(edit), "-o", str(out), "--method", "compose",
                                      "--provider", "local", "--scenes", "cuts", "--min-scene",
                                      "0.5", "--markers"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert _markers(out) == WANT
    scored = otio.adapters.read_from_file(str(out))
    for ext in (".otioz", ".xml", ".fcpxml", ".edl"):
        path = tmp_path / f"scored{ext}"
        write_edit(scored, path)
        # FCPX XML does not keep the start timecode (docs/formats.md): positions from zero.
        want = [(f - START, n) for f, n in WANT] if ext == ".fcpxml" else WANT
        got = _markers(path)
        if ext == ".edl":  # CMX LOC comments come back upper case
            got, want = [(f, n.upper()) for f, n in got], [(f, n.upper()) for f, n in want]
        assert got == want, ext
