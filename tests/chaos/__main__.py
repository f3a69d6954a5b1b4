"""`make chaos`: every chaos scenario with larger counts, then the figures table.

    python -m tests.chaos [--days 3] [--agents 400] [--passes 5] [--kills 27] [--fact-storms 3]
        [--db-trials 6] [--burst 2000] [--cli-processes 12] [--outages 6] [--sites 3]
        [--migration-kills 15]

Uses `WFM_TEST_DATABASE_URL` when set, an embedded PostgreSQL otherwise, and a temporary
Prefect API. The exit code is 1 when any scenario found a problem (each is listed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from . import Outcome  # noqa: E402
from .bad_input import bad_input  # noqa: E402
from .connections import connections_down  # noqa: E402
from .crashes import crashes  # noqa: E402
from .database_faults import database_faults  # noqa: E402
from .facts import lost_answers  # noqa: E402
from .hanging import hanging_source  # noqa: E402
from .injection import _attempts  # noqa: E402
from .lab import postgres_server, prefect_api  # noqa: E402
from .migration_kills import migration_kills  # noqa: E402
from .receiver_load import receiver_burst  # noqa: E402
from .secret_leaks import secret_leaks  # noqa: E402
from .source_faults import STREAMS, source_faults  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3, help="days of the fault-storm backfill (at most 7)")
    parser.add_argument("--agents", type=int, default=400, help="agents of the fault-storm world")
    parser.add_argument("--passes", type=int, default=5, help="passes of the backfill through the storm")
    parser.add_argument("--kills", type=int, default=27, help="SIGKILL trials (3 rounds of the 9 points)")
    parser.add_argument("--fact-storms", type=int, default=3, help="fact pushes through 1C fault storms")
    parser.add_argument("--db-trials", type=int, default=6, help="PostgreSQL restarts and terminations")
    parser.add_argument("--burst", type=int, default=2000, help="status events in the receiver's burst")
    parser.add_argument("--only", default="", help="run only the scenarios whose key contains this (e.g. source)")
    parser.add_argument("--cli-processes", type=int, default=12, help="CLI cases run through the real `wfm`")
    parser.add_argument("--outages", type=int, default=6, help="passes with one connection down (one round of 6)")
    parser.add_argument("--sites", type=int, default=3, help="simulated sites (2 connections each) of the outages")
    parser.add_argument("--migration-kills", type=int, default=15, help="`wfm migrate` SIGKILLs (3 rounds of 5 points)")
    args = parser.parse_args(argv)
    server = postgres_server()
    scenarios = {
        "source": lambda: source_faults(server, days=args.days, agents=args.agents, passes=args.passes,
                              streams=STREAMS + ("agent_calls", "agent_chat_work_time", "timesheet_days",
                                                 "timesheet_summaries")),
        "crashes": lambda: crashes(server, kills=args.kills),
        "facts": lambda: lost_answers(server, rounds=args.fact_storms),
        "hanging": lambda: hanging_source(server),
        "database": lambda: database_faults(server, trials=args.db_trials),
        "input": lambda: bad_input(server, real_processes=args.cli_processes),
        "receiver": lambda: receiver_burst(server, events=args.burst),
        "secrets": lambda: secret_leaks(server, days=2),
        "injection": lambda: _attempts(server),
        "migrations": lambda: migration_kills(server, kills=args.migration_kills),
        "connections": lambda: connections_down(server, passes=args.outages, sites=args.sites),
    }
    chosen = [(key, run) for key, run in scenarios.items() if args.only in key]
    outcomes = []
    with prefect_api():
        for key, scenario in chosen:
            started = time.monotonic()
            outcome = _guarded(scenario, key)
            outcome.detail = f"{outcome.detail.strip()} ({time.monotonic() - started:.0f} s)".strip()
            outcomes.append(outcome)
            print(f"... {outcome.scenario}: {outcome.verdict}", file=sys.stderr, flush=True)
    print(table(outcomes))
    return 0 if all(o.verdict == "exact" for o in outcomes) else 1


def _guarded(scenario, key: str) -> Outcome:
    try:
        return scenario()
    except Exception as exc:   # a scenario that breaks is a finding, reported in the table
        return Outcome(key, 1, 0, "run", False,
                       problems=[f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"])


def table(outcomes: list[Outcome]) -> str:
    """The figures as a Markdown table, then every problem found."""
    lines = ["| scenario | tried | survived / handled | secret leaks | verdict | detail |", "|---|---|---|---|---|---|"]
    for o in outcomes:
        lines.append(f"| {o.scenario} | {o.tried} {o.unit} | {o.held} | {o.leaks} | {o.verdict} | {o.detail} |")
    problems = [f"- {o.scenario}: {p}" for o in outcomes for p in o.problems]
    return "\n".join(lines + ([""] + problems if problems else []))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
