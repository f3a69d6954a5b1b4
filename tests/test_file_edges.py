"""Files an independent corpus found awkward (issue 20) and local times (issue 16): readers only, no database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors import files
from connectors.files import delimited, readers
from connectors.planning import PLANNED_SHIFTS

UTC = dt.timezone.utc
HEADER = "employee_id,shift_start,shift_end,unpaid_break_minutes\n"
GOOD = "{},2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,30\n"


def read(path: Path, zone: str | None = None, datetime_format: str | None = None, rows: int = 1000, **options):
    """(typed rows, rejects) of a file, read whole first as an import reads it."""
    source = files.open_file(path, **options)
    columns = files.map_columns(PLANNED_SHIFTS, source, times=files.LocalTimes(zone, datetime_format))
    source = files.verify(source, columns)
    chunks = list(files.read_chunks(source, columns, rows))
    return pa.concat_tables([c.parsed.table for c in chunks]), [r for c in chunks for r in c.parsed.rejects]


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_a_quote_inside_an_unquoted_value_is_literal_and_costs_no_row(tmp_path):
    body = 'employee_id,shift_start,shift_end,note\n1,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,Об"ед\n' \
           '2,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,"quoted, with ""quotes"""\n' \
           'Об"ед,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,x\n'
    table, rejects = read(write(tmp_path / "quotes.csv", body))
    assert rejects == []
    assert table.column("employee_id").to_pylist() == ["1", "2", 'Об"ед']


def test_blank_and_comment_lines_before_the_header_are_skipped_and_rows_keep_their_numbers(tmp_path):
    body = "\n# exported by 1C, \"ЗУП\"\n\n" + HEADER + GOOD.format(1) + "2,broken\n" + GOOD.format(3) + \
        "4,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,lots\n"
    source = files.open_file(write(tmp_path / "preamble.csv", body))
    assert source.columns == ("employee_id", "shift_start", "shift_end", "unpaid_break_minutes")
    table, rejects = read(source.path, rows=2)
    assert table.column("employee_id").to_pylist() == ["1", "3"]
    assert [(r.record["_row"], r.field) for r in rejects] == [(2, None), (4, "unpaid_break_minutes")]
    with pytest.raises(files.FileRejected, match=r"^only.csv: no header: only blank or comment lines$"):
        files.open_file(write(tmp_path / "only.csv", "# nothing\n\n# here\n"))


def test_a_huge_value_in_a_column_the_stream_does_not_read_limits_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK", 64 << 10)          # the parse block, small so the test is small
    big = "x" * (300 << 10)                                   # longer than the head's csv field limit and the block
    body = "employee_id,shift_start,shift_end,comment\n" + f'1,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,"{big}"\n' \
        + "2,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,short\n"
    path = write(tmp_path / "wide.csv", body)
    table, rejects = read(path)
    assert rejects == [] and table.num_rows == 2
    assert files.verify(files.open_file(path), files.map_columns(PLANNED_SHIFTS, files.open_file(path))).block > 64 << 10
    head_only = write(tmp_path / "head.csv", f"employee_id,shift_start,shift_end,comment\n1,a,b,{'y' * (2 << 20)}\n")
    assert files.open_file(head_only).columns[-1] == "comment"


def test_a_row_no_block_can_hold_refuses_the_file_in_one_line_before_anything_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK", 16 << 10)
    monkeypatch.setattr(delimited, "MAX_BLOCK", 64 << 10)
    body = HEADER + GOOD.format(1) + '2,"2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,30\n' + GOOD.format(3) * 5000
    path = write(tmp_path / "unclosed.csv", body)
    source = files.open_file(path)
    with pytest.raises(files.FileRejected) as refused:
        files.verify(source, files.map_columns(PLANNED_SHIFTS, source))
    assert str(refused.value) == ("unclosed.csv: cannot be read as CSV after row 1: a row longer than 65,536 bytes "
                                  "(an unclosed quote?)")


@pytest.mark.parametrize("content, message", [
    (b"\xef\xbb\xbf", "bom.csv: the file is empty (only a byte-order mark)"),
    (b"\xef\xbb\xbf\r\n\r\n", "bom.csv: the file is empty (only a byte-order mark)"),
    (b"\xff\xfe", "bom.csv: the file is empty (only a byte-order mark)"),
])
def test_a_file_holding_only_a_byte_order_mark_is_refused_in_one_line(tmp_path, content, message):
    with pytest.raises(files.FileRejected) as refused:
        files.open_file(write(tmp_path / "bom.csv", content))
    assert str(refused.value) == message


