"""Independent audio checks for the tests: WAV header parsing, chroma, ffmpeg's own meter."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from reelscore.ffmpeg_cli import base_args, file_arg, run


def wav_header(path: Path) -> dict[str, int]:
    """Parse a RIFF/WAVE header with struct (not our writer's code)."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", "not a RIFF/WAVE file"
    pos, fmt, size = 12, None, None
    while pos + 8 <= len(data):
        cid, clen = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if cid == b"fmt ":
            tag, ch, rate, _, align, bits = struct.unpack("<HHIIHH", data[pos + 8:pos + 24])
            fmt = {"format": tag, "channels": ch, "rate": rate, "align": align, "bits": bits}
        elif cid == b"data":
            size = clen
            break
        pos += 8 + clen + (clen & 1)
    assert fmt is not None and size is not None
    fmt["frames"] = size // fmt["align"]
    return fmt


def dominant_pitch_class(x: np.ndarray, rate: int = 48000) -> int:
    """Pitch class (0 = C) with the most spectral energy between 55 Hz and 2 kHz."""
    mono = x.mean(axis=1) if x.ndim == 2 else x
    mono = mono * np.hanning(len(mono))
    spec = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1 / rate)
    band = (freqs > 55) & (freqs < 2000)
    midi = 69 + 12 * np.log2(freqs[band] / 440.0)
    pcs = np.round(midi).astype(int) % 12
    chroma = np.bincount(pcs, weights=spec[band], minlength=12)
    return int(np.argmax(chroma))


def ffmpeg_loudness(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) as ffmpeg's ebur128 filter reads them."""
    proc = run(base_args()[:-2] + ["-loglevel", "info", "-i", file_arg(path), "-af",
                                    "ebur128=peak=true", "-f", "null", "-"],
               "measuring loudness with ffmpeg")
    text = proc.stderr.decode("utf-8", "replace")
    summary = text[text.rfind("Summary:"):]
    i = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    tp = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))
    return i, tp
