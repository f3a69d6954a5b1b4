"""WFM data files — CSV, Parquet, JSON and NDJSON — read in bounded chunks, refused in one line.

    source = open_file(Path("shifts.csv"))                    # format, encoding, delimiter, header
    columns = map_columns(PLANNED_SHIFTS, source, {"Табельный": "employee_id"})
    for chunk in read_chunks(source, columns, rows=50_000):   # memory bounded by the chunk
        chunk.parsed.table, chunk.parsed.rejects              # typed rows; rejects name row and column

A file that cannot be read as a whole — missing, a directory, empty, a header without rows,
binary content, an unknown encoding, duplicate or missing required columns — raises
`FileRejected` before any row is read. A row that cannot be read — the wrong number of fields,
a truncated last line, bytes of another encoding, invalid JSON — becomes a reject naming its row,
and the other rows go on. CSV, Parquet and NDJSON stream; a JSON array is read whole.

Decisions: columns the stream does not read are ignored (`ColumnMap.ignored`, for a warning),
not kept; of our own export's columns, `_extra` is restored and the lineage columns `_run_id`
and `_extracted_at` are ignored silently (the import is the new lineage), so an export imports
back as the same rows. A row's number is its place among the file's records, 1-based, the
header not counted (NDJSON: its line). Encoding: a BOM decides; otherwise most non-ASCII lines of
the first 16 MiB, UTF-8 or cp1251 (`--encoding` overrides); a row in the other encoding is
rejected as mixed encodings.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from connectors.files import delimited, json_file, readers
from connectors.files.readers import Chunk, FileRejected, FileSource, one_line, refuse_duplicates
from connectors.files.rows import EXTRA_FIELD, file_fields
from connectors.files.times import LocalTimes
from connectors.records import Field
from connectors.streams import Stream

__all__ = ["CHUNK_ROWS", "Chunk", "ColumnMap", "FileRejected", "FileSource", "LocalTimes", "map_columns",
           "open_file", "parse_mapping", "read_chunks", "verify"]

CHUNK_ROWS = 50_000
FORMATS = ("csv", "parquet", "json", "ndjson")
SUFFIXES = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
            ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson"}
LINEAGE = ("_run_id", "_extracted_at")
DERIVED = ("local_date",)     # computed by the warehouse from the row (engine/zones.py): not imported
SAMPLE = 1 << 20              # the head read for the header, delimiter and binary checks
ENCODING_SCAN = 16 << 20      # how far to look for non-ASCII text that decides the encoding
SIGNATURES = {b"PK\x03\x04": "a ZIP archive (an .xlsx workbook?)", b"PAR1": "a Parquet file",
              b"\x1f\x8b": "gzip-compressed", b"%PDF": "a PDF document",
              b"\xd0\xcf\x11\xe0": "an old Excel/Office document"}


@dataclass(frozen=True)
class ColumnMap:
    """Which file column each stream field reads, and the file columns no field reads."""

    stream: Stream
    fields: tuple[Field, ...]               # the stream's fields with `source` = the file column
    ignored: tuple[str, ...] = ()
    times: LocalTimes = LocalTimes()        # how zoneless times are read (`files.times`)


def open_file(path: Path | str, file_format: str = "auto", encoding: str | None = None,
              delimiter: str | None = None) -> FileSource:
    """Check a file and learn its format, encoding, delimiter and columns; reads only its head."""
    path = Path(path)
    name = path.name or str(path)
    if not path.exists():
        raise FileRejected(f"{path}: no such file")
    if not path.is_file():
        raise FileRejected(f"{path}: is a directory, not a file" if path.is_dir() else f"{path}: not a regular file")
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            head = handle.read(SAMPLE)
    except OSError as exc:   # no read permission, a file that went away, an I/O error
        raise FileRejected(f"{path}: cannot be read ({exc.strerror or one_line(exc)})") from None
    bare = head.removeprefix(codecs.BOM_UTF8)
    bare = bare[2:] if bare.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else bare
    if not bare.strip(b" \t\r\n\x00"):
        raise FileRejected(f"{name}: the file is empty" + (" (only a byte-order mark)" if bare != head else ""))
    kind = _format(path, head, file_format)
    if kind == "parquet":
        return _open_parquet(path, size)
    if encoding is not None:
        codecs.lookup(encoding)   # LookupError names the unknown codec
    if kind == "csv":
        _refuse_binary(name, head)
    encoding = encoding or _encoding(path, head)
    if kind == "csv":
        return delimited.open_csv(path, size, head, encoding, delimiter, SAMPLE)
    return json_file.open_json(path, size, kind, encoding)


def _format(path: Path, head: bytes, requested: str) -> str:
    if requested != "auto":
        if requested not in FORMATS:
            raise FileRejected(f"{path.name}: unknown format {requested!r}; use one of {', '.join(FORMATS)}")
        return requested
    if path.suffix.lower() in SUFFIXES:
        return SUFFIXES[path.suffix.lower()]
    if head.startswith(b"PAR1"):
        return "parquet"
    first = head.lstrip(codecs.BOM_UTF8).lstrip()[:1]
    return "json" if first == b"[" else "ndjson" if first == b"{" else "csv"


def _refuse_binary(name: str, head: bytes) -> None:
    """A .csv that is really a workbook, an archive or other binary data."""
    for signature, what in SIGNATURES.items():
        if head.startswith(signature):
            raise FileRejected(f"{name}: not CSV text but {what}; use --format or convert it to CSV")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return
    controls = sum(head.count(bytes([b])) for b in (*range(0, 9), 11, *range(14, 32)))
    if b"\x00" in head or controls > len(head) // 100:
        offset = head.find(b"\x00") if b"\x00" in head else next(
            i for i, b in enumerate(head) if b < 9 or b == 11 or 14 <= b < 32)
        raise FileRejected(f"{name}: binary content, not CSV text (control byte 0x{head[offset]:02x} "
                           f"at offset {offset})")


def _encoding(path: Path, head: bytes) -> str:
    """A BOM decides; else most non-ASCII lines of the first 16 MiB (a tie: the first one): UTF-8 or cp1251."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = head
    if head.isascii() and len(head) == SAMPLE:
        with path.open("rb") as handle:
            sample = handle.read(ENCODING_SCAN)
    lines = [line for line in sample.splitlines()[:-1 if len(sample) >= SAMPLE else None] if not line.isascii()]
    utf8 = sum(_decodes(line, "utf-8") for line in lines)
    if utf8 * 2 > len(lines) or utf8 * 2 == len(lines) and (not lines or _decodes(lines[0], "utf-8")):
        return "utf-8"
    if any(_decodes(line, "cp1251") for line in lines):
        return "cp1251"
    raise FileRejected(f"{path.name}: neither UTF-8 nor cp1251 text; pass --encoding")


