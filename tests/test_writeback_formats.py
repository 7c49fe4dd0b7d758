"""Write-back in every format OTIO writes here, each read back with the same adapter.

The scored timelines are built from small generated edits (the picture's media need not exist to
write an edit); the score WAV is a real file. Every format is re-read with its real adapter and
checked independently of ``verify_written`` (record timecode, duration, the exact media path
form in the file, markers, provenance); ``verify_written`` itself is then shown to catch a file
that differs.
"""

from __future__ import annotations

import json
import shutil
import wave
import zipfile
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote

import opentimelineio as otio
import pytest
from opentimelineio import opentime

from reelscore.errors import OutputError
from reelscore.pipeline import ScoreSettings, plan_edit, score_file
from reelscore.providers import GenerationSettings
from reelscore.timecode import frames_to_tc, rt_frames
from reelscore.timeline import load_edit, normalise
from reelscore.writeback import (
    ScoreMedia,
    add_score_tracks,
    check_output_format,
    media_url,
    prepared_for_adapter,
    verify_written,
    write_edit,
)
from tests.edits import build_timeline

FORMATS = [".otio", ".otioz", ".xml", ".fcpxml", ".aaf", ".edl"]
ADAPTERS = {".otio": "otio_json", ".otioz": "otioz", ".xml": "fcp_xml", ".fcpxml": "fcpx_xml",
            ".aaf": "AAF", ".edl": "cmx_3600"}


