"""Secrets: distinctive values configured everywhere, then searched for everywhere.

The contact center takes OAuth2 client credentials, 1C a Basic password, the warehouse URL
carries a password, a webhook subscriber has a signing secret, and a bearer token and a Fernet
key are set too. After syncs that succeed, quarantine rows, and fail on a wrong 1C password,
and after CLI commands, every place a secret could leak to is read: Python and Prefect logs,
Prefect artifacts, every row of every `wfm` and `wfm_meta` table as text, every file under the
lake and the data dir (Parquet bytes and decoded values, Data Docs), webhook bodies, error
messages and CLI output. Then the same with several connections: a settings file naming a
second simulated site whose contact center takes a bearer token (by environment variable) and
whose 1C password is a Prefect Secret block, synced beside the first and shown by `wfm connections
list | test | status`, `wfm check` and `wfm runs`. The figure is the number of occurrences found;
it must be 0.

Personal data is scanned the same way: every SNILS the 1C simulator served (read back from
`wfm.employees`, the one place it is kept in the clear) is searched for in the lake and in every
`wfm_meta` row (the quarantine's raw records among them); the personal data key is a secret too.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pyarrow.parquet as pq

from connectors.simulator import AuthConfig

from . import Outcome
from .lab import SIM_START, fresh_database, pointed_at, simulator

SECRETS = {"cc client secret": "csec-ZEBRA-7781-ocelot", "1C password": "onec-PW-QUOKKA-5521",
           "warehouse password": "dbpw-NARWHAL-9042", "webhook secret": "whsec-AXOLOTL-3310",
           "bearer token": "tok-PANGOLIN-6677", "wrong 1C password": "bad-PW-WOMBAT-1187",
           "personal data key": "pii-KEY-TAPIR-4410",
           "2nd site cc token": "tok2-MARMOT-4410", "2nd site 1C password": "onec2-PW-TAPIR-2290"}
FERNET_KEY = "mK0V1qkqW2dXkGm6v4bq3kq0sQ2vQ9o7H1N5cQ8m3gU="


class Hooks(BaseHTTPRequestHandler):
    """A webhook receiver that keeps what it was sent."""

    bodies: list[bytes] = []

    def do_POST(self) -> None:
        Hooks.bodies.append(bytes(self.headers) + self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def secret_leaks(server: str, days: int = 1) -> Outcome:
    """Run syncs and commands with every secret set; count the secrets found anywhere."""
    outcome = Outcome("secrets", 0, 0, "places scanned")
    captured = _capture_logs()
    hooks = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    auth = AuthConfig("oauth2", client_id="wfm-chaos", client_secret=SECRETS["cc client secret"])
    onec = AuthConfig("basic", username="wfm", password=SECRETS["1C password"])
    try:
        with tempfile.TemporaryDirectory(prefix="wfm-chaos-secrets-") as scratch, \
                simulator(cc_auth=auth, onec_auth=onec) as sim, fresh_database(server) as db:
            url, lake, data = _with_password(db), Path(scratch) / "lake", Path(scratch) / "data"
            extra = {"WFM_CC_AUTH": "oauth2", "WFM_CC_CLIENT_ID": "wfm-chaos",
                     "WFM_CC_CLIENT_SECRET": SECRETS["cc client secret"], "WFM_CC_TOKEN": SECRETS["bearer token"],
                     "WFM_ONEC_PASSWORD": SECRETS["1C password"], "WFM_SECRET_KEY": FERNET_KEY,
                     "WFM_PII_KEY": SECRETS["personal data key"],
                     "WFM_DATA_DIR": str(data)}
            with pointed_at(sim, url, lake, **extra):
                texts = _exercise(sim, url, hooks.server_address[1], days)
            with pointed_at(sim, url, lake, **{**extra, "WFM_ONEC_PASSWORD": SECRETS["wrong 1C password"]}):
                texts += _exercise(sim, url, hooks.server_address[1], days, failing=True)
            second = {"cc_auth": AuthConfig("bearer", token=SECRETS["2nd site cc token"]),
                      "onec_auth": AuthConfig("basic", username="wfm", password=SECRETS["2nd site 1C password"])}
            with simulator(seed=8, **second) as sim2, \
                    pointed_at(sim, url, lake, **extra, WFM_CONFIG=_settings_file(Path(scratch), sim, sim2),
                               CC1_SECRET=SECRETS["cc client secret"], ZUP1_PASSWORD=SECRETS["1C password"],
                               CC2_TOKEN=SECRETS["2nd site cc token"]):
                texts += _exercise_connections(days)
            places = {"logs": "\n".join(captured.lines),
                      "webhook bodies": b"\n".join(Hooks.bodies).decode(errors="replace"),
                      "errors and CLI output": "\n".join(texts), "Prefect logs and artifacts": _prefect_texts(),
                      "database rows": _database_text(db), "lake and data dir": _files_text(Path(scratch))}
            snils = _snils(db)
            personal = {"lake": _files_text(lake), "wfm_meta rows": _database_text(db, ("wfm_meta",))}
    finally:
        hooks.shutdown()
        captured.close()
    outcome.tried = len(places)
    for place, text in places.items():
        found = [name for name, value in SECRETS.items() if value in text]
        outcome.leaks += sum(text.count(SECRETS[name]) for name in found)
        outcome.problems += [f"{name} found in {place}" for name in found]
        outcome.held += not found
    for place, text in personal.items():
        found = [sn for sn in snils if sn in text]
        outcome.tried += 1
        outcome.leaks += sum(text.count(sn) for sn in found)
        outcome.problems += [f"{len(found)} SNILS in the clear in {place}"] if found else []
        outcome.held += not found
    outcome.detail = (f"{len(SECRETS)} secrets and {len(snils)} SNILS, "
                      f"{sum(len(t) for t in [*places.values(), *personal.values()]):,} characters scanned")
    outcome.exact = not outcome.problems
    return outcome


def _with_password(url: str) -> str:
    """The database URL with the distinctive password (trust authentication ignores it)."""
    parts = urlsplit(url)
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user.split(':')[0]}:{SECRETS['warehouse password']}@{host}"))


def _exercise(sim, url: str, hook_port: int, days: int, failing: bool = False) -> list[str]:
    """Syncs (with damaged records, so the quarantine fills), a webhook, CLI commands; their messages."""
    from typer.testing import CliRunner

    from engine.push import webhooks
    from flows.sync import sync
    from wfm.cli import app

    texts = []
    if not failing:
        with psycopg.connect(url) as conn:
            webhooks.add_subscriber(conn, f"http://127.0.0.1:{hook_port}/hook", list(webhooks.EVENTS),
                                    secret=SECRETS["webhook secret"])
    sim.set_faults("corrupt=0.05")
    last = SIM_START + dt.timedelta(days=days - 1)
    try:
        sync(["cc_personnel", "agent_logins", "employees"], SIM_START, last, force=True)
    except Exception as exc:
        texts.append(f"{type(exc).__name__}: {exc}")
    finally:
        sim.set_faults("")
    for argv in (["check"], ["runs"], ["quarantine"], ["webhooks", "list"], ["sync", "employees", "--start",
                                                                           SIM_START.isoformat()]):
        result = CliRunner().invoke(app, argv)
        texts += [result.stdout, result.stderr, repr(result.exception)]
    return texts


def _settings_file(scratch: Path, sim, sim2) -> str:
    """Two sites' connections, every secret by reference (variables, one Prefect Secret block)."""
    path = scratch / "wfm.toml"
    path.write_text(f"""
[connections.cc-one]
system = "contact_center"
url = "{sim.cc_url}"
client_id = "wfm-chaos"
client_secret = {{ env = "CC1_SECRET" }}
[connections.zup-one]
system = "onec"
url = "{sim.onec_url}"
username = "wfm"
password = {{ env = "ZUP1_PASSWORD" }}
[connections.cc-two]
system = "contact_center"
url = "{sim2.cc_url}"
token = {{ env = "CC2_TOKEN" }}
[connections.zup-two]
system = "onec"
url = "{sim2.onec_url}"
username = "wfm"
password = {{ block = "chaos-zup-two-password" }}
[sites.one]
contact_center = "cc-one"
onec = "zup-one"
[sites.two]
contact_center = "cc-two"
onec = "zup-two"
""", encoding="utf-8")
    return str(path)


