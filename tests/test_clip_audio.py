"""``--use-audio-as-reference``: the clips sent carry the mixdown of their range, in sync.

End to end through ``reelscore score`` against the contract server (127.0.0.1), which keeps the
clips it received: their sound is decoded with ffmpeg and the clicks and tones the edit places
are looked for where the edit puts them. The edit (24 fps, 2000 samples a frame):

* V1: two 2-second shots -> two scenes, stack frames [0, 48) and [48, 96);
* A1 "FX": a click file at record frame 10 (source in 0): its clicks at file samples 30_000 and
  110_000 sound at record samples 50_000 (scene 1) and 130_000 (scene 2, its sample 34_000);
* A2 "MX": a mono 1 kHz tone at record frames [60, 90) (scene 2 only).

AAC smears a click over a few samples and its encoder delay (1024 samples) is hidden by the MP4
edit list: the decoded peak must be within ``SYNC_TOLERANCE_SAMPLES`` of the edit's sample.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from reelscore.cli import app
from reelscore.clip_audio import SYNC_TOLERANCE_SAMPLES, EditSound, SoundRenderer
from reelscore.ffmpeg_cli import decode_audio, probe
from reelscore.render import FFmpegRenderer, plan_encode
from reelscore.settings import ScoreSettings
from reelscore.steps.planning import plan_edit
from reelscore.timeline import load_edit
from reelscore.wavfile import write_wav
from tests.contract_fixtures import TEST_KEY, contract, make_clip
from tests.contract_server import ContractServer

__all__ = ["contract"]

SR = 48000
R = 24


def _range(start: int, frames: int) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(otio.opentime.RationalTime(start, R),
                                   otio.opentime.RationalTime(frames, R))


def _clip(name: str, path: Path, src_in: int, frames: int) -> otio.schema.Clip:
    ref = otio.schema.ExternalReference(target_url=str(path), available_range=_range(0, 1000))
    return otio.schema.Clip(name=name, media_reference=ref, source_range=_range(src_in, frames))


def _edit(folder: Path, *, click_file: str = "clk.wav") -> Path:
    shot_a = make_clip(folder / "shot_a.mp4", 3)
    shot_b = make_clip(folder / "shot_b.mp4", 3)
    clk = np.zeros((6 * SR, 2), dtype=np.float32)
    clk[30_000] = 0.9
    clk[110_000] = 0.9
    write_wav(folder / click_file, clk, SR, bits=32)
    t = np.arange(3 * SR) / SR
    write_wav(folder / "tone.wav", (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), SR,
              bits=32)
    tl = otio.schema.Timeline(name="sound cut")
    tl.global_start_time = otio.opentime.RationalTime(86400, R)
    v1 = otio.schema.Track(name="V1")
    v1.extend([_clip("shot A", shot_a, 0, 48), _clip("shot B", shot_b, 12, 48)])
    a1 = otio.schema.Track(name="FX", kind=otio.schema.TrackKind.Audio)
    a1.extend([otio.schema.Gap(source_range=_range(0, 10)),
               _clip("clicks", folder / click_file, 0, 86)])
    a2 = otio.schema.Track(name="MX", kind=otio.schema.TrackKind.Audio)
    a2.extend([otio.schema.Gap(source_range=_range(0, 60)), _clip("tone", folder / "tone.wav",
                                                                  0, 30)])
    tl.tracks.extend([v1, a1, a2])
    path = folder / "cut.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _peak_offset(x: np.ndarray, expected: int, reach: int = 1500) -> int:
    window = np.abs(x[expected - reach:expected + reach, 0])
    return int(np.argmax(window)) - reach


def _level(x: np.ndarray, freq: float) -> float:
    t = np.arange(len(x)) / SR
    ch = x[:, 0].astype(np.float64)
    return float(2 * np.hypot(np.mean(ch * np.sin(2 * np.pi * freq * t)),
                              np.mean(ch * np.cos(2 * np.pi * freq * t))))


def test_the_clips_sent_carry_their_ranges_sound_in_sync(env: Path,
                                                         contract: ContractServer) -> None:
    contract.state.keep_uploads = True
    edit = _edit(env)
    out = env / "scored.otio"
    code, text = _run("score", str(edit), "-o", str(out), "--provider", "elevenlabs",
                      "--base-url", contract.url, "--use-audio-as-reference",
                      "--scenes", "cuts", "--min-scene", "0.5")
    assert code == 0, text
    sent = contract.state.requests_to("/v1/music/video-to-music")
    assert len(sent) == 1 and ("use_audio_as_reference", "true") in sent[0].fields
    received = [Path(f["kept"]) for f in sent[0].files]
    assert len(received) == 2
    clip1, clip2 = (decode_audio(p) for p in received)
    for p in received:
        info = probe(p)
        assert info.has_audio and info.channels == 2 and info.sample_rate == SR and info.has_video
    # Each clip's sound is exactly its 48 frames (AAC's priming hidden by the edit list).
    assert len(clip1) == 96_000 and len(clip2) == 96_000
    assert abs(_peak_offset(clip1, 50_000)) <= SYNC_TOLERANCE_SAMPLES
    assert abs(_peak_offset(clip2, 34_000)) <= SYNC_TOLERANCE_SAMPLES
    # Nothing before the clicks' clip starts (record frame 10 = sample 20_000 of clip 1).
    assert np.max(np.abs(clip1[:19_000])) < 1e-3
    # The tone (a mono file: -3 dB each side) is where A2 puts it: frames [60, 90) = clip 2's
    # samples [24_000, 84_000).
    assert _level(clip2[30_000:33_000], 1000) == pytest.approx(0.3 * 0.7071, abs=0.02)
    assert _level(clip2[86_000:96_000], 1000) < 0.01
    assert _level(clip1[60_000:96_000], 1000) < 0.01


def test_compose_refuses_the_clips_audio_before_anything_is_written(env: Path) -> None:
    edit = _edit(env)
    out = env / "scored.otio"
    code, text = _run("score", str(edit), "-o", str(out), "--method", "compose",
                      "--provider", "local", "--use-audio-as-reference")
    assert code == 2, text
    assert "--method compose sends no clips" in text and "--use-audio-as-reference" in text
    assert not out.exists() and not (env / "scored.otio.reelscore").exists()


def test_a_provider_that_cannot_hear_the_clips_is_refused_before_rendering(
        env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mountsea proxy documents no use_audio_as_reference: refused before a clip renders
    (it used to be refused at the first request, after rendering)."""
    monkeypatch.setenv("REELSCORE_MOUNTSEA_KEY", "msk-TESTKEY-refused")
    monkeypatch.setenv("REELSCORE_NO_KEYRING", "1")
    edit = _edit(env)
    out = env / "scored.otio"
    (env / "reelscore.toml").write_text(
        'provider = "mountsea"\nbase_url = "http://127.0.0.1:9"\n'
        '[uploader]\nbucket = "clips"\nendpoint_url = "http://127.0.0.1:9"\n', "utf-8")
    code, text = _run("score", str(edit), "-o", str(out), "--use-audio-as-reference")
    assert code == 2, text
    assert "the mountsea provider does not take clips with their sound" in text
    assert "msk-TESTKEY" not in text
    assert not out.exists() and not (env / "scored.otio.reelscore" / "clips").exists()


