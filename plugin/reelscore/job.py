"""The job folder: everything a run decides and produces, so it can be inspected and resumed.

Layout (``--work-dir``, default ``<output>.reelscore/`` beside the output)::

    manifest.json     versioned record of the run (schema: docs/manifest.md); never holds secrets
    clips/            rendered scene clips, named by video id; reused when their cache key matches
    raw/              what each provider returned, untouched (never paid for twice)
    audio/            conformed and normalised audio
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
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reelscore._version import __version__
from reelscore.errors import JobError
from reelscore.fsutil import atomic_write_text

MANIFEST_SCHEMA = "reelscore.manifest/1"
MANIFEST_NAME = "manifest.json"


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
    """A job folder and its manifest (a plain JSON dict; see docs/manifest.md)."""

    def __init__(self, work_dir: Path) -> None:
        self.dir = Path(work_dir)
        self.clips_dir = self.dir / "clips"
        self.raw_dir = self.dir / "raw"
        self.audio_dir = self.dir / "audio"
        self.manifest_path = self.dir / MANIFEST_NAME
        self.data: dict[str, Any] = {}

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
                "renders": {},
                "requests": {},
                "events": [],
            }
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
        self.data["updated"] = _now()
        atomic_write_text(self.manifest_path,
                          json.dumps(self.data, indent=2, sort_keys=False, default=str) + "\n")

    def set(self, key: str, value: Any, *, save: bool = True) -> None:
        self.data[key] = value
        if save:
            self.save()

    def event(self, name: str, data: dict[str, Any], *, save: bool = True) -> None:
        self.data.setdefault("events", []).append({"at": _now(), "event": name, **data})
        if save:
            self.save()

    def request_record(self, request_id: str) -> dict[str, Any]:
        return self.data.setdefault("requests", {}).setdefault(request_id, {"status": "planned"})

    def render_record(self, video_id: str) -> dict[str, Any] | None:
        rec = self.data.setdefault("renders", {}).get(video_id)
        return rec if isinstance(rec, dict) else None

    @property
    def job_id(self) -> str:
        return str(self.data.get("job_id", ""))
