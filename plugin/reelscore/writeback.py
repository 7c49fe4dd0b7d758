"""Write-back: the input edit plus one new audio track holding the score, in every OTIO format.

The new track is added to a deep copy of the timeline *as it was read* (not the normalised copy),
so every original track survives exactly; its items use the file's own rate value and, for EDLs,
the CMX reader's track convention (record start as a negative track start), so the score clip sits
at the scored range's record position however the edit counts time. Provenance goes under
``metadata["reelscore"]``; with ``markers`` the score clip carries one marker per scene.

The output format follows the output path's extension (:func:`write_edit`). Each format gets what
its editors expect (:func:`prepared_for_adapter`):

========== ============================================================================
.otio      everything as is; the score's path in the same form as the edit's own media
           (plain paths for a Resolve export, ``file://`` URLs otherwise)
.otioz     the .otio plus the score WAV(s) inside the bundle (``media/``); the picture's
           media references are kept as they are and never copied into the bundle
.xml       FCP 7 XML: ``file://localhost/...`` path URLs (as FCP 7 and Premiere write
           them), record start in the sequence timecode, provenance as master comments
.fcpxml    FCPX XML: ``file:///`` URLs; the score is a connected clip under the spine
.aaf       AAF: ``file:///`` locator, fresh mob ids, provenance as user comments
.edl       CMX 3600 EDL of the score track alone (one audio event at its record
           timecode, ``* FROM CLIP:`` plain path, ``* LOC:`` per scene)
========== ============================================================================

A format that cannot hold the edit fails with an :class:`~reelscore.errors.OutputError` naming
the limitation and the clip, and leaves nothing at the output path: refused up front where the
writer would silently write it wrong (:func:`check_writable`), explained after the fact where the
writer raises (:func:`write_failure`). :func:`verify_written` reads the written file back with the
same adapter and checks the score clip's record timecode, duration, media path, markers and
provenance (docs/formats.md has the per-format table).

Everything is written atomically and never over an existing file unless asked.
"""

from __future__ import annotations

import copy
import logging
import os
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import quote

import opentimelineio as otio
from opentimelineio import opentime

from reelscore.errors import OutputError
from reelscore.fsutil import atomic_output, sha256_file
from reelscore.plan import ScorePlan
from reelscore.timecode import (
    exact_rate,
    frames_to_tc,
    infer_drop_frame,
    is_drop_frame_rate,
    rt_frames,
)
from reelscore.timeline import LoadedEdit, normalise, url_to_path_candidates

log = logging.getLogger(__name__)

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

WRITE_HINT = "write .otio instead (it keeps everything), or .edl for the score track alone"


@dataclass(frozen=True)
class ScoreMedia:
    """One file to place on its own new audio track over the scored range."""

    path: Path
    track_name: str
    clip_name: str
    metadata: dict[str, Any]


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
        if _is_score_clip(clip):
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


# ----------------------------------------------------------------------------- the score track


def add_score_tracks(
    loaded: LoadedEdit,
    plan: ScorePlan,
    media: Sequence[ScoreMedia],
    *,
    markers: bool = False,
) -> otio.schema.Timeline:
    """Return a copy of the original timeline with one new audio track per *media* item."""
    timeline: otio.schema.Timeline = copy.deepcopy(loaded.original)
    rate = loaded.raw_rate
    start = plan.range.start
    duration = plan.range.duration
    form = edit_url_form(loaded.original)

    def t(frames: int) -> opentime.RationalTime:
        return opentime.RationalTime(frames, rate)

    for item in media:
        track = otio.schema.Track(name=item.track_name, kind=otio.schema.TrackKind.Audio)
        if loaded.record_offset_in_tracks:
            # CMX convention: the track's own time starts at minus the record start.
            track.source_range = opentime.TimeRange(
                t(-loaded.record_offset_in_tracks), t(start + duration)
            )
        if start > 0:
            track.append(otio.schema.Gap(source_range=opentime.TimeRange(t(0), t(start))))
        clip = otio.schema.Clip(
            name=item.clip_name,
            media_reference=otio.schema.ExternalReference(
                target_url=media_url(item.path, form),
                available_range=opentime.TimeRange(t(0), t(duration)),
            ),
            source_range=opentime.TimeRange(t(0), t(duration)),
        )
        clip.metadata[META] = dict(item.metadata)
        if markers:
            for i, scene in enumerate(plan.scenes, 1):
                offset = scene.range.start - start
                clip.markers.append(otio.schema.Marker(
                    name=scene.name or f"Scene {i}",
                    marked_range=opentime.TimeRange(t(offset), t(0)),
                    color=otio.schema.MarkerColor.GREEN,
                    comment=f"{scene.id} {scene.range.record_in}-{scene.range.record_out}",
                    metadata={META: {"scene": scene.id, "record_in": scene.range.record_in,
                                     "record_out": scene.range.record_out}},
                ))
        track.append(clip)
        track.metadata[META] = {"generated": True, "drop_frame": plan.drop_frame}
        timeline.tracks.append(track)
    return timeline


