"""Every sample in ../shared/otio_samples that OTIO reads: scored, and written back to every format.

Each sample is scored once (module-scoped cache) with the offline engine over its first few
seconds of picture, from media generated to match its references: for every clip the scored range
shows, a small H.264 file under a temporary --media-root, named as the reference names it (or as
the clip, for missing references), long enough for the frames the clip uses and with an embedded
start timecode when the edit gives no media range (EDLs). Image sequences, which reelscore renders
only through a reference movie, are scored in reference-movie mode.

The scored timeline is then written to .otio, .otioz, FCP 7 XML, FCPX XML, AAF and EDL and each
file read back with the same adapter (``verify_written`` plus the checks here). Where an adapter
cannot write the sample at all, the write must fail up front with an OutputError naming the
limitation, and the same adapter must also fail on the original edit (so the limit is the
adapter's, not something the score track caused). Where it can, the original tracks must read
back exactly as they do from the same adapter without the score track.
"""

from __future__ import annotations

import math
import subprocess
import zipfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest

from reelscore.errors import (
    EditReadError,
    OutputError,
    RangeError,
    ReelscoreError,
    UnsupportedError,
)
from reelscore.ffmpeg_cli import ffmpeg_exe, file_arg
from reelscore.picture import build_picture
from reelscore.pipeline import ScoreResult, ScoreSettings, score_timeline
from reelscore.providers import GenerationSettings
from reelscore.scenes import scored_range
from reelscore.timecode import frames_to_tc, rt_frames
from reelscore.timeline import LoadedEdit, load_edit, url_to_path_candidates
from reelscore.writeback import (
    ADAPTER_LABELS,
    media_url,
    prepared_for_adapter,
    read_written,
    verify_written,
    write_edit,
)
from tests.audio_helpers import wav_header
from tests.conftest import SAMPLES

FORMATS = [".otio", ".otioz", ".xml", ".fcpxml", ".aaf", ".edl"]
ADAPTERS = {".otio": "otio_json", ".otioz": "otioz", ".xml": "fcp_xml", ".fcpxml": "fcpx_xml",
            ".aaf": "AAF", ".edl": "cmx_3600"}
RATES = {"25fps.edl": Fraction(25), "timecode_mismatch.edl": Fraction(25)}
ADAPTER_ARGS = {"timecode_mismatch.edl": {"ignore_timecode_mismatch": True}}
# Samples that hold nothing to score, and the error each must give (test_samples.py has more).
UNSCORABLE = {
    "premiere_example.MARKER3_post0181.otio": (EditReadError, "newer OpenTimelineIO"),
    "fcpx_clips.fcpxml": (UnsupportedError, "clips but no timeline"),
    "sample_blanks.ale": (EditReadError, "no OTIO adapter reads '.ale'"),
    "multi_audio.edl": (RangeError, "no enabled video clips"),
    "test_muted_clip.aaf": (RangeError, "no enabled video clips"),
}
# Rendered from a reference movie instead: an image sequence (reelscore reads those only from a
# reference movie), and a dissolve that needs 10 frames before media frame 0 of a reference
# without a media range (no file can hold them).
REFERENCE_MODE = {"img_seq_media_reference.otio", "transition_test.otio"}
SECONDS = 4
RAW_ERRORS = ("NoneType", "has no attribute", "not enough values", "unpack", "Traceback")


def _all_samples() -> list[str]:
    if not SAMPLES.is_dir():
        return []
    return sorted(p.name for p in SAMPLES.iterdir() if p.name != "MANIFEST.txt")


SCORABLE = [n for n in _all_samples() if n not in UNSCORABLE]


def _load(name: str) -> LoadedEdit:
    rate = RATES.get(name, Fraction(24) if name.endswith(".edl") else None)
    return load_edit(SAMPLES / name, rate=rate, adapter_args=ADAPTER_ARGS.get(name))


def _score_window(loaded: LoadedEdit) -> tuple[int, int]:
    """Stack frames to score: up to SECONDS from the first picture frame (whole short edits)."""
    picture = build_picture(loaded.timeline, loaded.rate)
    start, end = scored_range(loaded.timeline, picture, loaded.rate, loaded.start_frame)
    first = next((s.start for s in picture.segments(start, end) if s.clip is not None), start)
    if end - first < loaded.rate:  # under a second of picture left: take the gaps before it too
        first = start
    return first, min(end, first + int(SECONDS * loaded.rate))


