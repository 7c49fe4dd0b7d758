"""The music cue sheet (issue 16) as a user makes it: ``reelscore score`` writes cues.csv into the
job folder, ``reelscore cuesheet`` writes it anywhere; timings checked against OTIO's own
drop-frame conversion, never against reelscore's timecode code."""

from __future__ import annotations

import csv
import json
import shutil
from fractions import Fraction
from pathlib import Path

import openpyxl
import opentimelineio as otio
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from opentimelineio import opentime

from reelscore.reports.cuesheet import COLUMNS
from reelscore.reports.write import write_job_reports
from tests.edits import build_timeline
from tests.test_cli import cli

DF30 = Fraction(30000, 1001)
START = 107892 - 30  # 00:59:59;00 drop frame
CONFIG = """
[cuesheet]
composer = "Ana Lima (CAE 00123456789)"
publisher = "Reel Music Ltd"
rights = "Commissioned; worldwide, all media"
programme = "Night Shift"
episode = "101"
production = "NS-2026"
"""


def otio_df(frames: int) -> str:
    return str(opentime.to_timecode(opentime.RationalTime(frames, float(DF30)), float(DF30), True))


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def scored(tmp_path_factory, coded_video) -> Path:
    """A 29.97 drop-frame cut of two named clips (Opening, Chase) across 01:00:00;00, scored
    with the offline engine by clip names, with a [cuesheet] configuration."""
    folder = tmp_path_factory.mktemp("cues")
    a = coded_video(frames=400, rate=DF30, source_id=31, gop=30)
    tl = build_timeline([[("clip", a, 31, 0, 90), ("clip", a, 31, 100, 150)]], DF30,
                        start_frame=START, name="Pilot")
    for clip, name in zip(tl.find_clips(), ("Opening", "Chase")):
        clip.name = name
    otio.adapters.write_to_file(tl, str(folder / "cut.otio"))
    (folder / "reelscore.toml").write_text(CONFIG)
    proc = cli("score", "cut.otio", "-o", "scored.otio", "--scenes", "clips", "--seed", "3",
               cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return folder


def test_score_writes_the_cue_sheet_into_the_job_folder(scored):
    rows = read_rows(scored / "scored.otio.reelscore" / "cues.csv")
    assert list(rows[0]) == list(COLUMNS)
    assert len(rows) == 1  # one score, one continuous stretch of music
    row = rows[0]
    assert row["record_in"] == otio_df(START) == "00:59:59;00"
    assert row["record_out"] == otio_df(START + 240) == "01:00:07;00"
    assert row["duration_tc"] == otio_df(240)
    assert row["duration_seconds"] == f"{240 * 1001 / 30000:.3f}" == "8.008"
    assert row["duration"] == "00:08"
    assert row["title"] == "Opening / Chase"
    assert (row["usage"], row["usage_description"]) == ("BI", "background instrumental")
    assert row["composer"] == "Ana Lima (CAE 00123456789)"
    assert row["publisher"] == "Reel Music Ltd"
    assert row["rights"] == "Commissioned; worldwide, all media"
    assert (row["programme_title"], row["episode"], row["production"]) == (
        "Night Shift", "101", "NS-2026")
    manifest = json.loads((scored / "scored.otio.reelscore" / "manifest.json").read_text())
    assert row["origin"] == "AI-generated" and row["provider"] == "local"
    assert row["model"] == manifest["requests"]["r01"]["response"]["model"]
    assert row["source_ids"] == "request:r01" and row["c2pa_signed"] == "no"
    assert row["requests"] == "r01"


def test_cuesheet_command_from_the_scored_edit_with_usage_and_flags(scored, tmp_path):
    target = tmp_path / "cues.csv"
    proc = cli("cuesheet", str(scored / "scored.otio"), "-o", str(target), "--usage", "mt",
               "--episode", "102", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "00:59:59;00-01:00:07;00" in proc.stdout
    row = read_rows(target)[0]
    assert (row["usage"], row["usage_description"], row["episode"]) == ("MT", "main title", "102")
    # the run's [cuesheet] fields travel in the manifest: no reelscore.toml in this directory
    assert row["composer"] == "Ana Lima (CAE 00123456789)"
    assert target.read_bytes().startswith(b"\xef\xbb\xbf")  # spreadsheets read the accents


def test_unknown_usage_is_refused_with_the_allowed_codes(scored, tmp_path):
    proc = cli("cuesheet", str(scored / "scored.otio.reelscore"), "-o",
               str(tmp_path / "x.csv"), "--usage", "ZZ")
    assert proc.returncode == 2
    assert "unknown cue usage 'ZZ'" in proc.stderr
    for code in ("BI", "BV", "VI", "VV", "MT", "ET"):
        assert code in proc.stderr
    assert not (tmp_path / "x.csv").exists()
    (tmp_path / "reelscore.toml").write_text('[cuesheet]\nusage = "loud"\n')
    proc = cli("cuesheet", str(scored / "scored.otio.reelscore"), cwd=tmp_path)
    assert proc.returncode == 2 and "cuesheet.usage" in proc.stderr and "'BI'" in proc.stderr


def test_the_score_clip_leads_to_a_job_folder_elsewhere(scored, tmp_path):
    work = tmp_path / "jobs" / "pilot"
    proc = cli("score", str(scored / "cut.otio"), "-o", str(tmp_path / "out.otio"),
               "--work-dir", str(work), "--seed", "3", cwd=scored)
    assert proc.returncode == 0, proc.stderr
    target = tmp_path / "from_edit.csv"
    proc = cli("cuesheet", str(tmp_path / "out.otio"), "-o", str(target))
    assert proc.returncode == 0, proc.stderr
    assert read_rows(target)[0]["record_out"] == "01:00:07;00"


def test_an_interrupted_job_lists_only_delivered_music(scored, tmp_path):
    job = tmp_path / "job"
    shutil.copytree(scored / "scored.otio.reelscore", job)
    manifest = json.loads((job / "manifest.json").read_text())
    manifest["requests"]["r01"]["status"] = "sent"  # killed while the service was generating
    del manifest["outputs"]
    (job / "manifest.json").write_text(json.dumps(manifest))
    proc = cli("cuesheet", str(job), "-o", str(tmp_path / "c.csv"))
    assert proc.returncode != 0 and "no music was delivered" in proc.stderr
    warnings: list[str] = []
    written = write_job_reports(job, warnings.append)
    assert job / "cues.csv" not in written and job / "sheet.svg" in written  # drawn without audio
    assert "cue sheet was not written" in warnings[0] and "reelscore cuesheet" in warnings[0]
    assert "no score WAV" in (job / "sheet.svg").read_text()


def test_a_report_that_cannot_be_written_never_fails_the_run(scored, tmp_path):
    out = tmp_path / "again.otio"
    (tmp_path / "again.otio.reelscore" / "cues.csv").mkdir(parents=True)  # cannot be replaced
    proc = cli("score", str(scored / "cut.otio"), "-o", str(out), "--seed", "3", cwd=scored)
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and "cue sheet was not written" in proc.stderr


# ---------------------------------------------------------------------- the XLSX for people

XLSX_HEAD = ["Cue", "Title", "Record in", "Record out", "Duration", "Duration (TC)", "Seconds",
             "Usage", "Usage description", "Composer", "Publisher", "Rights", "Origin",
             "Lineage", "Provider", "Model", "Source ids", "C2PA signed", "Requests"]


def read_xlsx(path: Path) -> tuple[Worksheet, int]:
    """The cue sheet and the row number of its column headers (found, not assumed)."""
    ws = openpyxl.load_workbook(path)["Cue sheet"]
    head = next(r for r in range(1, 30) if ws.cell(r, 1).value == "Cue")
    return ws, head


def test_score_writes_an_xlsx_cue_sheet_people_can_read(scored):
    ws, head = read_xlsx(scored / "scored.otio.reelscore" / "cues.xlsx")
    block = {ws.cell(r, 1).value: ws.cell(r, 2).value for r in range(2, head)}
    assert (block["Programme"], block["Episode"], block["Production"]) == (
        "Night Shift", "101", "NS-2026")
    assert block["Scored range"] == f"{otio_df(START)}-{otio_df(START + 240)}"
    assert block["Timecode"] == "29.97 fps, drop frame"
    assert [ws.cell(head, c).value for c in range(1, len(XLSX_HEAD) + 1)] == XLSX_HEAD
    assert ws.freeze_panes == f"A{head + 1}"  # the header row stays in view
    assert ws.column_dimensions["B"].width >= 30 and ws.column_dimensions["A"].width < 10
    col = {name: i + 1 for i, name in enumerate(XLSX_HEAD)}
    cue = {name: ws.cell(head + 1, c) for name, c in col.items()}
    assert cue["Record in"].value == otio_df(START) == "00:59:59;00"
    assert cue["Record out"].value == otio_df(START + 240) == "01:00:07;00"
    assert cue["Duration (TC)"].value == otio_df(240)
    for name in ("Record in", "Record out", "Duration (TC)"):  # text, never a clock time
        assert cue[name].data_type == "s" and cue[name].number_format == "@"
    assert cue["Seconds"].data_type == "n"
    assert cue["Seconds"].value == pytest.approx(240 * 1001 / 30000, abs=1e-9)
    assert (cue["Title"].value, cue["Usage"].value, cue["Composer"].value) == (
        "Opening / Chase", "BI", "Ana Lima (CAE 00123456789)")
    assert cue["Lineage"].value.startswith("generated in job ")
    totals = {name: ws.cell(head + 2, c).value for name, c in col.items()}
    assert (totals["Cue"], totals["Title"]) == ("Total", "1 cue(s)")
    assert totals["Duration (TC)"] == otio_df(240)
    assert totals["Seconds"] == pytest.approx(8.008, abs=1e-9)
    assert ws.max_row == head + 2


def test_cuesheet_picks_the_format_by_extension(scored, tmp_path):
    proc = cli("cuesheet", str(scored / "scored.otio"), "-o", str(tmp_path / "c.xlsx"),
               "--usage", "ET")
    assert proc.returncode == 0, proc.stderr
    ws, head = read_xlsx(tmp_path / "c.xlsx")
    assert ws.cell(head + 1, XLSX_HEAD.index("Usage") + 1).value == "ET"
    assert not (tmp_path / "c.csv").exists()
    proc = cli("cuesheet", str(scored / "scored.otio"), "-o", str(tmp_path / "c.pdf"))
    assert proc.returncode == 2 and ".csv" in proc.stderr and ".xlsx" in proc.stderr
    assert not (tmp_path / "c.pdf").exists()


def test_the_report_links_the_xlsx(scored):
    page = (scored / "scored.otio.reelscore" / "report.html").read_text()
    assert 'href="cues.xlsx"' in page and 'href="cues.csv"' in page


def test_hook_arguments_set_the_cue_sheet_fields(scored, tmp_path, monkeypatch):
    """``reelscore.cuesheet.*`` hook arguments over the [cuesheet] configuration, through an
    OTIO write: the job's cues.csv/xlsx carry them; a bad usage code names the hook key."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    tl = otio.adapters.read_from_file(str(scored / "cut.otio"))
    config = tmp_path / "site.toml"
    config.write_text(CONFIG)
    out = tmp_path / "hooked.otio"
    otio.adapters.write_to_file(tl, str(out), hook_function_argument_map={
        "reelscore.provider": "local", "reelscore.scenes": "clips", "reelscore.seed": 3,
        "reelscore.source": str(scored / "cut.otio"), "reelscore.config": str(config),
        "reelscore.cuesheet.composer": "Rui Costa", "reelscore.cuesheet.episode": 104,
        "reelscore.cuesheet.usage": "VI"})
    job = tmp_path / "hooked.otio.reelscore"
    row = read_rows(job / "cues.csv")[0]
    assert (row["composer"], row["episode"], row["usage"]) == ("Rui Costa", "104", "VI")
    assert (row["publisher"], row["programme_title"]) == ("Reel Music Ltd", "Night Shift")
    assert row["record_in"] == otio_df(START) and row["title"] == "Opening / Chase"
    ws, head = read_xlsx(job / "cues.xlsx")
    assert ws.cell(head + 1, XLSX_HEAD.index("Composer") + 1).value == "Rui Costa"
    with pytest.raises(otio.exceptions.OTIOError, match=r"reelscore\.cuesheet\.usage 'ZZ'"):
        otio.adapters.write_to_file(tl, str(tmp_path / "bad.otio"), hook_function_argument_map={
            "reelscore.provider": "local", "reelscore.cuesheet.usage": "ZZ"})
    assert not (tmp_path / "bad.otio").exists()
