"""The status receiver under load and bad input.

Burst: `events` signed status events (HMAC, the receiver's own check on) from several senders
at once, with the receiver's embedded PostgreSQL restarted when half of them are sent. Every
answer must be 200 (committed) or 503 "spooled" (fsync'ed to the spool): the contact center
never retries, so anything else is an event lost. Then the spool must drain; exact means every
event sent is stored once (`wfm.pushed_status_events` holds each body once, none missing, none
extra) and the paired intervals equal those of a receiver that took the same events calmly.

Bad input (`bad_pushes`, counted with the malformed inputs): bodies that are not status events
(answered 400 and stored with their error), and pushes the guard must refuse unstored —
too large (413), unsigned or wrongly signed or stale (401), over the rate (429 with
`Retry-After`). Each must be answered in one line, and a good event sent right after each must
still be stored with 200 (a bad body never blocks the receiver or its spool).
"""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import psycopg

from engine.push.webhooks import sign
from receiver.guard import Guard
from receiver.service import PATH, create_app

from . import Outcome
from .database_faults import EmbeddedServer
from .lab import fresh_database

SECRET = "chaos-receiver-signing-secret-5f2e"
T0 = 1_795_000_000
CODES = ("Ready", "Work", "Break", "Lunch", "Training")


@contextmanager
def quiet() -> Iterator[None]:
    """The receiver's own warnings (every spooled or refused event) off the scenario's output."""
    logger = logging.getLogger("receiver.service")
    level, logger.level = logger.level, logging.CRITICAL
    try:
        yield
    finally:
        logger.level = level


@contextmanager
def served(app) -> Iterator[str]:
    """The app on a free loopback port with uvicorn in a thread; its base URL."""
    import socket

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def signed(body: bytes, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    at = int(time.time()) if at is None else at
    return {"X-WFM-Timestamp": str(at), "X-WFM-Signature": sign(secret, at, body), "Content-Type": "application/json"}


def burst_events(count: int, workers: int = 50) -> list[bytes]:
    """`count` events: each worker leaves one status and enters the next, a minute apart."""
    out: list[bytes] = []
    for step in itertools.count():
        for worker in range(workers):
            at, new, old = T0 + 60 * step + worker, CODES[(step + worker) % len(CODES)], CODES[(step + worker - 1) % 5]
            for action, code in ((0, old), (1, new)) if step else ((1, new),):
                out.append(orjson.dumps({"workerId": f"w{worker}", "stateCode": code, "stateName": code.lower(),
                                         "systemId": "chaos", "actionTime": at, "action": action}))
                if len(out) == count:
                    return out
    return out


def send_all(url: str, bodies: list[bytes], senders: int, halfway=None) -> dict[int | str, int]:
    """Post every body from `senders` threads; how many of each answer (a status or an error name)."""
    answers: dict[int | str, int] = {}
    lock, queue = threading.Lock(), iter(enumerate(bodies))

    def sender() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while True:
                with lock:
                    item = next(queue, None)
                if item is None:
                    return
                n, body = item
                if halfway is not None and n == len(bodies) // 2:
                    threading.Thread(target=halfway, daemon=True).start()
                try:
                    answer = client.post(PATH, content=body, headers=signed(body))
                    key: int | str = answer.status_code
                    if key == 503 and answer.json().get("result") != "spooled":
                        key = "503 not spooled"
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                with lock:
                    answers[key] = answers.get(key, 0) + 1

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def drained(url: str, within: float) -> float | None:
    """Seconds until the receiver's spool is empty, None if it is not within `within`."""
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=10) as client:
        while time.monotonic() - started < within:
            if not client.get("/health").json()["spool_waiting"]:
                return time.monotonic() - started
            time.sleep(0.2)
    return None


def stored(database_url: str) -> tuple[list[str], list[tuple]]:
    with psycopg.connect(database_url) as conn:
        bodies = [r[0] for r in conn.execute("SELECT body FROM wfm.pushed_status_events WHERE error IS NULL")]
        pairs = conn.execute("""SELECT worker_id, state_code, started_at, ended_at, closed_by
                                FROM wfm.pushed_status_intervals ORDER BY 1, 2, 3""").fetchall()
    return bodies, pairs


