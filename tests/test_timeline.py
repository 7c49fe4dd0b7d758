"""Loading, rates, timecode and media paths (pure, plus a few real files)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from reelscore.errors import InputError
from reelscore.timecode import exact_rate, frames_to_tc, tc_to_frames
from reelscore.timeline import MediaResolver, url_to_path_candidates


@pytest.mark.parametrize(("value", "exact"), [
    (23.976, Fraction(24000, 1001)), (23.98, Fraction(24000, 1001)),
    (23.976024627685547, Fraction(24000, 1001)), (29.97, Fraction(30000, 1001)),
    (59.94, Fraction(60000, 1001)), (25.0, Fraction(25)), (24, Fraction(24)),
    ("30000/1001", Fraction(30000, 1001)), ("25", Fraction(25)), (12.0, Fraction(12)),
])
def test_exact_rate(value, exact):
    assert exact_rate(value) == exact


@pytest.mark.parametrize(("tc", "rate", "frames"), [
    ("01:00:00:00", Fraction(24), 86400),
    ("01:00:00:00", Fraction(24000, 1001), 86400),  # NDF: nominal 24
    ("01:00:00:00", Fraction(30000, 1001), 108000),
    ("01:00:00;00", Fraction(30000, 1001), 107892),  # drop frame
    ("00:59:53:11", Fraction(24), 86243),
    ("01:00:00:00", Fraction(25), 90000),
])
def test_timecode_round_trip(tc, rate, frames):
    assert tc_to_frames(tc, rate) == frames
    if ";" not in tc:
        assert frames_to_tc(frames, rate) == tc
    else:
        assert frames_to_tc(frames, rate, drop_frame=True) == tc


@pytest.mark.parametrize("bad", ["1:00:00", "01:00:00:24", "01:61:00:00", "x"])
def test_bad_timecode_is_an_input_error(bad):
    with pytest.raises(InputError) as info:
        tc_to_frames(bad, Fraction(24))
    assert bad in str(info.value)


@pytest.mark.parametrize(("url", "first"), [
    ("file:///folder/x.mov", "/folder/x.mov"),
    ("file:///Users/me/My%20Film/shot%2001.mov", "/Users/me/My Film/shot 01.mov"),
    ("file://localhost/Volumes/RAID/a.mov", "/Volumes/RAID/a.mov"),
    ("file://localhost/D%3a/media/x.mov", "D:/media/x.mov"),
    ("file:///D%3A/Avid%20MediaFiles/x.mxf", "D:/Avid MediaFiles/x.mxf"),
    ("file://D:/Projects/x.mov", "D:/Projects/x.mov"),
    ("file://Nexis/share/x.mov", "//Nexis/share/x.mov"),
    ("/Users/me/raw path.mov", "/Users/me/raw path.mov"),
    ("S:\\path\\to\\x.exr", "S:\\path\\to\\x.exr"),
    ("media/rel.mov", "media/rel.mov"),
])
def test_url_forms(url, first):
    assert url_to_path_candidates(url)[0] == first


def test_resolver_relative_percent_and_media_root(tmp_path: Path):
    edit_dir = tmp_path / "edit"
    (edit_dir / "media").mkdir(parents=True)
    rel = edit_dir / "media" / "shot 1.mov"
    rel.write_bytes(b"x")
    moved_root = tmp_path / "moved"
    (moved_root / "deep" / "er").mkdir(parents=True)
    moved = moved_root / "deep" / "er" / "B001_C002.mov"
    moved.write_bytes(b"y")
    odd = tmp_path / "-dash 'quote' ü.mov"
    odd.write_bytes(b"z")

    r = MediaResolver(edit_dir, [moved_root])
    assert r.resolve_url("media/shot 1.mov").path == rel
    assert r.resolve_url("media/shot%201.mov").path == rel
    assert r.resolve_url(odd.as_uri()).path == odd
    # Windows path from another machine: relinked by file name under --media-root
    assert r.resolve_url("E:\\Footage\\B001_C002.mov").path == moved
    assert r.resolve_url("file:///old/volume/B001_C002.mov").path == moved
    miss = r.resolve_url("file:///nowhere/none.mov")
    assert miss.path is None and "/nowhere/none.mov" in miss.tried


def test_media_root_must_exist(tmp_path: Path):
    with pytest.raises(InputError, match="--media-root"):
        MediaResolver(None, [tmp_path / "missing"])


def test_missing_reference_relinked_by_clip_name(tmp_path: Path):
    (tmp_path / "ZZ100_501.mov").write_bytes(b"x")
    clip = otio.schema.Clip(name="ZZ100_501.mov", media_reference=otio.schema.MissingReference())
    assert MediaResolver(None, [tmp_path]).resolve_clip(clip).path == tmp_path / "ZZ100_501.mov"
    assert MediaResolver(None, []).resolve_clip(clip).path is None
