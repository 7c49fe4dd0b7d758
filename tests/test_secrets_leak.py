"""The API key never shows up where it should not: not in stdout/stderr (with --debug, tracebacks
included), logs at DEBUG, the manifest, any file of the job folder, the output edit or WAV.

The key is the distinctive ``TEST_KEY``; the contract server echoes it back in error bodies to
make sure that what the service says is redacted too. Real runs of the CLI, real HTTP.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from reelscore.errors import PossiblyChargedError, RequestRejectedError
from reelscore.pipeline import ScoreSettings, score_file
from reelscore.providers.base import ProviderConfig
from tests.contract_fixtures import TEST_KEY, assert_no_secret, assert_no_secret_in_dir
from tests.contract_server import ContractServer, Fault
from tests.edits import build_timeline

REPO = Path(__file__).resolve().parents[1]
R = Fraction(25)
# The key as it could also appear: percent-encoded, base64 (e.g. in a Basic header) or split.
VARIANTS = (TEST_KEY, TEST_KEY.replace("-", "%2D"), TEST_KEY[4:28])


@pytest.fixture(scope="module")
def server() -> Iterator[ContractServer]:
    srv = ContractServer().start()
    srv.state.elevenlabs_key = TEST_KEY
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture()
def cut(tmp_path: Path, coded_video: Callable[..., Path]) -> Path:
    src = coded_video(frames=150, rate=R, source_id=41, gop=25)
    tl = build_timeline([[("clip", src, 41, 5, 50), ("clip", src, 41, 80, 50)]], R,
                        name="secret test")
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    env.update({"REELSCORE_NO_KEYRING": "1", "COLUMNS": "200", "PYTHONPATH": str(REPO),
                "REELSCORE_CREDENTIALS": str(tmp_path / "absent.toml")})
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reelscore", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, check=False, timeout=600)


def assert_nowhere(*texts: str, dirs: tuple[Path, ...] = (), skip: tuple[Path, ...] = ()) -> None:
    for t in texts:
        for v in VARIANTS:
            assert v not in t, f"the key ({v[:10]}...) leaked into output/logs"
    assert_no_secret(*texts)
    for d in dirs:
        for p in d.rglob("*"):
            if p.is_file() and p not in skip:
                data = p.read_bytes()
                for v in VARIANTS:
                    assert v.encode() not in data, f"the key leaked into {p}"
        if not skip:
            assert_no_secret_in_dir(d)


def score_args(cut: Path, out: Path, server: ContractServer, *extra: str) -> list[str]:
    return ["score", str(cut), "-o", str(out), "--provider", "elevenlabs", "--base-url",
            server.url, "--debug", *extra]


def test_key_from_the_environment_never_leaks(tmp_path, cut, server):
    """A full run with --debug (DEBUG logs on stderr), one retried 503 whose body quotes the key."""
    server.state.add(Fault("status", status=503, body={"detail": {
        "status": "service_unavailable", "message": f"overloaded (key {TEST_KEY})"}},
        headers={"Retry-After": "0"}))
    out = tmp_path / "scored.otio"
    proc = cli(clean_env(tmp_path, ELEVENLABS_API_KEY=TEST_KEY), *score_args(cut, out, server))
    assert proc.returncode == 0, proc.stderr
    assert "DEBUG" in proc.stderr and "attempt" in proc.stderr  # debug logging was on
    job = tmp_path / "scored.otio.reelscore"
    manifest = json.loads((job / "manifest.json").read_text())
    attempts = manifest["requests"]["r01"]["attempts"]
    assert [a["status"] for a in attempts] == [503, 200]
    assert "***" in json.dumps(attempts)  # the echoed key was redacted, not dropped silently
    assert_nowhere(proc.stdout, proc.stderr, dirs=(tmp_path,))


def test_key_from_a_private_credentials_file_never_leaks(tmp_path, cut, server):
    """Key in a chmod-600 credentials file; the service answers 500 quoting the key: the
    possibly-charged error, its --debug traceback and the manifest stay clean."""
    creds = tmp_path / "creds" / "credentials.toml"
    creds.parent.mkdir()
    creds.write_text(f'[elevenlabs]\napi_key = "{TEST_KEY}"\n')
    creds.chmod(0o600)
    env = clean_env(tmp_path, REELSCORE_CREDENTIALS=str(creds))
    server.state.add(Fault("status", status=500, body={"detail": {
        "status": "internal", "message": f"crashed handling xi-api-key={TEST_KEY}"}}))
    out = tmp_path / "scored.otio"
    proc = cli(env, *score_args(cut, out, server))
    assert proc.returncode == 6, proc.stderr
    assert "Traceback" in proc.stderr and "--resubmit" in proc.stderr
    assert_nowhere(proc.stdout, proc.stderr, dirs=(tmp_path,), skip=(creds,))

    # Group-readable: refused, and the message tells how to fix it (never shows the key).
    creds.chmod(0o640)
    proc = cli(env, *score_args(cut, out, server, "--resubmit"))
    assert proc.returncode == 2
    assert f"chmod 600 {creds}" in proc.stderr and "readable by other users" in proc.stderr
    assert_nowhere(proc.stdout, proc.stderr)


def test_key_never_in_debug_logs_or_exceptions_in_process(tmp_path, cut, server, caplog):
    """The library at DEBUG level, with a 422 and a 500 that quote the key."""
    caplog.set_level(logging.DEBUG)
    config = ProviderConfig(base_url=server.url, connect_timeout_s=5, options={
        "retry_base_s": 0.01, "retry_cap_s": 0.02})
    mp = pytest.MonkeyPatch()
    mp.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    mp.setenv("REELSCORE_NO_KEYRING", "1")
    try:
        server.state.add(Fault("status", status=422, body={"detail": [
            {"loc": ["body", "description"], "msg": f"bad {TEST_KEY}", "type": "value_error",
             "input": TEST_KEY}]}))
        with pytest.raises(RequestRejectedError) as rejected:
            score_file(cut, tmp_path / "a.otio", ScoreSettings(provider="elevenlabs"),
                       provider_config=config)
        server.state.add(Fault("status", status=500, body=f"<html>{TEST_KEY}</html>"))
        with pytest.raises(PossiblyChargedError) as charged:
            score_file(cut, tmp_path / "a.otio", ScoreSettings(provider="elevenlabs"),
                       provider_config=config)
        result = score_file(cut, tmp_path / "a.otio",
                            ScoreSettings(provider="elevenlabs", resubmit=True),
                            provider_config=config)
    finally:
        mp.undo()
    texts = [str(rejected.value), repr(rejected.value), str(charged.value), repr(charged.value),
             "\n".join(r.getMessage() for r in caplog.records),
             "\n".join(str(r.args) for r in caplog.records), repr(config), str(config.model_dump())]
    assert_nowhere(*texts, dirs=(tmp_path,))
    assert result.music_wav.exists()
