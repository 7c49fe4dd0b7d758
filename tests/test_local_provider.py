"""The offline sketch engine (providers/local.py) on real clips made with the real ffmpeg."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reelscore.errors import InputError, MediaError
from reelscore.ffmpeg_cli import ffmpeg_exe
from reelscore.fsutil import sha256_file
from reelscore.providers import Provider, make_provider
from reelscore.providers.base import ClipRef, GenerationRequest, GenerationSettings
from reelscore.providers.local import ENGINE_NOTE, MODEL, SAMPLE_RATE, LocalProvider, derive_seed

SR = SAMPLE_RATE


# --------------------------------------------------------------------------------------- helpers


def _encode(path: Path, lavfi: str, frames: int) -> None:
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
         "-i", lavfi, "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )


def make_clip(path: Path, kind: str, rate: str, frames: int) -> ClipRef:
    """A real H.264 clip: 'moving' (testsrc2), 'black', or 'cut' (1.5 s black, then testsrc2)."""
    size = "160x90"
    if kind == "moving":
        _encode(path, f"testsrc2=size={size}:rate={rate}", frames)
    elif kind == "black":
        _encode(path, f"color=c=black:size={size}:rate={rate}", frames)
    elif kind == "cut":
        half = round(Fraction(3, 2) * Fraction(rate))
        graph = (f"color=c=black:size={size}:rate={rate},trim=end_frame={half}[a];"
                 f"testsrc2=size={size}:rate={rate}[b];[a][b]concat=n=2:v=1:a=0")
        _encode(path, graph, frames)
    else:  # pragma: no cover - test helper misuse
        raise ValueError(kind)
    return clip_ref(path, rate, frames)


def clip_ref(path: Path, rate: str, frames: int) -> ClipRef:
    return ClipRef(
        path=path, frames=frames, rate=rate, duration_s=float(frames / Fraction(rate)),
        bytes=path.stat().st_size, sha256=sha256_file(path),
    )


def request(clips: list[ClipRef], seed: int | None = 11, rid: str = "r01") -> GenerationRequest:
    return GenerationRequest(
        request_id=rid, clips=tuple(clips), settings=GenerationSettings(seed=seed)
    )


def read_wav(path: Path) -> np.ndarray:
    """24-bit stereo WAV -> float64 (frames, 2)."""
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, SR, 3)
        raw = w.readframes(w.getnframes())
    b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
    ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
    return (ints / float(1 << 23)).reshape(-1, 2)


def chroma(x: np.ndarray, *, power: bool, low_hz: float = 27.5) -> np.ndarray:
    """Energy per pitch class (0 = C) from one FFT of the mono mix, 27.5 Hz - 5 kHz."""
    mono = x.mean(axis=1)
    spec = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    freqs = np.fft.rfftfreq(len(mono), 1 / SR)
    sel = (freqs >= low_hz) & (freqs <= 5000)
    pcs = np.round(12 * np.log2(freqs[sel] / 440.0) + 69).astype(int) % 12
    weights = spec[sel] ** 2 if power else spec[sel]
    return np.bincount(pcs, weights=weights, minlength=12)


def expected_bounds(clips: list[ClipRef]) -> list[int]:
    out, t = [0], Fraction(0)
    for c in clips:
        t += c.frames / Fraction(c.rate)
        out.append(round(t * SR))
    return out


@pytest.fixture(scope="module")
def scene_clips(tmp_path_factory: pytest.TempPathFactory) -> list[ClipRef]:
    """Three scenes at 23.976: moving, black, moving (2.5 s, 2 s, 3 s)."""
    d = tmp_path_factory.mktemp("scenes")
    rate = "24000/1001"
    return [
        make_clip(d / "s1 moving.mp4", "moving", rate, 60),
        make_clip(d / "s2-black.mp4", "black", rate, 48),
        make_clip(d / "s3_moving.mp4", "moving", rate, 72),
    ]


@pytest.fixture(scope="module")
def scored(
    scene_clips: list[ClipRef], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, np.ndarray, list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    out = tmp_path_factory.mktemp("scored")
    result = LocalProvider().generate(
        request(scene_clips), out, on_event=lambda name, data: events.append((name, data))
    )
    return result, read_wav(result.path), events


# ----------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("rate", ["24", "24000/1001", "30000/1001"])
def test_length_is_exact_in_samples(rate: str, tmp_path: Path) -> None:
    clips = [
        make_clip(tmp_path / "a.mp4", "moving", rate, 37),
        make_clip(tmp_path / "b.mp4", "black", rate, 53),
    ]
    result = LocalProvider().generate(request(clips), tmp_path / "out")
    want = round(Fraction(90) / Fraction(rate) * SR)
    audio = read_wav(result.path)
    assert len(audio) == want == result.metadata["total_samples"]
    starts = [s["start_sample"] for s in result.metadata["sections"]]
    lengths = [s["length_samples"] for s in result.metadata["sections"]]
    assert starts == [0, round(Fraction(37) / Fraction(rate) * SR)]
    assert sum(lengths) == want


def test_result_fields_events_and_honest_label(scored: Any) -> None:
    result, _audio, events = scored
    assert result.container == "wav" and result.provider == "local" and result.model == MODEL
    assert result.seed == 11 and result.path.name == "r01.local.wav" and result.path.is_file()
    assert result.metadata["engine_note"] == ENGINE_NOTE
    required = {"index", "start_sample", "length_samples", "root_pc", "chord", "tempo_bpm", "intensity"}
    for i, section in enumerate(result.metadata["sections"]):
        assert required <= section.keys() and section["index"] == i
    assert "not a substitute for the service" in ENGINE_NOTE
    assert [name for name, _ in events] == ["analysis", "generated"]
    for _name, data in events:
        text = json.dumps(data)  # JSON-friendly
        assert str(result.path.parent) not in text  # file names only, no paths
    assert events[1][1]["file"] == "r01.local.wav"
    json.dumps(result.metadata)
    provider = make_provider("local")
    assert isinstance(provider, LocalProvider) and isinstance(provider, Provider)


def test_same_seed_same_bytes_other_seed_other_music(scene_clips: list[ClipRef], tmp_path: Path) -> None:
    p = LocalProvider()
    a = p.generate(request(scene_clips, seed=5), tmp_path / "a")
    b = p.generate(request(scene_clips, seed=5), tmp_path / "b")
    c = p.generate(request(scene_clips, seed=6), tmp_path / "c")
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.metadata == b.metadata
    # A different seed picks a different key or progression, not just different noise.
    assert (a.metadata["key"], a.metadata["progression"]) != (c.metadata["key"], c.metadata["progression"])
    xa, xc = read_wav(a.path), read_wav(c.path)
    assert abs(np.corrcoef(xa[:, 0], xc[:, 0])[0, 1]) < 0.5


def test_no_seed_derives_a_stable_one_from_the_clips(scene_clips: list[ClipRef], tmp_path: Path) -> None:
    req = request(scene_clips, seed=None)
    a = LocalProvider().generate(req, tmp_path / "a")
    b = LocalProvider().generate(req, tmp_path / "b")
    assert a.seed == b.seed == derive_seed(req)
    assert a.metadata["seed_source"] == "clips_sha256"
    assert a.path.read_bytes() == b.path.read_bytes()


def test_sections_start_on_clip_boundaries_with_an_onset(scene_clips: list[ClipRef], scored: Any) -> None:
    result, audio, _ = scored
    bounds = expected_bounds(scene_clips)
    sections = result.metadata["sections"]
    assert [s["start_sample"] for s in sections] == bounds[:-1]
    assert [s["start_sample"] + s["length_samples"] for s in sections] == bounds[1:]
    w = SR // 100  # 10 ms
    for b in bounds[1:-1]:
        before = float(np.mean(audio[b - w : b] ** 2))
        after = float(np.mean(audio[b : b + w] ** 2))
        assert after > 4 * before, (b, before, after)
    assert float(np.mean(audio[:w] ** 2)) > 1e-5  # the first section opens with its downbeat too


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dominant_pitch_class_is_the_section_root(scene_clips: list[ClipRef], tmp_path: Path, seed: int) -> None:
    result = LocalProvider().generate(request(scene_clips, seed=seed), tmp_path)
    audio = read_wav(result.path)
    edge = SR // 20  # 50 ms
    roots = []
    for s in result.metadata["sections"]:
        window = audio[s["start_sample"] + edge : s["start_sample"] + s["length_samples"] - edge]
        for power in (True, False):
            assert int(np.argmax(chroma(window, power=power))) == s["root_pc"], (s, power)
        # Still the root without the sub-bass (a chroma that starts above the kick and bass).
        assert int(np.argmax(chroma(window, power=False, low_hz=100))) == s["root_pc"]
        roots.append(s["root_pc"])
    assert all(r1 != r2 for r1, r2 in itertools.pairwise(roots))


def test_tempo_and_intensity_follow_the_picture(scored: Any) -> None:
    result, _, _ = scored
    moving1, black, moving2 = result.metadata["sections"]
    for moving in (moving1, moving2):
        assert moving["tempo_bpm"] > black["tempo_bpm"]
        assert moving["intensity"] > black["intensity"] + 0.2
        assert moving["motion"] > 0.2 > black["motion"]
    for s in result.metadata["sections"]:
        assert 60 <= s["tempo_bpm"] <= 140


def test_level_peaks_under_minus_1_dbfs_and_not_silent(scored: Any) -> None:
    result, audio, _ = scored
    assert float(np.abs(audio).max()) < 10 ** (-1 / 20)
    assert 10 * np.log10(np.mean(audio**2)) > -26
    for s in result.metadata["sections"]:
        part = audio[s["start_sample"] : s["start_sample"] + s["length_samples"]]
        assert 10 * np.log10(np.mean(part**2)) > -40
        assert np.ptp(part[:, 0] - part[:, 1]) > 0  # some stereo width


def test_hard_cut_inside_a_clip_becomes_an_accent(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "two shots.mp4", "cut", "24", 84)
    result = LocalProvider().generate(request([clip]), tmp_path / "out")
    (section,) = result.metadata["sections"]
    assert len(section["accent_samples"]) == 1
    assert abs(section["accent_samples"][0] - 36 * SR // 24) <= SR // 24  # within a frame


def test_undecodable_clip_is_a_media_error_naming_it(scene_clips: list[ClipRef], tmp_path: Path) -> None:
    bogus = tmp_path / "notes for the edit.mov"
    bogus.write_text("this is not a video\n" * 50)
    clips = [scene_clips[0], clip_ref(bogus, "24", 24)]
    with pytest.raises(MediaError, match=re.escape("notes for the edit.mov")):
        LocalProvider().generate(request(clips), tmp_path / "out")
    assert not any((tmp_path / "out").glob("*.wav"))

    missing = clip_ref(bogus, "24", 24).model_copy(update={"path": tmp_path / "gone.mp4"})
    with pytest.raises(MediaError, match=re.escape("gone.mp4")):
        LocalProvider().generate(request([missing]), tmp_path / "out")


def test_empty_request_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        LocalProvider().generate(request([]), tmp_path)
