"""The operator's repair commands: watermarks shown and moved by hand (logged, refused while a run
is going), and the lake rebuilt from PostgreSQL and verified against it."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path

import psycopg
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from engine import catalog
from engine.landing import lake, ledger
from flows.sync import sync_stream

from .conftest import SIM_START
from .landing import land

UTC = dt.timezone.utc
FIRST, LAST = SIM_START, SIM_START + dt.timedelta(days=1)


def wfm(*args: str):
    from wfm.cli import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.mark.usefixtures("prefect_harness")
def test_state_set_moves_the_watermark_and_the_next_incremental_starts_there(live_env, database_url):
    sync_stream("agent_logins")
    with psycopg.connect(database_url) as conn:
        first = ledger.watermark(conn, "agent_logins")
    assert first is not None
    moved = (first - dt.timedelta(days=2)).replace(hour=6, minute=0, second=0, microsecond=0)
    done = wfm("state", "set", "agent_logins", "--watermark", moved.isoformat(), "--reason", "re-read two days")
    assert done.exit_code == 0 and f"-> {moved:%Y-%m-%d %H:%M}" in done.output, done.output
    shown = wfm("state", "show", "agent_logins")
    assert shown.exit_code == 0 and f"{moved:%Y-%m-%d %H:%M}" in shown.output and "set " in shown.output
    with psycopg.connect(database_url) as conn:
        assert ledger.watermark(conn, "agent_logins") == moved
        assert conn.execute("""SELECT action, watermark_before, watermark_after, reason FROM wfm_meta.state_changes
                            """).fetchall() == [("set", first, moved, "re-read two days")]

    run = sync_stream("agent_logins")
    lookback = catalog.STREAMS["agent_logins"].lookback
    assert run["mode"] == "incremental" and run["watermark_before"] == moved
    assert run["period_start"] == dt.datetime.combine((moved - lookback).date(), dt.time(), UTC)

    with psycopg.connect(database_url, autocommit=True) as conn:     # a run is going: no change by hand
        ledger.start_run(conn, uuid.uuid4(), "agent_logins", "incremental", moved, moved, [], moved)
    refused = wfm("state", "reset", "agent_logins")
    assert refused.exit_code == 1 and "a run of agent_logins is going" in refused.output
    assert wfm("state", "reset", "agent_logins", "--force").exit_code == 0
    with psycopg.connect(database_url) as conn:
        assert ledger.watermark(conn, "agent_logins") is None


@pytest.mark.parametrize("args, message", [
    (["set", "agent_logins", "--watermark", "2026-11-10 06:00"], "has no zone"),
    (["set", "agent_logins", "--watermark", "2999-01-01"], "is in the future"),
    (["set", "cc_agents", "--watermark", "2026-11-10"], "is a snapshot stream"),
    (["reset", "agent_loginz"], "unknown stream 'agent_loginz'"),
])
def test_a_wrong_state_change_is_one_line(database_url, monkeypatch, args, message):
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    result = wfm("state", *args)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


TWO_CENTERS = """
[connections.cc-north]
system = "contact_center"
url = "http://127.0.0.1:9/north"

