"""The HTTP client every network provider uses, and the URL rules it enforces.

* :func:`make_client` builds the ``httpx.Client`` of a provider: explicit timeouts (connect short,
  read long enough for a generation that takes minutes), ``User-Agent: reelscore/<version>``, no
  redirects (the key must not follow one to another host) and an injectable transport, so tests
  and host applications can route every call (downloads included) through their own transport.
* :func:`validate_base_url`: a non-loopback base URL must be ``https`` unless the user said
  ``allow_insecure``; no credentials, query or fragment in it.
* Streaming helpers: :func:`read_limited` (error bodies) and :func:`stream_response_to_file`
  (answers of any size with flat memory).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import IO
from urllib.parse import urlsplit

import httpx

from reelscore._version import __version__
from reelscore.errors import InputError, ServiceError
from reelscore.providers.base import ProviderConfig
from reelscore.providers.options import HttpOptions
from reelscore.providers.redact import url_for_log
from reelscore.providers.retry import AttemptRecord
from reelscore.providers.service_errors import MAX_ERROR_BODY

USER_AGENT = f"reelscore/{__version__}"

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_base_url(url: str, *, allow_insecure: bool = False, what: str = "--base-url") -> str:
    """Check a base URL and return it without a trailing slash.

    ``https`` is required except on loopback hosts (local test servers) or with allow_insecure:
    the API key travels in a header and must not cross a network in clear text.
    """
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            f"{what} {text!r} is not an http(s) URL",
            hint="give the service root, e.g. https://api.elevenlabs.io or https://api.eu.residency.elevenlabs.io",
        )
    if parts.username or parts.password:
        raise InputError(
            f"{what} must not contain credentials (user:password@)",
            hint="pass the key with the environment variable or the credentials file instead",
        )
    if parts.query or parts.fragment:
        raise InputError(f"{what} {url_for_log(text)!r} must not contain a query or fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname) and not allow_insecure:
        raise InputError(
            f"{what} {url_for_log(text)!r} uses plain http to a non-local host; the API key would "
            "be sent unencrypted",
            hint="use https://, or pass --allow-insecure if this is a trusted private network",
        )
    return text.rstrip("/")


def make_timeout(config: ProviderConfig, options: HttpOptions) -> httpx.Timeout:
    return httpx.Timeout(connect=config.connect_timeout_s, read=config.read_timeout_s,
                         write=options.write_timeout_s, pool=options.pool_timeout_s)


class _Borrowed(httpx.BaseTransport):
    """An injected transport lent to one client: closing the client must not close it, because
    the provider lends the same transport to every request it runs (several at once)."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self._transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport.handle_request(request)

    def close(self) -> None:
        return None  # the owner of the transport closes it


def make_client(
    config: ProviderConfig,
    options: HttpOptions | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    follow_redirects: bool = False,
) -> httpx.Client:
    """The httpx client a provider uses. Secrets go in *headers* and never into URLs.

    *follow_redirects* is only for clients that carry no secret (result downloads from a CDN).
    An injected *transport* is shared, never closed by the client.
    """
    opts = options or HttpOptions()
    all_headers = {"User-Agent": USER_AGENT}
    all_headers.update(headers or {})
    return httpx.Client(headers=all_headers, timeout=make_timeout(config, opts),
                        transport=None if transport is None else _Borrowed(transport),
                        follow_redirects=follow_redirects,
                        trust_env=opts.trust_env)


def transport_error_text(exc: BaseException) -> str:
    name = type(exc).__name__
    msg = str(exc).strip()
    return f"{name}: {msg}" if msg else name


def is_connect_phase_error(exc: BaseException) -> bool:
    """Errors that happen before any byte of the request could reach the service."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                            httpx.UnsupportedProtocol))


def read_limited(response: httpx.Response, limit: int = MAX_ERROR_BODY) -> bytes:
    """Read at most *limit* bytes of a streamed response (error bodies)."""
    buf = bytearray()
    for chunk in response.iter_bytes():
        buf += chunk
        if len(buf) >= limit:
            break
    return bytes(buf[:limit])


def stream_response_to_file(response: httpx.Response, fh: IO[bytes], record: AttemptRecord, *,
                            max_bytes: int) -> int:
    """Copy a streamed response body into the open binary file *fh*; returns the byte count.

    ``record.response_bytes`` counts as bytes arrive (a broken download reports how far it got).
    Memory stays at one network read whatever the size. Raises ServiceError past *max_bytes*.
    """
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        record.response_bytes = total
        if total > max_bytes:
            raise ServiceError(
                f"the response is larger than the accepted maximum ({max_bytes:,} bytes); "
                "stopped downloading",
                hint="raise the provider option max_response_bytes if this is expected",
            )
        fh.write(chunk)
    return total
