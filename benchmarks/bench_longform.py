"""Benchmark: a 60-minute programme scored with requests in flight together.

    python benchmarks/bench_longform.py [--minutes 60] [--delay 20] [--cuts 600]
                                        [--request-seconds 600] [--dir DIR]

The local contract server (tests/contract_server.py, 127.0.0.1) stands in for the service and
"generates" each request for DELAY seconds. Measured in the same run, each from a fresh job folder:

  (a) rendering alone (every scene clip, no service);
  (b) the full score with ``concurrency=1`` (one request at the service at a time);
  (c) the full score with ``concurrency=2`` (the default).

For (b) and (c) the benchmark reports the render + generate wall time (from the start of the run
to the moment the last answer is stored, when the "normalise" stage opens) and the whole score
(conform, loudness and the written edit included). Target (issue 11):

    (c) render + generate  <=  (a) + DELAY x ceil(requests / concurrency)  + 10 %

On a shared machine the load can move between (a) and (c); the script therefore also prints the
same bound against (c)'s own rendering (the moment its last request is queued, from the request
states), which the load slows exactly as it slows (c).

Media (made once into DIR, default /tmp/reelscore-bench-longform): three 10-minute 320x180
29.97 fps H.264 sources from ffmpeg's ``testsrc2`` (a few seconds to make), and a 29.97 fps edit
from 01:00:00;00 of CUTS cuts of 2-10 s (seeded random in points) filling MINUTES minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
from opentimelineio import opentime
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.contract_server

from tests.contract_server import ContractServer  # noqa: E402

from reelscore import ffmpeg_cli  # noqa: E402
from reelscore.job import Job  # noqa: E402
from reelscore.pipeline import default_renderer, plan_edit, score_file  # noqa: E402
from reelscore.providers import GenerationSettings  # noqa: E402
from reelscore.providers.base import ProviderConfig  # noqa: E402
from reelscore.settings import NoProgress, RequestState, ScoreSettings  # noqa: E402
from reelscore.steps.rendering import render_clips  # noqa: E402
from reelscore.timeline import load_edit  # noqa: E402

RATE = Fraction(30000, 1001)
START = 107892  # 01:00:00;00 at 29.97 drop-frame
SOURCE_SECONDS = 600
KEY = "bench-key"


def make_sources(folder: Path) -> list[Path]:
    out = []
    for i, pattern in enumerate(("testsrc2", "smptehdbars", "rgbtestsrc")):
        path = folder / f"source{i}.mp4"
        if not path.exists():
            ffmpeg_cli.run(ffmpeg_cli.base_args() + [
                "-f", "lavfi", "-i", f"{pattern}=size=320x180:rate=30000/1001",
                "-t", str(SOURCE_SECONDS), "-c:v", "libx264", "-preset", "veryfast", "-crf", "28",
                "-g", "30", "-pix_fmt", "yuv420p",
                ffmpeg_cli.file_arg(path)], f"make {path.name}")
        out.append(path)
    return out


def make_edit(folder: Path, sources: list[Path], minutes: float, cuts: int) -> Path:
    rng = random.Random(11)
    total = round(minutes * 60 * RATE)
    lengths = [rng.randint(60, 300) for _ in range(cuts)]
    scale = total / sum(lengths)
    lengths = [max(12, round(n * scale)) for n in lengths]
    lengths[-1] += total - sum(lengths)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    r = float(RATE)
    avail = round(SOURCE_SECONDS * RATE)
    for i, n in enumerate(lengths):
        src = sources[i % len(sources)]
        first = rng.randrange(0, avail - n)
        track.append(otio.schema.Clip(
            name=f"shot {i + 1}",
            media_reference=otio.schema.ExternalReference(
                target_url=str(src), available_range=opentime.TimeRange(
                    opentime.RationalTime(0, r), opentime.RationalTime(avail, r))),
            source_range=opentime.TimeRange(opentime.RationalTime(first, r),
                                            opentime.RationalTime(n, r))))
    tl = otio.schema.Timeline(name="longform", tracks=[track],
                              global_start_time=opentime.RationalTime(START, r))
    path = folder / "longform.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


class Clock:
    """A ProgressSink that notes when the answers are all in (the "normalise" stage opens)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.generated_at: float | None = None
        self.states: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()

    def stage(self, name: str, total: float | None = None) -> None:
        if name == "normalise" and self.generated_at is None:
            self.generated_at = time.perf_counter() - self.t0

    def advance(self, name: str, amount: float = 1) -> None:
        return None

    def note(self, message: str) -> None:
        return None

    def request_state(self, request_id: str, state: RequestState) -> None:
        with self._lock:
            self.states.append((round(time.perf_counter() - self.t0, 2), request_id, state))


