"""A corpus of bad inputs, each with the message the user gets.

Edit files that are truncated, garbled, empty or of the wrong kind; media that is not video;
media named by network URLs; file names with spaces, unicode, quotes and a leading dash; hostile
answers from the service (ZIP members escaping the folder, too many or too large members,
oversized, empty or HTML answers); a full disk and read-only folders. Every case ends with a
ReelscoreError (one actionable message, the right exit code, no traceback), and never leaves an
output or a partial output behind. The corpus is generated here; no binary files are shipped.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from reelscore.cli import app
from reelscore.errors import (
    AudioError,
    EditReadError,
    InputError,
    JobError,
    MediaError,
    OfflineMediaError,
    OutputError,
    PossiblyChargedError,
    ReelscoreError,
    UnsupportedError,
)
from reelscore.ffmpeg_cli import ffmpeg_exe
from reelscore.pipeline import ScoreSettings, plan_edit, score_file
from reelscore.timeline import load_edit
from tests.contract_fixtures import contract, el_config
from tests.contract_server import Fault
from tests.edits import build_timeline

__all__ = ["contract"]  # fixture imported for pytest

R = Fraction(25)


@pytest.fixture(scope="module")
def source(coded_video: Callable[..., Path]) -> Path:
    return coded_video(frames=150, rate=R, source_id=71, gop=25)


def two_scene_timeline(src: Path) -> otio.schema.Timeline:
    return build_timeline([[("clip", src, 71, 5, 40), ("clip", src, 71, 90, 40)]], R,
                          start_frame=90000, name="bad inputs")


@pytest.fixture()
def cut(tmp_path: Path, source: Path) -> Path:
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(two_scene_timeline(source), str(path))
    return path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stderr


# ------------------------------------------------------------------------------- edit files


def _otio_text(src: Path) -> str:
    return otio.adapters.write_to_string(two_scene_timeline(src))


def _edl_text(src: Path) -> str:
    tl = build_timeline([[("clip", src, 71, 5, 40), ("clip", src, 71, 90, 40)]], R,
                        start_frame=90000)
    return otio.adapters.write_to_string(tl, "cmx_3600")


def _xml_text(src: Path) -> str:
    return otio.adapters.write_to_string(two_scene_timeline(src), "fcp_xml")


def _two_timelines(src: Path) -> str:
    coll = otio.schema.SerializableCollection(children=[two_scene_timeline(src),
                                                        two_scene_timeline(src)])
    return otio.adapters.write_to_string(coll)


EDIT_CASES: list[tuple[str, str, Callable[[Path], bytes], int, str]] = [
    # (id, file name, content, exit code, message)
    ("otio-truncated", "cut.otio", lambda s: _otio_text(s).encode()[:700], 2,
     "cannot read cut.otio with the otio_json adapter"),
    ("otio-garbled", "cut.otio", lambda s: b"\x00\xff{{" + _otio_text(s).encode()[9:], 2,
     "cannot read cut.otio with the otio_json adapter"),
    ("otio-newer-schema", "cut.otio",
     lambda s: json.dumps({"OTIO_SCHEMA": "Timeline.99", "name": "x"}).encode(), 2,
     "written by a newer OpenTimelineIO"),
    ("otio-clip-not-timeline", "cut.otio",
     lambda s: otio.adapters.write_to_string(otio.schema.Clip(name="c")).encode(), 2,
     "does not contain a timeline"),
    ("otio-two-timelines", "cut.otio", lambda s: _two_timelines(s).encode(), 2,
     "holds 2 timelines"),
    ("otio-empty", "cut.otio", lambda s: b"", 2, "is empty (0 bytes)"),
    ("edl-truncated-line", "cut.edl",
     lambda s: (lambda t: t[: t.index("\n* FROM CLIP NAME") - 3])(_edl_text(s)).encode(), 2,
     "cannot read cut.edl with the cmx_3600 adapter"),
    ("edl-garbled", "cut.edl", lambda s: b"TITLE: x\n001  AX V C 00:00:00:00 banana\n", 2,
     "cannot read cut.edl with the cmx_3600 adapter"),
    ("edl-empty", "cut.edl", lambda s: b"", 2, "is empty (0 bytes)"),
    ("xml-truncated", "cut.xml", lambda s: _xml_text(s).encode()[:300], 2,
     "cannot read cut.xml with the fcp_xml adapter"),
    ("xml-not-fcp", "cut.xml", lambda s: b"<html><body>a web page</body></html>", 2,
     "No top-level sequences found"),
    ("fcpxml-empty", "cut.fcpxml", lambda s: b"", 2, "is empty (0 bytes)"),
    ("aaf-garbage", "cut.aaf",
     lambda s: bytes(random.Random(7).randrange(256) for _ in range(4096)), 2,
     "cannot read cut.aaf with the AAF adapter"),
    ("aaf-truncated-header", "cut.aaf", lambda s: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(50),
     2, "cannot read cut.aaf with the AAF adapter"),
    ("otioz-not-zip", "cut.otioz", lambda s: b"PK\x03\x04 not really", 2,
     "cannot read cut.otioz with the otioz adapter"),
    ("movie-as-edit", "cut.mov", lambda s: s.read_bytes()[:1000], 2, "no OTIO adapter reads"),
]


@pytest.mark.parametrize(("name", "content", "code", "needle"),
                         [c[1:] for c in EDIT_CASES], ids=[c[0] for c in EDIT_CASES])
def test_bad_edit_files(tmp_path, source, name, content, code, needle):
    path = tmp_path / name
    path.write_bytes(content(source))
    out = tmp_path / "out.otio"
    got, err = cli("score", str(path), "-o", str(out), "--provider", "local", "--rate", "25")
    assert got == code, err
    assert needle in err and "Traceback" not in err and "unexpected" not in err
    assert not out.exists() and not (tmp_path / "out.otio.reelscore").exists()


def test_edl_without_a_rate_says_which_flag(tmp_path, source):
    path = tmp_path / "cut.edl"
    path.write_text(_edl_text(source))
    with pytest.raises(InputError, match="--rate"):
        load_edit(path)


# ------------------------------------------------------------------------------------- media


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True)


@pytest.fixture(scope="module")
def bad_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("badmedia")
    media = {"zero": d / "zero.mov", "text": d / "notes.mp4", "audio": d / "music.wav",
             "truncated": d / "cut short.mp4"}
    media["zero"].write_bytes(b"")
    media["text"].write_text("this is not a video\n" * 50)
    _ffmpeg("-f", "lavfi", "-i", "sine=d=2", str(media["audio"]))
    full = d / "full.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=d=2:s=96x64:r=25", str(full))
    media["truncated"].write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    return media


def test_media_that_is_not_video_is_listed_before_rendering(tmp_path, source, bad_media):
    items = [("clip", bad_media[k], 71, 1, 30) for k in ("zero", "text", "audio", "truncated")]
    tl = build_timeline([items + [("clip", source, 71, 1, 30)]], R, start_frame=90000)
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(edit))
    out = tmp_path / "out.otio"
    with pytest.raises(MediaError) as info:
        score_file(edit, out, ScoreSettings(min_scene_seconds=0))
    msg = str(info.value)
    assert "4 clip(s) use media that is not a readable video" in msg
    assert "zero.mov: the file is empty (0 bytes)" in msg
    assert "notes.mp4: ffmpeg cannot read it as media" in msg
    assert "music.wav: has no video stream (audio only?)" in msg
    assert "cut short.mp4: ffmpeg cannot read it as media" in msg
    assert "at 01:00:00:00" in msg and "--media-root" in msg
    assert not out.exists()
    assert list((tmp_path / "out.otio.reelscore" / "clips").iterdir()) == []  # nothing rendered


def test_network_media_is_not_read_unless_allowed(tmp_path, source, contract, monkeypatch):
    """An https:// or ftp:// target is offline by default (ffmpeg never sees a URL); with
    --allow-remote-media http(s) media is downloaded to the cache and read as a local file."""
    contract.state.files["shot.mp4"] = (source.read_bytes(), "video/mp4")
    url = f"{contract.url}/files/shot.mp4?X-Amz-Signature=abc123secret"
    tl = build_timeline([[("clip", source, 71, 5, 40)]], R, start_frame=90000)
    clip = next(iter(tl.find_clips()))
    clip.media_reference = otio.schema.ExternalReference(target_url=url)
    tl.tracks[0].append(otio.schema.Clip(
        name="ftp shot", media_reference=otio.schema.ExternalReference(
            target_url="ftp://example.com/reel/a.mov"),
        source_range=clip.source_range))
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(edit))
    loaded = load_edit(edit)
    with pytest.raises(OfflineMediaError) as info:
        plan_edit(loaded, ScoreSettings())
    msg = str(info.value)
    assert "2 clip(s) are offline" in msg and "--allow-remote-media" in msg
    assert "abc123secret" not in msg, "a presigned signature must not be shown"

    monkeypatch.setenv("REELSCORE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(OfflineMediaError) as info:
        plan_edit(loaded, ScoreSettings(allow_remote_media=True))
    msg = str(info.value)
    assert "1 clip(s) are offline" in msg and "only http(s) URLs can be downloaded" in msg
    tl.tracks[0].remove(tl.tracks[0][-1])  # drop the ftp clip
    otio.adapters.write_to_file(tl, str(edit))
    planned = plan_edit(load_edit(edit), ScoreSettings(allow_remote_media=True))
    local = planned.resolver.resolve_clip(next(iter(planned.loaded.timeline.find_clips()))).path
    assert local is not None and local.is_file() and tmp_path / "cache" in local.parents
    assert local.read_bytes() == source.read_bytes()
    assert [r.path for r in contract.state.log].count("/files/shot.mp4") == 1  # cached

    # A URL that does not answer with the file: offline, with the reason.
    clip = next(iter(tl.find_clips()))
    clip.media_reference = otio.schema.ExternalReference(target_url=f"{contract.url}/files/gone.mp4")
    otio.adapters.write_to_file(tl, str(edit))
    with pytest.raises(OfflineMediaError, match="HTTP 404"):
        plan_edit(load_edit(edit), ScoreSettings(allow_remote_media=True))


def test_awkward_file_names(tmp_path, source):
    """Spaces, unicode, quotes and a leading dash, in the media, edit, output and job folder."""
    folder = tmp_path / "my folder ü 'quoted' \"double\""
    folder.mkdir()
    media = folder / "-dash clip ü 'q' \"d\".mp4"
    media.write_bytes(source.read_bytes())
    tl = build_timeline([[("clip", media, 71, 5, 40), ("clip", media, 71, 90, 40)]], R)
    edit = folder / "-cut ü 'q'.otio"
    otio.adapters.write_to_file(tl, str(edit))
    out = folder / "-scored ü \"x\".otio"
    code, err = cli("score", "--provider", "local", "-o", str(out), "--work-dir",
                    str(folder / "-job ü"), "--", str(edit))
    assert code == 0, err
    back = otio.adapters.read_from_file(str(out))
    assert back.tracks[-1].name == "Score"
    wav = otio.url_utils.filepath_from_url(next(iter(back.tracks[-1].find_clips()))
                                           .media_reference.target_url)
    assert Path(wav).is_file() and "-job ü" in wav


# ------------------------------------------------------------------------ hostile service answers


def _members(n: int) -> list[tuple[str, object]]:
    return [(f"stem{i}.mp3", "music") for i in range(n)]


SERVICE_CASES = [
    # (id, fault, provider options, error, message, manifest status)
    ("zip-path-traversal", Fault("zip", members=[("../../escape.mp3", "music"),
                                                 ("sfx.mp3", "sfx")]), {},
     AudioError, "contains '..'", "sent"),
    ("zip-absolute-path", Fault("zip", members=[("/tmp/abs.mp3", "music"), ("sfx.mp3", "sfx")]),
     {}, AudioError, "is an absolute path", "sent"),
    ("zip-too-many-members", Fault("zip", members=_members(17)), {}, AudioError,
     "17 members; at most 16", "sent"),
    ("zip-member-too-large", Fault("zip", members=[("music.mp3", "music"), ("sfx.mp3", "sfx")]),
     {"zip_max_member_bytes": 2000}, AudioError, "(limit 2,000)", "sent"),
    ("oversized-answer", None, {"max_response_bytes": 3000}, PossiblyChargedError,
     "larger than the accepted maximum (3,000 bytes)", "possibly_charged"),
    ("html-instead-of-audio", Fault("content_type", content_type="text/html",
                                    body="<html><body>Please log in</body></html>"), {},
     PossiblyChargedError, "content type 'text/html' is not audio", "possibly_charged"),
    ("empty-answer", Fault("empty"), {}, PossiblyChargedError, "empty body", "possibly_charged"),
    ("garbage-audio", Fault("content_type", content_type="audio/mpeg",
                            body=b"\x01\x02" + bytes(random.Random(3).randrange(256)
                                                     for _ in range(3000))), {},
     AudioError, "returned for request r01 cannot be used", "unusable"),
]


@pytest.mark.parametrize(("fault", "options", "error", "needle", "status"),
                         [c[1:] for c in SERVICE_CASES], ids=[c[0] for c in SERVICE_CASES])
def test_hostile_service_answers(tmp_path, cut, contract, fault, options, error, needle, status):
    if fault is not None:
        contract.state.add(fault)
    out = tmp_path / "out.otio"
    job = tmp_path / "job"
    before = cut.read_bytes()
    with pytest.raises(error) as info:
        score_file(cut, out, ScoreSettings(provider="elevenlabs"), work_dir=job,
                   provider_config=el_config(contract, **options))
    assert needle in str(info.value)
    assert isinstance(info.value, ReelscoreError)
    assert not out.exists() and cut.read_bytes() == before
    assert not list(tmp_path.glob(".out*")), "no partial output"
    raw = job / "raw"
    assert not [p for p in raw.iterdir() if p.name.startswith(".")], "no temporary files left"
    assert not (tmp_path / "escape.mp3").exists() and not Path("/tmp/abs.mp3").exists()
    manifest = json.loads((job / "manifest.json").read_text())
    assert manifest["requests"]["r01"]["status"] == status
    if status in ("sent", "possibly_charged", "unusable"):
        # Generated (and billed) but unusable: never sent again without --resubmit.
        charges = contract.state.charges
        with pytest.raises(PossiblyChargedError, match="--resubmit"):
            score_file(cut, out, ScoreSettings(provider="elevenlabs"), work_dir=job,
                       provider_config=el_config(contract, **options))
        assert contract.state.charges == charges


# ------------------------------------------------------------------- full disk, read-only folders


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A small real filesystem (needs root and mount permission; else the test is skipped)."""
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def _fill(folder: Path, leave: int) -> None:
    """Fill *folder*'s filesystem until only about *leave* bytes are free."""
    import os

    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    if free > leave:
        with open(folder / "filler", "wb") as fh:
            fh.write(bytes(free - leave))


