"""JSON and NDJSON for `connectors.files`: NDJSON streams a line at a time; a JSON array is read whole.

Records go through the API path itself (`records.flatten`, then `to_arrow`), each tagged with
`_file` and `_row` (NDJSON: the line number; a JSON array: the element's 1-based position). A
line that is not JSON, or not an object, is rejected with its row; a file whose head holds no
object at all is refused.
"""

from __future__ import annotations

import codecs
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from connectors.files.readers import Chunk, FileRejected, FileSource
from connectors.files.rows import parse_records
from connectors.files.times import LocalTimes
from connectors.records import Field, Reject

PEEK = 1_000               # records looked at to learn the columns


def open_json(path: Path, size: int, kind: str, encoding: str) -> FileSource:
    """A JSON array (read whole: the one format here that does not stream) or NDJSON (peeked)."""
    if kind == "json":
        records = _json_array(path, encoding)
        return FileSource(path, "json", _keys(records[:PEEK]), size, encoding, rows=len(records), records=records)
    peek = list(itertools.islice(_ndjson(path, encoding), PEEK))
    objects = [item for _, item, _ in peek if isinstance(item, dict)]
    if not objects:
        reason = peek[0][1] if peek and isinstance(peek[0][1], str) else "no JSON object"
        raise FileRejected(f"{path.name}: not NDJSON: line {peek[0][0] if peek else 1}: {reason}")
    return FileSource(path, "ndjson", _keys(objects), size, encoding)


def _json_array(path: Path, encoding: str) -> list:
    data = path.read_bytes()
    try:
        loaded = orjson.loads(data if encoding in ("utf-8", "utf-8-sig") and not data.startswith(codecs.BOM_UTF8)
                              else data.decode(encoding))
    except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileRejected(f"{path.name}: invalid JSON ({str(exc).splitlines()[0]})") from None
    if isinstance(loaded, dict) and len(lists := [v for v in loaded.values() if isinstance(v, list)]) == 1:
        loaded = lists[0]
    if not isinstance(loaded, list):
        raise FileRejected(f"{path.name}: expected a JSON array of records, found a {type(loaded).__name__}")
    if not loaded:
        raise FileRejected(f"{path.name}: the JSON array is empty")
    return loaded


def _keys(records: list) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for r in records if isinstance(r, dict) for k in r))


def _ndjson(path: Path, encoding: str) -> Iterator[tuple[int, dict | str, int]]:
    """(line number, record or the reason it is not one, bytes read so far) per non-blank line."""
    position = 0
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            position += len(line)
            if number == 1:
                line = line.removeprefix(codecs.BOM_UTF8)
            if not line.strip():
                continue
            try:
                item = orjson.loads(line if encoding in ("utf-8", "utf-8-sig") else line.decode(encoding))
            except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
                cut = "" if line.endswith(b"\n") else " (the last line has no line end: truncated?)"
                yield number, f"invalid JSON ({str(exc).splitlines()[0]}){cut}", position
                continue
            yield number, item if isinstance(item, dict) else f"a JSON {type(item).__name__}, not an object", position


def json_chunks(source: FileSource, fields: Sequence[Field], rows: int,
                times: LocalTimes = LocalTimes()) -> Iterator[Chunk]:
    """JSON records in chunks of `rows`, each record tagged with `_file` and `_row`."""
    if source.records is not None:
        total = len(source.records)
        items = ((i, r if isinstance(r, dict) else f"a JSON {type(r).__name__}, not an object",
                  source.size * i // total) for i, r in enumerate(source.records, 1))
    else:
        items = _ndjson(source.path, source.encoding or "utf-8")  # type: ignore[assignment]
    for number, batch in enumerate(_batched(items, rows), 1):
        records, rejects = [], []
        for row, item, _ in batch:
            if isinstance(item, dict):
                records.append({**item, "_file": source.name, "_row": row})
            else:
                rejects.append(Reject(f"row {row}: {item}", None, {"_file": source.name, "_row": row}))
        parsed = parse_records(source.name, records, fields, rejects, times)
        yield Chunk(number, parsed, len(batch), batch[-1][2])


def _batched(items: Iterator, size: int) -> Iterator[list]:
    """Lists of `size` items (the last may be shorter); itertools.batched arrived in Python 3.12."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
