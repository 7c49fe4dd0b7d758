"""Media that an edit names by a network URL (``https://…``, ``ftp://…``, ``s3://…``).

By default such media is **not read**: an edit is untrusted input, and following its URLs would let
a file make reelscore contact any host (including ones inside the user's network) and would hand
ffmpeg a network protocol. The clip is reported offline with the URL (its query string, where
presigned signatures live, removed) and the two ways out: relink it to a local file with
``--media-root``, or allow remote media explicitly.

With ``--allow-remote-media`` (``ScoreSettings.allow_remote_media``), ``http``/``https`` media is
downloaded once into a cache folder (``$REELSCORE_CACHE/remote-media``, default
``~/.cache/reelscore/remote-media``; ``$XDG_CACHE_HOME`` honoured), atomically, with timeouts and a
size limit, and then read as a local file. ffmpeg itself never gets a URL: it stays restricted to
the ``file`` protocol. Other schemes are refused even when remote media is allowed.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit, urlunsplit

from reelscore.errors import InputError
from reelscore.fsutil import atomic_output

_REMOTE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
FETCH_SCHEMES = ("http", "https")
MAX_BYTES = 64 * 1024**3  # a camera original can be large; a hostile server must still end
CONNECT_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 120.0


def is_remote_url(url: str) -> bool:
    """Whether *url* names media on another host (any ``scheme://`` except ``file://``)."""
    m = _REMOTE.match(url.strip())
    return m is not None and m.group(1).lower() != "file"


def url_for_message(url: str) -> str:
    """The URL without credentials, query or fragment (presigned signatures live there)."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    tail = "?…" if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, "", "")) + tail


def cache_dir() -> Path:
    env = os.environ.get("REELSCORE_CACHE")
    if env:
        return Path(env).expanduser() / "remote-media"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reelscore" / "remote-media"


def cached_path(url: str, folder: Path | None = None) -> Path:
    """Where the download of *url* is kept: a hash of the whole URL + the file's own suffix."""
    digest = hashlib.sha256(url.strip().encode("utf-8")).hexdigest()[:32]
    suffix = PurePosixPath(unquote(urlsplit(url.strip()).path)).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
        suffix = ".bin"
    return (folder or cache_dir()) / f"{digest}{suffix}"


def fetch(url: str, folder: Path | None = None, *, max_bytes: int = MAX_BYTES) -> Path:
    """Download *url* (http/https) into the cache once and return the local file.

    Raises InputError with the reason (the URL is shown without its query string).
    """
    shown = url_for_message(url)
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme not in FETCH_SCHEMES:
        raise InputError(f"cannot read remote media {shown}: only http(s) URLs can be downloaded",
                         hint="copy the file to this machine and relink with --media-root DIR")
    dest = cached_path(url, folder)
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    import httpx

    timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    got = 0
    try:
        with atomic_output(dest) as tmp, httpx.Client(
            timeout=timeout, follow_redirects=True, max_redirects=5,
            headers={"User-Agent": "reelscore"},
        ) as client, client.stream("GET", url.strip()) as resp:
            if resp.status_code != 200:
                raise InputError(f"cannot download remote media {shown}: HTTP {resp.status_code}",
                                 hint="check the URL (it may have expired) or relink the clip "
                                 "to a local copy with --media-root DIR")
            if resp.url.scheme not in FETCH_SCHEMES:  # pragma: no cover - httpx refuses anyway
                raise InputError(f"remote media {shown} redirected to a non-http URL")
            with open(tmp, "wb") as fh:
                for chunk in resp.iter_bytes():
                    got += len(chunk)
                    if got > max_bytes:
                        raise InputError(
                            f"remote media {shown} is larger than {max_bytes:,} bytes; stopped",
                            hint="copy the file to this machine and relink with --media-root DIR")
                    fh.write(chunk)
            if got == 0:
                raise InputError(f"remote media {shown} is empty (0 bytes)")
    except httpx.HTTPError as exc:
        reason = type(exc).__name__
        raise InputError(f"cannot download remote media {shown} ({reason})",
                         hint="check the network and the URL, or relink the clip to a local "
                         "copy with --media-root DIR") from None
    return dest


__all__ = ["cache_dir", "cached_path", "fetch", "is_remote_url", "url_for_message"]
