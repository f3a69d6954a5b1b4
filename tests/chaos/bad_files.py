"""Bad input, files: the classes an independent corpus of 205 malformed files found (issue 20),
written afresh here, each imported and validated through the real flows.

A file is handled when it is refused whole in one line naming it (and nothing of it lands), or
when it lands exactly the rows it should, quarantines the others, publishes its lake partitions
without blocking any, and `wfm validate` predicted those counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from .lab import environment, fresh_database

UTC = dt.timezone.utc
HEADER = "employee_id,shift_start,shift_end,unpaid_break_minutes\n"


def _row(employee: str, start: str = "2026-11-09T08:00:00Z", end: str = "2026-11-09T16:00:00Z") -> str:
    return f"{employee},{start},{end},0\n"


@dataclass(frozen=True)
class Case:
    """A file, how it is imported, and what must happen: refused (a message) or landed/quarantined."""

    name: str
    write: Callable[[Path], bytes]
    suffix: str = ".csv"
    refused: str | None = None                      # a part of the one-line refusal
    landed: int = 0
    quarantined: int = 0
    options: dict = field(default_factory=dict)
    instants: dict[str, dt.datetime] = field(default_factory=dict)   # employee → the UTC shift start it lands


def _parquet(damage_group: int | None) -> Callable[[Path], bytes]:
    def write(path: Path) -> bytes:
        rows = 400
        start = pa.array([dt.datetime(2026, 11, 9, 8, tzinfo=UTC)] * rows, pa.timestamp("us", tz="UTC"))
        table = pa.table({"employee_id": [f"p{i}" for i in range(rows)], "shift_start": start,
                          "shift_end": pa.array([dt.datetime(2026, 11, 9, 16, tzinfo=UTC)] * rows,
                                                pa.timestamp("us", tz="UTC"))})
        pq.write_table(table, path, row_group_size=rows // 4, compression="none")
        data = bytearray(path.read_bytes())
        if damage_group is not None:
            offset = pq.ParquetFile(path).metadata.row_group(damage_group).column(0).data_page_offset
            data[offset:offset + 24] = b"\xff" * 24
        return bytes(data)
    return write


CASES = [
    Case("a shift on 9999-12-31", lambda p: (HEADER + _row("e1", "9999-12-31T20:00:00Z", "9999-12-31T23:59:59Z")
                                             + _row("e2")).encode(), landed=2),
    Case("instants pushed past the calendar by their offsets", lambda p: (
        HEADER + _row("c1", end="9999-12-31T23:00:00-03:00") + _row("c2", "0001-01-01T00:00:00+03:00")
        + _row("c3")).encode(), landed=1, quarantined=2),
    Case("Parquet damaged in row group 2 of 4", _parquet(1), ".parquet", refused="damaged Parquet: row group 2 of 4"),
    Case("Parquet damaged in its first page header", _parquet(0), ".parquet", refused="damaged Parquet: row group 1"),
    Case("intact Parquet in four row groups", _parquet(None), ".parquet", landed=400),
    Case("a quote inside an unquoted value", lambda p: (HEADER.replace("unpaid_break_minutes", "note")
                                                        + 'q1,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,Об"ед\n'
                                                        + 'q2,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,x"y"\n').encode(),
         landed=2),
    Case("blank and comment lines before the header", lambda p: ("\n# ЗУП export\n\n" + HEADER + _row("b1")
                                                                 + "b2,broken\n" + _row("b3")).encode(),
         landed=2, quarantined=1),
    Case("a 1 MB value in a column no field reads", lambda p: (
        HEADER.replace("unpaid_break_minutes", "memo") + _row("m1").replace(",0\n", f',"{"m" * (1 << 20)}"\n')
        + _row("m2").replace(",0\n", ",short\n")).encode(), landed=2),
    Case("a file holding only a BOM", lambda p: b"\xef\xbb\xbf", refused="the file is empty (only a byte-order mark)"),
    Case("a UTF-16 BOM and nothing else", lambda p: b"\xff\xfe\r\x00\n\x00", refused="the file is empty"),
    Case("only comment lines", lambda p: b"# nothing\n\n", refused="no header: only blank or comment lines"),
    Case("local times with --timezone", lambda p: (HEADER + _row("t1", "09.11.2026 08:00", "09.11.2026 17:00")
                                                    + _row("t2", "2026-11-09 08:00:00", "2026-11-09T17:00")).encode(),
         landed=2, options={"timezone": "Asia/Yekaterinburg"},
         instants={"t1": dt.datetime(2026, 11, 9, 3, tzinfo=UTC), "t2": dt.datetime(2026, 11, 9, 3, tzinfo=UTC)}),
    Case("local times without --timezone", lambda p: (HEADER + _row("u1", "09.11.2026 08:00")).encode(),
         quarantined=1),
]


def file_corpus(server: str, scratch: Path) -> tuple[int, list[str]]:
    """Validate then import every case into one database; the problems of the cases not handled."""
    problems: list[str] = []
    with fresh_database(server) as db, environment({"WFM_DATABASE_URL": db, "WFM_LAKE_PATH": str(scratch / "lake"),
                                                    "WFM_DEFAULT_TIMEZONE": None}):
        scratch.mkdir(parents=True, exist_ok=True)
        for number, case in enumerate(CASES):
            path = scratch / f"case{number}{case.suffix}"
            path.write_bytes(case.write(path))
            problems += [f"file {case.name}: {p}" for p in _judge(case, path, db)]
        with psycopg.connect(db) as conn:
            queued = [p for (p,) in conn.execute("SELECT partition FROM wfm_meta.lake_pending")]
        problems += [f"files: lake partitions left queued: {', '.join(queued)}"] if queued else []
    return len(CASES), problems


def _judge(case: Case, path: Path, db: str) -> list[str]:
    from connectors.files import FileRejected
    from flows.bulk import bulk_import, validate_data

    before = _rows(db)
    try:
        report = validate_data(path, "planned_shifts", **case.options)
        refused = None
    except FileRejected as exc:
        report, refused = None, str(exc)
    try:
        run = bulk_import(path, "planned_shifts", **case.options)
    except FileRejected as exc:
        if refused != str(exc):
            return [f"validate said {refused!r}, import refused with {str(exc)!r}"]
        if case.refused is None:
            return [f"refused, but should have landed: {exc}"]
        wrong = "\n" in str(exc) or not str(exc).startswith(path.name) or case.refused not in str(exc)
        if wrong:
            return [f"refusal is not the one line expected: {str(exc)[:200]!r}"]
        return [f"{_rows(db) - before} row(s) of a refused file landed or quarantined"] if _rows(db) != before else []
    except Exception as exc:   # the import failed otherwise: a half import or a library's message
        return [f"import failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"]
    if case.refused is not None:
        return [f"landed, but should have been refused ({case.refused})"]
    if report is None:
        return [f"validate refused ({refused}) what import landed"]
    found = []
    if (run["rows_fetched"] - run["rows_quarantined"], run["rows_quarantined"]) != (case.landed, case.quarantined):
        found.append(f"landed {run['rows_fetched'] - run['rows_quarantined']} and quarantined "
                     f"{run['rows_quarantined']}, expected {case.landed} and {case.quarantined}")
    if (report["rows_valid"], report["rows_invalid"]) != (case.landed, case.quarantined):
        found.append(f"validate predicted {report['rows_valid']} valid, {report['rows_invalid']} invalid")
    if run["status"] != "completed" or run["file"]["unpublished"]:
        found.append(f"status {run['status']}, unpublished {run['file']['unpublished']}")
    with psycopg.connect(db) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        for employee, instant in case.instants.items():
            got = conn.execute("SELECT shift_start FROM wfm.planned_shifts WHERE employee_id = %s",
                               (employee,)).fetchone()
            found += [] if got and got[0] == instant else [f"{employee} landed at {got and got[0]}, not {instant}"]
    return found


def _rows(db: str) -> int:
    """Rows in the stream's table and in quarantine: a refused file must change neither."""
    with psycopg.connect(db) as conn:
        tables = [t for t in ("wfm.planned_shifts", "wfm_meta.quarantine")
                  if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0]]
        return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)
