"""Datasets derived from landed tables.

`agent_employee_map` links each contact-center agent to a 1C employee: by agentNumber = tabN
first, then by loginSSO = Login for the agents still unmatched. Unmatched agents and unmatched
employees stay in the table with the other side empty and `matched_by` = 'unmatched', so they are
visible rather than dropped. The map is built per site, from the agents of the site's contact
center and the employees of its 1C base only (ids collide across connections); each site's
part is rebuilt whole in one transaction.

Each build records a digest of the input columns it read (`wfm_meta.derived_builds`), so a
reader can tell that the agents or employees changed since (`map_stale`) and refresh the map
first: syncing the personnel families alone no longer leaves a map that is silently out of date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import psycopg
import pyarrow as pa
from psycopg import sql

from connectors import contact_center, onec
from connectors.records import Field
from connectors.streams import Request, Stream
from engine.landing import lake, ledger, warehouse

AGENT_EMPLOYEE_MAP = Stream(
    name="agent_employee_map", system="derived", endpoint="derived", request=lambda w: Request("GET", ""),
    key=("agent_id", "employee_id"), window=None,
    fields=(Field("agent_id", "agent_id"), Field("employee_id", "employee_id"), Field("matched_by", "matched_by"),
            Field("agent_number", "agent_number", required=False), Field("tab_n", "tab_n", required=False),
            Field("login", "login", required=False)),
)

REBUILD = """
WITH agents AS (SELECT * FROM wfm.cc_agents WHERE source = %(cc)s),
people AS (SELECT * FROM wfm.employees WHERE source = %(onec)s),
by_number AS (
  SELECT DISTINCT ON (a.agent_id) a.agent_id, e.employee_id, 'tab_n' AS matched_by
  FROM agents a JOIN people e ON a.agent_number <> '' AND e.tab_n = a.agent_number
  ORDER BY a.agent_id, e.finish_work DESC NULLS FIRST, e.employee_id),
by_login AS (
  SELECT DISTINCT ON (a.agent_id) a.agent_id, e.employee_id, 'login' AS matched_by
  FROM agents a JOIN people e ON a.login_sso <> '' AND lower(e.login) = lower(a.login_sso)
  WHERE a.agent_id NOT IN (SELECT agent_id FROM by_number)
    AND e.employee_id NOT IN (SELECT employee_id FROM by_number)
  ORDER BY a.agent_id, e.finish_work DESC NULLS FIRST, e.employee_id),
matched AS (SELECT * FROM by_number UNION ALL SELECT * FROM by_login)
SELECT coalesce(a.agent_id, '') AS agent_id, coalesce(e.employee_id, '') AS employee_id,
       coalesce(m.matched_by, 'unmatched') AS matched_by, a.agent_number, e.tab_n,
       coalesce(e.login, a.login_sso) AS login
FROM matched m
FULL JOIN agents a ON a.agent_id = m.agent_id
FULL JOIN people e ON e.employee_id = m.employee_id
WHERE a.agent_id IS NOT NULL OR e.employee_id IS NOT NULL
ORDER BY 1, 2
"""


class DerivedMissing(RuntimeError):
    """A derived dataset a reader needs holds nothing to read; the message says what to run."""


# what the map reads: table -> the columns REBUILD uses (a change elsewhere does not stale it)
MAP_INPUTS = {contact_center.CC_AGENTS.name: ("agent_id", "agent_number", "login_sso"),
              onec.EMPLOYEES.name: ("employee_id", "tab_n", "login", "finish_work")}


def inputs_digest(conn: psycopg.Connection) -> str:
    """A digest of the map's input columns; a table not created yet counts as empty."""
    parts = []
    for table, cols in MAP_INPUTS.items():
        if conn.execute("SELECT to_regclass(%s) IS NULL", (f"wfm.{table}",)).fetchone() != (False,):
            parts.append("")
            continue
        row = sql.SQL("row({})::text").format(sql.SQL(", ").join(map(sql.Identifier, cols)))
        digest = conn.execute(sql.SQL("SELECT coalesce(md5(string_agg(md5({0}), '' ORDER BY {0})), '') FROM {1}")
                              .format(row, sql.Identifier("wfm", table))).fetchone()
        parts.append(digest[0] if digest else "")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


EMPTY_INPUTS = hashlib.sha256(b"|").hexdigest()


