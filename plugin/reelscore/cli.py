"""The ``reelscore`` command line: parse options into settings (a plan), then execute it.

    reelscore score INPUT -o OUTPUT [options]   score an edit file
    reelscore plan INPUT [options]              print the plan (no rendering, no network)
    reelscore demo [DIR]                        make a demo cut with generated media and score it
    reelscore resolve ...                       DaVinci Resolve (install the menu script, score)

Errors print one line that says what to do (tracebacks only with --debug); exit codes follow
:mod:`reelscore.errors`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from reelscore._version import __version__
from reelscore.errors import InputError, ReelscoreError

app = typer.Typer(
    name="reelscore",
    help="Score a locked cut: render scene clips, generate music for them, bring it back as a "
    "frame-exact audio track at -14 LUFS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

T = TypeVar("T")

PROVIDER_HELP = "local (offline sketch engine), elevenlabs, mountsea; default: elevenlabs if an " \
    "API key is configured, else local"


def _run(debug: bool, fn: Callable[[], T]) -> T:
    """Run a command body: actionable one-line errors, tracebacks only with --debug."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from rich.markup import escape

    from reelscore.signals import graceful_stop, resume_command

    try:
        with graceful_stop():  # SIGTERM/SIGHUP stop like Ctrl-C; ffmpeg children die at once
            return fn()
    except ReelscoreError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:
        # Ctrl-C: 130; SIGTERM: 143; SIGHUP: 129 (reelscore.signals.Interrupted).
        what = getattr(exc, "signal_name", "SIGINT")
        err.print(f"interrupted ({what}): finished clips and stored music are kept in the job "
                  "folder (a request already sent is not sent again without --resubmit); "
                  f"resume with:\n  {resume_command()}", markup=False, soft_wrap=True)
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # a bug: still one line (the traceback with --debug)
        if debug:
            traceback.print_exc()
        err.print(f"error: unexpected {type(exc).__name__}: {exc}\n  hint: this is a bug in "
                  "reelscore; rerun with --debug and report the traceback", markup=False,
                  soft_wrap=True)
        raise typer.Exit(1) from None


