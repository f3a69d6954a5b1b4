"""Local times in files, placed in a zone before they are typed as UTC instants.

Planners export times without a zone (`01.03.2026 08:00`, `2026-03-01 08:00:00`).
With `LocalTimes(zone="Asia/Yekaterinburg")` (`--timezone`, default `WFM_DEFAULT_TIMEZONE` when it
is set) such a value is read in that zone and stored as its UTC instant; a value that carries its
own zone (`Z`, `+03:00`) keeps it. The formats: `--datetime-format` (strptime) first, then ISO
without a zone (`T` or a space between date and time) and `DD.MM.YYYY HH:MM[:SS]`. A local time
in a DST gap of the zone is rejected; an ambiguous one (the hour repeated in autumn) takes the
earlier instant. Without a zone a local time is a row error that names `--timezone`. API data
never comes here: it keeps demanding the contract's instants (`converters.to_timestamp`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

UTC = dt.timezone.utc
ZONED = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"          # an ISO time's own zone, at its end
LOCAL_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M")
NO_ZONE = "timestamp has no zone (a local time?): pass --timezone ZONE (e.g. Europe/Moscow) or set WFM_DEFAULT_TIMEZONE"


@dataclass(frozen=True)
class LocalTimes:
    """How zoneless times in a file are read: in `zone` (an IANA name), `formats` tried first."""

    zone: str | None = None
    datetime_format: str | None = None

    def __post_init__(self) -> None:
        if self.zone is not None:
            import zoneinfo
            try:
                zoneinfo.ZoneInfo(self.zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"--timezone: {self.zone!r} is not a time zone (an IANA name such as "
                                 f"Asia/Yekaterinburg)") from None


def localize(array: pa.Array, times: LocalTimes) -> tuple[pa.Array, dict[int, str]]:
    """A timestamp column with its local times made UTC instants (as ISO text, for the usual cast).

    Returns the column and the rows whose local time cannot be placed (no zone, a DST gap) with
    the reason; other values pass unchanged, for the converters to judge.
    """
    if pa.types.is_timestamp(array.type) and array.type.tz is None:   # Parquet without a zone
        if times.zone is None:
            return array, {i: NO_ZONE for i in pc.indices_nonzero(pc.is_valid(array)).to_pylist()}
        return _placed(array.cast(pa.timestamp("us")), times.zone)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array, {}
    text = pc.utf8_trim_whitespace(array)
    local = pc.and_kleene(pc.is_valid(text), pc.invert(pc.match_substring_regex(text, ZONED)))
    if not pc.any(local).as_py():
        return array, {}
    naive = _parse_local(pc.if_else(local, text, pa.scalar(None, pa.string())), times.datetime_format)
    found = pc.is_valid(naive)
    if not pc.any(found).as_py():
        return array, {}
    if times.zone is None:
        return array, {i: NO_ZONE for i in pc.indices_nonzero(found).to_pylist()}
    placed, problems = _placed(naive, times.zone)
    as_text = pc.if_else(found, placed.cast(pa.string()), array.cast(pa.string()))
    return as_text, problems


def _parse_local(text: pa.Array, datetime_format: str | None) -> pa.Array:
    """Naive timestamps from the first format each value fits; null where none does."""
    attempts = [_strptime(text, f) for f in ((datetime_format,) if datetime_format else ()) + LOCAL_FORMATS]
    iso = pc.replace_substring(text, " ", "T", max_replacements=1)
    if not datetime_format:
        attempts.insert(0, _iso_naive(iso))
    return pc.coalesce(*attempts) if len(attempts) > 1 else attempts[0]


def _strptime(text: pa.Array, fmt: str) -> pa.Array:
    """Arrow's strptime, checked: it rolls 31.02 over into March, so a value that does not print
    back the same is parsed again by Python's strict strptime (which also takes `9.3.2026 8:00`)."""
    parsed = pc.strptime(text, format=fmt, unit="us", error_is_null=True)
    differs = pc.fill_null(pc.not_equal(pc.strftime(parsed, format=fmt), text), True)
    recheck = pc.and_(differs, pc.is_valid(parsed))
    if not pc.any(recheck).as_py():
        return parsed
    values = parsed.to_pylist()
    for i in pc.indices_nonzero(recheck).to_pylist():
        try:
            values[i] = dt.datetime.strptime(text[i].as_py(), fmt)
        except ValueError:
            values[i] = None
    return pa.array(values, pa.timestamp("us"))


def _iso_naive(text: pa.Array) -> pa.Array:
    """ISO date-times without a zone (`T` or a space), null where a value is not one."""
    shape = pc.match_substring_regex(text, r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$")
    candidates = pc.if_else(shape, text, pa.scalar(None, pa.string()))
    try:
        return candidates.cast(pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):   # e.g. month 13: row by row finds them
        values = [_fromiso(v) for v in candidates.to_pylist()]
        return pa.array(values, pa.timestamp("us"))


def _fromiso(value: str | None) -> dt.datetime | None:
    try:
        return None if value is None else dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _placed(naive: pa.Array, zone: str) -> tuple[pa.Array, dict[int, str]]:
    """Naive local times in `zone` as UTC instants; a time the zone's clocks skip is a problem."""
    early = pc.assume_timezone(naive, timezone=zone, ambiguous="earliest", nonexistent="earliest")
    late = pc.assume_timezone(naive, timezone=zone, ambiguous="earliest", nonexistent="latest")
    gaps = pc.indices_nonzero(pc.fill_null(pc.not_equal(early, late), False)).to_pylist()
    reason = f"a local time that does not exist in {zone} (its clocks skip it)"
    return early.cast(pa.timestamp("us", tz="UTC")), {i: reason for i in gaps}
