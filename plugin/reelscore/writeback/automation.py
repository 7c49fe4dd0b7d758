"""Volume automation: ``--duck``'s ducking as level keys on the unducked score, where a format
carries them.

With ``--duck`` the scored timeline holds the ducked score (placed) and the unducked one (a muted
alternative track) whose clip carries the side chain's keys (:class:`VolumeAutomation`, under
``metadata["reelscore"]["volume_automation"]``). A format that can carry clip level keys gets the
unducked clip *with the keys* in place of the ducked one, so the editor can move them:

=========== ===========================================================================
FCP 7 XML   an ``Audio Levels`` filter on the clipitem: ``<keyframe><when>`` frames from
            the clip's first frame, ``<value>`` a linear gain (1 = 0 dB; FCP 7's Level
            parameter is linear, 3.98109 = +12 dB). OTIO's writer writes it from the clip's
            ``fcp_xml`` metadata, so the OTIO hook's FCP 7 output has it too.
FCPX XML    ``<adjust-volume><param name="amount"><keyframeAnimation>`` on the score's
            clip: ``<keyframe time="N/Ds" value="-10dB" curve="linear">`` in the clip's own
            time. OTIO's writer has no place for it: :func:`add_fcpx_volume` adds it to what
            the writer wrote (``write_edit``; after the OTIO hook's write, the
            ``post_adapter_write`` hook ``reelscore_keys`` via :func:`write_fcpx_keys`).
=========== ===========================================================================

Elsewhere the keys stay in the metadata (.otio/.otioz, with the muted alternative track) or
are dropped with the alternative (AAF, EDL: their writers drop a track's mute). Read back by
:func:`fcp7_keys` and :func:`fcpx_keys` (the verification of :mod:`reelscore.writeback.verify`).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from reelscore.errors import OutputError
from reelscore.fsutil import atomic_output
from reelscore.volume_keys import VolumeKey
from reelscore.writeback.score_track import (
    META,
    is_score_track,
    media_path,
    plain_metadata,
    points_at,
    score_clips,
)

AUTOMATION_KEY = "volume_automation"
# The adapter's own writer carries the keys (from the clip's metadata) ...
NATIVE_AUTOMATION = frozenset({"fcp_xml"})
# ... or reelscore adds them to what the writer wrote (write_edit only, not the OTIO hook).
POST_WRITTEN_AUTOMATION = frozenset({"fcpx_xml"})


def carries_automation(adapter: str, *, post_write: bool) -> bool:
    """Does *adapter*'s output get the keys (*post_write*: reelscore writes the file itself)?"""
    return adapter in NATIVE_AUTOMATION or (post_write and adapter in POST_WRITTEN_AUTOMATION)


@dataclass(frozen=True)
class VolumeAutomation:
    """Keys for an unducked score clip: placed instead of the track *replaces_track* where the
    format carries them. ``makeup_db`` is already in every key."""

    replaces_track: str
    makeup_db: float
    keys: tuple[VolumeKey, ...]

    def to_metadata(self) -> dict[str, Any]:
        return {"replaces_track": self.replaces_track, "makeup_db": self.makeup_db,
                "keys": [[k.frame, k.db] for k in self.keys]}

    @classmethod
    def of(cls, clip: otio.schema.Clip) -> VolumeAutomation | None:
        data = plain_metadata(clip.metadata.get(META, {})).get(AUTOMATION_KEY)
        if not isinstance(data, dict):
            return None
        return cls(str(data["replaces_track"]), float(data["makeup_db"]),
                   tuple(VolumeKey(int(f), float(db)) for f, db in data["keys"]))


def place_automation(timeline: otio.schema.Timeline, adapter: str) -> list[otio.schema.Clip]:
    """In place on a prepared copy: each automated unducked track takes the place of the track
    it replaces (enabled, under that name); for FCP 7 XML its keys become the clip's Audio Levels
    filter. Returns the automated clips."""
    placed: list[otio.schema.Clip] = []
    for track, clip in score_clips(timeline):
        auto = VolumeAutomation.of(clip)
        if auto is None:
            continue
        for other in [t for t in timeline.tracks
                      if t is not track and is_score_track(t) and t.name == auto.replaces_track]:
            timeline.tracks.remove(other)
        track.enabled = True
        track.name = auto.replaces_track
        if adapter == "fcp_xml":
            fcp = dict(plain_metadata(clip.metadata.get("fcp_xml", {})))
            fcp["filter"] = _fcp7_levels(auto.keys)
            clip.metadata["fcp_xml"] = fcp
        placed.append(clip)
    return placed


def automated_clips(timeline: otio.schema.Timeline) -> list[tuple[Path, VolumeAutomation]]:
    """The score clips of a prepared *timeline* placed with volume keys, by media file."""
    out: list[tuple[Path, VolumeAutomation]] = []
    for _track, clip in score_clips(timeline):
        auto = VolumeAutomation.of(clip)
        if auto is not None and isinstance(clip.media_reference, otio.schema.ExternalReference):
            out.append((media_path(clip.media_reference.target_url), auto))
    return out


# ------------------------------------------------------------------------------------ FCP 7


def _gain(db: float) -> str:
    return f"{10.0 ** (db / 20.0):.5f}"


