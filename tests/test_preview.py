"""The review movie (issue 15, part 4): ``score --preview`` and ``reelscore preview`` on a 29.97
drop-frame edit crossing a minute; picture codes, burnt-in drop-frame timecode and audio markers
decoded from the movie."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
from opentimelineio import opentime

from reelscore.burnin import scale_for, text_mask
from reelscore.ffmpeg_cli import decode_audio, decode_gray_frames, ffmpeg_exe
from reelscore.wavfile import read_wav, write_wav
from tests.edits import build_timeline
from tests.framecode import read_code

RATE = Fraction(30000, 1001)
START = 1770  # 00:00:59;00: the range crosses the dropped labels 00:01:00;00 and ;01
FRAMES = 240
BURSTS = [(60, 90), (150, 180)]
SR = 48000


def _sample(frame: int) -> int:
    return int(Fraction(frame) * SR / RATE + Fraction(1, 2))


def _edit(tmp_path: Path, coded_video) -> Path:
    src = coded_video(frames=300, rate=RATE, source_id=43, gop=30)
    tl = build_timeline([[("clip", src, 43, 0, 120), ("clip", src, 43, 160, 120)]], RATE,
                        start_frame=START)
    n = _sample(FRAMES)
    x = np.random.default_rng(5).normal(0, 1e-4, (n, 1))
    for a, b in BURSTS:  # 1 kHz at -20 dBFS on known frames: the audio markers
        i, j = _sample(a), _sample(b)
        x[i:j, 0] += 0.1 * np.sin(2 * np.pi * 1000 * np.arange(j - i) / SR)
    wav = tmp_path / "dx.wav"
    write_wav(wav, x.astype(np.float32), SR, bits=24)
    r = float(RATE)
    track = otio.schema.Track(name="DX", kind=otio.schema.TrackKind.Audio)
    rng = opentime.TimeRange(opentime.RationalTime(0, r), opentime.RationalTime(FRAMES, r))
    track.append(otio.schema.Clip(name="dx", source_range=rng, media_reference=(
        otio.schema.ExternalReference(target_url=wav.as_uri(), available_range=rng))))
    tl.tracks.append(track)
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(edit))
    return edit


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "x"), "REELSCORE_NO_KEYRING": "1"}
    env.pop("REELSCORE_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "reelscore", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def _burnt_label_matches(frame: np.ndarray, label: str) -> float:
    """Share of the text box's pixels that agree with *label* drawn in the burn-in font."""
    h = frame.shape[0]
    s = scale_for(h)
    mask = text_mask(label, s)
    y0 = h - (mask.shape[0] + 2 * s) - s + s  # box top + pad
    x0 = 2 * s
    region = frame[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]] > 128
    return float((region == mask).mean())


