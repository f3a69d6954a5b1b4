"""Files through the one landing path: a file chunk lands like an API window; a validation lands nothing.

An import is a run in the ledger (mode "import") whose windows are the file's chunks:
`Window(run start, run start, ids=("shifts.csv#3",))`. Each chunk lands with `land_batch`, the
same validate → quarantine → exactly-once upsert as an API window, so importing a file twice
changes nothing the second time. A validation reads the same chunks through the same converters
and expectations and lands nothing; it needs no database.

Duplicate natural keys are resolved as API windows resolve them: the last row wins. Inside a
chunk they are counted as `duplicates_removed`; across chunks the later chunk lands later and
shows as an update.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from connectors import files
from connectors.records import Parsed, Reject
from connectors.settings import SourceSettings
from connectors.streams import Stream, Window
from engine import catalog, progress
from engine.landing import ledger, runs, warehouse
from engine.landing.window import RunPlan, WindowReport, land_batch
from engine.quality import gate as quality

EXAMPLES = 5


@dataclass(frozen=True)
class FileSpec:
    """A file and how to read it into a stream."""

    path: Path
    stream: str
    mapping: dict[str, str] = field(default_factory=dict)   # file column -> stream field
    file_format: str = "auto"
    encoding: str | None = None
    delimiter: str | None = None
    chunk_rows: int = files.CHUNK_ROWS
    timezone: str | None = None          # zoneless times are local times here (default: WFM_DEFAULT_TIMEZONE)
    datetime_format: str | None = None   # strptime format of zoneless times, tried before the usual ones


def importable(name: str) -> Stream:
    """The stream a file can be imported into, or a one-line error listing them."""
    if name not in catalog.IMPORTABLE:
        raise ValueError(f"unknown stream {name!r}; importable: {', '.join(catalog.IMPORTABLE)}")
    return catalog.IMPORTABLE[name]


def open_spec(spec: FileSpec) -> tuple[files.FileSource, files.ColumnMap]:
    """Check the file and its columns against the stream; refuses before a row is read."""
    stream = importable(spec.stream)
    times = files.LocalTimes(spec.timezone or os.environ.get("WFM_DEFAULT_TIMEZONE") or None, spec.datetime_format)
    source = files.open_file(spec.path, spec.file_format, spec.encoding, spec.delimiter)
    return source, files.map_columns(stream, source, spec.mapping, times)


def open_whole(spec: FileSpec) -> tuple[files.FileSource, files.ColumnMap]:
    """`open_spec`, then the whole file read once (`files.verify`): a file that cannot be read to
    its end is refused before its first chunk lands, and a validation refuses it the same way."""
    source, columns = open_spec(spec)
    return files.verify(source, columns), columns


def start_import(database_url: str, stream: Stream, source: files.FileSource, threshold: float,
                 flow_run_id: str | None, connection: str = warehouse.DEFAULT) -> tuple[runs.Run, RunPlan]:
    """Tables ready and the run open in the ledger (mode "import", `engine/landing/runs.py`); chunks
    add their windows as they come, and closing the run counts them as planned. The rows are
    `connection`'s: a file of a source's history lands beside what the API gave."""
    started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    with psycopg.connect(database_url, autocommit=True) as conn:
        ledger.ensure_meta(conn)
        warehouse.ensure_table(conn, stream)
        run = runs.open_run(conn, database_url, stream.name, "import", started, started, [], started, flow_run_id,
                            source=connection, windows_as_they_come=True)
    origin = SourceSettings("files", source.path.resolve().as_uri())
    return run, RunPlan(run.run_id, stream, origin, database_url, "import", started, started, threshold,
                        connection=connection)


def chunk_window(plan: RunPlan, source: files.FileSource, number: int) -> Window:
    """A chunk's ledger window: the run's start, named after the file and the chunk."""
    return Window(plan.started_at, plan.started_at, (f"{source.name}#{number}",))


def land_chunk(plan: RunPlan, window: Window, parsed: Parsed) -> WindowReport:
    """Add the chunk's window to the run, then land it the way every batch lands."""
    with psycopg.connect(plan.database_url) as conn, conn.transaction():
        conn.execute(f"""INSERT INTO {ledger.META}.sync_windows (run_id, stream, source, window_start, window_end,
                         ids_hash, id_count) VALUES (%s, %s, %s, %s, %s, %s, 1) ON CONFLICT DO NOTHING""",
                     (plan.run_id, plan.stream.name, plan.connection, window.start, window.end,
                      ledger.ids_hash(window)))
    return land_batch(plan, window, parsed)


def unpublished(database_url: str, stream: str) -> list[str]:
    """Lake partitions of a stream still queued after publishing (not held): they could not be
    written, and the next run tries again (`tasks/lake.py`)."""
    with psycopg.connect(database_url) as conn:
        return [partition for partition, _ in ledger.pending_partitions(conn, stream)]


