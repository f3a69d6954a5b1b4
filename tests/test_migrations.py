"""`wfm migrate` on a single-connection warehouse and lake built by the code before connections and
sites (versions 1 and 2; tests/fixtures: `build_v0.py` run at 01d9275 — a synced simulated site, plans, outbox, deviations,
a quarantined record, drift, a hold — dumped with pg_dump, its lake as written then)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import psycopg
import pyarrow.parquet as pq
import pytest

from engine import schema
from engine.landing import roster
from engine.migrations import PUSH_TABLES, SITE_TABLES, owner_column
from engine.push import outbox
from tests.chaos import migration_kills

FIXTURES = Path(__file__).parent / "fixtures"


def restore_v0(database_url: str, tmp_path: Path) -> Path:
    """The old warehouse in `database_url` and its lake under tmp_path; returns the lake root."""
    return migration_kills.restore(database_url, tmp_path)


def snapshot(conn: psycopg.Connection, only: dict[str, list[str]] | None = None) -> dict[str, list[tuple]]:
    """Every row of every table, the owner column left out, as sorted tuples; `only`: these tables
    and columns (those of an earlier snapshot: the baseline adds columns to older tables, e.g.
    `local_date`, the scope of a hold, a check result's policy)."""
    out = {}
    for name, columns in (only or _columns(conn)).items():
        namespace, table = name.split(".", 1)
        rows = conn.execute(f'SELECT {", ".join(columns)} FROM "{namespace}"."{table}"').fetchall()
        out[name] = sorted(map(repr, rows))
    return out


def _columns(conn: psycopg.Connection) -> dict[str, list[str]]:
    out = {}
    for namespace, table in conn.execute("""SELECT table_schema, table_name FROM information_schema.tables
                                            WHERE table_schema IN ('wfm', 'wfm_meta')
                                            AND table_name <> 'schema_migrations' ORDER BY 1, 2""").fetchall():
        out[f"{namespace}.{table}"] = [c for (c,) in conn.execute(
            """SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s
               AND column_name NOT IN ('source', 'site') AND column_name <> 'partition' ORDER BY column_name""",
            (namespace, table))]
    return out


def kept(conn: psycopg.Connection, columns: dict[str, list[str]]) -> dict:
    """The rows now of the tables and columns that were there before (the baseline may add new ones)."""
    return snapshot(conn, columns)


def lake_files(lake: Path) -> dict[str, int]:
    return {str(p.relative_to(lake)): p.stat().st_size for p in sorted(lake.rglob("*.parquet"))}


def _owner_leads_every_key(conn: psycopg.Connection) -> None:
    """Every table of schema `wfm` holds 'default' in its owner column, which leads its primary key."""
    for (table,) in conn.execute("""SELECT table_name FROM information_schema.tables
                                    WHERE table_schema = 'wfm'""").fetchall():
        owner = owner_column(table)
        values = conn.execute(f'SELECT DISTINCT {owner} FROM wfm."{table}"').fetchall()
        assert values in ([("default",)], []), table
        key = conn.execute("""SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                              AND a.attnum = i.indkey[0] WHERE i.indrelid = %s::regclass AND i.indisprimary""",
                           (f'wfm."{table}"',)).fetchone()
        assert key == (owner,), table


def _pushed_side_is_owned(conn: psycopg.Connection) -> None:
    """Version 2: the outbox's key and open-row index, and the receiver's worker index, lead with the owner."""
    assert conn.execute("SELECT DISTINCT site FROM wfm_meta.push_outbox").fetchall() == [("default",)]
    unique = conn.execute("""SELECT pg_get_constraintdef(oid) FROM pg_constraint
                             WHERE conrelid = 'wfm_meta.push_outbox'::regclass AND contype = 'u'""").fetchall()
    assert unique == [("UNIQUE (site, kind, employee_id, period)",)]
    indexes = dict(conn.execute("""SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN
                                   ('push_outbox', 'pushed_status_events')""").fetchall())
    assert "push_outbox_open" not in indexes and "pushed_status_events_worker" not in indexes
    assert "(site, kind, state)" in indexes["push_outbox_site_open"]
    assert "(source, worker_id, action_time)" in indexes["pushed_status_events_source_worker"]
    assert conn.execute("SELECT count(*) FROM wfm.pushed_status_events").fetchone()[0] > 0
    assert all(p.startswith(f"{owner_column(t)}=default") for t, p in conn.execute(
        "SELECT table_name, partition FROM wfm_meta.check_results WHERE table_name = ANY(%s)", (list(PUSH_TABLES),)))
    assert outbox.entries(conn, "schedule", outbox.STATES) == outbox.entries(conn, "schedule", outbox.STATES,
                                                                             "default") != []


def test_an_old_warehouse_and_lake_are_migrated_in_place_with_every_row_kept(database_url, tmp_path):
    lake = restore_v0(database_url, tmp_path)
    old_files = lake_files(lake)
    with psycopg.connect(database_url, autocommit=True) as conn:
        columns = _columns(conn)
        before = snapshot(conn, columns)
        assert sum(map(len, before.values())) > 1500 and before["wfm_meta.push_outbox"]
        ran = schema.migrate(conn)
        assert {1, 2, 3} <= {m.version for m in ran} and schema.migrate_lake(str(lake)) == len(old_files)
        assert kept(conn, columns) == before            # every row, every value kept
        _owner_leads_every_key(conn)
        _pushed_side_is_owned(conn)
        assert conn.execute("SELECT DISTINCT source FROM wfm_meta.watermarks").fetchall() == [("default",)]
        assert conn.execute("SELECT partition FROM wfm_meta.lake_pending ORDER BY 1").fetchall() == [
            ("source=default",), ("source=default/date=2026-11-10",)]
        assert conn.execute("SELECT partition FROM wfm_meta.partition_holds").fetchall() == [
            ("source=default/date=2026-11-10",)]
        partitions = dict(conn.execute("SELECT table_name, min(partition) FROM wfm_meta.check_results GROUP BY 1"))
        assert all(p.startswith("site=default" if t in SITE_TABLES else "source=default")
                   for t, p in partitions.items())
        assert schema.migrate(conn) == [] and schema.migrate_lake(str(lake)) == 0   # idempotent
        assert kept(conn, columns) == before
    new_files = lake_files(lake)
    assert sorted(new_files.values()) == sorted(old_files.values())
    for path in new_files:
        table, owner = path.split("/")[:2]
        assert owner == f"{owner_column(table)}=default" and path not in old_files, path
    assert {p.split("/")[0] for p in new_files} >= {"planned_shifts", "deviations"}
    assert not [d for d in lake.rglob("date=*") if d.parent.parent == lake]


def test_a_warehouse_at_version_1_gets_version_2_with_every_row_kept(database_url, tmp_path, monkeypatch):
    lake = restore_v0(database_url, tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        with monkeypatch.context() as release_1:           # the release before sites: version 1 only
            release_1.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
            assert [m.version for m in schema.migrate(conn)] == [1]
            pulled = schema.migrate_lake(str(lake))
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'wfm_meta' "
                            "AND table_name = 'push_outbox' AND column_name = 'site'").fetchone() == (0,)
        columns = _columns(conn)
        before = snapshot(conn, columns)
        pushed_files = [f for f in lake_files(lake) if f.split("/")[0] in PUSH_TABLES]
        assert pushed_files and all("=" not in f.split("/")[1] or f.split("/")[1].startswith("date=")
                                    for f in pushed_files)
        ran = schema.migrate(conn)
        assert [m.version for m in ran][:1] == [2] and 2 in schema.applied(conn)
        assert schema.migrate_lake(str(lake)) == len(pushed_files) and pulled > 0
        assert kept(conn, columns) == before
        _owner_leads_every_key(conn)
        _pushed_side_is_owned(conn)
        assert schema.migrate(conn) == [] and schema.migrate_lake(str(lake)) == 0 and kept(conn, columns) == before
    assert all(f.split("/")[1] == "site=default" for f in lake_files(lake) if f.split("/")[0] in SITE_TABLES)


def test_the_migrated_lake_reads_with_zero_options_in_four_readers(database_url, tmp_path):
    lake = restore_v0(database_url, tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        schema.migrate(conn)
        schema.migrate_lake(str(lake))
        expected = conn.execute("SELECT count(*) FROM wfm.agent_status_intervals").fetchone()[0]
    table = lake / "agent_status_intervals"
    frames = {
        "duckdb": duckdb.sql(f"SELECT * FROM read_parquet('{table}/**/*.parquet')").df(),
        "polars": pl.read_parquet(f"{table}/").to_pandas(),          # a directory: hive partitions found
        "pandas": pd.read_parquet(table),
        "pyarrow": pq.read_table(table).to_pandas(),
    }
    for reader, frame in frames.items():
        assert len(frame) == expected, reader
        assert set(frame["source"].astype(str)) == {"default"}, reader
        assert frame["date"].astype(str).str.startswith("2026-11-").all(), reader


def test_a_crash_between_the_database_and_the_lake_is_repaired_by_the_next_call(database_url, tmp_path):
    lake = restore_v0(database_url, tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert {1, 2} <= {m.version for m in schema.migrate(conn)}       # then killed before the lake
        (lake / "cc_agents" / ".part-0.parquet.dead.tmp").write_bytes(b"half")
        assert schema.migrate(conn) == [] and schema.migrate_lake(str(lake)) > 0
    assert (lake / "cc_agents" / "source=default" / "part-0.parquet").is_file()


def test_a_fresh_warehouse_records_the_versions_and_changes_nothing(database_url, tmp_path):
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert {1, 2, 3} <= {m.version for m in schema.migrate(conn)}   # recorded; nothing to change
        assert {1: "connections", 2: "sites", 3: "state per connection"}.items() <= schema.applied(conn).items()
        assert schema.migrate(conn) == [] and schema.migrate_lake(str(tmp_path / "lake")) == 0


@pytest.mark.parametrize("table, owner", [("agent_calls", "source"), ("deviations", "site"),
                                          ("planned_shifts", "site"), ("cc_agents", "source")])
def test_owner_columns(table, owner):
    assert owner_column(table) == owner


TWO_CENTERS = """
[connections.cc-north]
system = "contact_center"
url = "http://wfm:secret@north.example:8080/api/"

[connections.cc-south]
system = "contact_center"
url = "https://south.example/api"

[connections.zup-north]
system = "onec"
url = "http://north.example:8080/api"
"""
NORTH, SOUTH, GONE = "http://north.example:8080/api", "https://south.example/api", "http://gone.example/api"
T1, T2, T3 = "2026-11-01 00:00+00", "2026-11-05 00:00+00", "2026-11-09 00:00+00"


def before_v3(conn: psycopg.Connection) -> None:
    """The previous release's state tables (migrations up to 2 done, 3 not): anomalies and watermark
    changes without `source`, the roster keyed by base URL; runs of two connections."""
    schema.migrate(conn)
    conn.execute("""DELETE FROM wfm_meta.schema_migrations WHERE version = 3;
                    ALTER TABLE wfm_meta.anomalies DROP COLUMN source;
                    ALTER TABLE wfm_meta.state_changes DROP COLUMN source""")
    for run, source in (("00000000-0000-0000-0000-00000000000a", "cc-north"),
                        ("00000000-0000-0000-0000-00000000000b", "default")):
        conn.execute("""INSERT INTO wfm_meta.sync_runs (run_id, stream, source, mode, started_at)
                        VALUES (%s, 'agent_calls', %s, 'incremental', now())""", (run, source))
    for run in ("00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b",
                "00000000-0000-0000-0000-00000000000c"):     # c: its run pruned since
        conn.execute("""INSERT INTO wfm_meta.anomalies (run_id, stream, window_start, window_end, ids_hash, kind,
                        rows_fetched, expected, message) VALUES (%s, 'agent_calls', %s, %s, 'b0', 'empty', 0, 40, 'm')""",
                     (run, T2, T3))
    conn.execute("""INSERT INTO wfm_meta.state_changes (stream, action, watermark_before, watermark_after, changed_by)
                    VALUES ('agent_calls', 'set', %s, %s, 'ops'), ('agent_logins', 'reset', %s, NULL, 'ops')""",
                 (T2, T1, T3))
    conn.execute("""INSERT INTO wfm_meta.source_ids (source, kind, id, first_seen, last_seen, appeared_after, gone_at)
                    VALUES (%(n)s, 'agents', 'a1', %(t1)s, %(t2)s, NULL, NULL), (%(n)s, 'agents', 'a2', %(t1)s, %(t1)s,
                    NULL, %(t2)s), (%(n)s, 'groups', 'g1', %(t1)s, %(t2)s, NULL, NULL),
                    (%(s)s, 'agents', 'b1', %(t1)s, %(t2)s, NULL, NULL), (%(g)s, 'agents', 'z1', %(t1)s, %(t1)s,
                    NULL, NULL), ('cc-north', 'agents', 'a1', %(t2)s, %(t3)s, %(t1)s, NULL)""",
                 {"n": NORTH, "s": SOUTH, "g": GONE, "t1": T1, "t2": T2, "t3": T3})


def test_state_gets_its_connection_and_the_roster_its_names(database_url, tmp_path, monkeypatch):
    config = tmp_path / "wfm.toml"
    config.write_text(TWO_CENTERS, encoding="utf-8")
    monkeypatch.setenv("WFM_CONFIG", str(config))
    with psycopg.connect(database_url, autocommit=True) as conn:
        before_v3(conn)
        ran = schema.migrate(conn)
        assert [m.version for m in ran] == [3] and schema.applied(conn)[3] == "state per connection"
        anomalies = conn.execute("SELECT run_id::text, source FROM wfm_meta.anomalies ORDER BY run_id").fetchall()
        assert [s for _, s in anomalies] == ["cc-north", "default", "default"]   # the run's, else default
        assert conn.execute("SELECT stream, source, action FROM wfm_meta.state_changes ORDER BY id").fetchall() == [
            ("agent_calls", "default", "set"), ("agent_logins", "default", "reset")]
        ids = """SELECT source, kind, id, first_seen, last_seen, appeared_after, gone_at FROM wfm_meta.source_ids
                 ORDER BY 1, 2, 3"""
        after = conn.execute(ids).fetchall()
        assert [r[:3] for r in after] == [
            ("cc-north", "agents", "a1"), ("cc-north", "agents", "a2"), ("cc-north", "groups", "g1"),
            ("cc-south", "agents", "b1"), (GONE, "agents", "z1")]       # a URL no connection has: kept
        a1 = after[0]
        assert (f"{a1[3]:%Y-%m-%d}", f"{a1[4]:%Y-%m-%d}", a1[5]) == ("2026-11-01", "2026-11-09", None)  # merged
        assert after[1][6] is not None                                  # a2's departure kept
        monkeypatch.delenv("WFM_CONFIG")                                # idempotent, whatever the settings now
        assert schema.migrate(conn) == [] and conn.execute(ids).fetchall() == after

        known = roster.look(conn, "cc-east", "agents", ["z1", "z2"], dt.datetime(2026, 11, 10, tzinfo=dt.timezone.utc),
                            former=GONE)                                 # a connection given the URL adopts its ids
        assert known.ids == ["z1", "z2"]
        assert conn.execute("SELECT count(*) FROM wfm_meta.source_ids WHERE source = %s", (GONE,)).fetchone() == (0,)
