"""Personal data: the lake holds no SNILS in the clear (a keyed hash, or null without a key), the
quarantine keeps raw records under the same policy, and the analyst role cannot read it in PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import uuid
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest

from connectors import onec, streams
from connectors.records import Reject
from engine import catalog
from engine.landing import lake, ledger
from engine.privacy.grants import grant_analyst
from engine.repair.lake_repair import rebuild

from .landing import land

KEY = "pii-key-for-tests-only"


def clear_values(database_url: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        return {e: (sn, db) for e, sn, db in conn.execute("SELECT employee_id, sn, db_id FROM wfm.employees")}


def lake_text(root: Path) -> str:
    """Every lake file as bytes decoded and as values read back."""
    return "\n".join(p.read_bytes().decode(errors="replace") + str(pq.read_table(p).to_pylist())
                     for p in root.rglob("*.parquet"))


def publish_employees(database_url: str, root: Path) -> list[dict]:
    rebuild(database_url, str(root), catalog.STREAMS["employees"])
    return pq.read_table(root / "employees" / "source=default" / "part-0.parquet").to_pylist()


def test_the_lake_holds_no_snils_in_the_clear(wfm_env, database_url, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WFM_PII_KEY", KEY)
    land("employees")
    clear = clear_values(database_url)
    snils = [sn for sn, _ in clear.values() if sn]
    assert len(snils) > 10 and all(len(sn) == 11 and sn.isdigit() for sn in snils)
    root = tmp_path / "lake"
    with psycopg.connect(database_url) as conn:
        lake.publish(conn, catalog.STREAMS["employees"], str(root))
    text = lake_text(root)
    assert not [sn for sn in snils if sn in text] and not [db for _, db in clear.values() if db and db in text]
    rows = pq.read_table(root / "employees" / "source=default" / "part-0.parquet").to_pylist()
    for row in rows:          # a keyed pseudonym: the same person, the same value; names kept in the directory
        sn, db_id = clear[row["employee_id"]]
        assert row["sn"] == hmac.new(KEY.encode(), sn.encode(), hashlib.sha256).hexdigest()
        assert row["db_id"] == hmac.new(KEY.encode(), db_id.encode(), hashlib.sha256).hexdigest()
        assert row["last_name"] and row["first_name"]

    monkeypatch.delenv("WFM_PII_KEY")           # no key: never the clear value, a null and a warning
    with caplog.at_level(logging.WARNING, logger="wfm.personal_data"):
        assert {row["sn"] for row in publish_employees(database_url, root)} == {None}
    assert "WFM_PII_KEY is not set" in caplog.text and not [sn for sn in snils if sn in lake_text(root)]

    Path(os.environ["WFM_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    (Path(os.environ["WFM_DATA_DIR"]) / "wfm.toml").write_text(
        '[personal_data.employees]\nsn = "drop"\nsecond_name = "drop"\ndb_id = "keep"\n', encoding="utf-8")
    rows = publish_employees(database_url, root)
    assert "sn" not in rows[0] and "second_name" not in rows[0]
    assert {row["db_id"] for row in rows} == {db for _, db in clear.values()}


def test_quarantined_records_keep_no_snils_in_the_clear(database_url, monkeypatch):
    monkeypatch.setenv("WFM_PII_KEY", KEY)
    start = dt.datetime(2026, 11, 9, tzinfo=dt.timezone.utc)
    window = streams.Window(start, start + dt.timedelta(days=1))
    employee = {"agentId": "e1", "tabN": "223", "lastname": "Шастный", "SN": "12345678978", "Db_ID": "123647382342"}
    with psycopg.connect(database_url) as conn:
        ledger.ensure_meta(conn)
        with conn.transaction():
            ledger.quarantine(conn, onec.EMPLOYEES.name, uuid.uuid4(), window, [
                Reject("startwork: missing", "startwork", employee),
                Reject("nested", None, {"departmentId": "d1", "AR_agents": [employee]})])
        stored = [r for (r,) in conn.execute("SELECT record FROM wfm_meta.quarantine ORDER BY id")]
    pseudonym = hmac.new(KEY.encode(), b"12345678978", hashlib.sha256).hexdigest()
    assert stored[0]["SN"] == pseudonym and stored[0]["lastname"] == "Шастный"
    assert stored[1]["AR_agents"][0]["SN"] == pseudonym and "12345678978" not in str(stored)


def test_the_analyst_role_reads_published_tables_without_personal_columns_or_wfm_meta(wfm_env, database_url):
    land("employees")
    land("agent_logins", dt.date(2026, 11, 9), dt.date(2026, 11, 9))
    role = f"wfm_analyst_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        try:
            assert grant_analyst(conn, role) == {"employees": ["db_id", "sn"]}
            conn.execute(f"SET ROLE {role}")
            assert conn.execute("SELECT count(*) FROM wfm.agent_logins").fetchone()[0] > 0
            assert conn.execute("SELECT count(tab_n), count(last_name) FROM wfm.employees").fetchone()[0] > 0
            for refused in ("SELECT sn FROM wfm.employees", "SELECT * FROM wfm.employees",
                            "SELECT record FROM wfm_meta.quarantine", "SELECT * FROM wfm_meta.sync_runs",
                            "DELETE FROM wfm.agent_logins"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(refused)
        finally:
            conn.execute("RESET ROLE")
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
