"""A ``multipart/form-data`` body generated from the files on disk while it is sent.

Used for the ElevenLabs upload: memory does not grow with clip size, the Content-Length is exact,
and the body reports how far it got (``sent``, ``done``) and calls ``on_last`` just before the
last bytes leave -- the point after which a service may start (and charge) a generation.
"""

from __future__ import annotations

import json
import re
import secrets as _secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reelscore.errors import InputError

CONTENT_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
                  ".webm": "video/webm", ".mkv": "video/x-matroska"}


def safe_filename(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "clip.mp4"
    return clean[:120]


@dataclass
class _FilePart:
    path: Path
    size: int


class MultipartBody:
    """A ``multipart/form-data`` body generated while it is sent, with an exact Content-Length.

    Files are read in *chunk_size* pieces when the transport asks for them; ``sent`` counts the
    bytes handed to the transport and ``done`` becomes true once the last byte was handed over
    (the point after which the service may start generating).
    """

    def __init__(
        self,
        fields: list[tuple[str, str]],
        files: list[tuple[str, Path, str, str]],  # (field, path, filename, content type)
        *,
        chunk_size: int = 1 << 20,
        boundary: str | None = None,
        on_last: Callable[[], None] | None = None,
    ) -> None:
        self.boundary = boundary or "reelscore-" + _secrets.token_hex(16)
        self.chunk_size = chunk_size
        # Called just before the last bytes are handed over: until then the service cannot hold
        # the whole request, so it cannot have started (or charged) a generation.
        self.on_last = on_last
        self.sent = 0
        self.done = False
        segs: list[bytes | _FilePart] = []
        b = self.boundary.encode()
        for name, value in fields:
            segs.append(
                b"--" + b + b"\r\n"
                + f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                + value.encode("utf-8") + b"\r\n"
            )
        for name, path, filename, ctype in files:
            segs.append(
                b"--" + b + b"\r\n"
                + f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  f"Content-Type: {ctype}\r\n\r\n".encode()
            )
            segs.append(_FilePart(path, path.stat().st_size))
            segs.append(b"\r\n")
        segs.append(b"--" + b + b"--\r\n")
        self._segments = segs
        self.length = sum(len(s) if isinstance(s, bytes) else s.size for s in segs)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __iter__(self) -> Iterator[bytes]:
        for i, seg in enumerate(self._segments):
            if isinstance(seg, bytes):
                if i == len(self._segments) - 1 and self.on_last is not None:
                    self.on_last()
                self.sent += len(seg)
                yield seg
                continue
            remaining = seg.size
            with open(seg.path, "rb") as fh:
                while remaining > 0:
                    chunk = fh.read(min(self.chunk_size, remaining))
                    if not chunk:
                        raise InputError(
                            f"clip {str(seg.path)!r} shrank while it was being uploaded",
                            hint="do not modify the job folder while a job runs")
                    remaining -= len(chunk)
                    self.sent += len(chunk)
                    yield chunk
        self.done = True


class JsonBody:
    """A JSON body with the same accounting as :class:`MultipartBody` (``sent``, ``done``,
    ``on_last`` just before the last bytes leave), so one attempt loop serves both."""

    def __init__(self, doc: object, *, chunk_size: int = 1 << 16,
                 on_last: Callable[[], None] | None = None) -> None:
        self._data = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.chunk_size = max(1, chunk_size)
        self.on_last = on_last
        self.length = len(self._data)
        self.sent = 0
        self.done = False
        self.content_type = "application/json"

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, self.length, self.chunk_size):
            if start + self.chunk_size >= self.length and self.on_last is not None:
                self.on_last()
            chunk = self._data[start:start + self.chunk_size]
            self.sent += len(chunk)
            yield chunk
        self.done = True


def content_type_for(path: Path) -> str:
    """The media type sent with a clip, from its suffix (MP4 unless known otherwise)."""
    return CONTENT_TYPES.get(path.suffix.lower(), "video/mp4")
