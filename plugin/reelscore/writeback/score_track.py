"""The score track and the formats it is written in: what every part of write-back shares.

A score track is an audio track whose ``metadata["reelscore"]["generated"]`` is true; its clips
are score clips. This module says how each format's editors want the score's media path written
(``URL_FORMS``, :func:`media_url` and its inverse :func:`media_path`), which adapter writes an
output path (:func:`adapter_for_output`) and what OTIO's adapters raise when an edit is beyond
them (``ADAPTER_ERRORS``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import opentimelineio as otio
from opentimelineio import opentime

from reelscore.errors import OutputError
from reelscore.timeline import url_to_path_candidates

DEFAULT_TRACK_NAME = "Score"
META = "reelscore"

# The .otioz layout (OTIO's otioz adapter: version file, the timeline, media/ beside it).
OTIOZ_VERSION_FILE = "version.txt"
OTIOZ_VERSION = "1.0.0"
OTIOZ_CONTENT = "content.otio"
OTIOZ_MEDIA_DIR = "media"

# How each adapter's target editors want the score's media path written.
#   url        file:///abs/path, percent-encoded (FCPX, AAF locators, most OTIO tools)
#   fcp        file://localhost/abs/path, percent-encoded (FCP 7 / Premiere <pathurl>)
#   path       the plain absolute path (EDL comments; Resolve rejects file:// in .otio)
#   bundle     media/<name>, relative, inside an .otioz
#   as_edit    the form the edit's own media references use (path or url)
URL_FORMS: dict[str, str] = {
    "otio_json": "as_edit",
    "otioz": "bundle",
    "fcp_xml": "fcp",
    "fcpx_xml": "url",
    "AAF": "url",
    "cmx_3600": "path",
}

ADAPTER_LABELS = {
    "fcp_xml": "FCP 7 XML (otio-fcp-adapter)",
    "fcpx_xml": "FCPX XML (otio-fcpx-xml-adapter)",
    "AAF": "AAF (otio-aaf-adapter)",
    "cmx_3600": "CMX 3600 EDL (otio-cmx3600-adapter)",
    "otio_json": "OTIO JSON",
    "otioz": "OTIOZ",
}

# What OTIO's adapters raise on an edit they cannot write or read: OTIO's own errors (the EDL,
# AAF and "not supported" errors all derive from OTIOError) and the built-in errors their parsers
# and writers (and pyaaf2 below the AAF adapter) hit on data they do not expect -- the FCP 7
# writer, for one, fails with an UnboundLocalError (a NameError) on a generator it cannot write.
# OSError keeps its own meaning (disk full, permissions): atomic_output names it.
ADAPTER_ERRORS: tuple[type[Exception], ...] = (
    otio.exceptions.OTIOError, ValueError, LookupError, TypeError, AttributeError, NameError,
    ArithmeticError, AssertionError, RuntimeError, SyntaxError,
)


# ------------------------------------------------------------------------------- media paths


def media_url(path: Path, form: str = "url") -> str:
    """*path* written the way an editor expects (see ``URL_FORMS``)."""
    absolute = Path(path).absolute()
    if form == "path":
        return str(absolute)
    if form == "bundle":
        return f"{OTIOZ_MEDIA_DIR}/{absolute.name}"
    uri = absolute.as_uri()  # file:///..., percent-encoded; file:///C:/... on Windows
    if form == "fcp":
        # FCP 7 and Premiere write file://localhost/Volumes/... and file://localhost/D%3a/...
        tail = uri[len("file:///"):]
        if len(tail) > 1 and tail[1] == ":":
            tail = quote(tail[:2]) + tail[2:]
        return "file://localhost/" + tail
    if form != "url":
        raise ValueError(f"unknown media URL form {form!r}")
    return uri


def media_path(target_url: str) -> Path:
    """The local path a score clip's target_url names (inverse of :func:`media_url`)."""
    candidates = url_to_path_candidates(target_url)
    return Path(candidates[0]) if candidates else Path(target_url)


def edit_url_form(timeline: otio.schema.Timeline) -> str:
    """``path`` when the edit's own media are plain paths (a Resolve export), else ``url``."""
    plain = urls = 0
    for clip in timeline.find_clips():
        if is_score_clip(clip):
            continue
        ref = clip.media_reference
        url = getattr(ref, "target_url", None) if isinstance(ref, otio.schema.ExternalReference) else None
        if not url:
            continue
        if url.lower().startswith("file:"):
            urls += 1
        elif url.startswith(("/", "\\")) or (len(url) > 2 and url[1] == ":"):
            plain += 1
    return "path" if plain > urls else "url"



