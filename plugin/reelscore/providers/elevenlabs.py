"""ElevenLabs video-to-music: ``POST {base}/v1/music/video-to-music`` (reference/music_api.md §3).

Wire format (as the official SDK sends it): ``xi-api-key`` header; ``output_format`` (and
``enable_logging`` if configured) in the query; a ``multipart/form-data`` body whose form fields
come first -- ``description``, one ``tags`` part per tag, ``model_id``, ``sign_with_c2pa``,
``add_sfx``, ``separate_tracks``, ``use_audio_as_reference`` (booleans as ``true``/``false``), each
only when set -- followed by one ``videos`` file part per clip in timeline order.

The body is generated from the files on disk while it is sent (memory does not grow with clip
size) and the response is streamed to a temporary file in the job folder, then renamed.

Everything the API limits is checked before any upload. Retries follow
:mod:`reelscore.providers.http`: only when the service cannot have started generating.

Provider options (``ProviderConfig.options``):

``max_description`` (int, 1000), ``enable_logging`` (bool, unset), ``chunk_size`` (bytes, 1 MiB),
``max_response_bytes`` (2 GiB), ``zip_max_members`` (16), ``zip_max_member_bytes`` (1 GiB),
``zip_max_total_bytes`` (2 GiB), ``write_timeout_s``, ``pool_timeout_s``, ``retry_base_s``,
``retry_cap_s``, ``retry_after_cap_s``, ``concurrency_poll_s``, ``concurrency_wait_s``,
``max_concurrent_requests`` (int, unset: requests in flight shared by the jobs of one process),
``credentials_file`` (path).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets as _secrets
import stat
import struct
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from reelscore.errors import (
    AudioError,
    InputError,
    PossiblyChargedError,
    ProviderError,
    ServiceError,
)
from reelscore.fsutil import sha256_file
from reelscore.limits import (
    DEFAULT_MAX_DESCRIPTION,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_SECONDS,
    MAX_TAGS,
    MAX_VIDEOS_PER_REQUEST,
)
from reelscore.providers.base import (
    OUTPUT_FORMATS,
    EventSink,
    GeneratedAudio,
    GenerationRequest,
    GenerationSettings,
    ProviderConfig,
)
from reelscore.providers.http import (
    CONCURRENCY,
    SAFE_CONNECT,
    AttemptRecord,
    Redactor,
    Retrier,
    RetryPolicy,
    classify_retry,
    client_slot,
    error_from_response,
    is_connect_phase_error,
    make_client,
    parse_error_body,
    read_limited,
    retry_after_seconds,
    stream_response_to_file,
    transport_error_text,
    validate_base_url,
)
from reelscore.providers.secrets import load_api_key

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
ENDPOINT = "/v1/music/video-to-music"
SERVICE = "ElevenLabs"

Container = Literal["mp3", "wav", "pcm", "opus", "flac", "other"]


def _ignore(_name: str, _data: dict[str, Any]) -> None:
    return None


# ------------------------------------------------------------------------------------ validation


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB ({int(n):,} bytes)"


def validate_video_request(
    request: GenerationRequest,
    *,
    service: str,
    max_description: int = DEFAULT_MAX_DESCRIPTION,
    check_files: bool = True,
) -> list[str]:
    """Check every limit of the video-to-music API before anything is uploaded.

    Raises InputError naming the limit and the numbers; returns warnings (strings).
    """
    rid = request.request_id
    s = request.settings
    n = len(request.clips)
    plan_hint = ("the planner splits programmes into requests of at most 10 clips, 200 MB and "
                 "600 s; re-plan the job (or lower the clip bitrate)")
    if n == 0:
        raise InputError(f"request {rid} has no clips; {service} needs 1 to "
                         f"{MAX_VIDEOS_PER_REQUEST} videos")
    if n > MAX_VIDEOS_PER_REQUEST:
        raise InputError(
            f"request {rid} has {n} videos; {service} accepts at most {MAX_VIDEOS_PER_REQUEST} "
            "per request", hint=plan_hint)
    secs = request.total_seconds
    if secs > MAX_REQUEST_SECONDS + 1e-6:
        raise InputError(
            f"request {rid} is {secs:.3f} s long in {n} videos; {service} accepts at most "
            f"{MAX_REQUEST_SECONDS:.0f} s per request", hint=plan_hint)
    declared = request.total_bytes
    if declared > MAX_REQUEST_BYTES:
        raise InputError(
            f"request {rid} is {_mb(declared)} in {n} videos; {service} accepts at most "
            f"{_mb(MAX_REQUEST_BYTES)} per request", hint=plan_hint)
    if s.description is not None:
        d = s.description
        if not d.strip():
            raise InputError("the description is empty", hint="omit --description or write one")
        if len(d) > max_description:
            raise InputError(
                f"the description is {len(d)} characters; {service} accepts at most "
                f"{max_description}",
                hint="shorten --description (the limit is the provider option max_description)")
    if len(s.tags) > MAX_TAGS:
        raise InputError(f"{len(s.tags)} tags given; {service} accepts at most {MAX_TAGS}",
                         hint="drop some --tag values")
    for t in s.tags:
        if not t.strip():
            raise InputError("a tag is empty", hint="remove the empty --tag")
    if s.output_format not in OUTPUT_FORMATS:
        raise InputError(
            f"unknown output format {s.output_format!r}",
            hint="use one of: " + ", ".join(OUTPUT_FORMATS))
    if s.sign_with_c2pa and not s.output_format.startswith("mp3_"):
        raise InputError(
            f"C2PA signing works with MP3 output only, not {s.output_format!r}",
            hint="choose an mp3_* --output-format or drop --sign-c2pa")
    if s.model_id is not None and (not s.model_id.strip() or re.search(r"\s", s.model_id)):
        raise InputError(f"model id {s.model_id!r} is not valid", hint="e.g. music_v1")
    warnings: list[str] = []
    if s.seed is not None:
        warnings.append("video-to-music has no seed parameter; the seed was not sent")
    if check_files:
        actual = 0
        for i, clip in enumerate(request.clips, 1):
            try:
                st = clip.path.stat()
            except OSError as exc:
                raise InputError(
                    f"clip {i} of request {rid} ({str(clip.path)!r}) cannot be read: "
                    f"{exc.strerror}", hint="re-render the clips (run the job again)") from exc
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"clip {i} of request {rid} ({str(clip.path)!r}) is not a file")
            if clip.bytes and st.st_size != clip.bytes:
                raise InputError(
                    f"clip {i} of request {rid} ({str(clip.path)!r}) is {st.st_size:,} bytes but "
                    f"was rendered as {clip.bytes:,}; it changed since it was rendered",
                    hint="re-render the clips (delete them from the job folder and run again)")
            actual += st.st_size
        if actual > MAX_REQUEST_BYTES:
            raise InputError(
                f"request {rid} is {_mb(actual)} on disk in {n} videos; {service} accepts at "
                f"most {_mb(MAX_REQUEST_BYTES)} per request", hint=plan_hint)
    return warnings


def form_fields(settings: GenerationSettings) -> list[tuple[str, str]]:
    """The form fields, in wire order, each only when set."""
    def b(v: bool) -> str:
        return "true" if v else "false"

    out: list[tuple[str, str]] = []
    if settings.description is not None:
        out.append(("description", settings.description))
    out.extend(("tags", t) for t in settings.tags)
    if settings.model_id is not None:
        out.append(("model_id", settings.model_id))
    for name in ("sign_with_c2pa", "add_sfx", "separate_tracks", "use_audio_as_reference"):
        v = getattr(settings, name)
        if v is not None:
            out.append((name, b(v)))
    return out


# ------------------------------------------------------------------------- streaming multipart


_CONTENT_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
                  ".webm": "video/webm", ".mkv": "video/x-matroska"}


def _safe_filename(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "clip.mp4"
    return clean[:120]


@dataclass
class _FilePart:
    path: Path
    size: int


class MultipartBody:
    """A ``multipart/form-data`` body generated while it is sent, with an exact Content-Length.

    Files are read in *chunk_size* pieces when the transport asks for them; ``sent`` counts the
    bytes handed to the transport and ``done`` becomes true once the last byte was handed over
    (the point after which the service may start generating).
    """

    def __init__(
        self,
        fields: list[tuple[str, str]],
        files: list[tuple[str, Path, str, str]],  # (field, path, filename, content type)
        *,
        chunk_size: int = 1 << 20,
        boundary: str | None = None,
        on_last: Callable[[], None] | None = None,
    ) -> None:
        self.boundary = boundary or "reelscore-" + _secrets.token_hex(16)
        self.chunk_size = chunk_size
        # Called just before the last bytes are handed over: until then the service cannot hold
        # the whole request, so it cannot have started (or charged) a generation.
        self.on_last = on_last
        self.sent = 0
        self.done = False
        segs: list[bytes | _FilePart] = []
        b = self.boundary.encode()
        for name, value in fields:
            segs.append(
                b"--" + b + b"\r\n"
                + f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                + value.encode("utf-8") + b"\r\n"
            )
        for name, path, filename, ctype in files:
            segs.append(
                b"--" + b + b"\r\n"
                + f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  f"Content-Type: {ctype}\r\n\r\n".encode()
            )
            segs.append(_FilePart(path, path.stat().st_size))
            segs.append(b"\r\n")
        segs.append(b"--" + b + b"--\r\n")
        self._segments = segs
        self.length = sum(len(s) if isinstance(s, bytes) else s.size for s in segs)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __iter__(self) -> Iterator[bytes]:
        for i, seg in enumerate(self._segments):
            if isinstance(seg, bytes):
                if i == len(self._segments) - 1 and self.on_last is not None:
                    self.on_last()
                self.sent += len(seg)
                yield seg
                continue
            remaining = seg.size
            with open(seg.path, "rb") as fh:
                while remaining > 0:
                    chunk = fh.read(min(self.chunk_size, remaining))
                    if not chunk:
                        raise InputError(
                            f"clip {str(seg.path)!r} shrank while it was being uploaded",
                            hint="do not modify the job folder while a job runs")
                    remaining -= len(chunk)
                    self.sent += len(chunk)
                    yield chunk
        self.done = True


# ---------------------------------------------------------------------------- output handling

_PCM = re.compile(r"^pcm_(\d+)$")


def sniff_container(head: bytes) -> str | None:
    """The container of an audio file from its first bytes (None = unknown)."""
    if head.startswith(b"ID3"):
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "mp3"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"OggS"):
        return "opus"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    return None


def _looks_like_text(head: bytes) -> bool:
    stripped = head.lstrip()[:1]
    return stripped in (b"{", b"[", b"<")


def describe_audio(path: Path, output_format: str) -> tuple[Container, dict[str, Any]]:
    """(container, extra fields) for a downloaded file; headerless PCM gets its rate and layout."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    sniffed = sniff_container(head)
    extra: dict[str, Any] = {}
    m = _PCM.match(output_format)
    if sniffed in ("mp3", "wav", "opus", "flac"):
        return sniffed, extra  # type: ignore[return-value]
    if m:
        extra.update(pcm_sample_rate=int(m.group(1)), pcm_channels=1, pcm_sample_format="s16le")
        return "pcm", extra
    if output_format in ("ulaw_8000", "alaw_8000"):
        extra.update(raw_format="mulaw" if output_format.startswith("ulaw") else "alaw",
                     raw_sample_rate=8000, raw_channels=1)
        return "other", extra
    return "other", extra


