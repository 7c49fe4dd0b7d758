"""Recut: generate the new stretches of an update and lay them into the kept music.

:func:`generate_stretches` renders and sends only the stretches' requests
(:mod:`reelscore.recut_requests`) through the normal render/generate step the caller hands in
(resume and never-pay-twice apply as for a first score), then conforms and joins each stretch's
answers over its requested span, handles included.

**Level** (:func:`level_gain`). One gain per stretch, so the new music sits at the level of the
kept music it meets. On each side that has kept music, over the same window ``W`` — 3 s, or less
when the stretch or that kept neighbour is shorter — the kept music's integrated loudness
(BS.1770, gated, as the rest of reelscore measures) next to the cut is compared with the new
stretch's over its own ``W`` next to the same cut; the gain is the mean of those differences in
dB. A side whose window is under 0.4 s (one gating block) or silent does not vote; with no
voting side the stretch is brought to the run's loudness target instead. The gain is clamped to
±12 dB: a measurement fooled by a fade or a pause must not make a stretch jump.

**Joins** (:func:`lay_stretch`). The stretch's own frames carry the new music in full. Each
crossfade lies in a handle, i.e. in the kept music next to the cut, and is equal power: before
the stretch, the new music's handle fades in (sin) while the kept music fades out (cos), ending on
the cut; after it, the new music's handle runs on past the cut fading out (cos) while the kept
music fades in (sin), starting on the cut. Kept music is the old delivered samples everywhere
else. A kept stretch shorter than the handles on both sides of it takes both crossfades in turn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from reelscore import loudness
from reelscore.errors import AudioError
from reelscore.job import Job
from reelscore.providers import GeneratedAudio, Provider
from reelscore.recut_keep import KeptRange, RecutPlan, frame_to_sample
from reelscore.recut_requests import Stretch
from reelscore.render import Renderer
from reelscore.settings import ProgressSink, ScoreSettings
from reelscore.steps.finishing import conform_all
from reelscore.steps.planning import PlannedEdit

LEVEL_WINDOW_S = 3.0
MIN_WINDOW_S = 0.4
MAX_GAIN_DB = 12.0

# The run's render-and-generate step (pipeline's), handed in so recut never imports the runner.
GenerateFn = Callable[[PlannedEdit, Job, Renderer, Provider, ScoreSettings, ProgressSink],
                      dict[str, GeneratedAudio]]


@dataclass(frozen=True)
class LevelMatch:
    stretch: str
    gain_db: float
    kept_lufs: tuple[float | None, float | None]  # before / after the stretch (None: no vote)
    new_lufs: tuple[float | None, float | None]
    window_s: float

    def to_dict(self) -> dict[str, object]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 2)

        return {"stretch": self.stretch, "gain_db": round(self.gain_db, 3),
                "kept_lufs": [r(x) for x in self.kept_lufs],
                "new_lufs": [r(x) for x in self.new_lufs], "window_s": round(self.window_s, 3)}


def generate_stretches(planned: PlannedEdit, stretches: list[Stretch], job: Job,
                       renderer: Renderer, provider: Provider, settings: ScoreSettings,
                       progress: ProgressSink, generate: GenerateFn) -> dict[str, np.ndarray]:
    """Each stretch's music over its span (handles included), conformed and joined."""
    results = generate(planned, job, renderer, provider, settings, progress)
    out: dict[str, np.ndarray] = {}
    reports: list[dict[str, object]] = []
    for s in stretches:
        music, rep = conform_all(s.plan, results, "music", job=job)
        assert music is not None
        out[s.id] = music
        reports.extend(r.to_dict() for r in rep)
    job.set("conform", reports)
    return out


class _Layout:
    """Where frames of the new programme fall in its sample array."""

    def __init__(self, recut: RecutPlan, new_range: tuple[int, int], length: int) -> None:
        self.rate, self.sr = Fraction(recut.rate), recut.sample_rate
        self.base = frame_to_sample(new_range[0], self.rate, self.sr)
        self.end_frame = new_range[1]
        self.length = length

    def at(self, frame: int) -> int:
        if frame >= self.end_frame:
            return self.length
        return frame_to_sample(frame, self.rate, self.sr) - self.base


def _lufs(x: np.ndarray, sr: int) -> float | None:
    if x.shape[0] < MIN_WINDOW_S * sr:
        return None
    try:
        return loudness.integrated_loudness(x, sr)
    except AudioError:  # silent, or too short to gate
        return None


