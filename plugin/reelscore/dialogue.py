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
beside it as a muted alternative track. The side chain's gain is also kept as frame keys
(:mod:`reelscore.volume_keys`): formats that carry volume automation place the unducked score
with those keys instead (:mod:`reelscore.writeback.automation`), so the editor can move them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from reelscore import loudness
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
from reelscore.volume_keys import MAX_KEY_DB, VolumeKey, keys_gain, volume_keys

DEFAULT_NAMES = ("DIA", "DX", "Dialogue", "VO")
KEY_TOLERANCE_DB = 0.5  # the volume keys follow the side chain within this, frame by frame
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
    keys: tuple[VolumeKey, ...]  # the side chain's gain as frame keys (0 dB = untouched)

    def automation(self, alternative: np.ndarray, rate: Fraction, *, target_lufs: float,
                   ceiling_dbtp: float, sample_rate: int,
                   ) -> tuple[tuple[VolumeKey, ...], AutomationRecord]:
        """The keys to place on the normalised unducked score *alternative*, make-up included.

        What an NLE plays is *alternative* times the keys. Ducking took loudness away, so every
        key is raised by the make-up gain that brings that back to *target_lufs* -- as far as
        the true peak stays under *ceiling_dbtp* (no limiter rides on a key) and no key goes
        over +12 dB. Measured on the product, made a minute at a time **in place**: the caller
        has written *alternative* already (an hour of stereo is 1.4 GB not copied).
        """
        n = alternative.shape[0]
        step = sample_rate * 60
        for s in range(0, n, step):
            e = min(n, s + step)
            g = keys_gain(self.keys, e - s, rate, sample_rate, start=s)
            alternative[s:e] *= g[:, None] if alternative.ndim == 2 else g
        m = loudness.measure(alternative, sample_rate)
        top = max((k.db for k in self.keys), default=0.0)
        makeup = min(target_lufs - m.integrated_lufs, ceiling_dbtp - m.true_peak_dbtp,
                     MAX_KEY_DB - top)
        makeup = max(0.0, math.floor(makeup * 100) / 100)  # rounded down: never over the ceiling
        keys = tuple(VolumeKey(k.frame, round(k.db + makeup, 3)) for k in self.keys)
        return keys, AutomationRecord(
            keys=len(keys), tolerance_db=KEY_TOLERANCE_DB, makeup_db=makeup,
            played_integrated_lufs=round(m.integrated_lufs + makeup, 3),
            played_true_peak_dbtp=round(m.true_peak_dbtp + makeup, 3))

    def record(self, alternative_wav: Path, alternative_track: str,
               alternative_lufs: float, automation: AutomationRecord) -> DuckingRecord:
        """What the manifest keeps (docs/manifest.md ``ducking``)."""
        p = self.params
        return DuckingRecord(
            tracks=[_label(t) for t in self.tracks], seconds=round(self.report.seconds, 3),
            depth_db=p.depth_db, stretches=len(self.report.stretches),
            threshold_db=p.threshold_db, attack_ms=p.attack_ms, release_ms=p.release_ms,
            hold_ms=p.hold_ms, alternative_wav=str(alternative_wav),
            alternative_track=alternative_track,
            alternative_integrated_lufs=round(alternative_lufs, 3), automation=automation)


class AutomationRecord(BaseModel):
    """``ducking.automation``: the ducking as volume keys on the unducked score (FCP 7 XML and
    FCPX place that instead of the ducked WAV). ``makeup_db`` is in every key; ``played_*`` is
    what the unducked WAV times the keys measures (the keys' loudness as an NLE plays them)."""

    keys: int
    tolerance_db: float
    makeup_db: float
    played_integrated_lufs: float
    played_true_peak_dbtp: float


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
                     "normalised on its own; its volume keys add make-up gain so that what plays "
                     "meets the target as far as the true-peak ceiling allows")
    alternative_wav: str
    alternative_track: str
    alternative_integrated_lufs: float
    automation: AutomationRecord


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
    ducked, gain, report = duck(music, dialogue, params, sample_rate)
    keys = volume_keys(gain, plan.fraction_rate, sample_rate, tolerance_db=KEY_TOLERANCE_DB)
    return Ducked(ducked, report, tuple(tracks), params, keys)
