"""Benchmark: ``--duck``'s volume keys for an hour of dialogue.

    python benchmarks/bench_volume_keys.py [--minutes 60] [--rate 30000/1001] [--json]

Measured in the same run, on a seeded hour of speech (lines of 3-12 s at -26 dBFS, pauses of
1-6 s) and a stereo score of noise at about -20 dBFS:

  (a) the side chain: ``ducking.gain_curve`` (the gain per sample, what ``--duck`` always does);
  (b) the keys: ``volume_keys`` of that gain at the edit's rate, and how far the keys stray from
      the gain at any frame (the spec: at most 0.5 dB);
  (c) the make-up: ``Ducked.automation`` -- the unducked score times the keys, measured (the
      loudness of what FCP 7 XML and FCPX play);
  (d) one ``loudness.normalise`` of the same score (``--duck`` runs two: the ducked score and
      the unducked one).

Target: (b) + (c) <= (d) -- the keys cost no more than one of the normalisations ``--duck``
already runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from fractions import Fraction

import numpy as np

from reelscore import loudness
from reelscore.dialogue import Ducked
from reelscore.ducking import DuckParams, gain_curve
from reelscore.volume_keys import frame_sample, keys_gain, volume_keys

SR = 48000


def _speech(minutes: float, rng: np.random.Generator) -> np.ndarray:
    n = round(minutes * 60 * SR)
    x = np.zeros((n, 1), np.float32)
    t = 0.0
    while t < minutes * 60:
        line = rng.uniform(3, 12)
        x[round(t * SR):min(n, round((t + line) * SR)), 0] = 0.05
        t += line + rng.uniform(1, 6)
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--rate", default="30000/1001")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rate = Fraction(args.rate)
    rng = np.random.default_rng(1)
    dialogue = _speech(args.minutes, rng)
    score = (rng.standard_normal((dialogue.shape[0], 2)) * 0.1).astype(np.float32)

    t0 = time.perf_counter()
    gain, report = gain_curve(dialogue, DuckParams())
    t1 = time.perf_counter()
    keys = volume_keys(gain, rate, SR)
    t2 = time.perf_counter()
    frames = np.arange(0, int(args.minutes * 60 * rate))
    at = np.array([frame_sample(int(f), rate, SR) for f in frames])
    stray = float(np.max(np.abs(
        20 * np.log10(gain[at].astype(np.float64))
        - 20 * np.log10(keys_gain(keys, gain.shape[0], rate, SR)[at].astype(np.float64)))))
    del gain, dialogue
    t5 = time.perf_counter()
    loudness.normalise(score, SR, target_lufs=-14.0, true_peak_dbtp=-1.0)
    t6 = time.perf_counter()
    ducked = Ducked(score, report, (), DuckParams(), keys)
    t3 = time.perf_counter()
    _keys, automation = ducked.automation(score, rate, target_lufs=-14.0, ceiling_dbtp=-1.0,
                                          sample_rate=SR)  # scales *score* in place: last
    t4 = time.perf_counter()
    a, b, c, d = t1 - t0, t2 - t1, t4 - t3, t6 - t5
    result = {
        "minutes": args.minutes, "rate": str(rate), "stretches": len(report.stretches),
        "keys": len(keys), "side_chain_s": round(a, 2), "keys_s": round(b, 2),
        "makeup_s": round(c, 2), "normalise_s": round(d, 2), "ratio": round((b + c) / d, 3),
        "target_met": b + c <= d,
        "max_stray_db": round(stray, 3), "makeup_db": automation.makeup_db,
        "played_integrated_lufs": automation.played_integrated_lufs,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.minutes:g} min at {rate}: {len(report.stretches)} ducked stretches -> "
          f"{len(keys)} keys (within {stray:.3f} dB of the side chain at every frame)")
    print(f"(a) side chain {a:.2f} s; (b) keys {b:.2f} s; (c) make-up {c:.2f} s "
          f"({automation.makeup_db:+.2f} dB -> {automation.played_integrated_lufs:.2f} LUFS); "
          f"(d) one normalisation {d:.2f} s")
    print(f"(b + c) / (d) = {(b + c) / d:.3f} (target <= 1: {'met' if b + c <= d else 'MISSED'}); "
          f"peak RSS {result['peak_rss_gib']} GiB; {result['machine']}")


if __name__ == "__main__":
    main()
