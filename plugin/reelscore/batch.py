"""Score many edits at once: ``reelscore batch``'s runner over an executor.

Each :class:`~reelscore.batch_jobs.BatchItem` is scored by :func:`score_item` exactly as
``reelscore score`` would score it (the one settings builder, its own job folder, resume,
never-pay-twice, atomic outputs). An item whose output exists and whose job finished from the same
edit with the same settings is skipped, so a rerun of a batch skips finished edits and resumes the
rest from their job folders. One item's failure is its result; the others go on.

A :class:`BatchExecutor` decides where items run and reports each item's :class:`ItemStatus`
(edit, step, progress, requests in flight, result) to a :class:`StatusSink`.
:class:`LocalExecutor` runs them in worker processes on this machine: ``workers`` edits at once,
each rendering one clip at a time (the render budget), and every request of the batch holding one
of ``concurrency`` :class:`~reelscore.slots.FileSlots` while it is at the service (the service
budget, shared across the batch).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import multiprocessing
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from reelscore.batch_jobs import BatchItem
from reelscore.config import EffectiveConfig
from reelscore.errors import BatchFailedError, BatchPartialError, ReelscoreError
from reelscore.fsutil import atomic_write_text, sha256_file
from reelscore.pipeline import StopAfter, run_until, score_file
from reelscore.settings import BuiltSettings, FrontEndValues, RequestState, build_settings
from reelscore.slots import FileSlots, ServiceSlots

Outcome = Literal["done", "skipped", "failed"]
_BUSY: frozenset[RequestState] = frozenset({"uploading", "generating"})


@dataclass(frozen=True)
class BatchRun:
    """What every item of a batch shares: configuration layers and the batch's own values."""

    config: EffectiveConfig
    values: FrontEndValues
    force: bool = False
    stop_after: StopAfter | None = None  # farm stages: stop once rendered / generated


@dataclass(frozen=True)
class ItemStatus:
    """Where one edit stands. ``result`` is None while it runs."""

    name: str
    step: str  # waiting, plan, render, generate, conform, normalise, write ...
    done: float = 0
    total: float | None = None
    in_flight: int = 0  # its requests at the service now
    result: Outcome | None = None


class StatusSink(Protocol):
    def update(self, status: ItemStatus) -> None: ...


@dataclass(frozen=True)
class ItemResult:
    """One edit's result, as the summary lists it."""

    name: str
    edit: str
    output: str
    job: str
    outcome: Outcome
    stage: str  # "finish", or the stage a --stop-after run stopped after
    seconds: float
    exit_code: int = 0
    error: str | None = None
    integrated_lufs: float | None = None
    requests: int | None = None


class BatchExecutor(Protocol):
    def run(self, run: BatchRun, items: Sequence[BatchItem],
            sink: StatusSink) -> list[ItemResult]:
        """Run every item (results in the order of *items*), reporting to *sink*."""
        ...


def item_settings(run: BatchRun, item: BatchItem, *, load_key: bool) -> BuiltSettings:
    """The item's settings from the one builder. A batch renders one clip at a time per edit:
    the render budget is the number of edits at once."""
    built = build_settings(run.config, item.values(run.values), load_key=load_key)
    return BuiltSettings(built.settings.model_copy(update={"workers": 1}),
                         built.provider_config, built.sources)


