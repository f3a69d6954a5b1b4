"""Injection: names from users and configuration cannot run SQL or write outside the roots.

Against a database holding a canary table and a few rows, through the real `wfm` commands:
table names, filter columns and values of `wfm export`, stream names of `wfm sync` and `wfm
import`, and output paths that climb out of `WFM_EXPORT_ROOT` with `..`, absolute paths or a
symlink. Every attempt must be refused in one line (a filter *value* is data: it must match
nothing), the canary must survive with its row, and nothing may appear outside the root.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import uuid
from pathlib import Path

import psycopg

from connectors import contact_center as cc
from engine.landing import warehouse

from . import Outcome
from .bad_input import _one_line
from .lab import fresh_database

UTC = dt.timezone.utc
DROP = "DROP TABLE wfm.canary"
REFUSED = [
    ["export", f"agent_logins; {DROP}", "--out", "{root}/a.csv"],
    ["export", "wfm.canary", "--out", "{root}/b.csv"],
    ["export", '"agent_logins"', "--out", "{root}/c.csv"],
    ["export", "pg_catalog.pg_authid", "--out", "{root}/d.csv"],
    ["export", "agent_logins", "--filter", f"agent_id OR true; {DROP}; --=1", "--out", "{root}/e.csv"],
    ["export", "agent_logins", "--filter", f'agent_id"; {DROP}; --=1', "--out", "{root}/f.csv"],
    ["export", "agent_logins", "--filter", "1=1", "--out", "{root}/g.csv"],
    ["export", "agent_logins", "--out", "{root}/../outside.csv"],
    ["export", "agent_logins", "--out", "{outside}/absolute.csv"],
    ["export", "agent_logins", "--out", "{root}/escape/through-symlink.csv"],
    ["export", "agent_logins", "--out", "~/wfm-chaos-home.csv"],
    ["sync", f"agent_logins; {DROP}", "--start", "2026-11-09"],
    ["sync", "../../etc/passwd", "--start", "2026-11-09"],
    ["sync", "agent_logins' OR '1'='1", "--start", "2026-11-09"],
    ["import", "{root}/plan.csv", "--stream", f"planned_shifts; {DROP}"],
]
AS_DATA = [("agent_id", "1' OR '1'='1"), ("agent_id", f"1'; {DROP}; --"), ("agent_id", "%"),
           ("agent_id ", f" '1'; {DROP}; --=1")]


def injection() -> Outcome:
    """Every attempt refused or treated as data; the canary alive; nothing outside the root."""
    from .lab import postgres_server

    return _attempts(postgres_server())


def _attempts(server: str) -> Outcome:
    from typer.testing import CliRunner

    from wfm.cli import app

    outcome = Outcome("injection", 0, 0, "attempts")
    with tempfile.TemporaryDirectory(prefix="wfm-chaos-inject-") as scratch, fresh_database(server) as db:
        root, outside = Path(scratch) / "root", Path(scratch) / "outside"
        root.mkdir(), outside.mkdir()
        (root / "escape").symlink_to(outside)
        (root / "plan.csv").write_text("employee_id,shift_start,shift_end\n1,2026-11-17T06:00:00Z,2026-11-17T14:00:00Z\n")
        _seed(db)
        env = {"WFM_DATABASE_URL": db, "WFM_EXPORT_ROOT": str(root), "WFM_DATA_DIR": str(Path(scratch) / "data"),
               "WFM_CC_URL": "http://127.0.0.1:9/cc"}
        runner = CliRunner()
        for args in REFUSED:
            argv = [a.format(root=root, outside=outside) for a in args]
            result = runner.invoke(app, argv, env=env)
            outcome.tried += 1
            found = _one_line(" ".join(argv[1:4])[:120], result.exit_code, result.stderr, result.exception)
            outcome.held += not found
            outcome.problems += found
        for n, (column, value) in enumerate(AS_DATA):
            out = root / f"data-{n}.csv"
            result = runner.invoke(app, ["export", "agent_logins", "--filter", f"{column}={value}", "--format", "csv",
                                         "--out", str(out)], env=env)
            outcome.tried += 1
            rows = out.read_text().splitlines()[1:] if out.exists() else None
            ok = result.exit_code == 0 and rows == []
            outcome.held += ok
            outcome.problems += [] if ok else [f"filter value {value!r} was not data: exit {result.exit_code}, "
                                               f"rows {rows}, {result.stderr[:200]}"]
        outcome.problems += _damage(db, outside)
    outcome.exact = not outcome.problems
    return outcome


def _seed(db: str) -> None:
    with psycopg.connect(db) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS wfm")
        conn.execute("CREATE TABLE wfm.canary (alive text)")
        conn.execute("INSERT INTO wfm.canary VALUES ('yes')")
        warehouse.ensure_table(conn, cc.AGENT_LOGINS)
        conn.execute("""INSERT INTO wfm.agent_logins (source, agent_id, login_at, logout_at, duration_ms, _run_id,
                        _extracted_at) VALUES ('default', '1', '2026-11-09T08:00:00Z', '2026-11-09T16:00:00Z',
                        28800000, %s, now())""",
                     (uuid.uuid4(),))


def _damage(db: str, outside: Path) -> list[str]:
    """What an attempt that got through would have left."""
    problems = [f"written outside the root: {p}" for p in outside.rglob("*")]
    problems += [f"written outside the root: {p}" for p in outside.parent.glob("*.csv")]
    problems += [f"written to the home directory: {p}" for p in Path.home().glob("wfm-chaos-home.csv")]
    with psycopg.connect(db) as conn:
        alive = conn.execute("SELECT to_regclass('wfm.canary') IS NOT NULL").fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM wfm.canary").fetchone()[0] if alive else 0
        logins = conn.execute("SELECT count(*) FROM wfm.agent_logins").fetchone()[0]
    if not alive or rows != 1 or logins != 1:
        problems.append(f"SQL ran: canary alive={alive} rows={rows}, agent_logins rows={logins}")
    return problems
