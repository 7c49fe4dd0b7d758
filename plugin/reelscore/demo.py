"""``reelscore demo``: a short cut with generated media, scored with the offline engine.

The demo is a real job: media files are made with ffmpeg's test sources, an OTIO timeline cuts
them (24 fps, starting at 01:00:00:00, two video tracks, a black gap, timeline markers), and the
normal ``score_file`` path scores it. Everything lands in one folder the user can open.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
from opentimelineio import opentime

from reelscore.errors import OutputError
from reelscore.ffmpeg_cli import base_args, file_arg, run
from reelscore.pipeline import ScoreResult, score_file
from reelscore.providers import GenerationSettings
from reelscore.settings import ProgressSink, ScoreSettings

RATE = Fraction(24)
START = 86400  # 01:00:00:00 at 24 fps

# (file name, lavfi source, seconds)
SOURCES = [
    ("city_day.mp4", "testsrc2=size=640x360:rate=24", 12),
    ("night_drive.mp4", "mandelbrot=size=640x360:rate=24:maxiter=64", 12),
    ("crowd.mp4", "life=size=640x360:rate=24:mold=10:ratio=0.1:death_color=#202020:life_color=#f0c040", 12),
    ("titles.mp4", "smptehdbars=size=640x360:rate=24", 6),
    ("sunrise.mp4", "gradients=size=640x360:rate=24:speed=0.02", 12),
]


def make_media(folder: Path) -> dict[str, Path]:
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, src, seconds in SOURCES:
        path = media / name
        if not path.exists():
            run(base_args() + ["-f", "lavfi", "-i", src, "-t", str(seconds), "-c:v", "libx264",
                               "-preset", "ultrafast", "-g", "48", "-pix_fmt", "yuv420p",
                               file_arg(path)], f"making demo media {name}")
        paths[name] = path
    return paths


def build_cut(paths: dict[str, Path]) -> otio.schema.Timeline:
    r = float(RATE)

    def t(frames: int) -> opentime.RationalTime:
        return opentime.RationalTime(frames, r)

    def clip(name: str, src_in: int, frames: int) -> otio.schema.Clip:
        seconds = next(s for n, _, s in SOURCES if n == name)
        return otio.schema.Clip(
            name=name.rsplit(".", 1)[0],
            media_reference=otio.schema.ExternalReference(
                target_url=f"media/{name}",  # relative to the edit file, as many editors write
                available_range=opentime.TimeRange(t(0), t(seconds * 24)),
            ),
            source_range=opentime.TimeRange(t(src_in), t(frames)),
        )

    v1 = otio.schema.Track(name="V1", children=[
        clip("city_day.mp4", 10, 150),
        clip("night_drive.mp4", 24, 130),
        otio.schema.Gap(source_range=opentime.TimeRange(t(0), t(18))),
        clip("crowd.mp4", 30, 170),
        clip("sunrise.mp4", 0, 190),
    ])
    v2 = otio.schema.Track(name="V2 titles", children=[
        otio.schema.Gap(source_range=opentime.TimeRange(t(0), t(320))),
        clip("titles.mp4", 12, 60),
    ])
    tl = otio.schema.Timeline(name="reelscore demo", tracks=[v1, v2],
                              global_start_time=t(START))
    tl.tracks.markers.append(otio.schema.Marker(
        name="Act 2", marked_range=opentime.TimeRange(t(298), t(0)), comment="the night falls"))
    return tl


def run_demo(folder: Path, *, seed: int = 7, force: bool = False,
             progress: ProgressSink | None = None) -> ScoreResult:
    folder = Path(folder)
    edit = folder / "demo_cut.otio"
    output = folder / "demo_cut.scored.otio"
    if output.exists() and not force:
        raise OutputError(f"a demo already exists in {str(folder)!r}",
                          hint="pass --force to make it again, or choose another folder")
    if force:
        shutil.rmtree(folder / "demo_cut.scored.otio.reelscore", ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    paths = make_media(folder)
    otio.adapters.write_to_file(build_cut(paths), str(edit))
    settings = ScoreSettings(
        provider="local",
        generation=GenerationSettings(description="warm, hopeful city score", tags=("cinematic",),
                                      seed=seed),
    )
    return score_file(edit, output, settings, force=True, progress=progress)
