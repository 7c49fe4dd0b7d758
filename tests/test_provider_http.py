"""Pure units of the shared HTTP layer: error parsing, retry policy, redaction, URLs, clients."""

from __future__ import annotations

import email.utils
import json
import random

import httpx
import pytest

from reelscore.errors import (
    AuthenticationError,
    InputError,
    PossiblyChargedError,
    RateLimitedError,
    RequestRejectedError,
    ServiceError,
)
from reelscore.providers.base import ProviderConfig
from reelscore.providers.client import make_client, validate_base_url
from reelscore.providers.options import HttpOptions
from reelscore.providers.redact import Redactor, url_for_log
from reelscore.providers.retry import AttemptRecord, Retrier, RetryPolicy
from reelscore.providers.service_errors import (
    CONCURRENCY,
    SYSTEM_BUSY,
    classify_retry,
    error_from_response,
    parse_error_body,
    retry_after_seconds,
)

KEY = "rsk-UNIT-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.mark.parametrize(("body", "shape", "code", "message"), [
    (b'{"detail":{"status":"invalid_api_key","message":"Invalid key"}}', "detail-object",
     "invalid_api_key", "Invalid key"),
    (b'{"detail":[{"loc":["body","tags",3],"msg":"too long","type":"string_too_long"}]}',
     "detail-list", "validation_error", None),
    (b'{"status":"internal_server_error","message":"boom"}', "flat", "internal_server_error",
     "boom"),
    (b'{"detail":"Not Found"}', "detail-string", None, "Not Found"),
    (b'{"error":{"code":"insufficient_credits","message":"top up","request_id":"req_1",'
     b'"retry_after_seconds":7}}', "error-envelope", "insufficient_credits", "top up"),
    (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text", None, "502 Bad Gateway"),
    (b"", "empty", None, None),
])
def test_parse_error_body_shapes(body, shape, code, message):
    info = parse_error_body(400, body)
    assert (info.shape, info.code, info.message) == (shape, code, message)


def test_parse_validation_list_fields_and_envelope_extras():
    info = parse_error_body(422, b'{"detail":[{"loc":["body","tags",3],"msg":"too long",'
                                 b'"type":"string_too_long"},"odd"]}')
    assert [(f.loc, f.msg, f.type) for f in info.field_errors] == [
        ("tags.3", "too long", "string_too_long"), ("?", "odd", None)]
    env = parse_error_body(429, b'{"error":{"code":"x","retry_after_seconds":7,'
                                b'"request_id":"req_9"}}')
    assert env.retry_after_s == 7.0 and env.request_id == "req_9"


@pytest.mark.parametrize(("status", "body", "cls", "text"), [
    (401, {"detail": {"status": "detected_unusual_activity"}}, AuthenticationError,
     "detected_unusual_activity"),
    (402, {"error": {"code": "insufficient_credits", "message": "m"}}, AuthenticationError,
     "402 insufficient_credits"),
    (429, {"detail": {"status": "system_busy"}}, RateLimitedError, "429 system_busy"),
    (503, {"detail": {"status": "overloaded"}}, ServiceError, "503"),
    (504, {}, PossiblyChargedError, "504"),
    (413, {}, RequestRejectedError, "413"),
])
def test_error_mapping(status, body, cls, text):
    info = parse_error_body(status, json.dumps(body).encode())
    err = error_from_response(info, service="Svc")
    assert type(err) is cls
    assert text in str(err) and err.status_code == status and err.hint


def test_5xx_before_the_body_was_sent_is_not_possibly_charged():
    info = parse_error_body(500, b'{"status":"x","message":"y"}')
    err = error_from_response(info, service="Svc", body_sent=False)
    assert type(err) is ServiceError


def test_error_messages_are_redacted():
    red = Redactor([KEY])
    info = parse_error_body(401, ('{"detail":{"status":"invalid_api_key","message":"key '
                                  + KEY + ' is bad"}}').encode())
    err = error_from_response(info, service="Svc", redactor=red)
    assert KEY not in str(err) and "key *** is bad" in str(err)


def test_classify_retry():
    def c(status, code):
        body = json.dumps({"detail": {"status": code}}).encode()
        return classify_retry(parse_error_body(status, body))

    assert c(429, "too_many_concurrent_requests") == CONCURRENCY
    assert c(429, "system_busy") == SYSTEM_BUSY
    assert c(429, "other") == "rate_limited"
    assert c(503, "x") == "service_unavailable_503"
    assert c(500, "x") is None and c(400, "x") is None