def test_full_disk_in_the_job_folder(tmp_path, cut):
    """The clips fit, the score WAV does not: a clear message, earlier output intact."""
    out = tmp_path / "out.otio"
    out.write_text("earlier output")
    with tmpfs(tmp_path / "small", "400k") as small:
        code, err = cli("score", str(cut), "-o", str(out), "--force", "--provider", "local",
                        "--work-dir", str(small / "job"))
        assert code == 3, err
        assert "disk full while writing" in err and "free some space" in err
        assert out.read_text() == "earlier output"
        leftovers = [p.name for p in (small / "job").rglob(".*") if p.name != ".lock"]
        assert leftovers == [], leftovers
        manifest = json.loads((small / "job" / "manifest.json").read_text())
        assert manifest["schema"] == "reelscore.manifest/1"  # still whole


def test_full_disk_when_writing_the_output(tmp_path, cut):
    with tmpfs(tmp_path / "outfs", "256k") as outfs:
        out = outfs / "out.otio"
        out.write_text("earlier output")
        _fill(outfs, 1024)
        code, err = cli("score", str(cut), "-o", str(out), "--force", "--provider", "local",
                        "--work-dir", str(tmp_path / "job"))
        assert code == 3, err
        assert f"disk full while writing {str(out)!r}" in err
        assert out.read_text() == "earlier output", "the earlier output must survive"
        assert sorted(p.name for p in outfs.iterdir()) == ["filler", "out.otio"]


