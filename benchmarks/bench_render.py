"""Benchmark: rendering every scene clip of a 10-minute 1080p edit.

    python benchmarks/bench_render.py [--dir DIR] [--minutes 10] [--cuts 60] [--verify]

Targets (2-core machine):
  * render wall time for all scene clips <= 1.5 x the time ffmpeg alone needs to decode the
    same source ranges (same seeks, same parallelism), measured in the same run;
  * reference-movie mode for the same edit <= 0.5 x the source render;
  * a second run with nothing changed < 5 % of the first (content-addressed clip cache);
  * peak memory of the whole render step (this process and every ffmpeg it starts) < 1 GB.

Media (made once and kept in DIR, default /tmp/reelscore-bench-render): 1080p 24 fps frame-coded
long-GOP H.264 sources (GOP 240 = 10 s, 2 B-frames, grain, 20 Mb/s like camera originals), a
timeline of CUTS cuts over MINUTES minutes with random in points (so most cuts start mid-GOP),
and a flattened 1080p H.264 reference movie of the cut (10 Mb/s, GOP 48, timecode 01:00:00:00)
written straight from the cut list. --verify decodes every rendered frame and checks its code
against the cut list (independent of reelscore's picture code).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
from opentimelineio import opentime

from reelscore import ffmpeg_cli
from reelscore.job import Job
from reelscore.pipeline import default_renderer, plan_edit
from reelscore.render import SourceRun, default_workers
from reelscore.settings import NoProgress as _NoProgress
from reelscore.settings import ScoreSettings
from reelscore.steps.rendering import render_clips
from reelscore.timeline import normalise

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the frame-code media helpers live with the tests

from tests.framecode import code_frame, read_codes  # noqa: E402

RATE = Fraction(24)
START = 86400  # 01:00:00:00


# ------------------------------------------------------------------------------ media


def _encode_frames(path: Path, frames, *, width: int, height: int, gop: int, bitrate: str,
                   timecode: str | None = None) -> None:
    args = ffmpeg_cli.base_args() + [
        "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{width}x{height}", "-framerate", "24",
        "-i", "pipe:0", "-vf", "noise=alls=8:allf=t", "-c:v", "libx264", "-preset", "ultrafast",
        "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate, "-g", str(gop),
        "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "2", "-pix_fmt", "yuv420p",
    ]
    if timecode:
        args += ["-timecode", timecode]
    tmp = path.with_suffix(".part.mp4")
    proc = subprocess.Popen(args + [ffmpeg_cli.file_arg(tmp)], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for frame in frames:
        proc.stdin.write(frame.tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit(f"ffmpeg failed writing {path}")
    tmp.replace(path)


def make_media(folder: Path, minutes: float, cuts: int, width: int, height: int,
               seed: int = 7) -> tuple[list[Path], list[tuple[int, int, int]]]:
    """Sources and the cut list [(source index, in frame, length)], made once per folder."""
    folder.mkdir(parents=True, exist_ok=True)
    total = round(minutes * 60 * RATE)
    n_sources = 4
    src_frames = max(2160, total // 6)
    rng = random.Random(seed)
    lengths = [rng.randint(total // cuts // 2, total // cuts * 3 // 2) for _ in range(cuts)]
    scale = total / sum(lengths)
    lengths = [max(24, round(n * scale)) for n in lengths]
    lengths[-1] += total - sum(lengths)
    cut_list = []
    for n in lengths:
        s = rng.randrange(n_sources)
        cut_list.append((s, rng.randint(0, src_frames - n - 1), n))
    spec = folder / "spec.json"
    wanted = {"minutes": minutes, "cuts": cuts, "size": [width, height], "seed": seed,
              "src_frames": src_frames, "v": 3}
    sources = [folder / f"source_{i + 1}.mp4" for i in range(n_sources)]
    reference = folder / "reference.mp4"
    if spec.exists() and json.loads(spec.read_text()) == wanted and all(
            p.exists() for p in [*sources, reference]):
        return sources, cut_list
    print(f"making media in {folder} (once; about {(n_sources * src_frames + total) / 30 / 60:.0f} "
          "minutes on 2 cores) ...", flush=True)
    def source_frames(source_id: int):
        return (code_frame(k, source_id, width, height) for k in range(src_frames))

    jobs = []
    for i, path in enumerate(sources):
        jobs.append((path, source_frames(i + 1), {"gop": 240, "bitrate": "20M"}))
    ref_frames = (code_frame(inp + k, s + 1, width, height)
                  for s, inp, n in cut_list for k in range(n))
    jobs.append((reference, ref_frames, {"gop": 48, "bitrate": "10M", "timecode": "01:00:00:00"}))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for f in [pool.submit(_encode_frames, p, fr, width=width, height=height, **kw)
                  for p, fr, kw in jobs]:
            f.result()
    spec.write_text(json.dumps(wanted))
    return sources, cut_list


def make_reference(folder: Path, cut_list: list[tuple[int, int, int]], size: str) -> Path:
    """A reference movie of the cut at another frame size (made once)."""
    path = folder / f"reference_{size}.mp4"
    if not path.exists():
        w, h = (int(v) for v in size.split("x"))
        print(f"making {path.name} ...", flush=True)
        _encode_frames(path, (code_frame(inp + k, s + 1, w, h)
                              for s, inp, n in cut_list for k in range(n)),
                       width=w, height=h, gop=48, bitrate="10M", timecode="01:00:00:00")
    return path


def build_timeline(sources: list[Path], cut_list: list[tuple[int, int, int]]) -> otio.schema.Timeline:
    r = float(RATE)
    track = otio.schema.Track(name="V1")
    for i, (s, inp, n) in enumerate(cut_list):
        track.append(otio.schema.Clip(
            name=f"cut {i + 1}",
            media_reference=otio.schema.ExternalReference(
                target_url=sources[s].as_uri(),
                available_range=opentime.TimeRange(opentime.RationalTime(0, r),
                                                   opentime.RationalTime(10**6, r))),
            source_range=opentime.TimeRange(opentime.RationalTime(inp, r),
                                            opentime.RationalTime(n, r))))
    return otio.schema.Timeline(name="bench", tracks=[track],
                                global_start_time=opentime.RationalTime(START, r))


# ------------------------------------------------------------------------- measuring


class PeakMemory:
    """Peak summed RSS of this process and all its descendants, sampled every 20 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss(me))
            self._stop.wait(0.02)

    @staticmethod
    def _tree_rss(root: int) -> int:
        children: dict[int, list[int]] = {}
        rss: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as fh:
                    text = fh.read()
            except OSError:
                continue
            ppid = kb = 0
            for line in text.splitlines():
                if line.startswith("PPid:"):
                    ppid = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    kb = int(line.split()[1])
            children.setdefault(ppid, []).append(int(entry))
            rss[int(entry)] = kb * 1024
        total, todo = 0, [root]
        while todo:
            pid = todo.pop()
            total += rss.get(pid, 0)
            todo.extend(children.get(pid, []))
        return total


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children so far."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def decode_baseline(runs: list[SourceRun], workers: int) -> tuple[float, float]:
    """ffmpeg alone decoding the same ranges: same input seek, same frame counts, no scaling,
    no encoding, output discarded; as many at once as the render runs clips."""

    def one(run: SourceRun) -> None:
        assert run.path is not None
        lo = min(run.file_frames)
        need = max(run.file_frames) - lo + 1
        args = [ffmpeg_cli.ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
        if lo > 0:
            args += ["-ss", f"{float((Fraction(lo) - Fraction(1, 2)) / run.src_rate):.6f}"]
        args += ["-i", ffmpeg_cli.file_arg(run.path), "-frames:v", str(need), "-an",
                 "-f", "null", "-"]
        subprocess.run(args, check=True)

    c0, t0 = cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, runs))
    return time.perf_counter() - t0, cpu_seconds() - c0


