"""The reelscore exception tree.

Every error a user can cause or meet is a ``ReelscoreError``. Its message is one line (or a short
block) that says what went wrong *and what to do*, with the numbers: which file, which clip, which
timecode, which limit, which flag. The CLI prints ``str(error)`` and exits with ``error.exit_code``;
tracebacks only appear with ``--debug``.

    ReelscoreError
    ├── InputError            the edit, its media or the options are unusable (exit 2)
    │   ├── EditReadError         the edit file cannot be read / is not a timeline
    │   ├── OfflineMediaError     clips whose media cannot be found (lists all of them)
    │   ├── RangeError            a scored range outside the timeline, empty or reversed
    │   └── UnsupportedError      a feature reelscore cannot render or plan
    ├── OutputError           an output cannot be written (exists, unwritable, disk full) (exit 3)
    ├── MediaError            ffmpeg failed or media is not what it claims (exit 4)
    │   └── FFmpegError           carries the command's purpose and the stderr tail
    ├── AudioError            generated audio is unusable: silent, empty, undecodable (exit 5)
    ├── ProviderError         the music service failed (exit 6)
    │   ├── AuthenticationError   401/402/403: key, plan or permission
    │   ├── RequestRejectedError  400/422: a field the service refused
    │   │   └── PlanRejectedError     400 bad_composition_plan, with the suggested plan
    │   ├── RateLimitedError      429 (concurrency or load), retried where safe
    │   ├── ServiceError          5xx and dropped connections
    │   └── PossiblyChargedError  a request may have been charged but its result was lost
    ├── JobError              the job folder is locked, corrupt or from another input (exit 7)
    ├── BatchPartialError     ``reelscore batch``: some edits failed, the others are done (exit 8)
    └── BatchFailedError      ``reelscore batch``: every edit failed (exit 9)

Secrets never reach these messages: providers redact before raising.
"""

from __future__ import annotations

from typing import Any


class ReelscoreError(Exception):
    """Base class: a user-facing, actionable error."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class InputError(ReelscoreError):
    exit_code = 2


class EditReadError(InputError):
    pass


class OfflineMediaError(InputError):
    def __init__(self, offline: list[tuple[str, str, str]], *, hint: str | None = None) -> None:
        self.offline = offline
        lines = [f"{len(offline)} clip(s) are offline; nothing was rendered:"]
        for name, record_tc, tried in offline:
            lines.append(f"  - {name!r} at {record_tc}: tried {tried}")
        super().__init__(
            "\n".join(lines),
            hint=hint
            or "relink with --media-root DIR (repeatable; files are matched by name), "
            "or score from a flattened movie with --reference MOVIE",
        )


class RangeError(InputError):
    pass


class UnsupportedError(InputError):
    pass


class OutputError(ReelscoreError):
    exit_code = 3


class MediaError(ReelscoreError):
    exit_code = 4


class FFmpegError(MediaError):
    def __init__(self, purpose: str, returncode: int, stderr_tail: str, *, hint: str | None = None):
        self.purpose = purpose
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        tail = "\n".join("    " + line for line in stderr_tail.strip().splitlines()[-8:])
        super().__init__(f"ffmpeg failed while {purpose} (exit {returncode}):\n{tail}", hint=hint)


class AudioError(ReelscoreError):
    exit_code = 5


class ProviderError(ReelscoreError):
    exit_code = 6

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status_code: int | None = None,
        retryable: bool = False,
    ) -> None:
        self.status_code = status_code
        self.retryable = retryable
        super().__init__(message, hint=hint)


class AuthenticationError(ProviderError):
    pass


class RequestRejectedError(ProviderError):
    pass


class PlanRejectedError(RequestRejectedError):
    """400 ``bad_composition_plan`` (the copyright filter) with the service's suggested plan.

    The compose step names the request (``request_id``) and saves the suggestion beside the job
    for review."""

    def __init__(self, message: str, *, suggestion: dict[str, Any], hint: str | None = None,
                 status_code: int | None = None) -> None:
        self.suggestion = suggestion
        self.request_id: str | None = None
        super().__init__(message, hint=hint, status_code=status_code)


class RateLimitedError(ProviderError):
    pass


class ServiceError(ProviderError):
    pass


class PossiblyChargedError(ProviderError):
    pass


class JobError(ReelscoreError):
    exit_code = 7


class BatchPartialError(ReelscoreError):
    exit_code = 8


class BatchFailedError(ReelscoreError):
    exit_code = 9
