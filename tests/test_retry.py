"""The one retry path: Retrier records, emits (redacted), sleeps and says continue or stop."""

from __future__ import annotations

import random

import pytest
from pydantic import SecretStr

from reelscore.errors import InputError, PossiblyChargedError
from reelscore.providers import PROVIDER_NAMES, Provider, ProviderConfig, make_provider
from reelscore.providers.redact import Emitter, Redactor
from reelscore.providers.retry import Retrier, RetryPolicy
from reelscore.providers.service_errors import CONCURRENCY, SAFE_CONNECT, SYSTEM_BUSY
from tests.contract_fixtures import Events

KEY = "rsk-RETRY-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def retrier(events: Events, slept: list[float], **policy: float) -> Retrier:
    return Retrier(RetryPolicy(**policy), Emitter(Redactor([KEY]), events), provider="p",  # type: ignore[arg-type]
                   request_id="r01", sleep=slept.append, rng=random.Random(3))


def test_retry_records_emits_and_sleeps_then_gives_up():
    events, slept = Events(), []
    r = retrier(events, slept, max_retries=2, base_delay_s=1.0, max_delay_s=8.0)
    outcomes = []
    for _ in range(3):
        rec = r.attempt(method="POST", url=f"https://h/x?api_key={KEY}", purpose="generate")
        rec.error = f"boom {KEY}"
        outcomes.append(r.again(rec, SYSTEM_BUSY))
    assert outcomes == [True, True, False]
    emitted = events.named("attempt")
    assert [e["attempt"] for e in emitted] == [1, 2]  # the refused one is the caller's to report
    assert [e["retry"] for e in emitted] == ["retry", "retry"] and rec.retry == "give_up"
    assert len(slept) == 2 and 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 2.0
    assert [e["retry_delay_s"] for e in emitted] == [round(s, 3) for s in slept]
    assert "retry limit reached (2 retries)" in r.summary(rec)
    assert KEY not in events.text() and "api_key=***" in events.text()


def test_not_safe_means_stop_without_recording():
    events, slept = Events(), []
    r = retrier(events, slept)
    rec = r.attempt(method="POST", url="https://h/x", purpose="submit")
    assert r.again(rec, None) is False
    assert events.items == [] and slept == [] and rec.retry == "none"


def test_retry_after_is_honoured_up_to_the_cap():
    events, slept = Events(), []
    r = retrier(events, slept, retry_after_cap_s=5)
    assert r.again(r.attempt(method="GET", url="https://h", purpose="poll"), SAFE_CONNECT, 30)
    assert slept == [5]


def test_concurrency_wait_is_reported_in_the_summary():
    events, slept = Events(), []
    r = retrier(events, slept, concurrency_poll_s=1, concurrency_wait_s=2)
    while True:
        rec = r.attempt(method="POST", url="https://h", purpose="generate")
        if not r.again(rec, CONCURRENCY):
            break
    assert sum(slept) == pytest.approx(2) and "waited 2 s for a slot" in r.summary(rec)


def test_charged_records_the_attempt_and_returns_the_error():
    events, slept = Events(), []
    r = retrier(events, slept)
    rec = r.attempt(method="POST", url="https://h", purpose="generate")
    rec.status, rec.request_bytes = 502, 1234
    err = r.charged(rec, f"lost answer {KEY}", "rerun with --resubmit", task_id="t1")
    assert isinstance(err, PossiblyChargedError) and KEY not in str(err)
    [att] = events.named("attempt")
    [charged] = events.named("possibly_charged")
    assert att["retry"] == "possibly_charged" and att["status"] == 502
    assert charged["task_id"] == "t1" and charged["request_bytes"] == 1234
    assert KEY not in events.text()


# ------------------------------------------------------------------- capabilities on the Protocol


@pytest.mark.parametrize(("name", "charges", "upload_complete"), [
    ("local", False, False), ("elevenlabs", True, True), ("mountsea", True, False)])
def test_every_provider_declares_its_capabilities(name, charges, upload_complete):
    assert name in PROVIDER_NAMES
    cfg = ProviderConfig(base_url="http://127.0.0.1:9", api_key=SecretStr(KEY))
    provider = make_provider(name, cfg)
    assert isinstance(provider, Provider)
    assert provider.name == name
    assert provider.charges is charges
    assert provider.reports_upload_complete is upload_complete


def test_local_preflight_is_a_no_op_and_elevenlabs_finds_the_key(monkeypatch, tmp_path):
    make_provider("local").preflight()
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    monkeypatch.setenv("REELSCORE_NO_KEYRING", "1")
    monkeypatch.setenv("REELSCORE_CREDENTIALS", str(tmp_path / "none.toml"))
    with pytest.raises(Exception, match="no API key for elevenlabs"):
        make_provider("elevenlabs").preflight()


def test_mountsea_preflight_needs_an_uploader():
    cfg = ProviderConfig(base_url="http://127.0.0.1:9", api_key=SecretStr(KEY))
    with pytest.raises(InputError, match="configure an uploader"):
        make_provider("mountsea", cfg).preflight()


@pytest.mark.parametrize(("name", "options", "needle"), [
    ("elevenlabs", {"enable_loging": False}, "unknown option 'enable_loging'"),
    ("elevenlabs", {"max_description": "many"}, "option 'max_description'"),
    ("mountsea", {"poll_interval_s": 0}, "option 'poll_interval_s'"),
])
def test_unknown_or_bad_options_are_refused_with_the_allowed_names(name, options, needle):
    cfg = ProviderConfig(base_url="http://127.0.0.1:9", options=options)
    with pytest.raises(InputError, match=needle) as ei:
        make_provider(name, cfg)
    assert "max_description" in (ei.value.hint or "")
