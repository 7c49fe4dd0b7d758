"""End to end through the library: real ffmpeg, real OTIO adapters, the offline engine."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from reelscore.conform import frames_to_samples
from reelscore.errors import OutputError, PossiblyChargedError
from reelscore.loudness import measure
from reelscore.pipeline import ScoreSettings, score_file
from reelscore.providers import GenerationSettings
from reelscore.providers.base import ProviderConfig
from reelscore.providers.local import LocalProvider
from reelscore.wavfile import read_wav
from tests.audio_helpers import dominant_pitch_class, ffmpeg_loudness, wav_header
from tests.edits import build_timeline

R = Fraction(24000, 1001)


class CountingProvider:
    """The real offline engine, counting calls (and optionally dying after 'sending')."""

    name = "local"
    charges = True  # counted as a paid service: a request sent and lost needs --resubmit
    reports_upload_complete = False

    def __init__(self, die: bool = False) -> None:
        self.inner = LocalProvider(ProviderConfig())
        self.calls = 0
        self.die = die

    def preflight(self) -> None:
        return None

    def generate(self, request, out_dir, *, on_event=lambda n, d: None):
        self.calls += 1
        if self.die:
            raise KeyboardInterrupt  # the process is stopped while waiting for the service
        return self.inner.generate(request, out_dir, on_event=on_event)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def edit(tmp_path, coded_video) -> Path:
    a = coded_video(frames=600, rate=R, source_id=11, gop=120)
    b = coded_video(frames=600, rate=R, source_id=12, gop=120)
    tracks = [
        [("clip", a, 11, 10, 100), ("clip", b, 12, 200, 80), ("gap", 30), ("clip", a, 11, 300, 120),
         ("clip", b, 12, 50, 90)],
        [("gap", 150), ("clip", b, 12, 400, 60)],
    ]
    tl = build_timeline(tracks, R, start_frame=86400)
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


def test_score_end_to_end(tmp_path, edit):
    before = sha(edit)
    out = tmp_path / "scored.otio"
    settings = ScoreSettings(generation=GenerationSettings(seed=3), min_scene_seconds=2.0)
    provider = CountingProvider()
    result = score_file(edit, out, settings, provider=provider)
    plan = result.plan
    assert sha(edit) == before, "the input edit must never change"

    # The written edit: original tracks untouched, one new audio track at the scored range.
    original = otio.adapters.read_from_file(str(edit))
    scored = otio.adapters.read_from_file(str(out))
    assert len(scored.tracks) == len(original.tracks) + 1
    for a, b in zip(original.tracks, scored.tracks):
        assert otio.adapters.write_to_string(a) == otio.adapters.write_to_string(b)
    score = scored.tracks[-1]
    assert score.name == "Score" and score.kind == otio.schema.TrackKind.Audio
    clip = next(c for c in score if isinstance(c, otio.schema.Clip))
    rng = clip.transformed_time_range(clip.trimmed_range(), scored.tracks)
    assert round(rng.start_time.value) == plan.range.start == 0
    assert round(rng.duration.value) == plan.range.duration == 420
    st = scored.global_start_time + rng.start_time
    record_in = st.to_timecode(st.rate, False)
    assert record_in == "01:00:00:00"
    meta = clip.metadata["reelscore"]
    assert meta["provider"] == "local" and meta["seed"] is not None and meta["job_id"]
    assert Path(otio.url_utils.filepath_from_url(clip.media_reference.target_url)) == result.music_wav

    # The WAV: 48 kHz 24-bit stereo, exactly the scored range long, at -14 LUFS under -1 dBTP.
    hdr = wav_header(result.music_wav)
    assert (hdr["rate"], hdr["bits"], hdr["channels"]) == (48000, 24, 2)
    assert hdr["frames"] == frames_to_samples(420, R)
    samples, rate = read_wav(result.music_wav)
    m = measure(samples, rate)
    assert abs(m.integrated_lufs - (-14.0)) <= 0.1 and m.true_peak_dbtp <= -1.0
    i_ff, tp_ff = ffmpeg_loudness(result.music_wav)
    assert abs(i_ff + 14.0) <= 0.2 and tp_ff <= -0.9

    # Manifest: versioned, complete, no secrets.
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["schema"] == "reelscore.manifest/1"
    assert manifest["plan"]["scenes"][0]["range"]["record_in"] == "01:00:00:00"
    req = manifest["requests"]["r01"]
    assert req["status"] == "done" and len(req["clips"]) == len(plan.requests[0].videos)
    assert all(len(c["sha256"]) == 64 and c["bytes"] > 0 for c in req["clips"])
    assert manifest["conform"][0]["drift_samples"] == 0
    assert manifest["loudness"]["delivered"]["integrated_lufs"] == pytest.approx(-14.0, abs=0.1)
    assert manifest["outputs"]["edit"] == str(out)
    assert provider.calls == 1


def test_music_changes_land_on_scene_boundaries(tmp_path, edit):
    """The audio at each scene's record time is the audio generated for that scene."""
    out = tmp_path / "scored.otio"
    settings = ScoreSettings(generation=GenerationSettings(seed=5), min_scene_seconds=2.0)
    result = score_file(edit, out, settings)
    manifest = json.loads(result.manifest_path.read_text())
    sections = manifest["requests"]["r01"]["response"]["metadata"]["sections"]
    samples, _ = read_wav(result.music_wav)
    plan = result.plan
    assert len(sections) == len(plan.requests[0].videos)
    for video, section in zip(plan.requests[0].videos, sections):
        start = frames_to_samples(video.range.start - plan.range.start, plan.fraction_rate)
        assert section["start_sample"] == start  # the engine's section starts on the cut
        window = samples[start + 2400: start + section["length_samples"] - 2400]
        assert dominant_pitch_class(window) == section["root_pc"], video.id