[connections.cc-south]
system = "contact_center"
url = "http://127.0.0.1:9/south"
"""


def test_state_is_per_connection_and_a_change_moves_one_connection_only(database_url, tmp_path, monkeypatch):
    (tmp_path / "wfm.toml").write_text(TWO_CENTERS, encoding="utf-8")
    monkeypatch.setenv("WFM_CONFIG", str(tmp_path / "wfm.toml"))
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    for connection, day in (("cc-north", "2026-11-10"), ("cc-south", "2026-11-12")):
        done = wfm("state", "set", "agent_logins", "--watermark", day, "--connection", connection)
        assert done.exit_code == 0 and f"agent_logins ({connection}): watermark none -> {day} 00:00" in done.output
    assert wfm("state", "reset", "agent_logins", "--connection", "cc-north", "--reason", "afresh").exit_code == 0
    with psycopg.connect(database_url) as conn:
        assert ledger.watermark(conn, "agent_logins", "cc-north") is None
        assert ledger.watermark(conn, "agent_logins", "cc-south") == dt.datetime(2026, 11, 12, tzinfo=UTC)
        assert conn.execute("SELECT source, action FROM wfm_meta.state_changes ORDER BY id").fetchall() == [
            ("cc-north", "set"), ("cc-south", "set"), ("cc-north", "reset")]

    shown = wfm("state", "show", "agent_logins")
    rows = {line.split()[1]: line for line in shown.output.splitlines() if line.strip().startswith("agent_logins")}
    assert shown.exit_code == 0 and set(rows) == {"cc-north", "cc-south"}, shown.output
    assert "reset none by" in rows["cc-north"] and "2026-11-12 00:00" in rows["cc-south"]
    assert "2026-11-12" not in rows["cc-north"]
    one = wfm("state", "show", "--connection", "cc-south")
    listed = [line.split() for line in one.output.splitlines() if line.strip().startswith(("agent_", "service_"))]
    assert len(listed) > 1 and {cells[1] for cells in listed} == {"cc-south"}, one.output

    with psycopg.connect(database_url, autocommit=True) as conn:     # a run of cc-south: cc-north still moves
        now = dt.datetime.now(UTC)
        ledger.start_run(conn, uuid.uuid4(), "agent_logins", "incremental", now, now, [], now, source="cc-south")
    refused = wfm("state", "reset", "agent_logins", "--connection", "cc-south")
    assert refused.exit_code == 1 and "a run of agent_logins (cc-south) is going" in refused.output
    assert wfm("state", "set", "agent_logins", "--watermark", "2026-11-11", "-c", "cc-north").exit_code == 0
    unknown = wfm("state", "set", "agent_logins", "--watermark", "2026-11-11", "--connection", "cc-nort")
    assert unknown.exit_code == 1 and "no connection 'cc-nort' of agent_logins" in unknown.output
    assert "known: cc-north, cc-south" in unknown.output
    default = wfm("state", "reset", "agent_logins")       # the default is not one of these connections
    assert default.exit_code == 1 and "no connection 'default'" in default.output


def lake_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def test_lake_rebuild_restores_a_deleted_lake_and_verify_catches_a_tampered_partition(
        wfm_env, database_url, tmp_path):
    root = tmp_path / "lake"
    for name in ("agent_logins", "cc_agents"):
        land(name, FIRST, LAST) if catalog.STREAMS[name].incremental else land(name)
        with psycopg.connect(database_url) as conn:
            lake.publish(conn, catalog.STREAMS[name], str(root))
    published = lake_files(root)
    assert {"agent_logins/source=default/date=2026-11-09/part-0.parquet",
            "cc_agents/source=default/part-0.parquet"} <= set(published)
    assert wfm("lake", "verify").exit_code == 0

    shutil.rmtree(root)
    rebuilt = wfm("lake", "rebuild")
    assert rebuilt.exit_code == 0 and "agent_logins: 2 partition(s) written" in rebuilt.output, rebuilt.output
    assert lake_files(root) == published                            # byte for byte
    verified = wfm("lake", "verify")
    assert verified.exit_code == 0 and "3 partition(s) equal, 0 fault(s)" in verified.output, verified.output

    tampered = root / "agent_logins" / "source=default" / f"date={LAST}" / "part-0.parquet"
    table = pq.read_table(tampered)
    durations = table.column("duration_ms").to_pylist()
    durations[0] += 1000
    pq.write_table(table.set_column(table.schema.get_field_index("duration_ms"), "duration_ms",
                                    pc.cast(durations, table.schema.field("duration_ms").type)), tampered)
    (root / "agent_logins" / "source=default" / f"date={FIRST}" / "part-0.parquet").unlink()
    (root / "agent_logins" / "source=default" / "date=2020-01-01").mkdir()
    shutil.copy(tampered, root / "agent_logins" / "source=default" / "date=2020-01-01" / "part-0.parquet")
    found = wfm("lake", "verify", "agent_logins")
    assert found.exit_code == 1 and "0 partition(s) equal, 3 fault(s)" in found.output, found.output
    for partition, status in ((f"source=default/date={LAST}", "differs"), (f"source=default/date={FIRST}", "missing"),
                              ("source=default/date=2020-01-01", "extra")):
        assert any(partition in line and status in line for line in found.output.splitlines()), (partition, status)

    with psycopg.connect(database_url) as conn:                    # a partition held whole stays out of the lake
        conn.execute("""INSERT INTO wfm_meta.partition_holds (table_name, partition, check_name, run_id)
                        VALUES ('agent_logins', %s, 'status_within_login', %s)""",
                     (f"source=default/date={LAST}", uuid.uuid4()))
    again = wfm("lake", "rebuild", "agent_logins", "--start", str(FIRST), "--end", str(LAST))
    assert again.exit_code == 0 and "1 partition(s) written, 1 removed" in again.output, again.output
    # outside --start/--end: untouched
    assert "agent_logins/source=default/date=2020-01-01/part-0.parquet" in lake_files(root)
    assert "1 partition(s) written, 1 removed" in wfm("lake", "rebuild", "agent_logins").output
    assert set(lake_files(root)) == {f"agent_logins/source=default/date={FIRST}/part-0.parquet",
                                     "cc_agents/source=default/part-0.parquet"}
    final = wfm("lake", "verify")
    assert final.exit_code == 0 and "withheld" in final.output, final.output
