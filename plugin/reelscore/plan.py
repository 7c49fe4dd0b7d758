"""The score plan: scenes grouped into service requests, each request into videos.  (pure, JSON)

Limits per request (reference/music_api.md): at most 10 videos, 600 s and 200 MB.
* More than 10 scenes in a request: neighbours are merged into at most 10 videos, balanced (the
  longest video is as short as it can be).
* Programmes longer than 600 s: several requests split at scene boundaries, balanced the same way.
  Every request but the last carries a *handle*: its last video runs ``crossfade`` frames past the
  cut, so the two requests' music can be joined with an equal-power crossfade that starts on the
  cut.
* The encoder bitrate is chosen per request so its clips stay under 200 MB with a margin.

All positions are whole frames of the timeline rate in stack time; record timecode is printed
alongside, in the timeline's own form: ``HH:MM:SS;FF`` when the plan's ``drop_frame`` is set
(29.97/59.94 drop frame), else ``HH:MM:SS:FF``. The plan is a pydantic model and serialises to the
``plan`` section of the manifest.
"""

from __future__ import annotations

import math
from fractions import Fraction

from opentimelineio import opentime
from pydantic import BaseModel, ConfigDict, Field

from reelscore.errors import UnsupportedError
from reelscore.limits import (
    MAX_REQUEST_BYTES,
    MAX_REQUEST_SECONDS,
    MAX_VIDEOS_PER_REQUEST,
)
from reelscore.scenes import SceneCut
from reelscore.timecode import frames_to_tc, infer_drop_frame, is_drop_frame_rate, rate_str

PLAN_SCHEMA = "reelscore.plan/1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FrameRange(_Model):
    """Stack frames [start, start + duration) at ``rate``, with record timecode for people."""

    start: int
    duration: int = Field(ge=0)
    rate: str
    record_in: str
    record_out: str  # exclusive, like an EDL record out

    @property
    def end(self) -> int:
        return self.start + self.duration

    @property
    def fraction_rate(self) -> Fraction:
        return Fraction(self.rate)

    @property
    def seconds(self) -> Fraction:
        return Fraction(self.duration) / self.fraction_rate

    def time_range(self) -> opentime.TimeRange:
        r = float(self.fraction_rate)
        return opentime.TimeRange(opentime.RationalTime(self.start, r),
                                  opentime.RationalTime(self.duration, r))


class PlannedScene(_Model):
    id: str
    range: FrameRange
    name: str = ""
    notes: list[str] = Field(default_factory=list)


class PlannedVideo(_Model):
    id: str
    scene_ids: list[str]
    range: FrameRange  # includes the handle, if any
    handle_frames: int = 0  # frames past the request's end (crossfade material)
    start_frame: int = 0  # record frame of stack frame 0 (global_start_time), for renderers

    @property
    def timeline_range(self) -> opentime.TimeRange:
        return self.range.time_range()

    @property
    def record_start(self) -> opentime.RationalTime:
        return opentime.RationalTime(self.start_frame + self.range.start, float(self.range.fraction_rate))

    @property
    def frames(self) -> int:
        return self.range.duration


class PlannedRequest(_Model):
    id: str
    videos: list[PlannedVideo]
    range: FrameRange  # what this request's music covers on the timeline (without the handle)
    handle_frames: int = 0
    video_kbps: int

    @property
    def total_frames(self) -> int:
        return sum(v.range.duration for v in self.videos)


class EncodeSettings(_Model):
    width: int = 640
    height: int = 360
    rate: str
    video_kbps: int = 1500
    crf: int = 26
    preset: str = "veryfast"
    audio: bool = False

    @property
    def fraction_rate(self) -> Fraction:
        return Fraction(self.rate)


class PlanLimits(_Model):
    max_videos: int = MAX_VIDEOS_PER_REQUEST
    max_seconds: float = MAX_REQUEST_SECONDS
    max_bytes: int = MAX_REQUEST_BYTES
    byte_margin: float = 0.85  # plan for 85 % of the limit: encoders overshoot
    max_kbps: int = 2500  # plenty for a 640-px proxy
    min_kbps: int = 200
    audio_kbps: int = 0