def _media_name(clip: otio.schema.Clip) -> str:
    ref = clip.media_reference
    if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
        path = url_to_path_candidates(ref.target_url)[0]
        return path.replace("\\", "/").rsplit("/", 1)[-1]
    return clip.name  # missing references are relinked by clip name


def _lavfi_movie(path: Path, rate: Fraction, frames: int, timecode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
           "-f", "lavfi", "-i", f"testsrc2=size=96x54:rate={rate.numerator}/{rate.denominator}",
           "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-g", "24",
           "-pix_fmt", "yuv420p"]
    if timecode:
        cmd += ["-timecode", timecode]
    # Forced mp4: reference names may have any extension (.mov, .mxf, .exr) or none.
    subprocess.run([*cmd, "-f", "mp4", file_arg(path)], check=True, capture_output=True)


def _speed(item: otio.core.SerializableObject) -> Fraction:
    """How many media frames a record frame may consume here (time warps on it and above)."""
    k = Fraction(1)
    node: Any = item
    while node is not None:
        for eff in getattr(node, "effects", []):
            if isinstance(eff, otio.schema.LinearTimeWarp) and not isinstance(eff, otio.schema.FreezeFrame):
                k *= max(Fraction(1), abs(Fraction(eff.time_scalar).limit_denominator(1000)))
        node = node.parent()
    return k


def make_matching_media(loaded: LoadedEdit, start: int, end: int, folder: Path) -> int:
    """Write a file under *folder* for every source the edit shows in [start, end).

    Sized from the edit alone (not from reelscore's picture code): each clip near the range gets
    its source range, stretched by any speed-up above it and widened by transition handles, and
    its file is counted from the media range's start (or carries an embedded start timecode).
    """
    tl = loaded.timeline
    margin = int(2 * loaded.rate)
    wanted: dict[str, dict[str, Any]] = {}
    for clip in tl.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.GeneratorReference):
            continue
        try:
            rec = clip.transformed_time_range(clip.trimmed_range(), tl.tracks)
            lo_rec = rt_frames(rec.start_time, loaded.rate)
            if lo_rec >= end + margin or lo_rec + rt_frames(rec.duration, loaded.rate) <= start - margin:
                continue
        except (ValueError, otio.exceptions.OTIOError):
            pass  # keep it: better a file too many
        sr = clip.trimmed_range()
        rate = Fraction(sr.duration.rate).limit_denominator(1001)
        handles = (0, 0)
        parent = clip.parent()
        if isinstance(parent, otio.schema.Track):
            h_in, h_out = parent.handles_of_child(clip)
            handles = (rt_frames(h_in, rate) if h_in else 0, rt_frames(h_out, rate) if h_out else 0)
        first = rt_frames(sr.start_time, rate) - handles[0]
        last = (rt_frames(sr.start_time, rate)
                + math.ceil(rt_frames(sr.duration, rate) * _speed(clip)) + handles[1] + 2)
        entry = wanted.setdefault(_media_name(clip), {"rate": rate, "length": 0, "tc_from": None})
        avail = ref.available_range
        if avail is not None:  # the renderer counts file frames from the media range's start
            origin = rt_frames(avail.start_time, rate)
            entry["length"] = max(entry["length"], last - origin,
                                  rt_frames(avail.duration, rate))
        else:  # ... else from the file's own start timecode
            lo = first if entry["tc_from"] is None else min(entry["tc_from"], first)
            hi = last if entry["tc_from"] is None else max(entry["tc_from"] + entry["length"], last)
            entry["tc_from"], entry["length"] = max(0, lo), hi - max(0, lo)
    for name, entry in wanted.items():
        tc = frames_to_tc(entry["tc_from"], entry["rate"]) if entry["tc_from"] is not None else None
        _lavfi_movie(folder / name, entry["rate"], entry["length"] + 2, tc)
    return len(wanted)


@dataclass
class Scored:
    loaded: LoadedEdit
    result: ScoreResult
    record_in: str
    frames: int


