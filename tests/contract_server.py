"""A contract server for the music APIs, on 127.0.0.1, for tests and benchmarks.

It implements, as documented in shared/reference/music_api.md:

* ElevenLabs ``POST /v1/music/video-to-music`` -- strict: ``xi-api-key``; multipart with form
  fields ``description``, ``tags`` (repeated), ``model_id`` and the booleans as ``true``/``false``
  (anything else is a 422 in FastAPI's ``detail`` list shape); ``videos`` file parts; the query's
  ``output_format`` from the allowed list; limits 10 videos / 200 MB / 600 s. The uploaded MP4s are
  parsed (``moov/mvhd``) for their durations and the answer is audio whose length is the total
  duration plus a configurable drift, in the requested format: a distinct tone per video and a
  click at every video boundary so alignment can be measured. ``song-id`` header.
* the mountsea-style task proxy: ``POST /eleven/video-to-music`` (JSON, ``Authorization: Bearer``,
  ``videoUrls`` fetched from their public URLs), ``GET /eleven/tasks?taskId=``, and the resulting
  file under ``/files/``.

Faults are queued per path (:class:`Fault`): any status with any body shape and headers, a slow
first byte, a drop in the middle of the upload or the download, a wrong content type, an empty
body, a ZIP with chosen members. ``charges`` counts generations the service would bill.

Run standalone: ``python tests/contract_server.py --port 8765``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

try:
    from tests import contract_music
except ImportError:  # run standalone from tests/
    import contract_music  # type: ignore[no-redef]

OUTPUT_FORMATS = (
    "mp3_22050_32", "mp3_24000_48", "mp3_44100_32", "mp3_44100_64", "mp3_44100_96",
    "mp3_44100_128", "mp3_44100_192",
    "pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_32000", "pcm_44100", "pcm_48000",
    "ulaw_8000", "alaw_8000",
    "opus_48000_32", "opus_48000_64", "opus_48000_96", "opus_48000_128", "opus_48000_192",
)
BOOL_FIELDS = ("sign_with_c2pa", "add_sfx", "separate_tracks", "use_audio_as_reference")
TEXT_FIELDS = ("description", "model_id")
MODELS = ("music_v1", "music_v2", "music_v2_5")
MAX_VIDEOS = 10
# The proxy's /eleven/music body (reference §11) -> the /v1/music field it stands for ("" = none).
MS_COMPOSE = {"prompt": "", "compositionPlan": "composition_plan", "musicLengthMs": "",
              "model": "", "detailed": "", "seed": "seed", "forceInstrumental": "",
              "respectSectionsDurations": "respect_sections_durations", "outputFormat": "",
              "storeForInpainting": "store_for_inpainting", "signWithC2pa": "sign_with_c2pa"}
MAX_BYTES = 200 * 1000 * 1000
MAX_SECONDS = 600.0

V2M = "/v1/music/video-to-music"


# ------------------------------------------------------------------------------------ MP4 / audio


def mp4_duration(path: Path) -> float | None:
    """Duration from the ``moov/mvhd`` box (seeks over ``mdat``; moov may be at the end)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        pos = 0
        while pos + 8 <= size:
            fh.seek(pos)
            hdr = fh.read(8)
            if len(hdr) < 8:
                return None
            box_size, kind = struct.unpack(">I4s", hdr)
            header = 8
            if box_size == 1:
                box_size = struct.unpack(">Q", fh.read(8))[0]
                header = 16
            elif box_size == 0:
                box_size = size - pos
            if box_size < header:
                return None
            if kind == b"moov":
                data = fh.read(min(box_size - header, 64 << 20))
                return _mvhd(data)
            pos += box_size
    return None


def _mvhd(moov: bytes) -> float | None:
    pos = 0
    while pos + 8 <= len(moov):
        box_size, kind = struct.unpack(">I4s", moov[pos:pos + 8])
        if box_size < 8:
            return None
        if kind == b"mvhd":
            body = moov[pos + 8:pos + box_size]
            version = body[0]
            if version == 1:
                timescale, duration = struct.unpack(">IQ", body[20:32])
            else:
                timescale, duration = struct.unpack(">II", body[12:20])
            return duration / timescale if timescale else None
        pos += box_size
    return None


def pad_mp4(src: Path, dst: Path, total_bytes: int) -> None:
    """Copy an MP4 and append a ``free`` box so the file is *total_bytes* long (still valid)."""
    shutil.copyfile(src, dst)
    pad = total_bytes - src.stat().st_size
    if pad < 16:
        return
    with open(dst, "ab") as fh:
        fh.write(struct.pack(">I4sQ", 1, b"free", pad))
        remaining = pad - 16
        block = bytes(1 << 20)
        while remaining > 0:
            n = min(len(block), remaining)
            fh.write(block[:n])
            remaining -= n


def tone_of(index: int) -> float:
    """The tone (Hz) of the index-th video of a request."""
    return 300.0 + 150.0 * index


