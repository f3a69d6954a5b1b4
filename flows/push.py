"""Push-back to 1C: planned schedules (sendSchedule) and confirmed deviations (sendFactWorkTime).

Both go through the outbox (`engine.push.outbox`): content is offered, rows are claimed
(pending → sending, committed) before the call and settled (→ sent | refused) after it.

- Schedules are idempotent per employee-month in 1C, so a row left `sending` by a crash, or
  whose answer never came, is simply sent again; only months whose content hash changed are
  offered again.
- A fact is never sent twice. Before a fact is sent, the day's time types in 1C's timesheet
  (getTimetypeInfo) are stored with the claim. A `sending` row whose answer was lost is resolved
  by reading the timesheet again, once it is `settle_after_seconds` old (so that a request 1C
  may still be working on is not mistaken for a lost one): more РВ/РВН/НН/С hours than before →
  1C stored it (`sent`); the same → it did not (`pending`, sent again); anything else stays
  `sending` with a note for a person. Never a blind retry.
- In 1C's maintenance window (`WFM_ONEC_MAINTENANCE`) a push asks nothing and returns
  `{"deferred": 1}`; if the window begins mid-push, what is left stays `pending`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import psycopg
from prefect import flow, get_run_logger

from connectors import onec
from connectors.errors import AuthenticationFailed, SourceDeferred, SourceError, SourceRejected
from connectors.http import SourceClient
from connectors.settings import ONEC
from connectors.streams import Window, fetch, id_batches
from engine import derived, schema
from engine.landing.window import client_for
from engine.push import outbox, webhook_outbox
from engine.push.deviations import CODES, confirmed
from engine.push.schedules import schedule_months
from engine.settings import resolve_settings
from tasks.derived import build_agent_employee_map, build_deviations
from tasks.webhooks import deliver_after_run

UTC = dt.timezone.utc
WHOLE_DAY_ABSENCES = ("ОТ", "ОД", "У", "Б", "Т", "ОВ", "НВ")
EPSILON = 0.005   # hours: 1C rounds to hundredths


class PushFailed(RuntimeError):
    """Some rows could not be delivered this run; they stay in the outbox for the next one."""


def _lock(conn: psycopg.Connection, kind: str) -> None:
    """One push run per kind at a time (session lock, released when the connection closes)."""
    if not conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"wfm-push-{kind}",)).fetchone()[0]:
        raise PushFailed(f"another push of {kind}s is running")


def _tell_refusals(conn: psycopg.Connection, database_url: str, kind: str) -> None:
    """One `push.refused` event summarising this run's refusals (and any an earlier run left untold)."""
    if webhook_outbox.enqueue_refusals(conn, kind):
        deliver_after_run(database_url)


