"""The visible picture (reelscore.picture) against the independent oracle, without rendering.

Random edits (cuts, gaps, dissolves and fades, speed, reverse, freeze frames, mixed rates,
disabled clips, nested stacks, up to three tracks) are built as OTIO timelines; every stack
frame's source frames and dissolve weights must match what tests/edits.py computes on its own.
The real sample files check what the walk reports and the conventions it follows.
"""

from __future__ import annotations

import functools
import random
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from reelscore.picture import Picture, build_picture
from reelscore.pipeline import ScoreSettings, plan_edit
from reelscore.scenes import Boundary, find_scenes, snap_to_transitions
from reelscore.timeline import LoadedEdit, load_edit, normalise
from tests.edits import Mix, build_timeline, oracle, record_length

SRC = Path("/nonexistent/src.mov")  # never opened: these tests do not render


@functools.cache
def _load(path: Path, rate: Fraction | None = None) -> LoadedEdit:
    """Sample edits are read once per session (the big AAF takes seconds); never mutated."""
    return load_edit(path, rate=rate)


def picture_frames(picture: Picture, start: int, end: int) -> list[object]:
    """The picture's answer in the oracle's terms: code, None or {code: weight}."""

    def code(clip: otio.schema.Clip, frame: int) -> tuple[int, int]:
        spec = clip.metadata["spec"]
        return int(spec["sid"]), frame - int(spec["origin"])

    out: list[object] = []
    for seg in picture.segments(start, end):
        if seg.parts:
            for i in range(seg.count):
                mix: dict[object, float] = {}
                for part in seg.parts:
                    w = part.weights[i]
                    if w <= 1e-12:
                        continue
                    key = None if part.clip is None else code(part.clip, part.frame(i))
                    mix[key] = mix.get(key, 0.0) + w
                if len(mix) == 1 and next(iter(mix)) is not None and abs(next(iter(mix.values())) - 1) < 1e-9:
                    out.append(next(iter(mix)))
                else:
                    out.append(mix)
        elif seg.clip is None:
            out.extend([None] * seg.count)
        else:
            out.extend(code(seg.clip, f) for f in seg.frames())
    return out


def assert_same(want: list[object], got: list[object], context: str = "") -> None:
    assert len(want) == len(got)
    for i, (w, g) in enumerate(zip(want, got)):
        if isinstance(w, Mix):
            assert isinstance(g, dict), f"{context} frame {i}: want blend {w}, got {g}"
            keys = {k for k, v in w.items() if v > 1e-9} | {k for k, v in g.items() if v > 1e-9}
            for k in keys:
                assert abs(w.get(k, 0.0) - g.get(k, 0.0)) < 1e-9, f"{context} frame {i}: {w} != {g}"
        else:
            assert w == g, f"{context} frame {i}: want {w}, got {g}"


def check(tracks, rate: Fraction = Fraction(24), disabled=None) -> Picture:
    tl = build_timeline(tracks, rate, disabled=disabled)
    picture = build_picture(normalise(tl).timeline, rate)
    end = max(sum(record_length(it, rate) for it in t) for t in tracks)
    assert_same(oracle(tracks, 0, end, disabled, rate=rate), picture_frames(picture, 0, end))
    return picture


# ------------------------------------------------------------------------ targeted cases


def test_dissolve_uses_handles_and_smpte_weights():
    tracks = [[("clip", SRC, 1, 100, 20), ("dissolve", 3, 5), ("clip", SRC, 2, 300, 20)]]
    pic = check(tracks)
    (seg,) = [s for s in pic.segments(0, 40) if s.parts]
    assert (seg.start, seg.count) == (17, 8)  # [cut - in, cut + out)
    incoming = seg.parts[0]
    assert [round(w, 6) for w in incoming.weights] == [round((k + 0.5) / 8, 6) for k in range(8)]
    # outgoing continues past its out point (119 -> 120..124), incoming starts 3 before its in
    assert seg.parts[1].frame(7) == 124
    assert incoming.frame(0) == 297
    assert pic.transition_spans(0, 40) == [(17, 25)]


def test_edl_style_dissolve_and_split_b_clip_is_one_edit():
    # EDL: in_offset 0, out_offset N, the B clip split in two at the transition's end.
    tracks = [[("clip", SRC, 1, 100, 10), ("dissolve", 0, 6), ("clip", SRC, 2, 500, 6),
               ("clip", SRC, 2, 506, 10)]]
    pic = check(tracks)
    assert pic.edit_points(0, 26) == [13]  # dominant switch inside the dissolve only
    scenes = find_scenes(otio.schema.Timeline(), pic, policy="cuts", start=0, end=26,
                         start_frame=0, min_seconds=0)
    assert [s.start for s in scenes] == [0, 13]  # midpoint of [10, 16)


def test_fades_against_black_and_against_lower_tracks():
    tracks = [
        [("clip", SRC, 1, 100, 60)],
        [("gap", 10), ("dissolve", 0, 8), ("clip", SRC, 2, 200, 20), ("dissolve", 4, 4),
         ("gap", 30)],
        [("gap", 50), ("dissolve", 2, 2), ("clip", SRC, 3, 50, 10)],
    ]
    check(tracks)


