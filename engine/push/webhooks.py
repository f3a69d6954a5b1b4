"""Signed webhook notifications: subscribers, delivery with retries, and signature checks.

Events: `sync.completed`, `sync.failed`, `sync.anomaly` (a window far below its recent volume,
`engine/landing/anomaly.py`), `quality.gate_failed`, `push.refused` (and
`webhook.test`, sent only by `wfm webhooks test`). A delivery is an HTTP POST of

    {"id": "<uuid>", "type": "sync.completed", "created_at": "2026-11-22T10:00:00Z", "data": {...}}

with headers `X-WFM-Event`, `X-WFM-Delivery` (the event id), `X-WFM-Timestamp` (Unix seconds) and
`X-WFM-Signature: v1=<hex>`, the HMAC-SHA256 under the subscriber's secret of
`<timestamp>.<raw body>`. A receiver checks it with `verify_signature` (below, or
`wfm webhooks verify`), which also rejects timestamps more than `tolerance` seconds away.

Each subscriber gets the event on its own, up to 4 attempts (the first and 3 retries, waiting
1, 2 and 4 s; 10 s timeout each); 408, 429, 5xx and transport errors are retried, other answers
are final. Every attempt is a row of `wfm_meta.webhook_deliveries`. Secrets are kept encrypted
with Fernet (the key is `WFM_SECRET_KEY`, else a key file created 0600 in the data dir) or as a
Prefect Secret block named by the subscriber; they appear in no log line, message or listing.
`emit` is best-effort: it never raises, so a notification cannot fail the run that sent it.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import psycopg
from cryptography.fernet import Fernet, InvalidToken

from engine.landing import anomaly
from engine.landing.ledger import META

__all__ = ["EVENTS", "sign", "verify_signature", "check_signature", "send_event", "notify_run", "deliver_event",
           "add_subscriber", "list_subscribers", "remove_subscriber", "subscriber_secret"]

log = logging.getLogger(__name__)
EVENTS = ("sync.completed", "sync.failed", "sync.anomaly", "quality.gate_failed", "push.refused")
TEST_EVENT = "webhook.test"
ATTEMPTS, FIRST_WAIT, FACTOR, TIMEOUT = 4, 1.0, 2.0, 10.0
DDL = f"""
CREATE SCHEMA IF NOT EXISTS {META};
CREATE TABLE IF NOT EXISTS {META}.webhook_subscribers (
  id serial PRIMARY KEY, url text NOT NULL, events text[] NOT NULL, secret_ciphertext text, secret_block text,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((secret_ciphertext IS NULL) <> (secret_block IS NULL)));
