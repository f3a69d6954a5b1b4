"""The receiver of the contact center's status push: `POST /<connection>/ccwfm/api/rest/status`.

Each contact-center connection pushes to its own path; its events are stored with that connection
as `source` (the bare `/ccwfm/api/rest/status` is the connection `default`), so two centers' worker
ids never pair with each other. A path naming no configured connection is a 404, not stored.

The sender fires and forgets (it never retries), so an event is made durable before it is
answered:
- 200 only after the event's INSERT is committed to `wfm.pushed_status_events`, together with
  the re-pairing of that worker's enter/exit events into `wfm.pushed_status_intervals`;
- if PostgreSQL cannot take it, the event is appended to a local spool file (`O_APPEND`, fsync)
  and the answer is 503; a background loop (and the next successful request) replays the spool
  into PostgreSQL once it is back. Each event carries an id given on receipt, so a replay that is
  interrupted and repeated stores nothing twice.
- a body that is not a status event is stored too (with its error) and answered 400.
- before any of that, `receiver.guard` bounds the body (413), checks the shared secret or
  HMAC signature when one is configured (401) and the client's rate (429 with `Retry-After`);
  a refused push is not stored.

Pairing: per connection and worker, events are ordered by `actionTime` (not by arrival, so late replays fit in);
an enter (action 1) is closed by the first exit (action 0) of the same status before the
worker's next enter, else by that next enter (`closed_by = 'next_enter'`), else it stays open.

    wfm receiver serve --port 8780        # uvicorn, database from WFM_DATABASE_URL
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import uuid
from collections.abc import Collection
from pathlib import Path

import orjson
import psycopg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine import schema
from engine.landing.warehouse import DEFAULT
from receiver.guard import Guard, RateLimiter

log = logging.getLogger(__name__)
PATH = "/ccwfm/api/rest/status"
DDL = """
CREATE SCHEMA IF NOT EXISTS wfm;
CREATE TABLE IF NOT EXISTS wfm.pushed_status_events (
  source text NOT NULL, event_id uuid NOT NULL, received_at timestamptz NOT NULL, worker_id text, state_code text,
  state_name text, system_id text, action smallint, action_time timestamptz, body text NOT NULL, error text,
  PRIMARY KEY (source, event_id));
CREATE INDEX IF NOT EXISTS pushed_status_events_source_worker
  ON wfm.pushed_status_events (source, worker_id, action_time);
CREATE TABLE IF NOT EXISTS wfm.pushed_status_intervals (
  source text NOT NULL, worker_id text NOT NULL, state_code text NOT NULL, started_at timestamptz NOT NULL,
  ended_at timestamptz, state_name text, system_id text, closed_by text,
  PRIMARY KEY (source, worker_id, state_code, started_at));
"""
PAIR = """
WITH ev AS (SELECT state_code, state_name, system_id, action, action_time FROM wfm.pushed_status_events
            WHERE source = %(s)s AND worker_id = %(w)s AND error IS NULL AND action_time >= %(lo)s),
paired AS (
  SELECT e.state_code, e.action_time AS started_at, e.state_name, e.system_id, n.next_enter,
         (SELECT min(x.action_time) FROM ev x WHERE x.action = 0 AND x.state_code = e.state_code
            AND x.action_time >= e.action_time AND x.action_time <= coalesce(n.next_enter, 'infinity')) AS exit_at
  FROM ev e LEFT JOIN LATERAL (SELECT min(m.action_time) AS next_enter FROM ev m
                               WHERE m.action = 1 AND m.action_time > e.action_time) n ON true
  WHERE e.action = 1)
INSERT INTO wfm.pushed_status_intervals AS t (source, worker_id, state_code, started_at, ended_at, state_name,
                                             system_id, closed_by)
SELECT DISTINCT ON (state_code, started_at) %(s)s, %(w)s, state_code, started_at, coalesce(exit_at, next_enter),
       state_name, system_id,
       CASE WHEN exit_at IS NOT NULL THEN 'exit' WHEN next_enter IS NOT NULL THEN 'next_enter' END
FROM paired ORDER BY state_code, started_at
ON CONFLICT (source, worker_id, state_code, started_at) DO UPDATE SET ended_at = EXCLUDED.ended_at,
  closed_by = EXCLUDED.closed_by, state_name = EXCLUDED.state_name, system_id = EXCLUDED.system_id
  WHERE (t.ended_at, t.closed_by) IS DISTINCT FROM (EXCLUDED.ended_at, EXCLUDED.closed_by)
