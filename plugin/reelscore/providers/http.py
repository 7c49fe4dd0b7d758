"""HTTP plumbing shared by the network providers.

* :func:`make_client` builds the one ``httpx.Client`` a provider uses: explicit timeouts (connect
  short, read long enough for a generation that takes minutes), ``User-Agent: reelscore/<version>``,
  an injectable transport for tests.
* :func:`validate_base_url`: a non-loopback base URL must be ``https`` unless the user said
  ``allow_insecure``; no credentials, query or fragment in it.
* :func:`parse_error_body` reads every error shape the services use (ElevenLabs ``detail`` object,
  ``detail`` list (422), flat ``{status, message}``, BeatAPI ``{"error": {...}}``, plain text) and
  :func:`error_from_response` turns it into the reelscore exception tree with an actionable message.
* :class:`RetryPolicy` / :class:`Retrier`: capped exponential backoff with jitter, ``Retry-After``
  and ``Retry-After-ms`` honoured; ``too_many_concurrent_requests`` waits for a slot (longer
  interval, bounded total wait) while ``system_busy`` / 503 / safe connection failures back off.
* :class:`Redactor`: removes secrets (API keys, bearer tokens, presigned-URL signatures) from every
  message, log record and event.
* :class:`AttemptRecord`: one HTTP attempt as it is reported to the manifest (``attempt`` event).

Charging rule (see docs/providers.md): a request whose body was not fully sent cannot have started
a generation and may be retried; once the whole body was sent, the service may be generating and a
failure is reported as :class:`~reelscore.errors.PossiblyChargedError`, never retried silently.
"""

from __future__ import annotations

import contextlib
import email.utils
import ipaddress
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from reelscore._version import __version__
from reelscore.errors import (
    AuthenticationError,
    InputError,
    PossiblyChargedError,
    ProviderError,
    RateLimitedError,
    RequestRejectedError,
    ServiceError,
)
from reelscore.providers.base import ProviderConfig

log = logging.getLogger(__name__)

USER_AGENT = f"reelscore/{__version__}"
DEFAULT_WRITE_TIMEOUT_S = 120.0
DEFAULT_POOL_TIMEOUT_S = 30.0
MAX_ERROR_BODY = 64 * 1024

# ------------------------------------------------------------------------------------- redaction

_SENSITIVE_QUERY = re.compile(
    r"(?i)((?:x-amz-signature|x-amz-credential|x-amz-security-token|signature|sig|token|"
    r"access_token|api_key|apikey|key|xi-api-key|secret)=)[^&\s\"']+"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}")
REDACTED = "***"


class Redactor:
    """Replace every known secret (and credential-looking URL parameter) with ``***``."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def text(self, value: str) -> str:
        for s in self._secrets:
            if s in value:
                value = value.replace(s, REDACTED)
        value = _SENSITIVE_QUERY.sub(lambda m: m.group(1) + REDACTED, value)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, value)

    def obj(self, value: Any) -> Any:
        """Redact recursively inside dicts/lists/tuples; other values pass unchanged."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {str(k): self.obj(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v) for v in value]
        return value


def url_for_log(url: str | httpx.URL, redactor: Redactor | None = None) -> str:
    """A URL safe to record: no userinfo, credential-looking query values replaced."""
    parts = urlsplit(str(url))
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return (redactor or Redactor()).text(clean)


