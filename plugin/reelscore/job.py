"""The job folder: everything a run decides and produces, so it can be inspected and resumed.

Layout (``--work-dir``, default ``<output>.reelscore/`` beside the output)::

    manifest.json     versioned record of the run (schema: docs/manifest.md); never holds secrets
    clips/            rendered scene clips, named by video id; reused when their cache key matches
    raw/              what each provider returned, untouched (never paid for twice)
    audio/            conformed and normalised audio
    cues.csv          the music cue sheet (reelscore.reports; docs/cuesheet.md)
    sheet.svg/.png    the score sheet picture (reelscore.reports.sheet)
    report.html       the job's self-contained report page (reelscore.reports.html)
    .lock             one run per job folder at a time

Every manifest write is atomic (temp file + rename), so a crash at any point leaves the previous
consistent manifest.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelscore._version import __version__
from reelscore.errors import JobError
from reelscore.fsutil import atomic_write_text
from reelscore.plan import EncodeSettings
from reelscore.providers.base import ClipRef, GeneratedAudio
from reelscore.recut import CutFingerprint

MANIFEST_SCHEMA = "reelscore.manifest/1"
MANIFEST_NAME = "manifest.json"

# Where a request stands. Resume reads it (docs/manifest.md, "Resume rules"):
#   planned           not sent (only seen in manifests of older runs)
#   uploading         its body was being sent; the service cannot have generated it: resent
#   sent              the whole body reached the service; it may be charged: --resubmit to resend
#   possibly_charged  failed after a task service accepted it: --resubmit to resend
#   failed            refused before generation started (validation, auth, limits): resent
#   unusable          answered and stored, but the answer cannot be decoded: --resubmit to resend
#   done              answered and stored: never sent again
RequestStatus = Literal["planned", "uploading", "sent", "possibly_charged", "failed", "unusable",
                        "done"]
# A stored answer may have been charged and was not reused: the next run needs --resubmit.
MAY_BE_CHARGED: frozenset[RequestStatus] = frozenset({"sent", "possibly_charged", "unusable"})


class _Record(BaseModel):
    # Manifests written by other versions of the same schema may carry fields we do not know:
    # they are kept, not refused.
    model_config = ConfigDict(extra="allow")


class TimelineSpan(_Record):
    start: int
    duration: int
    rate: str


class RenderRecord(_Record):
    """``renders{video_id}``: one rendered clip, reused on resume while its key and hash match."""

    cache_key: str | None = None  # None: the renderer cannot fingerprint its inputs
    sha256: str
    clip: ClipRef
    timeline_range: TimelineSpan
    record_in: str
    record_out: str
    encode: EncodeSettings


class RequestRecord(_Record):
    """``requests{request_id}``: one generation request, as sent and as answered."""

    status: RequestStatus = "planned"
    key: str | None = None  # provider + clip hashes + generation settings
    provider: str | None = None
    sent_at: float | None = None  # POSIX seconds
    clips: list[ClipRef] = Field(default_factory=list)
    total_seconds: float | None = None
    total_bytes: int | None = None
    # Provider events, never secrets: "attempt" events (number, status, timings, bytes, ids)
    # and every other event (upload_complete, task_submitted, task_status, ...).
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None
    response: GeneratedAudio | None = None
    response_sha256: str | None = None
    response_bytes: int | None = None

    def task_accepted(self) -> bool:
        """Whether a task API accepted this request (a task that may be charged) and the task
        did not end as failed (failed tasks are not charged)."""
        accepted = any(e.get("event") == "task_submitted" for e in self.events) or any(
            a.get("purpose") == "submit" and isinstance(a.get("status"), int)
            and 200 <= a["status"] < 300 for a in self.attempts)
        failed = any(e.get("event") == "task_status" and e.get("state") == "failed"
                     for e in self.events)
        return accepted and not failed


class RecutBasis(_Record):
    """``recut_basis``: what a later ``reelscore score NEW --previous THIS`` needs of this score.

    The fingerprint of the scored range (what each scene shows), the delivered music WAV (path
    and sha256: an update refuses audio that is missing or was altered) and where its first sample
    sits on the timeline (stack frame; record frame = ``start_frame`` + it).
    """

    fingerprint: CutFingerprint
    music_wav: str
    sha256: str
    first_frame: int  # stack frame of the WAV's first sample
    sample_rate: int = 48_000
    crossfade_frames: int
    drop_frame: bool = False


def read_recut_basis(data: dict[str, Any]) -> RecutBasis | None:
    """A manifest's ``recut_basis`` (None when it has none: written before it was recorded)."""
    raw = data.get("recut_basis")
    if raw is None:
        return None
    try:
        return RecutBasis.model_validate(raw)
    except ValidationError:
        return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Job:
    """A job folder and its manifest (JSON; schema in docs/manifest.md).

    ``renders`` and ``requests`` are typed records changed only through the methods below;
    the other top-level keys are set whole (``set``). Every change is saved under one lock, so
    requests generating in several threads record their statuses safely.
    """

    def __init__(self, work_dir: Path) -> None:
        self.dir = Path(work_dir)
        self.clips_dir = self.dir / "clips"
        self.raw_dir = self.dir / "raw"
        self.audio_dir = self.dir / "audio"
        self.manifest_path = self.dir / MANIFEST_NAME
        self.data: dict[str, Any] = {}
        self.renders: dict[str, RenderRecord] = {}
        self.requests: dict[str, RequestRecord] = {}
        self._lock = threading.RLock()

    # ---------------------------------------------------------------------------- lifecycle

    def open(self) -> None:
        for d in (self.dir, self.clips_dir, self.raw_dir, self.audio_dir):
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise JobError(f"cannot create the job folder {str(d)!r}: {exc.strerror}",
                               hint="choose a writable --work-dir") from exc
        if self.manifest_path.exists():
            try:
                self.data = json.loads(self.manifest_path.read_text("utf-8"))
            except (OSError, ValueError) as exc:
                raise JobError(
                    f"the manifest {str(self.manifest_path)!r} is unreadable ({exc})",
                    hint="move the job folder aside (or use another --work-dir) to start over",
                ) from exc
            schema = self.data.get("schema")
            if schema != MANIFEST_SCHEMA:
                raise JobError(
                    f"{str(self.manifest_path)!r} has schema {schema!r}, expected {MANIFEST_SCHEMA!r}",
                    hint="use another --work-dir for this version of reelscore",
                )
        else:
            self.data = {
                "schema": MANIFEST_SCHEMA,
                "job_id": uuid.uuid4().hex,
                "created": _now(),
                "reelscore_version": __version__,
                "runs": [],
                "events": [],
            }
        self.renders = {vid: rec for vid, raw in dict(self.data.pop("renders", {})).items()
                        if (rec := _read_render(raw)) is not None}
        self.requests = {rid: _read_request(self.manifest_path, rid, raw)
                         for rid, raw in dict(self.data.pop("requests", {})).items()}
        self.data.setdefault("runs", []).append({"started": _now(), "pid": os.getpid()})
        self.save()

    @contextlib.contextmanager
    def locked(self) -> Iterator[Job]:
        """Hold the job folder's lock for the duration (one run per folder at a time)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobError(f"cannot create the job folder {str(self.dir)!r}: {exc.strerror}",
                           hint="choose a writable --work-dir (or free some space)") from exc
        lock = self.dir / ".lock"
        me = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid_s, host = (lock.read_text().split() + ["", ""])[:2]
                    pid = int(pid_s)
                except (OSError, ValueError):
                    pid, host = -1, ""
                if host == socket.gethostname() and not _pid_alive(pid):
                    with contextlib.suppress(OSError):
                        lock.unlink()  # stale lock of a process that died
                    continue
                raise JobError(
                    f"the job folder {str(self.dir)!r} is in use by process {pid} on {host or '?'}",
                    hint="wait for that run to finish, or use another --work-dir (if no "
                    f"reelscore run is using it any more, delete {str(lock)!r})",
                ) from None
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM, errno.ENOSPC):
                    raise JobError(f"cannot write to the job folder {str(self.dir)!r}: "
                                   f"{exc.strerror}",
                                   hint="choose a writable --work-dir (or free some space)") from exc
                raise
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
            break
        self._sweep_temporaries()
        try:
            yield self
        finally:
            with contextlib.suppress(OSError):
                if lock.read_text() == me:
                    lock.unlink()

    def _sweep_temporaries(self) -> None:
        """Remove the temporary files of a run that was killed (SIGKILL, power loss).

        Only our own hidden temporaries: ``.<name>.*`` in clips/, raw/ and audio/ (atomic outputs,
        downloads, ZIP members) and ``.manifest.*.json`` beside the manifest. Called with the lock
        held, so no other run can be writing them.
        """
        victims = list(self.dir.glob(".manifest.*.json"))
        for sub in (self.clips_dir, self.raw_dir, self.audio_dir):
            if sub.is_dir():
                victims += [p for p in sub.iterdir() if p.name.startswith(".") and p.is_file()]
        for p in victims:
            with contextlib.suppress(OSError):
                p.unlink()

    # ----------------------------------------------------------------------------- records

    def save(self) -> None:
        with self._lock:
            self.data["updated"] = _now()
            doc = {**self.data,
                   "renders": {k: r.model_dump(mode="json", exclude_none=True)
                               for k, r in self.renders.items()},
                   "requests": {k: r.model_dump(mode="json", exclude_none=True)
                                for k, r in self.requests.items()}}
            atomic_write_text(self.manifest_path,
                              json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")

    def set(self, key: str, value: Any, *, save: bool = True) -> None:
        with self._lock:
            self.data[key] = value
            if save:
                self.save()

    def event(self, name: str, data: dict[str, Any], *, save: bool = True) -> None:
        with self._lock:
            self.data.setdefault("events", []).append({"at": _now(), "event": name, **data})
            if save:
                self.save()

    # renders ------------------------------------------------------------------------------

    def render(self, video_id: str) -> RenderRecord | None:
        with self._lock:
            return self.renders.get(video_id)

    def record_render(self, video_id: str, record: RenderRecord, *, save: bool = True) -> None:
        with self._lock:
            self.renders[video_id] = record
            if save:
                self.save()

    # requests -----------------------------------------------------------------------------

    def request(self, request_id: str) -> RequestRecord:
        """A copy of the request's record (a new ``planned`` one if it was never sent)."""
        with self._lock:
            rec = self.requests.get(request_id)
            return rec.model_copy(deep=True) if rec is not None else RequestRecord()

    def start_request(self, request_id: str, record: RequestRecord) -> None:
        """Record a request about to be sent (saved before its first byte leaves). The attempts
        and events of earlier sends are kept: they are the history of what may have been paid."""
        with self._lock:
            old = self.requests.get(request_id)
            if old is not None:
                record.attempts[:0] = old.attempts
                record.events[:0] = old.events
            self.requests[request_id] = record
            self.save()

    def set_status(self, request_id: str, status: RequestStatus, *,
                   error: str | None = None) -> None:
        with self._lock:
            rec = self.requests.setdefault(request_id, RequestRecord())
            rec.status = status
            if error is not None:
                rec.error = error
            self.save()

    def request_event(self, request_id: str, name: str, data: dict[str, Any]) -> None:
        """A provider event: kept with the request; ``upload_complete`` makes it ``sent``
        (saved before the last byte leaves)."""
        with self._lock:
            rec = self.requests.setdefault(request_id, RequestRecord())
            (rec.attempts if name == "attempt" else rec.events).append({"event": name, **data})
            if name == "upload_complete":
                rec.status = "sent"
            self.save()

    def finish_request(self, request_id: str, audio: GeneratedAudio, sha256: str) -> None:
        with self._lock:
            rec = self.requests.setdefault(request_id, RequestRecord())
            rec.status = "done"
            rec.response = audio
            rec.response_sha256 = sha256
            rec.response_bytes = audio.path.stat().st_size
            self.save()

    @property
    def job_id(self) -> str:
        return str(self.data.get("job_id", ""))


def _read_render(raw: Any) -> RenderRecord | None:
    """A stored render record, or None when it cannot be read (the clip is rendered again)."""
    try:
        return RenderRecord.model_validate(raw)
    except ValidationError:
        return None


def _read_request(manifest: Path, request_id: str, raw: Any) -> RequestRecord:
    """A stored request record. One that cannot be read is refused: it may stand for a paid
    generation, which must not be forgotten silently."""
    try:
        return RequestRecord.model_validate(raw)
    except ValidationError as exc:
        raise JobError(
            f"request {request_id} in {str(manifest)!r} cannot be read: "
            f"{exc.errors()[0].get('msg', exc)}",
            hint="use another --work-dir to start over (the request may already have been "
            "charged)") from exc
