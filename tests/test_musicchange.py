"""Measuring where music changes (pure numpy): planted boundaries, a shifted one, steady music."""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np

from reelscore.musicchange import detect_changes, measure_changes

SR = 48000
R24 = Fraction(24)
PER_FRAME = SR // 24  # 2000 samples


def tones(sections: list[tuple[int, float]], sr: int = SR) -> np.ndarray:
    """One tone (with two harmonics) per section of the given length in 24 fps frames."""
    out = []
    for frames, hz in sections:
        t = np.arange(frames * PER_FRAME) / sr
        out.append(0.3 * np.sin(2 * np.pi * hz * t) + 0.1 * np.sin(4 * np.pi * hz * t)
                   + 0.05 * np.sin(6 * np.pi * hz * t))
    return np.concatenate(out).astype(np.float32)


def arpeggio(seconds: float, sr: int = SR) -> np.ndarray:
    """Steady music: a four-note figure with plucked envelopes, 250 ms a note, repeating."""
    note = int(0.25 * sr)
    t = np.arange(note) / sr
    env = np.exp(-t * 8.0)
    notes = [np.sin(2 * np.pi * hz * t) * env for hz in (262.0, 330.0, 392.0, 523.0)]
    cycle = np.concatenate(notes)
    reps = int(np.ceil(seconds * sr / cycle.size))
    return (0.3 * np.tile(cycle, reps)[: int(seconds * sr)]).astype(np.float32)


def test_planted_boundaries_found_within_a_frame():
    lengths = [96, 77, 120, 83, 101]  # frames at 24 fps: 4 s, 3.2 s, 5 s ...
    audio = tones(list(zip(lengths, [220.0, 330.0, 247.0, 415.0, 294.0])))
    cuts = list(np.cumsum(lengths)[:-1])
    report = measure_changes(audio, SR, rate=R24, cuts=[int(c) for c in cuts], record_start=86400)
    for c in report.cuts:
        assert c.distance_frames is not None and abs(c.distance_frames) <= 1, c
    assert len(report.changes) == len(cuts)  # nothing found inside a steady section
    assert report.summary() == "music changes within 2 frames of 4 of 4 cuts"
    assert report.cuts[0].record_tc == "01:00:04:00"
    # stereo input, the same answer
    stereo = np.stack([audio, audio], axis=1)
    assert detect_changes(stereo, SR) == detect_changes(audio, SR)


def test_a_shifted_boundary_is_reported_with_its_distance():
    cuts = [100, 190]
    # the music's second change comes 5 frames late: 95 frames after the first, 105 to the end
    audio = tones([(100, 220.0), (95, 330.0), (105, 262.0)])
    report = measure_changes(audio, SR, rate=R24, cuts=cuts)
    first, second = report.cuts
    assert first.distance_frames is not None and abs(first.distance_frames) <= 1
    assert second.distance_frames is not None and abs(second.distance_frames - 5) <= Fraction(1, 4)
    assert report.hits == 1 and report.summary() == "music changes within 2 frames of 1 of 2 cuts"
    assert re.fullmatch(r"00:00:07:22  nearest change \+(4\.[89]|5\.[01]) frames", report.lines()[1])


def test_steady_music_shows_no_change_at_a_cut():
    audio = arpeggio(12.0)
    report = measure_changes(audio, SR, rate=R24, cuts=[6 * 24, 9 * 24])
    assert report.changes == []
    assert report.hits == 0
    assert all(c.change_frame is None for c in report.cuts)
    assert report.lines()[0].endswith("no change measured")


def test_other_rates_and_sample_rates():
    sr = 44100
    rate = Fraction(30000, 1001)
    # change at record frame 150 at 29.97: 150 * 1001 / 30000 s
    at = round(Fraction(150 * 1001, 30000) * sr)
    t = np.arange(sr * 10) / sr
    audio = np.where(np.arange(t.size) < at, np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 500 * t))
    report = measure_changes(audio.astype(np.float32), sr, rate=rate, cuts=[150])
    d = report.cuts[0].distance_frames
    assert d is not None and abs(d) <= Fraction(1, 2)


def test_music_like_sections_changing_key_on_the_cuts():
    """Arpeggios (plucked notes, 250 ms each) transposed per section: onsets every note, yet the
    only changes reported are the section changes."""
    note = SR // 4
    t = np.arange(note) / SR
    env = np.exp(-t * 8.0)

    def figure(root: float, frames: int) -> np.ndarray:
        cycle = np.concatenate([np.sin(2 * np.pi * root * r * t) * env for r in (1.0, 1.26, 1.5, 2.0)])
        n = frames * PER_FRAME
        return np.tile(cycle, n // cycle.size + 1)[:n]

    lengths = [100, 84, 130]
    audio = 0.3 * np.concatenate([figure(f, n) for f, n in zip((220.0, 294.0, 185.0), lengths)])
    report = measure_changes(audio, SR, rate=R24, cuts=[100, 184])
    assert len(report.changes) == 2
    assert all(c.distance_frames is not None and abs(c.distance_frames) <= 1 for c in report.cuts)
