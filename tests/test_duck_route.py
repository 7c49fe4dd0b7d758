"""``--duck`` end to end (issue 15, part 3): an edit whose DX track holds tone bursts on known
frames; the delivered score is ~depth lower during the bursts and not outside them, and the
unducked score sits beside it on a muted alternative track -- from the CLI and the OTIO hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from opentimelineio import opentime

from reelscore.wavfile import read_wav, write_wav
from tests.audio_helpers import ffmpeg_loudness
from tests.edits import build_timeline

RATE = Fraction(25)
FRAMES = 250  # 10 s from 01:00:00:00
BURSTS = [(50, 100), (150, 200)]  # DX speech stand-ins, stack frames
SR = 48000


def _dx_wav(path: Path) -> Path:
    """10 s: 1 kHz bursts at -20 dBFS on BURSTS' frames over -80 dBFS noise."""
    n = FRAMES * SR // 25
    x = np.random.default_rng(3).normal(0, 1e-4, (n, 1))
    t = np.arange(n) / SR
    for a, b in BURSTS:
        i, j = a * SR // 25, b * SR // 25
        x[i:j, 0] += 0.1 * np.sin(2 * np.pi * 1000 * t[i:j])
    write_wav(path, x.astype(np.float32), SR, bits=24)
    return path


def _audio_track(name: str, wav: Path, frames: int = FRAMES,
                 rate: Fraction = RATE) -> otio.schema.Track:
    r = float(rate)
    track = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Audio)
    track.append(otio.schema.Clip(
        name=wav.stem, media_reference=otio.schema.ExternalReference(
            target_url=wav.as_uri(), available_range=opentime.TimeRange(
                opentime.RationalTime(0, r), opentime.RationalTime(frames, r))),
        source_range=opentime.TimeRange(opentime.RationalTime(0, r),
                                        opentime.RationalTime(frames, r))))
    return track


@pytest.fixture
def dx_edit(tmp_path: Path, coded_video) -> Path:
    src = coded_video(frames=300, rate=RATE, source_id=41, gop=25)
    tl = build_timeline([[("clip", src, 41, 0, 125), ("clip", src, 41, 150, 125)]], RATE,
                        start_frame=90000)
    tl.tracks.append(_audio_track("DX", _dx_wav(tmp_path / "dx.wav")))
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(edit))
    return edit


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "x"), "REELSCORE_NO_KEYRING": "1"}
    env.pop("REELSCORE_CONFIG", None)
    return env


def _score(tmp_path: Path, edit: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reelscore", "score", str(edit), "-o", str(out), "--json",
         "--provider", "local", "--seed", "7", *extra],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=600,
        check=False)


def _window_db(x: np.ndarray, t0: float, t1: float) -> float:
    seg = x[round(t0 * SR):round(t1 * SR)].astype(np.float64)
    return 10 * np.log10(np.mean(seg ** 2) + 1e-20)


def _check_ducked(ducked: np.ndarray, unducked: np.ndarray, depth: float) -> None:
    """Ducked minus unducked level, window by window: one constant (the two normalisations)
    outside the bursts, that constant plus *depth* inside them."""
    assert ducked.shape == unducked.shape

    def diff(t0: float, t1: float) -> float:
        return _window_db(ducked, t0, t1) - _window_db(unducked, t0, t1)

    # outside: before the first burst, between them (after hold 0.25 + release 0.5), at the end
    outside = [diff(a, a + 0.2) for a in (0.2, 0.8, 1.5, 4.9, 5.5, 8.9, 9.5)]
    base = float(np.median(outside))
    assert max(abs(d - base) for d in outside) < 0.3, outside
    # inside: from attack (50 ms) + detector (10 ms) after each burst starts to its end
    for a, b in BURSTS:
        for t0 in np.arange(a / 25 + 0.07, b / 25 - 0.2, 0.3):
            assert diff(t0, t0 + 0.2) - base == pytest.approx(depth, abs=0.5), (a, t0)
    # just before each burst starts the score is not yet down
    for a, _b in BURSTS:
        assert abs(diff(a / 25 - 0.25, a / 25 - 0.05) - base) < 0.3


