"""``reelscore batch EDIT... -o OUTDIR``: score many edits at once (mounted by ``cli.py``).

Takes ``score``'s flags and configuration (the one builder: :mod:`reelscore.settings`); per-edit
settings come from a jobs file (:mod:`reelscore.batch_jobs`). Runs on this machine
(:class:`~reelscore.batch.LocalExecutor`) with a live status table, then writes the summary as a
table, ``OUTDIR/batch-summary.csv`` and ``.json``. Exit 0 when every edit is done or skipped, 8
when some failed, 9 when all failed (:mod:`reelscore.errors`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reelscore import options as opt
from reelscore.console import BatchTable, err, out, run_command, summary_table

if TYPE_CHECKING:
    from reelscore.batch_jobs import BatchItem
    from reelscore.settings import FrontEndValues

EDITS = typer.Argument(None, help="edit files: .otio .otioz .edl .xml .fcpxml .aaf")
OUTDIR = typer.Option(..., "-o", "--output", help="output folder: OUTDIR/<edit name>.scored.<ext> and its job folder beside it")
JOBS = typer.Option(None, "--jobs", help="jobs file (.toml with one job table per edit, or .csv): one edit per row with its own settings and output")
ONLY = typer.Option(None, "--only", help="score only the edit(s) of the batch with this output name (repeatable)")
OPENJD = typer.Option(None, "--openjd", help="write an Open Job Description template here (render, generate, finish steps; one task per edit) instead of running")
FORCE = typer.Option(False, "--force", help="replace existing outputs that were not finished by this batch's settings")


@opt.with_settings(opt.SCORING, opt.FILES)
def batch(
    edits: list[Path] | None = EDITS,
    outdir: Path = OUTDIR,
    jobs: Path | None = JOBS,
    config: Path | None = opt.CONFIG,
    profile: str | None = opt.PROFILE,
    force: bool = FORCE,
    stop_after: str | None = opt.STOP_AFTER,
    only: list[str] | None = ONLY,
    openjd: Path | None = OPENJD,
    scheduler: str | None = opt.SCHEDULER,
    path_map: list[str] | None = opt.PATH_MAP,
    as_json: bool = opt.JSON,
    debug: bool = opt.DEBUG,
    *,
    flags: dict[str, Any],
) -> None:
    """Score many edits at once: WORKERS edits render side by side (one clip each), and every
    request of the batch shares one service budget (--concurrency). A rerun skips finished edits
    and resumes the rest."""

    def body() -> None:
        from reelscore.settings import front_end_values

        values = front_end_values("flag", **flags, path_map=path_map)
        _run(edits or [], outdir, jobs, values, config=config, profile=profile, force=force,
             workers=flags["workers"], stop_after=stop_after, only=only or [], openjd=openjd,
             as_json=as_json, scheduler=scheduler)

    run_command(debug, body)


def select_items(items: list[BatchItem], names: list[str]) -> list[BatchItem]:
    """``--only NAME``: the items with these output names (an unknown name is an error)."""
    from reelscore.errors import InputError

    known = {i.name for i in items}
    for name in names:
        if name not in known:
            raise InputError(f"--only {name!r}: no edit of this batch is written to that name",
                             hint="names: " + ", ".join(sorted(known)))
    return [i for i in items if i.name in names]


def _run(edits: list[Path], outdir: Path, jobs: Path | None, values: FrontEndValues, *,
         config: Path | None, profile: str | None, force: bool, workers: int | None,
         stop_after: str | None, only: list[str], openjd: Path | None, as_json: bool,
         scheduler: str | None = None) -> None:
    from reelscore.batch import (
        BatchExecutor,
        BatchRun,
        LocalExecutor,
        check_outcome,
        item_settings,
        write_summary,
    )
    from reelscore.batch_dask import DaskExecutor
    from reelscore.batch_jobs import items_from_edits, items_from_jobs
    from reelscore.config import load_config
    from reelscore.errors import InputError
    from reelscore.pipeline import parse_stop_after
    from reelscore.render import default_workers
    from reelscore.settings import build_settings

    stage = parse_stop_after(stop_after)
    if bool(edits) == (jobs is not None):
        raise InputError("give the edits either as arguments or in a --jobs file (one of them)",
                         hint="reelscore batch EP01.otio EP02.otio -o OUT, or --jobs jobs.csv -o OUT")
    outdir = outdir.absolute()
    items = (items_from_jobs(jobs.absolute(), outdir) if jobs is not None
             else items_from_edits([e.absolute() for e in edits], outdir))
    if only:
        items = select_items(items, only)
    run = BatchRun(load_config(config, profile), values, force=force, stop_after=stage)
    for item in items:  # every row's settings are checked before anything runs
        try:
            item_settings(run, item, load_key=False)
        except InputError as exc:
            raise InputError(f"{item.row}: {exc.message}", hint=exc.hint) from None
    if openjd is not None:
        from reelscore.openjd import job_template, write_template

        if stage is not None:
            raise InputError("--openjd writes all three stages; leave out --stop-after",
                             hint="the template's steps run --stop-after render and generate")
        write_template(openjd, job_template(
            items, outdir, values, jobs=jobs.absolute() if jobs else None,
            config=config.absolute() if config else None, profile=profile, force=force,
            template_dir=openjd.absolute().parent))
        out.print(f"wrote {openjd}: steps Render -> Generate -> Finish, {len(items)} task(s) "
                  "each; the workers need the provider key in their environment or keyring")
        return
    # The key is looked up once here, so a missing one stops the batch before any work.
    scheduler = scheduler or run.config.values().get("scheduler")  # Dask workers use their own key
    shared = build_settings(run.config, values,
                            load_key=stop_after != "render" and not scheduler).settings
    if scheduler:  # an unreachable scheduler (or one without workers) fails before OUTDIR exists
        from reelscore.batch_dask import connect

        connect(scheduler).close()
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from reelscore.errors import OutputError

        raise OutputError(f"cannot create the output folder {str(outdir)!r}: {exc.strerror}",
                          hint="choose a writable -o folder") from exc
    executor: BatchExecutor = (
        DaskExecutor(scheduler, shared.concurrency) if scheduler
        else LocalExecutor(workers or default_workers(len(items)), shared.concurrency,
                           outdir / ".reelscore-slots"))
    with BatchTable(err) as table:
        results = executor.run(run, items, table)
    csv_path, json_path = write_summary(outdir, results)
    if as_json:
        out.print_json(json_path.read_text("utf-8"))
    else:
        out.print(summary_table(results))
        out.print(f"summary: {csv_path} and {json_path}")
    check_outcome(results, csv_path)
