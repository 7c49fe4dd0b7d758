"""The OTIO seam: load any edit, normalise it, and find its media.

* ``load_edit`` reads .otio/.otioz/.otiod, EDL, FCP 7 XML, FCPX XML and AAF through OTIO's adapters
  and returns a :class:`LoadedEdit` holding the *original* timeline (never modified: write-back
  works on a copy of it) and a *normalised* copy that the planning code reads:
  exact rates, ``global_start_time`` always set, the CMX reader's negative track ranges folded
  into ``global_start_time``.
* ``LoadedEdit.drop_frame`` is how the edit shows timecode (``HH:MM:SS;FF`` when set; only at
  29.97 and 59.94). It comes from the file where the format records it: an EDL's ``FCM:`` line or
  ``;`` timecodes, FCP 7 XML's sequence ``<displayformat>`` (kept by the adapter in
  ``metadata["fcp_xml"]``, also after conversion to .otio), FCPX's sequence ``tcFormat`` and the
  AAF composition's timecode ``Drop`` property (neither adapter keeps those two, so they are read
  from the file), Resolve's ``timelineDropFrameTimecode``; otherwise OTIO's own inference
  (drop frame at 29.97 and 59.94). ``--timecode df|ndf`` overrides it (``set_timecode``). The
  normalised timeline carries the flag in ``metadata["reelscore_timecode"]`` so pure code that
  holds only the timeline reads typed timecode the same way (``timeline_drop_frame``).
* ``MediaResolver`` turns a ``target_url`` of any of the forms editors write (file:// URLs,
  percent-encoded or not, POSIX and Windows paths, paths relative to the edit) into a local file,
  and relinks moved media by file name under ``--media-root`` folders.
"""

from __future__ import annotations

import copy
import logging
import ntpath
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse
from xml.etree import ElementTree

import opentimelineio as otio
from opentimelineio import opentime

from reelscore import remote_media
from reelscore.errors import EditReadError, InputError, UnsupportedError
from reelscore.pathmap import PathMap
from reelscore.timecode import (
    exact_rate,
    infer_drop_frame,
    is_drop_frame_rate,
    rate_label,
    rt_frames,
)

log = logging.getLogger(__name__)

EDL_SUFFIXES = {".edl"}
READ_SUFFIXES = {".otio", ".otioz", ".otiod", ".edl", ".xml", ".fcpxml", ".aaf"}
TIMECODE_KEY = "reelscore_timecode"  # normalised copy only: {"drop_frame": bool}

TimecodeChoice = Literal["df", "ndf"]


@dataclass
class LoadedEdit:
    path: Path | None
    adapter: str
    original: otio.schema.Timeline  # as read; write-back copies it, nothing mutates it
    timeline: otio.schema.Timeline  # normalised copy used for planning
    rate: Fraction
    raw_rate: float  # the rate value the file itself uses (for new items written back)
    record_offset_in_tracks: int = 0  # CMX: tracks start at -gst in their own space
    notes: list[str] = field(default_factory=list)
    drop_frame: bool = False  # timecode shown and typed as HH:MM:SS;FF (29.97/59.94 only)

    @property
    def start_frame(self) -> int:
        """Record frame of stack time 0 (global_start_time)."""
        return rt_frames(self.timeline.global_start_time, self.rate)

    def set_timecode(self, choice: TimecodeChoice | None) -> bool:
        """Apply ``--timecode df|ndf`` (None keeps the edit's own flag); return the flag in use."""
        if choice == "df" and not is_drop_frame_rate(self.rate):
            raise InputError(
                f"--timecode df: drop-frame timecode exists only at 29.97 and 59.94 fps; this "
                f"timeline runs at {rate_label(self.rate)} fps",
                hint="leave --timecode out, or use --timecode ndf",
            )
        if choice is not None:
            self.drop_frame = choice == "df"
        _stamp_drop_frame(self.timeline, self.drop_frame)
        return self.drop_frame