def test_cli_duck_ducks_under_dx_and_keeps_the_unducked_beside_it(tmp_path: Path,
                                                                   dx_edit: Path) -> None:
    out = tmp_path / "scored.otio"
    proc = _score(tmp_path, dx_edit, out, "--duck", "--duck-depth", "-12")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["duck_depth_db"] == -12
    # gate on: each 2 s burst plus its 250 ms hold (+ the 10 ms detector window)
    assert summary["ducked_seconds"] == pytest.approx(2 * 2.25, abs=0.05)
    manifest = json.loads(Path(summary["manifest"]).read_text())
    ducking = manifest["ducking"]
    assert ducking["tracks"] == ["A1 'DX'"] and ducking["depth_db"] == -12
    ducked, sr = read_wav(Path(manifest["outputs"]["music_wav"]))
    unducked, _ = read_wav(Path(ducking["alternative_wav"]))
    assert sr == SR and ducked.shape[0] == FRAMES * SR // 25
    _check_ducked(ducked, unducked, -12)
    # both normalised to the target on their own (the ducked one as delivered)
    assert manifest["loudness"]["delivered"]["integrated_lufs"] == pytest.approx(-14, abs=0.1)
    assert ducking["alternative_integrated_lufs"] == pytest.approx(-14, abs=0.1)

    back = otio.adapters.read_from_file(str(out))
    tracks = {t.name: t for t in back.audio_tracks()}
    assert tracks["Score"].enabled and not tracks["Score (unducked)"].enabled
    alt = next(iter(tracks["Score (unducked)"].find_clips()))
    assert Path(alt.media_reference.target_url.removeprefix("file://")).name == \
        Path(ducking["alternative_wav"]).name
    assert tracks["DX"].enabled  # the edit's own tracks untouched


def test_hook_duck_writes_fcp7_xml_with_the_ducking_as_level_keys(tmp_path: Path,
                                                                   dx_edit: Path) -> None:
    """OTIO's FCP 7 writer writes the Audio Levels filter from the clip's metadata, so the
    hook's output carries the keys too: the unducked score is placed with them, the ducked
    WAV (a second, playing score) is not."""
    tl = otio.adapters.read_from_file(str(dx_edit))
    out = tmp_path / "scored.xml"
    _hook(tmp_path, dx_edit, out)
    manifest = json.loads((tmp_path / "job" / "manifest.json").read_text())
    ducking = manifest["ducking"]
    ducked, _ = read_wav(Path(manifest["outputs"]["music_wav"]))
    unducked, _ = read_wav(Path(ducking["alternative_wav"]))
    _check_ducked(ducked, unducked, -10)
    assert _placed_names(out) == {"dx.wav", Path(ducking["alternative_wav"]).name}
    played = _played(unducked, _fcp7_keys(out, Path(ducking["alternative_wav"]).name))
    _check_ducked(played, unducked, -10)
    assert tl.tracks[-1].name == "DX"  # the edit read in is untouched


def test_hook_duck_fcpx_gets_the_keys_after_the_write(tmp_path: Path, dx_edit: Path) -> None:
    """OTIO's FCPX writer has no place for volume keys: the hook hands it the unducked score and
    its post_adapter_write script (reelscore_keys) adds the keys to the written file."""
    out = tmp_path / "scored.fcpxml"
    _hook(tmp_path, dx_edit, out)
    manifest = json.loads((tmp_path / "job" / "manifest.json").read_text())
    ducking = manifest["ducking"]
    alt = Path(ducking["alternative_wav"])
    assert _placed_names(out) == {"dx.wav", alt.name}
    keys = _fcpx_keys(out, alt.name)
    assert len(keys) == ducking["automation"]["keys"]
    unducked, _ = read_wav(alt)
    _check_ducked(_played(unducked, keys), unducked, -10)
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob(".*scored*"))