def _fcp7_levels(keys: Sequence[VolumeKey]) -> dict[str, Any]:
    """The ``<filter>`` of an Audio Levels effect with *keys* (as Premiere and FCP 7 write it)."""
    return {"effect": {
        "name": "Audio Levels", "effectid": "audiolevels", "effectcategory": "audiolevels",
        "effecttype": "audiolevels", "mediatype": "audio",
        "parameter": {
            "parameterid": "level", "name": "Level", "valuemin": "0", "valuemax": "3.98109",
            "value": _gain(keys[0].db if keys else 0.0),
            "keyframe": [{"when": str(k.frame), "value": _gain(k.db)} for k in keys],
        },
    }}


def fcp7_keys(clip: otio.schema.Clip) -> tuple[VolumeKey, ...] | None:
    """The Audio Levels keys of a clip read back by the fcp_xml adapter (None: no such filter)."""
    for effect in clip.effects:
        fcp = plain_metadata(effect.metadata.get("fcp_xml", {}))
        if fcp.get("effectid") != "audiolevels":
            continue
        raw = (fcp.get("parameter") or {}).get("keyframe") or []
        frames = raw if isinstance(raw, list) else [raw]
        return tuple(VolumeKey(int(k["when"]), round(20 * math.log10(float(k["value"])), 3))
                     for k in frames)
    return None


# ------------------------------------------------------------------------------------- FCPX


def _fcpx_time(frame: int, rate: Fraction) -> str:
    t = Fraction(frame) / rate
    return f"{t.numerator}s" if t.denominator == 1 else f"{t.numerator}/{t.denominator}s"


def _parse_fcpx_time(text: str) -> Fraction:
    value = text.removesuffix("s")
    num, _, den = value.partition("/")
    return Fraction(int(num), int(den) if den else 1)


def _clips_using(root: ET.Element, media: Path) -> list[ET.Element]:
    """The clips in the project's sequences whose own audio is the asset of *media* (an
    ``asset-clip`` of it, or a ``clip`` holding it as the writer writes an audio track's clip:
    ``clip/gap/audio``); not the event's browser clips, not a picture clip it is connected to."""
    ids = {a.get("id") for a in root.iter("asset")
           if a.get("src") and points_at(str(a.get("src")), media)}
    return [el for seq in root.iter("sequence") for el in seq.iter()
            if (el.tag == "asset-clip" and el.get("ref") in ids)
            or (el.tag == "clip" and any(a.get("ref") in ids
                                         for a in el.findall("audio") + el.findall("gap/audio")))]


# Children of a clip that come before adjust-volume (FCPXML DTD: note, timing, video params).
_BEFORE_VOLUME = {"note", "conform-rate", "timeMap", "object-tracker", "adjust-crop",
                  "adjust-corners", "adjust-conform", "adjust-transform", "adjust-blend",
                  "adjust-stabilization", "adjust-rollingShutter", "adjust-360-transform",
                  "adjust-reorient", "adjust-orientation", "adjust-cinematic"}


def add_fcpx_volume(text: str, automated: Sequence[tuple[Path, VolumeAutomation]],
                    rate: Fraction) -> str:
    """*text* (what the fcpx_xml writer wrote) with each automated clip's keys added."""
    root = ET.fromstring(text)
    for media, auto in automated:
        clips = _clips_using(root, media)
        if not clips:
            raise OutputError(f"the FCPX writer wrote no clip for {media.name}; its volume keys "
                              "have nowhere to go",
                              hint="write .xml (FCP 7) or .otio, or report this")
        for clip in clips:
            if clip.find("adjust-volume") is not None:
                continue
            volume = ET.Element("adjust-volume")
            anim = ET.SubElement(ET.SubElement(volume, "param", {"name": "amount"}),
                                 "keyframeAnimation")
            for k in auto.keys:
                ET.SubElement(anim, "keyframe", {"time": _fcpx_time(k.frame, rate),
                                                 "value": f"{k.db:.2f}dB", "curve": "linear"})
            at = next((i for i, child in enumerate(clip) if child.tag not in _BEFORE_VOLUME),
                      len(clip))
            clip.insert(at, volume)
    ET.indent(root, space="    ")
    head = text[: text.index("<fcpxml")]
    return head + ET.tostring(root, encoding="unicode") + "\n"


def write_fcpx_keys(path: Path, timeline: otio.schema.Timeline, rate: Fraction) -> int:
    """Add the keys of *timeline*'s automated clips to the FCPX file at *path* that OTIO's
    writer wrote from it, atomically; returns how many clips got keys."""
    automated = automated_clips(timeline)
    if not automated:
        return 0
    try:
        text = add_fcpx_volume(path.read_text(encoding="utf-8"), automated, rate)
    except (OSError, ET.ParseError, ValueError) as exc:
        raise OutputError(f"cannot add the volume keys to {path.name}: {exc}",
                          hint="write .xml (FCP 7) or .otio, or report this") from exc
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return len(automated)


def fcpx_keys(path: Path, media: Path, rate: Fraction) -> tuple[VolumeKey, ...] | None:
    """The volume keys on the clip of *media* in a written FCPX XML file (None: none there)."""
    root = ET.parse(path).getroot()
    for clip in _clips_using(root, media):
        anim = clip.find("adjust-volume/param[@name='amount']/keyframeAnimation")
        if anim is None:
            continue
        return tuple(VolumeKey(int(_parse_fcpx_time(k.get("time", "0s")) * rate),
                               float(k.get("value", "0dB").removesuffix("dB")))
                     for k in anim.iter("keyframe"))
    return None