def test_speed_reverse_freeze_mixed_rates():
    tracks = [[
        ("clip", SRC, 1, 100, 12, {"speed": 2.0}),
        ("clip", SRC, 1, 400, 12, {"speed": 0.5}),
        ("clip", SRC, 2, 100, 10, {"speed": -1.0}),
        ("clip", SRC, 2, 300, 10, {"speed": -0.5}),
        ("clip", SRC, 2, 500, 7, {"speed": -2.0}),
        ("clip", SRC, 3, 77, 9, {"freeze": True}),
        ("clip", SRC, 4, 250, 50, {"rate": Fraction(25)}),
        ("clip", SRC, 5, 90, 40, {"rate": Fraction(30)}),
    ]]
    pic = check(tracks)
    # reverse 100 % of 10 frames from 100: 109 down to 100 (Avid's anchor)
    seg = next(s for s in pic.segments(0, 200) if s.clip is not None and s.step == -1)
    assert seg.backward
    assert seg.frames() == list(range(109, 99, -1))


def test_mixed_rates_ntsc():
    rate = Fraction(24000, 1001)
    check([[("clip", SRC, 1, 10, 50, {"rate": Fraction(30000, 1001)}),
            ("clip", SRC, 2, 0, 40)]], rate)


def test_nested_stacks_trims_speed_and_dissolve_into_a_nest():
    inner = [[("clip", SRC, 5, 100, 40)], [("gap", 10), ("clip", SRC, 6, 0, 12)]]
    tracks = [[("clip", SRC, 1, 100, 20), ("dissolve", 4, 4), ("nest", inner, 5, 20),
               ("nest", inner, 0, 15, {"speed": 2}), ("nest", inner, 8, 6, {"freeze": True})]]
    check(tracks)


def test_disabled_clips_and_tracks_are_transparent():
    tracks = [[("clip", SRC, 1, 100, 40)],
              [("gap", 5), ("clip", SRC, 2, 10, 20, {"disabled": True}), ("clip", SRC, 3, 0, 10)]]
    check(tracks)
    tl = build_timeline(tracks, Fraction(24))
    tl.tracks[1].enabled = False
    pic = build_picture(normalise(tl).timeline, Fraction(24))
    assert picture_frames(pic, 0, 40) == [(1, 100 + i) for i in range(40)]