"""


def _text(raw: dict, key: str, required: bool = False) -> str | None:
    """A field as text: a string or a number; anything else (an object, a list, a bool, a NUL
    character PostgreSQL cannot store) makes the body not a status event."""
    value = raw[key] if required else raw.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{key} is {type(value).__name__}, not text")
    text = str(value).strip() if required else str(value)
    if "\x00" in text:
        raise ValueError(f"{key} holds a NUL character")
    return text


def _number(raw: dict, key: str) -> float:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{key} is {type(value).__name__}, not a number")
    return float(value)


def parse_event(body: bytes) -> dict:
    """The columns of one pushed event; `error` says why a body is not a status event."""
    try:
        raw = orjson.loads(body)
        if not isinstance(raw, dict):
            raise ValueError(f"the body is a JSON {type(raw).__name__}, not an object")
        worker, action, seconds = _text(raw, "workerId", required=True), _number(raw, "action"), _number(raw, "actionTime")
        if not worker or action not in (0, 1):
            raise ValueError("workerId is empty or action is not 0/1")
        return {"worker_id": worker, "state_code": _text(raw, "stateCode") or "",
                "state_name": _text(raw, "stateName"), "system_id": _text(raw, "systemId"), "action": int(action),
                "action_time": dt.datetime.fromtimestamp(seconds, dt.timezone.utc), "error": None}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
        return {"worker_id": None, "state_code": None, "state_name": None, "system_id": None, "action": None,
                "action_time": None, "error": f"not a status event: {type(exc).__name__}: {exc}"[:300]}


def store(conn: psycopg.Connection, event_id: str, received_at: str, body: str, source: str = DEFAULT) -> dict:
    """INSERT one event of a connection (idempotent by id) and re-pair its worker's intervals, in one transaction."""
    event = parse_event(body.encode())
    body = body.replace("\x00", "\\u0000")       # kept as sent, but PostgreSQL text cannot hold NUL
    with conn.transaction():
        if event["error"] is None:      # one worker's events are paired one transaction at a time
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"wfm-status-{source}-{event['worker_id']}",))
        conn.execute("""INSERT INTO wfm.pushed_status_events (source, event_id, received_at, worker_id, state_code,
                        state_name, system_id, action, action_time, body, error)
                        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (source, event_id) DO NOTHING""",
                     (source, event_id, received_at, event["worker_id"], event["state_code"], event["state_name"],
                      event["system_id"], event["action"], event["action_time"], body, event["error"]))
        if event["error"] is None:
            earliest_open = conn.execute("""SELECT min(started_at) FROM wfm.pushed_status_intervals
                                            WHERE source = %s AND worker_id = %s AND ended_at IS NULL""",
                                         (source, event["worker_id"])).fetchone()[0]
            lower = min(t for t in (event["action_time"], earliest_open) if t is not None) - dt.timedelta(days=1)
            conn.execute(PAIR, {"s": source, "w": event["worker_id"], "lo": lower})
    return event


