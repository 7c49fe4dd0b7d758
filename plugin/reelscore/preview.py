"""The review movie of a scored edit: picture, the edit's sound and the score, with burn-ins.

``reelscore preview SCORED_EDIT -o review.mp4`` (and ``score --preview``) writes one movie of
the scored range:

picture   the job's rendered proxies, in plan order, each without its handle (the frames past
          its request's end), so the movie's frame *k* is the scored range's frame *k*; or,
          when the job has none (``--method compose``) or ``reference`` is given, cut from a
          flattened reference movie of the edit (``--reference``; the run's own reference
          movie is used when it had one), file frame = record frame - its start
sound     the edit's own audio tracks mixed down over that range (:mod:`reelscore.mixdown`;
          reelscore's score tracks left out -- marked so in .otio, else found by their media,
          the job's score WAVs -- disabled tracks and clips too) plus the delivered
          score WAV (the ducked one with --duck) at ``score_level`` dB (0 = as delivered), 48 kHz
          stereo, sample-aligned to the picture by :func:`reelscore.conform.frames_to_samples`
burn-in   record timecode (drop-frame as the plan shows it) and the scene number (``S03``),
          drawn with reelscore's own font (:mod:`reelscore.burnin`): no system font needed
encoding  H.264 yuv420p (high profile), AAC 192 kb/s, ``+faststart``: plays in browsers

An edit without a reelscore score track, or whose job folder (beside it, or where its score
clip points) holds neither rendered clips for the whole range nor a reference movie, is refused
before anything is written. The movie is written atomically.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio

from reelscore.burnin import burn
from reelscore.conform import SAMPLE_RATE, frames_to_samples
from reelscore.errors import InputError, JobError
from reelscore.ffmpeg_cli import base_args, file_arg, read_frames, write_frames
from reelscore.fsutil import atomic_output
from reelscore.mixdown import audio_tracks, mix_edit_audio
from reelscore.plan import ScorePlan
from reelscore.reports.jobfolder import JobFolder, read_job_folder
from reelscore.timecode import frames_to_tc
from reelscore.timeline import LoadedEdit, MediaResolver, load_edit, url_to_path_candidates
from reelscore.wavfile import read_wav, write_wav
from reelscore.writeback.score_track import is_score_track, score_clips


@dataclass(frozen=True)
class PreviewResult:
    path: Path
    frames: int
    record_in: str
    record_out: str
    score_level_db: float


def _scored(edit_path: Path) -> tuple[LoadedEdit, JobFolder, ScorePlan, Path, set[int]]:
    """The scored edit, its job folder, plan, delivered score and score tracks (1 = A1);
    InputError if not scored."""
    loaded = load_edit(edit_path)
    try:
        folder = read_job_folder(edit_path)
    except JobError:
        if score_clips(loaded.original):
            raise
        folder = None
    scores = _score_tracks(loaded, folder) if folder is not None else set()
    if folder is None or not scores:
        raise InputError(f"{str(edit_path)!r} has no reelscore score track: it was not scored "
                         "by reelscore", hint="preview the edit `reelscore score` wrote (-o)")
    if folder.plan is None or folder.music_wav is None:
        raise JobError(f"the job folder {str(folder.dir)!r} of {edit_path.name} lacks "
                       + ("its plan" if folder.plan is None else "the score WAV"),
                       hint="rerun the score (it resumes without paying twice)")
    return loaded, folder, folder.plan, folder.music_wav, scores


def _score_tracks(loaded: LoadedEdit, folder: JobFolder) -> set[int]:
    """The audio tracks (1 = A1) holding reelscore's score: marked so (.otio/.otioz) or, in
    formats that keep no track metadata (FCP 7 XML, FCPX, AAF, EDL), playing one of the job's
    score WAVs (the ducked, SFX or unducked-with-keys score)."""
    wavs = {p.resolve() for p in folder.score_wavs}
    base = loaded.path.parent if loaded.path is not None else Path.cwd()
    found: set[int] = set()
    for i, track in enumerate(loaded.timeline.audio_tracks(), 1):
        if is_score_track(track):
            found.add(i)
            continue
        for clip in track.find_clips():
            ref = clip.media_reference
            if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
                continue
            paths = (Path(c) if Path(c).is_absolute() else base / c
                     for c in url_to_path_candidates(ref.target_url))
            if any(p.resolve() in wavs for p in paths):
                found.add(i)
                break
    return found


def _clip_path(folder: JobFolder, video_id: str) -> Path | None:
    record = folder.renders.get(video_id)
    if record is None:
        return None
    path = record.clip.path
    for candidate in (path, folder.dir / path, folder.dir / "clips" / path.name):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Piece:
    """Frames ``[first, first + take)`` of a movie file, in the review movie's order."""

    path: Path
    first: int
    take: int


def _reference_piece(folder: JobFolder, plan: ScorePlan, reference: Path | None,
                     reference_start: str | None) -> Piece | None:
    """The scored range cut from *reference* (else the run's own ``--reference``), if any."""
    from reelscore.reference import check_coverage, open_reference

    path = reference or (Path(folder.settings["reference"]) if folder.settings.get("reference")
                         else None)
    if path is None:
        return None
    start = reference_start if reference is not None else folder.settings.get("reference_start")
    movie = open_reference(path, plan.fraction_rate, start)
    first = plan.start_frame + plan.range.start
    check_coverage(movie, first, first + plan.range.duration, drop_frame=plan.drop_frame)
    return Piece(movie.path, first - movie.start_frame, plan.range.duration)


