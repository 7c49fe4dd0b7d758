"""``reelscore score NEW -o OUT --previous OLD --dry-run`` through the command line.

A first score (offline engine, frame-coded sources rendered by ffmpeg) records what an update
needs in its manifest (``recut_basis``); the dry run of a recut matches the new cut against it by
picture, prints the change list and the cost, saves them in the new job folder, sends nothing.
"""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from reelscore.cli import app
from reelscore.conform import frames_to_samples
from reelscore.recut import ChangeList, CutFingerprint
from reelscore.wavfile import read_wav
from tests.contract_fixtures import TEST_KEY
from tests.contract_server import V2M, ContractServer
from tests.edits import build_timeline

R = Fraction(24)
START = 86400  # 01:00:00:00


@pytest.fixture()
def sources(coded_video) -> dict[str, tuple[Path, int]]:
    return {name: (coded_video(frames=400, rate=R, source_id=sid, gop=48), sid)
            for name, sid in (("A", 21), ("B", 22), ("C", 23), ("D", 24))}


def write_cut(path: Path, sources, shots: list[tuple[str, int, int]]) -> Path:
    items = [("clip", sources[n][0], sources[n][1], src_in, frames) for n, src_in, frames in shots]
    otio.adapters.write_to_file(build_timeline([items], R, start_frame=START), str(path))
    return path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


COMMON = ("--provider", "local", "--scenes", "cuts", "--min-scene", "0.5", "--seed", "5")
A, B, C = ("A", 10, 48), ("B", 20, 36), ("C", 30, 60)


@pytest.fixture()
def first(tmp_path, sources) -> Path:
    old = write_cut(tmp_path / "v1.otio", sources, [A, B, C])
    code, text = cli("score", str(old), "-o", str(tmp_path / "v1_scored.otio"), *COMMON)
    assert code == 0, text
    return tmp_path / "v1_scored.otio"


def manifest(job: Path) -> dict:
    return json.loads((job / "manifest.json").read_text())


def test_a_score_records_what_an_update_needs(first: Path) -> None:
    m = manifest(first.parent / "v1_scored.otio.reelscore")
    basis = m["recut_basis"]
    wav = Path(basis["music_wav"])
    assert hashlib.sha256(wav.read_bytes()).hexdigest() == basis["sha256"]
    assert basis["first_frame"] == 0 and basis["sample_rate"] == 48000
    assert basis["crossfade_frames"] == m["plan"]["crossfade_frames"]
    fp = CutFingerprint.model_validate(basis["fingerprint"])
    assert fp.start_frame == START and fp.rate == "24"
    assert [(s.start, s.end) for s in fp.scenes] == [(0, 48), (48, 84), (84, 144)]
    assert [[(r.source.split(":")[0], r.media_start, r.count) for r in s.runs]
            for s in fp.scenes] == [[("ExternalReference", str(src_in), n)]
                                    for _, src_in, n in (A, B, C)]
    assert read_wav(wav)[0].shape[0] == 144 * 2000  # 144 frames at 24 fps, 48 kHz


def test_dry_run_prints_and_saves_the_change_list(tmp_path, sources, first: Path) -> None:
    # v2: B moved before A, C trimmed 12 frames at the head, D inserted at the end.
    new = write_cut(tmp_path / "v2.otio", sources, [B, A, ("C", 42, 48), ("D", 5, 24)])
    out = tmp_path / "v2_scored.otio"
    code, text = cli("score", str(new), "-o", str(out), "--previous", str(first), "--dry-run",
                     *COMMON)
    assert code == 0, text
    assert "REORDERED" in text or "UNCHANGED" in text
    assert "head trimmed 12f" in text and "NEW" in text
    assert "01:00:00:00" in text and "a full rescore generates 6.50 s" in text
    assert "nothing rendered or sent" in text
    job = tmp_path / "v2_scored.otio.reelscore"
    cl = ChangeList.model_validate_json((job / "recut" / "changes.json").read_text())
    kinds = {c.new_id: c.kind for c in cl.changes if c.new_id}
    assert kinds["s004"] == "new" and kinds["s003"] == "trimmed"
    assert {kinds["s001"], kinds["s002"]} <= {"unchanged", "reordered"}
    assert (job / "recut" / "changes.txt").read_text().startswith("change list:")
    plan = json.loads((job / "recut" / "plan.json").read_text())
    assert plan["cost"]["generate_frames"] == 24 and plan["cost"]["kept_frames"] == 132
    m = manifest(job)
    assert m["recut"]["previous_job_id"] == manifest(first.parent / "v1_scored.otio.reelscore")[
        "job_id"]
    assert "requests" not in m or m["requests"] == {}
    assert not out.exists()

    # The job folder itself works as --previous; --regenerate-trimmed generates C afresh.
    code, text = cli("score", str(new), "-o", str(out), "--previous",
                     str(first.parent / "v1_scored.otio.reelscore"), "--dry-run",
                     "--regenerate-trimmed", *COMMON)
    assert code == 0, text
    plan = json.loads((job / "recut" / "plan.json").read_text())
    assert plan["cost"]["generate_frames"] == 72 and plan["cost"]["kept_frames"] == 84


