"""The finishing steps: answers -> conformed, normalised WAVs -> the scored edit, summary, result.

conform   each request's answer trimmed/padded to its planned length, joined over the scored range
loudness  -14 LUFS integrated, -1 dBTP ceiling (limiter only if needed), re-measured as written
write     the edit with new score track(s), written in the format of the output's extension and
          read back to verify
reports   cues.csv, sheet.svg/.png and report.html in the job folder (reelscore.reports)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import opentimelineio as otio
from opentimelineio import opentime

from reelscore import loudness
from reelscore._version import __version__
from reelscore.conform import (
    SAMPLE_RATE,
    ConformReport,
    conform_request,
    join_requests,
    load_generated,
)
from reelscore.dialogue import Ducked, duck_music
from reelscore.errors import AudioError, MediaError
from reelscore.fsutil import sha256_file
from reelscore.job import Job, RecutBasis
from reelscore.musicchange import measure_changes
from reelscore.plan import ScorePlan
from reelscore.providers import GeneratedAudio
from reelscore.recut import CutFingerprint
from reelscore.reports.write import write_job_reports
from reelscore.settings import ProgressSink, ScoreSettings
from reelscore.timeline import LoadedEdit
from reelscore.wavfile import read_wav, write_wav
from reelscore.writeback import (
    ScoreMark,
    ScoreMedia,
    VolumeAutomation,
    add_score_tracks,
    verify_written,
    write_edit,
)


@dataclass
class ScoreResult:
    timeline: otio.schema.Timeline
    plan: ScorePlan
    manifest_path: Path
    music_wav: Path
    sfx_wav: Path | None
    record_start: opentime.RationalTime
    duration: opentime.RationalTime
    loudness: dict[str, Any]
    conform: list[dict[str, Any]]
    job_id: str
    output_path: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    marks: list[ScoreMark] | None = None  # composing: one per section (else scene markers)
    alternative_wav: Path | None = None  # --duck: the unducked score, placed muted


def safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return keep[:60] or "score"


def conform_all(
    plan: ScorePlan, results: dict[str, GeneratedAudio], which: str = "music",
    job: Job | None = None,
) -> tuple[np.ndarray | None, list[ConformReport]]:
    """Every request's *which* stem conformed and joined (None when there is no such stem)."""
    parts: list[np.ndarray] = []
    reports: list[ConformReport] = []
    for req in plan.requests:
        audio = results[req.id]
        path = audio.path if which == "music" else audio.sfx_path
        if path is None:
            return None, []
        try:
            data = load_generated(audio, path)
        except (AudioError, MediaError) as exc:
            # Generated (and paid for) but undecodable: never silently reused, never silently
            # sent again; the next run asks for --resubmit.
            detail = exc.message.splitlines()[0]
            if job is not None:
                job.set_status(req.id, "unusable", error=detail)
            raise AudioError(
                f"the {which} {audio.provider} returned for request {req.id} cannot be used: "
                f"{detail}",
                hint=f"it was generated and probably charged (the answer is kept at {path}); "
                "rerun with --resubmit to generate it again") from exc
        conformed, report = conform_request(data, req, plan.fraction_rate)
        parts.append(conformed)
        reports.append(report)
    return join_requests(parts, plan), reports


def verify_changes(music: np.ndarray, plan: ScorePlan) -> dict[str, Any]:
    """Verify, don't trust: where the normalised music actually changes, against every cut
    between scenes (``reelscore.musicchange``), for either method."""
    cuts = [s.range.start - plan.range.start for s in plan.scenes[1:]]
    report = measure_changes(music, SAMPLE_RATE, rate=plan.fraction_rate, cuts=cuts,
                             record_start=plan.start_frame + plan.range.start,
                             drop_frame=plan.drop_frame)
    return {"summary": report.summary(), "tolerance_frames": report.tolerance_frames,
            "hits": report.hits, "cuts": [
                {"record_tc": c.record_tc, "cut_frame": c.cut_frame,
                 "nearest_change_frames": None if c.distance_frames is None
                 else round(float(c.distance_frames), 2)} for c in report.cuts]}