def timeline_drop_frame(timeline: otio.schema.Timeline, rate: Fraction) -> bool:
    """The drop-frame flag of a normalised timeline (OTIO's inference if it carries none)."""
    stamp = timeline.metadata.get(TIMECODE_KEY)
    if isinstance(stamp, Mapping) and isinstance(stamp.get("drop_frame"), bool):
        return bool(stamp["drop_frame"]) and is_drop_frame_rate(rate)
    return infer_drop_frame(rate)


def _stamp_drop_frame(timeline: otio.schema.Timeline, drop_frame: bool) -> None:
    timeline.metadata[TIMECODE_KEY] = {"drop_frame": drop_frame}


# ----------------------------------------------------------------------------------- loading


def _adapter_for(path: Path) -> str | None:
    suffix = path.suffix.lower().lstrip(".")
    if not suffix:
        return None
    try:
        return str(otio.adapters.from_filepath(str(path)).name)
    except otio.exceptions.NoKnownAdapterForExtensionError:
        return None


def _read_edl_text(path: Path) -> str:
    try:
        return path.read_text("utf-8", errors="replace")
    except OSError as exc:
        raise EditReadError(f"cannot read {str(path)!r}: {exc.strerror}") from exc


def _edl_drop_frame(text: str) -> bool:
    """An EDL's first ``FCM:`` line decides; without one, ``;`` timecodes mean drop frame."""
    fcm = re.search(r"^\s*FCM:\s*(NON[- ]?DROP|DROP)", text, re.I | re.M)
    if fcm is not None:
        return fcm.group(1).upper() == "DROP"
    return re.search(r"\d\d:\d\d:\d\d;\d\d", text) is not None


def _edl_rate_from_text(text: str) -> tuple[Fraction | None, str]:
    """What an EDL says about its rate: drop-frame timecode implies 30000/1001; nothing else is
    recorded in a CMX 3600 file, so other rates must come from --rate."""
    if _edl_drop_frame(text):
        return Fraction(30000, 1001), "drop-frame timecode"
    frames = [int(m) for m in re.findall(r"\b\d\d:\d\d:\d\d[:.](\d\d)\b", text)]
    top = max(frames, default=0)
    if top >= 25:
        why = f"timecodes reach frame {top:02d}, so the rate is 30 or 29.97 NDF"
    elif top == 24:
        why = "timecodes reach frame 24, so the rate is 25 or higher"
    else:
        why = f"timecodes stay below frame {top + 1:02d}, which fits 24, 25 and 30 alike"
    return None, why


def load_edit(
    path: str | os.PathLike[str],
    *,
    rate: Fraction | None = None,
    adapter_args: dict[str, object] | None = None,
    timecode: TimecodeChoice | None = None,
) -> LoadedEdit:
    """Read an edit file of any supported format and normalise it (see module docstring).
    *timecode* overrides the edit's drop-frame flag (``--timecode``)."""
    p = Path(path)
    if not p.exists():
        raise EditReadError(f"edit file not found: {str(p)!r}")
    if p.is_file() and p.stat().st_size == 0:
        raise EditReadError(f"the edit file {str(p)!r} is empty (0 bytes)",
                            hint="export the edit again (the copy may have been interrupted)")
    adapter = _adapter_for(p)
    if adapter is None:
        raise EditReadError(
            f"no OTIO adapter reads {p.suffix or 'files without an extension'!r} ({str(p)!r})",
            hint="supported: " + ", ".join(sorted(READ_SUFFIXES)),
        )
    args: dict[str, object] = dict(adapter_args or {})
    notes: list[str] = []
    drop_frame: bool | None = None
    if adapter == "cmx_3600":
        text = _read_edl_text(p)
        drop_frame = _edl_drop_frame(text)
        if rate is None:
            found, why = _edl_rate_from_text(text)
            if found is None:
                raise InputError(
                    f"{p.name}: an EDL does not record its frame rate ({why})",
                    hint="pass --rate, e.g. --rate 24, --rate 25 or --rate 30000/1001",
                )
            rate = found
            notes.append(f"EDL rate {rate_label(rate)} fps taken from the file ({why})")
        # The CMX reader wants the exact double (30000/1001, not 29.97).
        args.setdefault("rate", float(rate))
    try:
        result = otio.adapters.read_from_file(str(p), **args)
    except Exception as exc:  # adapters raise anything from ValueError to AAF parse errors
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = None
        if adapter == "cmx_3600" and "rate" in msg.lower():
            hint = "the EDL's timecodes do not fit that rate: pass the right one with --rate"
        if "UnsupportedSchema" in type(exc).__name__ or "schema" in msg.lower():
            hint = "the file was written by a newer OpenTimelineIO; re-export it or downgrade it"
        raise EditReadError(f"cannot read {p.name} with the {adapter} adapter: {msg}", hint=hint) from exc
    timeline = _pick_timeline(result, p)
    if adapter == "fcpx_xml":
        drop_frame = _fcpx_drop_frame(p)
    elif adapter == "AAF":
        drop_frame = _aaf_drop_frame(p, timeline)
    loaded = normalise(timeline, path=p, adapter=adapter, rate=rate, drop_frame=drop_frame)
    loaded.notes[:0] = notes
    loaded.set_timecode(timecode)
    return loaded


