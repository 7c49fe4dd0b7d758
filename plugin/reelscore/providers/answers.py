"""What a music service answered: audio recognised from its bytes, ZIPs opened safely, C2PA kept.

* :func:`sniff_container` / :func:`describe_audio`: MP3, WAV, Ogg-Opus, FLAC, headerless PCM (rate
  from the format name), mu-law/A-law; :func:`content_type_problem` flags a text answer.
* :func:`safe_extract_audio_zip`: a ``separate_tracks`` ZIP is extracted under names we choose,
  with member-count, size and ratio limits; unsafe archives are refused whole.
* :func:`id3_has_c2pa`: whether an MP3 carries a C2PA manifest; a signed answer is kept untouched.
* :func:`finalize_audio`: moves a downloaded answer into place and describes it
  (:class:`~reelscore.providers.base.GeneratedAudio`), for every network provider.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reelscore.errors import AudioError, PossiblyChargedError
from reelscore.fsutil import sha256_file
from reelscore.providers.base import (
    EventSink,
    GeneratedAudio,
    GenerationRequest,
    GenerationSettings,
)
from reelscore.providers.redact import Redactor

Container = Literal["mp3", "wav", "pcm", "opus", "flac", "other"]

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


def finalize_audio(
    tmp_path: Path,
    *,
    out_dir: Path,
    request: GenerationRequest,
    provider: str,
    content_type: str | None,
    ids: dict[str, Any],
    redactor: Redactor,
    emit: EventSink,
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