def _is_score_track(track: otio.core.SerializableObject) -> bool:
    meta = getattr(track, "metadata", None)
    return (isinstance(track, otio.schema.Track) and isinstance(meta, Mapping)
            and isinstance(meta.get(META), Mapping) and bool(meta[META].get("generated")))


def _is_score_clip(clip: otio.schema.Clip) -> bool:
    parent = clip.parent()
    return parent is not None and _is_score_track(parent)


def score_clips(timeline: otio.schema.Timeline) -> list[tuple[otio.schema.Track, otio.schema.Clip]]:
    """(track, clip) for every score clip reelscore added to *timeline*."""
    out: list[tuple[otio.schema.Track, otio.schema.Clip]] = []
    for track in timeline.tracks:
        if _is_score_track(track):
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


# ------------------------------------------------------------------------------ output paths


def check_output_path(path: Path, *, force: bool, inputs: Sequence[Path] = ()) -> None:
    """Refuse to overwrite an input, or an existing output without --force."""
    resolved = path.absolute()
    for inp in inputs:
        if inp.exists() and resolved == inp.absolute():
            raise OutputError(
                f"the output {str(path)!r} is the input edit; reelscore never modifies its input",
                hint="choose another -o path",
            )
    if path.exists() and not force:
        raise OutputError(
            f"{str(path)!r} already exists",
            hint="choose another -o path, or pass --force to replace it",
        )
    parent = resolved.parent
    if not parent.exists():
        raise OutputError(f"the output folder {str(parent)!r} does not exist",
                          hint="create it first or choose another -o path")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write to the output folder {str(parent)!r}",
                          hint="choose a folder you can write to")


def adapter_for_output(path: Path) -> str:
    suffix = path.suffix.lower()
    try:
        adapter = otio.adapters.from_filepath(str(path))
    except Exception as exc:
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


# ------------------------------------------------------------------- per-format preparation


def _rate_of(timeline: otio.schema.Timeline) -> Fraction:
    from reelscore.timeline import timeline_rate

    return timeline_rate(timeline)


def _record_offset_in_tracks(timeline: otio.schema.Timeline) -> opentime.RationalTime | None:
    """The CMX reader's record start (a negative start shared by every track), if any."""
    starts = [t.source_range.start_time for t in timeline.tracks if t.source_range is not None]
    if timeline.tracks and len(starts) == len(timeline.tracks) and all(s.value < 0 for s in starts):
        rate = _rate_of(timeline)
        if len({rt_frames(s, rate) for s in starts}) == 1:
            return -starts[0]
    return None


def _fold_record_offset(timeline: otio.schema.Timeline) -> None:
    """CMX convention -> record start in ``global_start_time`` (what XML and AAF carry)."""
    offset = _record_offset_in_tracks(timeline)
    if offset is None:
        return
    for track in timeline.tracks:
        track.source_range = None
    timeline.global_start_time = offset


def _provenance_lines(meta: dict[str, Any]) -> list[str]:
    loud = meta.get("loudness") or {}
    lines = [f"reelscore job {meta.get('job_id', '?')}"]
    gen = [f"provider {meta.get('provider', '?')}"]
    if meta.get("model"):
        gen.append(f"model {meta['model']}")
    if meta.get("seed") is not None:
        gen.append(f"seed {meta['seed']}")
    lines.append(", ".join(gen))
    lines.append(f"record {meta.get('record_in', '?')}-{meta.get('record_out', '?')}")
    if loud:
        lines.append(f"{loud.get('integrated_lufs')} LUFS, {loud.get('true_peak_dbtp')} dBTP")
    return lines


