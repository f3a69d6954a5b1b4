"""The schema-drift contract of a stream: what a window may change about its fields, and what not.

A source that adds a field, drops one or changes a value's type does it to every record at once,
so drift is judged per window, on the parse of all its records:

- **new**: a key no field declares. Recorded, surfaced, and kept: its values ride along in the
  row's `_extra` JSON column, and the window lands as usual.
- **missing**: a required field absent from every record of the window (a rename looks like a
  missing field plus a new one). The window is held: every record goes to quarantine with a
  reason naming the field, and the stream fails; the other streams go on.
- **type_changed**: a field whose value converts in no record of the window (an integer that
  became an object, a date that became a number). Held the same way.

Several streams read one answer (`GET /agents` gives departments, employees and vacation
balances): a key another stream of the same endpoint reads is not new to this one. A field
missing from, or failing in, only some records is a bad row, not drift: those rows are
rejected one by one as before. Every change is upserted into `wfm_meta.schema_drift` in the
window's landing transaction (first and last run that saw it, how many runs), so
`record` must be called inside that transaction; `surface` logs and publishes a run's changes.
File imports are not judged here: a file's columns have their own contract (`connectors/files/__init__.py`).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field

import orjson
import psycopg
import pyarrow as pa

from connectors.records import EXTRA, Parsed, Reject
from connectors.streams import Stream
from engine.landing.warehouse import jsonb_safe

__all__ = ["Drift", "DriftReport", "inspect", "quarantined", "record", "seen_by", "surface", "with_extra"]

NEW, MISSING, TYPE_CHANGED = "new", "missing", "type_changed"
BREAKING = (MISSING, TYPE_CHANGED)


@dataclass(frozen=True)
class Drift:
    """One change of one source field, as a window shows it."""

    field: str             # the source key: "startCall", not the column "started_at"
    kind: str              # new | missing | type_changed
    example: str | None = None


@dataclass(frozen=True)
class DriftReport:
    """The drift a window shows; `breaking` changes hold the window."""

    stream: str
    changes: tuple[Drift, ...] = field(default_factory=tuple)

    @property
    def breaking(self) -> list[Drift]:
        return [c for c in self.changes if c.kind in BREAKING]

    @property
    def new(self) -> list[Drift]:
        return [c for c in self.changes if c.kind == NEW]

    @property
    def message(self) -> str:
        """One line: `schema drift: required field startCall is missing from every record; new field callStart`."""
        parts = [f"required field {c.field} is missing from every record" if c.kind == MISSING
                 else f"field {c.field} changed type ({c.example})" for c in self.breaking]
        if self.new:
            parts.append("new field" + ("s " if len(self.new) > 1 else " ") + ", ".join(c.field for c in self.new))
        return "schema drift: " + "; ".join(parts) if parts else ""


def inspect(stream: Stream, parsed: Parsed) -> DriftReport:
    """The drift of one parsed window (see the module docstring for the rules)."""
    read = parsed.table.num_rows + len(parsed.rejects)
    if not read:
        return DriftReport(stream.name)
    new: dict[str, str] = {}
    for extra in [*parsed.extra, *(r.extra for r in parsed.rejects)]:
        for key, value in (_own(stream, extra) or {}).items():
            new.setdefault(key, _show(value))
    failures: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    for reject in parsed.rejects:
        if reject.field is None:
            continue
        kind = MISSING if reject.reason.endswith("required but missing") else TYPE_CHANGED
        failures[(reject.field, kind)] += 1
        examples.setdefault((reject.field, kind), reject.reason.split(": ", 1)[-1])
    breaking = [Drift(name, kind, None if kind == MISSING else examples[(name, kind)])
                for (name, kind), count in sorted(failures.items()) if count == read]
    return DriftReport(stream.name, (*breaking, *(Drift(k, NEW, v) for k, v in sorted(new.items()))))


def with_extra(stream: Stream, parsed: Parsed) -> pa.Table:
    """The parsed table with its `_extra` column: each row's new keys as JSON, or null."""
    table = parsed.table
    if EXTRA in table.column_names:
        return table
    collected = len(parsed.extra) == table.num_rows
    values = [_own(stream, v) for v in parsed.extra] if collected else [None] * table.num_rows
    column = pa.array([None if v is None else _json(v) for v in values], pa.string())
    return table.append_column(EXTRA, column)


