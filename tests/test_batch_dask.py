"""``reelscore batch --scheduler``: a real Dask scheduler and two workers on 127.0.0.1.

The scheduler and the workers are separate processes (``dask scheduler`` / ``dask worker
--no-nanny``), started here on random ports and torn down at the end. The "shared storage" is a
temporary folder that the submitting side names by a path that does not exist on this machine
(``/Volumes/RAID-…``): every edit, output and media path reaches the workers only through
``path_map``. The music service is the contract server, refusing more than 3 generations at once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

pytest.importorskip("distributed")
import distributed

from reelscore.batch import BatchRun, ItemResult, ItemStatus
from reelscore.batch_dask import DaskExecutor, DaskSlots, slot_name
from reelscore.batch_jobs import BatchItem, items_from_edits
from reelscore.config import ConfigLayer, EffectiveConfig
from reelscore.conform import frames_to_samples
from reelscore.errors import InputError
from reelscore.settings import FrontEndValues
from reelscore.wavfile import read_wav
from tests.contract_fixtures import TEST_KEY
from tests.contract_server import V2M, ContractServer
from tests.edits import build_timeline
from tests.framecode import read_codes

R = Fraction(25)
LIMIT = 3
SID = 53
DASK = str(Path(sys.executable).with_name("dask"))
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A scheduler and its workers, each its own process."""

    root: Path
    address: str = ""
    scheduler: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {**os.environ, "ELEVENLABS_API_KEY": TEST_KEY,
                # a dead worker's leases are given back within seconds, not 30 s
                "DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_TIMEOUT": "3s",
                "DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_VALIDATION_INTERVAL": "500ms",
                "PYTHONPATH": str(ROOT)}  # the workers import this module's task helpers

    def start(self) -> Cluster:
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self.scheduler = subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
             "--no-show"], env=self.env(), cwd=self.root, stdout=subprocess.DEVNULL,
            stderr=open(self.root / "scheduler.log", "wb"))  # noqa: SIM115
        self.add_worker()
        self.add_worker()
        with distributed.Client(self.address, timeout="60s", set_as_default=False) as c:
            c.wait_for_workers(len(self.workers), timeout=120)
        return self

    def add_worker(self) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        proc = subprocess.Popen(
            [DASK, "worker", self.address, "--no-nanny", "--nthreads", "2", "--memory-limit",
             "0", "--no-dashboard", "--name", f"w{n}", "--host", "127.0.0.1"],
            env=self.env(), cwd=self.root, stdout=subprocess.DEVNULL,
            stderr=open(self.root / f"worker{n}.log", "wb"))  # noqa: SIM115
        self.workers.append(proc)
        return proc

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    def stop(self) -> None:
        for p in [*self.workers, self.scheduler]:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in [*self.workers, self.scheduler]:
            if p is not None:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture()
def server() -> Iterator[ContractServer]:
    srv = ContractServer().start()
    srv.state.elevenlabs_key = TEST_KEY
    srv.state.max_concurrent = LIMIT
    srv.state.generation_delay_s = 0.3
    try:
        yield srv
    finally:
        srv.stop()


@dataclass
class Raid:
    """Shared storage: *real* on this machine, *seen* (absent here) on the submitting machine."""

    real: Path
    seen: Path

    @property
    def path_map(self) -> list[str]:
        return [f"{self.seen}={self.real}"]


@pytest.fixture()
def raid(tmp_path) -> Raid:
    return Raid(tmp_path / "raid", Path(f"/Volumes/RAID-{uuid.uuid4().hex[:8]}"))


def first_frame(i: int) -> int:
    return 1 + i * 3


def length(i: int) -> int:
    return 25 + (i % 3) * 5  # 1.0-1.4 s


