"""The score sheet: the scored range as a strip that wraps onto rows, drawn from the job folder.

Per row, top to bottom: scene names, a thumbnail per scene (one frame decoded from the job's
proxy clips), the score's waveform, its short-term loudness (EBU R128: 3 s windows every 100 ms)
with the target line, and a timecode ruler in the edit's own form (drop frame included). Scene
boundaries cross the whole row; request boundaries are dashed over the audio bands.

Where the music was measured to change (the manifest's ``music_changes``, after loudness): at
each cut between scenes, a bracket at the top of the waveform band runs from the cut to the
nearest measured change and a violet line marks the change over the waveform; the bracket is
green when the change is within the tolerance, violet when not; a cut with no change measured
near it gets a violet "no change" label. The title line adds the summary.

Geometry: frame *f* of the scored range (0 = its first frame) sits in row ``f // row_frames`` at
``x = LEFT + (f % row_frames) * CONTENT_W / row_frames``. A range up to 3 minutes is one row;
longer ones wrap every 5 minutes (a 60-minute programme is 12 rows).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import signal

from reelscore import ffmpeg_cli
from reelscore.errors import ReelscoreError
from reelscore.loudness import channel_weights, k_weighting_sos
from reelscore.reports.draw import Bars, Drawing, Image, Line, Polyline, Rect, Text
from reelscore.reports.jobfolder import JobFolder
from reelscore.wavfile import read_wav

LEFT, CONTENT_W, RIGHT = 70, 1400, 20
NAMES_H, THUMB_H, WAVE_H, LOUD_H, RULER_H, GAP = 16, 72, 64, 56, 22, 18
ROW_H = NAMES_H + THUMB_H + WAVE_H + LOUD_H + RULER_H + GAP
TOP = 30
ONE_ROW_SECONDS, WRAP_SECONDS = 180, 300
LOUD_FLOOR, LOUD_CEIL = -50.0, 0.0
SCENE, REQUEST, WAVE, LOUD, TARGET = "#d03030", "#2060c0", "#303030", "#208040", "#e08000"
CHANGE, CHANGE_HIT = "#8a2be2", "#10a010"
LABEL_CHAR_W = 6  # px per character of a 10 px timecode label (at most)
BRACKET_Y = 5  # the change bracket's height under the waveform band's top
SHEET_SVG, SHEET_PNG = "sheet.svg", "sheet.png"


@dataclass(frozen=True)
class Geometry:
    frames: int
    row_frames: int

    @property
    def rows(self) -> int:
        return max(1, math.ceil(self.frames / self.row_frames))

    @property
    def px_per_frame(self) -> float:
        return CONTENT_W / self.row_frames

    def place(self, frame: float) -> tuple[int, float]:
        """(row, x) of range frame *frame* (may be fractional); the range's end sits at the end
        of the last row."""
        row = max(0, min(int(frame // self.row_frames), self.rows - 1))
        return row, LEFT + (frame - row * self.row_frames) * self.px_per_frame

    @staticmethod
    def row_top(row: int) -> float:
        return TOP + row * ROW_H


def geometry(frames: int, rate: Fraction) -> Geometry:
    seconds = Fraction(frames) / rate
    if seconds <= ONE_ROW_SECONDS:
        return Geometry(frames, max(frames, 1))
    return Geometry(frames, math.ceil(WRAP_SECONDS * rate))


def short_term_loudness(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(end time in seconds, LUFS) of each 3 s window, every 100 ms (BS.1770 K-weighting)."""
    weights = channel_weights(x.shape[1])
    sos = k_weighting_sos(sample_rate)
    block = sample_rate // 10
    n = x.shape[0] // block
    if n < 30:
        return np.zeros(0), np.zeros(0)
    # Filtered a minute at a time (the filter state carried over), so an hour's score never
    # needs a float64 copy of itself.
    state = np.zeros((sos.shape[0], 2, x.shape[1]))
    chunk = 600 * block
    powers: list[np.ndarray] = []
    for at in range(0, n * block, chunk):
        part = x[at:min(at + chunk, n * block)].astype(np.float64)
        y, state = signal.sosfilt(sos, part, axis=0, zi=state)
        powers.append((y ** 2).reshape(-1, block, x.shape[1]).mean(axis=1) @ weights)
    power = np.concatenate(powers)
    window = np.convolve(power, np.ones(30) / 30, mode="valid")
    with np.errstate(divide="ignore"):
        lufs = -0.691 + 10 * np.log10(np.maximum(window, 1e-12))
    return (np.arange(30, n + 1) / 10.0), lufs


