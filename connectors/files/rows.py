"""Rows read from a file, typed with the converters API records use, each row knowing its place.

A file's values arrive as text (CSV) or already typed (Parquet, JSON). `parse_table` converts a
column in one vectorised cast when its values allow it and otherwise hands that column to
`records.to_arrow`, the API path, so a value that does not fit rejects its row only. Every
reject names the file's row and column (`row 48211: field Start: ... (value '09.11.2026')`) and
its record carries `_file` and `_row`, so the quarantine says where the row came from.

Empty CSV cells are absent values (the field's default applies, or the row is rejected when the
field is required); a quoted empty string stays an empty string in a text field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from connectors.converters import CALENDAR, outside_calendar, with_nul
from connectors.files.times import LocalTimes, localize
from connectors.records import EXTRA, Field, Parsed, Reject, flatten, to_arrow

__all__ = ["EXTRA_FIELD", "FileRecords", "file_fields", "name_rows", "parse_records", "parse_table"]

REQUIRED = "required but missing"
_CAST_FAILED = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
_ARROW_KINDS = {pa.string(): "text", pa.date32(): "date", pa.int64(): "int", pa.float64(): "float",
                pa.bool_(): "bool", pa.list_(pa.string()): "text_list"}


def file_fields(fields: Sequence[Field], extra: Sequence[pa.Field] = ()) -> tuple[Field, ...]:
    """A stream's fields plus its derived columns: in a file, every table column is read by name."""
    derived = tuple(Field(f.name, f.name, "timestamp" if pa.types.is_timestamp(f.type) else _ARROW_KINDS[f.type])
                    for f in extra)
    return (*fields, *derived)


EXTRA_FIELD = Field(EXTRA, EXTRA, "json", required=False)   # our exports carry `_extra`; an import restores it


class FileRecords(Sequence[dict]):
    """The raw record behind each row, built only when a row is rejected or fails a check."""

    def __init__(self, file: str, rows: Sequence[int], table: pa.Table) -> None:
        self.file, self.rows, self.table = file, rows, table
        self._values: dict[str, list[Any]] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if self._values is None:
            self._values = {name: _pylist(self.table.column(name)) for name in self.table.column_names}
        return {"_file": self.file, "_row": int(self.rows[index]),
                **{name: _shown(values[index]) for name, values in self._values.items()}}


def _pylist(column: pa.ChunkedArray) -> list[Any]:
    """Python values; instants past what Python holds (year 10000 in a Parquet file) as text."""
    try:
        return column.to_pylist()
    except (OverflowError, ValueError):
        return column.cast(pa.string()).to_pylist()