@flow(name="push-schedules")
def push_schedules(since: dt.date | None = None, until: dt.date | None = None, retry_refused: bool = False) -> dict:
    """Send every changed employee-month of planned shifts from `since` (default: the previous month)."""
    logger = get_run_logger()
    settings = resolve_settings()
    schema.ensure(settings.database_url)
    client = client_for(settings.source(ONEC))
    today = dt.datetime.now(UTC).date()
    since = since or (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    if until is not None and until < since:
        raise ValueError(f"until {until} is before since {since}")
    if (window := client.in_maintenance()) is not None:
        logger.warning("schedules deferred: 1C is in its maintenance window %s", window)
        return {"deferred": 1}
    tally: dict[str, int] = defaultdict(int)
    failures: list[str] = []
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        outbox.ensure_outbox(conn)
        _lock(conn, "schedule")
        for entry in outbox.entries(conn, "schedule", ("sending",)):
            outbox.settle(conn, entry, "pending", "the answer was lost; sendSchedule is idempotent, sending again")
        unplaced = []
        for month in schedule_months(conn, since, until):
            state = outbox.offer(conn, "schedule", month.employee_id, month.month, month.payload, month.content_hash,
                                 month.skipped, retry_refused, month.refused)
            tally[f"offered_{state}" if state else "unchanged"] += 1
            if month.refused:
                unplaced.append(f"employee {month.employee_id} {month.month}: {month.refused}")
        for entry in outbox.entries(conn, "schedule", ("pending",)):
            if not outbox.claim(conn, entry):
                continue
            try:
                result = onec.send_schedule(client, entry.payload)
            except SourceDeferred as exc:     # maintenance began: nothing was sent; the next push sends
                outbox.settle(conn, entry, "pending", str(exc))
                tally["deferred"] += 1
                break
            except SourceError as exc:
                outbox.settle(conn, entry, "pending", str(exc))
                failures.append(str(exc))
                if isinstance(exc, AuthenticationFailed):
                    break
                continue
            state = "sent" if result.accepted else "refused"
            outbox.settle(conn, entry, state, result.message)
            tally[state] += 1
        _tell_refusals(conn, settings.database_url, "schedule")
    logger.info("schedules: %s", dict(tally))
    for line in unplaced:
        logger.warning("schedule not sent — %s", line)
    if failures:
        raise PushFailed(f"{len(failures)} schedule(s) not delivered, left pending — {failures[0]}")
    if unplaced:
        raise PushFailed(f"{len(unplaced)} schedule(s) refused, nothing sent for them — {unplaced[0]}")
    return dict(tally)


def timesheet_days(client: SourceClient, employee_days: set[tuple[str, str]]
                   ) -> dict[tuple[str, str], dict[str, float]]:
    """1C's timesheet of the given (employee, day) pairs: {(employee, day): {time type: hours}}."""
    if not employee_days:
        return {}
    days = sorted({d for _, d in employee_days})
    start = dt.datetime.combine(dt.date.fromisoformat(days[0]), dt.time(), UTC)
    end = dt.datetime.combine(dt.date.fromisoformat(days[-1]) + dt.timedelta(days=1), dt.time(), UTC)
    out: dict[tuple[str, str], dict[str, float]] = {pair: {} for pair in employee_days}
    for batch in id_batches(sorted({e for e, _ in employee_days})):
        for row in fetch(client, onec.TIMESHEET_DAYS, Window(start, end, batch)).table.to_pylist():
            key = (row["employee_id"], row["work_date"].isoformat())
            if key in out:
                out[key][row["time_type"]] = round(out[key].get(row["time_type"], 0.0) + (row["hours"] or 0.0), 2)
    return out


def judge(before: dict[str, float] | None, after: dict[str, float]) -> tuple[str | None, str]:
    """Whether 1C stored a fact, from the day's timesheet before the send and now.

    ("sent", why) | ("pending", why) | (None, why): the last means a person must look.
    """
    if before is None:
        return None, "no timesheet was read before the send; check the day in 1C"
    absent = sorted(set(WHOLE_DAY_ABSENCES) & (set(before) | set(after)))
    if absent:
        return None, f"1C shows {'/'.join(absent)} for the whole day, which hides documents; check in 1C"
    delta = {c: round(after.get(c, 0.0) - before.get(c, 0.0), 2) for c in CODES}
    grown = {c: d for c, d in delta.items() if d > EPSILON}
    if grown and all(d >= -EPSILON for d in delta.values()):
        shown = ", ".join(f"{c} +{d:g}" for c, d in grown.items())
        return "sent", f"stored by 1C (the answer was lost): timesheet {shown}"
    if all(abs(d) <= EPSILON for d in delta.values()):
        return "pending", "not stored by 1C (timesheet unchanged); sending again"
    return None, f"the timesheet changed unexpectedly ({delta}); check the day in 1C"


def resolve_sending(conn: psycopg.Connection, client: SourceClient, settle_after: float) -> dict[str, int]:
    """Resolve `sending` facts old enough from 1C's timesheet; unreadable → they stay `sending`."""
    cutoff = dt.datetime.now(UTC) - dt.timedelta(seconds=settle_after)
    stuck = [e for e in outbox.entries(conn, "fact", ("sending",)) if e.sending_at and e.sending_at <= cutoff]
    tally: dict[str, int] = defaultdict(int)
    if not stuck:
        return tally
    try:
        sheet = timesheet_days(client, {(e.employee_id, e.period) for e in stuck})
    except SourceError as exc:
        for entry in stuck:
            outbox.note(conn, entry, f"answer unknown; 1C's timesheet unreadable: {exc}")
        return {"unresolved": len(stuck)}
    for entry in stuck:
        state, why = judge(entry.timesheet_before, sheet[(entry.employee_id, entry.period)])
        if state is None:
            outbox.note(conn, entry, why)
            tally["unresolved"] += 1
        else:
            outbox.settle(conn, entry, state, why)
            tally[f"resolved_{state}"] += 1
    return tally


def _send_fact(conn: psycopg.Connection, client: SourceClient, entry: outbox.Entry, before: dict[str, float]) -> str:
    """Claim, send once, settle; returns the outcome ("sent", "refused", "pending", "sending", "taken")."""
    if not outbox.claim(conn, entry, before):
        return "taken"
    try:
        result = onec.send_fact_work_time(client, entry.payload)
    except (AuthenticationFailed, SourceRejected, SourceDeferred) as exc:       # not processed by 1C
        outbox.settle(conn, entry, "pending", str(exc))
        return "pending"
    except SourceError as exc:                                   # unknown: resolved from the timesheet
        outbox.note(conn, entry, f"answer lost: {exc}")
        return "sending"
    state = "sent" if result.accepted else "refused"
    outbox.settle(conn, entry, state, result.message or ("1C created no document" if state == "refused" else None))
    return state


@flow(name="push-deviations")
def push_deviations(settle_after_seconds: float = 120.0, require_schedule: bool = True) -> dict:
    """Send each confirmed deviation to 1C exactly once, after resolving earlier lost answers."""
    if settle_after_seconds < 0:        # a negative age would judge a send 1C may still be working on
        raise ValueError(f"settle_after_seconds {settle_after_seconds:g} is negative")
    logger = get_run_logger()
    settings = resolve_settings()
    schema.ensure(settings.database_url)
    client = client_for(settings.source(ONEC))
    if (window := client.in_maintenance()) is not None:   # nothing claimed, nothing read: all stays pending
        logger.warning("deviations deferred: 1C is in its maintenance window %s", window)
        return {"deferred": 1}
    tally: dict[str, int] = defaultdict(int)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        outbox.ensure_outbox(conn)
        _lock(conn, "fact")
        tally.update(resolve_sending(conn, client, settle_after_seconds))
        for item in confirmed(conn):
            outbox.offer(conn, "fact", item["employee_id"], item["work_date"].isoformat(), item["payload"],
                         item["content_hash"])
        ready, held = set(outbox.sent_schedules(conn)), 0
        pending = []
        for entry in outbox.entries(conn, "fact", ("pending",)):
            if require_schedule and (entry.employee_id, entry.period[:7]) not in ready:
                outbox.note(conn, entry, f"waiting: 1C does not hold this WFM's schedule of {entry.period[:7]}, "
                                         "so it would compare the fact with another plan")
                held += 1
            else:
                pending.append(entry)
        try:
            before = timesheet_days(client, {(e.employee_id, e.period) for e in pending})
        except SourceError as exc:
            raise PushFailed(f"deviations not sent: 1C's timesheet unreadable before sending — {exc}") from None
        for entry in pending:
            sheet = before[(entry.employee_id, entry.period)]
            absent = sorted(set(WHOLE_DAY_ABSENCES) & set(sheet))
            if absent:
                outbox.offer(conn, "fact", entry.employee_id, entry.period, entry.payload, entry.content_hash,
                             f"1C shows {'/'.join(absent)} for the day: a deviation on an absence is not sent")
                tally["skipped"] += 1
                continue
            outcome = _send_fact(conn, client, entry, sheet)
            tally[outcome] += 1
        if tally["sending"] and settle_after_seconds <= 0:
            for key, value in resolve_sending(conn, client, 0).items():
                tally[key] += value
        tally["waiting_for_schedule"] = held
        _tell_refusals(conn, settings.database_url, "fact")
    logger.info("deviations: %s", dict(tally))
    return {k: v for k, v in tally.items() if v}


@flow(name="build-deviations")
def deviations(start: dt.date | None = None, end: dt.date | None = None) -> dict:
    """Rebuild the deviations of [start, end] (default: the last 31 days up to yesterday)."""
    settings = resolve_settings()
    schema.ensure(settings.database_url)
    end = end or dt.datetime.now(UTC).date() - dt.timedelta(days=1)
    start = start or end - dt.timedelta(days=30)
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    if derived.map_stale(settings.database_url):   # the personnel changed since the map was built
        build_agent_employee_map(settings.database_url, settings.lake_path, settings.pairings())
    if (reason := derived.unmapped_reason(settings.database_url)) is not None:
        raise derived.DerivedMissing(reason)
    return build_deviations(settings.database_url, settings.lake_path, start, end)
