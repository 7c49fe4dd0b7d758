"""``reelscore batch`` as a user runs it, against a service that allows 3 generations at once.

Twelve tiny edits (160x90, two cuts, about two seconds each) and one whose media is offline are
scored by ``reelscore batch`` in four worker processes, through real ffmpeg and real HTTP to the
contract server limited to 3 generations in flight, with ``--concurrency 3`` as the batch's
service budget. Every good edit is written with its job folder, no request is refused for
concurrency, each is generated exactly once; the bad edit fails alone (exit 8) and is named in
the summary. A rerun skips the finished edits (nothing sent) and scores the one that failed once
its media is there.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from reelscore.conform import SAMPLE_RATE, frames_to_samples
from reelscore.wavfile import read_wav
from tests.contract_fixtures import TEST_KEY
from tests.contract_server import V2M, ContractServer
from tests.edits import build_timeline
from tests.framecode import read_codes

R = Fraction(25)
LIMIT = 3
EDITS = 12


@pytest.fixture()
def server() -> Iterator[ContractServer]:
    srv = ContractServer().start()
    srv.state.elevenlabs_key = TEST_KEY
    srv.state.max_concurrent = LIMIT
    srv.state.generation_delay_s = 0.3
    # The first generations wait until LIMIT are in flight: the batch must reach the service's
    # limit (however slowly this machine renders) and never pass it.
    srv.state.hold_until_in_flight = LIMIT
    try:
        yield srv
    finally:
        srv.stop()


def cuts(i: int) -> tuple[int, int]:
    return 25 + (i % 4) * 3, 30 + (i % 3) * 4  # frames of the two scenes of edit i


def source_in(i: int) -> int:
    return 1 + i * 5


def make_edits(tmp_path: Path, coded_video) -> list[Path]:
    src = coded_video(frames=200, rate=R, source_id=52, gop=25, width=160, height=90)
    paths = []
    for i in range(EDITS):
        a, b = cuts(i)
        tl = build_timeline([[("clip", src, 52, source_in(i), a),
                              ("clip", src, 52, source_in(i) + 60, b)]], R,
                            start_frame=90000, name=f"ep{i:02d}")
        path = tmp_path / "edits" / f"ep{i:02d}.otio"
        path.parent.mkdir(exist_ok=True)
        otio.adapters.write_to_file(tl, str(path))
        paths.append(path)
    return paths


def bad_edit(tmp_path: Path) -> tuple[Path, Path]:
    """An edit whose media is offline (and where it should be)."""
    media = tmp_path / "later" / "late.mp4"
    tl = build_timeline([[("clip", media, 53, 0, 40)]], R, start_frame=90000, name="late")
    path = tmp_path / "edits" / "late.otio"
    path.parent.mkdir(exist_ok=True)
    otio.adapters.write_to_file(tl, str(path))
    return path, media


def batch(tmp_path: Path, server: ContractServer, *args: str,
          workers: int = 4) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "reelscore.toml"
    config.write_text(f'provider = "elevenlabs"\nbase_url = "{server.url}"\n', "utf-8")
    env = {**os.environ, "COLUMNS": "200", "ELEVENLABS_API_KEY": TEST_KEY,
           "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    env.pop("REELSCORE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "reelscore", "batch", *args, "--config", str(config),
         "--workers", str(workers), "--concurrency", str(LIMIT), "--min-scene", "0.5",
         "--output-format", "pcm_48000"],
        capture_output=True, text=True, env=env, check=False, timeout=900)


def clicks(wav: Path) -> list[int]:
    """Sample positions where a click starts (the contract answer clicks at each video start)."""
    data, rate = read_wav(wav)
    assert rate == SAMPLE_RATE
    mono = np.abs(data[:, 0])
    hot = np.flatnonzero(mono > 0.6 * mono.max())
    return [int(hot[0])] + [int(b) for a, b in zip(hot[:-1], hot[1:]) if b - a > 480]


def check_scored(out: Path, i: int) -> None:
    """Frames and alignment of edit *i*'s result: its clips show the cut's frames; the Score clip
    covers the cut; the music's clicks are on the two video starts."""
    a, b = cuts(i)
    job = out.parent / f"{out.name}.reelscore"
    manifest = json.loads((job / "manifest.json").read_text("utf-8"))
    (rec,) = manifest["requests"].values()
    clips = [Path(c["path"]) for c in rec["clips"]]
    assert [len(read_codes(c)) for c in clips] == [a, b]
    assert read_codes(clips[0])[0] == (52, source_in(i))
    assert read_codes(clips[1])[-1] == (52, source_in(i) + 60 + b - 1)
    scored = otio.adapters.read_from_file(str(out))
    score = scored.tracks[-1]
    assert score.name == "Score" and score.kind == otio.schema.TrackKind.Audio
    clip = next(c for c in score if isinstance(c, otio.schema.Clip))
    rng = clip.transformed_time_range(clip.trimmed_range(), scored.tracks)
    assert (round(rng.start_time.value), round(rng.duration.value)) == (0, a + b)
    wav = Path(otio.url_utils.filepath_from_url(clip.media_reference.target_url))
    data, _ = read_wav(wav)
    assert len(data) == frames_to_samples(a + b, R)
    found = clicks(wav)
    tol = 0.005 * SAMPLE_RATE
    for start in (0, frames_to_samples(a, R)):
        assert min(abs(c - start) for c in found) <= tol, (i, found, start)


