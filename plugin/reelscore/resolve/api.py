"""The one typed seam to Resolve's untyped scripting objects.

Resolve never raises: object getters return ``None``, list getters ``[]`` (sometimes ``None``),
mutators ``False``, and unknown methods return ``None`` too. Every call reelscore makes goes
through :meth:`Ref.call`, which checks the result against what the call promises and raises a
:class:`ResolveCallError` naming the call, its arguments, the object it was made on and what to
try. ``hasattr`` is useless on Resolve objects (always true), so presence is tested with
``name in dir(obj)`` (:meth:`Ref.has`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from reelscore.errors import ReelscoreError

log = logging.getLogger(__name__)

Expect = Literal["object", "true", "list", "nonempty", "dict", "str", "text", "number", "any"]


class ResolveError(ReelscoreError):
    """Something in or about DaVinci Resolve stopped the run (exit 8)."""

    exit_code = 8


class ResolveUnavailableError(ResolveError):
    """No scripting connection: Resolve not running, Free edition, external scripting off."""


class ResolveCallError(ResolveError):
    """A Resolve API call returned its failure value (None / False / [] / wrong type)."""

    def __init__(
        self,
        call: str,
        target: str,
        result: Any,
        *,
        expected: str,
        hint: str | None = None,
        message: str | None = None,
    ) -> None:
        self.call = call
        self.target = target
        self.result = result
        text = message or f"Resolve call {call} on {target} returned {_short(result)} ({expected})"
        super().__init__(text, hint=hint)


class ResolveRenderError(ResolveError):
    """A render job failed, timed out or produced the wrong frames."""


class PlacementError(ResolveError):
    """The music could not be placed (or landed wrong) and what was added has been undone."""


_EXPECTED: dict[str, str] = {
    "object": "expected an object",
    "true": "expected True",
    "list": "expected a list",
    "nonempty": "expected a non-empty list",
    "dict": "expected a dict",
    "str": "expected a string",
    "text": "expected a non-empty string",
    "number": "expected a number",
    "any": "",
}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_call(kind: str, method: str, args: tuple[Any, ...]) -> str:
    return f"{kind}.{method}({', '.join(_short(a, 40) for a in args)})"


def _ok(result: Any, expect: Expect) -> bool:
    if expect == "any":
        return True
    if expect == "object":
        return result is not None and result is not False
    if expect == "true":
        return bool(result) and result is not None
    if expect == "list":
        return isinstance(result, (list, tuple))
    if expect == "nonempty":
        return isinstance(result, (list, tuple)) and len(result) > 0
    if expect == "dict":
        return isinstance(result, dict)
    if expect == "str":
        return isinstance(result, str)
    if expect == "text":
        return isinstance(result, str) and result.strip() != ""
    if expect == "number":
        return isinstance(result, (int, float)) and not isinstance(result, bool)
    raise AssertionError(expect)


def has_method(obj: Any, name: str) -> bool:
    """Whether a Resolve object offers *name* (``hasattr`` is always true on them)."""
    try:
        return name in dir(obj)
    except Exception:  # a dead IPC proxy may fail dir()
        return False


def same_object(a: Any, b: Any) -> bool:
    """Resolve may hand out a new proxy per call: compare unique ids when identity fails."""
    if a is b:
        return True
    if a is None or b is None:
        return False
    ida = a.GetUniqueId() if has_method(a, "GetUniqueId") else None
    return bool(ida) and ida == (b.GetUniqueId() if has_method(b, "GetUniqueId") else None)


@dataclass(frozen=True)
class Ref:
    """A Resolve object with what it is (``kind``, e.g. "Timeline") and which one (``label``)."""

    obj: Any
    kind: str
    label: str

    def call(
        self,
        method: str,
        *args: Any,
        expect: Expect = "object",
        hint: str | None = None,
    ) -> Any:
        """Call *method*; raise ResolveCallError unless the result is what *expect* says."""
        name = format_call(self.kind, method, args)
        fn = getattr(self.obj, method, None)
        result = fn(*args) if callable(fn) else None
        log.debug("%s on %s -> %s", name, self.label, _short(result))
        if _ok(result, expect):
            return result
        if not has_method(self.obj, method):
            hint = (
                f"this Resolve build does not list {self.kind}.{method}; update DaVinci Resolve"
                + (f" ({hint})" if hint else "")
            )
        raise ResolveCallError(name, self.label, result, expected=_EXPECTED[expect], hint=hint)

    def get(self, method: str, *args: Any, kind: str, label: str, hint: str | None = None) -> Ref:
        """Call a getter that returns another Resolve object and wrap it."""
        return Ref(self.call(method, *args, hint=hint), kind, label)

    def probe(self, method: str, *args: Any) -> Any:
        """Call an optional method; ``None`` if the build lacks it. The caller checks the value."""
        if not has_method(self.obj, method):
            return None
        fn = getattr(self.obj, method, None)
        return fn(*args) if callable(fn) else None

    def has(self, method: str) -> bool:
        return has_method(self.obj, method)


def as_int(value: Any, default: int | None = None) -> int | None:
    """Resolve returns numbers as int, float or str ('720'); '' means unset."""
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, (int, float)):
        return round(value)
    try:
        return round(float(str(value).strip()))
    except ValueError:
        return default


def as_float(value: Any, default: float | None = None) -> float | None:
    if isinstance(value, bool) or value is None:
        return default
    try:
        return float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except ValueError:
        return default
