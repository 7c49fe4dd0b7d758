"""``reelscore batch --scheduler tcp://HOST:8786``: a batch's steps as tasks on a Dask cluster.

Each edit becomes three dependent tasks, each the same item run as ``reelscore batch`` runs it
locally (:func:`reelscore.batch.score_item`, so the same settings builder, job folder, resume and
never-pay-twice rules), stopping after a stage:

- ``render`` (stop after render): the clips, on whichever worker is free (every worker reads the
  media over shared storage; no key is needed);
- ``generate`` (stop after generate): the requests, each holding one of the account's slots, a
  ``distributed.Semaphore`` named after the service (:class:`DaskSlots`), so every batch on the
  cluster together keeps to the account's concurrency. The task leaves the worker's thread pool
  while it waits on the network (``secede``), so renders go on beside it;
- ``finish``: conform, loudness, write-back and reports, anywhere; the result is the item's.

The job folder on shared storage is the truth: a task that reruns on another worker (its worker
died; Dask reschedules it, up to ``distributed.scheduler.allowed-failures`` times) resumes from
what the job folder holds: clips whose key and hash match are not rendered again, stored answers
are not requested again, and a request that was at the service when its worker died is not sent
again (it may have been charged; ``--resubmit`` decides). One task per job folder runs at a time
(a lease-based semaphore per folder); the job lock left by a worker that died is recognised by
its marker and cleared by the next holder of that lease, on any machine.

Paths: the submitting machine's edit, output, job folder and path-valued settings are mapped
with ``path_map`` (:mod:`reelscore.pathmap`) before they are sent; the worker maps the media named
inside the edit the same way, and a worker that cannot see a path names it with the mapping tried.
Keys never travel with the tasks: each worker reads its own (environment, credentials file or
keyring), as ``reelscore score`` does.

Dask is optional (``pip install 'reelscore[dask]'``); nothing here is imported without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import queue
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelscore.batch import BatchRun, ItemResult, ItemStatus, StatusSink, item_settings, score_item
from reelscore.batch_jobs import BatchItem
from reelscore.errors import InputError, ReelscoreError
from reelscore.pathmap import PathMap
from reelscore.pipeline import StopAfter

DEFAULT_CONNECT_TIMEOUT_S = 5.0
_PATH_SETTINGS = ("reference", "composition", "brief", "previous")
_HINT_START = ("start one with `dask scheduler` (it listens on tcp://HOST:8786) and workers with "
               "`dask worker tcp://HOST:8786` on machines that see the media; or leave out "
               "--scheduler to run on this machine")


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise InputError("--scheduler needs Dask, which is not installed",
                         hint="pip install 'reelscore[dask]' (here and on every worker)") from exc
    return distributed


# ------------------------------------------------------------------------ service slots

def slot_name(provider: str, base_url: str | None) -> str:
    """The cluster-wide semaphore of one account: one per provider and service address."""
    where = hashlib.sha256((base_url or "default").encode()).hexdigest()[:12]
    return f"reelscore-service-{provider}-{where}"


class DaskSlots:
    """:class:`~reelscore.slots.ServiceSlots` over a ``distributed.Semaphore``: *count* requests
    at the service at once across every worker of the cluster.

    Leases are kept alive by the holder's worker; a worker that dies loses them after
    ``distributed.scheduler.locks.lease-timeout`` (30 s by default). The object is only a name
    and a count: it travels with the tasks and opens the semaphore where it is used.
    """

    def __init__(self, name: str, count: int) -> None:
        if count < 1:
            raise InputError(f"the service concurrency budget must be 1 or more, not {count!r}",
                             hint="pass --concurrency N (N >= 1)")
        self.name, self.count = name, count
        self._sem: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "count": self.count}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name, self.count, self._sem = state["name"], state["count"], None

    def open(self) -> DaskSlots:
        """Open the semaphore; in a task's own thread (the requests' threads have no worker
        context to find the scheduler from)."""
        if self._sem is None:
            self._sem = _distributed().Semaphore(max_leases=self.count, name=self.name)
        return self

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self.open()
        self._sem.acquire()
        try:
            yield
        finally:
            self._sem.release()


# ------------------------------------------------------------------------ the scheduler

def connect(address: str, *, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> Any:
    """A client of the scheduler at *address*, with at least one worker; an InputError naming the
    address within about *timeout_s* seconds otherwise (before anything is rendered)."""
    distributed = _distributed()
    if "://" not in address:
        raise InputError(f"--scheduler {address!r} is not an address like tcp://HOST:8786",
                         hint=_HINT_START)
    try:
        client = distributed.Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address} within {timeout_s:g} s "
                         f"({type(exc).__name__})", hint=_HINT_START) from None
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (OSError, TimeoutError):
        client.close()
        raise InputError(f"the Dask scheduler at {address} has no workers",
                         hint="start workers with `dask worker " + address + "`") from None
    return client


# ------------------------------------------------------------------------ paths

def map_item(run: BatchRun, item: BatchItem) -> tuple[BatchItem, PathMap]:
    """*item* with every submitting-machine path as the workers see it, and the map used."""
    settings = item_settings(run, item, load_key=False).settings
    pm = PathMap.parse(settings.path_map, name="path_map")

    def to(p: Path) -> Path:
        return Path(pm.map(str(p)))

    overrides = dict(item.overrides)
    for key in _PATH_SETTINGS:
        value = getattr(settings, key)
        if value is not None:
            overrides[key] = to(value)
    if settings.media_roots:
        overrides["media_roots"] = [to(r) for r in settings.media_roots]
    return dataclasses.replace(item, edit=to(item.edit), output=to(item.output),
                               work_dir=to(item.work_dir), overrides=overrides), pm


def _check_visible(original: BatchItem, mapped: BatchItem, pm: PathMap) -> None:
    host = socket.gethostname()
    for what, before, after, ok in (
            ("the edit", original.edit, mapped.edit, mapped.edit.is_file()),
            ("the output folder", original.output.parent, mapped.output.parent,
             mapped.output.parent.is_dir())):
        if not ok:
            raise InputError(
                f"worker {host} cannot see {what} {str(before)!r} (looked for {str(after)!r}; "
                f"{pm.explain(str(before))})",
                hint="mount the shared storage on every worker, and give --path-map "
                     "SUBMITTING=WORKER (or path_map in the configuration) where the mounts differ")


# ------------------------------------------------------------------------ tasks (on workers)

@contextlib.contextmanager
def _job_lease(work_dir: Path) -> Iterator[None]:
    """Hold the job folder cluster-wide; clear the job lock a dead Dask task left behind.

    The marker ``.dask-holder`` names the process of the task that holds the lease. Holding the
    lease now means that task is gone, so a ``.lock`` written by that same process is stale
    (a lock taken by anything else is left alone: ``reelscore score`` refuses it as usual).
    """
    name = "reelscore-job-" + hashlib.sha256(str(work_dir).encode()).hexdigest()[:16]
    lease = _distributed().Semaphore(max_leases=1, name=name)
    lease.acquire()
    marker, lock = work_dir / ".dask-holder", work_dir / ".lock"
    me = f"{os.getpid()} {socket.gethostname()}"
    try:
        with contextlib.suppress(OSError):
            if marker.read_text() == lock.read_text():
                lock.unlink()
        work_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(me)
        yield
    finally:
        with contextlib.suppress(OSError):
            if marker.read_text() == me:
                marker.unlink()
        lease.release()


def _failed(item: BatchItem, exc: ReelscoreError) -> ItemResult:
    return ItemResult(name=item.name, edit=str(item.edit), output=str(item.output),
                      job=str(item.work_dir), outcome="failed", stage="-", seconds=0.0,
                      exit_code=exc.exit_code, error=str(exc))


def run_stage(stage: StopAfter | None, run: BatchRun, original: BatchItem, item: BatchItem,
              pm: PathMap, slots: DaskSlots, topic: str,
              before: ItemResult | None = None) -> ItemResult:
    """One stage of one item on a worker (None = finish); an earlier failure is passed on."""
    distributed = _distributed()
    if before is not None and before.outcome == "failed":
        return before
    worker = distributed.get_worker()

    def emit(status: ItemStatus) -> None:
        worker.log_event(topic, dataclasses.asdict(status))

    try:
        _check_visible(original, item, pm)
    except ReelscoreError as exc:
        emit(ItemStatus(item.name, "failed", result="failed"))
        return _failed(original, exc)
    staged = dataclasses.replace(run, stop_after=stage)
    seceded = stage == "generate"  # waiting on the service: give the thread to renders
    if seceded:
        distributed.secede()
    try:
        with _job_lease(item.work_dir):
            return score_item(staged, item, emit, slots.open() if stage != "render" else None)
    finally:
        if seceded:
            distributed.rejoin()


# ------------------------------------------------------------------------ the executor

@dataclass
class DaskExecutor:
    """:class:`~reelscore.batch.BatchExecutor` on the Dask cluster at *scheduler_address*.

    *concurrency* is the account's limit: requests of the whole cluster at the service at once.
    """

    scheduler_address: str
    concurrency: int
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S

    def run(self, run: BatchRun, items: Sequence[BatchItem],
            sink: StatusSink) -> list[ItemResult]:
        client = connect(self.scheduler_address, timeout_s=self.connect_timeout_s)
        try:
            return self._run(client, run, items, sink)
        finally:
            client.close()

    def _run(self, client: Any, run: BatchRun, items: Sequence[BatchItem],
             sink: StatusSink) -> list[ItemResult]:
        updates: queue.Queue[ItemStatus] = queue.Queue()
        topic = f"reelscore-batch-{os.getpid()}-{id(self)}"
        names = {f.name for f in dataclasses.fields(ItemStatus)}  # the worker adds its own keys
        client.subscribe_topic(topic, lambda event: updates.put(
            ItemStatus(**{k: v for k, v in event[1].items() if k in names})))
        finals: list[Any] = []
        for item in items:
            sink.update(ItemStatus(item.name, "waiting"))
            mapped, pm = map_item(run, item)
            settings = item_settings(run, item, load_key=False)
            slots = DaskSlots(slot_name(settings.settings.provider,
                                        settings.provider_config.base_url), self.concurrency)
            result: Any = None
            for priority, stage in enumerate(_stages(run.stop_after)):
                result = client.submit(run_stage, stage, run, item, mapped, pm, slots, topic,
                                       result, key=f"reelscore-{stage or 'finish'}-{item.name}-"
                                       f"{topic}", priority=priority, pure=False)
            finals.append(result)
        while not all(f.done() for f in finals):
            _drain(updates, sink)
            time.sleep(0.1)
        _drain(updates, sink)
        results = [_collect(f, item) for f, item in zip(finals, items, strict=True)]
        for r in results:
            if r.outcome == "failed":
                sink.update(ItemStatus(r.name, "failed", result="failed"))
        return results


def _stages(stop_after: StopAfter | None) -> list[StopAfter | None]:
    if stop_after == "render":
        return ["render"]
    if stop_after == "generate":
        return ["render", "generate"]
    return ["render", "generate", None]


def _drain(updates: queue.Queue[ItemStatus], sink: StatusSink) -> None:
    with contextlib.suppress(queue.Empty):
        while True:
            sink.update(updates.get_nowait())


def _collect(future: Any, item: BatchItem) -> ItemResult:
    try:
        result: ItemResult = future.result()
        # the worker's paths -> the submitting machine's, as the summary shows them
        return dataclasses.replace(result, edit=str(item.edit), output=str(item.output),
                                   job=str(item.work_dir))
    except Exception as exc:  # KilledWorker after too many worker deaths, a lost scheduler
        why = f"{type(exc).__name__}: {exc}"
    return ItemResult(name=item.name, edit=str(item.edit), output=str(item.output),
                      job=str(item.work_dir), outcome="failed", stage="-", seconds=0.0,
                      exit_code=1, error=f"the cluster could not run it ({why}); rerun the batch "
                      "to resume it")
