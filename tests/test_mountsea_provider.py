"""The task-based provider over real HTTP: the mountsea proxy + the S3 uploader (moto server)."""

from __future__ import annotations

import time

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
from reelscore.providers.mountsea import MountseaProvider
from tests.contract_fixtures import (
    CLIP_SECONDS,
    MOUNTSEA_KEY,
    Events,
    assert_no_secret,
    assert_no_secret_in_dir,
    clips,
    contract,
    log_text,
    make_request,
    s3_bucket,
    s3_env,
    s3_keys,
    s3_server,
)
from tests.contract_server import Fault

__all__ = ["clips", "contract", "s3_bucket", "s3_env", "s3_server"]

SUBMIT = "/eleven/video-to-music"


pytestmark = pytest.mark.usefixtures("s3_env")


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
    assert isinstance(cfg.options, dict)
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
