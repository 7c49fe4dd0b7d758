"""reelscore as a step in OTIO pipelines: the hook script's and the media linker's logic.

The OTIO plugin package (``otio_adapters/reelscore_otio``) holds two tiny modules that OTIO loads
by path; each only checks whether reelscore was asked for and then calls in here:

``reelscore_score`` (hook script, attached to ``pre_adapter_write``)
    Scores the timeline that is about to be written and hands the scored copy to the writing
    adapter, e.g. ``otioconvert -i cut.xml -o scored.otio -H reelscore.provider=local``. Settings
    come from the hook argument map's ``reelscore.*`` keys (:data:`HOOK_KEYS`); without any such
    key the hook returns its input untouched (it never even imports this module).

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
from pathlib import Path
from typing import Any

import opentimelineio as otio

from reelscore.errors import InputError, ReelscoreError

log = logging.getLogger(__name__)

PREFIX = "reelscore."

# Hook argument keys (without the "reelscore." prefix) and what they mean.
HOOK_KEYS: dict[str, str] = {
    "provider": "local (default), elevenlabs or mountsea",
    "work_dir": "job folder (default: OUTPUT.reelscore beside the written file)",
    "source": "path of the edit being converted (relative media paths; the manifest)",
    "rate": "frame rate of the timeline, e.g. 25 or 30000/1001 (default: from the timeline)",
    "scenes": "cuts | markers | clips",
    "scene_track": "video track for scenes=clips (1 = V1)",
    "min_scene": "merge scenes shorter than this many seconds (default 2)",
    "range": "'IN OUT' record timecodes to score (OUT exclusive)",
    "range_in": "record timecode to start scoring at",
    "range_out": "record timecode to stop scoring at (exclusive)",
    "media_root": "folder(s) to relink media from by file name (list, or os.pathsep-separated)",
    "description": "what the music should be",
    "tags": "style tags (list, or comma-separated)",
    "model": "the service's model id",
    "output_format": "the service's output format",
    "seed": "generation seed",
    "target_lufs": "integrated loudness target (default -14)",
    "true_peak": "true-peak ceiling in dBTP (default -1)",
    "track_name": "name of the new audio track (default Score)",
    "markers": "true: one marker per scene on the score clip",
    "base_url": "service host",
    "allow_insecure": "true: allow plain http to a non-loopback host",
    "resubmit": "true: resend a request that may already have been charged",
    "workers": "parallel renders",
}


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


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InputError(f"reelscore.{key}={value!r} is not true or false", hint="use true or false")


def _number(key: str, value: Any, kind: type = float) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InputError(f"reelscore.{key}={value!r} is not a number") from None


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


def settings_from_args(args: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(ScoreSettings, run options) from the ``reelscore.*`` hook arguments (prefix removed)."""
    from reelscore.providers import PROVIDER_NAMES, GenerationSettings
    from reelscore.settings import ScoreSettings

    unknown = sorted(set(args) - set(HOOK_KEYS))
    if unknown:
        raise InputError(
            f"unknown hook argument(s): {', '.join(PREFIX + k for k in unknown)}",
            hint="known: " + ", ".join(PREFIX + k for k in HOOK_KEYS),
        )
    provider = _text(args.get("provider", "local")) or "local"
    if provider not in PROVIDER_NAMES:
        raise InputError(f"reelscore.provider={provider!r} is not a provider",
                         hint=f"use one of: {', '.join(PROVIDER_NAMES)}")
    range_in = _text(args["range_in"]) if "range_in" in args else None
    range_out = _text(args["range_out"]) if "range_out" in args else None
    if "range" in args:
        parts = _list(args["range"], " ") if not isinstance(args["range"], str) else args["range"].split()
        if len(parts) != 2:
            raise InputError(f"reelscore.range={args['range']!r} needs two timecodes",
                             hint="e.g. -H 'reelscore.range=01:00:00:00 01:00:30:00'")
        range_in, range_out = parts
    scenes = _text(args.get("scenes", "cuts"))
    if scenes not in ("cuts", "markers", "clips"):
        raise InputError(f"reelscore.scenes={scenes!r} is not a policy", hint="use cuts, markers or clips")
    gen: dict[str, Any] = {}
    if "description" in args:
        gen["description"] = _text(args["description"])
    if "tags" in args:
        gen["tags"] = tuple(_list(args["tags"], ","))
    if "model" in args:
        gen["model_id"] = _text(args["model"])
    if "output_format" in args:
        gen["output_format"] = _text(args["output_format"])
    if "seed" in args:
        gen["seed"] = _number("seed", args["seed"], int)
    fields: dict[str, Any] = {
        "provider": provider, "scenes": scenes, "range_in": range_in, "range_out": range_out,
        "generation": GenerationSettings(**gen),
    }
    if "scene_track" in args:
        fields["scene_track"] = _number("scene_track", args["scene_track"], int)
    if "min_scene" in args:
        fields["min_scene_seconds"] = _number("min_scene", args["min_scene"])
    if "media_root" in args:
        fields["media_roots"] = [Path(p) for p in _list(args["media_root"], os.pathsep)]
    for key in ("target_lufs", "true_peak"):
        if key in args:
            fields[key] = _number(key, args[key])
    if "track_name" in args:
        fields["track_name"] = _text(args["track_name"]) or "Score"
    for key in ("markers", "resubmit"):
        if key in args:
            fields[key] = _bool(key, args[key])
    if "workers" in args:
        fields["workers"] = _number("workers", args["workers"], int)
    if "rate" in args:
        fields["rate"] = _text(args["rate"])
    try:
        settings = ScoreSettings(**fields)
    except ValueError as exc:  # pydantic
        raise InputError(f"reelscore hook arguments are not valid: {exc}") from None
    options = {
        "work_dir": Path(_text(args["work_dir"])) if "work_dir" in args else None,
        "source": Path(_text(args["source"])) if "source" in args else None,
        "base_url": _text(args["base_url"]) if "base_url" in args else None,
        "allow_insecure": _bool("allow_insecure", args.get("allow_insecure", False)),
    }
    return settings, options