_EXT = {"mp3": "mp3", "wav": "wav", "pcm": "pcm", "opus": "ogg", "flac": "flac", "other": "bin"}


def expected_content_types(settings: GenerationSettings) -> tuple[str, ...]:
    return ("audio/", "application/octet-stream", "application/zip",
            "application/x-zip-compressed", "application/ogg", "binary/octet-stream")


_TEXTUAL = ("text/", "application/json", "application/problem+json", "application/xml",
            "application/xhtml+xml", "application/javascript")


def content_type_problem(content_type: str, settings: GenerationSettings) -> str | None:
    ct = content_type.split(";")[0].strip().lower()
    if not ct:
        return None
    if any(ct.startswith(t) for t in _TEXTUAL):
        return f"content type {ct!r} is not audio"
    if not any(ct.startswith(t) for t in expected_content_types(settings)):
        return f"unexpected content type {ct!r}"
    return None


def id3_has_c2pa(path: Path) -> bool:
    """Whether an MP3's ID3v2 tag carries a C2PA manifest (a GEOB frame with a c2pa MIME type)."""
    try:
        with open(path, "rb") as fh:
            hdr = fh.read(10)
            if len(hdr) < 10 or not hdr.startswith(b"ID3"):
                return False
            size = 0
            for byte in hdr[6:10]:
                size = (size << 7) | (byte & 0x7F)
            tag = fh.read(min(size, 16 * 1024 * 1024))
    except OSError:
        return False
    major = hdr[3]
    pos = 0
    while pos + 10 <= len(tag):
        fid = tag[pos:pos + 4]
        if fid == b"\x00\x00\x00\x00":
            break
        if major >= 4:
            fsize = 0
            for byte in tag[pos + 4:pos + 8]:
                fsize = (fsize << 7) | (byte & 0x7F)
        else:
            fsize = struct.unpack(">I", tag[pos + 4:pos + 8])[0]
        body = tag[pos + 10:pos + 10 + fsize]
        if fid == b"GEOB" and b"c2pa" in body[:200].lower():
            return True
        pos += 10 + fsize
    return False


