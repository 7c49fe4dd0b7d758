"""The ElevenLabs provider, end to end over real HTTP against the contract server."""

from __future__ import annotations

import io
import json
import stat
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from reelscore.errors import (
    AudioError,
    AuthenticationError,
    InputError,
    PossiblyChargedError,
    RateLimitedError,
    RequestRejectedError,
    ServiceError,
)
from reelscore.ffmpeg_cli import decode_audio
from reelscore.providers import make_provider
from reelscore.providers.answers import ZipLimits, safe_extract_audio_zip
from reelscore.providers.base import ClipRef, GenerationRequest, GenerationSettings, ProviderConfig
from reelscore.providers.elevenlabs import ElevenLabsProvider
from reelscore.providers.multipart import MultipartBody
from reelscore.providers.options import ElevenLabsOptions
from tests.contract_fixtures import (
    CLIP_SECONDS,
    TEST_KEY,
    Events,
    assert_no_secret,
    assert_no_secret_in_dir,
    clips,
    contract,
    el_config,
    log_text,
    make_clip,
    make_request,
)
from tests.contract_server import V2M, ContractServer, Fault, pad_mp4, tone_of

__all__ = ["clips", "contract"]  # fixtures imported for pytest

TOTAL = sum(CLIP_SECONDS)


def run(server: ContractServer, request: GenerationRequest, out: Path, **options: object):
    events = Events()
    provider = ElevenLabsProvider(el_config(server, **options))
    audio = provider.generate(request, out, on_event=events)
    return audio, events


# ------------------------------------------------------------------------------------ wire format


def test_wire_format_fields_parts_query_headers(contract, clips, tmp_path):
    req = make_request(clips, description="tense, rising strings", tags=("cinematic", "dark"),
                       model_id="music_v1", sign_with_c2pa=False, add_sfx=True,
                       use_audio_as_reference=False, output_format="mp3_44100_192")
    audio, events = run(contract, req, tmp_path)
    [logged] = contract.state.requests_to(V2M)
    assert logged.method == "POST"
    assert logged.query == {"output_format": ["mp3_44100_192"]}
    assert logged.fields == [
        ("description", "tense, rising strings"), ("tags", "cinematic"), ("tags", "dark"),
        ("model_id", "music_v1"), ("sign_with_c2pa", "false"), ("add_sfx", "true"),
        ("use_audio_as_reference", "false"),
    ]
    # form fields first, then one videos part per clip in timeline order
    assert logged.order == ["description", "tags", "tags", "model_id", "sign_with_c2pa",
                            "add_sfx", "use_audio_as_reference", "videos", "videos", "videos"]
    assert [f["filename"] for f in logged.files] == [p.name for p in clips]
    assert [f["content_type"] for f in logged.files] == ["video/mp4"] * 3
    assert [f["bytes"] for f in logged.files] == [p.stat().st_size for p in clips]
    assert [round(f["duration_s"], 2) for f in logged.files] == list(CLIP_SECONDS)
    assert logged.headers["xi-api-key"] == TEST_KEY
    assert logged.headers["user-agent"].startswith("reelscore/")
    assert int(logged.headers["content-length"]) == logged.body_bytes
    assert "transfer-encoding" not in logged.headers
    # the answer
    assert audio.container == "mp3" and audio.path == tmp_path / "r01.mp3"
    assert audio.metadata["song_id"] and len(audio.metadata["song_id"]) == 32
    decoded = decode_audio(audio.path, sample_rate=44100, channels=1)
    assert abs(len(decoded) / 44100 - (TOTAL + contract.state.drift_s)) < 0.1
    [attempt] = events.named("attempt")
    assert attempt["status"] == 200 and attempt["attempt"] == 1 and attempt["body_sent"]
    assert attempt["request_bytes"] == logged.body_bytes
    assert attempt["response_bytes"] == audio.path.stat().st_size
    assert attempt["ids"]["song-id"] == audio.metadata["song_id"]
    assert events.named("result")[0]["sha256"] == audio.metadata["sha256"]
    assert contract.state.charges == 1


def test_unset_settings_are_not_sent(contract, clips, tmp_path):
    run(contract, make_request(clips[:1]), tmp_path)
    [logged] = contract.state.requests_to(V2M)
    assert logged.fields == []
    assert logged.order == ["videos"]
    assert logged.query == {"output_format": ["mp3_44100_128"]}


