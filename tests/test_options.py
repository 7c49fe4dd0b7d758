"""One list of setting options (reelscore.options.with_settings) for the three scoring commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from reelscore import options as opt
from reelscore.cli import app
from reelscore.settings import FrontEndValues


def _flag(option: opt.SettingOption) -> str:
    return next(d for d in option.option.param_decls if d.startswith("--")).split("/")[0]


def test_every_scoring_command_takes_every_scoring_option() -> None:
    runner = CliRunner()
    for command, extra in ((["score"], opt.COMPOSE + opt.RECUT + opt.FILES),
                           (["resolve", "score"], opt.COMPOSE + opt.RECUT),
                           (["batch"], opt.FILES)):
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        for option in opt.SCORING + extra:
            assert f" {_flag(option)} " in result.output, (command, _flag(option))


def test_values_arrive_under_the_settings_names() -> None:
    got: dict[str, Any] = {}
    mini = typer.Typer()

    @mini.command()
    @opt.with_settings(opt.SCENE_OPTIONS, opt.DUCKING)
    def run(edit: Path = typer.Argument(...), debug: bool = opt.DEBUG, *,
            flags: dict[str, Any]) -> None:
        got.update(flags, edit=edit, debug=debug)

    result = CliRunner().invoke(mini, ["cut.otio", "--media-root", "/a", "--media-root", "/b",
                                       "--duck", "--dialogue-track", "DX", "--duck-depth", "-12",
                                       "--debug"])
    assert result.exit_code == 0, result.output
    assert got["edit"] == Path("cut.otio") and got["debug"] is True
    assert got["media_roots"] == [Path("/a"), Path("/b")] and got["duck"] is True
    assert got["dialogue_track"] == ["DX"] and got["duck_depth"] == -12.0
    assert got["scenes"] is None  # not given: the configuration decides
    keys = {k for k, v in got.items() if k not in ("edit", "debug") and v is not None}
    assert keys <= set(FrontEndValues.model_fields)


def test_every_setting_option_is_a_front_end_value() -> None:
    every = opt.SCORING + opt.COMPOSE + opt.RECUT + opt.FILES
    assert {o.key for o in every} <= set(FrontEndValues.model_fields)
    assert len({o.name for o in every}) == len(every)  # no option twice
