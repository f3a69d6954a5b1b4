"""A stream's state as the operator sees it: watermark, last run, lag; and setting it by hand.

    wfm state show [STREAM] [--connection NAME]   # per connection: watermark, last run, lag, last change
    wfm state set agent_calls --watermark 2026-11-10 --reason "re-read the day the vendor restated"
    wfm state reset agent_calls --connection cc-north   # no watermark: its next incremental starts afresh

The watermark is where the next incremental run starts (minus the stream's lookback). Moving it
by hand is how an operator re-reads a stretch of history or skips one, and is the only state
change a run does not make itself, so each change is a row of `wfm_meta.state_changes` (stream,
connection, before, after, reason, who, when) written in the transaction that changes the
watermark, under the watermark's row lock. A change is refused while a run of the stream is going (its ledger
row says `running`): that run would move the watermark again as its windows land. A run killed
without closing its row stays `running`; `force` overrides the check for that case.

Every watermark belongs to one stream of one connection (`source`): a change moves that one only,
and is refused for a connection that is neither configured (`known`) nor has a watermark or a run
of the stream (a mistyped name would otherwise start a watermark nobody reads; `default` is
taken when nothing is configured, as before connections).
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg

from connectors.streams import Stream
from engine import catalog
from engine.landing.ledger import META
from engine.landing.warehouse import DEFAULT

__all__ = ["StreamState", "parse_watermark", "set_watermark", "states"]

UTC = dt.timezone.utc


@dataclass(frozen=True)
class StreamState:
    """One incremental stream's watermark at one connection, its last run there and how far behind
    now the watermark is."""

    stream: str
    source: str                       # the connection
    watermark: dt.datetime | None
    last_status: str | None
    last_started: dt.datetime | None
    last_finished: dt.datetime | None
    running: str | None               # the run id of a run going now
    last_change: str | None           # "set 2026-11-10 by ops at ...", the latest manual change

    @property
    def lag(self) -> dt.timedelta | None:
        return None if self.watermark is None else dt.datetime.now(UTC) - self.watermark


def incremental(name: str) -> Stream:
    """The incremental stream called `name`; anything else is a one-line error."""
    stream = catalog.STREAMS.get(name)
    if stream is None:
        raise ValueError(f"unknown stream {name!r}; incremental streams: {', '.join(_incremental_names())}")
    if not stream.incremental:
        raise ValueError(f"{name} is a snapshot stream: it has no watermark")
    return stream


def _incremental_names() -> list[str]:
    return sorted(s.name for s in catalog.STREAMS.values() if s.incremental)


def states(conn: psycopg.Connection, stream: str | None = None, source: str | None = None,
           configured: Mapping[str, Sequence[str]] | None = None) -> list[StreamState]:
    """The state of one incremental stream, or of all of them, at connection `source`, or (None) at
    every connection it has state at or is `configured` for (system -> connection names)."""
    names = [incremental(stream).name] if stream else _incremental_names()
    pairs = [(n, s) for n in names for s in ([source] if source else _sources(conn, n, configured or {}))]
    rows = conn.execute(f"""
        SELECT n.stream, n.source, w.value, r.status, r.started_at, r.finished_at,
               (SELECT run_id::text FROM {META}.sync_runs g WHERE g.stream = n.stream AND g.source = n.source
                AND g.status = 'running' ORDER BY started_at DESC LIMIT 1),
               (SELECT action || ' ' || coalesce(to_char(watermark_after AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                       'none') || ' by ' || changed_by || ' at ' || to_char(changed_at AT TIME ZONE 'UTC',
                       'YYYY-MM-DD HH24:MI') FROM {META}.state_changes c WHERE c.stream = n.stream
                       AND c.source = n.source ORDER BY id DESC LIMIT 1)
        FROM unnest(%s::text[], %s::text[]) AS n(stream, source)
        LEFT JOIN {META}.watermarks w ON w.stream = n.stream AND w.source = n.source
        LEFT JOIN LATERAL (SELECT status, started_at, finished_at FROM {META}.sync_runs s WHERE s.stream = n.stream
                           AND s.source = n.source ORDER BY started_at DESC LIMIT 1) r ON true
        ORDER BY n.stream, n.source""", ([p[0] for p in pairs], [p[1] for p in pairs])).fetchall()
    return [StreamState(*row) for row in rows]


def _sources(conn: psycopg.Connection, stream: str, configured: Mapping[str, Sequence[str]]) -> list[str]:
    """The connections a stream has a watermark or a run at, and those configured for its system."""
    return sorted(_found(conn, stream) | set(configured.get(catalog.STREAMS[stream].system, ()))) or [DEFAULT]


def _found(conn: psycopg.Connection, stream: str) -> set[str]:
    return {s for (s,) in conn.execute(f"""SELECT source FROM {META}.watermarks WHERE stream = %s
                                           UNION SELECT DISTINCT source FROM {META}.sync_runs WHERE stream = %s""",
                                       (stream, stream))}


def parse_watermark(text: str) -> dt.datetime:
    """`YYYY-MM-DD` (midnight UTC) or an ISO instant with its zone (`2026-11-10T06:00+05:00`)."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--watermark {text!r}: use YYYY-MM-DD or an ISO time with a zone, "
                         f"e.g. 2026-11-10T06:00+00:00") from None
    if len(text.strip()) == 10:
        return value.replace(tzinfo=UTC)
    if value.tzinfo is None:
        raise ValueError(f"--watermark {text!r} has no zone: add one, e.g. {text.strip()}+00:00")
    return value.astimezone(UTC)


