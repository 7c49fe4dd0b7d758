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