def write_wav(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = round(48000 * seconds)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(bytes(range(256)) * (frames * 4 // 256) + b"\0" * (frames * 4 % 256))
    return path


def make_scored(tmp_path: Path, *, rate: Fraction = Fraction(24), start_frame: int = 86400,
                range_in: str | None = "01:00:02:00", range_out: str | None = "01:00:10:00",
                markers: bool = True, plain_paths: bool = False, min_scene: float = 1.0):
    """A 3-clip edit (two video tracks), a plan over *range*, and the scored timeline."""
    media = tmp_path / "footage dir" / "A#1 take%.mov"  # characters URLs must encode
    tracks = [
        [("clip", media, 1, 10, 100), ("clip", media, 1, 300, 80), ("gap", 20),
         ("clip", media, 1, 500, 120)],
        [("gap", 60), ("clip", media, 1, 800, 50)],
    ]
    tl = build_timeline(tracks, rate, start_frame=start_frame, name="cut")
    if plain_paths:  # as DaVinci Resolve exports .otio
        for clip in tl.find_clips():
            clip.media_reference.target_url = str(media)
    loaded = normalise(tl)
    settings = ScoreSettings(range_in=range_in, range_out=range_out, markers=markers,
                             min_scene_seconds=min_scene)
    plan = plan_edit(loaded, settings, check_media=False).plan
    wav = write_wav(tmp_path / "job dir" / "cut.score.wav", plan.range.duration / float(rate))
    provenance = {"job_id": "job-4711", "provider": "local", "model": "reelscore-sketch-1",
                  "seed": 7, "record_in": plan.range.record_in,
                  "record_out": plan.range.record_out,
                  "loudness": {"target_lufs": -14.0, "integrated_lufs": -14.02,
                               "true_peak_dbtp": -1.5}}
    scored = add_score_tracks(loaded, plan, [ScoreMedia(wav, "Score", "Score - reelscore",
                                                        provenance)], markers=markers)
    return loaded, plan, scored, wav


def _read(path: Path, rate: Fraction):
    args = {"rate": float(rate)} if path.suffix == ".edl" else {}
    return otio.adapters.read_from_file(
        str(path), media_linker_name=otio.media_linker.MediaLinkingPolicy.DoNotLinkMedia, **args)


def _score_clip_in(tl: otio.schema.Timeline, wav_name: str) -> tuple[otio.schema.Track, otio.schema.Clip]:
    def is_score(c: object) -> bool:
        url = str(getattr(getattr(c, "media_reference", None), "target_url", ""))
        return isinstance(c, otio.schema.Clip) and url.endswith((wav_name, quote(wav_name)))

    hits = [(t, c) for t in tl.tracks if t.kind == otio.schema.TrackKind.Audio
            for c in t if is_score(c)]
    assert len(hits) == 1, [c.name for t in tl.tracks for c in t]
    return hits[0]


def _record_frame(tl: otio.schema.Timeline, track: otio.schema.Track, clip: otio.schema.Clip,
                  rate: Fraction) -> int:
    """Record frame by hand: gst (or the CMX negative track start) + position in the track."""
    pos = 0
    for item in track:
        if item is clip:
            break
        if not isinstance(item, otio.schema.Transition):
            pos += rt_frames(item.duration(), rate)
    if track.source_range is not None and track.source_range.start_time.value < 0:
        return pos - rt_frames(track.source_range.start_time, rate)
    gst = tl.global_start_time
    return pos + (rt_frames(gst, rate) if gst is not None else 0)


@pytest.mark.parametrize("ext", FORMATS)
def test_each_format_round_trips_the_score(tmp_path, ext):
    _loaded, plan, scored, wav = make_scored(tmp_path)
    out = tmp_path / f"scored{ext}"
    assert write_edit(scored, out) == ADAPTERS[ext]
    assert plan.range.record_in == "01:00:02:00" and plan.range.duration == 192
    assert len(plan.scenes) >= 2

    back = _read(out, Fraction(24))
    track, clip = _score_clip_in(back, wav.name)
    record = _record_frame(back, track, clip, Fraction(24))
    keeps_start = ext != ".fcpxml"  # the FCPX adapter keeps no sequence start timecode
    assert frames_to_tc(record + (0 if keeps_start else 86400), Fraction(24)) == "01:00:02:00"
    assert rt_frames(clip.duration(), Fraction(24)) == 192
    url = clip.media_reference.target_url
    expected_url = {
        ".otio": wav.absolute().as_uri(),  # the edit's own media are file:// URLs
        ".otioz": f"media/{wav.name}",
        ".xml": "file://localhost" + quote(str(wav.absolute())),
        ".fcpxml": wav.absolute().as_uri(),
        ".aaf": wav.absolute().as_uri(),
        ".edl": str(wav.absolute()),
    }[ext]
    assert url == expected_url

    # Scene markers: one per scene, at its record timecode, where the format keeps clip markers.
    scene_tcs = [s.range.record_in for s in plan.scenes]
    if ext == ".edl":
        got = [m.marked_range.start_time.to_timecode(24, False) for m in clip.markers]
    elif ext != ".aaf":  # clip markers sit in the clip's media space
        clip_in = rt_frames(clip.trimmed_range().start_time, Fraction(24))
        record_in = 86400 + 48
        got = [frames_to_tc(record_in + rt_frames(m.marked_range.start_time, Fraction(24))
                            - clip_in, Fraction(24)) for m in clip.markers]
    else:
        got = scene_tcs  # AAF: the adapter writes no markers (docs/formats.md)
        assert list(clip.markers) == []
    assert got == scene_tcs

    report = verify_written(out, scored, plan)
    assert report["adapter"] == ADAPTERS[ext]
    assert report["score"][0]["record_in"] == "01:00:02:00"
    assert report["score"][0]["frames"] == 192


def test_otio_keeps_everything_and_the_edit_url_form(tmp_path):
    loaded, _plan, scored, wav = make_scored(tmp_path, plain_paths=True)
    out = tmp_path / "scored.otio"
    write_edit(scored, out)
    back = otio.adapters.read_from_file(str(out))
    assert [t.name for t in back.tracks] == ["V1", "V2", "Score"]
    for a, b in zip(loaded.original.tracks, back.tracks):
        assert otio.adapters.write_to_string(a) == otio.adapters.write_to_string(b)
    clip = back.tracks[-1][1]
    # A Resolve-style edit (plain paths) gets a plain path: Resolve rejects file:// URLs.
    assert clip.media_reference.target_url == str(wav.absolute())
    meta = clip.metadata["reelscore"]
    assert meta["job_id"] == "job-4711" and meta["seed"] == 7
    assert next(m.comment for m in clip.markers).startswith("s001 01:00:02:00-")
    assert clip.markers[0].metadata["reelscore"]["record_in"] == "01:00:02:00"


def test_otioz_bundles_only_the_score(tmp_path):
    _loaded, _plan, scored, wav = make_scored(tmp_path)
    picture = tmp_path / "footage dir" / "A#1 take%.mov"
    picture.parent.mkdir(parents=True, exist_ok=True)
    picture.write_bytes(b"\0" * 4096)  # online, and still not bundled
    out = tmp_path / "scored.otioz"
    write_edit(scored, out)
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["content.otio", f"media/{wav.name}", "version.txt"]
        assert zf.read(f"media/{wav.name}") == wav.read_bytes()
        assert zf.getinfo(f"media/{wav.name}").compress_type == zipfile.ZIP_STORED
        content = json.loads(zf.read("content.otio"))
    assert "footage%20dir/A%231%20take%25.mov" in json.dumps(content)  # picture refs unchanged
    extract = tmp_path / "unpacked"
    extract.mkdir()
    tl = otio.adapters.read_from_file(str(out), extract_to_directory=str(extract))
    clip = tl.tracks[-1][1]
    assert (extract / clip.media_reference.target_url).read_bytes() == wav.read_bytes()


def test_fcp7_xml_text_is_what_editors_expect(tmp_path):
    _, _plan, scored, wav = make_scored(tmp_path)
    out = tmp_path / "scored.xml"
    write_edit(scored, out)
    text = out.read_text("utf-8")
    assert f"<pathurl>file://localhost{quote(str(wav.absolute()))}</pathurl>" in text
    assert "file://localhost/" in text and "%20" in text
    assert "<mastercomment1>reelscore job job-4711</mastercomment1>" in text
    back = _read(out, Fraction(24))
    assert back.global_start_time.to_timecode() == "01:00:00:00"


def test_edl_is_the_score_track_alone(tmp_path):
    _, plan, scored, wav = make_scored(tmp_path)
    out = tmp_path / "scored.edl"
    write_edit(scored, out)
    lines = out.read_text().splitlines()
    events = [ln for ln in lines if ln[:3].isdigit()]
    assert len(events) == 1
    fields = events[0].split()
    assert fields[1:4] == ["AX", "A", "C"]
    assert fields[4:] == ["00:00:00:00", "00:00:08:00", "01:00:02:00", "01:00:10:00"]
    assert f"* FROM CLIP: {wav.absolute()}" in lines
    assert "* FROM CLIP NAME:  Score - reelscore" in lines
    locs = [ln for ln in lines if ln.startswith("* LOC:")]
    assert [ln.split()[2] for ln in locs] == [s.range.record_in for s in plan.scenes]


def test_aaf_carries_provenance_as_user_comments(tmp_path):
    _, _, scored, wav = make_scored(tmp_path)
    out = tmp_path / "scored.aaf"
    write_edit(scored, out)
    back = _read(out, Fraction(24))
    _, clip = _score_clip_in(back, wav.name)
    comments = clip.metadata["AAF"]["UserComments"]
    assert comments["reelscore job"] == "job-4711"
    assert comments["reelscore record"] == "01:00:02:00-01:00:10:00"
    assert back.global_start_time.to_timecode() == "01:00:00:00"


def test_drop_frame_edl_record_timecode(tmp_path):
    rate = Fraction(30000, 1001)
    _, plan, scored, _wav = make_scored(tmp_path, rate=rate, start_frame=107892,
                                       range_in=None, range_out=None, markers=False)
    out = tmp_path / "scored.edl"
    write_edit(scored, out)
    event = next(ln for ln in out.read_text().splitlines() if ln.startswith("001"))
    assert event.split()[6] == "01:00:00;00"  # 107892 frames, drop frame
    loaded = load_edit(out)  # reelscore infers 29.97 DF from the ';'
    assert loaded.rate == rate and loaded.start_frame == 107892
    verify_written(out, scored, plan)


def test_drop_frame_edl_locators_are_read_back(tmp_path):
    """The cmx reader skips ``* LOC:`` lines with ';': verification reads them itself, so a
    scene marker a frame off at 29.97 DF is caught (labels across a dropped minute)."""
    rate = Fraction(30000, 1001)
    _, plan, scored, _wav = make_scored(tmp_path, rate=rate, start_frame=107892 + 1770,
                                       range_in=None, range_out=None)
    out = tmp_path / "scored.edl"
    write_edit(scored, out)
    text = out.read_text()
    locs = [ln.split()[2] for ln in text.splitlines() if ln.startswith("* LOC:")]
    assert locs == [s.range.record_in for s in plan.scenes] and ";" in locs[0]
    report = verify_written(out, scored, plan)
    assert report["score"][0]["markers"] == len(plan.scenes)
    shifted = locs[-1][:-2] + f"{int(locs[-1][-2:]) + 1:02d}"
    out.write_text(text.replace(f"LOC: {locs[-1]}", f"LOC: {shifted}"))
    with pytest.raises(OutputError, match="LOC markers"):
        verify_written(out, scored, plan)


def test_edl_input_record_start_moves_to_the_xml_sequence_timecode(tmp_path, samples_dir):
    loaded = load_edit(samples_dir / "screening_example.edl", rate=Fraction(24))
    plan = plan_edit(loaded, ScoreSettings(range_out="00:59:57:11"), check_media=False).plan
    wav = write_wav(tmp_path / "s.wav", plan.range.duration / 24)
    scored = add_score_tracks(loaded, plan, [ScoreMedia(wav, "Score", "Score - reelscore",
                                                        {"job_id": "j1"})])
    prepared = prepared_for_adapter(scored, "fcp_xml")
    assert prepared.global_start_time.value == 86243
    assert all(t.source_range is None for t in prepared.tracks)
    assert loaded.original.tracks[0].source_range.start_time.value == -86243  # untouched
    for ext in (".xml", ".aaf", ".fcpxml", ".edl", ".otio"):
        out = tmp_path / f"scored{ext}"
        try:
            write_edit(scored, out)
        except OutputError as exc:
            assert ext == ".aaf" and "no media length" in str(exc)  # EDL sources have none
            continue
        report = verify_written(out, scored, plan)
        assert report["score"][0]["record_in"] == "00:59:53:11", ext


@pytest.mark.parametrize(("ext", "change", "complaint"), [
    (".edl", lambda p: p.write_text(p.read_text().replace("01:00:02:00 01:00:10:00",
                                                          "01:00:02:01 01:00:10:01")),
     "puts 'Score - reelscore' at 01:00:02:01"),
    (".xml", lambda p: p.write_text(p.read_text().replace("cut.score.wav", "other.wav")),
     "finds no audio clip using cut.score.wav"),
    (".otio", lambda p: p.write_text(p.read_text().replace('"job-4711"', '"job-0"')),
     "no reelscore provenance"),
    (".otio", lambda p: p.write_text(p.read_text().replace('"V2"', '"V2 renamed"')),
     "track 'V2 renamed' changed"),
    (".otioz", None, "different from"),
])
def test_verify_written_catches_a_wrong_file(tmp_path, ext, change, complaint):
    _, plan, scored, wav = make_scored(tmp_path)
    out = tmp_path / f"scored{ext}"
    write_edit(scored, out)
    verify_written(out, scored, plan)
    if change is not None:
        change(out)
    else:  # the WAV changed after bundling
        wav.write_bytes(wav.read_bytes()[:-4] + b"\1\1\1\1")
    with pytest.raises(OutputError) as info:
        verify_written(out, scored, plan)
    assert complaint in str(info.value)


def test_verify_written_checks_the_plan_range(tmp_path):
    _, plan, scored, _ = make_scored(tmp_path)
    out = tmp_path / "scored.otio"
    write_edit(scored, out)
    other = plan.model_copy(update={"range": plan.range.model_copy(update={"duration": 191})})
    with pytest.raises(OutputError, match="the plan 01:00:02:00 \\+191 frames"):
        verify_written(out, scored, other)


@pytest.mark.parametrize(("ext", "edit", "named"), [
    (".aaf", "transition", "transition 'dissolve' was not read from an AAF"),
    (".fcpxml", "ntsc", "writes only 24, 25, 30, 50 and 60 fps; this edit has 23.976 fps"),
    (".xml", "generator", "'SMPTEBars' generator without FCP XML effect data"),
    (".xml", "image_sequence", "uses an image sequence"),
    (".aaf", "no_media_length", "has no media length"),
])
def test_unwritable_edits_fail_before_writing_and_name_the_limit(tmp_path, ext, edit, named):
    rate = Fraction(24000, 1001) if edit == "ntsc" else Fraction(24)
    _, _, scored, _ = make_scored(tmp_path, rate=rate)
    v1 = scored.tracks[0]
    if edit == "transition":
        v1.insert(1, otio.schema.Transition(
            name="dissolve", transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
            in_offset=opentime.RationalTime(5, 24), out_offset=opentime.RationalTime(5, 24)))
    elif edit == "generator":
        v1[0].media_reference = otio.schema.GeneratorReference(
            generator_kind="SMPTEBars", available_range=v1[0].media_reference.available_range)
    elif edit == "image_sequence":
        v1[0].media_reference = otio.schema.ImageSequenceReference(
            target_url_base="/frames/", name_prefix="shot.", name_suffix=".exr", rate=24,
            available_range=v1[0].media_reference.available_range)
    elif edit == "no_media_length":
        v1[0].media_reference.available_range = None
    out = tmp_path / f"scored{ext}"
    with pytest.raises(OutputError) as info:
        write_edit(scored, out)
    assert named in str(info.value)
    assert "write .otio instead" in str(info.value)
    assert not out.exists() and not list(tmp_path.glob(".scored*"))


def test_output_format_is_checked_before_rendering(tmp_path):
    """check_output_format (run after planning, before any render): the writer run on the edit
    with a stand-in score; nothing is written anywhere."""
    loaded, plan, _scored, _ = make_scored(tmp_path, rate=Fraction(24000, 1001))
    with pytest.raises(OutputError, match=r"23\.976 fps") as info:
        check_output_format(loaded, plan, tmp_path / "scored.fcpxml")
    assert "write .otio instead" in str(info.value)
    for ok in ("scored.xml", "scored.otio", "scored.aaf", "scored.edl"):
        check_output_format(loaded, plan, tmp_path / ok)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job dir"]  # no output, no stand-in


def test_unknown_extension_is_refused(tmp_path):
    _, _, scored, _ = make_scored(tmp_path)
    with pytest.raises(OutputError, match=r"no OTIO adapter writes '\.mov'"):
        write_edit(scored, tmp_path / "scored.mov")
    with pytest.raises(OutputError, match="folder bundle") as info:
        write_edit(scored, tmp_path / "scored.otiod")
    assert "write .otioz" in str(info.value) and not (tmp_path / "scored.otiod").exists()


def test_media_url_forms(tmp_path):
    p = tmp_path / "a b" / "x#%.wav"
    assert media_url(p, "path") == str(p)
    assert media_url(p, "url") == "file://" + quote(str(p))
    assert media_url(p, "fcp") == "file://localhost" + quote(str(p))
    assert media_url(p, "bundle") == "media/x#%.wav"
    from reelscore.writeback import media_path

    for form in ("path", "url", "fcp"):
        assert media_path(media_url(p, form)) == p


@pytest.fixture(scope="module")
def scored_once(tmp_path_factory, coded_video):
    """One real scoring (real render and offline engine) reused for every output format."""
    root = tmp_path_factory.mktemp("pipeline")
    rate = Fraction(25)
    a = coded_video(frames=400, rate=rate, source_id=21, gop=50)
    b = coded_video(frames=400, rate=rate, source_id=22, gop=50)
    tl = build_timeline([[("clip", a, 21, 10, 75), ("clip", b, 22, 100, 60),
                          ("clip", a, 21, 200, 90)]], rate, start_frame=90000, name="reel 1")
    edit = root / "reel1.otio"
    otio.adapters.write_to_file(tl, str(edit))
    return root, edit


@pytest.mark.parametrize("ext", FORMATS)
def test_score_file_writes_and_verifies_every_format(scored_once, ext):
    root, edit = scored_once
    out = root / f"reel1.scored{ext}"
    settings = ScoreSettings(markers=True, min_scene_seconds=1.0,
                             generation=GenerationSettings(seed=2))
    result = score_file(edit, out, settings, work_dir=root / "job")  # later runs reuse the job
    manifest = json.loads(result.manifest_path.read_text())
    outputs = manifest["outputs"]
    assert outputs["edit_adapter"] == ADAPTERS[ext]
    verified = outputs["edit_verified"]
    assert verified["score"][0]["record_in"] == "01:00:00:00" == result.plan.range.record_in
    assert verified["score"][0]["frames"] == 225 == result.plan.range.duration
    assert verified["score"][0]["markers"] == (0 if ext == ".aaf" else len(result.plan.scenes))
    assert len(result.plan.scenes) == 3
    if ext == ".otioz":
        with zipfile.ZipFile(out) as zf:
            assert zf.read(f"media/{result.music_wav.name}") == result.music_wav.read_bytes()
    # An .otioz moved elsewhere still plays its score: the WAV travels inside it.
    if ext == ".otioz":
        moved = root / "elsewhere"
        moved.mkdir(exist_ok=True)
        shutil.copy(out, moved / out.name)
        tl = otio.adapters.read_from_file(str(moved / out.name), extract_to_directory=str(moved))
        assert (moved / tl.tracks[-1][0].media_reference.target_url).is_file()
