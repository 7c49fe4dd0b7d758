"""Site configuration: TOML files in layers, validated, with the source of every value.

Layers, lowest first (a later layer wins key by key)::

    defaults
    < ~/.config/reelscore/config.toml   ($XDG_CONFIG_HOME honoured)
    < ./reelscore.toml                   (the current directory)
    < --config FILE                      (or $REELSCORE_CONFIG; must exist)
    < [profile.NAME] of those files      (--profile NAME, or $REELSCORE_PROFILE)
    < the front end's own values         (flags, hook arguments, dialog fields)

A file holds the site settings (:class:`SiteSettings`, the same names as the flags), provider
options (``[provider.elevenlabs]``, ``[provider.mountsea]``; with them the provider to use is
``name`` in ``[provider]``, since TOML cannot hold both ``provider = "x"`` and ``[provider.x]``)
and the clip uploader of the proxy route (``[uploader]``); ``[profile.NAME]`` tables hold any of
those again. Per-edit values
(range, rate, reference movie, job folder, --resubmit) are flags only.

Every key is checked (pydantic, ``extra="forbid"``): an unknown key or a bad value is one
InputError naming the file, the key and what is allowed. Keys never live here: an entry that
looks like a secret (``api_key``, ``token``, ``password``, ...) is refused with where keys go.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelscore.errors import InputError
from reelscore.scenes import ScenePolicy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

ProviderChoice = Literal["auto", "local", "elevenlabs", "mountsea"]
LoudnessPreset = Literal["streaming", "ebu-r128", "atsc-a85"]
TimecodeMode = Literal["df", "ndf"]

# Integrated loudness target (LUFS) and true-peak ceiling (dBTP) of each delivery spec.
LOUDNESS_PRESETS: dict[str, tuple[float, float]] = {
    "streaming": (-14.0, -1.0),
    "ebu-r128": (-23.0, -1.0),
    "atsc-a85": (-24.0, -2.0),
}
DEFAULT_LOUDNESS: LoudnessPreset = "streaming"

KEYS_HINT = ("keys go in the environment (ELEVENLABS_API_KEY, REELSCORE_MOUNTSEA_KEY, AWS_* for "
             "S3), the credentials file (~/.config/reelscore/credentials.toml, chmod 600) or the "
             "keyring (keyring set reelscore PROVIDER)")
_SECRET_NAME = re.compile(r"(^|_)(key|secret|token|password|passwd|credentials?)($|_)|api_?key",
                          re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteSettings(_Strict):
    """Every setting a configuration file (or a profile) may hold; None = not set here."""

    provider: ProviderChoice | None = None
    base_url: str | None = None
    model: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    output_format: str | None = None
    seed: int | None = None
    sign_c2pa: bool | None = None
    add_sfx: bool | None = None
    separate_tracks: bool | None = None
    use_audio_as_reference: bool | None = None
    scenes: ScenePolicy | None = None
    scene_track: int | None = Field(default=None, ge=1)
    min_scene: float | None = Field(default=None, ge=0)
    loudness: LoudnessPreset | None = None
    target_lufs: float | None = Field(default=None, ge=-70, le=0)
    true_peak: float | None = Field(default=None, ge=-20, le=0)
    track_name: str | None = Field(default=None, min_length=1)
    markers: bool | None = None
    workers: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1, le=16)
    timecode: TimecodeMode | None = None
    media_roots: list[Path] | None = None
    allow_remote_media: bool | None = None
    connect_timeout: float | None = Field(default=None, gt=0)
    read_timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0, le=20)
    allow_insecure: bool | None = None
    # --method compose (issue 13): composition plans built from the cut instead of video-to-music
    method: Literal["video", "compose"] | None = None
    draft_plan: bool | None = None  # --draft-plan: styles drafted by the free plan endpoint
    # --duck (issue 15): the score ducked under the dialogue (limits in settings.ScoreSettings)
    duck: bool | None = None
    dialogue_track: list[str] | None = None
    duck_threshold: float | None = None
    duck_attack: float | None = None
    duck_release: float | None = None
    duck_hold: float | None = None
    duck_depth: float | None = None
    # batch on Dask (issue 17): SOURCE=TARGET path mappings (reelscore.pathmap)
    path_map: list[str] | None = None
    scheduler: str | None = None  # reelscore batch --scheduler tcp://HOST:8786


class ElevenLabsSection(_Strict):
    enable_logging: bool | None = None  # false: zero-retention mode (enterprise)
    max_description: int | None = Field(default=None, ge=1)


class MountseaSection(_Strict):
    poll_interval_s: float | None = Field(default=None, gt=0)
    deadline_s: float | None = Field(default=None, gt=0)
    max_description: int | None = Field(default=None, ge=1)


class ProviderSections(_Strict):
    elevenlabs: ElevenLabsSection = Field(default_factory=ElevenLabsSection)
    mountsea: MountseaSection = Field(default_factory=MountseaSection)


class UploaderSection(_Strict):
    """Temporary hosting of the clips for the proxy route (credentials: the AWS chain)."""

    type: Literal["s3"] | None = None
    bucket: str | None = Field(default=None, min_length=1)
    endpoint_url: str | None = None
    region: str | None = None
    prefix: str | None = None
    expires_s: int | None = Field(default=None, ge=60, le=7 * 24 * 3600)
    keep: bool | None = None
    addressing_style: Literal["auto", "path", "virtual"] | None = None


# Music cue sheet (issue 16) ---------------------------------------------------------------
# Usage codes of broadcasters' and collecting societies' cue sheets (docs/cuesheet.md).
CUE_USAGES: dict[str, str] = {
    "BI": "background instrumental", "BV": "background vocal",
    "VI": "visual instrumental", "VV": "visual vocal",
    "MT": "main title", "ET": "end title",
}
CueUsage = Literal["BI", "BV", "VI", "VV", "MT", "ET"]


class CueSheetSection(_Strict):
    """``[cuesheet]``: the rights and programme fields every cue sheet row carries."""

    composer: str | None = None
    publisher: str | None = None
    rights: str | None = None
    programme: str | None = None
    episode: str | None = None
    production: str | None = None
    usage: CueUsage | None = None


class ProfileTable(SiteSettings):
    """Settings plus sections. ``[provider.NAME]`` tables are read into ``provider_options``
    (``provider`` itself is the name of the provider to use)."""

    provider_options: ProviderSections | None = None
    uploader: UploaderSection | None = None
    cuesheet: CueSheetSection | None = None


class ConfigFileModel(ProfileTable):
    """The shape of one file: a profile's contents plus ``[profile.NAME]`` tables."""

    profile: dict[str, ProfileTable] = Field(default_factory=dict)


