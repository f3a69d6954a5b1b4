"""Bad input: malformed source records, CLI arguments, flow parameters, files and status pushes.

Each input is handled when it ends in a clear one-line error or a quarantine entry, never in a
traceback to the user, and never costs a valid row. Record parsers get property-based inputs
as well (`tests/test_chaos_input.py`, hypothesis).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

from connectors import contact_center as cc
from connectors.errors import SourceError
from connectors.streams import Window
from engine.paths import PROJECT_ROOT

from . import Outcome
from .bad_files import file_corpus
from .flow_parameters import flow_parameters
from .lab import SIM_START, fresh_database, pointed_at, simulator
from .payloads import corpus, damaged, parse, real_answer
from .receiver_load import bad_pushes

UTC = dt.timezone.utc
STREAM = cc.AGENT_STATUS_INTERVALS


def bad_input(server: str, real_processes: int = 3, flow_every: int = 1) -> Outcome:
    """The payload corpus, the CLI corpus (`real_processes` of it through the real `wfm`), every
    `flow_every`-th flow-parameter case through the Prefect API, the receiver's bad pushes, and the
    file corpus (`bad_files`: refused whole in one line, or landed and quarantined as predicted)."""
    outcome = Outcome("malformed inputs", 0, 0, "inputs")
    with tempfile.TemporaryDirectory(prefix="wfm-chaos-input-") as scratch:
        corpora = (lambda: payload_corpus(server, Path(scratch)), lambda: cli_corpus(server, Path(scratch), real_processes),
                   lambda: flow_parameters(server, Path(scratch), flow_every), lambda: bad_pushes(server),
                   lambda: file_corpus(server, Path(scratch) / "files"))
        for tried, problems in (corpus() for corpus in corpora):
            outcome.tried += tried
            outcome.held += tried - len(problems)
            outcome.problems += problems
    outcome.exact = not outcome.problems
    return outcome


def payload_corpus(server: str, scratch: Path) -> tuple[int, list[str]]:
    """Land every damaged answer; the problems of the items not handled."""
    from engine.landing.window import land_batch

    problems = []
    day = dt.datetime.combine(SIM_START, dt.time(), UTC)
    with simulator(agents=40) as sim, fresh_database(server) as db, pointed_at(sim, db, scratch / "lake"):
        ids = tuple(_agent_ids(sim))
        window = Window(day, day + dt.timedelta(days=1), ids)
        answer = real_answer(sim, STREAM, window)
        baseline = _keys(parse(STREAM, window, answer).table)
        for name, where, damage in corpus():
            broken, agent = damaged(answer, where, damage)
            try:
                parsed = parse(STREAM, window, broken)
            except SourceError as exc:        # the answer refused whole, in one line
                problems += [f"payload {name}: error is not one line"] if "\n" in str(exc) else []
                continue
            plan = _plan(db, window)
            try:
                report = land_batch(plan, window, parsed)
            except Exception as exc:      # the whole window fails: every valid row of it is lost
                problems.append(f"payload {name}: the window failed, its valid rows lost — "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
                continue
            problems += [f"payload {name}: {p}" for p in _judge(db, baseline, answer, where, agent, report)]
    return len(corpus()), problems


def _agent_ids(sim) -> list[str]:
    from connectors.settings import SourceSettings

    with SourceSettings(cc.SYSTEM, sim.cc_url).client() as client:
        return cc.personnel_ids(client)["agents"]


def _keys(table) -> set[tuple]:
    return {tuple(str(r[c]) for c in STREAM.key) for r in table.to_pylist()}


def _plan(db: str, window: Window):
    """A fresh run of the stream in the ledger (what `sync_stream` starts), tables emptied."""
    from engine.landing import ledger, warehouse
    from engine.landing.window import RunPlan
    from engine.settings import resolve_settings

    settings, now, run = resolve_settings(), dt.datetime.now(UTC), uuid.uuid4()
    with psycopg.connect(db, autocommit=True) as conn:
        ledger.ensure_meta(conn)
        warehouse.ensure_table(conn, STREAM)
        conn.execute(f"TRUNCATE wfm.{STREAM.name}, wfm_meta.quarantine")
        ledger.start_run(conn, run, STREAM.name, "backfill", window.start, window.end, [window], now)
    return RunPlan(run, STREAM, settings.source(STREAM.system), db, "backfill", window.end, now)


def _judge(db: str, baseline: set[tuple], answer: list, where: str, agent, report) -> list[str]:
    """Every other record landed; the damaged one is quarantined or landed as a row of its own."""
    if report.status == "held":
        return [] if report.message and "\n" not in report.message else ["held without a one-line reason"]
    index = next(i for i, a in enumerate(answer) if len(a.get("states") or []) > 1)
    original = _loose((str(agent), answer[index]["states"][1]["startDate"]))
    if where == "status":
        spared = {k for k in baseline if (_loose(k)[0], _loose(k)[3]) != original}
    else:
        spared = {k for k in baseline if k[0] != str(agent)}
    with psycopg.connect(db) as conn:
        landed = {tuple(str(v) for v in r) for r in conn.execute(
            f"SELECT {', '.join(STREAM.key)} FROM wfm.{STREAM.name}")}
        held = conn.execute("SELECT count(*) FROM wfm_meta.quarantine").fetchone()[0]
    lost = {k for k in spared if _loose(k) not in {_loose(x) for x in landed}}
    problems = [f"{len(lost)} valid row(s) lost, e.g. {sorted(lost)[0]}"] if lost else []
    if not held and len(landed) < len(baseline):
        problems.append("the damaged record is neither quarantined nor landed")
    return problems


def _loose(key: tuple) -> tuple:
    """A key as text both sides agree on (timestamps to the second, in UTC)."""
    return tuple(k.replace("T", " ").replace("Z", "+00:00")[:19] for k in key)


CLI_CASES: list[tuple[str, list[str]]] = [
    ("unknown stream", ["sync", "no_such_stream", "--start", "2026-11-09", "--end", "2026-11-09"]),
    ("stream that injects", ["sync", "agent_logins; DROP TABLE wfm.canary", "--start", "2026-11-09"]),
    ("end before start", ["sync", "agent_logins", "--start", "2026-11-10", "--end", "2026-11-09"]),
    ("impossible date", ["sync", "agent_logins", "--start", "2026-02-30"]),
    ("date in another format", ["sync", "agent_logins", "--start", "09.11.2026"]),
    ("no stream", ["sync"]),
    ("unknown option", ["sync", "agent_logins", "--frobnicate"]),
    ("negative run limit", ["runs", "--limit", "-5"]),
    ("limit is text", ["runs", "--limit", "many"]),
    ("threshold is text", ["import", "{dir}/plan.csv", "--stream", "planned_shifts", "--threshold", "x"]),
    ("no such file", ["import", "{dir}/missing.csv", "--stream", "planned_shifts"]),
    ("a directory", ["import", "{dir}", "--stream", "planned_shifts"]),
    ("empty file", ["import", "{dir}/empty.csv", "--stream", "planned_shifts"]),
    ("header only", ["validate", "{dir}/header.csv", "--stream", "planned_shifts"]),
    ("binary named .csv", ["import", "{dir}/binary.csv", "--stream", "planned_shifts"]),
    ("duplicate columns", ["validate", "{dir}/duplicate.csv", "--stream", "planned_shifts"]),
    ("JSON that is not JSON", ["import", "{dir}/broken.json", "--stream", "planned_shifts"]),
    ("a file holding only a BOM", ["import", "{dir}/bom.csv", "--stream", "planned_shifts"]),
    ("Parquet that is not Parquet", ["validate", "{dir}/fake.parquet", "--stream", "planned_shifts"]),
    ("a time zone that is none", ["validate", "{dir}/plan.csv", "--stream", "planned_shifts", "--timezone", "UTC+3"]),
    ("unknown import stream", ["import", "{dir}/plan.csv", "--stream", "../../etc"]),
    ("bad mapping", ["import", "{dir}/plan.csv", "--stream", "planned_shifts", "--map", "==,=x"]),
    ("mapping file is junk", ["import", "{dir}/plan.csv", "--stream", "planned_shifts", "--mapping", "{dir}/junk.yaml"]),
    ("export of an unknown table", ["export", "pg_authid", "--out", "{dir}/out.csv"]),
    ("filter on an unknown column", ["export", "agent_logins", "--filter", "1=1) OR (1=1", "--out", "{dir}/o.csv"]),
    ("bad fault spec", ["simulator", "serve", "--faults", "503=2"]),
    ("quarantine id is text", ["quarantine", "show", "x"]),
]


def _files(directory: Path) -> None:
    (directory / "plan.csv").write_text("employee_id,shift_start,shift_end\n1,2026-11-17T06:00:00Z,2026-11-17T14:00:00Z\n")
    (directory / "empty.csv").write_bytes(b"")
    (directory / "header.csv").write_text("employee_id,shift_start,shift_end\n")
    (directory / "binary.csv").write_bytes(b"PK\x03\x04" + os.urandom(512))
    (directory / "duplicate.csv").write_text("employee_id,employee_id,shift_start\n1,2,2026-11-17T06:00:00Z\n")
    (directory / "broken.json").write_text('[{"employee_id": "1", "shift_start": ')
    (directory / "junk.yaml").write_text("- [unbalanced\n  : : :\n")
    (directory / "bom.csv").write_bytes(b"\xef\xbb\xbf")
    (directory / "fake.parquet").write_bytes(b"PAR1" + os.urandom(256) + b"PAR1")


def cli_corpus(server: str, scratch: Path, real_processes: int) -> tuple[int, list[str]]:
    """Every CLI case in-process (typer's runner), the first `real_processes` through `.venv/bin/wfm` too."""
    from typer.testing import CliRunner

    from wfm.cli import app

    _files(scratch)
    problems = []
    with fresh_database(server) as db:
        env = {"WFM_DATABASE_URL": db, "WFM_DATA_DIR": str(scratch / "data"), "WFM_EXPORT_ROOT": str(scratch)}
        for n, (name, args) in enumerate(CLI_CASES):
            argv = [a.replace("{dir}", str(scratch)) for a in args]
            result = CliRunner().invoke(app, argv, env=env)
            problems += _one_line(name, result.exit_code, result.stderr, result.exception)
            if n < real_processes:
                child = subprocess.run([str(PROJECT_ROOT / ".venv" / "bin" / "wfm"), *argv], capture_output=True,
                                       text=True, env={**os.environ, **env}, timeout=120)
                problems += _one_line(f"{name} (process)", child.returncode, child.stderr, None)
    return len(CLI_CASES) + min(real_processes, len(CLI_CASES)), problems


def _one_line(name: str, code: int, stderr: str, exception: BaseException | None) -> list[str]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    if exception is not None and not isinstance(exception, SystemExit):
        return [f"cli {name}: {type(exception).__name__}: {exception}"]
    if code == 0:
        return [f"cli {name}: exit code 0"]
    if "Traceback" in stderr:
        return [f"cli {name}: traceback: {stderr[-300:]}"]
    if len(lines) > 1 and not any(line.startswith(("Usage:", "Try ")) for line in lines):
        return [f"cli {name}: {len(lines)} lines of error: {stderr[:300]}"]
    return []