def _fcpx_drop_frame(path: Path) -> bool | None:
    """The project sequence's ``tcFormat`` ("DF"/"NDF"), which the fcpx adapter does not keep."""
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError):  # the adapter read it; then its flag is unknown
        return None
    sequence = root.find(".//project/sequence")
    fmt = sequence.get("tcFormat") if sequence is not None else None
    return None if fmt is None else fmt.upper() == "DF"


def _aaf_drop_frame(path: Path, timeline: otio.schema.Timeline) -> bool | None:
    """The ``Drop`` property of the timecode track of the composition the adapter read (matched
    by its MobID in ``metadata["AAF"]``); the AAF adapter keeps only the start it gives."""
    import aaf2  # installed with otio-aaf-adapter

    aaf_meta = timeline.metadata.get("AAF")
    mob_id = str(aaf_meta.get("MobID", "")) if isinstance(aaf_meta, Mapping) else ""
    with aaf2.open(str(path), "r") as f:
        for mob in f.content.compositionmobs():
            if mob_id and str(mob.mob_id) != mob_id:
                continue
            for slot in mob.slots:
                segment = slot.segment
                parts = list(segment.components) if hasattr(segment, "components") else [segment]
                for part in parts:
                    if type(part).__name__ == "Timecode":
                        return bool(part.drop)
    return None


def _fcp_xml_drop_frame(timeline: otio.schema.Timeline) -> bool | None:
    """FCP 7 XML's sequence ``<timecode><displayformat>``, kept by the fcp_xml adapter."""
    fcp = timeline.metadata.get("fcp_xml")
    tc = fcp.get("timecode") if isinstance(fcp, Mapping) else None
    fmt = tc.get("displayformat") if isinstance(tc, Mapping) else None
    return None if not isinstance(fmt, str) else fmt.strip().upper() == "DF"


def _pick_timeline(result: object, path: Path) -> otio.schema.Timeline:
    if isinstance(result, otio.schema.Timeline):
        return result
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline))
        if len(timelines) == 1:
            return timelines[0]
        if len(timelines) > 1:
            names = ", ".join(repr(t.name) for t in timelines[:5])
            raise UnsupportedError(
                f"{path.name} holds {len(timelines)} timelines ({names}); reelscore scores one",
                hint="export the sequence you want to score on its own",
            )
        raise UnsupportedError(
            f"{path.name} holds clips but no timeline (a clip list or bin, not an edit)",
            hint="export the project/sequence (timeline), not the browser clips",
        )
    raise UnsupportedError(f"{path.name} does not contain a timeline")


