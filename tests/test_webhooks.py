"""Signed webhooks through the durable outbox, delivered to a real local HTTP receiver that checks
the signatures."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import psycopg
import pytest
from typer.testing import CliRunner

from connectors.http import RetryPolicy
from engine.push import webhook_outbox, webhooks
from engine.push.webhook_outbox import deliver_due
from engine.push.webhooks import check_signature, sign, verify_signature
from flows.push import push_schedules
from flows.sync import SyncFailed, sync_stream
from flows.webhooks import deliver_webhooks
from wfm.cli import app

from .test_push_schedules import DISMISSED, NEW_HIRE, REGULAR, SINCE, day_shift, land_employees, plan

pytestmark = pytest.mark.usefixtures("prefect_harness")
SECRET = "whsec_test-secret"


class Receiver:
    """A subscriber's endpoint: answers from a script (then 200), keeps every request and its verdict."""

    def __init__(self, secret: str = SECRET, statuses: tuple[int, ...] = (), port: int = 0):
        self.secret, self.script, self.requests = secret, list(statuses), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                valid = verify_signature(outer.secret, headers["x-wfm-timestamp"], body, headers["x-wfm-signature"])
                outer.requests.append({"at": time.monotonic(), "headers": headers, "body": body, "valid": valid})
                status = outer.script.pop(0) if outer.script else (200 if valid else 401)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/wfm"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [orjson.loads(r["body"]) for r in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.close()


def subscribe(database_url: str, url: str, events: list[str], secret: str = SECRET) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return webhooks.add_subscriber(conn, url, events, secret)[0]


FAST = RetryPolicy(attempts=3, initial_wait=0.05, max_wait=0.1, jitter=0.0)


