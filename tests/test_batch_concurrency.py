"""Batches: many jobs at once against a service that allows 3 concurrent generations.

Twenty jobs (each a tiny edit with its own job folder) run in threads through the real pipeline,
real ffmpeg and real HTTP against the contract server limited to 3 generations in flight. The
service answers ``429 too_many_concurrent_requests`` beyond that; every job waits for a slot and
finishes. With the provider option ``max_concurrent_requests`` the jobs of one process share a
client-side limit and the service never has to refuse one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest
from pydantic import SecretStr

from reelscore.pipeline import ScoreResult, ScoreSettings, score_file
from reelscore.providers.base import ProviderConfig
from tests.contract_fixtures import TEST_KEY
from tests.contract_server import V2M, ContractServer
from tests.edits import build_timeline

R = Fraction(25)
LIMIT = 3


@pytest.fixture()
def server() -> Iterator[ContractServer]:
    srv = ContractServer().start()
    srv.state.elevenlabs_key = TEST_KEY
    srv.state.max_concurrent = LIMIT
    srv.state.generation_delay_s = 0.4  # long enough for the jobs to overlap
    try:
        yield srv
    finally:
        srv.stop()


class PeakWatcher:
    """Samples the server's generations in flight (the server enforces the limit itself; this
    shows it was reached and never passed)."""

    def __init__(self, server: ContractServer) -> None:
        self.server = server
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.state.in_flight)
            time.sleep(0.002)

    def __enter__(self) -> PeakWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def run_batch(tmp_path: Path, coded_video: Callable[..., Path], server: ContractServer,
              jobs: int, **options: Any) -> list[ScoreResult]:
    src = coded_video(frames=120, rate=R, source_id=51, gop=25)
    edits = []
    for i in range(jobs):
        frames = 25 + (i % 4) * 5  # 1.0-1.6 s
        tl = build_timeline([[("clip", src, 51, 1 + i * 3, frames)]], R, name=f"ep{i:02d}")
        path = tmp_path / f"ep{i:02d}.otio"
        otio.adapters.write_to_file(tl, str(path))
        edits.append(path)
    config = ProviderConfig(base_url=server.url, api_key=SecretStr(TEST_KEY),
                            connect_timeout_s=10, read_timeout_s=120,
                            options={"concurrency_poll_s": 0.05, "concurrency_wait_s": 300,
                                     **options})
    settings = ScoreSettings(provider="elevenlabs", workers=1)

    def one(path: Path) -> ScoreResult:
        return score_file(path, path.with_suffix(".scored.otio"), settings, provider_config=config)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, edits))


def refused(server: ContractServer) -> int:
    return sum(1 for r in server.state.requests_to(V2M) if r.status == 429)


def test_twenty_jobs_wait_for_a_slot(tmp_path, coded_video, server):
    with PeakWatcher(server) as watch:
        results = run_batch(tmp_path, coded_video, server, 20)
    assert len(results) == 20 and all(r.music_wav.exists() for r in results)
    assert all(r.output_path is not None and r.output_path.exists() for r in results)
    assert server.state.charges == 20, "one generation per job, none twice"
    assert watch.peak <= LIMIT and server.state.in_flight == 0
    assert refused(server) > 0, "the batch should have met the service's limit"


def test_client_side_limit_avoids_refusals(tmp_path, coded_video, server):
    with PeakWatcher(server) as watch:
        results = run_batch(tmp_path, coded_video, server, 6, max_concurrent_requests=LIMIT)
    assert len(results) == 6 and server.state.charges == 6
    assert watch.peak <= LIMIT
    assert refused(server) == 0, "the jobs shared the configured limit"