class ScorePlan(_Model):
    schema_version: str = PLAN_SCHEMA
    source: str | None = None
    adapter: str = ""
    timeline_name: str = ""
    rate: str
    start_frame: int  # record frame of stack frame 0
    drop_frame: bool = False  # record_in/record_out labels are drop-frame (HH:MM:SS;FF)
    range: FrameRange
    scene_policy: str
    scenes: list[PlannedScene]
    requests: list[PlannedRequest]
    crossfade_frames: int
    encode: EncodeSettings
    ignored: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def fraction_rate(self) -> Fraction:
        return Fraction(self.rate)

    def videos(self) -> list[PlannedVideo]:
        return [v for r in self.requests for v in r.videos]


def frame_range(start: int, duration: int, rate: Fraction, start_frame: int,
                drop_frame: bool = False) -> FrameRange:
    return FrameRange(
        start=start,
        duration=duration,
        rate=rate_str(rate),
        record_in=frames_to_tc(start_frame + start, rate, drop_frame=drop_frame),
        record_out=frames_to_tc(start_frame + start + duration, rate, drop_frame=drop_frame),
    )


def partition(durations: list[int], max_groups: int, capacity: int | None = None) -> list[int]:
    """Split a sequence into contiguous groups; return the group sizes (item counts).

    With *capacity*: the fewest groups whose sums stay <= capacity, then balanced (the largest
    group sum as small as possible for that count). Without: at most *max_groups*, balanced.
    """
    n = len(durations)
    if n == 0:
        return []
    if capacity is not None:
        if max(durations) > capacity:
            raise ValueError("an item exceeds the capacity")
        groups = _greedy_count(durations, capacity)
    else:
        groups = min(max_groups, n)
    lo, hi = max(durations), sum(durations)
    while lo < hi:  # smallest feasible largest-group sum for `groups` groups
        mid = (lo + hi) // 2
        if _greedy_count(durations, mid) <= groups:
            hi = mid
        else:
            lo = mid + 1
    # Fill groups towards an even share of what is left, never above the bound `lo`, closing
    # a group early only if the rest still fits in the groups that remain.
    sizes: list[int] = []
    acc, count = 0, 0
    remaining_groups = groups
    remaining_total = sum(durations)
    for i, item in enumerate(durations):
        if count:
            target = remaining_total / remaining_groups
            must = acc + item > lo or n - i < remaining_groups
            better = abs(acc - target) <= abs(acc + item - target)
            if must or (better and remaining_groups > 1
                        and _greedy_count(durations[i:], lo) <= remaining_groups - 1):
                sizes.append(count)
                remaining_total -= acc
                remaining_groups -= 1
                acc, count = 0, 0
        acc += item
        count += 1
    sizes.append(count)
    return sizes


def _greedy_count(durations: list[int], bound: int) -> int:
    groups, acc = 1, 0
    for item in durations:
        if acc + item > bound:
            groups += 1
            acc = 0
        acc += item
    return groups


def choose_kbps(seconds: float, limits: PlanLimits) -> int:
    budget_bits = limits.max_bytes * limits.byte_margin * 8
    kbps = math.floor(budget_bits / max(seconds, 1e-6) / 1000) - limits.audio_kbps
    return max(limits.min_kbps, min(limits.max_kbps, kbps))


def _split_long(scenes: list[SceneCut], max_frames: int) -> tuple[list[SceneCut], list[str]]:
    """Scenes longer than one request can hold are split in equal parts (reported)."""
    out: list[SceneCut] = []
    notes: list[str] = []
    for s in scenes:
        if s.duration <= max_frames:
            out.append(s)
            continue
        parts = math.ceil(s.duration / max_frames)
        step, extra = divmod(s.duration, parts)  # parts differ by at most a frame, none too long
        notes.append(f"scene at frame {s.start} ({s.duration} frames) is longer than one request "
                     f"allows; split into {parts} parts")
        cur = s.start
        for k in range(parts):
            nxt = s.end if k == parts - 1 else cur + step + (1 if k < extra else 0)
            out.append(SceneCut(cur, nxt, f"{s.name} ({k + 1}/{parts})" if s.name else "", list(s.notes)))
            cur = nxt
    return out, notes


