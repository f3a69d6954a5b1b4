"""Time zones, stated rather than guessed: an employee's area, and the site's working day.

- **Areas** (`employees.area`, 1C's name for where a person works) map to IANA zones: the
  sites the project knows (`AREA_TIMEZONES`), extended or overridden by `WFM_AREA_TIMEZONES`
  ("Омск=Asia/Omsk,Казань=Europe/Moscow"; the older name `WFM_SITE_TIMEZONES` is read too). An
  area that is not there, or an empty one, is an error for push-back (`UnknownArea`): the
  employee's schedules are refused with the reason and nothing is sent, because night hours
  counted in the wrong zone go to payroll silently. There is no fallback zone.
- **The site's zone** (`WFM_SITE_TIMEZONE`, default Europe/Moscow) is where the contact center
  works: its tables partitioned by an instant (`started_at`, `snapshot_at` ...) get a
  `local_date` column, the site's working day of that instant, as a stored generated column
  (`ensure_local_date`), in PostgreSQL and in the lake. One setting for now; per-site zones
  move with the sites (issue 14).
"""

from __future__ import annotations

import os
from functools import cache
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from connectors.streams import Stream

LOCAL_DATE = "local_date"
SITE_TIMEZONE = "Europe/Moscow"
AREA_TIMEZONES = {"Москва": "Europe/Moscow", "Екатеринбург": "Asia/Yekaterinburg",
                  "Новосибирск": "Asia/Novosibirsk", "Самара": "Europe/Samara"}
LOCAL_DAY_SYSTEMS = ("contact center",)      # systems whose instants belong to the site's working day


class UnknownArea(ValueError):
    """An employee's area has no configured time zone."""


@cache
def zone(name: str) -> str:
    """`name` if it is an IANA zone; a one-line error otherwise."""
    try:
        ZoneInfo(name)
    except Exception:
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


def area_timezones() -> dict[str, str]:
    """area → IANA zone: the known sites, then WFM_SITE_TIMEZONES, then WFM_AREA_TIMEZONES."""
    mapping = dict(AREA_TIMEZONES)
    for variable in ("WFM_SITE_TIMEZONES", "WFM_AREA_TIMEZONES"):
        for item in filter(None, (i.strip() for i in os.environ.get(variable, "").split(","))):
            area, sep, name = (part.strip() for part in item.partition("="))
            if not sep or not area:
                raise ValueError(f"{variable} item {item!r} is not Area=Zone")
            mapping[area] = zone(name)
    return mapping


def zone_of_area(area: str | None, mapping: dict[str, str]) -> str:
    """The zone of an employee's area; `UnknownArea` with what to configure when there is none."""
    name = (area or "").strip()
    if name in mapping:
        return mapping[name]
    if not name:
        raise UnknownArea("employees.area is empty, so the time zone is unknown: set the area in 1C")
    raise UnknownArea(f"employees.area {name!r} has no time zone: add it to WFM_AREA_TIMEZONES "
                      f"(e.g. WFM_AREA_TIMEZONES=\"{name}=Asia/Omsk\")")


def site_timezone() -> str:
    """The site's zone, whose calendar days are the contact center's working days."""
    return zone(os.environ.get("WFM_SITE_TIMEZONE") or SITE_TIMEZONE)


def has_local_date(stream: Stream) -> bool:
    """Whether a stream's rows carry `local_date`: a contact-center stream partitioned by an instant."""
    if stream.system not in LOCAL_DAY_SYSTEMS or stream.partition is None:
        return False
    return next((f.type for f in stream.fields if f.column == stream.partition), None) == "timestamp" or any(
        f.name == stream.partition for f in stream.extra)


def ensure_local_date(conn: psycopg.Connection, stream: Stream, table: sql.Composable) -> None:
    """Add `local_date` to an existing table, or recompute it for a new site zone; call inside the
    DDL transaction. The table is rewritten once (ALTER TABLE ... STORED); every row stays, and
    every published partition is queued to be rebuilt with the column."""
    tz, column = site_timezone(), stream.partition or ""
    found = conn.execute("""SELECT generation_expression FROM information_schema.columns WHERE table_schema = 'wfm'
                            AND table_name = %s AND column_name = %s""", (stream.name, LOCAL_DATE)).fetchone()
    if found is not None and f"'{tz}'" in (found[0] or ""):
        return
    add = sql.SQL("ADD COLUMN {} date GENERATED ALWAYS AS ((timezone({}, {}))::date) STORED").format(
        sql.Identifier(LOCAL_DATE), sql.Literal(tz), sql.Identifier(column))
    drop = sql.SQL("DROP COLUMN {}, ").format(sql.Identifier(LOCAL_DATE)) if found is not None else sql.SQL("")
    conn.execute(sql.SQL("ALTER TABLE {} {}{}").format(table, drop, add))
    if conn.execute("SELECT to_regclass('wfm_meta.lake_pending') IS NOT NULL").fetchone() == (True,):
        conn.execute(sql.SQL("""INSERT INTO wfm_meta.lake_pending (table_name, partition, run_id)
                                SELECT DISTINCT {name}, 'date=' || to_char(timezone('UTC', {col}), 'YYYY-MM-DD'),
                                gen_random_uuid() FROM {table} ON CONFLICT DO NOTHING""").format(
            name=sql.Literal(stream.name), col=sql.Identifier(column), table=table))
