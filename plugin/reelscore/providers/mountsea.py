"""The mountsea-style asynchronous proxy of ElevenLabs video-to-music (reference §11).

``POST {base}/eleven/video-to-music`` (JSON, ``Authorization: Bearer <key>``) with
``{videoUrls, description, tags, outputFormat, signWithC2pa}`` -> ``{taskId}``; then
``GET {base}/eleven/tasks?taskId=...`` until ``completed`` (or ``failed``/``cancelled``/
``timeout``), then the audio is downloaded from the result URL.

The proxy takes public URLs, not uploads: the clips are put on temporary hosting first
(:mod:`reelscore.providers.uploader`, S3-compatible, presigned URLs, deleted after the job unless
``keep``). **Privacy:** anyone holding a presigned URL can fetch the clip until it expires.

Options (``ProviderConfig.options``)::

    uploader          {"type": "s3", "bucket": ..., "endpoint_url": ..., "prefix": "reelscore/",
                       "region": "us-east-1", "expires_s": 3600, "keep": false,
                       "addressing_style": "path"}            (required; see uploader.py)
    poll_interval_s   4        seconds between task polls
    deadline_s        900      overall wait for the task
    max_description   1000
    + the retry/timeout options of reelscore.providers.http

Key: ``$REELSCORE_MOUNTSEA_KEY`` (or ``[mountsea] api_key`` in the credentials file, or the
keyring). The proxy documents none of add_sfx / separate_tracks / use_audio_as_reference /
model_id for video-to-music; asking for them is an error rather than a silent no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from reelscore.errors import UnsupportedError
from reelscore.limits import DEFAULT_MAX_DESCRIPTION
from reelscore.providers.base import (
    EventSink,
    GenerationRequest,
    ProviderConfig,
)
from reelscore.providers.elevenlabs import validate_video_request
from reelscore.providers.secrets import load_api_key
from reelscore.providers.tasks import MountseaTasks, TaskProvider
from reelscore.providers.uploader import Uploader, make_uploader


class MountseaVideoToMusic(BaseModel):
    """The submit body, strict: a misspelt field is a bug here, not a silently dropped option."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    video_urls: list[str] = Field(alias="videoUrls", min_length=1, max_length=10)
    description: str | None = Field(default=None, max_length=4100)
    tags: list[str] | None = Field(default=None, max_length=10)
    output_format: str = Field(default="mp3_44100_128", alias="outputFormat")
    sign_with_c2pa: bool | None = Field(default=None, alias="signWithC2pa")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class MountseaProvider(TaskProvider):
    name = "mountsea"
    default_base_url = ""

    def __init__(self, config: ProviderConfig, *, uploader: Uploader | None = None,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(config, api=MountseaTasks(), uploader=uploader, transport=transport,
                         sleep=sleep)
        self._key: SecretStr | None = None
        self.max_description = int(config.options.get("max_description",
                                                       DEFAULT_MAX_DESCRIPTION))

    def preflight(self) -> None:
        self.auth_headers()

    def auth_headers(self) -> dict[str, str]:
        if self._key is None:
            cred = self.config.options.get("credentials_file")
            self._key, _src = load_api_key(self.name, explicit=self.config.api_key,
                                           credentials_file=Path(cred) if cred else None)
            self.redactor.add(self._key.get_secret_value())
        return {"Authorization": f"Bearer {self._key.get_secret_value()}"}

    def validate(self, request: GenerationRequest) -> list[str]:
        s = request.settings
        for name, flag in (("add_sfx", "--add-sfx"), ("separate_tracks", "--separate-tracks"),
                           ("use_audio_as_reference", "--use-audio-as-reference")):
            if getattr(s, name):
                raise UnsupportedError(
                    f"the mountsea proxy does not support {name} for video-to-music",
                    hint=f"drop {flag}, or use --provider elevenlabs")
        if s.model_id is not None:
            raise UnsupportedError("the mountsea proxy does not take a model id for "
                                   "video-to-music", hint="drop --model, or use --provider "
                                   "elevenlabs")
        return validate_video_request(request, service="the mountsea proxy",
                                      max_description=self.max_description)

    def build_payload(self, urls: list[str], request: GenerationRequest) -> dict[str, Any]:
        s = request.settings
        body = MountseaVideoToMusic(
            videoUrls=urls, description=s.description, tags=list(s.tags) or None,
            outputFormat=s.output_format, signWithC2pa=s.sign_with_c2pa)
        return body.wire()

    def make_uploader(self, on_event: EventSink) -> Uploader:
        return make_uploader(self.config, on_event=on_event, redactor=self.redactor)