def _pieces(folder: JobFolder, plan: ScorePlan) -> list[Piece]:
    """The job's rendered clips tiling the scored range in order."""
    pieces: list[Piece] = []
    at = plan.range.start
    for video in plan.videos():
        end = video.range.end - video.handle_frames
        if video.range.start != at or end <= at:
            raise JobError(f"the rendered clips of {folder.dir.name} do not tile the scored "
                           f"range at {video.id}", hint="rerun the score to render them again")
        path = _clip_path(folder, video.id)
        if path is None:
            raise JobError(
                f"the job folder {str(folder.dir)!r} has no rendered clip for {video.id} "
                f"({video.range.record_in}-{video.range.record_out})",
                hint="a --method compose run renders no clips: pass the cut's flattened "
                     "movie with --reference (and --reference-start)")
        pieces.append(Piece(path, 0, end - at))
        at = end
    return pieces


def _picture(folder: JobFolder, plan: ScorePlan, reference: Path | None,
             reference_start: str | None) -> list[Piece]:
    """A given reference movie, else the job's clips, else the run's own reference movie."""
    if reference is not None:
        given = _reference_piece(folder, plan, reference, reference_start)
        assert given is not None
        return [given]
    try:
        return _pieces(folder, plan)
    except JobError:
        own = _reference_piece(folder, plan, None, None)
        if own is None:
            raise
        return [own]


def _edit_sound(loaded: LoadedEdit, scores: set[int], plan: ScorePlan,
                media_roots: Sequence[Path]) -> np.ndarray:
    """The edit's own audio tracks (not reelscore's) mixed over the scored range."""
    own = [t.index for t in audio_tracks(loaded) if t.index not in scores]
    n = frames_to_samples(plan.range.duration, plan.fraction_rate)
    if not own:
        return np.zeros((n, 2), dtype=np.float32)
    resolver = MediaResolver(loaded.path.parent if loaded.path else None, list(media_roots))
    sound = mix_edit_audio(loaded, plan.range.start, plan.range.duration, tracks=own,
                           resolver=resolver)
    return np.pad(sound[:n], ((0, max(0, n - sound.shape[0])), (0, 0)))


def _labels(plan: ScorePlan) -> list[str]:
    """The burn-in of every frame of the scored range: record timecode and scene number."""
    rate = plan.fraction_rate
    scene_of = np.zeros(plan.range.duration, dtype=np.int32)
    for i, scene in enumerate(plan.scenes, 1):
        scene_of[scene.range.start - plan.range.start:scene.range.end - plan.range.start] = i
    return [f"{frames_to_tc(plan.start_frame + plan.range.start + k, rate, drop_frame=plan.drop_frame)}"
            f"  S{scene_of[k]:02d}" for k in range(plan.range.duration)]


def write_preview(edit_path: Path, output: Path, *, score_level_db: float = 0.0,
                  force: bool = False, reference: Path | None = None,
                  reference_start: str | None = None,
                  media_roots: Sequence[Path] = ()) -> PreviewResult:
    """Write the review movie of the scored edit at *edit_path* to *output* (see module doc)."""
    if output.exists() and not force:
        raise InputError(f"{str(output)!r} already exists",
                         hint="choose another -o path, or pass --force to replace it")
    if output.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise InputError(f"-o {output}: the review movie is an .mp4 (H.264/AAC)",
                         hint="name it review.mp4")
    loaded, folder, plan, score_wav, scores = _scored(edit_path)
    pieces = _picture(folder, plan, reference, reference_start)
    score, _rate = read_wav(score_wav)
    sound = _edit_sound(loaded, scores, plan, media_roots)
    n = sound.shape[0]
    score = np.pad(score[:n], ((0, max(0, n - score.shape[0])), (0, 0)))
    if score.shape[1] == 1:
        score = np.repeat(score, 2, axis=1)
    mix = sound + score[:, :2] * np.float32(10 ** (score_level_db / 20))
    width, height = plan.encode.width, plan.encode.height
    rate: Fraction = plan.fraction_rate
    labels = _labels(plan)
    with tempfile.TemporaryDirectory(prefix="reelscore-preview-") as tmp:
        wav = Path(tmp) / "mix.wav"
        write_wav(wav, np.clip(mix, -1.0, 1.0), SAMPLE_RATE, bits=24)
        with atomic_output(output) as movie:
            args = base_args() + [
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
                "-i", file_arg(wav), "-map", "0:v:0", "-map", "1:a:0",
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-profile:v", "high",
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k", "-ar", str(SAMPLE_RATE),
                "-ac", "2", "-movflags", "+faststart", "-f", "mp4", file_arg(movie)]
            k = 0
            with write_frames(args, f"encoding the review movie {output.name}") as encoder:
                for piece in pieces:
                    path, take = piece.path, piece.take
                    # an input seek half a frame early, then every frame counted (as render)
                    seek = (["-ss", f"{float((piece.first - Fraction(1, 2)) / rate):.6f}"]
                            if piece.first > 0 else [])
                    decode = base_args() + [
                        *seek, "-i", file_arg(path), "-map", "0:v:0", "-fps_mode", "passthrough",
                        "-vf", f"scale={width}:{height}", "-frames:v", str(take),
                        "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
                    got = 0
                    for raw in read_frames(decode, width * height * 3, f"decoding {path.name}"):
                        frame = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy()
                        encoder.write(burn(frame, labels[k]).tobytes())
                        k += 1
                        got += 1
                    if got != take:
                        raise JobError(f"the rendered clip {str(path)!r} has {got} frames, the "
                                       f"plan needs {take}", hint="rerun the score to render it "
                                       "again")
    return PreviewResult(output, k, plan.range.record_in, plan.range.record_out, score_level_db)
