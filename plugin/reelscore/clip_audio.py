"""Scene clips that carry the edit's sound (``--use-audio-as-reference``).

The service is told to listen to the clips' audio, so every clip sent must carry the sound of its
range, in sync. :class:`SoundRenderer` wraps any picture renderer: the picture is rendered as
before, then the clip's sound is muxed in as stereo AAC (48 kHz, ``AUDIO_KBPS``) with the picture
stream copied. The sound is

* from the edit's sources: the mixdown of the clip's range (:mod:`reelscore.mixdown`, every
  enabled audio track), sample 0 = the clip's first frame;
* with ``--reference MOVIE``: the reference movie's own sound over the same frames (the flattened
  mix that came with the turnover; refused before rendering when the movie has none).

Sync: the AAC encoder's priming (1024 samples) is recorded as an MP4 edit list, so a decoder that
honours it (ffmpeg, browsers, QuickTime) plays sample 0 with frame 0; the tests measure the
clicks of the decoded clips within ``SYNC_TOLERANCE_SAMPLES``.

Resolve's render queue renders the timeline's own audio (``ExportAudio``) when the plan's encode
settings ask for it, so it is not wrapped. ``--method compose`` sends no clips: asking for the
clips' audio there is refused (:func:`check_audio_route`) before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np

from reelscore.conform import frames_to_samples
from reelscore.errors import InputError
from reelscore.ffmpeg_cli import base_args, file_arg, probe, run
from reelscore.fsutil import atomic_output
from reelscore.mixdown import (
    MixJob,
    audio_problems_error,
    fold_matrix,
    offline_audio,
    prepare_mix,
    run_mix,
)
from reelscore.mixdown_decode import PlacedPiece, Span, decode_span
from reelscore.plan import EncodeSettings, PlannedVideo, ScorePlan
from reelscore.reference import ReferenceRenderer
from reelscore.render import FFmpegRenderer, Renderer
from reelscore.timeline import LoadedEdit, MediaResolver
from reelscore.wavfile import write_wav_to

AUDIO_KBPS = 128
SAMPLE_RATE = 48000
SOUND_VERSION = "clip-sound/1"  # bump when the muxed sound could change for the same inputs
# Measured on decoded clips (tests/test_clip_audio.py): with the edit list, 0 samples.
SYNC_TOLERANCE_SAMPLES = 2


class ClipSound(Protocol):
    """The sound of a planned video: samples and a fingerprint of what they are made from."""

    def samples(self, video: PlannedVideo) -> np.ndarray:
        """float32 (n, 2) at 48 kHz, n = the video's samples (frames_to_samples rule)."""
        ...

    def key(self, video: PlannedVideo) -> object:
        """JSON-able fingerprint of the inputs of :meth:`samples`."""
        ...


class EditSound:
    """The mixdown of the edit's enabled audio tracks over each video's range."""

    def __init__(self, edit: LoadedEdit, resolver: MediaResolver) -> None:
        self.edit = edit
        self.resolver = resolver

    def _job(self, video: PlannedVideo) -> MixJob:
        return prepare_mix(self.edit, video.range.start, video.range.duration,
                           resolver=self.resolver)

    def samples(self, video: PlannedVideo) -> np.ndarray:
        return run_mix(self._job(video), workers=1)

    def key(self, video: PlannedVideo) -> object:
        return {"edit": self._job(video).key()}


class ReferenceSound:
    """The reference movie's own sound over each video's frames."""

    def __init__(self, path: Path, rate: Fraction, movie_start_frame: int) -> None:
        self.path = path
        self.rate = rate
        self.movie_start_frame = movie_start_frame
        info = probe(path)
        if not info.has_audio:
            raise InputError(
                f"--use-audio-as-reference: the reference movie {path.name} has no sound",
                hint="use a reference movie with the mix on it, or leave out --reference to mix "
                "the edit's own audio tracks")
        if info.channels is None or fold_matrix(info.channels) is None:
            raise InputError(f"--use-audio-as-reference: the reference movie {path.name} has "
                             f"{info.channels or 'an unknown number of'} audio channels; mono, "
                             "stereo, 5.1 and 7.1 can be folded to stereo")
        self.channels = info.channels
        self.src_rate = info.sample_rate or SAMPLE_RATE

    def _span(self, video: PlannedVideo) -> Span:
        first = video.start_frame + video.range.start - self.movie_start_frame  # movie frame
        file_start = frames_to_samples(first, self.rate)
        count = frames_to_samples(first + video.range.duration, self.rate) - file_start
        piece = PlacedPiece("reference movie", 0, self.path, self.channels, file_start, 0, count)
        info = probe(self.path)
        return Span.of(self.path, info, [piece], SAMPLE_RATE)

    def samples(self, video: PlannedVideo) -> np.ndarray:
        span = self._span(video)
        out = np.zeros((span.pieces[0].count, 2), dtype=np.float32)
        decode_span(span, out, threading.Lock(), SAMPLE_RATE, fold_matrix(self.channels))
        return out

    def key(self, video: PlannedVideo) -> object:
        return {"reference": self._span(video).key()}


