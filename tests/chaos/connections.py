"""Connections: several simulated sites with colliding ids in one warehouse and one lake, one
connection at a time down.

Every connection (a site's contact center `cc-<site>`, its 1C base `zup-<site>`) is served by a
simulator of its own — the site's seeded world, so a site's two simulators hold the same people —
each with a distinctive secret (a bearer token, a Basic password) given by reference. A first
pass lands every connection; then each pass moves the simulated clocks on and takes one
connection down, in turn: its simulator stopped (connection refused) or answering 500 to every
request (past the retry cap). Each such pass checks:

- the sync fails with one line that names the down connection and no other;
- every other connection's runs of the pass landed, and the down one's watermarks did not move;
- the next pass, with it back, catches it up from its own watermark (they move on).

Then each site is landed alone into a database of its own at the final clock: every `wfm.*`
table must equal the union of those landings, row for row and count for count (nothing lost,
nothing merged across connections whose ids collide), the lake must equal PostgreSQL, and no
connection's secret may appear in the logs, error messages, Prefect logs and artifacts, the
warehouse's rows or the files under the lake.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
from contextlib import ExitStack
from pathlib import Path

import psycopg

from connectors.simulator import AuthConfig, ServerConfig, start_simulator
from connectors.simulator.fleet import fleet_configs
from connectors.simulator.world import SimConfig

from . import Outcome
from .compare import lake_problems, rows, tables
from .lab import environment, fresh_database
from .secret_leaks import _capture_logs, _database_text, _files_text, _prefect_texts

UTC = dt.timezone.utc
SITES = ("north", "south", "east")
SYSTEMS = ("cc", "zup")
STREAMS = ["cc_agents", "agent_status_intervals", "agent_logins", "employees", "timesheet_days",
           "agent_employee_map"]
MODES = ("refused", "500s")
STEP = dt.timedelta(minutes=40)        # how far the sources' clocks move between passes


class Sources:
    """One simulator per connection, started, stopped and faulted alone; same port when back."""

    def __init__(self, stack: ExitStack, sites: tuple[str, ...], clock: dt.datetime):
        today = dt.datetime.now(UTC).date()
        base = ServerConfig(sim=SimConfig(seed=31, agents=6, services=1, groups_per_service=2,
                                          start=today - dt.timedelta(days=2), days=3))
        self.secrets = {f"{system}-{site}": f"{system}-{site}-SECRET-{i:02d}-{site[::-1]}"
                        for i, (site, system) in enumerate((s, y) for s in sites for y in SYSTEMS)}
        self.configs = {}
        for site, config in fleet_configs(list(sites), base).items():
            auth = {"cc_auth": AuthConfig("bearer", token=self.secrets[f"cc-{site}"]),
                    "onec_auth": AuthConfig("basic", username="wfm", password=self.secrets[f"zup-{site}"])}
            self.configs.update({f"{system}-{site}": dataclasses.replace(config, **auth) for system in SYSTEMS})
        self.clock = clock
        self.running = {name: start_simulator(config) for name, config in self.configs.items()}
        for sim in self.running.values():
            sim.set_clock(clock)
        stack.callback(lambda: [sim.stop() for sim in self.running.values()])

    @property
    def names(self) -> list[str]:
        return list(self.running)

    def settings(self, path: Path, sites: tuple[str, ...]) -> Path:
        """The settings file of these sites' connections, secrets by environment variable."""
        text = "".join(f"""
[connections.cc-{site}]
system = "contact_center"
url = "{self.running[f'cc-{site}'].cc_url}"
token = {{ env = "{_variable(f'cc-{site}')}" }}
max_attempts = 3

[connections.zup-{site}]
system = "onec"
url = "{self.running[f'zup-{site}'].onec_url}"
username = "wfm"
password = {{ env = "{_variable(f'zup-{site}')}" }}
max_attempts = 3

[sites.{site}]
contact_center = "cc-{site}"
onec = "zup-{site}"
""" for site in sites)
        path.write_text(text, encoding="utf-8")
        return path

    def variables(self) -> dict[str, str | None]:
        return {_variable(name): secret for name, secret in self.secrets.items()}

    def move_clocks(self, clock: dt.datetime) -> None:
        self.clock = clock
        for sim in self.running.values():
            sim.set_clock(clock)

    def take_down(self, name: str, mode: str) -> None:
        if mode == "refused":
            self.running[name].stop()
        else:
            self.running[name].set_faults("500=1")

    def bring_back(self, name: str, mode: str) -> None:
        if mode == "refused":
            port = self.running[name].port
            self.running[name] = start_simulator(dataclasses.replace(self.configs[name], port=port))
            self.running[name].set_clock(self.clock)
        else:
            self.running[name].set_faults("")


def _variable(connection: str) -> str:
    return f"CHAOS_{connection.upper().replace('-', '_')}_SECRET"


