"""`bulk_import` and `validate_data` end to end: real files, real Prefect flows, real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import orjson
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.files import FileRejected
from flows.bulk import bulk_import, validate_data

from .test_cli import one_line_error, run

pytestmark = pytest.mark.usefixtures("prefect_harness")
UTC = dt.timezone.utc
MAPPING = {"Табельный": "employee_id", "Начало": "shift_start", "Конец": "shift_end", "Перерыв": "unpaid_break_minutes"}
MAP_TEXT = ",".join(f"{k}={v}" for k, v in MAPPING.items())
HEADER = "Табельный;Начало;Конец;Перерыв;Комментарий\r\n"
ROWS = [   # (employee, start, end, break): rows 1-9 of the file, three per chunk
    ("101", "2026-11-09T08:00:00+03:00", "2026-11-09T17:00:00+03:00", "60,0"),
    ("102", "2026-11-09T09:00:00Z", "2026-11-09T18:00:00Z", ""),
    ("101", "2026-11-09T08:00:00+03:00", "2026-11-09T17:00:00+03:00", "45"),      # same key as row 1: last wins
    ("103", "09.11.2026 08:00", "2026-11-09T17:00:00Z", "30"),                    # unparseable date
    ("104", "2026-11-10T08:00:00Z", "2026-11-10T07:00:00Z", "30"),                # ends before it starts
    ("105", "2026-11-10T08:00:00Z", "2026-11-10T16:00:00Z", "-15"),               # negative break
    ("106", "2026-11-10T08:00:00Z", "2026-11-10T16:00:00Z", "много"),             # not a number
    ("107", "2026-11-11T08:00:00Z"),                                              # a short row
    ("108", "2026-11-11T08:00:00Z", "2026-11-11T20:00:00Z", "0"),
]


@pytest.fixture
def warehouse_env(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    monkeypatch.setenv("WFM_LAKE_PATH", str(tmp_path / "lake"))
    return database_url


def plan_file(tmp_path: Path, rows=ROWS, name: str = "plan.csv") -> Path:
    """A 1C-style planning export: cp1251, semicolons, CRLF, a comment column with a quoted newline."""
    lines = [";".join([*row, '"утро\r\nи вечер"' if i == 0 else ""] if len(row) == 4 else row)
             for i, row in enumerate(rows)]
    path = tmp_path / name
    path.write_bytes((HEADER + "\r\n".join(lines) + "\r\n").encode("cp1251"))
    return path


def dump(database_url: str, table: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return sorted(conn.execute(f"SELECT * FROM wfm.{table}").fetchall(), key=repr)


def quarantined(database_url: str) -> dict[int, str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT record, reason FROM wfm_meta.quarantine WHERE stream = 'planned_shifts'").fetchall()
    assert all(record["_file"] == "plan.csv" for record, _ in rows)
    return {record["_row"]: reason for record, reason in rows}


def test_a_planning_export_lands_once_quarantines_by_row_and_publishes_the_lake(warehouse_env, tmp_path):
    path = plan_file(tmp_path)
    run = bulk_import(path, "planned_shifts", MAPPING, chunk_rows=3)
    assert (run["mode"], run["status"], run["windows_planned"], run["windows_landed"]) == ("import", "completed", 3, 3)
    counts = ("rows_fetched", "duplicates_removed", "rows_inserted", "rows_quarantined")
    assert tuple(run[k] for k in counts) == (9, 1, 3, 5)
    assert run["file"]["ignored_columns"] == ["Комментарий"] and run["file"]["encoding"] == "cp1251"
    landed = dump(warehouse_env, "planned_shifts")
    assert {r[0] for r in landed} == {"default"}          # the site of a plan imported without --site
    assert [(r[1], r[2].isoformat(), r[4]) for r in landed] == [
        ("101", "2026-11-09T05:00:00+00:00", 45), ("102", "2026-11-09T09:00:00+00:00", 0),
        ("108", "2026-11-11T08:00:00+00:00", 0)]
    reasons = quarantined(warehouse_env)
    assert sorted(reasons) == [4, 5, 6, 7, 8]
    assert reasons[4].startswith("row 4: field Начало:") and "09.11.2026 08:00" in reasons[4]
    assert "ExpectColumnPairValuesAToBeGreaterThanB(shift_end, shift_start)" in reasons[5]
    assert "ExpectColumnValuesToBeBetween(unpaid_break_minutes)" in reasons[6]
    assert reasons[7].startswith("row 7: field Перерыв:") and reasons[8].startswith("row 8: 2 field(s)")
    lake = duckdb.sql(f"SELECT employee_id, unpaid_break_minutes FROM read_parquet('{tmp_path}/lake/planned_shifts/"
                      "site=default/*/*.parquet') ORDER BY 1").fetchall()
    assert lake == [("101", 45), ("102", 0), ("108", 0)]

    again = bulk_import(path, "planned_shifts", MAPPING, chunk_rows=3)
    assert (again["rows_inserted"], again["rows_updated"], again["rows_unchanged"]) == (0, 0, 3)
    assert dump(warehouse_env, "planned_shifts") == landed          # lineage columns included
    assert quarantined(warehouse_env) == reasons                    # a row rejected again is stored once
    with psycopg.connect(warehouse_env) as conn:
        windows = conn.execute("SELECT count(DISTINCT ids_hash) FROM wfm_meta.sync_windows").fetchone()[0]
    assert windows == 3


def test_the_same_rows_from_parquet_json_and_ndjson_change_nothing(warehouse_env, tmp_path):
    good = [r for r in ROWS if r[0] in ("102", "108")]
    bulk_import(plan_file(tmp_path, good), "planned_shifts", MAPPING)
    landed = dump(warehouse_env, "planned_shifts")
    records = [{"employee_id": e, "shift_start": s, "shift_end": f, "unpaid_break_minutes": b or None}
               for e, s, f, b in good]
    pq.write_table(pa.table({"employee_id": [r["employee_id"] for r in records],
                             "shift_start": pa.array([dt.datetime.fromisoformat(r["shift_start"]) for r in records],
                                                     pa.timestamp("ms", tz="UTC")),
                             "shift_end": [r["shift_end"] for r in records],
                             "unpaid_break_minutes": pa.array([0, 0], pa.int32())}), tmp_path / "plan.parquet")
    (tmp_path / "plan.json").write_bytes(orjson.dumps(records))
    (tmp_path / "plan.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    for name in ("plan.parquet", "plan.json", "plan.ndjson"):
        run = bulk_import(tmp_path / name, "planned_shifts")
        assert (run["rows_fetched"], run["rows_unchanged"], run["rows_quarantined"]) == (2, 2, 0), name
    assert dump(warehouse_env, "planned_shifts") == landed


def test_a_file_missing_a_required_column_is_refused_before_anything_lands(warehouse_env, tmp_path):
    path = tmp_path / "plan.csv"
    path.write_text("Табельный;Начало\n1;2026-11-09T08:00:00Z\n", encoding="utf-8")
    with pytest.raises(FileRejected, match="plan.csv: missing required column.s. shift_end"):
        bulk_import(path, "planned_shifts", {"Табельный": "employee_id", "Начало": "shift_start"})
    with psycopg.connect(warehouse_env) as conn:
        assert conn.execute("SELECT to_regclass('wfm_meta.sync_runs'), to_regclass('wfm.planned_shifts')"
                            ).fetchone() == (None, None)


def test_validate_reports_by_rule_with_rows_and_lands_nothing(warehouse_env, tmp_path):
    report = validate_data(plan_file(tmp_path), "planned_shifts", MAPPING, chunk_rows=4,
                           report_path=tmp_path / "report.json")
    assert (report["valid"], report["rows_read"], report["rows_valid"], report["rows_invalid"]) == (False, 9, 4, 5)
    assert report["duplicate_keys"] == 1
    by_rule = {p["rule"]: p for p in report["problems"]}
    [example] = by_rule["local time without --timezone"]["examples"]   # a local time: --timezone places it
    assert (example["row"], example["column"], example["value"]) == (4, "Начало", "09.11.2026 08:00")
    assert example["reason"].startswith("field Начало: ")
    pair = by_rule["ExpectColumnPairValuesAToBeGreaterThanB(shift_end, shift_start)"]["examples"][0]
    assert (pair["row"], pair["column"]) == (5, "Конец, Начало")
    assert by_rule["ExpectColumnValuesToBeBetween(unpaid_break_minutes)"]["examples"][0]["value"] == "-15"
    assert by_rule["field count"]["examples"][0]["row"] == 8 and by_rule["type int"]["rows"] == 1
    assert orjson.loads((tmp_path / "report.json").read_bytes()) == orjson.loads(orjson.dumps(report, default=str))
    with psycopg.connect(warehouse_env) as conn:
        assert conn.execute("SELECT to_regclass('wfm.planned_shifts')").fetchone()[0] is None


def test_a_plan_file_is_imported_for_its_site(warehouse_env, tmp_path, monkeypatch):
    config = tmp_path / "wfm.toml"
    config.write_text("".join(f"""
