"""Imports an independent corpus broke (issue 20) and local times (issue 16), end to end: real
files, real Prefect flows, real PostgreSQL, the lake read back with pyarrow."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.files import FileRejected
from flows.bulk import bulk_import, export_data, validate_data

from .test_cli import one_line_error, run
from .test_file_edges import damaged_parquet

pytestmark = pytest.mark.usefixtures("prefect_harness")
UTC = dt.timezone.utc
HEADER = "employee_id,shift_start,shift_end,unpaid_break_minutes\n"


@pytest.fixture
def lake_env(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    monkeypatch.setenv("WFM_LAKE_PATH", str(tmp_path / "lake"))
    return database_url


def shifts(tmp_path: Path, name: str, *rows: tuple[str, str, str]) -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(f"{e},{s},{end},0\n" for e, s, end in rows), encoding="utf-8")
    return path


def queued(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [p for (p,) in conn.execute("SELECT partition FROM wfm_meta.lake_pending ORDER BY 1")]


def test_a_shift_on_9999_12_31_lands_and_its_partition_is_published(lake_env, tmp_path):
    path = shifts(tmp_path, "edge.csv", ("1", "9999-12-31T20:00:00Z", "9999-12-31T23:59:59Z"),
                  ("2", "2026-11-09T08:00:00Z", "2026-11-09T16:00:00Z"))
    run_ = bulk_import(path, "planned_shifts")
    assert (run_["status"], run_["rows_inserted"], run_["file"]["unpublished"]) == ("completed", 2, [])
    lake = tmp_path / "lake" / "planned_shifts" / "site=default"
    edge = pq.read_table(lake / "date=9999-12-31" / "part-0.parquet")
    assert edge.column("shift_end").to_pylist() == [dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    assert queued(lake_env) == []
    last_day = dt.date(9999, 12, 31)
    exported = export_data("planned_shifts", tmp_path / "edge.parquet", start=last_day, end=last_day)
    assert exported["rows"] == 1 and pq.read_table(tmp_path / "edge.parquet").column("employee_id").to_pylist() == ["1"]
    later = bulk_import(shifts(tmp_path, "later.csv", ("3", "2026-11-10T08:00:00Z", "2026-11-10T16:00:00Z")),
                        "planned_shifts")
    assert later["status"] == "completed" and (lake / "date=2026-11-10" / "part-0.parquet").exists()


def test_an_unpublishable_partition_stays_queued_and_blocks_no_other_partition_or_import(lake_env, tmp_path):
    lake = tmp_path / "lake" / "planned_shifts" / "site=default"
    lake.mkdir(parents=True)
    (lake / "date=2026-11-10").write_text("a file where the partition's directory should be")
    first = bulk_import(shifts(tmp_path, "a.csv", ("1", "2026-11-09T08:00:00Z", "2026-11-09T16:00:00Z"),
                               ("2", "2026-11-10T08:00:00Z", "2026-11-10T16:00:00Z")), "planned_shifts")
    assert (first["status"], first["rows_inserted"]) == ("completed", 2)
    assert first["file"]["unpublished"] == ["site=default/date=2026-11-10"] == queued(lake_env)
    assert pq.read_table(lake / "date=2026-11-09" / "part-0.parquet").num_rows == 1
    second = bulk_import(shifts(tmp_path, "b.csv", ("3", "2026-11-11T08:00:00Z", "2026-11-11T16:00:00Z")),
                         "planned_shifts")
    assert second["status"] == "completed" and (lake / "date=2026-11-11" / "part-0.parquet").exists()
    assert queued(lake_env) == ["site=default/date=2026-11-10"]        # still in the way: still queued, nothing else hurt
    (lake / "date=2026-11-10").unlink()
    third = bulk_import(shifts(tmp_path, "c.csv", ("4", "2026-11-12T08:00:00Z", "2026-11-12T16:00:00Z")),
                        "planned_shifts")
    assert third["file"]["unpublished"] == [] == queued(lake_env)
    assert pq.read_table(lake / "date=2026-11-10" / "part-0.parquet").column("employee_id").to_pylist() == ["2"]


def test_a_parquet_file_damaged_midway_lands_nothing(lake_env, tmp_path):
    path = damaged_parquet(tmp_path / "damaged.parquet", group=1)
    with pytest.raises(FileRejected, match="^damaged.parquet: damaged Parquet: row group 2 of 4"):
        bulk_import(path, "planned_shifts", chunk_rows=100)
    with psycopg.connect(lake_env) as conn:
        assert conn.execute("SELECT to_regclass('wfm.planned_shifts')").fetchone()[0] is None
    for command in ("import", "validate"):
        result, output = run(command, str(path), "--stream", "planned_shifts")
        assert result.exit_code == 1
        assert one_line_error(output).startswith("error: damaged.parquet: damaged Parquet: row group 2 of 4")


def test_cli_local_times_with_timezone_land_the_right_utc_instants(lake_env, tmp_path):
    path = tmp_path / "zup.csv"
    path.write_bytes(("Табельный;Начало;Конец\r\n00042;01.03.2026 08:00;01.03.2026 17:00\r\n"
                      "00043;2026-03-01 22:00:00;2026-03-02T06:30\r\n").encode("cp1251"))
    mapping = "Табельный=employee_id,Начало=shift_start,Конец=shift_end"
    result, output = run("validate", str(path), "--stream", "planned_shifts", "--map", mapping)
    assert result.exit_code == 1
    assert one_line_error(output) == ("error: zup.csv: 2 of 2 rows invalid; first: row 1, column Начало: "
                                      "local time without --timezone")
    result, output = run("import", str(path), "--stream", "planned_shifts", "--map", mapping,
                         "--timezone", "Asia/Yekaterinburg")
    assert result.exit_code == 0, output
    with psycopg.connect(lake_env) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        rows = conn.execute("SELECT employee_id, shift_start, shift_end FROM wfm.planned_shifts ORDER BY 1").fetchall()
    assert rows == [("00042", dt.datetime(2026, 3, 1, 3, tzinfo=UTC), dt.datetime(2026, 3, 1, 12, tzinfo=UTC)),
                    ("00043", dt.datetime(2026, 3, 1, 17, tzinfo=UTC), dt.datetime(2026, 3, 2, 1, 30, tzinfo=UTC))]
    result, output = run("import", str(path), "--stream", "planned_shifts", "--timezone", "Asia/Ekb")
    assert result.exit_code == 1 and "--timezone: 'Asia/Ekb' is not a time zone" in one_line_error(output)


def test_cli_unreadable_and_bom_only_files_are_one_line(lake_env, tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf")
    for command in ("import", "validate"):
        result, output = run(command, str(bom), "--stream", "planned_shifts")
        assert result.exit_code == 1
        assert one_line_error(output) == "error: bom.csv: the file is empty (only a byte-order mark)"
    locked = shifts(tmp_path, "locked.csv", ("1", "2026-11-09T08:00:00Z", "2026-11-09T16:00:00Z"))
    locked.chmod(0o000)
    wfm = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "wfm"
    # root reads any file: the command runs without the capabilities that let it (as a user would)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    child = subprocess.run([*drop, str(wfm), "validate", str(locked), "--stream", "planned_shifts"],
                           capture_output=True, text=True, env=os.environ, timeout=120)
    assert child.returncode == 1, child.stderr
    assert [line for line in child.stderr.splitlines() if line.strip()] == [
        f"error: {locked}: cannot be read (Permission denied)"]


CELLS = {
    "employee_id": st.sampled_from(["1", "2", "", 'Об"ед', "3"]),
    "shift_start": st.sampled_from(["2026-11-09T08:00:00Z", "2026-11-09T08:00:00+03:00", "9999-12-31T23:00:00-03:00",
                                    "0001-01-01T00:00:00+03:00", "9999-12-31T20:00:00Z", "09.11.2026 08:00",
                                    "2026-11-09 08:00", "junk", "", "2026-02-30T08:00:00Z"]),
    "shift_end": st.sampled_from(["2026-11-09T16:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T08:00:00Z",
                                  "2026-11-09T07:00:00Z", "09.11.2026 17:00", "", "9999-12-31T22:00:00-03:00"]),
    "unpaid_break_minutes": st.sampled_from(["0", "30", "-5", "lots", "60,0", ""]),
}
ROW = st.fixed_dictionaries(CELLS).map(lambda r: ",".join(r.values())) | st.sampled_from(["1,2026-11-09T08:00:00Z"])


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=1, max_size=8), zone=st.sampled_from([None, "Asia/Yekaterinburg"]),
       chunk=st.integers(1, 4))
def test_validate_predicts_what_import_lands_and_quarantines(lake_env, tmp_path, rows, zone, chunk):
    prefix = uuid.uuid4().hex[:8]      # this example's rows, apart from the other examples' in the same database
    path = tmp_path / f"{prefix}.csv"
    path.write_text(HEADER + "".join(f"{prefix}{row}\n" for row in rows), encoding="utf-8")
    try:
        report = validate_data(path, "planned_shifts", chunk_rows=chunk, timezone=zone)
    except FileRejected as refused:     # the dry run refuses a file: the import refuses it the same way
        with pytest.raises(FileRejected) as also:
            bulk_import(path, "planned_shifts", chunk_rows=chunk, timezone=zone)
        assert str(also.value) == str(refused)
        return
    imported = bulk_import(path, "planned_shifts", chunk_rows=chunk, timezone=zone)
    assert imported["status"] == "completed"
    assert (report["rows_read"], report["rows_invalid"]) == (imported["rows_fetched"], imported["rows_quarantined"])
    assert report["rows_valid"] == imported["rows_fetched"] - imported["rows_quarantined"]
    with psycopg.connect(lake_env) as conn:
        landed = conn.execute("SELECT count(*) FROM wfm.planned_shifts WHERE employee_id LIKE %s",
                              (prefix + "%",)).fetchone()[0]
    assert landed == imported["rows_inserted"]
    assert report["rows_valid"] == sum(imported[k] for k in ("rows_inserted", "rows_updated", "rows_unchanged",
                                                             "duplicates_removed"))
    assert imported["file"]["unpublished"] == []
