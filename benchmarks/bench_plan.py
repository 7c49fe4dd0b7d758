"""Benchmark: planning a 5,000-clip timeline (target: under 1 s).

    python benchmarks/bench_plan.py [--clips 5000]

Builds a 24 fps timeline starting at 01:00:00:00 with two video tracks (5,000 clips on V1 with
occasional gaps, an overlay every 50 clips on V2), every clip pointing at a real (tiny) file so
the offline-media check runs too, then times load-free planning: picture, scenes, media check and
the request plan. Prints the median of 5 runs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
from opentimelineio import opentime

from reelscore.pipeline import ScoreSettings, plan_edit
from reelscore.timeline import normalise

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the frame-code media helpers live with the tests

from tests.framecode import write_coded_video  # noqa: E402


def build(folder: Path, clips: int) -> otio.schema.Timeline:
    rate = 24.0
    real = write_coded_video(folder / "real.mp4", frames=48, rate=Fraction(24), source_id=1)

    def t(v: int) -> opentime.RationalTime:
        return opentime.RationalTime(v, rate)

    v1 = otio.schema.Track(name="V1")
    v2 = otio.schema.Track(name="V2")
    for i in range(clips):
        path = real if i == 0 else folder / f"clip_{i:05d}.mov"
        if i:
            path.write_bytes(b"")
        length = 24 + (i * 37) % 97
        v1.append(otio.schema.Clip(
            name=f"clip {i}",
            media_reference=otio.schema.ExternalReference(
                target_url=path.as_uri(), available_range=opentime.TimeRange(t(0), t(10_000))),
            source_range=opentime.TimeRange(t(100 + i % 50), t(length))))
        if i % 9 == 8:
            v1.append(otio.schema.Gap(source_range=opentime.TimeRange(t(0), t(6))))
        if i % 50 == 0:
            v2.append(otio.schema.Gap(source_range=opentime.TimeRange(t(0), t(length * 20))))
            v2.append(otio.schema.Clip(
                name=f"overlay {i}",
                media_reference=otio.schema.ExternalReference(
                    target_url=real.as_uri(), available_range=opentime.TimeRange(t(0), t(48))),
                source_range=opentime.TimeRange(t(0), t(30))))
    return otio.schema.Timeline(name="bench", tracks=[v1, v2], global_start_time=t(86400))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        timeline = build(Path(tmp), args.clips)
        loaded = normalise(timeline)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            planned = plan_edit(loaded, ScoreSettings())
            times.append(time.perf_counter() - t0)
        plan = planned.plan
        print(f"machine: {platform.machine()}, {platform.python_implementation()} "
              f"{platform.python_version()}")
        print(f"clips: {args.clips}; scenes: {len(plan.scenes)}; requests: {len(plan.requests)}; "
              f"videos: {len(plan.videos())}; programme {float(plan.range.seconds):.0f} s")
        print(f"plan_edit median of 5: {statistics.median(times):.3f} s "
              f"(min {min(times):.3f}, max {max(times):.3f})")


if __name__ == "__main__":
    main()
