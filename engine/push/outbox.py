"""The push outbox: what the WFM sends to 1C, one row per employee and period, with its state.

    pending ──claim──▶ sending ──1C answered──▶ sent | refused
       ▲                  │
       └── not stored ◀───┘  (a lost answer, resolved before any resend)

- `kind` is "schedule" (sendSchedule, period "YYYY-MM") or "fact" (sendFactWorkTime, period
  "YYYY-MM-DD"); `skipped` marks a period the WFM decided not to send, with the reason.
- Every transition is its own committed transaction, so `sending` is durable before the HTTP
  call starts and the answer is durable before the next call: a crash mid-send leaves
  `sending`, never a silent gap. `claim` moves pending → sending with `WHERE state = 'pending'`,
  so two runs racing for a row cannot both send it.
- A row is re-queued only when its content hash changes (or on request, for a refusal that may
  pass later, such as a production calendar 1C has not loaded yet). A fact that was `sent` is
  never re-queued: a second delivery makes a second document in payroll.
- `wfm_meta.push_log` keeps every transition with its message: the audit trail of the outbox.
- Every row is one site's (`site`, first in the key): a site's rows go to its own 1C base only,
  and the same employee id in two sites is two rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import orjson
import psycopg
from psycopg.rows import dict_row

from engine.landing.ledger import META
from engine.landing.warehouse import DEFAULT

STATES = ("pending", "sending", "sent", "refused", "skipped")
DDL = f"""
CREATE SCHEMA IF NOT EXISTS {META};
CREATE TABLE IF NOT EXISTS {META}.push_outbox (
  id bigserial PRIMARY KEY, site text NOT NULL, kind text NOT NULL CHECK (kind IN ('schedule', 'fact')),
  employee_id text NOT NULL, period text NOT NULL, content_hash text NOT NULL, payload jsonb NOT NULL,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ({", ".join(f"'{s}'" for s in STATES)})),
  message text, attempts int NOT NULL DEFAULT 0, sent_hash text, timesheet_before jsonb,
  created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
  sending_at timestamptz, UNIQUE (site, kind, employee_id, period));
CREATE TABLE IF NOT EXISTS {META}.push_log (
  id bigserial PRIMARY KEY, outbox_id bigint NOT NULL REFERENCES {META}.push_outbox ON DELETE CASCADE,
  at timestamptz NOT NULL DEFAULT clock_timestamp(), from_state text, to_state text NOT NULL, message text);
"""


def ensure_outbox(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('wfm-ddl'))")
        conn.execute(DDL)
        if conn.execute(f"""SELECT 1 FROM information_schema.columns WHERE table_schema = '{META}'
                           AND table_name = 'push_outbox' AND column_name = 'site'""").fetchone():
            # an outbox from before sites gets this index with its column (engine/migrations.py, version 2)
            conn.execute(f"""CREATE INDEX IF NOT EXISTS push_outbox_site_open ON {META}.push_outbox (site, kind, state)
                             WHERE state IN ('pending', 'sending')""")


@dataclass(frozen=True)
class Entry:
    """One outbox row as the push flows use it."""

    id: int
    kind: str
    employee_id: str
    period: str
    content_hash: str
    payload: dict
    state: str
    attempts: int
    timesheet_before: dict | None = None
    sending_at: dt.datetime | None = None
    site: str = DEFAULT


def _log(conn: psycopg.Connection, outbox_id: int, before: str | None, after: str, message: str | None) -> None:
    conn.execute(f"INSERT INTO {META}.push_log (outbox_id, from_state, to_state, message) VALUES (%s, %s, %s, %s)",
                 (outbox_id, before, after, message))


def offer(conn: psycopg.Connection, kind: str, employee_id: str, period: str, payload: dict, content_hash: str,
          skipped: str | None = None, retry_refused: bool = False, refused: str | None = None,
          site: str = DEFAULT) -> str | None:
    """Put a site's period's current content in the outbox; returns the new state, or None if unchanged.

    New or changed content becomes `pending` (`skipped` with a reason; `refused` with the
    reason when the WFM itself cannot send it yet, e.g. an area without a time zone). A
    `sending` row is left alone until it is resolved, and so is a `sent` fact whatever its
    content now says.
    """
    if refused:
        skipped = None
    with conn.transaction():
        row = conn.execute(f"""SELECT id, state, content_hash, message FROM {META}.push_outbox
                               WHERE site = %s AND kind = %s AND employee_id = %s AND period = %s FOR UPDATE""",
                           (site, kind, employee_id, period)).fetchone()
        target = "skipped" if skipped else "refused" if refused else "pending"
        skipped = skipped or refused          # the reason, stored as the row's message
        if row is None:
            new_id = conn.execute(f"""INSERT INTO {META}.push_outbox (site, kind, employee_id, period, content_hash,
                                      payload, state, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                                  (site, kind, employee_id, period, content_hash, orjson.dumps(payload).decode(), target,
                                   skipped)).fetchone()[0]
            _log(conn, new_id, None, target, skipped)
            return target
        outbox_id, state, old_hash, old_message = row
        if state == "sending" or (kind == "fact" and state == "sent"):
            return None
        same = old_hash == content_hash
        if same and (state, old_message) == (target, skipped if skipped else old_message):
            return None
        final = state in ("sent", "refused") or (kind == "fact" and state == "skipped")
        if same and final and not skipped and not (retry_refused and state == "refused"):
            return None
        conn.execute(f"""UPDATE {META}.push_outbox SET content_hash = %s, payload = %s, state = %s, message = %s,
                         updated_at = now() WHERE id = %s""",
                     (content_hash, orjson.dumps(payload).decode(), target, skipped, outbox_id))
        _log(conn, outbox_id, state, target, skipped or ("content changed" if not same else "queued again"))
        return target