def _score(name: str, root: Path) -> Scored:
    loaded = _load(name)
    start, end = _score_window(loaded)
    media = root / "media" / name
    media.mkdir(parents=True)
    extra: dict[str, Any] = {"media_roots": [media]}
    if name in REFERENCE_MODE:
        movie = root / "reference" / f"{name}.mp4"
        _lavfi_movie(movie, loaded.rate, end - start)
        extra = {"reference": movie,
                 "reference_start": frames_to_tc(loaded.start_frame + start, loaded.rate,
                                                 drop_frame=loaded.drop_frame)}
    else:
        make_matching_media(loaded, start, end, media)
    settings = ScoreSettings(
        # Typed as the editor's NLE shows them (05:00:00;00 on the drop-frame AAF).
        range_in=frames_to_tc(loaded.start_frame + start, loaded.rate, drop_frame=loaded.drop_frame),
        range_out=frames_to_tc(loaded.start_frame + end, loaded.rate, drop_frame=loaded.drop_frame),
        markers=True, proxy_width=160, generation=GenerationSettings(seed=1), **extra)
    result = score_timeline(loaded, settings, work_dir=root / "jobs" / name)
    return Scored(loaded, result, settings.range_in or "", end - start)


@pytest.fixture(scope="module")
def scored_sample(tmp_path_factory):
    """name -> Scored, each sample scored once for the whole module (failures cached too)."""
    root = tmp_path_factory.mktemp("samples")
    cache: dict[str, Scored | BaseException] = {}

    def get(name: str) -> Scored:
        if name not in cache:
            try:
                cache[name] = _score(name, root)
            except Exception as exc:
                cache[name] = exc
        got = cache[name]
        if isinstance(got, BaseException):
            raise got
        return got

    return get


@pytest.mark.parametrize("name", sorted(UNSCORABLE))
def test_unscorable_samples_fail_clearly(name, samples_dir, tmp_path):
    exc_type, text = UNSCORABLE[name]
    with pytest.raises(exc_type) as info:
        loaded = _load(name)
        score_timeline(loaded, ScoreSettings(), work_dir=tmp_path / "job")
    assert text in str(info.value)


@pytest.mark.parametrize("name", SCORABLE)
def test_sample_is_scored(name, samples_dir, scored_sample):
    s = scored_sample(name)
    plan = s.result.plan
    assert plan.range.record_in == s.record_in
    assert plan.range.duration == s.frames
    hdr = wav_header(s.result.music_wav)
    rate = plan.fraction_rate
    assert (hdr["rate"], hdr["channels"], hdr["bits"]) == (48000, 2, 24)
    assert hdr["frames"] == round(Fraction(s.frames) / rate * 48000)
    if s.frames / rate >= 3:  # integrated loudness needs a few gating blocks
        assert abs(s.result.loudness["delivered"]["integrated_lufs"] + 14) <= 0.3
    # The score track sits under the scored range in the scored (in-memory) timeline.
    score_tracks = [t for t in s.result.timeline.tracks if t.name == "Score"]
    assert len(score_tracks) == 1
    clip = next(c for c in score_tracks[0] if isinstance(c, otio.schema.Clip))
    assert clip.metadata["reelscore"]["record_in"] == s.record_in
    assert len(clip.markers) == len(plan.scenes)
    assert len(s.result.timeline.tracks) == len(s.loaded.original.tracks) + 1


def _signature(tl: otio.schema.Timeline, skip_media: str, ignore_markers: set[str]) -> list[Any]:
    """What a reader gives back of the original tracks: kind, items, timing, media, markers."""
    out: list[Any] = []
    for track in tl.tracks:
        items = [(type(i).__name__, i.name, round(i.duration().to_seconds() * 1000),
                  str(getattr(getattr(i, "media_reference", None), "target_url", "")),
                  sorted(m.name for m in getattr(i, "markers", []) if m.name not in ignore_markers))
                 for i in track]
        if any(skip_media in it[3] for it in items):
            continue  # the score track
        out.append((track.kind, items))
    return out


def _clip_positions(tl: otio.schema.Timeline) -> list[tuple[str, float]]:
    out = []
    for track in tl.tracks:
        for i, item in enumerate(track):
            if isinstance(item, otio.schema.Clip):
                at = track.range_of_child_at_index(i).start_time.to_seconds()
                out.append((item.name, round(at, 3)))
    return sorted(out)