PRESET: str | None = None  # --preset: override the plan's x264 preset (to compare)


def timed_render(loaded, settings: ScoreSettings,
                 work: Path) -> tuple[float, float, float, int, object]:
    """(plan+render s, render s, render CPU s, peak bytes, planned) for one pipeline render."""
    ffmpeg_cli._probe_cached.cache_clear()  # a new run probes again, as a new process would
    t0 = time.perf_counter()
    planned = plan_edit(loaded, settings)
    if PRESET:
        planned.plan = planned.plan.model_copy(
            update={"encode": planned.plan.encode.model_copy(update={"preset": PRESET})})
    job = Job(work)
    with job.locked(), PeakMemory() as mem:
        job.open()
        renderer = default_renderer(planned, settings)
        c1, t1 = cpu_seconds(), time.perf_counter()
        render_clips(planned, job, renderer, settings, _NoProgress())
        c2, t2 = cpu_seconds(), time.perf_counter()
    return t2 - t0, t2 - t1, c2 - c1, mem.peak, planned


def verify(clips: Path, planned, cut_list) -> int:
    """Every frame of every clip shows the cut list's source frame (independent oracle)."""
    expected = [(s + 1, inp + k) for s, inp, n in cut_list for k in range(n)]
    bad = 0
    for video in planned.plan.videos():
        got = read_codes(clips / f"{video.id}.mp4")
        want = expected[video.range.start:video.range.end]
        bad += sum(1 for g, w in zip(got, want) if g != w) + abs(len(got) - len(want))
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/reelscore-bench-render"))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--cuts", type=int, default=60)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--reference-size", default=None,
                    help="frame size of the reference movie (default: the sources' size)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved repeats (best is kept)")
    ap.add_argument("--preset", default=None, help="x264 preset instead of the plan's (compare)")
    ap.add_argument("--verify", action="store_true", help="decode every clip and check its codes")
    args = ap.parse_args()
    global PRESET
    PRESET = args.preset
    width, height = (int(v) for v in args.size.split("x"))
    sources, cut_list = make_media(args.dir / "media", args.minutes, args.cuts, width, height)
    reference = args.dir / "media" / "reference.mp4"
    if args.reference_size and args.reference_size != args.size:
        reference = make_reference(args.dir / "media", cut_list, args.reference_size)
    loaded = normalise(build_timeline(sources, cut_list))
    # 2 s minimum scene: every cut is its own scene, the plan groups them into 10 videos.
    settings = ScoreSettings(min_scene_seconds=2.0, workers=args.workers)
    ref_settings = settings.model_copy(update={"reference": reference})
    def clear(sub: str) -> Path:
        folder = args.dir / sub
        for p in sorted(folder.rglob("*"), reverse=True) if folder.exists() else []:
            p.unlink() if p.is_file() else p.rmdir()
        return folder

    workers = args.workers or default_workers(10)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, CPython "
          f"{platform.python_version()}, ffmpeg {ffmpeg_cli.ffmpeg_exe().rsplit('-', 1)[-1]}")
    print(f"edit: {args.minutes:g} min at {width}x{height} 24 fps, {len(cut_list)} cuts, "
          f"{len(sources)} long-GOP H.264 sources; parallel renders: {workers}; reference "
          f"{reference.name}; {args.rounds} interleaved round(s), best of each reported; x264 "
          f"preset {args.preset or 'from the plan'}")
    print(f"load average before: {os.getloadavg()[0]:.1f}")

    planned = plan_edit(loaded, settings)
    plan = planned.plan
    print(f"plan: {len(plan.scenes)} scenes, {len(plan.requests)} request(s), "
          f"{len(plan.videos())} videos of {plan.encode.width}x{plan.encode.height}")
    renderer = default_renderer(planned, settings)
    runs = [r for v in plan.videos() for r in renderer.runs_for(v, plan.encode)  # type: ignore[attr-defined]
            if isinstance(r, SourceRun) and r.path is not None]
    decoded = sum(max(r.file_frames) - min(r.file_frames) + 1 for r in runs)

    base: list[tuple[float, float]] = []
    src: list[tuple[float, float]] = []
    ref: list[tuple[float, float]] = []
    peak = ref_peak = 0
    first = 0.0
    for _ in range(args.rounds):  # interleaved, so load from other jobs hits all three alike
        base.append(decode_baseline(runs, workers))
        total, wall, cpu, mem, _ = timed_render(loaded, settings, clear("job_sources"))
        src.append((wall, cpu))
        first, peak = max(first, total), max(peak, mem)
        _, wall, cpu, mem, _ = timed_render(loaded, ref_settings, clear("job_reference"))
        ref.append((wall, cpu))
        ref_peak = max(ref_peak, mem)
    second, second_render, _, _, _ = timed_render(loaded, settings, args.dir / "job_sources")
    size = sum(p.stat().st_size for p in (args.dir / "job_sources" / "clips").glob("*.mp4"))
    b, s, r = min(base), min(src), min(ref)

    def listing(xs: list[tuple[float, float]]) -> str:
        return ", ".join(f"{w:.1f}" for w, _ in xs)

    print(f"decode baseline (ffmpeg alone, {len(runs)} runs, {decoded} frames used): "
          f"{b[0]:.1f} s wall, {b[1]:.1f} s CPU  [walls: {listing(base)}]")
    print(f"render from sources:   {s[0]:.1f} s wall = {s[0] / b[0]:.2f} x decode (target <= 1.5);"
          f" CPU {s[1]:.1f} s = {s[1] / b[1]:.2f} x  [walls: {listing(src)}]; clips "
          f"{size / 1e6:.1f} MB")
    print(f"render from reference: {r[0]:.1f} s wall = {r[0] / s[0]:.2f} x source render "
          f"(target <= 0.5); CPU {r[1]:.1f} s = {r[1] / s[1]:.2f} x  [walls: {listing(ref)}]")
    print(f"second run, nothing changed: render step {second_render:.2f} s = "
          f"{100 * second_render / s[0]:.1f} % (plan+render {second:.2f} s = "
          f"{100 * second / first:.1f} %; target < 5 %)")
    print(f"peak memory of the render step (this process + ffmpeg children): sources "
          f"{peak / 2**20:.0f} MiB, reference {ref_peak / 2**20:.0f} MiB (target < 1024 MiB)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.verify:
        bad = verify(args.dir / "job_sources" / "clips", planned, cut_list)
        bad_ref = verify(args.dir / "job_reference" / "clips", planned, cut_list)
        print(f"verify: {bad} wrong frame(s) from sources, {bad_ref} from the reference")
        if bad or bad_ref:
            sys.exit(1)


if __name__ == "__main__":
    main()