def test_zero_retention_from_typed_options(contract, clips, tmp_path):
    """Options as the typed model a front end builds from configuration."""
    opts = ElevenLabsOptions(enable_logging=False, max_description=20, retry_base_s=0.01)
    cfg = ProviderConfig(base_url=contract.url, api_key=SecretStr(TEST_KEY), options=opts)
    with pytest.raises(InputError, match="at most 20"):
        ElevenLabsProvider(cfg).generate(make_request(clips[:1], description="x" * 21), tmp_path)
    ElevenLabsProvider(cfg).generate(make_request(clips[:1]), tmp_path)
    [logged] = contract.state.requests_to(V2M)
    assert logged.query == {"output_format": ["mp3_44100_128"], "enable_logging": ["false"]}


def test_headerless_pcm_has_rate_and_exact_length(contract, clips, tmp_path):
    audio, _ = run(contract, make_request(clips, output_format="pcm_48000"), tmp_path)
    assert audio.container == "pcm" and audio.pcm_sample_rate == 48000
    assert audio.path.suffix == ".pcm"
    n = audio.path.stat().st_size // 2
    assert n == round((TOTAL + contract.state.drift_s) * 48000)
    # a click marks each video boundary: the second video starts at exactly 1.0 s
    pcm = np.frombuffer(audio.path.read_bytes(), "<i2").astype(np.float32) / 32767
    clicks = np.flatnonzero(pcm > 0.8)
    starts = sorted({int(i) for i in clicks if i == 0 or pcm[i - 1] <= 0.8})
    assert [round(s / 48000, 3) for s in starts] == [0.0, 1.0, 2.5]


def test_pcm_delivered_as_wav_is_recognised(contract, clips, tmp_path):
    contract.state.pcm_wav = True
    audio, _ = run(contract, make_request(clips, output_format="pcm_44100"), tmp_path)
    assert audio.container == "wav" and audio.pcm_sample_rate is None
    assert audio.path.read_bytes()[:4] == b"RIFF"


@pytest.mark.parametrize(("fmt", "container", "suffix"), [
    ("opus_48000_64", "opus", ".ogg"),
    ("ulaw_8000", "other", ".bin"),
])
def test_other_formats(contract, clips, tmp_path, fmt, container, suffix):
    audio, _ = run(contract, make_request(clips[:1], output_format=fmt), tmp_path)
    assert audio.container == container and audio.path.suffix == suffix
    if fmt == "ulaw_8000":
        assert audio.metadata["raw_format"] == "mulaw"
        assert audio.metadata["raw_sample_rate"] == 8000
        assert audio.path.stat().st_size == round((1.0 + contract.state.drift_s) * 8000)
    else:
        got = decode_audio(audio.path, sample_rate=48000, channels=1)
        assert abs(len(got) / 48000 - (1.0 + contract.state.drift_s)) < 0.05


def test_separate_tracks_zip_gives_aligned_music_and_sfx(contract, clips, tmp_path):
    req = make_request(clips, separate_tracks=True, output_format="pcm_16000")
    contract.state.zip_names = ("track_a.pcm", "sound_effects.pcm")  # SFX named, music not
    audio, _events = run(contract, req, tmp_path)
    assert ("separate_tracks", "true") in contract.state.requests_to(V2M)[0].fields
    assert audio.path == tmp_path / "r01.music.pcm" and audio.container == "pcm"
    assert audio.sfx_path == tmp_path / "r01.sfx.pcm"
    music = np.frombuffer(audio.path.read_bytes(), "<i2")
    sfx = np.frombuffer(audio.sfx_path.read_bytes(), "<i2")
    assert len(music) == len(sfx) == round((TOTAL + contract.state.drift_s) * 16000)
    assert np.flatnonzero(sfx > 25000)[0] == 0 and music.max() < 9000  # clicks only in SFX
    roles = {m["name"]: m["role"] for m in audio.metadata["zip_members"]}
    assert roles == {"track_a.pcm": "music", "sound_effects.pcm": "sfx"}
    assert Path(audio.metadata["zip_original"]).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r01.music.pcm", "r01.sfx.pcm",
                                                          "r01.zip"]