def test_review_movie_is_frame_exact_in_sync_and_labelled(tmp_path: Path, coded_video) -> None:
    edit = _edit(tmp_path, coded_video)
    out, movie = tmp_path / "scored.otio", tmp_path / "review.mp4"
    proc = _run(tmp_path, "score", str(edit), "-o", str(out), "--provider", "local", "--json",
                "--preview", str(movie))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["preview"] == str(movie)
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert manifest["plan"]["drop_frame"] is True

    # H.264 high / yuv420p, AAC 48 kHz stereo, moov before mdat (+faststart): browsers play it
    info = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(movie)],
                          capture_output=True, text=True, check=False).stderr
    assert "h264 (High)" in info and "yuv420p" in info, info
    assert "aac" in info and "48000 Hz, stereo" in info, info
    head = movie.read_bytes()
    assert 0 < head.find(b"moov") < head.find(b"mdat")

    # picture: frame k of the movie is frame k of the range (clip 1: 0..119, clip 2: 160..279)
    gray = decode_gray_frames(movie, width=640, height=360)
    assert gray.shape[0] == FRAMES
    codes = [read_code(f) for f in gray]
    expected = [(43, k) for k in range(120)] + [(43, 160 + k) for k in range(120)]
    assert codes == expected

    # burn-in: drop-frame record timecode (OTIO's own conversion) and the scene number
    for k in (0, 29, 30, 31, 119, 120, 239):
        tc = opentime.to_timecode(opentime.RationalTime(START + k, float(RATE)), float(RATE),
                                  drop_frame=True)
        label = f"{tc}  S{1 if k < 120 else 2:02d}"
        assert _burnt_label_matches(gray[k], label) > 0.97, (k, label)
        other = f"{opentime.to_timecode(opentime.RationalTime(START + k + 1, float(RATE)), float(RATE), drop_frame=True)}  S01"
        assert _burnt_label_matches(gray[k], other) < _burnt_label_matches(gray[k], label)
    assert "00:01:00;02" in opentime.to_timecode(opentime.RationalTime(START + 30, float(RATE)),
                                                  float(RATE), drop_frame=True)

    # sound: the score at its delivered level is in the mix
    audio = decode_audio(movie)
    assert abs(audio.shape[0] - _sample(FRAMES)) <= 2048  # AAC may round up to its frame
    score, _ = read_wav(Path(manifest["outputs"]["music_wav"]))
    quiet = slice(_sample(10), _sample(50))
    level = 10 * np.log10(np.mean(audio[quiet] ** 2) / np.mean(score[quiet] ** 2))
    assert abs(level) < 1.0

    # `reelscore preview` with the score 90 dB down: the DX bursts start and stop on their frames
    silent = tmp_path / "dx_only.mp4"
    proc = _run(tmp_path, "preview", str(out), "-o", str(silent), "--score-level", "-90")
    assert proc.returncode == 0, proc.stderr
    dx = np.abs(decode_audio(silent)[:, 0])
    loud = dx > 0.05
    for a, b in BURSTS:
        first = int(np.argmax(loud[_sample(a) - 4800:])) + _sample(a) - 4800
        last = _sample(b) - 4800 + int(np.flatnonzero(loud[_sample(b) - 4800:_sample(b) + 4800])[-1])
        assert abs(first - _sample(a)) <= 48, (a, first, _sample(a))  # within 1 ms
        assert abs(last - _sample(b)) <= 48, (b, last, _sample(b))


def test_preview_of_an_edit_reelscore_did_not_score_is_refused(tmp_path: Path,
                                                              coded_video) -> None:
    edit = _edit(tmp_path, coded_video)
    movie = tmp_path / "review.mp4"
    proc = _run(tmp_path, "preview", str(edit), "-o", str(movie))
    assert proc.returncode != 0
    assert "not scored by reelscore" in proc.stderr
    assert not movie.exists() and not list(tmp_path.glob(".review*"))


def test_compose_job_previews_from_the_reference_movie(tmp_path: Path, coded_video) -> None:
    """--method compose renders no clips: refused without a picture, then cut from --reference
    (file frame = record frame - its start), frame-exact past a mid-movie seek."""
    rate = Fraction(25)
    src = coded_video(frames=300, rate=rate, source_id=44, gop=25)
    tl = build_timeline([[("clip", src, 44, 40, 150)]], rate, start_frame=90000 + 40)
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(edit))
    out = tmp_path / "scored.otio"
    proc = _run(tmp_path, "score", str(edit), "-o", str(out), "--provider", "local",
                "--method", "compose", "--json")
    assert proc.returncode == 0, proc.stderr
    movie = tmp_path / "review.mp4"
    proc = _run(tmp_path, "preview", str(out), "-o", str(movie))
    assert proc.returncode != 0 and "--reference" in proc.stderr
    assert not movie.exists()
    # the source itself is a flattened movie of a cut that starts at 01:00:00:00 with frame 0
    proc = _run(tmp_path, "preview", str(out), "-o", str(movie), "--reference", str(src),
                "--reference-start", "01:00:00:00")
    assert proc.returncode == 0, proc.stderr
    codes = [read_code(f) for f in decode_gray_frames(movie, width=640, height=360)]
    assert codes == [(44, 40 + k) for k in range(150)]


def test_preview_with_dry_run_is_refused(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from reelscore.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "x"))
    monkeypatch.delenv("REELSCORE_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["score", "cut.otio", "-o", "s.otio", "--provider", "local",
                                      "--dry-run", "--preview", "review.mp4"])
    assert result.exit_code != 0
    assert "--preview needs a score" in result.output
    assert not (tmp_path / "review.mp4").exists()
