"""Converters from a source's JSON values to typed Python values, one per field type.

`records.to_arrow` converts a column in one vectorised Arrow step and falls back to these, value
by value, only to find the values that do not fit: each raises TypeError or ValueError with a
reason that becomes the rejected row's message. They accept what real installations send: 1C's
numbers as strings with a decimal comma, `true` as a string.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc


def to_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    text = str(value)
    if "\x00" in text:
        raise ValueError("a NUL character (PostgreSQL text cannot hold it)")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode (a lone surrogate)") from None
    return text


def to_timestamp(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO-8601 string, got {type(value).__name__}")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("timestamp has no zone")
    try:
        return parsed.astimezone(dt.timezone.utc)
    except OverflowError:   # 9999-12-31T23:00-03:00 is in year 10000 in UTC
        raise ValueError(CALENDAR) from None


def to_date(value: Any) -> dt.date:
    if not isinstance(value, str):
        raise TypeError(f"expected a YYYY-MM-DD string, got {type(value).__name__}")
    return dt.date.fromisoformat(value[:10])


def to_number(value: Any) -> float:
    """A number, or a string holding one — 1C sends "12600000" and "0,5"."""
    if isinstance(value, bool):
        raise TypeError("expected a number, got a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return float(value.strip().replace("\u00a0", "").replace(" ", "").replace(",", "."))
    raise TypeError(f"expected a number, got {type(value).__name__}")


INT64 = (-(2**63), 2**63 - 1)


def to_int(value: Any) -> int:
    """A whole number within int64; an int stays exact (a float holds only 53 bits)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        real = to_number(value)
        if real != int(real):
            raise ValueError("expected a whole number")
        number = int(real)
    if not INT64[0] <= number <= INT64[1]:
        raise ValueError("outside the 64-bit integer range")
    return number


def to_bool(value: Any) -> bool:
    """1C sends `result` as true or as "true"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("expected true or false")


def to_text_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return [to_text(v) for v in value]


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "text": to_text, "timestamp": to_timestamp, "date": to_date, "int": to_int,
    "float": to_number, "bool": to_bool, "json": lambda v: orjson.dumps(v).decode(),
    "text_list": to_text_list,
}


# PostgreSQL refuses a timestamp before year 1 (`0000-12-31 21:00:00Z` from `0001-01-01T00:00+03:00`)
# and Python, which reads rows back for the lake, stops at 9999-12-31: the calendar a value must fit
CALENDAR = "outside 0001-01-01 … 9999-12-31 (UTC), the calendar the warehouse stores"
FIRST, LAST = dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc), dt.datetime.max.replace(tzinfo=dt.timezone.utc)


def outside_calendar(array: pa.Array) -> list[int]:
    """Rows of a timestamp or date column outside 0001-01-01 … 9999-12-31 (UTC)."""
    if pa.types.is_timestamp(array.type):
        if array.type.unit == "ns":          # nanoseconds reach only 1677 … 2262
            return []
        kind = pa.timestamp(array.type.unit, tz="UTC")
        first, last, array = pa.scalar(FIRST, kind), pa.scalar(LAST, kind), array.cast(kind)
    elif pa.types.is_date32(array.type):
        first, last = pa.scalar(dt.date.min, pa.date32()), pa.scalar(dt.date.max, pa.date32())
    else:
        return []
    outside = pc.or_(pc.less(array, first), pc.greater(array, last))
    return pc.indices_nonzero(pc.fill_null(outside, False)).to_pylist()


def with_nul(array: pa.Array, nul: str = "\x00") -> list[int]:
    """Rows of a text column holding a NUL character (or, in JSON text, its escape `\\u0000`), which
    PostgreSQL's text and jsonb cannot store."""
    if not pa.types.is_string(array.type):
        return []
    return pc.indices_nonzero(pc.fill_null(pc.match_substring(array, nul), False)).to_pylist()