def test_zip_with_path_traversal_member_is_refused(contract, clips, tmp_path):
    out = tmp_path / "job" / "audio"
    contract.state.add(Fault("zip", members=[("music.mp3", "music"),
                                             ("../../evil.mp3", b"owned")]))
    with pytest.raises(AudioError, match=r"'\.\./\.\./evil\.mp3' contains '\.\.'"):
        run(contract, make_request(clips[:1], separate_tracks=True), out)
    assert not (tmp_path / "evil.mp3").exists() and not (tmp_path / "job" / "evil.mp3").exists()
    assert sorted(p.name for p in out.iterdir()) == ["r01.zip"]  # raw answer kept, nothing else
    assert contract.state.charges == 1


def _zip(members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return buf.getvalue()


@pytest.mark.parametrize(("member", "why"), [
    ("/abs/music.mp3", "absolute path"),
    ("C:\\music.mp3", "absolute path"),
    ("sub\\..\\..\\music.mp3", "contains '..'"),
    ("symlink", "symbolic link"),
])
def test_zip_unsafe_members(tmp_path, member, why):
    if member == "symlink":
        info = zipfile.ZipInfo("music.mp3")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        data = _zip([(info, b"/etc/passwd")])
    else:
        data = _zip([(member, b"ID3xxxx")])
    z = tmp_path / "a.zip"
    z.write_bytes(data)
    with pytest.raises(AudioError, match=why):
        safe_extract_audio_zip(z, tmp_path, "r01", ZipLimits())
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]


def test_zip_size_and_count_limits(tmp_path):
    z = tmp_path / "a.zip"
    z.write_bytes(_zip([("music.mp3", bytes(5000)), ("sfx.mp3", b"x")]))
    with pytest.raises(AudioError, match="5,000 bytes"):
        safe_extract_audio_zip(z, tmp_path, "r", ZipLimits(max_member_bytes=4000, max_ratio=1e9))
    with pytest.raises(AudioError, match="expands"):
        safe_extract_audio_zip(z, tmp_path, "r", ZipLimits(max_ratio=10))
    z.write_bytes(_zip([(f"m{i}.mp3", b"x") for i in range(5)]))
    with pytest.raises(AudioError, match="5 members; at most 4"):
        safe_extract_audio_zip(z, tmp_path, "r", ZipLimits(max_members=4))
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]


def test_c2pa_original_is_kept_untouched_and_recorded(contract, clips, tmp_path):
    audio, _ = run(contract, make_request(clips[:2], sign_with_c2pa=True), tmp_path)
    assert ("sign_with_c2pa", "true") in contract.state.requests_to(V2M)[0].fields
    meta = audio.metadata
    assert meta["signed_original"] == str(audio.path) and meta["c2pa_manifest_found"] is True
    assert audio.path.read_bytes()[:3] == b"ID3"
    assert not audio.path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    import hashlib

    assert hashlib.sha256(audio.path.read_bytes()).hexdigest() == meta["signed_original_sha256"]


# ---------------------------------------------------------------------------- limits and programmes


def _fake_clips(n: int, seconds: float, size: int) -> tuple[ClipRef, ...]:
    return tuple(ClipRef(path=Path(f"/nonexistent/c{i}.mp4"), frames=max(1, int(seconds * 24)),
                         rate="24/1", duration_s=seconds, bytes=size, sha256="0" * 64)
                 for i in range(n))


@pytest.mark.parametrize(("clips_", "settings", "message"), [
    (_fake_clips(11, 1, 10), {}, "11 videos; ElevenLabs accepts at most 10"),
    (_fake_clips(3, 250, 10), {}, r"750\.000 s long in 3 videos; ElevenLabs accepts at most 600 s"),
    (_fake_clips(2, 10, 105_000_000), {},
     r"210\.0 MB \(210,000,000 bytes\) in 2 videos; ElevenLabs accepts at most 200\.0 MB"),
    (_fake_clips(1, 10, 1), {"description": "x" * 1001},
     "description is 1001 characters; ElevenLabs accepts at most 1000"),
    (_fake_clips(1, 10, 1), {"tags": tuple(f"t{i}" for i in range(11))},
     "11 tags given; ElevenLabs accepts at most 10"),
    (_fake_clips(1, 10, 1), {"output_format": "mp3_48000_320"}, "unknown output format"),
    (_fake_clips(1, 10, 1), {"output_format": "pcm_48000", "sign_with_c2pa": True},
     "C2PA signing works with MP3 output only"),
])
def test_limits_are_checked_before_any_upload(contract, tmp_path, clips_, settings, message):
    req = GenerationRequest(request_id="r07", clips=clips_,
                            settings=GenerationSettings(**settings))
    with pytest.raises(InputError, match=message):
        run(contract, req, tmp_path)
    assert contract.state.log == []


