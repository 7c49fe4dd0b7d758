"""Score a live Resolve timeline end to end (shared by the menu dialog and ``reelscore resolve score``).

connect (caller) -> project/timeline -> read (OTIO) -> range (whole picture or in/out marks) ->
``pipeline.score_timeline`` with the Resolve render queue (or ffmpeg from the media) -> place the
normalised WAV on a new ``Score`` track at the absolute record frame -> optional scene markers.
Nothing is placed unless the pipeline finished; placement undoes itself if it fails.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reelscore.errors import RangeError
from reelscore.resolve.api import PlacementError, Ref
from reelscore.resolve.connect import ResolveSession
from reelscore.resolve.placement import Placement, SceneMarker, place_music
from reelscore.resolve.reader import ResolveEdit, read_timeline
from reelscore.resolve.render_queue import ResolveRenderer
from reelscore.timecode import frames_to_tc, rate_label, rt_frames

if TYPE_CHECKING:
    from reelscore.pipeline import ScoreResult
    from reelscore.providers import Provider, ProviderConfig
    from reelscore.settings import ProgressSink, ScoreSettings

log = logging.getLogger(__name__)

RenderRoute = Literal["resolve", "ffmpeg"]


@dataclass
class ResolveRunOptions:
    timeline_name: str | None = None  # None: the current timeline
    use_marks: bool = False  # score the in/out marks instead of the whole picture
    render: RenderRoute = "resolve"
    work_dir: Path | None = None
    render_timeout_s: float | None = None
    use_export: bool = True  # cross-check with Resolve's own OTIO export


@dataclass
class ResolveRunResult:
    edit: ResolveEdit
    result: ScoreResult
    placement: Placement
    sfx_placement: Placement | None
    render: RenderRoute
    work_dir: Path
    notes: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        e, r, p = self.edit, self.result, self.placement
        rate = e.rate
        s = r.summary
        end = p.record_frame + p.duration_frames
        lines = [
            f"timeline {e.name!r} at {rate_label(rate)} fps, start {e.start_timecode}",
            f"scored {frames_to_tc(p.record_frame, rate, drop_frame=r.plan.drop_frame)}-"
            f"{frames_to_tc(end, rate, drop_frame=r.plan.drop_frame)} "
            f"({p.duration_frames} frames, {float(p.duration_frames / rate):.2f} s), "
            f"{s.get('scenes', '?')} scene(s), rendered by {self.render}",
            f"music on audio track A{p.track_index} {p.track_name!r} at record frame "
            f"{p.record_frame}, bin {p.bin_name!r}",
            f"loudness {s.get('integrated_lufs', 0):.2f} LUFS integrated, true peak "
            f"{s.get('true_peak_dbtp', 0):.2f} dBTP",
            f"file {p.file}",
            f"job folder {self.work_dir}",
        ]
        if self.sfx_placement is not None:
            lines.append(f"sound effects on A{self.sfx_placement.track_index} "
                         f"{self.sfx_placement.track_name!r}")
        if "ducked_seconds" in s:
            lines.append(f"ducked under dialogue: {s['ducked_seconds']:.2f} s at "
                         f"{s['duck_depth_db']:+.1f} dB")
        if p.markers_added:
            lines.append(f"{len(p.markers_added)} scene marker(s) added")
        lines += [f"note: {n}" for n in self.notes + p.notes]
        lines.append("save the project (File > Save Project) to keep the new track")
        return lines


def _safe(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return keep[:60] or "timeline"


def default_work_dir(project: str, timeline: str) -> Path:
    # A new folder per run: a Resolve render cannot be cache-checked against grade changes, so
    # resuming is opt-in (pass the same --work-dir again).
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path.home() / "reelscore" / "resolve" / _safe(project) / f"{_safe(timeline)}-{stamp}"


def apply_marks(settings: ScoreSettings, edit: ResolveEdit, timeline: Ref) -> ScoreSettings:
    """Settings with ``range_in``/``range_out`` (record TC, out exclusive) from the in/out marks."""
    if edit.marks is None:
        raise RangeError(
            f"{timeline.label} has no in/out marks",
            hint="set In and Out on the timeline (I and O keys) or score the whole timeline",
        )
    first = edit.start_frame + rt_frames(edit.marks.start_time, edit.rate)
    end = first + rt_frames(edit.marks.duration, edit.rate)
    # Labels in the form the range is read by (a ';' label always reads as drop frame).
    drop = edit.drop_frame if settings.timecode is None else settings.timecode == "df"
    return settings.model_copy(update={"range_in": frames_to_tc(first, edit.rate, drop_frame=drop),
                                       "range_out": frames_to_tc(end, edit.rate, drop_frame=drop)})


def scene_markers(result: ScoreResult) -> list[SceneMarker]:
    """One timeline marker per scene, or per composition-plan section when composing."""
    if result.marks is not None:
        ends = [m.frame for m in result.marks[1:]] + [result.plan.range.end]
        return [SceneMarker(frame=m.frame, name=m.name, note=f"reelscore {m.comment}",
                            duration=max(1, end - m.frame),
                            custom_data=f"reelscore:{result.job_id}:section{n}")
                for n, (m, end) in enumerate(zip(result.marks, ends), 1)]
    out: list[SceneMarker] = []
    for scene in result.plan.scenes:
        rng = scene.range
        note = f"reelscore {scene.id}: {rng.record_in}-{rng.record_out}"
        if scene.notes:
            note += " | " + "; ".join(scene.notes)
        out.append(SceneMarker(frame=rng.start, name=scene.name or scene.id, note=note,
                               duration=max(1, rng.duration),
                               custom_data=f"reelscore:{result.job_id}:{scene.id}"))
    return out


def score_in_resolve(
    session: ResolveSession,
    settings: ScoreSettings,
    options: ResolveRunOptions | None = None,
    *,
    provider: Provider | None = None,
    provider_config: ProviderConfig | None = None,
    progress: ProgressSink | None = None,
) -> ResolveRunResult:
    from reelscore.pipeline import score_timeline

    options = options or ResolveRunOptions()
    # clipInfo trackIndex/recordFrame are not honoured before 18: refuse before paying for music.
    session.require_version(18, "placing the music at an exact frame")
    project = session.project()
    timeline = session.timeline(project, options.timeline_name)
    pname = str(project.probe("GetName") or "project")
    edit = read_timeline(timeline, project=project, resolve=session.resolve,
                         work_dir=None, use_export=options.use_export)
    if progress is not None:
        progress.note(f"read {timeline.label} ({edit.source}): {rate_label(edit.rate)} fps, starts "
                      f"{edit.start_timecode}, {len(edit.timeline.video_tracks())} video track(s)")
    if options.use_marks:
        settings = apply_marks(settings, edit, timeline)
    renderer: ResolveRenderer | None = None
    if options.render == "resolve":
        renderer = ResolveRenderer(session.ref(), project, timeline, start_frame=edit.start_frame,
                                   rate=edit.rate, drop_frame=edit.drop_frame,
                                   timeout_s=options.render_timeout_s,
                                   progress=progress)
        settings = settings.model_copy(update={"workers": 1})  # one render queue
    work_dir = options.work_dir or default_work_dir(pname, edit.name)
    try:
        result = score_timeline(edit.loaded(), settings, work_dir=work_dir, renderer=renderer,
                                provider=provider, provider_config=provider_config,
                                progress=progress)
    finally:
        if renderer is not None:
            renderer.close()
    notes = list(edit.notes)
    if renderer is not None:
        notes += [f"render state: {p}" for p in renderer.restore_problems]
    record_frame = rt_frames(result.record_start, edit.rate)
    duration = rt_frames(result.duration, edit.rate)
    _check_wav(result.music_wav, duration, edit)
    if progress is not None:
        progress.stage("place", 1)
    markers = scene_markers(result) if settings.markers else []
    placement = place_music(project, timeline, result.music_wav, record_frame=record_frame,
                            duration_frames=duration, rate=edit.rate, start_frame=edit.start_frame,
                            track_name=settings.track_name, markers=markers,
                            drop_frame=result.plan.drop_frame)
    sfx: Placement | None = None
    if result.sfx_wav is not None:
        try:
            sfx = place_music(project, timeline, result.sfx_wav, record_frame=record_frame,
                              duration_frames=duration, rate=edit.rate,
                              start_frame=edit.start_frame,
                              track_name=f"{settings.track_name} SFX",
                              drop_frame=result.plan.drop_frame)
        except PlacementError as exc:
            notes.append(f"the sound-effects stem was not placed: {exc.message} "
                         f"(file: {result.sfx_wav})")
    if result.alternative_wav is not None:  # --duck: the unducked score beside it, muted
        notes += _place_alternative(project, timeline, result.alternative_wav, settings,
                                    record_frame=record_frame, duration=duration, edit=edit,
                                    drop_frame=result.plan.drop_frame)
    if progress is not None:
        progress.advance("place")
    return ResolveRunResult(edit, result, placement, sfx, options.render, work_dir, notes)


def _check_wav(path: Path, frames: int, edit: ResolveEdit) -> None:
    """The WAV must cover the scored range (the pipeline promises exactly; half a frame slack)."""
    from reelscore.wavfile import read_wav

    data, sample_rate = read_wav(path)
    seconds = len(data) / sample_rate
    want = float(frames / edit.rate)
    if abs(seconds - want) > 0.5 / float(edit.rate):
        raise PlacementError(
            f"the music file lasts {seconds:.3f} s but the scored range is {frames} frames "
            f"({want:.3f} s); nothing was placed",
            hint=f"the file is {path}; import it by hand or rerun",
        )


def _place_alternative(project: Ref, timeline: Ref, wav: Path, settings: ScoreSettings, *,
                       record_frame: int, duration: int, edit: ResolveEdit,
                       drop_frame: bool) -> list[str]:
    """``--duck``: the unducked score on its own new track, disabled (notes say what failed)."""
    try:
        alt = place_music(project, timeline, wav, record_frame=record_frame,
                          duration_frames=duration, rate=edit.rate, start_frame=edit.start_frame,
                          track_name=f"{settings.track_name} (unducked)", drop_frame=drop_frame)
    except PlacementError as exc:
        return [f"the unducked score was not placed: {exc.message} (file: {wav})"]
    if not timeline.probe("SetTrackEnable", "audio", alt.track_index, False):
        return [f"the unducked score is on A{alt.track_index} {alt.track_name!r} but could not "
                "be muted: disable the track by hand"]
    return [f"the unducked score is on A{alt.track_index} {alt.track_name!r}, muted"]
