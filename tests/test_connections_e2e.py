"""Acceptance of connections: two contact centers and two 1C bases (simulated sites with other seeds
and colliding ids) land into one warehouse and one lake, exactly the union of two single-site
landings; a rerun changes nothing; one site down fails its streams only and catches up after."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest

from connectors.simulator import ServerConfig, start_simulator
from connectors.simulator.fleet import fleet_configs, sites_settings, start_fleet
from connectors.simulator.world import SimConfig

from .conftest import SIM_START, fresh_database, sim_clock

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]
FIRST, LAST = SIM_START, SIM_START + dt.timedelta(days=1)
STREAMS = ["cc_agents", "agent_status_intervals", "agent_logins", "employees", "timesheet_days"]
TABLES = [*STREAMS, "agent_employee_map"]
LINEAGE = ("_run_id", "_extracted_at")


def settings_file(tmp_path: Path, fleet, names: list[str]) -> Path:
    text = sites_settings(fleet, "ZUP_PASSWORD", names)
    path = tmp_path / f"wfm-{'-'.join(names)}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def rows(database_url: str, table: str) -> set[tuple]:
    """Every row of a table but its lineage columns, as a set of (column, value) tuples."""
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(f"SELECT * FROM wfm.{table}")
        names = [c.name for c in cur.description]
        return {tuple((n, repr(v)) for n, v in zip(names, r) if n not in LINEAGE) for r in cur.fetchall()}


def lake_rows(lake: Path, table: str) -> set[tuple]:
    """The lake's rows of a table read with zero options (hive partitions become columns)."""
    read = pq.read_table(lake / table)
    keep = [n for n in read.column_names if n not in LINEAGE and n != "date"]
    return {tuple(sorted((k, str(v)) for k, v in r.items())) for r in read.select(keep).to_pylist()}


def pg_as_lake(database_url: str, table: str) -> set[tuple]:
    """PostgreSQL's rows as the lake publishes them: personal columns hashed or left out."""
    from engine import catalog
    from engine.privacy import personal_data

    chosen = personal_data.policy(catalog.STREAMS[table]) if table in catalog.STREAMS else {}
    key = os.environ.get(personal_data.KEY_VARIABLE, "").encode() or None
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        cur = conn.execute(f"SELECT * FROM wfm.{table}")
        names = [c.name for c in cur.description]
        out = set()
        for r in cur.fetchall():
            row = {n: (personal_data.pseudonym(v, key) if chosen.get(n) == "hash" else v)
                   for n, v in zip(names, r) if n not in LINEAGE and chosen.get(n) != "drop"}
            out.add(tuple(sorted((k, str(v)) for k, v in row.items())))
        return out


def run_sync(monkeypatch, database_url: str, lake: Path, config: Path, **kwargs):
    from engine.landing.window import close_clients
    from flows.sync import sync

    monkeypatch.setenv("WFM_CONFIG", str(config))
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    monkeypatch.setenv("WFM_LAKE_PATH", str(lake))
    try:
        return sync(STREAMS + ["agent_employee_map"], kwargs.pop("start", FIRST), kwargs.pop("end", LAST), **kwargs)
    finally:
        close_clients()


def test_two_sites_land_as_the_union_of_two_single_site_landings(monkeypatch, tmp_path, postgres_server,
                                                                database_url, second_database):
    monkeypatch.setenv("ZUP_PASSWORD", "wfm")
    base = ServerConfig(sim=SimConfig(seed=7, agents=8, services=1, groups_per_service=2, start=SIM_START, days=3))
    with start_fleet(fleet_configs(["north", "south"], base)) as fleet, fresh_database(postgres_server) as third:
        for running in fleet.values():
            running.set_clock(sim_clock(days=3))
        both = settings_file(tmp_path, fleet, ["north", "south"])
        runs = run_sync(monkeypatch, database_url, tmp_path / "lake", both)
        assert {(r["stream"], r["source"]) for r in runs} >= {("cc_agents", "cc-north"), ("cc_agents", "cc-south"),
                                                               ("employees", "zup-north"), ("employees", "zup-south")}
        run_sync(monkeypatch, second_database, tmp_path / "lake-n", settings_file(tmp_path, fleet, ["north"]))
        run_sync(monkeypatch, third, tmp_path / "lake-s", settings_file(tmp_path, fleet, ["south"]))
        for table in TABLES:
            together, north, south = rows(database_url, table), rows(second_database, table), rows(third, table)
            assert north and south, table
            assert together == north | south and len(together) == len(north) + len(south), table
            assert pg_as_lake(database_url, table) == lake_rows(tmp_path / "lake", table), table
        with psycopg.connect(database_url) as conn:    # the ids collide: the same agent id in both sites
            shared = conn.execute("""SELECT count(*) FROM wfm.cc_agents n JOIN wfm.cc_agents s USING (agent_id)
                                     WHERE n.source = 'cc-north' AND s.source = 'cc-south'""").fetchone()[0]
            assert shared >= 6
            before = {t: rows(database_url, t) for t in TABLES}
        rerun = run_sync(monkeypatch, database_url, tmp_path / "lake", both, force=True)
        assert all(r["rows_inserted"] == r["rows_updated"] == 0 for r in rerun), rerun
        assert {t: rows(database_url, t) for t in TABLES} == before


