"""Frame-code media: every frame carries its own number, machine-readable after any scaling.

Used by the tests (frame accuracy is checked by decoding frames, not by re-reading our own
arithmetic) and by the benchmarks; the product never needs it. A frame shows two rows of black/white blocks:
row 1 = the frame number (20 bits), row 2 = a source id (8 bits) plus a parity block, over a
moving background so the encoder has real work to do. The blocks are large (1/20 of the width),
so they survive downscaling to a 640-px proxy and H.264 compression.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from reelscore.ffmpeg_cli import base_args, decode_gray_frames, file_arg, run, write_frames

FRAME_BITS = 20
ID_BITS = 8
_ROW1 = (0.10, 0.30)  # vertical extent of row 1, as a fraction of the height
_ROW2 = (0.40, 0.60)


def _ramp(width: int, height: int) -> np.ndarray:
    key = (width, height)
    base = _RAMPS.get(key)
    if base is None:
        x = np.arange(width, dtype=np.int32)
        y = np.arange(height, dtype=np.int32)[:, None]
        base = (x[None, :] * 2 + y * 3).astype(np.int32)
        _RAMPS[key] = base
    return base


_RAMPS: dict[tuple[int, int], np.ndarray] = {}


def code_bits(number: int, source_id: int) -> tuple[list[int], list[int]]:
    """The bits of row 1 (frame number) and row 2 (source id, parity, padding) of a code."""
    bits1 = [(number >> (FRAME_BITS - 1 - i)) & 1 for i in range(FRAME_BITS)]
    ident = [(source_id >> (ID_BITS - 1 - i)) & 1 for i in range(ID_BITS)]
    bits2 = ident + [sum(bits1) % 2] + [0] * (FRAME_BITS - ID_BITS - 1)
    return bits1, bits2


def code_frame(number: int, source_id: int, width: int, height: int) -> np.ndarray:
    """One grey frame (height, width) uint8 showing *number* and *source_id*."""
    frame = ((_ramp(width, height) + number * 7) % 160 + 48).astype(np.uint8)  # moving ramp
    bw = width / FRAME_BITS
    bits1, bits2 = code_bits(number, source_id)
    for row, bits in ((_ROW1, bits1), (_ROW2, bits2)):
        y0, y1 = int(row[0] * height), int(row[1] * height)
        for i, bit in enumerate(bits):
            x0, x1 = int(i * bw), int((i + 1) * bw)
            frame[y0:y1, x0:x1] = 235 if bit else 16
    return frame


def block_levels(frame: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean grey level at the centre of every block of rows 1 and 2 (for checking blends)."""
    height, width = frame.shape
    bw = width / FRAME_BITS
    out: list[list[float]] = []
    for row in (_ROW1, _ROW2):
        y0, y1 = int(row[0] * height), int(row[1] * height)
        band = frame[y0:y1]
        levels: list[float] = []
        for i in range(FRAME_BITS):
            x0, x1 = int(i * bw), int((i + 1) * bw)
            # centre of the block, away from edges blurred by scaling and chroma subsampling
            cx0, cx1 = x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4
            cy0, cy1 = (y1 - y0) // 4, (y1 - y0) - (y1 - y0) // 4
            levels.append(float(band[cy0:cy1, cx0:cx1].mean()))
        out.append(levels)
    return out[0], out[1]


def write_coded_sequence(
    folder: Path,
    *,
    frames: int,
    source_id: int,
    start_number: int = 1,
    first_number: int = 0,
    prefix: str = "frame.",
    padding: int = 4,
    suffix: str = ".png",
    width: int = 320,
    height: int = 180,
) -> Path:
    """Write an image sequence ``prefix + number + suffix`` (numbers from *start_number*) whose
    image *k* shows frame number ``first_number + k``. Returns the first image's path."""
    folder.mkdir(parents=True, exist_ok=True)
    pattern = folder / (f"{prefix}%0{padding}d{suffix}" if padding else f"{prefix}%d{suffix}")
    args = base_args() + [
        "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{width}x{height}", "-framerate", "24",
        "-i", "pipe:0", "-start_number", str(start_number), "-pix_fmt", "gray",
        "-f", "image2", file_arg(pattern),
    ]
    _pipe_frames(args, (code_frame(first_number + k, source_id, width, height)
                        for k in range(frames)), pattern)
    return Path(str(pattern) % start_number)