def _decodes(line: bytes, encoding: str) -> bool:
    try:
        line.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


def _open_parquet(path: Path, size: int) -> FileSource:
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid or OSError in its own words
        raise FileRejected(f"{path.name}: not a readable Parquet file ({one_line(exc)})") from None
    columns = parquet.schema_arrow.names
    refuse_duplicates(path.name, columns)
    if parquet.metadata.num_rows == 0:
        raise FileRejected(f"{path.name}: has no rows")
    return FileSource(path, "parquet", tuple(columns), size, rows=parquet.metadata.num_rows)


def parse_mapping(text: str | None = None, mapping_file: Path | str | None = None) -> dict[str, str]:
    """File column → stream field, from `"Табельный=employee_id,Start=shift_start"` and/or a YAML file.

    The YAML file is a mapping of file column to stream field, at the top or under `columns:`.
    """
    mapping: dict[str, str] = {}
    if mapping_file is not None:
        mapping.update(_yaml_mapping(Path(mapping_file)))
    for pair in (text or "").split(","):
        if not pair.strip():
            continue
        column, sep, target = pair.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise ValueError(f"--map: {pair.strip()!r} is not FILE_COLUMN=stream_field")
        mapping[column.strip()] = target.strip()
    return mapping


def _yaml_mapping(path: Path) -> dict[str, str]:
    import yaml

    if not path.is_file():
        raise FileRejected(f"{path}: no such mapping file")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise FileRejected(f"{path}: cannot be read ({exc.strerror or one_line(exc)})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FileRejected(f"{path.name}: not a YAML mapping ({str(exc).splitlines()[0]})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("columns"), dict):
        loaded = loaded["columns"]
    if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
        raise FileRejected(f"{path.name}: expected 'file column: stream_field' lines")
    return {str(k).strip(): v.strip() for k, v in loaded.items()}