def test_retry_after_parsing():
    assert retry_after_seconds({"Retry-After-ms": "250", "Retry-After": "9"}) == 0.25
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_seconds({"Retry-After": when}, now=1_000_000) == pytest.approx(30)
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_backoff_is_capped_exponential_with_jitter():
    p = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0)
    rng = random.Random(1)
    for n, ceiling in ((1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (9, 8)):
        delays = [p.backoff(n, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10  # jitter


def test_retrier_budget_and_retry_after():
    r = Retrier(RetryPolicy(max_retries=2, retry_after_cap_s=5), sleep=lambda _s: None)
    a = r.decide(SYSTEM_BUSY, retry_after=30)
    assert a.retry and a.delay_s == 5  # Retry-After honoured up to the cap
    assert r.decide(SYSTEM_BUSY).retry
    last = r.decide(SYSTEM_BUSY)
    assert not last.retry and "retry limit reached (2 retries)" in last.note


def test_concurrency_wait_has_its_own_bounded_budget():
    r = Retrier(RetryPolicy(max_retries=0, concurrency_poll_s=10, concurrency_wait_s=25),
                sleep=lambda _s: None)
    delays = []
    while True:
        d = r.decide(CONCURRENCY)
        if not d.retry:
            break
        delays.append(d.delay_s)
    assert len(delays) == 3 and sum(delays) == pytest.approx(25)
    assert not r.decide(SYSTEM_BUSY).retry  # the normal budget (0) is separate


def test_redactor_covers_keys_bearer_and_presigned_urls():
    red = Redactor([KEY, None, ""])
    text = (f"xi-api-key: {KEY} Authorization: Bearer abcdef123456 "
            "https://b.s3.example.com/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=deadbeef&x=1")
    out = red.text(text)
    assert KEY not in out and "abcdef123456" not in out and "deadbeef" not in out
    assert "AK%2F1" not in out and "x=1" in out
    assert red.obj({"a": [KEY, {"b": KEY}], "n": 3}) == {"a": ["***", {"b": "***"}], "n": 3}
    assert url_for_log("https://u:pw@h.example/p?token=zzz") == "https://h.example/p?token=***"


@pytest.mark.parametrize(("url", "insecure", "ok"), [
    ("https://api.elevenlabs.io/", False, True),
    ("http://[::1]:8080", False, True),
    ("http://127.5.0.1", False, True),
    ("http://api.elevenlabs.io", False, False),
    ("http://api.elevenlabs.io", True, True),
    ("https://api.elevenlabs.io/?x=1", False, False),
    ("api.elevenlabs.io", False, False),
])
def test_validate_base_url(url, insecure, ok):
    if ok:
        assert not validate_base_url(url, allow_insecure=insecure).endswith("/")
    else:
        with pytest.raises(InputError):
            validate_base_url(url, allow_insecure=insecure)


def test_client_timeouts_user_agent_and_transport():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["ua"] = request.headers["user-agent"]
        seen["timeout"] = request.extensions["timeout"]
        return httpx.Response(200, json={})

    cfg = ProviderConfig(connect_timeout_s=3, read_timeout_s=1200)
    opts = HttpOptions(write_timeout_s=77, pool_timeout_s=5)
    with make_client(cfg, opts, transport=httpx.MockTransport(handler)) as client:
        client.get("https://example.invalid/x")
        assert client.follow_redirects is False
    assert seen["ua"].startswith("reelscore/")
    assert seen["timeout"] == {"connect": 3, "read": 1200, "write": 77, "pool": 5}


def test_attempt_event_is_redacted_and_complete():
    rec = AttemptRecord(provider="p", request_id="r01", attempt=2, method="GET",
                        url=f"https://h/x?api_key={KEY}", purpose="poll")
    rec.capture_ids(httpx.Headers({"song-id": "s1", "x-request-id": "q"}))
    rec.error = f"boom {KEY}"
    rec.finish()
    ev = rec.event(Redactor([KEY]))
    assert KEY not in str(ev)
    assert ev["ids"] == {"song-id": "s1", "x-request-id": "q"}
    assert {"attempt", "method", "url", "status", "request_bytes", "response_bytes", "ttfb_s",
            "elapsed_s", "retry", "retry_reason", "retry_delay_s", "body_sent"} <= set(ev)