def _neighbours(recut: RecutPlan, s: Stretch) -> tuple[KeptRange | None, KeptRange | None]:
    g = s.generate
    before = next((k for k in recut.kept if k.new_end == g.new_start), None)
    after = next((k for k in recut.kept if k.new_start == g.new_end), None)
    return before, after


def _fit(audio: np.ndarray, s: Stretch, lay: _Layout) -> np.ndarray:
    """The stretch's music as long as its span in the programme's layout: conform rounds a
    span's length half up, the layout floors each frame's first sample, so a sample may be
    missing at the end; it holds the last value (a zero there would click)."""
    need = lay.at(s.span[1]) - lay.at(s.span[0])
    if audio.shape[0] >= need or audio.shape[0] == 0:
        return audio
    return np.concatenate([audio, np.repeat(audio[-1:], need - audio.shape[0], axis=0)])


def _body(audio: np.ndarray, s: Stretch, lay: _Layout) -> tuple[int, int, np.ndarray]:
    """The stretch's own frames: their place in the programme and the new music there."""
    off = lay.at(s.span[0])
    a, b = lay.at(s.generate.new_start), lay.at(s.generate.new_end)
    return a, b, _fit(audio, s, lay)[a - off:b - off]


def level_gain(kept_music: np.ndarray, audio: np.ndarray, s: Stretch, recut: RecutPlan,
               new_range: tuple[int, int], target_lufs: float) -> LevelMatch:
    """The stretch's gain (see the module docstring). *kept_music* holds only kept music."""
    lay = _Layout(recut, new_range, kept_music.shape[0])
    sr = lay.sr
    a, b, body = _body(audio, s, lay)
    before, after = _neighbours(recut, s)
    n_before = lay.at(before.new_end) - lay.at(before.new_start) if before else 0
    n_after = lay.at(after.new_end) - lay.at(after.new_start) if after else 0
    w = min(int(LEVEL_WINDOW_S * sr), body.shape[0],
            *(n for n in (n_before, n_after) if n > 0)) if body.shape[0] else 0
    kept_l: list[float | None] = [None, None]
    new_l: list[float | None] = [None, None]
    if before is not None and w:
        kept_l[0], new_l[0] = _lufs(kept_music[a - w:a], sr), _lufs(body[:w], sr)
    if after is not None and w:
        kept_l[1], new_l[1] = _lufs(kept_music[b:b + w], sr), _lufs(body[-w:], sr)
    diffs = [k - n for k, n in zip(kept_l, new_l) if k is not None and n is not None]
    if diffs:
        gain = sum(diffs) / len(diffs)
    else:
        whole = _lufs(body, sr)
        gain = 0.0 if whole is None else target_lufs - whole
    gain = max(-MAX_GAIN_DB, min(MAX_GAIN_DB, gain))
    return LevelMatch(s.id, gain, (kept_l[0], kept_l[1]), (new_l[0], new_l[1]), w / sr)


def _xfade(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = (np.arange(n, dtype=np.float64) + 0.5) / n * (math.pi / 2)
    return np.cos(t)[:, None], np.sin(t)[:, None]


def lay_stretch(out: np.ndarray, audio: np.ndarray, s: Stretch, recut: RecutPlan,
                new_range: tuple[int, int], gain_db: float) -> None:
    """Lay the stretch's music (times its gain) into *out*, crossfaded in its handles."""
    lay = _Layout(recut, new_range, out.shape[0])
    audio = _fit(audio, s, lay) * np.float32(10 ** (gain_db / 20))
    off = lay.at(s.span[0])
    a, b, body = _body(audio, s, lay)
    out[a:a + body.shape[0]] = body
    g = s.generate
    if g.handle_before:
        n = min(a - lay.at(g.new_start - g.handle_before), a - off)
        if n > 0:
            fade_out, fade_in = _xfade(n)
            out[a - n:a] = out[a - n:a] * fade_out + audio[a - off - n:a - off] * fade_in
    if g.handle_after:
        src = audio[b - off:]
        n = min(lay.at(g.new_end + g.handle_after) - b, src.shape[0], out.shape[0] - b)
        if n > 0:
            fade_out, fade_in = _xfade(n)
            out[b:b + n] = src[:n] * fade_out + out[b:b + n] * fade_in