# ------------------------------------------------------------------------------------ ZIP output


@dataclass
class ZipLimits:
    max_members: int = 16
    max_member_bytes: int = 1 << 30
    max_total_bytes: int = 2 << 30
    max_ratio: float = 1000.0


@dataclass
class ZipMember:
    name: str
    role: str  # music | sfx | other
    path: Path | None = None
    bytes: int = 0
    container: str = "other"


_SFX_WORDS = re.compile(r"(?i)(sfx|sound[_ -]?effects?|effects?|foley|fx)")
_MUSIC_WORDS = re.compile(r"(?i)(music|score|song|instrumental|bgm|soundtrack|mix)")
_AUDIO_EXT = {".mp3", ".wav", ".pcm", ".ogg", ".opus", ".flac", ".raw", ".bin", ".ulaw", ".alaw"}


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\x00" in name:
        return "contains a NUL byte"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return "is an absolute path"
    if any(part == ".." for part in norm.split("/")):
        return "contains '..'"
    mode = (info.external_attr >> 16) & 0xFFFF
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def safe_extract_audio_zip(
    zip_path: Path, out_dir: Path, stem: str, limits: ZipLimits
) -> list[ZipMember]:
    """Extract the audio members of a separate_tracks ZIP to ``{stem}.{role}.{ext}`` in out_dir.

    The member names are only used to classify them (music / sfx); files are written under names
    we choose, so nothing can land outside *out_dir*. Unsafe archives are refused whole.
    """
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise AudioError(f"the separate-tracks answer {str(zip_path)!r} is not a valid ZIP: {exc}",
                         hint="the raw answer is kept; report it to the service") from exc
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(zf.infolist()) > limits.max_members:
            raise AudioError(
                f"the separate-tracks ZIP has {len(zf.infolist())} members; at most "
                f"{limits.max_members} are accepted", hint=f"the raw answer is kept at {zip_path}")
        declared = 0
        for info in zf.infolist():
            why = _unsafe_reason(info)
            if why:
                raise AudioError(
                    f"refusing the separate-tracks ZIP: member {info.filename!r} {why}; "
                    "nothing was extracted", hint=f"the raw answer is kept at {zip_path}")
            if info.file_size > limits.max_member_bytes:
                raise AudioError(
                    f"refusing the separate-tracks ZIP: member {info.filename!r} is "
                    f"{info.file_size:,} bytes (limit {limits.max_member_bytes:,})",
                    hint=f"the raw answer is kept at {zip_path}")
            if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
                raise AudioError(
                    f"refusing the separate-tracks ZIP: member {info.filename!r} expands "
                    f"{info.file_size / info.compress_size:.0f}x (a ZIP bomb?)",
                    hint=f"the raw answer is kept at {zip_path}")
            declared += info.file_size
        if declared > limits.max_total_bytes:
            raise AudioError(
                f"refusing the separate-tracks ZIP: {declared:,} bytes unpacked (limit "
                f"{limits.max_total_bytes:,})", hint=f"the raw answer is kept at {zip_path}")
        audio = [i for i in infos if Path(i.filename.replace("\\", "/")).suffix.lower()
                 in _AUDIO_EXT or not Path(i.filename).suffix]
        if not audio:
            raise AudioError(
                "the separate-tracks ZIP holds no audio member ("
                + ", ".join(repr(i.filename) for i in infos) + ")",
                hint=f"the raw answer is kept at {zip_path}")
        members = [ZipMember(name=i.filename, role=_classify(i.filename)) for i in audio]
        _resolve_roles(members)
        written: list[Path] = []
        total = 0
        try:
            for info, member in zip(audio, members, strict=True):
                if member.role == "other":
                    continue
                suffix = Path(info.filename).suffix.lower() or ".bin"
                dest = out_dir / f"{stem}.{member.role}{suffix}"
                fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=out_dir)
                n = 0
                try:
                    with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                        while block := src.read(1 << 20):
                            n += len(block)
                            total += len(block)
                            if n > limits.max_member_bytes or total > limits.max_total_bytes:
                                raise AudioError(
                                    f"refusing the separate-tracks ZIP: member "
                                    f"{info.filename!r} unpacks past the size limit",
                                    hint=f"the raw answer is kept at {zip_path}")
                            out.write(block)
                    os.replace(tmp, dest)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
                written.append(dest)
                member.path = dest
                member.bytes = n
                with open(dest, "rb") as fh:
                    member.container = sniff_container(fh.read(64)) or "other"
        except BaseException:
            for p in written:
                with contextlib.suppress(OSError):
                    p.unlink()
            raise
    return members