def _exercise_connections(days: int) -> list[str]:
    """Syncs of both sites and the connection commands; their messages."""
    from prefect.blocks.system import Secret
    from typer.testing import CliRunner

    from flows.sync import sync
    from wfm.cli import app

    Secret(value=SECRETS["2nd site 1C password"]).save("chaos-zup-two-password", overwrite=True)
    texts = []
    try:
        sync(["cc_personnel", "agent_logins", "employees", "agent_employee_map"], SIM_START,
             SIM_START + dt.timedelta(days=days - 1), force=True)
    except Exception as exc:
        texts.append(f"{type(exc).__name__}: {exc}")
    for argv in (["connections", "list"], ["connections", "test", "cc-two"], ["connections", "test", "zup-two"],
                 ["connections", "status", "cc-one"], ["check"], ["runs"]):
        result = CliRunner().invoke(app, argv)
        texts += [result.stdout, result.stderr, repr(result.exception)]
    return texts


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))
        self.loggers = [logging.getLogger(), logging.getLogger("prefect"), logging.getLogger("httpx")]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.addHandler(self)
            lg.setLevel(logging.DEBUG)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception as exc:   # a record that cannot format is still scanned by its parts
            self.lines.append(f"{record.msg!r} {record.args!r} {exc}")

    def close(self) -> None:
        for lg, level in zip(self.loggers, self.levels):
            lg.removeHandler(self)
            lg.setLevel(level)
        super().close()


def _capture_logs() -> _Captured:
    return _Captured()


def _prefect_texts() -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        logs = client.read_logs(limit=200)
        artifacts = client.read_artifacts(limit=200)
        runs = client.read_flow_runs(limit=200)
    return "\n".join([*(log.message for log in logs), *(str(a.data) for a in artifacts),
                      *(f"{r.parameters} {r.state and r.state.message}" for r in runs)])


def _snils(url: str) -> list[str]:
    """The SNILS the source served, as the warehouse keeps them (in the clear)."""
    with psycopg.connect(url) as conn:
        return [sn for (sn,) in conn.execute("SELECT DISTINCT sn FROM wfm.employees WHERE sn <> ''")]


def _database_text(url: str, schemas: tuple[str, ...] = ("wfm", "wfm_meta")) -> str:
    with psycopg.connect(url) as conn:
        names = conn.execute("""SELECT table_schema, table_name FROM information_schema.tables
                                WHERE table_schema = ANY(%s)""", (list(schemas),)).fetchall()
        return "\n".join(str(row[0]) for schema, table in names
                         for row in conn.execute(f'SELECT row_to_json(t)::text FROM "{schema}"."{table}" t'))


def _files_text(root: Path) -> str:
    parts = []
    for path in (p for p in root.rglob("*") if p.is_file()):
        parts.append(path.read_bytes().decode(errors="replace"))
        if path.suffix == ".parquet":
            parts.append(str(pq.read_table(path).to_pylist()))
    return "\n".join(parts)