def test_max_description_is_configurable(contract, clips, tmp_path):
    req = make_request(clips[:1], description="y" * 50)
    with pytest.raises(InputError, match="50 characters; ElevenLabs accepts at most 40"):
        run(contract, req, tmp_path, max_description=40)
    assert contract.state.log == []


def test_programme_of_twelve_scenes_over_600s(contract, tmp_path_factory, tmp_path):
    """12 scenes, 720 s: one request of 12 would break two limits; two requests pass."""
    d = tmp_path_factory.mktemp("long")
    long_clip = make_clip(d / "long.mp4", 60, rate=1)
    paths = [long_clip] * 12
    with pytest.raises(InputError, match="12 videos"):
        run(contract, make_request(paths, seconds=[60.0] * 12), tmp_path)
    with pytest.raises(InputError, match=r"660\.000 s long in 10 videos"):
        run(contract, make_request(paths[:10], seconds=[66.0] * 10), tmp_path)
    assert contract.state.log == []
    out = []
    for rid, part in (("r01", paths[:10]), ("r02", paths[10:])):
        audio, _ = run(contract, make_request(part, request_id=rid, seconds=[60.0] * len(part),
                                              output_format="pcm_8000"), tmp_path)
        out.append(audio)
    reqs = contract.state.requests_to(V2M)
    assert [len(r.files) for r in reqs] == [10, 2]
    assert [round(sum(f["duration_s"] for f in r.files)) for r in reqs] == [600, 120]
    assert [a.path.stat().st_size // 2 for a in out] == [
        round((600 + contract.state.drift_s) * 8000), round((120 + contract.state.drift_s) * 8000)]
    assert contract.state.charges == 2


def test_server_side_validation_422_names_the_field(contract, clips, tmp_path):
    with pytest.raises(RequestRejectedError) as ei:
        run(contract, make_request(clips[:1], model_id="music_v9"), tmp_path)
    assert "'model_id'" in str(ei.value) and "422" in str(ei.value)
    assert "--model" in (ei.value.hint or "")
    assert contract.state.charges == 0


# ------------------------------------------------------------------------------------ error shapes


@pytest.mark.parametrize(("status", "body", "exc", "expect"), [
    (401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}},
     AuthenticationError, "rejected the API key from the configured key (401 invalid_api_key)"),
    (402, {"detail": {"status": "limited_access",
                      "message": "Music API is not available for free users"}},
     AuthenticationError, "plan cannot use the music API (402 limited_access)"),
    (403, {"detail": {"status": "missing_permissions",
                      "message": "The API key is missing the permission music_generation"}},
     AuthenticationError, "lacks a permission (403 missing_permissions)"),
    (422, {"detail": [{"loc": ["body", "description"], "msg": "String should have at most 1000 "
                       "characters", "type": "string_too_long", "input": "..."}]},
     RequestRejectedError, "'description': String should have at most 1000 characters"),
    (400, {"detail": {"status": "bad_prompt", "message": "Prompt names an artist",
                      "data": {"prompt_suggestion": "moody synth score"}}},
     RequestRejectedError, "suggestion: moody synth score"),
    (404, {"detail": "Not Found"}, RequestRejectedError, "404"),
    (500, {"status": "internal_server_error", "message": "boom"}, PossiblyChargedError,
     "500 internal_server_error after receiving the whole request: internal_server_error; boom"),
    (502, "<html><body>Bad gateway</body></html>", PossiblyChargedError, "Bad gateway"),
])
def test_error_statuses_and_body_shapes(contract, clips, tmp_path, status, body, exc, expect):
    headers = {"Content-Type": "text/html"} if isinstance(body, str) else {}
    contract.state.add(Fault("status", status=status, body=body, headers=headers))
    events = Events()
    provider = ElevenLabsProvider(el_config(contract))
    with pytest.raises(exc) as ei:
        provider.generate(make_request(clips[:1]), tmp_path, on_event=events)
    assert expect in str(ei.value)
    assert ei.value.status_code == status
    assert ei.value.hint
    assert len(contract.state.requests_to(V2M)) == 1  # never retried
    [att] = events.named("attempt")
    assert att["status"] == status and att["retry"] in ("none", "possibly_charged")
    if exc is PossiblyChargedError:
        assert "--resubmit" in (ei.value.hint or "")
        assert events.named("possibly_charged")[0]["status"] == status
    assert list(tmp_path.iterdir()) == []


