"""The S3 clip uploader through boto3, against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from reelscore.errors import AuthenticationError, InputError, ServiceError
from reelscore.providers import MountseaOptions, UploaderConfig, make_provider
from reelscore.providers.base import ProviderConfig
from reelscore.providers.redact import Emitter, Redactor
from reelscore.providers.retry import RetryPolicy
from reelscore.providers.uploader import S3Uploader, check_uploader
from tests.contract_fixtures import (
    MOUNTSEA_KEY,
    S3_SECRET,
    Events,
    assert_no_secret,
    clips,
    contract,
    make_request,
    s3_bucket,
    s3_env,
    s3_keys,
    s3_server,
)

__all__ = ["clips", "contract", "s3_bucket", "s3_env", "s3_server"]

pytestmark = pytest.mark.usefixtures("s3_env")


def uploader(config: UploaderConfig, events: Events) -> S3Uploader:
    return S3Uploader(config, RetryPolicy(max_retries=1, base_delay_s=0.01),
                      Emitter(Redactor(), events), request_id="r01")


def test_upload_presigned_get_then_cleanup(clips, s3_server, s3_bucket):
    events = Events()
    up = uploader(UploaderConfig(bucket=s3_bucket, endpoint_url=s3_server, prefix="jobs/",
                                 expires_s=120), events)
    urls = [up.upload(p) for p in clips[:2]]
    keys = s3_keys(s3_server, s3_bucket)
    assert len(keys) == 2 and all(k.startswith(f"jobs/{up.job_token}/") for k in keys)
    for url, path in zip(urls, clips[:2], strict=True):
        assert "X-Amz-Expires=120" in url and "X-Amz-Signature=" in url
        got = httpx.get(url)  # what the service does with the URL, no credentials
        assert got.status_code == 200 and got.content == path.read_bytes()
    assert [e["purpose"] for e in events.named("attempt")] == ["upload_clip"] * 2
    assert [e["bytes"] for e in events.named("upload")] == [p.stat().st_size for p in clips[:2]]
    up.cleanup()
    assert s3_keys(s3_server, s3_bucket) == []
    assert httpx.get(urls[0]).status_code == 404
    assert events.named("upload_cleanup") == [{"store": "s3", "kept": 0, "deleted": 2,
                                               "failed": []}]
    assert "X-Amz-Signature=***" in events.text()
    assert_no_secret(events.text())


def test_keep_leaves_the_objects(clips, s3_server, s3_bucket):
    up = uploader(UploaderConfig(bucket=s3_bucket, endpoint_url=s3_server, keep=True), Events())
    up.upload(clips[0])
    up.cleanup()
    assert len(s3_keys(s3_server, s3_bucket)) == 1


def test_preflight_heads_the_bucket(s3_server, s3_bucket):
    check_uploader(UploaderConfig(bucket=s3_bucket, endpoint_url=s3_server), redactor=Redactor())
    with pytest.raises(InputError, match=r"HeadBucket on bucket 'no-such-bucket-x'.*404"):
        check_uploader(UploaderConfig(bucket="no-such-bucket-x", endpoint_url=s3_server),
                       redactor=Redactor())


def test_unreachable_endpoint_names_bucket_and_operation():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServiceError, match=r"S3 HeadBucket on bucket 'bkt-x' at "
                       rf"http://127.0.0.1:{port} failed"):
        check_uploader(UploaderConfig(bucket="bkt-x", endpoint_url=f"http://127.0.0.1:{port}"),
                       redactor=Redactor())


def test_missing_credentials_say_where_they_come_from(monkeypatch, s3_server):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AuthenticationError) as ei:
        check_uploader(UploaderConfig(bucket="bkt-x", endpoint_url=s3_server),
                       redactor=Redactor())
    assert "no AWS credentials found for the S3 uploader (bucket 'bkt-x')" in ei.value.message
    assert "AWS_ACCESS_KEY_ID" in (ei.value.hint or "") and "AWS_PROFILE" in (ei.value.hint or "")


def test_without_boto3_the_error_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if it were not installed
    with pytest.raises(InputError, match=r"pip install 'reelscore\[s3\]'"):
        check_uploader(UploaderConfig(bucket="bkt-x"), redactor=Redactor())


@pytest.mark.parametrize(("uploader_options", "needle"), [
    ({"bucket": "bkt-x", "aws_secret_access_key": "x"}, "unknown option 'uploader.aws_secret"),
    ({"bucket": "bkt-x", "expires_s": 10}, "option 'uploader.expires_s'"),
    ({"bucket": "bkt-x", "type": "gcs"}, "option 'uploader.type'"),
])
def test_uploader_options_are_validated(uploader_options, needle):
    cfg = ProviderConfig(base_url="http://127.0.0.1:9", api_key=SecretStr(MOUNTSEA_KEY),
                         options={"uploader": uploader_options})
    with pytest.raises(InputError, match=needle) as ei:
        make_provider("mountsea", cfg)
    assert "bucket" in (ei.value.hint or "")


def test_typed_options_preflight_and_concurrent_requests(contract, clips, tmp_path, s3_server,
                                                         s3_bucket):
    """Options as the typed model, as a front end builds them; preflight; two requests at once
    on one provider; every object gone afterwards; downloads through the injected transport."""
    seen: list[str] = []

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.url.path)
            return super().handle_request(request)

    opts = MountseaOptions(poll_interval_s=0.05, deadline_s=20, retry_base_s=0.01,
                           uploader=UploaderConfig(bucket=s3_bucket, endpoint_url=s3_server))
    cfg = ProviderConfig(base_url=contract.url, api_key=SecretStr(MOUNTSEA_KEY), options=opts)
    from reelscore.providers.mountsea import MountseaProvider

    provider = MountseaProvider(cfg, transport=Recording())
    assert provider.options is opts
    provider.preflight()
    assert s3_keys(s3_server, s3_bucket) == [] and contract.state.log == []
    results: dict[str, Path] = {}
    events = Events()
    errors: list[BaseException] = []

    def run(rid: str, n: int) -> None:
        try:
            audio = provider.generate(make_request(clips[:n], request_id=rid), tmp_path / rid,
                                      on_event=events)
            results[rid] = audio.path
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(rid, n)) for rid, n in (("r01", 1), ("r02", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and sorted(results) == ["r01", "r02"]
    assert all(p.stat().st_size > 0 for p in results.values())
    assert s3_keys(s3_server, s3_bucket) == []
    assert contract.state.charges == 2
    # the downloads, once each: closing one request's clients left the shared transport open
    assert sum(1 for p in seen if p.startswith("/files/")) == 2
    assert all(e["retry"] == "none" for e in events.named("attempt"))
    assert S3_SECRET not in "".join(seen)