def _plain(value: Any) -> Any:
    """OTIO AnyDictionary/AnyVector -> plain dict/list (for reading metadata back)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value


def prepared_for_adapter(
    timeline: otio.schema.Timeline, adapter: str, *, form: str | None = None,
) -> otio.schema.Timeline:
    """A copy of a scored *timeline* as *adapter* should write it (see the module docstring).

    Only the score clips and, for XML and AAF, the timeline's start change: those formats keep
    the record start in ``global_start_time``, so the CMX reader's negative track start is moved
    there, a missing start becomes 0 for FCP 7 XML and clips without a source range get their
    media's range (which is what no source range means). For ``cmx_3600`` the result is the score
    track alone, placed at its record timecode. *form* overrides the media URL form.
    """
    if adapter == "cmx_3600":
        return _score_edl_timeline(timeline)
    tl: otio.schema.Timeline = copy.deepcopy(timeline)
    form = form or URL_FORMS.get(adapter, "url")
    if adapter in ("fcp_xml", "fcpx_xml", "AAF"):
        _fold_record_offset(tl)
    if adapter == "fcp_xml" and tl.global_start_time is None:
        tl.global_start_time = opentime.RationalTime(0, float(_rate_of(tl)))
    if adapter in ("fcp_xml", "fcpx_xml"):
        # Both writers need source_range; without one a clip uses all of its media.
        for clip in tl.find_clips():
            if clip.source_range is None and clip.media_reference.available_range is not None:
                clip.source_range = clip.media_reference.available_range
    for _track, clip in score_clips(tl):
        ref = clip.media_reference
        if not isinstance(ref, otio.schema.ExternalReference):
            continue
        if form != "as_edit":
            ref.target_url = media_url(media_path(ref.target_url), form)
        meta = _plain(clip.metadata.get(META, {}))
        lines = _provenance_lines(meta)
        if adapter == "fcp_xml":
            # Becomes <comments><mastercomment1>... in the clipitem (shown by Premiere/FCP 7).
            comments = {f"mastercomment{i}": line for i, line in enumerate(lines[:4], 1)}
            clip.metadata["fcp_xml"] = {"comments": comments}
        elif adapter == "AAF":
            # Written as the master mob's user comments (Avid bin columns).
            user = {"reelscore job": str(meta.get("job_id", "")),
                    "reelscore provider": str(meta.get("provider", "")),
                    "reelscore record": f"{meta.get('record_in', '')}-{meta.get('record_out', '')}"}
            if meta.get("model"):
                user["reelscore model"] = str(meta["model"])
            if meta.get("seed") is not None:
                user["reelscore seed"] = str(meta["seed"])
            clip.metadata["AAF"] = {"UserComments": user}
        elif adapter == "fcpx_xml":
            ref.metadata["fcpx"] = {"note": "; ".join(lines)}
    return tl


def _drop_frame_of(scored: otio.schema.Timeline) -> bool:
    """The drop-frame flag the plan used, kept on the score track (OTIO's inference without)."""
    rate = _rate_of(scored)
    for track, _clip in score_clips(scored):
        flag = track.metadata[META].get("drop_frame")
        if isinstance(flag, bool):
            return flag and is_drop_frame_rate(rate)
    return infer_drop_frame(rate)


def _with_fcm(edl: str, rate: Fraction) -> str:
    """The cmx writer writes no ``FCM:`` line; readers need it to tell 29.97 DF from NDF."""
    fcm = "FCM: DROP FRAME" if is_drop_frame_rate(rate) else "FCM: NON-DROP FRAME"
    head, _newline, rest = edl.partition("\n")
    return f"{head}\n{fcm}\n{rest}" if head.startswith("TITLE:") else f"{fcm}\n{edl}"


def _score_edl_timeline(timeline: otio.schema.Timeline) -> otio.schema.Timeline:
    """The score track alone, as a CMX 3600 EDL carries it.

    The cmx_3600 writer takes record timecodes from stack time (it ignores global_start_time) and
    writes only the first track, of a timeline that has exactly one video track. So: the score
    track first, a leading gap as long as the record start, an empty video track to satisfy the
    writer, the path as a plain ``* FROM CLIP:`` comment and markers as ``* LOC:`` record timecodes.
    """
    loaded = normalise(timeline)
    rate = loaded.rate
    clips = score_clips(loaded.timeline)
    if not clips:
        raise OutputError("the timeline holds no reelscore score track to write as an EDL")
    first_track = clips[0][0]
    # The writer prints ';' (drop frame) for every 29.97/59.94 rate; a non-drop timeline's labels
    # are those of the same frame counts at the nominal rate.
    r = float(rate) if _drop_frame_of(timeline) else float(round(rate))
    # The writer ignores global_start_time; it is set so the rate is known to readers of this copy.
    edl = otio.schema.Timeline(name=timeline.name or "reelscore",
                               global_start_time=opentime.RationalTime(0, r))
    track = otio.schema.Track(name=first_track.name, kind=otio.schema.TrackKind.Audio)
    track.metadata[META] = {"generated": True}
    pos = 0
    for _t, src in (c for c in clips if c[0] is first_track):
        stack = src.transformed_time_range(src.trimmed_range(), loaded.timeline.tracks)
        record = loaded.start_frame + rt_frames(stack.start_time, rate)
        dur = rt_frames(stack.duration, rate)
        if record > pos:
            track.append(otio.schema.Gap(source_range=opentime.TimeRange(
                opentime.RationalTime(0, r), opentime.RationalTime(record - pos, r))))
        clip = otio.schema.Clip(
            name=src.name,
            media_reference=otio.schema.ExternalReference(
                target_url=media_url(media_path(src.media_reference.target_url), "path"),
                available_range=opentime.TimeRange(opentime.RationalTime(0, r),
                                                   opentime.RationalTime(dur, r)),
            ),
            source_range=opentime.TimeRange(opentime.RationalTime(0, r),
                                            opentime.RationalTime(dur, r)),
            metadata={META: _plain(src.metadata.get(META, {})), "cmx_3600": {"reel": "AX"}},
        )
        for m in src.markers:
            # Avid writes and the cmx reader keeps LOC positions as record timecode.
            at = record + rt_frames(m.marked_range.start_time, rate)
            clip.markers.append(otio.schema.Marker(
                name=m.name, color=m.color or otio.schema.MarkerColor.GREEN,
                marked_range=opentime.TimeRange(opentime.RationalTime(at, r),
                                                opentime.RationalTime(0, r)),
            ))
        track.append(clip)
        pos = record + dur
    edl.tracks.append(track)
    edl.tracks.append(otio.schema.Track(name="V", kind=otio.schema.TrackKind.Video))
    return edl


# --------------------------------------------------------------------------- known limitations


def _where(item: otio.core.Item) -> str:
    name = getattr(item, "name", "") or type(item).__name__
    return f"{type(item).__name__.lower()} {name!r}"


def _first(items: Iterator[str], limit: int = 3) -> list[str]:
    out: list[str] = []
    for it in items:
        if it not in out:
            out.append(it)
        if len(out) > limit:
            break
    return out


def _nested_tracks_in_tracks(tl: otio.schema.Timeline) -> Iterator[str]:
    for track in tl.find_children(descended_from_type=otio.schema.Track):
        if isinstance(track.parent(), otio.schema.Track):
            yield f"{_where(track)} is nested directly in a track (not in a stack)"


def _limits_fcp_xml(tl: otio.schema.Timeline) -> Iterator[str]:
    """Why the FCP 7 XML writer (1.0.0) raised on *tl*."""
    yield from _nested_tracks_in_tracks(tl)
    for clip in tl.find_clips():
        ref = clip.media_reference
        fcp = ref.metadata.get("fcp_xml") or {}
        if isinstance(ref, otio.schema.ImageSequenceReference):
            yield f"{_where(clip)} uses an image sequence (the adapter 1.0.0 cannot write them)"
        elif isinstance(ref, otio.schema.GeneratorReference):
            if "effecttype" not in fcp and not fcp.get("media"):
                yield (f"{_where(clip)} is a {ref.generator_kind!r} generator without FCP XML "
                       "effect data (only generators read from FCP XML can be written back)")
        elif isinstance(ref, otio.schema.ExternalReference) and ref.available_range is None:
            yield (f"{_where(clip)} has no media length (available_range), which FCP XML "
                   "files require (EDLs do not record it)")


def _corruptions_fcp_xml(tl: otio.schema.Timeline) -> Iterator[str]:
    """What the FCP 7 XML writer (1.0.0) would write *wrong* without raising."""
    first_at: dict[int, tuple[float, float] | None] = {}
    for item in tl.find_children():
        if not isinstance(item, otio.schema.Clip | otio.schema.Stack):
            continue
        # The writer turns a repeat of an identical clip into <clipitem id="..."/>, which
        # readers resolve to the first one's <start>/<end>: right only at the same position.
        key = hash(otio.core.serialize_json_to_string(item))
        try:
            r = item.range_in_parent()
            at: tuple[float, float] | None = (r.start_time.to_seconds(), r.duration.to_seconds())
        except (ValueError, otio.exceptions.OTIOError):
            at = None
        if key not in first_at:
            first_at[key] = at
        elif first_at[key] != at:
            yield (f"{_where(item)} is used again, identical, at another position (e.g. a "
                   "compound clip used twice); the adapter 1.0.0 writes the repeat as a "
                   "back-reference that readers place at the first use")


_FCPX_RATES = {24, 25, 30, 50, 60}


def _limits_fcpx_xml(tl: otio.schema.Timeline) -> Iterator[str]:
    yield from _nested_tracks_in_tracks(tl)
    rates = set()
    for item in tl.find_children(descended_from_type=otio.core.Item):
        if isinstance(item, otio.schema.Transition):
            continue
        rng = item.source_range or (item.trimmed_range() if not isinstance(item, otio.core.Composition) else None)
        if rng is not None:
            rates.add(exact_rate(rng.duration.rate))
    for rate in sorted(rates):
        if rate not in _FCPX_RATES:
            yield (f"the adapter writes only 24, 25, 30, 50 and 60 fps; this edit has "
                   f"{float(rate):.3f} fps items")
    for clip in tl.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ImageSequenceReference | otio.schema.GeneratorReference):
            yield f"{_where(clip)} uses a {type(ref).__name__} (the adapter writes file media only)"
        elif isinstance(ref, otio.schema.ExternalReference) and ref.available_range is None:
            yield f"{_where(clip)} has no media length (available_range), which FCPX assets require"
    for item in tl.find_children():
        if isinstance(item, otio.schema.Gap | otio.schema.Clip | otio.schema.Stack):
            try:
                inside = item.trimmed_range_in_parent() is not None
            except ValueError:
                inside = False
            if not inside:
                yield (f"{_where(item)} lies outside its track's trimmed range (the adapter "
                       "places every item by its trimmed range)")
    video = [t for t in tl.tracks if isinstance(t, otio.schema.Track)
             and t.kind == otio.schema.TrackKind.Video]
    if not video:
        yield "there is no video track to be the primary storyline"
        return
    spine = video[0]
    spine_end = spine.trimmed_range().duration
    for track in tl.tracks:
        if not isinstance(track, otio.schema.Track) or track.kind != otio.schema.TrackKind.Audio:
            continue
        for i, item in enumerate(track):
            if isinstance(item, otio.schema.Clip):
                at = track.trimmed_range_of_child_at_index(i).start_time
                if at >= spine_end:
                    yield (f"audio {_where(item)} starts after the end of the primary storyline "
                           f"(video track 1); FCPX connects audio to it")


