"""Music and SFX stems normalised together: one gain on their sum keeps the service's balance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from reelscore import loudness, wavfile
from tests.audio_helpers import ffmpeg_loudness

FS = 48000


def music_stem(seconds: float, level: float, seed: int = 1) -> np.ndarray:
    """Chords of three slowly swelling tones: sustained, modest crest factor."""
    t = np.arange(round(seconds * FS)) / FS
    x = sum(np.sin(2 * np.pi * f * t + k) for k, f in enumerate((220.0, 277.2, 329.6)))
    x = x * (0.7 + 0.3 * np.sin(2 * np.pi * t / 3.1))
    rng = np.random.default_rng(seed)
    pan = 0.9 + 0.1 * rng.random()
    return (level * np.stack([x, pan * x], axis=1)).astype(np.float32)


def sfx_stem(seconds: float, level: float, seed: int = 2, hit: float = 0.0) -> np.ndarray:
    """Band-passed noise bursts (footsteps, doors), plus optional short loud hits."""
    rng = np.random.default_rng(seed)
    n = round(seconds * FS)
    noise = signal.sosfilt(signal.butter(4, (300, 4000), "bandpass", fs=FS, output="sos"),
                           rng.standard_normal((n, 2)), axis=0)
    gate = np.zeros(n)
    for start in range(0, n - FS // 4, FS // 2):
        gate[start:start + FS // 5] = np.hanning(FS // 5)
    x = level * noise * gate[:, None]
    if hit:
        for start in range(FS, n - FS, 3 * FS):
            x[start:start + 96] += hit * np.sin(np.linspace(0, np.pi, 96))[:, None]
    return x.astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2)))


def test_one_gain_keeps_the_balance_and_the_sum_meets_target_and_ceiling(tmp_path):
    music, sfx = music_stem(12, 0.02), sfx_stem(12, 0.05)
    out_m, out_s, report = loudness.normalise_stems(music, sfx, FS, target_lufs=-14.0,
                                                    true_peak_dbtp=-1.0)
    assert not report.limiter_used and not report.sfx_silent
    assert out_m.shape == music.shape and out_s.shape == sfx.shape
    # Balance: the stems' level difference is what the service made, to a thousandth of a dB.
    assert rms_db(out_m) - rms_db(out_s) == pytest.approx(rms_db(music) - rms_db(sfx), abs=1e-3)
    total = out_m.astype(np.float64) + out_s
    m = loudness.measure(total, FS)
    assert abs(m.integrated_lufs + 14.0) <= 0.1 and m.true_peak_dbtp <= -1.0
    # An independent meter agrees on the delivered sum.
    path = tmp_path / "sum.wav"
    wavfile.write_wav(path, total.astype(np.float32), FS, bits=32)
    i, _ = ffmpeg_loudness(path)
    assert abs(i + 14.0) <= 0.1
    # Normalising each stem on its own would have pulled both to -14 LUFS: balance lost.
    assert abs(report.music_lufs - report.sfx_lufs) > 3.0
    d = report.to_dict()
    assert d["stems"]["sfx_silent"] is False and d["gain_db"] == pytest.approx(report.gain_db,
                                                                              abs=1e-3)


def test_peaks_in_the_sfx_limit_both_stems_with_the_same_gain():
    music, sfx = music_stem(8, 0.03), sfx_stem(8, 0.04, hit=0.9)
    out_m, out_s, report = loudness.normalise_stems(music, sfx, FS)
    assert report.limiter_used and report.mix.limiter_gain_reduction_db > 1.0
    total = out_m.astype(np.float64) + out_s
    m = loudness.measure(total, FS)
    assert abs(m.integrated_lufs + 14.0) <= 0.1 and m.true_peak_dbtp <= -1.0
    # Every sample of both stems got the same gain (where each stem is audible).
    mask = (np.abs(music[:, 0]) > 1e-3) & (np.abs(sfx[:, 0]) > 1e-3)
    g_m = out_m[mask, 0].astype(np.float64) / music[mask, 0]
    g_s = out_s[mask, 0].astype(np.float64) / sfx[mask, 0]
    np.testing.assert_allclose(g_m, g_s, rtol=1e-5)
    assert g_m.min() < 10 ** ((report.gain_db - 1.0) / 20)  # the limiter did act on both
    # Away from the hits and the limiter's release (0.5 s either side) the balance is untouched.
    calm = np.ones(music.shape[0], dtype=bool)
    for start in range(FS, music.shape[0] - FS, 3 * FS):
        calm[start - FS // 2: start + FS // 2] = False
    assert rms_db(out_m[calm]) - rms_db(out_s[calm]) == pytest.approx(
        rms_db(music[calm]) - rms_db(sfx[calm]), abs=0.01)


def test_a_silent_sfx_stem_is_reported_not_refused():
    music = music_stem(6, 0.05)
    sfx = np.zeros_like(music)
    out_m, out_s, report = loudness.normalise_stems(music, sfx, FS)
    assert report.sfx_silent and report.sfx_lufs is None
    assert report.to_dict()["stems"]["sfx_silent"] is True
    assert not out_s.any()
    m = loudness.measure(out_m, FS)
    assert abs(m.integrated_lufs + 14.0) <= 0.1 and m.true_peak_dbtp <= -1.0


def test_stems_of_different_lengths_are_refused():
    with pytest.raises(loudness.AudioError, match="differ in shape"):
        loudness.normalise_stems(music_stem(2, 0.05), music_stem(3, 0.05), FS)
