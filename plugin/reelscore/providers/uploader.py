"""Temporary public hosting for clips, for services that take video URLs instead of uploads.

:class:`S3Uploader` puts each clip in an S3 bucket (AWS S3 or any S3-compatible store: MinIO,
Cloudflare R2, Backblaze B2, Wasabi, ...) through boto3, hands the service a presigned ``GET`` URL
that expires after ``expires_s``, and deletes every object of the request when it is done unless
``keep`` is set. boto3 is an optional extra (``pip install 'reelscore[s3]'``): it brings the
region handling, addressing styles, checksums and credential chain real buckets need.

Configuration is :class:`~reelscore.providers.options.UploaderConfig`. Credentials never are:
boto3's standard chain finds them (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` with the shared config and credentials files, SSO,
container and instance roles). The secret key and session token are added to the provider's
redactor, and presigned signatures are redacted from every event.

Each upload goes through the provider's :class:`~reelscore.providers.retry.Retrier` (boto3's own
retries are turned off so each attempt is recorded once): connection failures and 5xx answers are
retried with backoff; anything else stops with the bucket and the failed operation named.

**Privacy:** anyone holding a presigned URL can fetch the clip until it expires.
"""

from __future__ import annotations

import logging
import secrets as _secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reelscore.errors import (
    AuthenticationError,
    InputError,
    ReelscoreError,
    ServiceError,
)
from reelscore.providers.client import validate_base_url
from reelscore.providers.options import UploaderConfig
from reelscore.providers.redact import Emitter, Redactor, url_for_log
from reelscore.providers.retry import Retrier, RetryPolicy

log = logging.getLogger(__name__)

S3_SERVER_ERROR = "s3_server_error"
UPLOAD_FAILED = "upload_failed"
_CREDENTIALS_HINT = (
    "boto3 looks for credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE (the "
    "shared ~/.aws/config and credentials files, SSO: `aws sso login`) and instance roles; "
    "reelscore's own configuration never holds them")


def require_uploader(config: UploaderConfig | None) -> UploaderConfig:
    """The configured uploader, or the error that says how to configure one."""
    if config is None:
        raise InputError(
            "this provider needs public URLs for the clips: configure an uploader",
            hint='set the provider option "uploader" (an [uploader] section: type = "s3", '
            "bucket, endpoint_url, region, prefix, expires_s, keep; docs/providers.md); the "
            "clips are then readable by anyone holding the presigned URL until it expires")
    return config


def s3_client(config: UploaderConfig, *, redactor: Redactor, allow_insecure: bool = False
              ) -> Any:
    """A boto3 S3 client for *config* (a new session: boto3 sessions are not thread-safe)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise InputError("the S3 uploader needs boto3, which is not installed",
                         hint="pip install 'reelscore[s3]'") from None
    if config.endpoint_url is not None:
        validate_base_url(config.endpoint_url, allow_insecure=allow_insecure,
                          what="the uploader's endpoint_url")
    session = boto3.session.Session()
    creds = session.get_credentials()
    if creds is None:
        raise AuthenticationError(
            f"no AWS credentials found for the S3 uploader (bucket {config.bucket!r})",
            hint=_CREDENTIALS_HINT)
    frozen = creds.get_frozen_credentials()
    redactor.add(frozen.secret_key)
    redactor.add(frozen.token)
    return session.client(
        "s3", endpoint_url=config.endpoint_url, region_name=config.region,
        config=Config(signature_version="s3v4", retries={"total_max_attempts": 1},
                      s3={"addressing_style": config.addressing_style or "auto"}))


def _s3_error(exc: Exception, config: UploaderConfig, operation: str,
              redactor: Redactor) -> ReelscoreError:
    """A boto3/botocore failure as an error naming the bucket and the failed operation."""
    from botocore.exceptions import ClientError, NoCredentialsError

    where = f"bucket {config.bucket!r}" + (f" at {url_for_log(config.endpoint_url)}"
                                           if config.endpoint_url else "")
    if isinstance(exc, NoCredentialsError):
        return AuthenticationError(f"no AWS credentials found for the S3 uploader ({where})",
                                   hint=_CREDENTIALS_HINT)
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or status)
        msg = redactor.text(str(err.get("Message") or ""))
        text = f"S3 {operation} on {where} failed ({status} {code})" + (f": {msg}" if msg else "")
        if status in (401, 403) or code in ("AccessDenied", "InvalidAccessKeyId",
                                            "SignatureDoesNotMatch", "ExpiredToken"):
            return AuthenticationError(
                text, hint="check that the credentials may HeadBucket/PutObject/GetObject/"
                "DeleteObject under the prefix; " + _CREDENTIALS_HINT, status_code=status)
        if status == 404 or code in ("NoSuchBucket", "404"):
            return InputError(text, hint="check the uploader's bucket, region and endpoint_url")
        return ServiceError(text, hint="the store is having problems; try again later",
                            status_code=status or None, retryable=status >= 500)
    return ServiceError(f"S3 {operation} on {where} failed: {redactor.text(str(exc))}",
                        hint="check the uploader's endpoint_url and the network", retryable=True)


def check_uploader(config: UploaderConfig, *, redactor: Redactor,
                   allow_insecure: bool = False) -> None:
    """Preflight: credentials found and the bucket reachable (one ``HeadBucket``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(config, redactor=redactor, allow_insecure=allow_insecure)
    try:
        client.head_bucket(Bucket=config.bucket)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, config, "HeadBucket", redactor) from None


