"""Crash safety: SIGKILL the real CLI at every step, rerun it, get the same result, pay once.

Each scenario runs ``reelscore score`` against the local contract server in a subprocess
(``tests/kill_harness.py`` pauses it at the chosen step; the test then kills it with SIGKILL, so
nothing in reelscore gets a chance to clean up), checks what the job folder looks like, reruns the
same command and compares the final WAV and edit with an uninterrupted run.

What "pays once" means for each step:

* render, upload, normalise, write: the service never had the whole request (or its answer is
  stored), so the plain rerun completes and the server counts exactly one generation.
* waiting for the answer, download: the whole request had reached the service. It generated (and
  billed) the music, but the answer never arrived. Without an idempotency key nobody can get that
  answer back, so the plain rerun must *refuse* (exit 6, asking for ``--resubmit``) without sending
  anything; only ``--resubmit`` pays a second time.

Also here: Ctrl-C/SIGTERM stop promptly (children included) with the resume command, and a second
run on a busy job folder is refused with the other process named.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from reelscore.cli import app
from reelscore.errors import JobError
from reelscore.pipeline import ScoreSettings, score_file
from reelscore.providers.base import ProviderConfig
from tests.contract_fixtures import TEST_KEY
from tests.contract_server import V2M, ContractServer
from tests.edits import build_timeline

REPO = Path(__file__).resolve().parents[1]
R = Fraction(24)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[ContractServer]:
    srv = ContractServer().start()
    srv.state.elevenlabs_key = TEST_KEY
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture()
def fresh(server: ContractServer) -> Iterator[ContractServer]:
    st = server.state
    with st.lock:
        st.faults.clear()
        st.log.clear()
        st.charges = 0
        st.generation_delay_s = 0.0
    yield server
    # A killed client leaves the server "generating" for a moment: let it finish (and bill)
    # before the next test counts charges.
    deadline = time.monotonic() + 60
    while st.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cut_otio(tmp_path_factory: pytest.TempPathFactory, coded_video: Callable[..., Path]) -> str:
    """Two 2.5-second scenes (two clips to render), as OTIO JSON text."""
    src = coded_video(frames=240, rate=R, source_id=31, gop=24)
    tl = build_timeline([[("clip", src, 31, 12, 60), ("clip", src, 31, 120, 60)]], R,
                        start_frame=86400, name="killcut")
    return otio.adapters.write_to_string(tl)


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    values = {"ELEVENLABS_API_KEY": TEST_KEY, "REELSCORE_NO_KEYRING": "1",
              "REELSCORE_CREDENTIALS": str(tmp_path / "no-credentials.toml"), "COLUMNS": "200"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return {**os.environ, **values, "PYTHONPATH": str(REPO)}


def args(root: Path, server: ContractServer, *extra: str) -> list[str]:
    return ["score", str(root / "cut.otio"), "-o", str(root / "out.otio"), "--provider",
            "elevenlabs", "--base-url", server.url, "--workers", "1", "--read-timeout", "60",
            *extra]


def setup_root(base: Path, name: str, cut_otio: str) -> Path:
    root = base / name
    root.mkdir()
    (root / "cut.otio").write_text(cut_otio)
    return root


def invoke(cli_args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, cli_args, catch_exceptions=False)
    return result.exit_code, result.stderr


def manifest(root: Path) -> dict:
    return json.loads((root / "out.otio.reelscore" / "manifest.json").read_text())


def posts(server: ContractServer) -> int:
    return len(server.state.requests_to(V2M))


def outputs(root: Path) -> tuple[bytes, str]:
    """The final WAV (bytes) and edit (text, with this run's folder and job id neutralised)."""
    m = manifest(root)
    wav = Path(m["outputs"]["music_wav"]).read_bytes()
    text = (root / "out.otio").read_text().replace(str(root), "<ROOT>")
    return wav, text.replace(m["job_id"], "<JOB>")


def hidden_temporaries(root: Path) -> list[str]:
    job = root / "out.otio.reelscore"
    found = [p.name for sub in ("clips", "raw", "audio") for p in (job / sub).glob(".*")]
    return found + [p.name for p in root.glob(".out.*")]


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen[bytes], what: str,
             timeout: float = 180.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n{err[-2000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def run_and_kill(step: str, root: Path, server: ContractServer, env: dict[str, str],
                 until: Callable[[], bool] | None = None) -> None:
    marker = root / "paused"
    proc = subprocess.Popen([sys.executable, "-m", "tests.kill_harness", step, str(marker),
                             *args(root, server)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(until or marker.exists, proc, f"the {step} step")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    if proc.stderr:
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert (root / "out.otio.reelscore" / ".lock").exists(), "SIGKILL leaves the lock behind"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, server: ContractServer,
             cut_otio: str) -> tuple[bytes, str]:
    """The uninterrupted run (same command, same layout)."""
    base = tmp_path_factory.mktemp("kill")
    root = setup_root(base, "baseline", cut_otio)
    mp = pytest.MonkeyPatch()
    mp.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    mp.setenv("REELSCORE_NO_KEYRING", "1")
    try:
        before = server.state.charges
        code, err = invoke(args(root, server))
        assert code == 0, err
        assert server.state.charges == before + 1
    finally:
        mp.undo()
    return outputs(root)


STEPS = ["render", "upload", "wait", "download", "normalise", "write"]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_then_rerun(step, tmp_path, fresh, cut_otio, env, baseline):
    server = fresh
    root = setup_root(tmp_path, step, cut_otio)
    job = root / "out.otio.reelscore"
    if step == "wait":
        server.state.generation_delay_s = 1.0  # the service "generates" while we kill the client
        run_and_kill("none", root, server, env, until=lambda: server.state.in_flight == 1)
    else:
        run_and_kill(step, root, server, env)
    assert not (root / "out.otio").exists(), "no output (and no partial output) after a kill"
    # The manifest is whole (atomic writes) and says where the run stopped.
    status = manifest(root).get("requests", {}).get("r01", {}).get("status")

    if step == "render":
        assert status is None
        first = job / "clips" / "r01v01.mp4"
        assert first.exists() and "r01v01" in manifest(root)["renders"]
        assert any(n.startswith(".r01v02.") for n in hidden_temporaries(root))
        stamp = first.stat().st_mtime_ns
    if step == "upload":
        assert status == "uploading"  # the service never had the whole body
    if step in ("wait", "download"):
        assert status == "sent"
        deadline = time.monotonic() + 30
        while server.state.charges < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.state.charges == 1  # billed, though the answer never arrived
        if step == "download":
            assert any(n.endswith(".download") for n in hidden_temporaries(root))
    if step in ("normalise", "write"):
        assert status == "done"
        assert hidden_temporaries(root), "the kill left the temporary file being written"
    charged_before = server.state.charges

    code, err = invoke(args(root, server))  # the same command
    if step in ("wait", "download"):
        assert code == 6, err
        assert "--resubmit" in err and "may already have been charged" in err
        assert server.state.charges == charged_before, "nothing may be sent without --resubmit"
        code, err = invoke(args(root, server, "--resubmit"))
        assert code == 0, err
        assert server.state.charges == 2  # the one payment the user chose to make again
        events = manifest(root)["events"]
        assert any(e["event"] == "resubmit" for e in events)
    else:
        assert code == 0, err
        assert server.state.charges == 1, "exactly one generation for the request"
    if step in ("normalise", "write"):
        assert posts(server) == 1, "a stored answer is never requested again"
    if step == "render":
        assert (job / "clips" / "r01v01.mp4").stat().st_mtime_ns == stamp, "finished clip reused"
    if step == "upload":
        assert any(e["event"] == "resend" for e in manifest(root)["events"])

    assert not (job / ".lock").exists()
    left = hidden_temporaries(root)
    if step == "write":
        # The killed run's temporary edit lies beside the output, in the user's folder, which
        # reelscore does not sweep; it is hidden and never under the output's name.
        assert len(left) == 1 and left[0].startswith(".out."), left
    else:
        assert left == [], "the rerun sweeps the killed run's temporary files"
    assert manifest(root)["requests"]["r01"]["status"] == "done"
    wav, edit = outputs(root)
    assert wav == baseline[0], "the WAV differs from an uninterrupted run"
    assert edit == baseline[1], "the edit differs from an uninterrupted run"


# ------------------------------------------------------------------------ Ctrl-C and SIGTERM


def _children_alive(marker_text: str) -> list[str]:
    """Command lines of live ffmpeg processes that mention *marker_text* (e.g. the job folder)."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker_text in cmd and "ffmpeg" in cmd:
            alive.append(cmd)
    return alive


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find child processes")
@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGINT, 130, "SIGINT"),
                                                   (signal.SIGTERM, 143, "SIGTERM")])
def test_signal_stops_promptly_and_says_how_to_resume(sig, code, name, tmp_path, fresh,
                                                      cut_otio, env):
    """Sent to the process alone (not its group), while ffmpeg renders and while a request
    waits for the service: children die, the run ends within a second or two, resume works."""
    server = fresh
    root = setup_root(tmp_path, "sig", cut_otio)
    job = root / "out.otio.reelscore"
    marker = root / "paused"

    # 1. While the second clip renders (its encoder and decoder are running).
    proc = subprocess.Popen([sys.executable, "-m", "tests.kill_harness", "render", str(marker),
                             *args(root, server)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(marker.exists, proc, "rendering")
    assert _children_alive(str(job)), "the encoder of the clip in progress should be running"
    t0 = time.monotonic()
    proc.send_signal(sig)
    _, err_b = proc.communicate(timeout=60)
    took = time.monotonic() - t0
    err = err_b.decode()
    assert proc.returncode == code, err
    print(f"{name} while rendering: stopped in {took:.2f} s")
    assert took < 3.0, f"took {took:.2f} s to stop"  # ~0.5 s here; generous for a busy machine
    assert f"interrupted ({name})" in err and "Traceback" not in err
    assert "resume with:" in err and f"reelscore score {root / 'cut.otio'}" in err
    assert _children_alive(str(job)) == [], "ffmpeg children must not outlive the run"
    assert not (job / ".lock").exists()
    assert hidden_temporaries(root) == []

    # 2. While the request waits for the service's answer.
    server.state.generation_delay_s = 2.5
    marker.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "tests.kill_harness", "none", str(marker),
                             *args(root, server)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: server.state.in_flight == 1, proc, "the service to be generating")
    t0 = time.monotonic()
    proc.send_signal(sig)
    _, err_b = proc.communicate(timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode == code, err_b.decode()
    print(f"{name} while waiting for the service: stopped in {took:.2f} s")
    assert took < 3.0, f"took {took:.2f} s to stop while waiting for the service"
    assert manifest(root)["requests"]["r01"]["status"] == "sent"
    assert not (job / ".lock").exists()


def test_one_run_per_job_folder(tmp_path, fresh, cut_otio, env):
    """A second run on a job folder in use is refused, naming the process that holds it."""
    server = fresh
    root = setup_root(tmp_path, "busy", cut_otio)
    server.state.generation_delay_s = 2.5
    proc = subprocess.Popen([sys.executable, "-m", "tests.kill_harness", "none",
                             str(root / "paused"), *args(root, server)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: server.state.in_flight == 1, proc, "the first run to be generating")
        with pytest.raises(JobError, match=f"in use by process {proc.pid}"):
            score_file(root / "cut.otio", root / "other.otio", ScoreSettings(provider="elevenlabs"),
                       work_dir=root / "out.otio.reelscore",
                       provider_config=ProviderConfig(base_url=server.url))
        code, err = invoke(args(root, server))
        assert code == 7 and f"in use by process {proc.pid}" in err
    finally:
        proc.kill()
        proc.wait(30)
        if proc.stderr:
            proc.stderr.close()
