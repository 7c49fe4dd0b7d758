"""The one place that runs ffmpeg.

* Finds the binary: ``REELSCORE_FFMPEG``, else an ``ffmpeg`` on PATH, else the static build that
  the ``imageio-ffmpeg`` wheel ships (so ``pip install`` is enough). ffprobe is never needed.
* Runs commands with ``-nostdin``, restricted to local files (``-protocol_whitelist file`` and the
  ``file:`` prefix, which also makes names with a leading dash safe), and turns failures into an
  :class:`~reelscore.errors.FFmpegError` carrying the purpose and the stderr tail.
* Probes media by parsing ``ffmpeg -i`` (what ffprobe would tell us, without ffprobe).
* Decodes audio to float32 numpy arrays and video to small grey frames for analysis.
* Streams raw frames: :func:`read_frames` yields them from a decoder's stdout, :func:`write_frames`
  feeds them to an encoder's stdin. Both keep ffmpeg's stderr in a temporary file (a pipe could
  fill up and stall ffmpeg while we wait on the frames) and report its tail in the error.

Every ffmpeg runs as a direct child of this process, never detached into a session of its own:
:func:`reelscore.signals.kill_children` finds and kills them when SIGINT/SIGTERM/SIGHUP stops a
run, and every helper here kills its process when the caller stops early or raises.

Command *construction* for the picture lives in :mod:`reelscore.render_ffmpeg` (ffmpeg-python as a
builder); this module holds the small fixed commands and the runners.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

import numpy as np

from reelscore.errors import FFmpegError, MediaError

# Characters of ffmpeg's stderr an error keeps (the end holds the reason).
STDERR_TAIL = 4000

# Local files only: ffmpeg must never follow a URL or a concat/playlist indirection to the network.
INPUT_PROTOCOLS = "file,pipe"


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to use (see module docstring for the order)."""
    env = os.environ.get("REELSCORE_FFMPEG")
    if env:
        if not Path(env).is_file():
            raise MediaError(
                f"REELSCORE_FFMPEG points to {env!r}, which is not a file",
                hint="unset it to use the ffmpeg that ships with reelscore",
            )
        return env
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise MediaError(
            "no ffmpeg found", hint="pip install imageio-ffmpeg, or set REELSCORE_FFMPEG"
        ) from exc
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def file_arg(path: str | os.PathLike[str]) -> str:
    """An input/output path as ffmpeg must see it: absolute, with the ``file:`` protocol prefix.

    The prefix stops ffmpeg from reading ``a:b.mov`` as protocol ``a`` and a leading ``-`` as an
    option; an absolute path keeps the command independent of the working directory.
    """
    return "file:" + str(Path(path).absolute())


def base_args() -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]


