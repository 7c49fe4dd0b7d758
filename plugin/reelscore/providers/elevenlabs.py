"""ElevenLabs video-to-music: ``POST {base}/v1/music/video-to-music`` (reference/music_api.md §3).

Wire format (as the official SDK sends it): ``xi-api-key`` header; ``output_format`` (and
``enable_logging`` if configured) in the query; a ``multipart/form-data`` body whose form fields
come first -- ``description``, one ``tags`` part per tag, ``model_id``, ``sign_with_c2pa``,
``add_sfx``, ``separate_tracks``, ``use_audio_as_reference`` (booleans as ``true``/``false``), each
only when set -- followed by one ``videos`` file part per clip in timeline order.

The body is generated from the files on disk while it is sent (:mod:`.multipart`) and the answer
is streamed to a temporary file in the job folder, then recognised and moved into place
(:mod:`.answers`). Every API limit is checked before any upload (:mod:`.video_request`).

Retries go through :class:`~reelscore.providers.retry.Retrier`, and only when the service cannot
have started generating: a connection that failed before the last byte of the body left, a 429
(``system_busy`` backs off; ``too_many_concurrent_requests`` waits for a slot), a 503. Once the
whole body was sent, a lost answer is a :class:`~reelscore.errors.PossiblyChargedError`.

Options: :class:`~reelscore.providers.options.ElevenLabsOptions`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
from pydantic import SecretStr

from reelscore.errors import PossiblyChargedError, ProviderError, ServiceError
from reelscore.musicplan import Plan, plan_wire
from reelscore.providers.access import check_json_call
from reelscore.providers.answers import ZipLimits, content_type_problem, finalize_audio
from reelscore.providers.base import (
    ComposeRequest,
    DraftRequest,
    EventSink,
    GeneratedAudio,
    GenerationRequest,
    GenerationSettings,
    ProviderConfig,
    ignore_event,
)
from reelscore.providers.client import (
    is_connect_phase_error,
    make_client,
    read_limited,
    stream_response_to_file,
    transport_error_text,
    validate_base_url,
)
from reelscore.providers.drafting import post_free_json, read_drafted_plan
from reelscore.providers.multipart import (
    JsonBody,
    MultipartBody,
    content_type_for,
    safe_filename,
)
from reelscore.providers.options import ElevenLabsOptions
from reelscore.providers.redact import Emitter, Redactor
from reelscore.providers.retry import AttemptRecord, Retrier, RetryPolicy, client_slot
from reelscore.providers.secrets import load_api_key
from reelscore.providers.service_errors import (
    SAFE_CONNECT,
    classify_retry,
    error_from_response,
    parse_error_body,
    retry_after_seconds,
)
from reelscore.providers.video_request import validate_video_request

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
ENDPOINT = "/v1/music/video-to-music"
PLAN_ENDPOINT = "/v1/music/plan"  # free: checks access, drafts plans (--draft-plan)
COMPOSE_ENDPOINT = "/v1/music"  # --method compose: a composition plan, JSON
SERVICE = "ElevenLabs"

_RESUBMIT = "rerun with --resubmit to generate (and pay) again"


def compose_body(request: ComposeRequest) -> dict[str, object]:
    """The JSON body of ``POST /v1/music`` (music_api.md §4), each optional field only when set;
    ``respect_sections_durations`` only for ``music_v1`` (v2 models always keep durations)."""
    s = request.settings
    body: dict[str, object] = {"composition_plan": plan_wire(request.composition_plan),
                               "model_id": request.model_id}
    if request.model_id == "music_v1" and request.respect_sections_durations is not None:
        body["respect_sections_durations"] = request.respect_sections_durations
    if s.seed is not None:
        body["seed"] = s.seed
    if request.store_for_inpainting is not None:
        body["store_for_inpainting"] = request.store_for_inpainting
    if s.sign_with_c2pa is not None:
        body["sign_with_c2pa"] = s.sign_with_c2pa
    return body


def form_fields(settings: GenerationSettings) -> list[tuple[str, str]]:
    """The form fields, in wire order, each only when set."""
    out: list[tuple[str, str]] = []
    if settings.description is not None:
        out.append(("description", settings.description))
    out.extend(("tags", t) for t in settings.tags)
    if settings.model_id is not None:
        out.append(("model_id", settings.model_id))
    flags = (("sign_with_c2pa", settings.sign_with_c2pa), ("add_sfx", settings.add_sfx),
             ("separate_tracks", settings.separate_tracks),
             ("use_audio_as_reference", settings.use_audio_as_reference))
    out.extend((name, "true" if v else "false") for name, v in flags if v is not None)
    return out


class ElevenLabsProvider:
    """The ElevenLabs video-to-music API (or a compatible host given with ``--base-url``)."""

    name = "elevenlabs"
    charges = True
    reports_upload_complete = True
    drafts_plans = True
    hears_clip_audio = True

    def __init__(self, config: ProviderConfig, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.options = ElevenLabsOptions.parse(config.options, self.name)
        self.base_url = validate_base_url(config.base_url or DEFAULT_BASE_URL,
                                          allow_insecure=config.allow_insecure)
        self._transport = transport
        self._sleep = sleep
        self._key_lock = threading.Lock()
        self._key: SecretStr | None = None
        self._key_source = "the API key"
        self.redactor = Redactor()
        if config.api_key is not None:
            self.redactor.add(config.api_key.get_secret_value())
        o = self.options
        self.policy = RetryPolicy.from_options(config.max_retries, o)
        self.zip_limits = ZipLimits(max_members=o.zip_max_members,
                                    max_member_bytes=o.zip_max_member_bytes,
                                    max_total_bytes=o.zip_max_total_bytes)

    # -- key --------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Find the key now, so a missing key fails before anything is rendered (the base URL
        and the options were checked when the provider was built)."""
        self._api_key()

    def preflight_compose(self) -> None:
        self._api_key()

    def check_access(self) -> str:
        key = self._api_key()
        check_json_call(self.config, self.options, self.base_url + PLAN_ENDPOINT,
                        {"prompt": "a short calm piano cue", "music_length_ms": 10000},
                        headers={"xi-api-key": key.get_secret_value()}, service=SERVICE,
                        key_source=self._key_source, redactor=self.redactor,
                        transport=self._transport)
        return f"{self._key_source} has music access (the free plan endpoint answered)"

    def _api_key(self) -> SecretStr:
        with self._key_lock:
            if self._key is None:
                key, source = load_api_key(self.name, explicit=self.config.api_key,
                                           credentials_file=self.options.credentials_file)
                self.redactor.add(key.get_secret_value())
                self._key, self._key_source = key, f"the API key from {source}"
            return self._key

    # -- generate -----------------------------------------------------------------------------
    def generate(
        self, request: GenerationRequest, out_dir: Path, *, on_event: EventSink = ignore_event
    ) -> GeneratedAudio:
        settings = request.settings
        warnings = validate_video_request(request, service=SERVICE,
                                          max_description=self.options.max_description)
        key = self._api_key()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        emit = Emitter(self.redactor, on_event)

        fields = form_fields(settings)
        files = [("videos", c.path, safe_filename(c.path.name), content_type_for(c.path))
                 for c in request.clips]
        params: dict[str, str] = {"output_format": settings.output_format}
        if self.options.enable_logging is not None:
            params["enable_logging"] = "true" if self.options.enable_logging else "false"
        url = self.base_url + ENDPOINT
        for w in warnings:
            emit("warning", {"request_id": request.request_id, "message": w})
        emit("request", {
            "provider": self.name, "request_id": request.request_id, "url": url,
            "query": params, "fields": [n for n, _ in fields],
            "videos": [f[2] for f in files], "video_count": len(files),
            "bytes": sum(c.path.stat().st_size for c in request.clips),
            "seconds": round(request.total_seconds, 6),
            "allow_resubmit": self.config.allow_resubmit,
        })
        def body(on_last: Callable[[], None]) -> MultipartBody:
            return MultipartBody(fields, files, chunk_size=self.options.chunk_size,
                                 on_last=on_last)

        result = self._send(key, url, params, body, "generate", emit, request, out_dir)
        result.metadata["warnings"] = warnings + result.metadata.get("warnings", [])
        return result

    def compose(
        self, request: ComposeRequest, out_dir: Path, *, on_event: EventSink = ignore_event
    ) -> GeneratedAudio:
        """``POST /v1/music`` with the plan; same retry and never-pay-twice rules as
        ``generate`` (nothing is retried once the whole body has left)."""
        key = self._api_key()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        emit = Emitter(self.redactor, on_event)
        doc = compose_body(request)
        params: dict[str, str] = {"output_format": request.settings.output_format}
        if self.options.enable_logging is not None:
            params["enable_logging"] = "true" if self.options.enable_logging else "false"
        url = self.base_url + COMPOSE_ENDPOINT
        emit("request", {"provider": self.name, "request_id": request.request_id, "url": url,
                         "query": params, "fields": sorted(doc), "model_id": request.model_id,
                         "allow_resubmit": self.config.allow_resubmit})
        # The answer is described as for a request without clips (id and output format only).
        answer_for = GenerationRequest(request_id=request.request_id, clips=(),
                                       settings=request.settings)

        def body(on_last: Callable[[], None]) -> JsonBody:
            return JsonBody(doc, on_last=on_last)

        result = self._send(key, url, params, body, "compose", emit, answer_for, out_dir)
        result.metadata.update(endpoint=COMPOSE_ENDPOINT, model_id=request.model_id)
        return result

    def draft_plan(self, request: DraftRequest, *, on_event: EventSink = ignore_event) -> Plan:
        """``POST /v1/music/plan`` (free) with the brief, the length and the model."""
        key = self._api_key()
        emit = Emitter(self.redactor, on_event)
        doc = post_free_json(
            self.config, self.options, self.base_url + PLAN_ENDPOINT,
            {"prompt": request.prompt, "music_length_ms": request.music_length_ms,
             "model_id": request.model_id,
             **({"source_composition_plan": plan_wire(request.source_plan)}
                if request.source_plan is not None else {})},
            headers={"xi-api-key": key.get_secret_value()}, service=SERVICE,
            key_source=self._key_source, emit=emit, provider=self.name,
            request_id=request.request_id, transport=self._transport, sleep=self._sleep)
        return read_drafted_plan(doc, service=SERVICE)

    def _send(self, key: SecretStr, url: str, params: dict[str, str],
              make_body: Callable[[Callable[[], None]], MultipartBody | JsonBody], purpose: str,
              emit: Emitter, request: GenerationRequest, out_dir: Path) -> GeneratedAudio:
        """The attempt loop of a generation call (video-to-music or compose): one concurrency
        slot, one client, attempts until an answer is stored or the Retrier stops. The body
        reports "upload_complete" just before its last byte, so nothing is retried blindly once
        the whole request has left."""
        retrier = Retrier(self.policy, emit, provider=self.name, request_id=request.request_id,
                          sleep=self._sleep)
        slot = client_slot(self.base_url, self.options.max_concurrent_requests)
        with slot, make_client(self.config, self.options,
                               headers={"xi-api-key": key.get_secret_value()},
                               transport=self._transport) as client:
            while True:
                done_event = {"provider": self.name, "request_id": request.request_id,
                              "attempt": retrier.attempts + 1}
                body = make_body(partial(emit, "upload_complete", done_event))
                rec = retrier.attempt(method="POST", url=url, purpose=purpose,
                                      request_bytes_total=body.length)
                result = self._attempt(client, url, params, body, rec, retrier, request, out_dir)
                if result is not None:
                    result.metadata["attempts"] = rec.attempt
                    return result

    def _attempt(self, client: httpx.Client, url: str, params: dict[str, str],
                 body: MultipartBody | JsonBody, rec: AttemptRecord, retrier: Retrier,
                 request: GenerationRequest, out_dir: Path) -> GeneratedAudio | None:
        """One attempt. Returns the audio, None to retry (after sleeping), or raises."""
        red = self.redactor
        headers = {"Content-Type": body.content_type, "Content-Length": str(body.length)}
        tmp_path: Path | None = None
        try:
            with client.stream("POST", url, params=params, content=body,
                               headers=headers) as resp:
                rec.headers_received()
                rec.status = resp.status_code
                rec.request_bytes = body.sent
                rec.body_sent = body.done
                rec.content_type = resp.headers.get("content-type")
                rec.capture_ids(resp.headers)
                if not 200 <= resp.status_code < 300:
                    self._error_response(resp, rec, retrier, body)
                    return None
                problem = content_type_problem(resp.headers.get("content-type", ""),
                                               request.settings)
                if problem and problem.endswith("is not audio"):
                    raw = read_limited(resp, 2048)
                    rec.response_bytes = len(raw)
                    snippet = red.text(raw[:200].decode("utf-8", "replace"))
                    raise retrier.charged(
                        rec, f"{SERVICE} answered 200 but with {problem} ({len(raw)} bytes "
                        f"read: {snippet!r})",
                        "check --base-url (a proxy or login page may have answered); the "
                        "service may still have charged a generation: check the account's "
                        f"history, then {_RESUBMIT}")
                fd, tmp_name = tempfile.mkstemp(prefix=f".{request.request_id}.",
                                                suffix=".download", dir=out_dir)
                tmp_path = Path(tmp_name)
                with os.fdopen(fd, "wb") as fh:
                    try:
                        stream_response_to_file(resp, fh, rec,
                                                max_bytes=self.options.max_response_bytes)
                    except ServiceError as exc:  # too large: generated (and charged), refused
                        raise retrier.charged(
                            rec, exc.message + "; the service has most likely charged this "
                            "generation", (exc.hint or "") + f", then {_RESUBMIT}") from None
                    fh.flush()
                    os.fsync(fh.fileno())
            rec.finish()
            if rec.response_bytes == 0:
                raise retrier.charged(
                    rec, f"{SERVICE} answered 200 with an empty body (0 bytes of audio)",
                    "the service may have charged this generation; check the account's history, "
                    f"then {_RESUBMIT}")
            if problem:
                rec.extra["warning"] = problem
            retrier.report(rec)
            audio = finalize_audio(tmp_path, out_dir=out_dir, request=request,
                                   provider=self.name, content_type=rec.content_type,
                                   ids=dict(rec.ids), redactor=red, emit=retrier.emit,
                                   attempts=rec.attempt, zip_limits=self.zip_limits)
            tmp_path = None
            audio.metadata.update(endpoint=ENDPOINT if isinstance(body, MultipartBody)
                                  else COMPOSE_ENDPOINT, request_bytes=rec.request_bytes,
                                  response_bytes=rec.response_bytes, elapsed_s=rec.elapsed_s)
            return audio
        except httpx.TransportError as exc:
            rec.finish()
            rec.request_bytes = max(rec.request_bytes, body.sent)
            rec.body_sent = body.done
            rec.error = red.text(transport_error_text(exc))
            if rec.status is not None:
                # Headers arrived (2xx): the download broke. The generation has happened.
                raise retrier.charged(
                    rec, f"the download of the generated audio broke after "
                    f"{rec.response_bytes:,} bytes ({rec.error}); the service has most likely "
                    "charged this generation",
                    f"the partial file was discarded; {_RESUBMIT}, or wait and retry later "
                    "with --resubmit") from None
            if is_connect_phase_error(exc) or not body.done:
                # The last byte never left: the service cannot hold the whole request.
                if retrier.again(rec, SAFE_CONNECT):
                    return None
                retrier.report(rec)
                raise ServiceError(
                    f"could not send the request to {SERVICE} at {self.base_url} "
                    f"({rec.error}; {rec.attempt} attempts, {body.sent:,} of {body.length:,} "
                    f"bytes sent in the last one); nothing was generated",
                    hint="check the network / --base-url and run again", retryable=True,
                ) from None
            what = ("no answer within the read timeout of "
                    f"{self.config.read_timeout_s:g} s" if isinstance(exc, httpx.ReadTimeout)
                    else f"the connection broke ({rec.error})")
            raise retrier.charged(
                rec, f"the whole request ({body.length:,} bytes) was sent to {SERVICE} but "
                f"{what}; the service may be generating (and charging) this request",
                "wait a few minutes and check the account's history; " + _RESUBMIT + (
                    "; raise the read timeout (--read-timeout) for long programmes"
                    if isinstance(exc, httpx.ReadTimeout) else "")) from None
        finally:
            if tmp_path is not None:
                with contextlib.suppress(OSError):
                    tmp_path.unlink()

    def _error_response(self, resp: httpx.Response, rec: AttemptRecord, retrier: Retrier,
                        body: MultipartBody | JsonBody) -> None:
        """An answer that is not 2xx: returns to retry (after sleeping), else raises."""
        red = self.redactor
        raw = read_limited(resp)
        rec.response_bytes = len(raw)
        rec.finish()
        if 300 <= resp.status_code < 400:
            rec.error = f"redirect to {resp.headers.get('location', '?')}"
            retrier.report(rec)
            raise ProviderError(
                f"{SERVICE} answered {resp.status_code} (a redirect to "
                f"{red.text(resp.headers.get('location', '?'))}); redirects are not followed "
                "so the key is not sent elsewhere",
                hint="set --base-url to the final host", status_code=resp.status_code)
        info = parse_error_body(resp.status_code, raw, resp.headers.get("content-type", ""))
        rec.error = red.text(info.summary())
        rec.error_code = info.code
        rec.extra["error_shape"] = info.shape
        kind = classify_retry(info)
        ra = retry_after_seconds(resp.headers)
        if retrier.again(rec, kind, ra if ra is not None else info.retry_after_s):
            return
        exc = error_from_response(info, service=SERVICE, key_source=self._key_source,
                                  body_sent=body.done, redactor=red)
        if kind is not None:
            exc.message += retrier.summary(rec)
        if isinstance(exc, PossiblyChargedError):
            raise retrier.charged(rec, exc.message, exc.hint or "")
        retrier.report(rec)
        raise exc


__all__ = ["DEFAULT_BASE_URL", "ElevenLabsProvider", "compose_body", "form_fields"]
