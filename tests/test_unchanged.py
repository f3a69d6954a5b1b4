"""A re-read window whose content equals its last landing is recorded as landed without checks or upsert."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from engine.landing import content
from engine.quality import gate as quality

from .conftest import SIM_START
from .landing import land

FIRST, LAST = SIM_START, SIM_START + dt.timedelta(days=1)


@pytest.fixture
def validations(monkeypatch) -> list[int]:
    """The row count of every batch the checks run on."""
    seen: list[int] = []
    real = quality.validate

    def counting(stream_name, table):
        seen.append(table.num_rows)
        return real(stream_name, table)
    monkeypatch.setattr(quality, "validate", counting)
    return seen


def table_rows(database_url: str, table: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return sorted(conn.execute(f"SELECT * FROM wfm.{table}").fetchall(), key=repr)


def last_run(database_url: str) -> list[tuple]:
    """The window rows of the run that landed last."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            """SELECT status, rows_fetched, duplicates_removed, rows_inserted, rows_updated, rows_unchanged,
                      content_hash FROM wfm_meta.sync_windows WHERE run_id = (SELECT run_id FROM wfm_meta.sync_windows
                      ORDER BY landed_at DESC NULLS LAST LIMIT 1) ORDER BY window_start""").fetchall()


def test_an_unchanged_re_read_skips_the_checks_and_the_upsert(wfm_env, database_url, validations):
    land("agent_logins", FIRST, LAST, mode="incremental")
    checked_first = len(validations)
    before, ledger_first = table_rows(database_url, "agent_logins"), last_run(database_url)
    land("agent_logins", FIRST, LAST, mode="incremental")
    assert checked_first == 2 and len(validations) == checked_first      # no batch checked the second time
    assert table_rows(database_url, "agent_logins") == before            # lineage columns included
    again = last_run(database_url)
    assert [w[0] for w in again] == ["landed", "landed"]
    assert [w[-1] for w in again] == [w[-1] for w in ledger_first]       # the same content hashes
    assert all(fetched == dups + unchanged and inserted == updated == 0
               for _, fetched, dups, inserted, updated, unchanged, _ in again)


def test_force_and_a_changed_source_take_the_full_path(wfm_env, database_url, validations):
    land("service_group_intervals", FIRST, FIRST, mode="incremental")
    land("service_group_intervals", FIRST, FIRST, mode="incremental", force=True)
    assert len(validations) == 2                                          # --force checks again
    with psycopg.connect(database_url) as conn:
        group, start = conn.execute("""SELECT group_id, interval_start FROM wfm.service_group_intervals
                                       ORDER BY not_unique_received DESC, group_id LIMIT 1""").fetchone()
    wfm_env.restate(group, start)
    land("service_group_intervals", FIRST, FIRST, mode="incremental")
    assert len(validations) == 3
    assert last_run(database_url)[0][4] >= 1                              # the restated row was updated


def test_changed_checks_take_the_full_path(wfm_env, database_url, validations, monkeypatch):
    land("agent_logins", FIRST, FIRST, mode="incremental")
    monkeypatch.setattr(content, "_checks_version", lambda: b"a suite edited since")
    land("agent_logins", FIRST, FIRST, mode="incremental")
    assert len(validations) == 2
