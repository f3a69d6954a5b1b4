"""The webhook outbox: events are written durably where they happen and delivered apart from the run.

    run ──enqueue (its own transaction)──▶ webhook_outbox: pending ──deliver──▶ delivered
                                                 ▲   │ unavailable                  │ refused (4xx)
                                                 └───┘ next_attempt_at backs off    ▼
                                                     (up to MAX_PASSES)           failed

- `enqueue` writes the event and one row per subscriber of its type in the caller's
  transaction: a sync's `sync.completed` commits with the ledger row of its run, or not at all.
  It never raises; a run is never failed by its notification.
- `deliver_due` is the delivery step: the `deliver-webhooks` deployment every minute, and a short
  best-effort pass after each sync or push run (`INLINE_SECONDS`, one attempt, and not for a
  subscriber that is already failing, so a dead subscriber costs a run nothing). A row is
  claimed with a lease (`next_attempt_at` moved `LEASE` ahead) before the POST: a process that
  dies mid-delivery leaves the row to be delivered again once the lease ends, after a restart
  too. Each pass is one request through the project's retry policy (`connectors/http.py`:
  408/429/5xx/transport errors retried with backoff, other 4xx final); an unavailable
  subscriber gets the row again after 1, 2, 4 ... 60 minutes, `MAX_PASSES` times.
- Delivery is at least once; `X-WFM-Delivery` (the event id) lets a receiver drop repeats.
  Every pass is a row of `wfm_meta.webhook_deliveries`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import orjson
import psycopg

from connectors.errors import AuthenticationFailed, SourceError, SourceRejected
from connectors.http import RetryPolicy, SourceClient
from engine.landing.ledger import META
from engine.push.webhooks import TEST_EVENT, ensure_tables, sign, subscriber_secret

log = logging.getLogger(__name__)
POLICY = RetryPolicy(attempts=3, initial_wait=1.0, max_wait=8.0, jitter=0.5, max_elapsed=60.0, max_retry_after=30.0)
TIMEOUT = 10.0                 # seconds per request of a delivery pass
INLINE_SECONDS = 2.0           # the whole best-effort pass after a run
MAX_PASSES = 10                # then the row is `failed` (about 5 hours of trying)
LEASE = dt.timedelta(minutes=5)
REFUSALS_LISTED = 100          # a push.refused summary lists this many refusals, and counts them all


def _tables(conn: psycopg.Connection) -> bool:
    """Whether anybody ever subscribed; an older webhook schema is upgraded in place."""
    subscribers, outbox = conn.execute(f"""SELECT to_regclass('{META}.webhook_subscribers'),
                                           to_regclass('{META}.webhook_outbox')""").fetchone() or (None, None)
    if subscribers is not None and outbox is None:
        ensure_tables(conn)
    return subscribers is not None


def enqueue(conn: psycopg.Connection, event_type: str, data: dict, subscriber_id: int | None = None
            ) -> uuid.UUID | None:
    """Write an event for its subscribers (or one subscriber) in the caller's transaction; never raises."""
    try:
        with conn.transaction():       # a savepoint inside the caller's transaction
            if not _tables(conn):
                return None
            subscribers = [r[0] for r in conn.execute(
                f"""SELECT id FROM {META}.webhook_subscribers WHERE (%(one)s::int IS NULL AND %(type)s = ANY(events))
                    OR id = %(one)s ORDER BY id""", {"one": subscriber_id, "type": event_type})]
            if not subscribers:
                return None
            event_id = uuid.uuid4()
            created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
            body = orjson.dumps({"id": str(event_id), "type": event_type, "created_at": created, "data": data},
                                default=str).decode()
            conn.execute(f"""INSERT INTO {META}.webhook_events (event_id, event_type, body, payload)
                             VALUES (%s, %s, %s, %s)""", (event_id, event_type, body, body))
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {META}.webhook_outbox (event_id, subscriber_id) VALUES (%s, %s)",
                                [(event_id, s) for s in subscribers])
            return event_id
    except Exception as exc:         # a notification must not fail the run that raised it
        log.warning("webhook %s not queued: %s", event_type, str(exc).splitlines()[0] if str(exc) else exc)
        return None


