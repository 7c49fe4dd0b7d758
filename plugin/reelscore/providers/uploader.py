"""Temporary public hosting for clips, for services that take video URLs instead of uploads.

:class:`Uploader` is the interface: ``upload(path) -> URL`` and ``cleanup()``.

:class:`S3Uploader` works with any S3-compatible store (AWS S3, MinIO, Cloudflare R2, Backblaze
B2, Wasabi, ...): one streamed ``PUT`` per clip, a presigned ``GET`` URL (AWS Signature V4, query
auth) with a configurable expiry handed to the service, and ``DELETE`` of every object after the
job unless ``keep`` is set. It signs requests itself (SigV4, ~80 lines, checked against botocore's
signer in the tests) instead of depending on boto3: no 90 MB dependency for one PUT, GET-URL and
DELETE; the upload goes through httpx like every other request (same timeouts, redaction, events)
and streams from disk with flat memory. The payload is sent as ``UNSIGNED-PAYLOAD`` (allowed by S3
and the compatible stores) so a clip is read once, not hashed first.

:class:`BeatApiFileUploader` hosts clips with BeatAPI's own ``POST /v1/files``.

S3 options (``ProviderConfig.options["uploader"]``)::

    {"type": "s3", "endpoint_url": "https://s3.eu-west-1.amazonaws.com", "bucket": "my-bucket",
     "prefix": "reelscore/", "region": "eu-west-1", "expires_s": 3600, "keep": false,
     "addressing_style": "path" | "virtual"}

Credentials are never options: ``$REELSCORE_S3_ACCESS_KEY_ID`` / ``$REELSCORE_S3_SECRET_ACCESS_KEY``
(else ``$AWS_ACCESS_KEY_ID`` / ``$AWS_SECRET_ACCESS_KEY``, ``$AWS_SESSION_TOKEN``), or ``[s3]
access_key_id / secret_access_key`` in the credentials file (see :mod:`.secrets`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import logging
import secrets as _secrets
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from reelscore.errors import AuthenticationError, InputError, ProviderError, ServiceError
from reelscore.providers.base import EventSink, ProviderConfig
from reelscore.providers.http import (
    AttemptRecord,
    Redactor,
    Retrier,
    RetryPolicy,
    make_client,
    parse_error_body,
    transport_error_text,
    url_for_log,
    validate_base_url,
)
from reelscore.providers.secrets import find_secret

log = logging.getLogger(__name__)


def _ignore(_name: str, _data: dict[str, Any]) -> None:
    return None


class Uploader(Protocol):
    def upload(self, path: Path) -> str:
        """Make *path* fetchable by the service; return its URL."""
        ...

    def cleanup(self) -> None:
        """Remove everything uploaded for this job (unless configured to keep it)."""
        ...


# ------------------------------------------------------------------------------------- SigV4


def _uri_encode(value: str, *, keep_slash: bool = False) -> str:
    return quote(value, safe="-_.~/" if keep_slash else "-_.~")


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def sigv4_signature(*, method: str, canonical_uri: str, query: Mapping[str, str],
                    headers: Mapping[str, str], payload_hash: str, secret: str, region: str,
                    amz_date: str, service: str = "s3") -> tuple[str, str]:
    """(signature, signed header names) for AWS Signature V4."""
    canon_query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}"
                           for k, v in sorted(query.items()))
    lower = {k.lower(): " ".join(str(v).strip().split()) for k, v in headers.items()}
    names = sorted(lower)
    canon_headers = "".join(f"{n}:{lower[n]}\n" for n in names)
    signed = ";".join(names)
    creq = "\n".join([method, canonical_uri, canon_query, canon_headers, signed, payload_hash])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    sig = hmac.new(_signing_key(secret, amz_date[:8], region, service), sts.encode(),
                   hashlib.sha256).hexdigest()
    return sig, signed


def _host_header(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port and parts.port != default:
        host += f":{parts.port}"
    return host


class S3Options(BaseModel):
    """The documented shape of ``options["uploader"]`` for S3-compatible stores."""

    model_config = ConfigDict(extra="forbid")

    type: str = "s3"
    endpoint_url: str | None = None  # default: https://s3.<region>.amazonaws.com
    bucket: str
    prefix: str = "reelscore/"
    region: str = "us-east-1"
    expires_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    keep: bool = False
    addressing_style: str | None = None  # "path" | "virtual"; default path for custom endpoints


class S3Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access_key_id: str
    secret_access_key: SecretStr
    session_token: SecretStr | None = None


def load_s3_credentials(credentials_file: Path | None = None) -> S3Credentials:
    ak = find_secret("s3", name="access_key_id", credentials_file=credentials_file,
                     env_vars=("REELSCORE_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"))
    sk = find_secret("s3", name="secret_access_key", credentials_file=credentials_file,
                     env_vars=("REELSCORE_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"))
    if ak is None or sk is None:
        raise AuthenticationError(
            "no S3 credentials for the clip uploader",
            hint="export REELSCORE_S3_ACCESS_KEY_ID and REELSCORE_S3_SECRET_ACCESS_KEY, or put "
            "[s3] access_key_id / secret_access_key in the credentials file (chmod 600)")
    tok = find_secret("s3", name="session_token", credentials_file=credentials_file,
                      env_vars=("REELSCORE_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"))
    return S3Credentials(access_key_id=ak[0].get_secret_value(), secret_access_key=sk[0],
                         session_token=tok[0] if tok else None)


class S3Uploader:
    """Upload clips to an S3-compatible bucket and hand out presigned GET URLs."""

    def __init__(self, options: S3Options, credentials: S3Credentials, config: ProviderConfig, *,
                 on_event: EventSink = _ignore, redactor: Redactor | None = None,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], _dt.datetime] | None = None) -> None:
        self.opts = options
        self.creds = credentials
        self.config = config
        endpoint = options.endpoint_url or f"https://s3.{options.region}.amazonaws.com"
        self.endpoint = validate_base_url(endpoint, allow_insecure=config.allow_insecure,
                                          what="the S3 endpoint_url")
        self.style = options.addressing_style or ("virtual" if options.endpoint_url is None
                                                  else "path")
        if self.style not in ("path", "virtual"):
            raise InputError(f"S3 addressing_style {self.style!r} is not 'path' or 'virtual'")
        self.red = redactor or Redactor()
        self.red.add(credentials.secret_access_key.get_secret_value())
        if credentials.session_token is not None:
            self.red.add(credentials.session_token.get_secret_value())
        self.on_event = on_event
        self._transport = transport
        self._sleep = sleep
        self._now = now or (lambda: _dt.datetime.now(_dt.timezone.utc))
        self.job_token = _secrets.token_hex(8)
        self.uploaded: list[str] = []
        self.chunk_size = int(config.options.get("chunk_size", 1 << 20))

    # -- URLs ---------------------------------------------------------------------------------
    def object_url(self, key: str) -> tuple[str, str]:
        """(URL, canonical URI) of an object for the addressing style."""
        parts = urlsplit(self.endpoint)
        base_path = parts.path.rstrip("/")
        ekey = _uri_encode(key, keep_slash=True)
        if self.style == "virtual":
            netloc = f"{self.opts.bucket}.{parts.netloc}"
            uri = f"{base_path}/{ekey}"
        else:
            netloc = parts.netloc
            uri = f"{base_path}/{_uri_encode(self.opts.bucket)}/{ekey}"
        return f"{parts.scheme}://{netloc}{uri}", uri

    def _amz_date(self) -> str:
        return self._now().astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")

    def presign_get(self, key: str, *, expires_s: int | None = None,
                    amz_date: str | None = None) -> str:
        url, uri = self.object_url(key)
        date = amz_date or self._amz_date()
        scope = f"{date[:8]}/{self.opts.region}/s3/aws4_request"
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"{self.creds.access_key_id}/{scope}",
            "X-Amz-Date": date,
            "X-Amz-Expires": str(expires_s or self.opts.expires_s),
            "X-Amz-SignedHeaders": "host",
        }
        if self.creds.session_token is not None:
            query["X-Amz-Security-Token"] = self.creds.session_token.get_secret_value()
        sig, _ = sigv4_signature(method="GET", canonical_uri=uri, query=query,
                                 headers={"host": _host_header(url)},
                                 payload_hash="UNSIGNED-PAYLOAD",
                                 secret=self.creds.secret_access_key.get_secret_value(),
                                 region=self.opts.region, amz_date=date)
        qs = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in query.items())
        return f"{url}?{qs}&X-Amz-Signature={sig}"

    def _signed_headers(self, method: str, key: str, extra: Mapping[str, str] | None = None
                        ) -> tuple[str, dict[str, str]]:
        url, uri = self.object_url(key)
        date = self._amz_date()
        headers = {"host": _host_header(url), "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
                   "x-amz-date": date}
        if self.creds.session_token is not None:
            headers["x-amz-security-token"] = self.creds.session_token.get_secret_value()
        headers.update({k.lower(): v for k, v in (extra or {}).items()})
        sig, signed = sigv4_signature(method=method, canonical_uri=uri, query={},
                                      headers=headers, payload_hash="UNSIGNED-PAYLOAD",
                                      secret=self.creds.secret_access_key.get_secret_value(),
                                      region=self.opts.region, amz_date=date)
        scope = f"{date[:8]}/{self.opts.region}/s3/aws4_request"
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.creds.access_key_id}/"
                                    f"{scope}, SignedHeaders={signed}, Signature={sig}")
        headers.pop("host")
        return url, headers

    # -- operations ---------------------------------------------------------------------------
    def _key_for(self, path: Path) -> str:
        n = len(self.uploaded) + 1
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in path.name)[:100]
        return f"{self.opts.prefix}{self.job_token}/{n:02d}_{safe}"

    def upload(self, path: Path) -> str:
        key = self._key_for(path)
        size = path.stat().st_size
        retrier = Retrier(RetryPolicy.from_config(self.config), sleep=self._sleep)
        attempt = 0
        with make_client(self.config, transport=self._transport) as client:
            while True:
                attempt += 1
                url, headers = self._signed_headers(
                    "PUT", key, {"content-type": "video/mp4", "content-length": str(size)})
                rec = AttemptRecord(provider="s3", request_id=key, attempt=attempt,
                                    method="PUT", url=url, purpose="upload_clip",
                                    request_bytes_total=size)
                try:
                    resp = client.put(url, content=self._file_iter(path, size), headers=headers)
                except httpx.TransportError as exc:
                    rec.finish()
                    rec.error = self.red.text(transport_error_text(exc))
                    d = retrier.decide("upload_failed")
                    if d.retry:
                        rec.retry, rec.retry_delay_s = "retry", d.delay_s
                        self._emit("attempt", rec.event(self.red))
                        self._sleep(d.delay_s)
                        continue
                    self._emit("attempt", rec.event(self.red))
                    raise ServiceError(
                        f"cannot upload {path.name} to the S3 endpoint "
                        f"{url_for_log(self.endpoint)} ({rec.error}; {attempt} attempts)",
                        hint="check the uploader's endpoint_url and the network") from None
                rec.headers_received()
                rec.finish()
                rec.status, rec.request_bytes, rec.body_sent = resp.status_code, size, True
                rec.response_bytes = len(resp.content)
                if resp.status_code in (500, 502, 503, 504) and attempt <= 1 + retrier.policy.max_retries:
                    d = retrier.decide("s3_server_error")
                    if d.retry:
                        rec.retry, rec.retry_delay_s = "retry", d.delay_s
                        self._emit("attempt", rec.event(self.red))
                        self._sleep(d.delay_s)
                        continue
                self._emit("attempt", rec.event(self.red))
                if resp.status_code not in (200, 201, 204):
                    raise self._s3_error(resp, f"uploading {path.name}")
                break
        self.uploaded.append(key)
        url = self.presign_get(key)
        self._emit("upload", {"store": "s3", "key": key, "bytes": size,
                              "url": url_for_log(url, self.red),
                              "expires_s": self.opts.expires_s})
        return url

    def _file_iter(self, path: Path, size: int) -> Iterator[bytes]:
        with open(path, "rb") as fh:
            remaining = size
            while remaining > 0:
                chunk = fh.read(min(self.chunk_size, remaining))
                if not chunk:
                    raise InputError(f"{path} shrank while it was being uploaded")
                remaining -= len(chunk)
                yield chunk

    def _s3_error(self, resp: httpx.Response, what: str) -> ProviderError:
        text = resp.text[:2000]
        code = _xml_tag(text, "Code") or parse_error_body(resp.status_code, resp.content).code
        msg = _xml_tag(text, "Message") or ""
        err_cls: type[ProviderError] = (AuthenticationError if resp.status_code in (401, 403)
                                        else ServiceError)
        return err_cls(
            f"the S3 store refused {what} ({resp.status_code} {code or ''}): "
            f"{self.red.text(msg)}".rstrip(": "),
            hint="check the bucket name, region, endpoint_url and that the credentials may "
            "PutObject/GetObject/DeleteObject under the prefix", status_code=resp.status_code)

    def cleanup(self) -> None:
        if self.opts.keep:
            self._emit("upload_cleanup", {"store": "s3", "kept": len(self.uploaded),
                                          "deleted": 0, "failed": []})
            return
        failed: list[str] = []
        deleted = 0
        with make_client(self.config, transport=self._transport) as client:
            for key in list(self.uploaded):
                url, headers = self._signed_headers("DELETE", key)
                try:
                    resp = client.delete(url, headers=headers)
                    ok = resp.status_code in (200, 202, 204, 404)
                except httpx.TransportError:
                    ok = False
                if ok:
                    deleted += 1
                    self.uploaded.remove(key)
                else:
                    failed.append(key)
        self._emit("upload_cleanup", {"store": "s3", "kept": 0, "deleted": deleted,
                                      "failed": failed})
        if failed:
            log.warning("could not delete %d uploaded clip(s) from the bucket: %s",
                        len(failed), ", ".join(failed))

    def _emit(self, name: str, data: dict[str, Any]) -> None:
        safe = self.red.obj(data)
        log.debug("%s %s", name, safe)
        self.on_event(name, safe)


def _xml_tag(text: str, tag: str) -> str | None:
    start = text.find(f"<{tag}>")
    end = text.find(f"</{tag}>")
    if start < 0 or end < start:
        return None
    return text[start + len(tag) + 2:end]


# ---------------------------------------------------------------------------------- BeatAPI files


class BeatApiFileUploader:
    """Host clips with BeatAPI's ``POST /v1/files`` (multipart ``file``) -> ``data.url``."""

    def __init__(self, client: httpx.Client, base_url: str, *, on_event: EventSink = _ignore,
                 redactor: Redactor | None = None) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.on_event = on_event
        self.red = redactor or Redactor()
        self.uploaded: list[str] = []

    def upload(self, path: Path) -> str:
        from reelscore.providers.elevenlabs import MultipartBody

        body = MultipartBody([("purpose", "input")], [("file", path, path.name, "video/mp4")])
        rec = AttemptRecord(provider="beatapi-files", request_id=path.name, attempt=1,
                            method="POST", url=self.base_url + "/v1/files",
                            purpose="upload_clip", request_bytes_total=body.length)
        try:
            resp = self.client.post(rec.url, content=body, headers={
                "Content-Type": body.content_type, "Content-Length": str(body.length)})
        except httpx.TransportError as exc:
            rec.finish()
            rec.error = self.red.text(transport_error_text(exc))
            self.on_event("attempt", rec.event(self.red))
            raise ServiceError(f"cannot upload {path.name} to BeatAPI ({rec.error})") from None
        rec.finish()
        rec.status, rec.request_bytes, rec.body_sent = resp.status_code, body.sent, body.done
        self.on_event("attempt", rec.event(self.red))
        data = resp.json().get("data") if resp.status_code in (200, 201) else None
        if not isinstance(data, dict) or not data.get("url"):
            info = parse_error_body(resp.status_code, resp.content)
            raise ServiceError(f"BeatAPI refused the upload of {path.name} "
                               f"({resp.status_code}): {self.red.text(info.summary())}")
        self.uploaded.append(str(data.get("id")))
        self.on_event("upload", {"store": "beatapi", "key": data.get("id"),
                                 "bytes": data.get("size_bytes"),
                                 "url": url_for_log(data["url"], self.red)})
        return str(data["url"])

    def cleanup(self) -> None:
        # BeatAPI files are long-lived inputs; deleting is not part of the documented contract.
        self.on_event("upload_cleanup", {"store": "beatapi", "kept": len(self.uploaded),
                                         "deleted": 0, "failed": []})


def make_uploader(config: ProviderConfig, *, on_event: EventSink = _ignore,
                  redactor: Redactor | None = None,
                  transport: httpx.BaseTransport | None = None) -> Uploader:
    """The uploader described by ``config.options["uploader"]``."""
    raw = config.options.get("uploader")
    if not isinstance(raw, Mapping):
        raise InputError(
            "this provider needs public URLs for the clips: configure an uploader",
            hint='set options["uploader"] = {"type": "s3", "bucket": ..., "endpoint_url": ...} '
            "(see docs/providers.md); the clips are then readable by anyone holding the "
            "presigned URL until it expires")
    kind = raw.get("type", "s3")
    if kind != "s3":
        raise InputError(f"unknown uploader type {kind!r}", hint="use \"s3\"")
    try:
        opts = S3Options.model_validate(dict(raw))
    except Exception as exc:  # pydantic.ValidationError
        raise InputError(f"invalid uploader options: {exc}") from None
    cred = config.options.get("credentials_file")
    creds = load_s3_credentials(Path(cred) if cred else None)
    return S3Uploader(opts, creds, config, on_event=on_event, redactor=redactor,
                      transport=transport)
