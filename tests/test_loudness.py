"""reelscore.loudness against the EBU/ITU test signals, ffmpeg's meter and independent checks.

Every signal is synthesised here (EBU Tech 3341/3342 recipes, see shared/reference/loudness.md).
"""

from __future__ import annotations

import functools
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from reelscore import loudness, wavfile
from reelscore.errors import AudioError
from reelscore.ffmpeg_cli import ffmpeg_exe, file_arg, run

FS = 48000


# ------------------------------------------------------------------------------------ signals


def sine(level_dbfs: float, seconds: float, freq: float = 1000.0, channels: int = 2,
         phase_deg: float = 0.0, fs: int = FS) -> np.ndarray:
    """A sine of peak level *level_dbfs* on every channel (Tech 3341's "stereo sine")."""
    t = np.arange(round(seconds * fs)) / fs
    s = 10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq * t + np.deg2rad(phase_deg))
    return np.repeat(s[:, None], channels, axis=1)


def faded_sine(freq: float, phase_deg: float, amplitude: float, seconds: float = 1.0
               ) -> np.ndarray:
    """Tech 3341 #15-19: stereo sine with 10 ms linear fades."""
    x = sine(20 * np.log10(amplitude), seconds, freq, phase_deg=phase_deg)
    ramp = np.linspace(0.0, 1.0, round(0.01 * FS))
    x[: ramp.size] *= ramp[:, None]
    x[-ramp.size :] *= ramp[::-1, None]
    return x