def entries(conn: psycopg.Connection, kind: str, states: tuple[str, ...], site: str = DEFAULT) -> list[Entry]:
    """A site's rows of one kind in the given states, oldest period first."""
    rows = conn.execute(f"""SELECT id, kind, employee_id, period, content_hash, payload, state, attempts,
                            timesheet_before, sending_at, site FROM {META}.push_outbox
                            WHERE site = %s AND kind = %s AND state = ANY(%s) ORDER BY period, employee_id""",
                        (site, kind, list(states))).fetchall()
    return [Entry(*r) for r in rows]


def claim(conn: psycopg.Connection, entry: Entry, timesheet_before: dict | None = None) -> bool:
    """pending → sending, committed before the call; False if another run took the row first."""
    with conn.transaction():
        claimed = conn.execute(
            f"""UPDATE {META}.push_outbox SET state = 'sending', attempts = attempts + 1, sending_at = now(),
                updated_at = now(), timesheet_before = %s, message = NULL
                WHERE id = %s AND state = 'pending' AND content_hash = %s RETURNING id""",
            (orjson.dumps(timesheet_before).decode() if timesheet_before is not None else None, entry.id,
             entry.content_hash)).fetchone()
        if claimed:
            _log(conn, entry.id, "pending", "sending", f"attempt {entry.attempts + 1}")
    return claimed is not None


def settle(conn: psycopg.Connection, entry: Entry, state: str, message: str | None) -> None:
    """sending → sent | refused | pending | skipped, with 1C's message (or the reason), committed at once."""
    if state not in STATES:
        raise ValueError(f"unknown outbox state {state!r}")
    with conn.transaction():
        moved = conn.execute(
            f"""UPDATE {META}.push_outbox SET state = %s, message = %s, updated_at = now(),
                sent_hash = CASE WHEN %s = 'sent' THEN content_hash ELSE sent_hash END
                WHERE id = %s AND state = 'sending' RETURNING id""", (state, message, state, entry.id)).fetchone()
        if moved:
            _log(conn, entry.id, "sending", state, message)


def note(conn: psycopg.Connection, entry: Entry, message: str) -> None:
    """Say why a row stays where it is (e.g. `sending` that could not be resolved yet)."""
    with conn.transaction():
        conn.execute(f"UPDATE {META}.push_outbox SET message = %s, updated_at = now() WHERE id = %s",
                     (message, entry.id))


def sent_schedules(conn: psycopg.Connection, site: str = DEFAULT) -> set[tuple[str, str]]:
    """(employee, "YYYY-MM") of the site whose current schedule content is what its 1C holds."""
    rows = conn.execute(f"""SELECT employee_id, period FROM {META}.push_outbox WHERE site = %s AND kind = 'schedule'
                            AND state = 'sent' AND sent_hash = content_hash""", (site,)).fetchall()
    return {tuple(r) for r in rows}


def listing(conn: psycopg.Connection, kind: str | None = None, state: str | None = None,
            limit: int = 50, site: str | None = None) -> list[dict]:
    """The outbox for `wfm outbox` (every site's, or one's), the rows that need attention first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""SELECT id, site, kind, employee_id, period, state, attempts, message, updated_at FROM {META}.push_outbox
                WHERE (%(k)s::text IS NULL OR kind = %(k)s) AND (%(s)s::text IS NULL OR state = %(s)s)
                AND (%(site)s::text IS NULL OR site = %(site)s)
                ORDER BY array_position(ARRAY['refused', 'sending', 'pending', 'skipped', 'sent'], state),
                         updated_at DESC, id LIMIT %(n)s""",
            {"k": kind, "s": state, "n": limit, "site": site}).fetchall()


def counts(conn: psycopg.Connection, site: str | None = None) -> dict[tuple[str, str], int]:
    rows = conn.execute(f"""SELECT kind, state, count(*) FROM {META}.push_outbox
                            WHERE %(site)s::text IS NULL OR site = %(site)s GROUP BY 1, 2""", {"site": site}).fetchall()
    return {(k, s): int(n) for k, s, n in rows}
