"""Verification: read the written edit back with the same adapter and find the score in it.

:func:`verify_written` checks each score clip's record timecode, duration, media path (for .otioz
the bundled file's bytes), name and, where the format keeps them, the scene markers, the
provenance and the track name; for .otio/.otioz also that every original track reads back
unchanged. ``KEEPS`` says what each format keeps (docs/formats.md has the full table).
"""

from __future__ import annotations

import copy
import hashlib
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from reelscore.errors import OutputError
from reelscore.fsutil import sha256_file
from reelscore.plan import ScorePlan
from reelscore.timecode import frames_to_tc, is_drop_frame_rate, rt_frames, tc_to_frames
from reelscore.timeline import normalise
from reelscore.volume_keys import VolumeKey
from reelscore.writeback.automation import (
    VolumeAutomation,
    carries_automation,
    fcp7_keys,
    fcpx_keys,
    place_automation,
)
from reelscore.writeback.score_track import (
    ADAPTER_ERRORS,
    KEEPS_MUTED_TRACKS,
    META,
    OTIOZ_MEDIA_DIR,
    URL_FORMS,
    adapter_for_output,
    drop_frame_of,
    is_muted_score_track,
    is_score_track,
    media_path,
    media_url,
    plain_metadata,
    points_at,
    score_clips,
)

# What each format keeps of the score clip, beyond its position, length and media path
# (docs/formats.md has the full table, including what happens to the original tracks).
KEEPS: dict[str, dict[str, bool]] = {
    #            start TC  track name  clip name  markers  provenance  original tracks
    "otio_json": {"start": True, "track_name": True, "markers": True, "provenance": True, "tracks": True},
    "otioz": {"start": True, "track_name": True, "markers": True, "provenance": True, "tracks": True},
    "fcp_xml": {"start": True, "track_name": False, "markers": True, "provenance": True, "tracks": False},
    "fcpx_xml": {"start": False, "track_name": False, "markers": True, "provenance": True, "tracks": False},
    "AAF": {"start": True, "track_name": False, "markers": False, "provenance": True, "tracks": False},
    "cmx_3600": {"start": True, "track_name": False, "markers": True, "provenance": False, "tracks": False},
}


@dataclass(frozen=True)
class ExpectedScore:
    """Where a score clip must be found in a written file."""

    clip_name: str
    track_name: str
    media: Path
    record_start: int  # absolute record frame (global start + stack position)
    duration: int  # frames
    markers: tuple[int, ...]  # record frames of the scene markers
    job_id: str
    keys: tuple[VolumeKey, ...] | None = None  # --duck's volume keys, where the format has them


def expected_scores(scored: otio.schema.Timeline, adapter: str = "otio_json",
                    ) -> tuple[Fraction, int, list[ExpectedScore]]:
    """(rate, record frame of the timeline start, score clips) of a scored timeline, as
    *adapter* writes it (muted score tracks only where the writer keeps them muted; the unducked
    score with its volume keys where the format carries them, as :func:`write_edit` writes it)."""
    automation = carries_automation(adapter, post_write=True)
    if automation:
        scored = copy.deepcopy(scored)
        place_automation(scored, adapter)
    loaded = normalise(scored)
    rate = loaded.rate
    out: list[ExpectedScore] = []
    for track, clip in score_clips(loaded.timeline):
        if adapter not in KEEPS_MUTED_TRACKS and is_muted_score_track(track):
            continue
        stack = clip.transformed_time_range(clip.trimmed_range(), loaded.timeline.tracks)
        record = loaded.start_frame + rt_frames(stack.start_time, rate)
        clip_start = rt_frames(clip.trimmed_range().start_time, rate)
        markers = tuple(record + rt_frames(m.marked_range.start_time, rate) - clip_start
                        for m in clip.markers)
        ref = clip.media_reference
        url = ref.target_url if isinstance(ref, otio.schema.ExternalReference) else ""
        meta = plain_metadata(clip.metadata.get(META, {}))
        auto = VolumeAutomation.of(clip) if automation else None
        out.append(ExpectedScore(clip.name, track.name, media_path(url).absolute(), record,
                                 rt_frames(stack.duration, rate), markers,
                                 str(meta.get("job_id", "")),
                                 auto.keys if auto is not None else None))
    return rate, loaded.start_frame, out


def read_written(path: Path, adapter: str, rate: Fraction) -> otio.schema.Timeline:
    """Read a written edit back with *adapter* (no media linking, so paths stay as written)."""
    args: dict[str, Any] = {"rate": float(rate)} if adapter == "cmx_3600" else {}
    try:
        result = otio.adapters.read_from_file(
            str(path), adapter_name=adapter,
            media_linker_name=otio.media_linker.MediaLinkingPolicy.DoNotLinkMedia, **args)
    except ADAPTER_ERRORS as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OutputError(f"{path.name} was written but the {adapter} adapter cannot read it "
                          f"back: {msg}") from exc
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline))
        if len(timelines) != 1:
            raise OutputError(f"{path.name} reads back as {len(timelines)} timelines, not one")
        result = timelines[0]
    if not isinstance(result, otio.schema.Timeline):
        raise OutputError(f"{path.name} does not read back as a timeline")
    return result