@pytest.mark.parametrize("ext", ["xml", "fcpxml"])
def test_cli_writes_the_ducking_as_volume_keys(tmp_path: Path, dx_edit: Path, ext: str) -> None:
    """FCP 7 XML and FCPX: the unducked score with the side chain as level keys, read from the
    file with ElementTree; the unducked samples times those keys are the ducked score (same
    depth in the bursts, same level outside) at the loudness target, by ffmpeg's meter."""
    out = tmp_path / f"scored.{ext}"
    proc = _score(tmp_path, dx_edit, out, "--duck", "--duck-depth", "-12")
    assert proc.returncode == 0, proc.stderr
    assert "volume keys on the unducked score" in " ".join(proc.stderr.split())
    manifest = json.loads(Path(json.loads(proc.stdout)["manifest"]).read_text())
    ducking = manifest["ducking"]
    alt = Path(ducking["alternative_wav"])
    assert _placed_names(out) == {"dx.wav", alt.name}  # the ducked WAV would play twice
    keys = _fcp7_keys(out, alt.name) if ext == "xml" else _fcpx_keys(out, alt.name)
    auto = ducking["automation"]
    assert len(keys) == auto["keys"] and 6 <= len(keys) <= 2 + 2 * 12  # two stretches, few keys
    assert manifest["outputs"]["edit_verified"]["score"][0]["volume_keys"] == len(keys)
    unducked, _ = read_wav(alt)
    played = _played(unducked, keys)
    _check_ducked(played, unducked, -12)
    ducked, _ = read_wav(Path(manifest["outputs"]["music_wav"]))
    # within the keys' tolerance: straight lines in dB on frames stand for the side chain's
    # raised-cosine ramps, and both are brought to the same integrated loudness
    for t0 in (0.5, 2.5, 3.5, 5.0, 6.5, 9.0):  # outside and inside the bursts
        assert _window_db(played, t0, t0 + 0.2) == pytest.approx(
            _window_db(ducked, t0, t0 + 0.2), abs=auto["tolerance_db"]), t0
    wav = tmp_path / "played.wav"
    write_wav(wav, played.astype(np.float32), SR, bits=24)
    lufs, peak = ffmpeg_loudness(wav)
    assert lufs == pytest.approx(auto["played_integrated_lufs"], abs=0.2)
    assert lufs == pytest.approx(-14, abs=0.3) and peak <= -1 + 0.1


def _hook(tmp_path: Path, edit: Path, out: Path) -> None:
    tl = otio.adapters.read_from_file(str(edit))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        otio.adapters.write_to_file(tl, str(out), hook_function_argument_map={
            "reelscore.provider": "local", "reelscore.duck": True,
            "reelscore.dialogue_track": "dx", "reelscore.source": str(edit),
            "reelscore.work_dir": str(tmp_path / "job")})
    finally:
        os.chdir(cwd)


def _placed_names(path: Path) -> set[str]:
    back = otio.adapters.read_from_file(str(path))
    return {Path(c.media_reference.target_url).name for t in back.audio_tracks()
            for c in t.find_clips() if isinstance(c.media_reference, otio.schema.ExternalReference)}


def _fcp7_keys(path: Path, media_name: str) -> list[tuple[Fraction, float]]:
    """(seconds from the clip's start, dB) of the Audio Levels keys on the clipitem of
    *media_name* (FCP 7's Level is a linear gain)."""
    root = ET.parse(path).getroot()
    files = {f.get("id"): (f.findtext("pathurl") or "") for f in root.iter("file")}
    for item in root.iter("clipitem"):
        ref = item.find("file")
        if ref is None or not files.get(ref.get("id"), "").endswith(media_name):
            continue
        rate = Fraction(int(item.findtext("rate/timebase") or 0))
        if item.findtext("rate/ntsc") == "TRUE":
            rate = rate * 1000 / 1001
        param = item.find("filter/effect[effectid='audiolevels']/parameter")
        assert param is not None, "no Audio Levels filter"
        return [(Fraction(int(k.findtext("when") or 0)) / rate,
                 20 * np.log10(float(k.findtext("value") or 0))) for k in param.iter("keyframe")]
    raise AssertionError(f"no clipitem uses {media_name}")


