"""What `wfm import`, `wfm validate` and `wfm export` do, kept apart from argument parsing in `wfm.cli`.

Each checks what it can before Prefect starts (the stream or table, the mapping, the file's head,
the output path), so a mistake costs a second and reads as one line; then it runs the flow with
a progress bar and prints what happened.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from wfm import prefect_api


class DataInvalid(ValueError):
    """`wfm validate` found invalid rows; the message is the one-line verdict."""


def parse_filters(pairs: list[str]) -> dict[str, str]:
    """`--filter COL=VALUE`, repeatable; a column may appear once."""
    filters: dict[str, str] = {}
    for pair in pairs:
        column, sep, value = pair.partition("=")
        if not sep or not column.strip():
            raise ValueError(f"--filter: {pair!r} is not COLUMN=VALUE")
        if column.strip() in filters:
            raise ValueError(f"--filter: column {column.strip()!r} given twice")
        filters[column.strip()] = value
    return filters


def delimiter_option(text: str | None) -> str | None:
    """`--delimiter ';'`; a tab may be written `\\t` or `tab`."""
    if text in (None, ""):
        return None
    text = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(text) != 1:
        raise ValueError(f"--delimiter: {text!r} is not one character")
    return text


def run_import(console: Console, path: Path, stream: str, map_text: str | None, mapping_file: Path | None,
               file_format: str, encoding: str | None, delimiter: str | None, chunk_rows: int,
               threshold: float, timezone: str | None = None, datetime_format: str | None = None,
               connection: str = "default") -> dict:
    """Import a file through the `bulk_import` flow; prints the run, ignored columns and quarantined rows."""
    prefect_api.start()
    from connectors import files
    from engine.bulk.files import open_spec
    from engine.quality import gate
    from flows.bulk import bulk_import, file_spec

    mapping = files.parse_mapping(map_text)
    spec = file_spec(path, stream, mapping, mapping_file, file_format, encoding, delimiter_option(delimiter),
                     chunk_rows, timezone, datetime_format)
    open_spec(spec)   # a bad file, stream or mapping fails here, in one line, before Prefect starts
    prefect_api.ready(meanwhile=gate.preload)
    with _bars(console, bytes_=True):
        run = bulk_import(spec.path, stream, spec.mapping, None, file_format, encoding,  # type: ignore[arg-type]
                          spec.delimiter, chunk_rows, threshold, timezone, datetime_format, connection)
    file = run["file"]
    _summary(console, f"import {Path(file['path']).name} → {run['stream']}", {
        "format": _format(file), "status": run["status"], "chunks": run["windows_landed"],
        "rows read": run["rows_fetched"], "inserted": run["rows_inserted"], "updated": run["rows_updated"],
        "unchanged": run["rows_unchanged"], "duplicate keys (last wins)": run["duplicates_removed"],
        "quarantined": run["rows_quarantined"]})
    _ignored(console, file["ignored_columns"])
    if file.get("unpublished"):
        console.print(f"[yellow]warning[/]: lake partitions not published, kept queued for the next run: "
                      f"{', '.join(file['unpublished'])}", highlight=False)
    if run["rows_quarantined"]:
        _examples(console, "first quarantined rows", file["quarantined"])
        console.print(f"[yellow]{run['rows_quarantined']} row(s) quarantined[/]: wfm quarantine --stream "
                      f"{run['stream']}", highlight=False)
    return run


def run_validate(console: Console, path: Path, stream: str, map_text: str | None, mapping_file: Path | None,
                 file_format: str, encoding: str | None, delimiter: str | None, chunk_rows: int,
                 report_path: Path | None, timezone: str | None = None, datetime_format: str | None = None) -> dict:
    """Validate a file through the `validate_data` flow; raises `DataInvalid` when a row is invalid."""
    prefect_api.start()
    from connectors import files
    from engine.bulk.files import open_spec
    from engine.quality import gate
    from flows.bulk import file_spec, validate_data

    spec = file_spec(path, stream, files.parse_mapping(map_text), mapping_file, file_format, encoding,
                     delimiter_option(delimiter), chunk_rows, timezone, datetime_format)
    open_spec(spec)
    prefect_api.ready(meanwhile=gate.preload)
    with _bars(console, bytes_=True):
        report = validate_data(spec.path, stream, spec.mapping, None, file_format, encoding,  # type: ignore[arg-type]
                               spec.delimiter, chunk_rows, report_path, timezone, datetime_format)
    _summary(console, f"validate {report['file']} as {stream}", {
        "format": _format(report), "rows read": report["rows_read"], "valid": report["rows_valid"],
        "invalid": report["rows_invalid"], "duplicate keys (last wins)": report["duplicate_keys"]})
    _ignored(console, report["ignored_columns"])
    problems = Table(title="problems by rule", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("rule", "severity", "rows", "row", "column", "value"):
        problems.add_column(name, overflow="fold", justify="right" if name in ("rows", "row") else "left")
    for problem in report["problems"]:
        for i, example in enumerate(problem["examples"] or [{}]):
            head = (problem["rule"], problem["severity"], str(problem["rows"])) if i == 0 else ("", "", "")
            problems.add_row(*head, _text(example.get("row")), _text(example.get("column")),
                             _text(example.get("value", ", ".join(example.get("values", [])))))
    if report["problems"]:
        console.print(problems)
    if report_path is not None:
        console.print(f"report: {report_path}", highlight=False)
    if not report["valid"]:
        first = next(p for p in report["problems"] if p["severity"] == "error")
        example = first["examples"][0] if first["examples"] else {}
        raise DataInvalid(f"{report['file']}: {report['rows_invalid']} of {report['rows_read']} rows invalid; "
                          f"first: row {example.get('row')}, column {example.get('column')}: {first['rule']}")
    console.print(f"[green]valid[/]: {report['rows_valid']} rows", highlight=False)
    return report


def run_export(console: Console, table: str, out: Path, start: dt.date | None, end: dt.date | None,
               filters: list[str], file_format: str, force: bool) -> dict:
    """Export a table through the `export_data` flow, with a progress bar in rows."""
    prefect_api.start()
    from engine.bulk.export import FORMATS, export_root, exported_stream, target_path, where_clause
    from flows.bulk import export_data

    stream = exported_stream(table)
    chosen = parse_filters(filters)
    if file_format not in FORMATS:
        raise ValueError(f"--format: {file_format!r} is not parquet or csv")
    where_clause(stream, start, end, chosen)
    target_path(out, force, export_root())
    prefect_api.ready()
    with _bars(console, bytes_=False):
        result = export_data(table, out, start, end, chosen, file_format, force)  # type: ignore[arg-type]
    console.print(f"exported {result['rows']:,} rows of {table} to {result['path']} ({file_format}, "
                  f"{result['bytes'] / 2**20:.1f} MiB, {result['seconds']:.1f} s)", highlight=False)
    return result


class _bars:
    """A Rich progress bar per flow, fed by `engine.progress` events (bytes of a file, or rows)."""

    def __init__(self, console: Console, bytes_: bool) -> None:
        count = TaskProgressColumn() if bytes_ else MofNCompleteColumn()
        self.progress = Progress(TextColumn("{task.description:<32}"), BarColumn(), count, TimeElapsedColumn(),
                                 console=console, transient=False)
        self.tasks: dict[str, Any] = {}

    def listener(self, event: str, label: str, count: int) -> None:
        if event == "start":
            self.tasks[label] = self.progress.add_task(label, total=count or None)
        elif label in self.tasks:
            self.progress.advance(self.tasks[label], count)

    def __enter__(self) -> _bars:
        from engine import progress

        progress.subscribe(self.listener)
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        from engine import progress

        for task in self.progress.tasks:
            if exc[0] is None and task.total:
                self.progress.update(task.id, completed=task.total)   # the estimate ends where the work did
        self.progress.__exit__(*exc)
        progress.unsubscribe(self.listener)


def _format(info: dict) -> str:
    parts = [info["format"], info.get("encoding"), info.get("delimiter") and f"delimiter {info['delimiter']!r}"]
    return ", ".join(p for p in parts if p)


def _summary(console: Console, title: str, values: dict[str, Any]) -> None:
    table = Table(title=title, box=box.SIMPLE_HEAD, show_header=False, pad_edge=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, value in values.items():
        table.add_row(name, _text(value))
    console.print(table)


def _ignored(console: Console, columns: list[str]) -> None:
    if columns:
        console.print(f"[yellow]warning[/]: columns not in the stream, ignored: {', '.join(columns)}", highlight=False)


def _examples(console: Console, title: str, examples: list[dict]) -> None:
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("row", "column", "value", "reason"):
        table.add_column(name, overflow="fold", justify="right" if name == "row" else "left")
    for example in examples:
        table.add_row(*(_text(example.get(k)) for k in ("row", "column", "value", "reason")))
    console.print(table)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
