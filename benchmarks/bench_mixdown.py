"""Benchmark: the mixdown of a 60-minute edit with 8 audio tracks and 1,000 audio clips.

    python benchmarks/bench_mixdown.py [--minutes 60] [--tracks 8] [--clips 1000]
                                       [--media-files 100] [--media-seconds 120]
                                       [--workers CORES+1] [--dir DIR]

Measured in the same run:

  (a) ffmpeg decoding the same media alone: every file the edit uses, whole, once, to 48 kHz
      float samples on a pipe that is read and thrown away, as many ffmpeg at once as the
      mixdown runs (``--workers``), same arguments as the mixdown's decoder;
  (b) ``mix_edit_audio`` over the whole edit (placing, gains, crossfades, folding to stereo,
      summing into one 60-minute stereo array).

Target (issue 15): (b) <= 1.5 x (a).

Media (made once into DIR, default /tmp/reelscore-bench-mixdown): MEDIA_FILES files of
MEDIA_SECONDS each (a tone and noise), like a cut's sources: a quarter mono 24-bit 48 kHz WAV
(production sound), half stereo AAC 48 kHz in .m4a (camera sound), a quarter stereo AAC 44.1 kHz
(music, resampled by the mixdown). The
(24 fps from 01:00:00:00) puts CLIPS clips over TRACKS audio tracks filling MINUTES minutes each,
seeded random durations and source in points, a one-frame gap every 7th clip and a 12-frame
crossfade every 10th.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
from opentimelineio import opentime

from reelscore import ffmpeg_cli
from reelscore.mixdown import mix_edit_audio
from reelscore.timeline import normalise

RATE = 24
START = 86400  # 01:00:00:00


def make_media(folder: Path, count: int, seconds: int) -> list[tuple[Path, int]]:
    """Sources like a cut's: a quarter mono 24-bit WAV (production sound), half stereo AAC in
    .m4a (camera sound, 48 kHz), a quarter stereo AAC at 44.1 kHz (music: resampled)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        kind = ("wav", 48000, 1) if i % 4 == 0 else ("m4a", 44100, 2) if i % 4 == 3 \
            else ("m4a", 48000, 2)
        suffix, rate, channels = kind
        path = folder / f"src{i:03d}_{rate}_{channels}ch.{suffix}"
        if not path.exists():
            freq = 110 + 20 * i
            layout = "mono" if channels == 1 else "stereo"
            codec = ["-c:a", "pcm_s24le"] if suffix == "wav" else ["-c:a", "aac", "-b:a", "128k"]
            subprocess.run(ffmpeg_cli.base_args() + [
                "-f", "lavfi", "-i", f"sine=f={freq}:r={rate}:d={seconds}",
                "-f", "lavfi", "-i", f"anoisesrc=r={rate}:a=0.02:d={seconds}:s={i}",
                "-filter_complex", f"amix=inputs=2:normalize=0,aformat=channel_layouts={layout}",
                *codec, str(path)], check=True)
        out.append((path, seconds))
    return out


def make_edit(media: list[tuple[Path, int]], minutes: int, tracks: int, clips: int):
    rng = random.Random(15)
    total = minutes * 60 * RATE
    per_track = clips // tracks
    tl = otio.schema.Timeline(name="bench mixdown")
    tl.global_start_time = opentime.RationalTime(START, RATE)
    v = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    v.append(otio.schema.Gap(source_range=opentime.TimeRange(
        opentime.RationalTime(0, RATE), opentime.RationalTime(total, RATE))))
    tl.tracks.append(v)
    for t in range(tracks):
        track = otio.schema.Track(name=f"A{t + 1}", kind=otio.schema.TrackKind.Audio)
        weights = [rng.uniform(0.5, 1.5) for _ in range(per_track)]
        lengths = [max(24, int(total * w / sum(weights))) for w in weights]
        lengths[-1] += total - sum(lengths)
        for k, frames in enumerate(lengths):
            path, seconds = media[rng.randrange(len(media))]
            if k % 7 == 6:
                track.append(otio.schema.Gap(source_range=opentime.TimeRange(
                    opentime.RationalTime(0, RATE), opentime.RationalTime(1, RATE))))
                frames -= 1
            frames = min(frames, seconds * RATE - 48)
            src_in = rng.randrange(12, seconds * RATE - frames - 12)
            ref = otio.schema.ExternalReference(target_url=str(path),
                                                available_range=opentime.TimeRange(
                opentime.RationalTime(0, RATE), opentime.RationalTime(seconds * RATE, RATE)))
            track.append(otio.schema.Clip(name=f"A{t + 1}.{k}", media_reference=ref,
                                          source_range=opentime.TimeRange(
                opentime.RationalTime(src_in, RATE), opentime.RationalTime(frames, RATE))))
            if k % 10 == 9 and k + 1 < per_track:
                track.append(otio.schema.Transition(
                    in_offset=opentime.RationalTime(6, RATE),
                    out_offset=opentime.RationalTime(6, RATE)))
        tl.tracks.append(track)
    return normalise(tl, rate=Fraction(RATE)), total


def decode_alone(paths: list[Path], workers: int) -> float:
    """Each file decoded whole once by ffmpeg to 48 kHz f32 on a pipe, read and discarded."""
    def one(path: Path) -> None:
        args = ffmpeg_cli.base_args() + [
            "-protocol_whitelist", ffmpeg_cli.INPUT_PROTOCOLS, "-ss", "0.000",
            "-i", ffmpeg_cli.file_arg(path), "-map", "0:a:0", "-vn", "-af", "aresample=48000",
            "-f", "f32le", "-c:a", "pcm_f32le", "pipe:1"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        while proc.stdout.read(1 << 20):
            pass
        if proc.wait() != 0:
            raise SystemExit(f"ffmpeg failed on {path}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, paths))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--tracks", type=int, default=8)
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--media-files", type=int, default=100)
    ap.add_argument("--media-seconds", type=int, default=120)
    ap.add_argument("--workers", type=int, default=(os.cpu_count() or 1) + 1)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/reelscore-bench-mixdown"))
    args = ap.parse_args()

    media = make_media(args.dir, args.media_files, args.media_seconds)
    edit, total = make_edit(media, args.minutes, args.tracks, args.clips)
    clips = sum(1 for t in edit.timeline.audio_tracks() for _ in t.find_clips())
    used = sorted({Path(c.media_reference.target_url) for t in edit.timeline.audio_tracks()
                   for c in t.find_clips()})
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"edit: {args.minutes} min at {RATE} fps, {len(edit.timeline.audio_tracks())} audio "
          f"tracks, {clips} clips, {len(used)} media files of {args.media_seconds} s")
    mix_edit_audio(edit, 0, RATE * 10, workers=args.workers)  # warm the probe cache and disk
    decode_alone(used[:2], args.workers)
    a = decode_alone(used, args.workers)
    print(f"(a) ffmpeg decoding the media alone: {a:.2f} s")
    t0 = time.perf_counter()
    mix = mix_edit_audio(edit, 0, total, workers=args.workers)
    b = time.perf_counter() - t0
    print(f"(b) mixdown of the whole edit: {b:.2f} s -> {mix.shape[0]} stereo samples, "
          f"peak {float(np.max(np.abs(mix))):.3f}")
    print(f"ratio (b)/(a) = {b / a:.2f} (target <= 1.50); load average now "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
