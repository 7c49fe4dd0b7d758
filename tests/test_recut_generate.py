"""``reelscore score NEW -o OUT --previous OLD`` when the new cut needs new music.

A first score (offline engine, or the contract server), then updates that insert a shot, extend
shots, and insert + delete + move together. Asserted on what was sent (only the new stretches with
their handles: the requests' videos and, at the contract server, the clips it received), on the
samples (kept music is the old delivered music at its new position, within 1e-6, away from the
joins; the new stretches carry the new audio), on level continuity across every join, on the
written edit read back, and on a rerun that resumes without sending again.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from reelscore.wavfile import read_wav
from tests.contract_fixtures import TEST_KEY
from tests.contract_server import V2M, ContractServer, tone_of
from tests.test_recut_route import COMMON, START, A, B, C, cli, manifest, write_cut
from tests.test_recut_route import sources as sources

SPF = 2000  # samples per frame at 24 fps, 48 kHz
XF = 12  # the plan's crossfade (0.5 s at 24 fps): every handle
D = ("D", 5, 24)  # a shot the first version never showed

# name, new shots, stretches generated (new frames), requested spans (handles included),
# kept windows (new frame, old frame, frames) away from the joins, joins with new music
CASES = {
    "insert": ([A, D, B, C], [(48, 72)], [(36, 84)], [(0, 0, 36), (84, 60, 84)], [48, 72]),
    "extend": ([A, ("B", 2, 54), ("C", 30, 96)], [(48, 66), (162, 198)], [(36, 78), (150, 198)],
               [(0, 0, 36), (78, 60, 72)], [48, 66, 162]),
    "mixed": ([C, D, A], [(60, 84)], [(48, 96)], [(0, 84, 48), (96, 12, 36)], [60, 84]),
    # C's head trimmed by 12, with --regenerate-trimmed: C is generated afresh
    "regen": ([A, B, ("C", 42, 48)], [(84, 132)], [(72, 132)], [(0, 0, 72)], [84]),
}
UPDATES = ["insert", "extend", "mixed"]
MAX_JUMP_DB = 3.0  # level across a join, half a second each side (unmatched: ~5 dB here)
MAX_DIP_DB = 10.0  # no 50 ms window near a join this far under the quieter side


def db(x: np.ndarray) -> float:
    return 10 * np.log10(float(np.mean(x.astype(np.float64) ** 2)) + 1e-20)


def check_join(music: np.ndarray, frame: int) -> tuple[float, float]:
    """Level continuity across the cut at *frame*; returns (jump, worst dip) in dB."""
    s, half = frame * SPF, 24_000
    before, after = db(music[s - half:s]), db(music[s:s + half])
    windows = [db(music[a:a + 2400]) for a in range(s - half, s + half, 2400)]
    dip = min(before, after) - min(windows)
    assert abs(before - after) <= MAX_JUMP_DB, (frame, before, after)
    assert dip <= MAX_DIP_DB, (frame, dip)
    return abs(before - after), dip


def same(new: np.ndarray, a: int, old: np.ndarray, b: int, frames: int,
         gain: float = 1.0) -> None:
    """New frames [a, a+frames) carry the old music of old frames [b, b+frames) (times the one
    gain a too-high true peak asked of the whole, else exactly)."""
    x, y = new[a * SPF:(a + frames) * SPF], old[b * SPF:(b + frames) * SPF] * np.float32(gain)
    assert x.shape == y.shape and len(x) and np.max(np.abs(x - y)) < 1e-6, (a, b, frames)


def update(tmp_path: Path, sources, first: Path, name: str, *extra: str, args=COMMON,
           force: bool = False) -> tuple[Path, dict, str]:
    shots = CASES[name][0]
    new = write_cut(tmp_path / f"{name}.otio", sources, shots)
    out = tmp_path / f"{name}_scored.otio"
    code, text = cli("score", str(new), "-o", str(out), "--previous", str(first), *args, *extra,
                     *(("--force",) if force else ()))
    assert code == 0, text
    return out, manifest(tmp_path / f"{name}_scored.otio.reelscore"), text


def check_update(first_job: Path, out: Path, m: dict, name: str,
                 spans: list[tuple[int, int]] | None = None) -> np.ndarray:
    shots, stretches, case_spans, windows, joins = CASES[name]
    spans = spans or case_spans
    total = sum(n for _, _, n in shots)
    old = read_wav(Path(manifest(first_job)["recut_basis"]["music_wav"]))[0]
    music, sr = read_wav(Path(m["outputs"]["music_wav"]))
    assert sr == 48000 and music.shape[0] == total * SPF
    # only the new stretches were asked for, each with its handles into the kept music
    reqs = m["plan"]["requests"]
    got_spans = []
    for r in reqs:
        vs = r["videos"]
        got_spans.append((vs[0]["range"]["start"],
                          vs[-1]["range"]["start"] + vs[-1]["range"]["duration"]))
    assert got_spans == spans
    assert sorted(m["requests"]) == sorted(r["id"] for r in reqs)
    assert all(rec["status"] == "done" for rec in m["requests"].values())
    lineage = m["recut"]
    assert [(g["new_start"], g["new_end"]) for g in lineage["generated"]] == stretches
    assert lineage["requests"] == [r["id"] for r in reqs]
    assert lineage["requested_frames"] == sum(b - a for a, b in spans)
    assert all(k["origin"]["job_id"] == lineage["previous_job_id"] for k in lineage["kept"])
    # kept music: the old delivered samples at the new positions, away from the joins
    gain = 10 ** (m["loudness"]["recut_gain_db"] / 20)
    for a, b, n in windows:
        same(music, a, old, b, n, gain)
    # the new stretches are new music, not silence and not the old music
    for a, b in stretches:
        body = music[a * SPF:b * SPF]
        assert db(body) > -40
    for f in joins:
        check_join(music, f)
    assert m["loudness"]["delivered"]["true_peak_dbtp"] <= -1.0 + 1e-3
    # the written edit, read back: the score at the new cut's record frames
    scored = otio.adapters.read_from_file(str(out))
    clip = next(c for c in scored.find_clips() if "reelscore" in c.metadata)
    at = clip.range_in_parent()
    start = round(scored.global_start_time.to_frames()) if scored.global_start_time else 0
    assert start + round(at.start_time.value) == START
    assert round(at.duration.value) == total
    assert Path(otio.url_utils.filepath_from_url(clip.media_reference.target_url)) == Path(
        m["outputs"]["music_wav"])
    return music


@pytest.fixture()
def first(tmp_path, sources) -> Path:
    old = write_cut(tmp_path / "v1.otio", sources, [A, B, C])
    code, text = cli("score", str(old), "-o", str(tmp_path / "v1_scored.otio"), *COMMON)
    assert code == 0, text
    return tmp_path / "v1_scored.otio"


def test_dry_run_lists_exactly_what_an_update_sends(tmp_path, sources, first) -> None:
    new = write_cut(tmp_path / "insert.otio", sources, CASES["insert"][0])
    out = tmp_path / "insert_scored.otio"
    code, text = cli("score", str(new), "-o", str(out), "--previous", str(first), "--dry-run",
                     *COMMON)
    assert code == 0, text
    # D (24 frames at 01:00:02:00) with half a second of A before and of B after
    assert ("would send 1 request(s), 2.00 s of picture with handles (a full rescore sends "
            "7.00 s)") in text
    assert "g01r01  01:00:01:12-01:00:03:12  3 video(s) 2.00 s  for s002 (new)" in text
    job = tmp_path / "insert_scored.otio.reelscore"
    planned = manifest(job)["plan"]["requests"]
    assert not out.exists() and not manifest(job).get("requests")
    _, m, text = update(tmp_path, sources, first, "insert")
    assert m["plan"]["requests"] == planned  # the update sent what the dry run listed
    assert "sent 1 request(s), 2.00 s with handles (a full rescore: 7.00 s)" in text


def test_regenerate_trimmed_generates_the_trimmed_scene(tmp_path, sources, first) -> None:
    out, m, _ = update(tmp_path, sources, first, "regen", "--regenerate-trimmed")
    assert m["recut"]["generated"][0]["reasons"] == ["new"]
    check_update(tmp_path / "v1_scored.otio.reelscore", out, m, "regen")
    # the update's cue sheet: one cue per kept and per generated stretch, the generated one over
    # its own frames (handles excluded) and naming the request that made it
    rows = list(csv.DictReader((tmp_path / "regen_scored.otio.reelscore" / "cues.csv")
                               .read_text("utf-8").splitlines()))
    rate = 24
    spans = sorted([(k["new_start"], k["new_end"], "kept") for k in m["recut"]["kept"]]
                   + [(g["new_start"], g["new_end"], ",".join(g["requests"]))
                      for g in m["recut"]["generated"]])
    assert len(rows) == len(spans)
    for row, (a, b, made_by) in zip(rows, spans):
        assert float(row["duration_seconds"]) == pytest.approx((b - a) / rate, abs=1e-3)
        assert (made_by in row["requests"]) if made_by != "kept" else "kept" in row["lineage"]


@pytest.mark.parametrize("name", UPDATES)
def test_offline_update_generates_only_the_new_stretches(tmp_path, sources, first,
                                                        name) -> None:
    out, m, text = update(tmp_path, sources, first, name)
    assert "sent 1 request(s)" in text or "sent 2 request(s)" in text
    check_update(tmp_path / "v1_scored.otio.reelscore", out, m, name)
    if name == "mixed":
        kinds = {c["old_id"]: c["kind"] for c in json.loads(
            (tmp_path / "mixed_scored.otio.reelscore" / "recut" / "changes.json").read_text())[
            "changes"] if c["old_id"]}
        assert kinds["s002"] == "deleted"


@pytest.fixture()
def service_server():
    srv = ContractServer().start()
    srv.state.elevenlabs_key = TEST_KEY
    try:
        yield srv
    finally:
        srv.stop()


def test_service_receives_only_the_new_stretches_and_a_rerun_pays_nothing(
        tmp_path, sources, service_server, monkeypatch) -> None:
    contract = service_server
    monkeypatch.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    service = ("--provider", "elevenlabs", "--base-url", contract.url, "--scenes", "cuts",
               "--min-scene", "0.5")
    old = write_cut(tmp_path / "v1.otio", sources, [A, B, C])
    first = tmp_path / "v1_scored.otio"
    code, text = cli("score", str(old), "-o", str(first), *service)
    assert code == 0, text
    before = len(contract.state.requests_to(V2M))

    out, m, text = update(tmp_path, sources, first, "mixed", args=service)
    sent = contract.state.requests_to(V2M)[before:]
    assert len(sent) == 1  # one stretch, one request
    clips = [f["duration_s"] for f in sent[0].files if f["name"] == "videos"]
    # the handle into C, D itself, the handle into A: 0.5 s + 1 s + 0.5 s
    assert clips == pytest.approx([0.5, 1.0, 0.5], abs=0.05)
    music = check_update(tmp_path / "v1_scored.otio.reelscore", out, m, "mixed")
    # D's frames carry the service's answer: the tone of the request's 2nd video
    body = music[(60 + 3) * SPF:(84 - 3) * SPF, 0].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(body * np.hanning(len(body))))
    peak = np.fft.rfftfreq(len(body), 1 / 48000)[int(np.argmax(spectrum))]
    assert abs(peak - tone_of(1)) < 3

    # rerun into the same job: the stored answer is reused, nothing is sent, same samples
    _, m2, text = update(tmp_path, sources, first, "mixed", args=service, force=True)
    assert len(contract.state.requests_to(V2M)) == before + 1
    assert "nothing sent" not in text
    assert np.array_equal(read_wav(Path(m2["outputs"]["music_wav"]))[0], music)

    # a stretch request sent in an earlier run whose answer was not stored is never sent again
    # without --resubmit (it may have been charged)
    job = tmp_path / "mixed_scored.otio.reelscore"
    data = manifest(job)
    [rid] = data["recut"]["requests"]
    data["requests"][rid]["status"] = "sent"
    data["requests"][rid]["response"] = None
    (job / "manifest.json").write_text(json.dumps(data))
    new = write_cut(tmp_path / "mixed.otio", sources, CASES["mixed"][0])
    code, text = cli("score", str(new), "-o", str(tmp_path / "mixed_scored.otio"), "--force",
                     "--previous", str(first), *service)
    assert code != 0 and f"request {rid} was sent" in text and "--resubmit" in text
    assert len(contract.state.requests_to(V2M)) == before + 1


def test_insert_at_29_97_drop_frame(tmp_path, coded_video) -> None:
    """At 30000/1001 a frame is 1601.6 samples: kept music lands at floor(frame · 48000 / rate),
    the new stretch fills its frames without a gap, labels are drop frame."""
    from fractions import Fraction

    from tests.edits import build_timeline

    r = Fraction(30000, 1001)
    src = {n: (coded_video(frames=400, rate=r, source_id=sid, gop=30), sid)
           for n, sid in (("A", 31), ("B", 32), ("C", 33), ("D", 34))}

    def cut(path: Path, shots) -> Path:
        items = [("clip", src[n][0], src[n][1], i, f) for n, i, f in shots]
        otio.adapters.write_to_file(build_timeline([items], r, start_frame=107892), str(path))
        return path

    HX = 15  # the crossfade, 0.5 s at 29.97: every handle

    def s(f: int) -> int:
        return f * 48000 * 1001 // 30000

    code, text = cli("score", str(cut(tmp_path / "v1.otio", [A, B, C])), "-o",
                     str(tmp_path / "v1s.otio"), *COMMON)
    assert code == 0, text
    new = cut(tmp_path / "v2.otio", [A, D, B, C])  # D inserted at frame 48
    args = ("score", str(new), "-o", str(tmp_path / "v2s.otio"), "--previous",
            str(tmp_path / "v1s.otio"), *COMMON)
    code, text = cli(*args, "--dry-run")
    assert code == 0, text
    assert "g01r01  01:00:01;03-01:00:02;27" in text  # frames 33-87 from 01:00:00;00
    code, text = cli(*args)
    assert code == 0, text
    old = read_wav(Path(manifest(tmp_path / "v1s.otio.reelscore")["outputs"]["music_wav"]))[0]
    m = manifest(tmp_path / "v2s.otio.reelscore")
    music = read_wav(Path(m["outputs"]["music_wav"]))[0]
    assert m["loudness"]["recut_gain_db"] == 0.0
    assert np.array_equal(music[:s(48 - HX)], old[:s(48 - HX)])
    # B and C after the stretch's handle: old frames 48 + 15 on, 24 frames later
    tail = old[s(48 + HX):s(144)]
    assert np.array_equal(music[s(72 + HX):s(72 + HX) + len(tail)], tail)
    body = music[s(48):s(72)]
    assert db(body) > -40
    # no gap in or around it: every millisecond sounds (the engine's own section fades touch
    # zero for a sample or two at a scene cut)
    near = music[s(40):s(80)]
    ms = np.abs(near[:len(near) // 48 * 48]).reshape(-1, 48, 2).max(axis=(1, 2))
    assert ms.min() > 0


def test_compose_update_composes_only_the_new_stretches(tmp_path, sources, first) -> None:
    """--method compose: the stretch is one composition plan, nothing rendered; D and its
    handles last 2 s, under a section's 3 s, so the request reaches half a second further into A
    and into B; the crossfades stay in the handles and the answer is laid like any other."""
    new = write_cut(tmp_path / "insert.otio", sources, CASES["insert"][0])
    code, text = cli("score", str(new), "-o", str(tmp_path / "insert_scored.otio"),
                     "--previous", str(first), "--method", "compose", "--dry-run", *COMMON)
    assert code == 0, text
    assert "g01r01  01:00:01:00-01:00:04:00" in text  # frames 24-96
    out, m, text = update(tmp_path, sources, first, "insert", "--method", "compose")
    assert "sent 1 request(s)" in text
    check_update(tmp_path / "v1_scored.otio.reelscore", out, m, "insert", spans=[(24, 96)])
    job = tmp_path / "insert_scored.otio.reelscore"
    assert [r["id"] for r in m["composition"]["requests"]] == ["g01r01"]
    from reelscore.compose import read_composition
    from reelscore.musicplan import sections_of

    [req] = read_composition((job / "composition.json").read_text(), "composition.json").requests
    assert sum(v.duration_ms for v in sections_of(req.composition_plan)) == 3000
    assert not list((job / "clips").glob("*.mp4"))  # nothing rendered


def test_compose_update_at_the_service(tmp_path, sources, service_server, monkeypatch) -> None:
    """The composition plan of a stretch passes the contract server's strict /v1/music check;
    nothing goes to video-to-music for the update."""
    from tests import contract_music

    contract = service_server
    monkeypatch.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    service = ("--provider", "elevenlabs", "--base-url", contract.url, "--scenes", "cuts",
               "--min-scene", "0.5")
    old = write_cut(tmp_path / "v1.otio", sources, [A, B, C])
    first = tmp_path / "v1_scored.otio"
    code, text = cli("score", str(old), "-o", str(first), *service)
    assert code == 0, text
    videos = len(contract.state.requests_to(V2M))
    out, m, text = update(tmp_path, sources, first, "insert", "--method", "compose",
                          args=service)
    [sent] = contract.state.requests_to("/v1/music")
    assert contract_music.validate(sent.json)[0] == []
    assert len(contract.state.requests_to(V2M)) == videos
    check_update(tmp_path / "v1_scored.otio.reelscore", out, m, "insert", spans=[(24, 96)])