def _provider_config(provider: str, options: Mapping[str, Any], resubmit: bool) -> Any:
    from reelscore.providers import ProviderConfig

    key = None
    if provider != "local":
        from reelscore.providers import secrets

        key, _where = secrets.load_api_key(provider)
    return ProviderConfig(base_url=options.get("base_url"), api_key=key,
                          allow_insecure=bool(options.get("allow_insecure")),
                          allow_resubmit=resubmit)


def _input_adapter(timeline: otio.schema.Timeline, source: Path | None) -> str:
    """The adapter the timeline came from (scene markers are read per adapter)."""
    if source is not None:
        try:
            return str(otio.adapters.from_filepath(str(source)).name)
        except Exception:
            pass
    for clip in timeline.find_clips():
        if "cmx_3600" in clip.metadata:
            return "cmx_3600"
        break
    return "otio_json"


def score_hook(in_timeline: Any, argument_map: Mapping[str, Any] | None) -> Any:
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


def _score(in_timeline: Any, args: dict[str, Any], argument_map: Mapping[str, Any]) -> Any:
    from reelscore.pipeline import score_timeline
    from reelscore.timecode import exact_rate
    from reelscore.timeline import normalise
    from reelscore.writeback import adapter_for_output, check_writable, prepared_for_adapter

    if not isinstance(in_timeline, otio.schema.Timeline):
        raise InputError(
            f"the reelscore hook scores a Timeline, not a {type(in_timeline).__name__}",
            hint="convert a file that holds one sequence",
        )
    settings, options = settings_from_args(args)
    filepath = argument_map.get("_filepath")
    out_path = Path(str(filepath)) if filepath else None
    adapter = adapter_for_output(out_path) if out_path is not None else None
    work_dir = options["work_dir"]
    if work_dir is None:
        if out_path is None:
            raise InputError("the reelscore hook needs reelscore.work_dir when no file is written",
                             hint="pass -H reelscore.work_dir=DIR")
        work_dir = out_path.parent / f"{out_path.name}.reelscore"
    source = options["source"]
    rate = exact_rate(settings.rate) if settings.rate else None
    loaded = normalise(in_timeline, path=source,
                       adapter=_input_adapter(in_timeline, source), rate=rate)
    result = score_timeline(
        loaded, settings, work_dir=work_dir,
        provider_config=_provider_config(settings.provider, options, settings.resubmit),
    )
    log.info("reelscore: scored %s-%s (%d scene(s)) into %s", result.plan.range.record_in,
             result.plan.range.record_out, len(result.plan.scenes), result.music_wav)
    if adapter is None:
        return result.timeline
    # The writing adapter is OTIO's own: an .otioz bundles every file the edit references,
    # so the score keeps an absolute path there ('reelscore score' bundles the WAV alone).
    prepared = prepared_for_adapter(result.timeline, adapter,
                                    form="url" if adapter == "otioz" else None)
    check_writable(prepared, adapter, dry_run=True)
    return prepared


# ----------------------------------------------------------------------------- media linker


@functools.lru_cache(maxsize=8)
def _resolver(roots: tuple[str, ...], edit_dir: str | None) -> Any:
    # One file-name index per set of roots for the life of the process: OTIO calls a linker
    # once per clip, and walking a media volume per clip would be far too slow.
    from reelscore.timeline import MediaResolver

    return MediaResolver(Path(edit_dir) if edit_dir else None, [Path(r) for r in roots])


def relink_clip(in_clip: otio.schema.Clip, argument_map: Mapping[str, Any] | None) -> Any:
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
