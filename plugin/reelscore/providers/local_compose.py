"""The offline engine composing from a plan (``--provider local --method compose``).

No picture is read: each section of the plan becomes one of the engine's sections, exactly its
``duration_ms`` long (48 kHz: 48 samples a millisecond, so every boundary lands on the plan's
millisecond), with its own chord of the progression, tempo and intensity. What the video route
reads from the picture comes from the section's styles instead, mapped to the engine's palette:

* energy (motion): "calm", "soft", "ambient", "slow", "gentle", "quiet", "sparse" lower it;
  "action", "tense", "fast", "driving", "energetic", "urgent", "epic", "upbeat" raise it;
* colour (brightness, the key's mode over the whole request): "dark", "sad", "ominous", "night",
  "melancholy", "sombre" darken it; "bright", "happy", "hopeful", "warm", "joyful" lighten it.

Sections that name none of these alternate between a calm, dark and a lively, bright setting,
so neighbours still differ.
Global styles (v1) count for every section. The seed is the settings' seed, else one derived from
the plan, so the same plan gives the same sketch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from reelscore.errors import InputError
from reelscore.musicplan import global_styles_of, plan_wire, sections_of
from reelscore.providers.base import (
    ClipRef,
    ComposeRequest,
    EventSink,
    GeneratedAudio,
    ignore_event,
)
from reelscore.providers.local import (
    _NAMES,
    MODEL,
    SAMPLE_RATE,
    LocalProvider,
    _ClipAnalysis,
    _plan,
    _synthesise,
)
from reelscore.wavfile import write_wav

_CALM = ("calm", "soft", "ambient", "slow", "gentle", "quiet", "sparse", "still")
_ENERGY = ("action", "tense", "fast", "driving", "energetic", "urgent", "epic", "upbeat", "chase")
_DARK = ("dark", "sad", "ominous", "night", "melancholy", "sombre", "somber", "grim")
_BRIGHT = ("bright", "happy", "hopeful", "warm", "joyful", "sunny", "light")


def _score(styles: tuple[str, ...], low: tuple[str, ...], high: tuple[str, ...]) -> int:
    text = " ".join(styles).casefold()
    return sum(w in text for w in high) - sum(w in text for w in low)


def palette(styles: tuple[str, ...], index: int) -> tuple[float, float]:
    """(motion 0..1 before the engine's curve, brightness 0..1) for a section's styles."""
    energy = _score(styles, _CALM, _ENERGY)
    colour = _score(styles, _DARK, _BRIGHT)
    odd = index % 2 == 1  # unnamed neighbours alternate, so every boundary is heard
    motion = 0.004 if energy < 0 else 0.04 if energy > 0 else (0.03 if odd else 0.004)
    brightness = 0.15 if colour < 0 else 0.7 if colour > 0 else (0.65 if odd else 0.25)
    return motion, brightness


def compose_local(request: ComposeRequest, out_dir: Path, *, on_event: EventSink) -> GeneratedAudio:
    views = sections_of(request.composition_plan)
    if not views:
        raise InputError(f"request {request.request_id}: the composition plan has no sections",
                         hint="re-plan from the edit with `reelscore plan EDIT --composition FILE`")
    glob = global_styles_of(request.composition_plan)
    seed = request.settings.seed
    if seed is None:
        blob = json.dumps(plan_wire(request.composition_plan), sort_keys=True).encode()
        seed = int.from_bytes(hashlib.sha256(blob).digest()[:4], "big")
    per_ms = SAMPLE_RATE // 1000
    bounds = [0]
    for v in views:
        bounds.append(bounds[-1] + v.duration_ms * per_ms)
    clips: list[ClipRef] = []
    analyses: list[_ClipAnalysis] = []
    for i, v in enumerate(views):
        secs = v.duration_ms / 1000
        motion, bright = palette((*glob, *v.styles, v.name), i)
        clips.append(ClipRef(path=Path(v.name or f"section {i + 1}"), frames=max(1, v.duration_ms),
                             rate="1000", duration_s=max(secs, 1e-3), bytes=0,
                             sha256=hashlib.sha256(repr(v).encode()).hexdigest()))
        analyses.append(_ClipAnalysis(0, secs, np.array([0.0, secs]), np.array([bright, bright]),
                                      np.array([motion, motion]), ()))
    tonic, mode, _progression, sections = _plan(tuple(clips), bounds, analyses,
                                                np.random.default_rng(seed))
    audio = _synthesise(sections, analyses, seed, bounds[-1])
    path = Path(out_dir) / f"{request.request_id}.local.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, audio.T, SAMPLE_RATE, bits=24)
    meta = {"method": "compose", "key": f"{_NAMES[tonic]} {mode}", "sample_rate": SAMPLE_RATE,
            "total_samples": bounds[-1],
            "sections": [{"name": v.name, "start_sample": a, "length_samples": b - a,
                          "chord": _NAMES[s.root_pc] + ("" if s.third == 4 else "m"),
                          "tempo_bpm": round(s.tempo_bpm, 3), "intensity": round(s.intensity, 3)}
                         for v, a, b, s in zip(views, bounds, bounds[1:], sections)]}
    on_event("generated", {"file": path.name, "samples": bounds[-1], "sections": len(views),
                           "seed": seed})
    return GeneratedAudio(path=path, container="wav", provider="local", model=MODEL, seed=seed,
                          metadata=meta)


class LocalEngine(LocalProvider):
    """The offline engine as ``--provider local`` builds it: video sketches from the clips
    (``generate``) and sketches that follow a composition plan (``compose``)."""

    def compose(
        self, request: ComposeRequest, out_dir: Path, *, on_event: EventSink = ignore_event
    ) -> GeneratedAudio:
        return compose_local(request, out_dir, on_event=on_event)
