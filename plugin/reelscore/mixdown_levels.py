"""Audio levels an edit carries on its clips and tracks, as OTIO's adapters keep them.  (pure)

What each format's adapter puts in OTIO, and so what the mixdown applies:

* **FCP 7 XML** (Premiere, FCP 7, Resolve exports): a clip's ``<filter>`` "Audio Levels"
  (``effectid`` ``audiolevels``, parameter ``level``) becomes an OTIO effect whose
  ``metadata["fcp_xml"]`` holds the parameter; its ``value`` is a linear gain (1 = 0 dB). The
  constant value is applied; a level with keyframes only is applied at its *first* keyframe's
  value (volume automation is not followed). FCP 7 XML has no track level.
* **AAF** (Avid): a clip's "Audio Gain" / "Mono Audio Gain" operation group becomes an OTIO
  effect with ``metadata["AAF"]["Parameters"]["Amplitude multiplier"]`` (a rational, linear);
  constant values are applied, on clips, nested sequences and tracks alike.
* **FCPX XML**: the adapter drops ``adjust-volume``; FCPX levels are *not* read.
* **EDL, OTIO** (no standard level): unity gain.

Pan is not read from any format (stereo stays as the fold in :mod:`reelscore.mixdown` makes it).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import opentimelineio as otio

AAF_GAIN_OPERATIONS = {"audio gain", "mono audio gain", "stereo audio gain"}
AAF_GAIN_PARAMETER = "Amplitude multiplier"


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            return None
    return None


def _fcp_level(meta: Mapping[str, object]) -> float | None:
    if str(meta.get("effectid", "")).lower() != "audiolevels":
        return None
    params = meta.get("parameter")
    candidates = params if isinstance(params, list) else [params]
    for param in candidates:
        if not isinstance(param, Mapping):
            continue
        if str(param.get("parameterid", "")).lower() != "level":
            continue
        value = _number(param.get("value"))
        if value is not None:
            return value
        keyframes = param.get("keyframe")
        first = keyframes[0] if isinstance(keyframes, list) and keyframes else keyframes
        if isinstance(first, Mapping):
            return _number(first.get("value"))
    return None


def _aaf_level(meta: Mapping[str, object]) -> float | None:
    operation = meta.get("Operation")
    name = operation.get("Name") if isinstance(operation, Mapping) else None
    if not isinstance(name, str) or name.strip().lower() not in AAF_GAIN_OPERATIONS:
        return None
    params = meta.get("Parameters")
    if not isinstance(params, Mapping):
        return None
    return _number(params.get(AAF_GAIN_PARAMETER))


def effect_gain(effect: otio.schema.Effect) -> float | None:
    """The linear gain of a level effect (FCP 7 XML or AAF), or None if it is no level."""
    meta = effect.metadata
    fcp = meta.get("fcp_xml")
    if isinstance(fcp, Mapping):
        level = _fcp_level(fcp)
        if level is not None:
            return level
    aaf = meta.get("AAF")
    if isinstance(aaf, Mapping):
        return _aaf_level(aaf)
    return None


def clip_gain(item: otio.core.Item) -> float:
    """The product of the level effects on *item* (1.0 when it carries none)."""
    gain = 1.0
    for effect in item.effects:
        level = effect_gain(effect)
        if level is not None:
            gain *= level
    return gain


def track_gain(track: otio.core.Item) -> float:
    """A track's own level (AAF keeps track gain as an effect on the track); 1.0 otherwise."""
    return clip_gain(track)


__all__ = ["clip_gain", "effect_gain", "track_gain"]