def _raw_write(tl: otio.schema.Timeline, path: Path, adapter: str) -> BaseException | None:
    args: dict[str, Any] = {"use_empty_mob_ids": True} if adapter == "AAF" else {}
    try:
        if adapter == "otioz":
            otio.adapters.write_to_file(tl, str(path), adapter_name="otio_json")
        else:
            otio.adapters.write_to_file(tl, str(path), adapter_name=adapter, **args)
    except Exception as exc:
        return exc
    return None


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("name", SCORABLE)
def test_sample_written_back(name, ext, samples_dir, scored_sample, tmp_path):
    try:
        s = scored_sample(name)
    except ReelscoreError as exc:
        pytest.fail(f"{name} could not be scored: {exc}")
    adapter = ADAPTERS[ext]
    scored, plan = s.result.timeline, s.result.plan
    out = tmp_path / f"scored{ext}"
    # What the same adapter does with the edit alone (prepared the same way, no score track).
    baseline = tmp_path / f"original{ext}"
    base_error: BaseException | None = None
    base_back: otio.schema.Timeline | None = None
    if adapter != "cmx_3600":  # the EDL holds the score track alone
        base_error = _raw_write(prepared_for_adapter(s.loaded.original, adapter), baseline, adapter)
        if base_error is None and adapter != "otioz":
            try:
                base_back = read_written(baseline, adapter, plan.fraction_rate)
            except OutputError as exc:
                base_error = exc
    try:
        write_edit(scored, out)
    except OutputError as exc:
        msg = str(exc)
        if base_error is None and "used again, identical" in msg:
            # Refused although the writer would not raise: it would write the repeats wrong.
            # Check the claim on the edit alone: its clips come back at other positions.
            assert _clip_positions(base_back) != _clip_positions(s.loaded.original)
            base_error = AssertionError("repeats written as back-references")
        assert base_error is not None, f"{adapter} writes the edit alone but not with the score: {msg}"
        assert ADAPTER_LABELS[adapter] in msg and "write .otio instead" in msg
        assert not any(raw in msg for raw in RAW_ERRORS), msg  # a named limitation, not a crash
        assert not out.exists()
        return
    assert base_error is None, f"{adapter} cannot write the edit alone ({base_error!r}) but wrote it"

    back = read_written(out, adapter, plan.fraction_rate)
    report = verify_written(out, scored, plan, back=back)
    entry = report["score"][0]
    # (FCPX keeps no start timecode: there the position is checked from the timeline start.)
    assert entry["record_in"] == s.record_in
    assert entry["frames"] == s.frames
    wav = s.result.music_wav
    assert entry["media"] == {
        "otioz": f"media/{wav.name}", "fcp_xml": media_url(wav, "fcp"),
        "cmx_3600": str(wav.absolute()), "fcpx_xml": wav.absolute().as_uri(),
        "AAF": wav.absolute().as_uri(),
    }.get(adapter, entry["media"])
    if adapter in ("otio_json", "otioz"):
        assert entry["provenance"] and entry["markers"] == len(plan.scenes)
    if adapter == "cmx_3600":
        clips = list(back.find_clips())
        assert len(clips) == 1 and back.tracks[0].kind == otio.schema.TrackKind.Audio
        return
    if adapter == "otioz":
        with zipfile.ZipFile(out) as zf:  # the WAV alone travels in the bundle
            assert [n for n in zf.namelist() if n.startswith("media/")] == [f"media/{wav.name}"]
        return
    if adapter == "otio_json":
        return  # verify_written compared every original track exactly
    # The original tracks read back as the same adapter reads them without the score.
    # FCPX: the adapter's reader also hands a connected clip's markers to the clip it hangs
    # from (docs/formats.md), so scene markers are left out of the comparison there.
    ignore = {m.name for _t, c in _score_clips(scored) for m in c.markers} if adapter == "fcpx_xml" else set()
    assert _signature(back, wav.name, ignore) == _signature(base_back, wav.name, ignore)


def _score_clips(tl: otio.schema.Timeline) -> list[tuple[Any, otio.schema.Clip]]:
    from reelscore.writeback import score_clips

    return score_clips(tl)
