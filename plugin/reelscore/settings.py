"""What a run can be told (``ScoreSettings``), how every front end builds it
(:func:`build_settings`) and where a run reports progress (``ProgressSink``).

Every front end (CLI ``score``/``plan``, OTIO hook, Resolve dialog and ``reelscore resolve
score``) hands :func:`build_settings` the configuration layers (:mod:`reelscore.config`) and its
own values (:class:`FrontEndValues`); the pipeline only reads the result. ``ScoreSettings`` is
serialised into the manifest, so it must never hold secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelscore.config import (
    ConfigLayer,
    CueSheetSection,
    EffectiveConfig,
    ProfileTable,
    TimecodeMode,
    merge_layers,
)
from reelscore.errors import InputError
from reelscore.plan import PlanLimits
from reelscore.providers.base import GenerationSettings, ProviderConfig
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
    # Recut (--previous OLD, per edit, never a site setting): the previous scored edit or its job
    # folder; --regenerate-trimmed scores trimmed scenes afresh (see reelscore.recut_previous).
    previous: Path | None = None
    regenerate_trimmed: bool = False
    # Timecode shown and typed: the edit's own drop-frame flag unless overridden (--timecode).
    timecode: TimecodeMode | None = None
    # Requests in flight at the service at once (render of the next overlaps generation).
    concurrency: int = Field(default=2, ge=1, le=16)
    # Cue sheet fields (``[cuesheet]`` in the configuration): written into every job's cues.csv.
    cuesheet: CueSheetSection = Field(default_factory=CueSheetSection)

    # --method compose: the music is composed from composition plans built from the cut (or a
    # reviewed plan file, --composition) with an optional per-scene brief (--brief); no clips.
    method: Literal["video", "compose"] = "video"
    composition: Path | None = None
    brief: Path | None = None
    # --draft-plan: styles drafted by the service's free plan endpoint from the cut's plan
    draft_plan: bool = False

    # --duck (issue 15): the score ducked under the dialogue tracks (reelscore.ducking); empty
    # dialogue_track = the tracks named DIA, DX, Dialogue or VO.
    duck: bool = False
    dialogue_track: list[str] = Field(default_factory=list)
    duck_threshold: float = Field(default=-40.0, ge=-90, lt=0)  # dBFS
    duck_attack: float = Field(default=50.0, gt=0, le=5000)  # ms
    duck_release: float = Field(default=500.0, gt=0, le=10000)  # ms
    duck_hold: float = Field(default=250.0, ge=0, le=10000)  # ms
    duck_depth: float = Field(default=-10.0, ge=-60, lt=0)  # dB

    # --path-map SOURCE=TARGET (reelscore.pathmap): media paths as the machine that made the edit
    # (or submitted the batch) saw them -> this machine's; site policy, per profile.
    path_map: list[str] = Field(default_factory=list)

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


# ------------------------------------------------------------------------- the one builder

Origin = Literal["flag", "hook", "dialog"]


class FrontEndValues(ProfileTable):
    """What a front end was told (None = not given): the site settings and sections of
    :mod:`reelscore.config` plus the per-edit values only a front end gives."""

    range_in: str | None = None
    range_out: str | None = None
    rate: str | None = None
    reference: Path | None = None
    reference_start: str | None = None
    resubmit: bool | None = None
    # --method compose: a reviewed plan file and a per-scene brief (per edit, never site policy)
    composition: Path | None = None
    brief: Path | None = None
    # recut (per edit)
    previous: Path | None = None
    regenerate_trimmed: bool | None = None


@dataclass(frozen=True)
class BuiltSettings:
    settings: ScoreSettings
    provider_config: ProviderConfig
    sources: dict[str, str]  # every key set by a file, profile or the front end -> where from


def label(origin: Origin, key: str) -> str:
    """How the user typed *key* in this front end (for messages)."""
    if origin == "hook":
        return f"reelscore.{key}"
    if origin == "dialog":
        return f"the dialog's {key.replace('_', ' ')} field"
    flag = {"media_roots": "media-root", "tags": "tag"}.get(key, key.replace("_", "-"))
    return f"--{flag}"


def front_end_values(origin: Origin, **given: Any) -> FrontEndValues:
    """:class:`FrontEndValues` from keyword values (None = not given), errors in the user's terms."""
    from reelscore.providers.select import check_provider_name

    if given.get("provider") is not None:
        check_provider_name(str(given["provider"]), allow_auto=True)
    try:
        return FrontEndValues.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise _input_error(exc, lambda key: label(origin, key)) from None


def _input_error(exc: ValidationError, name_of: Callable[[str], str]) -> InputError:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    expected = (first.get("ctx") or {}).get("expected")
    if expected:
        hint = f"use {str(expected).replace(chr(39), '')}"
    elif first["type"].startswith("bool"):
        hint = "use true or false"
    else:
        hint = "see README Usage and Configuration for the accepted values"
    return InputError(f"{name_of(key)} {first.get('input')!r}: {first['msg']}", hint=hint)


# Front-end/config keys -> ScoreSettings / GenerationSettings / ProviderConfig fields.
_GENERATION = {"description": "description", "tags": "tags", "model": "model_id",
               "output_format": "output_format", "seed": "seed", "sign_c2pa": "sign_with_c2pa",
               "add_sfx": "add_sfx", "separate_tracks": "separate_tracks",
               "use_audio_as_reference": "use_audio_as_reference"}
