"""Prompt, clean stops: Ctrl-C (SIGINT), SIGTERM and SIGHUP all end a run the same way.

The CLI runs each command inside :func:`graceful_stop`. When one of those signals arrives, the
handler first kills this process's child processes -- the ffmpeg decoders and encoders of a render,
which would otherwise run on until their clip is finished (a terminal's Ctrl-C reaches them through
the process group, but ``kill <pid>`` or a scheduler's SIGTERM does not) -- and then raises
:class:`Interrupted`, a ``KeyboardInterrupt``, in the main thread. So the way out is the same as for
Ctrl-C: every ``finally`` and ``except BaseException`` runs, temporary files are removed, the job
lock is released, a request that was already sent keeps the status that makes the next run ask for
``--resubmit``, and an HTTP read that is waiting for the service is interrupted at once.

Nothing here is installed by the library itself: hosts (Resolve, pipelines) keep their own signal
handling. :func:`graceful_stop` only acts in the main thread and restores the previous handlers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

log = logging.getLogger(__name__)

_NAMES = {getattr(signal, n): n for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)}


class Interrupted(KeyboardInterrupt):
    """A stop requested by a signal; ``exit_code`` follows the shell convention (128 + signal)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = _NAMES.get(signum, f"signal {signum}")
        self.exit_code = 128 + int(signum)
        super().__init__(self.signal_name)


def child_pids(pid: int | None = None) -> list[int]:
    """The direct child processes of *pid* (default: this process); [] if they cannot be listed."""
    pid = pid or os.getpid()
    found: set[int] = set()
    task_dir = f"/proc/{pid}/task"
    if os.path.isdir(task_dir):
        try:
            for tid in os.listdir(task_dir):
                with contextlib.suppress(OSError), open(f"{task_dir}/{tid}/children") as fh:
                    found.update(int(p) for p in fh.read().split())
        except OSError:
            pass
        if found:
            return sorted(found)
        # Kernels without CONFIG_PROC_CHILDREN: scan every process's parent.
        with contextlib.suppress(OSError):
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/stat", "rb") as fh:
                        stat = fh.read()
                except OSError:
                    continue
                fields = stat[stat.rfind(b")") + 2:].split()
                if len(fields) > 1 and int(fields[1]) == pid:
                    found.add(int(entry))
        return sorted(found)
    if os.name == "posix":  # macOS / BSD: no /proc
        try:
            out = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True,
                                 text=True, timeout=2, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == str(pid):
                found.add(int(parts[0]))
    return sorted(found)


def kill_children() -> int:
    """SIGKILL every child process of this process (our ffmpeg helpers); returns how many."""
    if os.name != "posix":
        return 0
    killed = 0
    for child in child_pids():
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)
            killed += 1
    return killed


def _handler(signum: int, _frame: FrameType | None) -> None:
    kill_children()
    raise Interrupted(signum)


@contextlib.contextmanager
def graceful_stop(signals: Sequence[int] | None = None) -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM/SIGHUP kill our children and raise :class:`Interrupted`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = list(signals) if signals is not None else list(_NAMES)
    previous: dict[int, object] = {}
    for sig in wanted:
        try:
            previous[sig] = signal.signal(sig, _handler)
        except (OSError, ValueError):  # pragma: no cover - e.g. a signal the OS does not allow
            continue
    try:
        yield
    finally:
        for sig, old in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, old)  # type: ignore[arg-type]


def resume_command(argv: Sequence[str] | None = None, prog: str = "reelscore") -> str:
    """The command line that reruns this invocation (to resume from its job folder)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if os.name == "nt":  # pragma: no cover
        return subprocess.list2cmdline([prog, *args])
    return shlex.join([prog, *args])


__all__ = ["Interrupted", "child_pids", "graceful_stop", "kill_children", "resume_command"]
