"""The per-scene brief (pure): CSV and TOML, merged into the composition plan, bad briefs refused."""

from __future__ import annotations

from fractions import Fraction

import pytest

from reelscore.brief import SceneBrief, parse_brief
from reelscore.compose import ComposeSettings, compose
from reelscore.errors import InputError
from reelscore.musicplan import MusicPrompt
from reelscore.plan import make_plan
from reelscore.scenes import SceneCut

NTSC = Fraction(24000, 1001)


def edit():
    """Three scenes at 23.976 from 01:00:00:00: 5 s, 10 s, 6 s (in frames)."""
    lengths, pos, scenes = [120, 240, 144], 0, []
    for n, name in zip(lengths, ["Open", "Chase", "End"]):
        scenes.append(SceneCut(pos, pos + n, name))
        pos += n
    return make_plan(scenes, rate=NTSC, start_frame=86400, scene_policy="markers")


CSV = """scene,name,styles,negative_styles
s001,Cold open,"sparse piano; low drone",drums
01:00:05:00,,"driving, percussive",
"""

TOML = """
[[scene]]
scene = "01:00:15:00"
name = "Coda"
styles = ["warm strings", "resolve"]

[[scene]]
scene = "s002"
negative_styles = "vocals; choir"
"""


def test_csv_brief_by_id_and_timecode():
    brief = parse_brief(CSV, "brief.csv", edit())
    assert brief == {
        "s001": SceneBrief("s001", "Cold open", ["sparse piano", "low drone"], ["drums"], 2),
        "s002": SceneBrief("s002", "", ["driving", "percussive"], [], 3),
    }


def test_toml_brief_merged_into_the_plan():
    sp = edit()
    brief = parse_brief(TOML, "brief.toml", sp)
    assert brief["s003"] == SceneBrief("s003", "Coda", ["warm strings", "resolve"], [], 2)
    assert brief["s002"].negative_styles == ["vocals", "choir"] and brief["s002"].line == 7
    plan = compose(sp, ComposeSettings(model_id="music_v1"), brief=brief).requests[0].composition_plan
    assert isinstance(plan, MusicPrompt)
    assert [(s.section_name, s.positive_local_styles, s.negative_local_styles) for s in plan.sections] == [
        ("Open", [], []), ("Chase", [], ["vocals", "choir"]), ("Coda", ["warm strings", "resolve"], [])]


def test_unknown_column_or_key_names_file_line_and_allowed_names():
    with pytest.raises(InputError) as err:
        parse_brief("scene,mood\ns001,dark\n", "brief.csv", edit())
    assert str(err.value) == ("brief.csv, line 1: unknown column 'mood'\n"
                              "  hint: allowed columns: scene, name, styles, negative_styles")
    text = '[[scene]]\nscene = "s001"\n\n[[scene]]\nscene = "s002"\nmood = "dark"\n'
    with pytest.raises(InputError, match=r"brief\.toml, line 6: unknown key 'mood'\n.*allowed "
                                         r"keys: scene, name, styles, negative_styles"):
        parse_brief(text, "brief.toml", edit())
    with pytest.raises(InputError, match=r"brief\.toml, line 1: unknown key 'scenes'"):
        parse_brief('[[scenes]]\nscene = "s001"\n', "brief.toml", edit())


def test_a_timecode_on_no_scene_names_the_nearest_scene():
    with pytest.raises(InputError) as err:
        parse_brief("scene,name\n01:00:04:20,Late\n", "brief.csv", edit())
    assert str(err.value) == ("brief.csv, line 2: no scene starts at 01:00:04:20\n"
                              "  hint: the nearest scene (s002) starts at 01:00:05:00")
    with pytest.raises(InputError, match=r"line 2: the plan has no scene s009"):
        parse_brief("scene,name\ns009,X\n", "brief.csv", edit())


def test_empty_duplicate_and_sceneless_briefs_are_refused():
    for text, source in (("scene,name,styles\n", "brief.csv"), ("", "brief.csv"),
                         ("# nothing yet\n", "brief.toml")):
        with pytest.raises(InputError, match=f"{source}: the brief has no scenes"):
            parse_brief(text, source, edit())
    with pytest.raises(InputError, match=r"line 3: scene s001 \(01:00:00:00\) was already briefed on line 2"):
        parse_brief("scene,name\ns001,A\n01:00:00:00,B\n", "brief.csv", edit())
    with pytest.raises(InputError, match=r"brief\.csv, line 2: no scene given"):
        parse_brief("scene,name\n,A\n", "brief.csv", edit())
    with pytest.raises(InputError, match=r"brief\.toml, line 3: styles must be text or a list of text"):
        parse_brief('[[scene]]\nscene = "s001"\nstyles = 3\n', "brief.toml", edit())