[connections.cc-{s}]
system = "contact_center"
url = "http://cc-{s}.invalid/api"

[connections.zup-{s}]
system = "onec"
url = "http://zup-{s}.invalid/zup"

[sites.{s}]
contact_center = "cc-{s}"
onec = "zup-{s}"
""" for s in ("north", "south")), encoding="utf-8")
    monkeypatch.setenv("WFM_CONFIG", str(config))
    clean = plan_file(tmp_path, [r for r in ROWS if r[0] == "102"], "clean.csv")
    for site in ("north", "south"):
        result, output = run("import", str(clean), "--stream", "planned_shifts", "--map", MAP_TEXT, "--site", site)
        assert result.exit_code == 0, output
    with psycopg.connect(warehouse_env) as conn:        # the same employee id, one plan row per site
        assert conn.execute("SELECT site, employee_id FROM wfm.planned_shifts ORDER BY 1").fetchall() == [
            ("north", "102"), ("south", "102")]
    assert sorted(p.parent.parent.name for p in (tmp_path / "lake" / "planned_shifts").rglob("*.parquet")) == [
        "site=north", "site=south"]
    result, output = run("import", str(clean), "--stream", "planned_shifts", "--map", MAP_TEXT, "--site", "east")
    assert one_line_error(output) == "error: --site 'east': no such site; known: north, south"
    result, output = run("import", str(clean), "--stream", "employees", "--site", "north")
    assert "--site is for a plan file" in one_line_error(output)


def test_cli_import_then_validate_clean_and_dirty_files(warehouse_env, tmp_path):
    result, output = run("import", str(plan_file(tmp_path)), "--stream", "planned_shifts", "--map", MAP_TEXT,
                         "--chunk-rows", "3")
    assert result.exit_code == 0, output
    assert "quarantined" in output and "wfm quarantine --stream planned_shifts" in output
    assert "ignored: Комментарий" in output
    assert re.search(r"\n +4 +Начало +09\.11\.2026 08:00 +field Начало: ", output), output
    result, output = run("validate", str(plan_file(tmp_path)), "--stream", "planned_shifts", "--map", MAP_TEXT,
                         "--report", str(tmp_path / "r.json"))
    assert result.exit_code == 1
    assert one_line_error(output) == ("error: plan.csv: 5 of 9 rows invalid; first: row 4, column Начало: "
                                      "local time without --timezone")
    clean = plan_file(tmp_path, [r for r in ROWS if r[0] == "102"], "clean.csv")
    mapping = tmp_path / "map.yaml"
    mapping.write_text("\n".join(f"{k}: {v}" for k, v in MAPPING.items()), encoding="utf-8")
    result, output = run("validate", str(clean), "--stream", "planned_shifts", "--mapping", str(mapping))
    assert result.exit_code == 0 and "valid: 1 rows" in output, output


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.csv", "missing.csv: no such file"),
    (lambda p: p, "is a directory, not a file"),
    (lambda p: _write(p / "empty.csv", b""), "empty.csv: the file is empty"),
    (lambda p: _write(p / "header.csv", HEADER.encode("cp1251")), "header.csv: has a header but no rows"),
    (lambda p: _write(p / "image.csv", bytes(range(256)) * 8), "image.csv: binary content, not CSV text"),
    (lambda p: _write(p / "twice.csv", b"a;a\n1;2\n"), "twice.csv: column 'a' appears twice"),
    (lambda p: _write(p / "cols.csv", b"employee_id,begin\n1,2\n"), "cols.csv: missing required column(s) shift_start"),
])
def test_cli_refuses_bad_files_in_one_line(warehouse_env, tmp_path, make, message):
    for command in ("import", "validate"):
        result, output = run(command, str(make(tmp_path)), "--stream", "planned_shifts")
        assert result.exit_code == 1
        assert message in one_line_error(output)


def test_cli_unknown_stream_and_bad_mapping_are_one_line(tmp_path):
    path = plan_file(tmp_path)
    result, output = run("import", str(path), "--stream", "planned_shift")
    assert result.exit_code == 1 and "unknown stream 'planned_shift'; importable: " in one_line_error(output)
    result, output = run("import", str(path), "--stream", "planned_shifts", "--map", "Табельный=employee")
    assert result.exit_code == 1 and "planned_shifts has no field 'employee'" in one_line_error(output)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_the_flows_take_typed_parameters_for_deployments_and_the_ui_form():
    from prefect.utilities.callables import parameter_schema

    from flows.bulk import export_data

    imports = parameter_schema(bulk_import.fn).model_dump_for_openapi()
    assert imports["required"] == ["path", "stream"]
    assert imports["properties"]["file_format"]["enum"] == ["auto", "csv", "parquet", "json", "ndjson"]
    assert imports["properties"]["path"]["format"] == "path"
    exports = parameter_schema(export_data.fn).model_dump_for_openapi()
    assert exports["properties"]["file_format"]["enum"] == ["parquet", "csv"]
    assert {"format": "date", "type": "string"} in exports["properties"]["start"]["anyOf"]
