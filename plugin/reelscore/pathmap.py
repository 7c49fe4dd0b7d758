"""Path mapping between machines that mount the same shared storage differently.

An entry ``SOURCE=TARGET`` (``--path-map /Volumes/RAID=/mnt/raid``, repeatable, or
``path_map = ["/Volumes/RAID=/mnt/raid"]`` in the configuration or a profile) says: a path that
starts with SOURCE on the machine that wrote it (the editor's Mac, the submitting machine) is
TARGET + the rest of the path on the machine that reads it (a Dask worker). It is applied to the
edit, output and job-folder paths a batch hands a worker, and to the media paths inside the edit
when they are resolved.

Rules:

- SOURCE matches whole path components: ``/Volumes/RAID`` maps ``/Volumes/RAID/ep1/a.mov`` and
  ``/Volumes/RAID`` itself, never ``/Volumes/RAID2/a.mov``. The longest matching SOURCE wins.
- The rest of the path is joined with TARGET's separator (``D:\\Media=/mnt/media`` turns
  ``D:\\Media\\ep1\\a.mov`` into ``/mnt/media/ep1/a.mov``); Windows drive letters and UNC hosts
  compare without regard to case, POSIX components exactly.
- Both sides must be absolute (``/...``, ``C:\\...``, ``\\\\host\\share``); a SOURCE given twice
  with different TARGETs is refused.

Pure: nothing here touches the file system (whether a mapped path exists is the caller's check,
and :meth:`PathMap.explain` words the mapping tried for its error).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from reelscore.errors import InputError

_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def _is_absolute(path: str) -> bool:
    return path.startswith(("/", "\\\\")) or bool(_DRIVE.match(path))


def _windows_style(path: str) -> bool:
    return path.startswith("\\\\") or bool(_DRIVE.match(path))


def _components(path: str) -> list[str]:
    """The path's components ('' for the POSIX root), separators of either kind."""
    parts = re.split(r"[\\/]+", path)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()  # a trailing separator
    return parts


def _same(a: str, b: str, *, fold: bool) -> bool:
    return a.lower() == b.lower() if fold else a == b


@dataclass(frozen=True)
class PathMapping:
    """One ``SOURCE=TARGET`` entry."""

    source: str
    target: str

    @property
    def text(self) -> str:
        return f"{self.source}={self.target}"

    def apply(self, path: str) -> str | None:
        """*path* under TARGET, or None when SOURCE is not a leading run of its components."""
        src, parts = _components(self.source), _components(path)
        if src == [""]:  # SOURCE is the root: everything matches
            src = []
            parts = parts[1:] if parts and parts[0] == "" else parts
        fold = _windows_style(self.source)
        if len(parts) < len(src) or not all(
                _same(a, b, fold=fold) for a, b in zip(src, parts[: len(src)])):
            return None
        rest = [p for p in parts[len(src):] if p]
        sep = "\\" if _windows_style(self.target) and "/" not in self.target else "/"
        base = self.target.rstrip("\\/") or self.target[:1]
        if not rest:
            return base
        return base + ("" if base.endswith(sep) else sep) + sep.join(rest)


@dataclass(frozen=True)
class PathMap:
    """The entries in force, longest SOURCE first (see the module docstring)."""

    mappings: tuple[PathMapping, ...] = ()

    @classmethod
    def parse(cls, entries: Sequence[str], *, name: str = "--path-map") -> PathMap:
        """Parse ``SOURCE=TARGET`` entries; *name* is how the user gave them (for errors)."""
        found: dict[str, PathMapping] = {}
        for entry in entries:
            source, sep, target = str(entry).partition("=")
            source, target = source.strip(), target.strip()
            if not sep or not source or not target:
                raise InputError(f"{name} {entry!r} is not SOURCE=TARGET",
                                 hint="e.g. --path-map /Volumes/RAID=/mnt/raid (the path on the "
                                      "submitting machine = the path on the worker)")
            for side, what in ((source, "SOURCE"), (target, "TARGET")):
                if not _is_absolute(side):
                    raise InputError(f"{name} {entry!r}: {what} {side!r} is not an absolute path",
                                     hint="give both sides as absolute paths, e.g. "
                                          "/Volumes/RAID=/mnt/raid")
            key = "/".join(_components(source))
            if _windows_style(source):
                key = key.lower()
            earlier = found.get(key)
            if earlier is not None and earlier.target.rstrip("\\/") != target.rstrip("\\/"):
                raise InputError(f"{name} maps {source!r} twice: to {earlier.target!r} and to "
                                 f"{target!r}", hint="keep one TARGET for each SOURCE")
            found[key] = PathMapping(source, target)
        ordered = sorted(found.values(), key=lambda m: len(_components(m.source)), reverse=True)
        return cls(tuple(ordered))

    def __bool__(self) -> bool:
        return bool(self.mappings)

    @property
    def entries(self) -> list[str]:
        return [m.text for m in self.mappings]

    def match(self, path: str) -> tuple[PathMapping, str] | None:
        """The entry that maps *path* and the mapped path (None: no entry matches)."""
        for mapping in self.mappings:
            mapped = mapping.apply(path)
            if mapped is not None:
                return mapping, mapped
        return None

    def map(self, path: str) -> str:
        """*path* as the reading machine sees it (unchanged when no entry matches)."""
        hit = self.match(path)
        return hit[1] if hit is not None else path

    def explain(self, path: str) -> str:
        """The mapping tried for *path*, in words for an error message."""
        hit = self.match(path)
        if hit is not None:
            return f"mapped by --path-map {hit[0].text} to {hit[1]!r}"
        if not self.mappings:
            return "no --path-map given"
        return f"no --path-map entry matches it (entries: {', '.join(self.entries)})"