def make_plan(
    scenes: list[SceneCut],
    *,
    rate: Fraction,
    start_frame: int,
    scene_policy: str,
    width: int = 640,
    height: int = 360,
    crossfade_seconds: float = 0.5,
    limits: PlanLimits | None = None,
    source: str | None = None,
    adapter: str = "",
    timeline_name: str = "",
    ignored: list[str] | None = None,
    notes: list[str] | None = None,
    clip_audio: bool = False,
    drop_frame: bool | None = None,
) -> ScorePlan:
    """Group scenes into requests and videos that respect the service limits.

    *drop_frame* is the timeline's flag (None: OTIO's inference, drop frame at 29.97/59.94)."""
    limits = limits or PlanLimits()
    drop = (infer_drop_frame(rate) if drop_frame is None else drop_frame) and is_drop_frame_rate(rate)

    def span(start: int, duration: int) -> FrameRange:
        return frame_range(start, duration, rate, start_frame, drop)

    if not scenes:
        raise UnsupportedError("nothing to score: no scenes in the range")
    crossfade = max(1, round(Fraction(str(crossfade_seconds)) * rate))
    max_frames = math.floor(Fraction(str(limits.max_seconds)) * rate)
    capacity = max_frames - crossfade  # room for a handle in every request but the last
    if capacity < 1:
        raise UnsupportedError(
            f"a request of at most {limits.max_seconds:g} s cannot hold a "
            f"{crossfade_seconds:g} s crossfade at {float(rate):.3f} fps",
            hint="raise the request length limit (max_request_seconds) or lower the crossfade")
    scenes, split_notes = _split_long(scenes, capacity)
    planned_scenes = [
        PlannedScene(id=f"s{i + 1:03d}", range=span(s.start, s.duration),
                     name=s.name, notes=list(s.notes))
        for i, s in enumerate(scenes)
    ]
    durations = [s.duration for s in scenes]
    request_sizes = partition(durations, max_groups=len(durations), capacity=capacity)
    total_end = scenes[-1].end
    requests: list[PlannedRequest] = []
    idx = 0
    for r_i, size in enumerate(request_sizes):
        group = planned_scenes[idx: idx + size]
        idx += size
        r_start = group[0].range.start
        r_end = group[-1].range.end
        handle = min(crossfade, total_end - r_end)
        video_sizes = partition([s.range.duration for s in group], limits.max_videos)
        videos: list[PlannedVideo] = []
        j = 0
        for v_i, vsize in enumerate(video_sizes):
            vs = group[j: j + vsize]
            j += vsize
            v_start = vs[0].range.start
            v_end = vs[-1].range.end
            extra = handle if v_i == len(video_sizes) - 1 else 0
            videos.append(PlannedVideo(
                id=f"r{r_i + 1:02d}v{v_i + 1:02d}",
                scene_ids=[s.id for s in vs],
                range=span(v_start, v_end - v_start + extra),
                handle_frames=extra,
                start_frame=start_frame,
            ))
        seconds = float(Fraction(r_end - r_start + handle) / rate)
        requests.append(PlannedRequest(
            id=f"r{r_i + 1:02d}",
            videos=videos,
            range=span(r_start, r_end - r_start),
            handle_frames=handle,
            video_kbps=choose_kbps(seconds, limits),
        ))
    first, last = scenes[0].start, scenes[-1].end
    return ScorePlan(
        source=source,
        adapter=adapter,
        timeline_name=timeline_name,
        rate=rate_str(rate),
        start_frame=start_frame,
        drop_frame=drop,
        range=span(first, last - first),
        scene_policy=scene_policy,
        scenes=planned_scenes,
        requests=requests,
        crossfade_frames=crossfade,
        encode=EncodeSettings(width=width, height=height, rate=rate_str(rate),
                              video_kbps=min(r.video_kbps for r in requests), audio=clip_audio),
        ignored=list(ignored or []),
        notes=list(notes or []) + split_notes,
    )