def test_the_score_clip_names_its_job(tmp_path, sources, first: Path) -> None:
    moved = tmp_path / "elsewhere.otio"  # no elsewhere.otio.reelscore: found by the clip's job id
    moved.write_bytes(first.read_bytes())
    new = write_cut(tmp_path / "v2.otio", sources, [A, B, C])
    code, text = cli("score", str(new), "-o", str(tmp_path / "v2s.otio"), "--previous",
                     str(moved), "--dry-run", *COMMON)
    assert code == 0, text
    assert "kept 6.00 s" in text and "generate 0.00 s in 0 stretch(es)" in text


def test_refusals(tmp_path, sources, first: Path) -> None:
    job = first.parent / "v1_scored.otio.reelscore"
    other = write_cut(tmp_path / "other.otio", sources, [("D", 100, 48)])
    code, text = cli("score", str(other), "-o", str(tmp_path / "o.otio"), "--previous",
                     str(first), "--dry-run", *COMMON)
    assert code != 0 and "not an edit of the same programme" in text and "afresh" in text

    new = write_cut(tmp_path / "v2.otio", sources, [A, B, ("D", 5, 24)])

    code, text = cli("score", str(new), "-o", str(first), "--force", "--previous", str(first),
                     *COMMON)  # over the previous version: its job folder would be reused
    assert code != 0 and "previous version's job folder" in text

    wav = Path(manifest(job)["recut_basis"]["music_wav"])
    data = bytearray(wav.read_bytes())
    data[-1] ^= 1
    wav.write_bytes(bytes(data))
    code, text = cli("score", str(new), "-o", str(tmp_path / "n.otio"), "--previous", str(first),
                     "--dry-run", *COMMON)
    assert code != 0 and "altered" in text and wav.name in text

    wav.unlink()
    code, text = cli("score", str(new), "-o", str(tmp_path / "n.otio"), "--previous", str(first),
                     "--dry-run", *COMMON)
    assert code != 0 and "missing" in text

    m = manifest(job)
    del m["recut_basis"]
    (job / "manifest.json").write_text(json.dumps(m))
    code, text = cli("score", str(new), "-o", str(tmp_path / "n.otio"), "--previous", str(job),
                     "--dry-run", *COMMON)
    assert code != 0 and "afresh" in text and "recut_basis" in text


# ------------------------------------------------------------------ the update (nothing to generate)

SPF = 2000  # samples per frame at 24 fps, 48 kHz
XF = 12  # the plan's crossfade at 24 fps (0.5 s)


def update(tmp_path: Path, sources, first: Path, shots, name: str) -> tuple[Path, dict]:
    new = write_cut(tmp_path / f"{name}.otio", sources, shots)
    out = tmp_path / f"{name}_scored.otio"
    code, text = cli("score", str(new), "-o", str(out), "--previous", str(first), *COMMON)
    assert code == 0, text
    assert "nothing sent" in text
    return out, manifest(tmp_path / f"{name}_scored.otio.reelscore")


def old_music(first: Path):
    return read_wav(Path(manifest(first.parent / "v1_scored.otio.reelscore")["recut_basis"][
        "music_wav"]))[0]


def same(new, a: int, old, b: int, frames: int) -> None:
    """New frames [a, a+frames) carry exactly the old music of old frames [b, b+frames)."""
    x, y = new[a * SPF:(a + frames) * SPF], old[b * SPF:(b + frames) * SPF]
    assert x.shape == y.shape and np.max(np.abs(x - y)) < 1e-6


def continuous(music, frame: int) -> None:
    """No click on the cut: the sample step across it is like the steps around it."""
    s = frame * SPF
    step = np.max(np.abs(np.diff(music[s - 48:s + 48], axis=0)))
    quiet = np.concatenate([music[s - 4000:s - 1000], music[s + 1000:s + 4000]])
    around = np.max(np.abs(np.diff(quiet, axis=0)))
    assert step <= 1.5 * around