def _fcpx_keys(path: Path, media_name: str) -> list[tuple[Fraction, float]]:
    """(seconds, dB) of the adjust-volume keys in the project: on one clip only, the one whose
    own audio (``clip/gap/audio``, as OTIO writes an audio track's clip) is *media_name*."""
    root = ET.parse(path).getroot()
    ids = {a.get("id") for a in root.iter("asset") if (a.get("src") or "").endswith(media_name)}
    project = root.find(".//project")
    assert project is not None
    keyed = [c for c in project.iter() if c.find("adjust-volume") is not None]
    assert len(keyed) == 1 and keyed[0].tag == "clip", [c.get("name") for c in keyed]
    assert [a.get("ref") for a in keyed[0].findall("gap/audio")] == list(ids)
    keys = keyed[0].findall("adjust-volume/param[@name='amount']/keyframeAnimation/keyframe")
    assert keys and all(k.get("curve") == "linear" for k in keys)
    return [(Fraction((k.get("time") or "0s").removesuffix("s")),
             float((k.get("value") or "").removesuffix("dB"))) for k in keys]


def _played(x: np.ndarray, keys: list[tuple[Fraction, float]]) -> np.ndarray:
    """What an NLE plays: *x* times the keys' level, a straight line in dB between keys."""
    at = np.array([float(t) * SR for t, _db in keys])
    db = np.interp(np.arange(x.shape[0]), at, np.array([db for _t, db in keys]))
    return x * (10 ** (db / 20))[:, None]


def test_unknown_dialogue_track_names_the_tracks_there_are(tmp_path: Path,
                                                           dx_edit: Path) -> None:
    out = tmp_path / "scored.otio"
    proc = _score(tmp_path, dx_edit, out, "--duck", "--dialogue-track", "BOOM")
    assert proc.returncode != 0
    assert "BOOM" in proc.stderr and "A1 'DX'" in proc.stderr
    assert not out.exists()
    assert not list((tmp_path / "scored.otio.reelscore").glob("**/*.mp4"))  # nothing rendered


def test_no_dialogue_track_by_name_is_refused(tmp_path: Path, coded_video) -> None:
    src = coded_video(frames=300, rate=RATE, source_id=41, gop=25)
    tl = build_timeline([[("clip", src, 41, 0, 125)]], RATE, start_frame=90000)
    tl.tracks.append(_audio_track("MUSIC", _dx_wav(tmp_path / "m.wav"), 125))
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(edit))
    proc = _score(tmp_path, edit, tmp_path / "s.otio", "--duck")
    assert proc.returncode != 0
    assert "no dialogue track" in proc.stderr and "A1 'MUSIC'" in proc.stderr
    assert not (tmp_path / "s.otio").exists()


@pytest.mark.parametrize("ext", ["otioz", "aaf"])
def test_alternative_track_per_format(tmp_path: Path, dx_edit: Path, ext: str) -> None:
    """Read back per format: the ducked score; the unducked one muted where the format keeps a
    mute (.otioz, with its volume keys in the metadata), else left out (it would play) and kept
    in the job folder."""
    out = tmp_path / f"scored.{ext}"
    proc = _score(tmp_path, dx_edit, out, "--duck")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(Path(json.loads(proc.stdout)["manifest"]).read_text())
    ducked = Path(manifest["outputs"]["music_wav"]).name
    unducked = Path(manifest["ducking"]["alternative_wav"]).name
    back = otio.adapters.read_from_file(str(out))
    placed = {Path(c.media_reference.target_url).name: t.enabled
              for t in back.audio_tracks() for c in t.find_clips()
              if isinstance(c.media_reference, otio.schema.ExternalReference)}
    assert placed[ducked] is True
    if ext == "otioz":
        assert placed[unducked] is False
        alt = next(c for t in back.audio_tracks() for c in t.find_clips()
                   if Path(c.media_reference.target_url).name == unducked)
        keys = alt.metadata["reelscore"]["volume_automation"]["keys"]
        assert len(keys) == manifest["ducking"]["automation"]["keys"]
    else:
        assert unducked not in placed
        assert "cannot hold a muted track" in proc.stderr