def _random_track(rng: random.Random, depth: int) -> list:
    items: list = []
    while len(items) < rng.randint(2, 6):
        if items and items[-1][0] != "dissolve" and rng.random() < 0.3:
            items.append(("dissolve", rng.randint(0, 3), rng.randint(1, 3)))
            continue
        r = rng.random()
        if r < 0.15:
            items.append(("gap", rng.randint(3, 12)))
        elif r < 0.25 and depth == 0:
            inner = [_random_track(rng, 1) for _ in range(rng.randint(1, 2))]
            opts = rng.choice([{}, {}, {"speed": 2}, {"freeze": True}])
            items.append(("nest", inner, rng.randint(0, 6), rng.randint(8, 20), opts))
        else:
            frames = rng.randint(8, 24)
            opts = rng.choice([{}, {}, {}, {"speed": 2.0}, {"speed": 0.5}, {"speed": 3.0},
                               {"speed": -1.0}, {"speed": -2.0}, {"freeze": True},
                               {"rate": Fraction(25)}, {"rate": Fraction(48)},
                               {"disabled": True}])
            if opts.get("speed") == -0.5 and frames % 2:
                frames += 1
            items.append(("clip", SRC, rng.randint(1, 9), rng.randint(200, 400), frames, opts))
    while items and items[-1][0] == "dissolve" and rng.random() < 0.5:
        items.pop()
    # Keep transitions inside their neighbours (OTIO requires it): out + next in <= length.
    for i, it in enumerate(items):
        if it[0] != "dissolve":
            continue
        prev_len = record_length(items[i - 1], Fraction(24)) if i > 0 else 99
        next_len = record_length(items[i + 1], Fraction(24)) if i + 1 < len(items) else 99
        items[i] = ("dissolve", min(it[1], prev_len // 2), min(it[2], next_len // 2))
    return items


@pytest.mark.parametrize("seed", range(60))
def test_random_edits_match_the_oracle(seed):
    rng = random.Random(seed)
    tracks = [_random_track(rng, 0) for _ in range(rng.randint(1, 3))]
    check(tracks)


# ------------------------------------------------------------------------------ samples


def test_nested_example_sample_semantics(samples_dir):
    loaded = load_edit(samples_dir / "nested_example.otio")
    pic = build_picture(loaded.timeline, loaded.rate)
    by_name: dict[str, list[int]] = {}
    for seg in pic.segments(0, pic.duration):
        assert seg.clip is not None
        by_name.setdefault(seg.clip.name, []).extend(seg.frames())
    # Stack trimmed to 31 of its clip's 37 frames, from the clip's own start 373.
    assert by_name["Clip Inside A Stack 1"] == list(range(373, 404))
    # LinearTimeWarp 0.8545 on the stack: 29 record frames over ~24.8 media frames.
    warped = by_name["Clip Inside A Stack 2"]
    assert len(warped) == 29 and warped[0] == 429 and warped[-1] == 429 + 23
    assert all(b - a in (0, 1) for a, b in zip(warped, warped[1:]))
    # FreezeFrame on the nested track: its one frame held for the track's 4 frames.
    assert by_name["Clip Inside A Track"] == [471] * 4
    assert "1 freeze frame" in pic.honoured and "1 speed change" in pic.honoured


def test_reverse_anchor_matches_avid_time_warp_sample(samples_dir):
    """Avid's AAF: a reversed clip's source start is the *low* end of the span it plays.

    Every reversed clip in time_warp_test whose span fits the 120-frame media stays inside it
    with our anchor; the other anchor (start at source in, go back) leaves the media.
    """
    loaded = _load(samples_dir / "time_warp_test.avid_media_composer.aaf")
    pic = build_picture(loaded.timeline, loaded.rate)
    reversed_clips = {}
    for seg in pic.segments(0, pic.duration):
        if seg.clip is not None and seg.step < 0:
            reversed_clips.setdefault(id(seg.clip), (seg.clip, []))[1].extend(seg.frames())
    assert len(reversed_clips) == 10
    outside_other_anchor = 0
    for clip, frames in reversed_clips.values():
        sr = clip.source_range
        scalar = clip.effects[0].time_scalar
        span = sr.duration.value * -scalar
        if span > 120:
            continue  # "Reverse 200%" of 100 frames needs more media than exists
        assert min(frames) >= 86400 and max(frames) <= 86519, (clip.markers[0].name, frames)
        assert frames[0] > frames[-1]
        assert 0 <= frames[-1] - sr.start_time.value < max(1, -scalar)  # ends at the span's start
        if sr.start_time.value - span + 1 < 86400:
            outside_other_anchor += 1
    assert outside_other_anchor >= 2


@pytest.mark.parametrize("name,rate,ignored", [
    ("transition.otio", None, []),
    ("transition_test.otio", None, []),
    ("clip_example.otio", None, []),
    ("nested_example.otio", None, []),
    ("preflattened.otio", None, []),
    ("multitrack.otio", None, []),
    ("dissolve_test.edl", Fraction(24), []),
    ("wipe_test.edl", Fraction(24), ["(SMPTE_Wipe) rendered as a dissolve"]),
    ("speed_effects_small.edl", Fraction(24), []),
    ("misc_speed_effects.aaf", None, []),
    ("time_warp_test.avid_media_composer.aaf", None, []),
    ("transitions.aaf", None, []),
    ("effects.otio", None, ["Resolve Effect"]),
])
def test_samples_plan_and_report(samples_dir, name, rate, ignored):
    loaded = _load(samples_dir / name, rate)
    planned = plan_edit(loaded, ScoreSettings(min_scene_seconds=0.1), check_media=False)
    plan = planned.plan
    text = "\n".join(plan.ignored)
    for needle in ignored:
        assert needle in text
    if not ignored:
        assert plan.ignored == []
    # No scene boundary inside a transition except at its midpoint.
    spans = planned.picture.transition_spans(plan.range.start, plan.range.end)
    for scene in plan.scenes[1:]:
        b = scene.range.start
        for s, e in spans:
            assert not s < b < e or b == s + (e - s) // 2, (name, b, (s, e))


def test_multitrack_flattens_like_preflattened(samples_dir):
    """multitrack.otio composited == OTIO's own preflattened.otio, frame by frame."""
    multi = load_edit(samples_dir / "multitrack.otio")
    flat = load_edit(samples_dir / "preflattened.otio")
    a = build_picture(multi.timeline, multi.rate)
    b = build_picture(flat.timeline, flat.rate)
    end = min(a.duration, b.duration)

    def frames(pic: Picture) -> list[object]:
        out: list[object] = []
        for seg in pic.segments(0, end):
            out.extend([(seg.clip.name, f) for f in seg.frames()] if seg.clip else [None] * seg.count)
        return out

    assert frames(a) == frames(b)


def test_boundary_inside_transition_moves_to_midpoint():
    bounds = [Boundary(5), Boundary(12, "inside"), Boundary(20), Boundary(30)]
    out = snap_to_transitions(bounds, [(10, 17), (20, 26)])
    assert [(b.frame, b.name) for b in out] == [(5, ""), (13, "inside"), (20, ""), (30, "")]


def test_opaque_effects_are_reported_not_dropped():
    tracks = [[("clip", SRC, 1, 100, 20, {"effect": "Blur"}),
               ("clip", SRC, 2, 100, 20, {"speed": 2.0})]]
    pic = build_picture(normalise(build_timeline(tracks, Fraction(24))).timeline, Fraction(24))
    assert pic.ignored == ["Effect 'Blur' on Clip 'src@100' ignored"]
    assert pic.honoured == ["1 speed change"]
