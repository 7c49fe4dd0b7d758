"""The edit's own sound, mixed down to stereo over any range, sample-exact at 48 kHz.

``mix_edit_audio(edit, start, frames)`` returns float32 samples shaped ``(n, 2)`` for stack
frames ``[start, start + frames)`` (0 = the timeline's global start, as ``ScorePlan`` frames),
``n = frames_to_samples(start + frames) - frames_to_samples(start)``: sample 0 is the sample of
frame ``start``. Where each clip sounds is :mod:`reelscore.mixdown_layout`'s job (tracks, gaps,
mutes, nesting, crossfades), levels are :mod:`reelscore.mixdown_levels`'.

Media: every clip's file is found with the edit's :class:`~reelscore.timeline.MediaResolver`
(``--media-root`` relinks), probed, and checked *before* anything is decoded:
:func:`offline_audio` lists the clips whose media is missing, unreadable, without sound or of
a channel layout with no fold rule below (clip, track, record timecode, file, problem);
:func:`mix_edit_audio` refuses with that list.

Where a clip's media time starts in its file: the media reference's ``available_range`` start
(the source timecode; an NTSC rate pair counts frames alike), else the file's own start timecode,
else its first sample.

Decoding: one ffmpeg per stretch of one file that the range uses (clips of the same file less
than ``MERGE_GAP_S`` apart share it), resampled to 48 kHz by ffmpeg, seeking to a whole 10 ms
(whole second for rates not divisible by 100) so the first sample out is known exactly (see
:mod:`reelscore.mixdown_decode` for why the seek has a pre-roll), streamed in chunks (memory stays bounded whatever the length). Stretches decode in parallel.

Fold to stereo (the rule, per source channel layout, ffmpeg's channel order):

* mono: both sides at -3 dB (x 0.7071, a centre pan at the constant-power pan law);
* stereo: as is;
* 5.1 (FL FR FC LFE BL BR): ITU-R BS.775: ``L = FL + 0.7071 FC + 0.7071 BL``,
  ``R = FR + 0.7071 FC + 0.7071 BR``, LFE left out; 7.1 adds the side pair the same way;
* anything else (quad, 4-channel poly WAV, …) is refused as an unsupported layout.

Nothing is normalised: a loud mix may exceed full scale (the samples are float).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from reelscore.conform import frames_to_samples
from reelscore.errors import InputError, MediaError, OfflineMediaError, ReelscoreError
from reelscore.ffmpeg_cli import MediaInfo, probe
from reelscore.mixdown_decode import PlacedPiece, Span, decode_span
from reelscore.mixdown_layout import (
    AudioLayout,
    AudioPiece,
    AudioTrackInfo,
    build_layout,
    describe_tracks,
    seconds,
    to_sample,
)
from reelscore.timecode import exact_rate, frames_to_tc, tc_to_frames
from reelscore.timeline import LoadedEdit, MediaResolver

log = logging.getLogger(__name__)

MERGE_GAP_S = 5  # decoding 5 s nobody hears costs less than starting another ffmpeg
MINUS_3DB = 0.7071067811865476
PROBE_WORKERS = 8  # a probe is mostly an ffmpeg starting: they overlap well


@dataclass(frozen=True)
class OfflineAudio:
    """A clip in the range whose sound cannot be mixed, and why."""

    clip: str
    track: int
    timecode: str  # record timecode where it starts sounding (the edit's drop-frame flag)
    path: str  # the file found, or the paths tried
    problem: str


def audio_tracks(edit: LoadedEdit) -> list[AudioTrackInfo]:
    """The edit's audio tracks, numbered as the NLE numbers them (A1 = 1)."""
    return describe_tracks(edit.timeline)


def fold_matrix(channels: int) -> np.ndarray | None:
    """The (2, channels) matrix folding a layout to stereo (module docstring), None if none."""
    c = MINUS_3DB
    if channels == 1:
        return np.array([[c], [c]], dtype=np.float32)
    if channels == 2:
        return np.eye(2, dtype=np.float32)
    if channels == 6:  # FL FR FC LFE BL BR
        return np.array([[1, 0, c, 0, c, 0], [0, 1, c, 0, 0, c]], dtype=np.float32)
    if channels == 8:  # FL FR FC LFE BL BR SL SR
        return np.array([[1, 0, c, 0, c, 0, c, 0], [0, 1, c, 0, 0, c, 0, c]], dtype=np.float32)
    return None


def _resolver(edit: LoadedEdit, resolver: MediaResolver | None) -> MediaResolver:
    if resolver is not None:
        return resolver
    return MediaResolver(edit.path.parent if edit.path is not None else None)


def _layout(edit: LoadedEdit, start: int, frames: int,
            tracks: Sequence[int | str] | None) -> AudioLayout:
    rate = edit.rate
    return build_layout(edit.timeline, Fraction(start) / rate, Fraction(start + frames) / rate,
                        tracks)


