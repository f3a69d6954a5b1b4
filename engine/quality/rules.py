"""The reconciliation rules: what landed rows of different streams must agree on, per UTC day.

Row checks (`engine/quality/suites.py`) see one window of one stream; these rules see the warehouse. Each
is a SQL query over the landed tables returning the rows that break it, one per offence, with
the UTC `day` and the `owner` (the connection, `source`, of the subject's rows: together the
partition of its `subject` table it counts against) and a readable `example`. Rows are only
compared with rows of the same connection (agent ids collide across connections); the agent map,
kept per site, is reached through `$sites` (pairs of contact-center connection and site).
`engine/quality/reconcile.py` wraps each query as a Great Expectations
`UnexpectedRowsExpectation` on the subject table (`{batch}`: GX writes it as a subquery aliased
`subselect`, unless the query has a JOIN, where the rule aliases it itself), restricted to the days being
checked, and fills the `$`-placeholders: `$lo`/`$hi` (timestamptz bounds of those days),
`$first`/`$after` (the same as dates), `$seconds`, `$calls`, `$calls_share`, `$chat_ms`
(the tolerances).

Severity follows the row suites: "error" for data that would be wrong to publish (the
subject's partitions are held back), "warn" for what is worth knowing but not blocking.
`reads` lists every table a rule needs: a day is only checked once all of them hold it.
`scope` names the subject's columns that say what broke — a group, an agent, an employee; the
query selects them under those names, and a failing day holds only the rows of the scopes that
broke (`engine/quality/holds.py`) instead of the whole table-day. Severities and tolerances declared
here are defaults: `wfm.toml` can change them per rule (`engine/quality/policies.py`).

`handled_calls_match_intervals` compares the agents' contacts with `notUniqueTreated`, not the
issue's `treatedCalls`: agent calls count every contact, while `treatedCalls` counts only a
customer's first contact of the day, so `notUniqueTreated` is the figure that must agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.contact_center import STEP_15_MIN

__all__ = ["RULES", "Rule"]

ERROR, WARN = "error", "warn"
UTC_DAY = "({} AT TIME ZONE 'UTC')::date"
CLOCK = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"


@dataclass(frozen=True)
class Rule:
    """One reconciliation rule: a named query for the rows that break it."""

    name: str
    severity: str              # "error": the subject's failing partitions are held back; "warn": recorded
    subject: str               # the table whose day partitions the rule judges
    reads: tuple[str, ...]     # tables that must hold a day before the rule checks it
    description: str
    query: str                 # SELECT day, example, <scope columns> ... FROM {batch} ...: one row per offence
    scope: tuple[str, ...] = ()   # subject columns naming what broke (a group, an agent): holds only those rows


def _inside_login(alias: str) -> str:
    """SQL: a login session of the row's agent covers [started_at, ended_at], within $seconds."""
    return (f"EXISTS (SELECT 1 FROM wfm.agent_logins l WHERE l.source = {alias}.source "
            f"AND l.agent_id = {alias}.agent_id "
            f"AND l.login_at <= {alias}.started_at + make_interval(secs => $seconds) "
            f"AND l.logout_at >= {alias}.ended_at - make_interval(secs => $seconds))")


GROUP, AGENT = ("service_id", "group_id"), ("agent_id",)
STATUSES = "(SELECT DISTINCT source, agent_id, started_at, ended_at, state_code FROM {batch} WHERE %s)"

