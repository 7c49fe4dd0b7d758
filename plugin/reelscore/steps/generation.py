"""The generate step: one request's clips -> the provider, never paying twice; several in flight.

``prepare`` decides, in plan order and before anything is sent, what to do with a request from
its record in the job (docs/manifest.md, "Resume rules"): reuse a stored answer, refuse one that
may already have been charged (unless ``--resubmit``, or the provider does not charge), or send
it. ``send`` sends it, recording every status change (saved before the next byte can cost money):
``uploading`` (only for providers that report the end of the upload), ``sent``, then ``done`` with
the stored answer, or ``failed`` / ``possibly_charged``. Anything else that stops a run after
sending (a crash, Ctrl-C) leaves ``sent``, so the next run asks for ``--resubmit``.

``GenerationPool`` keeps up to ``concurrency`` requests at the service at once, in plan order,
while the runner renders the next request. With *slots* (:mod:`reelscore.slots`, shared by the
jobs of a batch) each request also holds a slot from its upload to its answer, so many jobs
together keep to the service's limit. The first failure stops the pool: requests not yet
sent are not sent; requests already at the service are waited for (their answers were paid for
and are stored), unless the run itself is interrupted.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reelscore.errors import InputError, MediaError, PossiblyChargedError, ProviderError
from reelscore.fsutil import sha256_file
from reelscore.job import MAY_BE_CHARGED, Job, RequestRecord, RequestStatus
from reelscore.plan import PlannedRequest
from reelscore.providers import (
    ClipRef,
    ComposeRequest,
    GeneratedAudio,
    GenerationRequest,
    Provider,
)
from reelscore.settings import RequestState, ScoreSettings
from reelscore.slots import ServiceSlots


def request_key(req: GenerationRequest | ComposeRequest, provider: str) -> str:
    """What makes an answer reusable: the provider, the clips' hashes (or, composing, the whole
    composition plan and its options) and the settings."""
    what: dict[str, Any] = (
        {"clips": [c.sha256 for c in req.clips]} if isinstance(req, GenerationRequest)
        else {"method": "compose", "compose": req.model_dump(mode="json", exclude={"settings"})})
    blob = json.dumps({"provider": provider, **what,
                       "settings": req.settings.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Outgoing:
    """A request to send (clips to a video-to-music call, or a composition plan), with its key."""

    request: GenerationRequest | ComposeRequest
    key: str


def prepare(req: PlannedRequest, clips: list[ClipRef], job: Job, provider: Provider,
            settings: ScoreSettings) -> GeneratedAudio | Outgoing:
    """The stored answer to reuse, or the request to send (raises PossiblyChargedError)."""
    gen_req = GenerationRequest(request_id=req.id, clips=tuple(clips),
                                settings=settings.generation)
    return decide(gen_req, job, provider, settings)


def decide(gen_req: GenerationRequest | ComposeRequest, job: Job, provider: Provider,
           settings: ScoreSettings) -> GeneratedAudio | Outgoing:
    """The resume rules for one built request (video or compose)."""
    key = request_key(gen_req, provider.name)
    rec = job.request(gen_req.request_id)
    if rec.key != key:
        return Outgoing(gen_req, key)
    if rec.status == "done" and rec.response is not None:
        audio = rec.response
        if audio.path.exists() and sha256_file(audio.path) == rec.response_sha256:
            return audio
    if rec.status in MAY_BE_CHARGED:
        if not settings.resubmit and provider.charges:
            what = (f"its answer could not be used ({rec.error})" if rec.status == "unusable"
                    else "its response was not stored")
            raise PossiblyChargedError(
                f"request {gen_req.request_id} was sent to {provider.name} in an earlier run, but "
                f"{what}: it may already have been charged",
                hint="rerun with --resubmit to send it again (it may be charged twice)",
            )
        job.event("resubmit", {"request": gen_req.request_id, "decision": "user passed --resubmit"
                               if settings.resubmit else f"{provider.name} does not charge"})
    if rec.status == "uploading":
        job.event("resend", {"request": gen_req.request_id, "reason": "the earlier run stopped before "
                             "the whole request was uploaded: nothing can have been charged"},
                  save=False)
    return Outgoing(gen_req, key)


StateSink = Callable[[str, RequestState], None]


def send(out: Outgoing, job: Job, provider: Provider, on_state: StateSink) -> GeneratedAudio:
    """Send one request and record everything it does (safe to call from a worker thread)."""
    gen_req, rid = out.request, out.request.request_id
    # A provider that reports "upload_complete" (just before the last byte) lets an unfinished
    # upload be resent safely; for others the request counts as sent from the start.
    first: RequestStatus = "uploading" if provider.reports_upload_complete else "sent"
    job.start_request(rid, RequestRecord(
        status=first, key=out.key, provider=provider.name, sent_at=time.time(),
        clips=list(gen_req.clips) if isinstance(gen_req, GenerationRequest) else [],
        total_seconds=round(gen_req.total_seconds, 6),
        total_bytes=gen_req.total_bytes if isinstance(gen_req, GenerationRequest) else 0))
    on_state(rid, "uploading" if provider.reports_upload_complete else "generating")

    def on_event(name: str, data: dict[str, Any]) -> None:
        job.request_event(rid, name, data)
        if name in ("upload_complete", "task_submitted"):
            on_state(rid, "generating")

    try:
        audio = (provider.generate(gen_req, job.raw_dir, on_event=on_event)
                 if isinstance(gen_req, GenerationRequest)
                 else provider.compose(gen_req, job.raw_dir, on_event=on_event))
    except PossiblyChargedError:
        job.set_status(rid, "possibly_charged")
        raise
    except (InputError, MediaError) as exc:
        # Refused before anything left (a setting, a clip, a capability the provider lacks).
        job.set_status(rid, "failed", error=str(exc))
        raise
    except ProviderError as exc:
        # Rejected before generation started (validation, auth, limits): safe to resend --
        # unless a task API had already accepted the task (then it may be charged).
        job.set_status(rid, "possibly_charged" if job.request(rid).task_accepted() else "failed",
                       error=str(exc))
        raise
    job.finish_request(rid, audio, sha256_file(audio.path))
    on_state(rid, "done")
    return audio


class GenerationPool:
    """Up to *concurrency* requests at the service at once, taken in the order submitted.

    Workers are daemon threads: an interrupted run (Ctrl-C, SIGTERM) exits at once instead of
    waiting for an answer; the request keeps the status that makes the next run ask first.
    """

    def __init__(self, concurrency: int, run: Callable[[Outgoing], GeneratedAudio],
                 on_done: Callable[[str, GeneratedAudio], None],
                 slots: ServiceSlots | None = None) -> None:
        self._run = run
        self._slots = slots
        self._on_done = on_done
        self._todo: queue.Queue[Outgoing | None] = queue.Queue()
        self._lock = threading.Lock()
        self._stopped = False
        self._error: BaseException | None = None
        self._threads = [threading.Thread(target=self._work, name=f"reelscore-generate-{i}",
                                          daemon=True) for i in range(concurrency)]
        for t in self._threads:
            t.start()

    def submit(self, out: Outgoing) -> None:
        self._todo.put(out)

    def check(self) -> None:
        """Raise the first failure of a request (the runner stops rendering)."""
        with self._lock:
            if self._error is not None:
                raise self._error

    def finish(self) -> None:
        """Wait for every submitted request; raise the first failure."""
        self._join()
        self.check()

    def stop(self, *, wait: bool) -> None:
        """Send nothing more; with *wait*, let the requests at the service finish first."""
        with self._lock:
            self._stopped = True
        if wait:
            self._join()

    def _join(self) -> None:
        for _ in self._threads:
            self._todo.put(None)
        for t in self._threads:
            while t.is_alive():  # in slices, so a signal reaches the main thread at once
                t.join(0.1)

    def _work(self) -> None:
        while True:
            out = self._todo.get()
            if out is None:
                return
            try:
                if self._slots is None:
                    self._send(out)
                else:
                    with self._slots.hold():
                        self._send(out)
            except BaseException as exc:  # handed to the runner's thread, raised there
                with self._lock:
                    if self._error is None:
                        self._error = exc

    def _send(self, out: Outgoing) -> None:
        with self._lock:
            if self._stopped or self._error is not None:
                return  # a request failed (or the run stops): send nothing more
        self._on_done(out.request.request_id, self._run(out))
