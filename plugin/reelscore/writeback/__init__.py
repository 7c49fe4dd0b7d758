"""Write-back: the input edit plus one new audio track holding the score, in every OTIO format.

One idea per module: :mod:`~reelscore.writeback.write` (the score tracks, writing the file),
:mod:`~reelscore.writeback.prepare` (the timeline as each format should hold it),
:mod:`~reelscore.writeback.limits` (what a writer cannot hold), :mod:`~reelscore.writeback.verify`
(reading the file back) and :mod:`~reelscore.writeback.score_track` (what they share).

The new track is added to a deep copy of the timeline *as it was read* (not the normalised copy),
so every original track survives exactly; its items use the file's own rate value and, for EDLs,
the CMX reader's track convention (record start as a negative track start), so the score clip sits
at the scored range's record position however the edit counts time. Provenance goes under
``metadata["reelscore"]``; with ``markers`` the score clip carries one marker per scene.

The output format follows the output path's extension (:func:`write_edit`). Each format gets what
its editors expect (:func:`~reelscore.writeback.prepare.prepared_for_adapter`):

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

With ``--duck`` the score is ducked under the dialogue; FCP 7 XML and FCPX instead get the
unducked score with the ducking as volume keys the editor can move
(:mod:`~reelscore.writeback.automation`).

A format that cannot hold the edit fails with an :class:`~reelscore.errors.OutputError` naming
the limitation and the clip, and leaves nothing at the output path: refused up front where the
writer would silently write it wrong (:func:`check_writable`), explained after the fact where the
writer raises (:func:`write_failure`). :func:`verify_written` reads the written file back with the
same adapter and checks the score clip's record timecode, duration, media path, markers and
provenance (docs/formats.md has the per-format table).

Everything is written atomically and never over an existing file unless asked.
"""

from reelscore.writeback.automation import VolumeAutomation
from reelscore.writeback.limits import check_writable, write_failure
from reelscore.writeback.prepare import prepared_for_adapter
from reelscore.writeback.score_track import (
    ADAPTER_LABELS,
    DEFAULT_TRACK_NAME,
    META,
    URL_FORMS,
    adapter_for_output,
    media_path,
    media_url,
    score_clip_stack_range,
    score_clips,
)
from reelscore.writeback.verify import KEEPS, read_written, verify_written
from reelscore.writeback.write import (
    ScoreMark,
    ScoreMedia,
    add_score_tracks,
    check_output_format,
    check_output_path,
    score_media_paths,
    write_edit,
)

__all__ = [
    "ADAPTER_LABELS",
    "DEFAULT_TRACK_NAME",
    "KEEPS",
    "META",
    "URL_FORMS",
    "ScoreMark",
    "ScoreMedia",
    "VolumeAutomation",
    "adapter_for_output",
    "add_score_tracks",
    "check_output_format",
    "check_output_path",
    "check_writable",
    "media_path",
    "media_url",
    "prepared_for_adapter",
    "read_written",
    "score_clip_stack_range",
    "score_clips",
    "score_media_paths",
    "verify_written",
    "write_edit",
    "write_failure",
]