class Hanging:
    """A subscriber that takes the connection and never answers (the ~47 s per event of inline delivery)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/wfm"

    def connections(self) -> int:
        """Accept what the kernel queued and count it; the requests are never read."""
        self.sock.setblocking(False)
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    def close(self):
        self.sock.close()


def enqueue(database_url: str, event_type: str, data: dict):
    with psycopg.connect(database_url, autocommit=True) as conn:
        return webhook_outbox.enqueue(conn, event_type, data)


def outbox(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("""SELECT e.event_type, o.subscriber_id, o.state, o.passes FROM wfm_meta.webhook_outbox o
                               JOIN wfm_meta.webhook_events e USING (event_id) ORDER BY o.seq
                               """).fetchall()


def backoff_passes(database_url: str) -> None:
    """The time between passes goes by (the row's lease or backoff ends)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE wfm_meta.webhook_outbox SET next_attempt_at = now() WHERE state = 'pending'")


def deliveries(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT attempt, outcome, status_code FROM wfm_meta.webhook_deliveries "
                            "ORDER BY id").fetchall()


def test_signatures_accept_the_real_body_and_reject_tampering_and_stale_times(database_url, receiver):
    subscribe(database_url, receiver.url, ["sync.completed"])
    enqueue(database_url, "sync.completed", {"stream": "agent_logins", "rows": 12})
    assert receiver.requests == []                                # queued, not sent by the one who raised it
    tally = deliver_due(database_url)
    assert [(o, s) for _, o, s, _ in tally.outcomes] == [("delivered", 200)]
    (request,) = receiver.requests
    body, ts, sig = request["body"], request["headers"]["x-wfm-timestamp"], request["headers"]["x-wfm-signature"]
    assert request["valid"] and sig.startswith("v1=") and request["headers"]["x-wfm-event"] == "sync.completed"
    assert orjson.loads(body)["data"] == {"stream": "agent_logins", "rows": 12}
    tampered = body.replace(b'"rows":12', b'"rows":13')
    assert not verify_signature(SECRET, ts, tampered, sig)
    assert "does not match" in check_signature(SECRET, ts, tampered, sig)
    assert not verify_signature("whsec_other", ts, body, sig)
    stale = int(ts) - 301
    assert not verify_signature(SECRET, stale, body, sign(SECRET, stale, body))
    assert "stale" in check_signature(SECRET, stale, body, sign(SECRET, stale, body))
    assert verify_signature(SECRET, int(ts) - 200, body, sign(SECRET, int(ts) - 200, body))
    assert deliver_due(database_url).outcomes == [] and len(receiver.requests) == 1   # delivered once


def test_retries_follow_the_one_policy_and_a_refusal_is_final(database_url):
    flaky = Receiver(statuses=(503, 503))
    refusing = Receiver(statuses=(400,))
    try:
        subscribe(database_url, flaky.url, ["sync.failed"])
        subscribe(database_url, refusing.url, ["sync.failed"])
        enqueue(database_url, "sync.failed", {"stream": "agent_calls"})
        tally = deliver_due(database_url, policy=FAST)
    finally:
        flaky.close()
        refusing.close()
    assert sorted((sub, outcome, status) for sub, outcome, status, _ in tally.outcomes) == [
        (1, "delivered", 200), (2, "failed", 400)]                                       # a 400 is not retried
    assert len(flaky.requests) == 3 and len(refusing.requests) == 1
    assert len({r["headers"]["x-wfm-delivery"] for r in flaky.requests}) == 1           # one event, re-signed
    assert sorted(deliveries(database_url)) == [(1, "delivered", 200), (1, "failed", 400)]
    assert [s for *_, s, _ in outbox(database_url)] == ["delivered", "failed"]


def test_an_unreachable_subscriber_is_retried_in_later_passes_then_given_up(database_url, receiver):
    subscribe(database_url, "http://127.0.0.1:9/closed", ["sync.failed"])
    subscribe(database_url, receiver.url, ["sync.failed"])
    enqueue(database_url, "sync.failed", {"n": 1})
    enqueue(database_url, "sync.failed", {"n": 2})
    first = deliver_due(database_url, policy=FAST)
    # the dead subscriber is tried once per pass, its second event waits; the healthy one gets both
    assert sorted((s, o) for s, o, *_ in first.outcomes) == [(1, "retrying"), (2, "delivered"), (2, "delivered")]
    assert all("ConnectError" in e for s, o, _, e in first.outcomes if s == 1)
    assert deliver_due(database_url, policy=FAST).outcomes == []           # backing off: nothing due yet
    for _ in range(2 * webhook_outbox.MAX_PASSES):           # each event gets its own passes
        backoff_passes(database_url)
        deliver_due(database_url, policy=FAST)
    assert [(s, state) for _, s, state, _ in outbox(database_url) if s == 1] == [(1, "failed"), (1, "failed")]
    assert len(receiver.requests) == 2


def test_a_delivery_cut_short_by_a_crash_is_delivered_after_the_restart(database_url, receiver):
    subscribe(database_url, receiver.url, ["sync.completed"])
    enqueue(database_url, "sync.completed", {"stream": "cc_groups"})
    with psycopg.connect(database_url, autocommit=True) as conn:     # claimed, then the process dies
        assert webhook_outbox._claim(conn, set(), False, None) is not None
    assert deliver_due(database_url).outcomes == [] and receiver.requests == []   # leased to the dead process
    backoff_passes(database_url)                                                  # ... until the lease ends
    assert [o for _, o, *_ in deliver_due(database_url).outcomes] == ["delivered"]
    assert len(receiver.requests) == 1 and outbox(database_url)[0][2:] == ("delivered", 2)


def test_secrets_are_encrypted_at_rest_and_never_listed(database_url, receiver, monkeypatch, tmp_path):
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    runner = CliRunner()
    added = runner.invoke(app, ["webhooks", "add", receiver.url, "--events", "push.refused,sync.failed"])
    assert added.exit_code == 0, added.output
    secret = added.output.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and len(secret) > 40
    key_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT secret_ciphertext FROM wfm_meta.webhook_subscribers").fetchone()[0]
    assert secret not in stored and webhooks.subscriber_secret(stored, None) == secret
    listed = runner.invoke(app, ["webhooks", "list"], env={"COLUMNS": "250"}).output
    assert receiver.url in listed and "encrypted" in listed and secret not in listed
    receiver.secret = secret
    tested = runner.invoke(app, ["webhooks", "test", "1"])
    assert tested.exit_code == 0 and "delivered 200" in tested.output and receiver.requests[0]["valid"]
    request = receiver.requests[0]
    verify = ["webhooks", "verify", "--secret", secret, "--timestamp", request["headers"]["x-wfm-timestamp"],
              "--signature", request["headers"]["x-wfm-signature"]]
    assert runner.invoke(app, verify, input=request["body"]).output.strip() == "signature valid"
    rejected = runner.invoke(app, verify, input=request["body"] + b" ")
    assert rejected.exit_code == 1 and "signature rejected" in rejected.output
    unknown = runner.invoke(app, ["webhooks", "add", receiver.url, "--events", "sync.exploded"])
    assert unknown.exit_code == 1 and "unknown event type(s) sync.exploded" in unknown.output
    assert runner.invoke(app, ["webhooks", "remove", "1"]).exit_code == 0
    assert "no webhook subscriber 1" in runner.invoke(app, ["webhooks", "remove", "1"]).output


def test_sync_and_push_flows_emit_their_events_and_a_refusal_burst_is_one(wfm_env, database_url, receiver):
    subscribe(database_url, receiver.url, list(webhooks.EVENTS))
    completed = sync_stream("cc_services")
    wfm_env.set_faults("corrupt=0.3")               # ended_at before started_at: the gate holds the window
    day = wfm_env.simulation.world.config.start
    with pytest.raises(SyncFailed):
        sync_stream("agent_status_intervals", day, day, threshold=0.0)
    wfm_env.set_faults("")
    land_employees(wfm_env, database_url)
    plan(database_url, [day_shift(wfm_env, who, "2026-10-20") for who in (REGULAR, NEW_HIRE, DISMISSED)])
    push_schedules(SINCE)                           # three past-period refusals: one event
    kinds = [(e["type"], e["data"].get("stream") or e["data"].get("kind")) for e in receiver.events()]
    assert kinds == [("sync.completed", "cc_services"), ("sync.failed", "agent_status_intervals"),
                     ("quality.gate_failed", "agent_status_intervals"), ("push.refused", "schedule")]
    assert all(r["valid"] for r in receiver.requests)
    refused = receiver.events()[-1]["data"]
    assert refused["count"] == len(refused["refusals"]) >= 2 and refused["periods"] == ["2026-10"]
    assert all("Past period" in r["message"] and r["site"] == "default" for r in refused["refusals"])
    assert refused["sites"] == ["default"]
    assert receiver.events()[2]["data"]["held"] and receiver.events()[1]["data"]["windows_held"] >= 1
    assert receiver.events()[0]["data"]["run_id"] == str(completed["run_id"])
    push_schedules(SINCE, retry_refused=True)       # refused again: a new summary; nothing told twice
    assert [e["type"] for e in receiver.events()].count("push.refused") == 2


def test_a_dead_subscriber_costs_a_sync_nothing_and_hears_once_it_is_back(wfm_env, database_url):
    def timed() -> float:
        started = time.perf_counter()
        assert sync_stream("cc_services")["status"] == "completed"
        return time.perf_counter() - started

    timed()                                          # warm: imports, tables
    alone = min(timed(), timed())
    dead = Hanging()
    subscribe(database_url, dead.url, ["sync.completed"])
    first = timed()                                  # the first event: one bounded try after the run
    assert dead.connections() == 1
    later = [timed(), timed()]                       # a failing subscriber is not tried after a run at all
    assert dead.connections() == 0
    with psycopg.connect(database_url) as conn:     # the one try after the first run kept to its budget
        (tried,) = conn.execute("SELECT duration_ms FROM wfm_meta.webhook_deliveries").fetchall()
    assert tried[0] <= webhook_outbox.INLINE_SECONDS * 1000 + 500, tried
    assert first > alone and min(later) < 1.5 * alone + 0.5, (alone, first, later)   # later runs: unchanged
    assert [(s, p) for _, _, s, p in outbox(database_url)] == [("pending", 1), ("pending", 0), ("pending", 0)]
    port = dead.port
    dead.close()
    back = Receiver(port=port)                      # the subscriber is back, at the same address
    try:
        backoff_passes(database_url)
        assert deliver_webhooks() == {"delivered": 3, "retrying": 0, "failed": 0}
        assert deliver_webhooks()["delivered"] == 0
        events = back.events()
    finally:
        back.close()
    assert [e["type"] for e in events] == ["sync.completed"] * 3 and len({e["id"] for e in events}) == 3
    assert all(r["valid"] for r in back.requests)


def test_a_secret_can_live_in_a_prefect_secret_block(database_url, receiver):
    from prefect.blocks.system import Secret

    Secret(value=SECRET).save("wfm-webhook-test", overwrite=True)
    with psycopg.connect(database_url, autocommit=True) as conn:
        _, generated = webhooks.add_subscriber(conn, receiver.url, ["sync.completed"], secret_block="wfm-webhook-test")
        assert generated is None and webhooks.list_subscribers(conn)[0]["secret"] == "block:wfm-webhook-test"
    enqueue(database_url, "sync.completed", {"stream": "cc_groups"})
    assert [o for _, o, *_ in deliver_due(database_url).outcomes] == ["delivered"] and receiver.requests[0]["valid"]


def test_an_older_webhook_schema_is_upgraded_in_place(database_url, receiver):
    with psycopg.connect(database_url, autocommit=True) as conn:   # the tables as they were before the outbox
        conn.execute(webhooks.DDL.split("CREATE TABLE IF NOT EXISTS wfm_meta.webhook_outbox")[0])
        conn.execute("INSERT INTO wfm_meta.webhook_events (event_id, event_type, body) VALUES "
                     "(gen_random_uuid(), 'sync.completed', '{\"old\": true}')")
    subscribe(database_url, receiver.url, ["sync.completed"])
    enqueue(database_url, "sync.completed", {"stream": "cc_groups"})
    assert deliver_due(database_url).delivered == 1
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM wfm_meta.webhook_events").fetchone()[0] == 2
