"""What a service's error answer says, and the reelscore exception it becomes.

* :func:`parse_error_body` reads every error shape the services use (ElevenLabs ``detail`` object,
  ``detail`` list (422), flat ``{status, message}``, an ``{"error": {...}}`` envelope, plain text or
  HTML from a proxy).
* :func:`error_from_response` turns it into the exception tree with a service-specific hint
  (which key, which plan, which field, which flag).
* :func:`classify_retry` says which retry rule an error answer falls under; the
  :class:`~reelscore.providers.retry.Retrier` decides what to do about it.
* :func:`retry_after_seconds` reads ``Retry-After-ms`` / ``Retry-After``.

Charging rule (see docs/providers.md): once the whole request body was sent, the service may be
generating, and a 5xx other than 503 is a :class:`~reelscore.errors.PossiblyChargedError`.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from reelscore.errors import (
    AuthenticationError,
    PlanRejectedError,
    PossiblyChargedError,
    ProviderError,
    RateLimitedError,
    RequestRejectedError,
    ServiceError,
)
from reelscore.providers.redact import Redactor

MAX_ERROR_BODY = 64 * 1024

# Why a retry is considered (the ``retry_reason`` of an attempt).
SAFE_CONNECT = "connection_failed_before_body_accepted"
SYSTEM_BUSY = "system_busy"
CONCURRENCY = "too_many_concurrent_requests"
UNAVAILABLE = "service_unavailable_503"
RATE_LIMITED = "rate_limited"
IDEMPOTENT_5XX = "server_error_on_idempotent_call"

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
    elif isinstance(doc.get("error"), dict):  # {"error": {code, message, ...}} envelope
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
    suggested = info.data.get("composition_plan_suggestion")
    if s == 400 and code == "bad_composition_plan" and isinstance(suggested, dict):
        return PlanRejectedError(
            f"{service} refused the composition plan (400 bad_composition_plan): {detail}{ref}",
            suggestion=suggested, status_code=s,
            hint="change the named styles (artist names and copyrighted styles are refused)")
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



def classify_retry(info: ErrorInfo, *, idempotent: bool = False) -> str | None:
    """Which retry rule an error response falls under (None = not retryable).

    A 5xx other than 503 is retried only for an *idempotent* call (a poll, a GET): for a request
    that may have started a generation it means "possibly charged", never "try again".
    """
    if info.status_code == 429:
        if info.code in ("too_many_concurrent_requests", "user_concurrency_exceeded",
                         "concurrency_limit_exceeded"):
            return CONCURRENCY
        if info.code == "system_busy":
            return SYSTEM_BUSY
        return RATE_LIMITED
    if info.status_code == 503:
        return UNAVAILABLE
    if idempotent and info.status_code >= 500:
        return IDEMPOTENT_5XX
    return None