def receiver_burst(server: str, events: int = 2000, senders: int = 8) -> Outcome:
    """The burst with a restart of PostgreSQL halfway, against a calm receiver's result."""
    outcome = Outcome("status receiver burst", events, 0, "events")
    guard = Guard(auth="hmac", secret=SECRET, rate=0)
    bodies = burst_events(events)
    with quiet(), tempfile.TemporaryDirectory(prefix="wfm-chaos-receiver-") as scratch:
        directory = Path(scratch)
        embedded = EmbeddedServer(directory)
        try:
            with fresh_database(embedded.url) as db, fresh_database(server) as calm:
                spool = directory / "spool" / "status.jsonl"
                started = time.monotonic()
                with served(create_app(db, spool, replay_every=0.3, guard=guard)) as url:
                    answers = send_all(url, bodies, senders, halfway=embedded.restart)
                    sent_in = time.monotonic() - started
                    drain = drained(url, within=120)
                with served(create_app(calm, directory / "calm-spool.jsonl", guard=guard)) as url:
                    calm_answers = send_all(url, bodies, senders)
                got, pairs = stored(db)
                expected, calm_pairs = stored(calm)
        finally:
            embedded.close()
    lost = {k: n for k, n in answers.items() if k not in (200, 503)}
    problems = [f"{n} event(s) answered {k}: lost (the sender never retries)" for k, n in lost.items()]
    if drain is None:
        problems.append("the spool did not drain within 120 s")
    if spool.exists() or spool.with_name(spool.name + ".replaying").exists():
        problems.append("a spool file is left behind")
    sent = {b.decode() for b in bodies}
    twice = len(got) - len(set(got))
    missing, extra = sent - set(got), set(got) - sent
    problems += [f"{twice} event(s) stored twice"] * bool(twice) + [f"{len(missing)} event(s) not stored"] * bool(missing)
    problems += [f"{len(extra)} event(s) stored that were never sent"] * bool(extra)
    if calm_answers != {200: events} or sorted(expected) != sorted(sent):
        problems.append(f"the calm receiver did not store every event: {calm_answers}")
    if pairs != calm_pairs:
        problems.append(f"paired intervals differ from the calm receiver's: {len(set(pairs) ^ set(calm_pairs))} row(s)")
    outcome.problems = problems
    outcome.held = events - len(missing) - twice if not problems else 0
    outcome.exact = not problems
    outcome.detail = (f"{senders} senders, {events / sent_in:.0f} events/s, 1 PostgreSQL restart, "
                      f"{answers.get(503, 0)} spooled (503), spool drained {drain or 0:.1f} s after the burst")
    return outcome


def _json(value: object) -> bytes:
    return json.dumps(value).encode()     # stdlib: integers past 64 bits, as a sender may write them


def _body_corpus() -> list[tuple[str, bytes]]:
    """Bodies that are not status events: each field damaged every way, and whole bodies."""
    good = {"workerId": "w1", "stateCode": "Work", "stateName": "work", "systemId": "chaos", "actionTime": T0,
            "action": 1}
    junk = {"null": None, "an object": {"a": [1, {"b": None}]}, "a list": [1, 2], "NUL text": "a\x00b",
            "a bool": True, "empty text": "", "huge number": 10**40, "text": "yesterday", "negative": -1,
            "whitespace": "   ", "an operator object": {"$gt": ""}, "infinity text": "inf", "NaN text": "NaN",
            "a fraction": 0.5, "minus infinity text": "-inf", "1e309 text": "1e309"}
    wrong = {  # per field, the junk that makes the event unusable (others are odd but storable)
        "workerId": ("null", "an object", "a list", "NUL text", "empty text", "a bool", "whitespace",
                     "an operator object"),
        "action": ("null", "an object", "a list", "NUL text", "empty text", "huge number", "text", "negative",
                   "infinity text", "NaN text", "a fraction", "whitespace", "a bool"),
        "actionTime": ("null", "an object", "a list", "NUL text", "empty text", "huge number", "text",
                       "infinity text", "NaN text", "minus infinity text", "1e309 text", "whitespace", "a bool"),
        "stateCode": ("an object", "a list", "NUL text", "a bool", "an operator object"),
        "stateName": ("an object", "a list", "NUL text", "a bool", "an operator object"),
        "systemId": ("an object", "a list", "NUL text", "a bool", "an operator object"),
    }
    out = [(f"{field} is {kind}", _json({**good, field: junk[kind]})) for field, kinds in wrong.items()
           for kind in kinds]
    out += [(f"{field} missing", _json({k: v for k, v in good.items() if k != field}))
            for field in ("workerId", "action", "actionTime")]
    nested = b"[" * 2000 + b'"x"' + b"]" * 2000
    out += [("empty body", b""), ("not JSON", b"workerId=1&action=1"), ("truncated JSON", _json(good)[:30]),
            ("a JSON array", _json([good])), ("a JSON string", b'"status"'), ("JSON null", b"null"),
            ("NaN time", _json(good).replace(str(T0).encode(), b"NaN")),
            ("time past year 9999", _json({**good, "actionTime": 10**12})),
            ("invalid UTF-8", b'{"workerId": "\xff\xfe", "action": 1, "actionTime": 1795000000}'),
            ("a raw NUL byte", b'{"workerId": "w\x001", "action": 1, "actionTime": 1795000000}'),
            ("nested 2000 deep", b'{"workerId": ' + nested + b', "action": 1, "actionTime": 1795000000}'),
            ("BOM and garbage", b"\xef\xbb\xbf\x00\x01\x02"), ("a JSON number", b"1795000000"),
            ("JSON true", b"true"), ("two objects", _json(good) + _json(good)), ("trailing comma", _json(good)[:-1] + b",}"),
            ("single quotes", _json(good).replace(b'"', b"'")), ("a comment", b"/* x */" + _json(good)),
            ("XML", b"<status><workerId>1</workerId></status>"), ("only whitespace", b"  \r\n\t "),
            ("UTF-16 JSON", _json(good).decode().encode("utf-16")), ("gzip bytes", b"\x1f\x8b\x08\x00" + b"\x00" * 20),
            ("form-encoded JSON", b"payload=" + _json(good))]
    return out