def test_batch_duck_writes_the_keys_into_each_fcp7_edit(tmp_path: Path, dx_edit: Path) -> None:
    """``reelscore batch --duck`` (an FCP 7 XML edit in, the same format out): the scored edit
    holds the unducked score with the Audio Levels keys its manifest counts. FCP 7 XML keeps no
    track names, so the dialogue track is named by number."""
    edit = tmp_path / "ep101.xml"
    otio.adapters.write_to_file(otio.adapters.read_from_file(str(dx_edit)), str(edit))
    proc = subprocess.run(
        [sys.executable, "-m", "reelscore", "batch", str(edit), "-o", str(tmp_path / "out"),
         "--provider", "local", "--seed", "7", "--duck", "--dialogue-track", "A1",
         "--duck-depth", "-8", "--json"],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=600,
        check=False)
    assert proc.returncode == 0, proc.stderr
    [scored] = (tmp_path / "out").glob("*.xml")
    [manifest_path] = (tmp_path / "out").glob("*/manifest.json")
    ducking = json.loads(manifest_path.read_text())["ducking"]
    assert ducking["depth_db"] == -8
    keys = _fcp7_keys(scored, Path(ducking["alternative_wav"]).name)
    assert len(keys) == ducking["automation"]["keys"]
    depth = min(db for _t, db in keys) - max(db for _t, db in keys)
    assert depth == pytest.approx(-8, abs=0.01)
    assert edit.read_text().count("audiolevels") == 0  # the edit read in is untouched


def test_preview_of_a_keyed_fcp7_edit_plays_the_score_once(tmp_path: Path,
                                                           dx_edit: Path) -> None:
    """FCP 7 XML keeps no track metadata: ``reelscore preview`` finds the score track by its
    media (the job's WAVs) and leaves it out of the edit's own sound, so the movie carries the
    delivered score once, and only the DX when the score is turned down."""
    from reelscore.ffmpeg_cli import decode_audio

    out = tmp_path / "scored.xml"
    proc = _score(tmp_path, dx_edit, out, "--duck")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(Path(json.loads(proc.stdout)["manifest"]).read_text())
    ducked, _ = read_wav(Path(manifest["outputs"]["music_wav"]))
    env = _env(tmp_path)
    movies = {}
    for level in ("0", "-90"):
        movie = tmp_path / f"review{level}.mp4"
        run = subprocess.run([sys.executable, "-m", "reelscore", "preview", str(out), "-o",
                              str(movie), "--score-level", level], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600, check=False)
        assert run.returncode == 0, run.stderr
        movies[level] = decode_audio(movie)
    quiet = (0.2, 1.8)  # before the first burst: the score alone
    assert _window_db(movies["0"], *quiet) == pytest.approx(_window_db(ducked, *quiet), abs=1.0)
    assert _window_db(movies["-90"], *quiet) < -60  # no second score among the edit's tracks
    # the DX burst: a -20 dBFS sine (-23 dB mean square) on both sides at -3 dB (mono rule)
    assert _window_db(movies["-90"], 2.5, 3.5) == pytest.approx(-26, abs=1.0)


