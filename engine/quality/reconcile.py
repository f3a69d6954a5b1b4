"""Reconciliation: the rules of `reconcile_rules.py` checked per day partition, stored, and enforced.

    outcome = reconcile(database_url, lake_path, docs_dir, run_id, landed={"agent_logins": {"date=2026-11-10"}})
    outcome.errors        # failed error-severity results: their partitions are now held back

After a stream lands, every rule that reads it is checked on the days this run landed plus the
days its subject still has queued or held. A day is checked only when every table the rule
reads holds it: for history streams a landed window covering the day whose landing came at
least `settle_hours` after the day ended (so sessions still open are not judged), for snapshot
and derived tables any rows. The rules run as one Great Expectations checkpoint, each an
`UnexpectedRowsExpectation` on a PostgreSQL datasource (`gx_docs.py`), and the Data Docs under
`docs_dir` are rebuilt. Each (rule, day) becomes a row of `wfm_meta.check_results`.

Severity "error" blocks publication: a failing day of the subject table gets rows in
`wfm_meta.partition_holds` (in the transaction that stores the results, `engine/quality/holds.py`):
for the groups or agents that broke when the rule can name them, else for the whole day.
`lake.publish` leaves held rows out and skips partitions held whole, and a partition published
before the rule could be checked is withdrawn from the lake (or rewritten without the held rows)
and queued again. PostgreSQL keeps the rows — they are committed, and the next landing may
correct them — so readers who want only reconciled data read the lake or join the holds. When
the rule passes on a later run, or is waived (`wfm quality waive`), the hold goes and the
partition is published. "warn" results are stored and logged, and hold nothing. Each rule's
severity and tolerances come from wfm.toml over the declared defaults
(`engine/quality/policies.py`) and are stored with its results; an "off" rule is not run, and
lifts the holds it had.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import string
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psycopg
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from psycopg import sql

from engine import catalog
from engine.derived import AGENT_EMPLOYEE_MAP
from engine.landing import lake, ledger
from engine.landing.warehouse import table_ident
from engine.push import webhook_outbox
from engine.quality import holds, reports
from engine.quality.policies import OFF, RulePolicy, Tolerances, rule_policy
from engine.quality.rules import ERROR, RULES, WARN, Rule

__all__ = ["RuleResult", "Outcome", "Tolerances", "period_days", "reconcile", "reconcile_landed"]

STREAMS = {**catalog.STREAMS, AGENT_EMPLOYEE_MAP.name: AGENT_EMPLOYEE_MAP}
SCOPE_SHARE = 0.5   # more than half of a day's groups or agents broken: the day is held whole
DEFAULT_SITES: tuple[tuple[str, str], ...] = (("default", "default"),)   # (contact-center connection, site)
_GX_LOCK = threading.Lock()


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict on one partition, shaped like a GX expectation result."""

    check: str
    severity: str
    table: str
    partition: str                   # "date=2026-11-10"
    success: bool
    unexpected_count: int = 0
    examples: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()     # what broke, as JSON objects of the rule's scope columns
    waived: bool = False             # a waiver lets this partition through despite the rule
    whole: bool = False              # too much broke to hold only the scopes: the partition is held


@dataclass
class Outcome:
    """What one reconciliation step found and did."""

    results: list[RuleResult] = field(default_factory=list)
    held: set[tuple[str, str]] = field(default_factory=set)       # (table, partition) held now
    released: set[tuple[str, str]] = field(default_factory=set)   # holds lifted by this step
    published: dict[str, list[str]] = field(default_factory=dict)
    docs: str | None = None          # the Data Docs index, when the step checked anything

    @property
    def errors(self) -> list[RuleResult]:
        return [r for r in self.results if r.severity == ERROR and not r.success and not r.waived]

    @property
    def warnings(self) -> list[RuleResult]:
        return [r for r in self.results if r.severity == WARN and not r.success]

    @property
    def message(self) -> str:
        """One line per failing rule: `calls_within_logins held agent_calls date=2026-11-10 (3 rows: ...)`."""
        def line(r: RuleResult) -> str:
            verb = "held" if r.severity == ERROR else "warns on"
            return f"{r.check} {verb} {r.table} {r.partition} ({r.unexpected_count} rows: {'; '.join(r.examples[:1])})"
        return "; ".join(line(r) for r in [*self.errors, *self.warnings])


