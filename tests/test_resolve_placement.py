"""Placing the music: new stereo track (index read back), absolute recordFrame, mediaType 2,
verified by re-reading the track; every refusal path undoes what was added and says why."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from reelscore.resolve.api import PlacementError, ResolveError
from reelscore.resolve.connect import connect
from reelscore.resolve.placement import SceneMarker, place_music
from tests.fake_resolve import RATES, START_FRAMES, Cut, build_cut, make_wav


@pytest.fixture()
def media_dir(media_cache: Path) -> Path:
    return media_cache / "resolve"


def _wav(tmp_path: Path, frames: int, rate: Fraction, name: str = "score.wav") -> Path:
    return make_wav(tmp_path / name, Fraction(frames) / rate)


def _place(cut: Cut, wav: Path, rel: int, frames: int, **kwargs):
    session = connect({"resolve": cut.resolve})
    project = session.project()
    return place_music(project, session.timeline(project, "Cut v3"), wav,
                       record_frame=cut.start + rel, duration_frames=frames, rate=cut.rate,
                       start_frame=cut.start, **kwargs)


@pytest.mark.parametrize("rate", RATES, ids=["23.976", "25", "29.97"])
def test_music_lands_on_a_new_track_at_the_absolute_frame(media_dir: Path, tmp_path: Path, rate: Fraction) -> None:
    cut = build_cut(media_dir, rate)
    wav = _wav(tmp_path, 65, rate)
    pool = cut.resolve.project.media_pool
    previous_folder = pool.current
    placement = _place(cut, wav, 12, 65)
    tl = cut.timeline
    start = START_FRAMES[rate]
    assert tl.GetTrackCount("audio") == 2 and placement.track_index == 2
    assert (tl.GetTrackName("audio", 2), tl.GetTrackSubType("audio", 2)) == ("Score", "stereo")
    [item] = tl.GetItemListInTrack("audio", 2)
    assert item.GetStart() == start + 12 == placement.record_frame
    assert item.GetEnd() == start + 12 + 65
    assert item.GetDuration() == 65
    assert item.GetMediaPoolItem().GetClipProperty("File Path") == str(wav)
    # The dialogue track is untouched; the WAV sits in a 'reelscore' bin; the folder is restored.
    assert [(i.GetStart(), i.GetDuration()) for i in tl.GetItemListInTrack("audio", 1)] == [(start, 60)]
    [bin_] = [f for f in pool.root.subfolders if f.GetName() == "reelscore"]
    assert [c.GetClipProperty("File Path") for c in bin_.clips] == [str(wav)]
    assert pool.current is previous_folder
    assert placement.notes == []


def test_inclusive_end_frame_builds_are_corrected(media_dir: Path, tmp_path: Path) -> None:
    rate = Fraction(24000, 1001)
    cut = build_cut(media_dir, rate)
    cut.resolve.faults.add("end_frame_inclusive")
    placement = _place(cut, _wav(tmp_path, 40, rate), 0, 40)
    [item] = cut.timeline.GetItemListInTrack("audio", 2)
    assert (item.GetStart(), item.GetDuration()) == (86400, 40)
    assert any("-1 frame correction" in n for n in placement.notes)


def test_wav_with_empty_frames_property_uses_its_duration(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add("wav_frames_empty")
    _place(cut, _wav(tmp_path, 50, Fraction(25)), 30, 50)
    [item] = cut.timeline.GetItemListInTrack("audio", 2)
    assert (item.GetStart(), item.GetDuration()) == (90030, 50)


def test_score_name_taken_and_markers(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.timeline.SetTrackName("audio", 1, "Score")
    markers = [SceneMarker(0, "s001", "a", 30), SceneMarker(30, "s002", "b", 50, custom_data="x:s002")]
    placement = _place(cut, _wav(tmp_path, 80, Fraction(25)), 0, 80, markers=markers)
    assert placement.track_name == "Score 2" == cut.timeline.GetTrackName("audio", 2)
    got = cut.timeline.GetMarkers()
    assert got[0.0]["name"] == "s001" and got[0.0]["duration"] == 30
    assert placement.markers_added == [0]  # frame 30 already holds the user's "Scene 2" marker
    assert got[30.0]["name"] == "Scene 2"
    assert any("s002" in n and "01:00:01:05" in n for n in placement.notes)


# ------------------------------------------------------------------------------ refusals


def _refused(cut: Cut, wav: Path, rel: int, frames: int) -> PlacementError:
    before = cut.resolve.snapshot()
    with pytest.raises(PlacementError) as info:
        _place(cut, wav, rel, frames)
    assert cut.resolve.snapshot() == before, "something was left behind"
    return info.value


def test_import_failure(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add("import_fails")
    err = _refused(cut, _wav(tmp_path, 20, Fraction(25)), 0, 20)
    assert "MediaPool.ImportMedia" in str(err) and "returned []" in str(err)
    assert "score.wav" in str(err) and "removed" in str(err)


def test_add_track_failure(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add("add_track_fails")
    err = _refused(cut, _wav(tmp_path, 20, Fraction(25)), 0, 20)
    assert "Timeline.AddTrack('audio', 'stereo')" in str(err) and "returned False" in str(err)
    assert "timeline 'Cut v3'" in str(err)


def test_overlap_is_detected_when_the_append_is_dropped(media_dir: Path, tmp_path: Path) -> None:
    # A build that ignores trackIndex aims at A1, where the dialogue sits: Resolve drops it.
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add("append_ignores_track_index")
    err = _refused(cut, _wav(tmp_path, 20, Fraction(25)), 10, 20)
    assert "audio track 2 is empty" in str(err) and "occupied span" in str(err)


def test_clip_landing_on_another_track_is_removed(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults.add("append_ignores_track_index")
    err = _refused(cut, _wav(tmp_path, 20, Fraction(25)), 70, 20)  # A1 is free after 60
    assert "landed on ['audio', 1]" in str(err)


def test_clip_landing_at_the_wrong_frame_is_removed(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(30000, 1001))
    cut.resolve.faults.add("append_ignores_record_frame")
    err = _refused(cut, _wav(tmp_path, 20, Fraction(30000, 1001)), 45, 20)
    assert "landed at frame 108000 (01:00:00:00) instead of 108045 (01:00:01:15)" in str(err)


def test_undo_reports_what_it_could_not_remove(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    cut.resolve.faults |= {"append_ignores_record_frame", "no_delete_track"}
    with pytest.raises(PlacementError) as info:
        _place(cut, _wav(tmp_path, 20, Fraction(25)), 45, 20)
    assert "could NOT undo" in str(info.value) and "no DeleteTrack" in str(info.value)
    assert cut.timeline.GetItemListInTrack("audio", 2) == []  # the clip itself was removed
    assert cut.resolve.project.media_pool.root.subfolders == []


def test_short_wav_is_refused(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    err = _refused(cut, _wav(tmp_path, 20, Fraction(25)), 0, 40)
    assert "20 frames at 25 fps" in str(err) and "40 frames" in str(err)


def test_relative_record_frame_is_a_programming_error(media_dir: Path, tmp_path: Path) -> None:
    cut = build_cut(media_dir, Fraction(25))
    session = connect({"resolve": cut.resolve})
    project = session.project()
    with pytest.raises(ResolveError, match="must be absolute"):
        place_music(project, session.timeline(project), _wav(tmp_path, 20, Fraction(25)),
                    record_frame=12, duration_frames=20, rate=cut.rate, start_frame=cut.start)