def _timecode(edit: LoadedEdit, piece: AudioPiece) -> str:
    frame = int(piece.start * edit.rate)
    return frames_to_tc(edit.start_frame + frame, edit.rate, drop_frame=edit.drop_frame)


def _problem(info: MediaInfo) -> str | None:
    if not info.has_audio:
        return "has no audio stream"
    if info.channels is None or fold_matrix(info.channels) is None:
        shown = "an unknown number of" if info.channels is None else str(info.channels)
        return (f"{shown} audio channels: no fold rule to stereo (mono, stereo, 5.1 and 7.1 "
                "are mixed)")
    return None


def _probe(path: Path) -> MediaInfo | str:
    """The file's media info, or what is wrong with it."""
    try:
        if path.stat().st_size == 0:
            return "cannot be read as audio (the file is empty, 0 bytes)"
        return probe(path)
    except MediaError as exc:
        detail = exc.message.rsplit(" as media: ", 1)[-1]
        return f"cannot be read as audio ({detail})"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"


def _media(layout: AudioLayout, edit: LoadedEdit, resolver: MediaResolver,
           ) -> tuple[dict[int, tuple[Path, MediaInfo]], list[OfflineAudio]]:
    found: dict[int, tuple[Path, MediaInfo]] = {}
    bad: list[OfflineAudio] = []
    lookups = [resolver.resolve_clip(piece.clip) for piece in layout.pieces]
    paths = sorted({lookup.path for lookup in lookups if lookup.path is not None})
    with ThreadPoolExecutor(max_workers=PROBE_WORKERS) as pool:  # each probe is one ffmpeg
        probed = dict(zip(paths, pool.map(_probe, paths), strict=True))
    for i, (piece, lookup) in enumerate(zip(layout.pieces, lookups, strict=True)):
        tc = _timecode(edit, piece)
        if lookup.path is None:
            bad.append(OfflineAudio(piece.name, piece.track, tc,
                                    "; ".join(lookup.tried) or "nothing", "offline"))
            continue
        info = probed[lookup.path]
        if isinstance(info, str):
            bad.append(OfflineAudio(piece.name, piece.track, tc, str(lookup.path), info))
            continue
        problem = _problem(info)
        if problem is not None:
            bad.append(OfflineAudio(piece.name, piece.track, tc, str(lookup.path), problem))
            continue
        found[i] = (lookup.path, info)
    return found, bad


def offline_audio(edit: LoadedEdit, start: int, frames: int, *,
                  tracks: Sequence[int | str] | None = None,
                  resolver: MediaResolver | None = None) -> list[OfflineAudio]:
    """Clips sounding in stack frames [start, start + frames) whose media is missing, unreadable,
    silent (no audio stream) or of an unsupported layout."""
    layout = _layout(edit, start, frames, tracks)
    return _media(layout, edit, _resolver(edit, resolver))[1]


def audio_problems_error(bad: list[OfflineAudio]) -> ReelscoreError:
    """The one error for a list of :class:`OfflineAudio` (offline clips get the relink hint)."""
    if all(b.problem == "offline" for b in bad):
        return OfflineMediaError([(f"{b.clip} (A{b.track})", b.timecode, b.path) for b in bad],
                                 hint="relink the audio with --media-root DIR (files are "
                                 "matched by name)")
    lines = [f"{len(bad)} audio clip(s) cannot be mixed; nothing was decoded:"]
    for b in bad:
        lines.append(f"  - {b.clip!r} on A{b.track} at {b.timecode}: {b.path}: {b.problem}")
    return MediaError("\n".join(lines), hint="relink these clips to readable audio files "
                      "(--media-root DIR), or leave their tracks out")


def _origin(piece: AudioPiece, info: MediaInfo) -> Fraction:
    """Media time (seconds, in the clip's media space) of the file's first sample."""
    clip = piece.clip
    avail = getattr(clip.media_reference, "available_range", None)
    src = clip.source_range
    if avail is not None:
        start = avail.start_time
        if src is not None:
            a, s = exact_rate(start.rate), exact_rate(src.start_time.rate)
            if a != s and max(a, s) / min(a, s) == Fraction(1001, 1000):
                # Timecode counts: 30 and 29.97 number frames alike (the render's rule too).
                return Fraction(start.value).limit_denominator(1_000_000) / s
        return seconds(start)
    if info.timecode and info.frame_rate:
        try:
            return Fraction(tc_to_frames(info.timecode, info.frame_rate)) / info.frame_rate
        except InputError:
            log.warning("%s: ignoring its start timecode %s", info.path.name, info.timecode)
    return Fraction(0)


