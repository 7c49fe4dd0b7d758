"""Put the normalised music WAV on a new audio track, frame-exactly, or leave nothing behind.

Sequence (resolve_api.md §7, §9): import the WAV into a ``reelscore`` bin (the pool's current
folder is restored), create a stereo audio track and read its index back (``AddTrack`` returns only
a Bool), name it ``Score``, ``AppendToTimeline`` with ``trackIndex``, ``mediaType`` 2 and an
**absolute** ``recordFrame``, then re-read the track: exactly one item, at the intended start, of
the intended duration, from our file. ``endFrame`` inclusivity differs between builds, so a
one-frame length error is corrected once by re-appending. Any other outcome undoes everything this
module added (items wherever they landed, the track, the imported clip, a bin it created) and
raises :class:`PlacementError` saying what happened. Optional scene markers are added last.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from reelscore.errors import ReelscoreError
from reelscore.resolve.api import (
    PlacementError,
    Ref,
    ResolveError,
    as_float,
    as_int,
    has_method,
    same_object,
)
from reelscore.timecode import exact_rate, frames_to_tc, tc_to_frames

log = logging.getLogger(__name__)

AUDIO_ONLY = 2  # clipInfo mediaType: 1 = video only, 2 = audio only


@dataclass(frozen=True)
class SceneMarker:
    frame: int  # relative to the timeline start (timeline markers are relative)
    name: str
    note: str = ""
    duration: int = 1
    color: str = "Sky"
    custom_data: str = ""


@dataclass
class Placement:
    track_index: int
    track_name: str
    record_frame: int  # absolute
    duration_frames: int
    file: Path
    item_id: str
    bin_name: str
    markers_added: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _same_path(a: Any, b: Path) -> bool:
    if not isinstance(a, str) or not a:
        return False
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _clip_frames(mpi: Any, fps: Fraction) -> int | None:
    frames = as_int(mpi.GetClipProperty("Frames"))
    if frames:
        return frames
    duration = mpi.GetClipProperty("Duration")  # imported WAVs may report Frames '' on 21
    if isinstance(duration, str) and duration.strip():
        try:
            return tc_to_frames(duration, fps)
        except ReelscoreError:
            return None
    return None


class _Undo:
    def __init__(self) -> None:
        self.steps: list[tuple[str, Callable[[], bool]]] = []
        self.problems: list[str] = []

    def add(self, what: str, fn: Callable[[], bool]) -> None:
        self.steps.append((what, fn))

    def run(self) -> list[str]:
        for what, fn in reversed(self.steps):
            try:
                ok = fn()
            except Exception as exc:  # undo must go on whatever a host call does
                ok = False
                log.debug("undo %s raised %s", what, exc)
            if not ok:
                self.problems.append(what)
        self.steps.clear()
        return self.problems


def place_music(
    project: Ref,
    timeline: Ref,
    wav: Path,
    *,
    record_frame: int,
    duration_frames: int,
    rate: Fraction,
    start_frame: int,
    track_name: str = "Score",
    bin_name: str = "reelscore",
    markers: Sequence[SceneMarker] = (),
    drop_frame: bool = False,
) -> Placement:
    """Place *wav* at absolute *record_frame* for *duration_frames* on a new audio track
    (timecodes in messages as the timeline shows them: *drop_frame*)."""
    wav = Path(wav).absolute()

    def tc(frame: int) -> str:
        return frames_to_tc(frame, rate, drop_frame=drop_frame)

    where = tc(record_frame)
    if record_frame < start_frame:
        raise ResolveError(
            f"record frame {record_frame} is before the timeline start {start_frame}: "
            "recordFrame must be absolute (GetStartFrame() + offset)"
        )
    if duration_frames <= 0:
        raise ResolveError(f"nothing to place: duration {duration_frames} frames")
    if not wav.is_file():
        raise PlacementError(f"the music file {str(wav)!r} does not exist; nothing was placed")
    undo = _Undo()
    pool = project.get("GetMediaPool", kind="MediaPool", label="the media pool")
    previous_timeline = project.probe("GetCurrentTimeline")
    switched = not same_object(previous_timeline, timeline.obj)

    def fail(message: str, hint: str | None = None) -> PlacementError:
        left = undo.run()
        text = message + "; everything reelscore added was removed"
        if left:
            text = message + "; could NOT undo: " + ", ".join(left)
            hint = (hint + "; " if hint else "") + "remove those by hand (Edit > Undo may work)"
        return PlacementError(text, hint=hint)

    try:
        mpi, notes = _import(pool, wav, bin_name, undo)
        fps_value = as_float(mpi.GetClipProperty("FPS"))
        fps = exact_rate(fps_value) if fps_value else rate
        # Source frames are counted at the clip's FPS (the project rate at import time).
        src_end = Fraction(duration_frames) * fps / rate
        end_frame = round(src_end)
        available = _clip_frames(mpi, fps)
        if available is not None and available + 1 < end_frame:
            raise fail(f"{wav.name} is {available} frames at {float(fps):g} fps in Resolve, "
                       f"shorter than the {duration_frames} frames to place")
        if switched:
            project.call("SetCurrentTimeline", timeline.obj, expect="true")
        index, name = _add_track(timeline, track_name, undo, notes)
        clip_info = {"mediaPoolItem": mpi, "startFrame": 0, "endFrame": end_frame,
                     "mediaType": AUDIO_ONLY, "trackIndex": index, "recordFrame": record_frame}
        item = _append_and_verify(pool, timeline, clip_info, index, wav, record_frame, tc,
                                  duration_frames, rate, undo, notes, fail)
    except ResolveError as exc:
        if isinstance(exc, PlacementError):
            if not undo.steps:  # raised by fail(): already undone
                raise
            raise fail(exc.message, exc.hint) from exc
        raise fail(f"placing {wav.name} at {where} failed: {exc.message}", exc.hint) from exc
    except BaseException:
        undo.run()  # a bug or Ctrl-C: still leave nothing half-placed
        raise
    finally:
        if switched and previous_timeline is not None:
            project.probe("SetCurrentTimeline", previous_timeline)
    placement = Placement(
        track_index=index, track_name=name, record_frame=record_frame,
        duration_frames=duration_frames, file=wav, item_id=str(item.probe("GetUniqueId") or ""),
        bin_name=bin_name, notes=notes,
    )
    for m in markers:
        ok = timeline.probe("AddMarker", m.frame, m.color, m.name, m.note, m.duration, m.custom_data)
        if ok:
            placement.markers_added.append(m.frame)
        else:
            placement.notes.append(f"marker {m.name!r} at {tc(start_frame + m.frame)} "
                                   "was not added (a marker may already sit on that frame)")
    log.info("placed %s on audio track %d (%s) at %s for %d frames", wav.name, index, name, where,
             duration_frames)
    return placement


def _import(pool: Ref, wav: Path, bin_name: str, undo: _Undo) -> tuple[Any, list[str]]:
    notes: list[str] = []
    root = pool.get("GetRootFolder", kind="Folder", label="the media pool's root folder")
    subs = root.call("GetSubFolderList", expect="list")
    folder = next((f for f in subs if f.GetName() == bin_name), None)
    if folder is None:
        folder = pool.call("AddSubFolder", root.obj, bin_name)
        undo.add(f"bin {bin_name!r}", lambda: bool(pool.probe("DeleteFolders", [folder])))
    bin_ref = Ref(folder, "Folder", f"bin {bin_name!r}")
    previous = pool.probe("GetCurrentFolder")
    pool.call("SetCurrentFolder", folder, expect="true")
    try:
        items = pool.probe("ImportMedia", [str(wav)])
    finally:
        if previous is not None:
            pool.probe("SetCurrentFolder", previous)
    if isinstance(items, list) and items:
        mpi = items[0]
        undo.add(f"media pool clip {wav.name!r}", lambda: bool(pool.probe("DeleteClips", [mpi])))
        return mpi, notes
    # Re-importing a known path may not create a new item: look for it in the bin.
    for clip in bin_ref.call("GetClipList", expect="list"):
        if _same_path(clip.GetClipProperty("File Path"), wav):
            notes.append(f"{wav.name} was already in bin {bin_name!r}; reused it")
            return clip, notes
    raise PlacementError(
        f"MediaPool.ImportMedia([{str(wav)!r}]) returned {items!r}: Resolve did not import the "
        "music file",
        hint="check the file plays in Resolve's Media page and that its folder is readable; "
        f"you can import {wav.name} by hand",
    )


def _add_track(timeline: Ref, wanted: str, undo: _Undo, notes: list[str]) -> tuple[int, str]:
    before = int(timeline.call("GetTrackCount", "audio", expect="number"))
    names = {str(timeline.probe("GetTrackName", "audio", i) or "") for i in range(1, before + 1)}
    timeline.call("AddTrack", "audio", "stereo", expect="true",
                  hint="the timeline may be locked or at its track limit")
    after = int(timeline.call("GetTrackCount", "audio", expect="number"))
    if after != before + 1:
        raise PlacementError(
            f"Timeline.AddTrack('audio', 'stereo') returned True but the audio track count went "
            f"from {before} to {after}; nothing was placed"
        )
    index = after
    if has_method(timeline.obj, "DeleteTrack"):
        undo.add(f"audio track {index}", lambda: bool(timeline.probe("DeleteTrack", "audio", index)))
    else:
        undo.add(f"the new empty audio track A{index} (this build has no DeleteTrack)", lambda: False)
    name = wanted
    n = 2
    while name in names:
        name = f"{wanted} {n}"
        n += 1
    if not timeline.probe("SetTrackName", "audio", index, name):
        notes.append(f"could not name audio track {index} {name!r}")
        name = str(timeline.probe("GetTrackName", "audio", index) or f"Audio {index}")
    sub = timeline.probe("GetTrackSubType", "audio", index)
    if isinstance(sub, str) and sub and sub != "stereo":
        notes.append(f"audio track {index} is {sub!r}, not stereo")
    return index, name


def _deleter(timeline: Ref, item: Any) -> Callable[[], bool]:
    return lambda: bool(timeline.probe("DeleteClips", [item], False))


def _append_and_verify(
    pool: Ref,
    timeline: Ref,
    clip_info: dict[str, Any],
    index: int,
    wav: Path,
    record_frame: int,
    tc: Callable[[int], str],
    duration_frames: int,
    rate: Fraction,
    undo: _Undo,
    notes: list[str],
    fail: Callable[..., PlacementError],
) -> Ref:
    where = tc(record_frame)
    for attempt in range(2):
        undo_mark = len(undo.steps)
        returned = pool.call("AppendToTimeline", [clip_info], expect="list")
        valid = [it for it in returned if it is not None and it.GetUniqueId()]
        for it in valid:
            # Wherever it landed, it is ours to remove if this fails.
            undo.add("a placed music item", _deleter(timeline, it))
        on_track = timeline.call("GetItemListInTrack", "audio", index, expect="any") or []
        if not on_track:
            elsewhere = [it for it in valid if it.GetTrackTypeAndIndex() != ["audio", index]]
            detail = (f"it landed on {elsewhere[0].GetTrackTypeAndIndex()} instead"
                      if elsewhere else "Resolve dropped it (an occupied span, or a build that "
                      "ignores trackIndex/recordFrame)")
            raise fail(f"AppendToTimeline returned {len(returned)} item(s) but audio track {index} "
                       f"is empty: {detail}")
        if len(on_track) != 1:
            raise fail(f"audio track {index} holds {len(on_track)} items after one append")
        item = Ref(on_track[0], "TimelineItem", f"the music on audio track {index}")
        start = as_int(item.call("GetStart", expect="number"))
        duration = as_int(item.call("GetDuration", expect="number"))
        mpi = item.probe("GetMediaPoolItem")
        path = mpi.GetClipProperty("File Path") if mpi is not None else None
        if not _same_path(path, wav):
            raise fail(f"the item on audio track {index} plays {path!r}, not {str(wav)!r}")
        if start != record_frame:
            raise fail(
                f"the music landed at frame {start} ({tc(start or 0)}) instead of "
                f"{record_frame} ({where})",
                hint="this Resolve build may ignore recordFrame; update Resolve or import the WAV "
                "by hand at the timecode shown",
            )
        if duration == duration_frames:
            return item
        off = duration_frames - (duration or 0)
        if attempt == 0 and abs(off) == 1:
            # endFrame inclusive on this build (or exclusive where we assumed inclusive): once.
            notes.append(f"clipInfo endFrame needed a {off:+d} frame correction on this build")
            timeline.call("DeleteClips", [on_track[0]], False, expect="true")
            del undo.steps[undo_mark:]
            clip_info = dict(clip_info, endFrame=clip_info["endFrame"] + off)
            continue
        raise fail(f"the music on audio track {index} is {duration} frames long, expected "
                   f"{duration_frames}")
    raise AssertionError("unreachable")
