"""Turning a source's JSON into typed Arrow rows, without losing the rows that do not fit.

A stream declares its columns as `Field`s: the column name, the source key (with the spelling
variants real installations use), and a type. `flatten` walks the payload (exploding a nested
list such as `states` or `historicData`) into columns of raw values; `to_arrow` converts each
column in one vectorised step and only falls back to row-by-row conversion when that step
fails, so one bad value rejects one row — with the field, the value and the reason — and the
rest of the batch goes on.

Keys no field declares are not dropped: `flatten` keeps them per record (`Parsed.extra`, and
`Reject.extra` for a rejected record) so that a new source field is noticed and its values kept
in the `_extra` column. Keys starting with `_` are annotations the pipeline adds (`_file`,
`_row`), never source fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .converters import CONVERTERS, outside_calendar

ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "json": pa.string(),
    "text_list": pa.list_(pa.string()),
}
EXTRA = "_extra"     # the column holding a record's undeclared keys, as a JSON object


@dataclass(frozen=True)
class Field:
    """One column of a stream and where its value comes from."""

    column: str
    source: str | tuple[str, ...] | Callable[[dict], Any]  # first key present wins: ("agentId", "agentID")
    type: str = "text"
    required: bool = True
    parent: bool = False            # read from the enclosing record of an exploded list
    default: Any = None             # the value of an absent optional key

    @property
    def sources(self) -> tuple[str, ...]:
        if callable(self.source):
            return (self.column,)
        return (self.source,) if isinstance(self.source, str) else self.source

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.type]


@dataclass
class Reject:
    """A record that could not become a row."""

    reason: str          # one line: which field, which value, why
    field: str | None
    record: dict[str, Any]
    extra: dict[str, Any] | None = None   # the record's undeclared keys


@dataclass
class Parsed:
    """Typed rows plus the raw record behind each row, and the rejects."""

    table: pa.Table
    records: Sequence[dict[str, Any]]     # the raw record behind each row (for quarantine)
    rejects: list[Reject] = field(default_factory=list)
    extra: list[dict[str, Any] | None] = field(default_factory=list)  # per row; empty: not collected


def flatten(payload: Any, fields: Sequence[Field], *, root: Callable[[Any], Iterable[Any]] | None = None,
            explode: str | None = None) -> tuple[dict[str, list[Any]], Sequence[dict[str, Any]], list[Reject]]:
    """Raw values per column (and the undeclared keys per row under `EXTRA`), the raw record of
    each row, and records too broken to read.

    Column by column: each field's values are gathered in one pass over the rows, and a row is
    dropped (a `Reject`) when a required field is absent or null in it — the first such field
    in declaration order (parent fields first) is the one named.
    """
    rows = _Rows(items_of(payload, root), explode)
    seen: set[str] = set()          # keys the callable sources read
    parent_fields = [f for f in fields if f.parent] if explode else []
    own_fields = [f for f in fields if not f.parent] if explode else list(fields)
    columns = {f.column: rows.parent_values(f, seen) for f in parent_fields}
    columns.update({f.column: _gather(rows.children, f, seen) for f in own_fields})
    missing = _first_missing(columns, [*parent_fields, *own_fields])
    keep = [i for i in range(len(rows.children)) if i not in missing] if missing else None
    for f in fields:
        values = columns[f.column] if keep is None else [columns[f.column][i] for i in keep]
        columns[f.column] = values if f.default is None else [f.default if v is None else v for v in values]
    rejects = rows.rejects + [Reject(f"field {f.sources[0]}: required but missing", f.sources[0], rows.record(i))
                              for i, f in sorted(missing.items())]
    records = rows.records(keep)
    known = {key for f in fields if not callable(f.source) for key in f.sources} | seen | {explode or ""}
    columns[EXTRA] = records.undeclared(known) if isinstance(records, RawRecords) else \
        [_undeclared(r, known) for r in records]
    for reject in rejects:
        if reject.field is not None:      # not for a non-object, which has no keys of its own
            reject.extra = _undeclared(reject.record, known)
    return columns, records, rejects


def items_of(payload: Any, root: Callable[[Any], Any] | None = None) -> list[Any]:
    """The records of one answer: the payload itself, or where `root` says they sit (none: [])."""
    items = root(payload) if root else payload
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValueError(f"expected a JSON array, got {type(items).__name__}")
    return items


class _Rows:
    """The payload's rows: the items themselves, or the elements of each item's `explode` list."""

    def __init__(self, items: list, explode: str | None):
        self.parents: list[dict] = []
        self.owner: list[int] = []        # row -> index of its parent in `parents`
        self.children: list[dict] = []
        self.rejects: list[Reject] = []
        for item in items:
            if not isinstance(item, dict):
                self.rejects.append(Reject(f"record is a {type(item).__name__}, not an object", None, {"value": item}))
            elif explode is None:
                self.children.append(item)
            else:
                self._explode(item, explode)
        self.exploded = explode is not None
        self.outer = [{k: v for k, v in p.items() if not isinstance(v, list)} for p in self.parents]

    def _explode(self, item: dict, explode: str) -> None:
        elements = item.get(explode)
        if not isinstance(elements, list):
            if elements is not None:
                self.rejects.append(Reject(f"field {explode}: expected a list", explode, item))
            return
        children = [e for e in elements if isinstance(e, dict)]
        if len(children) < len(elements):
            self.rejects.extend(Reject(f"field {explode}: an element is not an object", explode, item)
                                for _ in range(len(elements) - len(children)))
        self.owner.extend([len(self.parents)] * len(children))
        self.children.extend(children)
        self.parents.append(item)

    def parent_values(self, f: Field, seen: set[str]) -> list[Any]:
        """A parent field's value for every row, looked up once per parent."""
        values = [_value(_lookup(p, f, seen)) for p in self.parents]
        return [values[o] for o in self.owner]

    def record(self, row: int) -> dict[str, Any]:
        """The raw record of a row: an exploded element merged with its parent's scalar keys."""
        child = self.children[row]
        return {**self.outer[self.owner[row]], **child} if self.exploded else child

    def records(self, keep: list[int] | None) -> Sequence[dict[str, Any]]:
        """The raw records of the kept rows: the items themselves, or lazily merged elements."""
        children = self.children if keep is None else [self.children[i] for i in keep]
        if not self.exploded:
            return children
        return RawRecords(children, self.owner if keep is None else [self.owner[i] for i in keep], self.outer)