def _limits_aaf(tl: otio.schema.Timeline) -> Iterator[str]:
    edit_rate = exact_rate(tl.duration().rate)
    for item in tl.find_children():
        if isinstance(item, otio.schema.Transition):
            op = (item.metadata.get("AAF") or {}).get("OperationGroup")
            if not op or "PointList" not in (item.metadata.get("AAF") or {}):
                yield (f"{_where(item)} was not read from an AAF (the AAF writer needs the AAF "
                       "operation data of every transition)")
            continue
        if not isinstance(item, otio.schema.Clip):
            continue
        ref = item.media_reference
        if isinstance(ref, otio.schema.GeneratorReference):
            if ref.generator_kind != "Slug":
                yield f"{_where(item)} is a {ref.generator_kind!r} generator (AAF writes only slugs)"
            continue
        if ref.available_range is None:
            yield f"{_where(item)} has no media length (available_range), which AAF source mobs need"
        elif exact_rate(ref.available_range.duration.rate) != edit_rate:
            yield (f"{_where(item)}'s media is at {float(exact_rate(ref.available_range.duration.rate)):.3f} fps "
                   f"in a {float(edit_rate):.3f} fps edit (AAF needs one edit rate)")
        if exact_rate(item.duration().rate) != edit_rate:
            yield (f"{_where(item)} is at {float(exact_rate(item.duration().rate)):.3f} fps in a "
                   f"{float(edit_rate):.3f} fps edit (AAF needs one edit rate)")