def test_wrong_key_is_refused_by_the_server(contract, clips, tmp_path):
    cfg = el_config(contract).model_copy(update={"api_key": SecretStr("wrong-key-123456")})
    with pytest.raises(AuthenticationError, match="401 invalid_api_key"):
        ElevenLabsProvider(cfg).generate(make_request(clips[:1]), tmp_path)


# ------------------------------------------------------------------------------------------ retries


def test_429_system_busy_backs_off_then_succeeds(contract, clips, tmp_path):
    contract.state.add(Fault("status", status=429, times=2,
                             body={"detail": {"status": "system_busy", "message": "busy"}}))
    audio, events = run(contract, make_request(clips[:1]), tmp_path)
    atts = events.named("attempt")
    assert [a["status"] for a in atts] == [429, 429, 200]
    assert [a["retry"] for a in atts] == ["retry", "retry", "none"]
    assert {a["retry_reason"] for a in atts[:2]} == {"system_busy"}
    assert all(0.005 <= a["retry_delay_s"] <= 0.05 for a in atts[:2])
    assert audio.metadata["attempts"] == 3
    assert contract.state.charges == 1


def test_503_honours_retry_after_and_retry_after_ms(contract, clips, tmp_path):
    contract.state.add(Fault("status", status=503, headers={"Retry-After": "0.2"},
                             body={"status": "service_unavailable", "message": "later"}))
    contract.state.add(Fault("status", status=503, headers={"Retry-After-ms": "70"},
                             body={"detail": {"status": "service_unavailable"}}))
    _audio, events = run(contract, make_request(clips[:1]), tmp_path)
    atts = events.named("attempt")
    assert [a["retry_delay_s"] for a in atts] == [0.2, 0.07, None]
    assert atts[0]["retry_reason"] == "service_unavailable_503"
    assert contract.state.charges == 1


def test_too_many_concurrent_requests_waits_for_a_slot(contract, clips, tmp_path):
    contract.state.add(Fault("status", status=429, times=3,
                             body={"detail": {"status": "too_many_concurrent_requests"}}))
    _audio, events = run(contract, make_request(clips[:1]), tmp_path, max_retries=1)
    atts = events.named("attempt")
    # the slot wait does not use up the retry budget (max_retries=1 here)
    assert [a["retry_reason"] for a in atts[:3]] == ["too_many_concurrent_requests"] * 3
    assert atts[-1]["status"] == 200


def test_concurrency_wait_is_bounded(contract, clips, tmp_path):
    contract.state.add(Fault("status", status=429, times=1000,
                             body={"detail": {"status": "too_many_concurrent_requests"}}))
    with pytest.raises(RateLimitedError, match=r"waited 0 s for a slot|waited \d+ s") as ei:
        run(contract, make_request(clips[:1]), tmp_path, concurrency_poll_s=0.05,
            concurrency_wait_s=0.2)
    assert "concurrent-request limit" in (ei.value.hint or "")
    n = len(contract.state.requests_to(V2M))
    assert 3 <= n <= 6
    assert contract.state.charges == 0


