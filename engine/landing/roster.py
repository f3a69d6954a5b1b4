"""Every agent and group a source has had, so that history is complete after people leave.

Today's `/personnel` lists today's roster only: an agent who left, or a group that was removed,
is not in it, yet their past is still served to whoever asks by id. `wfm_meta.source_ids` is the
warehouse's memory of a source's roster, one row per (source, kind, id), updated at every look
at `/personnel`:

- `first_seen` / `last_seen`: the first and latest look that listed the id;
- `appeared_after`: the look before its first one, which did not list it (it joined after that);
  NULL when the id was there at the first look ever, or came from the warehouse's own tables;
- `gone_at`: the first look that no longer listed it (it left before that); NULL while listed.

The ids of a window [start, end) are every id known for that period: listed today, or not gone
before `start` and not joined after `end` (each with a `MARGIN`), plus the ids the warehouse's
roster tables hold (`wfm.cc_agents`, `wfm.cc_groups`: a warehouse that synced the roster before
this registry existed). A source is keyed by its connection's name (`cc-north`, `default`);
rows an earlier release keyed by the base URL (`SourceSettings.key`) are moved to the name by
migration 3, and by the first look of a connection with that URL (`look(..., former=key)`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

import psycopg

from connectors.streams import Window
from engine.landing.ledger import META

MARGIN = dt.timedelta(days=2)     # records that cross a window's edge, and looks a day apart
SEED_TABLES = {"agents": ("cc_agents", "agent_id"), "groups": ("cc_groups", "group_id")}


@dataclass(frozen=True)
class Roster:
    """A source's ids of one kind: today's and every one remembered, with when each was there."""

    current: tuple[str, ...]
    spans: dict[str, tuple[dt.datetime | None, dt.datetime | None]] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return sorted(set(self.current) | set(self.spans))

    def narrow(self, window: Window) -> Window:
        """The window asking only for the ids that can have records in its period."""
        def there(ident: str) -> bool:
            appeared_after, gone_at = self.spans.get(ident, (None, None))
            return ((gone_at is None or gone_at > window.start - MARGIN)
                    and (appeared_after is None or appeared_after < window.end + MARGIN))
        return dataclasses.replace(window, ids=tuple(i for i in window.ids if i in self.current or there(i)))


def look(conn: psycopg.Connection, source: str, kind: str, listed: list[str] | None,
         now: dt.datetime, former: str | None = None) -> Roster:
    """Record a look at the roster of connection `source` (`listed` = today's ids; None: the source
    could not be asked) and return everything known of this source and kind. `former`: the key an
    earlier release kept this source's ids under (its base URL); they become this source's."""
    with conn.transaction():   # the table: `ledger.ensure_meta`
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"roster:{source}:{kind}",))
        if former is not None and former != source:
            rekey(conn, former, [source], kind)
        _seed(conn, source, kind)
        if listed is not None:
            _observe(conn, source, kind, sorted(set(listed)), now)
        rows = conn.execute(f"""SELECT id, appeared_after, gone_at, gone_at IS NULL FROM {META}.source_ids
                                WHERE source = %s AND kind = %s""", (source, kind)).fetchall()
    current = tuple(sorted(listed)) if listed is not None else tuple(r[0] for r in rows if r[3])
    return Roster(current, {r[0]: (r[1], r[2]) for r in rows})


def _observe(conn: psycopg.Connection, source: str, kind: str, listed: list[str], now: dt.datetime) -> None:
    previous = conn.execute(f"SELECT max(last_seen) FROM {META}.source_ids WHERE source = %s AND kind = %s",
                            (source, kind)).fetchone()[0]
    with conn.cursor() as cur:
        cur.executemany(f"""INSERT INTO {META}.source_ids (source, kind, id, first_seen, last_seen, appeared_after)
                            VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (source, kind, id) DO UPDATE
                            SET last_seen = EXCLUDED.last_seen, gone_at = NULL,
                                first_seen = coalesce({META}.source_ids.first_seen, EXCLUDED.first_seen)""",
                        [(source, kind, i, now, now, previous) for i in listed])
    conn.execute(f"""UPDATE {META}.source_ids SET gone_at = %s WHERE source = %s AND kind = %s
                     AND gone_at IS NULL AND NOT (id = ANY(%s))""", (now, source, kind, listed))


def _seed(conn: psycopg.Connection, source: str, kind: str) -> None:
    """Ids the warehouse's roster table holds that the registry does not know yet (an older warehouse)."""
    table, column = SEED_TABLES[kind]
    if conn.execute("SELECT to_regclass(%s)", (f"wfm.{table}",)).fetchone()[0] is None:
        return
    conn.execute(f"""INSERT INTO {META}.source_ids (source, kind, id)
                     SELECT DISTINCT %s, %s, {column} FROM wfm.{table} ON CONFLICT DO NOTHING""", (source, kind))


def rekey(conn: psycopg.Connection, old: str, new: list[str], kind: str | None = None) -> int:
    """Move the ids kept under `old` to each source in `new` (a copy each), merging with what a
    new key holds already: the earlier first look and the later last look win. Returns the rows moved."""
    moved = 0
    for source in new:
        moved = conn.execute(f"""
            INSERT INTO {META}.source_ids AS s (source, kind, id, first_seen, last_seen, appeared_after, gone_at)
            SELECT %s, kind, id, first_seen, last_seen, appeared_after, gone_at FROM {META}.source_ids
            WHERE source = %s AND (%s::text IS NULL OR kind = %s)
            ON CONFLICT (source, kind, id) DO UPDATE SET
              first_seen = least(s.first_seen, EXCLUDED.first_seen),
              appeared_after = CASE WHEN EXCLUDED.first_seen < s.first_seen THEN EXCLUDED.appeared_after
                                    ELSE s.appeared_after END,
              last_seen = greatest(s.last_seen, EXCLUDED.last_seen),
              gone_at = CASE WHEN EXCLUDED.last_seen > s.last_seen THEN EXCLUDED.gone_at ELSE s.gone_at END""",
                             (source, old, kind, kind)).rowcount
    if new:
        conn.execute(f"DELETE FROM {META}.source_ids WHERE source = %s AND (%s::text IS NULL OR kind = %s)",
                     (old, kind, kind))
    return moved
