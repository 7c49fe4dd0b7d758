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
# Events must never contain secrets.
EventSink = Callable[[str, dict[str, Any]], None]


def _ignore(_name: str, _data: dict[str, Any]) -> None:
    return None


@runtime_checkable
class Provider(Protocol):
    name: str
    # Whether a generation may cost money (then a request that may have reached the service is
    # never sent again without --resubmit).
    charges: bool
    # Whether generate() emits "upload_complete" just before the last byte of a request leaves
    # (then an upload that never completed is known to be safe to resend).
    reports_upload_complete: bool

    def preflight(self) -> None:
        """Fail now (missing key, refused plan) rather than after rendering."""
        ...

    def generate(
        self, request: GenerationRequest, out_dir: Path, *, on_event: EventSink = _ignore
    ) -> GeneratedAudio:
        """Generate music for *request*; write the raw result under *out_dir*.

        Raises a :class:`reelscore.errors.ProviderError` subclass when the service fails, and
        MediaError / InputError for clips or settings it cannot use.
        """
        ...


class ProviderConfig(BaseModel):
    """How to reach a provider. The key is a SecretStr: it never prints, logs or serialises."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    api_key: SecretStr | None = None
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 900.0
    max_retries: int = 4
    allow_insecure: bool = False
    allow_resubmit: bool = False
    options: dict[str, Any] = Field(default_factory=dict)