RULES: tuple[Rule, ...] = (
    Rule("interval_received_balance", ERROR, "service_group_intervals", ("service_group_intervals",),
         "received = treated + missed, for all contacts and for unique ones",
         f"""SELECT source AS owner, {UTC_DAY.format('interval_start')} AS day,
                    group_id || ' ' || {CLOCK.format('interval_start')}
                    || ': received ' || not_unique_received || ' = ' || not_unique_treated || ' + '
                    || not_unique_missed || '? unique ' || received_calls || ' = ' || treated_calls || ' + '
                    || miss_calls || '?' AS example, service_id, group_id
             FROM {{batch}} WHERE interval_start >= $lo AND interval_start < $hi
               AND (not_unique_received <> not_unique_treated + not_unique_missed
                    OR received_calls <> treated_calls + miss_calls)""", GROUP),
    Rule("interval_unique_within_total", ERROR, "service_group_intervals", ("service_group_intervals",),
         "unique received, treated and missed never exceed all contacts",
         f"""SELECT source AS owner, {UTC_DAY.format('interval_start')} AS day,
                    group_id || ' ' || {CLOCK.format('interval_start')}
                    || ': unique ' || received_calls || '/' || treated_calls || '/' || miss_calls
                    || ' > all ' || not_unique_received || '/' || not_unique_treated || '/' || not_unique_missed
                    AS example, service_id, group_id
             FROM {{batch}} WHERE interval_start >= $lo AND interval_start < $hi
               AND (received_calls > not_unique_received OR treated_calls > not_unique_treated
                    OR miss_calls > not_unique_missed)""", GROUP),
    Rule("status_overlap", ERROR, "agent_status_intervals", ("agent_status_intervals",),
         "an agent's statuses do not overlap (a status repeated per group counts once)",
         f"""SELECT source AS owner, {UTC_DAY.format('started_at')} AS day, agent_id || ' ' || state_code || ' '
                    || {CLOCK.format('started_at')} || ' starts before the previous status ends at '
                    || {CLOCK.format('previous_end')} AS example, agent_id
             FROM (SELECT *, max(ended_at) OVER (PARTITION BY source, agent_id ORDER BY started_at, ended_at, state_code
                                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_end
                   FROM {STATUSES % "started_at >= $lo - interval '1 day' AND started_at < $hi"} AS s) AS o
             WHERE started_at >= $lo AND previous_end > started_at + make_interval(secs => $seconds)""", AGENT),
    Rule("status_within_login", ERROR, "agent_status_intervals", ("agent_status_intervals", "agent_logins"),
         "every status lies inside one of the agent's login sessions",
         f"""SELECT s.source AS owner, {UTC_DAY.format('s.started_at')} AS day, s.agent_id || ' ' || s.state_code || ' '
                    || {CLOCK.format('s.started_at')} || '..' || {CLOCK.format('s.ended_at')}
                    || ' is outside every login session' AS example, s.agent_id
             FROM {STATUSES % "started_at >= $lo AND started_at < $hi"} AS s
             WHERE NOT {_inside_login('s')}""", AGENT),
    Rule("calls_within_logins", ERROR, "agent_calls", ("agent_calls", "agent_logins"),
         "every contact an agent handled lies inside one of the agent's login sessions",
         f"""SELECT c.source AS owner, {UTC_DAY.format('c.started_at')} AS day, c.agent_id || ' group ' || c.group_id || ' '
                    || {CLOCK.format('c.started_at')} || '..' || {CLOCK.format('c.ended_at')}
                    || ' is outside every login session' AS example, c.agent_id
             FROM (SELECT source, agent_id, group_id, started_at, ended_at FROM {{batch}}
                   WHERE started_at >= $lo AND started_at < $hi) AS c WHERE NOT {_inside_login('c')}""", AGENT),
    Rule("chat_time_within_login_time", ERROR, "agent_chat_work_time", ("agent_chat_work_time", "agent_logins"),
         "an agent's chat work time of a day is at most the time the agent was logged in that day",
         """SELECT c.source AS owner, c.work_date AS day, c.agent_id || ' on ' || c.work_date || ': chats '
                   || round(c.work_time_ms / 60000.0) || ' min, logged in ' || round(coalesce(l.ms, 0) / 60000.0)
                   || ' min' AS example, c.agent_id
            FROM {batch} AS c LEFT JOIN LATERAL (
                 SELECT sum(extract(epoch FROM least(logout_at, (c.work_date + 1)::timestamp AT TIME ZONE 'UTC')
                                    - greatest(login_at, c.work_date::timestamp AT TIME ZONE 'UTC')) * 1000) AS ms
                 FROM wfm.agent_logins WHERE source = c.source AND agent_id = c.agent_id
                   AND login_at < (c.work_date + 1)::timestamp AT TIME ZONE 'UTC'
                   AND logout_at > c.work_date::timestamp AT TIME ZONE 'UTC') AS l ON true
            WHERE c.work_date >= $first AND c.work_date < $after
              AND c.work_time_ms > coalesce(l.ms, 0) + $chat_ms""", AGENT),
    Rule("handled_calls_match_intervals", ERROR, "service_group_intervals", ("service_group_intervals", "agent_calls"),
         "contacts the agents handled per group and interval agree with notUniqueTreated, within a tolerance",
         f"""SELECT coalesce(i.source, c.source) AS owner,
                    {UTC_DAY.format('coalesce(i.interval_start, c.interval_start)')} AS day,
                    coalesce(i.group_id, c.group_id) || ' ' || {CLOCK.format('coalesce(i.interval_start, c.interval_start)')}
                    || ': agents handled ' || coalesce(c.handled, 0) || ', the interval says '
                    || coalesce(i.not_unique_treated, 0) AS example,
                    coalesce(i.service_id, c.service_id) AS service_id, coalesce(i.group_id, c.group_id) AS group_id
             FROM (SELECT source, service_id, group_id, interval_start, not_unique_treated FROM {{batch}} AS b
                   WHERE interval_start >= $lo AND interval_start < $hi) AS i
             FULL JOIN (SELECT source, service_id, group_id, count(*) AS handled,
                               date_bin(make_interval(secs => {STEP_15_MIN // 1000}), started_at,
                                        TIMESTAMPTZ '2000-01-01 00:00:00+00') AS interval_start
                        FROM wfm.agent_calls WHERE started_at >= $lo AND started_at < $hi AND group_id <> ''
                        GROUP BY 1, 2, 3, 5) AS c
               ON c.source = i.source AND c.service_id = i.service_id AND c.group_id = i.group_id
                  AND c.interval_start = i.interval_start
             WHERE abs(coalesce(c.handled, 0) - coalesce(i.not_unique_treated, 0))
                   > greatest($calls, $calls_share * coalesce(i.not_unique_treated, 0))""", GROUP),
    Rule("active_agents_mapped", WARN, "agent_logins", ("agent_logins", "agent_employee_map"),
         "every agent who logged in maps to a 1C employee or is listed as unmatched in agent_employee_map",
         f"""SELECT source AS owner, day, 'agent ' || agent_id || ' logged in but is not in agent_employee_map'
                    AS example, agent_id
             FROM (SELECT DISTINCT source, {UTC_DAY.format('login_at')} AS day, agent_id FROM {{batch}}
                   WHERE login_at >= $lo AND login_at < $hi) AS a
             WHERE NOT EXISTS (SELECT 1 FROM wfm.agent_employee_map m, $sites AS p(source, site)
                               WHERE p.site = m.site AND p.source = a.source AND m.agent_id = a.agent_id)""", AGENT),
    Rule("norm_hours_positive", ERROR, "norm_hours", ("norm_hours", "employees"),
         "an employee employed for the whole period, with a weekly norm, has a positive norm of hours",
         """SELECT n.source AS owner, n.period_start AS day,
                   e.employee_id || ' (' || e.tab_n || ') ' || n.calculation_mode || ' '
                   || n.period_start || '..' || n.period_end || ': ' || n.norm_hours || ' h' AS example, n.employee_id
            FROM {batch} AS n JOIN wfm.employees e ON e.source = n.source AND e.employee_id = n.employee_id
            WHERE n.period_start >= $first AND n.period_start < $after AND n.norm_hours <= 0 AND e.norm_week > 0
              AND e.start_work <= n.period_start AND (e.finish_work IS NULL OR e.finish_work >= n.period_end)""",
         ("employee_id",)),
)
