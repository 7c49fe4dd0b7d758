"""The job-report sub-commands: what a scored job hands on (mounted by ``cli.py``).

    reelscore cuesheet JOB [-o cues.xlsx]        the music cue sheet of a job (CSV or XLSX)
    reelscore sheet JOB [-o sheet.png]           the score sheet picture of a job (PNG/SVG)
    reelscore report JOB [-o report.html]        the job's self-contained HTML report
    reelscore preview EDIT -o review.mp4         the review movie of a scored edit

The first three read the job folder only (:mod:`reelscore.reports`, issue 16), also of an
interrupted run; ``preview`` draws on :mod:`reelscore.preview`. Every body runs through
:func:`reelscore.console.run_command` (one-line errors, exit codes of :mod:`reelscore.errors`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from reelscore import options as opt
from reelscore.console import err, out, run_command


def cuesheet(
    job: Path = typer.Argument(..., help="job folder (the run's --work-dir) or the scored edit"),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="cues.csv or cues.xlsx: the extension picks the "
                                       "format (default: both, in the job folder)"),
    usage: str | None = typer.Option(None, "--usage", help="cue usage code: BI (background "
                                     "instrumental, default), BV, VI, VV, MT, ET"),
    composer: str | None = typer.Option(None, "--composer", help="over [cuesheet] composer"),
    publisher: str | None = typer.Option(None, "--publisher", help="over [cuesheet] publisher"),
    programme: str | None = typer.Option(None, "--programme", help="over [cuesheet] programme"),
    episode: str | None = typer.Option(None, "--episode", help="over [cuesheet] episode"),
    config: Path | None = opt.CONFIG,
    profile: str | None = opt.PROFILE,
    debug: bool = opt.DEBUG,
) -> None:
    """Write the music cue sheet of a scored (or interrupted) job as CSV and/or XLSX."""

    def body() -> None:
        from reelscore.config import CueSheetSection, load_config
        from reelscore.errors import InputError
        from reelscore.reports.cuesheet import (
            CUES_NAME,
            build_cues,
            check_usage,
            fields_of,
            write_cuesheet,
        )
        from reelscore.reports.jobfolder import read_job_folder
        from reelscore.reports.xlsx import CUES_XLSX, write_cuesheet_xlsx
        from reelscore.settings import cuesheet_section

        if output is not None and output.suffix.lower() not in (".csv", ".xlsx"):
            raise InputError(f"-o {output}: the cue sheet is written as .csv or .xlsx",
                             hint="name the output cues.csv or cues.xlsx (no -o: both, in the "
                             "job folder)")
        if usage is not None:
            check_usage(usage)
        folder = read_job_folder(job)
        configured = cuesheet_section(load_config(config, profile).values())
        flags = CueSheetSection(composer=composer, publisher=publisher, programme=programme,
                                episode=episode)
        fields = fields_of(folder, configured).model_copy(
            update=flags.model_dump(exclude_none=True))
        cues = build_cues(folder, fields, usage=usage)
        if output is None:
            targets = [write_cuesheet(cues, folder.dir / CUES_NAME),
                       write_cuesheet_xlsx(folder, cues, folder.dir / CUES_XLSX)]
        elif output.suffix.lower() == ".xlsx":
            targets = [write_cuesheet_xlsx(folder, cues, output)]
        else:
            targets = [write_cuesheet(cues, output)]
        for line in folder.missing:
            err.print(f"note: missing {line}")
        out.print(f"wrote {' and '.join(map(str, targets))}: {len(cues)} cue(s)")
        for cue in cues:
            out.print(f"  {cue.cue}  {cue.record_in}-{cue.record_out}  {cue.duration}  "
                      f"{cue.usage}  {cue.title}")

    run_command(debug, body)


def sheet(
    job: Path = typer.Argument(..., help="job folder (the run's --work-dir) or the scored edit"),
    output: Path | None = typer.Option(None, "-o", "--output", help="sheet.png or sheet.svg "
                                       "(default: both, in the job folder)"),
    debug: bool = opt.DEBUG,
) -> None:
    """Draw the score sheet of a job: scenes, thumbnails, waveform, loudness, timecode."""

    def body() -> None:
        from reelscore.errors import InputError
        from reelscore.reports.jobfolder import read_job_folder
        from reelscore.reports.sheet import SHEET_PNG, SHEET_SVG, write_sheet

        folder = read_job_folder(job)
        if output is None:
            written = write_sheet(folder, folder.dir / SHEET_SVG, folder.dir / SHEET_PNG)
        elif output.suffix.lower() in (".png", ".svg"):
            png = output.suffix.lower() == ".png"
            written = write_sheet(folder, None if png else output, output if png else None)
        else:
            raise InputError(f"-o {output}: the score sheet is written as .png or .svg",
                             hint="name the output sheet.png or sheet.svg")
        for path in written:
            out.print(f"wrote {path}")

    run_command(debug, body)


def report(
    job: Path = typer.Argument(..., help="job folder (the run's --work-dir) or the scored edit"),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="HTML to write (default: report.html in the job folder)"),
    debug: bool = opt.DEBUG,
) -> None:
    """Write the job's self-contained HTML report (also for an interrupted run)."""

    def body() -> None:
        from reelscore.reports.html import REPORT_NAME, write_report
        from reelscore.reports.jobfolder import read_job_folder

        folder = read_job_folder(job)
        path = write_report(folder, output or folder.dir / REPORT_NAME)
        out.print(f"wrote {path}" + (f" ({len(folder.missing)} thing(s) missing: an "
                                     "interrupted run)" if folder.missing else ""))

    run_command(debug, body)


def preview(
    edit: Path = typer.Argument(..., help="an edit `reelscore score` wrote (its job folder beside it)"),
    output: Path = typer.Option(..., "-o", "--output", help="review movie to write (.mp4, H.264/AAC)"),
    score_level: float = opt.SCORE_LEVEL,
    force: bool = typer.Option(False, "--force", help="replace an existing OUTPUT"),
    reference: Path | None = typer.Option(None, "--reference", help="take the picture from this flattened movie of the cut (default: the job's rendered clips, else the run's own --reference)"),
    reference_start: str | None = opt.REFERENCE_START,
    media_root: list[Path] | None = opt.MEDIA_ROOT,
    debug: bool = opt.DEBUG,
) -> None:
    """Write a review movie of a scored edit: picture, the edit's sound and the score, with
    burnt-in record timecode and scene numbers."""

    def body() -> None:
        from reelscore.preview import write_preview

        result = write_preview(edit, output, score_level_db=score_level, force=force,
                               reference=reference, reference_start=reference_start,
                               media_roots=media_root or [])
        out.print(f"wrote {result.path}: {result.frames} frames, {result.record_in}-"
                  f"{result.record_out}, score at {result.score_level_db:+.1f} dB")

    run_command(debug, body)
