"""The one small interface every music source implements.

clips (in timeline order) + settings in  ->  one audio file (+ optional SFX file) + metadata out.

The pipeline, resume and reporting never look past this interface, so the offline engine, the
ElevenLabs API and task-based proxies are interchangeable. Requests are strict pydantic models
(unknown fields are errors: a typo must not silently drop an option the user pays for).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from reelscore.errors import UnsupportedError
from reelscore.musicplan import ModelId, Plan, PlanField, sections_of
from reelscore.providers.options import HttpOptions

# Every output format the video-to-music endpoint accepts (reference/music_api.md §3).
OUTPUT_FORMATS: tuple[str, ...] = (
    "mp3_22050_32", "mp3_24000_48", "mp3_44100_32", "mp3_44100_64", "mp3_44100_96",
    "mp3_44100_128", "mp3_44100_192",
    "pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_32000", "pcm_44100", "pcm_48000",
    "ulaw_8000", "alaw_8000",
    "opus_48000_32", "opus_48000_64", "opus_48000_96", "opus_48000_128", "opus_48000_192",
)



class GenerationSettings(BaseModel):
    """What the user asked the music to be. Only fields that are set are sent to a service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = None
    tags: tuple[str, ...] = ()
    model_id: str | None = None
    output_format: str = "mp3_44100_128"
    seed: int | None = None
    sign_with_c2pa: bool | None = None
    add_sfx: bool | None = None
    separate_tracks: bool | None = None
    use_audio_as_reference: bool | None = None


class ClipRef(BaseModel):
    """One rendered scene clip, as sent to the service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    frames: int = Field(gt=0)
    rate: str  # exact rational as "24000/1001"
    duration_s: float = Field(gt=0)
    bytes: int = Field(ge=0)
    sha256: str
    scene_ids: tuple[str, ...] = ()


class GenerationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str  # stable within a job, e.g. "r01"
    clips: tuple[ClipRef, ...]
    settings: GenerationSettings

    @property
    def total_seconds(self) -> float:
        return sum(c.duration_s for c in self.clips)

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.clips)


class ComposeRequest(BaseModel):
    """One composition plan to compose (``--method compose``): no clips, the plan says it all.

    ``respect_sections_durations`` is sent for ``music_v1`` only (v2 models always keep them);
    ``settings`` gives ``output_format``, ``seed`` and ``sign_with_c2pa``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str
    model_id: ModelId
    composition_plan: PlanField
    settings: GenerationSettings
    respect_sections_durations: bool | None = None
    store_for_inpainting: bool | None = None

    @property
    def total_seconds(self) -> float:
        return sum(v.duration_ms for v in sections_of(self.composition_plan)) / 1000