def tech3341_20_to_23(offset: int, seconds: float = 1.0) -> np.ndarray:
    """Built as the reference says: at 192 kHz an 8 kHz sine at 0.5, one 16-sample period of
    12 kHz at 1.0 inserted at a zero-phase sample, 1023-tap Kaiser low-pass at 22.8 kHz, then every
    4th sample from *offset*."""
    fs4 = 4 * FS
    n = round(seconds * fs4)
    x = 0.5 * np.sin(2 * np.pi * 8000 * np.arange(n) / fs4)
    k0 = (n // 2) // 24 * 24  # 24 samples per 8 kHz period: a zero crossing going up
    x[k0 : k0 + 16] = np.sin(2 * np.pi * 12000 * np.arange(16) / fs4)
    h = signal.firwin(1023, 22800, fs=fs4, window=("kaiser", 10.0))
    y = signal.lfilter(h, 1.0, x)[offset::4]
    return np.stack([y, y], axis=1)


@functools.lru_cache(maxsize=8)
def _music_loop(seed: int, channels: int) -> np.ndarray:
    """Eight seconds of chords (harmonic series), kick-like bursts, hi-hat noise and clicks."""
    rng = np.random.default_rng(seed)
    loop = round(8.0 * FS)
    t = np.arange(loop) / FS
    chords = np.zeros(loop)
    span = round(2.0 * FS)
    for i, start in enumerate(range(0, loop, span)):
        tt = t[start : start + span] - t[start]
        env = np.minimum(1.0, tt / 0.02) * np.exp(-tt / 1.5)
        for ratio in (1.0, 1.26, 1.5):
            f0 = (220.0, 174.61, 196.0, 146.83)[i % 4] * ratio
            ph = rng.uniform(0, 2 * np.pi)
            for k in range(1, 7):
                chords[start : start + span] += 0.15 / k * env * np.sin(2 * np.pi * f0 * k * tt
                                                                         + ph * k)
    # Channels differ by a few samples of delay (and their own noise below).
    out = np.stack([np.roll(chords, 17 * c) for c in range(channels)], axis=1)
    beat = FS // 2
    kt = np.arange(FS // 4) / FS
    kick = 0.25 * np.sin(2 * np.pi * (50 + 80 * np.exp(-kt / 0.03)) * kt) * np.exp(-kt / 0.08)
    hat = round(0.05 * FS)
    for j, start in enumerate(range(0, loop - kick.size, beat)):
        out[start : start + kick.size] += kick[:, None]
        noise = rng.standard_normal((hat, channels)) * np.exp(-np.arange(hat) / (0.01 * FS))[:, None]
        out[start + beat // 2 : start + beat // 2 + hat] += 0.15 * np.diff(noise, axis=0, prepend=0)
        if j % 4 == 3:  # a single-sample click: broadband, so its true peak is hard to read
            out[start + 100] += 0.7 * np.where(np.arange(channels) % 2, -1.0, 1.0)
    out.setflags(write=False)
    return out


def music_like(seconds: float, *, seed: int = 1, channels: int = 2) -> np.ndarray:
    """Music-like test audio: about -22 LUFS with a peak-to-loudness ratio of about 16 dB, so
    -14 LUFS under -1 dBTP needs a limiter. Float32, like the audio between pipeline steps."""
    loop = _music_loop(seed, channels)
    n = round(seconds * FS)
    y = np.tile(loop, (-(-n // len(loop)), 1))[:n]
    y = y * (0.6 + 0.4 * np.sin(2 * np.pi * np.arange(n) / FS / 47.0) ** 2)[:, None]
    return (0.5 * y).astype(np.float32)


def independent_true_peak(x: np.ndarray, up: int = 16) -> float:
    """dBTP by scipy's own polyphase resampler at 16x (not our FFT code, not our filter)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    peak = max(np.abs(signal.resample_poly(x[:, c], up, 1)).max() for c in range(x.shape[1]))
    return float(20 * np.log10(max(peak, np.abs(x).max())))


def ffmpeg_ebur128(path: Path) -> tuple[float, float]:
    """(I, true peak) from ffmpeg's ebur128 summary (printed to 0.1)."""
    proc = run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-i", file_arg(path),
                "-af", "ebur128=peak=true", "-f", "null", "-"], "measuring with ffmpeg ebur128")
    text = proc.stderr.decode("utf-8", "replace")
    summary = text[text.rfind("Summary:") :]
    i = re.search(r"I:\s+(-?[\d.]+) LUFS", summary)
    peak = re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary)
    assert i and peak, summary
    return float(i.group(1)), float(peak.group(1))


def wav_fields(path: Path) -> dict[str, int]:
    """The RIFF header fields, parsed with struct (not our reader)."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    assert data[12:16] == b"fmt "
    tag, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", data[20:36])
    pos = 12 + 8 + struct.unpack("<I", data[16:20])[0]
    while data[pos : pos + 4] != b"data":
        pos += 8 + struct.unpack("<I", data[pos + 4 : pos + 8])[0]
    size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
    return {"tag": tag, "channels": channels, "rate": rate, "byte_rate": byte_rate,
            "align": align, "bits": bits, "data_bytes": size}


# -------------------------------------------------------------------------------- measurement


def test_k_weighting_reproduces_the_bs1770_table_at_48k_and_the_response_elsewhere() -> None:
    table = np.array([
        [1.53512485958697, -2.69169618940638, 1.19839281085285,
         1.0, -1.69065929318241, 0.73248077421585],
        [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621],
    ])
    np.testing.assert_allclose(loudness.k_weighting_sos(48000), table, rtol=0, atol=1e-12)
    # Other rates get their own coefficients with the same response (not the 48 kHz table).
    freqs = np.array([20.0, 100.0, 1000.0, 4000.0, 15000.0])
    ref = np.abs(signal.sosfreqz(table, freqs, fs=48000)[1])
    for rate in (44100, 96000):
        sos = loudness.k_weighting_sos(rate)
        assert not np.allclose(sos, table)
        got = np.abs(signal.sosfreqz(sos, freqs, fs=rate)[1])
        np.testing.assert_allclose(20 * np.log10(got), 20 * np.log10(ref), atol=0.05)


@pytest.mark.parametrize(("case", "parts", "expected"), [
    (1, [(-23, 20)], -23.0),
    (2, [(-33, 20)], -33.0),
    (3, [(-36, 10), (-23, 60), (-36, 10)], -23.0),
    (4, [(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)], -23.0),
    (5, [(-26, 20), (-20, 20.1), (-26, 20)], -23.0),
])
def test_tech3341_integrated_stereo(case: int, parts: list[tuple[float, float]],
                                    expected: float) -> None:
    x = np.concatenate([sine(level, seconds) for level, seconds in parts])
    assert loudness.integrated_loudness(x, FS) == pytest.approx(expected, abs=0.1), case


def test_tech3341_6_five_channels_with_surround_weights() -> None:
    # L, R -28; C -24; Ls, Rs -30 dBFS -> -23.0 only if Ls/Rs weigh 1.41.
    mono = sine(0.0, 20, channels=1)[:, 0]
    levels = np.array([-28, -28, -24, -30, -30])
    x = mono[:, None] * 10 ** (levels / 20)
    assert loudness.integrated_loudness(x, FS) == pytest.approx(-23.0, abs=0.1)


def test_44k1_measures_the_same_tone_the_same() -> None:
    assert loudness.integrated_loudness(sine(-23, 10, fs=44100), 44100) == pytest.approx(
        loudness.integrated_loudness(sine(-23, 10), FS), abs=0.01)


def test_mono_997hz_full_scale_reads_minus_3_01_and_stereo_plus_3_01() -> None:
    mono = sine(0.0, 10, freq=997.0, channels=1)[:, 0]
    assert loudness.integrated_loudness(mono, FS) == pytest.approx(-3.01, abs=0.01)
    # Mono is one channel (BS.1770), so dual-mono stereo reads 3.01 dB louder.
    dual = np.stack([mono, mono], axis=1)
    assert loudness.integrated_loudness(dual, FS) == pytest.approx(0.0, abs=0.01)


def test_lfe_is_excluded_from_5_1() -> None:
    base = music_like(6, channels=6).astype(np.float64)
    base[:, 3] = 0.0
    loud_lfe = base.copy()
    loud_lfe[:, 3] = 0.9 * np.sin(2 * np.pi * 60 * np.arange(len(base)) / FS)
    quiet = loudness.measure(base, FS)
    loud = loudness.measure(loud_lfe, FS)
    assert loud.integrated_lufs == pytest.approx(quiet.integrated_lufs, abs=1e-9)
    assert loud.true_peak_dbtp > quiet.true_peak_dbtp  # peaks do count every channel
    # ... and the same content moved to a full-weight channel does change the loudness.
    moved = loud_lfe[:, [0, 1, 2, 4, 5, 3]]
    assert loudness.measure(moved, FS).integrated_lufs > quiet.integrated_lufs + 1.0


@pytest.mark.parametrize(("case", "parts", "expected"), [
    (1, [(-20, 20), (-30, 20)], 10.0),
    (2, [(-20, 20), (-15, 20)], 5.0),
    (3, [(-40, 20), (-20, 20)], 20.0),
    (4, [(-50, 20), (-35, 20), (-20, 20), (-35, 20), (-50, 20)], 15.0),
])
def test_tech3342_loudness_range(case: int, parts: list[tuple[float, float]],
                                 expected: float) -> None:
    x = np.concatenate([sine(level, seconds, channels=1) for level, seconds in parts])
    lra = loudness.measure(x, FS).loudness_range_lu
    assert lra is not None and lra == pytest.approx(expected, abs=1.0), case


@pytest.mark.parametrize(("case", "freq", "phase", "amplitude", "expected"), [
    (15, FS / 4, 0.0, 0.5, -6.0),
    (16, FS / 4, 45.0, 0.5, -6.0),
    (17, FS / 6, 60.0, 0.5, -6.0),
    (18, FS / 8, 67.5, 0.5, -6.0),
    (19, FS / 4, 45.0, 1.41, 3.0),
])
def test_tech3341_true_peak_sines(case: int, freq: float, phase: float, amplitude: float,
                                  expected: float) -> None:
    x = faded_sine(freq, phase, amplitude)
    tp = loudness.true_peak_dbtp(x, FS)
    assert expected - 0.4 <= tp <= expected + 0.2, (case, tp)
    if phase:  # the samples miss the crest: only interpolation finds it
        assert tp > 20 * np.log10(np.abs(x).max()) + 0.5


@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_tech3341_true_peak_20_to_23(offset: int) -> None:
    x = tech3341_20_to_23(offset)
    tp = loudness.true_peak_dbtp(x, FS)
    assert -0.4 <= tp <= 0.2, (20 + offset, tp)


def test_true_peak_does_not_depend_on_sample_phase() -> None:
    # A good meter gives #20-23 the same answer wherever the samples fall.
    readings = [loudness.true_peak_dbtp(tech3341_20_to_23(o), FS) for o in range(4)]
    assert max(readings) - min(readings) < 0.05


def test_true_peak_near_nyquist_is_neither_low_nor_high() -> None:
    x = faded_sine(23000.0, 10.0, 0.5)
    assert loudness.true_peak_dbtp(x, FS) == pytest.approx(-6.02, abs=0.05)


def test_measure_reports_every_figure() -> None:
    x = sine(-20.0, 10.0)
    m = loudness.measure(x, FS)
    assert m.duration_s == 10.0
    assert m.sample_peak_dbfs == pytest.approx(-20.0, abs=1e-3)
    assert m.true_peak_dbtp == pytest.approx(-20.0, abs=0.01)
    assert m.integrated_lufs == pytest.approx(-20.0, abs=0.02)
    assert m.loudness_range_lu == pytest.approx(0.0, abs=0.01)
    # Shorter than one 3 s window: no LRA, but an integrated value.
    short = loudness.measure(sine(-20.0, 1.0), FS)
    assert short.loudness_range_lu is None
    assert short.integrated_lufs == pytest.approx(-20.0, abs=0.02)


@pytest.mark.parametrize(("name", "samples", "message"), [
    ("digital silence", np.zeros((10 * FS, 2)), "silent"),
    ("-80 dBFS tone", sine(-80.0, 10.0), "silent"),
    ("0.3 s tone", sine(-20.0, 0.3), "too short"),
    ("empty", np.zeros((0, 2)), "empty"),
    ("NaN", np.full((FS, 2), np.nan), "NaN"),
])
def test_undefined_loudness_is_an_error(name: str, samples: np.ndarray, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        loudness.measure(samples, FS)
    with pytest.raises(AudioError, match=message):
        loudness.integrated_loudness(samples, FS)
    with pytest.raises(AudioError, match=message):
        loudness.normalise(samples, FS)


def test_near_silence_is_refused_not_amplified() -> None:
    x = sine(-65.0, 5.0)
    assert loudness.integrated_loudness(x, FS) == pytest.approx(-65.0, abs=0.05)
    with pytest.raises(AudioError, match=r"silent or nearly so.*-60 LUFS floor") as info:
        loudness.normalise(x, FS)
    assert info.value.exit_code == 5
    _, report = loudness.normalise(x, FS, silence_floor_lufs=-70.0)  # when asked for
    assert report.after.integrated_lufs == pytest.approx(-14.0, abs=0.05)


# ------------------------------------------------------------------------------ normalisation


def test_plain_gain_when_the_peak_allows_it_is_sample_exact() -> None:
    x = sine(-20.0, 10.0)  # PLR 0 dB
    out, report = loudness.normalise(x, FS)
    assert not report.limiter_used
    assert report.limiter_gain_reduction_db == 0.0
    assert report.iterations == 1
    assert report.gain_db == pytest.approx(-14.0 - report.before.integrated_lufs, abs=1e-12)
    np.testing.assert_array_equal(out, x * 10 ** (report.gain_db / 20))
    assert out.dtype == x.dtype and out.shape == x.shape
    assert report.after.integrated_lufs == pytest.approx(-14.0, abs=0.01)
    assert report.after.true_peak_dbtp == pytest.approx(
        report.before.true_peak_dbtp + report.gain_db, abs=1e-6)
    assert report.after.loudness_range_lu == pytest.approx(report.before.loudness_range_lu,
                                                            abs=1e-6)


def test_peak_that_barely_touches_costs_gain_not_a_limiter() -> None:
    x = music_like(6).astype(np.float64)
    m = loudness.measure(x, FS)
    # A target whose plain gain puts the true peak 0.03 dB over the ceiling ...
    target = m.integrated_lufs - m.true_peak_dbtp - 1.0 + 0.03
    _, report = loudness.normalise(x, FS, target_lufs=target)
    assert not report.limiter_used
    assert report.after.true_peak_dbtp <= -1.0
    assert report.after.integrated_lufs == pytest.approx(target, abs=0.05)
    # ... and 1 dB over is a limiter's job.
    _, limited = loudness.normalise(x, FS, target_lufs=target + 1.0)
    assert limited.limiter_used
    assert limited.after.integrated_lufs == pytest.approx(target + 1.0, abs=0.1)


def test_music_with_high_crest_factor_is_limited_to_target_and_ceiling() -> None:
    x = music_like(20)
    before = loudness.measure(x, FS)
    assert before.true_peak_dbtp - before.integrated_lufs > 14.0  # needs a limiter
    out, report = loudness.normalise(x, FS)
    assert report.limiter_used and report.limiter_gain_reduction_db > 0.5
    assert out.shape == x.shape and out.dtype == np.float32
    after = loudness.measure(out, FS)
    assert after == report.after
    assert abs(after.integrated_lufs + 14.0) <= 0.1
    assert after.true_peak_dbtp <= -1.0
    assert independent_true_peak(out) <= -1.0
    # A peak limiter, not a compressor: the loudness range barely moves.
    assert before.loudness_range_lu is not None and after.loudness_range_lu is not None
    assert abs(after.loudness_range_lu - before.loudness_range_lu) < 1.0
    # Outside the limited stretches the gain is the static gain, exactly.
    ratio = out.astype(np.float64)[:, 0] / np.where(x[:, 0] == 0, 1, x[:, 0])
    static = 10 ** (report.gain_db / 20)
    assert np.mean(np.isclose(ratio, static, rtol=1e-5)) > 0.3


def test_short_3s_clip_is_normalised() -> None:
    x = music_like(3.0, seed=3)
    out, report = loudness.normalise(x, FS)
    assert abs(report.after.integrated_lufs + 14.0) <= 0.1
    assert report.after.true_peak_dbtp <= -1.0
    assert independent_true_peak(out) <= -1.0
    assert len(out) == len(x)


def test_mono_input_stays_mono_and_is_measured_as_one_channel() -> None:
    x = music_like(8.0, seed=5, channels=1)[:, 0]
    out, _ = loudness.normalise(x, FS)
    assert out.shape == x.shape
    assert loudness.integrated_loudness(out, FS) == pytest.approx(-14.0, abs=0.1)
    assert loudness.true_peak_dbtp(out, FS) <= -1.0


def test_5_1_keeps_its_channels_and_the_lfe_does_not_move_the_gain() -> None:
    x = music_like(6.0, seed=7, channels=6) * np.float32(0.3)
    x[:, 3] = 0.0
    _, without = loudness.normalise(x, FS)
    x[:, 3] = 0.05 * np.sin(2 * np.pi * 45 * np.arange(len(x)) / FS)
    out, with_lfe = loudness.normalise(x, FS)
    assert out.shape == x.shape
    assert not with_lfe.limiter_used
    assert with_lfe.gain_db == pytest.approx(without.gain_db, abs=1e-9)


def test_unreachable_target_is_an_error_not_a_wrong_file() -> None:
    # A steady LFE at -14 dBFS sets the true peak but not the loudness: after +16 dB of gain it
    # is over the ceiling everywhere, so limiting it back cannot raise the loudness.
    x = music_like(6.0, seed=7, channels=6) * np.float32(0.3)
    x[:, 3] = 0.2 * np.sin(2 * np.pi * 45 * np.arange(len(x)) / FS)
    with pytest.raises(AudioError, match=r"cannot bring the generated audio to -14\.0 LUFS"):
        loudness.normalise(x, FS)


def test_report_is_json_friendly() -> None:
    _, report = loudness.normalise(music_like(4.0), FS)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["limiter_used"] is True
    assert data["target_lufs"] == -14.0 and data["ceiling_dbtp"] == -1.0
    assert set(data["after"]) == {"integrated_lufs", "true_peak_dbtp", "sample_peak_dbfs",
                                  "loudness_range_lu", "duration_s"}
    assert data["after"]["integrated_lufs"] == round(report.after.integrated_lufs, 3)


# ------------------------------------------------------------------------------------- files


def test_wav_round_trip_is_bit_exact_at_24_bit_with_a_valid_header(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ints = rng.integers(-(1 << 23), 1 << 23, size=(FS + 1, 2))  # odd data size: needs a pad byte
    ints[:2] = [[-(1 << 23), (1 << 23) - 1], [0, 1]]  # both extremes
    x = (ints / float(1 << 23)).astype(np.float32)
    path = tmp_path / "x.wav"
    wavfile.write_wav(path, x[:, :1], FS)
    fields = wav_fields(path)
    assert fields == {"tag": 1, "channels": 1, "rate": 48000, "byte_rate": 144000, "align": 3,
                      "bits": 24, "data_bytes": 3 * (FS + 1)}
    wavfile.write_wav(path, x, FS, bits=24)
    fields = wav_fields(path)
    assert fields == {"tag": 1, "channels": 2, "rate": 48000, "byte_rate": 288000, "align": 6,
                      "bits": 24, "data_bytes": 6 * (FS + 1)}
    back, rate = wavfile.read_wav(path)
    assert rate == FS and back.dtype == np.float32
    np.testing.assert_array_equal(back, x)
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_wav_16_bit_and_float(tmp_path: Path) -> None:
    x = music_like(1.0)
    wavfile.write_wav(tmp_path / "f.wav", x, FS, bits=32)
    assert wav_fields(tmp_path / "f.wav")["tag"] == 3
    back, _ = wavfile.read_wav(tmp_path / "f.wav")
    np.testing.assert_array_equal(back, x)
    wavfile.write_wav(tmp_path / "s.wav", x, FS, bits=16)
    back, _ = wavfile.read_wav(tmp_path / "s.wav")
    assert np.abs(back - x).max() <= 2.0 / 32768  # rounding plus TPDF dither
    # Full scale clips to [-1, 1) instead of wrapping.
    wavfile.write_wav(tmp_path / "c.wav", np.array([[1.5], [-1.5], [1.0]]), FS, bits=16)
    back, _ = wavfile.read_wav(tmp_path / "c.wav")
    assert back[0, 0] == pytest.approx(32767 / 32768) and back[1, 0] == -1.0
    with pytest.raises(ValueError, match="bits"):
        wavfile.write_wav(tmp_path / "bad.wav", x, FS, bits=8)


def test_normalise_file_agrees_with_ffmpeg_and_keeps_the_format(tmp_path: Path) -> None:
    src = tmp_path / "music.wav"
    wavfile.write_wav(src, music_like(20.0, seed=11), FS, bits=32)
    dst = tmp_path / "out" / "music.norm.wav"
    report = loudness.normalise_file(src, dst)
    assert report.limiter_used
    fields = wav_fields(dst)
    assert (fields["rate"], fields["bits"], fields["channels"]) == (48000, 24, 2)
    assert fields["data_bytes"] == 20 * FS * 6  # same length
    data, rate = wavfile.read_wav(dst)
    assert loudness.measure(data, rate) == report.after  # after is the file as written
    assert abs(report.after.integrated_lufs + 14.0) <= 0.1
    assert report.after.true_peak_dbtp <= -1.0
    assert independent_true_peak(data) <= -1.0
    i_ff, tp_ff = ffmpeg_ebur128(dst)
    assert i_ff == pytest.approx(report.after.integrated_lufs, abs=0.1)
    assert tp_ff == pytest.approx(report.after.true_peak_dbtp, abs=0.2)
    assert tp_ff <= -1.0
    assert sorted(p.name for p in dst.parent.iterdir()) == ["music.norm.wav"]  # no temp left


def test_normalise_file_decodes_other_rates_and_formats(tmp_path: Path) -> None:
    src = tmp_path / "in.flac"
    wav = tmp_path / "in.wav"
    x = sine(-24.0, 4.0, fs=44100, channels=1)
    wavfile.write_wav(wav, x, 44100, bits=16)
    run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", file_arg(wav),
         file_arg(src)], "encoding a FLAC test input")
    report = loudness.normalise_file(src, tmp_path / "out.wav")
    fields = wav_fields(tmp_path / "out.wav")
    assert (fields["rate"], fields["channels"], fields["bits"]) == (48000, 1, 24)
    assert fields["data_bytes"] == 4 * 48000 * 3
    assert not report.limiter_used
    assert report.after.integrated_lufs == pytest.approx(-14.0, abs=0.05)


def test_failed_normalise_file_leaves_an_existing_dst_alone(tmp_path: Path) -> None:
    src = tmp_path / "silent.wav"
    wavfile.write_wav(src, np.zeros((5 * FS, 2)), FS)
    dst = tmp_path / "out.wav"
    dst.write_bytes(b"earlier output")
    with pytest.raises(AudioError, match="silent"):
        loudness.normalise_file(src, dst)
    assert dst.read_bytes() == b"earlier output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav", "silent.wav"]
    # On success the old file is replaced.
    wavfile.write_wav(src, sine(-30.0, 2.0), FS)
    loudness.normalise_file(src, dst)
    assert dst.read_bytes()[:4] == b"RIFF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav", "silent.wav"]