def _shown(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def name_rows(rejects: Sequence[Reject]) -> list[Reject]:
    """Rejects whose reason starts with the file row: `row 12: field Start: ...`."""
    return [r if r.reason.startswith("row ") or "_row" not in r.record
            else Reject(f"row {r.record['_row']}: {r.reason}", r.field, r.record) for r in rejects]


def parse_table(file: str, rows: Sequence[int], table: pa.Table, fields: Sequence[Field],
                rejects: Sequence[Reject] = (), times: LocalTimes = LocalTimes()) -> Parsed:
    """The stream's typed rows from a table of file columns; each field's `source` names its file column.

    `rows` holds the file row number of each table row; `rejects` are rows the reader could not
    split or decode, passed through. Columns a field reads that the file lacks are all-absent.
    A row's first problem rejects it: a required value missing, a local time that cannot be
    placed (`files.times`), a value that does not convert, one PostgreSQL cannot store.
    """
    raw = {f.column: _absent_as_null(table.column(f.source), f) if f.source in table.column_names
           else pa.nulls(table.num_rows, pa.string()) for f in fields}
    kept = _Kept(file, rows, table, raw, list(rejects))
    problems = _missing_required(raw, fields)
    for f in fields:
        if f.type == "timestamp":
            raw[f.column], placed = localize(raw[f.column], times)
            for row, reason in placed.items():
                problems.setdefault(row, (f, reason))
    kept.drop(problems)
    typed = {f.column: _cast(kept.raw[f.column], f) for f in fields}
    kept.drop(_unstorable(typed, fields), typed)
    slow = [f for f in fields if typed[f.column] is None]
    if slow:   # row by row, with the API's converters, only the columns whose cast failed
        values = {f.column: _python_values(kept.raw[f.column], f) for f in slow}
        converted = to_arrow(values, list(range(kept.table.num_rows)), slow)   # type: ignore[arg-type]
        records = FileRecords(file, kept.rows, kept.table)
        kept.rejects += [Reject(r.reason, r.field, records[r.record]) for r in converted.rejects]  # type: ignore[index]
        keep = pa.array(converted.records, pa.int64())
        typed = {name: array if array is None else array.take(keep) for name, array in typed.items()}
        typed.update({f.column: converted.table.column(f.column) for f in slow})
        kept.table, kept.rows = kept.table.take(keep), [kept.rows[i] for i in converted.records]  # type: ignore[call-overload,index]
    schema = pa.schema([pa.field(f.column, f.arrow_type) for f in fields])
    parsed = Parsed(pa.Table.from_arrays([typed[f.column] for f in fields], schema=schema),
                    FileRecords(file, kept.rows, kept.table), kept.rejects)  # type: ignore[arg-type]
    return _with_defaults(parsed, fields)


class _Kept:
    """The rows still standing, with their file numbers and raw columns; `drop` rejects the others."""

    def __init__(self, file: str, rows: Sequence[int], table: pa.Table, raw: dict[str, pa.Array],
                 rejects: list[Reject]) -> None:
        self.file, self.rows, self.table, self.raw, self.rejects = file, rows, table, raw, rejects

    def drop(self, problems: dict[int, tuple[Field, str]], typed: dict[str, pa.Array | None] | None = None) -> None:
        """Reject each row → (field, reason), naming the field and its value; the rest go on."""
        if not problems:
            return
        records = FileRecords(self.file, self.rows, self.table)
        for i, (f, reason) in sorted(problems.items()):
            value = _value(self.raw[f.column], i) if reason != REQUIRED else None
            shown = "" if reason == REQUIRED else f" (value {_show(value)})"
            self.rejects.append(Reject(f"field {f.sources[0]}: {reason}{shown}", f.sources[0], records[i]))
        keep = pa.array([i for i in range(self.table.num_rows) if i not in problems], pa.int64())
        self.table, self.rows = self.table.take(keep), [self.rows[i] for i in keep.to_pylist()]
        self.raw = {name: column.take(keep) for name, column in self.raw.items()}
        for name, array in (typed or {}).items():
            typed[name] = None if array is None else array.take(keep)   # type: ignore[index]


def _unstorable(typed: dict[str, pa.Array | None], fields: Sequence[Field]) -> dict[int, tuple[Field, str]]:
    """Row → (field, reason) for values PostgreSQL would refuse: outside its calendar, a NUL in text."""
    problems: dict[int, tuple[Field, str]] = {}
    for f in fields:
        array = typed[f.column]
        if array is None:
            continue
        for row in outside_calendar(array):
            problems.setdefault(row, (f, CALENDAR))
        for row in with_nul(array) if f.type == "text" else ():
            problems.setdefault(row, (f, "a NUL character (PostgreSQL text cannot hold it)"))
        for row in with_nul(array, "\\u0000") if f.type == "json" else ():
            problems.setdefault(row, (f, "JSON with \\u0000 (PostgreSQL jsonb cannot hold it)"))
    return problems


def parse_records(file: str, records: list[dict], fields: Sequence[Field],
                  rejects: Sequence[Reject] = (), times: LocalTimes = LocalTimes()) -> Parsed:
    """JSON records (each holding `_file` and `_row`) through the API path itself: flatten, then to_arrow.

    Keys no field reads are ignored (the caller warns about them), not kept as `_extra`: only a
    record's own `_extra` (a file we exported) is carried into that column.
    """
    columns, kept, broken = flatten(records, fields)
    columns, kept = _localized(columns, kept, fields, times, broken)
    columns[EXTRA] = [record.get(EXTRA) for record in kept]
    parsed = to_arrow(columns, kept, fields, [*rejects, *broken])
    unstorable = _unstorable({f.column: parsed.table.column(f.column).combine_chunks() for f in fields}, fields)
    if unstorable:   # what the converters let through and PostgreSQL would not (JSON holding \u0000)
        parsed.rejects += [Reject(f"field {f.sources[0]}: {reason}", f.sources[0], parsed.records[i])
                           for i, (f, reason) in sorted(unstorable.items())]
        keep = [i for i in range(parsed.table.num_rows) if i not in unstorable]
        parsed.table, parsed.records = parsed.table.take(pa.array(keep, pa.int64())), [parsed.records[i] for i in keep]
    for reject in parsed.rejects:
        reject.extra = None
    parsed.extra = []
    parsed.rejects = sorted(name_rows(parsed.rejects), key=lambda r: r.record.get("_row") or 0)
    return parsed


def _localized(columns: dict[str, list[Any]], kept: Sequence[dict], fields: Sequence[Field], times: LocalTimes,
               broken: list[Reject]) -> tuple[dict[str, list[Any]], Sequence[dict]]:
    """JSON values of timestamp fields with local times placed in the zone; rows that cannot be
    placed join `broken`, named by field and value."""
    problems: dict[int, tuple[Field, str]] = {}
    for f in fields:
        values = columns[f.column]
        if f.type != "timestamp" or not any(isinstance(v, str) for v in values):
            continue
        placed, found = localize(pa.array([v if isinstance(v, str) else None for v in values], pa.string()), times)
        columns[f.column] = [p if isinstance(v, str) else v for v, p in zip(values, placed.to_pylist())]
        for row, reason in found.items():
            problems.setdefault(row, (f, f"{reason} (value {_show(values[row])})"))
    if not problems:
        return columns, kept
    broken += [Reject(f"field {f.sources[0]}: {reason}", f.sources[0], kept[row]) for row, (f, reason) in problems.items()]
    keep = [i for i in range(len(kept)) if i not in problems]
    return {name: [values[i] for i in keep] for name, values in columns.items()}, [kept[i] for i in keep]


def _absent_as_null(column: pa.ChunkedArray, f: Field) -> pa.Array:
    """One array; an empty string is an absent value, except in a text field."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if f.type != "text" and (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.if_else(pc.equal(array, ""), pa.scalar(None, array.type), array)
    return array


def _missing_required(raw: dict[str, pa.Array], fields: Sequence[Field]) -> dict[int, tuple[Field, str]]:
    """Row → the first required field it lacks (the order `flatten` reports them in)."""
    missing: dict[int, tuple[Field, str]] = {}
    for f in fields:
        if f.required and raw[f.column].null_count:
            for row in pc.indices_nonzero(pc.is_null(raw[f.column])).to_pylist():
                missing.setdefault(row, (f, REQUIRED))
    return missing


def _value(array: pa.Array, i: int) -> Any:
    """One value of a column; instants and days as Arrow prints them (Python stops at year 9999)."""
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        return array.slice(i, 1).cast(pa.string())[0].as_py()
    return array[i].as_py()


def _show(value: Any) -> str:
    text = repr(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _cast(array: pa.Array, f: Field) -> pa.Array | None:
    """A vectorised cast where it means what the converters mean; None sends the column row by row."""
    source, kind = array.type, f.type
    textual = pa.types.is_string(source) or pa.types.is_large_string(source) or pa.types.is_null(source)
    allowed = (
        (textual and kind in ("text", "timestamp", "date", "int", "float"))
        or (pa.types.is_integer(source) and kind in ("int", "float", "text"))
        or (pa.types.is_floating(source) and kind in ("int", "float"))
        or (pa.types.is_timestamp(source) and source.tz is not None and kind == "timestamp")
        or (pa.types.is_date(source) and kind == "date")
        or (pa.types.is_boolean(source) and kind == "bool"))
    if textual and kind == "json":
        return array.cast(pa.string()) if all(map(_is_json, pc.drop_null(array).to_pylist())) else None
    if not allowed:
        return None
    try:
        return array.cast(f.arrow_type)
    except _CAST_FAILED:
        return None


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
        return True
    except orjson.JSONDecodeError:
        return False


def _python_values(array: pa.Array, f: Field) -> list[Any]:
    """Values for the converters; JSON text in a json or list field is parsed first."""
    values = array.to_pylist()
    if f.type in ("json", "text_list") and pa.types.is_string(array.type):
        values = [_json_or_text(v) for v in values]
    return values


def _json_or_text(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value   # the converter says what is wrong with it


def _with_defaults(parsed: Parsed, fields: Sequence[Field]) -> Parsed:
    """Absent optional values take the field's default, as in `flatten`; reasons name the row."""
    table = parsed.table
    for i, f in enumerate(fields):
        if not f.required and f.default is not None and table.column(i).null_count:
            filled = pc.fill_null(table.column(i), pa.scalar(f.default, f.arrow_type))
            table = table.set_column(i, table.schema.field(i), filled)
    rejects = sorted(name_rows(parsed.rejects), key=lambda r: r.record.get("_row") or 0)
    return dataclasses.replace(parsed, table=table, rejects=rejects)