def test_duck_cannot_update_a_previous_score(env: Path) -> None:
    edit = _edit(env)
    out = env / "scored.otio"
    code, text = _run("score", str(edit), "-o", str(out), "--provider", "local",
                      "--previous", str(env / "old.otio.reelscore"), "--duck")
    assert code == 2, text
    assert "--duck with --previous" in text
    assert not out.exists() and not (env / "scored.otio.reelscore").exists()


def test_offline_audio_is_listed_before_any_clip_is_rendered(env: Path) -> None:
    edit = _edit(env)
    (env / "clk.wav").unlink()
    out = env / "scored.otio"
    code, text = _run("score", str(edit), "-o", str(out), "--provider", "local",
                      "--use-audio-as-reference", "--scenes", "cuts", "--min-scene", "0.5")
    assert code == 2, text
    assert "'clicks (A1)' at 01:00:00:10" in text and "--media-root" in text
    clips = env / "scored.otio.reelscore" / "clips"
    assert not clips.exists() or not any(clips.iterdir())
    # without the flag the picture alone is scored: the audio tracks are not needed
    code, text = _run("score", str(edit), "-o", str(out), "--provider", "local",
                      "--scenes", "cuts", "--min-scene", "0.5")
    assert code == 0, text


def test_the_clip_cache_key_changes_with_the_sound(env: Path) -> None:
    edit_path = _edit(env)
    loaded = load_edit(edit_path)
    planned = plan_edit(loaded, ScoreSettings(scenes="cuts", min_scene_seconds=0.5))
    picture = FFmpegRenderer(loaded.timeline, planned.picture, planned.resolver)
    renderer = SoundRenderer(picture, EditSound(loaded, planned.resolver))
    video = planned.plan.videos()[0]
    encode = plan_encode(planned.plan)[planned.plan.requests[0].id]
    key = renderer.cache_key(video, encode)
    assert key is not None and key == renderer.cache_key(video, encode)
    assert key != picture.cache_key(video, encode)
    # new sound in the click file (same name): the clip must be rendered again
    clk = np.zeros((6 * SR, 2), dtype=np.float32)
    clk[40_000] = 0.5
    write_wav(env / "clk.wav", clk, SR, bits=32)
    assert renderer.cache_key(video, encode) != key


