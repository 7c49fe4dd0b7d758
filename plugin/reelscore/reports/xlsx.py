"""The music cue sheet as an XLSX workbook for people (``cues.xlsx``, written with openpyxl).

One sheet, "Cue sheet": a programme header block (programme, episode, production, scored range,
timecode form, job), then one row per cue under a bold header row that stays in view (frozen
panes; it also repeats on every printed page), then a totals row. Timings are text in the edit's
timecode form (``HH:MM:SS;FF`` on a drop-frame timeline) so a spreadsheet never turns them into
clock times; the lengths are also plain numbers of seconds (``Seconds``) that sum and sort.
The rows hold what ``cues.csv`` holds (docs/cuesheet.md), under readable column names.
"""

from __future__ import annotations

from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from reelscore.fsutil import atomic_output
from reelscore.reports.cuesheet import Cue
from reelscore.reports.jobfolder import JobFolder
from reelscore.timecode import frames_to_tc

CUES_XLSX = "cues.xlsx"
SHEET_TITLE = "Cue sheet"
TEXT, SECONDS = "@", "0.000"

# (header, Cue field, width in characters); "seconds" is the number column.
XLSX_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("Cue", "cue", 6), ("Title", "title", 34), ("Record in", "record_in", 13),
    ("Record out", "record_out", 13), ("Duration", "duration", 9),
    ("Duration (TC)", "duration_tc", 13), ("Seconds", "seconds", 10), ("Usage", "usage", 7),
    ("Usage description", "usage_description", 24), ("Composer", "composer", 28),
    ("Publisher", "publisher", 24), ("Rights", "rights", 30), ("Origin", "origin", 14),
    ("Lineage", "lineage", 40), ("Provider", "provider", 12), ("Model", "model", 16),
    ("Source ids", "source_ids", 24), ("C2PA signed", "c2pa_signed", 11),
    ("Requests", "requests", 14))
BOLD = Font(bold=True)
HEAD_FILL = PatternFill("solid", fgColor="DDDDDD")


def header_block(job: JobFolder, cues: list[Cue]) -> list[tuple[str, str]]:
    """The programme fields above the cue rows (label, value)."""
    assert job.plan is not None
    plan = job.plan
    first = cues[0] if cues else None
    form = f"{float(job.rate):g} fps" + (", drop frame" if plan.drop_frame else "")
    return [("Programme", first.programme_title if first else job.title),
            ("Episode", first.episode if first else ""),
            ("Production", first.production if first else ""),
            ("Scored range", f"{plan.range.record_in}-{plan.range.record_out}"),
            ("Timecode", form),
            ("Job", str(job.manifest.get("job_id", "")))]


def write_cuesheet_xlsx(job: JobFolder, cues: list[Cue], path: Path) -> Path:
    """*cues* as the workbook described above, written atomically to *path*."""
    assert job.plan is not None
    rate, df = job.rate, job.plan.drop_frame
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = SHEET_TITLE
    ws.cell(1, 1, "Music cue sheet").font = Font(bold=True, size=14)
    row = 2
    for label, value in header_block(job, cues):
        ws.cell(row, 1, label).font = BOLD
        ws.cell(row, 2, value).number_format = TEXT
        row += 1
    row += 1
    head = row
    for col, (title, _field, width) in enumerate(XLSX_COLUMNS, 1):
        cell = ws.cell(head, col, title)
        cell.font, cell.fill = BOLD, HEAD_FILL
        cell.alignment = Alignment(vertical="center")
        ws.column_dimensions[get_column_letter(col)].width = width
    for cue in cues:
        row += 1
        values = {**asdict(cue), "seconds": float(Fraction(cue.frames) / rate)}
        for col, (_title, field, _width) in enumerate(XLSX_COLUMNS, 1):
            cell = ws.cell(row, col, values[field])
            cell.number_format = SECONDS if field == "seconds" else TEXT
    row += 1
    frames = sum(c.frames for c in cues)
    whole = round(Fraction(frames) / rate)
    totals = {"cue": "Total", "title": f"{len(cues)} cue(s)",
              "duration": f"{whole // 60:02d}:{whole % 60:02d}",
              "duration_tc": frames_to_tc(frames, rate, drop_frame=df),
              "seconds": float(Fraction(frames) / rate)}
    for col, (_title, field, _width) in enumerate(XLSX_COLUMNS, 1):
        if field in totals:
            cell = ws.cell(row, col, totals[field])
            cell.font = BOLD
            cell.number_format = SECONDS if field == "seconds" else TEXT
    ws.freeze_panes = ws.cell(head + 1, 1)
    ws.print_title_rows = f"{head}:{head}"
    with atomic_output(path) as tmp:
        wb.save(tmp)
    return path
