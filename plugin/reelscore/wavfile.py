"""WAV files: the one reader and the one writer of reelscore's audio.

Audio in memory is float32 shaped ``(frames, channels)`` (conventions in docs/architecture.md).

* :func:`write_wav` writes it atomically (a temporary file beside the destination, synced, then
  moved over it: :func:`reelscore.fsutil.atomic_output`) as 16- or 24-bit PCM or 32-bit float.
  PCM is rounded and clipped to [-1, 1); 16-bit gets seeded TPDF dither (the same input always
  gives the same file, so a resumed job's hashes match), 24-bit does not, so 24-bit data written
  and read back is bit-exact. Samples are converted in blocks of ``CHUNK_FRAMES``, so a long
  score needs little memory beyond its own samples. :func:`write_wav_to` writes without the
  temporary, for a path that already is one.
* :func:`parse_wav` reads PCM 16/24/32-bit and float 32/64 WAVs, plain or extensible, walking the
  RIFF chunks with plain reads (no memory map is left on a file that may be rewritten) and
  tolerating a cut tail; samples are decoded in blocks of ``CHUNK_FRAMES`` into the one float32
  array returned. :func:`read_wav` also takes any other audio, decoded by ffmpeg at its own
  rate and channel count.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from reelscore import ffmpeg_cli
from reelscore.errors import AudioError, OutputError
from reelscore.fsutil import atomic_output

WAVE_FORMAT_PCM = 1
WAVE_FORMAT_IEEE_FLOAT = 3
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# The RIFF size fields are 32-bit: the data chunk and the headers must fit under 4 GiB.
MAX_DATA_BYTES = 0xFFFFFFFF - 64
# Frames converted to bytes at a time (about 1.5 MB of stereo 24-bit).
CHUNK_FRAMES = 1 << 18
BITS = (16, 24, 32)
_DITHER_SEED = 0x5EED


def _frames_by_channels(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Validate float samples (frames,) or (frames, channels); return them 2-D (no copy)."""
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"invalid sample rate {sample_rate!r}: expected a positive integer")
    audio = np.asarray(samples)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or (audio.shape[1] > 16 and audio.shape[0] <= 16):  # transposed?
        raise AudioError(f"audio must be shaped (frames, channels); got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(f"audio must be floating point in [-1, 1]; got dtype {audio.dtype}")
    if audio.shape[0] == 0:
        raise AudioError("the audio to write is empty (0 samples)")
    if not np.isfinite(audio).all():
        raise AudioError("the audio to write contains NaN or infinite samples")
    return audio


def _pack24(ints: NDArray[np.int32]) -> bytes:
    """int32 samples to little-endian 24-bit: four samples packed into three 32-bit words."""
    low = ints.ravel().view(np.uint32) & np.uint32(0xFFFFFF)
    count = len(low)
    if count % 4:
        low = np.concatenate([low, np.zeros(4 - count % 4, np.uint32)])
    quads = low.reshape(-1, 4)
    words = np.empty((len(quads), 3), "<u4")
    words[:, 0] = quads[:, 0] | (quads[:, 1] << 24)
    words[:, 1] = (quads[:, 1] >> 8) | (quads[:, 2] << 16)
    words[:, 2] = (quads[:, 2] >> 16) | (quads[:, 3] << 8)
    return words.tobytes()[: 3 * count]


def _sample_bytes(block: np.ndarray, bits: int, dither: np.random.Generator | None) -> bytes:
    """Float frames to interleaved little-endian samples of *bits* (see the module docstring)."""
    if bits == 32:
        return np.ascontiguousarray(block, dtype="<f4").tobytes()
    scale = float(1 << (bits - 1))
    if bits == 24 and block.dtype == np.float32:
        q = block * np.float32(scale)  # a power-of-two scale is exact in float32
    else:
        q = np.asarray(block, dtype=np.float64) * scale
    if dither is not None:
        q += dither.random(q.shape)
        q -= dither.random(q.shape)
    np.rint(q, out=q)
    np.clip(q, -scale, scale - 1, out=q)
    ints = np.ascontiguousarray(q, dtype="<i4")
    return ints.astype("<i2").tobytes() if bits == 16 else _pack24(ints)


def _header(frames: int, channels: int, sample_rate: int, bits: int, data_bytes: int) -> bytes:
    pad = data_bytes & 1  # RIFF chunks are word-aligned
    if bits == 32:  # IEEE float: fmt with cbSize, and the fact chunk float WAVs must carry
        block_align = 4 * channels
        fmt = struct.pack("<HHIIHHH", WAVE_FORMAT_IEEE_FLOAT, channels, sample_rate,
                          sample_rate * block_align, block_align, 32, 0)
        extra = b"fact" + struct.pack("<II", 4, frames)
    else:
        block_align = bits // 8 * channels
        fmt = struct.pack("<HHIIHH", WAVE_FORMAT_PCM, channels, sample_rate,
                          sample_rate * block_align, block_align, bits)
        extra = b""
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
            + b"data" + struct.pack("<I", data_bytes))
    return b"RIFF" + struct.pack("<I", len(body) + data_bytes + pad) + body