def send_event(database_url: str, event_type: str, data: dict) -> uuid.UUID | None:
    """`enqueue` in a transaction of its own, for a caller without one; never raises."""
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            return enqueue(conn, event_type, data)
    except Exception as exc:
        log.warning("webhook %s not queued: %s", event_type, str(exc).splitlines()[0] if str(exc) else exc)
        return None


RUN_FIELDS = ("run_id", "stream", "mode", "status", "period_start", "period_end", "started_at", "finished_at",
              "windows_planned", "windows_landed", "windows_held", "windows_anomaly", "windows_deferred",
              "rows_fetched", "rows_inserted", "rows_updated", "rows_quarantined", "error")


def enqueue_run(conn: psycopg.Connection, run: dict) -> None:
    """A finished stream run's events, in the transaction that finishes it: `sync.completed` or
    `sync.failed`, `sync.anomaly` when windows came back far below their recent volume
    (`engine/landing/anomaly.py`), and `quality.gate_failed` when the gate held windows back."""
    data = {k: run.get(k) for k in RUN_FIELDS}
    enqueue(conn, "sync.completed" if run.get("status") == "completed" else "sync.failed", data)
    if run.get("windows_anomaly"):
        cur = conn.execute(f"""SELECT stream, window_start, window_end, kind, rows_fetched, expected, message
                               FROM {META}.anomalies WHERE run_id = %s ORDER BY window_start LIMIT 50""",
                           (run["run_id"],))
        found = [dict(zip([c.name for c in cur.description or ()], row)) for row in cur.fetchall()]
        enqueue(conn, "sync.anomaly", {**data, "notice": run.get("notice"), "anomalies": found})
    if run.get("windows_held"):
        held = conn.execute(f"""SELECT window_start, error FROM {META}.sync_windows WHERE run_id = %s
                                AND status = 'held' ORDER BY window_start LIMIT 50""", (run["run_id"],)).fetchall()
        enqueue(conn, "quality.gate_failed", {**data, "held": [{"window_start": w, "message": m} for w, m in held]})