def test_read_only_folders(tmp_path, cut):
    with tmpfs(tmp_path / "ro", "64k", read_only=True) as ro:
        code, err = cli("score", str(cut), "-o", str(ro / "out.otio"), "--provider", "local")
        assert code == 3 and "cannot write to the output folder" in err, err
        with pytest.raises(JobError, match="cannot create the job folder"):
            score_file(cut, tmp_path / "out.otio", ScoreSettings(), work_dir=ro / "job")
        code, err = cli("score", str(cut), "-o", str(tmp_path / "o.otio"), "--provider", "local",
                        "--work-dir", str(ro / "job"))
        assert code == 7 and "cannot create the job folder" in err and "Traceback" not in err


def test_simulated_enospc_without_mount(tmp_path, cut, monkeypatch):
    """Where mounting is impossible: ENOSPC raised by the one low-level WAV write."""
    import errno

    from reelscore import wavfile

    def full(*_a: object, **_k: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wavfile, "write_wav_to", full)
    out = tmp_path / "out.otio"
    with pytest.raises(OutputError, match="disk full while writing") as info:
        score_file(cut, out, ScoreSettings(), work_dir=tmp_path / "job")
    assert "nothing was overwritten" in str(info.value)
    assert not out.exists()
    assert not list((tmp_path / "job" / "audio").glob(".*"))


