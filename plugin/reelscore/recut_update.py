"""``--previous OLD`` without ``--dry-run``: update the score for the new version of the cut.

The new score is the previous delivered WAV where the picture held, and new music only where it
did not:

* each kept stretch is the old WAV's samples copied sample-exactly to its new position (old
  stack frame ``f`` sits at sample ``floor(f · 48000 / rate)`` of the old programme, the new one
  likewise), at the level it was delivered: **no gain is applied to kept music**;
* where two kept stretches meet that did not meet before, the outgoing music runs on past the cut
  into the old music after it (at most the plan's crossfade, as far as the old programme has
  music) and fades out with equal power (cos) while the incoming fades in (sin), starting on the
  cut; without old music past the cut, both sides take a 20 ms fade;
* new stretches (new scenes, extended shots, trimmed scenes with ``--regenerate-trimmed``) are
  generated as their own requests with handles into the kept music, matched in level to the kept
  music beside them and crossfaded in their handles (:mod:`reelscore.recut_generate`); nothing
  is asked for kept stretches;
* the whole must stay under the true-peak ceiling: only when it is over is one gain applied to
  everything (the manifest's ``loudness.recut_gain_db``, else 0).

The manifest records the lineage (``recut``: previous job, kept ranges with their origin in the
old programme, the new stretches with their requests and level gains), the plan with only the new
requests, and a fresh ``recut_basis``, so a later update builds on this one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from opentimelineio import opentime

from reelscore import loudness
from reelscore._version import __version__
from reelscore.conform import frames_to_samples
from reelscore.errors import InputError
from reelscore.fsutil import sha256_file
from reelscore.job import MANIFEST_NAME, Job, RecutBasis
from reelscore.providers import Provider, ProviderConfig, make_provider
from reelscore.recut import fingerprint
from reelscore.recut_compose import compose_stretches, min_compose_frames
from reelscore.recut_generate import (
    GenerateFn,
    LevelMatch,
    generate_stretches,
    lay_stretch,
    level_gain,
)
from reelscore.recut_keep import RecutPlan, cost_text, frame_to_sample
from reelscore.recut_previous import (
    Previous,
    check_new_job,
    load_previous,
    preview,
    save_preview,
)
from reelscore.recut_requests import Stretch, job_plan, plan_stretches, requested_frames
from reelscore.render import Renderer
from reelscore.reports.write import write_job_reports
from reelscore.settings import NoProgress, ProgressSink, ScoreSettings
from reelscore.steps.finishing import ScoreResult, safe_name
from reelscore.steps.planning import PlannedEdit, default_renderer
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


def _lineage(previous: Previous, recut: RecutPlan, stretches: list[Stretch],
             levels: list[LevelMatch]) -> dict[str, Any]:
    """The manifest's ``recut`` section (docs/manifest.md)."""
    basis = previous.basis
    gains = {lv.stretch: lv.to_dict() for lv in levels}
    return {
        "previous_job_id": previous.job_id,
        "previous_manifest": str(previous.job_dir / MANIFEST_NAME),
        "dry_run": False, "changes": "recut/changes.json", "plan": "recut/plan.json",
        "kept": [{"new_start": k.new_start, "new_end": k.new_end,
                  "origin": {"job_id": previous.job_id, "music_wav": basis.music_wav,
                             "old_start": k.old_start, "old_end": k.old_end,
                             "old_sample_start": k.old_sample_start}}
                 for k in recut.kept],
        "generated": [{"id": s.id, "new_start": s.generate.new_start,
                       "new_end": s.generate.new_end, "reasons": list(s.generate.reasons),
                       "handle_before": s.generate.handle_before,
                       "handle_after": s.generate.handle_after,
                       "requests": [r.id for r in s.requests], "level": gains.get(s.id)}
                      for s in stretches],
        "requests": [r.id for s in stretches for r in s.requests],
        "requested_frames": requested_frames(stretches)}


