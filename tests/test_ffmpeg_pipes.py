"""ffmpeg_cli's streaming pipes, run against real ffmpeg: frames out of a decoder, frames into an
encoder, failures as FFmpegError with ffmpeg's own words, and no ffmpeg left running."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from reelscore.errors import FFmpegError
from reelscore.ffmpeg_cli import (
    INPUT_PROTOCOLS,
    base_args,
    decode_gray_frames,
    file_arg,
    read_frames,
    write_frames,
)
from reelscore.signals import child_pids
from tests.framecode import code_frame, read_code

WIDTH, HEIGHT = 160, 90


def _encoder(path: Path, rate: Fraction = Fraction(24)) -> list[str]:
    return base_args() + [
        "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{WIDTH}x{HEIGHT}",
        "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-pix_fmt", "yuv420p",
        file_arg(path),
    ]


def _decoder(path: Path) -> list[str]:
    return base_args() + ["-protocol_whitelist", INPUT_PROTOCOLS, "-i", file_arg(path),
                          "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"]


def test_frames_written_through_the_encoder_read_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "coded.mp4"
    with write_frames(_encoder(path), "writing the test clip") as encoder:
        for k in range(30):
            encoder.write(code_frame(k, 3, WIDTH, HEIGHT).tobytes())
    assert encoder.frames == 30
    frames = [np.frombuffer(f, np.uint8).reshape(HEIGHT, WIDTH)
              for f in read_frames(_decoder(path), WIDTH * HEIGHT, "reading the test clip")]
    assert [read_code(f) for f in frames] == [(3, k) for k in range(30)]


def test_a_decoder_closed_early_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "coded.mp4"
    with write_frames(_encoder(path), "writing the test clip") as encoder:
        for k in range(48):
            encoder.write(code_frame(k, 1, WIDTH, HEIGHT).tobytes())
    before = set(child_pids())
    decoded = read_frames(_decoder(path), WIDTH * HEIGHT, "reading two frames")
    first = next(decoded)
    assert read_code(np.frombuffer(first, np.uint8).reshape(HEIGHT, WIDTH)) == (1, 0)
    running = set(child_pids()) - before
    assert len(running) == 1  # the decoder, waiting for us to read on
    decoded.close()
    assert not set(child_pids()) & running
    (pid,) = running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie


def test_a_failing_decoder_raises_with_the_stderr_tail(tmp_path: Path) -> None:
    with pytest.raises(FFmpegError) as info:
        list(read_frames(_decoder(tmp_path / "missing.mp4"), 64, "decoding missing.mp4"))
    assert info.value.purpose == "decoding missing.mp4"
    assert info.value.returncode != 0
    assert "No such file" in info.value.stderr_tail


def test_an_encoder_that_fails_raises_and_leaves_no_process(tmp_path: Path) -> None:
    before = set(child_pids())
    bad = _encoder(tmp_path / "no such folder" / "out.mp4")
    with pytest.raises(FFmpegError) as info, write_frames(bad, "encoding out.mp4") as encoder:
        for k in range(200):
            encoder.write(code_frame(k, 1, WIDTH, HEIGHT).tobytes())
    assert info.value.purpose == "encoding out.mp4"
    assert "No such file" in info.value.stderr_tail
    assert set(child_pids()) <= before


def test_an_exception_in_the_block_kills_the_encoder(tmp_path: Path) -> None:
    path = tmp_path / "partial.mp4"
    before = set(child_pids())
    with pytest.raises(KeyboardInterrupt), write_frames(_encoder(path), "encoding") as encoder:
        encoder.write(code_frame(0, 1, WIDTH, HEIGHT).tobytes())
        raise KeyboardInterrupt
    assert set(child_pids()) <= before
    # Killed before it finished the file: nothing decodable was written.
    if path.exists():
        with pytest.raises(FFmpegError):
            decode_gray_frames(path, width=16, height=16)