def finish(
    loaded: LoadedEdit, plan: ScorePlan, job: Job, results: dict[str, GeneratedAudio],
    settings: ScoreSettings, progress: ProgressSink, *, provider_name: str,
    output_path: Path | None, cut: CutFingerprint | None = None,
    marks: Sequence[ScoreMark] | None = None,
) -> ScoreResult:
    """Conform, normalise and write; record each in the manifest. *marks*: the markers of
    ``--markers`` (default one per scene; composing: one per section)."""
    name = safe_name(loaded.timeline.name or "score")
    progress.stage("normalise", 3)
    music, reports = conform_all(plan, results, "music", job=job)
    assert music is not None
    for r in reports:
        if abs(r.drift_frames) >= 1:
            progress.note(f"{r.request_id}: the service returned {r.drift_frames:+.1f} frames "
                          f"against the plan; {r.action} to fit")
    job.set("conform", [r.to_dict() for r in reports])
    ducked: Ducked | None = None
    unducked = music
    if settings.duck:  # the placed score is the ducked one, normalised as delivered
        ducked = duck_music(loaded, plan, music, settings, SAMPLE_RATE)
        music = ducked.music
    progress.advance("normalise")

    music_wav = job.audio_dir / f"{name}.score.wav"
    sfx_wav: Path | None = None
    sfx, _ = conform_all(plan, results, "sfx", job=job)
    if sfx is None:
        normalised, lreport = loudness.normalise(
            music, SAMPLE_RATE, target_lufs=settings.target_lufs,
            true_peak_dbtp=settings.true_peak)
        ldict = lreport.to_dict()
        write_wav(music_wav, normalised, SAMPLE_RATE, bits=settings.wav_bits)
        delivered = read_wav(music_wav)[0]
    else:  # one gain on the sum keeps the service's music/SFX balance
        normalised, sfx_norm, stems = loudness.normalise_stems(
            music, sfx, SAMPLE_RATE, target_lufs=settings.target_lufs,
            true_peak_dbtp=settings.true_peak)
        lreport, ldict = stems.mix, stems.to_dict()
        if stems.sfx_silent:
            progress.note("the service returned a silent SFX stem; it is delivered as it came")
        sfx_wav = job.audio_dir / f"{name}.sfx.wav"
        write_wav(music_wav, normalised, SAMPLE_RATE, bits=settings.wav_bits)
        write_wav(sfx_wav, sfx_norm, SAMPLE_RATE, bits=settings.wav_bits)
        delivered = read_wav(music_wav)[0] + read_wav(sfx_wav)[0]
    progress.advance("normalise")
    after = loudness.measure(delivered, SAMPLE_RATE)  # the sum of what was written
    del delivered
    ldict["delivered"] = {"integrated_lufs": round(after.integrated_lufs, 3),
                          "true_peak_dbtp": round(after.true_peak_dbtp, 3)}
    job.set("loudness", ldict, save=False)
    changes = verify_changes(normalised, plan)
    job.set("music_changes", changes, save=cut is None)
    if cut is not None:  # what a later --previous update needs (docs/manifest.md)
        job.set("recut_basis", RecutBasis(
            fingerprint=cut, music_wav=str(music_wav), sha256=sha256_file(music_wav),
            first_frame=plan.range.start, sample_rate=SAMPLE_RATE,
            crossfade_frames=plan.crossfade_frames, drop_frame=plan.drop_frame,
        ).model_dump(mode="json"))
    progress.advance("normalise")

    first = results[plan.requests[0].id]
    provenance = {
        "job_id": job.job_id, "provider": provider_name, "model": first.model,
        "seed": first.seed, "reelscore_version": __version__,
        "requests": [r.id for r in plan.requests],
        "record_in": plan.range.record_in, "record_out": plan.range.record_out,
        "loudness": {"target_lufs": settings.target_lufs,
                     "integrated_lufs": round(after.integrated_lufs, 3),
                     "true_peak_dbtp": round(after.true_peak_dbtp, 3)},
        "scene_policy": plan.scene_policy, "scenes": len(plan.scenes),
    }
    media = [ScoreMedia(music_wav, settings.track_name, f"{settings.track_name} - reelscore",
                        provenance)]
    if ducked is not None:
        media.append(_unducked_alternative(unducked, ducked, job, name, settings, provenance,
                                           plan))
        outputs_alt: Path | None = media[-1].path
    else:
        outputs_alt = None
    if sfx_wav is not None:
        media.append(ScoreMedia(sfx_wav, f"{settings.track_name} SFX",
                                f"{settings.track_name} SFX - reelscore",
                                {**provenance, "stem": "sfx"}))
    scored = add_score_tracks(loaded, plan, media, markers=settings.markers, marks=marks)
    rate = plan.fraction_rate
    record_start = opentime.RationalTime(plan.start_frame + plan.range.start, float(rate))
    duration = opentime.RationalTime(plan.range.duration, float(rate))
    summary = {
        "scenes": len(plan.scenes), "requests": len(plan.requests),
        "videos": len(plan.videos()),
        "record_in": plan.range.record_in, "record_out": plan.range.record_out,
        "seconds": float(plan.range.seconds),
        "drift_frames": [round(r.drift_frames, 2) for r in reports],
        "integrated_lufs": round(after.integrated_lufs, 2),
        "true_peak_dbtp": round(after.true_peak_dbtp, 2),
        "limiter": lreport.limiter_used,
        "music_wav": str(music_wav),
        "music_changes": changes["summary"],
    }
    if ducked is not None:
        summary["ducked_seconds"] = round(ducked.report.seconds, 2)
        summary["duck_depth_db"] = ducked.params.depth_db
    outputs: dict[str, Any] = {"music_wav": str(music_wav),
                               "sfx_wav": str(sfx_wav) if sfx_wav else None}
    if output_path is not None and ducked is not None:
        _note_alternative(output_path, media[1], progress)
    if output_path is not None:
        progress.stage("write")
        outputs["edit_adapter"] = write_edit(scored, output_path)
        outputs["edit_verified"] = verify_written(output_path, scored, plan)
        outputs["edit"] = str(output_path)
        summary["output"] = str(output_path)
    job.set("outputs", outputs)
    # Reports (cues.csv ...): a failure to write one is a warning, never a failed paid run.
    write_job_reports(job.dir, progress.note)
    return ScoreResult(
        timeline=scored, plan=plan, manifest_path=job.manifest_path, music_wav=music_wav,
        sfx_wav=sfx_wav, record_start=record_start, duration=duration, loudness=ldict,
        conform=[r.to_dict() for r in reports], job_id=job.job_id, summary=summary,
        output_path=output_path, marks=list(marks) if marks is not None else None,
        alternative_wav=outputs_alt,
    )