CREATE TABLE IF NOT EXISTS {META}.webhook_events (
  event_id uuid PRIMARY KEY, event_type text NOT NULL, body jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS {META}.webhook_deliveries (
  id bigserial PRIMARY KEY, event_id uuid NOT NULL REFERENCES {META}.webhook_events ON DELETE CASCADE,
  subscriber_id int NOT NULL REFERENCES {META}.webhook_subscribers ON DELETE CASCADE, attempt int NOT NULL,
  outcome text NOT NULL, status_code int, error text, duration_ms int,
  attempted_at timestamptz NOT NULL DEFAULT now());
"""


def ensure_tables(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('wfm-ddl'))")
        conn.execute(DDL)


# ---- signatures ------------------------------------------------------------------------------

def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """`v1=<hex>`: HMAC-SHA256 under `secret` of `<timestamp>.<body>`."""
    message = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def check_signature(secret: str, timestamp: int | str, body: bytes, signature: str, tolerance: float = 300,
                    now: float | None = None) -> str | None:
    """Why a delivery's signature is not acceptable, or None when it is."""
    try:
        sent = int(str(timestamp).strip())
    except ValueError:
        return "the timestamp is not Unix seconds"
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return f"the timestamp is more than {tolerance:g} s away from now (a stale or replayed delivery)"
    offered = [s.strip() for s in signature.split(",") if s.strip().startswith("v1=")]
    expected = sign(secret, sent, body)
    if not any(hmac.compare_digest(expected, s) for s in offered):
        return "the signature does not match the body (wrong secret or altered body)"
    return None


def verify_signature(secret: str, timestamp: int | str, body: bytes, signature: str, tolerance: float = 300) -> bool:
    """True if `signature` (the X-WFM-Signature header) signs `timestamp` and the raw `body` under
    `secret` and the timestamp is within `tolerance` seconds of now. Pass the body exactly as
    received, before any JSON parsing."""
    return check_signature(secret, timestamp, body, signature, tolerance) is None


# ---- secrets ---------------------------------------------------------------------------------

def _fernet() -> Fernet:
    """The key from WFM_SECRET_KEY, else `<data dir>/secret.key`, created 0600 on first use."""
    key = os.environ.get("WFM_SECRET_KEY")
    if not key:
        from engine.paths import data_dir

        path = Path(data_dir()) / "secret.key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_text().strip()
        else:
            key = Fernet.generate_key().decode()
            with os.fdopen(fd, "w") as out:
                out.write(key)
    try:
        return Fernet(key.encode())
    except (ValueError, TypeError):
        raise ValueError("WFM_SECRET_KEY (or the key file) is not a Fernet key") from None


def subscriber_secret(ciphertext: str | None, block: str | None) -> str:
    """The clear secret of a subscriber, for signing only."""
    if block:
        from prefect.blocks.system import Secret

        return str(Secret.load(block).get())
    try:
        return _fernet().decrypt((ciphertext or "").encode()).decode()
    except InvalidToken:
        raise ValueError("a webhook secret cannot be decrypted with the current key") from None


def add_subscriber(conn: psycopg.Connection, url: str, events: list[str], secret: str | None = None,
                   secret_block: str | None = None) -> tuple[int, str | None]:
    """Store a subscriber; returns its id and the secret when one was generated here."""
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        raise ValueError(f"unknown event type(s) {', '.join(unknown) or '(none)'}; known: {', '.join(EVENTS)}")
    if not url.startswith(("http://", "https://")):
        raise ValueError("a webhook URL starts with http:// or https://")
    generated = None
    if secret_block is None and not secret:
        secret = generated = "whsec_" + secrets.token_urlsafe(32)
    ciphertext = _fernet().encrypt(secret.encode()).decode() if secret_block is None else None
    ensure_tables(conn)
    with conn.transaction():
        row = conn.execute(f"""INSERT INTO {META}.webhook_subscribers (url, events, secret_ciphertext, secret_block)
                               VALUES (%s, %s, %s, %s) RETURNING id""", (url, sorted(set(events)), ciphertext,
                                                                         secret_block)).fetchone()
    return row[0], generated


def list_subscribers(conn: psycopg.Connection) -> list[dict]:
    """Subscribers with their last delivery outcome; never the secrets."""
    ensure_tables(conn)
    rows = conn.execute(f"""SELECT s.id, s.url, s.events, CASE WHEN s.secret_block IS NULL THEN 'encrypted'
                            ELSE 'block:' || s.secret_block END, d.outcome, d.attempted_at
                            FROM {META}.webhook_subscribers s LEFT JOIN LATERAL (SELECT outcome, attempted_at
                            FROM {META}.webhook_deliveries WHERE subscriber_id = s.id ORDER BY id DESC LIMIT 1) d
                            ON true
                            ORDER BY s.id""").fetchall()
    keys = ("id", "url", "events", "secret", "last_outcome", "last_attempt")
    return [dict(zip(keys, r)) for r in rows]


def remove_subscriber(conn: psycopg.Connection, subscriber_id: int) -> bool:
    ensure_tables(conn)
    with conn.transaction():
        return conn.execute(f"DELETE FROM {META}.webhook_subscribers WHERE id = %s",
                            (subscriber_id,)).rowcount > 0


# ---- delivery --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attempt:
    subscriber_id: int
    attempt: int
    outcome: str                  # delivered | retrying | failed
    status_code: int | None
    error: str | None


def _retriable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _deliver(database_url: str, subscriber: tuple, event_id: uuid.UUID, event_type: str, body: bytes,
             first_wait: float) -> list[Attempt]:
    """Up to ATTEMPTS posts to one subscriber; each attempt is committed to the delivery log."""
    subscriber_id, url, ciphertext, block = subscriber
    attempts: list[Attempt] = []
    try:
        secret = subscriber_secret(ciphertext, block)
    except Exception as exc:
        attempts.append(Attempt(subscriber_id, 1, "failed", None, f"secret unavailable: {type(exc).__name__}"))
        _record(database_url, event_id, attempts[-1], 0)
        return attempts
    with httpx.Client(timeout=TIMEOUT, headers={"User-Agent": "wfm-pipelines"}) as http:
        for number in range(1, ATTEMPTS + 1):
            timestamp = int(time.time())
            started = time.perf_counter()
            status, error = None, None
            try:
                response = http.post(url, content=body, headers={
                    "Content-Type": "application/json", "X-WFM-Event": event_type, "X-WFM-Delivery": str(event_id),
                    "X-WFM-Timestamp": str(timestamp), "X-WFM-Signature": sign(secret, timestamp, body)})
                status = response.status_code
                retry = _retriable(status)
                error = None if 200 <= status < 300 else f"HTTP {status}"
            except httpx.HTTPError as exc:
                retry, error = True, f"{type(exc).__name__}"
            ok = status is not None and 200 <= status < 300
            outcome = "delivered" if ok else ("retrying" if retry and number < ATTEMPTS else "failed")
            attempts.append(Attempt(subscriber_id, number, outcome, status, error))
            _record(database_url, event_id, attempts[-1], int((time.perf_counter() - started) * 1000))
            if outcome != "retrying":
                break
            time.sleep(first_wait * FACTOR ** (number - 1))
    return attempts


def _record(database_url: str, event_id: uuid.UUID, attempt: Attempt, duration_ms: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"""INSERT INTO {META}.webhook_deliveries (event_id, subscriber_id, attempt, outcome, status_code,
                         error, duration_ms) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                     (event_id, attempt.subscriber_id, attempt.attempt, attempt.outcome, attempt.status_code,
                      attempt.error, duration_ms))


def deliver_event(database_url: str, event_type: str, data: dict, subscriber_id: int | None = None,
                  first_wait: float | None = None) -> list[Attempt]:
    """Store the event and deliver it to its subscribers (or to one, for a test); raises on DB errors."""
    first_wait = FIRST_WAIT if first_wait is None else first_wait
    event_id = uuid.uuid4()
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    body = orjson.dumps({"id": str(event_id), "type": event_type, "created_at": created, "data": data},
                        default=str)
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_tables(conn)
        subscribers = conn.execute(
            f"""SELECT id, url, secret_ciphertext, secret_block FROM {META}.webhook_subscribers
                WHERE (%(one)s::int IS NULL AND %(type)s = ANY(events)) OR id = %(one)s ORDER BY id""",
            {"one": subscriber_id, "type": event_type}).fetchall()
        if not subscribers:
            return []
        conn.execute(f"INSERT INTO {META}.webhook_events (event_id, event_type, body) VALUES (%s, %s, %s)",
                     (event_id, event_type, body.decode()))
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(subscribers))) as pool:
        futures = [pool.submit(_deliver, database_url, s, event_id, event_type, body, first_wait) for s in subscribers]
        return [a for f in futures for a in f.result()]


def send_event(database_url: str, event_type: str, data: dict) -> list[Attempt]:
    """Best-effort `deliver_event`: a database or delivery failure is logged, never raised."""
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            found = conn.execute(f"SELECT to_regclass('{META}.webhook_subscribers')").fetchone()[0]
        if found is None:            # nobody ever subscribed: nothing to do, no tables to create
            return []
        attempts = deliver_event(database_url, event_type, data)
    except Exception as exc:         # a notification must not fail the run that sent it
        log.warning("webhook %s not delivered: %s", event_type, str(exc).splitlines()[0] if str(exc) else exc)
        return []
    for failed in (a for a in attempts if a.outcome == "failed"):
        log.warning("webhook %s to subscriber %s failed after %d attempt(s): %s", event_type, failed.subscriber_id,
                    failed.attempt, failed.error)
    return attempts


RUN_FIELDS = ("run_id", "stream", "mode", "status", "period_start", "period_end", "started_at", "finished_at",
              "windows_planned", "windows_landed", "windows_held", "windows_anomaly", "windows_deferred",
              "rows_fetched", "rows_inserted", "rows_updated", "rows_quarantined", "error")


def notify_run(database_url: str, run: dict) -> None:
    """The events of a finished stream run: `sync.completed` or `sync.failed`, `sync.anomaly` when
    windows came back far below their recent volume, and `quality.gate_failed` when the gate held
    windows back. Never raises."""
    data = {k: run.get(k) for k in RUN_FIELDS}
    send_event(database_url, "sync.completed" if run.get("status") == "completed" else "sync.failed", data)
    if run.get("windows_anomaly"):
        try:
            found = anomaly.of_run(database_url, run["run_id"])
        except Exception:
            found = []
        send_event(database_url, "sync.anomaly", {**data, "notice": run.get("notice"), "anomalies": found[:50]})
    if run.get("windows_held"):
        try:
            with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
                held = conn.execute(f"""SELECT window_start, error FROM {META}.sync_windows WHERE run_id = %s
                                        AND status = 'held' ORDER BY window_start LIMIT 50""",
                                    (run["run_id"],)).fetchall()
        except Exception:
            held = []
        send_event(database_url, "quality.gate_failed",
             {**data, "held": [{"window_start": w, "message": m} for w, m in held]})
