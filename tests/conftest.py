"""Shared fixtures: generated media (nothing is shipped), sample edits, timeline builders."""

from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "otio_samples"
if not SAMPLES.is_dir():  # CI clones main with shared/ beside it
    SAMPLES = Path(os.environ.get("REELSCORE_SAMPLES", SAMPLES))


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"OTIO samples not found at {SAMPLES}")
    return SAMPLES


@pytest.fixture(scope="session")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def coded_video(media_cache: Path) -> Callable[..., Path]:
    """Factory: a frame-coded H.264 source (cached for the session by its parameters)."""
    from tests.framecode import write_coded_video

    made: dict[tuple[object, ...], Path] = {}

    def make(*, frames: int, rate: Fraction, source_id: int, gop: int = 48,
             first_number: int = 0, width: int = 320, height: int = 180,
             timecode: str | None = None, name: str | None = None) -> Path:
        key = (frames, rate, source_id, gop, first_number, width, height, timecode, name)
        if key not in made:
            fname = name or f"src{source_id}_{rate.numerator}_{rate.denominator}_{frames}_{gop}_{first_number}.mp4"
            made[key] = write_coded_video(
                media_cache / fname, frames=frames, rate=rate, source_id=source_id, gop=gop,
                first_number=first_number, width=width, height=height, timecode=timecode,
            )
        return made[key]

    return make
