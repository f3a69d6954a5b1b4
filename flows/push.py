"""Push-back to 1C: planned schedules (sendSchedule) and confirmed deviations (sendFactWorkTime).

Both go through the outbox (`engine.push.outbox`): content is offered, rows are claimed
(pending → sending, committed) before the call and settled (→ sent | refused) after it.
Both run site by site (`Settings.pairings()`, or the sites named): a site's rows go to its own 1C
connection only; a site that fails (its 1C down, refusals) fails alone, its rows stay in the
outbox, and the flow raises at the end naming each failed site.

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
from connectors.config.connections import DEFAULT
from connectors.errors import AuthenticationFailed, SourceDeferred, SourceError, SourceRejected
from connectors.http import SourceClient
from connectors.settings import ONEC
from connectors.streams import Window, fetch, id_batches
from engine import derived, schema
from engine.landing.window import client_for
from engine.push import outbox, webhook_outbox
from engine.push.deviations import CODES, confirmed
from engine.push.schedules import schedule_months
from engine.settings import NotConfigured, Settings, resolve_settings
from tasks.derived import build_agent_employee_map, build_deviations
from tasks.webhooks import deliver_after_run

UTC = dt.timezone.utc
WHOLE_DAY_ABSENCES = ("ОТ", "ОД", "У", "Б", "Т", "ОВ", "НВ")
EPSILON = 0.005   # hours: 1C rounds to hundredths


class PushFailed(RuntimeError):
    """Some rows could not be delivered this run; they stay in the outbox for the next one."""


def _lock(conn: psycopg.Connection, kind: str, site: str = DEFAULT) -> None:
    """One push run per kind and site at a time (session lock, released when the connection closes)."""
    key = f"wfm-push-{kind}" if site == DEFAULT else f"wfm-push-{kind}-{site}"
    if not conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()[0]:
        raise PushFailed(f"another push of {kind}s is running" + ("" if site == DEFAULT else f" for site {site}"))


def _tell_refusals(conn: psycopg.Connection, database_url: str, kind: str) -> None:
    """One `push.refused` event summarising this run's refusals (and any an earlier run left untold)."""
    if webhook_outbox.enqueue_refusals(conn, kind):
        deliver_after_run(database_url)


def chosen_sites(settings: Settings, sites: list[str] | None) -> list[tuple[str, str]]:
    """(site, 1C connection) of every site with a 1C base, or of the sites named (an unknown name is an error)."""
    paired = {site: onec_name for site, _, onec_name in settings.pairings()}
    unknown = [s for s in sites or [] if s not in paired]
    if unknown:
        raise ValueError(f"no site named {', '.join(map(repr, unknown))}; known: {', '.join(paired) or 'none'}")
    return [(site, onec_name) for site, onec_name in paired.items()
            if onec_name is not None and (not sites or site in sites)]


def _none_configured(settings: Settings) -> list[tuple[str, str]]:
    """No site has a 1C base: the error says how to configure one."""
    settings.source(ONEC)        # raises NotConfigured with the hint
    return []


def _per_site(what: str, chosen: list[tuple[str, str]], push_one) -> dict:
    """Run `push_one(site, 1C connection)` for every site; one site's failure stops that site only.
    Returns the summed tally; raises `PushFailed` at the end naming each failed site."""
    tally: dict[str, int] = defaultdict(int)
    failed: dict[str, str] = {}
    for site, onec_name in chosen:
        try:
            for key, value in push_one(site, onec_name).items():
                tally[key] += value
        except (PushFailed, SourceError, NotConfigured) as exc:
            failed[site] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if failed:
        raise PushFailed(f"{what} of {len(failed)} of {len(chosen)} site(s) not delivered, left in the outbox: "
                         + "; ".join(f"{site}: {why}" for site, why in failed.items()))
    return dict(tally)