def write_coded_still(path: Path, *, number: int, source_id: int, width: int = 320,
                      height: int = 180) -> Path:
    """One image (PNG, JPEG ... by extension) showing frame *number* of *source_id*."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = base_args() + [
        "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{width}x{height}", "-i", "pipe:0",
        "-frames:v", "1", "-update", "1", file_arg(path),
    ]
    _pipe_frames(args, [code_frame(number, source_id, width, height)], path)
    return path


def _pipe_frames(args: list[str], frames: Iterable[np.ndarray], path: Path) -> None:
    with write_frames(args, f"writing {path.name}") as encoder:
        for frame in frames:
            encoder.write(frame.tobytes())


def write_coded_video(
    path: Path,
    *,
    frames: int,
    rate: Fraction,
    source_id: int = 1,
    first_number: int = 0,
    width: int = 320,
    height: int = 180,
    gop: int = 48,
    bframes: int = 2,
    timecode: str | None = None,
    crf: int = 18,
    noise: int = 0,
    bitrate: str | None = None,
) -> Path:
    """Write an H.264 MP4 whose frame *k* shows number ``first_number + k``.

    *noise* (0-100) adds temporal grain (block means stay readable), so benchmarks decode
    camera-like bitrates; *bitrate* (e.g. "20M") replaces the CRF with a target bitrate.
    """
    args = base_args() + [
        "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{width}x{height}",
        "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
    ]
    if noise:
        args += ["-vf", f"noise=alls={noise}:allf=t"]
    args += ["-c:v", "libx264", "-preset", "ultrafast"]
    args += (["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate] if bitrate
             else ["-crf", str(crf)])
    args += [
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", str(bframes),
        "-pix_fmt", "yuv420p", "-an",
    ]
    if timecode:
        args += ["-timecode", timecode]
    args.append(file_arg(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    _pipe_frames(args, (code_frame(first_number + k, source_id, width, height)
                        for k in range(frames)), path)
    return path


def read_code(frame: np.ndarray) -> tuple[int, int] | None:
    """(source_id, number) shown by a grey frame, or None for black / unreadable frames."""

    def bits(levels: list[float]) -> list[int] | None:
        if any(70 < v < 180 for v in levels):
            return None  # neither black nor white: not a code
        return [1 if v >= 180 else 0 for v in levels]

    levels1, levels2 = block_levels(frame)
    b1 = bits(levels1)
    b2 = bits(levels2)
    if b1 is None or b2 is None:
        return None
    if b2[ID_BITS] != sum(b1) % 2:
        return None
    number = int("".join(map(str, b1)), 2)
    ident = int("".join(map(str, b2[:ID_BITS])), 2)
    if ident == 0:
        return None
    return ident, number


def read_codes(path: Path, *, width: int = 320, height: int = 180) -> list[tuple[int, int] | None]:
    """Decode every frame of *path* and read its code (None = black or unreadable)."""
    frames = decode_gray_frames(path, width=width, height=height)
    return [read_code(f) for f in frames]


def is_black(path: Path, *, width: int = 64, height: int = 36) -> list[bool]:
    frames = decode_gray_frames(path, width=width, height=height)
    return [bool(f.mean() < 24) for f in frames]


def write_test_pattern(path: Path, *, seconds: float, rate: Fraction, size: str = "640x360",
                       source: str = "testsrc2") -> Path:
    """A lavfi test source (moving pattern) as H.264, for demos and analysis tests."""
    args = base_args() + [
        "-f", "lavfi", "-i", f"{source}=size={size}:rate={rate.numerator}/{rate.denominator}",
        "-t", f"{seconds:.6f}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        file_arg(path),
    ]
    run(args, f"writing test pattern {path.name}")
    return path
