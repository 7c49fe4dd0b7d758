"""``reelscore resolve``: install/uninstall the Scripts menu entry; score from a terminal.

Wired into the main CLI as a sub-command group (``app.add_typer(resolve.cli.app, name="resolve")``).
Helpers of the main CLI (error printing, progress) are imported inside the commands, so importing
this module never imports ``reelscore.cli`` (which imports this one).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

app = typer.Typer(
    help="DaVinci Resolve: install the Workspace > Scripts entry, or score the current timeline "
    "from a terminal (Studio, external scripting = Local).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Options whose types ruff's B008 cannot see through (list/Path): module-level singletons.
_TAG = typer.Option(None, "--tag", help="style tag (repeatable, up to 10)")
_WORK_DIR = typer.Option(None, "--work-dir",
                         help="job folder (default: a new one under ~/reelscore/resolve/)")


@app.command()
def install(
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Copy the launcher into Resolve's per-user Scripts folder (Utility: every page)."""
    from reelscore.cli import _run, out
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

    _run(debug, body)


@app.command()
def uninstall(
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Remove the launcher(s) this command installed (nothing else)."""
    from reelscore.cli import _run, out
    from reelscore.resolve.install import scripts_dir
    from reelscore.resolve.install import uninstall as do_uninstall

    def body() -> None:
        removed = do_uninstall()
        if not removed:
            out.print(f"nothing to remove under {scripts_dir()}", soft_wrap=True)
        for path in removed:
            out.print(f"removed {path}", soft_wrap=True)

    _run(debug, body)


@app.command()
def score(
    timeline: str | None = typer.Option(None, "--timeline", help="timeline name (default: the current one)"),
    scenes: str = typer.Option("cuts", "--scenes", help="cuts | markers | clips"),
    scene_track: int = typer.Option(1, "--scene-track", help="video track for --scenes clips"),
    min_scene: float = typer.Option(2.0, "--min-scene", help="merge scenes shorter than this (s)"),
    range_: str = typer.Option("timeline", "--range", help="timeline (whole picture) | marks (in/out marks)"),
    render: str = typer.Option("resolve", "--render", help="resolve (render queue: grades, titles) | ffmpeg (from the media, faster)"),
    render_timeout: float | None = typer.Option(None, "--render-timeout", help="seconds per clip before a Resolve render is abandoned"),
    provider: str = typer.Option("auto", "--provider", help="local | elevenlabs | mountsea | auto"),
    description: str | None = typer.Option(None, "--description", help="brief for the music"),
    tag: list[str] | None = _TAG,
    model: str | None = typer.Option(None, "--model", help="service model id"),
    seed: int | None = typer.Option(None, "--seed", help="seed (local engine: same seed, same audio)"),
    target_lufs: float = typer.Option(-14.0, "--target-lufs", help="integrated loudness target"),
    true_peak: float = typer.Option(-1.0, "--true-peak", help="true-peak ceiling (dBTP)"),
    track_name: str = typer.Option("Score", "--track-name", help="name of the new audio track"),
    markers: bool = typer.Option(False, "--markers", help="add a timeline marker at each scene"),
    work_dir: Path | None = _WORK_DIR,
    export_check: bool = typer.Option(True, "--export-check/--no-export-check", help="cross-check with Resolve's own OTIO export"),
    resubmit: bool = typer.Option(False, "--resubmit", help="resend a request that may already have been charged"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks and debug logs"),
) -> None:
    """Score the current Resolve timeline and place the music on a new audio track."""
    from reelscore.cli import RichProgress, _pick_provider, _run, err, out
    from reelscore.errors import InputError

    def body() -> None:
        from reelscore.providers import GenerationSettings
        from reelscore.resolve.connect import connect
        from reelscore.resolve.workflow import ResolveRunOptions, score_in_resolve
        from reelscore.settings import ScoreSettings

        if range_ not in ("timeline", "marks"):
            raise InputError(f"--range {range_!r}", hint="use --range timeline or --range marks")
        if render not in ("resolve", "ffmpeg"):
            raise InputError(f"--render {render!r}", hint="use --render resolve or --render ffmpeg")
        if scenes not in ("cuts", "markers", "clips"):
            raise InputError(f"--scenes {scenes!r} is not a policy", hint="use cuts, markers or clips")
        chosen = _pick_provider(provider)
        settings = ScoreSettings(
            scenes=scenes,  # type: ignore[arg-type]
            scene_track=scene_track, min_scene_seconds=min_scene, provider=chosen,
            generation=GenerationSettings(description=description, tags=tuple(tag or ()),
                                          model_id=model, seed=seed),
            target_lufs=target_lufs, true_peak=true_peak, track_name=track_name,
            markers=markers, resubmit=resubmit,
        )
        options = ResolveRunOptions(
            timeline_name=timeline, use_marks=range_ == "marks",
            render="ffmpeg" if render == "ffmpeg" else "resolve", work_dir=work_dir,
            render_timeout_s=render_timeout, use_export=export_check,
        )
        session = connect()
        err.print(f"connected to {session.describe()}")
        with RichProgress(err) as progress:
            run = score_in_resolve(session, settings, options, progress=progress)
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

    _run(debug, body)


def main() -> None:  # pragma: no cover - `python -m reelscore.resolve.cli`
    app(prog_name="reelscore resolve")
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
