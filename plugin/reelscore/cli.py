"""The ``reelscore`` command line: parse options into settings (a plan), then execute it.

    reelscore score INPUT -o OUTPUT [options]   score an edit file
    reelscore plan INPUT [options]              print the plan (no rendering; no network but --draft-plan)
    reelscore batch EDIT... -o OUTDIR           score many edits at once (or --jobs FILE)
    reelscore cuesheet JOB [-o cues.xlsx]       the music cue sheet of a job (CSV or XLSX)
    reelscore sheet JOB [-o sheet.png]          the score sheet picture of a job (PNG/SVG)
    reelscore report JOB [-o report.html]       the job's self-contained HTML report
    reelscore preview EDIT -o review.mp4        the review movie of a scored edit
    reelscore demo [DIR]                        make a demo cut with generated media and score it
    reelscore doctor                            check ffmpeg, keys, the uploader, OTIO, Resolve
    reelscore resolve ...                       DaVinci Resolve (install the menu script, score)

This module holds ``score``, ``plan`` and ``version``; it mounts ``batch``
(:mod:`reelscore.batch_cli`), the job reports ``cuesheet``/``sheet``/``report``/``preview``
(:mod:`reelscore.reports_cli`), ``demo``/``doctor`` (:mod:`reelscore.tools_cli`) and
``resolve`` (:mod:`reelscore.resolve.cli`).

Errors print one line that says what to do (tracebacks only with --debug); exit codes follow
:mod:`reelscore.errors`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reelscore import options as opt
from reelscore import reports_cli, tools_cli
from reelscore._version import __version__
from reelscore.batch_cli import batch as batch_command
from reelscore.console import RichProgress, err, out, run_command, score_summary_table
from reelscore.resolve.cli import app as resolve_app

if TYPE_CHECKING:
    from reelscore.pipeline import StopAfter
    from reelscore.providers import ProviderConfig
    from reelscore.settings import BuiltSettings, ScoreSettings

app = typer.Typer(
    name="reelscore",
    help="Score a locked cut: render scene clips, generate music for them, bring it back as a "
    "frame-exact audio track at -14 LUFS (or the loudness spec you choose).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(resolve_app, name="resolve", help="DaVinci Resolve: menu scripts and scoring")
app.command(name="batch")(batch_command)


def _show_plan(input: Path, settings: ScoreSettings, *, as_json: bool,
               check_media: bool = True) -> None:
    """Print the plan (``reelscore plan`` and ``score --dry-run``): nothing rendered or sent."""
    from reelscore.describe import describe_plan
    from reelscore.pipeline import plan_edit
    from reelscore.timecode import exact_rate
    from reelscore.timeline import load_edit

    loaded = load_edit(input, rate=exact_rate(settings.rate) if settings.rate else None)
    planned = plan_edit(loaded, settings, check_media=check_media)
    if as_json:
        out.print_json(planned.plan.model_dump_json())
        return
    for line in describe_plan(planned.plan):
        typer.echo(line)


def _write_composition(input: Path, settings: ScoreSettings, path: Path,
                       provider_config: ProviderConfig | None = None) -> None:
    """``reelscore plan EDIT --composition FILE``: the plan(s) compose mode would send (with
    ``--draft-plan``: their styles drafted by the provider's free plan endpoint)."""
    from reelscore.musicplan import sections_of
    from reelscore.pipeline import plan_edit
    from reelscore.providers import make_provider
    from reelscore.scenes import picture_cuts
    from reelscore.steps.composing import composition_for, write_composition
    from reelscore.steps.drafting import draft_composition
    from reelscore.timecode import exact_rate
    from reelscore.timeline import load_edit

    loaded = load_edit(input, rate=exact_rate(settings.rate) if settings.rate else None)
    planned = plan_edit(loaded, settings, check_media=False)
    p = planned.plan
    file = composition_for(p, settings, picture_cuts(planned.picture, p.range.start, p.range.end))
    if settings.draft_plan:
        provider = make_provider(settings.provider, provider_config)
        file, _drafts, _reused = draft_composition(file, provider, drop_frame=p.drop_frame)
    write_composition(path, file)
    for req in file.requests:
        typer.echo(f"{req.id}: {req.model_id}, {len(sections_of(req.composition_plan))} sections, "
                   f"{req.range.record_in}-{req.range.record_out}")
    for note in file.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {path}")


def _stop_after(input: Path, output: Path, work_dir: Path | None, settings: ScoreSettings,
                provider_config: ProviderConfig, stage: StopAfter, *, force: bool,
                as_json: bool) -> None:
    """``score --stop-after render|generate``: run the stages up to *stage* into the job folder."""
    from reelscore.pipeline import run_until

    with RichProgress(err) as progress:
        done = run_until(input, output, settings, stage, work_dir=work_dir, force=force,
                         provider_config=provider_config, progress=progress)
    if as_json:
        out.print_json(json.dumps({"stage": done.stage, "requests": done.requests,
                                   "answered": done.answered,
                                   "manifest": str(done.manifest_path)}))
        return
    what = "every clip rendered" if stage == "render" else f"{done.answered} answer(s) stored"
    out.print(f"stopped after {stage}: {what} for {done.requests} request(s) in "
              f"{done.manifest_path.parent}; run the same command without --stop-after to go on")


def _range(range_: tuple[str, str] | None) -> dict[str, str | None]:
    return {"range_in": range_[0] if range_ else None, "range_out": range_[1] if range_ else None}


@app.command()
@opt.with_settings(opt.SCORING, opt.COMPOSE, opt.RECUT, opt.FILES)
def score(
    input: Path = typer.Argument(..., help="edit file: .otio .otioz .edl .xml .fcpxml .aaf"),
    output: Path = typer.Option(..., "-o", "--output", help="scored edit; format from the extension"),
    config: Path | None = opt.CONFIG,
    profile: str | None = opt.PROFILE,
    work_dir: Path | None = typer.Option(None, "--work-dir", help="job folder (default: OUTPUT.reelscore/ beside the output)"),
    range_: tuple[str, str] | None = opt.RANGE,
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and stop"),
    force: bool = typer.Option(False, "--force", help="replace an existing OUTPUT"),
    as_json: bool = opt.JSON,
    reference: Path | None = opt.REFERENCE,
    reference_start: str | None = opt.REFERENCE_START,
    preview_movie: Path | None = typer.Option(None, "--preview", help="also write a review movie (H.264/AAC .mp4: picture, the edit's sound and the score, burnt-in timecode)"),
    score_level: float = opt.SCORE_LEVEL,
    stop_after: str | None = opt.STOP_AFTER,
    debug: bool = opt.DEBUG,
    *,
    flags: dict[str, Any],
) -> None:
    """Score an edit file and write it back with a new, frame-exact music track."""

    def body() -> None:
        from reelscore.config import load_config
        from reelscore.pipeline import parse_stop_after, score_file
        from reelscore.settings import build_settings, front_end_values

        stage = parse_stop_after(stop_after)

        values = front_end_values("flag", **flags, **_range(range_), reference=reference,
                                  reference_start=reference_start)
        built = build_settings(load_config(config, profile), values,
                               load_key=not dry_run and stage != "render")
        settings = built.settings
        if preview_movie is not None and (dry_run or settings.previous is not None):
            from reelscore.errors import InputError
            raise InputError("--preview needs a score: it cannot be combined with "
                             + ("--dry-run" if dry_run else "--previous"),
                             hint="run `reelscore preview SCORED_EDIT -o review.mp4` afterwards")
        if settings.previous is not None:
            _recut(input, output, work_dir, built, dry_run=dry_run, force=force,
                   as_json=as_json)
            return
        if dry_run:
            _show_plan(input, settings, as_json=as_json)
            if not as_json:
                typer.echo(f"provider: {settings.provider} (dry run: nothing rendered or sent)")
            return
        if preview_movie is not None and preview_movie.exists() and not force:
            from reelscore.errors import InputError
            raise InputError(f"--preview {preview_movie}: the file exists",
                             hint="choose another path, or pass --force to replace it")
        if settings.provider == "local":
            err.print("provider: local - an offline sketch engine for previews, not a "
                      "substitute for the music service")
        if stage is not None:
            _stop_after(input, output, work_dir, settings, built.provider_config, stage,
                        force=force, as_json=as_json)
            return
        with RichProgress(err) as progress:
            result = score_file(input, output, settings, work_dir=work_dir, force=force,
                                provider_config=built.provider_config, progress=progress)
        if preview_movie is not None:  # the review movie of what was just written
            from reelscore.preview import write_preview
            movie = write_preview(output, preview_movie, score_level_db=score_level, force=force,
                                  media_roots=settings.media_roots)
            result.summary["preview"] = str(movie.path)
        if as_json:
            out.print_json(json.dumps({**result.summary, "manifest": str(result.manifest_path)}))
            return
        out.print(score_summary_table(result.summary, result.plan))
        s = result.summary
        out.print(f"score: {s['integrated_lufs']:.2f} LUFS, true peak {s['true_peak_dbtp']:.2f} "
                  f"dBTP{' (limiter used)' if s['limiter'] else ''}; {s['scenes']} scene(s), "
                  f"{s['record_in']}-{s['record_out']}")
        out.print(s["music_changes"])
        if "ducked_seconds" in s:
            out.print(f"ducked under dialogue: {s['ducked_seconds']:.2f} s at "
                      f"{s['duck_depth_db']:+.1f} dB")
        if "preview" in s:
            out.print(f"review movie: {s['preview']}")
        out.print(f"wrote {output} (track {settings.track_name!r} -> {result.music_wav})")
        out.print(f"manifest: {result.manifest_path}")

    run_command(debug, body)


def _recut(input: Path, output: Path, work_dir: Path | None, built: BuiltSettings, *,
           dry_run: bool, force: bool, as_json: bool) -> None:
    """``score --previous OLD``: the change list and cost (``--dry-run``), or the update."""
    from reelscore.pipeline import default_work_dir, plan_edit, score_file
    from reelscore.recut_compose import min_compose_frames
    from reelscore.recut_previous import recut_dry_run
    from reelscore.timecode import exact_rate
    from reelscore.timeline import load_edit

    settings = built.settings
    assert settings.previous is not None
    if not dry_run:
        with RichProgress(err) as progress:
            scored = score_file(input, output, settings, work_dir=work_dir, force=force,
                                provider_config=built.provider_config, progress=progress)
        s = scored.summary
        if as_json:
            out.print_json(json.dumps({k: v for k, v in s.items() if k != "change_list"}))
            return
        typer.echo(s["change_list"])
        sent = (f"sent {s['requests']} request(s), {s['sent_seconds']:.2f} s with handles "
                f"(a full rescore: {s['full_rescore_seconds']:.2f} s)" if s["requests"]
                else "nothing sent")
        typer.echo(f"kept {s['kept_seconds']:.2f} s of the previous score, {sent}; "
                   f"{s['integrated_lufs']:.2f} LUFS, true peak "
                   f"{s['true_peak_dbtp']:.2f} dBTP (gain {s['recut_gain_db']:+.2f} dB)")
        typer.echo(f"wrote {output} (track {settings.track_name!r} -> {s['music_wav']})")
        typer.echo(f"manifest: {s['manifest']}")
        return
    loaded = load_edit(input, rate=exact_rate(settings.rate) if settings.rate else None)
    planned = plan_edit(loaded, settings)
    job_dir = work_dir or default_work_dir(output)
    result, folder = recut_dry_run(planned, settings.previous, job_dir,
                                   regenerate_trimmed=settings.regenerate_trimmed,
                                   limits=settings.limits(), min_frames=min_compose_frames(
                                       planned.plan.fraction_rate)
                                   if settings.method == "compose" else 0)
    if as_json:
        out.print_json(json.dumps({"changes": result.changes.model_dump(mode="json"),
                                   "cost": result.plan.cost.model_dump(mode="json"),
                                   "saved": str(folder)}))
        return
    typer.echo(result.text)
    typer.echo(f"saved: {folder} (dry run: nothing rendered or sent)")


@app.command()
def plan(
    input: Path = typer.Argument(..., help="edit file"),
    config: Path | None = opt.CONFIG,
    profile: str | None = opt.PROFILE,
    scenes: str | None = opt.SCENES,
    scene_track: int | None = opt.SCENE_TRACK,
    min_scene: float | None = opt.MIN_SCENE,
    range_: tuple[str, str] | None = opt.RANGE,
    rate: str | None = opt.RATE,
    media_root: list[Path] | None = opt.MEDIA_ROOT,
    timecode: str | None = opt.TIMECODE,
    check_media: bool = typer.Option(True, "--check-media/--no-check-media", help="stop on offline media"),
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
    reference: Path | None = opt.REFERENCE,
    reference_start: str | None = opt.REFERENCE_START,
    method: str | None = opt.METHOD,
    composition: Path | None = opt.COMPOSITION,
    brief: Path | None = opt.BRIEF,
    draft_plan: bool | None = opt.DRAFT_PLAN,
    provider: str | None = opt.PROVIDER,
    base_url: str | None = opt.BASE_URL,
    description: str | None = opt.DESCRIPTION,
    tag: list[str] | None = opt.TAG,
    model: str | None = opt.MODEL,
    debug: bool = opt.DEBUG,
) -> None:
    """Print the plan: scenes, requests and videos (no rendering; no network but --draft-plan's)."""

    def body() -> None:
        from reelscore.config import load_config
        from reelscore.errors import InputError
        from reelscore.settings import build_settings, front_end_values

        values = front_end_values(
            "flag", provider="local", scenes=scenes, scene_track=scene_track,
            min_scene=min_scene, **_range(range_), rate=rate, media_roots=media_root,
            timecode=timecode, reference=reference, reference_start=reference_start,
            method=method, brief=brief, description=description, tags=tag, model=model,
            draft_plan=draft_plan, base_url=base_url)
        if draft_plan:  # the one network call `plan` makes: the free plan endpoint
            if composition is None:
                raise InputError("--draft-plan writes the drafted plan to --composition FILE",
                                 hint="add --composition FILE to review the draft")
            values = values.model_copy(update={"provider": provider, "method": "compose"})
        built = build_settings(load_config(config, profile), values, load_key=bool(draft_plan))
        if composition is not None:
            _write_composition(input, built.settings, composition, built.provider_config)
            return
        _show_plan(input, built.settings, as_json=as_json, check_media=check_media)

    run_command(debug, body)


# ------------------------------- mounted here, not at the top: --help lists commands in this order

app.command(name="demo")(tools_cli.demo)
app.command(name="doctor")(tools_cli.doctor)
app.command(name="cuesheet")(reports_cli.cuesheet)
app.command(name="sheet")(reports_cli.sheet)
app.command(name="report")(reports_cli.report)
app.command(name="preview")(reports_cli.preview)


@app.command()
def version() -> None:
    """Print the reelscore version and the ffmpeg it uses."""
    from reelscore.ffmpeg_cli import ffmpeg_exe

    out.print(f"reelscore {__version__}; ffmpeg {ffmpeg_exe()}")


def main() -> None:
    app(prog_name="reelscore")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
