"""Fixtures for the provider tests: the contract server, small real clips, an S3 server.

Import the fixtures you use explicitly into a test module
(``from tests.contract_fixtures import contract, clips, ...``); pytest picks them up from there.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from reelscore.ffmpeg_cli import ffmpeg_exe
from reelscore.providers.base import ClipRef, GenerationRequest, GenerationSettings, ProviderConfig
from tests.contract_server import ContractServer

# A distinctive key: tests assert it never appears in events, errors, logs or files.
TEST_KEY = "rsk-TESTKEY-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
MOUNTSEA_KEY = "msk-TESTKEY-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
S3_ACCESS = "AKIATESTKEY0000REELS"
S3_SECRET = "s3secret-TESTKEY-1a2b3c4d5e6f7a8b9c0d1e2f3a4b"

CLIP_SECONDS = (1.0, 1.5, 2.0)


@pytest.fixture
def contract() -> Iterator[ContractServer]:
    srv = ContractServer().start()
    srv.state.elevenlabs_key = TEST_KEY
    srv.state.mountsea_key = MOUNTSEA_KEY
    try:
        yield srv
    finally:
        srv.stop()


def make_clip(path: Path, seconds: float, rate: int = 24) -> Path:
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size=160x90:rate={rate}", "-t", f"{seconds}", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-preset", "ultrafast", str(path)],
        check=True,
    )
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("clips")
    return [make_clip(d / f"scene_{i + 1:03d}.mp4", s) for i, s in enumerate(CLIP_SECONDS)]


def clip_ref(path: Path, seconds: float, rate: int = 24, scene: str = "") -> ClipRef:
    data = path.read_bytes()
    return ClipRef(path=path, frames=round(seconds * rate), rate=f"{rate}/1",
                   duration_s=seconds, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                   scene_ids=(scene,) if scene else ())


def make_request(clip_paths: list[Path], request_id: str = "r01", seconds: list[float] | None = None,
                 **settings: Any) -> GenerationRequest:
    secs = seconds or [CLIP_SECONDS[i % len(CLIP_SECONDS)] for i in range(len(clip_paths))]
    refs = tuple(clip_ref(p, s, scene=f"s{i + 1}") for i, (p, s) in
                 enumerate(zip(clip_paths, secs, strict=True)))
    return GenerationRequest(request_id=request_id, clips=refs,
                             settings=GenerationSettings(**settings))


def el_config(server: ContractServer, **options: Any) -> ProviderConfig:
    opts: dict[str, Any] = {"retry_base_s": 0.01, "retry_cap_s": 0.05,
                            "concurrency_poll_s": 0.02, "concurrency_wait_s": 0.5}
    read_timeout = options.pop("read_timeout_s", 900.0)
    max_retries = options.pop("max_retries", 4)
    opts.update(options)
    return ProviderConfig(base_url=server.url, api_key=SecretStr(TEST_KEY),
                          read_timeout_s=read_timeout, connect_timeout_s=2.0,
                          max_retries=max_retries, options=opts)


class Events:
    """An on_event sink that keeps everything (and checks it is JSON-able)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        import json

        json.dumps(data)  # events go to manifest.json: they must serialise
        self.items.append((name, data))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [d for n, d in self.items if n == name]

    def text(self) -> str:
        import json

        return json.dumps(self.items)


def assert_no_secret(*texts: str, secrets: tuple[str, ...] = (TEST_KEY, MOUNTSEA_KEY,
                                                               S3_SECRET)) -> None:
    for t in texts:
        for s in secrets:
            assert s not in t, f"secret {s[:8]}... leaked"


def assert_no_secret_in_dir(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            for s in (TEST_KEY, MOUNTSEA_KEY, S3_SECRET):
                assert s.encode() not in data, f"secret leaked into {p}"


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() + " " + str(r.args) for r in caplog.records)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


# -------------------------------------------------------------------------------------- S3 server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        srv.stop()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """S3 credentials the way users give them (boto3's chain: the environment), nothing else.

    The shared config files point nowhere and instance metadata is off, so boto3 never looks
    beyond this machine.
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("REELSCORE_NO_KEYRING", "1")


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    boto3 = pytest.importorskip("boto3")
    import uuid

    name = "reelscore-" + uuid.uuid4().hex[:10]
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id=S3_ACCESS, aws_secret_access_key=S3_SECRET)
    client.create_bucket(Bucket=name)
    return name


def s3_keys(endpoint: str, bucket: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=S3_ACCESS, aws_secret_access_key=S3_SECRET)
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
