"""The one retry path of every network call: :class:`Retrier` and the attempt records it keeps.

Each logical request (a generation, a task submit, a poll, a result download, a clip upload) gets
one :class:`Retrier`. For each try the caller opens an :class:`AttemptRecord` with
:meth:`Retrier.attempt`, performs the call, and on a failure asks :meth:`Retrier.again` with the
reason the failure is *safe* to retry (or None when it is not). ``again`` decides (retry budget,
``Retry-After``, capped exponential backoff with jitter, a separate bounded wait for a concurrency
slot), records the decision on the attempt, emits it through the provider's redacting
:class:`~reelscore.providers.redact.Emitter`, sleeps, and answers continue (True) or stop (False).
:meth:`Retrier.report` emits a finished attempt; :meth:`Retrier.charged` records one that may
have been billed and returns the :class:`~reelscore.errors.PossiblyChargedError` to raise.

Whether a failure is safe to retry is the caller's knowledge of its call, stated with the reason
constants of :mod:`reelscore.providers.service_errors`: a generation whose body was fully sent is
never retried blindly (the service may be generating and charging it).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from reelscore.errors import InputError, PossiblyChargedError
from reelscore.providers.options import HttpOptions
from reelscore.providers.redact import Emitter, Redactor, url_for_log
from reelscore.providers.service_errors import CONCURRENCY


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter; bounded wait for a concurrency slot."""

    max_retries: int = 4
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    retry_after_cap_s: float = 300.0
    concurrency_poll_s: float = 15.0
    concurrency_wait_s: float = 900.0

    @classmethod
    def from_options(cls, max_retries: int, options: HttpOptions) -> RetryPolicy:
        return cls(max_retries=max_retries, base_delay_s=options.retry_base_s,
                   max_delay_s=options.retry_cap_s, retry_after_cap_s=options.retry_after_cap_s,
                   concurrency_poll_s=options.concurrency_poll_s,
                   concurrency_wait_s=options.concurrency_wait_s)

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Delay before retry *retry_number* (1-based): half fixed, half jitter, capped."""
        r = rng or random
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** max(0, retry_number - 1)))
        return ceiling / 2 + r.uniform(0, ceiling / 2)


_SLOTS: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def client_slot(service_url: str, limit: int | None) -> contextlib.AbstractContextManager[Any]:
    """One of *limit* request slots shared by every job of this process that uses *service_url*
    (provider option ``max_concurrent_requests``; None = no client-side limit). Jobs in other
    processes are kept in line by the service's ``too_many_concurrent_requests`` answer, on which
    a request waits for a slot (``concurrency_poll_s`` / ``concurrency_wait_s``)."""
    if limit is None:
        return contextlib.nullcontext()
    if limit < 1:
        raise InputError(f"max_concurrent_requests must be 1 or more, not {limit!r}")
    with _SLOTS_LOCK:
        return _SLOTS.setdefault((service_url, limit), threading.BoundedSemaphore(limit))


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
    retry: str = "none"  # none | retry | give_up | possibly_charged
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


@dataclass
class RetryDecision:
    retry: bool
    delay_s: float = 0.0
    reason: str = ""
    note: str = ""


class Retrier:
    """The retry budget, attempt records and sleeps of one logical request (all its attempts)."""

    def __init__(
        self,
        policy: RetryPolicy,
        emit: Emitter | None = None,
        *,
        provider: str = "",
        request_id: str = "",
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.emit = emit or Emitter(Redactor())
        self.provider = provider
        self.request_id = request_id
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.retries = 0
        self.attempts = 0
        self.concurrency_waited_s = 0.0

    # -- the decision --------------------------------------------------------------------------
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

    # -- the bookkeeping -----------------------------------------------------------------------
    def attempt(self, *, method: str, url: str, purpose: str, request_id: str | None = None,
                request_bytes_total: int | None = None) -> AttemptRecord:
        """Open the record of the next attempt."""
        self.attempts += 1
        return AttemptRecord(provider=self.provider, request_id=request_id or self.request_id,
                             attempt=self.attempts, method=method, url=url, purpose=purpose,
                             request_bytes_total=request_bytes_total)

    def again(self, rec: AttemptRecord, reason: str | None,
              retry_after: float | None = None) -> bool:
        """After a failed attempt: retry (True: recorded, emitted, slept) or stop (False).

        *reason* None means the failure is not safe to retry: nothing is recorded, the caller
        raises. On a refused retry the attempt is marked ``give_up`` with the note; the caller
        reports it with the error it raises.
        """
        if reason is None:
            return False
        if rec.elapsed_s is None:
            rec.finish()
        decision = self.decide(reason, retry_after)
        rec.retry_reason = reason
        rec.extra["retry_note"] = decision.note
        if not decision.retry:
            rec.retry = "give_up"
            return False
        rec.retry, rec.retry_delay_s = "retry", decision.delay_s
        self.report(rec)
        self.sleep(decision.delay_s)
        return True

    def summary(self, rec: AttemptRecord) -> str:
        """What the retries came to, for the message of the error that ends them."""
        text = f" ({rec.attempt} attempts; {rec.extra.get('retry_note', '')})"
        if rec.retry_reason == CONCURRENCY:
            text += f"; waited {self.concurrency_waited_s:.0f} s for a slot"
        return text

    def report(self, rec: AttemptRecord) -> None:
        """Emit a finished attempt (``attempt`` event)."""
        if rec.elapsed_s is None:
            rec.finish()
        self.emit("attempt", rec.event(self.emit.redactor))

    def charged(self, rec: AttemptRecord, message: str, hint: str,
                **event: Any) -> PossiblyChargedError:
        """Record an attempt that may have been billed; return the error to raise."""
        red = self.emit.redactor
        rec.retry = "possibly_charged"
        self.report(rec)
        self.emit("possibly_charged", {"provider": self.provider, "request_id": rec.request_id,
                                       "attempt": rec.attempt, "status": rec.status,
                                       "reason": red.text(message),
                                       "request_bytes": rec.request_bytes,
                                       "ids": dict(rec.ids), **event})
        return PossiblyChargedError(red.text(message), hint=hint, status_code=rec.status)