def _same_file(url: str, expected: Path, adapter: str) -> bool:
    if adapter == "otioz":
        return url == media_url(expected, "bundle")
    return points_at(url, expected)


def verify_written(
    path: Path,
    scored: otio.schema.Timeline,
    plan: ScorePlan | None = None,
    *,
    back: otio.schema.Timeline | None = None,
) -> dict[str, Any]:
    """Read *path* back with its adapter and check every score clip of *scored* in it.

    Checked: the clip's record timecode (relative to the timeline start where the format keeps no
    start timecode), its duration, its media path (for .otioz the bundled file's bytes), its name,
    and where the format keeps them the scene markers, the provenance and the track name; for
    .otio/.otioz also that every original track reads back unchanged. With *plan*, the score must
    also cover exactly the plan's range. *back*: the file as :func:`read_written` already read
    it (saves a second read of a large AAF). Returns a JSON-able report; raises OutputError
    naming the first difference.
    """
    adapter = adapter_for_output(path)
    rate, start_frame, expected = expected_scores(scored, adapter)
    drop = plan.drop_frame if plan is not None else drop_frame_of(scored)
    if not expected:
        raise OutputError("the scored timeline holds no reelscore score clip to verify")
    if plan is not None:
        want = plan.start_frame + plan.range.start
        for exp in expected:
            if (exp.record_start, exp.duration) != (want, plan.range.duration):
                raise OutputError(
                    f"score clip {exp.clip_name!r} covers {frames_to_tc(exp.record_start, rate, drop_frame=drop)} "
                    f"+{exp.duration} frames, the plan {plan.range.record_in} "
                    f"+{plan.range.duration} frames")
    keeps = KEEPS.get(adapter, KEEPS["otio_json"])
    if back is None:
        back = read_written(path, adapter, rate)
    loaded = normalise(back, rate=rate if adapter == "cmx_3600" else None)
    tl = loaded.timeline

    def fail(what: str) -> OutputError:
        return OutputError(f"{path.name} ({adapter}) was written, but reading it back {what}",
                           hint="please report this; the .otio output keeps the score exactly")

    audio_clips: list[tuple[otio.schema.Track, otio.schema.Clip]] = []
    for track in tl.tracks:
        if isinstance(track, otio.schema.Track) and track.kind == otio.schema.TrackKind.Audio:
            audio_clips.extend((track, c) for c in track.find_clips(shallow_search=True))
    report: list[dict[str, Any]] = []
    score_track_names: set[str] = set()
    for exp in expected:
        hits = [(t, c) for t, c in audio_clips
                if isinstance(c.media_reference, otio.schema.ExternalReference)
                and _same_file(c.media_reference.target_url or "", exp.media, adapter)]
        if not hits:
            raise fail(f"finds no audio clip using {exp.media.name} "
                       f"({media_url(exp.media, URL_FORMS.get(adapter, 'url'))})")
        track, clip = hits[0]
        score_track_names.add(track.name)
        stack = clip.transformed_time_range(clip.trimmed_range(), tl.tracks)
        at = rt_frames(stack.start_time, loaded.rate)
        record = (loaded.start_frame if keeps["start"] else start_frame) + at
        duration = rt_frames(stack.duration, loaded.rate)
        if record != exp.record_start:
            raise fail(f"puts {clip.name!r} at {frames_to_tc(record, rate, drop_frame=drop)}, not at "
                       f"{frames_to_tc(exp.record_start, rate, drop_frame=drop)}")
        if duration != exp.duration:
            raise fail(f"gives {clip.name!r} {duration} frames, not {exp.duration}")
        if clip.name != exp.clip_name:
            raise fail(f"names the score clip {clip.name!r}, not {exp.clip_name!r}")
        if keeps["track_name"] and track.name != exp.track_name:
            raise fail(f"names the score track {track.name!r}, not {exp.track_name!r}")
        got_markers: tuple[int, ...] = ()
        if keeps["markers"] and adapter == "cmx_3600" and is_drop_frame_rate(rate):
            # The cmx reader skips LOC timecodes with ';' (29.97/59.94 DF): read them here.
            got_markers = _edl_locators(path, rate)
            if sorted(got_markers) != sorted(exp.markers):
                raise fail(f"finds LOC markers at {[frames_to_tc(f, rate, drop_frame=True) for f in got_markers]}, "
                           f"not {[frames_to_tc(f, rate, drop_frame=True) for f in exp.markers]}")
        elif keeps["markers"]:
            if adapter == "cmx_3600":  # LOC: record timecode kept as the marker's position
                got_markers = tuple(rt_frames(m.marked_range.start_time, loaded.rate)
                                    for m in clip.markers)
            else:
                clip_start = rt_frames(clip.trimmed_range().start_time, loaded.rate)
                got_markers = tuple(record + rt_frames(m.marked_range.start_time, loaded.rate)
                                    - clip_start for m in clip.markers)
            if sorted(got_markers) != sorted(exp.markers):
                raise fail(f"finds scene markers at {[frames_to_tc(f, rate, drop_frame=drop) for f in got_markers]}, "
                           f"not {[frames_to_tc(f, rate, drop_frame=drop) for f in exp.markers]}")
        provenance = _provenance_of(clip, adapter)
        if keeps["provenance"] and exp.job_id not in provenance:
            raise fail(f"finds no reelscore provenance (job {exp.job_id}) on {clip.name!r}")
        if adapter == "otioz":
            _check_bundled(path, exp.media, fail)
        if exp.keys is not None:
            got = fcp7_keys(clip) if adapter == "fcp_xml" else fcpx_keys(path, exp.media, rate)
            if got is None or not _same_keys(got, exp.keys):
                raise fail(f"finds {len(got or ())} volume keys on {clip.name!r}, not the "
                           f"{len(exp.keys)} of the ducking")
        report.append({
            "clip": clip.name, "record_in": frames_to_tc(record, rate, drop_frame=drop),
            "record_out": frames_to_tc(record + duration, rate, drop_frame=drop), "frames": duration,
            "media": clip.media_reference.target_url, "markers": len(got_markers),
            "provenance": bool(provenance),
            **({"volume_keys": len(exp.keys)} if exp.keys is not None else {}),
        })
    written_tracks = [t for t in scored.tracks if not is_score_track(t)]
    if keeps["tracks"]:
        read_tracks = [t for t in back.tracks if not is_score_track(t)]
        if len(read_tracks) != len(written_tracks):
            raise fail(f"finds {len(read_tracks)} original tracks, not {len(written_tracks)}")
        for a, b in zip(written_tracks, read_tracks):
            if _stable_json(a) != otio.core.serialize_json_to_string(b):
                raise fail(f"finds track {b.name!r} changed")
    return {
        "adapter": adapter,
        "score": report,
        "tracks": {"original": len(written_tracks) if adapter != "cmx_3600" else 0,
                   "read_back": len(tl.tracks)},
    }