@flow(name="push-schedules")
def push_schedules(since: dt.date | None = None, until: dt.date | None = None, retry_refused: bool = False,
                   sites: list[str] | None = None) -> dict:
    """Send every changed employee-month of planned shifts from `since` (default: the previous month),
    each site's to its own 1C base (every site with one, or those named by `sites`)."""
    settings = resolve_settings()
    schema.ensure(settings.database_url)
    today = dt.datetime.now(UTC).date()
    since = since or (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    if until is not None and until < since:
        raise ValueError(f"until {until} is before since {since}")
    chosen = chosen_sites(settings, sites) or _none_configured(settings)
    out = _per_site("schedules", chosen, lambda site, onec_name: _push_site_schedules(
        settings, site, onec_name, since, until, retry_refused))
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        _tell_refusals(conn, settings.database_url, "schedule")
    return out


def _push_site_schedules(settings: Settings, site: str, onec_name: str, since: dt.date, until: dt.date | None,
                         retry_refused: bool) -> dict:
    """One site's schedules, to its 1C base only."""
    logger = get_run_logger()
    client = client_for(settings.source(ONEC, onec_name))
    if (window := client.in_maintenance()) is not None:
        logger.warning("schedules of site %s deferred: 1C is in its maintenance window %s", site, window)
        return {"deferred": 1}
    tally: dict[str, int] = defaultdict(int)
    failures: list[str] = []
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        outbox.ensure_outbox(conn)
        _lock(conn, "schedule", site)
        for entry in outbox.entries(conn, "schedule", ("sending",), site):
            outbox.settle(conn, entry, "pending", "the answer was lost; sendSchedule is idempotent, sending again")
        unplaced = []
        for month in schedule_months(conn, since, until, site, onec_name):
            state = outbox.offer(conn, "schedule", month.employee_id, month.month, month.payload, month.content_hash,
                                 month.skipped, retry_refused, month.refused, site)
            tally[f"offered_{state}" if state else "unchanged"] += 1
            if month.refused:
                unplaced.append(f"employee {month.employee_id} {month.month}: {month.refused}")
        for entry in outbox.entries(conn, "schedule", ("pending",), site):
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
    logger.info("schedules of site %s: %s", site, dict(tally))
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


def resolve_sending(conn: psycopg.Connection, client: SourceClient, settle_after: float,
                    site: str = DEFAULT) -> dict[str, int]:
    """Resolve a site's `sending` facts old enough from its 1C's timesheet; unreadable → they stay `sending`."""
    cutoff = dt.datetime.now(UTC) - dt.timedelta(seconds=settle_after)
    stuck = [e for e in outbox.entries(conn, "fact", ("sending",), site) if e.sending_at and e.sending_at <= cutoff]
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
def push_deviations(settle_after_seconds: float = 120.0, require_schedule: bool = True,
                    sites: list[str] | None = None) -> dict:
    """Send each confirmed deviation to its site's 1C base exactly once, after resolving earlier lost
    answers (every site with a 1C base, or those named by `sites`)."""
    if settle_after_seconds < 0:        # a negative age would judge a send 1C may still be working on
        raise ValueError(f"settle_after_seconds {settle_after_seconds:g} is negative")
    settings = resolve_settings()
    schema.ensure(settings.database_url)
    chosen = chosen_sites(settings, sites) or _none_configured(settings)
    out = _per_site("deviations", chosen, lambda site, onec_name: _push_site_deviations(
        settings, site, onec_name, settle_after_seconds, require_schedule))
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        _tell_refusals(conn, settings.database_url, "fact")
    return {k: v for k, v in out.items() if v}


def _push_site_deviations(settings: Settings, site: str, onec_name: str, settle_after_seconds: float,
                          require_schedule: bool) -> dict:
    """One site's confirmed deviations, to its 1C base only."""
    logger = get_run_logger()
    client = client_for(settings.source(ONEC, onec_name))
    if (window := client.in_maintenance()) is not None:   # nothing claimed, nothing read: all stays pending
        logger.warning("deviations of site %s deferred: 1C is in its maintenance window %s", site, window)
        return {"deferred": 1}
    tally: dict[str, int] = defaultdict(int)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        outbox.ensure_outbox(conn)
        _lock(conn, "fact", site)
        tally.update(resolve_sending(conn, client, settle_after_seconds, site))
        for item in confirmed(conn, site):
            outbox.offer(conn, "fact", item["employee_id"], item["work_date"].isoformat(), item["payload"],
                         item["content_hash"], site=site)
        ready, held = set(outbox.sent_schedules(conn, site)), 0
        pending = []
        for entry in outbox.entries(conn, "fact", ("pending",), site):
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
                             f"1C shows {'/'.join(absent)} for the day: a deviation on an absence is not sent",
                             site=site)
                tally["skipped"] += 1
                continue
            outcome = _send_fact(conn, client, entry, sheet)
            tally[outcome] += 1
        if tally["sending"] and settle_after_seconds <= 0:
            for key, value in resolve_sending(conn, client, 0, site).items():
                tally[key] += value
        tally["waiting_for_schedule"] = held
    logger.info("deviations of site %s: %s", site, dict(tally))
    return dict(tally)


@flow(name="build-deviations")
def deviations(start: dt.date | None = None, end: dt.date | None = None, sites: list[str] | None = None) -> dict:
    """Rebuild the deviations of [start, end] (default: the last 31 days up to yesterday), of every
    site or of those named by `sites`, each inside its own pairing."""
    settings = resolve_settings()
    schema.ensure(settings.database_url)
    end = end or dt.datetime.now(UTC).date() - dt.timedelta(days=1)
    start = start or end - dt.timedelta(days=30)
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    names = {site for site, _ in chosen_sites(settings, sites)}
    pairings = [p for p in settings.pairings() if p[0] in names]
    if derived.map_stale(settings.database_url):   # the personnel changed since the map was built
        build_agent_employee_map(settings.database_url, settings.lake_path, settings.pairings())
    if (reason := derived.unmapped_reason(settings.database_url)) is not None:
        raise derived.DerivedMissing(reason)
    return build_deviations(settings.database_url, settings.lake_path, start, end, pairings)
