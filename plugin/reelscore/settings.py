"""What a run can be told (``ScoreSettings``) and where it reports progress (``ProgressSink``).

Every front end (CLI, OTIO hook, Resolve dialog and ``reelscore resolve score``) builds one
``ScoreSettings``; the pipeline only reads it. It is serialised into the manifest, so it must
never hold secrets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from reelscore.plan import PlanLimits
from reelscore.providers.base import GenerationSettings
from reelscore.scenes import ScenePolicy

log = logging.getLogger(__name__)

DEFAULT_TRACK_NAME = "Score"


class ScoreSettings(BaseModel):
    """Everything a run can be told. Serialised into the manifest: it must never hold secrets."""

    model_config = ConfigDict(extra="forbid")

    scenes: ScenePolicy = "cuts"
    scene_track: int = 1
    min_scene_seconds: float = Field(default=2.0, ge=0)
    range_in: str | None = None
    range_out: str | None = None
    rate: str | None = None  # EDL rate override
    media_roots: list[Path] = Field(default_factory=list)
    allow_remote_media: bool = False  # download http(s) media named by the edit (remote_media)
    provider: str = "local"
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    target_lufs: float = -14.0
    true_peak: float = -1.0
    wav_bits: int = 24
    track_name: str = DEFAULT_TRACK_NAME
    markers: bool = False
    proxy_width: int = 640
    crossfade_seconds: float = 0.5
    clip_audio: bool = False
    workers: int | None = None
    resubmit: bool = False
    max_request_seconds: float = Field(default=600.0, gt=0, le=600.0)  # lower for proxies
    max_videos: int = Field(default=10, ge=1, le=10)
    # Reference-movie mode (--reference MOVIE, --reference-start TC): every scene is cut from
    # this flattened movie instead of the sources (see reelscore.reference).
    reference: Path | None = None
    reference_start: str | None = None
    # Timecode shown and typed: the edit's own drop-frame flag unless overridden (--timecode).
    timecode: Literal["df", "ndf"] | None = None
    # Requests in flight at the service at once (render of the next overlaps generation).
    concurrency: int = Field(default=2, ge=1, le=16)

    def limits(self) -> PlanLimits:
        return PlanLimits(max_seconds=self.max_request_seconds, max_videos=self.max_videos)


# Where one request stands while requests render, upload and generate side by side.
RequestState = Literal["rendering", "queued", "uploading", "generating", "done", "failed"]


class ProgressSink(Protocol):
    def stage(self, name: str, total: float | None = None) -> None: ...

    def advance(self, name: str, amount: float = 1) -> None: ...

    def note(self, message: str) -> None: ...

    def request_state(self, request_id: str, state: RequestState) -> None: ...


class NoProgress:
    """The sink used when a caller gives none: stages and notes go to logging."""

    def stage(self, name: str, total: float | None = None) -> None:
        log.info("stage %s", name)

    def advance(self, name: str, amount: float = 1) -> None:
        return None

    def note(self, message: str) -> None:
        log.info("%s", message)

    def request_state(self, request_id: str, state: RequestState) -> None:
        return None