def timeline_rate(timeline: otio.schema.Timeline, rate: Fraction | None = None) -> Fraction:
    """The edit rate: the caller's, else global_start_time's, else the commonest video clip rate."""
    if rate is not None:
        return exact_rate(rate)
    if timeline.global_start_time is not None:
        return exact_rate(timeline.global_start_time.rate)
    counts: dict[Fraction, int] = {}
    for track in timeline.video_tracks() or timeline.tracks:
        for item in track.find_children():
            sr = getattr(item, "source_range", None)
            if sr is not None and not isinstance(item, otio.schema.Transition):
                r = exact_rate(sr.duration.rate)
                counts[r] = counts.get(r, 0) + 1
    if not counts:
        for track in timeline.tracks:
            if track.source_range is not None:
                return exact_rate(track.source_range.duration.rate)
        raise UnsupportedError("the timeline has no clips to take a frame rate from")
    return max(counts, key=lambda r: counts[r])


def _snap_rt(t: opentime.RationalTime) -> opentime.RationalTime:
    snapped = float(exact_rate(t.rate))
    if snapped == t.rate:
        return t
    return opentime.RationalTime(t.value, snapped)  # keep the frame count, fix the rate


def _snap_range(r: opentime.TimeRange | None) -> opentime.TimeRange | None:
    if r is None:
        return None
    return opentime.TimeRange(_snap_rt(r.start_time), _snap_rt(r.duration))


def _snap_all(timeline: otio.schema.Timeline) -> None:
    if timeline.global_start_time is not None:
        timeline.global_start_time = _snap_rt(timeline.global_start_time)
    objs: list[otio.core.SerializableObject] = [timeline.tracks, *timeline.tracks.find_children()]
    for obj in objs:
        if isinstance(obj, otio.schema.Transition):
            obj.in_offset = _snap_rt(obj.in_offset)
            obj.out_offset = _snap_rt(obj.out_offset)
            continue
        if hasattr(obj, "source_range"):
            obj.source_range = _snap_range(obj.source_range)
        for marker in getattr(obj, "markers", []):
            marker.marked_range = _snap_range(marker.marked_range)
        if isinstance(obj, otio.schema.Clip):
            for ref in obj.media_references().values():
                if getattr(ref, "available_range", None) is not None:
                    ref.available_range = _snap_range(ref.available_range)
    for marker in timeline.tracks.markers:
        marker.marked_range = _snap_range(marker.marked_range)


def normalise(
    timeline: otio.schema.Timeline,
    *,
    path: Path | None = None,
    adapter: str = "otio_json",
    rate: Fraction | None = None,
    drop_frame: bool | None = None,
) -> LoadedEdit:
    """Return a LoadedEdit whose ``timeline`` is a normalised deep copy of *timeline*.

    *drop_frame* is the flag the file records (None: the FCP 7 XML metadata if present, else
    OTIO's inference from the rate); it is kept only at 29.97 and 59.94."""
    raw_rate_value = (
        timeline.global_start_time.rate if timeline.global_start_time is not None else None
    )
    tl: otio.schema.Timeline = copy.deepcopy(timeline)
    _snap_all(tl)
    edit_rate = timeline_rate(tl, rate)
    notes: list[str] = []
    offset = 0
    starts = [t.source_range.start_time for t in tl.tracks if t.source_range is not None]
    if tl.tracks and len(starts) == len(tl.tracks) and all(s.value < 0 for s in starts):
        # CMX 3600 reader: record start stored as a negative track start, gst left None.
        firsts = {rt_frames(s, edit_rate) for s in starts}
        if len(firsts) == 1:
            offset = -firsts.pop()
            for t in tl.tracks:
                t.source_range = None
            tl.global_start_time = opentime.RationalTime(offset, float(edit_rate))
            notes.append("EDL record start moved from the tracks to global_start_time")
    if tl.global_start_time is None:
        tl.global_start_time = opentime.RationalTime(0, float(edit_rate))
    elif exact_rate(tl.global_start_time.rate) != edit_rate:
        frames = rt_frames(tl.global_start_time, edit_rate)
        tl.global_start_time = opentime.RationalTime(frames, float(edit_rate))
    raw_rate = raw_rate_value if raw_rate_value is not None else float(edit_rate)
    if drop_frame is None:
        drop_frame = _fcp_xml_drop_frame(timeline)
    if drop_frame is None:
        drop_frame = infer_drop_frame(edit_rate)
    loaded = LoadedEdit(
        path=path,
        adapter=adapter,
        original=timeline,
        timeline=tl,
        rate=edit_rate,
        raw_rate=raw_rate,
        record_offset_in_tracks=offset,
        notes=notes,
        drop_frame=drop_frame and is_drop_frame_rate(edit_rate),
    )
    loaded.set_timecode(None)
    return loaded


