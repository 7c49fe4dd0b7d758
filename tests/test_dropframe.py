"""Drop-frame timecode: the arithmetic, where the flag comes from, and everything shown or written.

Expected values come from OTIO's own conversion (``opentime.to_timecode(..., drop_frame=True)``,
``from_timecode``) or from published pairs, never from reelscore's code under test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentimelineio import opentime

from reelscore.describe import describe_plan
from reelscore.errors import InputError, RangeError
from reelscore.picture import build_picture
from reelscore.pipeline import ScoreSettings, plan_edit
from reelscore.plan import make_plan
from reelscore.render import FFmpegRenderer
from reelscore.scenes import SceneCut, scored_range
from reelscore.timecode import frames_to_tc, tc_to_frames
from reelscore.timeline import load_edit, normalise
from reelscore.writeback import ScoreMedia, add_score_tracks, verify_written, write_edit
from tests.edits import build_timeline
from tests.framecode import read_codes
from tests.test_writeback_formats import write_wav

DF30 = Fraction(30000, 1001)
DF60 = Fraction(60000, 1001)
DF30_DAY = 2589408  # frames in 24 h of 29.97 drop frame (OTIO wraps there; reelscore does not)


def otio_df(frames: int, rate: Fraction) -> str:
    return str(opentime.to_timecode(opentime.RationalTime(frames, float(rate)), float(rate), True))


def otio_frames(tc: str, rate: Fraction) -> int:
    return round(opentime.from_timecode(tc, float(rate)).value)


# ------------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(("tc", "rate", "frames"), [
    ("01:00:00;00", DF30, 107892),
    ("01:00:00;00", DF60, 215784),
    ("00:01:00;02", DF30, 1800),
    ("00:10:00;00", DF30, 17982),
    ("00:01:00;04", DF60, 3600),
    ("05:00:00;00", DF30, 539460),  # the AAF sample's start
])
def test_known_drop_frame_pairs(tc, rate, frames):
    assert frames_to_tc(frames, rate, drop_frame=True) == tc
    assert tc_to_frames(tc, rate) == frames  # ';' says drop frame
    assert tc_to_frames(tc.replace(";", ":"), rate, drop_frame=True) == frames  # timeline's flag
    assert tc_to_frames(tc.replace(";", "."), rate, drop_frame=True) == frames
    assert tc_to_frames(tc.replace(";", ","), rate, drop_frame=True) == frames


def test_non_drop_labels_of_the_same_frames():
    assert frames_to_tc(107892, DF30) == "00:59:56:12"
    assert tc_to_frames("01:00:00:00", DF30) == 108000
    assert frames_to_tc(215784, DF60) == "00:59:56:24"


@pytest.mark.parametrize("rate", [Fraction(25), Fraction(24000, 1001), Fraction(24), Fraction(30)])
def test_rates_without_drop_frame_are_unchanged(rate):
    nominal = round(rate)
    assert frames_to_tc(3600 * nominal, rate, drop_frame=True) == "01:00:00:00"
    assert tc_to_frames("01:00:00:00", rate, drop_frame=True) == 3600 * nominal
    assert tc_to_frames("01:00:00;00", rate) == 3600 * nominal


@settings(max_examples=400, deadline=None)
@given(frames=st.integers(min_value=0, max_value=DF30_DAY - 1), sixty=st.booleans())
def test_drop_frame_matches_otio(frames, sixty):
    rate = DF60 if sixty else DF30
    frames = frames * 2 if sixty else frames
    label = frames_to_tc(frames, rate, drop_frame=True)
    assert label == otio_df(frames, rate)
    assert tc_to_frames(label, rate) == otio_frames(label, rate) == frames


@pytest.mark.parametrize(("tc", "rate", "before", "after"), [
    ("00:01:00;00", DF30, "00:00:59;29", "00:01:00;02"),
    ("00:01:00;01", DF30, "00:00:59;29", "00:01:00;02"),
    ("01:59:00;00", DF30, "01:58:59;29", "01:59:00;02"),
    ("00:01:00;03", DF60, "00:00:59;59", "00:01:00;04"),
])
def test_labels_that_do_not_exist_are_refused_with_the_nearest(tc, rate, before, after):
    for typed, flag in ((tc, False), (tc.replace(";", ":"), True)):
        with pytest.raises(InputError) as info:
            tc_to_frames(typed, rate, drop_frame=flag)
        assert "does not exist" in info.value.message
        assert f"{before} and {after}" in (info.value.hint or "")
    # and the neighbours named are real, adjacent frames
    assert otio_frames(after, rate) - otio_frames(before, rate) == 1


def test_minute_ten_keeps_its_frame_zero():
    assert tc_to_frames("00:10:00;00", DF30) == otio_frames("00:10:00;00", DF30)


# --------------------------------------------------------------------- where the flag comes from


def _edl(path: Path, events: list[tuple[int, int, int]], *, fcm: str | None = "DROP FRAME",
         drop: bool = True) -> Path:
    """An EDL whose labels are OTIO's conversion of (source in, record in, frames) at 29.97."""
    lines = ["TITLE: df cut"] + ([f"FCM: {fcm}"] if fcm else []) + [""]
    for n, (src, rec, dur) in enumerate(events, 1):
        tcs = [str(opentime.to_timecode(opentime.RationalTime(f, float(DF30)), float(DF30), drop))
               for f in (src, src + dur, rec, rec + dur)]
        lines.append(f"{n:03d}  A{n:03d}     V     C        {' '.join(tcs)}")
        lines.append(f"* FROM CLIP NAME:  shot{n}.mov")
    path.write_text("\n".join(lines) + "\n")
    return path