def round_trip(config: UploaderConfig, *, redactor: Redactor,
               allow_insecure: bool = False) -> str:
    """``reelscore doctor``: write, read back and delete a tiny object under the prefix, the
    three operations a job needs; the error names the bucket and the operation that failed."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(config, redactor=redactor, allow_insecure=allow_insecure)
    key = f"{config.prefix}reelscore-doctor-{_secrets.token_hex(6)}.txt"
    payload = b"reelscore doctor round trip\n"
    operation = "PutObject"
    try:
        client.put_object(Bucket=config.bucket, Key=key, Body=payload, ContentType="text/plain")
        operation = "GetObject"
        got = client.get_object(Bucket=config.bucket, Key=key)["Body"].read()
        operation = "DeleteObject"
        client.delete_object(Bucket=config.bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, config, f"{operation} of {key}", redactor) from None
    if got != payload:
        raise ServiceError(f"S3 GetObject of {key} in bucket {config.bucket!r} returned "
                           f"{len(got)} bytes that differ from the {len(payload)} written",
                           hint="check the endpoint_url: it does not behave as S3 does")
    return f"bucket {config.bucket!r}: put, get and delete of {len(payload)} bytes under " \
           f"{config.prefix!r}"


class S3Uploader:
    """Upload one request's clips and hand out presigned GET URLs; delete them afterwards."""

    def __init__(self, config: UploaderConfig, policy: RetryPolicy, emit: Emitter, *,
                 request_id: str, allow_insecure: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.policy = policy
        self.emit = emit
        self.request_id = request_id
        self.allow_insecure = allow_insecure
        self.sleep = sleep
        self.job_token = _secrets.token_hex(8)
        self.uploaded: list[str] = []
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client(self.config, redactor=self.emit.redactor,
                                     allow_insecure=self.allow_insecure)
        return self._client

    def _key_for(self, path: Path) -> str:
        n = len(self.uploaded) + 1
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in path.name)[:100]
        return f"{self.config.prefix}{self.job_token}/{n:02d}_{safe}"

    def _object_url(self, key: str) -> str:
        base = self.config.endpoint_url or "https://s3.amazonaws.com"
        return f"{base.rstrip('/')}/{self.config.bucket}/{key}"

    def upload(self, path: Path) -> str:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        client = self.client
        key = self._key_for(path)
        size = path.stat().st_size
        retrier = Retrier(self.policy, self.emit, provider="s3", request_id=key,
                          sleep=self.sleep)
        while True:
            rec = retrier.attempt(method="PUT", url=self._object_url(key), purpose="upload_clip",
                                  request_bytes_total=size)
            try:
                with open(path, "rb") as fh:
                    answer = client.put_object(Bucket=self.config.bucket, Key=key, Body=fh,
                                               ContentLength=size, ContentType="video/mp4")
            except (BotoCoreError, ClientError) as exc:
                rec.finish()
                rec.error = self.emit.redactor.text(str(exc))
                status = (int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                          if isinstance(exc, ClientError) else None)
                rec.status = status
                reason = (None if isinstance(exc, NoCredentialsError)
                          else S3_SERVER_ERROR if status is not None and status >= 500
                          else UPLOAD_FAILED if status is None else None)
                if retrier.again(rec, reason):
                    continue
                retrier.report(rec)
                raise _s3_error(exc, self.config, f"PutObject of {path.name}",
                                self.emit.redactor) from None
            rec.headers_received()
            rec.status = int(answer.get("ResponseMetadata", {}).get("HTTPStatusCode") or 200)
            rec.request_bytes, rec.body_sent = size, True
            retrier.report(rec)
            break
        self.uploaded.append(key)
        url: str = client.generate_presigned_url(
            "get_object", Params={"Bucket": self.config.bucket, "Key": key},
            ExpiresIn=self.config.expires_s)
        self.emit("upload", {"store": "s3", "key": key, "bytes": size,
                             "url": url_for_log(url, self.emit.redactor),
                             "expires_s": self.config.expires_s})
        return url

    def cleanup(self) -> None:
        """Delete this request's objects (unless ``keep``); failures are reported, not raised."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self.config.keep or not self.uploaded:
            self.emit("upload_cleanup", {"store": "s3", "kept": len(self.uploaded),
                                         "deleted": 0, "failed": []})
            return
        failed: list[str] = []
        deleted = 0
        for key in list(self.uploaded):
            try:
                self.client.delete_object(Bucket=self.config.bucket, Key=key)
            except (BotoCoreError, ClientError):
                failed.append(key)
                continue
            deleted += 1
            self.uploaded.remove(key)
        self.emit("upload_cleanup", {"store": "s3", "kept": 0, "deleted": deleted,
                                     "failed": failed})
        if failed:
            log.warning("could not delete %d uploaded clip(s) from bucket %r: %s",
                        len(failed), self.config.bucket, ", ".join(failed))
