"""Bulk file flows: `bulk_import`, `validate_data` and `export_data` (`wfm import|validate|export`).

    bulk_import(Path("shifts.csv"), "planned_shifts", mapping={"Табельный": "employee_id"})
    validate_data(Path("shifts.csv"), "planned_shifts", report_path=Path("report.json"))
    export_data("agent_status_intervals", Path("out.parquet"), start=dt.date(2026, 11, 1))

Every parameter is typed, so each flow runs from the CLI, as a deployment, and from the UI's
form. An import refuses a bad file before anything lands; row by row it lands the valid rows
and quarantines the others, then publishes the lake partitions it touched.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import orjson
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import get_run_context
from prefect.utilities.annotations import quote

from connectors import files
from engine import progress, schema
from engine.bulk.export import ExportSpec
from engine.bulk.files import (
    FileSpec,
    chunk_window,
    open_whole,
    quarantined_examples,
    start_import,
    unpublished,
)
from engine.landing.window import RunPlan
from engine.settings import resolve_settings
from flows.runs import after_runs, row
from tasks.bulk import export_table, land_chunk, validate_file
from tasks.sync import publish_lake

FileFormat = Literal["auto", "csv", "parquet", "json", "ndjson"]
ExportFormat = Literal["parquet", "csv"]


class ImportFailed(RuntimeError):
    """Chunks of a file were held back by the quality gate; the message is one line."""


def file_spec(path: Path, stream: str, mapping: dict[str, str] | None, mapping_file: Path | None,
              file_format: str, encoding: str | None, delimiter: str | None, chunk_rows: int,
              timezone: str | None = None, datetime_format: str | None = None) -> FileSpec:
    """The flow parameters as one spec; an inline mapping wins over the mapping file."""
    if chunk_rows < 1:       # before the import's run starts in the ledger
        raise ValueError("chunk rows must be at least 1")
    merged = {**files.parse_mapping(None, mapping_file), **(mapping or {})}
    return FileSpec(Path(path), stream, merged, file_format, encoding, delimiter, chunk_rows, timezone,
                    datetime_format)


@flow(name="bulk-import", flow_run_name="import {stream}")
def bulk_import(path: Path, stream: str, mapping: dict[str, str] | None = None, mapping_file: Path | None = None,
                file_format: FileFormat = "auto", encoding: str | None = None, delimiter: str | None = None,
                chunk_rows: int = files.CHUNK_ROWS, threshold: float = 1.0, timezone: str | None = None,
                datetime_format: str | None = None, connection: str = "default") -> dict:
    """Import a file into a stream's table: valid rows land exactly once, invalid rows go to quarantine.

    `mapping` maps file columns to stream fields; `threshold` is the share of invalid rows above
    which a chunk is held back (default 1.0: every valid row lands); `timezone` is the zone of
    times written without one (default: `WFM_DEFAULT_TIMEZONE`), `datetime_format` their format;
    the rows are `connection`'s.
    """
    logger = get_run_logger()
    if not 0 <= threshold <= 1:             # a share; above 1 would land a chunk of nothing but invalid rows
        raise ValueError(f"threshold {threshold:g} is not a share of rows between 0 and 1")
    spec = file_spec(path, stream, mapping, mapping_file, file_format, encoding, delimiter, chunk_rows, timezone,
                     datetime_format)
    source, columns = open_whole(spec)          # a bad file is refused here, read whole, before anything lands
    if columns.ignored:
        logger.warning("%s: columns %s are not fields of %s: ignored", source.name, ", ".join(columns.ignored), stream)
    settings = resolve_settings()
    schema.ensure(settings.database_url, settings.lake_path)
    run, plan = start_import(settings.database_url, columns.stream, source, threshold, _flow_run_id(), connection)
    with run:                              # whatever raises from here closes the run `failed`
        held = _land_chunks(plan, source, columns, spec.chunk_rows)
        publish_lake(columns.stream, settings.database_url, settings.lake_path)
        stuck = unpublished(settings.database_url, stream)
        if stuck:
            logger.warning("%s: lake partitions not published, kept queued: %s", stream, ", ".join(stuck))
        row = run.close("failed" if held else "completed", "; ".join(held) or None)
    row["file"] = {"path": str(source.path), "format": source.format, "encoding": source.encoding,
                   "delimiter": source.delimiter, "ignored_columns": list(columns.ignored),
                   "quarantined": quarantined_examples(settings.database_url, stream, source.name),
                   "unpublished": stuck}
    after_runs(settings.database_url, [row], {str(row["run_id"]): _file_details(row["file"])})
    if held:
        raise ImportFailed(f"{source.name}: {len(held)} chunk(s) held back — {held[0]}")
    return row


def _land_chunks(plan: RunPlan, source: files.FileSource, columns: files.ColumnMap, chunk_rows: int) -> list[str]:
    """Each chunk of the file landed in turn; returns why chunks were held back."""
    label, done, held = f"import {source.name}", 0, []
    progress.emit("start", label, source.size)
    for chunk in files.read_chunks(source, columns, chunk_rows):
        report = land_chunk(plan, chunk_window(plan, source, chunk.number), quote(chunk.parsed))
        if report.status == "held":
            held.append(report.message or f"chunk {chunk.number} held")
        progress.emit("advance", label, chunk.position - done)
        done = chunk.position
    return held


@flow(name="validate-data", flow_run_name="validate {stream}")
def validate_data(path: Path, stream: str, mapping: dict[str, str] | None = None, mapping_file: Path | None = None,
                  file_format: FileFormat = "auto", encoding: str | None = None, delimiter: str | None = None,
                  chunk_rows: int = files.CHUNK_ROWS, report_path: Path | None = None, timezone: str | None = None,
                  datetime_format: str | None = None) -> dict:
    """Check a file as an import would — converters and expectations — and land nothing.

    Returns the report (rows read, valid, invalid by rule with the first examples), publishes it
    as a markdown artifact and, with `report_path`, writes it as JSON.
    """
    spec = file_spec(path, stream, mapping, mapping_file, file_format, encoding, delimiter, chunk_rows, timezone,
                     datetime_format)
    report = validate_file(spec).to_dict()
    if report_path is not None:
        Path(report_path).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2, default=str))
    _validation_artifact(report)
    return report


@flow(name="export-data", flow_run_name="export {table}")
def export_data(table: str, out: Path, start: dt.date | None = None, end: dt.date | None = None,
                filters: dict[str, str] | None = None, file_format: ExportFormat = "parquet",
                force: bool = False) -> dict:
    """Export a table (all of it, or inclusive days of its partition column, filtered by column = value)."""
    settings = resolve_settings()
    result = export_table(settings.database_url,
                          ExportSpec(table, Path(out), start, end, dict(filters or {}), file_format, force))
    rows = "\n".join(row(k, v) for k, v in result.items())
    create_markdown_artifact(f"### Export of `{table}`\n\n| field | value |\n|---|---|\n{rows}\n",
                             key=f"export-{table.replace('_', '-')}", description=f"{table}: {result['rows']} rows")
    return result


def _file_details(file: dict) -> str:
    """The import artifact's part about the file: how it was read, and its first quarantined rows."""
    rows = "\n".join(row(k, file[k]) for k in ("path", "format", "encoding", "delimiter", "ignored_columns"))
    body = f"\n#### The file\n\n| field | value |\n|---|---|\n{rows}\n"
    examples = "\n".join(row(e["row"], e["column"], e["value"], e["reason"]) for e in file["quarantined"])
    if examples:
        body += f"\n#### First quarantined rows\n\n| row | column | value | reason |\n|---|---|---|---|\n{examples}\n"
    return body


def _validation_artifact(report: dict) -> None:
    verdict = "valid" if report["valid"] else "INVALID"
    head = "\n".join(row(k, report[k]) for k in (
        "file", "stream", "format", "encoding", "delimiter", "rows_read", "rows_valid", "rows_invalid",
        "duplicate_keys", "ignored_columns"))
    problems = "\n".join(row(p["rule"], p["severity"], p["rows"], "; ".join(
        f"row {e['row']}: {e.get('column')} = {e.get('value')}" for e in p["examples"][:3] if "row" in e))
        for p in report["problems"])
    body = f"### {report['file']}: {verdict}\n\n| field | value |\n|---|---|\n{head}\n"
    if problems:
        body += f"\n| rule | severity | rows | first rows |\n|---|---|---|---|\n{problems}\n"
    create_markdown_artifact(body, key=f"validate-{report['stream'].replace('_', '-')}",
                             description=f"{report['file']} {verdict}")


def _flow_run_id() -> str | None:
    try:
        return str(get_run_context().flow_run.id)
    except Exception:
        return None
