"""``--duck``: which audio tracks are dialogue, and the score ducked under them.

Dialogue tracks are the ones named with ``--dialogue-track`` (a track's name, case-insensitive,
or its number: ``2`` or ``A2``); without any, the tracks whose names are DIA, DX, Dialogue or VO,
case-insensitive, optionally followed by a number (``DX 2``, ``VO1``). A named track that does not
exist, or an edit without any dialogue track, is an :class:`InputError` listing the audio tracks
the edit has -- raised while planning (:func:`check_dialogue`), before anything is rendered.

:func:`duck_music` mixes the dialogue tracks down over the scored range (:mod:`reelscore.mixdown`,
disabled tracks and clips left out) and ducks the conformed score by the side chain of
:mod:`reelscore.ducking`. The ducked score is then normalised as delivered (the loudness target is
met by what is placed, ducking included); the unducked score is normalised on its own and placed
beside it as a muted alternative track.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from reelscore.ducking import DuckParams, DuckReport, duck
from reelscore.errors import InputError
from reelscore.mixdown import (
    AudioTrackInfo,
    audio_problems_error,
    audio_tracks,
    mix_edit_audio,
    offline_audio,
)
from reelscore.plan import ScorePlan
from reelscore.settings import ScoreSettings
from reelscore.timeline import LoadedEdit, MediaResolver

DEFAULT_NAMES = ("DIA", "DX", "Dialogue", "VO")
_DEFAULT = re.compile(r"^(dia|dx|dialogue|vo)[\s_-]*\d*$", re.IGNORECASE)
_NUMBER = re.compile(r"^a?(\d+)$", re.IGNORECASE)


def _label(track: AudioTrackInfo) -> str:
    return f"A{track.index} {track.name!r}" if track.name else f"A{track.index}"


def _existing(tracks: Sequence[AudioTrackInfo]) -> str:
    return ", ".join(_label(t) for t in tracks) if tracks else "none"


def dialogue_tracks(edit: LoadedEdit, names: Sequence[str]) -> list[AudioTrackInfo]:
    """The audio tracks that drive the ducking (see the module docstring); InputError if none."""
    tracks = audio_tracks(edit)
    if not names:
        found = [t for t in tracks if _DEFAULT.match(t.name.strip())]
        if not found:
            raise InputError(
                f"--duck: no dialogue track found by name ({', '.join(DEFAULT_NAMES)}); the "
                f"edit's audio tracks: {_existing(tracks)}",
                hint="name the dialogue tracks with --dialogue-track NAME (repeatable)")
        return found
    chosen: list[AudioTrackInfo] = []
    for name in names:
        number = _NUMBER.match(name.strip())
        match = [t for t in tracks if t.name.strip().casefold() == name.strip().casefold()
                 or (number is not None and t.index == int(number.group(1)))]
        if not match:
            raise InputError(
                f"--dialogue-track {name!r}: the edit has no such audio track; its audio tracks: "
                f"{_existing(tracks)}",
                hint="use one of those names (or numbers: 1 = A1)")
        chosen.extend(t for t in match if t not in chosen)
    return chosen


def check_dialogue(edit: LoadedEdit, settings: ScoreSettings, start: int, frames: int,
                   resolver: MediaResolver) -> None:
    """Refuse ``--duck`` before any work when its tracks or combination cannot be honoured, or
    when the dialogue's audio over stack frames [start, start + frames) is offline/unreadable."""
    if not settings.duck:
        return
    if settings.generation.separate_tracks:
        raise InputError("--duck cannot be combined with --separate-tracks in this version",
                         hint="drop one of them")
    tracks = dialogue_tracks(edit, settings.dialogue_track)
    bad = offline_audio(edit, start, frames, tracks=[t.index for t in tracks], resolver=resolver)
    if bad:
        raise audio_problems_error(bad)


def duck_params(settings: ScoreSettings) -> DuckParams:
    return DuckParams(threshold_db=settings.duck_threshold, attack_ms=settings.duck_attack,
                      release_ms=settings.duck_release, hold_ms=settings.duck_hold,
                      depth_db=settings.duck_depth)


@dataclass(frozen=True)
class Ducked:
    """The ducked score, the side chain's report and the tracks that drove it."""

    music: np.ndarray
    report: DuckReport
    tracks: tuple[AudioTrackInfo, ...]
    params: DuckParams

    def record(self, alternative_wav: Path, alternative_track: str,
               alternative_lufs: float) -> DuckingRecord:
        """What the manifest keeps (docs/manifest.md ``ducking``)."""
        p = self.params
        return DuckingRecord(
            tracks=[_label(t) for t in self.tracks], seconds=round(self.report.seconds, 3),
            depth_db=p.depth_db, stretches=len(self.report.stretches),
            threshold_db=p.threshold_db, attack_ms=p.attack_ms, release_ms=p.release_ms,
            hold_ms=p.hold_ms, alternative_wav=str(alternative_wav),
            alternative_track=alternative_track,
            alternative_integrated_lufs=round(alternative_lufs, 3))


class DuckingRecord(BaseModel):
    """``ducking`` in the manifest: what the side chain did and where the unducked score is."""

    tracks: list[str]
    seconds: float
    depth_db: float
    stretches: int
    threshold_db: float
    attack_ms: float
    release_ms: float
    hold_ms: float
    loudness: str = ("the ducked score is normalised as delivered; the unducked alternative is "
                     "normalised on its own")
    alternative_wav: str
    alternative_track: str
    alternative_integrated_lufs: float


def duck_music(edit: LoadedEdit, plan: ScorePlan, music: np.ndarray,
               settings: ScoreSettings, sample_rate: int) -> Ducked:
    """The conformed *music* (the scored range, 48 kHz) ducked under the dialogue tracks."""
    tracks = dialogue_tracks(edit, settings.dialogue_track)
    resolver = MediaResolver(edit.path.parent if edit.path is not None else None,
                             settings.media_roots, allow_remote=settings.allow_remote_media)
    dialogue = mix_edit_audio(edit, plan.range.start, plan.range.duration,
                              tracks=[t.index for t in tracks], sample_rate=sample_rate,
                              resolver=resolver)
    # The score counts samples from the range's first frame, the mixdown from the timeline's
    # frame 0: at rates like 29.97 the two lengths can differ by one sample (rounding).
    n = music.shape[0]
    dialogue = np.pad(dialogue[:n], ((0, max(0, n - dialogue.shape[0])), (0, 0)))
    params = duck_params(settings)
    ducked, _gain, report = duck(music, dialogue, params, sample_rate)
    return Ducked(ducked, report, tuple(tracks), params)
