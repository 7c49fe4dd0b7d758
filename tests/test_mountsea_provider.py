"""The task-based providers over real HTTP: mountsea proxy + S3 uploader, BeatAPI shape."""

from __future__ import annotations

import datetime as dt
import time
from unittest import mock

import httpx
import pytest
from pydantic import SecretStr

from reelscore.errors import (
    InputError,
    PossiblyChargedError,
    ServiceError,
    UnsupportedError,
)
from reelscore.providers import make_provider
from reelscore.providers.base import ProviderConfig
from reelscore.providers.http import Redactor, make_client
from reelscore.providers.mountsea import MountseaProvider
from reelscore.providers.tasks import (
    BeatApiTasks,
    TaskProvider,
    WebhookReceiver,
    sign_webhook,
    verify_webhook_signature,
)
from reelscore.providers.uploader import (
    BeatApiFileUploader,
    S3Credentials,
    S3Options,
    S3Uploader,
)
from tests.contract_fixtures import (
    BEATAPI_KEY,
    CLIP_SECONDS,
    MOUNTSEA_KEY,
    S3_ACCESS,
    S3_SECRET,
    Events,
    assert_no_secret,
    assert_no_secret_in_dir,
    clips,
    contract,
    log_text,
    make_request,
    s3_bucket,
    s3_keys,
    s3_server,
)
from tests.contract_server import Fault

__all__ = ["clips", "contract", "s3_bucket", "s3_server"]

SUBMIT = "/eleven/video-to-music"