def test_resume_reuses_clips_and_music(tmp_path, edit):
    out = tmp_path / "scored.otio"
    work = tmp_path / "job"
    provider = CountingProvider()
    first = score_file(edit, out, ScoreSettings(), work_dir=work, provider=provider)
    clips = sorted((work / "clips").glob("*.mp4"))
    stamps = {p: p.stat().st_mtime_ns for p in clips}
    wav1 = first.music_wav.read_bytes()
    second = score_file(edit, out, ScoreSettings(), work_dir=work, provider=provider, force=True)
    assert provider.calls == 1, "a stored response must never be requested again"
    assert {p: p.stat().st_mtime_ns for p in clips} == stamps, "unchanged clips are not re-rendered"
    assert second.music_wav.read_bytes() == wav1


def test_sent_but_not_stored_needs_resubmit(tmp_path, edit):
    out = tmp_path / "scored.otio"
    work = tmp_path / "job"
    with pytest.raises(KeyboardInterrupt):
        score_file(edit, out, ScoreSettings(), work_dir=work, provider=CountingProvider(die=True))
    manifest = json.loads((work / "manifest.json").read_text())
    assert manifest["requests"]["r01"]["status"] == "sent"
    assert not out.exists()
    again = CountingProvider()
    with pytest.raises(PossiblyChargedError, match="--resubmit"):
        score_file(edit, out, ScoreSettings(), work_dir=work, provider=again)
    assert again.calls == 0
    score_file(edit, out, ScoreSettings(resubmit=True), work_dir=work, provider=again)
    assert again.calls == 1 and out.exists()
    events = json.loads((work / "manifest.json").read_text())["events"]
    assert any(e["event"] == "resubmit" for e in events)


def test_existing_output_is_kept_without_force(tmp_path, edit):
    out = tmp_path / "scored.otio"
    out.write_text("earlier output")
    with pytest.raises(OutputError, match="--force"):
        score_file(edit, out, ScoreSettings())
    assert out.read_text() == "earlier output"
    with pytest.raises(OutputError, match="never modifies its input"):
        score_file(edit, edit, ScoreSettings(), force=True)


