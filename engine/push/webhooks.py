"""Signed webhook notifications: subscribers, their secrets, the tables, and signature checks.

Events: `sync.completed`, `sync.failed`, `sync.anomaly` (a window far below its recent volume,
`engine/landing/anomaly.py`), `quality.gate_failed`, `push.refused` (and
`webhook.test`, sent only by `wfm webhooks test`). A delivery is an HTTP POST of

    {"id": "<uuid>", "type": "sync.completed", "created_at": "2026-11-22T10:00:00Z", "data": {...}}

with headers `X-WFM-Event`, `X-WFM-Delivery` (the event id), `X-WFM-Timestamp` (Unix seconds) and
`X-WFM-Signature: v1=<hex>`, the HMAC-SHA256 under the subscriber's secret of
`<timestamp>.<raw body>`. A receiver checks it with `verify_signature` (below, or
`wfm webhooks verify`), which also rejects timestamps more than `tolerance` seconds away.

Events are not delivered by the run that raises them: they are written to a durable outbox
(`wfm_meta.webhook_outbox`, one row per event and subscriber) and delivered by
`engine/push/webhook_outbox.py`, so a dead subscriber costs a run nothing. Secrets are kept encrypted
with Fernet (the key is `WFM_SECRET_KEY`, else a key file created 0600 in the data dir) or as a
Prefect Secret block named by the subscriber; they appear in no log line, message or listing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

import psycopg
from cryptography.fernet import Fernet, InvalidToken

from engine.landing.ledger import META

__all__ = ["EVENTS", "sign", "verify_signature", "check_signature", "add_subscriber", "list_subscribers",
           "remove_subscriber", "subscriber_secret", "ensure_tables"]

EVENTS = ("sync.completed", "sync.failed", "sync.anomaly", "quality.gate_failed", "push.refused")
TEST_EVENT = "webhook.test"
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
CREATE TABLE IF NOT EXISTS {META}.webhook_outbox (
  event_id uuid NOT NULL REFERENCES {META}.webhook_events ON DELETE CASCADE,
  subscriber_id int NOT NULL REFERENCES {META}.webhook_subscribers ON DELETE CASCADE,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
  seq bigserial, passes int NOT NULL DEFAULT 0, next_attempt_at timestamptz NOT NULL DEFAULT now(), last_error text,
  created_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz,
  PRIMARY KEY (event_id, subscriber_id));
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON {META}.webhook_outbox (next_attempt_at) WHERE state = 'pending';
DO $$ BEGIN  -- events stored before the outbox: the exact signed bytes, for redelivery
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{META}'
                 AND table_name = 'webhook_events' AND column_name = 'payload') THEN
    ALTER TABLE {META}.webhook_events ADD COLUMN payload text;
  END IF;
END $$;
CREATE TABLE IF NOT EXISTS {META}.webhook_marks (
  source text PRIMARY KEY, through bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
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
