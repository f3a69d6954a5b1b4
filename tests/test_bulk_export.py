"""`export_data` end to end: streamed CSV and Parquet, safe filters, round trips into a fresh database."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import duckdb
import orjson
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from connectors import contact_center as cc
from connectors import onec
from engine.bulk.export import ExportSpec, export_table, whole_records
from engine.landing.lake import lake_schema
from flows.bulk import bulk_import, export_data

from .test_cli import one_line_error, run

pytestmark = pytest.mark.usefixtures("prefect_harness")
UTC = dt.timezone.utc
FIRST = dt.datetime(2026, 11, 9, tzinfo=UTC)


@pytest.fixture
def statuses(database_url, tmp_path, monkeypatch) -> str:
    """1,200 agent statuses over four days, imported; awkward values included; one row with `_extra`."""
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    monkeypatch.setenv("WFM_LAKE_PATH", str(tmp_path / "lake"))
    agents = ["7", "O'Brien", "Иванов"]
    rows = [{"agentId": agents[i % 3], "serviceId": "" if i % 5 == 0 else "s1", "groupId": "g1",
             "startDate": (FIRST + dt.timedelta(minutes=5 * i)).isoformat(),
             "endDate": (FIRST + dt.timedelta(minutes=5 * i + 4, microseconds=250 * (i % 2))).isoformat(),
             "stateCode": "BREAK" if i % 4 else "READY",
             "stateName": None if i % 7 == 0 else 'Перерыв, "долгий"\nвторая строка' if i % 11 == 0 else "Break"}
            for i in range(1200)]
    (tmp_path / "statuses.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    bulk_import(tmp_path / "statuses.ndjson", "agent_status_intervals")
    with psycopg.connect(database_url) as conn:
        conn.execute("""UPDATE wfm.agent_status_intervals SET _extra = '{"note": "kept"}'
                        WHERE agent_id = '7' AND started_at = %s""", (FIRST,))
    return database_url


def data_rows(database_url: str, table: str) -> list[tuple]:
    """Every row without the lineage columns (a new import is new lineage), sorted."""
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(f"SELECT * FROM wfm.{table}")
        keep = [i for i, c in enumerate(cur.description) if c.name not in ("_run_id", "_extracted_at")]
        return sorted((tuple(r[i] for i in keep) for r in cur.fetchall()), key=repr)


def test_export_then_import_into_a_fresh_database_gives_identical_tables(statuses, second_database, tmp_path,
                                                                           monkeypatch):
    parquet = export_data("agent_status_intervals", tmp_path / "out" / "statuses.parquet")
    text = export_data("agent_status_intervals", tmp_path / "out" / "statuses.csv", file_format="csv")
    assert parquet["rows"] == text["rows"] == 1200
    schema = lake_schema(cc.AGENT_STATUS_INTERVALS)
    assert pq.read_schema(parquet["path"]).remove_metadata() == schema
    assert duckdb.sql(f"SELECT count(*), count(DISTINCT agent_id) FROM '{parquet['path']}'").fetchall() == [(1200, 3)]
    with open(text["path"], newline="", encoding="utf-8") as handle:
        header, first = list(csv.reader(handle))[:2]
    assert header == schema.names and first[3] == "2026-11-09T00:00:00+00:00" and first[8] == '{"note": "kept"}'
    assert first[7] == "2026-11-09"                                  # local_date: the site's working day

    monkeypatch.setenv("WFM_DATABASE_URL", second_database)
    landed = bulk_import(Path(parquet["path"]), "agent_status_intervals")
    assert (landed["rows_inserted"], landed["rows_quarantined"], landed["file"]["ignored_columns"]) == (1200, 0, [])
    again = bulk_import(Path(text["path"]), "agent_status_intervals")
    assert (again["rows_unchanged"], again["rows_quarantined"]) == (1200, 0)
    assert data_rows(second_database, "agent_status_intervals") == data_rows(statuses, "agent_status_intervals")


def test_lists_json_and_derived_columns_survive_a_csv_round_trip(database_url, second_database, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    monkeypatch.setenv("WFM_LAKE_PATH", str(tmp_path / "lake"))
    agents = [{"agent_id": "1", "name": "Анна", "group_ids": ["g1", "g,2"]}, {"agent_id": "2", "name": "Bo"}]
    sheets = [{"employee_id": "e1", "absences": {"Б": [1, 2]}, "half1_days": 10.5, "half1_hours": 84.25,
               "period_start": "2026-11-01", "period_end": "2026-11-30"}]
    for stream, records in ((cc.CC_AGENTS, agents), (onec.TIMESHEET_SUMMARIES, sheets)):
        (tmp_path / f"{stream.name}.json").write_bytes(orjson.dumps(records))
        bulk_import(tmp_path / f"{stream.name}.json", stream.name)
        export_table(database_url, ExportSpec(stream.name, tmp_path / f"{stream.name}.csv", file_format="csv"))
    monkeypatch.setenv("WFM_DATABASE_URL", second_database)
    for stream in (cc.CC_AGENTS, onec.TIMESHEET_SUMMARIES):
        run_ = bulk_import(tmp_path / f"{stream.name}.csv", stream.name)
        assert run_["rows_quarantined"] == 0
        assert data_rows(second_database, stream.name) == data_rows(database_url, stream.name), stream.name
    assert data_rows(second_database, "cc_agents")[0][7] == ["g1", "g,2"]   # after source and the key columns


def test_days_and_filters_select_rows_with_values_as_parameters(statuses, tmp_path):
    result, output = run("export", "agent_status_intervals", "--start", "2026-11-10", "--end", "2026-11-10",
                         "--filter", "agent_id=O'Brien", "--format", "csv", "--out", str(tmp_path / "day.csv"))
    assert result.exit_code == 0, output
    assert "exported 96 rows of agent_status_intervals" in output
    day = pacsv.read_csv(tmp_path / "day.csv")
    assert set(day.column("agent_id").to_pylist()) == {"O'Brien"} and day.num_rows == 96
    with psycopg.connect(statuses) as conn:
        assert conn.execute("""SELECT count(*) FROM wfm.agent_status_intervals WHERE agent_id = 'O''Brien'
                               AND started_at >= '2026-11-10' AND started_at < '2026-11-11'""").fetchone()[0] == 96
        assert conn.execute("SELECT count(*) FROM wfm.agent_status_intervals").fetchone()[0] == 1200
    result, output = run("export", "agent_status_intervals", "--filter", "agent_id=7' OR '1'='1",
                         "--out", str(tmp_path / "none.parquet"))
    assert result.exit_code == 0 and pq.read_table(tmp_path / "none.parquet").num_rows == 0, output


@pytest.mark.parametrize("args, message", [
    (["agent_statuses"], "unknown table 'agent_statuses'; exportable: "),
    (["agent_status_intervals", "--filter", "agent_id;DROP TABLE wfm.x--=1"],
     "--filter: agent_status_intervals has no column 'agent_id;DROP TABLE wfm.x--' to filter on"),
    (["agent_status_intervals", "--filter", "state=READY"], "has no column 'state' to filter on (columns: agent_id"),
    (["agent_status_intervals", "--filter", "agent_id"], "--filter: 'agent_id' is not COLUMN=VALUE"),
    (["cc_agents", "--start", "2026-11-09"], "cc_agents has no partition column; --start/--end do not apply"),
    (["agent_status_intervals", "--format", "xlsx"], "--format: 'xlsx' is not parquet or csv"),
])
def test_bad_export_requests_are_one_line(database_url, tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    result, output = run("export", *args, "--out", str(tmp_path / "x.parquet"))
    assert result.exit_code == 1
    assert message in one_line_error(output)


def test_no_overwrite_without_force_and_nothing_outside_the_export_root(statuses, tmp_path, monkeypatch):
    target = tmp_path / "exports" / "statuses.parquet"
    target.parent.mkdir()
    target.write_bytes(b"keep me")
    result, output = run("export", "agent_status_intervals", "--out", str(target))
    assert result.exit_code == 1 and "statuses.parquet: already exists; pass --force" in one_line_error(output)
    assert target.read_bytes() == b"keep me"
    monkeypatch.setenv("WFM_EXPORT_ROOT", str(tmp_path / "exports"))
    for outside in (tmp_path / "elsewhere.parquet", tmp_path / "exports" / ".." / "escape.parquet"):
        result, output = run("export", "agent_status_intervals", "--out", str(outside))
        assert result.exit_code == 1 and "outside the export root" in one_line_error(output)
    result, output = run("export", "agent_status_intervals", "--out", str(target), "--force")
    assert result.exit_code == 0, output
    assert pq.read_table(target).num_rows == 1200 and not list(target.parent.glob(".*.tmp"))


def test_copy_output_is_cut_only_between_records():
    table = pa.table({"id": [str(i) for i in range(300)],
                      "note": [f'line "{i}"\nnext, line' if i % 3 else None for i in range(300)]})
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    data = sink.getvalue().to_pybytes()
    pieces = list(whole_records((data[i:i + 97] for i in range(0, len(data), 97)), 500))
    assert b"".join(pieces) == data and len(pieces) > 5
    options = pacsv.ReadOptions(column_names=["id", "note"])
    convert = pacsv.ConvertOptions(column_types={"id": pa.string()}, strings_can_be_null=True)
    parsed = [pacsv.read_csv(pa.py_buffer(p), read_options=options, convert_options=convert,
                             parse_options=pacsv.ParseOptions(newlines_in_values=True)) for p in pieces]
    assert pa.concat_tables(parsed).column("note").to_pylist() == table.column("note").to_pylist()