def set_watermark(conn: psycopg.Connection, stream: str, value: dt.datetime | None, reason: str | None = None,
                  by: str | None = None, force: bool = False, source: str = DEFAULT,
                  known: Sequence[str] | None = None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Set (or with None, reset) the watermark of a stream of one connection (`source`), logged;
    returns (before, after). `known`: the connections configured for the stream's system."""
    name = incremental(stream).name
    if value is not None and value > dt.datetime.now(UTC):
        raise ValueError(f"--watermark {value:%Y-%m-%d %H:%M} UTC is in the future: no run has read that far")
    with conn.transaction():
        found, named = _found(conn, name), set(known or ())
        if source not in found | named and not (source == DEFAULT and not named):
            raise ValueError(f"no connection {source!r} of {name}: not configured, no watermark, no run; "
                             f"known: {', '.join(sorted(found | named)) or 'none'}")
        conn.execute(f"INSERT INTO {META}.watermarks (stream, source) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                     (name, source))
        before = conn.execute(f"SELECT value FROM {META}.watermarks WHERE stream = %s AND source = %s FOR UPDATE",
                              (name, source)).fetchone()[0]
        going = conn.execute(f"""SELECT run_id, started_at FROM {META}.sync_runs WHERE stream = %s AND source = %s
                                 AND status = 'running' ORDER BY started_at DESC LIMIT 1""", (name, source)).fetchone()
        if going and not force:
            raise ValueError(f"a run of {_label(name, source)} is going (run {going[0]}, "
                             f"started {going[1]:%Y-%m-%d %H:%M} UTC): wait for it, "
                             f"or pass --force if it died without closing its ledger row")
        conn.execute(f"""UPDATE {META}.watermarks SET value = %s, run_id = NULL, updated_at = now()
                         WHERE stream = %s AND source = %s""", (value, name, source))
        conn.execute(f"""INSERT INTO {META}.state_changes (stream, source, action, watermark_before, watermark_after,
                         reason, changed_by) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                     (name, source, "set" if value is not None else "reset", before, value, reason,
                      by or getpass.getuser()))
    return before, value


def _label(stream: str, source: str) -> str:
    return stream if source == DEFAULT else f"{stream} ({source})"