# ---------------------------------------------------------------------------- score tracks


def is_score_track(track: otio.core.SerializableObject) -> bool:
    """A track reelscore added (``metadata["reelscore"]["generated"]``)."""
    meta = getattr(track, "metadata", None)
    return (isinstance(track, otio.schema.Track) and isinstance(meta, Mapping)
            and isinstance(meta.get(META), Mapping) and bool(meta[META].get("generated")))


def is_score_clip(clip: otio.schema.Clip) -> bool:
    """A clip on a track reelscore added."""
    parent = clip.parent()
    return parent is not None and is_score_track(parent)


def score_clips(timeline: otio.schema.Timeline) -> list[tuple[otio.schema.Track, otio.schema.Clip]]:
    """(track, clip) for every score clip reelscore added to *timeline*."""
    out: list[tuple[otio.schema.Track, otio.schema.Clip]] = []
    for track in timeline.tracks:
        if is_score_track(track):
            out.extend((track, c) for c in track if isinstance(c, otio.schema.Clip))
    return out


def score_clip_stack_range(timeline: otio.schema.Timeline, track_name: str) -> opentime.TimeRange:
    """Where the score clip on *track_name* sits in stack time (for verification)."""
    for track in timeline.audio_tracks():
        if track.name == track_name:
            for i, item in enumerate(track):
                if isinstance(item, otio.schema.Clip):
                    r = track.trimmed_range_of_child_at_index(i)
                    return track.transformed_time_range(r, timeline.tracks)
    raise OutputError(f"no clip on a track named {track_name!r}")



# The writers that keep a track's ``enabled`` flag: elsewhere a muted track would play, so a muted
# score track (``--duck``'s unducked alternative) is left out of the written file.
KEEPS_MUTED_TRACKS = frozenset({"otio_json", "otioz"})


def is_muted_score_track(track: otio.core.SerializableObject) -> bool:
    """A score track reelscore placed muted (``--duck``'s unducked alternative)."""
    return is_score_track(track) and not bool(getattr(track, "enabled", True))


def points_at(url: str, path: Path) -> bool:
    """Does the media URL or path *url* name the file *path*? (False for one that names none.)"""
    try:
        return media_path(url).absolute() == path.absolute()
    except (ValueError, OSError):
        return False


def plain_metadata(value: Any) -> Any:
    """OTIO AnyDictionary/AnyVector -> plain dict/list (for reading metadata back)."""
    if isinstance(value, Mapping):
        return {str(k): plain_metadata(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain_metadata(v) for v in value]
    return value


# ----------------------------------------------------------------------------------- formats


def adapter_for_output(path: Path) -> str:
    """The name of the OTIO adapter that writes *path* (by its extension); OutputError if none."""
    suffix = path.suffix.lower()
    try:
        adapter = otio.adapters.from_filepath(str(path))
    except otio.exceptions.NoKnownAdapterForExtensionError as exc:
        raise OutputError(
            f"no OTIO adapter writes {suffix or 'files without an extension'!r}",
            hint="use .otio, .otioz, .xml (FCP 7), .fcpxml, .aaf or .edl",
        ) from exc
    name = str(adapter.name)
    if name == "otiod":
        raise OutputError("an .otiod is a folder bundle of every media file the edit uses",
                          hint="write .otioz (the edit plus the score WAV) or .otio instead")
    if not adapter.has_feature("write"):
        raise OutputError(f"the {name} adapter reads {suffix!r} files but cannot write them",
                          hint="use .otio, .otioz, .xml (FCP 7), .fcpxml, .aaf or .edl")
    return name


def drop_frame_of(scored: otio.schema.Timeline) -> bool:
    """The drop-frame flag the plan used, kept on the score track (OTIO's inference without)."""
    from reelscore.timecode import infer_drop_frame, is_drop_frame_rate
    from reelscore.timeline import timeline_rate

    rate = timeline_rate(scored)
    for track, _clip in score_clips(scored):
        flag = track.metadata[META].get("drop_frame")
        if isinstance(flag, bool):
            return flag and is_drop_frame_rate(rate)
    return infer_drop_frame(rate)