class RawRecords(Sequence):
    """Exploded rows' raw records, each merged with its parent's scalar keys only when read.

    Most batches never read them (they are for quarantine), so no merged copy is kept per row.
    """

    def __init__(self, children: list[dict], owner: list[int], outer: list[dict]):
        self.children, self.owner, self.outer = children, owner, outer

    def __len__(self) -> int:
        return len(self.children)

    def __getitem__(self, row):  # type: ignore[override]
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        return {**self.outer[self.owner[row]], **self.children[row]}

    def undeclared(self, known: set[str]) -> list[dict[str, Any] | None]:
        """`_undeclared` of every record, the parent's part computed once per parent."""
        parents = [_undeclared(o, known) for o in self.outer]
        out: list[dict[str, Any] | None] = []
        for child, owner in zip(self.children, self.owner):
            own, parent = _undeclared(child, known), parents[owner]
            out.append(own if parent is None else parent if own is None else dict(sorted({**parent, **own}.items())))
        return out


def _gather(rows: list[dict], f: Field, seen: set[str]) -> list[Any]:
    """One field's raw values over all rows; None where absent or null."""
    if callable(f.source) or len(f.sources) > 1:
        return [_value(_lookup(row, f, seen)) for row in rows]
    key = f.sources[0]
    return [row.get(key) for row in rows]


def _first_missing(columns: dict[str, list[Any]], fields: Sequence[Field]) -> dict[int, Field]:
    """Row -> the first required field (in `fields` order) that the row lacks."""
    missing: dict[int, Field] = {}
    for f in fields:
        if f.required:
            for row, value in enumerate(columns[f.column]):
                if value is None and row not in missing:
                    missing[row] = f
    return missing