@pytest.mark.parametrize("name, shots, windows, cuts", [
    # no change: the same samples, every one
    ("same", [A, B, C], [(0, 0, 144)], []),
    # reorder: B first, then A, then C
    ("reorder", [B, A, C], [(0, 48, 36 - 0), (36 + XF, XF, 48 - XF), (84 + XF, 84 + XF, 60 - XF)],
     [36, 84]),
    # delete B: A then C (C moved 36 frames earlier)
    ("delete", [A, C], [(0, 0, 48), (48 + XF, 84 + XF, 60 - XF)], [48]),
    # trim A's head by 8 and C's tail by 20 (inside what they showed)
    ("trim", [("A", 18, 40), B, ("C", 30, 40)], [(0, 8, 40 + 36 + 40)], []),
])
def test_update_keeps_the_old_music_at_the_new_positions(tmp_path, sources, first, name, shots,
                                                         windows, cuts) -> None:
    old = old_music(first)
    out, m = update(tmp_path, sources, first, shots, name)
    music, sr = read_wav(Path(m["outputs"]["music_wav"]))
    total = sum(n for _, _, n in shots)
    assert sr == 48000 and music.shape[0] == total * SPF
    for a, b, n in windows:
        same(music, a, old, b, n)
    for f in cuts:
        continuous(music, f)
    assert m["loudness"]["recut_gain_db"] == 0.0
    assert m["recut"]["requests"] == [] and m["requests"] == {}
    assert all(k["origin"]["job_id"] == m["recut"]["previous_job_id"] for k in m["recut"]["kept"])
    # the scored edit carries the new WAV over the whole new range
    scored = otio.adapters.read_from_file(str(out))
    clip = next(iter(scored.tracks[-1].find_clips()))
    assert round(clip.trimmed_range().duration.value) == total
    assert Path(otio.url_utils.filepath_from_url(clip.media_reference.target_url)) == Path(
        m["outputs"]["music_wav"])
    # a later update builds on this one
    assert m["recut_basis"]["sha256"] == hashlib.sha256(
        Path(m["outputs"]["music_wav"]).read_bytes()).hexdigest()
    if name == "same":
        assert np.array_equal(music, old)


@pytest.fixture()
def service_server():
    srv = ContractServer().start()
    srv.state.elevenlabs_key = TEST_KEY
    try:
        yield srv
    finally:
        srv.stop()


def test_with_the_service_only_the_first_score_is_sent(tmp_path, sources, service_server,
                                                       monkeypatch):
    """First score at the contract server, then a reorder and a no-change update: no request."""
    contract = service_server
    monkeypatch.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    service = ("--provider", "elevenlabs", "--base-url", contract.url, "--scenes", "cuts",
               "--min-scene", "0.5")
    old = write_cut(tmp_path / "v1.otio", sources, [A, B, C])
    first = tmp_path / "v1_scored.otio"
    code, text = cli("score", str(old), "-o", str(first), *service)
    assert code == 0, text
    sent = len(contract.state.log)
    assert sent > 0 and contract.state.requests_to(V2M)
    for name, shots in (("reorder", [B, A, C]), ("same", [A, B, C])):
        new = write_cut(tmp_path / f"{name}.otio", sources, shots)
        code, text = cli("score", str(new), "-o", str(tmp_path / f"{name}_scored.otio"),
                         "--previous", str(first), *service)
        assert code == 0, text
        assert len(contract.state.log) == sent, "an update with nothing new sends nothing"
    old_wav = read_wav(Path(manifest(tmp_path / "v1_scored.otio.reelscore")["recut_basis"][
        "music_wav"]))[0]
    new_wav = read_wav(Path(manifest(tmp_path / "same_scored.otio.reelscore")["outputs"][
        "music_wav"]))[0]
    assert np.array_equal(old_wav, new_wav)


def test_update_at_29_97_is_sample_exact(tmp_path, coded_video) -> None:
    """At 30000/1001 a frame is 1601.6 samples: kept music lands at floor(frame · 48000 / rate)."""
    r = Fraction(30000, 1001)
    src = {n: (coded_video(frames=400, rate=r, source_id=sid, gop=30), sid)
           for n, sid in (("A", 31), ("B", 32), ("C", 33))}

    def cut(path: Path, shots) -> Path:
        items = [("clip", src[n][0], src[n][1], i, f) for n, i, f in shots]
        otio.adapters.write_to_file(build_timeline([items], r, start_frame=107892), str(path))
        return path

    old = cut(tmp_path / "v1.otio", [A, B, C])
    code, text = cli("score", str(old), "-o", str(tmp_path / "v1s.otio"), *COMMON)
    assert code == 0, text
    new = cut(tmp_path / "v2.otio", [A, C])  # B deleted: C moves 36 frames earlier
    code, text = cli("score", str(new), "-o", str(tmp_path / "v2s.otio"), "--previous",
                     str(tmp_path / "v1s.otio"), *COMMON)
    assert code == 0, text
    before = read_wav(Path(manifest(tmp_path / "v1s.otio.reelscore")["outputs"]["music_wav"]))[0]
    after = read_wav(Path(manifest(tmp_path / "v2s.otio.reelscore")["outputs"]["music_wav"]))[0]

    def s(f: int) -> int:
        return f * 48000 * 1001 // 30000

    assert after.shape[0] == frames_to_samples(108, r)
    assert np.array_equal(after[:s(48)], before[:s(48)])
    # past C's crossfade, to the end of the old music (whole-sample rounding of each programme's
    # length can leave the new one a sample longer: that sample is silence)
    tail = before[s(84 + XF + 3):]
    assert np.array_equal(after[s(48 + XF + 3):s(48 + XF + 3) + len(tail)], tail)
    assert after.shape[0] - s(48 + XF + 3) - len(tail) <= 1
    assert not after[s(48 + XF + 3) + len(tail):].any()
