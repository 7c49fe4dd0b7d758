"""Service slots: how many requests may be at the music service at once, across jobs.

A slot is held while one request is at the service, from the first byte of its upload to its
stored answer (``steps/generation.send``); the runner holds one around every request it sends,
in addition to its own ``concurrency``. So a batch of many edits keeps to the account's
concurrency limit instead of racing it and waiting on ``too_many_concurrent_requests``.

- :class:`ThreadSlots`: the jobs of one process (a semaphore).
- :class:`FileSlots`: the jobs of any processes on one machine (``reelscore batch``'s worker
  processes, or several farm tasks on one host): N lock files in a folder, each held with an
  exclusive ``flock``. The operating system releases a dead process's lock, so a killed worker
  never leaks a slot. The object is only a folder and a count: it pickles to worker processes.

A cluster-wide implementation (a distributed semaphore) fits the same Protocol.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from reelscore.errors import InputError, JobError


class ServiceSlots(Protocol):
    def hold(self) -> AbstractContextManager[None]:
        """Wait for a free slot and hold it for the ``with`` block."""
        ...


def _check_count(count: int) -> None:
    if count < 1:
        raise InputError(f"the service concurrency budget must be 1 or more, not {count!r}",
                         hint="pass --concurrency N (N >= 1)")


class ThreadSlots:
    """*count* slots shared by the threads of this process."""

    def __init__(self, count: int) -> None:
        _check_count(count)
        self.count = count
        self._sem = threading.BoundedSemaphore(count)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with self._sem:
            yield


class FileSlots:
    """*count* slots shared by every process on this machine that uses *directory*.

    Waiting polls every *poll_s* seconds, starting at a random slot so waiters spread out.
    Lock files are never deleted (deleting one while another process holds it would split
    the slot in two).
    """

    def __init__(self, directory: Path, count: int, *, poll_s: float = 0.02) -> None:
        _check_count(count)
        self.directory = Path(directory)
        self.count = count
        self.poll_s = poll_s

    def _paths(self) -> list[Path]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobError(f"cannot create the service-slot folder {str(self.directory)!r}: "
                           f"{exc.strerror}", hint="choose a writable output folder") from exc
        return [self.directory / f"slot-{i}.lock" for i in range(self.count)]

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        paths = self._paths()
        start = random.randrange(self.count)
        while True:
            for k in range(self.count):
                fd = os.open(paths[(start + k) % self.count], os.O_RDWR | os.O_CREAT, 0o644)
                if _try_lock(fd):
                    try:
                        yield
                    finally:
                        _unlock(fd)
                        os.close(fd)
                    return
                os.close(fd)
            time.sleep(self.poll_s)


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        # flock locks belong to the open file, so threads of one process exclude each other too.
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