def test_instants_at_the_calendar_edges_are_row_errors_naming_field_and_value(tmp_path):
    body = HEADER + "".join(f"{i},{start},{end},0\n" for i, (start, end) in enumerate([
        ("9999-12-31T20:00:00Z", "9999-12-31T23:59:59Z"),            # the last storable day: lands
        ("9999-12-31T20:00:00Z", "9999-12-31T23:00:00-03:00"),       # year 10000 in UTC
        ("0001-01-01T00:00:00+03:00", "0001-01-01T08:00:00+03:00"),  # before year 1 in UTC
        ("0001-01-01T03:00:00+03:00", "0001-01-01T08:00:00Z"),       # the first instant: lands
    ], 1))
    table, rejects = read(write(tmp_path / "edges.csv", body))
    assert table.column("employee_id").to_pylist() == ["1", "4"]
    assert [(r.record["_row"], r.field) for r in rejects] == [(2, "shift_end"), (3, "shift_start")]
    assert rejects[0].reason == ("row 2: field shift_end: outside 0001-01-01 … 9999-12-31 (UTC), the calendar the "
                                 "warehouse stores (value '9999-12-31T23:00:00-03:00')")
    ndjson = write(tmp_path / "edges.ndjson", orjson.dumps({"employee_id": "1", "shift_start": "0001-01-01T00:00+03:00",
                                                            "shift_end": "2026-11-09T08:00:00Z"}) + b"\n")
    table, rejects = read(ndjson)
    assert table.num_rows == 0 and "outside 0001-01-01" in rejects[0].reason


def test_parquet_instants_past_year_9999_and_text_with_nul_are_row_errors(tmp_path):
    far = pa.array([253402300800_000000 + 3600_000000, 1794729600_000000], pa.timestamp("us", tz="UTC"))  # 10000-01-01
    table = pa.table({"employee_id": ["1", "2\x00"], "shift_start": far, "shift_end": far})
    pq.write_table(table, tmp_path / "far.parquet")
    typed, rejects = read(tmp_path / "far.parquet")
    assert typed.num_rows == 0
    assert [(r.record["_row"], r.field) for r in rejects] == [(1, "shift_start"), (2, "employee_id")]
    assert "NUL" in rejects[1].reason