def bad_pushes(server: str) -> tuple[int, list[str]]:
    """Every malformed body (400, stored with its error) and refused push (413/401/429, not stored);
    a good event after each must still be stored."""
    problems: list[str] = []
    guard = Guard(max_body=8192, auth="hmac", secret=SECRET, rate=0)
    refusals = [("too large", b'{"workerId": "' + b"x" * 9000 + b'"}', {}, 413),
                ("unsigned", None, {"X-WFM-Signature": ""}, 401),
                ("signed with another secret", None, signed(b"{}", "guess"), 401),
                ("signature of another body", None, signed(b'{"workerId": "other"}'), 401),
                ("stale timestamp", None, signed(b"", at=int(time.time()) - 7200), 401),
                ("timestamp is text", None, {"X-WFM-Timestamp": "noon", "X-WFM-Signature": "v1=00"}, 401),
                ("signature is junk", None, {"X-WFM-Timestamp": str(int(time.time())), "X-WFM-Signature": "x"}, 401)]
    cases = _body_corpus()
    with quiet(), tempfile.TemporaryDirectory(prefix="wfm-chaos-pushes-") as scratch, fresh_database(server) as db:
        with served(create_app(db, Path(scratch) / "spool.jsonl", replay_every=0.2, guard=guard)) as url, \
                httpx.Client(base_url=url, timeout=30) as client:
            for n, (name, body) in enumerate(cases):
                answer = client.post(PATH, content=body, headers=signed(body))
                problems += _judged(f"body {name}", answer, 400)
                problems += _good_after(client, db, f"body {name}", n, expect_errors=n + 1)
            for n, (name, body, headers, status) in enumerate(refusals):
                body = body if body is not None else orjson.dumps({"workerId": "w1", "action": 1, "actionTime": T0})
                answer = client.post(PATH, content=body, headers={**signed(body), **headers}) \
                    if name != "unsigned" else client.post(PATH, content=body)
                problems += _judged(f"push {name}", answer, status)
                problems += _good_after(client, db, f"push {name}", len(cases) + n, expect_errors=len(cases))
            if drained(url, within=15) is None:
                problems.append("receiver: the spool holds events the bad bodies left and does not drain")
        limited = Guard(auth="none", rate=1, burst=2)
        with served(create_app(db, Path(scratch) / "spool2.jsonl", guard=limited)) as url, \
                httpx.Client(base_url=url, timeout=30) as client:
            problems += _judged("push declaring 100 MB", _declared_huge(url), 413)
            body = orjson.dumps({"workerId": "w2", "action": 1, "actionTime": T0})
            answers = [client.post(PATH, content=body) for _ in range(3)]
            problems += _judged("push over the rate", answers[2], 429)
            if not answers[2].headers.get("Retry-After", "").isdigit():
                problems.append("push over the rate: no Retry-After in seconds")
    return len(cases) + len(refusals) + 2, problems


def _declared_huge(url: str) -> httpx.Response:
    """A push whose Content-Length promises 100 MB (httpx will not send one that lies): raw socket."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100000000\r\n\r\n{{}}".encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = raw.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return httpx.Response(int(head.split()[1]), content=body)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def _judged(name: str, answer: httpx.Response, status: int) -> list[str]:
    try:
        message = answer.json().get("message", "")
    except ValueError:
        return [f"receiver {name}: answer {answer.status_code} is not JSON"]
    if answer.status_code != status:
        return [f"receiver {name}: answered {answer.status_code} ({message[:120]}), expected {status}"]
    return [] if message and "\n" not in message else [f"receiver {name}: the message is not one line: {message!r}"]


def _good_after(client: httpx.Client, db: str, name: str, n: int, expect_errors: int) -> list[str]:
    """A good event after the bad one is stored at once, and the bad one was stored (or not) as due."""
    body = orjson.dumps({"workerId": "after", "stateCode": "Work", "action": 1, "actionTime": T0 + n})
    answer = client.post(PATH, content=body, headers=signed(body))
    with psycopg.connect(db) as conn:
        errors = conn.execute("SELECT count(*) FROM wfm.pushed_status_events WHERE error IS NOT NULL").fetchone()[0]
        good = conn.execute("SELECT count(*) FROM wfm.pushed_status_events WHERE worker_id = 'after'").fetchone()[0]
    problems = [] if answer.status_code == 200 else [f"receiver {name}: the next good event got {answer.status_code}"]
    if good != n + 1:
        problems.append(f"receiver {name}: {n + 1 - good} good event(s) not stored")
    if errors != expect_errors:
        problems.append(f"receiver {name}: {errors} malformed bodies stored, expected {expect_errors}")
    return problems