def quarantined_examples(database_url: str, stream: str, file: str, limit: int = EXAMPLES) -> list[dict]:
    """The first rows of a file held in quarantine (by row number), whichever run put them there."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"""SELECT (record->>'_row')::bigint, field, reason, record FROM {ledger.META}.quarantine
                WHERE stream = %s AND record->>'_file' = %s AND status = 'held'
                ORDER BY (record->>'_row')::bigint, reason LIMIT %s""", (stream, file, limit)).fetchall()
    return [{"row": row, "column": column, "reason": re.sub(r"^row \d+: ", "", reason),
             "value": record.get(column) if column else _values(record)} for row, column, reason, record in rows]


@dataclass
class Problem:
    """One rule's failures in a file: how many rows, and the first of them."""

    rule: str
    severity: str                     # "error": the row would be quarantined; "warn": recorded only
    rows: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FileReport:
    """What a dry run found in a file: rows read, valid and invalid, and why."""

    file: str
    stream: str
    format: str
    encoding: str | None
    delimiter: str | None
    ignored_columns: list[str]
    rows_read: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0
    duplicate_keys: int = 0           # rows that a later row with the same key replaces (last wins)
    problems: dict[str, Problem] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.rows_invalid == 0

    def to_dict(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["problems"] = [dataclasses.asdict(p) for p in self.problems.values()]
        return {"valid": self.valid, **body}

    def note(self, rule: str, severity: str, example: dict[str, Any] | None, count: int = 1) -> None:
        problem = self.problems.setdefault(rule, Problem(rule, severity))
        problem.rows += count
        if example is not None and len(problem.examples) < EXAMPLES:
            problem.examples.append(example)


def validate_file(spec: FileSpec) -> FileReport:
    """Read, convert and check every row of a file as an import would; land nothing."""
    source, columns = open_whole(spec)
    stream = columns.stream
    report = FileReport(source.name, stream.name, source.format, source.encoding, source.delimiter,
                        list(columns.ignored))
    to_file = {f.column: f.source for f in columns.fields}
    label, done = f"validate {source.name}", 0
    progress.emit("start", label, source.size)
    for chunk in files.read_chunks(source, columns, spec.chunk_rows):
        progress.emit("advance", label, chunk.position - done)
        done, parsed = chunk.position, chunk.parsed
        result = quality.validate(stream.name, parsed.table)
        report.rows_read += chunk.rows_read
        report.rows_invalid += len(parsed.rejects) + len(result.failed_rows)
        report.rows_valid += parsed.table.num_rows - len(result.failed_rows)
        for reject in parsed.rejects:
            report.note(rule_of(reject, columns), "error", _reject_example(reject))
        for row, names in result.failed_rows.items():
            for name in names:
                report.note(name, "error", _check_example(parsed, row, name, to_file))  # type: ignore[arg-type]
        for check in result.warnings:
            report.note(check.name, "warn", {"values": list(check.examples)} if check.examples else None,
                        check.unexpected_count)
        good, _ = result.split(parsed.table)
        report.duplicate_keys += good.num_rows - warehouse.deduplicate(good, stream.key).num_rows
    return report


RULES = (("required but missing", "required value"), ("field(s) where the header has", "field count"),
         ("ends inside a quoted value", "truncated row"), ("encoding", "encoding"), ("not valid", "encoding"),
         ("JSON", "JSON record"), ("pass --timezone", "local time without --timezone"),
         ("does not exist in", "local time in a DST gap"), ("the calendar the warehouse stores", "calendar range"),
         ("NUL character", "text with NUL"))


def rule_of(reject: Reject, columns: files.ColumnMap) -> str:
    """The rule a reject broke: a row's shape, its encoding, a required value, or a field's type."""
    for marker, rule in RULES:
        if marker in reject.reason:
            return rule
    kinds = {f.source: f.type for f in columns.fields}
    return f"type {kinds[reject.field]}" if reject.field in kinds else "readable row"


def _reject_example(reject: Reject) -> dict[str, Any]:
    record = reject.record
    value = record.get(reject.field) if reject.field else _values(record)
    return {"row": record.get("_row"), "column": reject.field, "value": _short(value),
            "reason": re.sub(r"^row \d+: ", "", reject.reason)}


def _values(record: dict[str, Any]) -> str:
    """A rejected row's raw text, or its values, for a row that failed as a whole."""
    if "_text" in record:
        return _short(record["_text"])
    return _short(", ".join(str(v) for k, v in record.items() if not k.startswith("_") and v is not None))


def _check_example(parsed: Parsed, row: int, name: str, to_file: dict[str, str]) -> dict[str, Any]:
    """A failed expectation on one row: the row number, the file columns it reads, their values."""
    inside = name[name.find("(") + 1:name.rfind(")")] if "(" in name else ""
    checked = [c.strip().lstrip("-") for c in inside.split(",") if c.strip()]
    values = parsed.table.slice(row, 1).to_pylist()[0]
    return {"row": parsed.records[row].get("_row"), "column": ", ".join(to_file.get(c, c) for c in checked),
            "value": ", ".join(_short(values.get(c)) for c in checked), "reason": name}


def _short(value: Any) -> str:
    text = value.isoformat() if isinstance(value, (dt.datetime, dt.date)) else "" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."

