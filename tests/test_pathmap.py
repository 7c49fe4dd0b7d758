"""``--path-map SOURCE=TARGET``: the submitting machine's paths as a worker sees them."""

from __future__ import annotations

import pytest

from reelscore.errors import InputError
from reelscore.pathmap import PathMap


def test_maps_whole_components_longest_source_first():
    pm = PathMap.parse(["/Volumes/RAID=/mnt/raid", "/Volumes/RAID/grade=/srv/grade"])
    assert pm.map("/Volumes/RAID/ep1/A001.mov") == "/mnt/raid/ep1/A001.mov"
    assert pm.map("/Volumes/RAID/grade/ep1.mov") == "/srv/grade/ep1.mov"
    assert pm.map("/Volumes/RAID") == "/mnt/raid"
    assert pm.map("/Volumes/RAID/") == "/mnt/raid"
    # a longer name that merely starts with SOURCE is another volume
    assert pm.map("/Volumes/RAID2/a.mov") == "/Volumes/RAID2/a.mov"
    assert pm.map("/Users/ed/a.mov") == "/Users/ed/a.mov"


def test_windows_sources_fold_case_and_take_the_targets_separator():
    pm = PathMap.parse([r"D:\Media=/mnt/media", r"\\nas\share=/mnt/nas", r"/mnt/out=E:\out"])
    assert pm.map(r"d:\media\ep1\a.mov") == "/mnt/media/ep1/a.mov"
    assert pm.map(r"\\NAS\share\x\y.mxf") == "/mnt/nas/x/y.mxf"
    assert pm.map("/mnt/out/ep1.otio") == r"E:\out\ep1.otio"
    # POSIX components compare exactly
    assert PathMap.parse(["/Volumes/RAID=/mnt/raid"]).map("/volumes/raid/a") == "/volumes/raid/a"


def test_root_source_maps_everything():
    assert PathMap.parse(["/=/mnt/mac"]).map("/Users/ed/a.mov") == "/mnt/mac/Users/ed/a.mov"


def test_explain_names_the_mapping_tried():
    pm = PathMap.parse(["/Volumes/RAID=/mnt/raid"])
    assert pm.explain("/Volumes/RAID/a.mov") == (
        "mapped by --path-map /Volumes/RAID=/mnt/raid to '/mnt/raid/a.mov'")
    assert pm.explain("/Users/a.mov") == (
        "no --path-map entry matches it (entries: /Volumes/RAID=/mnt/raid)")
    assert PathMap().explain("/x") == "no --path-map given"
    assert not PathMap() and pm


@pytest.mark.parametrize(("entry", "words"), [
    ("/Volumes/RAID", "is not SOURCE=TARGET"),
    ("=/mnt/raid", "is not SOURCE=TARGET"),
    ("RAID=/mnt/raid", "SOURCE 'RAID' is not an absolute path"),
    ("/Volumes/RAID=mnt", "TARGET 'mnt' is not an absolute path"),
])
def test_bad_entries_are_refused_with_the_entry(entry, words):
    with pytest.raises(InputError, match=words) as info:
        PathMap.parse([entry], name="path_map in site.toml")
    assert str(info.value).startswith(f"path_map in site.toml {entry!r}")


def test_a_source_mapped_twice_is_refused():
    with pytest.raises(InputError, match="maps '/Volumes/RAID/' twice"):
        PathMap.parse(["/Volumes/RAID=/mnt/a", "/Volumes/RAID/=/mnt/b"])
    # the same target twice is fine
    assert PathMap.parse(["/a=/b", "/a/=/b/"]).map("/a/x") == "/b/x"


def test_score_reads_media_through_the_configured_path_map(tmp_path, coded_video):
    """``path_map`` in a configuration file reaches every front end's media resolver: here
    ``reelscore score`` with the offline engine, an edit that names its media on a Mac."""
    import json
    import os
    import subprocess
    import sys
    from fractions import Fraction

    import opentimelineio as otio

    from tests.edits import build_timeline

    r = Fraction(25)
    src = coded_video(frames=60, rate=r, source_id=31, gop=25, width=160, height=90)
    tl = build_timeline([[("clip", src, 31, 0, 50)]], r)
    mac = "/Volumes/RAID-pathmap-test"
    for clip in tl.find_clips():
        clip.media_reference.target_url = f"file://{mac}/media/{src.name}"
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(edit))
    (tmp_path / "site.toml").write_text(f'path_map = ["{mac}/media={src.parent}"]\n')

    def score(*extra: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "ELEVENLABS_API_KEY"}
        return subprocess.run([sys.executable, "-m", "reelscore", "score", str(edit), "-o",
                               str(tmp_path / "out.otio"), "--provider", "local", *extra],
                              capture_output=True, text=True, env=env, timeout=600, check=False)

    offline = score()
    assert offline.returncode == 2 and f"{mac}/media/{src.name}" in offline.stderr
    done = score("--config", str(tmp_path / "site.toml"))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out.otio.reelscore" / "manifest.json").read_text())
    assert manifest["settings"]["path_map"] == [f"{mac}/media={src.parent}"]
    # the scored edit still names the media as the Mac does
    written = otio.adapters.read_from_file(str(tmp_path / "out.otio"))
    assert written.find_clips()[0].media_reference.target_url.startswith(f"file://{mac}/")
