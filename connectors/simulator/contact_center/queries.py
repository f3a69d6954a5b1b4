"""The contact-center API's query parameters: what the contract accepts, and a 400 for the rest.

Bounds are ISO-8601 date-times with a zone; id lists are comma-separated, at most `MAX_IDS`, and
the whole query string at most `MAX_QUERY_LENGTH` characters;
`step` is in milliseconds and must divide a day.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from ..base import SimResponse
from .data import DAY

MAX_IDS = 100
MAX_QUERY_LENGTH = 2000


class BadRequest(Exception):
    """A parameter the contract does not accept: answered with 400."""

    def __init__(self, field: str, message: str, description: str = ""):
        super().__init__(message)
        self.body = {"field": field, "message": message, "description": description or message}


def error_response(status: int, field: str | None, message: str, description: str) -> SimResponse:
    return SimResponse.json(status, {"field": field, "message": message, "description": description})


def instant(field: str, value: dt.datetime | str | None) -> float:
    """Epoch seconds of an ISO-8601 date-time with a zone (`Z` or an offset)."""
    return aware_datetime(field, value).timestamp()


def aware_datetime(field: str, value: dt.datetime | str | None) -> dt.datetime:
    if value is None or value == "":
        raise BadRequest(field, f"{field} is required", f"Pass {field} as an ISO-8601 date-time with a zone")
    try:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(field, f"{field} is not a date-time",
                         f"Cannot parse {value!r} as ISO-8601") from None
    if moment.tzinfo is None:
        raise BadRequest(field, f"{field} has no time zone", "Add Z or an offset such as +03:00")
    return moment


def parse_period(query: dict[str, str]) -> tuple[float, float, dt.datetime]:
    start = aware_datetime("startDate", query.get("startDate"))
    end = aware_datetime("endDate", query.get("endDate"))
    if end < start:
        raise BadRequest("endDate", "endDate is before startDate", "The period must not be negative")
    return start.timestamp(), end.timestamp(), start


def parse_step(query: dict[str, str]) -> int:
    """Interval length in seconds; the parameter is in milliseconds."""
    text = query.get("step", "")
    if not text.isdigit() or int(text) % 1000 or int(text) == 0 or DAY * 1000 % int(text):
        raise BadRequest("step", "step is not a valid interval length",
                         "step is a whole number of seconds, in ms, that divides a day (e.g. 900000)")
    return int(text) // 1000


def parse_ids(query: dict[str, str], field: str) -> list[str]:
    ids = list(dict.fromkeys(i.strip() for i in query.get(field, "").split(",") if i.strip()))
    if not ids:
        raise BadRequest(field, f"{field} is required", f"Pass a comma-separated list of {field}")
    if len(ids) > MAX_IDS:
        raise BadRequest(field, "Too many ids", f"At most {MAX_IDS} ids per request, got {len(ids)}")
    return ids


def check_query_length(query: dict[str, str]) -> None:
    if len(urlencode(query, safe=",:")) > MAX_QUERY_LENGTH:
        field = "agentId" if "agentId" in query else "groupId"
        raise BadRequest(field, "Too many ids",
                         f"The query string is longer than {MAX_QUERY_LENGTH} characters")
