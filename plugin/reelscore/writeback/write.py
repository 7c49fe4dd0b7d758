"""Writing: the score as new audio tracks on a copy of the edit, and the scored edit as a file.

The new track is added to a deep copy of the timeline *as it was read* (not the normalised copy),
so every original track survives exactly; its items use the file's own rate value and, for EDLs,
the CMX reader's track convention (record start as a negative track start), so the score clip sits
at the scored range's record position however the edit counts time. Provenance goes under
``metadata["reelscore"]``; with ``markers`` the score clip carries one marker per scene.

:func:`write_edit` picks the format from the output path's extension, prepares the timeline for it
(:mod:`reelscore.writeback.prepare`), refuses what the writer would get wrong
(:mod:`reelscore.writeback.limits`) and writes atomically; :func:`check_output_path` refuses to
overwrite an input, or an existing output without ``--force``.
"""

from __future__ import annotations

import copy
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
from opentimelineio import opentime

from reelscore.errors import OutputError
from reelscore.fsutil import atomic_output
from reelscore.plan import ScorePlan
from reelscore.timecode import is_drop_frame_rate
from reelscore.timeline import LoadedEdit, timeline_rate
from reelscore.writeback.automation import (
    AUTOMATION_KEY,
    VolumeAutomation,
    add_fcpx_volume,
    automated_clips,
)
from reelscore.writeback.limits import check_writable, write_failure
from reelscore.writeback.prepare import prepared_for_adapter
from reelscore.writeback.score_track import (
    ADAPTER_ERRORS,
    META,
    OTIOZ_CONTENT,
    OTIOZ_VERSION,
    OTIOZ_VERSION_FILE,
    adapter_for_output,
    edit_url_form,
    media_path,
    media_url,
    score_clips,
)


@dataclass(frozen=True)
class ScoreMedia:
    """One file to place on its own new audio track over the scored range."""

    path: Path
    track_name: str
    clip_name: str
    metadata: dict[str, Any]
    enabled: bool = True  # False: placed muted (the unducked alternative of --duck)
    automation: VolumeAutomation | None = None  # --duck's keys, where a format carries them


@dataclass(frozen=True)
class ScoreMark:
    """A marker on the score clip: at stack *frame*, named *name* (``--markers``)."""

    frame: int
    name: str
    comment: str
    metadata: dict[str, Any]


def scene_marks(plan: ScorePlan) -> list[ScoreMark]:
    """One marker per scene at its first frame (the video route's ``--markers``)."""
    return [ScoreMark(scene.range.start, scene.name or f"Scene {i}",
                      f"{scene.id} {scene.range.record_in}-{scene.range.record_out}",
                      {"scene": scene.id, "record_in": scene.range.record_in,
                       "record_out": scene.range.record_out})
            for i, scene in enumerate(plan.scenes, 1)]


def add_score_tracks(
    loaded: LoadedEdit,
    plan: ScorePlan,
    media: Sequence[ScoreMedia],
    *,
    markers: bool = False,
    marks: Sequence[ScoreMark] | None = None,
) -> otio.schema.Timeline:
    """Return a copy of the original timeline with one new audio track per *media* item; with
    *markers*, the score clips carry *marks* (default: one per scene, ``scene_marks``)."""
    timeline: otio.schema.Timeline = copy.deepcopy(loaded.original)
    rate = loaded.raw_rate
    start = plan.range.start
    duration = plan.range.duration
    form = edit_url_form(loaded.original)

    def at(frames: int) -> opentime.RationalTime:
        return opentime.RationalTime(frames, rate)

    for item in media:
        track = otio.schema.Track(name=item.track_name, kind=otio.schema.TrackKind.Audio)
        if loaded.record_offset_in_tracks:
            # CMX convention: the track's own time starts at minus the record start.
            track.source_range = opentime.TimeRange(
                at(-loaded.record_offset_in_tracks), at(start + duration)
            )
        if start > 0:
            track.append(otio.schema.Gap(source_range=opentime.TimeRange(at(0), at(start))))
        clip = otio.schema.Clip(
            name=item.clip_name,
            media_reference=otio.schema.ExternalReference(
                target_url=media_url(item.path, form),
                available_range=opentime.TimeRange(at(0), at(duration)),
            ),
            source_range=opentime.TimeRange(at(0), at(duration)),
        )
        clip.metadata[META] = dict(item.metadata)
        if item.automation is not None:
            clip.metadata[META][AUTOMATION_KEY] = item.automation.to_metadata()
        if markers:
            for mark in (marks if marks is not None else scene_marks(plan)):
                clip.markers.append(otio.schema.Marker(
                    name=mark.name,
                    marked_range=opentime.TimeRange(at(mark.frame - start), at(0)),
                    color=otio.schema.MarkerColor.GREEN,
                    comment=mark.comment,
                    metadata={META: dict(mark.metadata)},
                ))
        track.append(clip)
        track.metadata[META] = {"generated": True, "drop_frame": plan.drop_frame}
        track.enabled = item.enabled
        timeline.tracks.append(track)
    return timeline


