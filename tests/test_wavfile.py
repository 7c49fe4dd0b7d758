"""wavfile: the one WAV writer and reader, checked on bytes and samples (headers parsed with struct
by tests/audio_helpers.py, not by our reader)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reelscore import wavfile
from reelscore.errors import AudioError
from tests.audio_helpers import wav_header

RATE = 48000


def test_blocks_join_seamlessly_and_24_bit_reads_back_exactly(tmp_path: Path) -> None:
    frames = wavfile.CHUNK_FRAMES * 2 + 3  # three blocks, the last odd-sized
    rng = np.random.default_rng(5)
    ints = rng.integers(-(1 << 23), 1 << 23, size=(frames, 2))
    audio = (ints / float(1 << 23)).astype(np.float32)
    path = tmp_path / "long.wav"
    wavfile.write_wav(path, audio, RATE)
    raw = path.read_bytes()
    # Sample k of channel c sits at byte 44 + 6k + 3c, little-endian two's complement.
    for k in (0, wavfile.CHUNK_FRAMES - 1, wavfile.CHUNK_FRAMES, frames - 1):
        for channel in (0, 1):
            at = 44 + 6 * k + 3 * channel
            assert int.from_bytes(raw[at:at + 3], "little", signed=True) == ints[k, channel]
    back, rate = wavfile.read_wav(path)
    assert rate == RATE
    np.testing.assert_array_equal(back, audio)


def test_transposed_views_are_written_as_frames(tmp_path: Path) -> None:
    """The local engine synthesises (channels, n) and hands over a transposed view."""
    rng = np.random.default_rng(6)
    channel_major = (rng.integers(-1000, 1000, size=(2, 5000)) / float(1 << 23)).astype(np.float32)
    wavfile.write_wav(tmp_path / "t.wav", channel_major.T, RATE)
    back, _ = wavfile.read_wav(tmp_path / "t.wav")
    np.testing.assert_array_equal(back, channel_major.T)


def test_16_bit_dither_is_the_same_every_time(tmp_path: Path) -> None:
    audio = (np.sin(np.arange(wavfile.CHUNK_FRAMES + 100) / 20.0) * 0.3).astype(np.float32)
    wavfile.write_wav(tmp_path / "a.wav", audio, RATE, bits=16)
    wavfile.write_wav(tmp_path / "b.wav", audio, RATE, bits=16)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    header = wav_header(tmp_path / "a.wav")
    assert (header["format"], header["bits"], header["channels"], header["frames"]) == (
        1, 16, 1, len(audio))
    back, _ = wavfile.read_wav(tmp_path / "a.wav")
    assert np.abs(back[:, 0] - audio).max() <= 2.0 / 32768  # rounding plus TPDF dither


@pytest.mark.parametrize(("audio", "message"), [
    (np.zeros((0, 2), np.float32), "empty"),
    (np.full((10, 2), np.nan, np.float32), "NaN"),
    (np.zeros((10, 2), np.int16), "floating point"),
    (np.zeros((2, 4800), np.float32), "shaped"),
])
def test_bad_audio_is_refused_and_nothing_is_left(tmp_path: Path, audio: np.ndarray,
                                                  message: str) -> None:
    with pytest.raises(AudioError, match=message):
        wavfile.write_wav(tmp_path / "x.wav", audio, RATE)
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_wav_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "x.wav"
    bogus.write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    with pytest.raises(AudioError, match="not a readable WAV"):
        wavfile.parse_wav(bogus)