# Explanations of a writer's failure (tried after it raised), and edits a writer would get wrong
# without raising (refused before writing).
_LIMITS = {"fcp_xml": _limits_fcp_xml, "fcpx_xml": _limits_fcpx_xml, "AAF": _limits_aaf}
_CORRUPTIONS = {"fcp_xml": _corruptions_fcp_xml}
ADAPTER_LABELS = {
    "fcp_xml": "FCP 7 XML (otio-fcp-adapter)",
    "fcpx_xml": "FCPX XML (otio-fcpx-xml-adapter)",
    "AAF": "AAF (otio-aaf-adapter)",
    "cmx_3600": "CMX 3600 EDL (otio-cmx3600-adapter)",
    "otio_json": "OTIO JSON",
    "otioz": "OTIOZ",
}


def _cannot_hold(adapter: str, problems: list[str]) -> OutputError:
    more = " (and more)" if len(problems) > 3 else ""
    return OutputError(
        f"the {ADAPTER_LABELS.get(adapter, adapter)} writer cannot hold this edit: "
        + "; ".join(problems[:3]) + more,
        hint=WRITE_HINT,
    )


def write_failure(prepared: otio.schema.Timeline, adapter: str, exc: BaseException) -> OutputError:
    """An OutputError naming why *adapter* raised *exc* on *prepared* (when reelscore knows)."""
    check = _LIMITS.get(adapter)
    problems = _first(check(prepared)) if check is not None else []
    if problems:
        return _cannot_hold(adapter, problems)
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return OutputError(
        f"the {ADAPTER_LABELS.get(adapter, adapter)} writer failed on this edit: "
        f"{type(exc).__name__}{': ' + msg if msg else ''}",
        hint=WRITE_HINT,
    )


def check_writable(prepared: otio.schema.Timeline, adapter: str, *, dry_run: bool = False) -> None:
    """Raise OutputError if *adapter* would write *prepared* wrongly, naming the limitation.

    With *dry_run*, the text formats (FCP 7 XML, FCPX XML) are also written to a string first, so a
    writer that would raise is reported the same way (used by the hook, whose file OTIO writes).
    """
    corrupt = _CORRUPTIONS.get(adapter)
    problems = _first(corrupt(prepared)) if corrupt is not None else []
    if problems:
        raise _cannot_hold(adapter, problems)
    if dry_run and adapter in ("fcp_xml", "fcpx_xml"):
        try:
            otio.adapters.write_to_string(prepared, adapter_name=adapter)
        except Exception as exc:
            raise write_failure(prepared, adapter, exc) from exc


