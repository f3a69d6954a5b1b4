"""The sync engine end to end: simulator over HTTP → Prefect flows → real PostgreSQL and Parquet."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import psycopg
import pytest

from connectors import contact_center as cc
from connectors import streams
from connectors.settings import SourceSettings
from engine import catalog
from engine.landing import ledger
from flows.sync import SyncFailed, sync, sync_stream

from .conftest import SIM_START

pytestmark = pytest.mark.usefixtures("prefect_harness")
UTC = dt.timezone.utc
FIRST, LAST = SIM_START, SIM_START + dt.timedelta(days=2)


def dump(database_url: str, table: str) -> list[tuple]:
    """Every row of a table (lineage columns included), sorted."""
    with psycopg.connect(database_url) as conn:
        return sorted(conn.execute(f"SELECT * FROM wfm.{table}").fetchall(), key=repr)


def source_truth(sim, stream, start: dt.datetime, end: dt.datetime) -> set[tuple]:
    """What the server holds for the period, asked in one window per id batch, keyed."""
    with SourceSettings(cc.SYSTEM, sim.cc_url).client() as client:
        ids = cc.personnel_ids(client)[stream.ids] if stream.ids else []
        rows = set()
        for window in streams.windows(stream, start, end, ids):
            window = streams.Window(start, end, window.ids)
            table = streams.fetch(client, stream, window).table
            rows |= {tuple(r[c] for c in stream.key) for r in table.to_pylist()}
        return rows


def test_backfill_lands_every_stream_and_a_rerun_changes_nothing(wfm_env, database_url):
    sync(["all"], FIRST, LAST)
    tables = [s.name for s in catalog.STREAMS.values()] + ["agent_employee_map"]
    before = {t: dump(database_url, t) for t in tables}
    empty = [t for t, rows in before.items() if not rows and t != "online_agent_status"]
    assert not empty, f"tables left empty: {empty}"
    sync(["all"], FIRST, LAST, force=True)
    after = {t: dump(database_url, t) for t in tables}
    for table in tables:
        if table.startswith("online_"):
            continue  # snapshots are keyed by the moment of the pull: a new pull is new rows
        assert after[table] == before[table], table


def test_overlapping_windows_land_exactly_what_the_server_holds(wfm_env, database_url):
    start = dt.datetime.combine(FIRST, dt.time(), UTC)
    end = dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time(), UTC)
    for stream in (cc.AGENT_STATUS_INTERVALS, cc.AGENT_LOGINS, cc.AGENT_CALLS, cc.SERVICE_GROUP_INTERVALS):
        run = sync_stream(stream.name, FIRST, LAST)
        assert run["duplicates_removed"] + run["rows_unchanged"] >= 0
        with psycopg.connect(database_url) as conn:
            key = ", ".join(stream.key)
            total, distinct = conn.execute(
                f"SELECT count(*), count(DISTINCT ({key})) FROM wfm.{stream.name}").fetchone()
            landed = {tuple(r) for r in conn.execute(f"SELECT {key} FROM wfm.{stream.name}")}
        assert total == distinct
        assert landed == source_truth(wfm_env, stream, start, end), stream.name


def test_a_restated_interval_is_updated_in_place(wfm_env, database_url):
    sync_stream("service_group_intervals", FIRST, FIRST)
    with psycopg.connect(database_url) as conn:
        group, start, received = conn.execute(
            """SELECT group_id, interval_start, not_unique_received FROM wfm.service_group_intervals
               ORDER BY not_unique_received DESC, group_id LIMIT 1""").fetchone()
        count = conn.execute("SELECT count(*) FROM wfm.service_group_intervals").fetchone()[0]
    wfm_env.restate(group, start)
    run = sync_stream("service_group_intervals", FIRST, FIRST, force=True)
    with psycopg.connect(database_url) as conn:
        new, treated, missed = conn.execute(
            """SELECT not_unique_received, not_unique_treated, not_unique_missed FROM wfm.service_group_intervals
               WHERE group_id = %s AND interval_start = %s""", (group, start)).fetchone()
        assert conn.execute("SELECT count(*) FROM wfm.service_group_intervals").fetchone()[0] == count
    assert new != received and new == treated + missed
    assert run["rows_updated"] >= 1 and run["rows_inserted"] == 0


def test_backfill_skips_landed_windows_and_keeps_the_watermark(wfm_env, database_url):
    first = sync_stream("agent_logins", FIRST, LAST)
    again = sync_stream("agent_logins", FIRST, LAST)
    assert first["windows_landed"] == 3 and again["windows_skipped"] == 3 and again["windows_landed"] == 0
    with psycopg.connect(database_url) as conn:
        assert ledger.watermark(conn, "agent_logins") is None


def test_failure_between_landing_and_watermark_leaves_both_unchanged(live_env, database_url, monkeypatch):
    now = dt.datetime.now(UTC)
    live_env.set_clock(now - dt.timedelta(hours=6))
    sync_stream("agent_logins")
    rows_before = dump(database_url, "agent_logins")
    with psycopg.connect(database_url) as conn:
        mark_before = ledger.watermark(conn, "agent_logins")
    assert mark_before is not None and rows_before

    def explode(*args, **kwargs):
        raise RuntimeError("injected failure before the watermark commit")

    monkeypatch.setattr(ledger, "advance_watermark", explode)
    live_env.set_clock(now)    # six more hours of sessions are there to land
    with pytest.raises(SyncFailed, match="injected failure"):
        sync_stream("agent_logins")
    assert dump(database_url, "agent_logins") == rows_before
    with psycopg.connect(database_url) as conn:
        assert ledger.watermark(conn, "agent_logins") == mark_before


def test_watermark_never_passes_uncommitted_data(live_env, database_url, monkeypatch):
    from engine.landing import warehouse

    real_upsert = warehouse.upsert
    today = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    stop_at = today - dt.timedelta(days=1)

    def upsert_until(conn, stream, table, run_id, extracted_at, owner):
        if table.num_rows and min(table.column("login_at").to_pylist()) >= stop_at:
            raise RuntimeError("database went away")
        return real_upsert(conn, stream, table, run_id, extracted_at, owner)

    monkeypatch.setattr(warehouse, "upsert", upsert_until)
    with pytest.raises(SyncFailed, match="database went away"):
        sync_stream("agent_logins")
    with psycopg.connect(database_url) as conn:
        mark = ledger.watermark(conn, "agent_logins")
        landed_until = conn.execute("SELECT max(login_at) FROM wfm.agent_logins").fetchone()[0]
    assert mark is not None and mark <= stop_at
    assert landed_until is not None and landed_until < stop_at + dt.timedelta(days=1)


def test_parquet_equals_postgres_for_duckdb_and_pandas(wfm_env, database_url, tmp_path):
    sync(["cc_personnel", "agent_status_intervals", "agent_chat_work_time"], FIRST, LAST)
    lake = tmp_path / "lake"
    for table in ("agent_status_intervals", "agent_chat_work_time", "cc_agents"):
        with psycopg.connect(database_url) as conn:
            cur = conn.execute(f"SELECT * FROM wfm.{table}")
            names = [c.name for c in cur.description]
            pg = pd.DataFrame(cur.fetchall(), columns=names)
        pattern = f"{lake}/{table}/**/*.parquet"
        duck = duckdb.sql(f"SELECT {', '.join(names)} FROM read_parquet('{pattern}')").df()
        pdf = pd.read_parquet(lake / table)[names]
        key = list(catalog.STREAMS[table].key)
        for other in (duck, pdf):
            left = _normalise(pg.sort_values(key).reset_index(drop=True))
            right = _normalise(other.sort_values(key).reset_index(drop=True))
            pd.testing.assert_frame_equal(left, right, check_dtype=False)


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Reader-independent values: timestamps as UTC instants, lists as tuples, ids as text."""
    def value(v):
        if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
            v = v.tolist()
        if isinstance(v, (list, tuple)):
            return tuple(v)
        if isinstance(v, (pd.Timestamp, dt.datetime)):
            stamp = pd.Timestamp(v)
            if stamp.tzinfo is None:       # DuckDB hands DATE columns to pandas as naive midnights
                return stamp.date().isoformat()
            return stamp.tz_convert("UTC").isoformat()
        if isinstance(v, dt.date):
            return v.isoformat()
        return None if v is None or (isinstance(v, float) and v != v) else str(v)
    # the owner column comes from the hive path (`source=default/`): readers make it categorical
    frame = frame.apply(lambda column: column.astype(object) if isinstance(column.dtype, pd.CategoricalDtype)
                        else column)
    return frame.apply(lambda column: column.map(value))


