"""Property-based robustness: whatever timeline or edit file comes in, reelscore either plans (and
scores) it correctly or stops with a ReelscoreError -- never another exception, never a partial
output.

Generated inputs cover the awkward corners: NTSC and odd rates (23.976, 29.97, 59.94, 12, 1000),
timelines starting at 0 or deep into the day, zero-length and negative ranges, clips at another
rate than the timeline, missing media and missing references, generators, transitions, nested
stacks several levels deep, markers, reversed or outside ``--range``, huge clip counts. Edit files
are written through real OTIO adapters and then truncated or garbled.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from opentimelineio import opentime

from reelscore.errors import ReelscoreError
from reelscore.pipeline import ScoreSettings, plan_edit, score_file
from reelscore.plan import ScorePlan
from reelscore.timecode import frames_to_tc
from reelscore.timeline import load_edit, normalise

RATES = [24000 / 1001, 24.0, 25.0, 30000 / 1001, 50.0, 60000 / 1001, 12.0, 1000.0]
PROFILE = settings(max_examples=60, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.function_scoped_fixture])

# A real, decodable source (set by the fixture below); missing ones are paths that do not exist.
REAL_MEDIA: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def real_media(coded_video: Callable[..., Path]) -> None:
    REAL_MEDIA[:] = [coded_video(frames=96, rate=Fraction(24), source_id=61, gop=24)]


def _rt(v: int, rate: float) -> opentime.RationalTime:
    return opentime.RationalTime(v, rate)


@st.composite
def clips(draw: st.DrawFn, rate: float, healthy: bool) -> otio.core.Composable:
    """One track item; a *healthy* one is well formed (the plan must succeed with those)."""
    kinds = ["clip", "clip", "gap"] if healthy else ["clip", "clip", "gap", "gap0", "neg"]
    kind = draw(st.sampled_from(kinds))
    clip_rate = rate if healthy else draw(st.sampled_from([rate, rate, 25.0, 30000 / 1001]))
    if kind.startswith("gap"):
        dur = 0 if kind == "gap0" else draw(st.integers(1, 60))
        return otio.schema.Gap(source_range=opentime.TimeRange(_rt(0, rate), _rt(dur, rate)))
    start = draw(st.integers(1, 30) if healthy else st.integers(-20, 120))
    dur = draw(st.integers(-5, 0)) if kind == "neg" else draw(st.integers(1 if healthy else 0, 60))
    ref_kind = draw(st.sampled_from(
        ["real", "real", "generator"] if healthy else
        ["real", "missing_file", "missing_ref", "generator", "none", "image_seq"]))
    ref: otio.core.SerializableObject | None
    if ref_kind == "real":
        ref = otio.schema.ExternalReference(
            target_url=REAL_MEDIA[0].as_uri(),
            available_range=draw(st.sampled_from([
                None, opentime.TimeRange(_rt(0, 24.0), _rt(96, 24.0))])))
    elif ref_kind == "missing_file":
        ref = otio.schema.ExternalReference(target_url="/nonexistent/clip 'A' -x.mov")
    elif ref_kind == "missing_ref":
        ref = otio.schema.MissingReference()
    elif ref_kind == "generator":
        ref = otio.schema.GeneratorReference(generator_kind="SolidColor")
    elif ref_kind == "image_seq":
        ref = otio.schema.ImageSequenceReference(
            target_url_base="/nonexistent/seq/", name_prefix="f.", name_suffix=".exr",
            start_frame=1, frame_step=1, rate=clip_rate, frame_zero_padding=4)
    else:
        ref = None
    clip = otio.schema.Clip(name=draw(st.sampled_from(["c", "", "ünï cödé", "-dash", "a'b\"c"])),
                            source_range=opentime.TimeRange(_rt(start, clip_rate),
                                                            _rt(dur, clip_rate)))
    if ref is not None:
        clip.media_reference = ref
    if not healthy and draw(st.integers(0, 9)) == 0:
        clip.enabled = False
    return clip


@st.composite
def tracks(draw: st.DrawFn, rate: float, depth: int, healthy: bool) -> otio.schema.Track:
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    if healthy:
        track.append(otio.schema.Clip(
            name="first", media_reference=otio.schema.GeneratorReference(generator_kind="black"),
            source_range=opentime.TimeRange(_rt(0, rate), _rt(draw(st.integers(1, 40)), rate))))
    for _ in range(draw(st.integers(0, 6))):
        if depth > 0 and draw(st.integers(0, 4)) == 0:
            stack = otio.schema.Stack()
            for _ in range(draw(st.integers(1, 2))):
                stack.append(draw(tracks(rate, depth - 1, healthy)))
            if not healthy and draw(st.booleans()):
                stack.source_range = opentime.TimeRange(
                    _rt(draw(st.integers(-5, 20)), rate), _rt(draw(st.integers(-2, 80)), rate))
            track.append(stack)
        else:
            track.append(draw(clips(rate, healthy)))
    # Transitions between neighbours, where OTIO allows one.
    if len(track) >= 2 and draw(st.integers(0, 3)) == 0:
        i = draw(st.integers(1, len(track) - 1))
        off = draw(st.integers(0, 12))
        track.insert(i, otio.schema.Transition(in_offset=_rt(off, rate), out_offset=_rt(off, rate)))
    return track


@st.composite
def timelines(draw: st.DrawFn) -> otio.schema.Timeline:
    rate = draw(st.sampled_from(RATES))
    healthy = draw(st.integers(0, 9)) < 6
    tl = otio.schema.Timeline(name=draw(st.sampled_from(["t", "", "cut/1 \"final\""])))
    gst = draw(st.sampled_from(["none", "zero", "day"] if healthy else
                               ["none", "zero", "day", "other_rate", "negative"]))
    if gst != "none":
        value = {"zero": 0, "day": 3600 * round(rate), "other_rate": 3600,
                 "negative": -10}[gst]
        tl.global_start_time = _rt(value, 25.0 if gst == "other_rate" else rate)
    for _ in range(draw(st.integers(1 if healthy else 0, 3))):
        tl.tracks.append(draw(tracks(rate, draw(st.integers(0, 3)), healthy)))
    if draw(st.booleans()):
        tl.tracks.append(otio.schema.Track(kind=otio.schema.TrackKind.Audio))
    for _ in range(draw(st.integers(0, 3))):
        tl.tracks.markers.append(otio.schema.Marker(
            name="m", marked_range=opentime.TimeRange(_rt(draw(st.integers(-10, 300)), rate),
                                                      _rt(draw(st.integers(0, 5)), rate))))
    return tl


@st.composite
def score_settings(draw: st.DrawFn) -> ScoreSettings:
    rng = None
    if draw(st.integers(0, 3)) == 0:
        a, b = draw(st.integers(-100, 400)), draw(st.integers(-100, 400))
        rng = (frames_to_tc(max(0, a), Fraction(25)), frames_to_tc(max(0, b), Fraction(25)))
    return ScoreSettings(
        scenes=draw(st.sampled_from(["cuts", "cuts", "clips", "markers"])),
        scene_track=draw(st.integers(1, 3)),
        min_scene_seconds=draw(st.sampled_from([0.0, 0.5, 2.0, 30.0])),
        range_in=rng[0] if rng else None, range_out=rng[1] if rng else None,
        max_request_seconds=draw(st.sampled_from([600.0, 4.0, 1.0])),
        max_videos=draw(st.integers(1, 10)),
    )


def check_plan(plan: ScorePlan, max_videos: int) -> None:
    """Scenes tile the scored range; requests and videos cover it in order, within limits."""
    rng = plan.range
    assert rng.duration > 0
    scenes = plan.scenes
    assert scenes and scenes[0].range.start == rng.start
    for a, b in zip(scenes, scenes[1:]):
        assert a.range.end == b.range.start
    assert scenes[-1].range.end == rng.end
    assert all(s.range.duration > 0 for s in scenes)
    assert plan.requests[0].range.start == rng.start
    assert plan.requests[-1].range.end == rng.end
    for a, b in zip(plan.requests, plan.requests[1:]):
        assert a.range.end == b.range.start
    for req in plan.requests:
        assert 1 <= len(req.videos) <= max_videos
        assert req.videos[0].range.start == req.range.start
        for a, b in zip(req.videos, req.videos[1:]):
            assert a.range.end == b.range.start
        assert req.videos[-1].range.end == req.range.end + req.handle_frames
    plan.model_dump_json()  # serialisable (it goes into the manifest)


def _event(text: str) -> None:
    with contextlib.suppress(InvalidArgument):  # outside @given (the fixed-input tests)
        event(text)


def plan_or_clear_error(loaded_or_timeline: object, s: ScoreSettings) -> ScorePlan | None:
    try:
        loaded = (normalise(loaded_or_timeline) if isinstance(loaded_or_timeline,
                                                              otio.schema.Timeline)
                  else loaded_or_timeline)
        planned = plan_edit(loaded, s)  # type: ignore[arg-type]
    except ReelscoreError as exc:
        assert str(exc).strip(), "an error must say something"
        _event(f"refused: {type(exc).__name__}")
        return None
    _event("planned")
    check_plan(planned.plan, s.max_videos)
    return planned.plan


@PROFILE
@given(tl=timelines(), s=score_settings())
def test_any_timeline_plans_or_fails_clearly(tl, s):
    plan_or_clear_error(tl, s)


WRITERS = {"otio": ".otio", "edl": ".edl", "fcp7": ".xml", "otioz": ".otioz"}


@PROFILE
@given(tl=timelines(), fmt=st.sampled_from(sorted(WRITERS)), s=score_settings(),
       damage=st.sampled_from(["none", "none", "truncate", "garble", "empty"]),
       seed=st.integers(0, 2**16))
def test_any_edit_file_loads_and_plans_or_fails_clearly(tmp_path_factory, tl, fmt, s, damage,
                                                         seed):
    folder = tmp_path_factory.mktemp("prop")
    path = folder / f"edit {fmt} 'q' ü{WRITERS[fmt]}"
    try:
        otio.adapters.write_to_file(tl, str(path))
    except Exception:  # the adapter cannot write this timeline: not our input to judge
        assume(False)
    data = path.read_bytes()
    rnd = random.Random(seed)
    if damage == "truncate" and data:
        data = data[: rnd.randrange(len(data))]
    elif damage == "garble" and data:
        buf = bytearray(data)
        for _ in range(1 + len(buf) // 200):
            buf[rnd.randrange(len(buf))] = rnd.randrange(256)
        data = bytes(buf)
    elif damage == "empty":
        data = b""
    path.write_bytes(data)
    try:
        loaded = load_edit(path, rate=Fraction(25) if fmt == "edl" else None)
    except ReelscoreError as exc:
        assert str(exc).strip()
        event(f"{fmt} {damage}: not loaded ({type(exc).__name__})")
        return
    event(f"{fmt} {damage}: loaded")
    plan_or_clear_error(loaded, s)


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(tl=timelines(), s=score_settings())
def test_generated_edits_score_or_fail_without_partial_output(tmp_path_factory, tl, s):
    """The whole run (render, offline engine, loudness, write): a result, or a clear error and
    no output at all."""
    duration = tl.duration().to_seconds() if tl.tracks else 0.0
    assume(0.2 <= duration <= 4.0)
    folder = tmp_path_factory.mktemp("score")
    edit = folder / "in.otio"
    otio.adapters.write_to_file(tl, str(edit))
    out = folder / "out.otio"
    settings_ = s.model_copy(update={"proxy_width": 160, "workers": 1})
    try:
        result = score_file(edit, out, settings_)
    except ReelscoreError as exc:
        assert str(exc).strip()
        _event(f"score refused: {type(exc).__name__}")
        assert not out.exists(), "a failed run must not leave an output"
        assert [p.name for p in folder.glob(".out*")] == [], "nor a partial one"
        return
    _event("scored")
    assert out.exists() and result.music_wav.exists()
    check_plan(result.plan, s.max_videos)
    back = otio.adapters.read_from_file(str(out))
    assert len(back.tracks) == len(tl.tracks) + 1


def test_huge_clip_count_plans_quickly():
    """Thousands of one-frame cuts: merged into at most 10 videos per request, quickly."""
    rate = 24.0
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for i in range(4000):
        track.append(otio.schema.Clip(
            name=f"c{i}", media_reference=otio.schema.GeneratorReference(generator_kind="black"),
            source_range=opentime.TimeRange(_rt(i, rate), _rt(1 + i % 3, rate))))
    tl = otio.schema.Timeline(tracks=[track], global_start_time=_rt(86400, rate))
    plan = plan_or_clear_error(tl, ScoreSettings(min_scene_seconds=0.0))
    assert plan is not None and len(plan.scenes) >= 10
    assert all(len(r.videos) <= 10 for r in plan.requests)


def test_deep_nesting_plans_or_fails_clearly():
    """A stack nested 40 levels deep."""
    rate = 25.0
    inner: otio.core.Composable = otio.schema.Clip(
        name="deep", media_reference=otio.schema.GeneratorReference(generator_kind="black"),
        source_range=opentime.TimeRange(_rt(0, rate), _rt(100, rate)))
    for _ in range(40):
        track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
        track.append(inner)
        inner = otio.schema.Stack(children=[track])
    top = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    top.append(inner)
    plan = plan_or_clear_error(otio.schema.Timeline(tracks=[top]), ScoreSettings())
    assert plan is None or plan.range.duration == 100
