"""Secrets out of everything a provider reports: :class:`Redactor` and the one :class:`Emitter`.

A :class:`Redactor` replaces every known secret (API keys, S3 secret keys and session tokens) and
every credential-looking URL parameter (presigned-URL signatures, ``token=``, ``key=``) and bearer
token with ``***``. Providers report through one :class:`Emitter`, which redacts each event before
it reaches the debug log or the job's event sink (the manifest), so no call site can forget to.

Both are safe to share between threads: a provider serves several requests at once.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from reelscore.providers.base import EventSink, ignore_event

log = logging.getLogger("reelscore.providers")

_SENSITIVE_QUERY = re.compile(
    r"(?i)((?:x-amz-signature|x-amz-credential|x-amz-security-token|signature|sig|token|"
    r"access_token|api_key|apikey|key|xi-api-key|secret)=)[^&\s\"']+"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}")
REDACTED = "***"


class Redactor:
    """Replace every known secret (and credential-looking URL parameter) with ``***``."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        # Replaced, never mutated, so readers in other threads need no lock.
        self._secrets: tuple[str, ...] = ()
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < 4:
            return
        with self._lock:
            if secret not in self._secrets:
                # Longest first: a secret that contains another is replaced whole.
                self._secrets = tuple(sorted((*self._secrets, secret), key=len, reverse=True))

    def text(self, value: str) -> str:
        for s in self._secrets:
            if s in value:
                value = value.replace(s, REDACTED)
        value = _SENSITIVE_QUERY.sub(lambda m: m.group(1) + REDACTED, value)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, value)

    def obj(self, value: Any) -> Any:
        """Redact recursively inside dicts/lists/tuples; other values pass unchanged."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {str(k): self.obj(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v) for v in value]
        return value


def url_for_log(url: str | httpx.URL, redactor: Redactor | None = None) -> str:
    """A URL safe to record: no userinfo, credential-looking query values replaced."""
    parts = urlsplit(str(url))
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return (redactor or Redactor()).text(clean)


class Emitter:
    """The redacting event emitter every provider, runner, retrier and uploader reports through."""

    def __init__(self, redactor: Redactor, sink: EventSink | None = None) -> None:
        self.redactor = redactor
        self._sink = sink or ignore_event

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        safe: dict[str, Any] = self.redactor.obj(data)
        log.debug("%s %s", name, safe)
        self._sink(name, safe)