def test_bad_rows_go_to_quarantine_with_reasons_and_the_good_rows_land(wfm_env, database_url):
    clean = sync_stream("agent_status_intervals", FIRST, LAST)
    wfm_env.set_faults("corrupt=0.02")
    with psycopg.connect(database_url) as conn:
        conn.execute("TRUNCATE wfm.agent_status_intervals")
        conn.execute("DELETE FROM wfm_meta.sync_windows")
        conn.commit()
    run = sync_stream("agent_status_intervals", FIRST, LAST)
    damaged = wfm_env.stats()["faults"]["corrupt"]
    assert damaged > 0 and run["rows_quarantined"] > 0 and run["status"] == "completed"
    with psycopg.connect(database_url) as conn:
        held = conn.execute("""SELECT stream, run_id, window_start, window_end, reason, record
                               FROM wfm_meta.quarantine WHERE run_id = %s""", (run["run_id"],)).fetchall()
        bad_left = conn.execute("SELECT count(*) FROM wfm.agent_status_intervals WHERE ended_at < started_at"
                                ).fetchone()[0]
        landed = conn.execute("SELECT count(*) FROM wfm.agent_status_intervals").fetchone()[0]
    assert len(held) == run["rows_quarantined"]
    for stream, _run_id, start, end, reason, record in held:
        assert stream == "agent_status_intervals" and start < end and reason and isinstance(record, dict)
    reasons = " ".join(r[4] for r in held)
    assert "ExpectColumnPairValuesAToBeGreaterThanB(ended_at, started_at)" in reasons or "field " in reasons
    assert bad_left == 0
    assert clean["rows_inserted"] - damaged <= landed < clean["rows_inserted"]


def test_a_window_failing_the_gate_is_held_back_and_earlier_data_is_untouched(wfm_env, database_url):
    sync_stream("agent_calls", FIRST, LAST)
    before = dump(database_url, "agent_calls")
    wfm_env.set_faults("corrupt=0.5")
    with pytest.raises(SyncFailed, match=r"agent_calls: 3 window\(s\) not landed .*threshold 5.0%"):
        sync_stream("agent_calls", FIRST, LAST, force=True)
    assert dump(database_url, "agent_calls") == before
    with psycopg.connect(database_url) as conn:
        statuses = conn.execute("""SELECT w.status, count(*) FROM wfm_meta.sync_windows w JOIN wfm_meta.sync_runs r
                                   USING (run_id) WHERE r.status = 'failed' GROUP BY 1""").fetchall()
        assert conn.execute("SELECT count(*) FROM wfm_meta.quarantine WHERE stream = 'agent_calls'").fetchone()[0] > 0
    assert statuses == [("held", 3)]


def test_dry_run_lands_nothing(wfm_env, database_url):
    run = sync_stream("agent_logins", FIRST, LAST, dry_run=True)
    assert run["rows_fetched"] > 0
    assert dump(database_url, "agent_logins") == []