class RichProgress:
    """ProgressSink on a rich progress display (stderr)."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description:<10}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.console = console
        self.requests: dict[str, str] = {}  # request id -> state, one line for all
        self.requests_task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is None:
            self.stage("")  # mark every stage done
        self.progress.stop()

    def stage(self, name: str, total: float | None = None) -> None:
        for other, tid in self.tasks.items():
            if other != name:
                task = self.progress.tasks[tid]
                if task.total is None:
                    self.progress.update(tid, total=1, completed=1)
                elif not task.finished:
                    self.progress.update(tid, completed=task.total)
        if not name:
            return
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total)
        elif total is not None:
            self.progress.update(self.tasks[name], total=total)

    def advance(self, name: str, amount: float = 1) -> None:
        if name in self.tasks:
            self.progress.advance(self.tasks[name], amount)

    def note(self, message: str) -> None:
        self.progress.console.print(f"  {message}")

    def request_state(self, request_id: str, state: str) -> None:
        self.requests[request_id] = state
        line = "  ".join(f"{r} {s}" for r, s in self.requests.items())
        if self.requests_task is None:
            self.requests_task = self.progress.add_task(line, total=None)
        else:
            self.progress.update(self.requests_task, description=line)


def _settings(
    *, scenes: str, scene_track: int, min_scene: float, range_: tuple[str, str] | None,
    rate: str | None, media_root: list[Path] | None, provider: str, description: str | None,
    tag: list[str] | None, model: str | None, output_format: str, seed: int | None,
    target_lufs: float, true_peak: float, track_name: str, markers: bool, resubmit: bool,
    workers: int | None, sign_c2pa: bool | None = None, add_sfx: bool | None = None,
    separate_tracks: bool | None = None, use_audio_as_reference: bool | None = None,
    allow_remote_media: bool = False,
) -> Any:
    from reelscore.providers import GenerationSettings
    from reelscore.settings import ScoreSettings

    if scenes not in ("cuts", "markers", "clips"):
        raise InputError(f"--scenes {scenes!r} is not a policy", hint="use cuts, markers or clips")
    gen = GenerationSettings(description=description, tags=tuple(tag or ()), model_id=model,
                             output_format=output_format, seed=seed, sign_with_c2pa=sign_c2pa,
                             add_sfx=add_sfx, separate_tracks=separate_tracks,
                             use_audio_as_reference=use_audio_as_reference)
    return ScoreSettings(
        scenes=scenes,  # type: ignore[arg-type]
        scene_track=scene_track, min_scene_seconds=min_scene,
        range_in=range_[0] if range_ else None, range_out=range_[1] if range_ else None,
        rate=rate, media_roots=list(media_root or []), provider=provider, generation=gen,
        target_lufs=target_lufs, true_peak=true_peak, track_name=track_name, markers=markers,
        resubmit=resubmit, workers=workers, allow_remote_media=allow_remote_media,
    )


def _pick_provider(name: str) -> str:
    from reelscore.providers import PROVIDER_NAMES

    if name != "auto":
        if name not in PROVIDER_NAMES:
            raise InputError(f"unknown provider {name!r}",
                             hint=f"use --provider with one of: {', '.join(PROVIDER_NAMES)}")
        return name
    if os.environ.get("ELEVENLABS_API_KEY"):
        return "elevenlabs"
    from reelscore.errors import ReelscoreError
    from reelscore.providers import secrets

    try:
        if secrets.find_secret("elevenlabs") is not None:
            return "elevenlabs"
    except ReelscoreError:
        pass  # an unreadable credentials file is reported when a provider needs it
    return "local"


def _provider_config(provider: str, base_url: str | None, connect_timeout: float,
                     read_timeout: float, allow_insecure: bool, resubmit: bool) -> Any:
    from reelscore.providers import ProviderConfig

    key = None
    if provider != "local":
        from reelscore.providers import secrets

        key, _where = secrets.load_api_key(provider)
    return ProviderConfig(base_url=base_url, api_key=key, connect_timeout_s=connect_timeout,
                          read_timeout_s=read_timeout, allow_insecure=allow_insecure,
                          allow_resubmit=resubmit)


def _summary_table(summary: dict[str, Any], plan: Any) -> Table:
    table = Table(title="reelscore summary", show_header=True, header_style="bold")
    table.add_column("request")
    table.add_column("record in-out")
    table.add_column("videos", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("drift (frames)", justify="right")
    drifts = summary.get("drift_frames", [])
    for i, req in enumerate(plan.requests):
        secs = req.range.duration / float(plan.fraction_rate)
        table.add_row(req.id, f"{req.range.record_in}-{req.range.record_out}", str(len(req.videos)),
                      f"{secs:.2f}", f"{drifts[i]:+.2f}" if i < len(drifts) else "-")
    return table


# Options shared by `score` and `plan` ---------------------------------------------------------
_SCENES = typer.Option("cuts", "--scenes", help="cuts | markers | clips")
_SCENE_TRACK = typer.Option(1, "--scene-track", help="video track for --scenes clips (1 = V1)")
_MIN_SCENE = typer.Option(2.0, "--min-scene", help="merge scenes shorter than this (seconds)")
_RANGE = typer.Option(None, "--range", help="score only IN OUT (record timecode, OUT exclusive)")
_RATE = typer.Option(None, "--rate", help="frame rate of an EDL (24, 25, 30000/1001 ...)")
_MEDIA_ROOT = typer.Option(None, "--media-root", help="relink moved media by file name under DIR (repeatable)")
_DEBUG = typer.Option(False, "--debug", help="show tracebacks and debug logs")
# Reference-movie mode (reelscore.reference) -------------------------------------------------
_REFERENCE = typer.Option(None, "--reference", help="cut every scene from this flattened movie of the edit instead of the sources (fast; sources may be offline)")
_REFERENCE_START = typer.Option(None, "--reference-start", help="record timecode of the reference movie's first frame (default: its own timecode, else 00:00:00:00)")


@app.command()
def score(
    input: Path = typer.Argument(..., help="edit file: .otio .otioz .edl .xml .fcpxml .aaf"),
    output: Path = typer.Option(..., "-o", "--output", help="scored edit; format from the extension"),
    provider: str = typer.Option("auto", "--provider", help=PROVIDER_HELP),
    base_url: str | None = typer.Option(None, "--base-url", help="service base URL (data residency, proxies)"),
    work_dir: Path | None = typer.Option(None, "--work-dir", help="job folder (default: OUTPUT.reelscore/ beside the output)"),
    scenes: str = _SCENES,
    scene_track: int = _SCENE_TRACK,
    min_scene: float = _MIN_SCENE,
    range_: tuple[str, str] | None = _RANGE,
    rate: str | None = _RATE,
    media_root: list[Path] | None = _MEDIA_ROOT,
    description: str | None = typer.Option(None, "--description", help="brief for the music"),
    tag: list[str] | None = typer.Option(None, "--tag", help="style tag (repeatable, up to 10)"),
    model: str | None = typer.Option(None, "--model", help="service model id"),
    output_format: str = typer.Option("mp3_44100_128", "--output-format", help="service output format"),
    seed: int | None = typer.Option(None, "--seed", help="seed (local engine: same seed, same audio)"),
    sign_c2pa: bool | None = typer.Option(None, "--sign-c2pa/--no-sign-c2pa", help="ask for a C2PA-signed MP3 (the signed original is kept beside the normalised WAV)"),
    add_sfx: bool | None = typer.Option(None, "--add-sfx/--no-add-sfx", help="ask the service for sound effects cued from the picture"),
    separate_tracks: bool | None = typer.Option(None, "--separate-tracks/--no-separate-tracks", help="music and SFX as separate stems, on two new tracks"),
    use_audio_as_reference: bool | None = typer.Option(None, "--use-audio-as-reference/--no-use-audio-as-reference", help="let the service hear the clips' own audio (renders clips with audio)"),
    target_lufs: float = typer.Option(-14.0, "--target-lufs", help="integrated loudness target"),
    true_peak: float = typer.Option(-1.0, "--true-peak", help="true-peak ceiling (dBTP)"),
    track_name: str = typer.Option("Score", "--track-name", help="name of the new audio track"),
    markers: bool = typer.Option(False, "--markers", help="one marker per scene on the score clip"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and stop"),
    force: bool = typer.Option(False, "--force", help="replace an existing OUTPUT"),
    resubmit: bool = typer.Option(False, "--resubmit", help="resend a request that may already have been charged"),
    workers: int | None = typer.Option(None, "--workers", help="parallel renders (default: cores)"),
    connect_timeout: float = typer.Option(10.0, "--connect-timeout", help="seconds"),
    read_timeout: float = typer.Option(900.0, "--read-timeout", help="seconds to wait for the music"),
    allow_insecure: bool = typer.Option(False, "--allow-insecure", help="allow http:// to non-loopback hosts"),
    allow_remote_media: bool = typer.Option(False, "--allow-remote-media", help="download media the edit names by http(s) URL (otherwise such clips are offline)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    reference: Path | None = _REFERENCE,
    reference_start: str | None = _REFERENCE_START,
    debug: bool = _DEBUG,
) -> None:
    """Score an edit file and write it back with a new, frame-exact music track."""

    def body() -> None:
        from reelscore.describe import describe_plan
        from reelscore.pipeline import plan_edit, score_file
        from reelscore.timecode import exact_rate
        from reelscore.timeline import load_edit

        chosen = _pick_provider(provider)
        settings = _settings(
            scenes=scenes, scene_track=scene_track, min_scene=min_scene, range_=range_,
            rate=rate, media_root=media_root, provider=chosen, description=description, tag=tag,
            model=model, output_format=output_format, seed=seed, target_lufs=target_lufs,
            true_peak=true_peak, track_name=track_name, markers=markers, resubmit=resubmit,
            workers=workers, sign_c2pa=sign_c2pa, add_sfx=add_sfx,
            separate_tracks=separate_tracks, use_audio_as_reference=use_audio_as_reference,
            allow_remote_media=allow_remote_media,
        )
        settings = settings.model_copy(update={"reference": reference,
                                               "reference_start": reference_start})
        if dry_run:
            loaded = load_edit(input, rate=exact_rate(rate) if rate else None)
            planned = plan_edit(loaded, settings)
            if as_json:
                out.print_json(planned.plan.model_dump_json())
            else:
                for line in describe_plan(planned.plan):
                    typer.echo(line)
                typer.echo(f"provider: {chosen} (dry run: nothing rendered or sent)")
            return
        config = _provider_config(chosen, base_url, connect_timeout, read_timeout,
                                  allow_insecure, resubmit)
        if chosen == "local":
            err.print("provider: local - an offline sketch engine for previews, not a "
                      "substitute for the music service")
        with RichProgress(err) as progress:
            result = score_file(input, output, settings, work_dir=work_dir, force=force,
                                provider_config=config, progress=progress)
        if as_json:
            out.print_json(json.dumps({**result.summary, "manifest": str(result.manifest_path)}))
            return
        out.print(_summary_table(result.summary, result.plan))
        s = result.summary
        out.print(f"score: {s['integrated_lufs']:.2f} LUFS, true peak {s['true_peak_dbtp']:.2f} "
                  f"dBTP{' (limiter used)' if s['limiter'] else ''}; {s['scenes']} scene(s), "
                  f"{s['record_in']}-{s['record_out']}")
        out.print(f"wrote {output} (track {track_name!r} -> {result.music_wav})")
        out.print(f"manifest: {result.manifest_path}")

    _run(debug, body)


@app.command()
def plan(
    input: Path = typer.Argument(..., help="edit file"),
    scenes: str = _SCENES,
    scene_track: int = _SCENE_TRACK,
    min_scene: float = _MIN_SCENE,
    range_: tuple[str, str] | None = _RANGE,
    rate: str | None = _RATE,
    media_root: list[Path] | None = _MEDIA_ROOT,
    check_media: bool = typer.Option(True, "--check-media/--no-check-media", help="stop on offline media"),
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
    reference: Path | None = _REFERENCE,
    reference_start: str | None = _REFERENCE_START,
    debug: bool = _DEBUG,
) -> None:
    """Print the plan: scenes, requests and videos (no rendering, no network)."""

    def body() -> None:
        from reelscore.describe import describe_plan
        from reelscore.pipeline import plan_edit
        from reelscore.timecode import exact_rate
        from reelscore.timeline import load_edit

        settings = _settings(
            scenes=scenes, scene_track=scene_track, min_scene=min_scene, range_=range_,
            rate=rate, media_root=media_root, provider="local", description=None, tag=None,
            model=None, output_format="mp3_44100_128", seed=None, target_lufs=-14.0,
            true_peak=-1.0, track_name="Score", markers=False, resubmit=False, workers=None,
        )
        settings = settings.model_copy(update={"reference": reference,
                                               "reference_start": reference_start})
        loaded = load_edit(input, rate=exact_rate(rate) if rate else None)
        planned = plan_edit(loaded, settings, check_media=check_media)
        if as_json:
            out.print_json(planned.plan.model_dump_json())
        else:
            for line in describe_plan(planned.plan):
                typer.echo(line)

    _run(debug, body)


@app.command()
def demo(
    folder: Path = typer.Argument(Path("reelscore-demo"), help="where to make the demo"),
    seed: int = typer.Option(7, "--seed"),
    force: bool = typer.Option(False, "--force", help="replace an earlier demo in FOLDER"),
    debug: bool = _DEBUG,
) -> None:
    """Make a short demo cut with generated media in FOLDER and score it (offline engine)."""

    def body() -> None:
        from reelscore.demo import run_demo

        with RichProgress(err) as progress:
            result = run_demo(folder, seed=seed, force=force, progress=progress)
        out.print(_summary_table(result.summary, result.plan))
        s = result.summary
        out.print(f"demo scored: {s['scenes']} scenes, {s['integrated_lufs']:.2f} LUFS, true peak "
                  f"{s['true_peak_dbtp']:.2f} dBTP")
        out.print(f"edit:  {folder / 'demo_cut.otio'}")
        out.print(f"score: {result.output_path}  (music: {result.music_wav})")

    _run(debug, body)


@app.command()
def version() -> None:
    """Print the reelscore version and the ffmpeg it uses."""
    from reelscore.ffmpeg_cli import ffmpeg_exe

    out.print(f"reelscore {__version__}; ffmpeg {ffmpeg_exe()}")


def _add_resolve() -> None:
    try:
        from reelscore.resolve.cli import app as resolve_app
    except ImportError:
        return
    app.add_typer(resolve_app, name="resolve", help="DaVinci Resolve: menu scripts and scoring")


_add_resolve()


def main() -> None:
    app(prog_name="reelscore")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