def test_real_concurrency_limit(contract, clips, tmp_path):
    """Two generations at once on a plan with one slot: the second waits, both succeed."""
    import threading

    contract.state.max_concurrent = 1
    # Long enough that the two requests overlap even on a loaded 2-core machine.
    contract.state.generation_delay_s = 0.6
    results: list[object] = []
    barrier = threading.Barrier(2)

    def one(rid: str) -> None:
        barrier.wait()
        try:
            results.append(run(contract, make_request(clips[:1], request_id=rid),
                               tmp_path / rid, concurrency_poll_s=0.1,
                               concurrency_wait_s=30.0)[0])
        except Exception as exc:  # pragma: no cover - reported below
            results.append(exc)

    threads = [threading.Thread(target=one, args=(r,)) for r in ("r01", "r02")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(not isinstance(r, Exception) for r in results), results
    assert contract.state.charges == 2
    assert any(r.status == 429 for r in contract.state.requests_to(V2M))


def test_retry_limit(contract, clips, tmp_path):
    contract.state.add(Fault("status", status=503, times=10, body={"detail": {"status": "x"}}))
    with pytest.raises(ServiceError, match="503") as ei:
        run(contract, make_request(clips[:1]), tmp_path, max_retries=2)
    assert not isinstance(ei.value, PossiblyChargedError)
    assert "3 attempts" in str(ei.value)
    assert len(contract.state.requests_to(V2M)) == 3


def test_connection_refused_is_retried_then_reported(tmp_path, clips):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = ProviderConfig(base_url=f"http://127.0.0.1:{port}", api_key=SecretStr(TEST_KEY),
                         max_retries=2, options={"retry_base_s": 0.01, "retry_cap_s": 0.02})
    events = Events()
    with pytest.raises(ServiceError, match="nothing was generated"):
        ElevenLabsProvider(cfg).generate(make_request(clips[:1]), tmp_path, on_event=events)
    atts = events.named("attempt")
    assert [a["retry"] for a in atts] == ["retry", "retry", "give_up"]
    assert {a["retry_reason"] for a in atts} == {"connection_failed_before_body_accepted"}


def test_drop_in_the_middle_of_the_upload_is_retried(contract, clips, tmp_path):
    # larger than the loopback socket buffers, so the client really sees the connection break
    big = tmp_path / "big.mp4"
    pad_mp4(clips[0], big, 24 * 1024 * 1024)
    contract.state.upload_read_chunk = 16 * 1024
    contract.state.add(Fault("drop_upload", after_bytes=60_000))
    audio, events = run(contract, make_request([big, clips[1]]), tmp_path / "out")
    atts = events.named("attempt")
    assert len(atts) == 2
    assert atts[0]["body_sent"] is False and atts[0]["retry"] == "retry"
    assert atts[0]["retry_reason"] == "connection_failed_before_body_accepted"
    assert atts[0]["request_bytes"] < atts[0]["request_bytes_total"]
    assert atts[1]["status"] == 200 and audio.path.is_file()
    assert contract.state.charges == 1


def test_drop_in_the_middle_of_the_download_is_not_retried(contract, clips, tmp_path):
    contract.state.add(Fault("drop_download", after_bytes=5000))
    events = Events()
    with pytest.raises(PossiblyChargedError, match="broke after 5,000 bytes") as ei:
        ElevenLabsProvider(el_config(contract)).generate(make_request(clips), tmp_path,
                                                         on_event=events)
    assert "--resubmit" in (ei.value.hint or "")
    assert len(contract.state.requests_to(V2M)) == 1 and contract.state.charges == 1
    [att] = events.named("attempt")
    assert att["retry"] == "possibly_charged" and att["ids"]["song-id"]
    assert events.named("possibly_charged")[0]["ids"]["song-id"] == att["ids"]["song-id"]
    assert list(tmp_path.iterdir()) == []  # no partial file under any name


def test_connection_lost_after_the_whole_upload_is_not_retried(contract, clips, tmp_path):
    contract.state.add(Fault("no_response"))
    with pytest.raises(PossiblyChargedError, match=r"whole request .* was sent"):
        run(contract, make_request(clips[:1]), tmp_path)
    assert len(contract.state.requests_to(V2M)) == 1


def test_slow_first_byte_beyond_common_client_defaults(contract, clips, tmp_path):
    """6 s before the first byte: httpx's default 5 s read timeout would fail here."""
    contract.state.add(Fault("slow", delay_s=6.0))
    audio, events = run(contract, make_request(clips[:1]), tmp_path)
    assert audio.path.is_file()
    assert events.named("attempt")[0]["ttfb_s"] >= 6.0


def test_read_timeout_after_upload_is_possibly_charged(contract, clips, tmp_path):
    contract.state.add(Fault("slow", delay_s=1.5))
    with pytest.raises(PossiblyChargedError, match=r"read timeout of 0\.5 s") as ei:
        run(contract, make_request(clips[:1]), tmp_path, read_timeout_s=0.5)
    assert "--read-timeout" in (ei.value.hint or "")
    assert len(contract.state.requests_to(V2M)) == 1


def test_wrong_content_type(contract, clips, tmp_path):
    contract.state.add(Fault("content_type", content_type="text/html; charset=utf-8",
                             body="<html>Please log in</html>"))
    with pytest.raises(PossiblyChargedError, match=r"'text/html' is not audio.*Please log in"):
        run(contract, make_request(clips[:1]), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_empty_audio(contract, clips, tmp_path):
    contract.state.add(Fault("empty"))
    with pytest.raises(PossiblyChargedError, match=r"empty body \(0 bytes"):
        run(contract, make_request(clips[:1]), tmp_path)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------- secrets


def test_the_key_never_leaks(contract, clips, tmp_path, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    events = Events()
    provider = make_provider("elevenlabs", el_config(contract))
    errors: list[str] = []
    scenarios = [
        Fault("status", status=401, body={"detail": {"status": "invalid_api_key",
                                                     "message": f"bad key {TEST_KEY}"}}),
        Fault("status", status=500, body={"status": "error", "message": f"echo {TEST_KEY}"}),
        Fault("drop_download", after_bytes=100),
        Fault("content_type", content_type="application/json",
              body={"xi-api-key": TEST_KEY}),
        None,
    ]
    for i, fault in enumerate(scenarios):
        if fault is not None:
            contract.state.add(fault)
        try:
            provider.generate(make_request(clips[:1], request_id=f"r{i}"), tmp_path / "job",
                              on_event=events)
        except Exception as exc:
            errors.append(f"{exc!s} {exc!r} {getattr(exc, 'hint', '')}")
    assert len(errors) == 4
    assert "bad key ***" in errors[0]
    assert_no_secret(events.text(), *errors, log_text(caplog), caplog.text)
    assert_no_secret_in_dir(tmp_path)
    assert TEST_KEY not in repr(provider.config) and TEST_KEY not in json.dumps(
        provider.config.model_dump(mode="json"))


def test_missing_key_says_how_to_set_one(contract, clips, tmp_path, monkeypatch):
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    monkeypatch.setenv("REELSCORE_CREDENTIALS", str(tmp_path / "none.toml"))
    monkeypatch.setenv("REELSCORE_NO_KEYRING", "1")
    cfg = el_config(contract).model_copy(update={"api_key": None})
    with pytest.raises(AuthenticationError, match=r"no API key for elevenlabs.*ELEVENLABS_API_KEY"):
        ElevenLabsProvider(cfg).generate(make_request(clips[:1]), tmp_path)
    assert contract.state.log == []


def test_key_from_environment(contract, clips, tmp_path, monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", TEST_KEY)
    cfg = el_config(contract).model_copy(update={"api_key": None})
    audio = ElevenLabsProvider(cfg).generate(make_request(clips[:1]), tmp_path)
    assert audio.path.is_file()


@pytest.mark.parametrize(("url", "ok"), [
    ("http://api.example.com", False),
    ("https://api.eu.residency.elevenlabs.io/", True),
    ("http://127.0.0.1:9", True),
    ("http://localhost:9", True),
    ("https://user:pw@api.elevenlabs.io", False),
    ("ftp://api.elevenlabs.io", False),
])
def test_base_url_rules(url, ok):
    cfg = ProviderConfig(base_url=url, api_key=SecretStr(TEST_KEY))
    if ok:
        assert ElevenLabsProvider(cfg).base_url == url.rstrip("/")
    else:
        with pytest.raises(InputError):
            ElevenLabsProvider(cfg)


def test_insecure_allowed_explicitly():
    cfg = ProviderConfig(base_url="http://10.0.0.5:8080", allow_insecure=True)
    assert ElevenLabsProvider(cfg).base_url == "http://10.0.0.5:8080"


# ------------------------------------------------------------------------------------ streaming


def test_multipart_body_memory_is_flat_and_length_exact(tmp_path):
    big = tmp_path / "big.mp4"
    with open(big, "wb") as fh:
        fh.truncate(40 * 1024 * 1024)  # sparse: 40 MB on the wire, no disk use
    body = MultipartBody([("description", "d"), ("tags", "a")],
                         [("videos", big, "big.mp4", "video/mp4")] * 2, chunk_size=1 << 20)
    tracemalloc.start()
    total = 0
    for chunk in body:
        total += len(chunk)
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == body.length == body.sent and body.done
    assert total > 80 * 1024 * 1024
    assert peak < 4 * 1024 * 1024


def test_tone_per_video(contract, clips, tmp_path):
    audio, _ = run(contract, make_request(clips[:2], output_format="pcm_16000"), tmp_path)
    pcm = np.frombuffer(audio.path.read_bytes(), "<i2").astype(np.float32)
    for i, (a, b) in enumerate(((0.1, 0.9), (1.1, 2.4))):
        seg = pcm[int(a * 16000):int(b * 16000)]
        spec = np.abs(np.fft.rfft(seg))
        peak_hz = np.argmax(spec) * 16000 / len(seg)
        assert abs(peak_hz - tone_of(i)) < 5
