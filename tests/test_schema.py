"""The schema entry point: every wfm_meta table from one call, numbered migrations applied once."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from engine import schema
from wfm.cli import app

META_TABLES = {"sync_runs", "sync_windows", "watermarks", "quarantine", "lake_pending", "check_results",
               "partition_holds", "schema_drift", "push_outbox", "push_log", "webhook_subscribers", "webhook_events",
               "webhook_deliveries", "webhook_outbox", "webhook_marks", "schema_migrations"}


def _tables(conn: psycopg.Connection, schema_name: str) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema_name,))}


def test_migrate_creates_every_meta_table_and_a_second_run_changes_nothing(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert schema.migrate(conn) == list(schema.MIGRATIONS)     # recorded: on a fresh warehouse, no-ops
        assert META_TABLES <= _tables(conn, "wfm_meta")
        assert _tables(conn, "wfm") == set()        # stream tables come with their first landing
        outbox_key = conn.execute("""SELECT pg_get_constraintdef(oid) FROM pg_constraint
                                     WHERE conrelid = 'wfm_meta.push_outbox'::regclass AND contype = 'u'""").fetchall()
        assert outbox_key == [("UNIQUE (site, kind, employee_id, period)",)]     # one site's rows, once
        assert conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'push_outbox_site_open'").fetchone()
        before = conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'wfm_meta'").fetchone()
        assert schema.migrate(conn) == []
        after = conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'wfm_meta'").fetchone()
    assert before == after


def test_a_numbered_migration_runs_once_and_keeps_what_landed(database_url, monkeypatch: pytest.MonkeyPatch):
    with psycopg.connect(database_url, autocommit=True) as conn:
        schema.migrate(conn)
        conn.execute("INSERT INTO wfm_meta.watermarks (stream, source, value) VALUES ('agent_calls', 'default', now())")
        version = max(m.version for m in schema.MIGRATIONS) + 1
        calls = []

        def add_note(c: psycopg.Connection) -> None:
            calls.append(1)
            c.execute("ALTER TABLE wfm_meta.watermarks ADD COLUMN note text NOT NULL DEFAULT 'kept'")

        monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, schema.Migration(version, "watermark notes",
                                                                                          add_note)))
        assert [m.version for m in schema.migrate(conn)] == [version]
        assert schema.migrate(conn) == []
        assert calls == [1]
        assert schema.applied(conn)[version] == "watermark notes"
        assert conn.execute("SELECT stream, note FROM wfm_meta.watermarks").fetchall() == [("agent_calls", "kept")]


def test_a_failing_migration_leaves_the_warehouse_as_it_was(database_url, monkeypatch: pytest.MonkeyPatch):
    def half_done(c: psycopg.Connection) -> None:
        c.execute("ALTER TABLE wfm_meta.watermarks ADD COLUMN half text")
        raise RuntimeError("migration 1 broke")

    with psycopg.connect(database_url, autocommit=True) as conn:
        monkeypatch.setattr(schema, "MIGRATIONS", (schema.Migration(1, "broken", half_done),))
        with pytest.raises(RuntimeError, match="migration 1 broke"):
            schema.migrate(conn)
        columns = {r[0] for r in conn.execute("""SELECT column_name FROM information_schema.columns
                                                 WHERE table_schema = 'wfm_meta' AND table_name = 'watermarks'""")}
        assert "half" not in columns and schema.applied(conn) == {}


def test_wfm_migrate_says_where_the_schema_stands(database_url, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    latest = max(m.version for m in schema.MIGRATIONS)
    assert f"schema is current (migration {latest}, {len(schema.MIGRATIONS)} applied now)" in result.output
