"""Composition plans from the edit (pure): sections on the cuts, exact ms, limits, both shapes."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelscore.brief import SceneBrief
from reelscore.compose import (
    ComposeSettings,
    CompositionFile,
    check_limits,
    compose,
    composition_json,
    ms_at,
    read_composition,
)
from reelscore.composition_check import check_against_edit
from reelscore.draft import apply_draft
from reelscore.errors import InputError
from reelscore.musicplan import (
    CompositionPlan,
    GenerationChunk,
    MusicPrompt,
    SongSection,
    plan_model,
    plan_wire,
    sections_of,
)
from reelscore.plan import make_plan
from reelscore.scenes import SceneCut

R24 = Fraction(24)
NTSC = Fraction(24000, 1001)
HOUR24 = 86400  # 01:00:00:00 at 24 fps


def scenes_of(lengths: list[int], names: list[str] | None = None,
              notes: list[list[str]] | None = None) -> list[SceneCut]:
    out, pos = [], 0
    for i, n in enumerate(lengths):
        out.append(SceneCut(pos, pos + n, (names or [""] * len(lengths))[i],
                            list((notes or [[]] * len(lengths))[i])))
        pos += n
    return out


def plan_for(lengths, rate=R24, **kw):
    return make_plan(scenes_of(lengths, kw.pop("names", None), kw.pop("notes", None)), rate=rate,
                     start_frame=kw.pop("start_frame", HOUR24), scene_policy="markers",
                     timeline_name="Reel 1", **kw)


def boundaries_ms(plan) -> list[int]:
    acc, out = 0, []
    for s in sections_of(plan):
        out.append(acc)
        acc += s.duration_ms
    return out


def test_one_chunk_per_scene_named_and_styled_from_markers():
    sp = plan_for([5 * 24, 10 * 24, 8 * 24], names=["Open", "Chase", ""],
                  notes=[["calm, strings"], ["driving percussion; tense"], []])
    f = compose(sp, ComposeSettings(model_id="music_v2", description="cinematic, warm",
                                    tags=["orchestral"]))
    (req,) = f.requests
    plan = req.composition_plan
    assert isinstance(plan, CompositionPlan)
    chunks = plan.chunks
    assert all(isinstance(c, GenerationChunk) for c in chunks)
    assert [c.text for c in chunks] == ["[Open]", "[Chase]", "[Scene 3]"]  # type: ignore[union-attr]
    # music covers the request plus its handle: the last section holds the handle
    assert [c.duration_ms for c in chunks] == [5000, 10000, 8000]  # type: ignore[union-attr]
    first = chunks[1]
    assert isinstance(first, GenerationChunk)
    assert first.positive_styles == ["cinematic", "warm", "orchestral", "instrumental",
                                     "driving percussion", "tense"]
    wire = plan_wire(plan)
    assert set(wire) == {"chunks"}
    assert set(wire["chunks"][0]) == {"text", "duration_ms", "positive_styles", "negative_styles"}  # type: ignore[index]


def test_v1_music_prompt_shape_and_instrumental():
    sp = plan_for([6 * 24, 4 * 24], names=["A", "B"])
    f = compose(sp, ComposeSettings(model_id="music_v1", tags=["ambient"],
                                    negative_styles=["vocals"]))
    plan = f.requests[0].composition_plan
    assert isinstance(plan, MusicPrompt)
    wire = plan_wire(plan)
    assert set(wire) == {"positive_global_styles", "negative_global_styles", "sections"}
    assert wire["positive_global_styles"] == ["ambient", "instrumental"]
    assert wire["negative_global_styles"] == ["vocals"]
    assert wire["sections"] == [  # no lyric lines, no force_instrumental anywhere
        {"section_name": "A", "positive_local_styles": [], "negative_local_styles": [],
         "duration_ms": 6000, "lines": []},
        {"section_name": "B", "positive_local_styles": [], "negative_local_styles": [],
         "duration_ms": 4000, "lines": []},
    ]
    assert "force_instrumental" not in composition_json(f)


def test_json_round_trip_and_unknown_fields_refused():
    sp = plan_for([5 * 24, 7 * 24], rate=R24)
    for model in ("music_v1", "music_v2", "music_v2_5"):
        f = compose(sp, ComposeSettings(model_id=model))
        text = composition_json(f)
        assert read_composition(text, "plan.json") == f
    doc = json.loads(text)
    doc["requests"][0]["composition_plan"]["chunks"][0]["lyrics"] = "la"
    with pytest.raises(InputError, match=r"plan\.json.*\n.*chunks\.0\.generate\.lyrics: Extra"):
        read_composition(json.dumps(doc), "plan.json")


def test_short_scenes_merge_into_the_shorter_neighbour_with_names_joined():
    sp = plan_for([10 * 24, 2 * 24, 5 * 24, 30 * 24], names=["A", "B", "C", "D"])
    f = compose(sp, ComposeSettings())
    chunks = f.requests[0].composition_plan.chunks  # type: ignore[union-attr]
    assert [(c.text, c.duration_ms) for c in chunks] == [
        ("[A]", 10000), ("[B / C]", 7000), ("[D]", 30000)]


def test_long_scene_splits_at_the_inner_cut_nearest_an_even_split_that_fits():
    start = 20 * 24
    sp = plan_for([20 * 24, 200 * 24], names=["Intro", "Montage"])
    # 70 s would leave 130 s and 150 s is itself too long; 90 s fits and is nearest 100 s
    f = compose(sp, ComposeSettings(), cuts=[start + 70 * 24, start + 90 * 24, start + 150 * 24])
    chunks = f.requests[0].composition_plan.chunks  # type: ignore[union-attr]
    assert [(c.text, c.duration_ms) for c in chunks] == [
        ("[Intro]", 20000), ("[Montage (1/2)]", 90000), ("[Montage (2/2)]", 110000)]
    # no cut that fits: an even split
    f = compose(sp, ComposeSettings(), cuts=[start + 70 * 24])
    assert [c.duration_ms for c in f.requests[0].composition_plan.chunks] == [  # type: ignore[union-attr]
        20000, 100000, 100000]
    # even split on whole frames; ms still add up exactly
    f = compose(plan_for([250 * 24]), ComposeSettings())
    assert [c.duration_ms for c in f.requests[0].composition_plan.chunks] == [  # type: ignore[union-attr]
        83333, 83334, 83333]


@settings(max_examples=60, deadline=None)
@given(rate=st.sampled_from([NTSC, Fraction(30000, 1001), Fraction(25), Fraction(60000, 1001)]),
       seconds=st.lists(st.floats(min_value=0.2, max_value=150.0), min_size=1, max_size=40),
       start_frame=st.integers(0, 200_000))
def test_every_boundary_within_half_a_ms_of_its_cut_and_durations_add_up(rate, seconds, start_frame):
    lengths = [max(1, round(Fraction(s) * rate)) for s in seconds]
    if sum(lengths) < 3 * rate:
        lengths[-1] += round(3 * rate)
    sp = make_plan(scenes_of(lengths), rate=rate, start_frame=start_frame, scene_policy="cuts")
    f = compose(sp, ComposeSettings())
    cuts = {s.range.start for s in sp.scenes}
    for req in f.requests:
        views = sections_of(req.composition_plan)
        exact_total = Fraction(req.range.duration) * 1000 / rate
        assert sum(v.duration_ms for v in views) == ms_at(req.range.duration, rate)
        assert abs(sum(v.duration_ms for v in views) - exact_total) <= Fraction(1, 2)
        assert sum(v.duration_ms for v in views) <= 600_000
        acc = 0
        for v in views:
            assert 3000 <= v.duration_ms <= 120000
            acc += v.duration_ms
        # each inner boundary is a whole frame within half a ms of its exact time; scene
        # boundaries that survived merging are among them
        for b in boundaries_ms(req.composition_plan)[1:]:
            frame = round(Fraction(b) * rate / 1000)
            assert abs(Fraction(b) - Fraction(frame) * 1000 / rate) <= Fraction(1, 2)
        starts = {req.range.start + round(Fraction(b) * rate / 1000)
                  for b in boundaries_ms(req.composition_plan)}
        inside = {c for c in cuts if req.range.start <= c < req.range.end}
        # a boundary off the cuts is invented only inside a section that had to be split: the
        # cut-boundaries around it (a short scene merged into a neighbour included) lie > 120 s apart
        kept = sorted((starts & inside) | {req.range.end})
        for s in starts - inside:
            lo, hi = max(k for k in kept if k < s), min(k for k in kept if k > s)
            assert hi - lo > 120 * rate, (s, lo, hi)


def test_long_programme_one_plan_per_request_handle_in_the_last_section():
    sp = plan_for([60 * 24] * 25)  # 25 minutes
    f = compose(sp, ComposeSettings())
    assert len(f.requests) == len(sp.requests) >= 3
    for req, planned in zip(f.requests, sp.requests):
        views = sections_of(req.composition_plan)
        assert req.range.start == planned.range.start
        assert req.range.duration == planned.range.duration + planned.handle_frames
        assert sum(v.duration_ms for v in views) == ms_at(req.range.duration, R24) <= 600_000
    last_of_first = sections_of(f.requests[0].composition_plan)[-1]
    assert last_of_first.duration_ms == 60000 + ms_at(sp.requests[0].handle_frames, R24)


def test_more_sections_than_the_cap_merge_pairwise_and_say_so():
    sp = plan_for([5 * 24] * 40)
    f = compose(sp, ComposeSettings())
    views = sections_of(f.requests[0].composition_plan)
    assert len(views) == 30 and sum(v.duration_ms for v in views) == 200000
    assert f.notes == ["request r01: 40 scenes merged into 30 sections (at most 30 per plan)"]


def test_brief_overrides_names_and_adds_styles():
    sp = plan_for([5 * 24, 6 * 24], names=["A", "B"], notes=[["dark"], []])
    brief = {"s001": SceneBrief("s001", "Cold open", ["sparse piano"], ["drums"])}
    f = compose(sp, ComposeSettings(model_id="music_v1"))
    f2 = compose(sp, ComposeSettings(model_id="music_v1"), brief=brief)
    assert f.requests[0].composition_plan.sections[0].section_name == "A"  # type: ignore[union-attr]
    sec = f2.requests[0].composition_plan.sections[0]  # type: ignore[union-attr]
    assert (sec.section_name, sec.positive_local_styles, sec.negative_local_styles) == (
        "Cold open", ["sparse piano", "dark"], ["drums"])


def test_limits_name_the_section_and_its_record_timecode():
    sp = plan_for([5 * 24, 10 * 24, 6 * 24], names=["A", "B", "C"])
    f = compose(sp, ComposeSettings(model_id="music_v1"))
    doc = json.loads(composition_json(f))
    secs = doc["requests"][0]["composition_plan"]["sections"]
    secs[1]["duration_ms"], secs[2]["duration_ms"] = 14000, 2000
    secs[0]["lines"] = ["x" * 201]
    secs[0]["positive_local_styles"] = ["y" * 300]
    edited = read_composition(json.dumps(doc), "plan.json")
    with pytest.raises(InputError) as err:
        check_limits(edited)
    msg = str(err.value)
    assert 'request r01, section 3 "C" at 01:00:19:00: lasts 2000 ms; a section lasts 3000-120000 ms' in msg
    assert 'section 1 "A" at 01:00:00:00: line 1 has 201 characters; at most 200' in msg
    assert "has 300 characters; at most 200" in msg
    # a v2 plan in a file that says music_v1
    doc = json.loads(composition_json(compose(sp, ComposeSettings(model_id="music_v2"))))
    doc["requests"][0]["model_id"] = "music_v1"
    with pytest.raises(InputError, match="model music_v1 takes a MusicPrompt"):
        check_limits(read_composition(json.dumps(doc), "plan.json"))


def test_a_marker_note_too_long_for_a_style_is_refused_with_its_timecode():
    sp = plan_for([5 * 24, 6 * 24], notes=[[], ["z" * 250]])
    with pytest.raises(InputError, match=r'section 2 "Scene 2" at 01:00:05:00: style'):
        compose(sp, ComposeSettings())


def test_programme_shorter_than_a_section_is_refused():
    with pytest.raises(InputError, match=r"section 1 .* at 01:00:00:00: lasts 2000 ms"):
        compose(plan_for([2 * 24]), ComposeSettings())


def test_a_model_without_plans_is_refused():
    assert plan_model("music_v2_5") == "music_v2_5"
    with pytest.raises(InputError, match="model 'eleven_v3' does not take composition plans"):
        plan_model("eleven_v3")


def test_composition_file_is_strict():
    f = compose(plan_for([5 * 24]), ComposeSettings())
    doc = json.loads(composition_json(f))
    doc["extra"] = 1
    with pytest.raises(InputError, match="extra: Extra inputs are not permitted"):
        read_composition(json.dumps(doc), "plan.json")
    assert CompositionFile.model_validate(json.loads(composition_json(f))) == f


# --- a plan file against the edit, and drafted plans ------------------------------------------

def test_plan_file_matches_its_own_edit_and_survives_review_edits():
    sp = plan_for([5 * 24, 10 * 24, 6 * 24, 250 * 24], names=["A", "B", "C", "D"])
    f = compose(sp, ComposeSettings())
    check_against_edit(f, sp, source="plan.json")  # splits inside the long scene are allowed
    # a reviewer merges B and C and restyles: boundaries still on cuts
    doc = json.loads(composition_json(f))
    chunks = doc["requests"][0]["composition_plan"]["chunks"]
    chunks[1]["duration_ms"] += chunks[2]["duration_ms"]
    chunks[1]["positive_styles"] = ["brass"]
    del chunks[2]
    check_against_edit(read_composition(json.dumps(doc), "plan.json"), sp, source="plan.json")


def test_a_moved_cut_names_the_section_and_the_nearest_cut():
    f = compose(plan_for([5 * 24, 10 * 24, 6 * 24], names=["A", "B", "C"]), ComposeSettings())
    recut = plan_for([5 * 24 + 12, 10 * 24 - 12, 6 * 24], names=["A", "B", "C"])
    with pytest.raises(InputError, match="no longer matches") as err:
        check_against_edit(f, recut, source="plan.json")
    assert ('request r01, section 2 "B" at 01:00:05:00 (5000 ms into the request) starts on no '
            "cut; the nearest cut is 01:00:05:12") in str(err.value)
    assert "section 3" not in str(err.value)


def test_a_plan_for_another_edit_is_refused_with_timecodes():
    f = compose(plan_for([5 * 24, 10 * 24, 6 * 24]), ComposeSettings())
    longer = plan_for([5 * 24, 10 * 24, 8 * 24])
    with pytest.raises(InputError, match="is for another edit") as err:
        check_against_edit(f, longer, source="plan.json")
    assert ("it covers 01:00:00:00-01:00:21:00 (504 frames); this edit's scored range is "
            "01:00:00:00-01:00:23:00 (552 frames)") in str(err.value)
    more = plan_for([5 * 24, 4 * 24, 6 * 24, 6 * 24])  # same length, one more scene
    with pytest.raises(InputError, match=r"made from 3 scenes; this edit has 4; the first "
                                         r"difference is at 01:00:09:00"):
        check_against_edit(f, more, source="plan.json")
    other = make_plan(scenes_of([5 * 24, 10 * 24, 6 * 24]), rate=R24, start_frame=HOUR24,
                      scene_policy="markers", timeline_name="Reel 2")
    with pytest.raises(InputError, match="timeline 'Reel 1'; this edit is 'Reel 2'"):
        check_against_edit(f, other, source="plan.json")


def test_limits_are_checked_after_the_cuts():
    sp = plan_for([5 * 24, 10 * 24])
    doc = json.loads(composition_json(compose(sp, ComposeSettings())))
    doc["requests"][0]["composition_plan"]["chunks"][0]["text"] = "[" + "n" * 120 + "]"
    with pytest.raises(InputError, match="the name has 120 characters; at most 100"):
        check_against_edit(read_composition(json.dumps(doc), "plan.json"), sp)


def _chunk(text, ms, styles, neg=()):
    return GenerationChunk(text=text, duration_ms=ms, positive_styles=list(styles),
                           negative_styles=list(neg))


def test_a_draft_keeps_its_styles_on_the_cut_sections():
    drafted = CompositionPlan(chunks=[_chunk("[Verse]\nla la", 15000, ["folk", "guitar"]),
                                      _chunk("[Chorus]", 15000, ["big drums"], ["synth"])])
    cut = CompositionPlan(chunks=[_chunk("[A]", 9000, ["x", "instrumental"]),
                                  _chunk("[B]", 12000, ["y"]), _chunk("[C]", 10000, ["z"])])
    out = apply_draft(cut, drafted)
    assert isinstance(out, CompositionPlan)
    got = [(c.text, c.duration_ms, c.positive_styles, c.negative_styles) for c in out.chunks]  # type: ignore[union-attr]
    # drafted times scale to 31 s: Verse 0-15.5 s, Chorus 15.5-31 s; B overlaps Verse 6.5 s, Chorus 5.5 s
    assert got == [("[A]", 9000, ["folk", "guitar", "instrumental"], []),
                   ("[B]", 12000, ["folk", "guitar", "instrumental"], []),
                   ("[C]", 10000, ["big drums", "instrumental"], ["synth"])]


def test_a_v1_draft_on_a_v1_cut_and_a_v2_draft_on_a_v1_cut():
    sp = plan_for([5 * 24, 6 * 24], names=["A", "B"])
    cut = compose(sp, ComposeSettings(model_id="music_v1")).requests[0].composition_plan
    drafted = MusicPrompt(positive_global_styles=["lofi"], negative_global_styles=["vocals"],
                          sections=[SongSection(section_name="Intro", positive_local_styles=["soft"],
                                                negative_local_styles=[], duration_ms=30000,
                                                lines=["hello"])])
    assert plan_wire(apply_draft(cut, drafted)) == {
        "positive_global_styles": ["lofi", "instrumental"], "negative_global_styles": ["vocals"],
        "sections": [
            {"section_name": "A", "positive_local_styles": ["soft"], "negative_local_styles": [],
             "duration_ms": 5000, "lines": []},
            {"section_name": "B", "positive_local_styles": ["soft"], "negative_local_styles": [],
             "duration_ms": 6000, "lines": []}]}
    other = apply_draft(cut, CompositionPlan(chunks=[_chunk("[x]", 11000, ["harp"])]))
    assert isinstance(other, MusicPrompt)
    assert [s.positive_local_styles for s in other.sections] == [["harp"], ["harp"]]
    assert other.positive_global_styles == ["instrumental"]


def test_drop_frame_edits_get_drop_frame_labels_in_plans_and_refusals():
    """At 29.97 DF every label a compose step shows is the NLE's (checked against OTIO's own
    conversion): the plan file's request range, a moved cut, a broken limit."""
    import opentimelineio as otio

    rate = Fraction(30000, 1001)
    start = otio.opentime.from_timecode("00:59:59;00", 30000 / 1001).to_frames()

    def df(frame: int) -> str:
        return otio.opentime.to_timecode(otio.opentime.RationalTime(frame, 30000 / 1001), 30000 / 1001, True)

    sp = plan_for([150, 300, 180], rate=rate, start_frame=start, names=["A", "B", "C"])
    assert sp.drop_frame
    f = compose(sp, ComposeSettings(model_id="music_v1"))
    assert f.drop_frame and f.requests[0].range.record_in == df(start) == "00:59:59;00"
    recut = plan_for([150 + 12, 300 - 12, 180], rate=rate, start_frame=start,
                     names=["A", "B", "C"])
    with pytest.raises(InputError, match="no longer matches") as err:
        check_against_edit(f, recut, source="plan.json")
    assert f'section 2 "B" at {df(start + 150)} ' in str(err.value)
    assert f"the nearest cut is {df(start + 162)}" in str(err.value)
    doc = json.loads(composition_json(f))
    doc["requests"][0]["composition_plan"]["sections"][2]["lines"] = ["x" * 201]
    with pytest.raises(InputError) as err:
        check_limits(read_composition(json.dumps(doc), "plan.json"))
    assert f'section 3 "C" at {df(start + 450)}: line 1 has 201 characters' in str(err.value)
    assert ";" in df(start + 450)