# ---------------------------------------------------------------------------------- writing


def write_edit(timeline: otio.schema.Timeline, path: Path, **adapter_args: Any) -> str:
    """Write a scored *timeline* to *path* (format from the extension) atomically.

    Returns the adapter name. Raises OutputError naming the limitation when the format cannot hold
    the edit (checked before writing where the writer would not notice, else when it raises);
    nothing is left at *path* then.
    """
    adapter = adapter_for_output(path)
    prepared = prepared_for_adapter(timeline, adapter)
    check_writable(prepared, adapter)
    args = dict(adapter_args)
    if adapter == "AAF":
        args.setdefault("use_empty_mob_ids", True)  # clips not read from an AAF have no mob id
    if adapter == "cmx_3600":
        args.setdefault("rate", float(_rate_of(prepared)))
    with atomic_output(path) as tmp:
        try:
            if adapter == "otioz":
                _write_otioz(prepared, tmp, score_media_paths(timeline))
            elif adapter == "cmx_3600":
                text = otio.adapters.write_to_string(prepared, adapter_name=adapter, **args)
                tmp.write_text(_with_fcm(text, _rate_of(prepared)), encoding="utf-8")
            elif adapter == "otio_json":
                # OTIO's C++ file writer ignores write errors (a full disk gives a short file
                # that would replace the earlier output); Python's write reports them.
                text = otio.adapters.write_to_string(prepared, adapter_name=adapter, **args)
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
            else:
                otio.adapters.write_to_file(prepared, str(tmp), adapter_name=adapter, **args)
        except (OutputError, OSError):
            raise  # OSError: atomic_output names it (disk full, permission) and keeps the earlier file
        except Exception as exc:  # adapters raise anything; name the limitation if we know it
            raise write_failure(prepared, adapter, exc) from exc
    return adapter


def score_media_paths(timeline: otio.schema.Timeline) -> list[Path]:
    """The local files of the score clips in a scored (not yet prepared) *timeline*."""
    out: list[Path] = []
    for _track, clip in score_clips(timeline):
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
            p = media_path(ref.target_url)
            if p not in out:
                out.append(p)
    return out


def _write_otioz(timeline: otio.schema.Timeline, path: Path, media: Sequence[Path]) -> None:
    """An .otioz holding the timeline and the score WAV(s) only (the picture's media stays put).

    Same layout as OTIO's otioz adapter, which would copy every file the edit references (and
    refuse when one is offline): ``version.txt``, ``content.otio``, and ``media/<name>`` stored
    uncompressed. *timeline* already points the score clips at ``media/<name>``.
    """
    members: dict[str, Path] = {}
    for src in media:
        rel = media_url(src, "bundle")
        if rel in members and members[rel] != src:
            raise OutputError(f"two score files are both named {src.name!r}; an .otioz needs "
                              "unique names", hint="use different --track-name values")
        if not src.is_file():
            raise OutputError(f"the score media {str(src)!r} is missing",
                              hint="rerun the same command: the job folder recreates it")
        members[rel] = src
    text = otio.adapters.write_to_string(timeline, adapter_name="otio_json")
    with zipfile.ZipFile(path, mode="w") as zf:
        zf.writestr(OTIOZ_VERSION_FILE, OTIOZ_VERSION, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(OTIOZ_CONTENT, text, compress_type=zipfile.ZIP_DEFLATED)
        for rel, src in members.items():
            zf.write(src, rel, compress_type=zipfile.ZIP_STORED)


# -------------------------------------------------------------------------------- verifying

# What each format keeps of the score clip, beyond its position, length and media path
# (docs/formats.md has the full table, including what happens to the original tracks).
KEEPS: dict[str, dict[str, bool]] = {
    #            start TC  track name  clip name  markers  provenance  original tracks
    "otio_json": {"start": True, "track_name": True, "markers": True, "provenance": True, "tracks": True},
    "otioz": {"start": True, "track_name": True, "markers": True, "provenance": True, "tracks": True},
    "fcp_xml": {"start": True, "track_name": False, "markers": True, "provenance": True, "tracks": False},
    "fcpx_xml": {"start": False, "track_name": False, "markers": True, "provenance": True, "tracks": False},
    "AAF": {"start": True, "track_name": False, "markers": False, "provenance": True, "tracks": False},
    "cmx_3600": {"start": True, "track_name": False, "markers": True, "provenance": False, "tracks": False},
}


@dataclass(frozen=True)
class ExpectedScore:
    """Where a score clip must be found in a written file."""

    clip_name: str
    track_name: str
    media: Path
    record_start: int  # absolute record frame (global start + stack position)
    duration: int  # frames
    markers: tuple[int, ...]  # record frames of the scene markers
    job_id: str


def expected_scores(scored: otio.schema.Timeline) -> tuple[Fraction, int, list[ExpectedScore]]:
    """(rate, record frame of the timeline start, score clips) of a scored timeline."""
    loaded = normalise(scored)
    rate = loaded.rate
    out: list[ExpectedScore] = []
    for track, clip in score_clips(loaded.timeline):
        stack = clip.transformed_time_range(clip.trimmed_range(), loaded.timeline.tracks)
        record = loaded.start_frame + rt_frames(stack.start_time, rate)
        clip_start = rt_frames(clip.trimmed_range().start_time, rate)
        markers = tuple(record + rt_frames(m.marked_range.start_time, rate) - clip_start
                        for m in clip.markers)
        ref = clip.media_reference
        url = ref.target_url if isinstance(ref, otio.schema.ExternalReference) else ""
        meta = _plain(clip.metadata.get(META, {}))
        out.append(ExpectedScore(clip.name, track.name, media_path(url).absolute(), record,
                                 rt_frames(stack.duration, rate), markers,
                                 str(meta.get("job_id", ""))))
    return rate, loaded.start_frame, out


def read_written(path: Path, adapter: str, rate: Fraction) -> otio.schema.Timeline:
    """Read a written edit back with *adapter* (no media linking, so paths stay as written)."""
    args: dict[str, Any] = {"rate": float(rate)} if adapter == "cmx_3600" else {}
    try:
        result = otio.adapters.read_from_file(
            str(path), adapter_name=adapter,
            media_linker_name=otio.media_linker.MediaLinkingPolicy.DoNotLinkMedia, **args)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OutputError(f"{path.name} was written but the {adapter} adapter cannot read it "
                          f"back: {msg}") from exc
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline))
        if len(timelines) != 1:
            raise OutputError(f"{path.name} reads back as {len(timelines)} timelines, not one")
        result = timelines[0]
    if not isinstance(result, otio.schema.Timeline):
        raise OutputError(f"{path.name} does not read back as a timeline")
    return result