def make_edits(raid: Raid, coded_video: Callable[..., Path], n: int) -> list[BatchItem]:
    src = coded_video(frames=120, rate=R, source_id=SID, gop=25, width=160, height=90)
    media = raid.real / "media" / "src.mp4"
    media.parent.mkdir(parents=True)
    media.write_bytes(src.read_bytes())
    (raid.real / "edits").mkdir()
    (raid.real / "out").mkdir()
    edits = []
    for i in range(n):
        tl = build_timeline([[("clip", media, SID, first_frame(i), length(i))]], R,
                            name=f"ep{i:02d}")
        for clip in tl.find_clips():  # the edit names the media as the submitting machine does
            clip.media_reference.target_url = (raid.seen / "media" / "src.mp4").as_uri()
        otio.adapters.write_to_file(tl, str(raid.real / "edits" / f"ep{i:02d}.otio"))
        edits.append(raid.seen / "edits" / f"ep{i:02d}.otio")
    return items_from_edits(edits, raid.seen / "out")


def batch_run(server: ContractServer, raid: Raid) -> BatchRun:
    config = EffectiveConfig(layers=(ConfigLayer("site.toml", {"path_map": raid.path_map}),))
    return BatchRun(config, FrontEndValues(provider="elevenlabs", base_url=server.url))


class Statuses:
    def __init__(self) -> None:
        self.seen: list[ItemStatus] = []

    def update(self, status: ItemStatus) -> None:
        self.seen.append(status)


class PeakWatcher(threading.Thread):
    def __init__(self, server: ContractServer) -> None:
        super().__init__(daemon=True)
        self.server, self.peak, self.stopped = server, 0, threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.peak = max(self.peak, self.server.state.in_flight)
            time.sleep(0.002)


def refused(server: ContractServer) -> int:
    return sum(1 for r in server.state.requests_to(V2M) if r.status == 429)


def run_pids(raid: Raid, item: BatchItem) -> list[int]:
    manifest = raid.real / item.work_dir.relative_to(raid.seen) / "manifest.json"
    return [r["pid"] for r in json.loads(manifest.read_text())["runs"]]


def check_output(raid: Raid, item: BatchItem, i: int) -> None:
    """The scored edit's Score clip sits on the cut, the WAV is as long, the clips show the
    edit's source frames."""
    out = raid.real / item.output.relative_to(raid.seen)
    tl = otio.adapters.read_from_file(str(out))
    audio = [t for t in tl.tracks if t.kind == otio.schema.TrackKind.Audio]
    score = [c for t in audio for c in t.find_clips()]
    assert len(score) == 1
    rng = score[0].range_in_parent()
    assert (rng.start_time.value, rng.duration.value) == (0, length(i))
    # the media reference of the edit is still the submitting machine's path
    assert tl.find_clips()[0].media_reference.target_url.startswith(raid.seen.as_uri())
    wav = Path(score[0].media_reference.target_url.replace("file://", ""))
    wav = raid.real / wav.relative_to(raid.seen) if wav.is_relative_to(raid.seen) else wav
    samples, rate = read_wav(wav)
    assert rate == 48_000 and len(samples) == frames_to_samples(length(i), R)
    job = raid.real / item.work_dir.relative_to(raid.seen)
    codes = [c for clip in sorted((job / "clips").glob("*.mp4")) for c in read_codes(clip)]
    shown = [n for sid_n in codes if sid_n is not None for sid, n in [sid_n] if sid == SID]
    assert shown[:3] == [first_frame(i), first_frame(i) + 1, first_frame(i) + 2]
    assert shown[-1] == first_frame(i) + length(i) - 1


def test_a_dozen_edits_on_two_workers_keep_to_the_accounts_limit(
        cluster, server, raid, coded_video):
    items = make_edits(raid, coded_video, 12)
    sink = Statuses()
    watch = PeakWatcher(server)
    watch.start()
    try:
        results = DaskExecutor(cluster.address, LIMIT).run(batch_run(server, raid), items, sink)
    finally:
        watch.stopped.set()
    failed = [(r.name, r.error) for r in results if r.outcome != "done"]
    assert not failed
    assert [r.output for r in results] == [str(i.output) for i in items]
    assert server.state.charges == 12, "exactly one generation per request"
    assert refused(server) == 0, "no request was refused for concurrency"
    assert watch.peak <= LIMIT and watch.peak >= 2
    for i in (0, 5, 11):
        check_output(raid, items[i], i)
    pids = {pid for item in items for pid in run_pids(raid, item)}
    assert pids == {w.pid for w in cluster.alive()}, "both workers took work"
    assert {"render", "generate", "done"} <= {s.step for s in sink.seen} | {
        s.result for s in sink.seen if s.result}


