"""Atomic file output and hashing.

Every file reelscore produces is first written to a temporary name in the destination folder and
then moved into place with ``os.replace``, so a crash, a full disk or Ctrl-C never leaves a
half-written output under the final name, and an earlier output survives until the new one is whole.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from reelscore.errors import OutputError

# mkstemp creates files readable by their owner only; outputs get the usual mode (0666 & ~umask)
# so a scored edit or WAV can be shared like any file the user writes. (Read once: os.umask can
# only be read by setting it.)
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _describe(exc: OSError, path: Path) -> OutputError:
    if exc.errno == errno.ENOSPC:
        return OutputError(
            f"disk full while writing {str(path)!r}",
            hint="free some space or choose another folder; nothing was overwritten",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(
            f"cannot write {str(path)!r}: {exc.strerror}",
            hint="choose a folder you can write to (-o / --work-dir)",
        )
    return OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside *path*; on success move it over *path* atomically.

    The temporary name keeps the final extension (ffmpeg picks formats by extension) unless
    *suffix* says otherwise. On any exception the temporary file is removed and *path* untouched.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{final.stem}.", suffix=suffix if suffix is not None else final.suffix,
            dir=final.parent,
        )
        os.close(fd)
        with contextlib.suppress(OSError):
            os.chmod(tmp_name, 0o666 & ~_UMASK)
    except OSError as exc:
        raise _describe(exc, final) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _describe(exc, final) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_output(path) as tmp:
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise _describe(exc, Path(path)) from exc


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