def _same_file(url: str, expected: Path, adapter: str) -> bool:
    if adapter == "otioz":
        return url == media_url(expected, "bundle")
    try:
        return media_path(url).absolute() == expected
    except (ValueError, OSError):
        return False


def verify_written(
    path: Path,
    scored: otio.schema.Timeline,
    plan: ScorePlan | None = None,
    *,
    back: otio.schema.Timeline | None = None,
) -> dict[str, Any]:
    """Read *path* back with its adapter and check every score clip of *scored* in it.

    Checked: the clip's record timecode (relative to the timeline start where the format keeps no
    start timecode), its duration, its media path (for .otioz the bundled file's bytes), its name,
    and where the format keeps them the scene markers, the provenance and the track name; for
    .otio/.otioz also that every original track reads back unchanged. With *plan*, the score must
    also cover exactly the plan's range. *back*: the file as :func:`read_written` already read
    it (saves a second read of a large AAF). Returns a JSON-able report; raises OutputError
    naming the first difference.
    """
    adapter = adapter_for_output(path)
    rate, start_frame, expected = expected_scores(scored)
    if not expected:
        raise OutputError("the scored timeline holds no reelscore score clip to verify")
    drop = plan.drop_frame if plan is not None else _drop_frame_of(scored)
    if plan is not None:
        want = plan.start_frame + plan.range.start
        for exp in expected:
            if (exp.record_start, exp.duration) != (want, plan.range.duration):
                raise OutputError(
                    f"score clip {exp.clip_name!r} covers {frames_to_tc(exp.record_start, rate, drop_frame=drop)} "
                    f"+{exp.duration} frames, the plan {plan.range.record_in} "
                    f"+{plan.range.duration} frames")
    keeps = KEEPS.get(adapter, KEEPS["otio_json"])
    if back is None:
        back = read_written(path, adapter, rate)
    loaded = normalise(back, rate=rate if adapter == "cmx_3600" else None)
    tl = loaded.timeline

    def fail(what: str) -> OutputError:
        return OutputError(f"{path.name} ({adapter}) was written, but reading it back {what}",
                           hint="please report this; the .otio output keeps the score exactly")

    audio_clips: list[tuple[otio.schema.Track, otio.schema.Clip]] = []
    for track in tl.tracks:
        if isinstance(track, otio.schema.Track) and track.kind == otio.schema.TrackKind.Audio:
            audio_clips.extend((track, c) for c in track.find_clips(shallow_search=True))
    report: list[dict[str, Any]] = []
    score_track_names: set[str] = set()
    for exp in expected:
        hits = [(t, c) for t, c in audio_clips
                if isinstance(c.media_reference, otio.schema.ExternalReference)
                and _same_file(c.media_reference.target_url or "", exp.media, adapter)]
        if not hits:
            raise fail(f"finds no audio clip using {exp.media.name} "
                       f"({media_url(exp.media, URL_FORMS.get(adapter, 'url'))})")
        track, clip = hits[0]
        score_track_names.add(track.name)
        stack = clip.transformed_time_range(clip.trimmed_range(), tl.tracks)
        at = rt_frames(stack.start_time, loaded.rate)
        record = (loaded.start_frame if keeps["start"] else start_frame) + at
        duration = rt_frames(stack.duration, loaded.rate)
        if record != exp.record_start:
            raise fail(f"puts {clip.name!r} at {frames_to_tc(record, rate, drop_frame=drop)}, not at "
                       f"{frames_to_tc(exp.record_start, rate, drop_frame=drop)}")
        if duration != exp.duration:
            raise fail(f"gives {clip.name!r} {duration} frames, not {exp.duration}")
        if clip.name != exp.clip_name:
            raise fail(f"names the score clip {clip.name!r}, not {exp.clip_name!r}")
        if keeps["track_name"] and track.name != exp.track_name:
            raise fail(f"names the score track {track.name!r}, not {exp.track_name!r}")
        got_markers: tuple[int, ...] = ()
        # The cmx reader parses LOC timecodes with ':' only; at 29.97/59.94 DF they carry ';'.
        if keeps["markers"] and not (adapter == "cmx_3600" and is_drop_frame_rate(rate)):
            if adapter == "cmx_3600":  # LOC: record timecode kept as the marker's position
                got_markers = tuple(rt_frames(m.marked_range.start_time, loaded.rate)
                                    for m in clip.markers)
            else:
                clip_start = rt_frames(clip.trimmed_range().start_time, loaded.rate)
                got_markers = tuple(record + rt_frames(m.marked_range.start_time, loaded.rate)
                                    - clip_start for m in clip.markers)
            if sorted(got_markers) != sorted(exp.markers):
                raise fail(f"finds scene markers at "
                           f"{[frames_to_tc(f, rate, drop_frame=drop) for f in got_markers]}, "
                           f"not {[frames_to_tc(f, rate, drop_frame=drop) for f in exp.markers]}")
        provenance = _provenance_of(clip, adapter)
        if keeps["provenance"] and exp.job_id not in provenance:
            raise fail(f"finds no reelscore provenance (job {exp.job_id}) on {clip.name!r}")
        if adapter == "otioz":
            _check_bundled(path, exp.media, fail)
        report.append({
            "clip": clip.name, "record_in": frames_to_tc(record, rate, drop_frame=drop),
            "record_out": frames_to_tc(record + duration, rate, drop_frame=drop), "frames": duration,
            "media": clip.media_reference.target_url, "markers": len(got_markers),
            "provenance": bool(provenance),
        })
    written_tracks = [t for t in scored.tracks if not _is_score_track(t)]
    if keeps["tracks"]:
        read_tracks = [t for t in back.tracks if not _is_score_track(t)]
        if len(read_tracks) != len(written_tracks):
            raise fail(f"finds {len(read_tracks)} original tracks, not {len(written_tracks)}")
        for a, b in zip(written_tracks, read_tracks):
            if _stable_json(a) != otio.core.serialize_json_to_string(b):
                raise fail(f"finds track {b.name!r} changed")
    return {
        "adapter": adapter,
        "score": report,
        "tracks": {"original": len(written_tracks) if adapter != "cmx_3600" else 0,
                   "read_back": len(tl.tracks)},
    }