def _edl_locators(path: Path, rate: Fraction) -> tuple[int, ...]:
    """Record frames of the ``* LOC:`` lines of a written EDL (drop-frame labels included)."""
    out: list[int] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _LOC.match(line)
        if m:
            out.append(tc_to_frames(m.group(1), rate, drop_frame=";" in m.group(1)))
    return tuple(out)


_LOC = re.compile(r"^\*\s*LOC:\s*(\d\d:\d\d:\d\d[:;]\d\d)\b")


def _same_keys(got: tuple[VolumeKey, ...], want: tuple[VolumeKey, ...]) -> bool:
    """Same frames, levels within what the formats' decimals keep (5-digit gain, 0.01 dB)."""
    return len(got) == len(want) and all(
        g.frame == w.frame and abs(g.db - w.db) <= 0.01 for g, w in zip(got, want, strict=True))


def _stable_json(obj: otio.core.SerializableObject) -> str:
    """JSON of *obj* as it reads back from a file (floats settle after one round trip)."""
    text = otio.core.serialize_json_to_string(obj)
    return str(otio.core.serialize_json_to_string(otio.core.deserialize_json_from_string(text)))


def _provenance_of(clip: otio.schema.Clip, adapter: str) -> str:
    """Whatever of reelscore's provenance the format carried back, as text."""
    if adapter in ("otio_json", "otioz"):
        return str(plain_metadata(clip.metadata.get(META, {})))
    if adapter == "fcp_xml":
        return str(plain_metadata((clip.metadata.get("fcp_xml") or {}).get("comments", {})))
    if adapter == "AAF":
        return str(plain_metadata((clip.metadata.get("AAF") or {}).get("UserComments", {})))
    if adapter == "fcpx_xml":
        return str(plain_metadata(clip.media_reference.metadata.get("fcpx", {})))
    return ""


def _check_bundled(path: Path, media: Path, fail: Callable[[str], OutputError]) -> None:
    rel = media_url(media, "bundle")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        if rel not in names:
            raise fail(f"finds no {rel} in the bundle")
        others = [n for n in names if n.startswith(OTIOZ_MEDIA_DIR + "/")
                  and not n.endswith(".wav") and not n.endswith("/")]
        if others:
            raise fail(f"finds picture media copied into the bundle: {others[:3]}")
        digest = _sha256_member(zf, rel)
    if digest != sha256_file(media):
        raise fail(f"finds {rel} different from {media}")


def _sha256_member(zf: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with zf.open(name) as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