def render_alone(edit: Path, work: Path, settings: ScoreSettings) -> tuple[float, int]:
    loaded = load_edit(edit)
    t0 = time.perf_counter()
    planned = plan_edit(loaded, settings)
    job = Job(work)
    with job.locked():
        job.open()
        render_clips(planned, job, default_renderer(planned, settings), settings, NoProgress())
    return time.perf_counter() - t0, len(planned.plan.requests)


def score(edit: Path, folder: Path, server: ContractServer, settings: ScoreSettings,
          ) -> tuple[float, float, list[tuple[float, str, str]]]:
    out = folder / f"scored_c{settings.concurrency}.otio"
    clock = Clock()
    config = ProviderConfig(base_url=server.url, api_key=SecretStr(KEY), read_timeout_s=900)
    score_file(edit, out, settings, work_dir=folder / f"job_c{settings.concurrency}",
               provider_config=config, progress=clock, force=True)
    total = time.perf_counter() - clock.t0
    assert clock.generated_at is not None
    return clock.generated_at, total, clock.states


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--cuts", type=int, default=600)
    ap.add_argument("--delay", type=float, default=20.0, help="seconds each generation takes")
    ap.add_argument("--request-seconds", type=float, default=600.0,
                    help="longest request (the service's limit is 600 s); lower makes more")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/reelscore-bench-longform"))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    for old in args.dir.glob("job*"):
        shutil.rmtree(old)
    sources = make_sources(args.dir)
    edit = make_edit(args.dir, sources, args.minutes, args.cuts)

    server = ContractServer().start()
    server.state.elevenlabs_key = KEY
    server.state.generation_delay_s = args.delay
    try:
        base = ScoreSettings(provider="elevenlabs", min_scene_seconds=2.0,
                             max_request_seconds=args.request_seconds,
                             generation=GenerationSettings(output_format="mp3_44100_128"))
        loads = [os.getloadavg()[0]]
        render_s, requests = render_alone(edit, args.dir / "job_render", base)
        loads.append(os.getloadavg()[0])
        serial_gen, serial_total, _ = score(edit, args.dir, server,
                                            base.model_copy(update={"concurrency": 1}))
        loads.append(os.getloadavg()[0])
        conc_gen, conc_total, states = score(edit, args.dir, server,
                                             base.model_copy(update={"concurrency": 2}))
        charges = server.state.charges
    finally:
        server.stop()

    target = (render_s + args.delay * math.ceil(requests / 2)) * 1.10
    # The same bound against (c)'s own rendering (the moment its last request is queued), which
    # the machine's load affects exactly as it affects (c): robust when the load moves between runs.
    own_render = max((at for at, _, state in states if state == "queued"), default=0.0)
    in_run_target = (own_render + args.delay * math.ceil(requests / 2)) * 1.10
    serial_bound = render_s + args.delay * requests
    figures = {
        "minutes": args.minutes, "cuts": args.cuts, "request_seconds": args.request_seconds, "delay_s": args.delay, "requests": requests,
        "render_alone_s": round(render_s, 1),
        "serial_render_generate_s": round(serial_gen, 1), "serial_total_s": round(serial_total, 1),
        "concurrent_render_generate_s": round(conc_gen, 1),
        "concurrent_total_s": round(conc_total, 1),
        "render_plus_delay_x_requests_s": round(serial_bound, 1),
        "target_s": round(target, 1), "met": conc_gen <= target,
        "own_render_s": round(own_render, 1), "in_run_target_s": round(in_run_target, 1),
        "in_run_met": conc_gen <= in_run_target,
        "load_at_start_of_a_b_c": [round(x, 1) for x in loads],
        "charges": charges, "cpus": os.cpu_count(), "load": [round(x, 1) for x in os.getloadavg()],
        "python": platform.python_version(),
    }
    print(f"{args.minutes:g}-minute programme, {args.cuts} cuts, {requests} requests, "
          f"generation {args.delay:g} s each; {os.cpu_count()} cores, load {figures['load']}")
    print(f"(a) rendering alone                         {render_s:8.1f} s")
    print(f"(b) concurrency 1: render+generate {serial_gen:8.1f} s   whole score {serial_total:8.1f} s"
          f"   (render + D x requests = {serial_bound:.1f} s)")
    print(f"(c) concurrency 2: render+generate {conc_gen:8.1f} s   whole score {conc_total:8.1f} s")
    print(f"target for (c): (a) + D x ceil(requests/2) + 10 % = {target:.1f} s -> "
          f"{'met' if figures['met'] else 'MISSED'}")
    print(f"(c)'s own rendering ended at {own_render:.1f} s; generation added "
          f"{conc_gen - own_render:.1f} s after it (serial: D x requests = "
          f"{args.delay * requests:.0f} s); in-run target {in_run_target:.1f} s -> "
          f"{'met' if figures['in_run_met'] else 'MISSED'}")
    print(f"load average at the start of (a), (b), (c): {figures['load_at_start_of_a_b_c']}")
    print("request states with concurrency 2 (s since start):")
    for at, rid, state in states:
        print(f"  {at:8.2f}  {rid}  {state}")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