def _stable_json(obj: otio.core.SerializableObject) -> str:
    """JSON of *obj* as it reads back from a file (floats settle after one round trip)."""
    text = otio.core.serialize_json_to_string(obj)
    return str(otio.core.serialize_json_to_string(otio.core.deserialize_json_from_string(text)))


def _provenance_of(clip: otio.schema.Clip, adapter: str) -> str:
    """Whatever of reelscore's provenance the format carried back, as text."""
    if adapter in ("otio_json", "otioz"):
        return str(_plain(clip.metadata.get(META, {})))
    if adapter == "fcp_xml":
        return str(_plain((clip.metadata.get("fcp_xml") or {}).get("comments", {})))
    if adapter == "AAF":
        return str(_plain((clip.metadata.get("AAF") or {}).get("UserComments", {})))
    if adapter == "fcpx_xml":
        return str(_plain(clip.media_reference.metadata.get("fcpx", {})))
    return ""


def _check_bundled(path: Path, media: Path, fail: Any) -> None:
    rel = media_url(media, "bundle")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        if rel not in names:
            raise fail(f"finds no {rel} in the bundle")
        others = [n for n in names if n.startswith(OTIOZ_MEDIA_DIR + "/")
                  and not n.endswith(".wav") and not n.endswith("/")]
        if others:
            raise fail(f"finds picture media copied into the bundle: {others[:3]}")
        digest = _sha256_member(zf, rel)
    if digest != sha256_file(media):
        raise fail(f"finds {rel} different from {media}")


def _sha256_member(zf: zipfile.ZipFile, name: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with zf.open(name) as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()
