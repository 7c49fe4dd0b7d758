"""``reelscore resolve``: install/uninstall the Scripts menu entry; score from a terminal.

Wired into the main CLI as a sub-command group (``app.add_typer(resolve.cli.app, name="resolve")``).
``score`` takes the provider, configuration and music flags of ``reelscore score`` (the same
options, :mod:`reelscore.options`) and builds its settings through the same function.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from reelscore import options as opt
from reelscore.console import RichProgress, err, out, run_command

app = typer.Typer(
    help="DaVinci Resolve: install the Workspace > Scripts entry, or score the current timeline "
    "from a terminal (Studio, external scripting = Local).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Options whose types ruff's B008 cannot see through (list/Path): module-level singletons.
_WORK_DIR = typer.Option(None, "--work-dir",
                         help="job folder (default: a new one under ~/reelscore/resolve/)")


@app.command()
def install(
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Copy the launcher into Resolve's per-user Scripts folder (Utility: every page)."""
    from reelscore.resolve.install import install as do_install

    def body() -> None:
        result = do_install()
        verb = "updated" if result.replaced else "installed"
        out.print(f"{verb} {result.path}", soft_wrap=True)
        out.print(f"it runs reelscore from {result.python}", soft_wrap=True)
        out.print("in Resolve: Workspace > Scripts > Score with reelscore "
                  "(restart Resolve if the entry is missing)")
        out.print("note: from Resolve 21.1, Python menu scripts need DaVinci Resolve Studio; on "
                  "Free use the OTIO route (docs/resolve.md)")

    run_command(debug, body)


@app.command()
def uninstall(
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Remove the launcher(s) this command installed (nothing else)."""
    from reelscore.resolve.install import scripts_dir
    from reelscore.resolve.install import uninstall as do_uninstall

    def body() -> None:
        removed = do_uninstall()
        if not removed:
            out.print(f"nothing to remove under {scripts_dir()}", soft_wrap=True)
        for path in removed:
            out.print(f"removed {path}", soft_wrap=True)

    run_command(debug, body)


@app.command()
@opt.with_settings(opt.SCORING, opt.COMPOSE, opt.RECUT)
def score(
    timeline: str | None = typer.Option(None, "--timeline", help="timeline name (default: the current one)"),
    config: Path | None = opt.CONFIG,
    profile: str | None = opt.PROFILE,
    range_: str = typer.Option("timeline", "--range", help="timeline (whole picture) | marks (in/out marks)"),
    render: str = typer.Option("resolve", "--render", help="resolve (render queue: grades, titles) | ffmpeg (from the media, faster)"),
    render_timeout: float | None = typer.Option(None, "--render-timeout", help="seconds per clip before a Resolve render is abandoned"),
    work_dir: Path | None = _WORK_DIR,
    export_check: bool = typer.Option(True, "--export-check/--no-export-check", help="cross-check with Resolve's own OTIO export"),
    as_json: bool = opt.JSON,
    debug: bool = opt.DEBUG,
    *,
    flags: dict[str, Any],
) -> None:
    """Score the current Resolve timeline and place the music on a new audio track."""
    from reelscore.errors import InputError

    def body() -> None:
        from reelscore.config import load_config
        from reelscore.resolve.connect import connect
        from reelscore.resolve.workflow import ResolveRunOptions, score_in_resolve
        from reelscore.settings import build_settings, front_end_values

        if range_ not in ("timeline", "marks"):
            raise InputError(f"--range {range_!r}", hint="use --range timeline or --range marks")
        if render not in ("resolve", "ffmpeg"):
            raise InputError(f"--render {render!r}", hint="use --render resolve or --render ffmpeg")
        values = front_end_values("flag", **flags)
        built = build_settings(load_config(config, profile), values)
        options = ResolveRunOptions(
            timeline_name=timeline, use_marks=range_ == "marks",
            render="ffmpeg" if render == "ffmpeg" else "resolve", work_dir=work_dir,
            render_timeout_s=render_timeout, use_export=export_check,
        )
        session = connect()
        err.print(f"connected to {session.describe()}")
        with RichProgress(err) as progress:
            run = score_in_resolve(session, built.settings, options,
                                   provider_config=built.provider_config, progress=progress)
        if as_json:
            p = run.placement
            out.print_json(json.dumps({
                **run.result.summary, "timeline": run.edit.name, "track_index": p.track_index,
                "track_name": p.track_name, "record_frame": p.record_frame,
                "duration_frames": p.duration_frames, "file": str(p.file),
                "markers": len(p.markers_added), "manifest": str(run.result.manifest_path),
                "notes": run.notes + p.notes,
            }))
            return
        for line in run.summary_lines():
            out.print(line, soft_wrap=True)

    run_command(debug, body)


def main() -> None:  # pragma: no cover - `python -m reelscore.resolve.cli`
    app(prog_name="reelscore resolve")
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