@dataclass(frozen=True)
class ConfigLayer:
    """One layer's values as flat dotted keys (``uploader.bucket``) and where they came from."""

    source: str
    values: dict[str, Any]


@dataclass(frozen=True)
class EffectiveConfig:
    """The configuration layers in force, lowest first, and the chosen profile."""

    layers: tuple[ConfigLayer, ...] = ()
    files: tuple[Path, ...] = ()
    profile: str | None = None

    @property
    def sources(self) -> dict[str, str]:
        """Each key set by a file or profile -> where its value came from (others: "default")."""
        return merge_layers(self.layers)[1]

    def source(self, key: str) -> str:
        """Where *key* (dotted, e.g. ``uploader.bucket``) got its value: a file, or "default"."""
        return self.sources.get(key, "default")

    def values(self) -> dict[str, Any]:
        return merge_layers(self.layers)[0]


def merge_layers(layers: tuple[ConfigLayer, ...] | list[ConfigLayer]) -> tuple[dict[str, Any], dict[str, str]]:
    """Flat values and their sources. A loudness preset sets the target and ceiling of its own
    layer; numbers given in the same or a later layer win over it."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        preset = layer.values.get("loudness")
        if preset is not None:
            lufs, peak = LOUDNESS_PRESETS[preset]
            for key, number in (("target_lufs", lufs), ("true_peak", peak)):
                values[key], sources[key] = number, f"{layer.source} (loudness {preset})"
        for key, value in layer.values.items():
            values[key], sources[key] = value, layer.source
    return values, sources


# ------------------------------------------------------------------------------ reading files


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "reelscore" / "config.toml"


def _refuse_secrets(doc: Mapping[str, Any], path: Path, prefix: str = "") -> None:
    for key, value in doc.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _refuse_secrets(value, path, dotted + ".")
        elif _SECRET_NAME.search(str(key)):
            raise InputError(f"{path}: {dotted}: keys and secrets never go in a configuration "
                             "file; remove it", hint=KEYS_HINT)


def _describe_error(exc: ValidationError, path: Path) -> InputError:
    first = exc.errors()[0]
    loc = ".".join("provider" if p == "provider_options" else str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        allowed = _allowed_at(first["loc"][:-1])
        return InputError(f"{path}: unknown key {loc!r}",
                          hint="allowed here: " + ", ".join(allowed))
    return InputError(f"{path}: {loc}: {first['msg']} (got {first.get('input')!r})",
                      hint="fix the value in that file")


def _allowed_at(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = ConfigFileModel
    parts = list(loc)
    if parts[:1] == ["profile"] and len(parts) >= 2:
        model, parts = ProfileTable, parts[2:]
    for part in parts:
        info = model.model_fields.get(str(part))
        sub = _model_of(info.annotation) if info else None
        if sub is None:
            break
        model = sub
    names = list(model.model_fields)
    if model in (ConfigFileModel, ProfileTable):
        names = [n for n in names if n != "provider_options"] + ["[provider.NAME]"]
    if model is ProviderSections:
        names = ["name", *names]
    return names


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _split_provider(table: dict[str, Any]) -> dict[str, Any]:
    """``provider = "NAME"``, or a ``[provider]`` table: ``name = "NAME"`` beside the option
    tables ``[provider.elevenlabs]``/``[provider.mountsea]`` (TOML allows only one of the two)."""
    out = dict(table)
    provider = out.get("provider")
    if isinstance(provider, Mapping):
        options = dict(provider)
        out.pop("provider")
        if "name" in options:
            out["provider"] = options.pop("name")
        out["provider_options"] = options
    return out


def _flatten(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name in model.model_fields_set:
        value = getattr(model, name)
        if name == "profile":
            continue
        key = "provider" if name == "provider_options" else name
        if isinstance(value, BaseModel):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif value is not None:
            flat[f"{prefix}{key}"] = value
    return flat


def read_config_file(path: Path) -> ConfigFileModel:
    """One validated file (InputError: unreadable, malformed TOML, unknown key, bad value, secret)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read configuration file {path}: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}",
                         hint="fix the line named (TOML: key = value, strings in quotes)") from None
    _refuse_secrets(doc, path)
    prepared = _split_provider(doc)
    if isinstance(prepared.get("profile"), Mapping):
        prepared["profile"] = {name: _split_provider(dict(table)) if isinstance(table, Mapping)
                               else table for name, table in prepared["profile"].items()}
    try:
        return ConfigFileModel.model_validate(prepared)
    except ValidationError as exc:
        raise _describe_error(exc, path) from None


