"""The score sheet (issue 16): written by every score into the job folder and by
``reelscore sheet``; its geometry checked in the SVG (parsed) and in the PNG (decoded here with
zlib, not with reelscore's code)."""

from __future__ import annotations

import json
import shutil
import struct
import xml.etree.ElementTree as ET
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from reelscore.reports.sheet import geometry
from tests.edits import build_timeline
from tests.test_cli import cli

SVG = "{http://www.w3.org/2000/svg}"
LEFT, WIDTH = 70, 1400  # the sheet's documented content box
FRAMES = 175  # 75 + 100 frames at 25 fps: one row
TOP, NAMES_H, THUMB_H = 30, 16, 72


def decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if tag == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 2)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * 3)
    assert not raw[:, 0].any()  # filter 0 on every row
    return raw[:, 1:].reshape(height, width, 3)


@pytest.fixture(scope="module")
def job(tmp_path_factory, coded_video) -> Path:
    folder = tmp_path_factory.mktemp("sheet")
    r = Fraction(25)
    a = coded_video(frames=300, rate=r, source_id=41, gop=50)
    tl = build_timeline([[("clip", a, 41, 0, 75), ("clip", a, 41, 150, 100)]], r,
                        start_frame=90000, name="Sheet")
    otio.adapters.write_to_file(tl, str(folder / "cut.otio"))
    proc = cli("score", "cut.otio", "-o", "scored.otio", "--seed", "5", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return folder / "scored.otio.reelscore"


def test_scene_boundaries_sit_at_their_pixel_columns_in_the_svg(job):
    root = ET.parse(job / "sheet.svg").getroot()
    lines = [e for e in root.iter(f"{SVG}line") if e.get("class") == "scene-boundary"]
    frames = [int(e.get("data-frame", "-1")) for e in lines]
    assert frames == [0, 75, FRAMES]
    for e, f in zip(lines, frames):
        assert float(e.get("x1", "nan")) == pytest.approx(LEFT + f * WIDTH / FRAMES)
    images = [e for e in root.iter(f"{SVG}image") if e.get("class") == "thumbnail"]
    assert len(images) == 2 and all(
        e.get("href", "").startswith("data:image/png;base64,") for e in images)
    labels = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "timecode"]
    assert labels[0] == "01:00:00:00" and "01:00:07:00" in labels
    target = [e for e in root.iter(f"{SVG}line") if e.get("class") == "target"]
    assert [t.get("data-lufs") for t in target] == ["-14"]
    assert any(e.get("class") == "waveform" for e in root.iter(f"{SVG}path"))
    assert any(e.get("class") == "short-term-loudness" for e in root.iter(f"{SVG}polyline"))


def test_the_png_draws_the_same_boundaries_and_thumbnails(job):
    img = decode_png((job / "sheet.png").read_bytes())
    y = TOP + NAMES_H + THUMB_H // 2
    cut = LEFT + 75 * WIDTH // FRAMES  # 670
    assert tuple(img[y, cut]) == (0xD0, 0x30, 0x30)
    assert tuple(img[y, cut - 1]) == (255, 255, 255)  # the first scene's thumbnail ends before
    thumb = img[TOP + NAMES_H + 4:TOP + NAMES_H + THUMB_H - 4, cut + 3:cut + 120]
    assert thumb.std() > 20  # a decoded picture, not a flat fill


def test_sheet_command_writes_png_or_svg_and_refuses_other_names(job, tmp_path):
    proc = cli("sheet", str(job), "-o", str(tmp_path / "s.png"))
    assert proc.returncode == 0, proc.stderr
    assert decode_png((tmp_path / "s.png").read_bytes()).shape[1] == LEFT + WIDTH + 20
    proc = cli("sheet", str(job), "-o", str(tmp_path / "s.jpg"))
    assert proc.returncode == 2 and ".png or .svg" in proc.stderr


def test_a_sixty_minute_programme_wraps_onto_five_minute_rows():
    rate = Fraction(30000, 1001)
    frames = 107892  # 01:00:00;00 of 29.97 drop frame
    geo = geometry(frames, rate)
    assert geo.rows == 12 and geo.row_frames == 8992  # ceil(300 s x 30000/1001 = 8991.008)
    row, x = geo.place(8992 + 100)
    assert row == 1 and x == pytest.approx(LEFT + 100 * WIDTH / 8992)
    assert geo.place(frames) == (11, pytest.approx(LEFT + (frames - 11 * 8992) * WIDTH / 8992))


def test_short_term_loudness_matches_the_integrated_meter_across_filter_chunks():
    from reelscore.loudness import measure
    from reelscore.reports.sheet import short_term_loudness

    sr = 48000
    t = np.arange(sr * 130) / sr  # longer than the one-minute filtering chunks
    tone = np.stack([0.1 * np.sin(2 * np.pi * 1000 * t)] * 2, axis=1).astype(np.float32)
    tone[sr * 100:] *= 0.1  # 20 dB quieter from 100 s
    times, lufs = short_term_loudness(tone, sr)
    assert times[0] == pytest.approx(3.0) and np.diff(times) == pytest.approx(0.1)
    steady = measure(tone[:sr * 100], sr).integrated_lufs
    assert lufs[(times > 10) & (times < 100)] == pytest.approx(steady, abs=0.01)
    assert lufs[times > 104] == pytest.approx(steady - 20, abs=0.01)  # 3 s after the step


