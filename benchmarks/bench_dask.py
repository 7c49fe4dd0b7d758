"""Batch benchmark: a dozen small edits, run directly, by one local worker, and on Dask.

Same edits, same contract server (``generation_delay_s`` stands for the service's latency, 3
generations at once), same run, four ways, each into a fresh output folder:

* ``direct``: :func:`reelscore.batch.score_item` for each edit in turn, in this process;
* ``local-1``: ``LocalExecutor`` with one worker process (``reelscore batch --workers 1``);
* ``dask-1``: ``DaskExecutor`` on a scheduler with one worker (``--nthreads 1``);
* ``dask-2``: the same scheduler with two such workers.

Printed: seconds for each, ``local-1 / dask-2`` (what a second worker buys) and ``dask-1 /
direct`` (the engine's overhead: three tasks per edit, task shipping, the distributed semaphore).

Run:  python benchmarks/bench_dask.py [--edits 12] [--seconds 2] [--delay 0.5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import distributed  # noqa: E402
import opentimelineio as otio  # noqa: E402
from tests.contract_server import ContractServer  # noqa: E402
from tests.edits import build_timeline  # noqa: E402
from tests.framecode import write_coded_video  # noqa: E402

from reelscore.batch import BatchRun, ItemResult, ItemStatus, LocalExecutor, score_item  # noqa: E402
from reelscore.batch_dask import DaskExecutor  # noqa: E402
from reelscore.batch_jobs import BatchItem, items_from_edits  # noqa: E402
from reelscore.config import EffectiveConfig  # noqa: E402
from reelscore.settings import FrontEndValues  # noqa: E402

KEY = "bench-KEY-not-a-secret-0123456789"
R = Fraction(25)
LIMIT = 3
DASK = str(Path(sys.executable).with_name("dask"))


class Quiet:
    def update(self, status: ItemStatus) -> None:
        return None


def make_edits(root: Path, n: int, seconds: float) -> list[Path]:
    frames = round(seconds * 25)
    src = write_coded_video(root / "media" / "src.mp4", frames=frames * 4, rate=R, source_id=7,
                            gop=25, width=160, height=90)
    edits = []
    for i in range(n):
        half = frames // 2
        tl = build_timeline([[("clip", src, 7, i, half), ("clip", src, 7, 2 * frames + i,
                                                          frames - half)]], R, name=f"ep{i:02d}")
        path = root / "edits" / f"ep{i:02d}.otio"
        path.parent.mkdir(exist_ok=True)
        otio.adapters.write_to_file(tl, str(path))
        edits.append(path)
    return edits


def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root, self.address = root, f"tcp://127.0.0.1:{port()}"
        self.env = {**os.environ, "ELEVENLABS_API_KEY": KEY}
        self.procs = [subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1],
             "--no-dashboard", "--no-show"], env=self.env, cwd=root,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]

    def workers(self, n: int) -> None:
        while len(self.procs) - 1 < n:
            self.procs.append(subprocess.Popen(
                [DASK, "worker", self.address, "--no-nanny", "--nthreads", "1",
                 "--memory-limit", "0", "--no-dashboard", "--host", "127.0.0.1"],
                env=self.env, cwd=self.root, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        with distributed.Client(self.address, timeout="60s", set_as_default=False) as c:
            c.wait_for_workers(n, timeout=120)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(20)


def timed(name: str, fn: Callable[[], list[ItemResult]], figures: dict[str, float]) -> None:
    t0 = time.perf_counter()
    results = fn()
    figures[name] = round(time.perf_counter() - t0, 2)
    bad = [r.error for r in results if r.outcome != "done"]
    if bad:
        raise SystemExit(f"{name}: {len(bad)} edit(s) failed: {bad[0]}")
    print(f"{name:8s} {figures[name]:8.2f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each edit")
    ap.add_argument("--delay", type=float, default=0.5, help="service latency per request (s)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    server = ContractServer().start()
    server.state.elevenlabs_key = KEY
    server.state.max_concurrent = LIMIT
    server.state.generation_delay_s = args.delay
    os.environ["ELEVENLABS_API_KEY"] = KEY
    cluster = Cluster(root)
    try:
        edits = make_edits(root, args.edits, args.seconds)
        run = BatchRun(EffectiveConfig(), FrontEndValues(provider="elevenlabs",
                                                         base_url=server.url))

        def items(name: str) -> list[BatchItem]:
            out = root / name
            out.mkdir()
            return items_from_edits(edits, out)

        figures: dict[str, float] = {}
        timed("direct", lambda: [score_item(run, it, lambda s: None, None)
                                 for it in items("direct")], figures)
        timed("local-1", lambda: LocalExecutor(1, LIMIT, root / "slots").run(
            run, items("local-1"), Quiet()), figures)
        cluster.workers(1)
        timed("dask-1", lambda: DaskExecutor(cluster.address, LIMIT).run(
            run, items("dask-1"), Quiet()), figures)
        cluster.workers(2)
        timed("dask-2", lambda: DaskExecutor(cluster.address, LIMIT).run(
            run, items("dask-2"), Quiet()), figures)
        report = {**figures, "edits": args.edits, "seconds_each": args.seconds,
                  "service_delay_s": args.delay, "charges": server.state.charges,
                  "local1_over_dask2": round(figures["local-1"] / figures["dask-2"], 2),
                  "dask1_over_direct": round(figures["dask-1"] / figures["direct"], 2),
                  "load_average": os.getloadavg(), "cores": os.cpu_count()}
        print(json.dumps(report, indent=2))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        cluster.stop()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