def map_stale(database_url: str) -> bool:
    """The agents or employees changed since the map was last built (never built: stale once
    there is anything to map)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        recorded = None
        if conn.execute("SELECT to_regclass('wfm_meta.derived_builds') IS NOT NULL").fetchone() == (True,):
            found = conn.execute("SELECT inputs_digest FROM wfm_meta.derived_builds WHERE dataset = %s",
                                 (AGENT_EMPLOYEE_MAP.name,)).fetchone()
            recorded = found[0] if found else None
        return inputs_digest(conn) != (recorded or EMPTY_INPUTS)


def unmapped_reason(database_url: str) -> str | None:
    """Why a reader of the map would find no one, in one line; None when some agent is mapped."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for stream in (contact_center.CC_AGENTS, onec.EMPLOYEES, AGENT_EMPLOYEE_MAP):
            warehouse.ensure_table(conn, stream)
        counts = conn.execute(
            """SELECT (SELECT count(*) FROM wfm.cc_agents), (SELECT count(*) FROM wfm.employees),
                      (SELECT count(*) FROM wfm.agent_employee_map WHERE matched_by <> 'unmatched')""").fetchone()
    agents, employees, matched = counts or (0, 0, 0)
    if matched:
        return None
    missing = [name for name, count in (("cc_personnel", agents), ("onec_personnel", employees)) if not count]
    if missing:
        return (f"agent_employee_map is empty: no {' and no '.join(MISSING[m] for m in missing)} landed yet; "
                f"run `wfm sync {' '.join(missing)}` first")
    return (f"agent_employee_map links none of {agents} agent(s) to the {employees} employee(s): no "
            "agentNumber equals a tabN and no loginSSO a Login; check both systems' personnel numbers")


MISSING = {"cc_personnel": "contact-center agents", "onec_personnel": "1C employees"}


Pairing = tuple[str, str | None, str | None]   # (site, contact-center connection, 1C connection)
DEFAULT_SITE: Pairing = (warehouse.DEFAULT, warehouse.DEFAULT, warehouse.DEFAULT)


def build_agent_employee_map(database_url: str, lake_path: str,
                             sites: list[Pairing] | tuple[Pairing, ...] = (DEFAULT_SITE,)) -> dict[str, int]:
    """Rebuild each site's map from its landed agents and employees; returns counts by match kind.

    Rows that did not change keep their lineage columns, so a rerun changes nothing.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:    # each site's rebuild: a transaction of its own
        ledger.ensure_meta(conn)
        for stream in (contact_center.CC_AGENTS, onec.EMPLOYEES, AGENT_EMPLOYEE_MAP):
            warehouse.ensure_table(conn, stream)
        digest = inputs_digest(conn)
        for site in sites:
            _rebuild_site(conn, site)
        conn.execute("""INSERT INTO wfm_meta.derived_builds (dataset, inputs_digest) VALUES (%s, %s)
                        ON CONFLICT (dataset) DO UPDATE SET inputs_digest = excluded.inputs_digest,
                        built_at = now()""", (AGENT_EMPLOYEE_MAP.name, digest))
        by_kind: dict[str, int] = dict(
            conn.execute("SELECT matched_by, count(*) FROM wfm.agent_employee_map GROUP BY 1").fetchall())
        lake.publish(conn, AGENT_EMPLOYEE_MAP, lake_path)
    return {k: int(v) for k, v in by_kind.items()}


def _rebuild_site(conn: psycopg.Connection, site: Pairing) -> None:
    """One site's part of the map, rebuilt whole in one transaction."""
    name, contact_center_name, onec_name = site
    run_id = uuid.uuid4()
    with conn.transaction():
        cur = conn.execute(REBUILD, {"cc": contact_center_name, "onec": onec_name})
        names = [c.name for c in cur.description]
        table = pa.Table.from_pylist([dict(zip(names, r)) for r in cur.fetchall()], AGENT_EMPLOYEE_MAP.schema)
        counts = warehouse.upsert(conn, AGENT_EMPLOYEE_MAP, table, run_id, dt.datetime.now(dt.timezone.utc), name)
        stale = conn.execute(
            """DELETE FROM wfm.agent_employee_map m WHERE site = %s AND NOT EXISTS (SELECT 1 FROM
               unnest(%s::text[], %s::text[]) AS k(a, e) WHERE k.a = m.agent_id AND k.e = m.employee_id)""",
            (name, table.column("agent_id").to_pylist(), table.column("employee_id").to_pylist())).rowcount
        if counts.inserted or counts.updated or stale:
            ledger.mark_partitions(conn, AGENT_EMPLOYEE_MAP.name, [lake.owned_partition(AGENT_EMPLOYEE_MAP, name, None)],
                                   run_id)