def _classify(name: str) -> str:
    base = Path(name.replace("\\", "/")).name
    if _SFX_WORDS.search(base):
        return "sfx"
    if _MUSIC_WORDS.search(base):
        return "music"
    return "other"


def _resolve_roles(members: list[ZipMember]) -> None:
    """Unnamed members: one leftover next to an identified one takes the other role; else order."""
    roles = [m.role for m in members]
    if roles.count("music") > 1 or roles.count("sfx") > 1:
        names = ", ".join(repr(m.name) for m in members)
        raise AudioError(f"cannot tell music from SFX in the separate-tracks ZIP ({names})",
                         hint="the raw answer is kept next to the job's other results")
    unknown = [m for m in members if m.role == "other"]
    if not unknown:
        return
    if "music" not in roles:
        unknown.pop(0).role = "music"
    if unknown and "sfx" not in [m.role for m in members]:
        unknown.pop(0).role = "sfx"


# -------------------------------------------------------------------------------------- provider


@dataclass
class _Outcome:
    audio: GeneratedAudio | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)


class ElevenLabsProvider:
    """The ElevenLabs video-to-music API (or a compatible host given with ``--base-url``)."""

    name = "elevenlabs"
    charges = True
    # Emits "upload_complete" just before the last byte of a request body is sent, so the job
    # can tell an upload that never completed (safe to resend) from a request that may be charged.
    reports_upload_complete = True

    def __init__(self, config: ProviderConfig, *, transport: httpx.BaseTransport | None = None,
                 sleep: Any = time.sleep) -> None:
        self.config = config
        self.base_url = validate_base_url(config.base_url or DEFAULT_BASE_URL,
                                          allow_insecure=config.allow_insecure)
        self._transport = transport
        self._sleep = sleep
        self._key: SecretStr | None = None
        self._key_source = "the API key"
        self.redactor = Redactor()
        if config.api_key is not None:
            self.redactor.add(config.api_key.get_secret_value())
        o = config.options
        self.max_description = int(o.get("max_description", DEFAULT_MAX_DESCRIPTION))
        self.chunk_size = int(o.get("chunk_size", 1 << 20))
        self.max_response_bytes = int(o.get("max_response_bytes", 2 << 30))
        self.zip_limits = ZipLimits(
            max_members=int(o.get("zip_max_members", 16)),
            max_member_bytes=int(o.get("zip_max_member_bytes", 1 << 30)),
            max_total_bytes=int(o.get("zip_max_total_bytes", 2 << 30)),
        )

    # -- key --------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Load the key now (call before rendering so a missing key fails early)."""
        self._api_key()

    def _api_key(self) -> SecretStr:
        if self._key is None:
            cred = self.config.options.get("credentials_file")
            key, source = load_api_key(
                self.name, explicit=self.config.api_key,
                credentials_file=Path(cred) if cred else None)
            self.redactor.add(key.get_secret_value())
            self._key, self._key_source = key, f"the API key from {source}"
        return self._key

    # -- generate -----------------------------------------------------------------------------
    def generate(
        self, request: GenerationRequest, out_dir: Path, *, on_event: EventSink = _ignore
    ) -> GeneratedAudio:
        settings = request.settings
        warnings = validate_video_request(request, service=SERVICE,
                                          max_description=self.max_description)
        key = self._api_key()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        red = self.redactor

        def emit(name: str, data: dict[str, Any]) -> None:
            safe = red.obj(data)
            log.debug("%s %s", name, safe)
            on_event(name, safe)

        fields = form_fields(settings)
        files = [("videos", c.path, _safe_filename(c.path.name),
                  _CONTENT_TYPES.get(c.path.suffix.lower(), "video/mp4")) for c in request.clips]
        params: dict[str, str] = {"output_format": settings.output_format}
        if "enable_logging" in self.config.options:
            params["enable_logging"] = "true" if self.config.options["enable_logging"] else "false"
        url = self.base_url + ENDPOINT
        for w in warnings:
            emit("warning", {"request_id": request.request_id, "message": w})
        emit("request", {
            "provider": self.name, "request_id": request.request_id, "url": url,
            "query": params, "fields": [n for n, _ in fields],
            "videos": [f[2] for f in files], "video_count": len(files),
            "bytes": sum(c.path.stat().st_size for c in request.clips),
            "seconds": round(request.total_seconds, 6),
            "allow_resubmit": self.config.allow_resubmit,
        })
        retrier = Retrier(RetryPolicy.from_config(self.config), sleep=self._sleep)
        attempt = 0
        slot = client_slot(self.base_url, self.config.options.get("max_concurrent_requests"))
        with slot, make_client(self.config, headers={"xi-api-key": key.get_secret_value()},
                               transport=self._transport) as client:
            while True:
                attempt += 1
                done_event = {"provider": self.name, "request_id": request.request_id,
                              "attempt": attempt}
                body = MultipartBody(fields, files, chunk_size=self.chunk_size,
                                     on_last=partial(emit, "upload_complete", done_event))
                rec = AttemptRecord(provider=self.name, request_id=request.request_id,
                                    attempt=attempt, method="POST", url=url,
                                    purpose="generate", request_bytes_total=body.length)
                result = self._attempt(client, url, params, body, rec, retrier, request,
                                       out_dir, emit)
                if result is not None:
                    result.metadata["attempts"] = attempt
                    result.metadata["warnings"] = warnings + result.metadata.get("warnings", [])
                    return result

    def _attempt(self, client: httpx.Client, url: str, params: dict[str, str],
                 body: MultipartBody, rec: AttemptRecord, retrier: Retrier,
                 request: GenerationRequest, out_dir: Path, emit: Any) -> GeneratedAudio | None:
        """One attempt. Returns the audio, None to retry (after sleeping), or raises."""
        red = self.redactor
        headers = {"Content-Type": body.content_type, "Content-Length": str(body.length)}
        tmp_path: Path | None = None
        try:
            with client.stream("POST", url, params=params, content=body,
                               headers=headers) as resp:
                rec.headers_received()
                rec.status = resp.status_code
                rec.request_bytes = body.sent
                rec.body_sent = body.done
                rec.content_type = resp.headers.get("content-type")
                rec.capture_ids(resp.headers)
                if resp.status_code >= 400 or resp.status_code < 200 or resp.status_code >= 300:
                    self._error_response(resp, rec, retrier, body, emit)
                    return None
                problem = content_type_problem(resp.headers.get("content-type", ""),
                                               request.settings)
                if problem and problem.endswith("is not audio"):
                    raw = read_limited(resp, 2048)
                    rec.response_bytes = len(raw)
                    snippet = red.text(raw[:200].decode("utf-8", "replace"))
                    raise self._charged(
                        rec, emit,
                        f"{SERVICE} answered 200 but with {problem} ({len(raw)} bytes read: "
                        f"{snippet!r})",
                        "check --base-url (a proxy or login page may have answered); the "
                        "service may still have charged a generation: check the account's "
                        "history, then rerun with --resubmit to generate (and pay) again")
                fd, tmp_name = tempfile.mkstemp(prefix=f".{request.request_id}.",
                                                suffix=".download", dir=out_dir)
                tmp_path = Path(tmp_name)
                with os.fdopen(fd, "wb") as fh:
                    try:
                        stream_response_to_file(resp, fh, rec, max_bytes=self.max_response_bytes,
                                                chunk_size=self.chunk_size)
                    except ServiceError as exc:  # too large: generated (and charged), refused
                        raise self._charged(
                            rec, emit, exc.message + "; the service has most likely charged "
                            "this generation", (exc.hint or "") + ", then rerun with --resubmit "
                            "to generate (and pay) again") from None
                    fh.flush()
                    os.fsync(fh.fileno())
            rec.finish()
            if rec.response_bytes == 0:
                raise self._charged(
                    rec, emit, f"{SERVICE} answered 200 with an empty body (0 bytes of audio)",
                    "the service may have charged this generation; check the account's history, "
                    "then rerun with --resubmit to generate (and pay) again")
            if problem:
                rec.extra["warning"] = problem
            emit("attempt", rec.event(red))
            audio = self._finish(tmp_path, rec, request, out_dir, emit)
            tmp_path = None
            return audio
        except httpx.TransportError as exc:
            rec.finish()
            rec.request_bytes = max(rec.request_bytes, body.sent)
            rec.body_sent = body.done
            rec.error = red.text(transport_error_text(exc))
            if rec.status is not None:
                # Headers arrived (2xx): the download broke. The generation has happened.
                raise self._charged(
                    rec, emit,
                    f"the download of the generated audio broke after {rec.response_bytes:,} "
                    f"bytes ({rec.error}); the service has most likely charged this generation",
                    "the partial file was discarded; rerun with --resubmit to generate (and pay) "
                    "again, or wait and retry later with --resubmit") from None
            if is_connect_phase_error(exc) or not body.done:
                decision = retrier.decide(SAFE_CONNECT)
                rec.retry_reason = SAFE_CONNECT
                if decision.retry:
                    rec.retry, rec.retry_delay_s = "retry", decision.delay_s
                    emit("attempt", rec.event(red))
                    self._sleep(decision.delay_s)
                    return None
                rec.retry = "give_up"
                emit("attempt", rec.event(red))
                raise ServiceError(
                    f"could not send the request to {SERVICE} at {self.base_url} "
                    f"({rec.error}; {rec.attempt} attempts, {body.sent:,} of {body.length:,} "
                    f"bytes sent in the last one); nothing was generated",
                    hint="check the network / --base-url and run again", retryable=True,
                ) from None
            what = ("no answer within the read timeout of "
                    f"{self.config.read_timeout_s:g} s" if isinstance(exc, httpx.ReadTimeout)
                    else f"the connection broke ({rec.error})")
            raise self._charged(
                rec, emit,
                f"the whole request ({body.length:,} bytes) was sent to {SERVICE} but {what}; "
                "the service may be generating (and charging) this request",
                "wait a few minutes and check the account's history; rerun with --resubmit to "
                "generate (and pay) again" + (
                    "; raise the read timeout (--read-timeout) for long programmes"
                    if isinstance(exc, httpx.ReadTimeout) else "")) from None
        finally:
            if tmp_path is not None:
                with contextlib.suppress(OSError):
                    tmp_path.unlink()

    def _charged(self, rec: AttemptRecord, emit: Any, message: str, hint: str
                 ) -> PossiblyChargedError:
        rec.retry = "possibly_charged"
        if rec.elapsed_s is None:
            rec.finish()
        emit("attempt", rec.event(self.redactor))
        emit("possibly_charged", {"provider": self.name, "request_id": rec.request_id,
                                  "attempt": rec.attempt, "status": rec.status,
                                  "reason": self.redactor.text(message),
                                  "request_bytes": rec.request_bytes, "ids": dict(rec.ids)})
        return PossiblyChargedError(self.redactor.text(message), hint=hint,
                                    status_code=rec.status)

    def _error_response(self, resp: httpx.Response, rec: AttemptRecord, retrier: Retrier,
                        body: MultipartBody, emit: Any) -> None:
        red = self.redactor
        raw = read_limited(resp)
        rec.response_bytes = len(raw)
        rec.finish()
        if 300 <= resp.status_code < 400:
            rec.error = f"redirect to {resp.headers.get('location', '?')}"
            emit("attempt", rec.event(red))
            raise ProviderError(
                f"{SERVICE} answered {resp.status_code} (a redirect to "
                f"{red.text(resp.headers.get('location', '?'))}); redirects are not followed "
                "so the key is not sent elsewhere",
                hint="set --base-url to the final host", status_code=resp.status_code)
        info = parse_error_body(resp.status_code, raw, resp.headers.get("content-type", ""))
        rec.error = red.text(info.summary())
        rec.error_code = info.code
        rec.extra["error_shape"] = info.shape
        kind = classify_retry(info)
        if kind is not None:
            ra = retry_after_seconds(resp.headers)
            if ra is None:
                ra = info.retry_after_s
            decision = retrier.decide(kind, ra)
            rec.retry_reason = kind
            if decision.retry:
                rec.retry, rec.retry_delay_s = "retry", decision.delay_s
                rec.extra["retry_note"] = decision.note
                emit("attempt", rec.event(red))
                self._sleep(decision.delay_s)
                return None
            rec.retry = "give_up"
            rec.extra["retry_note"] = decision.note
        exc = error_from_response(info, service=SERVICE, key_source=self._key_source,
                                  body_sent=body.done, redactor=red)
        if kind is not None:
            exc.message += f" ({rec.attempt} attempts; {rec.extra.get('retry_note', '')})"
            if kind == CONCURRENCY:
                exc.message += (f"; waited {retrier.concurrency_waited_s:.0f} s for a slot")
        if isinstance(exc, PossiblyChargedError):
            raise self._charged(rec, emit, exc.message, exc.hint or "")
        emit("attempt", rec.event(red))
        raise exc

    def _finish(self, tmp_path: Path | None, rec: AttemptRecord, request: GenerationRequest,
                out_dir: Path, emit: Any) -> GeneratedAudio:
        assert tmp_path is not None
        audio = finalize_audio(tmp_path, out_dir=out_dir, request=request, provider=self.name,
                               content_type=rec.content_type, ids=dict(rec.ids),
                               redactor=self.redactor, emit=emit, attempts=rec.attempt,
                               zip_limits=self.zip_limits)
        audio.metadata.update(endpoint=ENDPOINT, request_bytes=rec.request_bytes,
                              response_bytes=rec.response_bytes, elapsed_s=rec.elapsed_s)
        return audio


