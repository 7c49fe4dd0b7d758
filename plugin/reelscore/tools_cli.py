"""``reelscore demo`` and ``reelscore doctor``: trying reelscore out and checking the machine
(mounted by ``cli.py``).

    reelscore demo [DIR]                        make a demo cut with generated media and score it
    reelscore doctor [--online] [--resolve]     check ffmpeg, keys, the uploader, OTIO, Resolve

The work is in :mod:`reelscore.demo` and :mod:`reelscore.doctor`; this module prints it. Every body
runs through :func:`reelscore.console.run_command` (one-line errors, exit codes of
:mod:`reelscore.errors`); ``doctor`` exits 1 when a check the chosen provider needs fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from reelscore import options as opt
from reelscore.console import RichProgress, err, out, run_command, score_summary_table


def demo(
    folder: Path = typer.Argument(Path("reelscore-demo"), help="where to make the demo"),
    seed: int = typer.Option(7, "--seed"),
    force: bool = typer.Option(False, "--force", help="replace an earlier demo in FOLDER"),
    debug: bool = opt.DEBUG,
) -> None:
    """Make a short demo cut with generated media in FOLDER and score it (offline engine)."""

    def body() -> None:
        from reelscore.demo import run_demo

        with RichProgress(err) as progress:
            result = run_demo(folder, seed=seed, force=force, progress=progress)
        out.print(score_summary_table(result.summary, result.plan))
        s = result.summary
        out.print(f"demo scored: {s['scenes']} scenes, {s['integrated_lufs']:.2f} LUFS, true peak "
                  f"{s['true_peak_dbtp']:.2f} dBTP")
        out.print(f"edit:  {folder / 'demo_cut.otio'}")
        out.print(f"score: {result.output_path}  (music: {result.music_wav})")

    run_command(debug, body)


def doctor(
    config: Path | None = opt.CONFIG,
    profile: str | None = opt.PROFILE,
    provider: str | None = opt.PROVIDER,
    base_url: str | None = opt.BASE_URL,
    online: bool = typer.Option(False, "--online", help="one free authenticated call to the "
                                "chosen service: does the key have music access?"),
    resolve: bool = typer.Option(False, "--resolve", help="also connect to a running Resolve"),
    as_json: bool = opt.JSON,
    debug: bool = opt.DEBUG,
) -> None:
    """Check ffmpeg, keys, the uploader, the OTIO plugin, Resolve and the configuration.

    Exits 1 when a check that the chosen provider needs fails. Keys are shown by where they
    were found, never by value."""

    def body() -> None:
        from rich.markup import escape

        from reelscore.config import load_config
        from reelscore.doctor import render_table, run_doctor
        from reelscore.settings import build_settings, front_end_values

        effective = load_config(config, profile)
        values = front_end_values("flag", provider=provider, base_url=base_url)
        built = build_settings(effective, values, load_key=False)
        report = run_doctor(effective, built.settings.provider, built.provider_config,
                            online=online, resolve=resolve)
        if as_json:
            out.print_json(json.dumps(report.to_dict()))
        else:
            table = Table(title=f"reelscore doctor (provider {report.provider})",
                          header_style="bold")
            for column in ("check", "status", "detail", "fix"):
                table.add_column(column, overflow="fold")
            for row in render_table(report):
                table.add_row(*(escape(cell) for cell in row))
            out.print(table)
            if report.config:
                conf = Table(title="configuration", header_style="bold")
                for column in ("key", "value", "from"):
                    conf.add_column(column, overflow="fold")
                for value in report.config:
                    conf.add_row(escape(value.key), escape(value.value), escape(value.source))
                out.print(conf)
        if not report.ok:
            raise typer.Exit(1)

    run_command(debug, body)