def test_a_dozen_edits_share_the_service_limit_and_a_rerun_skips_them(tmp_path, coded_video,
                                                                      server):
    edits = make_edits(tmp_path, coded_video)
    late, media = bad_edit(tmp_path)
    outdir = tmp_path / "scored"
    proc = batch(tmp_path, server, *map(str, [*edits, late]), "-o", str(outdir))
    assert proc.returncode == 8, proc.stderr[-3000:]
    assert "1 of 13 edit(s) failed: late.scored.otio" in proc.stderr
    assert "rerun the same command" in proc.stderr

    posts = server.state.requests_to(V2M)
    assert not [p for p in posts if p.status == 429], "no request refused for concurrency"
    assert server.state.charges == EDITS and len(posts) == EDITS, "one generation per edit"
    assert server.state.peak_in_flight == LIMIT and server.state.in_flight == 0

    for i in (0, 5, 11):
        check_scored(outdir / f"ep{i:02d}.scored.otio", i)
    assert all((outdir / f"ep{i:02d}.scored.otio").is_file() for i in range(EDITS))
    assert not (outdir / "late.scored.otio").exists()

    rows = list(csv.DictReader((outdir / "batch-summary.csv").open(encoding="utf-8")))
    assert [r["name"] for r in rows] == [f"ep{i:02d}.scored.otio" for i in range(EDITS)] + [
        "late.scored.otio"]
    assert {r["outcome"] for r in rows[:EDITS]} == {"done"} and rows[-1]["outcome"] == "failed"
    assert "offline" in rows[-1]["error"] and str(media) in rows[-1]["error"]
    assert rows[-1]["exit_code"] == "2"
    summary = json.loads((outdir / "batch-summary.json").read_text("utf-8"))
    assert (summary["edits"], summary["done"], summary["failed"]) == (13, 12, 1)
    assert all(abs(float(r["integrated_lufs"]) + 14) <= 0.2 for r in rows[:EDITS])

    # The rerun skips every finished edit (nothing sent) and scores the one whose media arrived.
    media.parent.mkdir()
    os.link(coded_video(frames=60, rate=R, source_id=53, gop=25, width=160, height=90), media)
    proc = batch(tmp_path, server, *map(str, [*edits, late]), "-o", str(outdir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((outdir / "batch-summary.json").read_text("utf-8"))
    assert (summary["skipped"], summary["done"], summary["failed"]) == (12, 1, 0)
    assert server.state.charges == EDITS + 1 and len(server.state.requests_to(V2M)) == EDITS + 1
    assert (outdir / "late.scored.otio").is_file()


def test_every_edit_failing_exits_9_and_bad_jobs_files_stop_before_any_work(tmp_path, server):
    late, _ = bad_edit(tmp_path)
    outdir = tmp_path / "scored"
    proc = batch(tmp_path, server, str(late), "-o", str(outdir))
    assert proc.returncode == 9 and "all 1 edit(s) failed" in proc.stderr
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"edit,mood\n{late},dark\n", "utf-8")
    proc = batch(tmp_path, server, "--jobs", str(jobs), "-o", str(tmp_path / "other"))
    assert proc.returncode == 2 and "jobs.csv header: unknown column 'mood'" in proc.stderr
    assert not (tmp_path / "other").exists()
    assert server.state.charges == 0


def test_a_jobs_file_gives_each_edit_its_own_settings(tmp_path, coded_video):
    """Offline engine (no service): a row's settings reach that edit only; --only picks one."""
    first, second = make_edits(tmp_path, coded_video)[:2]
    jobs = tmp_path / "edits" / "jobs.toml"
    jobs.write_text('[[job]]\nedit = "ep00.otio"\ntrack_name = "Temp Score"\ntarget_lufs = -23\n\n'
                    '[[job]]\nedit = "ep01.otio"\noutput = "sub/second.otio"\n', "utf-8")
    (tmp_path / "out" / "sub").mkdir(parents=True)
    env = {**os.environ, "COLUMNS": "200", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    env.pop("REELSCORE_CONFIG", None)

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reelscore", "batch", "--jobs", str(jobs), "-o",
             str(tmp_path / "out"), "--provider", "local", "--min-scene", "0.5", "--workers", "2",
             "--json", *extra], capture_output=True, text=True, env=env, check=False,
            timeout=900)

    proc = run("--only", "second.otio")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [i["name"] for i in json.loads(proc.stdout)["items"]] == ["second.otio"]
    assert not (tmp_path / "out" / "ep00.scored.otio").exists()
    proc = run()
    assert proc.returncode == 0, proc.stderr[-3000:]
    items = {i["name"]: i for i in json.loads(proc.stdout)["items"]}
    assert items["second.otio"]["outcome"] == "skipped"
    assert abs(items["ep00.scored.otio"]["integrated_lufs"] + 23) <= 0.2
    one = otio.adapters.read_from_file(str(tmp_path / "out" / "ep00.scored.otio"))
    two = otio.adapters.read_from_file(str(tmp_path / "out" / "sub" / "second.otio"))
    assert one.tracks[-1].name == "Temp Score" and two.tracks[-1].name == "Score"
    assert first.is_file() and second.is_file()
    proc = run("--only", "nope.otio")
    assert proc.returncode == 2 and "--only 'nope.otio'" in proc.stderr