def _value(found: Any) -> Any:
    return None if found is _MISSING else found


def _undeclared(record: dict[str, Any], known: set[str]) -> dict[str, Any] | None:
    """The record's keys that no field reads, or None."""
    keys = record.keys() - known
    extra = {k: record[k] for k in sorted(keys) if not k.startswith("_")} if keys else None
    return extra or None


_MISSING = object()
NONE = type(None)


class _Reading(dict):
    """A copy of a record that notes the keys a callable source reads (they are not undeclared)."""

    def __init__(self, record: dict, seen: set[str]):
        super().__init__(record)
        self.seen = seen

    def __getitem__(self, key: str) -> Any:
        self.seen.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.seen.add(key)  # type: ignore[arg-type]
        return super().__contains__(key)


def _lookup(record: dict, f: Field, seen: set[str]) -> Any:
    """The raw value, or _MISSING when the key is absent or null (then the default applies)."""
    if callable(f.source):
        try:
            value = f.source(_Reading(record, seen))
        except (KeyError, TypeError, ValueError, IndexError):
            return _MISSING
        return _MISSING if value is None else value
    for key in f.sources:
        if key in record:
            value = record[key]
            return _MISSING if value is None else value
    return _MISSING


def to_arrow(columns: dict[str, list[Any]], records: Sequence[dict[str, Any]], fields: Sequence[Field],
             rejects: list[Reject] | None = None) -> Parsed:
    """Typed Arrow table; rows with a value that does not convert become rejects."""
    rejects = list(rejects or [])
    extra = columns.get(EXTRA) or []
    bad: dict[int, Reject] = {}
    arrays = []
    for f in fields:
        array, errors = _convert(columns[f.column], f)
        for row, reason in errors.items():
            bad.setdefault(row, Reject(reason, f.sources[0], records[row], extra[row] if extra else None))
        arrays.append(array)
    schema = pa.schema([pa.field(f.column, f.arrow_type) for f in fields])
    table = pa.Table.from_arrays(arrays, schema=schema)
    if bad:
        keep = [i for i in range(len(records)) if i not in bad]
        table = table.take(pa.array(keep, pa.int64()))
        records = [records[i] for i in keep]
        extra = [extra[i] for i in keep] if extra else []
        rejects.extend(bad[i] for i in sorted(bad))
    return Parsed(table, records, rejects, list(extra))


def _convert(values: list[Any], f: Field) -> tuple[pa.Array, dict[int, str]]:
    """Vectorised conversion first; row-by-row only to find and null out the bad values."""
    target = f.arrow_type
    try:
        return _fast(values, f.type, target), {}
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError):
        pass
    converter = CONVERTERS[f.type]
    out: list[Any] = []
    errors: dict[int, str] = {}
    for i, value in enumerate(values):
        try:
            out.append(None if value is None else converter(value))
        except (TypeError, ValueError, OverflowError) as exc:
            errors[i] = f"field {f.sources[0]}: {exc} (value {_show(value)})"
            out.append(None)
    return pa.array(out, target), errors


def _fast(values: list[Any], kind: str, target: pa.DataType) -> pa.Array:
    if kind in ("timestamp", "date"):
        array = pa.array(values, pa.string()).cast(target)
        if outside_calendar(array):   # Arrow reads year 0 and 10000; the converters name the rows
            raise ValueError("outside the calendar")
        return array
    if kind == "json":
        return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], target)
    types = set(map(type, values))     # one C-level pass; the checks below read this small set
    if kind == "text":
        if not types <= {str, NONE}:
            raise TypeError("not all strings")
        array = pa.array(values, target)
        if pc.any(pc.match_substring(array, "\x00")).as_py():
            raise ValueError("a NUL character")   # to_text names the rows
        return array
    if kind in ("int", "float", "bool"):
        if str in types or (kind != "bool" and bool in types):
            raise TypeError("strings or booleans among numbers")
        if kind == "int" and float in types:
            raise TypeError("floats among integers")
    return pa.array(values, target)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
