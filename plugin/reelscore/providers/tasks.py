"""Task-based music APIs: submit -> poll (interval, deadline) -> fetch the result.

Written once for every service of that shape. A service is described by a small
:class:`TaskAPI` adapter (how to build the submit call and read its answer, how to ask for and read
a task's status, optionally how to read usage/concurrency and how to verify a signed webhook);
:class:`TaskRunner` does the HTTP, retries, waiting, deadline and download; :class:`TaskProvider`
turns it into a :class:`~reelscore.providers.base.Provider` (upload clips -> public URLs, run the
task, store the audio), so the pipeline never knows which service ran.

Adapters here: :class:`MountseaTasks` (the mountsea-style ElevenLabs proxy, reference §11) and
:class:`BeatApiTasks` (BeatAPI's envelopes, ``/v1/tasks/{id}``, ``/v1/usage``, signed webhooks,
reference §12).

Charging rule: submitting creates a billable task. A submit whose body was sent but whose answer
was lost, a task still running at the deadline, and a result that cannot be downloaded are
reported as :class:`~reelscore.errors.PossiblyChargedError` (never re-submitted silently). Polls
and result downloads are idempotent GETs and are retried.

Options (``ProviderConfig.options``): ``poll_interval_s`` (4), ``deadline_s`` (900),
``webhook`` ({``listen``: "127.0.0.1:0", ``path``: "/reelscore/webhook", ``tolerance_s``: 300}; the
signing secret comes from ``$REELSCORE_WEBHOOK_SECRET`` or ``[<provider>] webhook_secret`` in the
credentials file), plus the retry/timeout options of :mod:`reelscore.providers.http`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from reelscore.errors import (
    InputError,
    PossiblyChargedError,
    ProviderError,
    ServiceError,
)
from reelscore.providers.base import EventSink, GeneratedAudio, GenerationRequest, ProviderConfig
from reelscore.providers.http import (
    SAFE_CONNECT,
    AttemptRecord,
    Redactor,
    Retrier,
    RetryPolicy,
    classify_retry,
    error_from_response,
    is_connect_phase_error,
    make_client,
    parse_error_body,
    read_limited,
    retry_after_seconds,
    stream_response_to_file,
    transport_error_text,
)

log = logging.getLogger(__name__)

TaskState = Literal["pending", "running", "succeeded", "failed"]


def _ignore(_name: str, _data: dict[str, Any]) -> None:
    return None


# ------------------------------------------------------------------------------------ data types


class TaskStatus(BaseModel):
    """A task as the runner sees it, whatever the service calls things."""

    model_config = ConfigDict(extra="ignore")

    task_id: str
    state: TaskState
    raw_status: str
    result_urls: list[str] = Field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    trace_id: str | None = None
    usage: dict[str, Any] | None = None


class Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int | None = None
    active: int | None = None
    balance: Any = None


@dataclass
class HttpCall:
    method: str
    path: str  # relative to the base URL; may carry a query
    json: Any = None
    params: dict[str, str] | None = None


class TaskAPI(Protocol):
    """What differs between task services. Pure: builds calls, reads answers."""

    service: str  # shown in messages, e.g. "the mountsea proxy"

    def submit_call(self, payload: dict[str, Any]) -> HttpCall: ...
    def parse_submit(self, doc: Any) -> str: ...
    def status_call(self, task_id: str) -> HttpCall: ...
    def parse_status(self, task_id: str, doc: Any) -> TaskStatus: ...
    def usage_call(self) -> HttpCall | None: ...
    def parse_usage(self, doc: Any) -> Usage: ...
    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """The task id a verified webhook is about (None: not a completion event)."""
        ...


def find_urls(value: Any, *, prefer: tuple[str, ...] = ("audio", "url")) -> list[str]:
    """http(s) URLs in an arbitrary result payload, those under 'audio'-like keys first."""
    found: list[tuple[int, str]] = []

    def walk(v: Any, key: str) -> None:
        if isinstance(v, str):
            if v.startswith(("http://", "https://")):
                k = key.lower()
                rank = 0 if "audio" in k else 1 if "url" in k else 2
                found.append((rank, v))
        elif isinstance(v, Mapping):
            for k, x in v.items():
                walk(x, str(k))
        elif isinstance(v, list):
            for x in v:
                walk(x, key)

    walk(value, "")
    found.sort(key=lambda t: t[0])
    out: list[str] = []
    for _, u in found:
        if u not in out:
            out.append(u)
    return out


# ------------------------------------------------------------------------------------- adapters


class MountseaTasks:
    """The mountsea-style proxy: ``POST /eleven/video-to-music`` -> ``{taskId}``;
    ``GET /eleven/tasks?taskId=`` -> ``{taskId, status, result, errorMessage, errorCode, traceId}``.
    """

    service = "the mountsea proxy"
    RUNNING = ("pending", "ready", "assigned", "processing", "queued", "running")
    FAILED = ("failed", "cancelled", "canceled", "timeout", "error")

    def submit_call(self, payload: dict[str, Any]) -> HttpCall:
        return HttpCall("POST", "/eleven/video-to-music", json=payload)

    def parse_submit(self, doc: Any) -> str:
        tid = None
        if isinstance(doc, Mapping):
            tid = doc.get("taskId") or doc.get("task_id")
            if tid is None and isinstance(doc.get("data"), Mapping):
                tid = doc["data"].get("taskId") or doc["data"].get("task_id")
        if not tid:
            raise ServiceError(f"{self.service} accepted the request but returned no taskId",
                               hint="the task may exist and be charged; check the proxy's console")
        return str(tid)

    def status_call(self, task_id: str) -> HttpCall:
        return HttpCall("GET", "/eleven/tasks", params={"taskId": task_id})

    def parse_status(self, task_id: str, doc: Any) -> TaskStatus:
        if isinstance(doc, Mapping) and isinstance(doc.get("data"), Mapping) and "status" not in doc:
            doc = doc["data"]
        if not isinstance(doc, Mapping):
            raise ServiceError(f"{self.service} answered a task status that is not an object")
        raw = str(doc.get("status", "")).lower()
        state: TaskState
        if raw == "completed" or raw == "succeeded" or raw == "success":
            state = "succeeded"
        elif raw in self.FAILED:
            state = "failed"
        elif raw in ("pending", "queued"):
            state = "pending"
        else:
            state = "running"
        return TaskStatus(
            task_id=str(doc.get("taskId") or task_id), state=state, raw_status=raw,
            result_urls=find_urls(doc.get("result")) if state == "succeeded" else [],
            error_code=_s(doc.get("errorCode")), error_message=_s(doc.get("errorMessage")),
            trace_id=_s(doc.get("traceId")),
        )

    def usage_call(self) -> HttpCall | None:
        return None

    def parse_usage(self, doc: Any) -> Usage:
        return Usage()

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return None


class BeatApiTasks:
    """BeatAPI's task contract: ``{"data": ...}`` / ``{"error": {...}}`` envelopes,
    ``GET /v1/tasks/{id}`` (``queued|processing|...|succeeded|failed``, ``output.media[]``),
    ``GET /v1/usage`` (``concurrency.limit/active``) and ``task.succeeded``/``task.failed``
    webhooks. *submit_path* is the workflow's task endpoint.
    """

    service = "BeatAPI"

    def __init__(self, submit_path: str = "/v1/video-to-music/tasks") -> None:
        self.submit_path = submit_path

    def submit_call(self, payload: dict[str, Any]) -> HttpCall:
        return HttpCall("POST", self.submit_path, json=payload)

    def parse_submit(self, doc: Any) -> str:
        data = doc.get("data") if isinstance(doc, Mapping) else None
        if not isinstance(data, Mapping) or not data.get("id"):
            raise ServiceError("BeatAPI accepted the task but returned no id",
                               hint="the task may exist and be charged; check BeatAPI's console")
        return str(data["id"])

    def status_call(self, task_id: str) -> HttpCall:
        return HttpCall("GET", f"/v1/tasks/{task_id}")

    def parse_status(self, task_id: str, doc: Any) -> TaskStatus:
        data = doc.get("data") if isinstance(doc, Mapping) else None
        if not isinstance(data, Mapping):
            raise ServiceError("BeatAPI answered a task without a data object")
        raw = str(data.get("status", "")).lower()
        state: TaskState = ("succeeded" if raw == "succeeded" else "failed" if raw == "failed"
                            else "pending" if raw == "queued" else "running")
        err_v = data.get("error")
        err: Mapping[str, Any] = err_v if isinstance(err_v, Mapping) else {}
        output = data.get("output")
        media = output.get("media") if isinstance(output, Mapping) else None
        return TaskStatus(task_id=str(data.get("id") or task_id), state=state, raw_status=raw,
                          result_urls=find_urls(media) if state == "succeeded" else [],
                          error_code=_s(err.get("code")), error_message=_s(err.get("message")),
                          usage=data.get("usage") if isinstance(data.get("usage"), dict) else None)

    def usage_call(self) -> HttpCall | None:
        return HttpCall("GET", "/v1/usage")

    def parse_usage(self, doc: Any) -> Usage:
        data = doc.get("data") if isinstance(doc, Mapping) else None
        conc = data.get("concurrency") if isinstance(data, Mapping) else None
        if not isinstance(conc, Mapping):
            return Usage()
        return Usage(limit=conc.get("limit"), active=conc.get("active"),
                     balance=data.get("balance") if isinstance(data, Mapping) else None)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> str | None:
        try:
            doc = json.loads(body)
        except ValueError:
            return None
        if not isinstance(doc, Mapping) or doc.get("event") not in ("task.succeeded",
                                                                     "task.failed"):
            return None
        data = doc.get("data")
        return str(data.get("id")) if isinstance(data, Mapping) and data.get("id") else None


def _s(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


# -------------------------------------------------------------------------------------- webhooks


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 (hex) over ``<timestamp>.<raw body>``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_webhook_signature(secret: str, timestamp: str | None, signature: str | None,
                             body: bytes, *, tolerance_s: float = 300.0,
                             now: float | None = None) -> bool:
    """Constant-time check of a webhook signature; stale timestamps are refused (replay)."""
    if not timestamp or not signature:
        return False
    try:
        ts = float(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - ts) > tolerance_s:
        return False
    expected = sign_webhook(secret, timestamp, body)
    for cand in signature.replace(" ", "").split(","):
        value = cand.split("=", 1)[1] if "=" in cand else cand
        if hmac.compare_digest(value.lower(), expected):
            return True
    return False


class WebhookReceiver:
    """A small HTTP listener for signed completion webhooks (polling stays the truth).

    Verified events put the task id on :attr:`events`; anything else is refused (401) and
    reported with the ``webhook`` event (``verified: false``).
    """

    def __init__(self, api: TaskAPI, secret: str, *, listen: str = "127.0.0.1:0",
                 path: str = "/reelscore/webhook", tolerance_s: float = 300.0,
                 signature_header: str = "x-beatapi-signature",
                 timestamp_header: str = "x-beatapi-timestamp",
                 on_event: EventSink = _ignore) -> None:
        self.api = api
        self.events: queue.Queue[str] = queue.Queue()
        host, _, port = listen.rpartition(":")
        receiver = self

        class _H(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(min(n, 1 << 20))
                ok = self.path.split("?")[0] == path and verify_webhook_signature(
                    secret, self.headers.get(timestamp_header),
                    self.headers.get(signature_header), body, tolerance_s=tolerance_s)
                tid = api.parse_webhook({k.lower(): v for k, v in self.headers.items()},
                                        body) if ok else None
                on_event("webhook", {"verified": ok, "task_id": tid})
                self.send_response(204 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if tid:
                    receiver.events.put(tid)

        self._server = ThreadingHTTPServer((host or "127.0.0.1", int(port or 0)), _H)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2)


# ---------------------------------------------------------------------------------------- runner


class TaskRunner:
    """Runs one task on a TaskAPI: preflight, submit, poll until done or the deadline, download."""

    def __init__(self, api: TaskAPI, client: httpx.Client, base_url: str, *,
                 provider: str, config: ProviderConfig, redactor: Redactor,
                 on_event: EventSink = _ignore, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 webhook: WebhookReceiver | None = None) -> None:
        self.api = api
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.provider = provider
        self.config = config
        self.red = redactor
        self._on_event = on_event
        self.sleep = sleep
        self.clock = clock
        self.webhook = webhook
        o = config.options
        self.poll_interval_s = float(o.get("poll_interval_s", 4.0))
        self.deadline_s = float(o.get("deadline_s", 900.0))
        self.max_response_bytes = int(o.get("max_response_bytes", 2 << 30))
        self.policy = RetryPolicy.from_config(config)

    def emit(self, name: str, data: dict[str, Any]) -> None:
        safe = self.red.obj(data)
        log.debug("%s %s", name, safe)
        self._on_event(name, safe)

    # -- JSON calls with the retry policy -----------------------------------------------------
    def call_json(self, call: HttpCall, *, request_id: str, purpose: str,
                  idempotent: bool) -> Any:
        retrier = Retrier(self.policy, sleep=self.sleep)
        url = self.base_url + call.path
        attempt = 0
        while True:
            attempt += 1
            body = b"" if call.json is None else json.dumps(call.json).encode()
            rec = AttemptRecord(provider=self.provider, request_id=request_id, attempt=attempt,
                                method=call.method, url=str(httpx.URL(url, params=call.params)),
                                purpose=purpose, request_bytes_total=len(body))
            headers = {"Content-Type": "application/json"} if call.json is not None else {}
            try:
                resp = self.client.request(call.method, url, params=call.params,
                                           content=body or None, headers=headers)
            except httpx.TransportError as exc:
                rec.finish()
                rec.error = self.red.text(transport_error_text(exc))
                safe = idempotent or is_connect_phase_error(exc)
                if safe:
                    d = retrier.decide(SAFE_CONNECT)
                    rec.retry_reason = SAFE_CONNECT
                    if d.retry:
                        rec.retry, rec.retry_delay_s = "retry", d.delay_s
                        self.emit("attempt", rec.event(self.red))
                        self.sleep(d.delay_s)
                        continue
                    rec.retry = "give_up"
                    self.emit("attempt", rec.event(self.red))
                    raise ServiceError(
                        f"cannot reach {self.api.service} at {self.base_url} ({rec.error}; "
                        f"{attempt} attempts)", hint="check the network and --base-url",
                        retryable=True) from None
                rec.request_bytes, rec.body_sent, rec.retry = len(body), True, "possibly_charged"
                self.emit("attempt", rec.event(self.red))
                self.emit("possibly_charged", {"provider": self.provider,
                                               "request_id": request_id, "reason": rec.error})
                raise PossiblyChargedError(
                    f"the {purpose} request reached {self.api.service} but its answer was lost "
                    f"({rec.error}); a task may have been created and charged",
                    hint="check the service's task list; rerun with --resubmit to submit (and "
                    "pay) again") from None
            rec.headers_received()
            rec.finish()
            rec.status = resp.status_code
            rec.request_bytes, rec.body_sent = len(body), True
            rec.response_bytes = len(resp.content)
            rec.content_type = resp.headers.get("content-type")
            rec.capture_ids(resp.headers)
            if 200 <= resp.status_code < 300:
                try:
                    doc = resp.json()
                except ValueError:
                    doc = None
                if isinstance(doc, Mapping):
                    for k in ("taskId", "task_id", "traceId", "request_id"):
                        if doc.get(k):
                            rec.ids[k] = str(doc[k])[:200]
                self.emit("attempt", rec.event(self.red))
                if doc is None:
                    raise ServiceError(
                        f"{self.api.service} answered {resp.status_code} with a body that is "
                        f"not JSON ({self.red.text(resp.text[:120])!r})",
                        hint="check --base-url")
                return doc
            info = parse_error_body(resp.status_code, resp.content,
                                    resp.headers.get("content-type", ""))
            rec.error, rec.error_code = self.red.text(info.summary()), info.code
            rec.extra["error_shape"] = info.shape
            kind = classify_retry(info)
            if kind is None and idempotent and resp.status_code >= 500:
                kind = "server_error_on_idempotent_call"
            if kind is not None:
                ra = retry_after_seconds(resp.headers)
                d = retrier.decide(kind, ra if ra is not None else info.retry_after_s)
                rec.retry_reason = kind
                if d.retry:
                    rec.retry, rec.retry_delay_s = "retry", d.delay_s
                    self.emit("attempt", rec.event(self.red))
                    self.sleep(d.delay_s)
                    continue
                rec.retry = "give_up"
                rec.extra["retry_note"] = d.note
            err = error_from_response(info, service=self.api.service,
                                      body_sent=not idempotent, redactor=self.red)
            if kind is not None:
                err.message += f" ({attempt} attempts; {rec.extra.get('retry_note', '')})"
            if isinstance(err, PossiblyChargedError):
                rec.retry = "possibly_charged"
                self.emit("possibly_charged", {"provider": self.provider,
                                               "request_id": request_id,
                                               "reason": err.message})
            self.emit("attempt", rec.event(self.red))
            raise err

    # -- the task -------------------------------------------------------------------------------
    def preflight(self, request_id: str) -> Usage | None:
        call = self.api.usage_call()
        if call is None:
            return None
        waited = 0.0
        while True:
            usage = self.api.parse_usage(self.call_json(call, request_id=request_id,
                                                        purpose="usage", idempotent=True))
            self.emit("preflight", {"provider": self.provider, "request_id": request_id,
                                    "limit": usage.limit, "active": usage.active,
                                    "waited_s": round(waited, 3)})
            if usage.limit is None or usage.active is None or usage.active < usage.limit:
                return usage
            if waited >= self.policy.concurrency_wait_s:
                raise ProviderError(
                    f"{self.api.service}: all {usage.limit} concurrent task slots are still in "
                    f"use after waiting {waited:.0f} s",
                    hint="wait for the running tasks to finish, or raise the option "
                    "concurrency_wait_s")
            step = min(self.policy.concurrency_poll_s, self.policy.concurrency_wait_s - waited)
            self.sleep(max(step, 0.0))
            waited += max(step, 0.0)

    def submit(self, payload: dict[str, Any], request_id: str) -> str:
        doc = self.call_json(self.api.submit_call(payload), request_id=request_id,
                             purpose="submit", idempotent=False)
        tid = self.api.parse_submit(doc)
        self.emit("task_submitted", {"provider": self.provider, "request_id": request_id,
                                     "task_id": tid})
        return tid

    def wait(self, task_id: str, request_id: str) -> TaskStatus:
        start = self.clock()
        polls = 0
        last = None
        while True:
            polls += 1
            status = self.api.parse_status(task_id, self.call_json(
                self.api.status_call(task_id), request_id=request_id, purpose="poll",
                idempotent=True))
            if status.raw_status != last:
                self.emit("task_status", {"provider": self.provider, "request_id": request_id,
                                          "task_id": task_id, "status": status.raw_status,
                                          "state": status.state, "poll": polls,
                                          "trace_id": status.trace_id,
                                          "elapsed_s": round(self.clock() - start, 3),
                                          "usage": status.usage})
                last = status.raw_status
            if status.state == "succeeded":
                return status
            if status.state == "failed":
                bits = [b for b in (status.error_code, status.error_message) if b]
                trace = f"; trace id {status.trace_id}" if status.trace_id else ""
                raise ServiceError(
                    f"{self.api.service} task {task_id} ended {status.raw_status!r}: "
                    f"{self.red.text(': '.join(bits) or 'no details')}{trace}",
                    hint="failed tasks are normally not charged; check the settings and run "
                    "again (quote the trace id when contacting support)")
            elapsed = self.clock() - start
            if elapsed >= self.deadline_s:
                self.emit("possibly_charged", {"provider": self.provider,
                                               "request_id": request_id, "task_id": task_id,
                                               "reason": "deadline"})
                raise PossiblyChargedError(
                    f"{self.api.service} task {task_id} is still {status.raw_status!r} after "
                    f"{elapsed:.0f} s (deadline {self.deadline_s:.0f} s); it may still finish "
                    "and be charged",
                    hint="raise the option deadline_s, or check the task later; rerun with "
                    "--resubmit to submit (and pay) again")
            delay = min(self.poll_interval_s, max(0.0, self.deadline_s - elapsed))
            if self.webhook is not None:
                with contextlib.suppress(queue.Empty):
                    got = self.webhook.events.get(timeout=delay)
                    if got != task_id:
                        continue
            else:
                self.sleep(delay)

    def download(self, url: str, out_dir: Path, request_id: str, task_id: str
                 ) -> tuple[Path, AttemptRecord]:
        """Fetch the result into a temporary file in out_dir (GET: retried when it breaks)."""
        retrier = Retrier(self.policy, sleep=self.sleep)
        attempt = 0
        while True:
            attempt += 1
            rec = AttemptRecord(provider=self.provider, request_id=request_id, attempt=attempt,
                                method="GET", url=url, purpose="download")
            rec.ids["task_id"] = task_id
            fd, tmp_name = tempfile.mkstemp(prefix=f".{request_id}.", suffix=".download",
                                            dir=out_dir)
            tmp = Path(tmp_name)
            try:
                # Result URLs are usually on another host (a CDN): never send our key there.
                with httpx.Client(timeout=self.client.timeout, transport=None,
                                  headers={"User-Agent": self.client.headers.get("User-Agent",
                                                                                  "")},
                                  follow_redirects=True) as plain, \
                        plain.stream("GET", url) as resp:
                    rec.headers_received()
                    rec.status = resp.status_code
                    rec.content_type = resp.headers.get("content-type")
                    if resp.status_code != 200:
                        raw = read_limited(resp)
                        rec.response_bytes = len(raw)
                        info = parse_error_body(resp.status_code, raw)
                        raise _DownloadFailed(f"HTTP {resp.status_code}: {info.summary()}",
                                              retry=resp.status_code >= 500
                                              or resp.status_code == 429)
                    with os.fdopen(fd, "wb") as fh:
                        fd = -1
                        stream_response_to_file(resp, fh, rec, max_bytes=self.max_response_bytes)
                        fh.flush()
                        os.fsync(fh.fileno())
                rec.finish()
                if rec.response_bytes == 0:
                    raise _DownloadFailed("the result file is empty (0 bytes)", retry=True)
                self.emit("attempt", rec.event(self.red))
                return tmp, rec
            except (httpx.TransportError, _DownloadFailed) as exc:
                if fd >= 0:
                    os.close(fd)
                with contextlib.suppress(OSError):
                    tmp.unlink()
                rec.finish()
                rec.error = self.red.text(str(exc) if isinstance(exc, _DownloadFailed)
                                          else transport_error_text(exc))
                retry = not isinstance(exc, _DownloadFailed) or exc.retry
                d = retrier.decide("download_failed") if retry else None
                if d is not None and d.retry:
                    rec.retry, rec.retry_reason, rec.retry_delay_s = ("retry", "download_failed",
                                                                      d.delay_s)
                    self.emit("attempt", rec.event(self.red))
                    self.sleep(d.delay_s)
                    continue
                rec.retry = "possibly_charged"
                self.emit("attempt", rec.event(self.red))
                self.emit("possibly_charged", {"provider": self.provider,
                                               "request_id": request_id, "task_id": task_id,
                                               "reason": rec.error})
                raise PossiblyChargedError(
                    f"{self.api.service} task {task_id} completed (and was charged) but its "
                    f"result could not be downloaded after {attempt} attempts: {rec.error}",
                    hint="the result URL is recorded in the manifest; rerun with --resubmit "
                    "to generate (and pay) again") from None


class _DownloadFailed(Exception):
    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


# -------------------------------------------------------------------------------------- provider


class TaskProvider:
    """A Provider over any TaskAPI + Uploader. Subclasses set the adapter and build the payload."""

    name = "task"
    default_base_url = ""
    charges = True
    reports_upload_complete = False

    def preflight(self) -> None:
        return None  # subclasses check their key here

    def __init__(self, config: ProviderConfig, *, api: TaskAPI,
                 uploader: Any = None, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        from reelscore.providers.http import validate_base_url

        self.config = config
        self.api = api
        if not (config.base_url or self.default_base_url):
            raise InputError(f"the {self.name} provider needs --base-url (the service's root URL)")
        self.base_url = validate_base_url(config.base_url or self.default_base_url,
                                          allow_insecure=config.allow_insecure)
        self._uploader = uploader
        self._transport = transport
        self._sleep = sleep
        self.redactor = Redactor()
        if config.api_key is not None:
            self.redactor.add(config.api_key.get_secret_value())

    # Subclass hooks --------------------------------------------------------------------------
    def validate(self, request: GenerationRequest) -> list[str]:
        return []

    def build_payload(self, urls: list[str], request: GenerationRequest) -> dict[str, Any]:
        raise NotImplementedError

    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def make_uploader(self, on_event: EventSink) -> Any:
        raise NotImplementedError

    def make_webhook(self, on_event: EventSink) -> WebhookReceiver | None:
        return None

    # The flow ----------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest, out_dir: Path, *,
                 on_event: EventSink = _ignore) -> GeneratedAudio:
        from reelscore.providers.elevenlabs import finalize_audio

        warnings = self.validate(request)
        headers = self.auth_headers()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)

        def emit(name: str, data: dict[str, Any]) -> None:
            safe = self.redactor.obj(data)
            log.debug("%s %s", name, safe)
            on_event(name, safe)

        for w in warnings:
            emit("warning", {"request_id": request.request_id, "message": w})
        uploader = self._uploader if self._uploader is not None else self.make_uploader(emit)
        webhook = self.make_webhook(emit)
        try:
            with make_client(self.config, headers=headers, transport=self._transport) as client:
                runner = TaskRunner(self.api, client, self.base_url, provider=self.name,
                                    config=self.config, redactor=self.redactor, on_event=emit,
                                    sleep=self._sleep, webhook=webhook)
                emit("request", {"provider": self.name, "request_id": request.request_id,
                                 "url": self.base_url, "video_count": len(request.clips),
                                 "bytes": request.total_bytes,
                                 "seconds": round(request.total_seconds, 6),
                                 "allow_resubmit": self.config.allow_resubmit})
                runner.preflight(request.request_id)
                urls = [uploader.upload(c.path) for c in request.clips]
                payload = self.build_payload(urls, request)
                tid = runner.submit(payload, request.request_id)
                status = runner.wait(tid, request.request_id)
                if not status.result_urls:
                    raise PossiblyChargedError(
                        f"{self.api.service} task {tid} completed without a result URL",
                        hint="check the task in the service's console; rerun with --resubmit "
                        "to generate (and pay) again")
                tmp, rec = runner.download(status.result_urls[0], out_dir, request.request_id,
                                           tid)
                try:
                    audio = finalize_audio(
                        tmp, out_dir=out_dir, request=request, provider=self.name,
                        content_type=rec.content_type, ids={"task_id": tid,
                                                            "trace_id": status.trace_id},
                        redactor=self.redactor, emit=emit, attempts=rec.attempt)
                finally:
                    with contextlib.suppress(OSError):
                        tmp.unlink()
                audio.metadata.update(task_id=tid, trace_id=status.trace_id,
                                      result_url=self.redactor.text(status.result_urls[0]),
                                      usage=status.usage)
                audio.metadata["warnings"] = warnings + audio.metadata.get("warnings", [])
                return audio
        finally:
            if webhook is not None:
                webhook.close()
            with contextlib.suppress(Exception):
                uploader.cleanup()