def map_columns(stream: Stream, source: FileSource, mapping: dict[str, str] | None = None,
                times: LocalTimes = LocalTimes()) -> ColumnMap:
    """Point each stream field at a file column: the mapping first, then the same name (or API spelling).

    Raises before anything is read when a mapped column is not in the file, a target is not a
    field of the stream, two columns feed one field, or a required field has no column.
    """
    mapping = dict(mapping or {})
    fields = file_fields(stream.fields, stream.extra)
    known = [f.column for f in fields]
    for column, target in mapping.items():
        if column not in source.columns:
            raise FileRejected(f"{source.name}: --map names column {column!r}, which the file does not have "
                               f"(columns: {', '.join(source.columns)})")
        if target not in known:
            raise ValueError(f"--map: {stream.name} has no field {target!r} (fields: {', '.join(known)})")
    targets = list(mapping.values())
    if doubled := sorted({t for t in targets if targets.count(t) > 1}):
        raise ValueError(f"--map: two file columns map to {doubled[0]!r}")
    inverse = {target: column for column, target in mapping.items()}
    unclaimed = [c for c in source.columns if c not in mapping]
    chosen: list[Field] = []
    for f in fields:
        column = inverse.get(f.column) or next((c for c in unclaimed if c in (f.column, *_aliases(f))), None)  # type: ignore[assignment]
        if column is not None and column in unclaimed:
            unclaimed.remove(column)
        chosen.append(Field(f.column, column or f.column, f.type, f.required, default=f.default))
    missing = [f.column for f, c in zip(fields, chosen) if f.required and c.source not in source.columns]
    if missing:
        raise FileRejected(f"{source.name}: missing required column(s) {', '.join(missing)} for {stream.name} "
                           f"(file columns: {', '.join(source.columns)}); map one with --map 'COLUMN={missing[0]}'")
    if EXTRA_FIELD.column in unclaimed:
        chosen.append(EXTRA_FIELD)
    ignored = tuple(c for c in unclaimed if c not in (*LINEAGE, *DERIVED, EXTRA_FIELD.column))
    return ColumnMap(stream, tuple(chosen), ignored, times)


def _aliases(f: Field) -> tuple[str, ...]:
    return () if callable(f.source) else f.sources


def verify(source: FileSource, columns: ColumnMap) -> FileSource:
    """Read the whole file once, landing nothing, so that an import cannot fail halfway: every
    Parquet row group decoded, every CSV row parsed (a JSON array was parsed whole on opening;
    an NDJSON line that is not JSON is a row error, not a file error). Raises `FileRejected`."""
    if source.format == "parquet":
        readers.verify_parquet(source, columns.fields)
    elif source.format == "csv":
        return delimited.verify_csv(source, columns.fields)
    return source


def read_chunks(source: FileSource, columns: ColumnMap, rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """The file's rows as typed chunks of at most `rows` rows, in file order."""
    if rows < 1:
        raise ValueError("chunk rows must be at least 1")
    reader = {"csv": delimited.csv_chunks, "parquet": readers.parquet_chunks,
              "json": json_file.json_chunks, "ndjson": json_file.json_chunks}[source.format]
    return reader(source, columns.fields, rows, columns.times)
