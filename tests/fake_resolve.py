"""A fake DaVinci Resolve, written from the documented scripting API (shared/reference/resolve_api.md).

What it keeps from the real thing, because reelscore's code must cope with it:

* the documented method names and signatures, 1-based track indices and timeline indices;
* frame spaces: ``GetStartFrame()``, item ``GetStart()/GetEnd()`` (end exclusive), clipInfo
  ``recordFrame`` and render ``MarkIn``/``MarkOut`` (inclusive) are absolute; timeline markers are
  relative to the timeline start; frame numbers are timecode-derived at the nominal integer rate;
* nothing raises: getters return ``None``, lists ``[]``, mutators ``False``; unknown methods
  exist (``__getattr__``) and return ``None``; ``hasattr`` is always true, ``dir`` lists only the
  documented methods;
* settings are strings; ``AddTrack`` returns a Bool only; an append onto an occupied span is
  silently dropped (the returned item has an empty unique id); clipInfo ``endFrame`` is exclusive
  (as measured on Studio 21.0) unless the ``end_frame_inclusive`` fault is set;
* a render queue that really renders the marked frame range of its timeline with ffmpeg (the top
  enabled video item per frame, titles as white, gaps as black), asynchronously, with job
  statuses, presets, formats/codecs and render modes;
* ``Timeline.Export(path, resolve.EXPORT_OTIO, resolve.EXPORT_NONE)`` writes a Resolve-shaped .otio.

Failure injection: add names to ``FakeResolve.faults`` (see ``FAULTS``).

Test media carry a frame code: each 64x64 frame shows 16 black/white blocks encoding
``media_id << 12 | frame_index``, so a rendered clip can be decoded back to (media, frame) pairs.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import opentimelineio as otio

from reelscore import ffmpeg_cli

FAULTS = {
    "no_project",  # ProjectManager.GetCurrentProject() -> None
    "no_timeline",  # Project.GetCurrentTimeline() -> None
    "import_fails",  # MediaPool.ImportMedia() -> []
    "add_track_fails",  # Timeline.AddTrack() -> False
    "add_job_fails",  # Project.AddRenderJob() -> ""
    "render_fails",  # render jobs end "Failed" without output
    "render_hangs",  # render jobs stay "Rendering" until StopRendering()
    "render_drops_last_frame",  # renders MarkIn..MarkOut-1 (treats MarkOut as exclusive)
    "append_ignores_track_index",  # AppendToTimeline puts every clip on track 1
    "append_ignores_record_frame",  # AppendToTimeline puts clips at the end of the track
    "end_frame_inclusive",  # clipInfo endFrame counted inclusive (older builds)
    "no_export_otio",  # Timeline.Export(EXPORT_OTIO) -> False, no file
    "no_delete_track",  # this build has no Timeline.DeleteTrack
    "wav_frames_empty",  # imported WAVs report Frames '' (parse Duration)
}

PAGES = ("media", "cut", "edit", "fusion", "color", "fairlight", "deliver")


class FakeObject:
    """Base: unknown attributes are methods returning None, as on real Resolve objects."""

    _resolve: FakeResolve

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("_"):
            raise AttributeError(name)

        def unknown(*args: Any, **kwargs: Any) -> None:
            self._resolve.unknown_calls.append((type(self).__name__, name, args))
            return None

        return unknown

    def _fault(self, name: str) -> bool:
        assert name in FAULTS, name
        return name in self._resolve.faults


# ------------------------------------------------------------------------------- media + codes

CODE_SIZE = 64
_BLOCK = CODE_SIZE // 4


def code_frame(code: int) -> np.ndarray:
    frame = np.full((CODE_SIZE, CODE_SIZE), 16, dtype=np.uint8)
    for bit in range(16):
        if code >> bit & 1:
            r, c = divmod(bit, 4)
            frame[r * _BLOCK:(r + 1) * _BLOCK, c * _BLOCK:(c + 1) * _BLOCK] = 235
    return frame


def decode_codes(frames: np.ndarray) -> list[int]:
    """(n, 64, 64) grey frames -> the codes they show (-1 for a blank/white frame)."""
    out: list[int] = []
    for f in frames:
        if f.mean() > 225:  # white title frame
            out.append(-2)
            continue
        code = 0
        for bit in range(16):
            r, c = divmod(bit, 4)
            block = f[r * _BLOCK + 4:(r + 1) * _BLOCK - 4, c * _BLOCK + 4:(c + 1) * _BLOCK - 4]
            if block.mean() > 128:
                code |= 1 << bit
        out.append(code if f.mean() > 8 else -1)
    return out


def read_codes(path: Path) -> list[tuple[int, int]]:
    """Every frame of a clip as (media_id, frame_index); (-1, -1) black, (-2, -2) white."""
    frames = ffmpeg_cli.decode_gray_frames(path, width=CODE_SIZE, height=CODE_SIZE)
    return [(c >> 12, c & 0xFFF) if c >= 0 else (c, c) for c in decode_codes(frames)]


def make_coded_media(
    path: Path, media_id: int, frames: int, rate: Fraction, *, start_tc: str | None = None
) -> Path:
    """An H.264 .mov whose frame i shows code (media_id, i); optional embedded start timecode."""
    assert 0 < media_id < 16 and frames < 4096
    data = np.stack([code_frame(media_id << 12 | i) for i in range(frames)])
    args = [
        *ffmpeg_cli.base_args(),
        "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{CODE_SIZE}x{CODE_SIZE}",
        "-r", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
        "-c:v", "libx264", "-preset", "ultrafast", "-qp", "8", "-pix_fmt", "yuv420p",
    ]
    if start_tc:
        args += ["-timecode", start_tc]
    args.append(ffmpeg_cli.file_arg(path))
    proc = subprocess.run(args, input=data.tobytes(), stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return path


def make_wav(path: Path, seconds: Fraction | float, *, rate: int = 48000) -> Path:
    """A quiet stereo 24-bit WAV of exactly round(seconds * rate) samples."""
    n = round(Fraction(seconds) * rate)
    t = np.arange(n) / rate
    tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype("<f4")
    stereo = np.stack([tone, tone], axis=1)
    args = [
        *ffmpeg_cli.base_args(),
        "-f", "f32le", "-ar", str(rate), "-ac", "2", "-i", "pipe:0", "-c:a", "pcm_s24le",
        ffmpeg_cli.file_arg(path),
    ]
    proc = subprocess.run(args, input=stereo.tobytes(), stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return path


# ------------------------------------------------------------------------------------ helpers


def wav_seconds(path: Path) -> Fraction:
    """Exact length of a PCM WAV from its header (what Resolve's importer knows)."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", path
    pos, rate, align, size = 12, 0, 0, 0
    while pos + 8 <= len(data):
        cid, n = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            rate = int.from_bytes(data[pos + 12:pos + 16], "little")
            align = int.from_bytes(data[pos + 20:pos + 22], "little")
        elif cid == b"data":
            size = min(n, len(data) - pos - 8)
        pos += 8 + n + (n & 1)
    return Fraction(size // align, rate)

_ids = itertools.count(1)


def _uid() -> str:
    return f"{next(_ids):08x}-{uuid.uuid4().hex[:12]}"


def rate_setting(rate: Fraction) -> str:
    """The string Resolve stores in ``timelineFrameRate`` ("23.976", "25", "29.97")."""
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


def _nominal(rate: Fraction) -> int:
    return round(rate)


def frames_to_tc(frames: int, rate: Fraction) -> str:
    n = _nominal(rate)
    s, f = divmod(frames, n)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"


def tc_to_frames(tc: str, rate: Fraction) -> int:
    hh, mm, ss, ff = (int(x) for x in tc.replace(";", ":").split(":"))
    return ((hh * 60 + mm) * 60 + ss) * _nominal(rate) + ff


# ------------------------------------------------------------------------------------ media pool


class FakeMediaPoolItem(FakeObject):
    def __init__(self, resolve: FakeResolve, props: dict[str, Any]) -> None:
        self._resolve = resolve
        self._props = props
        self._uid = _uid()
        self.folder: FakeFolder | None = None

    @classmethod
    def from_file(cls, resolve: FakeResolve, path: Path, project_rate: Fraction) -> FakeMediaPoolItem:
        info = ffmpeg_cli.probe(path)
        props: dict[str, Any] = {
            "Clip Name": path.name, "File Name": path.name, "File Path": str(path),
            "In": "", "Out": "", "Reel Name": "", "Drop frame": "0",
        }
        if info.has_video and info.frame_rate:
            fps = info.frame_rate
            frames = info.frame_count or 0
            start = tc_to_frames(info.timecode, fps) if info.timecode else 0
            props.update({
                "Type": "Video" if not info.has_audio else "Video + Audio",
                "FPS": float(fps), "Frames": str(frames),
                "Start": "0", "End": str(frames - 1),
                "Start TC": frames_to_tc(start, fps), "End TC": frames_to_tc(start + frames, fps),
                "Duration": frames_to_tc(frames, fps),
                "Resolution": f"{info.width}x{info.height}", "Video Codec": info.video_codec or "",
            })
        else:
            # A WAV's FPS is frozen to the project rate at import time [LIM].
            fps = project_rate
            seconds = wav_seconds(path)
            frames = round(seconds * fps)
            wav_frames = "" if "wav_frames_empty" in resolve.faults else str(frames)
            props.update({
                "Type": "Audio", "FPS": float(fps), "Frames": wav_frames,
                "Start": "0", "End": str(frames - 1),
                "Start TC": "00:00:00:00", "End TC": frames_to_tc(frames, fps),
                "Duration": frames_to_tc(frames, fps),
                "Sample Rate": str(info.sample_rate or ""), "Audio Ch": str(info.channels or ""),
                "Audio Codec": "Linear PCM",
            })
        if info.has_audio and "Sample Rate" not in props:
            props.update({"Sample Rate": str(info.sample_rate), "Audio Ch": str(info.channels)})
        return cls(resolve, props)

    @classmethod
    def title(cls, resolve: FakeResolve, name: str) -> FakeMediaPoolItem:
        return cls(resolve, {"Clip Name": name, "Type": "Generator"})

    # -- documented API
    def GetName(self) -> str:
        return str(self._props.get("Clip Name", ""))

    def GetClipProperty(self, key: str | None = None) -> Any:
        if key is None:
            return dict(self._props)
        return self._props.get(key, "")

    def SetClipProperty(self, key: str, value: Any) -> bool:
        if key not in self._props:
            return False
        self._props[key] = value
        return True

    def GetMediaId(self) -> str:
        return self._uid

    def GetUniqueId(self) -> str:
        return self._uid

    # -- for the fake
    @property
    def path(self) -> Path | None:
        p = self._props.get("File Path")
        return Path(p) if p else None

    @property
    def fps(self) -> Fraction:
        return Fraction(self._props["FPS"]).limit_denominator(1001)

    @property
    def frames(self) -> int:
        return int(self._props["End"]) + 1

    @property
    def is_audio(self) -> bool:
        return self._props.get("Type") == "Audio"

    @property
    def is_title(self) -> bool:
        return self._props.get("Type") == "Generator"


class FakeFolder(FakeObject):
    def __init__(self, resolve: FakeResolve, name: str, parent: FakeFolder | None) -> None:
        self._resolve = resolve
        self._name = name
        self.parent = parent
        self.clips: list[FakeMediaPoolItem] = []
        self.subfolders: list[FakeFolder] = []
        self._uid = _uid()

    def GetName(self) -> str:
        return self._name

    def GetClipList(self) -> list[FakeMediaPoolItem]:
        return list(self.clips)

    def GetSubFolderList(self) -> list[FakeFolder]:
        return list(self.subfolders)

    def GetUniqueId(self) -> str:
        return self._uid

    def GetIsFolderStale(self) -> bool:
        return False


class FakeMediaPool(FakeObject):
    def __init__(self, resolve: FakeResolve, project: FakeProject) -> None:
        self._resolve = resolve
        self._project = project
        self.root = FakeFolder(resolve, "Master", None)
        self.current = self.root

    def GetRootFolder(self) -> FakeFolder:
        return self.root

    def AddSubFolder(self, folder: FakeFolder, name: str) -> FakeFolder | None:
        if not isinstance(folder, FakeFolder) or not name:
            return None
        sub = FakeFolder(self._resolve, name, folder)
        folder.subfolders.append(sub)
        return sub

    def GetCurrentFolder(self) -> FakeFolder:
        return self.current

    def SetCurrentFolder(self, folder: FakeFolder) -> bool:
        if not isinstance(folder, FakeFolder) or not self._in_tree(folder):
            return False
        self.current = folder
        return True

    def _in_tree(self, folder: FakeFolder) -> bool:
        f: FakeFolder | None = folder
        while f is not None and f is not self.root:
            f = f.parent
        return f is self.root

    def ImportMedia(self, items: Sequence[Any]) -> list[FakeMediaPoolItem]:
        if self._fault("import_fails") or not isinstance(items, (list, tuple)):
            return []
        out: list[FakeMediaPoolItem] = []
        for p in items:
            if not isinstance(p, str) or not Path(p).is_file():
                continue
            # Re-importing a known path does not create a new item.
            if any(c.GetClipProperty("File Path") == p for c in self.current.clips):
                continue
            try:
                item = FakeMediaPoolItem.from_file(self._resolve, Path(p), self._project.rate)
            except Exception:
                continue
            item.folder = self.current
            self.current.clips.append(item)
            out.append(item)
        return out

    def DeleteClips(self, clips: Sequence[Any]) -> bool:
        ok = bool(clips)
        for c in clips:
            if isinstance(c, FakeMediaPoolItem) and c.folder is not None:
                c.folder.clips.remove(c)
                c.folder = None
            else:
                ok = False
        return ok

    def DeleteFolders(self, folders: Sequence[Any]) -> bool:
        ok = bool(folders)
        for f in folders:
            if isinstance(f, FakeFolder) and f.parent is not None:
                f.parent.subfolders.remove(f)
                if self.current is f:
                    self.current = self.root
                f.parent = None
            else:
                ok = False
        return ok

    def AppendToTimeline(self, items: Sequence[Any]) -> list[FakeTimelineItem]:
        tl = self._project.current_timeline
        if tl is None or not isinstance(items, (list, tuple)):
            return []
        out: list[FakeTimelineItem] = []
        for info in items:
            if isinstance(info, FakeMediaPoolItem):
                info = {"mediaPoolItem": info, "startFrame": 0, "endFrame": info.frames}
            if not isinstance(info, dict) or not isinstance(info.get("mediaPoolItem"), FakeMediaPoolItem):
                continue
            placed = tl._append(info)
            if placed is not None:
                out.append(placed)
        return out


class FakeMediaStorage(FakeObject):
    def __init__(self, resolve: FakeResolve) -> None:
        self._resolve = resolve

    def GetMountedVolumeList(self) -> list[str]:
        return ["/"]


# -------------------------------------------------------------------------------------- timeline


@dataclass
class FakeTrack:
    kind: str
    name: str
    sub_type: str = ""
    enabled: bool = True
    items: list[FakeTimelineItem] = field(default_factory=list)


class FakeTimelineItem(FakeObject):
    def __init__(
        self,
        resolve: FakeResolve,
        timeline: FakeTimeline | None,
        mpi: FakeMediaPoolItem | None,
        start: int,
        duration: int,
        left_offset: int,
        *,
        name: str | None = None,
        enabled: bool = True,
        valid: bool = True,
    ) -> None:
        self._resolve = resolve
        self.timeline = timeline
        self.mpi = mpi
        self.start = start
        self.duration = duration
        self.left_offset = left_offset
        self.name = name or (mpi.GetName() if mpi else "Item")
        self.enabled = enabled
        self._uid = _uid() if valid else ""

    def _track(self) -> tuple[str, int]:
        if self.timeline is not None:
            for kind, tracks in self.timeline.tracks.items():
                for i, t in enumerate(tracks, 1):
                    if self in t.items:
                        return kind, i
        return "", 0

    def GetName(self) -> str:
        return self.name

    def GetStart(self, subframe_precision: bool = False) -> int:
        return self.start

    def GetEnd(self, subframe_precision: bool = False) -> int:
        return self.start + self.duration

    def GetDuration(self, subframe_precision: bool = False) -> int:
        return self.duration

    def GetLeftOffset(self, subframe_precision: bool = False) -> int:
        return self.left_offset

    def GetRightOffset(self, subframe_precision: bool = False) -> int:
        if self.mpi is None or self.mpi.is_title:
            return 0
        return self.mpi.frames - self.left_offset - self.duration

    def GetSourceStartFrame(self) -> int:
        return self.left_offset

    def GetSourceEndFrame(self) -> int:
        return self.left_offset + self.duration - 1

    def GetMediaPoolItem(self) -> FakeMediaPoolItem | None:
        return None if self.mpi is None or self.mpi.is_title else self.mpi

    def GetClipEnabled(self) -> bool:
        return self.enabled

    def SetClipEnabled(self, enabled: bool) -> bool:
        self.enabled = bool(enabled)
        return True

    def GetUniqueId(self) -> str:
        return self._uid

    def GetTrackTypeAndIndex(self) -> list[Any]:
        kind, i = self._track()
        return [kind, i]

    def GetMarkers(self) -> dict[float, Any]:
        return {}


class FakeTimeline(FakeObject):
    def __init__(
        self,
        resolve: FakeResolve,
        project: FakeProject,
        name: str,
        rate: Fraction,
        start_frame: int,
    ) -> None:
        self._resolve = resolve
        self._project = project
        self._name = name
        self.rate = rate
        self.start_frame = start_frame
        self.drop_frame = False  # the timeline's timelineDropFrameTimecode setting
        self.tracks: dict[str, list[FakeTrack]] = {"video": [], "audio": [], "subtitle": []}
        self.markers: dict[float, dict[str, Any]] = {}
        self.mark_in_out: dict[str, dict[str, int]] = {}
        self._uid = _uid()

    # -- building (for tests)
    def add_video_track(self, name: str | None = None) -> FakeTrack:
        t = FakeTrack("video", name or f"Video {len(self.tracks['video']) + 1}")
        self.tracks["video"].append(t)
        return t

    def add_audio_track(self, name: str | None = None, sub_type: str = "stereo") -> FakeTrack:
        t = FakeTrack("audio", name or f"Audio {len(self.tracks['audio']) + 1}", sub_type)
        self.tracks["audio"].append(t)
        return t

    def put(
        self,
        kind: str,
        track: int,
        mpi: FakeMediaPoolItem,
        at: int,
        source_in: int,
        duration: int,
        *,
        enabled: bool = True,
    ) -> FakeTimelineItem:
        """Place *mpi* [source_in, source_in+duration) at relative record frame *at*."""
        while len(self.tracks[kind]) < track:
            (self.add_video_track if kind == "video" else self.add_audio_track)()
        item = FakeTimelineItem(self._resolve, self, mpi, self.start_frame + at, duration, source_in,
                                enabled=enabled)
        self.tracks[kind][track - 1].items.append(item)
        self.tracks[kind][track - 1].items.sort(key=lambda i: i.start)
        return item

    def __dir__(self) -> list[str]:
        # Builds without Timeline.DeleteTrack do not list it (probing uses `in dir(obj)`).
        names = set(super().__dir__())
        if "no_delete_track" in self._resolve.faults:
            names.discard("DeleteTrack")
        return sorted(names)

    # -- documented API
    def GetName(self) -> str:
        return self._name

    def SetName(self, name: str) -> bool:
        self._name = name
        return True

    def GetUniqueId(self) -> str:
        return self._uid

    def GetStartFrame(self) -> int:
        return self.start_frame

    def GetEndFrame(self) -> int:
        ends = [i.GetEnd() for ts in self.tracks.values() for t in ts for i in t.items]
        return max(ends, default=self.start_frame)

    def GetStartTimecode(self) -> str:
        if self.drop_frame:  # Resolve shows HH:MM:SS;FF; OTIO's conversion, not reelscore's
            return str(otio.opentime.to_timecode(otio.opentime.RationalTime(
                self.start_frame, float(self.rate)), float(self.rate), True))
        return frames_to_tc(self.start_frame, self.rate)

    def GetSetting(self, name: str | None = None) -> Any:
        settings = {
            "timelineFrameRate": rate_setting(self.rate),
            "timelineDropFrameTimecode": "1" if self.drop_frame else "0",
            "timelineResolutionWidth": "1920",
            "timelineResolutionHeight": "1080",
        }
        if name is None:
            return settings
        return settings.get(name, "")

    def SetSetting(self, name: str, value: str) -> bool:
        return False

    def GetTrackCount(self, track_type: str) -> int:
        return len(self.tracks.get(track_type, []))

    def _track_at(self, track_type: str, index: Any) -> FakeTrack | None:
        tracks = self.tracks.get(track_type)
        if tracks is None or not isinstance(index, int) or not 1 <= index <= len(tracks):
            return None
        return tracks[index - 1]

    def GetTrackName(self, track_type: str, index: int) -> str | None:
        t = self._track_at(track_type, index)
        return t.name if t else None

    def SetTrackName(self, track_type: str, index: int, name: str) -> bool:
        t = self._track_at(track_type, index)
        if t is None:
            return False
        t.name = name
        return True

    def GetTrackSubType(self, track_type: str, index: int) -> str | None:
        t = self._track_at(track_type, index)
        return t.sub_type if t else None

    def GetIsTrackEnabled(self, track_type: str, index: int) -> bool | None:
        t = self._track_at(track_type, index)
        return t.enabled if t else None

    def SetTrackEnable(self, track_type: str, index: int, enabled: bool) -> bool:
        t = self._track_at(track_type, index)
        if t is None:
            return False
        t.enabled = bool(enabled)
        return True

    def AddTrack(self, track_type: str, sub_type: Any = None) -> bool:
        if self._fault("add_track_fails") or track_type not in ("video", "audio", "subtitle"):
            return False
        audio_type = sub_type.get("audioType") if isinstance(sub_type, dict) else sub_type
        if track_type == "audio" and audio_type not in (None, "mono", "stereo", "5.1"):
            return False
        n = len(self.tracks[track_type]) + 1
        label = {"video": "Video", "audio": "Audio", "subtitle": "Subtitle"}[track_type]
        self.tracks[track_type].append(FakeTrack(track_type, f"{label} {n}", audio_type or "mono"))
        return True

    def DeleteTrack(self, track_type: str, index: int) -> bool:
        if self._track_at(track_type, index) is None:
            return False
        del self.tracks[track_type][index - 1]
        return True

    def GetItemListInTrack(self, track_type: str, index: int) -> list[FakeTimelineItem] | None:
        t = self._track_at(track_type, index)
        return None if t is None else list(t.items)

    def DeleteClips(self, items: Sequence[Any], ripple: bool = False) -> bool:
        ok = bool(items)
        for it in items:
            for ts in self.tracks.values():
                for t in ts:
                    if it in t.items:
                        t.items.remove(it)
                        break
                else:
                    continue
                break
            else:
                ok = False
        return ok

    def AddMarker(
        self,
        frame_id: float,
        color: str,
        name: str,
        note: str,
        duration: float,
        custom_data: str = "",
    ) -> bool:
        if float(frame_id) in self.markers or duration < 1 or frame_id < 0:
            return False
        self.markers[float(frame_id)] = {"color": color, "duration": duration, "note": note,
                                         "name": name, "customData": custom_data}
        return True

    def GetMarkers(self) -> dict[float, dict[str, Any]]:
        return {k: dict(v) for k, v in self.markers.items()}

    def DeleteMarkerAtFrame(self, frame: float) -> bool:
        return self.markers.pop(float(frame), None) is not None

    def DeleteMarkerByCustomData(self, data: str) -> bool:
        keys = [k for k, v in self.markers.items() if v.get("customData") == data]
        for k in keys:
            del self.markers[k]
        return bool(keys)

    def GetMarkInOut(self) -> dict[str, dict[str, int]]:
        return {k: dict(v) for k, v in self.mark_in_out.items()}

    def SetMarkInOut(self, mark_in: int, mark_out: int, type: str = "all") -> bool:
        kinds = ("video", "audio") if type == "all" else (type,)
        for k in kinds:
            self.mark_in_out[k] = {"in": mark_in, "out": mark_out}
        return True

    def ClearMarkInOut(self, type: str = "all") -> bool:
        self.mark_in_out.clear()
        return True

    def Export(self, file_name: str, export_type: Any, export_subtype: Any = None) -> bool:
        if not isinstance(export_type, int) or export_type != FakeResolve.EXPORT_OTIO:
            return False  # strings are silently rejected [LIM]
        if self._fault("no_export_otio"):
            return False
        otio.adapters.write_to_file(self._to_resolve_otio(), file_name, adapter_name="otio_json")
        return True

    # -- behaviour
    def _append(self, info: dict[str, Any]) -> FakeTimelineItem | None:
        mpi: FakeMediaPoolItem = info["mediaPoolItem"]
        media_type = info.get("mediaType")
        kind = "audio" if (media_type == 2 or (media_type is None and mpi.is_audio)) else "video"
        if kind == "video" and mpi.is_audio:
            return None
        index = info.get("trackIndex", 1)
        if self._fault("append_ignores_track_index"):
            index = 1
        track = self._track_at(kind, index)
        if track is None:
            return None
        start = int(info.get("startFrame", 0))
        end = int(info.get("endFrame", mpi.frames))
        if self._fault("end_frame_inclusive"):
            end += 1
        src_frames = end - start
        if src_frames <= 0:
            return None
        # Source frames are counted at the clip's FPS; floored to timeline frames [LIM].
        duration = int(Fraction(src_frames) * self.rate / mpi.fps)
        track_end = max((i.GetEnd() for i in track.items), default=self.start_frame)
        record = info.get("recordFrame", track_end)
        if self._fault("append_ignores_record_frame"):
            record = track_end
        record = int(record)
        item = FakeTimelineItem(self._resolve, self, mpi, record, duration, start)
        if any(i.start < record + duration and record < i.GetEnd() for i in track.items):
            # Overlap: silently dropped; the returned item is invalid [LIM].
            return FakeTimelineItem(self._resolve, None, mpi, record, duration, start, valid=False)
        track.items.append(item)
        track.items.sort(key=lambda i: i.start)
        return item

    def frame_sources(self, first: int, last: int) -> list[tuple[str, Path | None, int]]:
        """What Resolve would show at absolute frames first..last inclusive: per frame
        ("media", path, source frame) | ("title", None, 0) | ("black", None, 0)."""
        out: list[tuple[str, Path | None, int]] = []
        for f in range(first, last + 1):
            shown: tuple[str, Path | None, int] = ("black", None, 0)
            for t in reversed(self.tracks["video"]):  # higher tracks are on top
                if not t.enabled:
                    continue
                hit = next((i for i in t.items if i.enabled and i.start <= f < i.GetEnd()), None)
                if hit is None or hit.mpi is None:
                    continue
                if hit.mpi.is_title:
                    shown = ("title", None, 0)
                else:
                    shown = ("media", hit.mpi.path, hit.left_offset + f - hit.start)
                break
            out.append(shown)
        return out

    def _to_resolve_otio(self) -> otio.schema.Timeline:
        """Roughly what Resolve's own OTIO export looks like (resolve_api.md §8)."""
        r = float(self.rate)
        tl = otio.schema.Timeline(name=self._name)
        tl.global_start_time = otio.opentime.RationalTime(self.start_frame, r)
        tl.metadata["Resolve_OTIO"] = {"Resolve OTIO Meta Version": "1.0"}
        for t in self.tracks["video"]:
            track = otio.schema.Track(name=t.name, kind=otio.schema.TrackKind.Video)
            track.metadata["Resolve_OTIO"] = {"Locked": False}
            track.enabled = t.enabled
            pos = self.start_frame
            for it in t.items:
                if it.start > pos:
                    track.append(otio.schema.Gap(duration=otio.opentime.RationalTime(it.start - pos, r)))
                mpi = it.mpi
                if mpi is None or mpi.is_title:
                    ref: otio.core.MediaReference = otio.schema.GeneratorReference(
                        generator_kind="Text+")
                    src_start = 0
                    mr = r
                else:
                    fps = mpi.fps
                    tc0 = tc_to_frames(str(mpi.GetClipProperty("Start TC")), fps)
                    ref = otio.schema.ExternalReference(
                        target_url=str(mpi.path),
                        available_range=otio.opentime.TimeRange(
                            otio.opentime.RationalTime(tc0, float(fps)),
                            otio.opentime.RationalTime(mpi.frames, float(fps))),
                    )
                    src_start = tc0 + it.left_offset
                    mr = float(fps)
                clip = otio.schema.Clip(
                    name=it.name, media_reference=ref,
                    source_range=otio.opentime.TimeRange(
                        otio.opentime.RationalTime(src_start, mr),
                        otio.opentime.RationalTime(it.duration, mr)),
                )
                clip.enabled = it.enabled
                clip.metadata["Resolve_OTIO"] = {"Link Group ID": 1}
                track.append(clip)
                pos = it.GetEnd()
            tl.tracks.append(track)
        for t in self.tracks["audio"]:
            track = otio.schema.Track(name=t.name, kind=otio.schema.TrackKind.Audio)
            track.metadata["Resolve_OTIO"] = {"Audio Type": t.sub_type.capitalize(), "Locked": False}
            tl.tracks.append(track)
        for frame, m in sorted(self.markers.items()):
            tl.tracks.markers.append(otio.schema.Marker(
                name=m["name"], marked_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(frame, r),
                    otio.opentime.RationalTime(m["duration"], r)),
                metadata={"Resolve_OTIO": {"Keywords": [], "Note": m["note"]}},
            ))
        return tl


# ------------------------------------------------------------------------------- render queue

RENDER_FORMATS = {"QuickTime": "mov", "MP4": "mp4", "Wave": "wav"}
RENDER_CODECS = {
    "mov": {"Apple ProRes 422 HQ": "ProRes422HQ", "H.264": "H264"},
    "mp4": {"H.264": "H264", "H.265": "H265"},
    "wav": {},
}
RENDER_SETTING_KEYS = {
    "SelectAllFrames", "MarkIn", "MarkOut", "TargetDir", "CustomName", "UniqueFilenameStyle",
    "ExportVideo", "ExportAudio", "FormatWidth", "FormatHeight", "FrameRate", "PixelAspectRatio",
    "VideoQuality", "AudioCodec", "AudioBitDepth", "AudioSampleRate", "ColorSpaceTag", "GammaTag",
    "ExportAlpha", "EncodingProfile", "MultiPassEncode", "AlphaMode", "NetworkOptimization",
    "ClipStartFrame", "TimelineStartTimecode", "ReplaceExistingFilesInPlace",
}


@dataclass
class RenderState:
    settings: dict[str, Any]
    format: str
    codec: str


@dataclass
class FakeJob:
    info: dict[str, Any]
    timeline: FakeTimeline
    status: str = "Ready"
    percent: int = 0
    error: str = ""


class FakeProject(FakeObject):
    def __init__(self, resolve: FakeResolve, name: str, rate: Fraction) -> None:
        self._resolve = resolve
        self._name = name
        self.rate = rate
        self.timelines: list[FakeTimeline] = []
        self.current_timeline: FakeTimeline | None = None
        self.media_pool = FakeMediaPool(resolve, self)
        self.render = RenderState(
            {"TargetDir": "/Users/editor/Renders", "CustomName": "", "SelectAllFrames": True,
             "ExportVideo": True, "ExportAudio": True, "FormatWidth": 1920, "FormatHeight": 1080},
            "mov", "ProRes422HQ")
        self.render_mode = 0
        self.presets: dict[str, RenderState] = {
            "YouTube - 1080p": RenderState({"FormatWidth": 1920, "FormatHeight": 1080}, "mp4", "H264"),
            "H.264 Master": RenderState({"FormatWidth": 1920, "FormatHeight": 1080}, "mp4", "H264"),
        }
        self.jobs: list[FakeJob] = []
        self._job_counter = 0
        self._rendering: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # -- building (for tests)
    def add_timeline(
        self, name: str, rate: Fraction | None = None, start_tc: str = "01:00:00:00"
    ) -> FakeTimeline:
        r = rate or self.rate
        tl = FakeTimeline(self._resolve, self, name, r, tc_to_frames(start_tc, r))
        self.timelines.append(tl)
        if self.current_timeline is None:
            self.current_timeline = tl
        return tl

    def import_media(self, path: Path) -> FakeMediaPoolItem:
        item = FakeMediaPoolItem.from_file(self._resolve, path, self.rate)
        item.folder = self.media_pool.root
        self.media_pool.root.clips.append(item)
        return item

    def add_title(self, name: str = "Title") -> FakeMediaPoolItem:
        return FakeMediaPoolItem.title(self._resolve, name)

    # -- documented API
    def GetName(self) -> str:
        return self._name

    def GetUniqueId(self) -> str:
        return "project-" + self._name

    def GetMediaPool(self) -> FakeMediaPool:
        return self.media_pool

    def GetCurrentTimeline(self) -> FakeTimeline | None:
        if self._fault("no_timeline"):
            return None
        return self.current_timeline

    def SetCurrentTimeline(self, timeline: Any) -> bool:
        if timeline not in self.timelines:
            return False
        self.current_timeline = timeline
        return True

    def GetTimelineCount(self) -> int:
        return len(self.timelines)

    def GetTimelineByIndex(self, index: int) -> FakeTimeline | None:
        if not isinstance(index, int) or not 1 <= index <= len(self.timelines):
            return None
        return self.timelines[index - 1]

    def GetSetting(self, name: str | None = None) -> Any:
        settings = {"timelineFrameRate": rate_setting(self.rate), "timelineDropFrameTimecode": "0"}
        return settings if name is None else settings.get(name, "")

    def SetSetting(self, name: str, value: str) -> bool:
        return False

    # render formats / presets / settings
    def GetRenderFormats(self) -> dict[str, str]:
        return dict(RENDER_FORMATS)

    def GetRenderCodecs(self, fmt: str) -> dict[str, str]:
        return dict(RENDER_CODECS.get(fmt, {}))

    def GetCurrentRenderFormatAndCodec(self) -> dict[str, str]:
        return {"format": self.render.format, "codec": self.render.codec}

    def SetCurrentRenderFormatAndCodec(self, fmt: str, codec: str) -> bool:
        if codec not in RENDER_CODECS.get(fmt, {}).values():
            return False
        self.render.format, self.render.codec = fmt, codec
        return True

    def GetCurrentRenderMode(self) -> int:
        return self.render_mode

    def SetCurrentRenderMode(self, mode: int) -> bool:
        if mode not in (0, 1):
            return False
        self.render_mode = mode
        return True

    def GetRenderPresetList(self) -> list[str]:
        return list(self.presets)

    def LoadRenderPreset(self, name: str) -> bool:
        p = self.presets.get(name)
        if p is None:
            return False
        self.render = RenderState(dict(p.settings), p.format, p.codec)
        return True

    def SaveAsNewRenderPreset(self, name: str) -> bool:
        if not name or name in self.presets:
            return False
        self.presets[name] = RenderState(dict(self.render.settings), self.render.format,
                                         self.render.codec)
        return True

    def DeleteRenderPreset(self, name: str) -> bool:
        return self.presets.pop(name, None) is not None

    def SetRenderSettings(self, settings: dict[str, Any]) -> bool:
        if not isinstance(settings, dict) or any(k not in RENDER_SETTING_KEYS for k in settings):
            return False
        self.render.settings.update(settings)
        return True

    # render jobs
    def AddRenderJob(self) -> str:
        tl = self.current_timeline
        s = self.render.settings
        if self._fault("add_job_fails") or tl is None or not s.get("TargetDir"):
            return ""
        if s.get("SelectAllFrames"):
            mark_in, mark_out = tl.GetStartFrame(), tl.GetEndFrame() - 1
        else:
            mark_in = int(s.get("MarkIn", tl.GetStartFrame()))
            mark_out = int(s.get("MarkOut", tl.GetEndFrame() - 1))
        if mark_out < mark_in:
            return ""
        self._job_counter += 1
        ext = {"mov": "mov", "mp4": "mp4", "wav": "wav"}[self.render.format]
        name = s.get("CustomName") or tl.GetName()
        job_id = uuid.uuid4().hex
        info = {
            "JobId": job_id, "RenderJobName": f"Job {self._job_counter}", "TimelineName": tl.GetName(),
            "TargetDir": s["TargetDir"], "OutputFilename": f"{name}.{ext}",
            "IsExportVideo": bool(s.get("ExportVideo", True)),
            "IsExportAudio": bool(s.get("ExportAudio", True)),
            "MarkIn": mark_in, "MarkOut": mark_out, "FrameRate": rate_setting(tl.rate),
            "RenderMode": "Single clip" if self.render_mode == 1 else "Individual clips",
            "VideoFormat": self.render.format, "VideoCodec": self.render.codec,
            "FormatWidth": int(s.get("FormatWidth", 1920)),
            "FormatHeight": int(s.get("FormatHeight", 1080)), "PresetName": "Custom",
            "AudioCodec": s.get("AudioCodec"),  # None: the preset's own
            "AudioSampleRate": s.get("AudioSampleRate"),
        }
        self.jobs.append(FakeJob(info, tl))
        return job_id

    def GetRenderJobList(self) -> list[dict[str, Any]]:
        return [dict(j.info) for j in self.jobs]

    def GetRenderJobStatus(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if job is None:
            return {}
        with self._lock:
            out: dict[str, Any] = {"JobStatus": job.status, "CompletionPercentage": job.percent}
            if job.error:
                out["Error"] = job.error
        return out

    def DeleteRenderJob(self, job_id: str) -> bool:
        job = self._job(job_id)
        if job is None or job.status == "Rendering":
            return False
        self.jobs.remove(job)
        return True

    def DeleteAllRenderJobs(self) -> bool:
        if self.IsRenderingInProgress():
            return False
        self.jobs.clear()
        return True

    def _job(self, job_id: Any) -> FakeJob | None:
        return next((j for j in self.jobs if j.info["JobId"] == job_id), None)

    def StartRendering(self, *args: Any, **kwargs: Any) -> bool:
        ids: list[str]
        if args and isinstance(args[0], (list, tuple)):
            ids = list(args[0])
        elif args and all(isinstance(a, str) for a in args):
            ids = list(args)
        else:  # StartRendering(isInteractiveMode=False): every job
            ids = [j.info["JobId"] for j in self.jobs]
        jobs = [self._job(i) for i in ids]
        if not jobs or any(j is None for j in jobs) or self.IsRenderingInProgress():
            return False
        for j in jobs:
            assert j is not None
            j.status, j.percent, j.error = "Ready", 0, ""
        self._stop.clear()
        self._rendering = threading.Thread(target=self._render_all, args=(jobs,), daemon=True)
        self._rendering.start()
        return True

    def IsRenderingInProgress(self) -> bool:
        return self._rendering is not None and self._rendering.is_alive()

    def StopRendering(self) -> None:
        self._stop.set()
        if self._rendering is not None:
            self._rendering.join(timeout=30)

    def _render_all(self, jobs: list[FakeJob | None]) -> None:
        for job in jobs:
            assert job is not None
            if self._stop.is_set():
                break
            with self._lock:
                job.status = "Rendering"
            if self._fault("render_hangs"):
                self._stop.wait(60)
                with self._lock:
                    job.status, job.error = "Cancelled", "stopped by user"
                break
            if self._fault("render_fails"):
                time.sleep(0.05)
                with self._lock:
                    job.status, job.error = "Failed", "Render job failed (injected)"
                continue
            try:
                self._render_job(job)
            except Exception as exc:
                with self._lock:
                    job.status, job.error = "Failed", str(exc)
                continue
            with self._lock:
                job.status, job.percent = "Complete", 100

    def _render_job(self, job: FakeJob) -> None:
        info = job.info
        tl = job.timeline
        last = info["MarkOut"] - (1 if self._fault("render_drops_last_frame") else 0)
        frames = tl.frame_sources(info["MarkIn"], last)
        w, h = info["FormatWidth"], info["FormatHeight"]
        rate = tl.rate
        rate_arg = f"{rate.numerator}/{rate.denominator}"
        # Group frames into runs from one source with consecutive source frames.
        runs: list[tuple[str, Path | None, int, int]] = []
        for kind, path, src in frames:
            if runs:
                k, p, s0, n = runs[-1]
                if k == kind and p == path and (kind != "media" or s0 + n == src):
                    runs[-1] = (k, p, s0, n + 1)
                    continue
            runs.append((kind, path, src, 1))
        args = ffmpeg_cli.base_args()
        chains: list[str] = []
        inputs = 0
        for idx, (kind, path, s0, n) in enumerate(runs):
            norm = f"scale={w}:{h},setsar=1,format=yuv420p"
            if kind == "media":
                assert path is not None
                args += ["-i", ffmpeg_cli.file_arg(path)]
                chains.append(f"[{inputs}:v]trim=start_frame={s0}:end_frame={s0 + n},"
                              f"setpts=PTS-STARTPTS,{norm}[v{idx}]")
                inputs += 1
            else:
                color = "white" if kind == "title" else "black"
                chains.append(f"color=c={color}:s={w}x{h}:r={rate_arg},trim=end_frame={n},"
                              f"setpts=PTS-STARTPTS,{norm}[v{idx}]")
        concat = "".join(f"[v{i}]" for i in range(len(runs)))
        graph = ";".join(chains) + f";{concat}concat=n={len(runs)}:v=1:a=0[out]"
        out = Path(info["TargetDir"]) / info["OutputFilename"]
        out.parent.mkdir(parents=True, exist_ok=True)
        codec = {"H264": "libx264", "H265": "libx264", "ProRes422HQ": "libx264"}[info["VideoCodec"]]
        sound: list[str] = []
        if info["IsExportAudio"]:  # the timeline's mix: a 440 Hz tone stands in for it
            seconds = len(frames) * rate.denominator / rate.numerator
            args += ["-f", "lavfi", "-i", f"sine=f=440:r=48000:d={seconds:.6f}"]
            sound = ["-map", f"{inputs}:a", "-c:a", "aac", "-ac", "2"]
        args += ["-filter_complex", graph, "-map", "[out]", "-r", rate_arg,
                 "-frames:v", str(len(frames)), "-c:v", codec, "-preset", "ultrafast",
                 "-pix_fmt", "yuv420p", *sound, ffmpeg_cli.file_arg(out)]
        ffmpeg_cli.run(args, f"fake Resolve rendering {info['OutputFilename']}")
        self._resolve.rendered.append(dict(info))


# -------------------------------------------------------------------------------- the app


class FakeProjectManager(FakeObject):
    def __init__(self, resolve: FakeResolve) -> None:
        self._resolve = resolve
        self.project: FakeProject | None = None
        self.saves = 0

    def GetCurrentProject(self) -> FakeProject | None:
        if self._fault("no_project"):
            return None
        return self.project

    def SaveProject(self) -> bool:
        self.saves += 1
        return self.project is not None

    def GetProjectListInCurrentFolder(self) -> list[str]:
        return [self.project.GetName()] if self.project else []


class FakeResolve(FakeObject):
    # Export constants are live values on the resolve object; strings are rejected.
    EXPORT_AAF = 0
    EXPORT_DRT = 1
    EXPORT_EDL = 2
    EXPORT_FCP_7_XML = 3
    EXPORT_FCPXML_1_8 = 4
    EXPORT_OTIO = 17
    EXPORT_NONE = 0

    def __init__(
        self,
        *,
        product: str = "DaVinci Resolve Studio",
        version: Sequence[Any] = (20, 3, 2, 9, ""),
        project_rate: Fraction = Fraction(24),
    ) -> None:
        self._resolve = self
        self.faults: set[str] = set()
        self.unknown_calls: list[tuple[str, str, tuple[Any, ...]]] = []
        self.rendered: list[dict[str, Any]] = []
        self.product = product
        self.version = list(version)
        self.page = "edit"
        self.pm = FakeProjectManager(self)
        self.pm.project = FakeProject(self, "Feature", project_rate)
        self.storage = FakeMediaStorage(self)

    @property
    def project(self) -> FakeProject:
        assert self.pm.project is not None
        return self.pm.project

    def GetProjectManager(self) -> FakeProjectManager:
        return self.pm

    def GetMediaStorage(self) -> FakeMediaStorage:
        return self.storage

    def GetProductName(self) -> str:
        return self.product

    def GetVersion(self) -> list[Any]:
        return list(self.version)

    def GetVersionString(self) -> str:
        return ".".join(str(v) for v in self.version if v != "")

    def GetCurrentPage(self) -> str:
        return self.page

    def OpenPage(self, name: str) -> bool:
        if name not in PAGES:
            return False
        self.page = name
        return True

    def Fusion(self) -> None:
        return None

    # -- for tests: everything a run may change, to compare before/after
    def snapshot(self) -> dict[str, Any]:
        p = self.project

        def folder(f: FakeFolder) -> dict[str, Any]:
            return {"name": f.GetName(), "clips": [c.GetClipProperty("File Path") for c in f.clips],
                    "sub": [folder(s) for s in f.subfolders]}

        return json.loads(json.dumps({
            "page": self.page,
            "current_timeline": p.current_timeline.GetName() if p.current_timeline else None,
            "timelines": [{
                "name": t.GetName(),
                "tracks": {k: [{"name": tr.name, "sub": tr.sub_type, "enabled": tr.enabled,
                                "items": [(i.name, i.start, i.duration, i.left_offset) for i in tr.items]}
                               for tr in ts] for k, ts in t.tracks.items()},
                "markers": {str(k): v for k, v in t.markers.items()},
                "marks": t.mark_in_out,
            } for t in p.timelines],
            "media_pool": folder(p.media_pool.root),
            "current_folder": p.media_pool.current.GetName(),
            "render": {"settings": p.render.settings, "format": p.render.format,
                       "codec": p.render.codec, "mode": p.render_mode},
            "presets": sorted(p.presets),
            "jobs": [j.info["JobId"] for j in p.jobs],
        }, default=str))


# ------------------------------------------------------------------------ a stub UIManager


class StubElement:
    """A UIManager element: keeps its props as attributes and its children."""

    def __init__(self, kind: str, props: dict[str, Any], children: list[Any]) -> None:
        self.__dict__["kind"] = kind
        self.__dict__["props"] = dict(props)
        self.__dict__["children"] = children
        self.__dict__["items"] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self.props:
            return self.props[name]
        if name == "CurrentText":
            i = self.props.get("CurrentIndex", 0)
            return self.items[i] if 0 <= i < len(self.items) else ""
        return {"Text": "", "PlainText": "", "CurrentIndex": 0, "Checked": False, "Value": 0}.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "CurrentText":  # not settable on the real thing either; pick by index
            raise AttributeError("CurrentText is read-only")
        self.props[name] = value

    def AddItem(self, text: str) -> None:
        self.items.append(text)

    def AddItems(self, texts: list[str]) -> None:
        self.items.extend(texts)

    def Clear(self) -> None:
        self.items.clear()

    def walk(self) -> list[StubElement]:
        out = [self]
        for c in self.children:
            if isinstance(c, StubElement):
                out += c.walk()
        return out


class _Events:
    def __init__(self) -> None:
        self.__dict__["handlers"] = {}

    def __getattr__(self, name: str) -> _EventSlot:
        return _EventSlot(self.handlers, name)


class _EventSlot:
    def __init__(self, handlers: dict[tuple[str, str], Any], element: str) -> None:
        self.__dict__["h"] = handlers
        self.__dict__["e"] = element

    def __setattr__(self, event: str, fn: Any) -> None:
        self.h[(self.e, event)] = fn

    def __getattr__(self, event: str) -> Any:
        return self.h.get((self.e, event))


class StubWindow:
    def __init__(self, props: dict[str, Any], root: StubElement) -> None:
        self.props = props
        self.root = root
        self.On = _Events()
        self.shown = False

    def Find(self, element_id: str) -> StubElement | None:
        return next((e for e in self.root.walk() if e.props.get("ID") == element_id), None)

    def GetItems(self) -> dict[str, StubElement]:
        return {e.props["ID"]: e for e in self.root.walk() if "ID" in e.props}

    def Show(self) -> None:
        self.shown = True

    def Hide(self) -> None:
        self.shown = False

    def RecalcLayout(self) -> None:
        return None

    def fire(self, element_id: str, event: str, ev: dict[str, Any] | None = None) -> Any:
        fn = self.On.handlers.get((element_id, event))
        assert fn is not None, f"no handler for {element_id}.{event}"
        return fn(ev or {"who": element_id, "what": event})


class StubUIManager:
    """``fusion.UIManager``: element constructors taking (props[, children])."""

    def __getattr__(self, kind: str) -> Callable[..., StubElement]:
        if kind.startswith("_"):
            raise AttributeError(kind)

        def make(*args: Any, **kwargs: Any) -> StubElement:
            props: dict[str, Any] = {}
            children: list[Any] = []
            for a in args:
                if isinstance(a, dict):
                    props.update(a)
                elif isinstance(a, (list, tuple)):
                    children.extend(a)
                elif isinstance(a, StubElement):
                    children.append(a)
            props.update(kwargs)
            return StubElement(kind, props, children)

        return make


class StubDispatcher:
    """``bmd.UIDispatcher(ui)``; ``RunLoop`` runs ``script`` (a list of callables on the window)."""

    def __init__(self, ui: StubUIManager) -> None:
        self.ui = ui
        self.windows: list[StubWindow] = []
        self.script: list[Callable[[StubWindow], Any]] = []
        self.exited = False

    def AddWindow(self, props: dict[str, Any], *children: Any) -> StubWindow:
        kids: list[Any] = []
        for c in children:
            kids.extend(c if isinstance(c, (list, tuple)) else [c])
        root = StubElement("Window", props, kids)
        w = StubWindow(props, root)
        self.windows.append(w)
        return w

    def RunLoop(self) -> None:
        for step in self.script:
            if self.exited:
                break
            step(self.windows[-1])

    def ExitLoop(self) -> None:
        self.exited = True


class StubFusion:
    def __init__(self) -> None:
        self.UIManager = StubUIManager()


class StubBmd:
    def __init__(self, resolve: Any | None = None) -> None:
        self.resolve = resolve
        self.dispatchers: list[StubDispatcher] = []

    def UIDispatcher(self, ui: StubUIManager) -> StubDispatcher:
        d = StubDispatcher(ui)
        self.dispatchers.append(d)
        return d

    def scriptapp(self, name: str) -> Any:
        return self.resolve if name == "Resolve" else None


# --------------------------------------------------------------------- the standard test cut

# Relative record frames. V1: A[10,40)@0, B[5,45)@30, gap 70-80, A[50,80)@80 (ends 110).
# V2: a title at 20-25 (white), a disabled B[60,70) at 90-100 (not shown). Markers at 30 and 80.
CUT_END = 110
MARK_IN, MARK_OUT = 12, 95  # relative; out inclusive


@dataclass
class Cut:
    resolve: FakeResolve
    timeline: FakeTimeline
    rate: Fraction
    media_a: Path
    media_b: Path
    tc_a: int  # media A's embedded start timecode in frames

    @property
    def start(self) -> int:
        return self.timeline.start_frame


def expected_picture(frame: int) -> tuple[int, int]:
    """(media id, file frame) the standard cut shows at relative frame *frame*."""
    if 20 <= frame < 25:
        return (-2, -2)
    if frame < 30:
        return (1, 10 + frame)
    if frame < 70:
        return (2, 5 + frame - 30)
    if frame < 80:
        return (-1, -1)
    return (1, 50 + frame - 80)


_media_cache: dict[tuple[str, Fraction], tuple[Path, Path]] = {}


def cut_media(folder: Path, rate: Fraction) -> tuple[Path, Path]:
    key = (str(folder), rate)
    if key not in _media_cache:
        folder.mkdir(parents=True, exist_ok=True)
        tag = f"{rate.numerator}_{rate.denominator}"
        a = make_coded_media(folder / f"A_{tag}.mov", 1, 120, rate, start_tc="01:00:00:00")
        b = make_coded_media(folder / f"B_{tag}.mov", 2, 96, rate)
        _media_cache[key] = (a, b)
    return _media_cache[key]


def build_cut(
    media_dir: Path,
    rate: Fraction,
    *,
    start_tc: str = "01:00:00:00",
    resolve: FakeResolve | None = None,
    marks: bool = True,
    dialogue: bool = True,
) -> Cut:
    resolve = resolve or FakeResolve(project_rate=rate)
    project = resolve.project
    a, b = cut_media(media_dir, rate)
    tl = project.add_timeline("Cut v3", rate, start_tc)
    mpi_a, mpi_b = project.import_media(a), project.import_media(b)
    tl.add_video_track()
    tl.put("video", 1, mpi_a, 0, 10, 30)
    tl.put("video", 1, mpi_b, 30, 5, 40)
    tl.put("video", 1, mpi_a, 80, 50, 30)
    tl.add_video_track()
    v2 = tl.tracks["video"][1]
    v2.items.append(FakeTimelineItem(resolve, tl, project.add_title("Main Title"),
                                     tl.start_frame + 20, 5, 0))
    tl.put("video", 2, mpi_b, 90, 60, 10, enabled=False)
    if dialogue:
        tl.add_audio_track("Dialogue")
        tl.put("audio", 1, mpi_b, 0, 0, 60)
    tl.AddMarker(30, "Blue", "Scene 2", "the chase", 1)
    tl.AddMarker(80, "Green", "Scene 3", "", 1)
    if marks:
        tl.SetMarkInOut(tl.start_frame + MARK_IN, tl.start_frame + MARK_OUT)
    return Cut(resolve, tl, rate, a, b, tc_to_frames("01:00:00:00", rate))


RATES = [Fraction(24000, 1001), Fraction(25), Fraction(30000, 1001)]
START_FRAMES = {Fraction(24000, 1001): 86400, Fraction(25): 90000, Fraction(30000, 1001): 108000}
