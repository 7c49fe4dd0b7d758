"""A per-scene brief: what the edit does not say about each scene's music.  (pure)

A CSV file (header row required) or a TOML file (an array of ``[[scene]]`` tables), one entry per
scene, with these names and no others:

  scene            the scene: its id in the plan (``s003``) or its record timecode (``01:00:10:00``,
                   the scene's first frame as the plan prints it)
  name             the section name (replaces the marker or clip name)
  styles           positive styles (CSV: separated by commas or semicolons; TOML: a list or such a string)
  negative_styles  negative styles, written the same way

Refused, naming the file and line: an unknown column or key (listing the allowed names), an entry
without ``scene``, a scene id the plan lacks, a timecode on which no scene starts (naming the nearest
scene's timecode), the same scene twice, and a brief with no entries.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from dataclasses import dataclass, field

from reelscore.errors import InputError
from reelscore.plan import ScorePlan
from reelscore.timecode import frames_to_tc, tc_to_frames

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

ALLOWED = ("scene", "name", "styles", "negative_styles")
_SPLIT = re.compile(r"[,;\n]+")
_SCENE_ID = re.compile(r"^s\d+$")


@dataclass(frozen=True)
class SceneBrief:
    scene_id: str
    name: str = ""
    styles: list[str] = field(default_factory=list)
    negative_styles: list[str] = field(default_factory=list)
    line: int = 0


@dataclass(frozen=True)
class _Entry:
    line: int
    values: dict[str, str | list[str]]


def _styles(value: str | list[str]) -> list[str]:
    parts = value if isinstance(value, list) else _SPLIT.split(value)
    return [p.strip() for p in parts if p.strip()]


def _csv_entries(text: str, source: str) -> list[_Entry]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return []
    names = [h.strip() for h in header]
    for h in names:
        if h not in ALLOWED:
            raise InputError(f"{source}, line 1: unknown column {h!r}",
                             hint=f"allowed columns: {', '.join(ALLOWED)}")
    out: list[_Entry] = []
    line = reader.line_num
    for row in reader:
        if any(cell.strip() for cell in row):
            if len(row) > len(names):
                raise InputError(f"{source}, line {line + 1}: {len(row)} cells but "
                                 f"{len(names)} columns in the header",
                                 hint="quote cells that contain commas")
            out.append(_Entry(line + 1, {k: v.strip() for k, v in zip(names, row)}))
        line = reader.line_num
    return out


def _toml_entries(text: str, source: str) -> list[_Entry]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML: {exc}") from exc
    for key in data:
        if key != "scene":
            raise InputError(f"{source}, line {_line_of(text, key)}: unknown key {key!r}",
                             hint="write one [[scene]] table per scene")
    tables = data.get("scene", [])
    if not isinstance(tables, list):
        raise InputError(f"{source}, line {_line_of(text, 'scene')}: 'scene' must be [[scene]] tables")
    headers = [i + 1 for i, ln in enumerate(text.splitlines()) if ln.strip().startswith("[[scene]]")]
    out: list[_Entry] = []
    for n, table in enumerate(tables):
        line = headers[n] if n < len(headers) else 0
        values: dict[str, str | list[str]] = {}
        for key, value in table.items():
            if key not in ALLOWED:
                raise InputError(f"{source}, line {_line_of(text, key, line)}: unknown key {key!r}",
                                 hint=f"allowed keys: {', '.join(ALLOWED)}")
            ok = isinstance(value, str) or (key.endswith("styles") and isinstance(value, list)
                                            and all(isinstance(v, str) for v in value))
            if not ok:
                raise InputError(f"{source}, line {_line_of(text, key, line)}: {key} must be "
                                 + ("text or a list of text" if key.endswith("styles") else "text"))
            values[key] = value
        out.append(_Entry(line, values))
    return out


def _line_of(text: str, key: str, after: int = 0) -> int:
    pattern = re.compile(rf"^\s*(\[+\s*)?[\"']?{re.escape(key)}[\"']?\s*[=\]]")
    for i, ln in enumerate(text.splitlines()[after:], after + 1):
        if pattern.match(ln):
            return i
    return after


def parse_brief(text: str, source: str, score_plan: ScorePlan) -> dict[str, SceneBrief]:
    """Entries of the brief keyed by the plan's scene id. *source* names the file (.csv or .toml)."""
    entries = (_toml_entries(text, source) if source.lower().endswith(".toml")
               else _csv_entries(text, source))
    if not entries:
        raise InputError(f"{source}: the brief has no scenes",
                         hint="add a row per scene (scene,name,styles,negative_styles), or leave "
                              "the brief out")
    rate = score_plan.fraction_rate
    by_id = {s.id: s for s in score_plan.scenes}
    by_start = {score_plan.start_frame + s.range.start: s.id for s in score_plan.scenes}
    out: dict[str, SceneBrief] = {}
    for e in entries:
        ref = e.values.get("scene", "")
        if not isinstance(ref, str) or not ref.strip():
            raise InputError(f"{source}, line {e.line}: no scene given",
                             hint="give the scene id (s003) or its record timecode (01:00:10:00)")
        ref = ref.strip()
        if _SCENE_ID.match(ref):
            if ref not in by_id:
                raise InputError(f"{source}, line {e.line}: the plan has no scene {ref}",
                                 hint=f"scenes run s001 to {score_plan.scenes[-1].id}; "
                                      "`reelscore plan EDIT` lists them")
            sid = ref
        else:
            frame = tc_to_frames(ref, rate, drop_frame=score_plan.drop_frame)
            if frame not in by_start:
                near = min(by_start, key=lambda f: (abs(f - frame), f))
                raise InputError(
                    f"{source}, line {e.line}: no scene starts at {ref}",
                    hint=f"the nearest scene ({by_start[near]}) starts at "
                         f"{frames_to_tc(near, rate, drop_frame=score_plan.drop_frame)}")
            sid = by_start[frame]
        if sid in out:
            raise InputError(f"{source}, line {e.line}: scene {sid} ({ref}) was already briefed "
                             f"on line {out[sid].line}", hint="keep one entry per scene")
        name = e.values.get("name", "")
        out[sid] = SceneBrief(sid, name.strip() if isinstance(name, str) else "",
                              _styles(e.values.get("styles", "")),
                              _styles(e.values.get("negative_styles", "")), e.line)
    return out