def run(
    args: Sequence[str],
    purpose: str,
    *,
    stdout: int | None = subprocess.DEVNULL,
    timeout: float | None = None,
    hint: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run one ffmpeg command; raise FFmpegError (with *purpose*) if it fails."""
    try:
        proc = subprocess.run(
            list(args), stdout=stdout, stderr=subprocess.PIPE, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise MediaError(f"cannot start ffmpeg at {args[0]!r}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise FFmpegError(purpose, -1, f"timed out after {timeout} s", hint=hint) from exc
    if proc.returncode != 0:
        raise FFmpegError(
            purpose, proc.returncode, proc.stderr.decode("utf-8", "replace")[-STDERR_TAIL:],
            hint=hint,
        )
    return proc



def capture(args: Sequence[str], purpose: str, *, timeout: float | None = 60) -> str:
    """Run one ffmpeg command and return what it printed on stdout (e.g. ``-version``)."""
    return run(args, purpose, stdout=subprocess.PIPE, timeout=timeout).stdout.decode(
        "utf-8", "replace")


# ------------------------------------------------------------------------------ streaming pipes


def _start(args: Sequence[str], *, stdin: int | None, stdout: int | None,
           stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(list(args), stdin=stdin, stdout=stdout, stderr=stderr)
    except FileNotFoundError as exc:
        raise MediaError(f"cannot start ffmpeg at {args[0]!r}: {exc}") from exc


def _stderr_tail(err: IO[bytes]) -> str:
    err.seek(0)
    return err.read().decode("utf-8", "replace")[-STDERR_TAIL:]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill *proc* if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    """Up to *size* bytes: fewer only at the end of the stream."""
    chunks: list[bytes] = []
    got = 0
    while got < size:
        block = stream.read(size - got)
        if not block:
            break
        chunks.append(block)
        got += len(block)
    return b"".join(chunks)


def read_frames(args: Sequence[str], frame_bytes: int, purpose: str, *,
                hint: str | None = None) -> Generator[bytes, None, None]:
    """Run the decoder *args* (raw frames on stdout) and yield its frames of *frame_bytes* each.

    The caller counts: when ffmpeg ends cleanly (exit 0, nothing on stderr) the frames simply
    stop, however many there were, and a partial last frame is dropped. When it ends otherwise,
    :class:`~reelscore.errors.FFmpegError` (with *purpose* and the stderr tail) is raised. A caller
    that stops early (closes the generator, or raises) kills the decoder.
    """
    with tempfile.TemporaryFile() as err:
        proc = _start(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        try:
            while True:
                frame = _read_exact(proc.stdout, frame_bytes)
                if len(frame) < frame_bytes:
                    break
                yield frame
            returncode = proc.wait()
            tail = _stderr_tail(err)
            if returncode != 0 or tail.strip():
                raise FFmpegError(purpose, returncode or 1, tail, hint=hint)
        finally:
            proc.stdout.close()
            _stop(proc)


def _widen_pipe(stream: IO[bytes], size: int) -> None:
    """Let ffmpeg run up to *size* bytes ahead of a reader that is busy with the last chunk
    (Linux pipes hold 64 KiB by default; elsewhere, or past the system's limit, nothing changes)."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if set_size is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(stream.fileno(), set_size, min(size, 1 << 20))


def read_chunks(args: Sequence[str], chunk_bytes: int, purpose: str, *,
                hint: str | None = None) -> Generator[bytes, None, None]:
    """Like :func:`read_frames`, but the last chunk may be shorter (a stream of samples, not
    frames): every byte ffmpeg wrote is yielded, in chunks of at most *chunk_bytes*."""
    with tempfile.TemporaryFile() as err:
        proc = _start(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        _widen_pipe(proc.stdout, chunk_bytes)
        try:
            while True:
                chunk = _read_exact(proc.stdout, chunk_bytes)
                if chunk:
                    yield chunk
                if len(chunk) < chunk_bytes:
                    break
            returncode = proc.wait()
            tail = _stderr_tail(err)
            if returncode != 0 or tail.strip():
                raise FFmpegError(purpose, returncode or 1, tail, hint=hint)
        finally:
            proc.stdout.close()
            _stop(proc)


class FrameWriter:
    """The stdin of a running encoder (see :func:`write_frames`); counts what it was given."""

    def __init__(self, proc: subprocess.Popen[bytes], err: IO[bytes], purpose: str,
                 hint: str | None) -> None:
        self._proc = proc
        self._err = err
        self._purpose = purpose
        self._hint = hint
        self.frames = 0

    def write(self, frame: bytes) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(frame)
        except BrokenPipeError as exc:  # the encoder stopped reading: it failed
            raise self._failure(self._proc.wait(), "ffmpeg stopped reading frames") from exc
        self.frames += 1

    def _failure(self, returncode: int, default: str) -> FFmpegError:
        tail = _stderr_tail(self._err)
        return FFmpegError(self._purpose, returncode, tail if tail.strip() else default,
                           hint=self._hint)

    def finish(self) -> None:
        """Close stdin and wait; FFmpegError if the encoder did not end cleanly."""
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # frames it would not take: see its exit code
            self._proc.stdin.close()
        returncode = self._proc.wait()
        if returncode != 0:
            raise self._failure(returncode, "no message")


@contextlib.contextmanager
def write_frames(args: Sequence[str], purpose: str, *,
                 hint: str | None = None) -> Iterator[FrameWriter]:
    """Run the encoder *args* (raw frames on stdin) for the block; yield its :class:`FrameWriter`.

    Leaving the block closes stdin and waits: a failed encode raises FFmpegError with *purpose*
    and the stderr tail (also raised by ``write`` when the encoder stops reading). An exception
    inside the block (Ctrl-C included) kills the encoder and propagates.
    """
    with tempfile.TemporaryFile() as err:
        proc = _start(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        writer = FrameWriter(proc, err, purpose, hint)
        try:
            yield writer
            writer.finish()
        finally:
            _stop(proc)
            if proc.stdin is not None:
                with contextlib.suppress(OSError):  # frames still buffered for a killed encoder
                    proc.stdin.close()


# --------------------------------------------------------------------------------------- probing

_NTSC = {
    "23.98": Fraction(24000, 1001),
    "23.976": Fraction(24000, 1001),
    "29.97": Fraction(30000, 1001),
    "47.95": Fraction(48000, 1001),
    "59.94": Fraction(60000, 1001),
    "119.88": Fraction(120000, 1001),
}


def snap_rate(text: str) -> Fraction:
    """ffmpeg's printed rate ("23.98", "25", "29.97", "24k") to an exact rational."""
    text = text.strip()
    if text in _NTSC:
        return _NTSC[text]
    if text.endswith("k"):
        return Fraction(text[:-1]) * 1000
    value = Fraction(text)
    for exact in _NTSC.values():
        if abs(float(value) - float(exact)) < 0.005:
            return exact
    return value


@dataclass(frozen=True)
class MediaInfo:
    """What ``ffmpeg -i`` tells about a file."""

    path: Path
    duration_s: float | None
    start_s: float
    has_video: bool
    width: int | None
    height: int | None
    frame_rate: Fraction | None
    video_codec: str | None
    timecode: str | None
    has_audio: bool
    sample_rate: int | None
    channels: int | None
    is_still: bool

    @property
    def frame_count(self) -> int | None:
        if self.duration_s is None or self.frame_rate is None:
            return None
        return round(self.duration_s * self.frame_rate)


_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)(?:, start: (-?[\d.]+))?")
_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: (\w+)(.*)")
_AUDIO = re.compile(r"Stream #\d+:\d+.*?: Audio: (\w+)(.*)")
_SIZE = re.compile(r"(\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"([\d.]+k?) (?:fps|tbr)")
_TC = re.compile(r"timecode\s*:\s*(\d\d[:;.]\d\d[:;.]\d\d[:;.]\d\d)")
_HZ = re.compile(r"(\d+) Hz")
_STILL_CODECS = {"png", "mjpeg", "tiff", "bmp", "dpx", "exr", "jpeg2000", "webp", "targa"}


# Channel layouts as ``ffmpeg -i`` prints them, and their channel counts.
_LAYOUTS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "5.0": 5, "5.1": 6,
            "6.0": 6, "6.1": 7, "7.0": 7, "7.1": 8}
_LAYOUT = re.compile(r", (mono|stereo|2\.1|3\.0|quad|4\.0|5\.0|5\.1|6\.0|6\.1|7\.0|7\.1)\b"
                     r"|, (\d+) channels")


def _channels(stream: str) -> int | None:
    found = _LAYOUT.search(stream)
    if found is None:
        return None
    return _LAYOUTS[found.group(1)] if found.group(1) else int(found.group(2))


@functools.lru_cache(maxsize=512)
def _probe_cached(path: str, mtime_ns: int, size: int) -> MediaInfo:
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-protocol_whitelist", INPUT_PROTOCOLS, "-i",
         file_arg(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    text = proc.stderr.decode("utf-8", "replace")
    if "Input #0" not in text:
        tail = text.strip().splitlines()[-1] if text.strip() else "no output"
        raise MediaError(f"ffmpeg cannot read {path!r} as media: {tail}")
    duration_s: float | None = None
    start_s = 0.0
    duration = _DURATION.search(text)
    if duration:
        hours, minutes, seconds, start = duration.groups()
        duration_s = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        start_s = float(start) if start else 0.0
    width = height = None
    rate: Fraction | None = None
    vcodec = None
    video = _VIDEO.search(text)
    if video:
        vcodec = video.group(1)
        rest = video.group(2)
        frame_size = _SIZE.search(rest)
        if frame_size:
            width, height = int(frame_size.group(1)), int(frame_size.group(2))
        fps = _FPS.search(rest)
        if fps:
            rate = snap_rate(fps.group(1))
    audio = _AUDIO.search(text)
    sample_rate = channels = None
    if audio:
        hz = _HZ.search(audio.group(2))
        sample_rate = int(hz.group(1)) if hz else None
        rest = audio.group(2)
        channels = _channels(rest)
    timecode = _TC.search(text)
    is_still = bool(vcodec in _STILL_CODECS and (duration_s is None or (duration_s or 0) <= 0.05))
    return MediaInfo(
        path=Path(path),
        duration_s=duration_s,
        start_s=start_s,
        has_video=video is not None,
        width=width,
        height=height,
        frame_rate=rate,
        video_codec=vcodec,
        timecode=timecode.group(1) if timecode else None,
        has_audio=audio is not None,
        sample_rate=sample_rate,
        channels=channels,
        is_still=is_still,
    )


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Probe *path* with ``ffmpeg -i`` (cached per path, mtime and size)."""
    media = Path(path)
    try:
        stat = media.stat()
    except OSError as exc:
        raise MediaError(f"cannot read media {str(media)!r}: {exc.strerror}") from exc
    return _probe_cached(str(media.absolute()), stat.st_mtime_ns, stat.st_size)


# -------------------------------------------------------------------------------------- decoding


def decode_audio(
    path: str | os.PathLike[str],
    *,
    sample_rate: int = 48000,
    channels: int = 2,
    fmt: str | None = None,
    purpose: str | None = None,
) -> np.ndarray:
    """Decode any audio ffmpeg reads to float32 samples shaped (frames, channels).

    *fmt* forces the demuxer (e.g. ``"s16le"`` for headerless PCM; then pass the true rate/channels
    in *sample_rate*/*channels*, which also describe the input in that case).
    """
    args = base_args() + ["-protocol_whitelist", INPUT_PROTOCOLS]
    if fmt:
        args += ["-f", fmt, "-ar", str(sample_rate), "-ac", str(channels)]
    args += ["-i", file_arg(path), "-vn", "-map", "0:a:0", "-ac", str(channels), "-ar",
             str(sample_rate), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    proc = run(args, purpose or f"decoding audio from {str(path)!r}", stdout=subprocess.PIPE)
    data = np.frombuffer(proc.stdout, dtype="<f4")
    return data.reshape(-1, channels).copy()


def decode_gray_frames(
    path: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    fps: Fraction | None = None,
    purpose: str | None = None,
) -> np.ndarray:
    """Decode every frame (or resampled to *fps*) as uint8 grey, shaped (frames, height, width)."""
    vf = f"scale={width}:{height}:flags=area,format=gray"
    if fps is not None:
        vf = f"fps={fps.numerator}/{fps.denominator}," + vf
    args = base_args() + ["-protocol_whitelist", INPUT_PROTOCOLS, "-i", file_arg(path), "-an",
                          "-vf", vf, "-fps_mode", "passthrough" if fps is None else "cfr",
                          "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"]
    proc = run(args, purpose or f"decoding frames from {str(path)!r}", stdout=subprocess.PIPE)
    data = np.frombuffer(proc.stdout, dtype=np.uint8)
    return data.reshape(-1, height, width).copy()