def is_finished(item: BatchItem, built: BuiltSettings) -> bool:
    """The output exists and its job finished it from this edit with these settings."""
    manifest = item.work_dir / "manifest.json"
    if not (item.output.is_file() and manifest.is_file() and item.edit.is_file()):
        return False
    try:
        data = json.loads(manifest.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    outputs, source = data.get("outputs") or {}, data.get("input") or {}
    return (outputs.get("edit") == str(item.output) and bool(outputs.get("edit_verified"))
            and source.get("sha256") == sha256_file(item.edit)
            and data.get("settings") == built.settings.model_dump(mode="json"))


class ItemProgress:
    """A ProgressSink that reports one item's stage, progress and requests as ItemStatus."""

    def __init__(self, name: str, emit: Callable[[ItemStatus], None],
                 every_s: float = 0.2) -> None:
        self.name, self.emit, self.every_s = name, emit, every_s
        self.step, self.done, self.total = "plan", 0.0, None
        self.total_of: dict[str, float | None] = {}
        self.done_of: dict[str, float] = {}
        self.states: dict[str, RequestState] = {}
        self._last = 0.0

    def _send(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.every_s:
            self._last = now
            in_flight = sum(1 for s in self.states.values() if s in _BUSY)
            self.emit(ItemStatus(self.name, self.step, self.done_of.get(self.step, 0.0),
                                 self.total_of.get(self.step), in_flight))

    def stage(self, name: str, total: float | None = None) -> None:
        if name:
            self.step = name
            self.total_of[name] = total if total is not None else self.total_of.get(name)
            self.done_of.setdefault(name, 0.0)
        self._send(force=True)

    def advance(self, name: str, amount: float = 1) -> None:
        self.done_of[name] = self.done_of.get(name, 0.0) + amount
        self._send()

    def note(self, message: str) -> None:
        return None  # the summary says what happened; notes stay in the job's manifest

    def request_state(self, request_id: str, state: RequestState) -> None:
        self.states[request_id] = state
        self._send(force=True)


def score_item(run: BatchRun, item: BatchItem, emit: Callable[[ItemStatus], None],
               slots: ServiceSlots | None) -> ItemResult:
    """Score one item (in whichever process or machine runs it); never raises a ReelscoreError."""
    started = time.monotonic()

    def result(outcome: Outcome, stage: str, **extra: Any) -> ItemResult:
        emit(ItemStatus(item.name, stage if outcome != "failed" else "failed", result=outcome))
        return ItemResult(name=item.name, edit=str(item.edit), output=str(item.output),
                          job=str(item.work_dir), outcome=outcome, stage=stage,
                          seconds=round(time.monotonic() - started, 3), **extra)

    progress = ItemProgress(item.name, emit)
    try:
        built = item_settings(run, item, load_key=False)
        if is_finished(item, built):
            return result("skipped", "finish")
        if run.stop_after is None or run.stop_after == "generate":
            built = item_settings(run, item, load_key=True)
        force = run.force
        if run.stop_after is not None:
            done = run_until(item.edit, item.output, built.settings, run.stop_after,
                             work_dir=item.work_dir, force=force,
                             provider_config=built.provider_config, progress=progress,
                             slots=slots)
            return result("done", done.stage, requests=done.requests)
        scored = score_file(item.edit, item.output, built.settings, work_dir=item.work_dir,
                            force=force, provider_config=built.provider_config,
                            progress=progress, slots=slots)
        return result("done", "finish", requests=len(scored.plan.requests),
                      integrated_lufs=scored.summary["integrated_lufs"])
    except ReelscoreError as exc:
        return result("failed", progress.step, exit_code=exc.exit_code, error=str(exc))
    except Exception as exc:  # a bug in one item must not stop the batch; it is reported
        return result("failed", progress.step, exit_code=1,
                      error=f"unexpected {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------ local processes

_STATUS: Any = None  # the worker process's status queue (set by _init_worker)


def _init_worker(status: Any) -> None:
    global _STATUS
    _STATUS = status


def _run_in_worker(run: BatchRun, item: BatchItem, slots: ServiceSlots | None) -> ItemResult:
    return score_item(run, item, _STATUS.put, slots)


class LocalExecutor:
    """Worker processes on this machine: *workers* edits at once, *concurrency* requests of
    the whole batch at the service at once (file-lock slots in *slots_dir*)."""

    def __init__(self, workers: int, concurrency: int, slots_dir: Path) -> None:
        self.workers = max(1, workers)
        self.slots = FileSlots(slots_dir, concurrency)

    def run(self, run: BatchRun, items: Sequence[BatchItem],
            sink: StatusSink) -> list[ItemResult]:
        for item in items:
            sink.update(ItemStatus(item.name, "waiting"))
        ctx = multiprocessing.get_context("spawn")  # the parent has threads: never fork
        status: Any = ctx.Queue()
        with ProcessPoolExecutor(max_workers=min(self.workers, len(items)) or 1, mp_context=ctx,
                                 initializer=_init_worker, initargs=(status,)) as pool:
            futures = [pool.submit(_run_in_worker, run, item, self.slots) for item in items]
            try:
                while not all(f.done() for f in futures):
                    _drain(status, sink, timeout=0.1)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            _drain(status, sink, timeout=0.0)
            results = [_result_of(f, item) for f, item in zip(futures, items, strict=True)]
        for r in results:
            if r.outcome == "failed":
                sink.update(ItemStatus(r.name, "failed", result="failed"))
        return results


def _drain(status: Any, sink: StatusSink, timeout: float) -> None:
    try:
        sink.update(status.get(timeout=timeout) if timeout else status.get_nowait())
        while True:
            sink.update(status.get_nowait())
    except queue.Empty:
        return


def _result_of(future: Future[ItemResult], item: BatchItem) -> ItemResult:
    try:
        return future.result()
    except BrokenProcessPool as exc:
        why = f"its worker process died ({exc})"
    except Exception as exc:  # e.g. the item could not be sent to a worker
        why = f"unexpected {type(exc).__name__}: {exc}"
    return ItemResult(name=item.name, edit=str(item.edit), output=str(item.output),
                      job=str(item.work_dir), outcome="failed", stage="-", seconds=0.0,
                      exit_code=1, error=why + "; rerun the batch to resume it")


def check_outcome(results: Sequence[ItemResult], summary: Path) -> None:
    """Raise when some (exit 8) or all (exit 9) edits failed."""
    failed = [r for r in results if r.outcome == "failed"]
    if not failed:
        return
    hint = f"see {summary}; rerun the same command to retry them (finished edits are skipped)"
    if len(failed) == len(results):
        raise BatchFailedError(f"all {len(results)} edit(s) failed", hint=hint)
    raise BatchPartialError(f"{len(failed)} of {len(results)} edit(s) failed: "
                            + ", ".join(r.name for r in failed), hint=hint)


SUMMARY_CSV = "batch-summary.csv"
SUMMARY_JSON = "batch-summary.json"


def write_summary(outdir: Path, results: Sequence[ItemResult]) -> tuple[Path, Path]:
    """``OUTDIR/batch-summary.csv`` and ``.json``: one row per edit (written atomically)."""
    rows = [dataclasses.asdict(r) for r in results]
    names = [f.name for f in dataclasses.fields(ItemResult)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path, json_path = outdir / SUMMARY_CSV, outdir / SUMMARY_JSON
    atomic_write_text(csv_path, buf.getvalue())
    counts = {o: sum(1 for r in results if r.outcome == o) for o in ("done", "skipped", "failed")}
    atomic_write_text(json_path, json.dumps({"edits": len(results), **counts, "items": rows},
                                            indent=2) + "\n")
    return csv_path, json_path
