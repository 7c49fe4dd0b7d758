"""Recut change lists (reelscore.recut) and kept music (reelscore.recut_keep), without media.

Old and new cuts are built as OTIO timelines in memory (tests/edits.py): one video track of clips
on ExternalReference sources that are never opened. Each clip is a scene (``--scenes cuts``).
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reelscore.errors import InputError
from reelscore.picture import build_picture
from reelscore.plan import make_plan
from reelscore.recut import ChangeList, CutFingerprint, SceneChange, fingerprint, match_cuts
from reelscore.recut_keep import (
    RecutPlan,
    change_list_text,
    cost_text,
    frame_to_sample,
    kept_ranges,
)
from reelscore.scenes import check_tiling, find_scenes
from reelscore.timecode import frames_to_tc, tc_to_frames
from reelscore.timeline import load_edit
from tests.edits import build_timeline

Shot = tuple[str, int, int]  # source name, source in, frames (at the source's rate)


def cut(shots: list[Shot], rate: Fraction = Fraction(24), *, start_frame: int = 0,
        src_rate: Fraction | None = None, min_seconds: float = 0.01) -> CutFingerprint:
    """A one-track edit of *shots*, its scenes at every cut, fingerprinted."""
    opts = {} if src_rate is None else {"rate": src_rate}
    items = [("clip", Path(f"/media/{name}.mov"), i, src_in, frames, opts)
             for i, (name, src_in, frames) in enumerate(shots)]
    return cut_items(items, rate, start_frame=start_frame, min_seconds=min_seconds)


def cut_items(items: list[tuple], rate: Fraction = Fraction(24), *, start_frame: int = 0,
              min_seconds: float = 0.01) -> CutFingerprint:
    """Like :func:`cut`, from tests/edits.py items (gaps, dissolves, speed, freeze)."""
    tl = build_timeline([items], rate, start_frame=start_frame)
    pic = build_picture(tl)
    scenes = find_scenes(tl, pic, policy="cuts", start=0, end=pic.duration,
                         start_frame=start_frame, min_seconds=min_seconds)
    check_tiling(scenes, 0, pic.duration)
    return fingerprint(pic, scenes, start_frame=start_frame)


A, B, C, D = ("A", 100, 48), ("B", 200, 36), ("C", 300, 60), ("D", 400, 24)


def kinds(cl: ChangeList) -> list[tuple[str, str | None, str | None]]:
    return [(c.kind, c.new_id, c.old_id) for c in cl.changes]


def by_new(cl: ChangeList, new_id: str) -> SceneChange:
    return next(c for c in cl.changes if c.new_id == new_id)


def tiles(plan: RecutPlan, lo: int, hi: int) -> None:
    spans = sorted([(k.new_start, k.new_end) for k in plan.kept]
                   + [(g.new_start, g.new_end) for g in plan.generate])
    assert spans[0][0] == lo and spans[-1][1] == hi
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(spans, spans[1:]))


def test_no_change_keeps_everything_and_generates_nothing() -> None:
    old = cut([A, B, C])
    cl = match_cuts(old, cut([A, B, C]))
    assert kinds(cl) == [("unchanged", f"s00{i}", f"s00{i}") for i in (1, 2, 3)]
    assert not any(c.moved or c.head_frames or c.tail_frames for c in cl.changes)
    plan = kept_ranges(cl, handle_frames=12, join_frames=12)
    assert plan.generate == []
    [k] = plan.kept  # one run: the old music continues across the unchanged cuts
    assert (k.new_start, k.new_end, k.old_start, k.old_end) == (0, 144, 0, 144)
    assert k.new_samples == (0, 144 * 2000) and k.old_sample_start == 0
    assert k.scene_ids == ["s001", "s002", "s003"]
    assert plan.cost.generate_frames == 0 and plan.cost.kept_frames == plan.cost.total_frames


def test_moved_and_reordered_scenes_keep_their_old_music() -> None:
    cl = match_cuts(cut([A, B, C, D]), cut([A, C, D, B]))
    assert kinds(cl) == [("unchanged", "s001", "s001"), ("unchanged", "s002", "s003"),
                         ("unchanged", "s003", "s004"), ("reordered", "s004", "s002")]
    c_ = by_new(cl, "s002")
    assert c_.moved and c_.offset == Fraction(36, 24)  # C sat 36 frames later in the old cut
    assert (c_.new_start, c_.new_end, c_.old_start, c_.old_end) == (48, 108, 84, 144)
    b_ = by_new(cl, "s004")
    assert (b_.new_start, b_.old_start) == (132, 48) and b_.offset == Fraction(48 - 132, 24)
    plan = kept_ranges(cl, handle_frames=6)
    assert [(k.new_start, k.new_end, k.old_start, k.old_end) for k in plan.kept] == [
        (0, 48, 0, 48), (48, 132, 84, 168), (132, 168, 48, 84)]
    assert plan.generate == [] and plan.stretches == ["kept"] * 3
    # Old music around each kept range, for the crossfades on the broken joins.
    assert [(k.old_before, k.old_after) for k in plan.kept] == [(0, 6), (6, 0), (6, 6)]
    joined = kept_ranges(cl, handle_frames=6, join_frames=12)
    assert [(g.new_start, g.new_end, g.reasons) for g in joined.generate] == [
        (42, 54, ["join"]), (126, 138, ["join"])]
    assert all((g.handle_before, g.handle_after) == (6, 6) for g in joined.generate)
    tiles(joined, 0, 168)


def test_trimmed_head_and_tail() -> None:
    old = cut([A, B, C])
    new = cut([("A", 110, 38), ("B", 200, 28), C])
    cl = match_cuts(old, new)
    assert kinds(cl) == [("trimmed", "s001", "s001"), ("trimmed", "s002", "s002"),
                         ("unchanged", "s003", "s003")]
    a, b, c = cl.changes
    assert (a.head_frames, a.tail_frames, a.moved) == (10, 0, True)
    assert (b.head_frames, b.tail_frames) == (0, 8)
    assert c.moved and (c.new_start, c.old_start) == (66, 84)
    plan = kept_ranges(cl)
    # A's trimmed end runs into B's head exactly as in the old cut: one kept range.
    assert [(k.new_start, k.new_end, k.old_start, k.old_end) for k in plan.kept] == [
        (0, 66, 10, 76), (66, 126, 84, 144)]
    assert plan.kept[0].old_sample_start == 10 * 2000
    assert plan.generate == []
    regen = kept_ranges(cl, regenerate_trimmed=True, handle_frames=12)
    assert [(g.new_start, g.new_end, g.reasons, g.handle_before, g.handle_after)
            for g in regen.generate] == [(0, 66, ["new"], 0, 12)]
    assert regen.cost.generate_frames == 66 and regen.cost.handle_frames == 12


def test_extended_head_is_generated_with_a_handle_into_the_kept_music() -> None:
    cl = match_cuts(cut([A, B]), cut([("A", 90, 58), B]))
    a = cl.changes[0]
    assert (a.kind, a.head_frames, a.tail_frames) == ("trimmed", -10, 0)
    assert (a.keep_start, a.keep_end) == (10, 58)
    plan = kept_ranges(cl, handle_frames=12)
    assert [(g.new_start, g.new_end, g.reasons, g.handle_before, g.handle_after)
            for g in plan.generate] == [(0, 10, ["extended"], 0, 12)]
    assert [(k.new_start, k.new_end, k.old_start) for k in plan.kept] == [(10, 94, 0)]


def test_inserted_scene_is_the_only_thing_generated() -> None:
    cl = match_cuts(cut([A, B, C]), cut([A, ("X", 0, 30), B, C]))
    assert [c.kind for c in cl.changes] == ["unchanged", "new", "unchanged", "unchanged"]
    plan = kept_ranges(cl, handle_frames=12)
    assert [(g.new_start, g.new_end, g.scene_ids, g.handle_before, g.handle_after)
            for g in plan.generate] == [(48, 78, ["s002"], 12, 12)]
    assert [(k.new_start, k.old_start, k.old_end) for k in plan.kept] == [(0, 0, 48), (78, 48, 144)]
    assert plan.stretches == ["kept", "generate", "kept"]
    assert (plan.cost.kept_frames, plan.cost.generate_frames, plan.cost.total_frames) == (144, 30, 174)
    assert cost_text(plan) == ("kept 6.00 s of old music; generate 1.25 s in 1 stretch(es), "
                               "2.25 s with handles; a full rescore generates 7.25 s")


def test_deleted_scene_is_listed_and_its_join_opened() -> None:
    cl = match_cuts(cut([A, B, C]), cut([A, C]))
    assert kinds(cl) == [("unchanged", "s001", "s001"), ("unchanged", "s002", "s003"),
                         ("deleted", None, "s002")]
    plan = kept_ranges(cl, join_frames=24, handle_frames=12)
    assert [(g.new_start, g.new_end, g.reasons, g.scene_ids) for g in plan.generate] == [
        (36, 60, ["join"], ["s001", "s002"])]
    assert [(k.new_start, k.new_end, k.old_start, k.old_end) for k in plan.kept] == [
        (0, 36, 0, 36), (60, 108, 96, 144)]
    tiles(plan, 0, 108)


def test_reorder_and_a_shot_used_twice() -> None:
    cl = match_cuts(cut([A, B, C]), cut([C, A, B]))
    assert kinds(cl) == [("reordered", "s001", "s003"), ("unchanged", "s002", "s001"),
                         ("unchanged", "s003", "s002")]
    twice = match_cuts(cut([A, B]), cut([A, B, A]))
    assert kinds(twice) == [("unchanged", "s001", "s001"), ("unchanged", "s002", "s002"),
                            ("reordered", "s003", "s001")]
    plan = kept_ranges(twice)
    assert [(k.new_start, k.old_start, k.old_end) for k in plan.kept] == [(0, 0, 84), (84, 0, 48)]
    # The old cut used A twice; the new one once, after B: the later copy is the one kept.
    again = match_cuts(cut([A, B, A]), cut([B, A]))
    assert kinds(again) == [("unchanged", "s001", "s002"), ("unchanged", "s002", "s003"),
                            ("deleted", None, "s001")]
    assert [(k.new_start, k.new_end, k.old_start) for k in kept_ranges(again).kept] == [(0, 84, 48)]


def test_scenes_merged_differently_match_across_old_scene_boundaries() -> None:
    short = ("S", 500, 6)
    # Three old scenes; in the new version the short shot is merged into B (min 0.5 s).
    cl = match_cuts(cut([A, short, B]), cut([A, short, B], min_seconds=0.5))
    assert [(c.kind, c.old_ids) for c in cl.changes] == [("unchanged", ["s001"]),
                                                         ("unchanged", ["s002", "s003"])]
    [k] = kept_ranges(cl).kept
    assert (k.new_start, k.new_end, k.old_start, k.old_scene_ids) == (0, 90, 0,
                                                                     ["s001", "s002", "s003"])
    # The other way round, with the short shot dropped: B is the old merged scene, head trimmed.
    cl = match_cuts(cut([A, short, B], min_seconds=0.5), cut([A, B]))
    b = cl.changes[1]
    assert (b.kind, b.old_ids, b.head_frames, b.tail_frames) == ("trimmed", ["s002"], 6, 0)
    assert [(k.new_start, k.old_start) for k in kept_ranges(cl).kept] == [(0, 0), (48, 54)]


def test_a_new_shot_merged_into_a_scene_is_generated_the_rest_kept() -> None:
    cl = match_cuts(cut([A, B]), cut([("X", 0, 6), A, B], min_seconds=0.5))
    a = cl.changes[0]
    assert (a.kind, a.new_start, a.new_end, a.head_frames) == ("trimmed", 0, 54, -6)
    plan = kept_ranges(cl, handle_frames=12)
    assert [(g.new_start, g.new_end, g.reasons, g.handle_after) for g in plan.generate] == [
        (0, 6, ["extended"], 12)]
    assert [(k.new_start, k.new_end, k.old_start) for k in plan.kept] == [(6, 90, 0)]


def test_long_cut_from_one_source() -> None:
    """1500 shots of one reel (a flattened movie): runs are looked up by media span, not all
    compared with all (29 minutes of picture: 3.5 s to match on a 2-core machine at load 26)."""
    shots = [("reel", 37 * i % 2000 * 50, 20 + i % 17) for i in range(1500)]
    old = cut(shots)
    new = cut(shots[:700] + shots[701:1200] + [("X", 0, 30)] + shots[1200:])
    cl = match_cuts(old, new)
    plan = kept_ranges(cl, join_frames=12)
    assert [c.kind for c in cl.changes].count("unchanged") == 1499
    assert [c.old_id for c in cl.of_kind("deleted")] == ["s701"]
    assert [(g.reasons, g.scene_ids) for g in plan.generate] == [
        (["join"], ["s700", "s701"]), (["new"], ["s1200"])]


def test_gaps_speed_reverse_and_freeze_are_part_of_the_picture() -> None:
    def clip(name: str, src_in: int, frames: int, **opts: object) -> tuple:
        return ("clip", Path(f"/media/{name}.mov"), 0, src_in, frames, opts)

    old_items = [clip("A", 100, 48), ("gap", 12), clip("B", 200, 24, speed=-1),
                 clip("C", 300, 24, speed=0.5), clip("D", 400, 20, freeze=True)]
    old = cut_items(old_items)
    assert [r.source for r in old.scenes[0].runs] == ["ExternalReference:A.mov", ""]
    # The same edit moved by a new opening shot: every scene still matches where it was.
    cl = match_cuts(old, cut_items([clip("X", 0, 10), *old_items]))
    assert [(c.kind, c.old_id, c.offset) for c in cl.changes] == [
        ("new", None, 0)] + [("unchanged", f"s00{i}", Fraction(-10, 24)) for i in (1, 2, 3, 4)]
    # A longer gap, B reversed the other way, C at another speed, D frozen on another frame.
    changed = [clip("A", 100, 48), ("gap", 14), clip("B", 200, 24),
               clip("C", 300, 24, speed=0.25), clip("D", 401, 20, freeze=True)]
    cl = match_cuts(old, cut_items(changed))
    assert [(c.kind, c.head_frames, c.tail_frames) for c in cl.changes[:5]] == [
        ("trimmed", 0, -2), ("new", 0, 0), ("new", 0, 0), ("new", 0, 0), ("deleted", 0, 0)]


SAMPLES = Path("/work/shared/otio_samples")


def edl_cut(path: Path) -> CutFingerprint:
    edit = load_edit(path, rate=Fraction(24))
    pic = build_picture(edit.timeline)
    scenes = find_scenes(edit.timeline, pic, policy="cuts", start=0, end=pic.duration,
                         start_frame=edit.start_frame, min_seconds=0.5)
    return fingerprint(pic, scenes, start_frame=edit.start_frame)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="sample edits not available")
def test_real_edl_with_dissolves_ripple_deleted_and_renumbered(tmp_path: Path) -> None:
    """dissolve_test_4.edl, and a new version without event 002: later events ripple up 51
    frames and are renumbered (so EDL event numbers cannot be the identity: reels are)."""
    rate = Fraction(24)
    lines = (SAMPLES / "dissolve_test_4.edl").read_text().splitlines()
    out: list[str] = []
    for line in lines:
        event = re.match(r"^(\d{3})(\s.*?)(\S+) (\S+)$", line)
        if event is None:
            out.append(line)
            continue
        number, middle, rec_in, rec_out = event.groups()
        if number == "002":
            continue
        if number > "002":
            number = f"{int(number) - 1:03d}"
            rec_in, rec_out = (frames_to_tc(tc_to_frames(tc, rate) - 51, rate)
                               for tc in (rec_in, rec_out))
        out.append(f"{number}{middle}{rec_in} {rec_out}")
    new_path = tmp_path / "v2.edl"
    new_path.write_text("\n".join(out) + "\n")
    old, new = edl_cut(SAMPLES / "dissolve_test_4.edl"), edl_cut(new_path)
    assert len(old.scenes) == 6 and len(new.scenes) == 5
    cl = match_cuts(old, new)
    # Event 001 now dissolves into ABC0020: the frames of 001 past its old out point, shown
    # while it dominates the dissolve, are new picture; the rest is the old picture, moved.
    assert kinds(cl) == [("trimmed", "s001", "s001")] + [
        ("unchanged", f"s00{i}", f"s00{i + 1}") for i in (2, 3, 4, 5)] + [("deleted", None, "s002")]
    assert (cl.changes[0].head_frames, cl.changes[0].tail_frames) == (0, -17)
    assert all(c.offset == Fraction(51, 24) for c in cl.changes[1:5])
    plan = kept_ranges(cl, join_frames=12, handle_frames=12)
    assert [(g.new_start, g.new_end, g.reasons, g.handle_before, g.handle_after)
            for g in plan.generate] == [(30, 47, ["extended"], 12, 12)]
    assert [(k.new_start, k.new_end, k.old_start, k.old_end) for k in plan.kept] == [
        (0, 30, 0, 30), (47, 426, 98, 477)]
    text = change_list_text(cl)
    assert "01:04:15:19" in text.splitlines()[3]  # old s003's record in, before the ripple


def test_sample_exact_mapping_at_ntsc_rates() -> None:
    rate = Fraction(30000, 1001)
    cl = match_cuts(cut([A, B, C], rate), cut([A, C], rate))
    plan = kept_ranges(cl)
    second = plan.kept[1]
    assert (second.new_start, second.old_start) == (48, 84)
    assert second.new_samples == (frame_to_sample(48, rate), frame_to_sample(108, rate))
    assert second.new_samples[0] == 76876  # 48 · 48000 · 1001 / 30000 = 76876.8
    assert second.old_sample_start == 134534  # 84 · 1601.6 = 134534.4
    assert frame_to_sample(1, Fraction(24000, 1001)) == 2002


def test_change_list_text_has_old_and_new_record_timecode() -> None:
    rate = Fraction(30000, 1001)
    old, new = cut([A, B, C], rate, start_frame=108000), cut([A, C], rate, start_frame=108000)
    text = change_list_text(match_cuts(old, new))
    lines = text.splitlines()
    assert lines[1].split() == ["#", "EVENT", "NEW", "NEW", "IN", "NEW", "OUT", "OLD", "OLD", "IN",
                                "OLD", "OUT", "NOTE"]
    assert lines[3].split() == ["002", "UNCHANGED", "s002", "01:00:01:18", "01:00:03:18", "s003",
                                "01:00:02:24", "01:00:04:24", "moved", "-36f"]
    assert lines[4].split() == ["003", "DELETED", "s002", "01:00:01:18", "01:00:02:24"]
    # Drop-frame: 107892 frames are 01:00:00;00.
    old, new = cut([A, B], rate, start_frame=107892), cut([A, B], rate, start_frame=107892)
    drop = change_list_text(match_cuts(old, new), drop_frame=True)
    assert drop.splitlines()[2].split()[3:5] == ["01:00:00;00", "01:00:01;18"]


def test_json_round_trip_of_fingerprint_changes_and_plan() -> None:
    old, new = cut([A, B, C]), cut([C, ("X", 5, 20), A])
    again = CutFingerprint.model_validate_json(old.model_dump_json())
    assert again == old
    cl = match_cuts(again, new)
    assert ChangeList.model_validate_json(cl.model_dump_json()) == cl
    plan = kept_ranges(cl, join_frames=8)
    assert RecutPlan.model_validate_json(plan.model_dump_json()) == plan


def test_fingerprint_of_a_plan_uses_its_scene_ids() -> None:
    items = [("clip", Path("/media/A.mov"), 0, 100, 48), ("dissolve", 6, 6),
             ("clip", Path("/media/B.mov"), 1, 200, 48)]
    tl = build_timeline([items], Fraction(24))
    pic = build_picture(tl)
    scenes = find_scenes(tl, pic, policy="cuts", start=0, end=pic.duration, start_frame=0)
    plan = make_plan(scenes, rate=Fraction(24), start_frame=0, scene_policy="cuts")
    fp = fingerprint(pic, plan.scenes, start_frame=0)
    assert [s.id for s in fp.scenes] == [s.id for s in plan.scenes]
    # Through the dissolve the dominant picture counts: A until its midpoint, then B.
    runs = [(r.source, r.start, r.count, r.media_start) for s in fp.scenes for r in s.runs]
    assert runs == [("ExternalReference:A.mov", 0, 48, "100"),
                    ("ExternalReference:B.mov", 48, 48, "200")]
    assert [c.kind for c in match_cuts(fp, fp).changes] == ["unchanged", "unchanged"]


def test_not_the_same_programme_is_refused() -> None:
    with pytest.raises(InputError, match="not an edit of the same programme") as err:
        match_cuts(cut([A, B]), cut([("X", 100, 48), ("Y", 0, 36)]))
    assert "afresh" in str(err.value)


def test_different_rates_need_the_same_sources() -> None:
    old = cut([A, B, C], Fraction(24))
    with pytest.raises(InputError, match=r"24 fps and the new cut at 25 fps.*A\.mov \(24 then 25"):
        match_cuts(old, cut([A, B, C], Fraction(25)))
    with pytest.raises(InputError, match="share no source media"):
        match_cuts(old, cut([("X", 0, 48)], Fraction(25)))
    # The same 24 fps sources cut at 25 fps: the pictures still match.
    new = cut([A, C], Fraction(25), src_rate=Fraction(24))
    cl = match_cuts(old, new)
    assert [(c.kind, c.old_id) for c in cl.changes][-1] == ("deleted", "s002")
    assert [c.old_id for c in cl.changes if c.kept] == ["s001", "s003"]
    assert all(abs(c.head_frames) <= 1 and abs(c.tail_frames) <= 1 for c in cl.changes)
    plan = kept_ranges(cl)
    tiles(plan, 0, cl.new_range[1])
    c_kept = plan.kept[-1]
    assert c_kept.old_sample_start == pytest.approx(84 * 2000, abs=2000)


# ------------------------------------------------------------------------------ property

SOURCES = "ABCDEFGH"


@st.composite
def recuts(draw: st.DrawFn) -> tuple[list[Shot], list[Shot], set[int]]:
    """An old cut of distinct shots and a new one made by random edits of it; the positions of
    the new shots that are exact copies of old shots."""
    n = draw(st.integers(2, 7))
    old = [(SOURCES[i], draw(st.integers(0, 50)) * 10, draw(st.integers(6, 40))) for i in range(n)]
    new: list[tuple[Shot, bool]] = [(s, True) for s in old]
    for _ in range(draw(st.integers(0, 5))):
        op = draw(st.sampled_from(["delete", "move", "trim", "trim", "insert", "duplicate"]))
        if not new:
            break
        i = draw(st.integers(0, len(new) - 1))
        (name, src_in, frames), _exact = new[i]
        if op == "delete" and len(new) > 1:
            new.pop(i)
        elif op == "move":
            new.insert(draw(st.integers(0, len(new) - 1)), new.pop(i))
        elif op == "trim" and frames > 4:
            head = draw(st.integers(-min(src_in, 10), frames // 2 - 1))  # < 0: extend
            tail = draw(st.integers(-10, frames // 2 - 1))
            if head or tail:
                new[i] = ((name, src_in + head, frames - head - tail), False)
        elif op == "insert":
            new.insert(i, ((f"N{draw(st.integers(0, 999))}", 0, draw(st.integers(6, 30))), False))
        elif op == "duplicate":
            new.insert(draw(st.integers(0, len(new))), new[i])
    # Two copies side by side would be one picture only if one continued the other; keep apart.
    for a, b in zip(new, new[1:]):
        if a[0][0] == b[0][0] and a[0][1] + a[0][2] == b[0][1]:
            return old, old, set(range(n))
    return old, [s for s, _ in new], {i for i, (_, exact) in enumerate(new) if exact}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recuts(), st.integers(0, 30), st.integers(0, 12),
       st.sampled_from([Fraction(24), Fraction(25), Fraction(30000, 1001)]))
def test_random_recuts(case: tuple[list[Shot], list[Shot], set[int]], join: int,
                       handle: int, rate: Fraction) -> None:
    old_shots, new_shots, exact = case
    old, new = cut(old_shots, rate), cut(new_shots, rate)
    assert len(new.scenes) == len(new_shots)
    try:
        cl = match_cuts(old, new)
    except InputError:
        assert not exact  # only a cut with no old shot left is refused
        return
    for i in exact:
        assert cl.changes[i].kind in ("unchanged", "reordered"), (i, cl.changes[i])
    plan = kept_ranges(cl, join_frames=join, handle_frames=handle)
    lo, hi = cl.new_range
    tiles(plan, lo, hi)
    new_keys = {(s.start, s.end): s for s in new.scenes}
    assert len(new_keys) == len(new.scenes)
    for k in plan.kept:
        assert lo <= k.new_start < k.new_end <= hi
        assert k.old_end - k.old_start == k.frames
        assert old.range[0] <= k.old_start and k.old_end <= old.range[1]
        assert k.new_samples == (frame_to_sample(k.new_start, rate),
                                 frame_to_sample(k.new_end, rate))
        assert k.old_sample_start == frame_to_sample(k.old_start, rate)
        # Kept music comes from old frames that showed the same picture.
        for t in range(k.new_start, k.new_end):
            assert _shown(new, t) == _shown(old, t - k.new_start + k.old_start)
    assert plan.cost.kept_frames + plan.cost.generate_frames == hi - lo


def _shown(fp: CutFingerprint, t: int) -> tuple[str, int] | None:
    for s in fp.scenes:
        for r in s.runs:
            if r.start <= t < r.end:
                return None if r.source == "" else (r.source, r.frame_at(t))
    raise AssertionError(t)
