"""Running a command in a terminal: the two consoles, logging, one-line errors, progress.

Every command body runs through :func:`run_command`: a :class:`ReelscoreError` prints one line
with its hint and exits with its code (:mod:`reelscore.errors`); Ctrl-C / SIGTERM / SIGHUP print
how to resume (130 / 143 / 129); anything else is a bug and says so in one line. Tracebacks and
debug logs only with ``--debug``.

Logging: reelscore's own warnings are always shown. Everything other libraries log (OTIO
adapters write through the root logger, e.g. the AAF adapter's ``Fraction(0,0)`` lines) is shown
only with ``--debug``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from reelscore.errors import ReelscoreError
from reelscore.settings import RequestState

if TYPE_CHECKING:
    from reelscore.batch import ItemResult, ItemStatus
    from reelscore.plan import ScorePlan

err = Console(stderr=True, highlight=False)  # progress, notes, errors
out = Console(highlight=False)  # results (tables, JSON)

T = TypeVar("T")


class _OwnOrDebug(logging.Filter):
    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        if self.debug:
            return True
        own = record.name == "reelscore" or record.name.startswith("reelscore.")
        return own and record.levelno >= logging.WARNING


_HANDLER_NAME = "reelscore-console"  # found again and replaced on the next command


def configure_logging(debug: bool) -> None:
    """One handler on the root logger; other libraries' records only with *debug*."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_OwnOrDebug(debug))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


def run_command(debug: bool, fn: Callable[[], T]) -> T:
    """Run a command body: actionable one-line errors, tracebacks only with *debug*."""
    from reelscore.signals import graceful_stop, resume_command

    configure_logging(debug)
    try:
        with graceful_stop():  # SIGTERM/SIGHUP stop like Ctrl-C; ffmpeg children die at once
            return fn()
    except ReelscoreError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:
        # Ctrl-C: 130; SIGTERM: 143; SIGHUP: 129 (reelscore.signals.Interrupted).
        what = getattr(exc, "signal_name", "SIGINT")
        err.print(f"interrupted ({what}): finished clips and stored music are kept in the job "
                  "folder (a request already sent is not sent again without --resubmit); "
                  f"resume with:\n  {resume_command()}", markup=False, soft_wrap=True)
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # a bug: still one line (the traceback with --debug)
        if debug:
            traceback.print_exc()
        err.print(f"error: unexpected {type(exc).__name__}: {exc}\n  hint: this is a bug in "
                  "reelscore; rerun with --debug and report the traceback", markup=False,
                  soft_wrap=True)
        raise typer.Exit(1) from None


class RichProgress:
    """ProgressSink on a rich progress display (stderr)."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description:<10}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.console = console
        self.requests: dict[str, str] = {}  # request id -> state, one line for all
        self.requests_task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is None:
            self.stage("")  # mark every stage done
        self.progress.stop()

    def stage(self, name: str, total: float | None = None) -> None:
        for other, tid in self.tasks.items():
            if other != name:
                task = self.progress.tasks[tid]
                if task.total is None:
                    self.progress.update(tid, total=1, completed=1)
                elif not task.finished:
                    self.progress.update(tid, completed=task.total)
        if not name:
            return
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total)
        elif total is not None:
            self.progress.update(self.tasks[name], total=total)

    def advance(self, name: str, amount: float = 1) -> None:
        if name in self.tasks:
            self.progress.advance(self.tasks[name], amount)

    def note(self, message: str) -> None:
        self.progress.console.print(f"  {message}")

    def request_state(self, request_id: str, state: RequestState) -> None:
        self.requests[request_id] = state
        line = "  ".join(f"{r} {s}" for r, s in self.requests.items())
        if self.requests_task is None:
            self.requests_task = self.progress.add_task(line, total=None)
        else:
            self.progress.update(self.requests_task, description=line)


class BatchTable:
    """StatusSink of ``reelscore batch``: a live table, one row per edit (stderr)."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        self.console = console
        self.rows: dict[str, ItemStatus] = {}
        self.started: dict[str, float] = {}
        self._live = Live(console=console, get_renderable=self.table, refresh_per_second=4,
                          transient=False)

    def __enter__(self) -> BatchTable:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def update(self, status: ItemStatus) -> None:
        self.rows[status.name] = status

    def table(self) -> Table:
        table = Table(title="reelscore batch", header_style="bold")
        for name in ("edit", "step", "progress", "in flight", "result"):
            table.add_column(name, justify="right" if name == "in flight" else "left")
        for s in self.rows.values():
            if s.total:
                progress = f"{min(100.0, 100 * s.done / s.total):3.0f}%"
            else:
                progress = "" if s.result or s.step == "waiting" else "..."
            table.add_row(s.name, s.step, progress, str(s.in_flight or ""), s.result or "")
        return table


def summary_table(results: Sequence[ItemResult]) -> Table:
    """The batch's final summary: one row per edit."""
    table = Table(title="reelscore batch summary", header_style="bold")
    for name in ("edit", "result", "stage", "requests", "LUFS", "seconds", "error"):
        table.add_column(name, justify="right" if name in ("requests", "LUFS", "seconds")
                         else "left")
    for r in results:
        error = " ".join(line.strip() for line in (r.error or "").splitlines())
        first_line = error if len(error) <= 160 else error[:157] + "..."
        table.add_row(r.name, r.outcome, r.stage, "" if r.requests is None else str(r.requests),
                      "" if r.integrated_lufs is None else f"{r.integrated_lufs:.2f}",
                      f"{r.seconds:.1f}", first_line)
    return table


def score_summary_table(summary: dict[str, Any], plan: ScorePlan) -> Table:
    """A score's summary (``score`` and ``demo``): one row per request with its drift."""
    table = Table(title="reelscore summary", show_header=True, header_style="bold")
    table.add_column("request")
    table.add_column("record in-out")
    table.add_column("videos", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("drift (frames)", justify="right")
    drifts = summary.get("drift_frames", [])
    for i, req in enumerate(plan.requests):
        secs = req.range.duration / float(plan.fraction_rate)
        table.add_row(req.id, f"{req.range.record_in}-{req.range.record_out}", str(len(req.videos)),
                      f"{secs:.2f}", f"{drifts[i]:+.2f}" if i < len(drifts) else "-")
    return table
