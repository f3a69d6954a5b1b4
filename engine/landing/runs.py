"""The one lifecycle of a run of a stream: opened, closed with a status, or closed `failed` when it raises.

    open_run ──▶ the body lands windows ──▶ run.close(status): the ledger roll-up and the
                  │ raises                      run's webhook events, in one transaction
                  ▼
                 run closed `failed` with the error's first line; the error goes on up

Every kind of run goes through here: a sync (`flows/sync.py:sync_stream`), an online snapshot
(`engine/landing/snapshots.py`), a file import (`engine/bulk/files.py`) and a quarantine replay
(`engine/quality/replay.py`). So every kind of run enqueues its webhook events when it closes
(`engine/push/webhook_outbox.py:enqueue_run`: `sync.completed` or `sync.failed`, `sync.anomaly`,
`quality.gate_failed`) — before this module only syncs did — and the event commits with the
ledger row that closes the run, or not at all. A run whose body raises is never left open.

`engine/landing/ledger.py:start_run`/`finish_run` stay the SQL; this module is the order and the
transactions around them. What the Prefect side does after a run (its artifact, a short webhook
delivery pass) is `flows/runs.py:after_runs`.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from connectors.streams import Window
from engine.landing import ledger
from engine.landing.warehouse import DEFAULT
from engine.push import webhook_outbox

log = logging.getLogger(__name__)
MAX_ERROR = 2000          # characters of an error or notice the ledger keeps


def first_line(exc: BaseException) -> str:
    """An error as the ledger and a one-line message show it: its first line, or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class Run:
    """An open run of one stream of one connection; `close` it, or use it as a context manager
    (`with run:`) so that a body that raises closes it `failed`."""

    database_url: str
    run_id: uuid.UUID
    stream: str
    source: str = DEFAULT
    windows_as_they_come: bool = False    # an import: windows planned = the chunks recorded by the close
    row: dict | None = field(default=None, repr=False)   # the ledger row, once closed

    @property
    def closed(self) -> bool:
        return self.row is not None

    def close(self, status: str, error: str | None = None, notice: str | None = None,
              conn: psycopg.Connection | None = None) -> dict:
        """Roll the windows up into the run row and enqueue its webhook events, in one transaction
        (of `conn`'s, or of a connection of its own); returns the ledger row."""
        if conn is None:
            with psycopg.connect(self.database_url, autocommit=True) as own:
                return self.close(status, error, notice, own)
        with conn.transaction():
            if self.windows_as_they_come:
                conn.execute(f"""UPDATE {ledger.META}.sync_runs SET windows_planned = (SELECT count(*)
                                 FROM {ledger.META}.sync_windows WHERE run_id = %s) WHERE run_id = %s""",
                             (self.run_id, self.run_id))
            row = ledger.finish_run(conn, self.run_id, status, _cut(error), _cut(notice))
            webhook_outbox.enqueue_run(conn, row)     # never raises: a notification never fails a run
        self.row = row
        return row

    def fail(self, exc: BaseException) -> dict | None:
        """Close the run `failed` with the error's first line; None when even that cannot be written
        (the database is gone: the run stays open, as a killed process leaves it)."""
        try:
            return self.close("failed", first_line(exc))
        except Exception as closing:
            log.warning("run %s of %s (%s) not closed: %s", self.run_id, self.stream, self.source,
                        first_line(closing))
            return None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        if exc is not None and not self.closed and isinstance(exc, Exception):
            self.fail(exc)


def open_run(conn: psycopg.Connection, database_url: str, stream: str, mode: str, start: dt.datetime,
             end: dt.datetime, windows: Sequence[Window] = (), started_at: dt.datetime | None = None,
             flow_run_id: str | None = None, source: str = DEFAULT, run_id: uuid.UUID | None = None,
             windows_as_they_come: bool = False) -> Run:
    """Record the run and its planned windows (in `conn`'s transaction, if it is in one); returns it open."""
    run = Run(database_url, run_id or uuid.uuid4(), stream, source, windows_as_they_come)
    ledger.start_run(conn, run.run_id, stream, mode, start, end, windows,
                     started_at or dt.datetime.now(dt.timezone.utc).replace(microsecond=0), flow_run_id, source)
    return run


def failed_run(conn: psycopg.Connection, database_url: str, stream: str, mode: str, start: dt.datetime,
               end: dt.datetime, exc: BaseException, started_at: dt.datetime | None = None,
               flow_run_id: str | None = None, source: str = DEFAULT, run_id: uuid.UUID | None = None) -> dict:
    """A run that failed before it had windows (the source was down when they were planned):
    opened and closed `failed` at once, so the ledger and the subscribers hear of it too."""
    run = open_run(conn, database_url, stream, mode, start, end, (), started_at, flow_run_id, source, run_id)
    return run.close("failed", first_line(exc), conn=conn)


def rows(conn: psycopg.Connection, run_ids: Sequence[uuid.UUID]) -> list[dict]:
    """The ledger rows of these runs, in the order given (a run never opened is left out)."""
    cur = conn.execute(f"SELECT * FROM {ledger.META}.sync_runs WHERE run_id = ANY(%s)", (list(run_ids),))
    names = [c.name for c in cur.description or ()]
    found = {row["run_id"]: row for row in (dict(zip(names, r)) for r in cur.fetchall())}
    return [found[run_id] for run_id in run_ids if run_id in found]


def _cut(text: str | None) -> str | None:
    return text[:MAX_ERROR] if text else None
