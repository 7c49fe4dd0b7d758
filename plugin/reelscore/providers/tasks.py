"""Task-based music APIs: upload the clips, submit, poll (interval, deadline), download the result.

Written once for every service of that shape. A service is described by a small :class:`TaskAPI`
adapter (how to build the submit call and read its answer, how to ask for and read a task's
status; e.g. :class:`reelscore.providers.mountsea.MountseaTasks`). :class:`TaskRunner` does the
HTTP, retries, waiting, deadline and download; :class:`TaskProvider` turns it into a
:class:`~reelscore.providers.base.Provider` (clips -> public URLs through the S3 uploader, run the
task, store the audio), so the pipeline never knows which service ran.

Charging rule: submitting creates a billable task. A submit whose body was sent but whose answer
was lost, a task still running at the deadline, and a result that cannot be downloaded are
reported as :class:`~reelscore.errors.PossiblyChargedError` (never re-submitted silently). Polls
and result downloads are idempotent GETs and are retried.

Every call, the result download included, goes through :func:`~.client.make_client` with the
provider's injectable transport; the download client carries no key (result URLs are usually on
a CDN) and follows redirects.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from reelscore.errors import InputError, PossiblyChargedError, ServiceError
from reelscore.providers.answers import finalize_audio
from reelscore.providers.base import (
    EventSink,
    GeneratedAudio,
    GenerationRequest,
    ProviderConfig,
    ProviderDefaults,
    ignore_event,
)
from reelscore.providers.client import (
    is_connect_phase_error,
    make_client,
    read_limited,
    stream_response_to_file,
    transport_error_text,
    validate_base_url,
)
from reelscore.providers.options import MountseaOptions
from reelscore.providers.redact import Emitter, Redactor
from reelscore.providers.retry import AttemptRecord, Retrier, RetryPolicy
from reelscore.providers.service_errors import (
    SAFE_CONNECT,
    classify_retry,
    error_from_response,
    parse_error_body,
    retry_after_seconds,
)
from reelscore.providers.uploader import S3Uploader, check_uploader, require_uploader

TaskState = Literal["pending", "running", "succeeded", "failed"]
DOWNLOAD_FAILED = "download_failed"


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
    result: Any = None  # the payload as the service passed it through (a drafted plan, ...)


@dataclass
class HttpCall:
    method: str
    path: str  # relative to the base URL
    json: Any = None
    params: dict[str, str] | None = None


class TaskAPI(Protocol):
    """What differs between task services. Pure: builds calls, reads answers."""

    service: str  # shown in messages, e.g. "the mountsea proxy"

    def submit_call(self, payload: dict[str, Any]) -> HttpCall: ...
    def parse_submit(self, doc: Any) -> str: ...
    def status_call(self, task_id: str) -> HttpCall: ...
    def parse_status(self, task_id: str, doc: Any) -> TaskStatus: ...


def find_urls(value: Any) -> list[str]:
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


class _DownloadFailed(Exception):
    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class TaskRunner:
    """Runs one task on a TaskAPI: submit, poll until done or the deadline, download."""

    def __init__(self, api: TaskAPI, client: httpx.Client, base_url: str, *,
                 provider: str, config: ProviderConfig, options: MountseaOptions,
                 emit: Emitter, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.provider = provider
        self.config = config
        self.options = options
        self.emit = emit
        self.red = emit.redactor
        self.transport = transport
        self.sleep = sleep
        self.clock = clock
        self.policy = RetryPolicy.from_options(config.max_retries, options)

    def _retrier(self, request_id: str) -> Retrier:
        return Retrier(self.policy, self.emit, provider=self.provider, request_id=request_id,
                       sleep=self.sleep)

    # -- JSON calls with the retry policy -----------------------------------------------------
    def call_json(self, call: HttpCall, *, request_id: str, purpose: str,
                  idempotent: bool) -> Any:
        retrier = self._retrier(request_id)
        url = self.base_url + call.path
        body = b"" if call.json is None else json.dumps(call.json).encode()
        headers = {"Content-Type": "application/json"} if call.json is not None else {}
        while True:
            rec = retrier.attempt(method=call.method,
                                  url=str(httpx.URL(url, params=call.params)), purpose=purpose,
                                  request_bytes_total=len(body))
            try:
                resp = self.client.request(call.method, url, params=call.params,
                                           content=body or None, headers=headers)
            except httpx.TransportError as exc:
                rec.finish()
                rec.error = self.red.text(transport_error_text(exc))
                # A GET can be repeated; a submit only if it cannot have reached the service.
                safe = idempotent or is_connect_phase_error(exc)
                if retrier.again(rec, SAFE_CONNECT if safe else None):
                    continue
                if safe:
                    retrier.report(rec)
                    raise ServiceError(
                        f"cannot reach {self.api.service} at {self.base_url} ({rec.error}; "
                        f"{rec.attempt} attempts)", hint="check the network and --base-url",
                        retryable=True) from None
                rec.request_bytes, rec.body_sent = len(body), True
                raise retrier.charged(
                    rec, f"the {purpose} request reached {self.api.service} but its answer was "
                    f"lost ({rec.error}); a task may have been created and charged",
                    "check the service's task list; rerun with --resubmit to submit (and pay) "
                    "again") from None
            rec.headers_received()
            rec.finish()
            rec.status = resp.status_code
            rec.request_bytes, rec.body_sent = len(body), True
            rec.response_bytes = len(resp.content)
            rec.content_type = resp.headers.get("content-type")
            rec.capture_ids(resp.headers)
            if 200 <= resp.status_code < 300:
                return self._json_answer(resp, rec, retrier)
            info = parse_error_body(resp.status_code, resp.content,
                                    resp.headers.get("content-type", ""))
            rec.error, rec.error_code = self.red.text(info.summary()), info.code
            rec.extra["error_shape"] = info.shape
            kind = classify_retry(info, idempotent=idempotent)
            ra = retry_after_seconds(resp.headers)
            if retrier.again(rec, kind, ra if ra is not None else info.retry_after_s):
                continue
            err = error_from_response(info, service=self.api.service,
                                      body_sent=not idempotent, redactor=self.red)
            if kind is not None:
                err.message += retrier.summary(rec)
            if isinstance(err, PossiblyChargedError):
                raise retrier.charged(rec, err.message, err.hint or "")
            retrier.report(rec)
            raise err

    def _json_answer(self, resp: httpx.Response, rec: AttemptRecord, retrier: Retrier) -> Any:
        try:
            doc = resp.json()
        except ValueError:
            doc = None
        if isinstance(doc, Mapping):
            for k in ("taskId", "task_id", "traceId", "request_id"):
                if doc.get(k):
                    rec.ids[k] = str(doc[k])[:200]
        retrier.report(rec)
        if doc is None:
            raise ServiceError(
                f"{self.api.service} answered {resp.status_code} with a body that is not JSON "
                f"({self.red.text(resp.text[:120])!r})", hint="check --base-url")
        return doc

    # -- the task -------------------------------------------------------------------------------
    def submit(self, payload: dict[str, Any], request_id: str) -> str:
        return self.submit_call(self.api.submit_call(payload), request_id)

    def submit_call(self, call: HttpCall, request_id: str, *, free: bool = False) -> str:
        """Create a task with *call*; a *free* one (a plan) is retried like a poll."""
        doc = self.call_json(call, request_id=request_id, purpose="submit", idempotent=free)
        tid = self.api.parse_submit(doc)
        self.emit("task_submitted", {"provider": self.provider, "request_id": request_id,
                                     "task_id": tid})
        return tid

    def wait(self, task_id: str, request_id: str) -> TaskStatus:
        start = self.clock()
        polls = 0
        last = None
        deadline_s, interval_s = self.options.deadline_s, self.options.poll_interval_s
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
                                          "elapsed_s": round(self.clock() - start, 3)})
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
            if elapsed >= deadline_s:
                self.emit("possibly_charged", {"provider": self.provider,
                                               "request_id": request_id, "task_id": task_id,
                                               "reason": "deadline"})
                raise PossiblyChargedError(
                    f"{self.api.service} task {task_id} is still {status.raw_status!r} after "
                    f"{elapsed:.0f} s (deadline {deadline_s:.0f} s); it may still finish and be "
                    "charged",
                    hint="raise the option deadline_s, or check the task later; rerun with "
                    "--resubmit to submit (and pay) again")
            self.sleep(min(interval_s, max(0.0, deadline_s - elapsed)))

    def download(self, url: str, out_dir: Path, request_id: str, task_id: str
                 ) -> tuple[Path, AttemptRecord]:
        """Fetch the result into a temporary file in out_dir (GET: retried when it breaks)."""
        retrier = self._retrier(request_id)
        # Result URLs are usually on another host (a CDN): never send our key there.
        with make_client(self.config, self.options, transport=self.transport,
                         follow_redirects=True) as plain:
            while True:
                rec = retrier.attempt(method="GET", url=url, purpose="download")
                rec.ids["task_id"] = task_id
                fd, tmp_name = tempfile.mkstemp(prefix=f".{request_id}.", suffix=".download",
                                                dir=out_dir)
                tmp = Path(tmp_name)
                try:
                    with plain.stream("GET", url) as resp:
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
                            stream_response_to_file(resp, fh, rec,
                                                    max_bytes=self.options.max_response_bytes)
                            fh.flush()
                            os.fsync(fh.fileno())
                    rec.finish()
                    if rec.response_bytes == 0:
                        raise _DownloadFailed("the result file is empty (0 bytes)", retry=True)
                    retrier.report(rec)
                    return tmp, rec
                except (httpx.TransportError, _DownloadFailed) as exc:
                    if fd >= 0:
                        os.close(fd)
                    with contextlib.suppress(OSError):
                        tmp.unlink()
                    rec.finish()
                    failed = isinstance(exc, _DownloadFailed)
                    rec.error = self.red.text(str(exc) if failed else transport_error_text(exc))
                    retry = not isinstance(exc, _DownloadFailed) or exc.retry
                    if retrier.again(rec, DOWNLOAD_FAILED if retry else None):
                        continue
                    raise retrier.charged(
                        rec, f"{self.api.service} task {task_id} completed (and was charged) but "
                        f"its result could not be downloaded after {rec.attempt} attempts: "
                        f"{rec.error}", "the result URL is recorded in the manifest; rerun with "
                        "--resubmit to generate (and pay) again", task_id=task_id) from None


class TaskProvider(ProviderDefaults):
    """A Provider over any TaskAPI and the S3 uploader. Subclasses give the adapter, the key
    and the payload."""

    name = "task"
    charges = True
    reports_upload_complete = False

    def __init__(self, config: ProviderConfig, *, api: TaskAPI,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.api = api
        self.options = MountseaOptions.parse(config.options, self.name)
        if not config.base_url:
            raise InputError(f"the {self.name} provider needs --base-url (the service's root URL)")
        self.base_url = validate_base_url(config.base_url, allow_insecure=config.allow_insecure)
        self._transport = transport
        self._sleep = sleep
        self.policy = RetryPolicy.from_options(config.max_retries, self.options)
        self.redactor = Redactor()
        if config.api_key is not None:
            self.redactor.add(config.api_key.get_secret_value())

    # Subclass hooks --------------------------------------------------------------------------
    def validate(self, request: GenerationRequest) -> list[str]:
        raise NotImplementedError

    def build_payload(self, urls: list[str], request: GenerationRequest) -> dict[str, Any]:
        raise NotImplementedError

    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    # The flow ----------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Key present, uploader configured and its bucket reachable (base URL and options were
        checked when the provider was built)."""
        self.auth_headers()
        check_uploader(require_uploader(self.options.uploader), redactor=self.redactor,
                       allow_insecure=self.config.allow_insecure)

    def preflight_compose(self) -> None:
        """Composing sends plans, not clips: the key is all it needs."""
        self.auth_headers()

    def generate(self, request: GenerationRequest, out_dir: Path, *,
                 on_event: EventSink = ignore_event) -> GeneratedAudio:
        warnings = self.validate(request)
        headers = self.auth_headers()
        upload_config = require_uploader(self.options.uploader)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        emit = Emitter(self.redactor, on_event)
        for w in warnings:
            emit("warning", {"request_id": request.request_id, "message": w})
        # One uploader per request: it remembers this request's objects for the cleanup.
        uploader = S3Uploader(upload_config, self.policy, emit, request_id=request.request_id,
                              allow_insecure=self.config.allow_insecure, sleep=self._sleep)
        try:
            with make_client(self.config, self.options, headers=headers,
                             transport=self._transport) as client:
                runner = TaskRunner(self.api, client, self.base_url, provider=self.name,
                                    config=self.config, options=self.options, emit=emit,
                                    transport=self._transport, sleep=self._sleep)
                emit("request", {"provider": self.name, "request_id": request.request_id,
                                 "url": self.base_url, "video_count": len(request.clips),
                                 "bytes": request.total_bytes,
                                 "seconds": round(request.total_seconds, 6),
                                 "allow_resubmit": self.config.allow_resubmit})
                urls = [uploader.upload(c.path) for c in request.clips]
                tid = runner.submit(self.build_payload(urls, request), request.request_id)
                audio = self.task_audio(runner, tid, request, out_dir, emit)
                audio.metadata["warnings"] = warnings + audio.metadata.get("warnings", [])
                return audio
        finally:
            uploader.cleanup()

    def task_audio(self, runner: TaskRunner, tid: str, request: GenerationRequest, out_dir: Path,
                   emit: Emitter) -> GeneratedAudio:
        """Wait for task *tid*, download its audio and store it as *request*'s answer."""
        status = runner.wait(tid, request.request_id)
        if not status.result_urls:
            raise PossiblyChargedError(
                f"{self.api.service} task {tid} completed without a result URL",
                hint="check the task in the service's console; rerun with --resubmit "
                "to generate (and pay) again")
        tmp, rec = runner.download(status.result_urls[0], out_dir, request.request_id, tid)
        try:
            audio = finalize_audio(
                tmp, out_dir=out_dir, request=request, provider=self.name,
                content_type=rec.content_type, ids={"task_id": tid, "trace_id": status.trace_id},
                redactor=self.redactor, emit=emit, attempts=rec.attempt)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        audio.metadata.update(task_id=tid, trace_id=status.trace_id,
                              result_url=self.redactor.text(status.result_urls[0]))
        return audio