def mux_sound(picture: Path, samples: np.ndarray, out_path: Path) -> None:
    """Write *picture* (its video stream copied) with *samples* as stereo AAC to *out_path*."""
    with tempfile.TemporaryDirectory(prefix=".sound-", dir=out_path.parent) as tmp:
        wav = Path(tmp) / "sound.wav"
        write_wav_to(wav, samples, SAMPLE_RATE, bits=32)
        with atomic_output(out_path) as dest:
            run(base_args() + [
                "-i", file_arg(picture), "-i", file_arg(wav), "-map", "0:v:0", "-map", "1:a:0",
                "-c:v", "copy", "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k", "-ac", "2",
                "-ar", str(SAMPLE_RATE), "-movflags", "+faststart", "-f", "mp4", file_arg(dest)],
                f"adding the sound to {out_path.name}")


class SoundRenderer:
    """A :class:`~reelscore.render.Renderer` whose clips carry their range's sound."""

    def __init__(self, inner: Renderer, sound: ClipSound) -> None:
        self.inner = inner
        self.sound = sound
        self.max_workers = inner.max_workers
        self.decoder_threads = inner.decoder_threads

    def cache_key(self, video: PlannedVideo, encode: EncodeSettings) -> str | None:
        picture = self.inner.cache_key(video, encode)
        if picture is None:
            return None
        blob = json.dumps({"v": SOUND_VERSION, "picture": picture, "kbps": AUDIO_KBPS,
                           "sound": self.sound.key(video)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def render_video(self, video: PlannedVideo, out_path: Path, encode: EncodeSettings) -> None:
        out_path = Path(out_path)
        samples = self.sound.samples(video)  # first: a clip whose sound fails is never written
        with tempfile.TemporaryDirectory(prefix=".picture-", dir=out_path.parent) as tmp:
            picture = Path(tmp) / out_path.name
            self.inner.render_video(video, picture, encode)
            mux_sound(picture, samples, out_path)


def check_audio_route(*, use_audio: bool, method: str) -> None:
    """Refuse, before any work, a route that cannot carry the clips' audio."""
    if use_audio and method == "compose":
        raise InputError(
            "--use-audio-as-reference asks the service to listen to the clips' sound, but "
            "--method compose sends no clips (only a composition plan)",
            hint="drop --use-audio-as-reference, or score with --method video")


def with_sound(renderer: Renderer, edit: LoadedEdit, resolver: MediaResolver,
               plan: ScorePlan) -> Renderer:
    """*renderer* made to carry the clips' sound: reelscore's own renderers are wrapped in a
    :class:`SoundRenderer` (the edit's audio media checked first, all offline or unreadable
    clips listed); any other renderer (Resolve's render queue) renders the sound itself, asked
    by the plan's ``EncodeSettings.audio``."""
    if isinstance(renderer, ReferenceRenderer):
        movie = renderer.movie
        return SoundRenderer(renderer, ReferenceSound(movie.path, movie.rate, movie.start_frame))
    if isinstance(renderer, FFmpegRenderer):
        bad = offline_audio(edit, plan.range.start, plan.range.duration, resolver=resolver)
        if bad:
            raise audio_problems_error(bad)
        return SoundRenderer(renderer, EditSound(edit, resolver))
    return renderer


__all__ = ["AUDIO_KBPS", "ClipSound", "EditSound", "ReferenceSound", "SoundRenderer",
           "check_audio_route", "mux_sound", "with_sound"]