def enqueue_refusals(conn: psycopg.Connection, kind: str) -> int:
    """One `push.refused` event for every refusal of `kind` not yet told (from `push_log`); returns
    how many it summarises. The mark moves in the same transaction, so a refusal is told once,
    also when the run that settled it died before telling. Never raises."""
    try:
        return _enqueue_refusals(conn, kind)
    except Exception as exc:
        log.warning("push.refused not queued: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return 0


def _enqueue_refusals(conn: psycopg.Connection, kind: str) -> int:
    with conn.transaction():
        if not _tables(conn):
            return 0
        source = f"push.refused:{kind}"
        mark = conn.execute(f"SELECT through FROM {META}.webhook_marks WHERE source = %s FOR UPDATE",
                            (source,)).fetchone()
        # no mark yet (a warehouse from before the outbox): refusals of the last day, not all history
        rows = conn.execute(f"""SELECT l.id, o.employee_id, o.period, l.message, o.site FROM {META}.push_log l
                                JOIN {META}.push_outbox o ON o.id = l.outbox_id WHERE o.kind = %s
                                AND l.to_state = 'refused' AND l.id > %s
                                AND (%s OR l.at > now() - interval '1 day') ORDER BY l.id""",
                            (kind, mark[0] if mark else 0, mark is not None)).fetchall()
        if not rows:
            return 0
        messages = Counter(m or "no message" for _, _, _, m, _ in rows)
        enqueue(conn, "push.refused", {
            "kind": kind, "count": len(rows), "periods": sorted({p for _, _, p, _, _ in rows}),
            "sites": sorted({s for *_, s in rows}),
            "messages": dict(messages.most_common()), "truncated": len(rows) > REFUSALS_LISTED,
            "refusals": [{"site": s, "employee_id": e, "period": p, "message": m}
                         for _, e, p, m, s in rows[:REFUSALS_LISTED]]})
        conn.execute(f"""INSERT INTO {META}.webhook_marks (source, through) VALUES (%s, %s) ON CONFLICT (source)
                         DO UPDATE SET through = EXCLUDED.through, updated_at = now()""", (source, rows[-1][0]))
        return len(rows)


# ---- delivery --------------------------------------------------------------------------------

@dataclass
class Tally:
    """What one delivery pass did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    outcomes: list[tuple[int, str, int | None, str | None]] = field(default_factory=list)  # (subscriber, ...)


@dataclass(frozen=True)
class _Row:
    event_id: uuid.UUID
    subscriber_id: int
    passes: int
    event_type: str
    payload: str
    url: str
    ciphertext: str | None
    block: str | None


def _claim(conn: psycopg.Connection, skip: set[int], healthy_only: bool, event_id: uuid.UUID | None) -> _Row | None:
    """The oldest due row not of a subscriber in `skip`, leased for LEASE; None when nothing is due.
    A subscriber backing off (or being delivered to) gets none of its rows until that ends."""
    row = conn.execute(
        f"""UPDATE {META}.webhook_outbox o SET passes = passes + 1, next_attempt_at = now() + %(lease)s
            FROM (SELECT event_id, subscriber_id FROM {META}.webhook_outbox c WHERE state = 'pending'
                  AND next_attempt_at <= now() AND NOT (subscriber_id = ANY(%(skip)s))
                  AND (%(event)s::uuid IS NULL OR event_id = %(event)s)
                  AND NOT EXISTS (SELECT 1 FROM {META}.webhook_outbox b WHERE b.subscriber_id = c.subscriber_id
                       AND b.state = 'pending' AND b.passes > 0 AND b.next_attempt_at > now())  -- backing off
                  AND (NOT %(healthy)s OR NOT EXISTS (SELECT 1 FROM {META}.webhook_outbox f WHERE
                       f.subscriber_id = c.subscriber_id AND f.state IN ('pending', 'failed') AND f.passes > 0
                       AND f.created_at > now() - interval '1 day'))
                  ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) due
            WHERE o.event_id = due.event_id AND o.subscriber_id = due.subscriber_id
            RETURNING o.event_id, o.subscriber_id, o.passes""",
        {"lease": LEASE, "skip": sorted(skip), "healthy": healthy_only, "event": event_id}).fetchone()
    if row is None:
        return None
    found = conn.execute(
        f"""SELECT e.event_type, e.payload, e.body::text, s.url, s.secret_ciphertext, s.secret_block
            FROM {META}.webhook_events e, {META}.webhook_subscribers s WHERE e.event_id = %s AND s.id = %s""",
        (row[0], row[1])).fetchone()
    if found is None:        # pruned or unsubscribed since (the outbox row goes with them)
        return None
    event_type, payload, body, url, ciphertext, block = found
    return _Row(row[0], row[1], row[2], event_type, payload or body, url, ciphertext, block)


def _post(row: _Row, policy: RetryPolicy, timeout: float) -> tuple[str, int | None, str | None]:
    """One delivery pass: (outcome, status, error) with outcome delivered | retrying | failed."""
    try:
        secret = subscriber_secret(row.ciphertext, row.block)
    except Exception as exc:
        return "failed", None, f"secret unavailable: {type(exc).__name__}"
    body = row.payload.encode()

    def headers() -> dict[str, str]:      # signed afresh for every attempt
        timestamp = int(time.time())
        return {"X-WFM-Event": row.event_type, "X-WFM-Delivery": str(row.event_id),
                "X-WFM-Timestamp": str(timestamp), "X-WFM-Signature": sign(secret, timestamp, body)}
    with SourceClient("webhook", "", timeout=timeout, max_connections=1) as http:
        try:
            status = http.request_json("POST", row.url, content=body, headers=headers, decode=False, retry=policy,
                                       label=f"POST subscriber {row.subscriber_id}")
            return "delivered", status, None
        except SourceRejected as exc:
            return "failed", exc.status, exc.detail
        except AuthenticationFailed as exc:
            return "failed", None, exc.detail
        except SourceError as exc:
            final = row.passes >= MAX_PASSES
            return ("failed" if final else "retrying"), None, exc.detail


def _settle(conn: psycopg.Connection, row: _Row, outcome: str, status: int | None, error: str | None,
            duration_ms: int) -> None:
    wait = dt.timedelta(minutes=min(60, 2 ** (row.passes - 1)))
    with conn.transaction():
        conn.execute(f"""UPDATE {META}.webhook_outbox SET state = %s, last_error = %s,
                         next_attempt_at = CASE WHEN %s = 'retrying' THEN now() + %s ELSE next_attempt_at END,
                         finished_at = CASE WHEN %s = 'retrying' THEN NULL ELSE now() END
                         WHERE event_id = %s AND subscriber_id = %s""",
                     ("pending" if outcome == "retrying" else outcome, error, outcome, wait, outcome,
                      row.event_id, row.subscriber_id))
        conn.execute(f"""INSERT INTO {META}.webhook_deliveries (event_id, subscriber_id, attempt, outcome, status_code,
                         error, duration_ms) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                     (row.event_id, row.subscriber_id, row.passes, outcome, status, error, duration_ms))