def config_files(config: Path | None = None, *, cwd: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> list[Path]:
    """The files that exist, lowest first; an explicit ``--config``/$REELSCORE_CONFIG must exist."""
    env = os.environ if environ is None else environ
    explicit = config or (Path(env["REELSCORE_CONFIG"]) if env.get("REELSCORE_CONFIG") else None)
    candidates = [user_config_path(env), (cwd or Path.cwd()) / "reelscore.toml"]
    found: list[Path] = []
    for path in candidates:
        if path.is_file() and path.resolve() not in [f.resolve() for f in found]:
            found.append(path)
    if explicit is not None:
        explicit = explicit.expanduser()
        if not explicit.is_file():
            flag = "--config" if config else "$REELSCORE_CONFIG"
            raise InputError(f"configuration file not found: {explicit} ({flag})",
                             hint="check the path, or drop the option to use the default files")
        found = [f for f in found if f.resolve() != explicit.resolve()] + [explicit]
    return found


def load_config(config: Path | None = None, profile: str | None = None, *,
                cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> EffectiveConfig:
    """Read and validate every file in force and the chosen profile (nothing is written)."""
    env = os.environ if environ is None else environ
    profile = profile or env.get("REELSCORE_PROFILE") or None
    files = config_files(config, cwd=cwd, environ=env)
    layers: list[ConfigLayer] = []
    profiles: dict[str, list[ConfigLayer]] = {}
    for path in files:
        model = read_config_file(path)
        layers.append(ConfigLayer(str(path), _flatten(model)))
        for name, table in model.profile.items():
            profiles.setdefault(name, []).append(
                ConfigLayer(f"{path} [profile.{name}]", _flatten(table)))
    if profile is not None:
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            where = ", ".join(str(f) for f in files) or "no configuration file was found"
            raise InputError(f"no profile {profile!r} in the configuration ({where})",
                             hint=f"profiles defined: {known}; add a [profile.{profile}] table")
        layers += profiles[profile]
    return EffectiveConfig(tuple(layers), tuple(files), profile)