def test_keys_hook_removes_an_fcpx_file_it_cannot_key(tmp_path: Path) -> None:
    """A written FCPX file the keys cannot go into would play the unducked score at full level:
    the after-write hook removes it and fails the conversion with a message naming the file."""
    from reelscore.hook import keys_hook

    r = float(RATE)
    rng = opentime.TimeRange(opentime.RationalTime(0, r), opentime.RationalTime(FRAMES, r))
    clip = otio.schema.Clip(name="Score unducked - reelscore", source_range=rng,
                            media_reference=otio.schema.ExternalReference(
                                target_url=(tmp_path / "s.wav").as_uri(), available_range=rng))
    clip.metadata["reelscore"] = {"volume_automation": {
        "replaces_track": "Score", "makeup_db": 1.0, "keys": [[0, 1.0], [10, -9.0]]}}
    track = otio.schema.Track(name="Score", kind=otio.schema.TrackKind.Audio)
    track.metadata["reelscore"] = {"generated": True}
    track.append(clip)
    tl = otio.schema.Timeline(tracks=[track])
    out = tmp_path / "scored.fcpxml"
    out.write_text('<?xml version="1.0"?>\n<fcpxml version="1.8"><resources/></fcpxml>\n')
    with pytest.raises(otio.exceptions.OTIOError, match=r"s\.wav"):
        keys_hook(tl, {"reelscore.duck": True, "_filepath": str(out)})
    assert not out.exists()
    assert keys_hook(tl, {"_filepath": str(out)}) is tl  # no reelscore.* key: nothing done


def test_keys_at_29_97_drop_frame_sit_on_frames(tmp_path: Path, coded_video) -> None:
    """FCP 7 XML at 29.97 DF from 01:00:00;00: the keys sit on frames (``<when>`` over an NTSC
    timebase), each attack starts at the first frame boundary after the speech does, and the
    level between keys is the side chain's. The same edit bound for .fcpxml (whose writer takes
    no 29.97) is refused before anything renders."""
    rate = Fraction(30000, 1001)
    bursts = [(60, 120), (180, 240)]
    src = coded_video(frames=300, rate=rate, source_id=42, gop=30)
    tl = build_timeline([[("clip", src, 42, 0, 300)]], rate, start_frame=107892)  # 01:00:00;00
    n = int(300 * SR / rate)
    x = np.random.default_rng(4).normal(0, 1e-4, (n, 1))
    for a, b in bursts:
        i, j = int(a * SR / rate), int(b * SR / rate)
        x[i:j, 0] += 0.1 * np.sin(2 * np.pi * 1000 * np.arange(j - i) / SR)
    write_wav(tmp_path / "dx.wav", x.astype(np.float32), SR, bits=24)
    tl.tracks.append(_audio_track("DX", tmp_path / "dx.wav", 300, rate))
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(edit))
    refused = _score(tmp_path, edit, tmp_path / "scored.fcpxml", "--duck")
    assert refused.returncode != 0 and "24, 25, 30, 50 and 60 fps" in refused.stderr
    assert not list(tmp_path.glob("scored.fcpxml.reelscore/**/*.mp4"))  # nothing rendered
    out = tmp_path / "scored.xml"
    proc = _score(tmp_path, edit, out, "--duck")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(Path(json.loads(proc.stdout)["manifest"]).read_text())
    assert manifest["plan"]["drop_frame"] is True
    alt = Path(manifest["ducking"]["alternative_wav"])
    keys = _fcp7_keys(out, alt.name)
    frames = [t * rate for t, _db in keys]
    assert all(f.denominator == 1 for f in frames), frames  # on frames of 29.97
    top = keys[0][1]
    starts = [int(f) for f, (_t, db), (_t0, before) in zip(frames[1:], keys[1:], keys[:-1],
                                                             strict=True)
              if db < top - 1 and before >= top - 1e-3]
    assert starts == [a + 1 for a, _b in bursts]  # the first frame boundary after speech
    unducked, _ = read_wav(alt)
    played = _played(unducked, keys)
    for a, b in bursts:
        inside = _window_db(played, float((a + 6) / rate), float((b - 3) / rate)) - \
            _window_db(unducked, float((a + 6) / rate), float((b - 3) / rate))
        assert inside == pytest.approx(top - 10, abs=0.1)
    outside = _window_db(played, 0.2, 1.8) - _window_db(unducked, 0.2, 1.8)
    assert outside == pytest.approx(top, abs=0.05)