def _unducked_alternative(music: np.ndarray, ducked: Ducked, job: Job, name: str,
                          settings: ScoreSettings, provenance: dict[str, Any],
                          plan: ScorePlan) -> ScoreMedia:
    """The score without the ducking, normalised on its own (what a run without --duck
    delivers), written beside the ducked one and placed as a muted track carrying the ducking
    as volume keys (placed instead of the ducked score where the format carries keys);
    recorded in the manifest's ``ducking``."""
    normalised, report = loudness.normalise(music, SAMPLE_RATE, target_lufs=settings.target_lufs,
                                            true_peak_dbtp=settings.true_peak)
    path = job.audio_dir / f"{name}.score-unducked.wav"
    write_wav(path, normalised, SAMPLE_RATE, bits=settings.wav_bits)
    track = f"{settings.track_name} (unducked)"
    keys, automation = ducked.automation(  # scales *normalised* in place: written above
        normalised, plan.fraction_rate, target_lufs=settings.target_lufs,
        ceiling_dbtp=settings.true_peak, sample_rate=SAMPLE_RATE)
    job.set("ducking", ducked.record(path, track, report.after.integrated_lufs, automation)
            .model_dump(mode="json"))
    return ScoreMedia(path, track, f"{settings.track_name} unducked - reelscore",
                      {**provenance, "alternative": "unducked"}, enabled=False,
                      automation=VolumeAutomation(settings.track_name, automation.makeup_db, keys))


def _note_alternative(output_path: Path, alternative: ScoreMedia, progress: ProgressSink) -> None:
    """Say where the unducked score went: with the ducking as keys in its place (FCP 7 XML,
    FCPX), muted beside the ducked one (.otio/.otioz), or to the job folder only (formats whose
    writers drop a track's mute: it would play)."""
    from reelscore.writeback import adapter_for_output
    from reelscore.writeback.automation import carries_automation
    from reelscore.writeback.score_track import ADAPTER_LABELS, KEEPS_MUTED_TRACKS

    adapter = adapter_for_output(output_path)
    label = ADAPTER_LABELS.get(adapter, adapter)
    auto = alternative.automation
    if auto is not None and carries_automation(adapter, post_write=True):
        progress.note(f"{label}: the ducking is written as {len(auto.keys)} volume keys on the "
                      f"unducked score (make-up {auto.makeup_db:+.2f} dB in every key), placed "
                      "instead of the ducked WAV, which stays in the job folder")
    elif adapter not in KEEPS_MUTED_TRACKS:
        progress.note(f"{label} cannot hold a muted track: the unducked score is in the job "
                      "folder only (ducking.alternative_wav)")