def check_output_format(loaded: LoadedEdit, plan: ScorePlan, path: Path) -> None:
    """Before any rendering: refuse an output format whose writer cannot hold this edit with its
    score (FCP 7 and FCPX XML: the writer is run on the edit with a stand-in score track, to a
    string), so a 29.97 edit bound for .fcpxml stops in seconds, not after the music is paid."""
    adapter = adapter_for_output(path)
    if adapter not in ("fcp_xml", "fcpx_xml"):
        return
    stand_in = ScoreMedia(path.with_name(f"{path.name}.score.wav"), "Score", "Score - reelscore",
                          {"job_id": "preflight"})
    check_writable(prepared_for_adapter(add_score_tracks(loaded, plan, [stand_in]), adapter),
                   adapter, dry_run=True)


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


def write_edit(timeline: otio.schema.Timeline, path: Path, **adapter_args: Any) -> str:
    """Write a scored *timeline* to *path* (format from the extension) atomically.

    Returns the adapter name. Raises OutputError naming the limitation when the format cannot hold
    the edit (checked before writing where the writer would not notice, else when it raises);
    nothing is left at *path* then.
    """
    adapter = adapter_for_output(path)
    prepared = prepared_for_adapter(timeline, adapter, post_write=True)
    check_writable(prepared, adapter)
    args = dict(adapter_args)
    if adapter == "AAF":
        args.setdefault("use_empty_mob_ids", True)  # clips not read from an AAF have no mob id
    if adapter == "cmx_3600":
        args.setdefault("rate", float(timeline_rate(prepared)))
    with atomic_output(path) as tmp:
        try:
            if adapter == "otioz":
                _write_otioz(prepared, tmp, score_media_paths(timeline))
            elif adapter == "cmx_3600":
                text = otio.adapters.write_to_string(prepared, adapter_name=adapter, **args)
                tmp.write_text(_with_fcm(text, timeline_rate(prepared)), encoding="utf-8")
            elif adapter == "fcpx_xml" and (automated := automated_clips(prepared)):
                text = otio.adapters.write_to_string(prepared, adapter_name=adapter, **args)
                tmp.write_text(add_fcpx_volume(text, automated, timeline_rate(prepared)),
                               encoding="utf-8")
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
        except ADAPTER_ERRORS as exc:  # the writer gave up: name the limitation if we know it
            # OSError is not among them: atomic_output names it (disk full, permission) and
            # keeps the earlier file.
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


def _with_fcm(edl: str, rate: Fraction) -> str:
    """The cmx writer writes no ``FCM:`` line; readers need it to tell 29.97 DF from NDF."""
    fcm = "FCM: DROP FRAME" if is_drop_frame_rate(rate) else "FCM: NON-DROP FRAME"
    head, _newline, rest = edl.partition("\n")
    return f"{head}\n{fcm}\n{rest}" if head.startswith("TITLE:") else f"{fcm}\n{edl}"


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