def damaged_parquet(path: Path, group: int = 1) -> Path:
    """Four row groups; the page header of `group`'s first column overwritten with junk."""
    rows = 400
    table = pa.table({"employee_id": [str(i) for i in range(rows)],
                      "shift_start": pa.array([dt.datetime(2026, 11, 9, tzinfo=UTC)] * rows, pa.timestamp("us", tz="UTC")),
                      "shift_end": pa.array([dt.datetime(2026, 11, 9, 8, tzinfo=UTC)] * rows, pa.timestamp("us", tz="UTC"))})
    pq.write_table(table, path, row_group_size=rows // 4, compression="none")
    offset = pq.ParquetFile(path).metadata.row_group(group).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[offset:offset + 24] = b"\xff" * 24
    path.write_bytes(bytes(data))
    return path


def test_a_parquet_file_damaged_in_its_second_row_group_is_refused_before_any_chunk(tmp_path):
    path = damaged_parquet(tmp_path / "damaged.parquet")
    source = files.open_file(path)                                # the footer is fine
    columns = files.map_columns(PLANNED_SHIFTS, source)
    with pytest.raises(files.FileRejected) as refused:
        files.verify(source, columns)
    message = str(refused.value)
    assert message.startswith("damaged.parquet: damaged Parquet: row group 2 of 4 (rows after 100) cannot be read: ")
    assert "\n" not in message
    with pytest.raises(files.FileRejected, match="^damaged.parquet: damaged Parquet after row 100: "):
        list(files.read_chunks(source, columns, 100))           # read without verifying: still one line, named


def test_local_times_are_placed_in_the_given_zone(tmp_path):
    body = HEADER + "1,09.11.2026 08:00,09.11.2026 17:00:30,0\n2,2026-11-09 08:00:00,2026-11-09T17:00,0\n" \
        "3,2026-11-09T08:00:00+03:00,2026-11-09 17:00,0\n4,31.02.2026 08:00,2026-11-09 17:00,0\n"
    path = write(tmp_path / "local.csv", body)
    table, rejects = read(path, zone="Asia/Yekaterinburg")
    at = lambda h, m=0, s=0: dt.datetime(2026, 11, 9, h, m, s, tzinfo=UTC)  # noqa: E731
    assert table.select(["employee_id", "shift_start", "shift_end"]).to_pylist() == [
        {"employee_id": "1", "shift_start": at(3), "shift_end": at(12, 0, 30)},
        {"employee_id": "2", "shift_start": at(3), "shift_end": at(12)},
        {"employee_id": "3", "shift_start": at(5), "shift_end": at(12)}]
    assert [(r.record["_row"], r.field) for r in rejects] == [(4, "shift_start")]
    _, rejects = read(path)                                        # no zone: each local time names the option
    assert [r.record["_row"] for r in rejects] == [1, 2, 3, 4]
    assert "pass --timezone ZONE" in rejects[0].reason and "(value '09.11.2026 08:00')" in rejects[0].reason
    assert rejects[3].field == "shift_end"                       # its shift_start, 31.02, is no time at all


def test_a_datetime_format_dst_gaps_json_and_naive_parquet(tmp_path):
    us = write(tmp_path / "us.csv", HEADER + "1,03/29/2026 02:30 AM,03/29/2026 09:00 AM,0\n"
                                             "2,11/09/2026 08:00 AM,11/09/2026 05:00 PM,0\n")
    table, rejects = read(us, zone="Europe/Berlin", datetime_format="%m/%d/%Y %I:%M %p")
    assert table.column("shift_start").to_pylist() == [dt.datetime(2026, 11, 9, 7, tzinfo=UTC)]
    assert rejects[0].record["_row"] == 1 and "does not exist in Europe/Berlin" in rejects[0].reason
    record = {"employee_id": "1", "shift_start": "2026-11-09 08:00", "shift_end": "2026-11-09T16:00:00Z"}
    table, rejects = read(write(tmp_path / "local.json", orjson.dumps([record])), zone="Europe/Moscow")
    assert rejects == [] and table.column("shift_start").to_pylist() == [dt.datetime(2026, 11, 9, 5, tzinfo=UTC)]
    naive = pa.table({"employee_id": ["1"], "shift_start": pa.array([dt.datetime(2026, 11, 9, 8)]),
                      "shift_end": pa.array([dt.datetime(2026, 11, 9, 16)])})
    pq.write_table(naive, tmp_path / "naive.parquet")
    table, rejects = read(tmp_path / "naive.parquet", zone="Asia/Yekaterinburg")
    assert table.column("shift_end").to_pylist() == [dt.datetime(2026, 11, 9, 11, tzinfo=UTC)]
    with pytest.raises(files.FileRejected, match="holds timestamps without a time zone; pass --timezone ZONE"):
        read(tmp_path / "naive.parquet")
    with pytest.raises(ValueError, match="--timezone: 'Mars/Olympus' is not a time zone"):
        files.LocalTimes("Mars/Olympus")


def test_json_text_postgresql_cannot_store_is_a_row_error(tmp_path):
    columns = "employee_id,shift_start,shift_end,_extra\n"
    body = columns + '1,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,"{""k"": ""a\\u0000b""}"\n' \
        '2,2026-11-09T08:00:00Z,2026-11-09T16:00:00Z,"{""k"": 1}"\n'
    table, rejects = read(write(tmp_path / "extra.csv", body))
    assert table.column("employee_id").to_pylist() == ["2"]
    assert (rejects[0].record["_row"], rejects[0].field) == (1, "_extra") and "jsonb cannot hold it" in rejects[0].reason
    record = {"employee_id": "1", "shift_start": "2026-11-09T08:00:00Z", "shift_end": "2026-11-09T16:00:00Z",
              "_extra": {"k": "a\x00b"}}
    table, rejects = read(write(tmp_path / "extra.json", orjson.dumps([record, {**record, "employee_id": "2",
                                                                                 "_extra": {"k": 1}}])))
    assert table.column("employee_id").to_pylist() == ["2"] and "jsonb cannot hold it" in rejects[0].reason