def _thumbnail(job: JobFolder, scene_start: int, scene_end: int, width: int) -> np.ndarray | None:
    """One frame from the middle of the scene, decoded from the proxy clip that holds it."""
    mid = (scene_start + scene_end) // 2
    for rec in job.renders.values():
        tr = rec.timeline_range
        if not tr.start <= mid < tr.start + tr.duration:
            continue
        path = rec.clip.path if rec.clip.path.is_absolute() else job.dir / rec.clip.path
        if not path.is_file():
            path = job.dir / "clips" / rec.clip.path.name
            if not path.is_file():
                continue
        seconds = (mid - tr.start) / float(Fraction(rec.clip.rate))
        w = max(2, width - width % 2)
        args = ffmpeg_cli.base_args() + [
            "-ss", f"{seconds:.3f}", "-i", ffmpeg_cli.file_arg(path), "-frames:v", "1",
            "-vf", f"scale={w}:{THUMB_H - 4}", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        try:
            for frame in ffmpeg_cli.read_frames(args, w * (THUMB_H - 4) * 3,
                                                f"a thumbnail from {path.name}"):
                return np.frombuffer(frame, dtype=np.uint8).reshape(THUMB_H - 4, w, 3)
        except ReelscoreError:
            return None
    return None


def _ruler_step(geo: Geometry, rate: Fraction) -> int:
    """Frames between labelled ticks: whole seconds at the nominal rate, labels >= 90 px apart."""
    nominal = round(rate)
    for seconds in (1, 2, 5, 10, 15, 30, 60, 120, 300):
        if seconds * nominal * geo.px_per_frame >= 90:
            return seconds * nominal
    return 300 * nominal


def build_sheet(job: JobFolder) -> Drawing:
    """The score sheet of *job* (needs the plan; the audio bands need the score WAV)."""
    plan = job.plan
    if plan is None:
        raise ReelscoreError(f"the job folder {str(job.dir)!r} has no plan to draw")
    rate = job.rate
    origin = plan.range.start
    geo = geometry(plan.range.duration, rate)
    drawing = Drawing(LEFT + CONTENT_W + RIGHT, TOP + geo.rows * ROW_H)
    items = drawing.items
    items.append(Text(LEFT, 20, f"{job.title}  {plan.range.record_in}-{plan.range.record_out}",
                      size=14, cls="title"))
    for row in range(geo.rows):
        top = geo.row_top(row)
        end = min(geo.frames - row * geo.row_frames, geo.row_frames) * geo.px_per_frame
        wave_top = top + NAMES_H + THUMB_H
        items.append(Rect(LEFT, wave_top, end, WAVE_H + LOUD_H, "#f4f4f4", cls="band"))
        items.append(Text(4, wave_top + WAVE_H / 2, "score", size=10, cls="band-label"))
        items.append(Text(4, wave_top + WAVE_H + LOUD_H / 2, "LUFS-S", size=10,
                          cls="band-label"))
    _draw_audio(job, geo, drawing)
    widths = [int(min(scene.range.duration, geo.row_frames - (scene.range.start - origin)
                      % geo.row_frames) * geo.px_per_frame) for scene in plan.scenes]
    # One ffmpeg per thumbnail (a frame seeked in a proxy clip): run them side by side, since an
    # hour has hundreds of scenes and each decoder mostly waits on its own start-up and seek.
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        thumbs = list(pool.map(
            lambda sw: _thumbnail(job, sw[0].range.start, sw[0].range.start + sw[0].range.duration,
                                  min(128, sw[1] - 4)) if sw[1] >= 12 else None,
            zip(plan.scenes, widths)))
    for scene, width, thumb in zip(plan.scenes, widths, thumbs):
        start = scene.range.start - origin
        row, x = geo.place(start)
        top = geo.row_top(row)
        items.append(Line(x, top, x, top + ROW_H - GAP, SCENE, cls="scene-boundary",
                          data={"frame": str(start), "scene": scene.id}))
        label = scene.name or scene.id
        items.append(Text(x + 3, top + 12, label[:max(1, width // 7)], size=11,
                          cls="scene-name"))
        if thumb is not None:
            items.append(Image(x + 2, top + NAMES_H + 2, thumb, cls="thumbnail"))
    last_row, x_end = geo.place(geo.frames)
    top = geo.row_top(last_row)
    items.append(Line(x_end, top, x_end, top + ROW_H - GAP, SCENE, cls="scene-boundary",
                      data={"frame": str(geo.frames), "scene": "end"}))
    for req in plan.requests[1:]:
        start = req.range.start - origin
        row, x = geo.place(start)
        band = geo.row_top(row) + NAMES_H + THUMB_H
        items.append(Line(x, band, x, band + WAVE_H + LOUD_H, REQUEST, cls="request-boundary",
                          dash=True, data={"frame": str(start), "request": req.id}))
    _draw_changes(job, geo, drawing)
    step = _ruler_step(geo, rate)
    for frame in range(0, geo.frames + 1, step):
        row, x = geo.place(frame)
        y = geo.row_top(row) + NAMES_H + THUMB_H + WAVE_H + LOUD_H
        items.append(Line(x, y, x, y + 5, "#000000", cls="tick", data={"frame": str(frame)}))
        label = job.label(origin + frame)
        if x + 2 + LABEL_CHAR_W * len(label) <= drawing.width:
            items.append(Text(x + 2, y + 16, label, size=10, cls="timecode"))
        else:  # the range's last label would run off the sheet: it ends at its tick instead
            items.append(Text(x - 2, y + 16, label, size=10, cls="timecode", anchor="end"))
    return drawing


def _draw_changes(job: JobFolder, geo: Geometry, drawing: Drawing) -> None:
    changes = job.music_changes
    if changes is None:
        return
    drawing.items.append(Text(LEFT + CONTENT_W / 2, 20, changes.summary, size=12, fill=CHANGE,
                              cls="music-changes-summary"))
    for cut in changes.cuts:
        row, x_cut = geo.place(cut.cut_frame)
        band = geo.row_top(row) + NAMES_H + THUMB_H
        at = cut.change_frame
        if at is None:
            drawing.items.append(Text(x_cut + 3, band + 2 * BRACKET_Y + 8, "no change", size=9,
                                      fill=CHANGE, cls="no-change"))
            continue
        change_row, x = geo.place(min(max(at, 0.0), float(geo.frames)))
        top = geo.row_top(change_row) + NAMES_H + THUMB_H
        data = {"cut-frame": str(cut.cut_frame), "change-frame": f"{at:g}",
                "distance": f"{cut.nearest_change_frames:+g}"}
        drawing.items.append(Line(x, top, x, top + WAVE_H, CHANGE, cls="music-change",
                                  data=data))
        colour = CHANGE_HIT if changes.hit(cut) else CHANGE
        y = band + BRACKET_Y
        if change_row == row:  # across a row break the line alone shows it
            drawing.items.append(Line(min(x_cut, x), y, max(x_cut, x) + 1, y, colour,
                                      cls="change-offset", data=data))
            drawing.items.append(Line(x_cut, band, x_cut, y, colour, cls="change-offset-tick"))


def _loudness_y(loud_top: float, value: float) -> float:
    v = min(max(value, LOUD_FLOOR), LOUD_CEIL)
    return loud_top + (LOUD_CEIL - v) / (LOUD_CEIL - LOUD_FLOOR) * LOUD_H


def _draw_audio(job: JobFolder, geo: Geometry, drawing: Drawing) -> None:
    wav = job.music_wav
    if wav is None:
        drawing.items.append(Text(LEFT + 6, geo.row_top(0) + NAMES_H + THUMB_H + 20,
                                  "no score WAV in the job folder", size=11, cls="missing"))
        return
    samples, sr = read_wav(wav)
    mono = samples.mean(axis=1)
    per_frame = sr / float(job.rate)
    times, lufs = short_term_loudness(samples, sr)
    target = job.settings.get("target_lufs")
    for row in range(geo.rows):
        first = row * geo.row_frames
        count = min(geo.frames - first, geo.row_frames)
        top = geo.row_top(row) + NAMES_H + THUMB_H
        cols = max(1, int(count * geo.px_per_frame))
        edges = (first + np.arange(cols + 1) * (count / cols)) * per_frame
        idx = np.clip(edges.astype(np.int64), 0, max(0, mono.size - 1))
        if mono.size and idx[-1] > idx[0]:
            starts = idx[:-1]
            ok = np.r_[starts[1:] > starts[:-1], True]
            hi = np.maximum.reduceat(mono, starts)
            lo = np.minimum.reduceat(mono, starts)
            hi, lo = np.where(ok, hi, 0), np.where(ok, lo, 0)
            mid = top + WAVE_H / 2
            xs = LEFT + np.arange(cols, dtype=np.float64) + 0.5
            scale = WAVE_H / 2 - 2
            drawing.items.append(Bars(xs, (mid - hi * scale).astype(np.float64),
                                      (mid - lo * scale).astype(np.float64), WAVE,
                                      cls="waveform"))
        loud_top = top + WAVE_H
        t0, t1 = first / float(job.rate), (first + count) / float(job.rate)
        sel = (times >= t0) & (times <= t1)
        pts = [(LEFT + (t * float(job.rate) - first) * geo.px_per_frame, _loudness_y(loud_top, v))
               for t, v in zip(times[sel], lufs[sel])]
        if len(pts) >= 2:
            drawing.items.append(Polyline(pts, LOUD, cls="short-term-loudness"))
        if isinstance(target, (int, float)):
            y = _loudness_y(loud_top, float(target))
            drawing.items.append(Line(LEFT, y, LEFT + count * geo.px_per_frame, y, TARGET,
                                      cls="target", dash=True,
                                      data={"lufs": f"{float(target):g}"}))


def write_sheet(job: JobFolder, svg_path: Path | None, png_path: Path | None, *,
                drawing: Drawing | None = None) -> list[Path]:
    """Draw once (or take *drawing*, already built); write the SVG and/or PNG atomically."""
    from reelscore.fsutil import atomic_write_bytes, atomic_write_text
    from reelscore.reports.draw import png_bytes, rasterise, to_svg

    drawing = drawing if drawing is not None else build_sheet(job)
    written: list[Path] = []
    if svg_path is not None:
        atomic_write_text(svg_path, to_svg(drawing))
        written.append(svg_path)
    if png_path is not None:
        atomic_write_bytes(png_path, png_bytes(rasterise(drawing)))
        written.append(png_path)
    return written