# ------------------------------------------------------------------------------ URLs and clients

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_base_url(url: str, *, allow_insecure: bool = False, what: str = "--base-url") -> str:
    """Check a base URL and return it without a trailing slash.

    ``https`` is required except on loopback hosts (local test servers) or with allow_insecure:
    the API key travels in a header and must not cross a network in clear text.
    """
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            f"{what} {text!r} is not an http(s) URL",
            hint="give the service root, e.g. https://api.elevenlabs.io or https://api.eu.residency.elevenlabs.io",
        )
    if parts.username or parts.password:
        raise InputError(
            f"{what} must not contain credentials (user:password@)",
            hint="pass the key with the environment variable or the credentials file instead",
        )
    if parts.query or parts.fragment:
        raise InputError(f"{what} {url_for_log(text)!r} must not contain a query or fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname) and not allow_insecure:
        raise InputError(
            f"{what} {url_for_log(text)!r} uses plain http to a non-local host; the API key would "
            "be sent unencrypted",
            hint="use https://, or pass --allow-insecure if this is a trusted private network",
        )
    return text.rstrip("/")


def make_timeout(config: ProviderConfig) -> httpx.Timeout:
    opts = config.options
    return httpx.Timeout(
        connect=config.connect_timeout_s,
        read=config.read_timeout_s,
        write=float(opts.get("write_timeout_s", DEFAULT_WRITE_TIMEOUT_S)),
        pool=float(opts.get("pool_timeout_s", DEFAULT_POOL_TIMEOUT_S)),
    )


def make_client(
    config: ProviderConfig,
    *,
    headers: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout: httpx.Timeout | None = None,
) -> httpx.Client:
    """The httpx client a provider uses. Secrets go in *headers* and never into URLs."""
    all_headers = {"User-Agent": USER_AGENT}
    all_headers.update(headers or {})
    return httpx.Client(
        headers=all_headers,
        timeout=timeout or make_timeout(config),
        transport=transport,
        follow_redirects=False,
        trust_env=bool(config.options.get("trust_env", True)),
    )


# ---------------------------------------------------------------------------- error body parsing


@dataclass
class FieldError:
    loc: str
    msg: str
    type: str | None = None


@dataclass
class ErrorInfo:
    """What an error response says, whatever its shape."""

    status_code: int
    code: str | None = None  # e.g. invalid_api_key, too_many_concurrent_requests
    message: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    field_errors: list[FieldError] = field(default_factory=list)
    request_id: str | None = None
    retry_after_s: float | None = None
    shape: str = "empty"  # detail-object | detail-list | detail-string | flat | error-envelope | text

    def summary(self) -> str:
        bits = []
        if self.code:
            bits.append(self.code)
        if self.message:
            bits.append(self.message)
        for fe in self.field_errors:
            bits.append(f"{fe.loc}: {fe.msg}")
        return "; ".join(bits) or "(no details in the response)"


def _loc_text(loc: Any) -> str:
    if isinstance(loc, (list, tuple)):
        parts = [str(p) for p in loc if str(p) not in ("body", "query", "header", "form")]
        return ".".join(parts) or ".".join(str(p) for p in loc)
    return str(loc)


def parse_error_body(status_code: int, body: bytes, content_type: str = "") -> ErrorInfo:
    info = ErrorInfo(status_code=status_code)
    text = body[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()
    if not text:
        return info
    try:
        doc = json.loads(text)
    except ValueError:
        info.shape = "text"
        snippet = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()
        info.message = snippet[:300]
        return info
    if not isinstance(doc, dict):
        info.shape = "text"
        info.message = text[:300]
        return info
    detail = doc.get("detail")
    if isinstance(detail, dict):
        info.shape = "detail-object"
        info.code = _str_or_none(detail.get("status") or detail.get("code"))
        info.message = _str_or_none(detail.get("message"))
        if isinstance(detail.get("data"), dict):
            info.data = detail["data"]
    elif isinstance(detail, list):
        info.shape = "detail-list"
        info.code = "validation_error"
        for item in detail:
            if isinstance(item, dict):
                info.field_errors.append(
                    FieldError(
                        loc=_loc_text(item.get("loc", "?")),
                        msg=str(item.get("msg", "")),
                        type=_str_or_none(item.get("type")),
                    )
                )
            else:
                info.field_errors.append(FieldError(loc="?", msg=str(item)))
    elif isinstance(detail, str):
        info.shape = "detail-string"
        info.message = detail
    elif isinstance(doc.get("error"), dict):  # BeatAPI envelope
        err = doc["error"]
        info.shape = "error-envelope"
        info.code = _str_or_none(err.get("code"))
        info.message = _str_or_none(err.get("message"))
        info.request_id = _str_or_none(err.get("request_id"))
        ra = err.get("retry_after_seconds")
        if isinstance(ra, (int, float)):
            info.retry_after_s = float(ra)
        if isinstance(err.get("details"), dict):
            info.data = err["details"]
    else:
        info.shape = "flat"
        code = doc.get("status") if isinstance(doc.get("status"), str) else doc.get("code")
        if code is None and isinstance(doc.get("error"), str):
            code = doc["error"]
        info.code = _str_or_none(code)
        info.message = _str_or_none(
            doc.get("message") or doc.get("errorMessage") or doc.get("msg")
        )
    return info


def _str_or_none(v: Any) -> str | None:
    if v is None or v == "":
        return None
    return str(v)


def retry_after_seconds(headers: Mapping[str, str] | httpx.Headers, now: float | None = None) -> float | None:
    """``Retry-After-ms`` (milliseconds), else ``Retry-After`` (seconds or an HTTP date)."""
    h = httpx.Headers(headers) if not isinstance(headers, httpx.Headers) else headers
    ms = h.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = h.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


# ---------------------------------------------------------------------------- error -> exception

_FIELD_HINTS = {
    "description": "shorten --description (the limit is configurable with the provider option "
    "max_description)",
    "tags": "use at most 10 --tag values, each a short style word",
    "output_format": "choose one of the formats listed by `reelscore score --help`",
    "model_id": "check --model (music_v1, music_v2, music_v2_5)",
    "videos": "check the rendered clips (H.264 MP4, at most 10, 200 MB and 600 s in total)",
    "sign_with_c2pa": "C2PA signing works with mp3_* output formats only",
}


def error_from_response(
    info: ErrorInfo,
    *,
    service: str,
    key_source: str = "the API key",
    body_sent: bool = True,
    redactor: Redactor | None = None,
) -> ProviderError:
    """Map an HTTP error to the reelscore exception tree with a message that says what to do."""
    red = redactor or Redactor()
    s = info.status_code
    code = info.code or ""
    detail = red.text(info.summary())
    ref = f" (request id {info.request_id})" if info.request_id else ""
    if s == 401:
        if code == "detected_unusual_activity":
            return AuthenticationError(
                f"{service} refused the request (401 detected_unusual_activity): {detail}{ref}",
                hint="free-tier usage is disabled for this account; use a paid plan's key",
                status_code=s,
            )
        return AuthenticationError(
            f"{service} rejected {key_source} (401 {code or 'unauthorized'}): {detail}{ref}",
            hint="check that the key is complete and not revoked; set it again with the "
            "environment variable or the credentials file (docs/providers.md)",
            status_code=s,
        )
    if s == 402:
        if code == "insufficient_credits":
            hint = "top up the account's credits, then run again"
        else:
            hint = ("music generation needs a paid plan with music API access; upgrade the plan "
                    "or use --provider local for an offline draft")
        return AuthenticationError(
            f"{service}: this account's plan cannot use the music API (402 {code or 'payment required'}): "
            f"{detail}{ref}",
            hint=hint,
            status_code=s,
        )
    if s == 403:
        return AuthenticationError(
            f"{service}: {key_source} lacks a permission (403 {code or 'forbidden'}): {detail}{ref}",
            hint="create a key with Music access enabled (API key settings > permissions), "
            "or enable it on the existing key",
            status_code=s,
        )
    if s == 422 or (s == 400 and info.field_errors):
        if info.field_errors:
            fields = ", ".join(f"{fe.loc!r}: {fe.msg}" for fe in info.field_errors)
            first = info.field_errors[0].loc.split(".")[0]
            hint = _FIELD_HINTS.get(first, "fix the named field and run again")
            return RequestRejectedError(
                f"{service} refused the request ({s}): {red.text(fields)}{ref}",
                hint=hint,
                status_code=s,
            )
        return RequestRejectedError(
            f"{service} refused the request ({s} {code}): {detail}{ref}",
            hint="fix the request settings and run again",
            status_code=s,
        )
    if s == 429:
        if code in ("too_many_concurrent_requests", "user_concurrency_exceeded"):
            hint = ("your plan's concurrent-request limit is in use (other jobs or apps are "
                    "generating); wait for them to finish or raise the plan's concurrency")
        else:
            hint = "the service is busy; try again in a few minutes"
        return RateLimitedError(
            f"{service} is rate limiting (429 {code or 'too many requests'}): {detail}{ref}",
            hint=hint,
            status_code=s,
            retryable=True,
        )
    if s in (400, 404, 405, 409, 413, 415):
        hints = {
            400: "the service refused the content or settings; change them as the message says",
            404: "check --base-url: this host does not serve the endpoint",
            405: "check --base-url: this host does not serve the endpoint",
            409: "a conflicting request is in progress; wait and run again",
            413: "the upload is larger than the service accepts; use fewer or smaller clips",
            415: "the service did not accept the upload's media type",
        }
        extra = ""
        for k in ("prompt_suggestion", "composition_plan_suggestion"):
            if k in info.data:
                extra = f" (suggestion: {red.text(str(info.data[k]))[:300]})"
        return RequestRejectedError(
            f"{service} refused the request ({s} {code}): {detail}{extra}{ref}".replace("  ", " "),
            hint=hints[s],
            status_code=s,
        )
    if s >= 500:
        if body_sent and s != 503:
            return PossiblyChargedError(
                f"{service} answered {s} {code} after receiving the whole request: {detail}{ref}. "
                "It may have started (and charged) a generation whose result was lost",
                hint="wait a few minutes and check the account's usage/history; rerun with "
                "--resubmit to generate (and pay) again",
                status_code=s,
            )
        return ServiceError(
            f"{service} failed ({s} {code or 'server error'}): {detail}{ref}",
            hint="the service is having problems; try again later",
            status_code=s,
            retryable=s == 503,
        )
    return ProviderError(
        f"{service} answered an unexpected {s}: {detail}{ref}", status_code=s
    )


# ---------------------------------------------------------------------------------- retry policy


@dataclass
class RetryPolicy:
    """Capped exponential backoff with jitter; bounded wait for a concurrency slot."""

    max_retries: int = 4
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    retry_after_cap_s: float = 300.0
    concurrency_poll_s: float = 15.0
    concurrency_wait_s: float = 900.0

    @classmethod
    def from_config(cls, config: ProviderConfig) -> RetryPolicy:
        o = config.options
        return cls(
            max_retries=config.max_retries,
            base_delay_s=float(o.get("retry_base_s", 1.0)),
            max_delay_s=float(o.get("retry_cap_s", 60.0)),
            retry_after_cap_s=float(o.get("retry_after_cap_s", 300.0)),
            concurrency_poll_s=float(o.get("concurrency_poll_s", 15.0)),
            concurrency_wait_s=float(o.get("concurrency_wait_s", 900.0)),
        )

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Delay before retry *retry_number* (1-based): half fixed, half jitter, capped."""
        r = rng or random
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** max(0, retry_number - 1)))
        return ceiling / 2 + r.uniform(0, ceiling / 2)


_SLOTS: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def client_slot(service_url: str, limit: Any) -> contextlib.AbstractContextManager[Any]:
    """One of *limit* request slots shared by every job of this process that uses *service_url*
    (provider option ``max_concurrent_requests``; unset = no client-side limit). Jobs in other
    processes are kept in line by the service's ``too_many_concurrent_requests`` answer, on which
    a request waits for a slot (``concurrency_poll_s`` / ``concurrency_wait_s``)."""
    if limit in (None, "", 0):
        return contextlib.nullcontext()
    n = int(limit)
    if n < 1:
        raise InputError(f"max_concurrent_requests must be 1 or more, not {limit!r}")
    with _SLOTS_LOCK:
        return _SLOTS.setdefault((service_url, n), threading.BoundedSemaphore(n))


# Why a retry is considered.
SAFE_CONNECT = "connection_failed_before_body_accepted"
SYSTEM_BUSY = "system_busy"
CONCURRENCY = "too_many_concurrent_requests"
UNAVAILABLE = "service_unavailable_503"
RATE_LIMITED = "rate_limited"


@dataclass
class RetryDecision:
    retry: bool
    delay_s: float = 0.0
    reason: str = ""
    note: str = ""


class Retrier:
    """Keeps the retry budget of one logical request (all its attempts)."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.retries = 0
        self.concurrency_waited_s = 0.0

    def decide(self, reason: str, retry_after: float | None = None) -> RetryDecision:
        p = self.policy
        if reason == CONCURRENCY:
            remaining = p.concurrency_wait_s - self.concurrency_waited_s
            if remaining <= 0:
                return RetryDecision(False, reason=reason,
                                     note=f"waited {self.concurrency_waited_s:.0f} s for a free "
                                     f"slot (limit {p.concurrency_wait_s:.0f} s)")
            base = retry_after if retry_after is not None else p.concurrency_poll_s
            delay = min(base * self.rng.uniform(1.0, 1.2), p.retry_after_cap_s, remaining)
            self.concurrency_waited_s += delay
            return RetryDecision(True, delay, reason, "waiting for a concurrency slot")
        if self.retries >= p.max_retries:
            return RetryDecision(False, reason=reason,
                                 note=f"retry limit reached ({p.max_retries} retries)")
        self.retries += 1
        if retry_after is not None:
            delay = min(retry_after, p.retry_after_cap_s)
            note = "honouring Retry-After"
        else:
            delay = p.backoff(self.retries, self.rng)
            note = "exponential backoff"
        return RetryDecision(True, delay, reason, note)


def classify_retry(info: ErrorInfo) -> str | None:
    """Which retry rule an error response falls under (None = not retryable)."""
    if info.status_code == 429:
        if info.code in ("too_many_concurrent_requests", "user_concurrency_exceeded",
                         "concurrency_limit_exceeded"):
            return CONCURRENCY
        if info.code == "system_busy":
            return SYSTEM_BUSY
        return RATE_LIMITED
    if info.status_code == 503:
        return UNAVAILABLE
    return None


# ------------------------------------------------------------------------------ attempt records


@dataclass
class AttemptRecord:
    """One HTTP attempt as reported in the manifest. Never holds a secret."""

    provider: str
    request_id: str
    attempt: int
    method: str
    url: str
    purpose: str
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )
    status: int | None = None
    request_bytes: int = 0
    request_bytes_total: int | None = None
    body_sent: bool = False
    response_bytes: int = 0
    ttfb_s: float | None = None
    elapsed_s: float | None = None
    content_type: str | None = None
    ids: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    error_code: str | None = None
    retry: str = "none"  # none | retry | give_up | not_safe | possibly_charged
    retry_reason: str | None = None
    retry_delay_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def headers_received(self) -> None:
        self.ttfb_s = round(time.monotonic() - self.started, 4)

    def finish(self) -> None:
        self.elapsed_s = round(time.monotonic() - self.started, 4)

    def capture_ids(self, headers: httpx.Headers) -> None:
        for name in ("song-id", "x-request-id", "request-id", "x-trace-id", "trace-id",
                     "history-item-id", "current-concurrent-requests",
                     "maximum-concurrent-requests"):
            v = headers.get(name)
            if v:
                self.ids[name] = v[:200]

    def event(self, redactor: Redactor) -> dict[str, Any]:
        data: dict[str, Any] = {
            "provider": self.provider,
            "request_id": self.request_id,
            "attempt": self.attempt,
            "purpose": self.purpose,
            "method": self.method,
            "url": url_for_log(self.url, redactor),
            "started_at": self.started_at,
            "status": self.status,
            "request_bytes": self.request_bytes,
            "request_bytes_total": self.request_bytes_total,
            "body_sent": self.body_sent,
            "response_bytes": self.response_bytes,
            "ttfb_s": self.ttfb_s,
            "elapsed_s": self.elapsed_s,
            "content_type": self.content_type,
            "ids": dict(self.ids),
            "error": self.error,
            "error_code": self.error_code,
            "retry": self.retry,
            "retry_reason": self.retry_reason,
            "retry_delay_s": None if self.retry_delay_s is None else round(self.retry_delay_s, 3),
        }
        data.update(self.extra)
        redacted: dict[str, Any] = redactor.obj(data)
        return redacted


def transport_error_text(exc: BaseException) -> str:
    name = type(exc).__name__
    msg = str(exc).strip()
    return f"{name}: {msg}" if msg else name


def is_connect_phase_error(exc: BaseException) -> bool:
    """Errors that happen before any byte of the request could reach the service."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                            httpx.UnsupportedProtocol))


def read_limited(response: httpx.Response, limit: int = MAX_ERROR_BODY) -> bytes:
    """Read at most *limit* bytes of a streamed response (error bodies)."""
    buf = bytearray()
    for chunk in response.iter_bytes():
        buf += chunk
        if len(buf) >= limit:
            break
    return bytes(buf[:limit])


def stream_response_to_file(
    response: httpx.Response,
    fh: Any,
    record: AttemptRecord,
    *,
    max_bytes: int,
    chunk_size: int = 1 << 20,
) -> int:
    """Copy a streamed response body into the open binary file *fh*; returns the byte count.

    Memory stays at one chunk whatever the size. Raises ServiceError past *max_bytes*.
    """
    total = 0
    # No chunk_size: bytes are counted as they arrive (a broken download reports how far it got);
    # each piece is at most one network read, so memory stays flat.
    for chunk in response.iter_bytes():
        total += len(chunk)
        record.response_bytes = total
        if total > max_bytes:
            raise ServiceError(
                f"the response is larger than the accepted maximum ({max_bytes:,} bytes); "
                "stopped downloading",
                hint="raise the provider option max_response_bytes if this is expected",
            )
        fh.write(chunk)
    return total