def test_a_killed_worker_is_rerun_elsewhere_and_pays_nothing_twice(
        cluster, server, raid, coded_video):
    """The test holds every slot of the account, so the edits render and then wait to generate;
    the busiest worker is killed then (nothing of it at the service), and the slots given back.
    Its tasks rerun on the other worker, reuse the clips it rendered, and send each request
    once."""
    items = make_edits(raid, coded_video, 6)
    run = batch_run(server, raid)
    slots = DaskSlots(slot_name("elevenlabs", server.url), LIMIT)
    outcome: list[list[ItemResult]] = []
    runner = threading.Thread(target=lambda: outcome.append(
        DaskExecutor(cluster.address, LIMIT).run(run, items, Statuses())), daemon=True)
    with distributed.Client(cluster.address) as client, _held(slots) as held:
        runner.start()
        deadline = time.monotonic() + 240
        while not all(rendered(raid, item) for item in items):
            assert time.monotonic() < deadline, "the edits did not render"
            time.sleep(0.1)
        victim_pid = _busiest(client)
        victim = next(w for w in cluster.workers if w.pid == victim_pid)
        clips_before = {c: c.stat().st_mtime_ns for item in items for c in clips_of(raid, item)}
        victim.kill()
        victim.wait(10)
        assert server.state.charges == 0
        held.release()
        runner.join(240)
    cluster.add_worker()  # the module's cluster has two workers again
    assert outcome, "the batch did not finish"
    failed = [(r.name, r.error) for r in outcome[0] if r.outcome != "done"]
    assert not failed
    assert server.state.charges == 6, "one generation per request, none twice"
    assert refused(server) == 0
    moved = [item for item in items if victim_pid in run_pids(raid, item)
             and run_pids(raid, item)[-1] != victim_pid]
    assert moved, "some edit begun on the dead worker was finished by another"
    clips_after = {c: c.stat().st_mtime_ns for item in items for c in clips_of(raid, item)}
    assert clips_after == clips_before, "the clips were reused, not rendered again"
    for n, item in enumerate(items):
        check_output(raid, item, n)


def job_of(raid: Raid, item: BatchItem) -> Path:
    return raid.real / item.work_dir.relative_to(raid.seen)


def clips_of(raid: Raid, item: BatchItem) -> list[Path]:
    return sorted((job_of(raid, item) / "clips").glob("*.mp4"))


def rendered(raid: Raid, item: BatchItem) -> bool:
    try:
        return bool(json.loads((job_of(raid, item) / "manifest.json").read_text()).get("renders"))
    except (OSError, ValueError):
        return False


class _held:
    """Hold every lease of *slots* from the test's own (default) client."""

    def __init__(self, slots: DaskSlots) -> None:
        self.sem = distributed.Semaphore(max_leases=slots.count, name=slots.name)
        self.count = slots.count

        self.held = 0

    def __enter__(self) -> _held:
        for _ in range(self.count):
            assert self.sem.acquire(timeout=60)
            self.held += 1
        return self

    def release(self) -> None:
        while self.held:
            self.sem.release()
            self.held -= 1

    def __exit__(self, *exc: object) -> None:
        self.release()


def _busiest(client: distributed.Client) -> int:
    """The pid of the worker with the most tasks on it."""
    processing = client.processing()
    pids = client.run(os.getpid)
    addr = max(processing, key=lambda a: len(processing[a]))
    return int(pids[addr])


def test_an_unreachable_scheduler_fails_fast_naming_it(tmp_path, raid, server):
    address = f"tcp://127.0.0.1:{_free_port()}"
    items = items_from_edits([raid.seen / "ep.otio"], tmp_path / "out")
    started = time.monotonic()
    with pytest.raises(InputError) as info:
        DaskExecutor(address, LIMIT, connect_timeout_s=2).run(batch_run(server, raid), items,
                                                              Statuses())
    assert time.monotonic() - started < 15
    assert address in str(info.value) and "dask scheduler" in str(info.value)
    assert not (tmp_path / "out").exists()
    assert server.state.requests_to(V2M) == []


