"""Benchmark: a dozen edits scored by ``reelscore batch`` against one after another.

    python benchmarks/bench_batch.py [--edits 12] [--seconds 20] [--delay 4] [--limit 3]
                                     [--dir DIR]

The local contract server (tests/contract_server.py, 127.0.0.1) stands in for the service: it
"generates" each request for DELAY seconds and refuses more than LIMIT at once. Measured in the
same run, each from a fresh output folder, all through the real command line:

  (a) ``reelscore score`` once per edit, one after another (a shell loop);
  (b) ``reelscore batch EDIT... --workers 1 --concurrency LIMIT``;
  (c) ``reelscore batch EDIT... --workers 2 --concurrency LIMIT``.

Reports the wall time of each, the ratios to (a), and the most generations the service saw at
once. Media (made once into DIR, default /tmp/reelscore-bench-batch): one 320x180 25 fps H.264
source from ffmpeg's ``testsrc2``; EDITS edits of SECONDS seconds cut from it (4 cuts each).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.*

from tests.contract_server import V2M, ContractServer  # noqa: E402
from tests.edits import build_timeline  # noqa: E402

from reelscore import ffmpeg_cli  # noqa: E402

RATE = Fraction(25)
KEY = "bench-key"


def make_media(folder: Path, edits: int, seconds: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "source.mp4"
    if not src.exists():
        ffmpeg_cli.run(ffmpeg_cli.base_args() + [
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=120", "-c:v", "libx264",
            "-preset", "veryfast", "-g", "25", "-pix_fmt", "yuv420p", ffmpeg_cli.file_arg(src)],
            "make the source")
    frames = round(seconds * 25)
    cut = frames // 4
    paths = []
    for i in range(edits):
        items = [("clip", src, 1, (i * 97 + k * 311) % 2500, cut) for k in range(4)]
        path = folder / f"ep{i:02d}.otio"
        otio.adapters.write_to_file(build_timeline([items], RATE, start_frame=90000,
                                                   name=f"ep{i:02d}"), str(path))
        paths.append(path)
    return paths


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "reelscore", *args], capture_output=True,
                          text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"reelscore {args[0]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--delay", type=float, default=4.0)
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/reelscore-bench-batch"))
    a = ap.parse_args()
    edits = make_media(a.dir, a.edits, a.seconds)
    server = ContractServer().start()
    server.state.elevenlabs_key = KEY
    server.state.generation_delay_s = a.delay
    server.state.max_concurrent = a.limit
    config = a.dir / "reelscore.toml"
    config.write_text(f'provider = "elevenlabs"\nbase_url = "{server.url}"\n', "utf-8")
    env = {**os.environ, "ELEVENLABS_API_KEY": KEY, "XDG_CONFIG_HOME": str(a.dir / "xdg")}
    env.pop("REELSCORE_CONFIG", None)
    common = ["--config", str(config), "--output-format", "pcm_48000"]
    runs: dict[str, float] = {}
    peaks: dict[str, int] = {}
    try:
        for name in ("serial", "batch-1", "batch-2"):
            out = a.dir / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            server.state.peak_in_flight = 0
            before = server.state.charges
            if name == "serial":
                runs[name] = sum(timed(["score", str(e), "-o", str(out / f"{e.stem}.scored.otio"),
                                        *common, "--concurrency", str(a.limit)], env)
                                 for e in edits)
            else:
                runs[name] = timed(["batch", *map(str, edits), "-o", str(out), *common,
                                    "--workers", name[-1], "--concurrency", str(a.limit)], env)
            peaks[name] = server.state.peak_in_flight
            assert server.state.charges - before == len(edits), "one generation per edit"
        refused = sum(1 for r in server.state.requests_to(V2M) if r.status == 429)
    finally:
        server.stop()
    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min, after the run)")
    print(f"{a.edits} edits of {a.seconds:g} s (4 cuts each), service {a.delay:g} s per request, "
          f"limit {a.limit}; requests refused for concurrency: {refused}")
    for name, label in (("serial", "(a) score, one after another"),
                        ("batch-1", "(b) batch --workers 1"), ("batch-2", "(c) batch --workers 2")):
        print(f"{label:32s} {runs[name]:7.1f} s  {runs[name] / runs['serial']:.2f}x of (a)  "
              f"peak at the service {peaks[name]}")


if __name__ == "__main__":
    main()
