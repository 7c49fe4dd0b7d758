"""Command-line options shared by ``reelscore score``/``plan``/``batch`` and ``reelscore resolve score``.

Every option that is also a configuration key defaults to None ("not given"), so the
configuration files and profiles (:mod:`reelscore.config`) fill in what the command line leaves
out; the help text names the built-in default.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer

PROVIDER_HELP = ("auto | local (offline sketch engine) | elevenlabs | mountsea; default auto: "
                 "elevenlabs if an API key is configured, else local")

# Configuration
CONFIG = typer.Option(None, "--config", help="configuration file over ./reelscore.toml and "
                      "~/.config/reelscore/config.toml (default: $REELSCORE_CONFIG)")
PROFILE = typer.Option(None, "--profile", help="use [profile.NAME] of the configuration")
# Provider and connection
PROVIDER = typer.Option(None, "--provider", help=PROVIDER_HELP)
BASE_URL = typer.Option(None, "--base-url", help="service base URL (data residency, proxies)")
CONNECT_TIMEOUT = typer.Option(None, "--connect-timeout", help="seconds (default 10)")
READ_TIMEOUT = typer.Option(None, "--read-timeout", help="seconds to wait for the music (default 900)")
MAX_RETRIES = typer.Option(None, "--max-retries", help="retries of a request the service cannot have started (default 4)")
ALLOW_INSECURE = typer.Option(None, "--allow-insecure/--no-allow-insecure", help="allow http:// to non-loopback hosts")
RESUBMIT = typer.Option(None, "--resubmit", help="resend a request that may already have been charged")
# The music
DESCRIPTION = typer.Option(None, "--description", help="brief for the music")
TAG = typer.Option(None, "--tag", help="style tag (repeatable, up to 10)")
MODEL = typer.Option(None, "--model", help="service model id (default: the service's own)")
OUTPUT_FORMAT = typer.Option(None, "--output-format", help="service output format (default mp3_44100_128; always sent)")
SEED = typer.Option(None, "--seed", help="seed of the local engine (same seed, same audio); sent to the service only with --method compose")
SIGN_C2PA = typer.Option(None, "--sign-c2pa/--no-sign-c2pa", help="ask for a C2PA-signed MP3 (the signed original is kept beside the normalised WAV)")
ADD_SFX = typer.Option(None, "--add-sfx/--no-add-sfx", help="ask the service for sound effects cued from the picture")
SEPARATE_TRACKS = typer.Option(None, "--separate-tracks/--no-separate-tracks", help="music and SFX as separate stems, on two new tracks")
USE_AUDIO = typer.Option(None, "--use-audio-as-reference/--no-use-audio-as-reference", help="send each clip with the mixdown of its range (the edit's enabled audio tracks; with --reference, the movie's own sound) as stereo AAC, and ask the service to listen to it")
# Scenes and range
SCENES = typer.Option(None, "--scenes", help="cuts | markers | clips (default cuts)")
SCENE_TRACK = typer.Option(None, "--scene-track", help="video track for --scenes clips (1 = V1)")
MIN_SCENE = typer.Option(None, "--min-scene", help="merge scenes shorter than this (seconds, default 2)")
RANGE = typer.Option(None, "--range", help="score only IN OUT (record timecode, OUT exclusive)")
RATE = typer.Option(None, "--rate", help="frame rate of an EDL (24, 25, 30000/1001 ...)")
MEDIA_ROOT = typer.Option(None, "--media-root", help="relink moved media by file name under DIR (repeatable)")
TIMECODE = typer.Option(None, "--timecode", help="df | ndf: drop-frame or not for timecodes shown and typed (default: the edit's own)")
# Loudness and the new track
LOUDNESS = typer.Option(None, "--loudness", help="streaming (-14 LUFS / -1 dBTP, default) | ebu-r128 (-23 / -1) | atsc-a85 (-24 / -2); --target-lufs/--true-peak win")
TARGET_LUFS = typer.Option(None, "--target-lufs", help="integrated loudness target (LUFS)")
TRUE_PEAK = typer.Option(None, "--true-peak", help="true-peak ceiling (dBTP, measured 8x oversampled)")
TRACK_NAME = typer.Option(None, "--track-name", help="name of the new audio track (default Score)")
MARKERS = typer.Option(None, "--markers/--no-markers", help="one marker per scene")
# Work
WORKERS = typer.Option(None, "--workers", help="parallel renders (default: cores)")
CONCURRENCY = typer.Option(None, "--concurrency", help="requests in flight at the service at once (default 2)")
ALLOW_REMOTE_MEDIA = typer.Option(None, "--allow-remote-media/--no-allow-remote-media", help="download media the edit names by http(s) URL (otherwise such clips are offline)")
REFERENCE = typer.Option(None, "--reference", help="cut every scene from this flattened movie of the edit instead of the sources (fast; sources may be offline)")
REFERENCE_START = typer.Option(None, "--reference-start", help="record timecode of the reference movie's first frame (default: its own timecode, else 00:00:00:00)")
# Recut: update a previous score for a new version of the cut (per edit, never a site setting)
PREVIOUS = typer.Option(None, "--previous", help="the previous scored edit (or its job folder): update its score for this cut, keeping the music of what did not change and generating only the new stretches (--dry-run: print the change list and what would be sent)")
REGENERATE_TRIMMED = typer.Option(None, "--regenerate-trimmed", help="with --previous: count trimmed scenes as new (generate them afresh)")
JSON = typer.Option(False, "--json", help="print the result as JSON")
DEBUG = typer.Option(False, "--debug", help="show tracebacks and every library's logs")
# --method compose (issue 13)
METHOD = typer.Option(None, "--method", help="video (video-to-music from rendered clips, default) | compose (a composition plan built from the cut: one section per scene, no clips rendered)")
COMPOSITION = typer.Option(None, "--composition", help="plan: write the composition plan(s) here; score: compose from this reviewed plan (checked against the edit first)")
BRIEF = typer.Option(None, "--brief", help="per-scene brief for --method compose (CSV or TOML: scene or record timecode -> styles, name)")
DRAFT_PLAN = typer.Option(None, "--draft-plan/--no-draft-plan", help="with --method compose: the service's free plan endpoint drafts the styles from the cut's plan; names and durations stay the cut's (elevenlabs, mountsea)")
# --duck (issue 15)
DUCK = typer.Option(None, "--duck/--no-duck", help="duck the score under the dialogue tracks (the unducked score stays beside it, muted; in FCP 7 XML and FCPX it is placed with the ducking as volume keys instead)")
DIALOGUE_TRACK = typer.Option(None, "--dialogue-track", help="audio track driving --duck, by name or number (A1 = 1; repeatable; default: the tracks named DIA, DX, Dialogue or VO)")
DUCK_THRESHOLD = typer.Option(None, "--duck-threshold", help="dialogue level that ducks (dBFS RMS over 10 ms, default -40)")
DUCK_ATTACK = typer.Option(None, "--duck-attack", help="ms to reach the full depth after speech starts (default 50)")
DUCK_RELEASE = typer.Option(None, "--duck-release", help="ms to return to full level (default 500)")
DUCK_HOLD = typer.Option(None, "--duck-hold", help="ms the score stays down after speech stops (default 250)")
DUCK_DEPTH = typer.Option(None, "--duck-depth", help="how far the score goes down under dialogue (dB, default -10)")
# Review movie (issue 15)
SCORE_LEVEL = typer.Option(0.0, "--score-level", help="level of the score in the review movie's mix (dB, default 0)")
# Batches and farm stages (issue 17)
STOP_AFTER = typer.Option(None, "--stop-after", help="render | generate: stop once every clip is rendered (no key needed) or every answer is stored; rerun without it to finish (the job folder resumes)")
# Dask distributed batches (issue 17, docs/dask.md)
SCHEDULER = typer.Option(None, "--scheduler", help="run the batch on the Dask cluster at tcp://HOST:8786 (needs reelscore[dask]; config: scheduler)")
PATH_MAP = typer.Option(None, "--path-map", help="SOURCE=TARGET, repeatable: paths as this machine (or the edit's) sees them -> as the workers see them, e.g. /Volumes/RAID=/mnt/raid (config: path_map)")


# ------------------------------------------------------------------ setting options as groups

@dataclass(frozen=True)
class SettingOption:
    """A command-line option that is a setting: parameter *name*, its type, the typer option,
    and *key*, its name in :func:`reelscore.settings.front_end_values`."""

    name: str
    annotation: Any
    option: Any
    key: str


def _o(name: str, annotation: Any, option: Any, key: str | None = None) -> SettingOption:
    return SettingOption(name, annotation, option, key or name)


SERVICE = (
    _o("provider", str | None, PROVIDER), _o("base_url", str | None, BASE_URL),
    _o("resubmit", bool | None, RESUBMIT), _o("connect_timeout", float | None, CONNECT_TIMEOUT),
    _o("read_timeout", float | None, READ_TIMEOUT), _o("max_retries", int | None, MAX_RETRIES),
    _o("allow_insecure", bool | None, ALLOW_INSECURE),
)
SCENE_OPTIONS = (
    _o("scenes", str | None, SCENES), _o("scene_track", int | None, SCENE_TRACK),
    _o("min_scene", float | None, MIN_SCENE),
    _o("media_root", list[Path] | None, MEDIA_ROOT, "media_roots"),
    _o("timecode", str | None, TIMECODE),
)
MUSIC = (
    _o("method", str | None, METHOD), _o("description", str | None, DESCRIPTION),
    _o("tag", list[str] | None, TAG, "tags"), _o("model", str | None, MODEL),
    _o("output_format", str | None, OUTPUT_FORMAT), _o("seed", int | None, SEED),
    _o("sign_c2pa", bool | None, SIGN_C2PA), _o("add_sfx", bool | None, ADD_SFX),
    _o("separate_tracks", bool | None, SEPARATE_TRACKS),
    _o("use_audio_as_reference", bool | None, USE_AUDIO),
)
DELIVERY = (
    _o("loudness", str | None, LOUDNESS), _o("target_lufs", float | None, TARGET_LUFS),
    _o("true_peak", float | None, TRUE_PEAK), _o("track_name", str | None, TRACK_NAME),
    _o("markers", bool | None, MARKERS),
)
WORK = (_o("workers", int | None, WORKERS), _o("concurrency", int | None, CONCURRENCY))
DUCKING = (
    _o("duck", bool | None, DUCK), _o("dialogue_track", list[str] | None, DIALOGUE_TRACK),
    _o("duck_threshold", float | None, DUCK_THRESHOLD),
    _o("duck_attack", float | None, DUCK_ATTACK), _o("duck_release", float | None, DUCK_RELEASE),
    _o("duck_hold", float | None, DUCK_HOLD), _o("duck_depth", float | None, DUCK_DEPTH),
)
# The service drafts the styles of --method compose.
DRAFT = (_o("draft_plan", bool | None, DRAFT_PLAN),)
# What ``score``, ``resolve score`` and ``batch`` all take.
SCORING = SERVICE + SCENE_OPTIONS + MUSIC + DRAFT + DELIVERY + WORK + DUCKING
# One edit's: compose inputs and a recut (``score`` and ``resolve score``, not ``batch``,
# whose jobs file carries them per edit).
COMPOSE = (_o("composition", Path | None, COMPOSITION), _o("brief", Path | None, BRIEF))
RECUT = (
    _o("previous", Path | None, PREVIOUS),
    _o("regenerate_trimmed", bool | None, REGENERATE_TRIMMED),
)
# Edit files (not a live Resolve timeline).
FILES = (
    _o("rate", str | None, RATE),
    _o("allow_remote_media", bool | None, ALLOW_REMOTE_MEDIA),
)

_Command = TypeVar("_Command", bound=Callable[..., None])


def with_settings(*groups: Sequence[SettingOption]) -> Callable[[_Command], _Command]:
    """Give a typer command the setting options of *groups*, before its ``debug`` option.

    The command declares a keyword-only parameter ``flags`` instead of those options and receives
    their values (None = not given) in it, keyed as :func:`reelscore.settings.front_end_values`
    takes them: one list of options serves ``score``, ``resolve score`` and ``batch``.
    """
    options = [o for group in groups for o in group]

    def decorate(func: _Command) -> _Command:
        sig = inspect.signature(func, eval_str=True)  # typer reads these types, not strings
        own = [p for p in sig.parameters.values() if p.name != "flags"]
        at = next((i for i, p in enumerate(own) if p.name == "debug"), len(own))
        added = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.option,
                                   annotation=o.annotation) for o in options]
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(func)
        def command(**given: Any) -> None:
            values = {o.key: given.pop(o.name) for o in options}
            func(**given, flags=values)

        command.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=own[:at] + added + own[at:])
        command.__annotations__ = {
            **{k: v for k, v in func.__annotations__.items() if k != "flags"},
            **{o.name: o.annotation for o in options}}
        return command  # type: ignore[return-value]

    return decorate