_SCORE = {"scenes": "scenes", "scene_track": "scene_track", "min_scene": "min_scene_seconds",
          "range_in": "range_in", "range_out": "range_out", "rate": "rate",
          "media_roots": "media_roots", "allow_remote_media": "allow_remote_media",
          "target_lufs": "target_lufs", "true_peak": "true_peak", "track_name": "track_name",
          "markers": "markers", "workers": "workers", "resubmit": "resubmit",
          "reference": "reference", "reference_start": "reference_start",
          "timecode": "timecode", "concurrency": "concurrency",
          "method": "method", "composition": "composition", "brief": "brief",
          "draft_plan": "draft_plan",
          "previous": "previous", "regenerate_trimmed": "regenerate_trimmed",
          "duck": "duck", "dialogue_track": "dialogue_track", "duck_threshold": "duck_threshold",
          "duck_attack": "duck_attack", "duck_release": "duck_release",
          "duck_hold": "duck_hold", "duck_depth": "duck_depth",
          "path_map": "path_map"}
_CONNECTION = {"base_url": "base_url", "connect_timeout": "connect_timeout_s",
               "read_timeout": "read_timeout_s", "max_retries": "max_retries",
               "allow_insecure": "allow_insecure"}


def provider_options(provider: str, values: dict[str, Any]) -> dict[str, Any]:
    """``ProviderConfig.options`` for *provider* from the flat configuration values."""
    prefix = f"provider.{provider}."
    options = {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}
    if provider == "mountsea":
        uploader = {k[len("uploader."):]: v for k, v in values.items()
                    if k.startswith("uploader.")}
        if uploader:
            options["uploader"] = {"type": "s3", **uploader}
    return options


def build_settings(
    config: EffectiveConfig,
    values: FrontEndValues,
    *,
    origin: Origin = "flag",
    default_provider: str = "auto",
    load_key: bool = True,
) -> BuiltSettings:
    """The run's settings and provider configuration from the layers and the front end's values.

    Front-end values win over the configuration (see :mod:`reelscore.config` for its layers);
    a loudness preset gives the target and ceiling unless numbers are given at the same or a
    later layer. ``auto`` picks a provider (:mod:`reelscore.providers.select`). With *load_key*
    the provider's key is looked up now, so a missing key stops the run before any work.
    """
    from reelscore.providers import secrets
    from reelscore.providers.select import pick_provider

    front = ConfigLayer(origin, _flat_front(values))
    merged, sources = merge_layers([*config.layers, front])

    def where(key: str) -> str:
        src = sources.get(key, "default")
        return label(origin, key) if src == origin else f"{key} in {src}"

    provider = pick_provider(str(merged.get("provider") or default_provider))
    gen = {field: merged[key] for key, field in _GENERATION.items() if key in merged}
    if "tags" in gen:
        gen["tags"] = tuple(gen["tags"])
    fields = {field: merged[key] for key, field in _SCORE.items() if key in merged}
    connection = {field: merged[key] for key, field in _CONNECTION.items() if key in merged}
    options = provider_options(provider, merged)
    # Composing sends plans, not clips: the proxy needs somewhere to put clips only for video.
    if provider == "mountsea" and "uploader" not in options and merged.get("method") != "compose":
        raise InputError(
            "the mountsea proxy takes public URLs, so it needs an uploader for the clips and "
            "none is configured",
            hint='add to reelscore.toml: [uploader] type = "s3", bucket = "...", region = "..." '
                 "(credentials from the AWS chain); see README Configuration")
    if provider == "mountsea" and "bucket" not in options.get("uploader", {"bucket": None}):
        raise InputError(f"the [uploader] section has no bucket ({where('uploader.type')})",
                         hint='add bucket = "NAME" to the [uploader] section')
    try:
        generation = GenerationSettings(**gen)
    except ValidationError as exc:
        raise _input_error(exc, _named(_GENERATION, where), ) from None
    try:
        settings = ScoreSettings(provider=provider, generation=generation, **fields,
                                 cuesheet=cuesheet_section(merged))
    except ValidationError as exc:
        raise _input_error(exc, _named(_SCORE, where)) from None
    key = None
    if load_key and provider != "local":
        key, _where = secrets.load_api_key(provider)
    try:
        provider_config = ProviderConfig(api_key=key, allow_resubmit=settings.resubmit,
                                         options=options, **connection)
    except ValidationError as exc:
        raise _input_error(exc, _named(_CONNECTION, where)) from None
    return BuiltSettings(settings, provider_config, sources)


def cuesheet_section(values: dict[str, Any]) -> CueSheetSection:
    """The ``[cuesheet]`` fields from flat configuration values (``cuesheet.composer`` ...)."""
    return CueSheetSection(**{k[len("cuesheet."):]: v for k, v in values.items()
                              if k.startswith("cuesheet.")})


def _named(table: dict[str, str], where: Callable[[str], str]) -> Callable[[str], str]:
    """Name a model field by the key the user set it with."""
    inverse = {v: k for k, v in table.items()}
    return lambda name: where(inverse.get(name, name))


def _flat_front(values: FrontEndValues) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name in values.model_fields_set:
        value = getattr(values, name)
        if value is None:
            continue
        if isinstance(value, BaseModel):
            prefix = "provider." if name == "provider_options" else f"{name}."
            for sub, inner in value.model_dump(exclude_none=True).items():
                if isinstance(inner, dict):
                    flat.update({f"{prefix}{sub}.{k}": v for k, v in inner.items()})
                else:
                    flat[f"{prefix}{sub}"] = inner
        else:
            flat[name] = value
    return flat
