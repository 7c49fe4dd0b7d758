"""The mountsea-style asynchronous proxy of ElevenLabs video-to-music (reference §11).

``POST {base}/eleven/video-to-music`` (JSON, ``Authorization: Bearer <key>``) with
``{videoUrls, description, tags, outputFormat, signWithC2pa}`` -> ``{taskId}``; then
``GET {base}/eleven/tasks?taskId=...`` until ``completed`` (or ``failed``/``cancelled``/
``timeout``), then the audio is downloaded from the result URL.

The proxy takes public URLs, not uploads: the clips are put on temporary hosting first
(:mod:`reelscore.providers.uploader`: S3 through boto3, presigned URLs, deleted after the job
unless ``keep``). **Privacy:** anyone holding a presigned URL can fetch the clip until it expires.

Options: :class:`~reelscore.providers.options.MountseaOptions` (``uploader`` required,
``poll_interval_s`` 4, ``deadline_s`` 900, ``max_description`` 1000, retry and timeouts).

``--method compose``: ``POST {base}/eleven/music`` with the v1 plan (``MountseaCompose``; the proxy
takes ``music_v1`` only), then the same task flow; ``--draft-plan``: ``POST {base}/eleven/plan``
(free), the drafted plan read from the finished task's result. Neither sends clips.

Key: ``$REELSCORE_MOUNTSEA_KEY`` (or ``[mountsea] api_key`` in the credentials file, or the
keyring). The proxy documents none of add_sfx / separate_tracks / use_audio_as_reference /
model_id for video-to-music; asking for them is an error rather than a silent no-op.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from reelscore.errors import ServiceError, UnsupportedError
from reelscore.musicplan import Plan, plan_wire
from reelscore.providers.access import check_json_call
from reelscore.providers.base import (
    ComposeRequest,
    DraftRequest,
    EventSink,
    GeneratedAudio,
    GenerationRequest,
    ProviderConfig,
    ignore_event,
)
from reelscore.providers.client import make_client
from reelscore.providers.drafting import read_drafted_plan
from reelscore.providers.redact import Emitter
from reelscore.providers.secrets import load_api_key
from reelscore.providers.tasks import (
    HttpCall,
    TaskProvider,
    TaskRunner,
    TaskState,
    TaskStatus,
    find_urls,
)
from reelscore.providers.video_request import validate_video_request


def _s(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


class MountseaTasks:
    """The mountsea-style proxy: ``POST /eleven/video-to-music`` -> ``{taskId}``;
    ``GET /eleven/tasks?taskId=`` -> ``{taskId, status, result, errorMessage, errorCode, traceId}``.
    """

    service = "the mountsea proxy"
    RUNNING = ("pending", "ready", "assigned", "processing", "queued", "running")
    FAILED = ("failed", "cancelled", "canceled", "timeout", "error")

    def submit_call(self, payload: dict[str, Any]) -> HttpCall:
        return HttpCall("POST", "/eleven/video-to-music", json=payload)

    def parse_submit(self, doc: Any) -> str:
        tid = None
        if isinstance(doc, Mapping):
            tid = doc.get("taskId") or doc.get("task_id")
            if tid is None and isinstance(doc.get("data"), Mapping):
                tid = doc["data"].get("taskId") or doc["data"].get("task_id")
        if not tid:
            raise ServiceError(f"{self.service} accepted the request but returned no taskId",
                               hint="the task may exist and be charged; check the proxy's console")
        return str(tid)

    def status_call(self, task_id: str) -> HttpCall:
        return HttpCall("GET", "/eleven/tasks", params={"taskId": task_id})

    def parse_status(self, task_id: str, doc: Any) -> TaskStatus:
        if isinstance(doc, Mapping) and isinstance(doc.get("data"), Mapping) and "status" not in doc:
            doc = doc["data"]
        if not isinstance(doc, Mapping):
            raise ServiceError(f"{self.service} answered a task status that is not an object")
        raw = str(doc.get("status", "")).lower()
        state: TaskState
        if raw == "completed" or raw == "succeeded" or raw == "success":
            state = "succeeded"
        elif raw in self.FAILED:
            state = "failed"
        elif raw in ("pending", "queued"):
            state = "pending"
        else:
            state = "running"
        return TaskStatus(
            task_id=str(doc.get("taskId") or task_id), state=state, raw_status=raw,
            result_urls=find_urls(doc.get("result")) if state == "succeeded" else [],
            error_code=_s(doc.get("errorCode")), error_message=_s(doc.get("errorMessage")),
            trace_id=_s(doc.get("traceId")), result=doc.get("result"),
        )



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


class MountseaCompose(BaseModel):
    """The ``POST /eleven/music`` body for a plan (reference §11): the v1 ``MusicPrompt`` goes
    in ``compositionPlan`` in the service's snake_case; ``prompt``, ``musicLengthMs`` and
    ``forceInstrumental`` are prompt-only and never sent with a plan."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    composition_plan: dict[str, Any] = Field(alias="compositionPlan")
    model: Literal["music_v1"] = "music_v1"
    respect_sections_durations: bool | None = Field(default=None, alias="respectSectionsDurations")
    seed: int | None = None
    output_format: str = Field(default="mp3_44100_128", alias="outputFormat")
    sign_with_c2pa: bool | None = Field(default=None, alias="signWithC2pa")
    store_for_inpainting: bool | None = Field(default=None, alias="storeForInpainting")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class MountseaProvider(TaskProvider):
    name = "mountsea"
    drafts_plans = True
    hears_clip_audio = False  # the proxy documents no use_audio_as_reference (validate refuses it)

    def __init__(self, config: ProviderConfig, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(config, api=MountseaTasks(), transport=transport, sleep=sleep)
        self._key_lock = threading.Lock()
        self._key: SecretStr | None = None

    def auth_headers(self) -> dict[str, str]:
        with self._key_lock:
            if self._key is None:
                self._key, _src = load_api_key(self.name, explicit=self.config.api_key,
                                               credentials_file=self.options.credentials_file)
                self.redactor.add(self._key.get_secret_value())
            return {"Authorization": f"Bearer {self._key.get_secret_value()}"}

    def check_access(self) -> str:
        resp = check_json_call(self.config, self.options, self.base_url + "/eleven/plan",
                               {"prompt": "a short calm piano cue", "musicLengthMs": 10000},
                               headers=self.auth_headers(), service="the mountsea proxy",
                               key_source="the mountsea key", redactor=self.redactor,
                               transport=self._transport)
        task = resp.json().get("taskId") if "json" in resp.headers.get("content-type", "") else None
        return "the proxy accepted the key" + (f" (plan task {task})" if task else "")

    def _runner(self, client: httpx.Client, emit: Emitter) -> TaskRunner:
        return TaskRunner(self.api, client, self.base_url, provider=self.name,
                          config=self.config, options=self.options, emit=emit,
                          transport=self._transport, sleep=self._sleep)

    def draft_plan(self, request: DraftRequest, *, on_event: EventSink = ignore_event) -> Plan:
        """``POST /eleven/plan`` (free; retried) then the task's result. The proxy's plan schema
        lists ``music_v1`` only, so the draft is always a v1 plan (its styles fit any model)."""
        emit = Emitter(self.redactor, on_event)
        body = {"prompt": request.prompt, "musicLengthMs": request.music_length_ms,
                "model": "music_v1"}
        with make_client(self.config, self.options, headers=self.auth_headers(),
                         transport=self._transport) as client:
            runner = self._runner(client, emit)
            tid = runner.submit_call(HttpCall("POST", "/eleven/plan", json=body),
                                     request.request_id, free=True)
            status = runner.wait(tid, request.request_id)
        return read_drafted_plan(status.result, service=self.api.service)

    def compose(self, request: ComposeRequest, out_dir: Path, *,
                on_event: EventSink = ignore_event) -> GeneratedAudio:
        """``POST /eleven/music`` with the v1 plan, then the task as for video-to-music: a
        submit whose answer was lost, a deadline or a failed download may have been charged
        and is never resent without ``--resubmit``."""
        if request.model_id != "music_v1":
            raise UnsupportedError(
                f"the mountsea proxy composes music_v1 plans only (its /eleven/music takes model "
                f"music_v1); request {request.request_id} is planned for {request.model_id}",
                hint="add --model music_v1 (and re-plan a reviewed --composition file with it), "
                     "or use --provider elevenlabs for v2 plans")
        s = request.settings
        body = MountseaCompose(
            compositionPlan=plan_wire(request.composition_plan),
            respectSectionsDurations=request.respect_sections_durations, seed=s.seed,
            outputFormat=s.output_format, signWithC2pa=s.sign_with_c2pa,
            storeForInpainting=request.store_for_inpainting).wire()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        emit = Emitter(self.redactor, on_event)
        answer_for = GenerationRequest(request_id=request.request_id, clips=(), settings=s)
        with make_client(self.config, self.options, headers=self.auth_headers(),
                         transport=self._transport) as client:
            runner = self._runner(client, emit)
            emit("request", {"provider": self.name, "request_id": request.request_id,
                             "url": self.base_url + "/eleven/music", "fields": sorted(body),
                             "model_id": request.model_id,
                             "allow_resubmit": self.config.allow_resubmit})
            tid = runner.submit_call(HttpCall("POST", "/eleven/music", json=body),
                                     request.request_id)
            audio = self.task_audio(runner, tid, answer_for, out_dir, emit)
        audio.metadata.update(endpoint="/eleven/music", model_id=request.model_id)
        return audio

    def validate(self, request: GenerationRequest) -> list[str]:
        s = request.settings
        for name, value, flag in (("add_sfx", s.add_sfx, "--add-sfx"),
                                  ("separate_tracks", s.separate_tracks, "--separate-tracks"),
                                  ("use_audio_as_reference", s.use_audio_as_reference,
                                   "--use-audio-as-reference")):
            if value:
                raise UnsupportedError(
                    f"the mountsea proxy does not support {name} for video-to-music",
                    hint=f"drop {flag}, or use --provider elevenlabs")
        if s.model_id is not None:
            raise UnsupportedError("the mountsea proxy does not take a model id for "
                                   "video-to-music", hint="drop --model, or use --provider "
                                   "elevenlabs")
        return validate_video_request(request, service="the mountsea proxy",
                                      max_description=self.options.max_description)

    def build_payload(self, urls: list[str], request: GenerationRequest) -> dict[str, Any]:
        s = request.settings
        body = MountseaVideoToMusic(
            videoUrls=urls, description=s.description, tags=list(s.tags) or None,
            outputFormat=s.output_format, signWithC2pa=s.sign_with_c2pa)
        return body.wire()