def test_the_otio_hook_sends_clips_with_sound(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OTIO_PLUGIN_MANIFEST_PATH", "OTIO_DISABLE_ENTRYPOINTS_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    otio.plugins.ActiveManifest(force_reload=True)
    try:
        tl = otio.adapters.read_from_file(str(_edit(env)))
        otio.adapters.write_to_file(tl, str(env / "hooked.otio"), hook_function_argument_map={
            "reelscore.provider": "local", "reelscore.use_audio_as_reference": True,
            "reelscore.scenes": "cuts", "reelscore.min_scene": 0.5,
            "reelscore.work_dir": str(env / "job")})
    finally:
        otio.plugins.ActiveManifest(force_reload=True)
    manifest = json.loads((env / "job" / "manifest.json").read_text())
    assert manifest["settings"]["generation"]["use_audio_as_reference"] is True
    renders = sorted(manifest["renders"].values(), key=lambda r: r["timeline_range"]["start"])
    assert [r["timeline_range"]["start"] for r in renders] == [0, 48]
    clip1, clip2 = (decode_audio(Path(r["clip"]["path"])) for r in renders)
    assert abs(_peak_offset(clip1, 50_000)) <= SYNC_TOLERANCE_SAMPLES
    assert abs(_peak_offset(clip2, 34_000)) <= SYNC_TOLERANCE_SAMPLES


def _reference_movie(folder: Path, *, sound: bool) -> Path:
    """A 5-second 24 fps movie (the flattened cut) whose sound has clicks at samples 50_000
    and 130_000 (PCM, so the clicks are exact in the movie)."""
    from reelscore.ffmpeg_cli import base_args, run

    movie = folder / ("reference.mov" if sound else "reference_mute.mov")
    args = base_args() + ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=24:duration=5"]
    if sound:
        clk = np.zeros((5 * SR, 2), dtype=np.float32)
        clk[50_000] = clk[130_000] = 0.9
        write_wav(folder / "mix.wav", clk, SR, bits=32)
        args += ["-i", str(folder / "mix.wav"), "-map", "0:v", "-map", "1:a",
                 "-c:a", "pcm_s24le"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(movie)]
    run(args, "making the reference movie")
    return movie


def test_with_a_reference_movie_the_clips_carry_the_movies_own_sound(env: Path) -> None:
    edit = _edit(env)
    (env / "clk.wav").unlink()  # the edit's own audio is offline: the movie's sound is used
    movie = _reference_movie(env, sound=True)
    out = env / "scored.otio"
    code, text = _run("score", str(edit), "-o", str(out), "--provider", "local",
                      "--reference", str(movie), "--reference-start", "01:00:00:00",
                      "--use-audio-as-reference", "--scenes", "cuts", "--min-scene", "0.5")
    assert code == 0, text
    manifest = json.loads((env / "scored.otio.reelscore" / "manifest.json").read_text())
    renders = sorted(manifest["renders"].values(), key=lambda r: r["timeline_range"]["start"])
    clip1, clip2 = (decode_audio(Path(r["clip"]["path"])) for r in renders)
    assert abs(_peak_offset(clip1, 50_000)) <= SYNC_TOLERANCE_SAMPLES
    assert abs(_peak_offset(clip2, 34_000)) <= SYNC_TOLERANCE_SAMPLES
    # a reference without sound is refused before anything renders
    mute = _reference_movie(env, sound=False)
    code, text = _run("score", str(edit), "-o", str(env / "mute.otio"), "--provider", "local",
                      "--reference", str(mute), "--reference-start", "01:00:00:00",
                      "--use-audio-as-reference", "--scenes", "cuts", "--min-scene", "0.5")
    assert code == 2 and "has no sound" in text, text
    clips = env / "mute.otio.reelscore" / "clips"
    assert not clips.exists() or not any(clips.iterdir())