class DraftRequest(BaseModel):
    """A brief for the free plan endpoint (``--draft-plan``): the service drafts a plan of
    *music_length_ms* for *model_id*; the cut's durations and names replace its own later."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str
    prompt: str = Field(min_length=1)
    music_length_ms: int = Field(ge=3000, le=600000)
    model_id: ModelId
    source_plan: PlanField | None = None  # the cut's plan, for services that start from one


class GeneratedAudio(BaseModel):
    """What came back, as stored in the job folder (untouched: conform works on a copy)."""

    model_config = ConfigDict(extra="allow")

    path: Path
    container: Literal["mp3", "wav", "pcm", "opus", "flac", "other"]
    pcm_sample_rate: int | None = None  # only for headerless PCM
    sfx_path: Path | None = None
    provider: str
    model: str | None = None
    seed: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


# An event sink: providers report attempts, ids and timings; the job writes them to the manifest.
# Events must never contain secrets (providers emit through reelscore.providers.redact.Emitter).
EventSink = Callable[[str, dict[str, Any]], None]


def ignore_event(_name: str, _data: dict[str, Any]) -> None:
    """The event sink used when the caller gives none."""
    return None


@runtime_checkable
class Provider(Protocol):
    """A music source. The pipeline relies on these members and never probes for others.

    ``generate`` may be called from several threads at once on one provider (the pipeline runs
    requests concurrently): implementations keep per-request state local to the call.
    """

    name: str
    # A request that was sent may have been charged: an interrupted one is not resent silently.
    charges: bool
    # Emits "upload_complete" just before the last byte of a request leaves, so an upload that
    # never completed (nothing can have been charged) can be resent safely.
    reports_upload_complete: bool
    # Has a free plan endpoint (``draft_plan``, ``--draft-plan``).
    drafts_plans: bool
    # Takes clips with their sound (``use_audio_as_reference``, ``--use-audio-as-reference``).
    hears_clip_audio: bool

    def preflight(self) -> None:
        """Check everything that can be checked before rendering (key present, base URL and
        options valid, clip hosting configured and reachable); raise the actionable error."""
        ...

    def preflight_compose(self) -> None:
        """``preflight`` for ``--method compose``: what sending plans needs (no clip hosting)."""
        ...

    def check_access(self) -> str:
        """One free authenticated call (``reelscore doctor --online``): a line saying what the
        service answered, or the mapped error (a 402/403 says the key has no music access)."""
        ...

    def generate(
        self, request: GenerationRequest, out_dir: Path, *, on_event: EventSink = ignore_event
    ) -> GeneratedAudio:
        """Generate music for *request*; write the raw result under *out_dir*.

        Raises a :class:`reelscore.errors.ProviderError` subclass when the service fails, and
        MediaError / InputError for clips or settings it cannot use.
        """
        ...

    def compose(
        self, request: ComposeRequest, out_dir: Path, *, on_event: EventSink = ignore_event
    ) -> GeneratedAudio:
        """Compose music that follows *request*'s composition plan (``--method compose``), under
        the same rules as ``generate``; ``UnsupportedError`` from a provider that cannot."""
        ...

    def draft_plan(self, request: DraftRequest, *, on_event: EventSink = ignore_event) -> Plan:
        """Ask the service's free plan endpoint for a plan drafted from *request*'s brief
        (``--draft-plan``); ``UnsupportedError`` naming the flag from a provider that has none."""
        ...


class ProviderDefaults:
    """Defaults of the optional capabilities, for providers that have nothing to declare."""

    name: str
    charges: bool = True
    reports_upload_complete: bool = False
    drafts_plans: bool = False
    hears_clip_audio: bool = True

    def preflight(self) -> None:
        return None

    def preflight_compose(self) -> None:
        self.preflight()

    def check_access(self) -> str:
        return "nothing to ask: no service behind this provider"

    def compose(
        self, request: ComposeRequest, out_dir: Path, *, on_event: EventSink = ignore_event
    ) -> GeneratedAudio:
        raise UnsupportedError(
            f"the {self.name} provider cannot compose from a composition plan "
            f"(request {request.request_id})",
            hint="use --method video with this provider, or --provider elevenlabs or local "
                 "with --method compose")


    def draft_plan(self, request: DraftRequest, *, on_event: EventSink = ignore_event) -> Plan:
        raise UnsupportedError(
            f"--draft-plan needs a service's free plan endpoint; the {self.name} provider has "
            "none (nothing was rendered or sent)",
            hint="drop --draft-plan, or use --provider elevenlabs or mountsea")


class ProviderConfig(BaseModel):
    """How to reach a provider. The key is a SecretStr: it never prints, logs or serialises.

    ``options`` holds the provider's typed options (:mod:`reelscore.providers.options`:
    ``ElevenLabsOptions``, ``MountseaOptions``) or a mapping of the same fields; each provider
    validates it when it is built.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    api_key: SecretStr | None = None
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 900.0
    max_retries: int = 4
    allow_insecure: bool = False
    allow_resubmit: bool = False
    options: HttpOptions | dict[str, Any] = Field(default_factory=dict)