def deliver_due(database_url: str, budget: float | None = None, policy: RetryPolicy = POLICY,
                timeout: float = TIMEOUT, healthy_only: bool = False, event_id: uuid.UUID | None = None,
                limit: int = 1000) -> Tally:
    """Deliver due rows, oldest first, until none is due, `limit` rows or `budget` seconds; a
    subscriber whose delivery fails is skipped for the rest of the pass."""
    deadline = None if budget is None else time.monotonic() + budget
    tally, skip = Tally(), set[int]()
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        if not _tables(conn):
            return tally
        for _ in range(limit):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0.05:
                break
            row = _claim(conn, skip, healthy_only, event_id)
            if row is None:
                break
            started = time.perf_counter()
            outcome, status, error = _post(row, policy, timeout if left is None else max(0.1, min(timeout, left)))
            _settle(conn, row, outcome, status, error, int((time.perf_counter() - started) * 1000))
            setattr(tally, outcome, getattr(tally, outcome) + 1)
            tally.outcomes.append((row.subscriber_id, outcome, status, error))
            if outcome != "delivered":
                skip.add(row.subscriber_id)
                log.warning("webhook %s to subscriber %s: %s (pass %d)", row.event_type, row.subscriber_id,
                            error, row.passes)
    return tally


def deliver_inline(database_url: str) -> Tally:
    """The best-effort pass after a run: bounded by INLINE_SECONDS, one attempt per row, healthy
    subscribers only; whatever is left is the `deliver-webhooks` deployment's. Never raises."""
    try:
        return deliver_due(database_url, budget=INLINE_SECONDS, policy=RetryPolicy(attempts=1),
                           timeout=INLINE_SECONDS, healthy_only=True)
    except Exception as exc:
        log.warning("webhooks not delivered after the run: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return Tally()


def send_test(database_url: str, subscriber_id: int) -> Tally | None:
    """`wfm webhooks test`: a `webhook.test` event for one subscriber, delivered now; None if no such subscriber."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_tables(conn)
        event_id = enqueue(conn, TEST_EVENT, {"message": "test from wfm"}, subscriber_id)
    return None if event_id is None else deliver_due(database_url, event_id=event_id)