def synth(durations: list[float], drift_s: float, rate: int, *, music: bool = True,
          clicks: bool = True) -> np.ndarray:
    """Mono float32: tone per video, a 2 ms click at each video start; *drift_s* appended."""
    total = max(0.0, sum(durations) + drift_s)
    n = round(total * rate)
    out = np.zeros(n, dtype=np.float32)
    t0 = 0.0
    for i, d in enumerate(durations):
        a, b = round(t0 * rate), round((t0 + d) * rate)
        if i == len(durations) - 1:
            b = n
        b = min(b, n)
        if music and b > a:
            t = np.arange(b - a, dtype=np.float64) / rate
            out[a:b] += (0.25 * np.sin(2 * math.pi * tone_of(i) * t)).astype(np.float32)
        if clicks and a < n:
            out[a:min(n, a + max(1, rate // 500))] = 0.9
        t0 += d
    return out


def encode(samples: np.ndarray, rate: int, fmt: str, *, pcm_wav: bool = False) -> bytes:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    if fmt.startswith("pcm_"):
        if not pcm_wav:
            return pcm
        return _wav(pcm, rate)
    from reelscore.ffmpeg_cli import ffmpeg_exe

    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "s16le",
            "-ar", str(rate), "-ac", "1", "-i", "pipe:0", "-map_metadata", "-1"]
    if fmt.startswith("mp3_"):
        kbps = fmt.split("_")[2]
        args += ["-c:a", "libmp3lame", "-b:a", f"{kbps}k", "-id3v2_version", "0",
                 "-write_xing", "0", "-f", "mp3"]
    elif fmt.startswith("opus_"):
        kbps = fmt.split("_")[2]
        args += ["-c:a", "libopus", "-b:a", f"{kbps}k", "-f", "ogg"]
    elif fmt == "ulaw_8000":
        args += ["-c:a", "pcm_mulaw", "-f", "mulaw"]
    elif fmt == "alaw_8000":
        args += ["-c:a", "pcm_alaw", "-f", "alaw"]
    else:  # pragma: no cover
        raise ValueError(fmt)
    proc = subprocess.run([*args, "pipe:1"], input=pcm, capture_output=True, check=True)
    return proc.stdout


def _wav(pcm: bytes, rate: int) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", len(pcm)) + pcm)


def id3_c2pa_tag() -> bytes:
    """An ID3v2.4 tag with a GEOB frame holding a (fake) C2PA manifest store."""
    payload = (b"\x03" + b"application/x-c2pa-manifest-store\x00" + b"c2pa.mp3\x00"
               + b"C2PA manifest\x00" + b"jumb" + os.urandom(64))

    def syncsafe(n: int) -> bytes:
        return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])

    frame = b"GEOB" + syncsafe(len(payload)) + b"\x00\x00" + payload
    return b"ID3\x04\x00\x00" + syncsafe(len(frame)) + frame


def format_rate(fmt: str) -> int:
    parts = fmt.split("_")
    if fmt.startswith("opus_"):
        return 48000
    return int(parts[1])


CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "pcm": "audio/pcm",
                 "ulaw": "audio/basic", "alaw": "audio/x-alaw-basic"}


# ----------------------------------------------------------------------------------------- faults


@dataclass
class Fault:
    """One injected behaviour for the next request whose path starts with *path*.

    kind: ``status`` (answer *status* with *body*/*headers*), ``slow`` (wait *delay_s* before the
    first byte, then answer normally), ``drop_upload`` (close after *after_bytes* of the body),
    ``drop_download`` (send headers and *after_bytes* of the audio, then close), ``content_type``
    (answer *body* with content type *content_type*), ``empty`` (200 with no body), ``zip``
    (separate-tracks ZIP with *members* [(name, bytes | "music" | "sfx")]), ``task`` (the task
    ends with *task_status* / *error_code* / *error_message*), ``no_response`` (read the body,
    then close without answering), ``bad_plan`` (``/v1/music``: a plan with a style naming one of
    the strings in *body* is refused 400 ``bad_composition_plan`` with those styles left out as
    the suggestion).
    """

    kind: str
    path: str = V2M
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    after_bytes: int = 0
    content_type: str = ""
    members: list[tuple[str, Any]] = field(default_factory=list)
    task_status: str = "failed"
    error_code: str | None = None
    error_message: str | None = None
    times: int = 1


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    json: Any = None
    body_bytes: int = 0
    status: int | None = None
    outcome: str = ""


class _Drop(Exception):
    pass


