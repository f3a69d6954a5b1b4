"""Signed webhooks, delivered to a real local HTTP receiver that checks the signatures."""

from __future__ import annotations

import os
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import psycopg
import pytest
from typer.testing import CliRunner

from engine.push import webhooks
from engine.push.webhooks import check_signature, deliver_event, sign, verify_signature
from flows.push import push_schedules
from flows.sync import SyncFailed, sync_stream
from wfm.cli import app

from .test_push_schedules import REGULAR, SINCE, day_shift, land_employees, plan

pytestmark = pytest.mark.usefixtures("prefect_harness")
SECRET = "whsec_test-secret"


class Receiver:
    """A subscriber's endpoint: answers from a script (then 200), keeps every request and its verdict."""

    def __init__(self, secret: str = SECRET, statuses: tuple[int, ...] = ()):
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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


def deliveries(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT attempt, outcome, status_code FROM wfm_meta.webhook_deliveries "
                            "ORDER BY id").fetchall()


def test_signatures_accept_the_real_body_and_reject_tampering_and_stale_times(database_url, receiver):
    subscribe(database_url, receiver.url, ["sync.completed"])
    attempts = deliver_event(database_url, "sync.completed", {"stream": "agent_logins", "rows": 12})
    assert [(a.outcome, a.status_code) for a in attempts] == [("delivered", 200)]
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


def test_retries_back_off_and_every_attempt_is_logged(database_url):
    flaky = Receiver(statuses=(503, 503))
    refusing = Receiver(statuses=(400,))
    try:
        subscribe(database_url, flaky.url, ["sync.failed"])
        subscribe(database_url, refusing.url, ["sync.failed"])
        attempts = deliver_event(database_url, "sync.failed", {"stream": "agent_calls"})
        gaps = [b["at"] - a["at"] for a, b in zip(flaky.requests, flaky.requests[1:])]
    finally:
        flaky.close()
        refusing.close()
    assert sorted((a.subscriber_id, a.attempt, a.outcome) for a in attempts) == [
        (1, 1, "retrying"), (1, 2, "retrying"), (1, 3, "delivered"), (2, 1, "failed")]   # a 400 is not retried
    assert 1.0 <= gaps[0] < 1.9 and 2.0 <= gaps[1] < 3.5                                # 1 s, then 2 s
    assert sorted(deliveries(database_url)) == [(1, "failed", 400), (1, "retrying", 503), (2, "retrying", 503),
                                                (3, "delivered", 200)]
    assert len({r["headers"]["x-wfm-delivery"] for r in flaky.requests}) == 1           # one event, re-signed


def test_an_unreachable_subscriber_gets_four_attempts(database_url):
    subscribe(database_url, "http://127.0.0.1:9/closed", ["sync.failed"])
    attempts = deliver_event(database_url, "sync.failed", {}, first_wait=0.01)
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "retrying"), (2, "retrying"), (3, "retrying"),
                                                          (4, "failed")]
    assert all(a.error == "ConnectError" for a in attempts)


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
    assert tested.exit_code == 0 and "attempt 1: delivered 200" in tested.output and receiver.requests[0]["valid"]
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


def test_sync_and_push_flows_emit_their_events(wfm_env, database_url, receiver):
    subscribe(database_url, receiver.url, list(webhooks.EVENTS))
    sync_stream("cc_services")
    wfm_env.set_faults("corrupt=0.3")               # ended_at before started_at: the gate holds the window
    day = wfm_env.simulation.world.config.start
    with pytest.raises(SyncFailed):
        sync_stream("agent_status_intervals", day, day, threshold=0.0)
    wfm_env.set_faults("")
    land_employees(wfm_env, database_url)
    plan(database_url, [day_shift(wfm_env, REGULAR, "2026-10-20")])
    push_schedules(SINCE)
    kinds = [(e["type"], e["data"].get("stream") or e["data"].get("period")) for e in receiver.events()]
    assert kinds == [("sync.completed", "cc_services"), ("sync.failed", "agent_status_intervals"),
                     ("quality.gate_failed", "agent_status_intervals"), ("push.refused", "2026-10")]
    assert all(r["valid"] for r in receiver.requests)
    assert "Past period" in receiver.events()[-1]["data"]["message"]
    assert receiver.events()[2]["data"]["held"] and receiver.events()[1]["data"]["windows_held"] >= 1


def test_a_failing_subscriber_never_fails_the_sync(wfm_env, database_url, monkeypatch):
    monkeypatch.setattr(webhooks, "FIRST_WAIT", 0.01)
    subscribe(database_url, "http://127.0.0.1:9/closed", ["sync.completed"])
    assert sync_stream("cc_services")["status"] == "completed"
    assert [o for _, o, _ in deliveries(database_url)] == ["retrying", "retrying", "retrying", "failed"]


def test_a_secret_can_live_in_a_prefect_secret_block(database_url, receiver):
    from prefect.blocks.system import Secret

    Secret(value=SECRET).save("wfm-webhook-test", overwrite=True)
    with psycopg.connect(database_url, autocommit=True) as conn:
        _, generated = webhooks.add_subscriber(conn, receiver.url, ["sync.completed"], secret_block="wfm-webhook-test")
        assert generated is None and webhooks.list_subscribers(conn)[0]["secret"] == "block:wfm-webhook-test"
    attempts = deliver_event(database_url, "sync.completed", {"stream": "cc_groups"})
    assert [a.outcome for a in attempts] == ["delivered"] and receiver.requests[0]["valid"]