def test_a_worker_that_cannot_see_the_media_names_path_and_mapping(
        cluster, server, raid, coded_video):
    items = make_edits(raid, coded_video, 1)
    (raid.real / "media" / "src.mp4").rename(raid.real / "media" / "moved.mp4")
    elsewhere = Path("/Volumes/Other") / "ep.otio"
    items.append(items_from_edits([elsewhere], raid.seen / "out")[0])
    results = DaskExecutor(cluster.address, LIMIT).run(batch_run(server, raid), items,
                                                       Statuses())
    media, edit = results
    assert media.outcome == "failed" and edit.outcome == "failed"
    real_media = raid.real / "media" / "src.mp4"
    assert str(real_media) in media.error
    assert f"mapped by --path-map {raid.path_map[0]}" in media.error
    assert f"cannot see the edit '{elsewhere}'" in edit.error
    assert f"no --path-map entry matches it (entries: {raid.path_map[0]})" in edit.error
    assert server.state.charges == 0
    assert not list((raid.real / "out").glob("*.otio"))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ELEVENLABS_API_KEY"}  # workers have it
    return subprocess.run([sys.executable, "-m", "reelscore", "batch", *args], env={
        **env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=600, check=False)


def test_reelscore_batch_with_scheduler_and_path_map_from_the_configuration(
        cluster, server, tmp_path, coded_video):
    """``reelscore batch`` as a user runs it: the scheduler and the path map from a config file;
    the submitting side has no key (each worker reads its own)."""
    raid = Raid(tmp_path / "raid", tmp_path / "mac-view")  # the Mac's mount point: empty here
    items = make_edits(raid, coded_video, 2)
    site = tmp_path / "site.toml"
    site.write_text(f'scheduler = "{cluster.address}"\npath_map = ["{raid.seen}={raid.real}"]\n')
    args = [*(str(i.edit) for i in items), "-o", str(raid.seen / "out"), "--config", str(site),
            "--provider", "elevenlabs", "--base-url", server.url, "--concurrency", "3", "--json"]
    done = cli(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((raid.seen / "out" / "batch-summary.json").read_text())
    assert (summary["done"], summary["failed"]) == (2, 0)
    assert [r["output"] for r in summary["items"]] == [str(i.output) for i in items]
    for n, item in enumerate(items):
        check_output(raid, item, n)
    assert server.state.charges == 2
    again = cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((raid.seen / "out" / "batch-summary.json").read_text())["skipped"] == 2
    assert server.state.charges == 2, "a rerun skips finished edits"


def test_reelscore_batch_with_an_unreachable_scheduler(tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"
    # (how fast: test_an_unreachable_scheduler_fails_fast_naming_it, without a cold interpreter)
    res = cli(str(tmp_path / "ep.otio"), "-o", str(tmp_path / "out"), "--scheduler", address,
              "--provider", "local")
    assert res.returncode == 2
    assert f"cannot reach the Dask scheduler at {address}" in res.stderr
    assert "dask scheduler" in res.stderr and "dask worker" in res.stderr
    assert not (tmp_path / "out").exists()


def _lock_left_after_lease(work_dir: str) -> bool:
    from reelscore.batch_dask import _job_lease

    with _job_lease(Path(work_dir)):
        return (Path(work_dir) / ".lock").exists()


@pytest.mark.parametrize(("marker", "cleared"), [("4242 render-7", True), (None, False)])
def test_the_job_lock_of_a_dead_task_on_another_host_is_cleared(cluster, tmp_path, marker,
                                                                  cleared):
    """A dead Dask task's lock (named by its marker) is cleared by the next holder of the
    folder's lease; a lock anything else took is left for the job to refuse."""
    job = tmp_path / "ep.scored.otio.reelscore"
    job.mkdir()
    (job / ".lock").write_text("4242 render-7")
    if marker is not None:
        (job / ".dask-holder").write_text(marker)
    with distributed.Client(cluster.address, set_as_default=False) as client:
        assert client.submit(_lock_left_after_lease, str(job), pure=False).result(60) is (
            not cleared)
    assert not (job / ".dask-holder").exists()