def update_from_previous(
    planned: PlannedEdit, previous_path: Path, output_path: Path | None, work_dir: Path,
    settings: ScoreSettings, *, generate: GenerateFn, renderer: Renderer | None = None,
    provider: Provider | None = None, provider_config: ProviderConfig | None = None,
    progress: ProgressSink | None = None,
) -> ScoreResult:
    """Write the updated score (and edit, with *output_path*); see the module docstring."""
    progress = progress or NoProgress()
    previous: Previous = load_previous(previous_path)
    check_new_job(previous, work_dir)
    result = preview(planned, previous, regenerate_trimmed=settings.regenerate_trimmed)
    recut, plan, basis = result.plan, planned.plan, previous.basis
    compose = settings.method == "compose"
    stretches = plan_stretches(plan, recut, settings.limits(), min_frames=min_compose_frames(
        plan.fraction_rate) if compose else 0)
    if stretches and compose:  # composition plans, nothing rendered
        generate = compose_stretches(plan, stretches, settings)
    old, sr = read_wav(Path(basis.music_wav))
    if sr != recut.sample_rate:
        raise InputError(f"the previous score's music {basis.music_wav!r} is at {sr} Hz, "
                         f"not {recut.sample_rate} Hz", hint="score the new cut afresh")
    old_first = frame_to_sample(basis.first_frame, basis.fingerprint.fraction_rate, sr)
    new_range = (plan.range.start, plan.range.end)
    music = assemble(old, old_first, recut, new_range, crossfade_frames=plan.crossfade_frames)
    gen_planned = replace(planned, plan=job_plan(plan, stretches))

    job = Job(work_dir)
    with job.locked():
        job.open()
        job.set("settings", settings.model_dump(mode="json"), save=False)
        job.set("plan", gen_planned.plan.model_dump(mode="json"), save=False)
        save_preview(job, previous, result)
        levels: list[LevelMatch] = []
        if stretches:
            progress.note(cost_text(recut))
            provider = provider or make_provider(settings.provider, provider_config)
            provider.preflight()
            renderer = renderer or default_renderer(
                gen_planned, settings, on_frames=lambda n: progress.advance("render", n))
            audios = generate_stretches(gen_planned, stretches, job, renderer, provider,
                                        settings, progress, generate)
            kept_only = music.copy()  # every stretch is levelled against the kept music alone
            for s in stretches:
                lv = level_gain(kept_only, audios[s.id], s, recut, new_range, settings.target_lufs)
                lay_stretch(music, audios[s.id], s, recut, new_range, lv.gain_db)
                levels.append(lv)
        measured = loudness.measure(music, sr)
        gain_db = min(0.0, settings.true_peak - measured.true_peak_dbtp)
        if gain_db < 0:
            music = (music * np.float32(10 ** (gain_db / 20))).astype(np.float32)
        name = safe_name(planned.loaded.timeline.name or "score")
        music_wav = job.audio_dir / f"{name}.score.wav"
        write_wav(music_wav, music, sr, bits=settings.wav_bits)
        after = loudness.measure(read_wav(music_wav)[0], sr)
        ldict: dict[str, Any] = {
            "recut_gain_db": round(gain_db, 6),
            "delivered": {"integrated_lufs": round(after.integrated_lufs, 3),
                          "true_peak_dbtp": round(after.true_peak_dbtp, 3)}}
        job.set("loudness", ldict, save=False)
        job.set("recut", _lineage(previous, recut, stretches, levels), save=False)
        job.set("recut_basis", RecutBasis(
            fingerprint=fingerprint(planned.picture, plan.scenes, start_frame=plan.start_frame),
            music_wav=str(music_wav), sha256=sha256_file(music_wav), first_frame=plan.range.start,
            sample_rate=sr, crossfade_frames=plan.crossfade_frames, drop_frame=plan.drop_frame,
        ).model_dump(mode="json"))
        sent = [r.id for s in stretches for r in s.requests]
        provenance = {"job_id": job.job_id, "provider": provider.name if provider else "recut",
                      "previous_job_id": previous.job_id, "reelscore_version": __version__,
                      "requests": sent, "record_in": plan.range.record_in,
                      "record_out": plan.range.record_out, "scene_policy": plan.scene_policy,
                      "scenes": len(plan.scenes)}
        scored = add_score_tracks(planned.loaded, plan, [ScoreMedia(
            music_wav, settings.track_name, f"{settings.track_name} - reelscore", provenance)],
            markers=settings.markers)
        outputs: dict[str, Any] = {"music_wav": str(music_wav), "sfx_wav": None}
        if output_path is not None:
            outputs["edit_adapter"] = write_edit(scored, output_path)
            outputs["edit_verified"] = verify_written(output_path, scored, plan)
            outputs["edit"] = str(output_path)
        job.set("outputs", outputs)
    # cues.csv/xlsx (one cue per kept and per generated stretch, with its lineage), sheet, report
    write_job_reports(job.dir, log.warning)
    cost = recut.cost
    rate = plan.fraction_rate
    summary: dict[str, Any] = {
        "scenes": len(plan.scenes), "requests": len(sent), "record_in": plan.range.record_in,
        "record_out": plan.range.record_out, "seconds": float(plan.range.seconds),
        "integrated_lufs": round(after.integrated_lufs, 2),
        "true_peak_dbtp": round(after.true_peak_dbtp, 2), "limiter": False,
        "music_wav": str(music_wav), "recut_gain_db": round(gain_db, 6),
        "kept_seconds": float(cost.seconds(cost.kept_frames)),
        "generated_seconds": float(cost.seconds(cost.generate_frames)),
        "sent_seconds": float(Fraction(requested_frames(stretches)) / rate),
        "full_rescore_seconds": float(cost.seconds(cost.total_frames)),
        "level_gains_db": [round(lv.gain_db, 2) for lv in levels],
        "change_list": result.text, "manifest": str(job.manifest_path)}
    if output_path is not None:
        summary["output"] = str(output_path)
    return ScoreResult(
        timeline=scored, plan=gen_planned.plan, manifest_path=job.manifest_path,
        music_wav=music_wav, sfx_wav=None,
        record_start=opentime.RationalTime(plan.start_frame + plan.range.start, float(rate)),
        duration=opentime.RationalTime(plan.range.duration, float(rate)), loudness=ldict,
        conform=[], job_id=job.job_id, output_path=output_path, summary=summary)
