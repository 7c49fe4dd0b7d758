"""Render, upload and generation overlap: several requests at the service at once.

A short edit cut into four requests (``max_request_seconds`` lowered) is scored through the real
pipeline, real ffmpeg and real HTTP against the contract server, which takes a while to
"generate" each request. A watcher samples the server: the second request must have reached the
service while the first was still generating, never more than ``concurrency`` at once, every
request exactly once. The answer's clicks (one at the start of every video of a request) must
land on the video starts of the final WAV: each request's music in its own range, in order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from pydantic import SecretStr

from reelscore.conform import SAMPLE_RATE
from reelscore.errors import PossiblyChargedError, ReelscoreError
from reelscore.pipeline import ScoreSettings, score_file
from reelscore.providers import GenerationSettings
from reelscore.providers.base import ProviderConfig
from reelscore.wavfile import read_wav
from tests.contract_fixtures import TEST_KEY
from tests.contract_server import V2M, ContractServer, Fault, detail_list
from tests.edits import build_timeline

REPO = Path(__file__).resolve().parents[1]
R = Fraction(25)
DELAY_S = 3.0  # longer than rendering one request on a busy 2-core machine
# Scene lengths in frames: requests of different shapes, so a swapped answer would show.
CUTS = [40, 55, 45, 60, 35, 50, 65]

pytestmark = pytest.mark.slow  # each request "generates" for seconds


@pytest.fixture()
def server() -> Iterator[ContractServer]:
    srv = ContractServer().start()
    srv.state.elevenlabs_key = TEST_KEY
    srv.state.generation_delay_s = DELAY_S
    try:
        yield srv
    finally:
        srv.stop()


class Watcher:
    """Samples (generations in flight, charges, requests received) every 2 ms.

    With *then_delay*, the server's generation delay becomes *then_delay* once a second request
    has arrived: the first request generates for as long as the server was set to (long enough
    for the next request to render on a busy machine), the others quickly.
    """

    def __init__(self, server: ContractServer, then_delay: float | None = None) -> None:
        self.state = server.state
        self.then_delay = then_delay
        self.samples: list[tuple[int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            st = self.state
            with st.lock:
                self.samples.append((st.in_flight, st.charges, len(st.requests_to(V2M))))
                if self.then_delay is not None and self.samples[-1][2] >= 2:
                    st.generation_delay_s = self.then_delay
            time.sleep(0.002)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture()
def edit(tmp_path: Path, coded_video) -> Path:
    src = coded_video(frames=600, rate=R, source_id=61, gop=25)
    items, pos = [], 0
    for n in CUTS:
        items.append(("clip", src, 61, pos, n))
        pos += n + 3
    tl = build_timeline([items], R, start_frame=90000, name="overlap")
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


def config(url: str) -> ProviderConfig:
    return ProviderConfig(base_url=url, api_key=SecretStr(TEST_KEY), read_timeout_s=60,
                          options={"concurrency_poll_s": 0.05})


def settings(**kw: object) -> ScoreSettings:
    return ScoreSettings(provider="elevenlabs", workers=1, min_scene_seconds=1.0,
                         max_request_seconds=5.0,
                         generation=GenerationSettings(output_format="pcm_48000"), **kw)


def clicks(wav: Path) -> list[int]:
    """Sample positions where a click starts (far above the tones)."""
    data, rate = read_wav(wav)
    assert rate == SAMPLE_RATE
    mono = np.abs(data[:, 0])
    hot = np.flatnonzero(mono > 0.6 * mono.max())
    starts = [int(hot[0])] + [int(b) for a, b in zip(hot[:-1], hot[1:]) if b - a > 480]
    return starts


def test_requests_overlap_in_order_and_each_is_sent_once(tmp_path, edit, server):
    server.state.generation_delay_s = 40.0  # request 1; then DELAY_S (the watcher lowers it)
    with Watcher(server, then_delay=DELAY_S) as watch:
        result = score_file(edit, tmp_path / "out.otio", settings(concurrency=2),
                            provider_config=config(server.url))
    plan = result.plan
    n = len(plan.requests)
    assert n >= 3, f"the edit should make several requests, got {n}"

    # Overlap: request 2 reached the service while request 1 was still generating.
    assert any(charged == 0 and received >= 2 for _, charged, received in watch.samples)
    peak = max(f for f, _, _ in watch.samples)
    assert peak == 2, f"up to `concurrency` requests in flight, saw {peak}"

    # Every request sent exactly once, with its own clips.
    posts = server.state.requests_to(V2M)
    assert server.state.charges == n and len(posts) == n
    sent = sorted(p.files[0]["filename"].split("v")[0] for p in posts)
    assert sent == [r.id for r in plan.requests]
    assert all(len({f["filename"].split("v")[0] for f in p.files}) == 1 for p in posts)
    manifest = json.loads(result.manifest_path.read_text())
    for req in plan.requests:
        rec = manifest["requests"][req.id]
        assert rec["status"] == "done"
        assert [c["path"].rsplit("/", 1)[-1] for c in rec["clips"]] == [
            f"{v.id}.mp4" for v in req.videos]
        # The answer stored for a request is as long as that request (plus the service's drift).
        raw = Path(rec["response"]["path"]).stat().st_size / 2  # pcm_48000 mono s16
        want = float(sum(v.frames for v in req.videos) / R) + server.state.drift_s
        assert abs(raw / 48000 - want) < 0.01, (req.id, raw / 48000, want)

    # Alignment: every click is on a video start; every video start inside a request (where no
    # join crossfade can hide it) has its click.
    to_samples = SAMPLE_RATE / R
    starts = [round((v.range.start - plan.range.start) * to_samples)
              for req in plan.requests for v in req.videos]
    inner = [round((v.range.start - plan.range.start) * to_samples)
             for k, req in enumerate(plan.requests) for i, v in enumerate(req.videos)
             if i > 0 or k == 0]
    found = clicks(result.music_wav)
    tol = 0.005 * SAMPLE_RATE
    assert all(min(abs(c - s) for s in starts) <= tol for c in found), (found, starts)
    assert all(min(abs(c - s) for c in found) <= tol for s in inner), (found, inner)


def test_serial_when_concurrency_is_one(tmp_path, edit, server):
    server.state.generation_delay_s = 0.5
    with Watcher(server) as watch:
        result = score_file(edit, tmp_path / "out.otio", settings(concurrency=1),
                            provider_config=config(server.url))
    assert max(f for f, _, _ in watch.samples) == 1
    assert server.state.charges == len(result.plan.requests)


def test_a_failed_request_stops_the_rest_and_resume_pays_once(tmp_path, edit, server):
    """Request 2 is refused while request 1 generates: request 1 still finishes and is kept,
    nothing after request 2 is sent. The rerun reuses request 1 and sends each other one once."""
    server.state.generation_delay_s = 1.0
    server.state.add(Fault("slow", delay_s=0.0))  # request 1: answered normally
    server.state.add(Fault("status", status=422, body=detail_list(["body"], "refused")))
    work = tmp_path / "job"
    with pytest.raises(ReelscoreError, match="refused"):
        score_file(edit, tmp_path / "out.otio", settings(concurrency=2), work_dir=work,
                   provider_config=config(server.url))
    manifest = json.loads((work / "manifest.json").read_text())
    assert {k: v["status"] for k, v in manifest["requests"].items()} == {
        "r01": "done", "r02": "failed"}
    assert server.state.charges == 1 and len(server.state.requests_to(V2M)) == 2
    assert not (tmp_path / "out.otio").exists()

    result = score_file(edit, tmp_path / "out.otio", settings(concurrency=2), work_dir=work,
                        provider_config=config(server.url))
    n = len(result.plan.requests)
    assert server.state.charges == n, "request 1 was reused, every other one generated once"
    sent = [p.files[0]["filename"].split("v")[0] for p in server.state.requests_to(V2M)]
    assert sorted(sent) == sorted(["r01", "r02"] + [r.id for r in result.plan.requests[1:]])


# The same run as the tests above, in a process of its own so it can be SIGKILLed.
RUN = """
import sys
from pathlib import Path
from tests.test_overlap import config, settings
from reelscore.pipeline import score_file
root = Path(sys.argv[1])
score_file(root / "cut.otio", root / "out.otio", settings(concurrency=2), work_dir=root / "job",
           provider_config=config(sys.argv[2]))