def write_wav_to(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int, *,
                 bits: int = 24) -> None:
    """Write *samples* straight to *path*, synced: for a path that is itself a temporary file
    (inside :func:`~reelscore.fsutil.atomic_output`); everything else uses :func:`write_wav`."""
    if bits not in BITS:
        raise ValueError(f"bits must be 16, 24 or 32 (float), got {bits!r}")
    audio = _frames_by_channels(samples, sample_rate)
    frames, channels = audio.shape
    data_bytes = frames * channels * (bits // 8)
    if data_bytes > MAX_DATA_BYTES:
        raise OutputError(
            f"cannot write {str(path)!r}: {data_bytes / 2**30:.1f} GiB of audio is over the "
            "4 GiB WAV limit", hint="write 16-bit or score a shorter range")
    dither = np.random.default_rng(_DITHER_SEED) if bits == 16 else None
    with open(path, "wb") as fh:
        fh.write(_header(frames, channels, sample_rate, bits, data_bytes))
        for start in range(0, frames, CHUNK_FRAMES):
            fh.write(_sample_bytes(audio[start:start + CHUNK_FRAMES], bits, dither))
        if data_bytes & 1:
            fh.write(b"\0")
        fh.flush()
        os.fsync(fh.fileno())


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int, *,
              bits: int = 24) -> None:
    """Write float *samples* (frames[, channels]) as a WAV of *bits* (16, 24 PCM or 32 float),
    atomically: a full disk or Ctrl-C never leaves a partial file under *path*."""
    if bits not in BITS:
        raise ValueError(f"bits must be 16, 24 or 32 (float), got {bits!r}")
    with atomic_output(path) as tmp:
        write_wav_to(tmp, samples, sample_rate, bits=bits)


def is_wav(path: str | os.PathLike[str]) -> bool:
    """Whether *path* starts like a RIFF/WAVE file (AudioError if it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        raise AudioError(f"cannot read audio {str(path)!r}: {exc.strerror or exc}") from exc
    return len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 ``(frames, channels)`` and its sample rate.

    Files that are not RIFF/WAVE are decoded by ffmpeg at their own rate and channel count.
    """
    p = Path(path)
    if not is_wav(p):
        info = ffmpeg_cli.probe(p)
        rate = info.sample_rate or 48000
        return ffmpeg_cli.decode_audio(p, sample_rate=rate, channels=info.channels or 2), rate
    return parse_wav(p)


def parse_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read a RIFF/WAVE file (see the module docstring); AudioError if it holds no usable audio."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            pos = 12
            fmt: tuple[int, int, int, int] | None = None
            while pos + 8 <= size:
                fh.seek(pos)
                chunk_id, length = struct.unpack("<4sI", fh.read(8))
                body = pos + 8
                if chunk_id == b"fmt " and length >= 16:
                    raw = fh.read(min(length, 40))
                    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", raw[:16])
                    if tag == WAVE_FORMAT_EXTENSIBLE and len(raw) >= 26:
                        tag = struct.unpack("<H", raw[24:26])[0]  # the sub-format GUID's tag
                    fmt = (tag, channels, rate, bits)
                elif chunk_id == b"data" and fmt is not None:
                    tag, channels, rate, bits = fmt
                    frame = bits // 8 * channels
                    if frame <= 0 or bits % 8 or rate <= 0:
                        break
                    frames = min(length, size - body) // frame  # tolerate a cut tail
                    out = np.empty((frames, channels), dtype=np.float32)
                    # In blocks: an hour of 24-bit stereo is 1.4 GB as float32; its bytes and
                    # the int32 step would add 2.3 GB more if decoded at once.
                    for at in range(0, frames, CHUNK_FRAMES):
                        take = min(CHUNK_FRAMES, frames - at)
                        data = np.fromfile(fh, dtype=np.uint8, count=take * frame)
                        if data.size < take * frame:
                            raise AudioError(f"{str(path)!r} ended while being read")
                        out[at:at + take] = _decode_samples(data, tag, bits,
                                                            path).reshape(-1, channels)
                    return out, rate
                pos = body + length + (length & 1)
    except OSError as exc:
        raise AudioError(f"cannot read audio {str(path)!r}: {exc.strerror or exc}") from exc
    raise AudioError(f"{str(path)!r} is not a readable WAV file (no usable fmt/data chunk)")


def _decode_samples(data: NDArray[np.uint8], tag: int, bits: int,
                    path: Path) -> NDArray[np.float32]:
    if tag == WAVE_FORMAT_IEEE_FLOAT and bits in (32, 64):
        return data.view("<f4" if bits == 32 else "<f8").astype(np.float32)
    if tag == WAVE_FORMAT_PCM:
        if bits == 16:
            return (data.view("<i2") / 32768.0).astype(np.float32)
        if bits == 24:
            # Read each sample as the top 3 bytes of an int32 that starts one byte earlier
            # (overlapping, unaligned views); the arithmetic shift then sign-extends it.
            buf = np.empty(data.size + 1, dtype=np.uint8)
            buf[0] = 0
            buf[1:] = data
            wide = np.ndarray((data.size // 3,), dtype="<i4", buffer=buf, strides=(3,))
            return (wide >> 8).astype(np.float32) * np.float32(1.0 / (1 << 23))
        if bits == 32:
            return (data.view("<i4") / 2.0**31).astype(np.float32)
    raise AudioError(f"{str(path)!r}: unsupported WAV sample format (tag {tag}, {bits} bit)",
                     hint="use 16/24/32-bit PCM or 32/64-bit float WAV")


__all__ = ["is_wav", "parse_wav", "read_wav", "write_wav", "write_wav_to"]
