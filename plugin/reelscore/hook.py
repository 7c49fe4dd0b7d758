"""reelscore as a step in OTIO pipelines: the hook script's and the media linker's logic.

The OTIO plugin package (``otio_adapters/reelscore_otio``) holds three tiny modules that OTIO loads
by path; each only checks whether reelscore was asked for and then calls in here:

``reelscore_score`` (hook script, attached to ``pre_adapter_write``)
    Scores the timeline that is about to be written and hands the scored copy to the writing
    adapter, e.g. ``otioconvert -i cut.xml -o scored.otio -H reelscore.provider=local``. Settings
    come from the hook argument map's ``reelscore.*`` keys (:data:`HOOK_KEYS`); without any such
    key the hook returns its input untouched (it never even imports this module).

``reelscore_keys`` (hook script, attached to ``post_adapter_write``)
    Adds ``--duck``'s volume keys to an FCPX file after OTIO's writer wrote it (that writer has
    no place for them; :func:`keys_hook`).

``reelscore_relink`` (media linker, never the default)
    Relinks a clip's media to a file of the same name under the ``media_root`` folders of its
    argument map: ``otioconvert ... -m reelscore_relink -M media_root=/Volumes/RAID/footage``.
    Without a ``media_root`` it links nothing.

Errors reach OTIO as :class:`opentimelineio.exceptions.OTIOError` carrying reelscore's one-line
message and hint, so ``otioconvert`` prints ``ERROR: ...`` and exits 1.
"""

from __future__ import annotations

import ast
import copy
import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import opentimelineio as otio
from opentimelineio.core import SerializableObject

from reelscore.errors import InputError, ReelscoreError
from reelscore.settings import BuiltSettings
from reelscore.writeback.automation import POST_WRITTEN_AUTOMATION

if TYPE_CHECKING:
    from reelscore.timeline import MediaResolver

log = logging.getLogger(__name__)

PREFIX = "reelscore."