def test_one_site_down_fails_its_streams_only_and_the_next_run_catches_up(monkeypatch, tmp_path, database_url,
                                                                         second_database):
    from flows.sync import SyncFailed

    monkeypatch.setenv("ZUP_PASSWORD", "wfm")
    today = dt.datetime.now(dt.timezone.utc).date()
    base = ServerConfig(sim=SimConfig(seed=11, agents=6, services=1, groups_per_service=2,
                                      start=today - dt.timedelta(days=2), days=3))
    configs = fleet_configs(["north", "south"], base)
    with start_fleet(configs) as fleet:
        both = settings_file(tmp_path, fleet, ["north", "south"])
        south_port = fleet["south"].port
        fleet["south"].stop()
        with pytest.raises(SyncFailed) as failed:
            run_sync(monkeypatch, database_url, tmp_path / "lake", both, start=None, end=None)
        message = str(failed.value)
        assert "cc-south" in message and "zup-south" in message and "north" not in message
        with psycopg.connect(database_url) as conn:
            sources = {s for (s,) in conn.execute("SELECT DISTINCT source FROM wfm.agent_logins")}
            assert sources == {"cc-north"}
            failed_runs = conn.execute("""SELECT DISTINCT source FROM wfm_meta.sync_runs
                                          WHERE status = 'failed'""").fetchall()
            assert {s for (s,) in failed_runs} == {"cc-south", "zup-south"}
        from typer.testing import CliRunner

        from wfm.cli import app
        status = CliRunner().invoke(app, ["connections", "status", "cc-south"])
        assert status.exit_code == 0 and "agent_logins" in status.output and "failed" in status.output, status.output
        runs = CliRunner().invoke(app, ["runs", "--connection", "cc-north"])
        assert runs.exit_code == 0 and "cc-north" in runs.output and "cc-south" not in runs.output, runs.output
        with start_simulator(dataclasses.replace(configs["south"], port=south_port)) as south:
            fleet_south = {"south": south}
            run_sync(monkeypatch, database_url, tmp_path / "lake", both, start=None, end=None)
            yesterday = today - dt.timedelta(days=1)     # closed days: what a backfill of them holds
            run_sync(monkeypatch, second_database, tmp_path / "lake-2",
                     settings_file(tmp_path, fleet_south, ["south"]), start=today - dt.timedelta(days=2),
                     end=yesterday)
        midnight = dt.datetime.combine(today, dt.time(), dt.timezone.utc)

        def closed(url: str) -> set[tuple]:
            with psycopg.connect(url) as conn:
                return set(conn.execute("""SELECT agent_id, login_at, logout_at, duration_ms FROM wfm.agent_logins
                                           WHERE source = 'cc-south' AND logout_at < %s""", (midnight,)).fetchall())
        assert closed(database_url) and closed(database_url) == closed(second_database)
        with psycopg.connect(database_url) as conn:
            marks = dict(conn.execute("""SELECT source, value FROM wfm_meta.watermarks
                                         WHERE stream = 'agent_logins'"""))
            assert set(marks) == {"cc-north", "cc-south"} and all(marks.values())
            sources = {s for (s,) in conn.execute("SELECT DISTINCT source FROM wfm.agent_logins")}
            assert sources == {"cc-north", "cc-south"}
