"""Cue sheets after a recut (issue 16): every kept stretch and every newly generated one is a cue
of its own, with its lineage. The recut job is made by ``reelscore score NEW --previous OLD``
(offline engine, frame-coded sources rendered by ffmpeg); timings checked against OTIO's own
timecode conversion."""

from __future__ import annotations

import csv
import json
import shutil
from fractions import Fraction
from pathlib import Path

import openpyxl
import opentimelineio as otio
import pytest
from opentimelineio import opentime

from reelscore.reports.write import write_job_reports
from tests.edits import build_timeline
from tests.test_cli import cli

R = Fraction(24)
START = 86400  # 01:00:00:00
COMMON = ("--provider", "local", "--scenes", "cuts", "--min-scene", "0.5", "--seed", "5")
A, B, C = ("A", 10, 48), ("B", 20, 36), ("C", 30, 60)


def tc(frame: int) -> str:
    return str(opentime.to_timecode(opentime.RationalTime(START + frame, 24), 24))


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def recut(tmp_path_factory, coded_video) -> tuple[Path, Path]:
    """v1 (A, B, C) scored; v2 reorders B before A: the update keeps all the old music."""
    folder = tmp_path_factory.mktemp("recut")
    src = {n: (coded_video(frames=400, rate=R, source_id=sid, gop=48), sid)
           for n, sid in (("A", 21), ("B", 22), ("C", 23))}

    def cut(name: str, shots) -> str:
        items = [("clip", src[n][0], src[n][1], i, f) for n, i, f in shots]
        otio.adapters.write_to_file(build_timeline([items], R, start_frame=START),
                                    str(folder / name))
        return name

    (folder / "reelscore.toml").write_text('[cuesheet]\ncomposer = "Ana Lima"\n')
    proc = cli("score", cut("v1.otio", [A, B, C]), "-o", "v1s.otio", *COMMON, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    proc = cli("score", cut("v2.otio", [B, A, C]), "-o", "v2s.otio", "--previous", "v1s.otio",
               *COMMON, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert "nothing sent" in proc.stdout
    return folder / "v1s.otio.reelscore", folder / "v2s.otio.reelscore"


def test_each_kept_stretch_is_its_own_cue_with_its_lineage(recut):
    v1, v2 = recut
    first = json.loads((v1 / "manifest.json").read_text())
    cues = rows(v2 / "cues.csv")  # written by the update itself
    # new stack frames: B 0-36, A 36-84, C 84-144; each was at old frames A 0-48, B 48-84, C 84-144
    assert [(c["record_in"], c["record_out"]) for c in cues] == [
        (tc(0), tc(36)), (tc(36), tc(84)), (tc(84), tc(144))]
    assert [c["duration_seconds"] for c in cues] == ["1.500", "2.000", "2.500"]
    old = [(48, 84), (0, 48), (84, 144)]
    for cue, (a, b) in zip(cues, old):
        assert cue["lineage"].startswith(
            f"kept from job {first['job_id']} (its record {tc(a)}-{tc(b)}); there generated "
            f"in job {first['job_id']} (r01)")
        assert cue["requests"] == ""  # the update sent nothing
        assert (cue["provider"], cue["source_ids"]) == ("local", "request:r01")
        assert cue["model"] == first["requests"]["r01"]["response"]["model"]
        assert cue["composer"] == "Ana Lima"
    ws = openpyxl.load_workbook(v2 / "cues.xlsx")["Cue sheet"]
    head = next(r for r in range(1, 30) if ws.cell(r, 1).value == "Cue")
    assert [ws.cell(head + i, 3).value for i in (1, 2, 3)] == [tc(0), tc(36), tc(84)]
    assert ws.cell(head + 4, 1).value == "Total"
    assert ws.cell(head + 4, 7).value == pytest.approx(6.0)
    page = (v2 / "report.html").read_text()
    assert 'id="complete"' in page and "not sent" not in page  # kept music is not missing
    assert f"{first['job_id']}: 3 stretch(es) kept, 0 request(s) sent" in page


def test_newly_generated_music_in_a_recut_is_its_own_cue(recut, tmp_path):
    """The lineage a recut that generates records (``recut.requests``, by id or with its new
    range): A's stretch made anew by request r07, between two kept stretches."""
    v1, v2 = recut
    job = tmp_path / "job"
    shutil.copytree(v2, job)
    manifest = json.loads((job / "manifest.json").read_text())
    first = json.loads((v1 / "manifest.json").read_text())
    manifest["recut"]["kept"] = [k for k in manifest["recut"]["kept"] if k["new_start"] != 36]
    manifest["recut"]["requests"] = [{"id": "r07", "new_start": 36, "new_end": 84}]
    manifest["requests"] = {"r07": {**first["requests"]["r01"], "id": "r07"}}
    (job / "manifest.json").write_text(json.dumps(manifest))
    written = write_job_reports(job, pytest.fail)
    assert job / "cues.csv" in written
    cues = rows(job / "cues.csv")
    assert [(c["record_in"], c["record_out"], c["requests"]) for c in cues] == [
        (tc(0), tc(36), ""), (tc(36), tc(84), "r07"), (tc(84), tc(144), "")]
    assert cues[1]["lineage"] == f"generated in job {manifest['job_id']} (r07)"
    assert cues[1]["source_ids"] == "request:r07"
    assert cues[0]["lineage"].startswith(f"kept from job {first['job_id']}")
    # a kept stretch whose previous job is gone still gets its cue, saying what is unknown
    shutil.rmtree(v1.parent / "v1_moved", ignore_errors=True)
    v1.rename(v1.parent / "v1_moved")
    try:
        cues = rows(Path(write_job_reports(job, pytest.fail)[0]))
    finally:
        (v1.parent / "v1_moved").rename(v1)
    assert "manifest cannot be read" in cues[0]["lineage"] and cues[0]["provider"] == ""