def reconcile(database_url: str, lake_path: str, docs_dir: Path | str, run_id: uuid.UUID,
              landed: Mapping[str, Iterable[str]], tolerances: Tolerances | None = None,
              days: Iterable[dt.date] = (), skip_publish: str | None = None,
              sites: Sequence[tuple[str, str]] = DEFAULT_SITES) -> Outcome:
    """Check the rules reading the `landed` tables (table -> partitions landed), hold or release, publish.

    A rule is checked per connection and day (partitions name both). `days` adds days to check
    for landed tables without day partitions (e.g. the agent map); `sites` pairs each
    contact-center connection with its site, for the rules that read the agent map.
    The subjects' partitions are published here, except `skip_publish` (the caller's own stream).
    """
    tolerances = tolerances or Tolerances.from_env()
    outcome = Outcome()
    concerned = [rule for rule in RULES if set(rule.reads) & set(landed)]
    policies = {rule.name: rule_policy(rule, tolerances) for rule in concerned}
    with psycopg.connect(database_url) as conn:
        ledger.ensure_meta(conn)
        for rule in concerned:
            if policies[rule.name].severity == OFF:
                outcome.released |= holds.release_rule(conn, rule.name, run_id)
        plans = [(dataclasses.replace(rule, severity=policy.severity), checked, policy) for rule in concerned
                 if (policy := policies[rule.name]).severity != OFF
                 if (checked := _ready(conn, rule, _candidates(conn, rule, landed, days, sites), policy.tolerances))]
    if plans:
        outcome.results, outcome.docs = _validate(database_url, plans, Path(docs_dir), run_id, sites)
        with psycopg.connect(database_url) as conn:
            outcome.results = [_judge_scope(conn, r, {rule.name: rule for rule in concerned}[r.check])
                               for r in outcome.results]
            holds.store(conn, run_id, outcome, {rule.name: policy.record() for rule, _, policy in plans})
    subjects = {rule.subject for rule in concerned}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in sorted(subjects):
            for partition in ledger.whole_holds(conn, table):
                lake.withdraw_partition(lake_path, table, partition)
            if table != skip_publish and table in STREAMS:
                outcome.published[table] = lake.publish(conn, STREAMS[table], lake_path)
    return outcome


def reconcile_landed(database_url: str, lake_path: str, run_id: uuid.UUID, landed: Mapping[str, Iterable[str]],
                     days: Iterable[dt.date] = (), skip_publish: str | None = None, label: str = "",
                     sites: Sequence[tuple[str, str]] = DEFAULT_SITES) -> Outcome:
    """The reconciliation step of a flow: `reconcile`, then tell people (log, webhook, artifact, dashboard)."""
    from engine import paths

    docs = paths.data_dir() / "docs"
    outcome = reconcile(database_url, lake_path, docs, run_id, landed, days=days, skip_publish=skip_publish,
                        sites=sites)
    if not outcome.results:
        return outcome
    logger = get_run_logger()
    failing = [*outcome.errors, *outcome.warnings]
    for r in failing:
        logger.warning("reconciliation %s (%s) failed on %s %s: %d rows, e.g. %s", r.check, r.severity, r.table,
                       r.partition, r.unexpected_count, "; ".join(r.examples[:1]))
    if failing:
        webhook_outbox.send_event(database_url, "quality.gate_failed", {
            "source": "reconciliation", "run_id": str(run_id), "stream": label,
            "held": sorted(f"{t} {p}" for t, p in outcome.held),
            "checks": [{"check": r.check, "severity": r.severity, "table": r.table, "partition": r.partition,
                        "unexpected_count": r.unexpected_count, "examples": list(r.examples)} for r in failing]})
    dashboard = reports.write_dashboard(database_url, docs)
    create_markdown_artifact(reports.reconcile_markdown(outcome, label, dashboard),
                             key="reconcile-" + re.sub(r"[^a-z0-9]+", "-", (label or "run").lower()).strip("-"),
                             description=f"reconciliation after {label}: {len(outcome.errors)} error(s), "
                                         f"{len(outcome.warnings)} warning(s)")
    return outcome


Checked = tuple[str, dt.date]   # (owner: the subject's connection, UTC day)


