"""Write a job's reports (cues.csv, cues.xlsx, sheet.svg, sheet.png, report.html) into its job
folder; a report that cannot be written is a warning.

Called at the end of every score (steps/finishing.py): the music was generated and may have been
paid for, so a failure here never fails the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from reelscore.errors import ReelscoreError
from reelscore.reports.cuesheet import CUES_NAME, build_cues, fields_of, write_cuesheet
from reelscore.reports.draw import to_svg
from reelscore.reports.html import REPORT_NAME, write_report
from reelscore.reports.jobfolder import read_job_folder
from reelscore.reports.sheet import SHEET_PNG, SHEET_SVG, build_sheet, write_sheet
from reelscore.reports.xlsx import CUES_XLSX, write_cuesheet_xlsx

log = logging.getLogger(__name__)


def write_job_reports(job_dir: Path, warn: Callable[[str], None]) -> list[Path]:
    """The cue sheet, the score sheet and report.html into *job_dir*; each failure goes to *warn* and the
    others still run."""
    written: list[Path] = []
    try:
        job = read_job_folder(job_dir)
    except (ReelscoreError, OSError, ValueError) as exc:
        warn(f"no reports were written ({_first_line(exc)})")
        return written
    try:
        cues = build_cues(job, fields_of(job))
        written.append(write_cuesheet(cues, job.dir / CUES_NAME))
        written.append(write_cuesheet_xlsx(job, cues, job.dir / CUES_XLSX))
    except (ReelscoreError, OSError, ValueError) as exc:
        log.debug("cue sheet not written", exc_info=True)
        warn(f"the cue sheet was not written ({_first_line(exc)}); make it later with "
             f"reelscore cuesheet {job_dir}")
    sheet_svg: str | None = None
    try:
        drawing = build_sheet(job)  # drawn once, for sheet.svg, sheet.png and report.html
        written += write_sheet(job, job.dir / SHEET_SVG, job.dir / SHEET_PNG, drawing=drawing)
        sheet_svg = to_svg(drawing)
    except (ReelscoreError, OSError, ValueError) as exc:
        log.debug("score sheet not written", exc_info=True)
        warn(f"the score sheet was not written ({_first_line(exc)}); make it later with "
             f"reelscore sheet {job_dir}")
    try:
        written.append(write_report(job, job.dir / REPORT_NAME, sheet_svg=sheet_svg))
    except (ReelscoreError, OSError, ValueError) as exc:
        log.debug("report not written", exc_info=True)
        warn(f"report.html was not written ({_first_line(exc)}); make it later with "
             f"reelscore report {job_dir}")
    return written


def _first_line(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, ReelscoreError) else str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