def test_unsupported_timeline_is_one_clear_error(tmp_path):
    tl = otio.schema.Timeline(tracks=[otio.schema.Track(kind=otio.schema.TrackKind.Audio)])
    edit = tmp_path / "audio only.otio"
    otio.adapters.write_to_file(tl, str(edit))
    with pytest.raises((UnsupportedError, EditReadError, InputError)):
        score_file(edit, tmp_path / "o.otio", ScoreSettings())
    assert not (tmp_path / "o.otio").exists()


class _TaskProvider:
    """A task-API provider whose task is accepted, then every status poll fails (as the real
    TaskRunner reports it: a ``task_submitted`` event, then a ServiceError)."""

    name = "taskapi"
    charges = True
    reports_upload_complete = False

    def __init__(self) -> None:
        self.calls = 0

    def preflight(self) -> None:
        return None

    def generate(self, request, out_dir, *, on_event=lambda n, d: None):
        from reelscore.errors import ServiceError

        self.calls += 1
        on_event("task_submitted", {"provider": self.name, "request_id": request.request_id,
                                    "task_id": "task_1"})
        raise ServiceError("cannot reach the proxy while polling task_1 (5 attempts)")


def test_task_accepted_then_polling_fails_is_possibly_charged(tmp_path, cut):
    """The task exists and may be billed: the next run must not submit another silently."""
    provider = _TaskProvider()
    job = tmp_path / "job"
    with pytest.raises(ReelscoreError, match="polling"):
        score_file(cut, tmp_path / "o.otio", ScoreSettings(), work_dir=job, provider=provider)
    manifest = json.loads((job / "manifest.json").read_text())
    assert manifest["requests"]["r01"]["status"] == "possibly_charged"
    with pytest.raises(PossiblyChargedError, match="--resubmit"):
        score_file(cut, tmp_path / "o.otio", ScoreSettings(), work_dir=job, provider=provider)
    assert provider.calls == 1
