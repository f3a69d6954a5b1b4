"""File readers without Prefect or a database: detection, mapping, typed chunks and every bad input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from connectors import contact_center as cc
from connectors import files
from connectors.planning import PLANNED_SHIFTS

UTC = dt.timezone.utc
HEADER = "employee_id,shift_start,shift_end,unpaid_break_minutes\n"
MAP_1C = "Табельный=employee_id,Начало=shift_start,Конец=shift_end,Перерыв=unpaid_break_minutes"


def at(hour: int, day: int = 9) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=UTC)


def read(path: Path, stream=PLANNED_SHIFTS, mapping: str | None = None, rows: int = files.CHUNK_ROWS, **options):
    """Every chunk of a file: (typed rows, rejects, chunks)."""
    source = files.open_file(path, **options)
    columns = files.map_columns(stream, source, files.parse_mapping(mapping))
    chunks = list(files.read_chunks(source, columns, rows))
    table = pa.concat_tables([c.parsed.table for c in chunks]) if chunks else None
    return table, [r for c in chunks for r in c.parsed.rejects], chunks


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_a_1c_export_in_cp1251_with_semicolons_crlf_and_decimal_commas(tmp_path):
    text = ("Табельный;Начало;Конец;Перерыв;Комментарий\r\n"
            "00042;2026-11-09T08:00:00+03:00;2026-11-09T17:00:00+03:00;60,0;утро\r\n"
            "00043;2026-11-09T09:00:00Z;2026-11-09T18:00:00Z;;\"две\r\nстроки\"\r\n")
    path = write(tmp_path / "zup.csv", text, "cp1251")
    source = files.open_file(path)
    assert (source.format, source.encoding, source.delimiter) == ("csv", "cp1251", ";")
    columns = files.map_columns(PLANNED_SHIFTS, source, files.parse_mapping(MAP_1C))
    assert columns.ignored == ("Комментарий",)
    table, rejects, _ = read(path, mapping=MAP_1C)
    assert rejects == []
    assert table.to_pylist() == [
        {"employee_id": "00042", "shift_start": at(5), "shift_end": at(14), "unpaid_break_minutes": 60,
         "source": "import"},
        {"employee_id": "00043", "shift_start": at(9), "shift_end": at(18), "unpaid_break_minutes": 0,
         "source": "import"}]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_utf8_with_and_without_bom_and_excel_unicode_text(tmp_path, encoding):
    delimiter = "\t" if encoding == "utf-16" else ","
    row = ["Ёлкин", "2026-11-09T08:00:00Z", "2026-11-09T16:00:00Z", "30"]
    text = HEADER.replace(",", delimiter) + delimiter.join(row)
    source = files.open_file(write(tmp_path / "shifts.csv", text + "\n", encoding))
    assert source.encoding == encoding and source.delimiter == delimiter
    table, rejects, _ = read(source.path)
    assert rejects == [] and table.column("employee_id").to_pylist() == ["Ёлкин"]


def test_mapping_from_a_yaml_file_and_api_spellings(tmp_path):
    mapping = write(tmp_path / "map.yaml", "columns:\n  Табельный: employee_id\n  Начало: shift_start\n")
    assert files.parse_mapping("Конец=shift_end", mapping) == {
        "Табельный": "employee_id", "Начало": "shift_start", "Конец": "shift_end"}
    path = write(tmp_path / "statuses.csv", "agentId,startDate,endDate,stateCode\n7,2026-11-09T08:00:00Z,"
                                            "2026-11-09T08:05:00Z,READY\n")
    table, rejects, _ = read(path, cc.AGENT_STATUS_INTERVALS)
    assert rejects == [] and table.select(["agent_id", "service_id", "state_code"]).to_pylist() == [
        {"agent_id": "7", "service_id": "", "state_code": "READY"}]


def test_bad_values_reject_their_rows_naming_row_column_and_value(tmp_path):
    path = write(tmp_path / "shifts.csv", HEADER + "1,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,30\n"
                 "2,09.11.2026 08:00,2026-11-09T16:00:00Z,30\n3,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,lots\n"
                 ",2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,0\n4,2026-11-09T08:00:00,2026-11-09T16:00:00Z,0\n")
    table, rejects, _ = read(path)
    assert table.column("employee_id").to_pylist() == ["1"]
    assert [(r.record["_row"], r.field) for r in rejects] == [
        (2, "shift_start"), (3, "unpaid_break_minutes"), (4, "employee_id"), (5, "shift_start")]
    assert all(r.record["_file"] == "shifts.csv" for r in rejects)
    assert rejects[0].reason.startswith("row 2: field shift_start: ") and "'09.11.2026 08:00'" in rejects[0].reason
    assert rejects[2].reason == "row 4: field employee_id: required but missing"
    assert "timestamp has no zone" in rejects[3].reason


def test_truncated_last_lines_are_rejected_and_the_rest_kept(tmp_path):
    good = "1,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,30\n"
    short = write(tmp_path / "short.csv", HEADER + good + "2,2026-11-09T08:00:00Z")
    table, rejects, _ = read(short)
    assert table.num_rows == 1
    assert rejects[0].reason == ("row 2: 2 field(s) where the header has 4 (the file ends mid-row: truncated?)")
    quoted = write(tmp_path / "quoted.csv", HEADER + good + '2,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,"3')
    table, rejects, _ = read(quoted)
    assert table.num_rows == 1 and rejects[0].reason.startswith("row 2: the file ends inside a quoted value")


def test_mixed_encodings_reject_the_rows_in_the_other_encoding(tmp_path):
    utf8_first = HEADER.encode() + "Ёлкин,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,0\n".encode() + \
        "Иванов,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,0\n".encode("cp1251")
    (tmp_path / "a.csv").write_bytes(utf8_first)
    table, rejects, _ = read(tmp_path / "a.csv")
    assert table.column("employee_id").to_pylist() == ["Ёлкин"]
    assert rejects[0].record["_row"] == 2 and "not valid UTF-8" in rejects[0].reason and "Иванов" in rejects[0].reason
    cp1251_first = HEADER.encode() + "Иванов,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,0\n".encode("cp1251") * 2 + \
        "Ёлкин,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,0\n".encode()
    (tmp_path / "b.csv").write_bytes(cp1251_first)
    table, rejects, _ = read(tmp_path / "b.csv")
    assert table.num_rows == 2 and "UTF-8 text in a cp1251 file" in rejects[0].reason and "Ёлкин" in rejects[0].reason


def test_row_numbers_stay_right_across_chunks_quoted_newlines_and_skipped_rows(tmp_path):
    lines = [f'{i},2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,"{i}"' for i in range(1, 26)]
    lines[6] = "7,broken"
    lines[11] = '12,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,"1\n2"'   # a quoted newline: not a number
    table, rejects, chunks = read(write(tmp_path / "rows.csv", HEADER + "\n".join(lines) + "\n"), rows=4)
    assert [c.rows_read for c in chunks] == [4, 5, 4, 4, 4, 4]   # chunk 2 also carries the unsplittable row
    assert [r.record["_row"] for r in rejects] == [7, 12]
    assert table.column("employee_id").to_pylist() == [str(i) for i in range(1, 26) if i not in (7, 12)]


def test_extra_columns_are_listed_for_a_warning_and_lineage_columns_are_not(tmp_path):
    path = write(tmp_path / "export.csv", HEADER.strip() + ",source,note,_extra,_run_id,_extracted_at\n"
                 '1,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,0,plan,x,"{""k"": 1}",r,2026-11-09T00:00:00Z\n')
    columns = files.map_columns(PLANNED_SHIFTS, files.open_file(path))
    assert columns.ignored == ("note",)
    table, rejects, _ = read(path)
    assert rejects == []
    assert table.select(["source", "_extra"]).to_pylist() == [{"source": "plan", "_extra": '{"k": 1}'}]


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", b"", "empty.csv: the file is empty"),
    ("blank.csv", b"  \n\n", "blank.csv: the file is empty"),
    ("header.csv", HEADER.encode(), "header.csv: has a header but no rows"),
    ("binary.csv", b"\x00\x01\x02ELF" * 50, "binary.csv: binary content, not CSV text"),
    ("book.csv", b"PK\x03\x04" + b"\x00" * 100, "book.csv: not CSV text but a ZIP archive (an .xlsx workbook?)"),
    ("dupes.csv", b"employee_id,shift_start,shift_end,shift_start\n1,2,3,4\n",
     "dupes.csv: column 'shift_start' appears twice in the header (columns 2 and 4)"),
    ("missing.csv", b"employee_id,shift_start\n1,2026-11-09T08:00:00Z\n",
     "missing.csv: missing required column(s) shift_end for planned_shifts"),
    ("fake.parquet", b"not parquet at all", "fake.parquet: not a readable Parquet file"),
    ("broken.json", b'[{"employee_id": 1', "broken.json: invalid JSON"),
    ("none.json", b"[]", "none.json: the JSON array is empty"),
])
def test_files_refused_as_a_whole_in_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(files.FileRejected) as refused:
        read(path)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_paths_that_are_not_files_and_mappings_that_do_not_fit(tmp_path):
    with pytest.raises(files.FileRejected, match="nope.csv: no such file"):
        files.open_file(tmp_path / "nope.csv")
    with pytest.raises(files.FileRejected, match="is a directory"):
        files.open_file(tmp_path)
    source = files.open_file(write(tmp_path / "s.csv", HEADER + "1,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,0\n"))
    with pytest.raises(files.FileRejected, match="--map names column 'Start', which the file does not have"):
        files.map_columns(PLANNED_SHIFTS, source, {"Start": "shift_start"})
    with pytest.raises(ValueError, match="planned_shifts has no field 'shiftstart'"):
        files.map_columns(PLANNED_SHIFTS, source, {"shift_start": "shiftstart"})
    with pytest.raises(ValueError, match="not FILE_COLUMN=stream_field"):
        files.parse_mapping("Start")


def test_parquet_is_read_typed_in_batches_and_naive_timestamps_are_refused(tmp_path):
    table = pa.table({"employee_id": pa.array([1, 2, 3], pa.int64()),
                      "shift_start": pa.array([at(8)] * 3, pa.timestamp("ms", tz="Europe/Moscow")),
                      "shift_end": pa.array([at(16), at(7), at(16)], pa.timestamp("us", tz="UTC")),
                      "unpaid_break_minutes": pa.array([30.0, None, 2.5])})
    pq.write_table(table, tmp_path / "plan.parquet")
    typed, rejects, chunks = read(tmp_path / "plan.parquet", rows=2)
    assert len(chunks) == 2 and typed.column("employee_id").to_pylist() == ["1", "2"]
    assert typed.column("unpaid_break_minutes").to_pylist() == [30, 0]
    assert rejects[0].record["_row"] == 3 and "whole number" in rejects[0].reason
    pq.write_table(table.set_column(1, "shift_start", pa.array([dt.datetime(2026, 11, 9)] * 3)), tmp_path / "n.parquet")
    with pytest.raises(files.FileRejected, match="'shift_start' holds timestamps without a time zone"):
        read(tmp_path / "n.parquet")


def test_ndjson_streams_line_by_line_and_a_json_array_is_read_whole(tmp_path):
    good = {"employee_id": "1", "shift_start": "2026-11-09T08:00:00Z", "shift_end": "2026-11-09T16:00:00Z",
            "unpaid_break_minutes": "15", "extra": True}
    lines = [orjson.dumps(good), b"", b"[1, 2]", orjson.dumps({**good, "employee_id": "2"})[:-9]]
    table, rejects, _ = read(write(tmp_path / "plan.ndjson", b"\n".join(lines).decode()))
    assert table.column("unpaid_break_minutes").to_pylist() == [15]
    assert [r.reason for r in rejects] == [
        "row 3: a JSON list, not an object",
        rejects[1].reason] and rejects[1].reason.startswith("row 4: invalid JSON")
    assert rejects[1].reason.endswith("(the last line has no line end: truncated?)")
    array = write(tmp_path / "plan.json", orjson.dumps({"shifts": [good, {**good, "shift_end": 5}]}).decode())
    source = files.open_file(array)
    assert source.format == "json" and source.rows == 2
    table, rejects, _ = read(array)
    assert table.num_rows == 1 and rejects[0].record["_row"] == 2 and rejects[0].field == "shift_end"


def test_a_large_csv_streams_in_bounded_chunks(tmp_path, monkeypatch):
    """Arrow memory while reading is bounded by the parse block and the chunk, not the file's size."""
    from connectors.files import readers as file_readers

    monkeypatch.setattr(file_readers, "BLOCK", 1 << 20)

    def generate(rows: int) -> Path:
        i = np.arange(rows)
        start = np.datetime64("2026-11-09T00:00:00") + i * np.timedelta64(60, "s")
        table = pa.table({"employee_id": (i % 977).astype(str),
                          "shift_start": pa.array(start, pa.timestamp("s", tz="UTC")),
                          "shift_end": pa.array(start + np.timedelta64(8, "h"), pa.timestamp("s", tz="UTC"))})
        pacsv.write_csv(table, tmp_path / f"{rows}.csv")
        return tmp_path / f"{rows}.csv"

    peaks = {}
    for rows in (100_000, 400_000):
        source = files.open_file(generate(rows))
        columns = files.map_columns(PLANNED_SHIFTS, source)
        peak, seen, base = 0, 0, pa.total_allocated_bytes()
        for chunk in files.read_chunks(source, columns, 20_000):
            assert chunk.parsed.table.num_rows <= 20_000 and not chunk.parsed.rejects
            seen += chunk.parsed.table.num_rows
            peak = max(peak, pa.total_allocated_bytes() - base)
            del chunk
        assert seen == rows
        peaks[rows] = peak
    assert source.size > 3 * peaks[400_000]                      # a 19 MB file read in a few MB
    assert peaks[400_000] < 1.2 * peaks[100_000], peaks          # four times the rows, the same memory
