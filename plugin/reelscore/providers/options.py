"""Typed provider options: what ``ProviderConfig.options`` may hold for each provider.

Every network provider validates its options once, when it is built, with one of these models;
an unknown key or a bad value is an :class:`~reelscore.errors.InputError` that names the key and
lists the allowed ones. ``ProviderConfig.options`` takes either the model itself (front ends build
it from configuration) or a plain mapping of the same fields.

* :class:`HttpOptions`: timeouts, retry policy and limits shared by every network provider.
* :class:`ElevenLabsOptions`: + ``enable_logging`` (``false`` = zero retention), body chunk size,
  ``max_concurrent_requests``, ZIP limits for separate-tracks answers.
* :class:`MountseaOptions`: + task polling (``poll_interval_s``, ``deadline_s``) and the clip
  ``uploader`` (:class:`UploaderConfig`).
* :class:`UploaderConfig`: an S3 bucket for temporary clip hosting. Never holds credentials:
  they come from boto3's standard chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelscore.errors import InputError
from reelscore.limits import DEFAULT_MAX_DESCRIPTION

_Opts = TypeVar("_Opts", bound="HttpOptions")


class UploaderConfig(BaseModel):
    """Where clips are hosted for services that take public URLs (``options["uploader"]``).

    Credentials are deliberately absent: boto3 finds them (``AWS_ACCESS_KEY_ID``/
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` and the shared config, SSO, instance roles).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["s3"] = "s3"
    bucket: str = Field(min_length=3, max_length=63)
    endpoint_url: str | None = None  # None: AWS S3 for the region
    region: str | None = None  # None: boto3's region chain (AWS_REGION, profile), else us-east-1
    prefix: str = "reelscore/"
    # Presigned GET lifetime: long enough for the service to fetch the clips of a queued task,
    # short enough that a leaked URL stops working the same day; SigV4 allows at most 7 days.
    expires_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    keep: bool = False  # leave the objects in the bucket after the job
    # S3-compatible stores on a private host (MinIO, Ceph) often need path-style URLs; None lets
    # botocore choose (virtual-hosted on AWS).
    addressing_style: Literal["auto", "path", "virtual"] | None = None


class HttpOptions(BaseModel):
    """Options every network provider understands."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_description: int = Field(default=DEFAULT_MAX_DESCRIPTION, ge=1)
    write_timeout_s: float = Field(default=120.0, gt=0)
    pool_timeout_s: float = Field(default=30.0, gt=0)
    trust_env: bool = True  # honour HTTP(S)_PROXY / NO_PROXY / SSL_CERT_FILE
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_cap_s: float = Field(default=60.0, gt=0)
    retry_after_cap_s: float = Field(default=300.0, ge=0)
    concurrency_poll_s: float = Field(default=15.0, gt=0)
    concurrency_wait_s: float = Field(default=900.0, ge=0)
    max_response_bytes: int = Field(default=2 << 30, gt=0)
    credentials_file: Path | None = None

    @classmethod
    def parse(cls: type[_Opts], raw: Mapping[str, Any] | BaseModel | None,
              provider: str) -> _Opts:
        """Validate *raw* (a mapping or an options model) as this provider's options."""
        if isinstance(raw, cls):
            return raw
        if isinstance(raw, BaseModel):
            raw = raw.model_dump(exclude_unset=True)
        try:
            return cls.model_validate(dict(raw or {}))
        except ValidationError as exc:
            raise _options_error(cls, exc, provider) from None


class ElevenLabsOptions(HttpOptions):
    """Options of the ``elevenlabs`` provider."""

    enable_logging: bool | None = None  # None: not sent; False: zero retention (enterprise)
    chunk_size: int = Field(default=1 << 20, ge=1024)
    max_concurrent_requests: int | None = Field(default=None, ge=1)
    zip_max_members: int = Field(default=16, ge=1)
    zip_max_member_bytes: int = Field(default=1 << 30, gt=0)
    zip_max_total_bytes: int = Field(default=2 << 30, gt=0)


class MountseaOptions(HttpOptions):
    """Options of the ``mountsea`` provider (task-based proxy)."""

    poll_interval_s: float = Field(default=4.0, gt=0)
    deadline_s: float = Field(default=900.0, gt=0)
    uploader: UploaderConfig | None = None


def _options_error(model: type[HttpOptions], exc: ValidationError, provider: str) -> InputError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "options"
    in_uploader = loc.startswith("uploader.")
    fields = UploaderConfig.model_fields if in_uploader else model.model_fields
    allowed = ", ".join(sorted(fields))
    where = "the uploader" if in_uploader else f"the {provider} provider"
    if first["type"] == "extra_forbidden":
        return InputError(f"unknown option {loc!r} for {where}", hint=f"allowed: {allowed}")
    value = first.get("input")
    shown = "" if isinstance(value, Mapping) else f" (got {value!r})"
    return InputError(f"option {loc!r} of {where}: {first['msg']}{shown}",
                      hint=f"options of {where}: {allowed}")