# ------------------------------------------------------------------------------ media paths


@dataclass(frozen=True)
class MediaLookup:
    path: Path | None
    tried: tuple[str, ...]

    @property
    def online(self) -> bool:
        return self.path is not None


def url_to_path_candidates(target_url: str) -> list[str]:
    """Every local path a ``target_url`` may mean, most literal first."""
    url = target_url.strip()
    out: list[str] = []
    if url.lower().startswith("file:"):
        parsed = urlparse(url)
        host = parsed.netloc
        path = unquote(parsed.path)
        if host and re.fullmatch(r"[A-Za-z]:", host):  # file://D:/Projects/x.mov
            out.append(host + path)
        elif host and host.lower() != "localhost":  # file://server/share/x.mov (UNC)
            out.append(f"//{host}{path}")
            out.append(path)
        else:
            if re.match(r"^/[A-Za-z]:[/\\]", path):  # file:///D:/x.mov
                out.append(path[1:])
            out.append(path)
        return out
    out.append(url)
    decoded = unquote(url)
    if decoded != url:
        out.append(decoded)
    return out


def _basename(p: str) -> str:
    return ntpath.basename(p) if ("\\" in p or re.match(r"^[A-Za-z]:", p)) else os.path.basename(p)


class MediaResolver:
    """Find the local file behind a media reference (see module docstring)."""

    def __init__(self, edit_dir: Path | None = None, media_roots: Sequence[Path] = (), *,
                 allow_remote: bool = False, path_map: PathMap | None = None) -> None:
        self.edit_dir = edit_dir
        # --path-map: media paths as the machine that made the edit saw them -> this machine's.
        self.path_map = path_map or PathMap()
        self.media_roots = [Path(r) for r in media_roots]
        # Network URLs are only followed when the user says so (reelscore.remote_media).
        self.allow_remote = allow_remote
        self._index: dict[str, list[Path]] | None = None
        for root in self.media_roots:
            if not root.is_dir():
                raise InputError(
                    f"--media-root {str(root)!r} is not a folder",
                    hint="pass folders that contain the edit's media files",
                )

    def _name_index(self) -> dict[str, list[Path]]:
        if self._index is None:
            index: dict[str, list[Path]] = {}
            for root in self.media_roots:
                for dirpath, _dirs, files in os.walk(root):
                    for name in files:
                        index.setdefault(name.lower(), []).append(Path(dirpath) / name)
            self._index = index
        return self._index

    def resolve_url(self, target_url: str, *, names: Iterable[str] = (),
                    fetch: bool = True) -> MediaLookup:
        tried: list[str] = []
        if target_url and remote_media.is_remote_url(target_url):
            lookup = self._resolve_remote(target_url, tried, fetch=fetch)
            if lookup is not None:
                return lookup
            remote_name = _basename(unquote(urlparse(target_url.strip()).path))
            names = [remote_name, *names] if remote_name else list(names)
            target_url = ""  # relink by name under --media-root, never as a local path
        candidates = url_to_path_candidates(target_url) if target_url else []
        for cand in candidates:
            p = Path(cand)
            if not p.is_absolute() and self.edit_dir is not None:
                rel = self.edit_dir / cand.replace("\\", "/")
                tried.append(str(rel))
                if rel.is_file():
                    return MediaLookup(rel, tuple(tried))
                continue
            hit = self.path_map.match(cand)
            if hit is not None:
                p = Path(hit[1])
                cand = f"{hit[1]} ({cand} mapped by --path-map {hit[0].text})"
            tried.append(cand)
            if p.is_file():
                return MediaLookup(p, tuple(tried))
        if self.media_roots:
            wanted = [_basename(c) for c in candidates] + [n for n in names if n]
            index = self._name_index()
            for name in wanted:
                hits = index.get(name.lower())
                if hits:
                    if len(hits) > 1:
                        log.warning("%d files named %r under --media-root; using %s",
                                    len(hits), name, hits[0])
                    return MediaLookup(hits[0], tuple(tried))
            tried.append(f"{len(wanted)} name(s) under --media-root")
        return MediaLookup(None, tuple(tried))

    def _resolve_remote(self, url: str, tried: list[str], *, fetch: bool) -> MediaLookup | None:
        shown = remote_media.url_for_message(url)
        if not self.allow_remote:
            tried.append(f"{shown} (a network URL: remote media is read only with "
                         "--allow-remote-media)")
            return None
        if not fetch:
            tried.append(f"{shown} (remote image sequences are not downloaded)")
            return None
        try:
            return MediaLookup(remote_media.fetch(url), (shown,))
        except InputError as exc:
            tried.append(exc.message)
            return None

    def resolve_clip(self, clip: otio.schema.Clip) -> MediaLookup:
        ref = clip.media_reference
        names = _clip_name_candidates(clip)
        if isinstance(ref, otio.schema.ExternalReference):
            return self.resolve_url(ref.target_url or "", names=names)
        if isinstance(ref, otio.schema.ImageSequenceReference):
            try:
                first = ref.target_url_for_image_number(0)
            except (IndexError, ValueError):  # no available_range: OTIO cannot count images
                number = str(ref.start_frame).zfill(ref.frame_zero_padding)
                first = f"{ref.target_url_base}{ref.name_prefix}{number}{ref.name_suffix}"
            return self.resolve_url(first, names=names, fetch=False)
        if isinstance(ref, otio.schema.MissingReference):
            url = ""
            meta = ref.metadata.get("Resolve_OTIO") if hasattr(ref, "metadata") else None
            if isinstance(meta, dict) and isinstance(meta.get("Media Url"), str):
                url = meta["Media Url"]
            if url:
                return self.resolve_url(url, names=names)
            if self.media_roots:
                return self.resolve_url("", names=names)
            return MediaLookup(None, ("no media reference in the edit",))
        return MediaLookup(None, (f"unsupported reference {type(ref).__name__}",))


def _clip_name_candidates(clip: otio.schema.Clip) -> list[str]:
    names = [clip.name] if clip.name else []
    cmx = clip.metadata.get("cmx_3600") if isinstance(clip.metadata, dict) else None
    if isinstance(cmx, dict):
        reel = cmx.get("reel")
        if isinstance(reel, str) and reel:
            names.append(reel)
        for comment in cmx.get("comments", []) or []:
            m = re.match(r"(?:SOURCE FILE|FROM CLIP NAME|FROM FILE):\s*(.+)", str(comment), re.I)
            if m:
                names.append(_basename(m.group(1).strip()))
    # "name (LAY3)" style EDL clip names: try the leading token too.
    for n in list(names):
        head = n.split(" ")[0]
        if head and head != n:
            names.append(head)
    return names


def iter_video_tracks(timeline: otio.schema.Timeline) -> Iterator[otio.schema.Track]:
    for track in timeline.tracks:
        if isinstance(track, otio.schema.Track) and track.kind == otio.schema.TrackKind.Video:
            yield track