# Hook argument keys (without the "reelscore." prefix) and what they mean. Every key of the
# configuration file (reelscore.config) is also a hook key; see README "Configuration".
HOOK_KEYS: dict[str, str] = {
    "config": "configuration file over ./reelscore.toml and ~/.config/reelscore/config.toml",
    "profile": "use [profile.NAME] of the configuration",
    "provider": "local (the hook's default), elevenlabs, mountsea or auto",
    "work_dir": "job folder (default: OUTPUT.reelscore beside the written file)",
    "source": "path of the edit being converted (relative media paths; the manifest)",
    "rate": "frame rate of the timeline, e.g. 25 or 30000/1001 (default: from the timeline)",
    "timecode": "df | ndf: drop-frame or not for timecodes (default: the timeline's own)",
    "scenes": "cuts | markers | clips",
    "scene_track": "video track for scenes=clips (1 = V1)",
    "min_scene": "merge scenes shorter than this many seconds (default 2)",
    "range": "'IN OUT' record timecodes to score (OUT exclusive)",
    "range_in": "record timecode to start scoring at",
    "range_out": "record timecode to stop scoring at (exclusive)",
    "media_root": "folder(s) to relink media from by file name (list, or os.pathsep-separated)",
    "allow_remote_media": "true: download media the edit names by http(s) URL",
    "description": "what the music should be",
    "tags": "style tags (list, or comma-separated)",
    "model": "the service's model id",
    "output_format": "the service's output format",
    "seed": "seed of the local engine (sent to a service only with method compose)",
    "sign_c2pa": "true: ask for a C2PA-signed MP3",
    "add_sfx": "true: ask for sound effects",
    "separate_tracks": "true: music and SFX as separate stems",
    "use_audio_as_reference": "true: send each clip with the mixdown of its range (stereo AAC) and ask the service to listen to it",
    "loudness": "streaming (-14/-1, default) | ebu-r128 (-23/-1) | atsc-a85 (-24/-2)",
    "target_lufs": "integrated loudness target (wins over loudness)",
    "true_peak": "true-peak ceiling in dBTP (wins over loudness)",
    "track_name": "name of the new audio track (default Score)",
    "markers": "true: one marker per scene on the score clip",
    "base_url": "service host",
    "connect_timeout": "seconds to connect (default 10)",
    "read_timeout": "seconds to wait for the music (default 900)",
    "max_retries": "retries of a request the service cannot have started (default 4)",
    "allow_insecure": "true: allow plain http to a non-loopback host",
    "resubmit": "true: resend a request that may already have been charged",
    "workers": "parallel renders",
    "concurrency": "requests in flight at the service at once (default 2)",
    "provider.elevenlabs.enable_logging": "false: ElevenLabs zero-retention mode",
    "provider.elevenlabs.max_description": "description length cap",
    "provider.mountsea.poll_interval_s": "seconds between task polls",
    "provider.mountsea.deadline_s": "overall wait for a task (seconds)",
    "provider.mountsea.max_description": "description length cap",
    "uploader.type": "s3 (the only type)",
    "uploader.bucket": "bucket for the proxy route's temporary clips",
    "uploader.endpoint_url": "S3-compatible endpoint (default: AWS)",
    "uploader.region": "bucket region",
    "uploader.prefix": "key prefix of the uploads",
    "uploader.expires_s": "lifetime of the presigned URLs (seconds)",
    "uploader.keep": "true: keep the uploaded clips after the job",
    "uploader.addressing_style": "auto | path | virtual",
    # --method compose (issue 13)
    "method": "video (default) | compose: a composition plan built from the cut, one section per scene",
    "composition": "a reviewed composition plan file to compose from (checked against the edit)",
    "brief": "per-scene brief for method compose (CSV or TOML)",
    # the music cue sheet's fields (issue 16; [cuesheet] in the configuration, docs/cuesheet.md)
    "cuesheet.composer": "composer(s) on every cue (names, society numbers)",
    "cuesheet.publisher": "publisher(s) on every cue",
    "cuesheet.rights": "the rights granted (free text)",
    "cuesheet.programme": "programme title (default: the timeline's name)",
    "cuesheet.episode": "episode number or name",
    "cuesheet.production": "production number or company",
    "cuesheet.usage": "cue usage code: BI (default), BV, VI, VV, MT, ET",
    # --previous (issue 14)
    "previous": "the previous scored edit or its job folder: update that score for this cut "
                "(kept music copied, only new stretches generated)",
    "regenerate_trimmed": "true: with previous, generate trimmed scenes afresh",
    "draft_plan": "true: the service's free plan endpoint drafts the styles (method compose)",
    # --duck (issue 15)
    "duck": "true: duck the score under the dialogue (the unducked score stays beside it, muted; "
            "in FCP 7 XML and FCPX it is placed with the ducking as volume keys instead)",
    "dialogue_track": "audio track(s) driving duck, names or numbers (list, or comma-separated; default DIA, DX, Dialogue, VO)",
    "duck_threshold": "dialogue level that ducks (dBFS, default -40)",
    "duck_attack": "ms to full depth after speech starts (default 50)",
    "duck_release": "ms back to full level (default 500)",
    "duck_hold": "ms the score stays down after speech stops (default 250)",
    "duck_depth": "dB the score goes down under dialogue (default -10)",
}
_LISTS = {"tags": ",", "media_root": os.pathsep, "dialogue_track": ","}
_RUN_ONLY = ("config", "profile", "work_dir", "source", "range")


@dataclass(frozen=True)
class HookRun:
    """What the hook arguments say beyond the settings: where the job goes, what was converted."""

    built: BuiltSettings
    work_dir: Path | None
    source: Path | None


def _to_otio_error(exc: ReelscoreError) -> otio.exceptions.OTIOError:
    return otio.exceptions.OTIOError(f"reelscore: {exc}")