"""


def test_killed_while_requests_generate_never_pays_twice(tmp_path, edit, server):
    """SIGKILL with request 1 answered and request 2 at the service: the rerun refuses without
    sending anything; --resubmit sends again only what was never answered."""
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(tmp_path), server.url], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    st = server.state
    deadline = time.monotonic() + 120
    manifest_path = tmp_path / "job" / "manifest.json"

    def r01_done_and_r02_generating() -> bool:
        if not st.in_flight or not manifest_path.exists():
            return False
        m = json.loads(manifest_path.read_text())  # written atomically: always whole
        return m.get("requests", {}).get("r01", {}).get("status") == "done"

    while not r01_done_and_r02_generating():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "request 2 never reached the service"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    if proc.stderr:
        proc.stderr.close()
    manifest = json.loads(manifest_path.read_text())
    statuses = {k: v["status"] for k, v in manifest["requests"].items()}
    assert statuses["r01"] == "done" and "sent" in statuses.values(), statuses
    while st.in_flight:  # the service finishes (and bills) what it had
        time.sleep(0.05)
    posted = len(st.requests_to(V2M))

    with pytest.raises(PossiblyChargedError, match="--resubmit"):
        score_file(edit, tmp_path / "out.otio", settings(concurrency=2), work_dir=tmp_path / "job",
                   provider_config=config(server.url))
    assert len(st.requests_to(V2M)) == posted, "nothing may be sent without --resubmit"

    result = score_file(edit, tmp_path / "out.otio", settings(concurrency=2, resubmit=True),
                        work_dir=tmp_path / "job", provider_config=config(server.url))
    sent = [p.files[0]["filename"].split("v")[0] for p in st.requests_to(V2M)]
    done_before = [k for k, v in statuses.items() if v == "done"]
    assert all(sent.count(k) == 1 for k in done_before), "an answered request was sent again"
    assert all(sent.count(r.id) >= 1 for r in result.plan.requests)
    events = json.loads(result.manifest_path.read_text())["events"]
    assert {e["request"] for e in events if e["event"] == "resubmit"} == {
        k for k, v in statuses.items() if v == "sent"}