def _candidates(conn: psycopg.Connection, rule: Rule, landed: Mapping[str, Iterable[str]],
                extra_days: Iterable[dt.date], sites: Sequence[tuple[str, str]]) -> set[Checked]:
    """(connection, day)s landed now in a table the rule reads, plus the subject's queued and held ones."""
    owners = {site: source for source, site in sites}
    found: set[Checked] = set()
    for table in rule.reads:
        for partition in landed.get(table, ()):
            levels = lake.partition_levels(partition)
            owner = levels.get("source") or owners.get(levels.get("site", ""))
            if owner is None:
                continue
            if "date" in levels:
                found.add((owner, dt.date.fromisoformat(levels["date"])))
            elif STREAMS[table].partition is None:
                found |= {(owner, day) for day in extra_days}
    queued = conn.execute("""SELECT partition FROM wfm_meta.lake_pending WHERE table_name = %(t)s UNION
                             SELECT partition FROM wfm_meta.partition_holds WHERE table_name = %(t)s
                             AND check_name = %(c)s""", {"t": rule.subject, "c": rule.name}).fetchall()
    for (partition,) in queued:
        levels = lake.partition_levels(partition)
        if "date" in levels and "source" in levels:
            found.add((levels["source"], dt.date.fromisoformat(levels["date"])))
    return found


def _ready(conn: psycopg.Connection, rule: Rule, checked: set[Checked], tolerances: Tolerances) -> list[Checked]:
    """The (connection, day)s every table the rule reads already holds (see the module docstring)."""
    for table in rule.reads:
        if not checked:
            break
        if conn.execute("SELECT to_regclass(%s)", (f"wfm.{table}",)).fetchone()[0] is None:
            return []
        if STREAMS[table].cursor is None:
            if conn.execute(f"SELECT NOT EXISTS (SELECT 1 FROM wfm.{table})").fetchone()[0]:
                return []
            continue
        owners, days = zip(*sorted(checked))
        rows = conn.execute(
            """SELECT o, d FROM unnest(%s::text[], %s::date[]) AS c(o, d) WHERE EXISTS (
                 SELECT 1 FROM wfm_meta.sync_windows w WHERE w.stream = %s AND w.source = o AND w.status = 'landed'
                 AND w.window_start <= d::timestamp AT TIME ZONE 'UTC'
                 AND w.window_end >= (d + 1)::timestamp AT TIME ZONE 'UTC'
                 AND w.landed_at >= (d + 1)::timestamp AT TIME ZONE 'UTC' + make_interval(secs => %s * 3600.0))""",
            (list(owners), list(days), table, tolerances.settle_hours)).fetchall()
        checked = {(o, d) for o, d in rows}
    return sorted(checked)


def render(rule: Rule, checked: list[Checked], tolerances: Tolerances,
           sites: Sequence[tuple[str, str]] = DEFAULT_SITES) -> str:
    """The rule's query for these (connection, day)s: one row per failing one with the count, three
    examples and the scopes that broke (JSON objects of the rule's scope columns, at most MAX_SCOPES + 1)."""
    days = [d for _, d in checked]
    first, after = min(days), max(days) + dt.timedelta(days=1)
    pairs = ", ".join(f"({_text(source)}, {_text(site)})" for source, site in sites) or "(NULL, NULL)"
    inner = string.Template(rule.query).substitute(
        lo=f"TIMESTAMPTZ '{first.isoformat()} 00:00:00+00'", hi=f"TIMESTAMPTZ '{after.isoformat()} 00:00:00+00'",
        first=f"DATE '{first.isoformat()}'", after=f"DATE '{after.isoformat()}'",
        seconds=float(tolerances.seconds), calls=int(tolerances.calls), calls_share=float(tolerances.calls_share),
        chat_ms=int(tolerances.chat_ms), sites=f"(VALUES {pairs})")
    listed = ", ".join(f"({_text(owner)}, DATE '{d.isoformat()}')" for owner, d in checked)
    scope = ", ".join(f"'{c}', {c}::text" for c in rule.scope)
    scopes = (f"(array_agg(DISTINCT jsonb_build_object({scope})::text))[1:{holds.MAX_SCOPES + 1}]"
              if rule.scope else "ARRAY[]::text[]")
    return (f"SELECT owner, day AS partition, count(*) AS unexpected_count, "
            f"(array_agg(example ORDER BY example))[1:3] AS examples, {scopes} AS scopes FROM ({inner}) AS broken "
            f"WHERE (owner, day) IN (VALUES {listed}) GROUP BY owner, day ORDER BY owner, day")