def connections_down(server: str, passes: int = 4, sites: int = 2) -> Outcome:
    """`passes` outages over `sites` sites' connections in turn, then the union and secrets checks."""
    chosen = SITES[:sites]
    outcome = Outcome(f"connections ({len(chosen) * len(SYSTEMS)}, one down)", 0, 0, "outages")
    captured = _capture_logs()
    now = dt.datetime.now(UTC).replace(microsecond=0)
    with ExitStack() as stack:
        stack.callback(captured.close)
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wfm-chaos-connections-")))
        sources = Sources(stack, chosen, now - STEP * (passes + 1))
        shared = stack.enter_context(fresh_database(server))
        lake, texts = scratch / "lake", []
        every = sources.settings(scratch / "wfm.toml", chosen)
        with environment({**sources.variables(), "WFM_DATABASE_URL": shared, "WFM_LAKE_PATH": str(lake),
                          "WFM_CONFIG": str(every), "WFM_USE_BLOCKS": None}):
            outcome.problems += [f"first pass: {p}" for p in _landed_all(texts)]
            for n in range(passes):
                name, mode = sources.names[n % len(sources.names)], MODES[(n + n // len(sources.names)) % 2]
                sources.move_clocks(now - STEP * (passes - n))
                found = _outage(sources, shared, name, mode, texts)
                outcome.tried += 1
                outcome.held += not found
                outcome.problems += [f"{name} {mode}: {p}" for p in found]
        references = []
        for site in chosen:
            references.append(stack.enter_context(fresh_database(server)))
            with environment({**sources.variables(), "WFM_DATABASE_URL": references[-1],
                              "WFM_LAKE_PATH": str(scratch / f"lake-{site}"),
                              "WFM_CONFIG": str(sources.settings(scratch / f"{site}.toml", (site,))),
                              "WFM_USE_BLOCKS": None}):
                outcome.problems += [f"{site} alone: {p}" for p in _landed_all(texts)]
        compared = _union_problems(shared, references)
        outcome.problems += compared[0] + lake_problems(shared, lake)
        places = {"logs": "\n".join(captured.lines), "errors": "\n".join(texts), "Prefect": _prefect_texts(),
                  "database rows": _database_text(shared), "lake": _files_text(scratch)}
        for place, text in places.items():
            found = [name for name, secret in sources.secrets.items() if secret in text]
            outcome.leaks += sum(text.count(sources.secrets[name]) for name in found)
            outcome.problems += [f"the secret of {name} found in {place}" for name in found]
    outcome.exact = not outcome.problems
    outcome.detail = (f"{len(chosen)} sites, {len(sources.names)} connections, {passes} outage pass(es); "
                      f"{compared[1]:,} rows = the union of {len(chosen)} single-site landings; "
                      f"{sum(len(t) for t in places.values()):,} characters scanned for {len(sources.secrets)} secrets")
    return outcome


def _sync(texts: list[str]) -> str | None:
    """One incremental sync of every connection; the failure's message, or None."""
    from engine.landing.window import close_clients
    from flows.sync import SyncFailed, sync

    try:
        sync(STREAMS)
        return None
    except SyncFailed as exc:
        texts.append(str(exc))
        return str(exc)
    finally:
        close_clients()


def _landed_all(texts: list[str]) -> list[str]:
    failed = _sync(texts)
    return [f"the sync failed with every connection up: {failed}"] if failed else []


def _outage(sources: Sources, db: str, name: str, mode: str, texts: list[str]) -> list[str]:
    """One pass with `name` down, then back: the checks of the module's docstring."""
    before, since = _watermarks(db), _now(db)
    sources.take_down(name, mode)
    try:
        message = _sync(texts)
    finally:
        sources.bring_back(name, mode)
    found = []
    others = [n for n in sources.names if n != name]
    if message is None:
        found.append("the sync did not fail")
    else:
        found += ["the error is not one line"] if "\n" in message.strip() else []
        found += [] if name in message else [f"the error does not name it: {message[:200]}"]
        found += [f"the error names {o} too" for o in others if o in message]
    runs = _runs(db, since)
    found += [f"{source} {stream}: {status} while it was up" for stream, source, status, _ in runs
              if source in others and status != "completed"]
    found += [f"{source} ran no stream" for source in others if source not in {r[1] for r in runs}]
    found += [f"its {stream} run {status}" for stream, source, status, _ in runs
              if source == name and status not in ("failed", "deferred")]     # deferred: its breaker opened
    down = _watermarks(db)
    found += [f"its watermark of {stream} moved while it was down" for (stream, source), value in down.items()
              if source == name and before.get((stream, source)) != value]
    since = _now(db)
    if _sync(texts) is not None:
        found.append("the pass after it came back failed")
    after = _watermarks(db)
    for stream, source, _status, start in _runs(db, since):
        if source == name and start != down.get((stream, source)):
            found.append(f"its {stream} run started from {start}, not from its watermark {down.get((stream, source))}")
    found += [f"its watermark of {stream} did not catch up" for (stream, source), value in down.items()
              if source == name and (after.get((stream, source)) or value) <= value]
    return found


def _watermarks(db: str) -> dict[tuple[str, str], dt.datetime]:
    with psycopg.connect(db) as conn:
        return {(stream, source): value for stream, source, value in
                conn.execute("SELECT stream, source, value FROM wfm_meta.watermarks WHERE value IS NOT NULL")}


def _now(db: str) -> dt.datetime:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT clock_timestamp()").fetchone()[0]


def _runs(db: str, since: dt.datetime) -> list[tuple[str, str, str, dt.datetime | None]]:
    """(stream, source, status, watermark before) of the runs started since."""
    with psycopg.connect(db) as conn:
        return conn.execute("""SELECT stream, source, status, watermark_before FROM wfm_meta.sync_runs
                               WHERE started_at >= %s ORDER BY started_at""", (since,)).fetchall()


def _union_problems(shared: str, references: list[str]) -> tuple[list[str], int]:
    """Tables of `shared` that are not the union of the references' (with their counts); rows compared."""
    problems, compared = [], 0
    for table in sorted(set(tables(shared)) | {t for r in references for t in tables(r)}):
        together = rows(shared, table) if table in tables(shared) else []
        parts = [rows(r, table) if table in tables(r) else [] for r in references]
        union = sorted((row for part in parts for row in part), key=repr)
        compared += len(together)
        if together != union:
            lost, extra = set(union) - set(together), set(together) - set(union)
            problems.append(f"{table}: {len(together)} row(s), the single-site landings hold {len(union)} "
                            f"({len(lost)} lost, {len(extra)} not theirs), e.g. {next(iter(lost or extra), None)!r:.300}")
    return problems, compared
