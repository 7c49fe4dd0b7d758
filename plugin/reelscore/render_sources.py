"""Which frames of which file make each clip: picture segments -> runs of file frames.

* The picture layer says, for every output frame, which source frame is visible
  (:mod:`reelscore.picture`). :func:`source_runs` turns those segments into runs: output frames
  taken from one source (:class:`SourceRun`), each decoded by its own ffmpeg process
  (:mod:`reelscore.render_ffmpeg`). A run's file frames may be any sequence: speed changes skip or
  repeat frames, a freeze decodes one frame, a reversed run is decoded forwards once and played
  from memory, in chunks of at most ``max_hold_frames`` (``reelscore.render.MAX_HOLD_BYTES`` at
  the proxy size; each chunk seeks to its own keyframe).
* Dissolves and fades: the parts of a blend (:class:`MixRun`) each have their runs and the weight
  the picture gives each output frame (black for fades).
* Media kinds (:class:`MediaOrigins`, :class:`SourceMedia`): movies (frame index from the edit's
  media time, the file's own rate for seeking), still images (one frame held), image sequences
  (ffmpeg's image2 demuxer from the first image needed).

Gaps, generators and offline clips are black runs. Every run has a ``key()`` for the clip's cache
key (sources' size and mtime, the exact frame maps and blend weights). Impure only for probing
sources (:func:`reelscore.ffmpeg_cli.probe`, when the edit does not say enough)."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio

from reelscore.errors import InputError, MediaError, UnsupportedError
from reelscore.ffmpeg_cli import probe
from reelscore.picture import Num, Segment, media_frame
from reelscore.timecode import exact_rate, tc_to_frames
from reelscore.timeline import MediaLookup

log = logging.getLogger(__name__)

# Image files: one picture, held for as long as the edit uses it (Resolve exports 1-frame stills).
STILL_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dpx", ".exr",
                            ".tga", ".webp", ".gif", ".psd", ".jp2"})
# A rate OTIO may use that is not a frame rate (FCPX-style 600 or 90000, or rate 1): media time
# is then converted through seconds at the file's own rate.
_PLAUSIBLE_RATES = (Fraction(10), Fraction(240))


@dataclass(frozen=True)
class SourceRun:
    """Output frames [start, start+count) taken from one media file (or black).

    ``file_frames`` holds, for every output frame, the 0-based index of the frame in the file
    (for an image sequence: in the sequence, image number ``first_number + index``), and
    ``src_rate`` is the rate the file's frames are timed at (used for seeking).
    """

    start: int
    count: int
    path: Path | None  # None = black
    file_frames: tuple[int, ...] = ()  # file frame index (0-based) for every output frame
    src_rate: Fraction = Fraction(0)
    clip_name: str = ""
    reason: str = ""
    kind: str = "movie"  # "movie" | "still" | "sequence"
    pattern: str = ""  # image sequences: printf-style file pattern (image2 demuxer)
    first_number: int = 0  # image sequences: image number of index 0

    def key(self) -> dict[str, object]:
        if self.path is None:
            return {"black": self.count}
        st = self.path.stat()
        key: dict[str, object] = {
            "path": str(self.path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "first": self.file_frames[0], "last": self.file_frames[-1], "n": self.count,
            "step": _describe_steps(self.file_frames), "rate": str(self.src_rate),
            "kind": self.kind}
        if self.kind == "sequence":
            last = Path(self.pattern % (self.first_number + max(self.file_frames)))
            lst = last.stat() if last.exists() else None
            key.update(pattern=self.pattern, first_number=self.first_number,
                       last_image=[lst.st_size, lst.st_mtime_ns] if lst else None)
        return key


@dataclass(frozen=True)
class MixPartRuns:
    """One picture of a blend: its runs (covering the blend's frames in order) and weights."""

    runs: tuple[SourceRun, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True)
class MixRun:
    """Output frames [start, start+count), each a weighted sum of its parts (a dissolve)."""

    start: int
    count: int
    parts: tuple[MixPartRuns, ...]

    def key(self) -> dict[str, object]:
        weights = np.asarray([p.weights for p in self.parts], dtype=np.float64)
        return {"mix": [[r.key() for r in p.runs] for p in self.parts],
                "weights": hashlib.sha1(np.round(weights, 6).tobytes()).hexdigest()[:16]}


Run = SourceRun | MixRun


def _describe_steps(frames: tuple[int, ...]) -> str:
    h = hashlib.sha1(np.asarray(frames, dtype=np.int64).tobytes()).hexdigest()
    return h[:16]


def _plausible(rate: Fraction) -> bool:
    return _PLAUSIBLE_RATES[0] <= rate <= _PLAUSIBLE_RATES[1]


def _same_count(a: Fraction, b: Fraction) -> bool:
    """Rates whose frame counts (timecode) mean the same thing: equal, or an NTSC pair."""
    return a == b or a * 1001 == b * 1000 or b * 1001 == a * 1000


def _in_rate(value: Fraction, from_rate: Fraction, to_rate: Fraction) -> Fraction:
    """A frame count at *from_rate* as a count at *to_rate* (timecode counts for NTSC pairs)."""
    return value if _same_count(from_rate, to_rate) else value * to_rate / from_rate


@dataclass(frozen=True)
class SourceMedia:
    """How a clip's media frames (at the OTIO source rate) map to frames of its file."""

    path: Path
    kind: str  # "movie" | "still" | "sequence"
    origin: Fraction  # media frame (src_rate) shown by file frame 0
    scale: Fraction  # file frames per media frame (1: frame for frame)
    file_rate: Fraction  # rate the file frame indices count at (seeking uses the file's own)
    pattern: str = ""
    first_number: int = 0

    def file_frame(self, instant: Num, backward: bool = False) -> int:
        """The file frame shown at media *instant* (played backwards: see media_frame)."""
        if self.kind == "still":
            return 0
        x = (instant - self.origin) * self.scale
        if self.scale != 1 or x.denominator > 1_000_000:
            # Through seconds at another rate: guard against representation noise.
            x += -Fraction(1, 1_000_000) if backward else Fraction(1, 1_000_000)
        return media_frame(x, backward)


class MediaOrigins:
    """Where a clip's media space starts in its file (available_range, else embedded timecode),
    the file's own rate, and what kind of input it is (movie, still image, image sequence)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, str], SourceMedia] = {}
        self._lock = threading.Lock()

    def origin(self, clip: otio.schema.Clip, path: Path, src_rate: Fraction) -> int:
        """Media frame (at src_rate) of the file's first frame (rounded)."""
        return round(self.media(clip, path, src_rate).origin)

    def media(self, clip: otio.schema.Clip, path: Path, src_rate: Fraction) -> SourceMedia:
        ref = clip.media_reference
        avail = getattr(ref, "available_range", None)
        akey = "" if avail is None else f"{avail.start_time.value}@{avail.start_time.rate}"
        key = (str(path), str(src_rate), akey)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        media = self._describe(ref, avail, path, src_rate)
        with self._lock:
            self._cache[key] = media
        return media

    @staticmethod
    def _describe(ref: otio.core.SerializableObject, avail: otio.opentime.TimeRange | None,
                  path: Path, src_rate: Fraction) -> SourceMedia:
        if isinstance(ref, otio.schema.ImageSequenceReference):
            if int(ref.frame_step) != 1:
                raise UnsupportedError(
                    f"image sequence {ref.name_prefix!r} uses every {ref.frame_step}th image; "
                    "only consecutive images (frame_step 1) can be rendered",
                    hint="render the sequence to a movie, or score with --reference MOVIE")
            origin = Fraction(0)
            if avail is not None:
                origin = _in_rate(Fraction(avail.start_time.value).limit_denominator(1_000_000),
                                  exact_rate(avail.start_time.rate), src_rate)
            pad = int(ref.frame_zero_padding)
            pattern = str(path.parent / f"{ref.name_prefix}%0{pad}d{ref.name_suffix}"
                          if pad else path.parent / f"{ref.name_prefix}%d{ref.name_suffix}")
            seq_rate = exact_rate(float(ref.rate)) if ref.rate and ref.rate > 0 else src_rate
            return SourceMedia(path, "sequence", origin, Fraction(1), seq_rate, pattern,
                               int(ref.start_frame))
        if path.suffix.lower() in STILL_SUFFIXES:
            return SourceMedia(path, "still", Fraction(0), Fraction(1), src_rate)
        # The file is only probed when the edit does not say enough: no available range (its
        # timecode says where media time starts) or a rate that is no frame rate. Seeking uses
        # the file's own rate, probed when a run is decoded (not for cache keys).
        if avail is not None and _plausible(src_rate):
            origin = _in_rate(Fraction(avail.start_time.value).limit_denominator(1_000_000),
                              exact_rate(avail.start_time.rate), src_rate)
            return SourceMedia(path, "movie", origin, Fraction(1), src_rate)
        info = probe(path)
        if info.is_still:
            return SourceMedia(path, "still", Fraction(0), Fraction(1), src_rate)
        file_rate = info.frame_rate or src_rate
        if _plausible(src_rate):
            scale = Fraction(1)  # frame for frame at the edit's idea of the source's rate
            count_rate = src_rate
        else:
            scale = file_rate / src_rate
            count_rate = file_rate
        if avail is not None:
            origin = _in_rate(Fraction(avail.start_time.value).limit_denominator(1_000_000),
                              exact_rate(avail.start_time.rate), src_rate)
        else:
            origin = Fraction(0)
            if info.timecode:
                try:
                    tc = tc_to_frames(info.timecode, file_rate)
                except InputError:
                    # A timecode that does not fit the file's rate (frames past the rate) or
                    # cannot be read: media time then starts at the file's first frame.
                    log.warning("%s: ignoring its start timecode %s at %s fps", path.name,
                                info.timecode, file_rate)
                    tc = 0
                origin = _in_rate(Fraction(tc), file_rate, src_rate)
        return SourceMedia(path, "movie", origin, scale, count_rate)


def _file_runs(
    out_start: int, count: int, clip: otio.schema.Clip, media_start: Num, step: Num,
    backward: bool, media: SourceMedia, max_hold: int,
) -> list[SourceRun]:
    """Output frames of one clip as runs of file frames (reversed runs in bounded chunks)."""
    frames = [media.file_frame(media_start + i * step, backward) for i in range(count)]
    if frames and min(frames) < 0:
        raise MediaError(
            f"clip {clip.name!r} starts {-min(frames)} frame(s) before its media "
            f"({media.path.name})",
            hint="the edit's source in point lies before the file's first frame; check the "
            "clip's available range or the file's start timecode",
        )
    common = {"src_rate": media.file_rate, "clip_name": clip.name, "kind": media.kind,
              "pattern": media.pattern, "first_number": media.first_number}
    monotonic = all(b >= a for a, b in zip(frames, frames[1:]))
    if monotonic or max(frames) - min(frames) < max_hold:
        return [SourceRun(out_start, count, media.path, tuple(frames), **common)]
    runs: list[SourceRun] = []
    i = 0
    while i < count:
        lo = hi = frames[i]
        j = i + 1
        while j < count and max(hi, frames[j]) - min(lo, frames[j]) < max_hold:
            lo, hi = min(lo, frames[j]), max(hi, frames[j])
            j += 1
        runs.append(SourceRun(out_start + i, j - i, media.path, tuple(frames[i:j]), **common))
        i = j
    return runs


def source_runs(
    segments: list[Segment],
    *,
    timeline_rate: Fraction,
    lookups: dict[int, MediaLookup],
    origins: MediaOrigins,
    max_hold_frames: int = 180,
) -> list[Run]:
    """Turn picture segments into runs of file frames (impure only for probing sources)."""

    def runs_of(start: int, count: int, clip: otio.schema.Clip | None, media_start: Num,
                step: Num, backward: bool, src_rate: Fraction, reason: str) -> list[SourceRun]:
        if clip is None:
            return [SourceRun(start, count, None, reason=reason or "gap")]
        lookup = lookups.get(id(clip))
        if lookup is None or lookup.path is None:
            return [SourceRun(start, count, None, clip_name=clip.name,
                              reason="generator" if lookup is None else "offline")]
        media = origins.media(clip, lookup.path, src_rate)
        return _file_runs(start, count, clip, media_start, step, backward, media,
                          max_hold_frames)

    runs: list[Run] = []
    for seg in segments:
        if seg.parts:
            parts = tuple(
                MixPartRuns(tuple(runs_of(seg.start, seg.count, part.clip, part.media_start,
                                          part.step, part.backward, part.src_rate, "fade")),
                            part.weights)
                for part in seg.parts)
            runs.append(MixRun(seg.start, seg.count, parts))
            continue
        runs.extend(runs_of(seg.start, seg.count, seg.clip, seg.media_start, seg.step,
                            seg.backward, seg.src_rate, seg.reason))
    return runs
