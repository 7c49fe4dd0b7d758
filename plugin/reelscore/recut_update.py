"""``--previous OLD`` without ``--dry-run``: update the score when the new cut needs no new music.

When every frame of the new scored range shows pictures the previous version showed (scenes
moved, reordered, deleted, or trimmed inside what they showed), the new score is assembled from
the previous delivered WAV alone, and nothing is rendered or sent:

* each kept stretch is the old WAV's samples copied sample-exactly to its new position (old
  stack frame ``f`` sits at sample ``floor(f · 48000 / rate)`` of the old programme, the new one
  likewise), at the level it was delivered: **no gain is applied to kept music**;
* where two kept stretches meet that did not meet before, the outgoing music runs on past the cut
  into the old music after it (at most the plan's crossfade, as far as the old programme has
  music) and fades out with equal power (cos) while the incoming fades in (sin), starting on the
  cut; without old music past the cut, both sides take a 20 ms fade;
* the whole must stay under the true-peak ceiling: only when a crossfade pushes it over is one
  gain applied to everything (the manifest's ``loudness.recut_gain_db``, else 0).

A recut that needs new music (new scenes, extended shots) is refused with what it would generate
(``--dry-run`` prints it): generating new stretches into kept music is not in this version.
The manifest records the lineage (``recut``: previous job, kept ranges with their origin, no
requests) and a fresh ``recut_basis``, so a later update builds on this one.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from reelscore import loudness
from reelscore._version import __version__
from reelscore.conform import frames_to_samples
from reelscore.errors import InputError
from reelscore.fsutil import sha256_file
from reelscore.job import MANIFEST_NAME, Job, RecutBasis
from reelscore.recut import fingerprint
from reelscore.recut_keep import RecutPlan, cost_text, frame_to_sample
from reelscore.recut_previous import (
    Previous,
    check_new_job,
    load_previous,
    preview,
    save_preview,
)
from reelscore.reports.write import write_job_reports
from reelscore.settings import ScoreSettings
from reelscore.steps.finishing import safe_name
from reelscore.steps.planning import PlannedEdit
from reelscore.wavfile import read_wav, write_wav
from reelscore.writeback import ScoreMedia, add_score_tracks, verify_written, write_edit

EDGE_FADE_S = 0.02
log = logging.getLogger(__name__)


def assemble(old: np.ndarray, old_first_sample: int, recut: RecutPlan, new_range: tuple[int, int],
             *, crossfade_frames: int) -> np.ndarray:
    """The new music from the old (see the module docstring); *old* starts at old stack sample
    *old_first_sample*."""
    rn, sr = Fraction(recut.rate), recut.sample_rate
    base = frame_to_sample(new_range[0], rn, sr)
    # As long as a first score of the range is (conform's rounding of its duration).
    length = frames_to_samples(new_range[1] - new_range[0], rn, sr)
    out = np.zeros((length, old.shape[1]), dtype=np.float32)
    edge = int(EDGE_FADE_S * sr)
    prev_end: int | None = None  # new sample where the previous kept range ended
    prev_tail: np.ndarray | None = None  # old music past that end (for the crossfade)
    for k in recut.kept:
        a, b = k.new_samples[0] - base, k.new_samples[1] - base
        src = k.old_sample_start - old_first_sample
        b = length if k.new_end == new_range[1] else min(b, length)  # the last sample too
        chunk = old[src:src + (b - a)]
        out[a:a + len(chunk)] = chunk
        if prev_end == a and prev_tail is not None:
            n = min(len(prev_tail), b - a)
            if n > 0:
                t = (np.arange(n, dtype=np.float64) + 0.5) / n * (math.pi / 2)
                out[a:a + n] = (prev_tail[:n] * np.cos(t)[:, None]
                                + out[a:a + n] * np.sin(t)[:, None]).astype(np.float32)
            else:  # no old music past the cut: a short fade on each side
                n = min(edge, a, b - a)
                ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
                out[a - n:a] *= ramp[::-1]
                out[a:a + n] *= ramp
        after = min(k.old_after, crossfade_frames)
        tail_n = frame_to_sample(k.new_end + after, rn, sr) - k.new_samples[1]
        t0 = src + (b - a)
        prev_tail = old[t0:t0 + tail_n]
        prev_end = b
    return out


def _refuse_generation(recut: RecutPlan) -> None:
    if not recut.generate:
        return
    spans = ", ".join(f"{'/'.join(g.scene_ids)} ({'/'.join(g.reasons)}, {g.frames}f)"
                      for g in recut.generate[:6])
    raise InputError(
        f"this update needs new music for {spans}: {cost_text(recut)}. Generating new stretches "
        "into the kept score is not in this version",
        hint="rerun with --dry-run to see the change list, or score the new cut afresh "
             "(without --previous)")


def update_from_previous(planned: PlannedEdit, previous_path: Path, output_path: Path,
                         work_dir: Path, settings: ScoreSettings) -> dict[str, Any]:
    """Write the updated scored edit; returns a summary (nothing rendered or sent)."""
    previous: Previous = load_previous(previous_path)
    check_new_job(previous, work_dir)
    result = preview(planned, previous, regenerate_trimmed=settings.regenerate_trimmed)
    _refuse_generation(result.plan)
    plan = planned.plan
    basis = previous.basis
    old, sr = read_wav(Path(basis.music_wav))
    if sr != result.plan.sample_rate:
        raise InputError(f"the previous score's music {basis.music_wav!r} is at {sr} Hz, "
                         f"not {result.plan.sample_rate} Hz", hint="score the new cut afresh")
    old_first = frame_to_sample(basis.first_frame, basis.fingerprint.fraction_rate, sr)
    music = assemble(old, old_first, result.plan, (plan.range.start, plan.range.end),
                     crossfade_frames=plan.crossfade_frames)
    measured = loudness.measure(music, sr)
    gain_db = min(0.0, settings.true_peak - measured.true_peak_dbtp)
    if gain_db < 0:
        music = (music * np.float32(10 ** (gain_db / 20))).astype(np.float32)

    job = Job(work_dir)
    with job.locked():
        job.open()
        job.set("settings", settings.model_dump(mode="json"), save=False)
        job.set("plan", plan.model_dump(mode="json"), save=False)
        save_preview(job, previous, result)
        name = safe_name(planned.loaded.timeline.name or "score")
        music_wav = job.audio_dir / f"{name}.score.wav"
        write_wav(music_wav, music, sr, bits=settings.wav_bits)
        after = loudness.measure(read_wav(music_wav)[0], sr)
        ldict = {"recut_gain_db": round(gain_db, 3),
                 "delivered": {"integrated_lufs": round(after.integrated_lufs, 3),
                               "true_peak_dbtp": round(after.true_peak_dbtp, 3)}}
        job.set("loudness", ldict, save=False)
        job.set("recut", {
            "previous_job_id": previous.job_id,
            "previous_manifest": str(previous.job_dir / MANIFEST_NAME),
            "dry_run": False, "changes": "recut/changes.json", "plan": "recut/plan.json",
            "kept": [{"new_start": k.new_start, "new_end": k.new_end,
                      "origin": {"job_id": previous.job_id, "music_wav": basis.music_wav,
                                 "old_start": k.old_start, "old_end": k.old_end,
                                 "old_sample_start": k.old_sample_start}}
                     for k in result.plan.kept],
            "requests": []}, save=False)
        job.set("recut_basis", RecutBasis(
            fingerprint=fingerprint(planned.picture, plan.scenes, start_frame=plan.start_frame),
            music_wav=str(music_wav), sha256=sha256_file(music_wav), first_frame=plan.range.start,
            sample_rate=sr, crossfade_frames=plan.crossfade_frames, drop_frame=plan.drop_frame,
        ).model_dump(mode="json"))
        provenance = {"job_id": job.job_id, "provider": "recut", "previous_job_id": previous.job_id,
                      "reelscore_version": __version__, "requests": [],
                      "record_in": plan.range.record_in, "record_out": plan.range.record_out,
                      "scene_policy": plan.scene_policy, "scenes": len(plan.scenes)}
        scored = add_score_tracks(planned.loaded, plan, [ScoreMedia(
            music_wav, settings.track_name, f"{settings.track_name} - reelscore", provenance)],
            markers=settings.markers)
        outputs: dict[str, Any] = {"music_wav": str(music_wav), "sfx_wav": None,
                                   "edit_adapter": write_edit(scored, output_path)}
        outputs["edit_verified"] = verify_written(output_path, scored, plan)
        outputs["edit"] = str(output_path)
        job.set("outputs", outputs)
    # cues.csv/xlsx (one cue per kept stretch, with its lineage), sheet and report.html
    write_job_reports(job.dir, log.warning)
    return {"music_wav": str(music_wav), "output": str(output_path),
            "manifest": str(job.manifest_path), "kept_seconds": float(
                result.plan.cost.seconds(result.plan.cost.kept_frames)),
            "recut_gain_db": round(gain_db, 3), "integrated_lufs": round(after.integrated_lufs, 2),
            "true_peak_dbtp": round(after.true_peak_dbtp, 2), "change_list": result.text}
