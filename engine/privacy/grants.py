"""`wfm grants`: a read-only role for analysts on the published tables, and nothing else.

    wfm grants                      # role wfm_analyst (NOLOGIN); then: GRANT wfm_analyst TO alice;

The role may read the warehouse tables the lake publishes (`lake_repair.published_tables`), each as
a whole except the columns the personal data policy hashes or drops (`engine/privacy/personal_data.py`):
those are left out of a column-level grant, so `SELECT sn FROM wfm.employees` is refused while
every other column reads. It gets nothing in `wfm_meta` — the quarantine's raw records, the
outbox, webhook secrets — nor on the receiver's raw tables, and no write anywhere. Running it
again makes the grants match today's tables and policy (a new table, a column newly hashed);
a table created later needs another run. Creating a role needs CREATEROLE.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from engine.landing import ledger
from engine.landing.warehouse import SCHEMA
from engine.privacy import personal_data
from engine.repair.lake_repair import published_tables

__all__ = ["DEFAULT_ROLE", "grant_analyst"]

DEFAULT_ROLE = "wfm_analyst"


def grant_analyst(conn: psycopg.Connection, role: str = DEFAULT_ROLE) -> dict[str, list[str]]:
    """Create (if needed) and grant the analyst role; returns table -> the columns withheld."""
    ident = sql.Identifier(role)
    withheld: dict[str, list[str]] = {}
    with conn.transaction():
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(sql.Identifier(SCHEMA), ident))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SCHEMA), ident))
        if conn.execute("SELECT to_regnamespace(%s)", (ledger.META,)).fetchone()[0] is not None:
            conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {0} FROM {1}; REVOKE ALL ON SCHEMA {0} FROM {1}")
                         .format(sql.Identifier(ledger.META), ident))
        existing = {name for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (SCHEMA,))}
        for name, stream in sorted(published_tables().items()):
            if name not in existing:
                continue
            hidden = personal_data.policy(stream)
            target = sql.Identifier(SCHEMA, name)
            if not hidden:
                conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(target, ident))
                continue
            shown = [c for (c,) in conn.execute("""SELECT column_name FROM information_schema.columns WHERE
                                                   table_schema = %s AND table_name = %s ORDER BY ordinal_position""",
                                                (SCHEMA, name)) if c not in hidden]
            conn.execute(sql.SQL("REVOKE SELECT ON {} FROM {}").format(target, ident))
            conn.execute(sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(
                sql.SQL(", ").join(map(sql.Identifier, shown)), target, ident))
            withheld[name] = sorted(hidden)
    return withheld