def reelscore_args(argument_map: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``reelscore.*`` entries of a hook argument map, without the prefix."""
    if not argument_map:
        return {}
    return {str(k)[len(PREFIX):]: v for k, v in argument_map.items()
            if isinstance(k, str) and k.startswith(PREFIX)}


def _text(value: Any) -> str:
    return str(value).strip()


def _list(value: Any, sep: str) -> list[str]:
    if isinstance(value, list | tuple):
        return [_text(v) for v in value if _text(v)]
    text = _text(value)
    if text.startswith("[") or text.startswith("("):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, list | tuple):
            return [_text(v) for v in parsed if _text(v)]
    return [p.strip() for p in text.split(sep) if p.strip()]


def settings_from_args(args: Mapping[str, Any]) -> HookRun:
    """Settings and run options from the ``reelscore.*`` hook arguments (prefix removed),
    over the configuration files (``reelscore.config`` / ``reelscore.profile`` choose them)."""
    from reelscore.config import load_config
    from reelscore.settings import build_settings, front_end_values

    unknown = sorted(set(args) - set(HOOK_KEYS))
    if unknown:
        raise InputError(
            f"unknown hook argument(s): {', '.join(PREFIX + k for k in unknown)}",
            hint="known: " + ", ".join(PREFIX + k for k in HOOK_KEYS),
        )
    given: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in args.items():
        if key in _RUN_ONLY:
            continue
        if key in _LISTS:
            value = _list(value, _LISTS[key])
        if key.startswith("provider."):
            _, name, option = key.split(".")
            sections.setdefault("provider_options", {}).setdefault(name, {})[option] = value
        elif key.startswith("uploader."):
            sections.setdefault("uploader", {})[key.split(".", 1)[1]] = value
        elif key.startswith("cuesheet."):
            sections.setdefault("cuesheet", {})[key.split(".", 1)[1]] = _text(value)
        else:
            given["media_roots" if key == "media_root" else key] = value
    if "range" in args:
        raw = args["range"]
        parts = raw.split() if isinstance(raw, str) else _list(raw, " ")
        if len(parts) != 2:
            raise InputError(f"reelscore.range={raw!r} needs two timecodes",
                             hint="e.g. -H 'reelscore.range=01:00:00:00 01:00:30:00'")
        given["range_in"], given["range_out"] = parts
    values = front_end_values("hook", **given, **sections)
    config = load_config(Path(_text(args["config"])) if "config" in args else None,
                         _text(args["profile"]) if "profile" in args else None)
    built = build_settings(config, values, origin="hook", default_provider="local")
    return HookRun(built,
                   work_dir=Path(_text(args["work_dir"])) if "work_dir" in args else None,
                   source=Path(_text(args["source"])) if "source" in args else None)


def _input_adapter(timeline: otio.schema.Timeline, source: Path | None) -> str:
    """The adapter the timeline came from (scene markers are read per adapter)."""
    if source is not None:
        try:
            return str(otio.adapters.from_filepath(str(source)).name)
        except otio.exceptions.OTIOError:
            pass  # no adapter for that extension: fall back to what the clips say
    for clip in timeline.find_clips():
        if "cmx_3600" in clip.metadata:
            return "cmx_3600"
        break
    return "otio_json"


def score_hook(in_timeline: SerializableObject,
               argument_map: Mapping[str, Any] | None) -> SerializableObject:
    """Score *in_timeline* as the hook arguments say; return what the adapter should write.

    A strict no-op (the very object passed in) when the map has no ``reelscore.*`` key.
    """
    args = reelscore_args(argument_map)
    if not args:
        return in_timeline
    try:
        return _score(in_timeline, args, argument_map or {})
    except ReelscoreError as exc:
        raise _to_otio_error(exc) from exc


def _score(in_timeline: SerializableObject, args: dict[str, Any],
           argument_map: Mapping[str, Any]) -> otio.schema.Timeline:
    from reelscore.pipeline import score_timeline
    from reelscore.timecode import exact_rate
    from reelscore.timeline import normalise
    from reelscore.writeback import adapter_for_output, check_writable, prepared_for_adapter

    if not isinstance(in_timeline, otio.schema.Timeline):
        raise InputError(
            f"the reelscore hook scores a Timeline, not a {type(in_timeline).__name__}",
            hint="convert a file that holds one sequence",
        )
    run = settings_from_args(args)
    settings = run.built.settings
    filepath = argument_map.get("_filepath")
    out_path = Path(str(filepath)) if filepath else None
    adapter = adapter_for_output(out_path) if out_path is not None else None
    work_dir = run.work_dir
    if work_dir is None:
        if out_path is None:
            raise InputError("the reelscore hook needs reelscore.work_dir when no file is written",
                             hint="pass -H reelscore.work_dir=DIR")
        work_dir = out_path.parent / f"{out_path.name}.reelscore"
    source = run.source
    rate = exact_rate(settings.rate) if settings.rate else None
    loaded = normalise(in_timeline, path=source,
                       adapter=_input_adapter(in_timeline, source), rate=rate)
    result = score_timeline(
        loaded, settings, work_dir=work_dir,
        provider_config=run.built.provider_config, written_as=out_path,
    )
    log.info("reelscore: scored %s-%s (%d scene(s)) into %s", result.plan.range.record_in,
             result.plan.range.record_out, len(result.plan.scenes), result.music_wav)
    if adapter is None:
        return result.timeline
    # The writing adapter is OTIO's own: an .otioz bundles every file the edit references,
    # so the score keeps an absolute path there ('reelscore score' bundles the WAV alone).
    # FCPX: the unducked score goes in with its keys in the metadata; reelscore_keys (after the
    # write) adds them to the file, which OTIO's FCPX writer cannot.
    prepared = prepared_for_adapter(result.timeline, adapter,
                                    form="url" if adapter == "otioz" else None,
                                    post_write=adapter in POST_WRITTEN_AUTOMATION)
    check_writable(prepared, adapter, dry_run=True)
    return prepared


def keys_hook(in_timeline: SerializableObject,
              argument_map: Mapping[str, Any] | None) -> SerializableObject:
    """After OTIO wrote *in_timeline* (what :func:`score_hook` returned): add ``--duck``'s
    volume keys to the file where OTIO's writer could not (FCPX). Returns *in_timeline*.

    If that fails the written file is removed: it would play the unducked score at full level.
    """
    from reelscore.timeline import timeline_rate
    from reelscore.writeback import adapter_for_output
    from reelscore.writeback.automation import write_fcpx_keys

    filepath = (argument_map or {}).get("_filepath")
    if (not reelscore_args(argument_map) or not filepath
            or not isinstance(in_timeline, otio.schema.Timeline)):
        return in_timeline
    path = Path(str(filepath))
    try:
        if adapter_for_output(path) in POST_WRITTEN_AUTOMATION:
            write_fcpx_keys(path, in_timeline, timeline_rate(in_timeline))
    except ReelscoreError as exc:
        path.unlink(missing_ok=True)
        raise _to_otio_error(exc) from exc
    return in_timeline


# ----------------------------------------------------------------------------- media linker


@functools.lru_cache(maxsize=8)
def _resolver(roots: tuple[str, ...], edit_dir: str | None) -> MediaResolver:
    # One file-name index per set of roots for the life of the process: OTIO calls a linker
    # once per clip, and walking a media volume per clip would be far too slow.
    from reelscore.timeline import MediaResolver

    return MediaResolver(Path(edit_dir) if edit_dir else None, [Path(r) for r in roots])


def relink_clip(in_clip: otio.schema.Clip,
                argument_map: Mapping[str, Any] | None) -> otio.schema.ExternalReference | None:
    """A new media reference for *in_clip* under the ``media_root`` folders, or None (keep).

    Keys: ``media_root`` (list, or os.pathsep-separated; ``reelscore.media_root`` also works),
    ``edit_dir`` (base of relative paths). External and missing references are relinked by file
    name (missing ones by clip name, reel and EDL comments); the new target_url takes the form of
    the old one (a file:// URL stays a URL, a plain path stays a path), and the old target_url
    is kept in ``metadata["reelscore"]["relinked_from"]``. References that are online where they
    point, generators and image sequences are left alone.
    """
    args = dict(argument_map or {})
    raw = args.get("media_root", args.get(PREFIX + "media_root"))
    if not raw:
        return None
    ref = in_clip.media_reference
    if not isinstance(ref, otio.schema.ExternalReference | otio.schema.MissingReference):
        return None
    from reelscore.writeback import media_url

    roots = tuple(str(Path(r).absolute()) for r in _list(raw, os.pathsep))
    edit_dir = args.get("edit_dir")
    try:
        resolver = _resolver(roots, str(edit_dir) if edit_dir else None)
        lookup = resolver.resolve_clip(in_clip)
    except ReelscoreError as exc:
        raise _to_otio_error(exc) from exc
    if lookup.path is None:
        log.info("reelscore_relink: no media found for clip %r", in_clip.name)
        return None
    old_url = ref.target_url if isinstance(ref, otio.schema.ExternalReference) else ""
    if old_url and lookup.tried and lookup.tried[-1] == str(lookup.path):
        return None  # online where it points (the resolver stops at the first file it finds)
    form = "url" if (not old_url or old_url.lower().startswith("file:")) else "path"
    new = otio.schema.ExternalReference(
        target_url=media_url(lookup.path, form),
        available_range=ref.available_range,
        available_image_bounds=ref.available_image_bounds,
    )
    new.name = ref.name
    new.metadata.update(copy.deepcopy(dict(ref.metadata)))
    new.metadata["reelscore"] = {"relinked_from": old_url or f"missing: {in_clip.name}"}
    return new


__all__ = ["HOOK_KEYS", "PREFIX", "reelscore_args", "relink_clip", "score_hook",
           "settings_from_args"]
