"""Per-format preparation: the scored timeline as each OTIO adapter should write it.

XML and AAF carry the record start in ``global_start_time`` (the CMX reader's negative track start
is folded there); FCP 7 and FCPX XML need a source range on every clip; each format gets the
score's media path in its editors' form and reelscore's provenance where its editors see it
(FCP 7 master comments, AAF user comments, the FCPX asset note); an EDL gets the score track alone
at its record timecode (:func:`_score_edl_timeline`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import opentimelineio as otio
from opentimelineio import opentime

from reelscore.errors import OutputError
from reelscore.timecode import rt_frames
from reelscore.timeline import normalise, timeline_rate
from reelscore.writeback.automation import carries_automation, place_automation
from reelscore.writeback.score_track import (
    KEEPS_MUTED_TRACKS,
    META,
    URL_FORMS,
    drop_frame_of,
    is_muted_score_track,
    media_path,
    media_url,
    plain_metadata,
    score_clips,
)


def prepared_for_adapter(
    timeline: otio.schema.Timeline, adapter: str, *, form: str | None = None,
    post_write: bool = False,
) -> otio.schema.Timeline:
    """A copy of a scored *timeline* as *adapter* should write it (see the package docstring).

    Only the score clips and, for XML and AAF, the timeline's start change: those formats keep
    the record start in ``global_start_time``, so the CMX reader's negative track start is moved
    there, a missing start becomes 0 for FCP 7 XML and clips without a source range get their
    media's range (which is what no source range means). For ``cmx_3600`` the result is the score
    track alone, placed at its record timecode. *form* overrides the media URL form.

    With ``--duck``, a format that carries volume keys gets the unducked score with them in place
    of the ducked one (:mod:`reelscore.writeback.automation`); *post_write*: the caller adds
    the keys the writer cannot write (FCPX) to the written file itself.
    """
    if adapter == "cmx_3600":
        return _score_edl_timeline(timeline)
    prepared: otio.schema.Timeline = copy.deepcopy(timeline)
    if carries_automation(adapter, post_write=post_write):
        place_automation(prepared, adapter)
    if adapter not in KEEPS_MUTED_TRACKS:  # its writer would make a muted track play
        for track in [t for t in prepared.tracks if is_muted_score_track(t)]:
            prepared.tracks.remove(track)
    form = form or URL_FORMS.get(adapter, "url")
    if adapter in ("fcp_xml", "fcpx_xml", "AAF"):
        _fold_record_offset(prepared)
    if adapter == "fcp_xml" and prepared.global_start_time is None:
        prepared.global_start_time = opentime.RationalTime(0, float(timeline_rate(prepared)))
    if adapter in ("fcp_xml", "fcpx_xml"):
        # Both writers need source_range; without one a clip uses all of its media.
        for clip in prepared.find_clips():
            if clip.source_range is None and clip.media_reference.available_range is not None:
                clip.source_range = clip.media_reference.available_range
    write_provenance = _PROVENANCE_WRITERS.get(adapter)
    for _track, clip in score_clips(prepared):
        ref = clip.media_reference
        if not isinstance(ref, otio.schema.ExternalReference):
            continue
        if form != "as_edit":
            ref.target_url = media_url(media_path(ref.target_url), form)
        if write_provenance is not None:
            write_provenance(clip, ref, plain_metadata(clip.metadata.get(META, {})))
    return prepared


# ---------------------------------------------------------------------- record start, XML/AAF


def _record_offset_in_tracks(timeline: otio.schema.Timeline) -> opentime.RationalTime | None:
    """The CMX reader's record start (a negative start shared by every track), if any."""
    starts = [t.source_range.start_time for t in timeline.tracks if t.source_range is not None]
    if timeline.tracks and len(starts) == len(timeline.tracks) and all(s.value < 0 for s in starts):
        rate = timeline_rate(timeline)
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


# ------------------------------------------------------------------ provenance, per format


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


def _fcp_xml_provenance(clip: otio.schema.Clip, _ref: otio.schema.ExternalReference,
                        meta: dict[str, Any]) -> None:
    """Becomes <comments><mastercomment1>... in the clipitem (shown by Premiere/FCP 7)."""
    lines = _provenance_lines(meta)
    comments = {f"mastercomment{i}": line for i, line in enumerate(lines[:4], 1)}
    # kept beside what is there already (the Audio Levels keys of an automated clip)
    clip.metadata["fcp_xml"] = {**plain_metadata(clip.metadata.get("fcp_xml", {})),
                                "comments": comments}


def _aaf_provenance(clip: otio.schema.Clip, _ref: otio.schema.ExternalReference,
                    meta: dict[str, Any]) -> None:
    """Written as the master mob's user comments (Avid bin columns)."""
    user = {"reelscore job": str(meta.get("job_id", "")),
            "reelscore provider": str(meta.get("provider", "")),
            "reelscore record": f"{meta.get('record_in', '')}-{meta.get('record_out', '')}"}
    if meta.get("model"):
        user["reelscore model"] = str(meta["model"])
    if meta.get("seed") is not None:
        user["reelscore seed"] = str(meta["seed"])
    clip.metadata["AAF"] = {"UserComments": user}


def _fcpx_xml_provenance(_clip: otio.schema.Clip, ref: otio.schema.ExternalReference,
                         meta: dict[str, Any]) -> None:
    """The asset's note (shown in FCPX's browser)."""
    ref.metadata["fcpx"] = {"note": "; ".join(_provenance_lines(meta))}


_PROVENANCE_WRITERS: dict[
    str, Callable[[otio.schema.Clip, otio.schema.ExternalReference, dict[str, Any]], None]
] = {"fcp_xml": _fcp_xml_provenance, "AAF": _aaf_provenance, "fcpx_xml": _fcpx_xml_provenance}


# ---------------------------------------------------------------------------------- the EDL


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
    r = float(rate) if drop_frame_of(timeline) else float(round(rate))
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
            metadata={META: plain_metadata(src.metadata.get(META, {})), "cmx_3600": {"reel": "AX"}},
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