@pytest.fixture(autouse=True)
def s3_env(monkeypatch):
    monkeypatch.setenv("REELSCORE_S3_ACCESS_KEY_ID", S3_ACCESS)
    monkeypatch.setenv("REELSCORE_S3_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("REELSCORE_NO_KEYRING", "1")


def ms_config(server, s3_server, bucket, **options):
    opts = {"poll_interval_s": 0.05, "deadline_s": 10, "retry_base_s": 0.01,
            "retry_cap_s": 0.05, "concurrency_poll_s": 0.02, "concurrency_wait_s": 1,
            "uploader": {"type": "s3", "endpoint_url": s3_server, "bucket": bucket,
                         "prefix": "jobs/", "expires_s": 600}}
    opts.update(options)
    return ProviderConfig(base_url=server.url, api_key=SecretStr(MOUNTSEA_KEY),
                          connect_timeout_s=2, options=opts)


def test_mountsea_end_to_end_with_s3(contract, clips, tmp_path, s3_server, s3_bucket, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    events = Events()
    provider = make_provider("mountsea", ms_config(contract, s3_server, s3_bucket))
    req = make_request(clips, description="warm", tags=("lofi",), sign_with_c2pa=True)
    audio = provider.generate(req, tmp_path, on_event=events)
    # wire: strict camelCase JSON, bearer auth, public (presigned) URLs in timeline order
    [submit] = contract.state.requests_to(SUBMIT)
    body = submit.json
    assert set(body) == {"videoUrls", "description", "tags", "outputFormat", "signWithC2pa"}
    assert body["description"] == "warm" and body["tags"] == ["lofi"]
    assert body["outputFormat"] == "mp3_44100_128" and body["signWithC2pa"] is True
    assert submit.headers["authorization"] == f"Bearer {MOUNTSEA_KEY}"
    urls = body["videoUrls"]
    assert [u.split("?")[0].rsplit("_", 1)[-1] for u in urls] == [p.name.split("_")[-1]
                                                                  for p in clips]
    assert all("X-Amz-Signature=" in u and "X-Amz-Expires=600" in u for u in urls)
    assert all(u.split("?")[0].split("/")[-3] == "jobs" for u in urls)
    # result
    assert audio.container == "mp3" and audio.metadata["c2pa_manifest_found"] is True
    assert audio.metadata["task_id"].startswith("task_")
    assert audio.metadata["trace_id"] == "trace-" + audio.metadata["task_id"]
    from reelscore.ffmpeg_cli import decode_audio

    got = decode_audio(audio.path, sample_rate=44100, channels=1)
    assert abs(len(got) / 44100 - (sum(CLIP_SECONDS) + contract.state.drift_s)) < 0.1
    # task lifecycle events and cleanup
    states = [e["status"] for e in events.named("task_status")]
    assert states[0] == "pending" and states[-1] == "completed"
    assert [e["purpose"] for e in events.named("attempt")][:3] == ["upload_clip"] * 3
    assert events.named("upload_cleanup") == [{"store": "s3", "kept": 0, "deleted": 3,
                                               "failed": []}]
    assert s3_keys(s3_server, s3_bucket) == []
    assert contract.state.charges == 1
    # no secret anywhere (mountsea key, S3 secret, presigned signatures)
    assert_no_secret(events.text(), log_text(caplog), caplog.text)
    assert "X-Amz-Signature=***" in events.text()
    assert_no_secret_in_dir(tmp_path)


def test_keep_leaves_objects_in_the_bucket(contract, clips, tmp_path, s3_server, s3_bucket):
    cfg = ms_config(contract, s3_server, s3_bucket)
    cfg.options["uploader"]["keep"] = True
    MountseaProvider(cfg).generate(make_request(clips[:2]), tmp_path)
    keys = s3_keys(s3_server, s3_bucket)
    assert len(keys) == 2 and all(k.startswith("jobs/") for k in keys)


def test_objects_are_deleted_when_the_task_fails(contract, clips, tmp_path, s3_server,
                                                 s3_bucket):
    contract.state.add(Fault("task", path=SUBMIT, task_status="failed",
                             error_code="GENERATION_FAILED", error_message="model crashed"))
    with pytest.raises(ServiceError) as ei:
        MountseaProvider(ms_config(contract, s3_server, s3_bucket)).generate(
            make_request(clips[:1]), tmp_path)
    msg = str(ei.value)
    assert "ended 'failed': GENERATION_FAILED: model crashed" in msg and "trace id trace-" in msg
    assert not isinstance(ei.value, PossiblyChargedError)
    assert s3_keys(s3_server, s3_bucket) == []


@pytest.mark.parametrize("status", ["cancelled", "timeout"])
def test_cancelled_and_timed_out_tasks(contract, clips, tmp_path, s3_server, s3_bucket, status):
    contract.state.add(Fault("task", path=SUBMIT, task_status=status))
    with pytest.raises(ServiceError, match=f"ended '{status}'"):
        MountseaProvider(ms_config(contract, s3_server, s3_bucket)).generate(
            make_request(clips[:1]), tmp_path)


def test_deadline(contract, clips, tmp_path, s3_server, s3_bucket):
    contract.state.add(Fault("task", path=SUBMIT, task_status="stuck"))
    events = Events()
    t0 = time.monotonic()
    with pytest.raises(PossiblyChargedError, match=r"still 'processing' after \d+ s"):
        MountseaProvider(ms_config(contract, s3_server, s3_bucket, deadline_s=0.6)).generate(
            make_request(clips[:1]), tmp_path, on_event=events)
    assert time.monotonic() - t0 < 5
    assert events.named("possibly_charged")[0]["reason"] == "deadline"
    polls = [e for e in events.named("attempt") if e["purpose"] == "poll"]
    assert 5 <= len(polls) <= 20  # interval respected


def test_submit_rate_limited_then_accepted(contract, clips, tmp_path, s3_server, s3_bucket):
    contract.state.add(Fault("status", path=SUBMIT, status=429, times=2,
                             body={"code": 429, "status": "too_many_concurrent_requests"}))
    events = Events()
    MountseaProvider(ms_config(contract, s3_server, s3_bucket)).generate(
        make_request(clips[:1]), tmp_path, on_event=events)
    subs = [e for e in events.named("attempt") if e["purpose"] == "submit"]
    assert [e["status"] for e in subs] == [429, 429, 200]
    assert contract.state.charges == 1


def test_submit_answer_lost_is_possibly_charged(contract, clips, tmp_path, s3_server,
                                                s3_bucket):
    contract.state.add(Fault("no_response", path=SUBMIT))
    with pytest.raises(PossiblyChargedError, match="answer was lost"):
        MountseaProvider(ms_config(contract, s3_server, s3_bucket)).generate(
            make_request(clips[:1]), tmp_path)
    assert len(contract.state.requests_to(SUBMIT)) == 1
    assert s3_keys(s3_server, s3_bucket) == []


def test_poll_and_download_failures_are_retried(contract, clips, tmp_path, s3_server,
                                                s3_bucket):
    contract.state.add(Fault("status", path="/eleven/tasks", status=502, body="bad gateway"))
    contract.state.add(Fault("drop_download", path="/files/", after_bytes=1000))
    events = Events()
    audio = MountseaProvider(ms_config(contract, s3_server, s3_bucket)).generate(
        make_request(clips[:1]), tmp_path, on_event=events)
    dl = [e for e in events.named("attempt") if e["purpose"] == "download"]
    assert [e["retry"] for e in dl] == ["retry", "none"]
    assert audio.path.stat().st_size == dl[-1]["response_bytes"]
    assert contract.state.charges == 1


def test_proxy_auth_error(contract, clips, tmp_path, s3_server, s3_bucket):
    cfg = ms_config(contract, s3_server, s3_bucket).model_copy(
        update={"api_key": SecretStr("wrong-mountsea-key")})
    with pytest.raises(Exception, match="401"):
        MountseaProvider(cfg).generate(make_request(clips[:1]), tmp_path)


@pytest.mark.parametrize(("setting", "value"), [("separate_tracks", True), ("add_sfx", True),
                                                ("use_audio_as_reference", True),
                                                ("model_id", "music_v1")])
def test_unsupported_settings_are_errors(contract, clips, tmp_path, s3_server, s3_bucket,
                                         setting, value):
    with pytest.raises(UnsupportedError, match=setting.split("_")[0]):
        MountseaProvider(ms_config(contract, s3_server, s3_bucket)).generate(
            make_request(clips[:1], **{setting: value}), tmp_path)
    assert contract.state.log == [] and s3_keys(s3_server, s3_bucket) == []


def test_uploader_is_required(contract, clips, tmp_path):
    cfg = ProviderConfig(base_url=contract.url, api_key=SecretStr(MOUNTSEA_KEY))
    with pytest.raises(InputError, match="configure an uploader"):
        MountseaProvider(cfg).generate(make_request(clips[:1]), tmp_path)


# ------------------------------------------------------------------------------------- SigV4


def test_presigned_url_matches_botocore():
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    for style, endpoint in (("path", "http://127.0.0.1:9000"),
                            ("virtual", "https://s3.eu-west-1.amazonaws.com")):
        client = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1",
                              aws_access_key_id=S3_ACCESS, aws_secret_access_key=S3_SECRET,
                              config=Config(signature_version="s3v4",
                                            s3={"addressing_style": style}))
        key = "jobs/ab cd/01_scene+1 (x).mp4"
        theirs = client.generate_presigned_url("get_object",
                                               Params={"Bucket": "my-bucket", "Key": key},
                                               ExpiresIn=900)
        date = theirs.split("X-Amz-Date=")[1].split("&")[0]
        up = S3Uploader(S3Options(endpoint_url=endpoint, bucket="my-bucket", region="eu-west-1",
                                  expires_s=900, addressing_style=style),
                        S3Credentials(access_key_id=S3_ACCESS,
                                      secret_access_key=SecretStr(S3_SECRET)),
                        ProviderConfig())
        ours = up.presign_get(key, amz_date=date)
        assert ours.split("?")[0] == theirs.split("?")[0]
        sig = theirs.split("X-Amz-Signature=")[1].split("&")[0]
        assert ours.endswith(f"X-Amz-Signature={sig}")


def test_put_header_signature_is_accepted_by_a_verifying_server(tmp_path):
    """Our header-signed PUT verified with botocore's own SigV4 signer on a local server."""
    pytest.importorskip("botocore")
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials

    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        hdrs = {k: v for k, v in request.headers.items()
                if k in ("host", "x-amz-date", "x-amz-content-sha256", "content-type",
                         "content-length")}
        aws = AWSRequest(method=request.method, url=str(request.url), headers=hdrs)
        aws.context["client_config"] = Config(s3={"payload_signing_enabled": False})
        signer = S3SigV4Auth(Credentials(S3_ACCESS, S3_SECRET), "s3", "us-east-1")
        stamp = dt.datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
        with mock.patch("botocore.auth.get_current_datetime", return_value=stamp):
            signer.add_auth(aws)
        seen["signed"] = aws.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
        seen["ours"] = request.headers["authorization"].split("Signature=")[1]
        seen["theirs"] = aws.headers["Authorization"].split("Signature=")[1]
        request.read()
        return httpx.Response(200)

    f = tmp_path / "c.mp4"
    f.write_bytes(b"x" * 1000)
    fixed = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    up = S3Uploader(S3Options(endpoint_url="http://127.0.0.1:9000", bucket="bkt"),
                    S3Credentials(access_key_id=S3_ACCESS,
                                  secret_access_key=SecretStr(S3_SECRET)),
                    ProviderConfig(), transport=httpx.MockTransport(handler), now=lambda: fixed)
    up.upload(f)
    assert seen["signed"] == "content-length;content-type;host;x-amz-content-sha256;x-amz-date"
    assert seen["ours"] == seen["theirs"]


# ------------------------------------------------------------------------ BeatAPI-shaped service


class BeatApiVideoToMusic(TaskProvider):
    """A third service on the same machinery: only the adapter and payload differ."""

    name = "beatapi"

    def __init__(self, config, *, secret: str | None = None, **kw):
        super().__init__(config, api=BeatApiTasks(), **kw)
        self.secret = secret
        self.webhook_url: str | None = None

    def auth_headers(self):
        return {"Authorization": f"Bearer {self.config.api_key.get_secret_value()}"}

    def make_uploader(self, on_event):
        client = make_client(self.config, headers=self.auth_headers())
        return BeatApiFileUploader(client, self.base_url, on_event=on_event,
                                   redactor=self.redactor)

    def make_webhook(self, on_event):
        if not self.secret:
            return None
        rx = WebhookReceiver(self.api, self.secret, on_event=on_event)
        self.webhook_url = rx.url
        self._server_hook(rx.url + "/reelscore/webhook")
        return rx

    def build_payload(self, urls, request):
        return {"videos": urls, "output_format": request.settings.output_format}


def test_beatapi_shape_with_preflight_and_signed_webhook(contract, clips, tmp_path):
    contract.state.usage_active = 3  # two polls of /v1/usage before a slot is free
    contract.state.task_complete_after_s = 0.3
    cfg = ProviderConfig(base_url=contract.url, api_key=SecretStr(BEATAPI_KEY),
                         options={"poll_interval_s": 30, "deadline_s": 20,
                                  "concurrency_poll_s": 0.05, "concurrency_wait_s": 2})
    provider = BeatApiVideoToMusic(cfg, secret=contract.state.webhook_secret)

    def hook(url: str) -> None:
        contract.state.webhook_url = url

    provider._server_hook = hook  # type: ignore[attr-defined]
    events = Events()
    t0 = time.monotonic()
    audio = provider.generate(make_request(clips[:2]), tmp_path, on_event=events)
    # completion came by webhook: the 30 s poll interval was not waited out
    assert time.monotonic() - t0 < 10
    assert [e["active"] for e in events.named("preflight")] == [3, 2, 1]
    assert events.named("webhook") == [{"verified": True, "task_id": audio.metadata["task_id"]}]
    assert audio.metadata["usage"]["credits_charged"] == 0.1
    assert [e["purpose"] for e in events.named("attempt")].count("upload_clip") == 2
    assert audio.container == "mp3" and contract.state.charges == 1
    assert_no_secret(events.text())


def test_beatapi_concurrency_error_on_submit_waits(contract, clips, tmp_path):
    contract.state.usage_limit = 1
    contract.state.add(Fault("status", path="/v1/video-to-music/tasks", status=429, body={
        "error": {"code": "user_concurrency_exceeded", "message": "busy",
                  "retry_after_seconds": 0.05}}))
    cfg = ProviderConfig(base_url=contract.url, api_key=SecretStr(BEATAPI_KEY),
                         options={"poll_interval_s": 0.05, "concurrency_wait_s": 2})
    events = Events()
    BeatApiVideoToMusic(cfg).generate(make_request(clips[:1]), tmp_path, on_event=events)
    subs = [e for e in events.named("attempt") if e["purpose"] == "submit"]
    assert [e["status"] for e in subs] == [429, 202]
    assert subs[0]["retry_reason"] == "too_many_concurrent_requests"
    assert 0.05 <= subs[0]["retry_delay_s"] <= 0.06


def test_webhook_signature_verification():
    body = b'{"event":"task.succeeded","data":{"id":"t1"}}'
    ts = str(int(time.time()))
    sig = sign_webhook("whsec_x", ts, body)
    assert verify_webhook_signature("whsec_x", ts, sig, body)
    assert verify_webhook_signature("whsec_x", ts, "sha256=" + sig, body)
    assert not verify_webhook_signature("whsec_y", ts, sig, body)
    assert not verify_webhook_signature("whsec_x", ts, sig, body + b" ")
    old = str(int(time.time()) - 3600)
    assert not verify_webhook_signature("whsec_x", old, sign_webhook("whsec_x", old, body), body)
    rx = WebhookReceiver(BeatApiTasks(), "whsec_x")
    try:
        bad = httpx.post(rx.url + "/reelscore/webhook", content=body,
                         headers={"x-beatapi-timestamp": ts, "x-beatapi-signature": "00"})
        good = httpx.post(rx.url + "/reelscore/webhook", content=body,
                          headers={"x-beatapi-timestamp": ts, "x-beatapi-signature": sig})
        assert (bad.status_code, good.status_code) == (401, 204)
        assert rx.events.get(timeout=1) == "t1" and rx.events.empty()
    finally:
        rx.close()


def test_redactor_shared_with_uploader_hides_s3_secret():
    up = S3Uploader(S3Options(endpoint_url="http://127.0.0.1:9", bucket="bkt"),
                    S3Credentials(access_key_id=S3_ACCESS,
                                  secret_access_key=SecretStr(S3_SECRET)),
                    ProviderConfig(), redactor=Redactor())
    assert S3_SECRET not in up.red.text(f"x {S3_SECRET} y")
