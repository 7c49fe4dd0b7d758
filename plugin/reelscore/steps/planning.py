"""Planning a run: everything decided without rendering or the network.

``plan_edit`` probes a source for its aspect ratio (the proxy frame size) and, in reference
mode, the reference movie; nothing else touches a file. ``default_renderer`` picks how the plan's
videos will be rendered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import opentimelineio as otio

from reelscore.clip_audio import AUDIO_KBPS
from reelscore.dialogue import check_dialogue
from reelscore.errors import MediaError
from reelscore.ffmpeg_cli import probe
from reelscore.pathmap import PathMap
from reelscore.picture import Picture, build_picture
from reelscore.plan import PlanLimits, ScorePlan, make_plan
from reelscore.render import FFmpegRenderer, Renderer, check_online
from reelscore.scenes import find_scenes, scored_range
from reelscore.settings import ScoreSettings
from reelscore.timeline import LoadedEdit, MediaResolver


@dataclass
class PlannedEdit:
    loaded: LoadedEdit
    picture: Picture
    plan: ScorePlan
    resolver: MediaResolver


def _proxy_size(picture: Picture, resolver: MediaResolver, width: int) -> tuple[int, int]:
    """Proxy frame size from the first online source's aspect ratio (16:9 if none)."""
    for layer in picture.layers:
        for piece in layer:
            ref = piece.clip.media_reference
            if isinstance(ref, otio.schema.GeneratorReference):
                continue
            lookup = resolver.resolve_clip(piece.clip)
            if lookup.path is None:
                continue
            try:
                info = probe(lookup.path)
            except MediaError:
                continue
            if info.width and info.height:
                h = round(width * info.height / info.width / 2) * 2
                return width, max(2, h)
    return width, round(width * 9 / 16 / 2) * 2


def plan_edit(
    loaded: LoadedEdit, settings: ScoreSettings, *, check_media: bool = True,
    limits: PlanLimits | None = None,
) -> PlannedEdit:
    """Decide everything that can be decided without rendering or the network."""
    tl = loaded.timeline
    rate = loaded.rate
    # Clips that carry sound (--use-audio-as-reference): AAC is in every clip's byte budget.
    clip_audio = settings.clip_audio or bool(settings.generation.use_audio_as_reference)
    limits = limits or settings.limits()
    if clip_audio:
        limits = limits.model_copy(update={"audio_kbps": AUDIO_KBPS})
    # --timecode df|ndf over the edit's own flag: governs every label shown, typed and written.
    drop_frame = loaded.set_timecode(settings.timecode)
    picture = build_picture(tl, rate)
    start, end = scored_range(tl, picture, rate, loaded.start_frame, settings.range_in,
                              settings.range_out, drop_frame=drop_frame)
    edit_dir = loaded.path.parent if loaded.path else None
    resolver = MediaResolver(edit_dir, settings.media_roots,
                             allow_remote=settings.allow_remote_media,
                             path_map=PathMap.parse(settings.path_map, name="path_map"))
    # --duck: its dialogue tracks exist and their audio is online, before any work
    check_dialogue(loaded, settings, start, end - start, resolver)
    movie = None
    if settings.reference is not None:  # reference mode: the sources may well be offline
        from reelscore.reference import check_coverage, open_reference

        movie = open_reference(settings.reference, rate, settings.reference_start)
        check_coverage(movie, loaded.start_frame + start, loaded.start_frame + end,
                       drop_frame=drop_frame)
    elif check_media:
        check_online(tl, picture, resolver, start, end, loaded.start_frame)
    scenes = find_scenes(tl, picture, policy=settings.scenes, start=start, end=end,
                         start_frame=loaded.start_frame, min_seconds=settings.min_scene_seconds,
                         scene_track=settings.scene_track, adapter=loaded.adapter,
                         drop_frame=drop_frame)
    width, height = (_proxy_size(picture, resolver, settings.proxy_width) if check_media
                     else (settings.proxy_width, round(settings.proxy_width * 9 / 32) * 2))
    if movie is not None and movie.width and movie.height:
        width = settings.proxy_width
        height = max(2, round(width * movie.height / movie.width / 2) * 2)
    plan = make_plan(
        scenes, rate=rate, start_frame=loaded.start_frame, scene_policy=settings.scenes,
        width=width, height=height, crossfade_seconds=settings.crossfade_seconds,
        limits=limits, source=str(loaded.path) if loaded.path else None,
        adapter=loaded.adapter, timeline_name=tl.name or "", ignored=picture.ignored,
        notes=loaded.notes + ([movie.describe()] if movie is not None else [])
        + ([f"rendered as the edit plays: {', '.join(picture.honoured)}"]
           if picture.honoured and movie is None else []),
        clip_audio=clip_audio, drop_frame=drop_frame,
    )
    return PlannedEdit(loaded, picture, plan, resolver)


def default_renderer(planned: PlannedEdit, settings: ScoreSettings,
                     on_frames: Callable[[int], None] | None = None) -> Renderer:
    """The renderer a run uses: the reference movie (--reference), else the edit's sources."""
    if settings.reference is not None:
        from reelscore.reference import ReferenceRenderer, open_reference

        movie = open_reference(settings.reference, planned.loaded.rate, settings.reference_start)
        return ReferenceRenderer(movie, on_frames=on_frames)
    return FFmpegRenderer(planned.loaded.timeline, planned.picture, planned.resolver,
                          on_frames=on_frames)