def place(layout: AudioLayout, media: dict[int, tuple[Path, MediaInfo]], out0: int,
          sample_rate: int) -> list[PlacedPiece]:
    """Each piece's file samples and output samples (pieces shorter than a sample vanish)."""
    placed: list[PlacedPiece] = []
    for i, piece in enumerate(layout.pieces):
        path, info = media[i]
        a = to_sample(piece.start, sample_rate) - out0
        b = to_sample(piece.end, sample_rate) - out0
        if b <= a:
            continue
        file_start = to_sample(piece.source - _origin(piece, info), sample_rate)
        assert info.channels is not None
        ramps = tuple((to_sample(r.start, sample_rate) - out0, to_sample(r.end, sample_rate) - out0,
                       r.rising) for r in piece.ramps)
        placed.append(PlacedPiece(piece.name, piece.track, path, info.channels, file_start, a,
                                  b - a, piece.gain, ramps))
    return placed


def spans(placed: list[PlacedPiece], sample_rate: int,
          media: dict[Path, MediaInfo]) -> list[Span]:
    """Stretches of files to decode: pieces of one file less than MERGE_GAP_S apart share one."""
    by_path: dict[Path, list[PlacedPiece]] = {}
    for p in placed:
        by_path.setdefault(p.path, []).append(p)
    out: list[Span] = []
    gap = MERGE_GAP_S * sample_rate
    for path, pieces in by_path.items():
        pieces.sort(key=lambda p: p.file_start)
        group: list[PlacedPiece] = []
        end = 0
        for p in pieces:
            if group and p.file_start > end + gap:
                out.append(Span.of(path, media[path], group, sample_rate))
                group = []
            end = max(end, p.file_start + p.count) if group else p.file_start + p.count
            group.append(p)
        if group:
            out.append(Span.of(path, media[path], group, sample_rate))
    out.sort(key=lambda s: -s.length)  # longest first: parallel decoders finish together
    return out


@dataclass(frozen=True)
class MixJob:
    """Everything a mixdown will do, decided before decoding: its length and its spans."""

    samples: int
    spans: tuple[Span, ...]

    def key(self) -> list[dict[str, object]]:
        """A fingerprint of the mix (files with size and mtime, placements, gains, ramps)."""
        return [span.key() for span in sorted(self.spans, key=lambda s: (str(s.path), s.seek))]


def prepare_mix(edit: LoadedEdit, start: int, frames: int, *,
                tracks: Sequence[int | str] | None = None, sample_rate: int = 48000,
                resolver: MediaResolver | None = None) -> MixJob:
    """Lay out, find and check every clip's media, and cut the decoding into spans."""
    out0 = frames_to_samples(start, edit.rate, sample_rate)
    n = frames_to_samples(start + frames, edit.rate, sample_rate) - out0
    layout = _layout(edit, start, frames, tracks)
    for note in layout.ignored:
        log.warning("mixdown: %s", note)
    media, bad = _media(layout, edit, _resolver(edit, resolver))
    if bad:
        raise audio_problems_error(bad)
    placed = place(layout, media, out0, sample_rate)
    infos = {path: info for path, info in media.values()}
    return MixJob(n, tuple(spans(placed, sample_rate, infos)))


def default_workers() -> int:
    """Decoders at once: one per core and one more, so a core never idles while a thread
    adds a chunk into the mix (its decoder waits on the full pipe meanwhile)."""
    return (os.cpu_count() or 1) + 1


def run_mix(job: MixJob, *, sample_rate: int = 48000, workers: int | None = None) -> np.ndarray:
    """Decode *job*'s spans (in parallel) and sum them: float32 (samples, 2)."""
    workers = workers or default_workers()
    mix = np.zeros((job.samples, 2), dtype=np.float32)
    lock = threading.Lock()
    if workers <= 1 or len(job.spans) <= 1:
        for span in job.spans:
            decode_span(span, mix, lock, sample_rate, fold_matrix(span.channels))
        return mix
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(decode_span, span, mix, lock, sample_rate,
                               fold_matrix(span.channels)) for span in job.spans]
        for future in futures:
            future.result()
    return mix


def mix_edit_audio(edit: LoadedEdit, start: int, frames: int, *,
                   tracks: Sequence[int | str] | None = None,
                   sample_rate: int = 48000,
                   resolver: MediaResolver | None = None,
                   workers: int | None = None) -> np.ndarray:
    """The stereo mixdown of stack frames [start, start + frames) (module docstring).

    *tracks*: None = every enabled audio track; else names (``"DX"``, ``"A2"``) or 1-based
    numbers. Raises InputError for an unknown track (naming those there are) and the error of
    :func:`audio_problems_error` when any clip's media cannot be mixed, before decoding.
    """
    job = prepare_mix(edit, start, frames, tracks=tracks, sample_rate=sample_rate,
                      resolver=resolver)
    return run_mix(job, sample_rate=sample_rate, workers=workers)


__all__ = ["AudioTrackInfo", "MixJob", "OfflineAudio", "audio_problems_error", "audio_tracks",
           "fold_matrix", "mix_edit_audio", "offline_audio", "prepare_mix", "run_mix"]