REC = 107892  # 01:00:00;00
EVENTS = [(REC, REC, 1210), (2 * REC, REC + 1210, 700), (REC + 5000, REC + 1910, 900)]


def test_edl_flag_from_fcm_and_semicolons(tmp_path):
    assert load_edit(_edl(tmp_path / "a.edl", EVENTS)).drop_frame
    assert load_edit(_edl(tmp_path / "b.edl", EVENTS, fcm=None)).drop_frame  # ';' alone
    ndf = _edl(tmp_path / "c.edl", [(108000, 108000, 900)], fcm="NON-DROP FRAME", drop=False)
    loaded = load_edit(ndf, rate=DF30)
    assert not loaded.drop_frame and loaded.start_frame == 108000


def test_aaf_sample_plans_at_five_hours_drop_frame(samples_dir):
    loaded = load_edit(samples_dir / "2997fps-DFTC.aaf")
    assert loaded.rate == DF30 and loaded.drop_frame and loaded.start_frame == 539460
    proc = subprocess.run([sys.executable, "-m", "reelscore", "plan",
                           str(samples_dir / "2997fps-DFTC.aaf"), "--no-check-media"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "scored 05:00:00;00-" in proc.stdout and "drop frame" in proc.stdout


def test_fcp7_and_fcpx_flags(samples_dir, tmp_path):
    from reelscore.timeline import _fcpx_drop_frame

    assert not load_edit(samples_dir / "premiere_example.xml").drop_frame  # 30 fps, NDF
    # The fcpx adapter keeps no tcFormat (and truncates 29.97 to 29, OTIO issue #1661), so the
    # project sequence's flag is read from the file.
    text = (samples_dir / "fcpx_project.fcpxml").read_text()
    for fmt, want in (("DF", True), ("NDF", False)):
        path = tmp_path / f"{fmt}.fcpxml"
        path.write_text(text.replace('tcStart="0s" tcFormat="NDF" audioLayout',
                                     f'tcStart="0s" tcFormat="{fmt}" audioLayout'))
        assert _fcpx_drop_frame(path) is want
        assert load_edit(path).drop_frame is False  # 30 fps: no drop frame whatever it says


def test_fcp7_metadata_and_otio_inference():
    tl = build_timeline([[("clip", Path("/x.mov"), 1, 0, 100)]], DF30, start_frame=REC)
    assert normalise(tl).drop_frame  # nothing recorded: OTIO infers drop frame at 29.97
    tl.metadata["fcp_xml"] = {"timecode": {"displayformat": "NDF"}}
    assert not normalise(tl).drop_frame
    assert not normalise(build_timeline([[("clip", Path("/x.mov"), 1, 0, 100)]], Fraction(25),
                                        start_frame=90000)).drop_frame


# ------------------------------------------------------------------ shown and typed by the flag


def test_edl_labels_round_trip_through_plan_and_range(tmp_path):
    edl = _edl(tmp_path / "cut.edl", EVENTS)

    def plan(*extra: str) -> dict:
        proc = subprocess.run([sys.executable, "-m", "reelscore", "plan", str(edl),
                               "--no-check-media", "--json", "--min-scene", "1", *extra],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    whole = plan()
    assert whole["drop_frame"] is True
    assert [s["range"]["record_in"] for s in whole["scenes"]] == [otio_df(r, DF30) for _, r, _ in EVENTS]
    second = whole["scenes"][1]["range"]
    for typed in ((second["record_in"], second["record_out"]),
                  (second["record_in"].replace(";", ":"), second["record_out"].replace(";", ":"))):
        part = plan("--range", *typed)
        assert part["range"]["start"] + part["start_frame"] == otio_frames(second["record_in"], DF30)
        assert part["range"]["duration"] == 700
        assert (part["range"]["record_in"], part["range"]["record_out"]) == (
            second["record_in"], second["record_out"])


def test_bad_ranges_are_refused_with_the_nearest_valid_values():
    tl = build_timeline([[("clip", Path("/x.mov"), 1, 0, 3000)]], DF30, start_frame=REC)
    loaded = normalise(tl)
    picture = build_picture(loaded.timeline, DF30)

    def refused(a: str, b: str) -> str:
        with pytest.raises(RangeError) as info:
            scored_range(loaded.timeline, picture, DF30, loaded.start_frame, a, b)
        return str(info.value)

    text = refused("01:01:00;00", "01:01:10;00")
    assert "does not exist" in text and "01:00:59;29 and 01:01:00;02" in text
    text = refused("00:59:00;02", "01:00:10;00")
    assert f"runs 01:00:00;00 to {otio_df(REC + 3000, DF30)}" in text
    assert "nearest is --range 01:00:00;00 01:00:10;00" in text
    text = refused("01:00:10;00", "01:00:05;00")
    assert "empty or reversed" in text


def test_range_scores_exactly_the_frames_of_the_drop_frame_labels(tmp_path, coded_video):
    start = otio_frames("01:00:50;00", DF30)
    movie = coded_video(frames=700, rate=DF30, source_id=4, gop=30)
    tl = build_timeline([[("clip", movie, 4, 0, 650)]], DF30, start_frame=start)
    planned = plan_edit(normalise(tl), ScoreSettings(range_in="01:00:55;00",
                                                     range_out="01:01:05;00"))
    first, end = otio_frames("01:00:55;00", DF30), otio_frames("01:01:05;00", DF30)
    assert end - first == 298  # ten seconds across a minute that drops two labels
    plan = planned.plan
    assert (plan.start_frame + plan.range.start, plan.range.duration) == (first, end - first)
    (video,) = plan.videos()
    out = tmp_path / "v.mp4"
    FFmpegRenderer(planned.loaded.timeline, planned.picture, planned.resolver).render_video(
        video, out, plan.encode)
    codes = read_codes(out)
    assert codes == [(4, first - start + k) for k in range(298)]


def test_timecode_override_shows_non_drop(tmp_path):
    loaded = load_edit(_edl(tmp_path / "cut.edl", EVENTS))
    assert loaded.set_timecode("ndf") is False
    picture = build_picture(loaded.timeline, DF30)
    lo, hi = scored_range(loaded.timeline, picture, DF30, loaded.start_frame,
                          "01:00:00:00", "01:00:10:00")
    assert loaded.start_frame + lo == 108000  # read as non-drop now
    plan = make_plan([SceneCut(lo, hi)], rate=DF30, start_frame=loaded.start_frame,
                     scene_policy="cuts", drop_frame=loaded.drop_frame)
    assert (plan.drop_frame, plan.range.record_in, plan.range.record_out) == (
        False, "01:00:00:00", "01:00:10:00")
    assert "non-drop, scored 01:00:00:00-01:00:10:00" in describe_plan(plan)[0]
    assert loaded.set_timecode("df") is True
    with pytest.raises(InputError, match=r"only at 29\.97 and 59\.94"):
        normalise(build_timeline([[("clip", Path("/x.mov"), 1, 0, 10)]], Fraction(25))
                  ).set_timecode("df")


def test_59_94_plan_labels():
    plan = make_plan([SceneCut(0, 240)], rate=DF60, start_frame=215784, scene_policy="cuts")
    assert plan.drop_frame and plan.range.record_in == "01:00:00;00"
    assert plan.range.record_out == otio_df(215784 + 240, DF60)


# ------------------------------------------------------------------------------- EDL write-back


@pytest.mark.parametrize("drop", [True, False])
def test_edl_write_back_says_fcm_and_reads_back_at_the_record_frames(tmp_path, drop):
    edl = _edl(tmp_path / "cut.edl", EVENTS)
    loaded = load_edit(edl)
    loaded.set_timecode(None if drop else "ndf")
    planned = plan_edit(loaded, ScoreSettings(min_scene_seconds=1), check_media=False)
    plan = planned.plan.model_copy(update={"drop_frame": drop})  # as the run's flag says
    wav = write_wav(tmp_path / "score.wav", plan.range.duration / float(DF30))
    scored = add_score_tracks(loaded, plan, [ScoreMedia(wav, "Score", "Score - reelscore",
                                                        {"job_id": "j1"})])
    out = tmp_path / "scored.edl"
    write_edit(scored, out)
    text = out.read_text().splitlines()
    assert text[1] == ("FCM: DROP FRAME" if drop else "FCM: NON-DROP FRAME")
    event = next(ln for ln in text if ln.startswith("001")).split()
    rec_in = plan.start_frame + plan.range.start
    want = otio_df(rec_in, DF30) if drop else frames_to_tc(rec_in, Fraction(30))
    assert event[6] == want and (";" in event[6]) is drop
    report = verify_written(out, scored, plan)
    assert report["score"][0]["record_in"] == want
    back = load_edit(out, rate=DF30)
    assert back.drop_frame is drop and back.start_frame == rec_in


# ------------------------------------------------------------------------------------ Resolve


@pytest.mark.parametrize("drop", [True, False])
def test_resolve_drop_frame_setting_reaches_the_range(media_cache, drop):
    from reelscore.resolve.connect import connect
    from reelscore.resolve.reader import read_timeline
    from reelscore.resolve.workflow import apply_marks
    from tests.fake_resolve import MARK_IN, MARK_OUT, build_cut

    cut = build_cut(media_cache / "resolve", DF30)
    cut.timeline.drop_frame = drop
    session = connect({"resolve": cut.resolve})
    project = session.project()
    ref = session.timeline(project)
    edit = read_timeline(ref, project=project, resolve=cut.resolve, use_export=False)
    assert edit.drop_frame is drop
    assert edit.start_timecode == (otio_df(cut.start, DF30) if drop else "01:00:00:00")
    loaded = edit.loaded()
    assert loaded.drop_frame is drop
    settings = apply_marks(ScoreSettings(), edit, ref)
    assert (";" in (settings.range_in or "")) is drop
    planned = plan_edit(loaded, settings, check_media=False)
    assert (planned.plan.range.start, planned.plan.range.end) == (MARK_IN, MARK_OUT + 1)