def finalize_audio(
    tmp_path: Path,
    *,
    out_dir: Path,
    request: GenerationRequest,
    provider: str,
    content_type: str | None,
    ids: dict[str, Any],
    redactor: Redactor,
    emit: Any,
    attempts: int,
    zip_limits: ZipLimits | None = None,
) -> GeneratedAudio:
    """Move a downloaded answer into place as ``{request_id}.{ext}`` and describe it.

    Recognises MP3 / WAV / Ogg-Opus / FLAC / headerless PCM (rate from the format name) / ZIP of
    separate tracks (extracted safely); keeps a C2PA-signed original untouched (read-only).
    """
    s = request.settings
    rid = request.request_id
    with open(tmp_path, "rb") as fh:
        head = fh.read(64)
    sniffed = sniff_container(head)
    warnings: list[str] = []
    song_id = ids.get("song-id") or ids.get("song_id")
    meta: dict[str, Any] = {"output_format": s.output_format, "content_type": content_type,
                            "song_id": song_id}
    sfx_path: Path | None = None
    if sniffed == "zip":
        zip_final = out_dir / f"{rid}.zip"
        os.replace(tmp_path, zip_final)
        members = safe_extract_audio_zip(zip_final, out_dir, rid, zip_limits or ZipLimits())
        music = next((m for m in members if m.role == "music"), None)
        sfx = next((m for m in members if m.role == "sfx"), None)
        if music is None or music.path is None:
            raise AudioError("the separate-tracks ZIP has no music member",
                             hint=f"the raw answer is kept at {zip_final}")
        container, extra = describe_audio(music.path, s.output_format)
        meta.update(extra)
        meta["zip_original"] = str(zip_final)
        meta["zip_sha256"] = sha256_file(zip_final)
        meta["zip_members"] = [{"name": m.name, "role": m.role, "bytes": m.bytes,
                                "container": m.container,
                                "path": str(m.path) if m.path else None} for m in members]
        if sfx is not None and sfx.path is not None:
            meta["sfx_container"] = describe_audio(sfx.path, s.output_format)[0]
            sfx_path = sfx.path
        if not s.separate_tracks:
            warnings.append("the service answered a ZIP although separate_tracks was not set")
        final = music.path
    else:
        if s.separate_tracks:
            warnings.append("separate_tracks was set but the answer is a single audio file; "
                            "it is used as the music track and there is no SFX track")
        if sniffed is None and _looks_like_text(head):
            emit("possibly_charged", {"provider": provider, "request_id": rid,
                                      "reason": "answer is text, not audio"})
            raise PossiblyChargedError(
                f"the service answered 200 with text, not audio "
                f"({redactor.text(head[:60].decode('utf-8', 'replace'))!r})",
                hint="check --base-url; the service may have charged the generation: rerun "
                "with --resubmit once fixed")
        container, extra = describe_audio(tmp_path, s.output_format)
        if sniffed is None and container == "other":
            warnings.append("the audio format could not be recognised from its first bytes")
        meta.update(extra)
        final = out_dir / f"{rid}.{_EXT[container]}"
        os.replace(tmp_path, final)
    meta["sha256"] = sha256_file(final)
    meta["bytes"] = final.stat().st_size
    if s.sign_with_c2pa:
        # The signed file is the service's answer as received; any edit (loudness, conform)
        # breaks the signature, so it is kept read-only and the pipeline works on a copy.
        meta["signed_original"] = str(final)
        meta["signed_original_sha256"] = meta["sha256"]
        meta["c2pa_manifest_found"] = id3_has_c2pa(final)
        if not meta["c2pa_manifest_found"]:
            warnings.append("sign_with_c2pa was set but no C2PA manifest was found in the "
                            "MP3's ID3 tag")
        with contextlib.suppress(OSError):
            final.chmod(0o444)
    meta["warnings"] = warnings
    pcm_rate = meta.pop("pcm_sample_rate", None)
    audio = GeneratedAudio(path=final, container=container, pcm_sample_rate=pcm_rate,
                           sfx_path=sfx_path, provider=provider, model=s.model_id,
                           metadata=meta)
    for w in warnings:
        emit("warning", {"request_id": rid, "message": w})
    emit("result", {"provider": provider, "request_id": rid, "path": str(final),
                    "container": container, "pcm_sample_rate": pcm_rate,
                    "sfx_path": str(sfx_path) if sfx_path else None,
                    "bytes": meta["bytes"], "sha256": meta["sha256"],
                    "song_id": song_id, "attempts": attempts})
    return audio


__all__ = [
    "DEFAULT_BASE_URL",
    "ElevenLabsProvider",
    "MultipartBody",
    "ZipLimits",
    "describe_audio",
    "finalize_audio",
    "form_fields",
    "id3_has_c2pa",
    "safe_extract_audio_zip",
    "sniff_container",
    "validate_video_request",
]