class _Reply(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def detail_list(loc: list[Any], msg: str, typ: str = "value_error", inp: Any = None) -> dict:
    return {"detail": [{"loc": loc, "msg": msg, "type": typ, "input": inp}]}


class ContractState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.elevenlabs_key = "el-test-key"
        self.mountsea_key = "ms-test-key"
        self.faults: list[Fault] = []
        self.log: list[LoggedRequest] = []
        self.charges = 0
        self.drift_s = 0.08
        self.pcm_wav = False
        self.zip_names = ("music.mp3", "sfx.mp3")
        self.max_concurrent: int | None = None
        self.in_flight = 0
        self.generation_delay_s = 0.0
        self.task_complete_after_s = 0.2
        self.tasks: dict[str, dict[str, Any]] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.spool = Path(tempfile.mkdtemp(prefix="contract-spool-"))
        self.keep_uploads = False
        self.public_base = ""
        # Batches: a video-to-music generation waits (up to hold_timeout_s) until this many are
        # in flight at once, then none waits again; peak_in_flight is the most seen at once.
        self.hold_until_in_flight: int | None = None
        self.hold_timeout_s = 120.0
        self.peak_in_flight = 0
        self.upload_read_chunk = 1 << 20

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if path.startswith(f.path):
                    f.times -= 1
                    if f.times <= 0:
                        self.faults.remove(f)
                    return f
        return None

    def add(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def requests_to(self, path: str) -> list[LoggedRequest]:
        return [r for r in self.log if r.path == path]


# ----------------------------------------------------------------------------- multipart parsing


class _Reader:
    def __init__(self, rfile: Any, length: int, drop_after: int | None, chunk: int) -> None:
        self.rfile = rfile
        self.remaining = length
        self.read_total = 0
        self.drop_after = drop_after
        self.chunk = chunk

    def read(self) -> bytes:
        if self.remaining <= 0:
            return b""
        n = min(self.chunk, self.remaining)
        if self.drop_after is not None:
            n = min(n, max(1, self.drop_after - self.read_total))
        data = self.rfile.read(n)
        if not data:
            raise _Drop("client closed")
        self.remaining -= len(data)
        self.read_total += len(data)
        if self.drop_after is not None and self.read_total >= self.drop_after:
            raise _Drop("injected drop mid-upload")
        return data

    def drain(self) -> None:
        while self.remaining > 0:
            self.read()


def parse_multipart(reader: _Reader, boundary: bytes, spool: Path) -> tuple[list[tuple[str, str]], list[dict[str, Any]], list[str]]:
    delim = b"--" + boundary
    buf = b""
    while delim + b"\r\n" not in buf:
        more = reader.read()
        if not more:
            raise _Reply(400, {"detail": {"status": "invalid_multipart",
                                          "message": "no opening boundary"}})
        buf += more
        if len(buf) > 1 << 16 and delim + b"\r\n" not in buf[:1 << 16]:
            raise _Reply(400, {"detail": {"status": "invalid_multipart", "message": "bad start"}})
    buf = buf[buf.index(delim + b"\r\n") + len(delim) + 2:]
    fields: list[tuple[str, str]] = []
    files: list[dict[str, Any]] = []
    order: list[str] = []
    sep = b"\r\n" + delim
    while True:
        while b"\r\n\r\n" not in buf:
            more = reader.read()
            if not more or len(buf) > 1 << 20:
                raise _Reply(400, {"detail": {"status": "invalid_multipart",
                                              "message": "truncated part headers"}})
            buf += more
        raw_headers, buf = buf.split(b"\r\n\r\n", 1)
        headers = {}
        for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        disp = headers.get("content-disposition", "")
        nm = re.search(r'\bname="([^"]*)"', disp)
        fn = re.search(r'\bfilename="([^"]*)"', disp)
        name = nm.group(1) if nm else ""
        order.append(name)
        sink: Any
        if fn is not None:
            fd, tmp = tempfile.mkstemp(dir=spool, suffix=".mp4")
            sink = os.fdopen(fd, "wb")
            h = hashlib.sha256()
            size = 0
        else:
            sink = io.BytesIO()
            h = None
            size = 0
        while True:
            idx = buf.find(sep)
            if idx >= 0:
                data, buf = buf[:idx], buf[idx + len(sep):]
                sink.write(data)
                size += len(data)
                if h is not None:
                    h.update(data)
                break
            keep = len(sep)
            if len(buf) > keep:
                data = buf[:-keep]
                sink.write(data)
                size += len(data)
                if h is not None:
                    h.update(data)
                buf = buf[-keep:]
            more = reader.read()
            if not more:
                raise _Reply(400, {"detail": {"status": "invalid_multipart",
                                              "message": "truncated body"}})
            buf += more
            if fn is None and size > 1 << 20:
                raise _Reply(413, {"detail": {"status": "field_too_large",
                                              "message": f"field {name} too large"}})
        if fn is not None:
            sink.close()
            files.append({"name": name, "filename": fn.group(1),
                          "content_type": headers.get("content-type", ""), "path": Path(tmp),
                          "bytes": size, "sha256": h.hexdigest() if h else ""})
        else:
            fields.append((name, sink.getvalue().decode("utf-8", "replace")))
        while len(buf) < 2:
            more = reader.read()
            if not more:
                raise _Reply(400, {"detail": {"status": "invalid_multipart",
                                              "message": "truncated end"}})
            buf += more
        if buf.startswith(b"--"):
            reader.drain()
            return fields, files, order
        if not buf.startswith(b"\r\n"):
            raise _Reply(400, {"detail": {"status": "invalid_multipart",
                                          "message": "bad boundary"}})
        buf = buf[2:]


# -------------------------------------------------------------------------------------- handler


def _json_bytes(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ContractServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    @property
    def state(self) -> ContractState:
        return self.server.state

    # -- plumbing -----------------------------------------------------------------------------
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        data = _json_bytes(body) if body is not None else b""
        self.send_response(status)
        hdrs = {"Content-Type": content_type, "Content-Length": str(len(data))}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _length(self) -> int:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _Reply(411, {"detail": {"status": "length_required",
                                          "message": "Content-Length is required"}})
        try:
            return int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise _Reply(400, {"detail": {"status": "bad_request",
                                          "message": "bad Content-Length"}}) from None

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        rec = LoggedRequest(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                            {k.lower(): v for k, v in self.headers.items()})
        with self.state.lock:
            self.state.log.append(rec)
        fault = self.state.take_fault(parts.path)
        try:
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay_s)
                fault = None
            if fault is not None and fault.kind == "no_response" and parts.path != V2M:
                self._length_drain()
                raise _Drop("injected: no response")
            route = self._route(parts.path)
            if route is None:
                self._length_drain()
                raise _Reply(404, {"detail": "Not Found"})
            route(rec, fault)
        except _Reply as r:
            rec.status = r.status
            rec.outcome = "error"
            hdrs = dict(r.headers)
            default = "text/plain" if isinstance(r.body, (bytes, str)) else "application/json"
            self._send(r.status, r.body, hdrs, hdrs.pop("Content-Type", default))
        except _Drop:
            rec.outcome = "dropped"
            self._drop()
        except (BrokenPipeError, ConnectionResetError):
            rec.outcome = "client-gone"
            self.close_connection = True

    def _length_drain(self) -> None:
        n = self._length()
        while n > 0:
            got = self.rfile.read(min(n, 1 << 20))
            if not got:
                break
            n -= len(got)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _route(self, path: str) -> Callable[[LoggedRequest, Fault | None], None] | None:
        if path == V2M:
            return self.el_video_to_music
        if path == "/eleven/video-to-music":
            return self.ms_submit
        if path == "/eleven/tasks":
            return self.ms_task
        if path == "/v1/music/plan":
            return self.el_plan
        if path == "/v1/music":
            return self.el_compose
        if path == "/eleven/plan":
            return self.ms_plan
        if path == "/eleven/music":
            return self.ms_compose
        if path.startswith("/files/"):
            return self.get_file
        return None

    def _status_fault(self, fault: Fault | None, reader: _Reader | None = None) -> None:
        if fault is None:
            return
        if fault.kind == "status":
            if reader is not None:
                reader.drain()
            raise _Reply(fault.status, fault.body, dict(fault.headers))

    # -- ElevenLabs ----------------------------------------------------------------------------
    def el_video_to_music(self, rec: LoggedRequest, fault: Fault | None) -> None:
        st = self.state
        if self.command != "POST":
            raise _Reply(405, {"detail": "Method Not Allowed"})
        length = self._length()
        rec.body_bytes = length
        drop = fault.after_bytes if fault is not None and fault.kind == "drop_upload" else None
        reader = _Reader(self.rfile, length, drop, st.upload_read_chunk)
        key = self.headers.get("xi-api-key")
        if key != st.elevenlabs_key:
            reader.drain()
            if not key:
                raise _Reply(401, {"detail": {"status": "needs_authorization",
                                              "message": "Missing xi-api-key header"}})
            raise _Reply(401, {"detail": {"status": "invalid_api_key",
                                          "message": "Invalid API key"}})
        ctype = self.headers.get("Content-Type", "")
        m = re.match(r'multipart/form-data;\s*boundary="?([^";]+)"?', ctype)
        if not m:
            reader.drain()
            raise _Reply(422, detail_list(["body", "videos"], "Field required", "missing"))
        fields, files, order = parse_multipart(reader, m.group(1).encode(), st.spool)
        rec.fields, rec.order = fields, order
        rec.files = [{k: v for k, v in f.items() if k != "path"} for f in files]
        try:
            self._status_fault(fault)
            if fault is not None and fault.kind == "no_response":
                raise _Drop("no response")
            query = rec.query
            errors: list[dict[str, Any]] = []
            for k in query:
                if k not in ("output_format", "enable_logging"):
                    errors.append({"loc": ["query", k], "msg": "Extra inputs are not permitted",
                                   "type": "extra_forbidden", "input": query[k][0]})
            fmt = query.get("output_format", ["mp3_44100_128"])[-1]
            if fmt not in OUTPUT_FORMATS:
                errors.append({"loc": ["query", "output_format"],
                               "msg": "Input should be one of " + ", ".join(OUTPUT_FORMATS),
                               "type": "enum", "input": fmt})
            allowed = set(BOOL_FIELDS) | set(TEXT_FIELDS) | {"tags", "videos"}
            for name, value in fields:
                if name not in allowed:
                    errors.append({"loc": ["body", name], "msg": "Extra inputs are not permitted",
                                   "type": "extra_forbidden", "input": value})
                if name in BOOL_FIELDS and value not in ("true", "false"):
                    errors.append({"loc": ["body", name], "msg": "Input should be a valid boolean",
                                   "type": "bool_parsing", "input": value})
                if name == "model_id" and value not in MODELS:
                    errors.append({"loc": ["body", "model_id"], "msg": "Input should be "
                                   + ", ".join(MODELS), "type": "enum", "input": value})
            counts: dict[str, int] = {}
            for name, _ in fields:
                counts[name] = counts.get(name, 0) + 1
            for name, c in counts.items():
                if name != "tags" and c > 1:
                    errors.append({"loc": ["body", name], "msg": "repeated field",
                                   "type": "value_error", "input": c})
            desc = dict(fields).get("description")
            if desc is not None and not (1 <= len(desc) <= 1000):
                errors.append({"loc": ["body", "description"],
                               "msg": "String should have at most 1000 characters",
                               "type": "string_too_long", "input": len(desc)})
            tags = [v for n, v in fields if n == "tags"]
            if len(tags) > 10:
                errors.append({"loc": ["body", "tags"], "msg": "List should have at most 10 items",
                               "type": "too_long", "input": len(tags)})
            for f in files:
                if f["name"] != "videos":
                    errors.append({"loc": ["body", f["name"]],
                                   "msg": "Extra inputs are not permitted",
                                   "type": "extra_forbidden", "input": f["filename"]})
            videos = [f for f in files if f["name"] == "videos"]
            first_file = next((i for i, n in enumerate(order) if n == "videos"), len(order))
            if any(n in allowed - {"videos"} for n in order[first_file:]):
                errors.append({"loc": ["body"], "msg": "form fields must precede file parts",
                               "type": "value_error", "input": order})
            if not videos:
                errors.append({"loc": ["body", "videos"], "msg": "Field required",
                               "type": "missing", "input": None})
            if len(videos) > MAX_VIDEOS:
                errors.append({"loc": ["body", "videos"], "msg": "List should have at most 10 "
                               "items", "type": "too_long", "input": len(videos)})
            total_bytes = sum(f["bytes"] for f in videos)
            if total_bytes > MAX_BYTES:
                errors.append({"loc": ["body", "videos"], "msg": "total size exceeds 200MB",
                               "type": "value_error", "input": total_bytes})
            durations = []
            for i, f in enumerate(videos):
                d = mp4_duration(f["path"])
                if d is None:
                    errors.append({"loc": ["body", "videos", i], "msg": "could not read video",
                                   "type": "value_error", "input": f["filename"]})
                else:
                    durations.append(d)
                f_log = rec.files[files.index(f)]
                f_log["duration_s"] = d
                if st.keep_uploads:  # tests read what was received (e.g. the clips' sound)
                    f_log["kept"] = str(f["path"])
            if sum(durations) > MAX_SECONDS:
                errors.append({"loc": ["body", "videos"], "msg": "total duration exceeds 600s",
                               "type": "value_error", "input": sum(durations)})
            if errors:
                raise _Reply(422, {"detail": errors})
            if dict(fields).get("sign_with_c2pa") == "true" and not fmt.startswith("mp3_"):
                raise _Reply(422, detail_list(["body", "sign_with_c2pa"],
                                              "C2PA signing requires an mp3 output format"))
            with st.lock:
                if st.max_concurrent is not None and st.in_flight >= st.max_concurrent:
                    raise _Reply(429, {"detail": {"status": "too_many_concurrent_requests",
                                                  "message": "Too many concurrent requests"}},
                                 {"current-concurrent-requests": str(st.in_flight),
                                  "maximum-concurrent-requests": str(st.max_concurrent)})
                st.in_flight += 1
                st.peak_in_flight = max(st.peak_in_flight, st.in_flight)
            try:
                self._hold(st)
                if st.generation_delay_s:
                    time.sleep(st.generation_delay_s)
                opts = dict(fields)
                body, ctype_out = self._make_audio(durations, fmt, opts, fault)
                with st.lock:
                    st.charges += 1
            finally:
                with st.lock:
                    st.in_flight -= 1
            song_id = uuid.uuid4().hex
            self._deliver(rec, body, ctype_out, fault, {"song-id": song_id})
        finally:
            if not st.keep_uploads:
                for f in files:
                    with contextlib.suppress(OSError):
                        f["path"].unlink()

    @staticmethod
    def _hold(st: ContractState) -> None:
        """Wait until ``hold_until_in_flight`` generations have been in flight at once."""
        if st.hold_until_in_flight is None:
            return
        deadline = time.monotonic() + st.hold_timeout_s
        while st.peak_in_flight < st.hold_until_in_flight and time.monotonic() < deadline:
            time.sleep(0.01)

    def _make_audio(self, durations: list[float], fmt: str, opts: dict[str, str],
                    fault: Fault | None) -> tuple[bytes, str]:
        st = self.state
        rate = format_rate(fmt)
        kind = fmt.split("_")[0]
        if opts.get("separate_tracks") == "true" or (fault is not None and fault.kind == "zip"):
            music = encode(synth(durations, st.drift_s, rate, clicks=False), rate, fmt,
                           pcm_wav=st.pcm_wav)
            sfx = encode(synth(durations, st.drift_s, rate, music=False), rate, fmt,
                         pcm_wav=st.pcm_wav)
            members: list[tuple[str, Any]] = (
                list(fault.members) if fault is not None and fault.kind == "zip"
                else [(st.zip_names[0], "music"), (st.zip_names[1], "sfx")])
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for name, content in members:
                    data = music if content == "music" else sfx if content == "sfx" else content
                    zf.writestr(name, data)
            return buf.getvalue(), "application/zip"
        data = encode(synth(durations, st.drift_s, rate), rate, fmt, pcm_wav=st.pcm_wav)
        if opts.get("sign_with_c2pa") == "true":
            data = id3_c2pa_tag() + data
        if kind == "pcm" and st.pcm_wav:
            return data, "audio/wav"
        return data, CONTENT_TYPES[kind]

    def _deliver(self, rec: LoggedRequest, body: bytes, ctype: str, fault: Fault | None,
                 headers: dict[str, str]) -> None:
        if fault is not None and fault.kind == "empty":
            body = b""
        if fault is not None and fault.kind == "content_type":
            ctype = fault.content_type
            if fault.body is not None:
                body = _json_bytes(fault.body)
        rec.status = 200
        if fault is not None and fault.kind == "drop_download":
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body[:fault.after_bytes])
            self.wfile.flush()
            rec.outcome = "dropped-download"
            raise _Drop("injected drop mid-download")
        rec.outcome = "ok"
        self._send(200, body, headers, ctype)

    def el_compose(self, rec: LoggedRequest, fault: Fault | None) -> None:
        """``POST /v1/music`` from a composition plan (contract_music): a tone per section,
        each exactly its ``duration_ms`` long (tone_of(i), no clicks, no drift)."""
        st = self.state
        if self.command != "POST":
            raise _Reply(405, {"detail": "Method Not Allowed"})
        doc = self._json_body(rec)
        key = self.headers.get("xi-api-key")
        if key != st.elevenlabs_key:
            raise _Reply(401, {"detail": {"status": "invalid_api_key" if key else
                                          "needs_authorization", "message": "Invalid API key"}})
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            raise _Reply(422, detail_list(["body"], "expected application/json"))
        self._status_fault(fault)
        errors, durations = contract_music.validate(doc)
        for k in rec.query:
            if k not in ("output_format", "enable_logging"):
                errors.append({"loc": ["query", k], "msg": "Extra inputs are not permitted",
                               "type": "extra_forbidden", "input": rec.query[k][0]})
        fmt = rec.query.get("output_format", ["mp3_44100_128"])[-1]
        if fmt not in OUTPUT_FORMATS:
            errors.append({"loc": ["query", "output_format"], "msg": "invalid output format",
                           "type": "enum", "input": fmt})
        if errors:
            raise _Reply(422, {"detail": errors})
        if (fault is not None and fault.kind == "bad_plan"
                and contract_music.names_refused(doc["composition_plan"], fault.body)):
            raise _Reply(400, {"detail": {
                "status": "bad_composition_plan",
                "message": "The composition plan names copyrighted material.",
                "data": {"composition_plan_suggestion": contract_music.without_styles(
                    doc["composition_plan"], fault.body)}}})
        rate = format_rate(fmt)
        samples = synth([d / 1000 for d in durations], 0.0, rate, clicks=False)
        data = encode(samples, rate, fmt, pcm_wav=st.pcm_wav)
        ctype = "audio/wav" if fmt.startswith("pcm_") and st.pcm_wav else CONTENT_TYPES[fmt.split("_")[0]]
        with st.lock:
            st.charges += 1
        self._deliver(rec, data, ctype, fault, {"song-id": uuid.uuid4().hex})

    # -- files ---------------------------------------------------------------------------------
    def get_file(self, rec: LoggedRequest, fault: Fault | None) -> None:
        self._status_fault(fault)
        name = self.path.split("?")[0][len("/files/"):]
        with self.state.lock:
            item = self.state.files.get(name)
        if item is None:
            raise _Reply(404, {"message": "no such file"})
        self._deliver(rec, item[0], item[1], fault, {})

    # -- mountsea ------------------------------------------------------------------------------
    def el_plan(self, rec: LoggedRequest, fault: Fault | None) -> None:
        """``POST /v1/music/plan``: free; a small CompositionPlan for the prompt."""
        st = self.state
        doc = self._json_body(rec)
        key = self.headers.get("xi-api-key")
        if key != st.elevenlabs_key:
            raise _Reply(401, {"detail": {"status": "invalid_api_key" if key else
                                          "needs_authorization", "message": "Invalid API key"}})
        self._status_fault(fault)
        if not isinstance(doc, dict) or not isinstance(doc.get("prompt"), str):
            raise _Reply(422, detail_list(["body", "prompt"], "Field required", "missing"))
        extra = sorted(set(doc) - {"prompt", "music_length_ms", "source_composition_plan",
                                   "model_id"})
        if extra:
            raise _Reply(422, detail_list(["body", extra[0]], "Extra inputs are not permitted",
                                          "extra_forbidden"))
        length = int(doc.get("music_length_ms") or 30000)
        if not 3000 <= length <= 600000:
            raise _Reply(422, detail_list(["body", "music_length_ms"],
                                          "Input should be between 3000 and 600000", "range"))
        model = doc.get("model_id", "music_v1")
        if model not in MODELS:
            raise _Reply(422, detail_list(["body", "model_id"], "Input should be one of "
                                          + ", ".join(MODELS), "enum", model))
        self._send(200, drafted_plan(length, model))

    def ms_plan(self, rec: LoggedRequest, fault: Fault | None) -> None:
        """The proxy's ``POST /eleven/plan``: free, asynchronous like every proxy call."""
        st = self.state
        doc = self._json_body(rec)
        if self.headers.get("Authorization") != f"Bearer {st.mountsea_key}":
            raise _Reply(401, {"code": 401, "message": "Unauthorized"})
        self._status_fault(fault)
        if not isinstance(doc, dict) or not isinstance(doc.get("prompt"), str):
            raise _Reply(400, {"code": 400, "message": "prompt must be a string"})
        extra = sorted(set(doc) - {"prompt", "musicLengthMs", "model", "sourceCompositionPlan"})
        if extra:
            raise _Reply(400, {"code": 400, "message": f"property {extra[0]} should not exist"})
        length = doc.get("musicLengthMs", 30000)
        if not isinstance(length, int) or not 3000 <= length <= 600000:
            raise _Reply(400, {"code": 400, "message": "musicLengthMs must be 3000-600000"})
        if doc.get("model", "music_v1") != "music_v1":
            raise _Reply(400, {"code": 400, "message": "model must be one of: music_v1"})
        tid = f"plan-{uuid.uuid4().hex[:12]}"
        with st.lock:
            st.tasks[tid] = {"created": time.time(), "fault": None, "kind": "plan",
                             "result": {"compositionPlan": drafted_plan(length, "music_v1")}}
        self._send(200, {"taskId": tid})

    def ms_compose(self, rec: LoggedRequest, fault: Fault | None) -> None:
        """The proxy's ``POST /eleven/music`` from a plan (reference §11): camelCase body,
        ``compositionPlan`` a v1 MusicPrompt in snake_case validated as ``/v1/music`` validates it,
        ``model`` music_v1 only; prompt-only fields refused with a plan. A task whose audio has a
        tone per section (tone_of(i)), each exactly its ``duration_ms``."""
        st = self.state
        doc = self._ms_json_object(rec, fault)
        extra = sorted(set(doc) - set(MS_COMPOSE))
        if extra:
            raise _Reply(400, {"code": 400, "message": f"property {extra[0]} should not exist"})
        if "compositionPlan" not in doc:
            raise _Reply(400, {"code": 400, "message": "this server composes from plans only"})
        for k in ("prompt", "musicLengthMs", "forceInstrumental"):
            if k in doc:
                raise _Reply(400, {"code": 400, "message": f"{k} cannot be used with "
                                   "compositionPlan"})
        if doc.get("model", "music_v1") != "music_v1":
            raise _Reply(400, {"code": 400, "message": "model must be one of: music_v1"})
        fmt = doc.get("outputFormat", "mp3_44100_128")
        if fmt not in OUTPUT_FORMATS:
            raise _Reply(400, {"code": 400, "message": "outputFormat is invalid"})
        inner = {MS_COMPOSE[k]: v for k, v in doc.items() if MS_COMPOSE[k]}
        errors, durations = contract_music.validate({**inner, "model_id": "music_v1"})
        if errors:
            e = errors[0]
            raise _Reply(400, {"code": 400, "message": f"{'.'.join(str(x) for x in e['loc'][1:])}: "
                               f"{e['msg']}"})
        if (fault is not None and fault.kind == "bad_plan"
                and contract_music.names_refused(doc["compositionPlan"], fault.body)):
            # The proxy passing ElevenLabs' refusal through (its own shape is undocumented).
            raise _Reply(400, {"detail": {
                "status": "bad_composition_plan", "message": "copyrighted material",
                "data": {"composition_plan_suggestion": contract_music.without_styles(
                    doc["compositionPlan"], fault.body)}}})
        rate = format_rate(fmt)
        data = encode(synth([d / 1000 for d in durations], 0.0, rate, clicks=False), rate, fmt,
                      pcm_wav=st.pcm_wav)
        ctype = ("audio/wav" if fmt.startswith("pcm_") and st.pcm_wav
                 else CONTENT_TYPES[fmt.split("_")[0]])
        tid = "task_" + uuid.uuid4().hex[:12]
        ext = {"audio/mpeg": "mp3", "audio/ogg": "ogg"}.get(ctype, "bin")
        with st.lock:
            st.files[f"{tid}.{ext}"] = (data, ctype)
            st.charges += 1
            st.tasks[tid] = {"created": time.time(), "fault": fault, "file": f"{tid}.{ext}",
                             "durations": durations, "kind": "compose"}
        rec.status = 200
        self._send(200, {"taskId": tid})

    def _json_body(self, rec: LoggedRequest) -> Any:
        n = self._length()
        raw = self.rfile.read(n) if n else b""
        rec.body_bytes = n
        try:
            doc = json.loads(raw or b"null")
        except ValueError:
            raise _Reply(400, {"code": 400, "message": "body is not JSON"}) from None
        rec.json = doc
        return doc

    def _fetch_videos(self, urls: list[str]) -> tuple[list[float], int]:
        durations, total = [], 0
        for i, u in enumerate(urls):
            if not isinstance(u, str) or not re.match(r"^https?://", u):
                raise _Reply(400, {"code": 400, "message": f"videoUrls[{i}] must be a URL"})
            fd, tmp = tempfile.mkstemp(dir=self.state.spool, suffix=".mp4")
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(u, timeout=30) as resp:
                    shutil.copyfileobj(resp, out, 1 << 20)
                size = Path(tmp).stat().st_size
                total += size
                d = mp4_duration(Path(tmp))
            except OSError as exc:
                raise _Reply(400, {"code": 400, "message": f"videoUrls[{i}] could not be "
                                   f"downloaded: {exc}"}) from None
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if d is None:
                raise _Reply(400, {"code": 400, "message": f"videoUrls[{i}] is not a video"})
            durations.append(d)
        return durations, total

    def _ms_json_object(self, rec: LoggedRequest, fault: Fault | None) -> dict[str, Any]:
        """A proxy JSON submit's checks in the proxy's order: key, content type, fault, object."""
        doc = self._json_body(rec)
        if self.headers.get("Authorization") != f"Bearer {self.state.mountsea_key}":
            raise _Reply(401, {"code": 401, "message": "Unauthorized"})
        if "json" not in self.headers.get("Content-Type", ""):
            raise _Reply(415, {"code": 415, "message": "Content-Type must be application/json"})
        self._status_fault(fault)
        if not isinstance(doc, dict):
            raise _Reply(400, {"code": 400, "message": "body must be an object"})
        return doc

    def ms_submit(self, rec: LoggedRequest, fault: Fault | None) -> None:
        st = self.state
        doc = self._ms_json_object(rec, fault)
        allowed = {"videoUrls", "description", "tags", "outputFormat", "signWithC2pa"}
        extra = sorted(set(doc) - allowed)
        if extra:
            raise _Reply(400, {"code": 400, "message": f"property {extra[0]} should not exist"})
        urls = doc.get("videoUrls")
        if not isinstance(urls, list) or not 1 <= len(urls) <= MAX_VIDEOS:
            raise _Reply(400, {"code": 400, "message": "videoUrls must contain 1 to 10 URLs"})
        desc = doc.get("description")
        if desc is not None and (not isinstance(desc, str) or len(desc) > 1000):
            raise _Reply(400, {"code": 400, "message": "description must be at most 1000 chars"})
        tags = doc.get("tags", [])
        if not isinstance(tags, list) or len(tags) > 10:
            raise _Reply(400, {"code": 400, "message": "tags must have at most 10 items"})
        fmt = doc.get("outputFormat", "mp3_44100_128")
        if fmt not in OUTPUT_FORMATS:
            raise _Reply(400, {"code": 400, "message": "outputFormat is invalid"})
        if "signWithC2pa" in doc and not isinstance(doc["signWithC2pa"], bool):
            raise _Reply(400, {"code": 400, "message": "signWithC2pa must be a boolean"})
        durations, total = self._fetch_videos(urls)
        if total > MAX_BYTES or sum(durations) > MAX_SECONDS:
            raise _Reply(400, {"code": 400, "message": "videos exceed 200MB or 600s"})
        body, ctype = self._make_audio(durations, fmt,
                                       {"sign_with_c2pa": "true" if doc.get("signWithC2pa")
                                        else "false"}, None)
        tid = "task_" + uuid.uuid4().hex[:12]
        ext = {"audio/mpeg": "mp3", "audio/ogg": "ogg"}.get(ctype, "bin")
        with st.lock:
            st.files[f"{tid}.{ext}"] = (body, ctype)
            st.charges += 1
            st.tasks[tid] = {"created": time.time(), "fault": fault, "file": f"{tid}.{ext}",
                             "durations": durations, "kind": "mountsea"}
        rec.status = 200
        self._send(200, {"taskId": tid})

    def ms_task(self, rec: LoggedRequest, fault: Fault | None) -> None:
        st = self.state
        if self.headers.get("Authorization") != f"Bearer {st.mountsea_key}":
            raise _Reply(401, {"code": 401, "message": "Unauthorized"})
        self._status_fault(fault)
        tid = rec.query.get("taskId", [""])[0]
        with st.lock:
            task = st.tasks.get(tid)
        if task is None:
            raise _Reply(404, {"code": 404, "message": "task not found"})
        status, _result, code, msg = self._task_state(task)
        out = {"taskId": tid, "status": status, "result": None, "errorMessage": msg,
               "errorCode": code, "createdAt": int(task["created"] * 1000),
               "finishedAt": None, "traceId": "trace-" + tid}
        if status == "completed" and task.get("kind") == "plan":
            out["result"] = task["result"]
        elif status == "completed":
            out["result"] = {"audioUrl": f"{st.public_base}/files/{task['file']}",
                             "songId": "song-" + tid}
        if status in ("completed", "failed", "cancelled", "timeout"):
            out["finishedAt"] = int(time.time() * 1000)
        rec.status = 200
        self._send(200, out)

    def _task_state(self, task: dict[str, Any]) -> tuple[str, Any, Any, Any]:
        age = time.time() - task["created"]
        f: Fault | None = task["fault"]
        done_after = self.state.task_complete_after_s
        if age < done_after / 2:
            return "pending", None, None, None
        if f is not None and f.kind == "task" and f.task_status == "stuck":
            return "processing", None, None, None
        if age < done_after:
            return "processing", None, None, None
        if f is not None and f.kind == "task":
            return f.task_status, None, f.error_code, f.error_message
        return "completed", None, None, None


def drafted_plan(length_ms: int, model: str) -> dict[str, Any]:
    """What the plan endpoints draft here: one section per started 7 s (1-4), even durations
    adding up to *length_ms*, styles "drafted N" (v1: named "Drafted N", a global style)."""
    n = max(1, min(4, length_ms // 7000))
    durations = [length_ms // n] * (n - 1) + [length_ms - (length_ms // n) * (n - 1)]
    if model == "music_v1":
        return {"positive_global_styles": ["drafted global"], "negative_global_styles": [],
                "sections": [{"section_name": f"Drafted {i + 1}",
                              "positive_local_styles": [f"drafted {i + 1}"],
                              "negative_local_styles": [f"not {i + 1}"], "duration_ms": d,
                              "lines": []} for i, d in enumerate(durations)]}
    return {"chunks": [{"text": f"[Drafted {i + 1}]", "duration_ms": d,
                        "positive_styles": [f"drafted {i + 1}"], "negative_styles": [f"not {i + 1}"]}
                       for i, d in enumerate(durations)]}


class ContractServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), Handler)
        self.state = ContractState()
        self.state.public_base = self.url
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{port}"

    def start(self) -> ContractServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread:
            self._thread.join(5)
        shutil.rmtree(self.state.spool, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", default="el-test-key")
    args = ap.parse_args(argv)
    srv = ContractServer(port=args.port)
    srv.state.elevenlabs_key = args.key
    print(srv.url, flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