def _json(value: object) -> str:
    """Keys sorted; a value nested deeper than orjson goes (254 levels) takes the standard library."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()
    except TypeError:
        text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return jsonb_safe(text)


@functools.cache
def _read_by_endpoint(system: str, endpoint: str) -> frozenset[str]:
    """The keys the streams of one endpoint read: their fields' sources and their nested lists."""
    from engine.catalog import IMPORTABLE

    return frozenset(key for other in IMPORTABLE.values() if (other.system, other.endpoint) == (system, endpoint)
                     for key in [*(k for f in other.fields if not callable(f.source) for k in f.sources),
                                 *([other.explode] if other.explode else [])])


def _own(stream: Stream, extra: dict | None) -> dict | None:
    """The undeclared keys no stream of this endpoint reads, or None."""
    if not extra:
        return None
    known = _read_by_endpoint(stream.system, stream.endpoint)
    return {k: v for k, v in extra.items() if k not in known} or None


def quarantined(parsed: Parsed, report: DriftReport) -> list[Reject]:
    """Every record of a drifted window, with the drift as the reason."""
    named = report.breaking[0].field if report.breaking else None
    return [Reject(report.message, named, raw) for raw in [*parsed.records, *(r.record for r in parsed.rejects)]]


def record(conn: psycopg.Connection, run_id: uuid.UUID, report: DriftReport, source: str = "default") -> None:
    """Upsert the window's changes into `wfm_meta.schema_drift`; call inside the landing transaction."""
    if not report.changes:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO wfm_meta.schema_drift AS d (stream, source, field, kind, first_seen_run, last_seen_run,
               example) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (stream, source, field, kind) DO UPDATE SET
               last_seen_run = EXCLUDED.last_seen_run, last_seen_at = now(),
               runs = d.runs + CASE WHEN d.last_seen_run = EXCLUDED.last_seen_run THEN 0 ELSE 1 END""",
            [(report.stream, source, c.field, c.kind, run_id, run_id, c.example) for c in report.changes])


def seen_by(conn: psycopg.Connection, run_id: uuid.UUID) -> list[dict]:
    """The drift rows a run saw (first or again), breaking changes first."""
    cur = conn.execute("""SELECT stream, source, field, kind, first_seen_run = %(r)s AS first_seen, first_seen_at, runs,
                                 example FROM wfm_meta.schema_drift WHERE last_seen_run = %(r)s
                          ORDER BY kind = 'new', stream, field""", {"r": run_id})
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def surface(database_url: str, run_id: uuid.UUID, stream: str) -> list[dict]:
    """Log a run's drift and publish it as a Prefect artifact (inside a flow run); returns the rows."""
    with psycopg.connect(database_url) as conn:
        rows = seen_by(conn, run_id)
    if not rows:
        return rows
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact

    logger = get_run_logger()
    for row in rows:
        logger.warning("%s: schema drift, %s field %s%s", row["stream"], row["kind"].replace("_", " "),
                       row["field"], " (first seen in this run)" if row["first_seen"] else "")
    lines = "\n".join(map(_artifact_row, rows))
    create_markdown_artifact(
        f"### Schema drift of `{stream}`\n\nNew fields land in `_extra`; a missing or retyped field holds "
        f"its windows (see `wfm quarantine`).\n\n| field | kind | first seen | example |\n|---|---|---|---|\n"
        f"{lines}\n", key=f"drift-{stream.replace('_', '-')}", description=f"{stream}: {len(rows)} field change(s)")
    return rows


def _artifact_row(row: dict) -> str:
    first = "this run" if row["first_seen"] else f"{row['first_seen_at']:%Y-%m-%d %H:%M}"
    return f"| {row['field']} | {row['kind']} | {first} | {(row['example'] or '').replace('|', '/')} |"


def _show(value: object) -> str:
    text = _json(value)
    return text if len(text) <= 80 else text[:77] + "..."
