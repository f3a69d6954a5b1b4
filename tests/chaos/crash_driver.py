"""The process the crash scenarios kill: a sync, a push or `wfm migrate` that SIGKILLs itself at a named point.

    python -m tests.chaos.crash_driver sync agent_logins,agent_status_intervals --point commit --after 3
    python -m tests.chaos.crash_driver push 2026-11-01 --point push --after 2
    python -m tests.chaos.crash_driver facts - --point fact-stored --after 3       # confirmed deviations
    python -m tests.chaos.crash_driver sync agent_logins --point timer --after 1.7   # seconds
    python -m tests.chaos.crash_driver migrate - --point lake-move --after 5   # `wfm migrate`, 5th file moved
    python -m tests.chaos.crash_driver --serve    # one forked run per JSON line on stdin (the scenario)

The product code is untouched: the driver wraps the public functions the engine looks up at
call time and kills the process — no exception, no cleanup, no `finally` — on the N-th call.
It exits 0 if the run ended before reaching the point, so the scenario can tell a kill from a
run that was too short for it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable

import pyarrow.parquet as pq


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def on_call(owner: object, name: str, after: int, when: str) -> None:
    """Replace `owner.name` by a wrapper that dies on call number `after`, `before` or `after` it runs."""
    real: Callable = getattr(owner, name)
    calls = [0]
    lock = threading.Lock()

    def wrapper(*args, **kwargs):
        with lock:
            calls[0] += 1
            fatal = calls[0] == after
        if fatal and when == "before":
            die()
        result = real(*args, **kwargs)
        if fatal:
            die()
        return result

    setattr(owner, name, wrapper)


def half_written(after: int) -> None:
    """`pq.write_table` that, on call `after`, writes half the file and dies: a partial temp file."""
    import io

    real, calls = pq.write_table, [0]

    def wrapper(table, where, **kwargs):
        calls[0] += 1
        if calls[0] != after:
            return real(table, where, **kwargs)
        buffer = io.BytesIO()
        real(table, buffer, **kwargs)
        where.write(buffer.getvalue()[: buffer.tell() // 2])
        where.flush()
        die()

    pq.write_table = wrapper


def _timer(seconds: float) -> None:
    timer = threading.Timer(seconds, die)
    timer.daemon = True          # a run that ends first exits normally
    timer.start()


MIGRATION_POINTS = ("migration-statement", "migration-transaction", "before-lake", "lake-move")


def in_migrations(point: str, n: int, counts: dict[str, int]) -> None:
    """Count (and on `point` kill at number `n`) the statements every registered migration runs inside
    its transaction — killed just after one ran — and the migrations themselves, killed once one's step
    ran, before its version is recorded and committed."""
    import psycopg

    from engine import schema

    inside = [False]

    def step(apply: Callable) -> Callable:
        def wrapped(conn):
            inside[0] = True
            try:
                apply(conn)
            finally:
                inside[0] = False
            counts["migrations"] += 1
            if point == "migration-transaction" and counts["migrations"] == n:
                die()
        return wrapped

    schema.MIGRATIONS = tuple(dataclasses.replace(m, apply=step(m.apply)) for m in schema.MIGRATIONS)
    real = psycopg.Connection.execute

    def execute(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        if inside[0]:
            counts["statements"] += 1
            if point == "migration-statement" and counts["statements"] == n:
                die()
        return result

    psycopg.Connection.execute = execute  # type: ignore[method-assign]


def arm_migrate(point: str, after: float) -> dict[str, int]:
    """The kill of `wfm migrate` at one point ("count": none); the counts of what it did."""
    from engine import migrations, schema

    counts = {"migrations": 0, "statements": 0, "moves": 0}
    in_migrations(point, int(after), counts)
    real_move = migrations._move

    def move(*args):
        counts["moves"] += 1
        moved = real_move(*args)
        if point == "lake-move" and counts["moves"] == int(after):
            die()                        # this file renamed, the rest of the lake still in the old layout
        return moved

    migrations._move = move
    if point == "before-lake":
        on_call(schema, "migrate_lake", 1, "before")      # every migration committed, no file moved
    elif point == "timer":
        _timer(after)
    return counts


def arm(point: str, after: float) -> None:
    """Install the kill for one named point."""
    from connectors import http, onec
    from engine.landing import ledger, warehouse

    n = int(after)
    points = {
        "extract": lambda: on_call(http.SourceClient, "request_json", n, "after"),
        "commit": lambda: on_call(warehouse, "upsert", n, "after"),          # upserted, not yet committed
        "swap-partial": lambda: half_written(n),
        "swap-before-rename": lambda: on_call(pq, "write_table", n, "after"),
        "swap-after-rename": lambda: on_call(ledger, "clear_partition", n, "before"),
        "push": lambda: on_call(onec, "send_schedule", n, "after"),          # 1C stored it, answer not settled
        "fact-stored": lambda: on_call(onec, "send_fact_work_time", n, "after"),    # 1C made the document
        "fact-claimed": lambda: on_call(onec, "send_fact_work_time", n, "before"),  # `sending`, never sent
        "timer": lambda: _timer(after),
    }
    points[point]()


def run(work: str, target: str, point: str, after: float) -> None:
    """Arm the kill, then sync the streams (incremental), push the schedules since a day, or push
    the confirmed deviations."""
    if work == "migrate":
        return migrate(point, after)
    arm(point, after)
    if work == "sync":
        from flows.sync import sync

        sync(target.split(","))
    elif work == "facts":
        from flows.push import push_deviations

        push_deviations()
    else:
        from flows.push import push_schedules

        push_schedules(dt.date.fromisoformat(target))


def migrate(point: str, after: float) -> None:
    """`wfm migrate`, as the command line runs it, killed at `point`; with `WFM_CHAOS_COUNTS` set, what
    it did is written there as JSON."""
    from typer.main import get_command

    from wfm.cli import app

    counts = arm_migrate(point, after)
    try:
        get_command(app).main(["migrate"], prog_name="wfm", standalone_mode=False)
    finally:
        if os.environ.get("WFM_CHAOS_COUNTS"):
            with open(os.environ["WFM_CHAOS_COUNTS"], "w") as out:
                json.dump(counts, out)


def serve() -> None:
    """Fork one run per JSON line on stdin; answer each with a line holding its exit code.

    Importing Prefect and Great Expectations costs seconds; forking this process after the
    imports makes a trial cost only its run. Nothing here has started a thread yet.
    """
    import engine.schema  # noqa: F401
    import flows.push  # noqa: F401  (the imports every run needs, paid once)
    import flows.sync  # noqa: F401
    import wfm.cli  # noqa: F401
    import wfm.commands  # noqa: F401

    for line in sys.stdin:
        order = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os.dup2(2, 1)                     # stdout is this protocol's; the run's output goes to stderr
            os.environ.update(order["env"])
            try:
                run(order["work"], order["target"], order["point"], float(order["after"]))
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)


def main(argv: list[str]) -> int:
    if argv == ["--serve"]:
        serve()
        return 0
    work, target = argv[0], argv[1]
    run(work, target, argv[argv.index("--point") + 1], float(argv[argv.index("--after") + 1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
