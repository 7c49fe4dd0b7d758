"""A long-form programme for the tests: an hour of 29.97 picture in two reels, from coded sources.

Everything is generated: a few tiny frame-coded sources (every frame shows its source id and
number, see :mod:`tests.framecode`) and an edit of a few hundred cuts between them, written as
an OTIO file. :class:`Programme` keeps the cut list it was built from, so the tests can say what
the picture shows at any record frame without asking the code under test.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio

from tests.edits import build_timeline
from tests.framecode import write_coded_video

NTSC = Fraction(30000, 1001)
HOUR_DF_FRAMES = 107892  # 60 minutes of 29.97 drop-frame: 01:00:00;00 is frame 107892
SOURCE_FRAMES = 1800  # a minute per source


@dataclass(frozen=True)
class Cut:
    """One clip of the programme: stack frames [start, start + frames) show source frames
    [src_in, src_in + frames) of source *source_id*."""

    start: int
    frames: int
    source_id: int
    src_in: int

    @property
    def end(self) -> int:
        return self.start + self.frames


@dataclass(frozen=True)
class Programme:
    path: Path
    rate: Fraction
    start_frame: int  # record frame of stack frame 0
    cuts: tuple[Cut, ...]

    @property
    def frames(self) -> int:
        return self.cuts[-1].end

    def code_at(self, stack_frame: int) -> tuple[int, int]:
        """(source id, source frame number) the programme shows at *stack_frame*."""
        for cut in self.cuts:
            if cut.start <= stack_frame < cut.end:
                return cut.source_id, cut.src_in + stack_frame - cut.start
        raise IndexError(f"stack frame {stack_frame} is outside the programme")


def coded_sources(folder: Path, ids: list[int], *, width: int = 160, height: int = 90,
                  frames: int = SOURCE_FRAMES, rate: Fraction = NTSC) -> dict[int, Path]:
    """Tiny frame-coded H.264 sources, one per id (a keyframe every second)."""
    return {i: write_coded_video(folder / f"reel_src{i}.mp4", frames=frames, rate=rate,
                                 source_id=i, width=width, height=height, gop=30, bframes=0,
                                 crf=23)
            for i in ids}


def cut_lengths(count: int, total: int, *, low: int, high: int, seed: int) -> list[int]:
    """*count* clip lengths in [low, high] frames that add up to exactly *total*."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(low, high + 1, count)
    while (diff := total - int(lengths.sum())) != 0:
        room = (lengths < high) if diff > 0 else (lengths > low)
        idx = np.flatnonzero(room)[: abs(diff)]
        lengths[idx] += 1 if diff > 0 else -1
    return [int(n) for n in lengths]


def write_programme(folder: Path, *, reels: list[list[int]], cuts: int = 600,
                    frames: int = HOUR_DF_FRAMES, start_frame: int = HOUR_DF_FRAMES,
                    rate: Fraction = NTSC, seed: int = 1) -> Programme:
    """An OTIO edit of *cuts* clips on V1 over *frames*, in consecutive reels.

    Reel *k* cuts between the sources ``reels[k]`` (alternating, so every cut changes source);
    clip lengths 3-9 s, random in-points. The timeline starts at record frame *start_frame*
    (01:00:00;00 by default).
    """
    ids = sorted({i for reel in reels for i in reel})
    sources = coded_sources(folder / "media", ids, rate=rate)
    lengths = cut_lengths(cuts, frames, low=90, high=270, seed=seed)
    rng = np.random.default_rng(seed + 1)
    per_reel = -(-cuts // len(reels))
    planned: list[Cut] = []
    items: list[tuple[object, ...]] = []
    pos = 0
    for k, n in enumerate(lengths):
        reel = reels[k // per_reel]
        sid = reel[k % len(reel)]
        src_in = int(rng.integers(0, SOURCE_FRAMES - n))
        planned.append(Cut(pos, n, sid, src_in))
        items.append(("clip", sources[sid], sid, src_in, n))
        pos += n
    tl = build_timeline([items], rate, start_frame=start_frame, source_frames=SOURCE_FRAMES,
                        name="Episode 101")
    path = folder / "episode.otio"
    otio.adapters.write_to_file(tl, str(path))
    return Programme(path, rate, start_frame, tuple(planned))


def wav_window(path: Path, start: int, frames: int) -> np.ndarray:
    """Samples [start, start + frames) of a 16/24-bit PCM WAV as float (frames, channels).

    Reads only that window (an hour of 48 kHz stereo would not fit the tests' memory budget
    as float), parsing the RIFF chunks with struct, not with reelscore's reader.
    """
    with open(path, "rb") as fh:
        head = fh.read(12)
        assert head[:4] == b"RIFF" and head[8:12] == b"WAVE", f"{path} is not a RIFF/WAVE file"
        channels = bits = 0
        while True:
            cid, size = struct.unpack("<4sI", fh.read(8))
            if cid == b"fmt ":
                fmt = fh.read(size + (size & 1))
                _tag, channels, _rate, _bps, _align, bits = struct.unpack("<HHIIHH", fmt[:16])
            elif cid == b"data":
                break
            else:
                fh.seek(size + (size & 1), 1)
        width = bits // 8
        assert bits in (16, 24) and channels, (bits, channels)
        fh.seek(start * channels * width, 1)
        raw = np.frombuffer(fh.read(frames * channels * width), dtype=np.uint8)
    if bits == 16:
        ints = raw.view("<i2").astype(np.int32)
    else:
        b = raw.reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
    return (ints / float(1 << (bits - 1))).reshape(-1, channels)