@pytest.mark.slow
def test_several_requests_are_joined_on_a_cut(tmp_path, edit):
    """Force 8-second requests: the music is conformed per request and crossfaded on the cut."""
    out = tmp_path / "scored.otio"
    settings = ScoreSettings(max_request_seconds=8.0, generation=GenerationSettings(seed=9))
    result = score_file(edit, out, settings)
    plan = result.plan
    assert len(plan.requests) >= 2
    samples, _ = read_wav(result.music_wav)
    assert samples.shape[0] == frames_to_samples(plan.range.duration, R)
    for prev, nxt in zip(plan.requests, plan.requests[1:]):
        assert prev.handle_frames == plan.crossfade_frames
        assert prev.videos[-1].range.end == nxt.range.start + prev.handle_frames
        cut = frames_to_samples(nxt.range.start - plan.range.start, R)
        handle = frames_to_samples(prev.handle_frames, R)
        # No silence and no click at any join: no 50 ms window from 0.25 s before the cut to
        # 0.25 s after the crossfade falls 6 dB under the second before the cut (a fade from
        # silence, as when a handle is dropped, falls 17 dB).
        steady = np.sqrt(np.mean(samples[cut - 48000:cut] ** 2))
        levels = [np.sqrt(np.mean(samples[s:s + 2400] ** 2))
                  for s in range(cut - 12000, cut + handle + 9600, 480)]
        assert min(levels) >= steady * 10 ** (-6 / 20)
    m = measure(samples, 48000)
    assert abs(m.integrated_lufs + 14) <= 0.1 and m.true_peak_dbtp <= -1.0


def test_manifest_of_an_earlier_run_reads_as_typed_records(tmp_path):
    """A manifest as the dict-based job wrote it (same schema) opens, keeps what it does not
    know, and refuses a request record it cannot read (it may stand for a paid generation)."""
    from reelscore.errors import JobError
    from reelscore.job import MANIFEST_SCHEMA, Job

    clip = {"path": str(tmp_path / "clips" / "r01v01.mp4"), "frames": 48, "rate": "24",
            "duration_s": 2.0, "bytes": 1000, "sha256": "ab" * 32, "scene_ids": ["s001"]}
    old = {
        "schema": MANIFEST_SCHEMA, "job_id": "j1", "created": "2026-01-01T00:00:00+00:00",
        "reelscore_version": "0.1", "runs": [{"started": "x", "pid": 1}], "events": [],
        "renders": {"r01v01": {"cache_key": "k", "sha256": "ab" * 32, "clip": clip,
                               "timeline_range": {"start": 0, "duration": 48, "rate": "24"},
                               "record_in": "01:00:00:00", "record_out": "01:00:02:00",
                               "encode": {"width": 640, "height": 360, "rate": "24",
                                          "video_kbps": 900, "crf": 26, "preset": "veryfast",
                                          "audio": False}},
                    "r01v02": {"cache_key": "k"}},  # unreadable: rendered again
        "requests": {"r01": {"status": "sent", "key": "q", "provider": "elevenlabs",
                             "sent_at": 1.5, "clips": [clip], "total_seconds": 2.0,
                             "total_bytes": 1000, "attempts": [{"event": "attempt", "n": 1}],
                             "events": [{"event": "upload_complete"}], "note": "kept"}},
    }
    work = tmp_path / "job"
    work.mkdir()
    (work / "manifest.json").write_text(json.dumps(old))
    job = Job(work)
    job.open()
    assert job.request("r01").status == "sent" and job.request("r01").clips[0].frames == 48
    assert job.request("r02").status == "planned" and "r02" not in job.requests
    render = job.render("r01v01")
    assert render is not None and render.encode.video_kbps == 900
    assert job.render("r01v02") is None
    job.request_event("r01", "attempt", {"n": 2})
    saved = json.loads((work / "manifest.json").read_text())
    assert saved["requests"]["r01"]["note"] == "kept"
    assert [a["n"] for a in saved["requests"]["r01"]["attempts"]] == [1, 2]
    assert saved["renders"]["r01v01"]["clip"] == clip and len(saved["runs"]) == 2

    old["requests"]["r01"]["status"] = "charged?"
    (work / "manifest.json").write_text(json.dumps(old))
    with pytest.raises(JobError, match="request r01"):
        Job(work).open()
