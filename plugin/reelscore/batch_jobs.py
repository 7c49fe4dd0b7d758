"""What a batch scores: one :class:`BatchItem` per edit, from ``EDIT... -o OUTDIR`` or a jobs file.

Each edit is written to ``OUTDIR/<edit name>.scored.<its own extension>`` with its job folder
beside it (``<output>.reelscore``, the same rule as ``reelscore score``), unless a jobs file row
names its own ``output`` (relative to OUTDIR).

Jobs files (``--jobs``), one row per edit; relative paths are relative to the jobs file:

- ``jobs.toml``: ``[[job]]`` tables, e.g. ``edit = "ep01.otio"``, ``description = "..."``,
  ``tags = ["dark"]``;
- ``jobs.csv``: a header row, then one edit per row; an empty cell is "not set"; the list
  columns (``tags``, ``media_roots``) take ``;``-separated values.

Columns: ``edit`` (required), ``output``, and any per-edit setting by its configuration name
(``description``, ``tags``, ``target_lufs``, ``range_in``, ``range_out``, ``reference`` ...; see
:data:`SETTING_COLUMNS`). A row's setting wins over the batch's flags for that edit. An unknown
column, a bad value or two rows with the same output is an :class:`InputError` naming the row and
column, raised before anything runs.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reelscore.errors import InputError
from reelscore.settings import FrontEndValues

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

# Sections are configuration-file tables, not per-edit values; the scheduler is the whole batch's
# (a per-edit one could not be honoured, so it is an unknown column rather than ignored).
_SECTIONS = {"provider_options", "uploader", "cuesheet"}
_BATCH_WIDE = {"scheduler"}
SETTING_COLUMNS: tuple[str, ...] = tuple(sorted(set(FrontEndValues.model_fields) - _SECTIONS
                                                - _BATCH_WIDE))
_PATH_SETTINGS = {"reference", "composition", "brief", "previous"}
_LIST_SETTINGS = {"tags", "media_roots"}


@dataclass(frozen=True)
class BatchItem:
    """One edit of a batch: where it is read from, written to, and its own settings."""

    row: str  # how the user finds it again: "ep01.otio" or "jobs.csv row 3"
    edit: Path
    output: Path
    work_dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)  # front-end values (config names)

    @property
    def name(self) -> str:
        """The output's file name: unique within a batch."""
        return self.output.name

    def values(self, shared: FrontEndValues) -> FrontEndValues:
        """The batch's front-end values with this edit's own settings on top."""
        return FrontEndValues.model_validate(
            {**shared.model_dump(exclude_unset=True, exclude_none=True), **self.overrides})


def default_output(edit: Path, outdir: Path) -> Path:
    """``OUTDIR/<edit name>.scored.<its own extension>``."""
    return outdir / f"{edit.stem}.scored{edit.suffix}"


def _work_dir(output: Path) -> Path:
    return output.parent / f"{output.name}.reelscore"


def items_from_edits(edits: Sequence[Path], outdir: Path) -> list[BatchItem]:
    """``reelscore batch EDIT... -o OUTDIR``."""
    rows = [BatchItem(row=str(e), edit=e, output=(out := default_output(e, outdir)),
                      work_dir=_work_dir(out)) for e in edits]
    _check_unique(rows)
    return rows


def items_from_jobs(jobs: Path, outdir: Path) -> list[BatchItem]:
    """``reelscore batch --jobs jobs.toml|jobs.csv -o OUTDIR``."""
    suffix = jobs.suffix.lower()
    if suffix not in (".toml", ".csv"):
        raise InputError(f"the jobs file {str(jobs)!r} is neither .toml nor .csv",
                         hint="name it jobs.toml ([[job]] tables) or jobs.csv (a header row)")
    try:
        text = jobs.read_text("utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the jobs file {str(jobs)!r}: {exc.strerror}",
                         hint="check the --jobs path") from exc
    raw = _toml_rows(jobs, text) if suffix == ".toml" else _csv_rows(jobs, text)
    if not raw:
        raise InputError(f"the jobs file {str(jobs)!r} lists no edit",
                         hint="add one row (CSV) or one [[job]] table (TOML) per edit")
    rows = [_item(jobs, where, values, outdir) for where, values in raw]
    _check_unique(rows)
    return rows


def _toml_rows(jobs: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{jobs.name}: not valid TOML ({exc})",
                         hint="see README Usage, batch, for the jobs file") from exc
    extra = sorted(set(doc) - {"job"})
    if extra:
        raise InputError(f"{jobs.name}: unknown table or key {extra[0]!r}",
                         hint="a jobs file holds only [[job]] tables")
    tables = doc.get("job", [])
    if not isinstance(tables, list):
        raise InputError(f"{jobs.name}: 'job' must be an array of tables",
                         hint="write [[job]] (two brackets) before each edit")
    return [(f"{jobs.name} job {i}", dict(t)) for i, t in enumerate(tables, 1)]


def _csv_rows(jobs: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    _check_columns(jobs.name + " header", [h.strip() for h in header])
    rows: list[tuple[str, dict[str, Any]]] = []
    for n, record in enumerate(reader, 2):  # row 1 is the header
        where = f"{jobs.name} row {n}"
        if None in record:
            raise InputError(f"{where}: more cells than the header has columns",
                             hint="quote cells that contain commas")
        values: dict[str, Any] = {}
        for key, cell in record.items():
            cell = (cell or "").strip()
            if not cell:
                continue
            name = key.strip()
            values[name] = ([v.strip() for v in cell.split(";") if v.strip()]
                            if name in _LIST_SETTINGS else cell)
        if values:
            rows.append((where, values))
    return rows


def _check_columns(where: str, names: Iterable[str]) -> None:
    allowed = {"edit", "output", *SETTING_COLUMNS}
    for name in names:
        if name not in allowed:
            raise InputError(f"{where}: unknown column {name!r}",
                             hint="columns: edit, output, " + ", ".join(SETTING_COLUMNS))


def _resolve(base: Path, value: Any) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def _item(jobs: Path, where: str, values: dict[str, Any], outdir: Path) -> BatchItem:
    _check_columns(where, values)
    if not values.get("edit"):
        raise InputError(f"{where}: no edit", hint="every row needs an edit column")
    base = jobs.parent
    edit = _resolve(base, values.pop("edit"))
    output = (_resolve(outdir, values.pop("output")) if values.get("output")
              else default_output(edit, outdir))
    values.pop("output", None)
    for key in _PATH_SETTINGS & set(values):
        values[key] = str(_resolve(base, values[key]))
    if "media_roots" in values:
        values["media_roots"] = [str(_resolve(base, v)) for v in values["media_roots"]]
    try:
        checked = FrontEndValues.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        column = ".".join(str(p) for p in first["loc"][:1])
        raise InputError(f"{where}, column {column!r}: {first.get('input')!r}: {first['msg']}",
                         hint="see README Configuration for the accepted values") from None
    return BatchItem(row=where, edit=edit, output=output, work_dir=_work_dir(output),
                     overrides=checked.model_dump(exclude_unset=True, exclude_none=True))


def _check_unique(rows: Sequence[BatchItem]) -> None:
    seen: dict[Path, BatchItem] = {}
    for item in rows:
        key = item.output.absolute()
        if key in seen:
            raise InputError(
                f"{seen[key].row} and {item.row} would both write {str(item.output)!r}",
                hint="give one of them another output (jobs file column 'output'), or rename "
                     "one edit")
        seen[key] = item