class Spool:
    """An append-only local file of events PostgreSQL could not take, replayed when it is back; each
    line carries its connection (`source`; a line written before connections is `default`'s)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.replaying = self.path.with_name(self.path.name + ".replaying")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, event_id: str, received_at: str, body: str, source: str = DEFAULT) -> None:
        line = orjson.dumps({"event_id": event_id, "received_at": received_at, "body": body, "source": source}) + b"\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def waiting(self) -> bool:
        return self.replaying.exists() or (self.path.exists() and self.path.stat().st_size > 0)

    def replay(self, database_url: str) -> int:
        """Store every spooled event; the file goes only after all of them are committed.

        Called from one thread (the replay loop); appends may run concurrently."""
        with self._lock:         # appends go on into a new file meanwhile
            if not self.replaying.exists():
                if not self.path.exists():
                    return 0
                os.replace(self.path, self.replaying)
                _fsync_dir(self.path.parent)
        lines = self.replaying.read_bytes().splitlines()
        ensure_tables(database_url)
        with psycopg.connect(database_url, connect_timeout=3) as conn:
            for line in lines:
                try:
                    item = orjson.loads(line)
                except orjson.JSONDecodeError:      # a line torn by a crash mid-append
                    log.warning("spool: skipped an unreadable line of %d bytes", len(line))
                    continue
                try:
                    store(conn, item["event_id"], item["received_at"], item["body"], item.get("source", DEFAULT))
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    raise                           # the database went away again: replay later
                except psycopg.Error as exc:        # this event, not the database: set aside, go on
                    self._set_aside(line, exc)
        self.replaying.unlink()
        _fsync_dir(self.path.parent)
        return len(lines)


    def _set_aside(self, line: bytes, exc: Exception) -> None:
        """Keep an event PostgreSQL refuses in `<spool>.rejected` (fsync'ed) so it cannot block the rest."""
        log.error("spool: an event PostgreSQL refuses is set aside in %s: %s", self.path.name + ".rejected",
                  str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        fd = os.open(self.path.with_name(self.path.name + ".rejected"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_tables(database_url: str) -> None:
    """The warehouse migrated (tables of an earlier release get their `source` there), then the
    receiver's two tables created if missing."""
    schema.ensure(database_url)
    with psycopg.connect(database_url, connect_timeout=3) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('wfm-ddl'))")
        conn.execute(DDL)


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is (or is declared) longer than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(database_url: str, spool_path: Path, replay_every: float = 5.0, guard: Guard | None = None,
               connections: Collection[str] = (DEFAULT,)) -> Starlette:
    """The ASGI app: the status endpoint of each contact-center connection (`connections`; the bare
    path is `default`'s), `GET /health`, and the spool's replay loop."""
    known = frozenset(connections)
    guard = guard or Guard()
    limiter = RateLimiter(guard.rate, guard.burst)
    spool = Spool(spool_path)
    ready = threading.Event()           # tables ensured on this database
    stop = threading.Event()
    wake = threading.Event()

    def save(event_id: str, received_at: str, body: str, source: str) -> dict:
        if not ready.is_set():
            ensure_tables(database_url)
            ready.set()
        with psycopg.connect(database_url, connect_timeout=3) as conn:
            return store(conn, event_id, received_at, body, source)

    def replay_loop() -> None:
        while not stop.is_set():
            if spool.waiting():
                try:
                    count = spool.replay(database_url)
                    log.info("spool: replayed %d event(s)", count)
                except (psycopg.Error, OSError) as exc:
                    log.warning("spool: replay postponed, the database is unavailable: %s", type(exc).__name__)
            wake.wait(replay_every)
            wake.clear()

    async def status(request: Request) -> JSONResponse:
        source = request.path_params.get("connection", DEFAULT)
        if source not in known and "connection" in request.path_params:
            return JSONResponse({"result": "error", "message": f"no contact-center connection named {source!r}; "
                                 f"known: {', '.join(sorted(known)) or 'none'}"}, status_code=404)
        raw = await bounded_body(request, guard.max_body)
        if raw is None:
            return JSONResponse({"result": "error", "message": f"body larger than {guard.max_body} bytes"},
                                status_code=413, headers={"Connection": "close"})
        wait = limiter.wait(request.client.host if request.client else "-")
        if wait:
            return JSONResponse({"result": "error", "message": f"too many events; retry in {wait} s"},
                                status_code=429, headers={"Retry-After": str(wait)})
        refused = guard.refuse_auth(request.headers, raw)
        if refused:
            log.warning("status push refused: %s", refused)
            return JSONResponse({"result": "error", "message": f"not authenticated: {refused}"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer" if guard.auth == "token" else "WFM-Signature"})
        # bytes that are not UTF-8 are kept as \xNN, which no JSON reader takes: a 400, stored as sent
        body = raw.decode("utf-8", "backslashreplace")
        event_id, received_at = str(uuid.uuid4()), dt.datetime.now(dt.timezone.utc).isoformat()
        try:
            event = await run_in_threadpool(save, event_id, received_at, body, source)
        except (psycopg.Error, OSError) as exc:
            try:
                await run_in_threadpool(spool.append, event_id, received_at, body, source)
            except OSError:
                log.error("status event %s lost: neither the database nor the spool could take it", event_id)
                return JSONResponse({"result": "error", "message": "not stored"}, status_code=503)
            log.warning("status event %s spooled, the database is unavailable: %s", event_id, type(exc).__name__)
            wake.set()
            return JSONResponse({"result": "spooled", "id": event_id}, status_code=503)
        if spool.waiting():
            wake.set()
        if event["error"]:
            return JSONResponse({"result": "error", "message": event["error"], "id": event_id}, status_code=400)
        return JSONResponse({"result": "ok", "id": event_id})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"spool_waiting": spool.waiting()})

    def prepare() -> None:
        """Migrate and create the tables before the first push (a database down now: on the first save)."""
        try:
            ensure_tables(database_url)
            ready.set()
        except (psycopg.Error, OSError) as exc:
            log.warning("tables not ensured at start, the database is unavailable: %s", type(exc).__name__)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await run_in_threadpool(prepare)
        thread = threading.Thread(target=replay_loop, name="status-spool-replay", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            wake.set()
            thread.join(timeout=10)

    return Starlette(routes=[Route(PATH, status, methods=["POST"]), Route("/{connection}" + PATH, status, methods=["POST"]),
                             Route("/health", health, methods=["GET"])], lifespan=lifespan)


def serve(port: int, host: str = "127.0.0.1", spool_path: Path | None = None) -> None:
    """Serve the receiver with uvicorn until Ctrl-C."""
    import uvicorn

    from connectors.config.connections import load
    from connectors.settings import CONTACT_CENTER
    from engine import database, paths

    guard = Guard.from_env()
    connections = [c.name for c in load().of(CONTACT_CENTER)] or [DEFAULT]
    app = create_app(database.database_url(), spool_path or paths.data_dir() / "receiver" / "status-spool.jsonl",
                     guard=guard, connections=connections)
    uvicorn.run(app, host=host, port=port, log_level="warning")
