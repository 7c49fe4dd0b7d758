"""Benchmark: reelscore's loudness normaliser against ffmpeg's two-pass loudnorm.

    python benchmarks/bench_loudness.py [--minutes 10] [--repeat 1]

Writes a music-like 48 kHz stereo 24-bit WAV (chords, kick-like bursts, hi-hat noise, single-
sample clicks, sections 4 dB apart; -18 LUFS with a true peak about -0.6 dBTP, so -14 LUFS
under -1 dBTP needs a limiter) to a temporary folder, then times on that same file, in the same
run:

* reelscore: ``loudness.normalise_file(src, dst)`` (read, measure, gain + limiter, write the
  24-bit WAV, re-measure the written file);
* ffmpeg: pass 1 ``loudnorm=I=-14:TP=-1:LRA=11:print_format=json`` to null, pass 2 with the
  measured values and ``linear=true``, ``-ar 48000``, 24-bit WAV out.

Both outputs are then measured with reelscore's meter (not timed). Wall and CPU seconds are
printed (CPU: this process for reelscore, including its FFT threads; the ffmpeg children for
loudnorm), since a shared machine moves wall time. With ``--repeat N`` each tool runs N times,
alternating, and the fastest run of each (by wall time) is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from reelscore import loudness, wavfile
from reelscore.ffmpeg_cli import ffmpeg_exe, file_arg, run

FS = 48000


def music_like(seconds: float, seed: int = 1) -> np.ndarray:
    """An 8 s loop of chords, kicks, hats and clicks, tiled, with slow 4 dB level sections."""
    rng = np.random.default_rng(seed)
    loop = 8 * FS
    t = np.arange(loop) / FS
    chords = np.zeros((loop, 2))
    span = 2 * FS
    for i, start in enumerate(range(0, loop, span)):
        tt = t[start : start + span] - t[start]
        env = np.minimum(1.0, tt / 0.02) * np.exp(-tt / 1.5)
        for ratio in (1.0, 1.26, 1.5):
            f0 = (220.0, 174.61, 196.0, 146.83)[i % 4] * ratio
            for c in range(2):
                ph = rng.uniform(0, 2 * np.pi)
                for k in range(1, 7):
                    chords[start : start + span, c] += 0.15 / k * env * np.sin(
                        2 * np.pi * f0 * k * (1 + 0.001 * c) * tt + ph * k)
    beat = FS // 2
    kt = np.arange(FS // 4) / FS
    kick = 0.25 * np.sin(2 * np.pi * (50 + 80 * np.exp(-kt / 0.03)) * kt) * np.exp(-kt / 0.08)
    hat = FS // 20
    for j, start in enumerate(range(0, loop - kick.size, beat)):
        chords[start : start + kick.size] += kick[:, None]
        noise = rng.standard_normal((hat, 2)) * np.exp(-np.arange(hat) / (0.01 * FS))[:, None]
        chords[start + beat // 2 : start + beat // 2 + hat] += 0.15 * np.diff(noise, axis=0,
                                                                              prepend=0)
        if j % 4 == 3:
            chords[start + 100] += [0.7, -0.7]
    n = round(seconds * FS)
    reps = -(-n // loop)
    out = np.empty((n, 2), dtype=np.float32)
    for r in range(reps):  # tile in place: a 10 min float64 copy would cost 0.5 GB
        a, b = r * loop, min((r + 1) * loop, n)
        phase = np.sin(2 * np.pi * (np.arange(a, b) / FS) / 47.0) ** 2
        out[a:b] = chords[: b - a] * (0.6 + 0.4 * phase)[:, None]
    return out


def loudnorm_two_pass(src: Path, dst: Path) -> dict[str, str]:
    """ffmpeg's documented two-pass linear loudnorm; returns pass 2's JSON."""
    base = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-y"]
    target = "I=-14:TP=-1:LRA=11"
    p1 = run(base + ["-i", file_arg(src), "-af", f"loudnorm={target}:print_format=json",
                     "-f", "null", "-"], "loudnorm pass 1")
    m = _last_json(p1)
    measured = (f"measured_I={m['input_i']}:measured_LRA={m['input_lra']}:"
                f"measured_TP={m['input_tp']}:measured_thresh={m['input_thresh']}:"
                f"offset={m['target_offset']}")
    p2 = run(base + ["-i", file_arg(src), "-af",
                     f"loudnorm={target}:{measured}:linear=true:print_format=json",
                     "-ar", str(FS), "-c:a", "pcm_s24le", file_arg(dst)], "loudnorm pass 2")
    return _last_json(p2)


def _last_json(proc: subprocess.CompletedProcess[bytes]) -> dict[str, str]:
    text = proc.stderr.decode("utf-8", "replace")
    data: dict[str, str] = json.loads(text[text.rindex("{") : text.rindex("}") + 1])
    return data


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_loudness_") as tmp:
        folder = Path(tmp)
        src = folder / "music.wav"
        x = music_like(args.minutes * 60)
        level = loudness.integrated_loudness(x, FS)
        x *= np.float32(10 ** ((-18.0 - level) / 20))
        wavfile.write_wav(src, x, FS, bits=24)
        del x
        source = loudness.measure(wavfile.read_wav(src)[0], FS)

        ours_dst, ff_dst = folder / "reelscore.wav", folder / "loudnorm.wav"
        ours_s: list[tuple[float, float]] = []  # (wall, cpu) per run
        ff_s: list[tuple[float, float]] = []
        report = None
        ff_json: dict[str, str] = {}
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            report = loudness.normalise_file(src, ours_dst)
            ours_s.append((time.perf_counter() - t0, time.process_time() - c0))
            t0, c0 = time.perf_counter(), _children_cpu()
            ff_json = loudnorm_two_pass(src, ff_dst)
            ff_s.append((time.perf_counter() - t0, _children_cpu() - c0))
        assert report is not None

        ours = loudness.measure(*wavfile.read_wav(ours_dst))
        theirs_data, theirs_rate = wavfile.read_wav(ff_dst)
        theirs = loudness.measure(theirs_data, theirs_rate)

    version = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True,
                             check=False).stdout.split("\n")[0]
    print(f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"numpy {np.__version__}; {version}")
    print(f"input: {args.minutes:g} min, 48 kHz stereo 24-bit WAV; "
          f"I {source.integrated_lufs:.2f} LUFS, TP {source.true_peak_dbtp:.2f} dBTP, "
          f"LRA {source.loudness_range_lu:.1f} LU; target -14 LUFS / -1 dBTP; "
          f"best of {args.repeat} run(s)")
    best_ours, best_ff = min(ours_s), min(ff_s)
    rows = [
        ("reelscore normalise_file", best_ours,
         f"gain {report.gain_db:+.2f} dB, limiter {'on' if report.limiter_used else 'off'} "
         f"(max {report.limiter_gain_reduction_db:.1f} dB), {report.iterations} pass(es)",
         ours),
        ("ffmpeg loudnorm 2-pass", best_ff,
         f"{ff_json.get('normalization_type', '?')} mode, output rate {theirs_rate} Hz", theirs),
    ]
    print(f"{'':26}{'wall s':>8}{'ratio':>7}{'CPU s':>8}{'I LUFS':>9}{'TP dBTP':>9}"
          f"{'LRA LU':>8}  notes")
    for name, (wall, cpu), note, m in rows:
        lra = m.loudness_range_lu if m.loudness_range_lu is not None else float("nan")
        print(f"{name:26}{wall:8.2f}{wall / best_ours[0]:7.2f}{cpu:8.2f}"
              f"{m.integrated_lufs:9.2f}{m.true_peak_dbtp:9.2f}{lra:8.1f}  {note}")


if __name__ == "__main__":
    main()