def _text(value: str) -> str:
    """A SQL string literal (connection names are checked `[a-z0-9_-]`, but quote anyway)."""
    return "'" + value.replace("'", "''") + "'"


def _validate(database_url: str, plans: list[tuple[Rule, list[Checked], RulePolicy]], docs_dir: Path,
              run_id: uuid.UUID, sites: Sequence[tuple[str, str]] = DEFAULT_SITES) -> tuple[list[RuleResult], str]:
    """Run the plans as one GX checkpoint (Data Docs built by its action); results per rule, connection and day."""
    from engine.quality.gx_docs import run_checkpoint

    queries = [(rule, render(rule, checked, policy.tolerances, sites)) for rule, checked, policy in plans]
    with _GX_LOCK:
        failing, docs = run_checkpoint(_sqlalchemy_url(database_url), queries, docs_dir, f"reconcile-{run_id}")
    results = []
    for rule, checked, _ in plans:
        found = {(str(row["owner"]), str(row["partition"])[:10]): row for row in failing[rule.name]}
        for owner, day in checked:
            row = found.get((owner, day.isoformat()))
            results.append(RuleResult(rule.name, rule.severity, rule.subject,
                                       lake.owned_partition(rule.subject, owner, day),
                                       row is None, int(row["unexpected_count"]) if row else 0,
                                       tuple(row["examples"] or ()) if row else (),
                                       tuple(_canonical(s) for s in row["scopes"] or ()) if row else ()))
    return results, docs


def _judge_scope(conn: psycopg.Connection, result: RuleResult, rule: Rule) -> RuleResult:
    """Mark a failing result `whole` when its scopes are no fair summary of what broke: none named,
    more than MAX_SCOPES, or more than SCOPE_SHARE of the partition's groups or agents."""
    if result.success or not result.scopes or rule.subject not in STREAMS:
        return result
    if len(result.scopes) > holds.MAX_SCOPES:
        return dataclasses.replace(result, whole=True)
    stream = STREAMS[rule.subject]
    total = conn.execute(sql.SQL("SELECT count(DISTINCT ({})) FROM {} WHERE {}").format(
        sql.SQL(", ").join(map(sql.Identifier, rule.scope)), table_ident(stream),
        lake.partition_filter(stream, result.partition))).fetchone()[0]
    return dataclasses.replace(result, whole=len(result.scopes) > SCOPE_SHARE * max(total, 1))


def _canonical(scope: str) -> str:
    """A scope as the holds store it: JSON with sorted keys, no spaces."""
    return orjson.dumps(orjson.loads(scope), option=orjson.OPT_SORT_KEYS).decode()


def period_days(runs: Iterable[Mapping], limit: int = 62) -> list[dt.date]:
    """The UTC days the history runs among `runs` covered (the last `limit`): what a rebuilt snapshot
    table, such as the agent map, is checked against."""
    days: set[dt.date] = set()
    for run in runs:
        if run.get("mode") not in ("backfill", "incremental") or not run.get("period_start"):
            continue
        day, end = run["period_start"].astimezone(dt.timezone.utc).date(), run["period_end"]
        while dt.datetime.combine(day, dt.time(), dt.timezone.utc) < end and len(days) < 10 * limit:
            days.add(day)
            day += dt.timedelta(days=1)
    return sorted(days)[-limit:]


def _sqlalchemy_url(database_url: str) -> str:
    """The psycopg 3 dialect for SQLAlchemy (a bare postgresql:// would ask for psycopg2).

    A Unix-socket URL (`postgresql://user@/db?host=/run/dir`, the embedded PostgreSQL's) gets a
    placeholder host: Great Expectations refuses a URL without one, and the `host` parameter
    still decides where psycopg connects.
    """
    scheme, rest = database_url.split("://", 1)
    if scheme not in ("postgres", "postgresql"):
        return database_url
    authority, _, tail = rest.partition("/")
    if authority.endswith("@") or not authority:
        rest = f"{authority}localhost/{tail}"
    return f"postgresql+psycopg://{rest}"