def test_the_png_carries_the_svgs_text_where_the_svg_puts_it(job):
    """Every label of the SVG (title, scene names, band labels, timecodes) is dark ink in the PNG
    inside the box SVG text takes (from x, up from the baseline y by the font size); outside the
    labels the ruler band is blank, and the boundaries keep their columns under the text."""
    root = ET.parse(job / "sheet.svg").getroot()
    img = decode_png((job / "sheet.png").read_bytes()).astype(int)
    dark = img.max(axis=2) < 120  # the ruler's text is #222222; the lines there are not dark
    texts = [e for e in root.iter(f"{SVG}text")]
    kinds = {e.get("class") for e in texts}
    assert {"title", "scene-name", "band-label", "timecode"} <= kinds
    ruler_top = TOP + NAMES_H + THUMB_H + 64 + 56
    covered = np.zeros_like(dark)
    for e in texts:
        x, y, size = float(e.get("x", "0")), float(e.get("y", "0")), int(e.get("font-size", "0"))
        width = int(0.6 * size * len(e.text or "")) + 2
        x0 = int(x) - width if e.get("text-anchor") == "end" else int(x)
        assert x0 >= 0 and x0 + width <= img.shape[1] + 2  # nothing runs off the sheet
        box = (slice(int(y) - size, int(y) + 3), slice(x0, x0 + width))
        fill = np.array([int(e.get("fill", "#000000")[i:i + 2], 16) for i in (1, 3, 5)])
        ink = (np.abs(img[box] - fill) < 40).all(axis=2)  # the text's own colour
        assert ink.sum() >= 2 * len((e.text or "").replace(" ", "")), (e.get("class"), e.text)
        covered[box] = True
    ruler = (slice(ruler_top + 6, ruler_top + 22), slice(LEFT, LEFT + WIDTH))
    assert dark[ruler].sum() > 100 and not (dark[ruler] & ~covered[ruler]).any()
    for e in root.iter(f"{SVG}line"):
        if e.get("class") == "scene-boundary":
            col = int(float(e.get("x1", "0")))
            assert tuple(img[TOP + 2, col]) == (0xD0, 0x30, 0x30)  # in the names band


def test_measured_music_changes_are_drawn_against_the_cuts(job, tmp_path):
    """The run's own measurement (one cut, at frame 75) is on its sheet; then a job whose
    manifest says a change 1.5 frames after the cut at 75 (within 2), one 10 frames before a
    cut at 140 (outside) and none near 160: lines at the changes' columns, brackets from cut to
    change coloured by the tolerance, in the SVG and the PNG alike."""
    own = json.loads((job / "manifest.json").read_text())["music_changes"]
    root = ET.parse(job / "sheet.svg").getroot()
    summary = [e.text for e in root.iter(f"{SVG}text") if e.get("class") ==
               "music-changes-summary"]
    assert summary == [own["summary"]]
    assert [c["cut_frame"] for c in own["cuts"]] == [75]
    drawn = [e for e in root.iter(f"{SVG}line") if e.get("class") == "music-change"]
    measured = own["cuts"][0]["nearest_change_frames"]
    if measured is None:
        assert not drawn and any(e.get("class") == "no-change" for e in root.iter(f"{SVG}text"))
    else:
        assert [float(e.get("data-change-frame", "nan")) for e in drawn] == [75 + measured]

    copy = tmp_path / "job"
    shutil.copytree(job, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["music_changes"] = {
        "summary": "music changes within 2 frames of 1 of 3 cuts", "tolerance_frames": 2,
        "hits": 1, "cuts": [
            {"record_tc": "01:00:03:00", "cut_frame": 75, "nearest_change_frames": 1.5},
            {"record_tc": "01:00:05:15", "cut_frame": 140, "nearest_change_frames": -10.0},
            {"record_tc": "01:00:06:10", "cut_frame": 160, "nearest_change_frames": None}]}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    for name in ("s.svg", "s.png"):
        proc = cli("sheet", str(copy), "-o", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
    root = ET.parse(tmp_path / "s.svg").getroot()
    lines = [e for e in root.iter(f"{SVG}line")]
    changes = [e for e in lines if e.get("class") == "music-change"]
    assert [float(e.get("x1", "nan")) for e in changes] == pytest.approx(
        [LEFT + 76.5 * WIDTH / FRAMES, LEFT + 130 * WIDTH / FRAMES])
    brackets = [e for e in lines if e.get("class") == "change-offset"]
    assert [(b.get("stroke"), float(b.get("x1", "nan"))) for b in brackets] == [
        ("#10a010", pytest.approx(LEFT + 75 * WIDTH / FRAMES)),
        ("#8a2be2", pytest.approx(LEFT + 130 * WIDTH / FRAMES))]
    no_change = [float(e.get("x", "nan")) for e in root.iter(f"{SVG}text")
                 if e.get("class") == "no-change"]
    assert no_change == [pytest.approx(LEFT + 160 * WIDTH / FRAMES + 3)]
    img = decode_png((tmp_path / "s.png").read_bytes())
    band = TOP + NAMES_H + THUMB_H
    for frame in (76.5, 130):
        col = int(LEFT + frame * WIDTH / FRAMES)
        assert tuple(img[band + 40, col]) == (0x8A, 0x2B, 0xE2)
    hit_mid = int(LEFT + 75.75 * WIDTH / FRAMES)
    assert tuple(img[band + 5, hit_mid]) == (0x10, 0xA0, 0x10)
    miss_mid = int(LEFT + 135 * WIDTH / FRAMES)
    assert tuple(img[band + 5, miss_mid]) == (0x8A, 0x2B, 0xE2)
