"""One Great Expectations suite per stream: what a batch must satisfy before it lands.

Every stream gets the checks its natural key implies (key columns not null; ids 1–200
characters, or 0–200 where the contract's "no group" is an empty string; a warning on duplicate
keys). The domain rules of `source-api/contact-center.md` and `onec-zup.md` are added per stream
below. Severity is GX's own field on each expectation and follows one rule:

- CRITICAL, GX's default, reported as "error": the row is quarantined. For rows that would be
  wrong in the warehouse: a broken key, an interval that ends before it starts, a negative
  duration or count, a broken invariant of the contract, an unknown timesheet code.
- WARNING, reported as "warn": recorded only. For odd values in rows worth keeping: an unknown
  status or channel, an implausible rate, norm or vacation balance, a dismissal before hiring.

Every rule is a GX 1.x row-level expectation. GX has no "a = b + c" expectation, and
`UnexpectedRowsExpectation` runs only on SQL and Spark, so `balance` states the sum invariants of
`serviceGroupData` (`received = treated + missed`) as `treated + missed + (-received) = 0` with
`ExpectMulticolumnSumToEqual`; the validator adds the negated column `-received` to the frame
(see `Suite.negated`).

Great Expectations takes seconds to import, and a run whose windows are all unchanged never
validates: GX is imported by the first use of `SUITES` (built then, once per process) or of a
builder below, not by importing this module.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from connectors import contact_center as cc
from connectors import onec, planning
from connectors.streams import Stream

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

__all__ = ["DEFAULT_THRESHOLD", "SUITES", "Suite", "check_name"]

DEFAULT_THRESHOLD = 0.05        # share of error-failing rows above which a window is held back
MAX_ID_LENGTH = 200
DAY_MS = 86_400_000
_BUILD_LOCK = threading.Lock()
CHANNEL_TYPES = ("CHATS", "MAILS", "INCOMING_CALLS", "OUTGOING_CALLS")
STATUSES = ("ACTIVE", "INACTIVE")
# forms Т-12/Т-13, plus РВН (night work on a day off) that 1C writes for sendFactWorkTime
TIME_TYPES = ("Я", "Н", "РВ", "С", "К", "ОТ", "ОД", "У", "Б", "Т", "ПР", "НС", "В", "ОВ", "НВ", "НН",
              "РП", "НП", "ВП", "РВН")


@dataclass(frozen=True)
class Suite:
    """A stream's expectations and the failing share its windows may carry and still publish."""

    stream: Stream
    expectations: gx.ExpectationSuite
    threshold: float = DEFAULT_THRESHOLD

    @property
    def columns(self) -> tuple[str, ...]:
        """The batch columns the expectations read (a `-column` is derived from `column`)."""
        named = [c for e in self.expectations.expectations for key in ("column", "column_A", "column_B", "column_list")
                 for c in _as_list(getattr(e, key, None))]
        return tuple(dict.fromkeys(c.removeprefix("-") for c in named))

    @property
    def negated(self) -> tuple[str, ...]:
        """Columns a `balance` reads as `-column`; the validator derives them."""
        return tuple(dict.fromkeys(c[1:] for e in self.expectations.expectations
                                   for c in getattr(e, "column_list", None) or () if c.startswith("-")))


def _as_list(value) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def suite(stream: Stream, *rules: Expectation | Iterable[Expectation],
          threshold: float = DEFAULT_THRESHOLD) -> Suite:
    """The key checks of `stream` followed by its domain rules."""
    import great_expectations as gx
    from great_expectations.expectations.expectation import Expectation

    expectations = [*key_checks(stream)]
    for rule in rules:
        expectations.extend([rule] if isinstance(rule, Expectation) else rule)
    names = [check_name(e.configuration) for e in expectations]
    if len(set(names)) < len(names):
        raise ValueError(f"{stream.name}: two expectations share a name; results are matched by name")
    return Suite(stream, gx.ExpectationSuite(name=stream.name, expectations=expectations), threshold)


def check_name(config: ExpectationConfiguration) -> str:
    """Class name and columns, as results and messages show it: `ExpectColumnValuesToBeBetween(duration_ms)`."""
    kind = "".join(word.capitalize() for word in config.type.split("_"))
    kwargs = config.kwargs
    columns = kwargs.get("column_list") or [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    return f"{kind}({', '.join(columns)})"


def key_checks(stream: Stream) -> list[Expectation]:
    """Key columns present, ids of a sane length, and (a warning) no key twice in a batch."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    types = dict(zip(stream.schema.names, stream.schema.types))
    may_be_empty = {f.column for f in stream.fields if f.default == ""}
    checks: list[Expectation] = []
    for column in stream.key:
        checks.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
        if types[column] == pa.string():
            checks.append(gxe.ExpectColumnValueLengthsToBeBetween(
                column=column, min_value=0 if column in may_be_empty else 1, max_value=MAX_ID_LENGTH))
    if len(stream.key) > 1:
        checks.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(stream.key), severity=FailureSeverity.WARNING))
    else:
        checks.append(gxe.ExpectColumnValuesToBeUnique(column=stream.key[0], severity=FailureSeverity.WARNING))
    return checks


def not_before(later: str, earlier: str, **options) -> Expectation:
    """`later` >= `earlier`: an interval may be empty but never end before it starts."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=later, column_B=earlier, or_equal=True, **options)


def after(later: str, earlier: str) -> Expectation:
    """`later` > `earlier`."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=later, column_B=earlier, or_equal=False)


def non_negative(*columns: str) -> list[Expectation]:
    """Durations and counts are never below zero."""
    import great_expectations.expectations as gxe

    return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in columns]


def within(column: str, low: float, high: float, **options) -> Expectation:
    """`low` <= value <= `high` (`strict_min=True` excludes `low`); a null is not checked here."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high, **options)


def balance(total: str, *parts: str) -> Expectation:
    """`total` = sum of `parts`, checked as parts + (-total) = 0."""
    import great_expectations.expectations as gxe

    return gxe.ExpectMulticolumnSumToEqual(column_list=[*parts, f"-{total}"], sum_total=0)


def one_of(column: str, values: Iterable[str], **options) -> Expectation:
    """A code from the contract's list; a null is not checked here."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(values), **options)


SUITES: dict[str, Suite]   # bound by the first `SUITES` read (`__getattr__` below), then an ordinary dict


def __getattr__(name: str) -> Any:
    """`SUITES`, built on first use: that imports Great Expectations (seconds)."""
    if name != "SUITES":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _BUILD_LOCK:
        if "SUITES" not in globals():
            globals()["SUITES"] = _suites()
    return globals()["SUITES"]


def _suites() -> dict[str, Suite]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    WARNING = FailureSeverity.WARNING  # noqa: N806  (the severity's name in the rules below)

    return {s.stream.name: s for s in (
        suite(cc.CC_SERVICES, one_of("status", STATUSES, severity=WARNING)),
        suite(cc.CC_GROUPS, one_of("status", STATUSES, severity=WARNING),
              one_of("channel_type", CHANNEL_TYPES, severity=WARNING)),
        suite(cc.CC_AGENTS),
        suite(cc.SERVICE_GROUP_INTERVALS,
              after("interval_end", "interval_start"),
              non_negative("not_unique_received", "not_unique_treated", "not_unique_missed",
                           "received_calls", "treated_calls", "miss_calls", "aht_ms", "post_processing_ms"),
              balance("not_unique_received", "not_unique_treated", "not_unique_missed"),
              balance("received_calls", "treated_calls", "miss_calls"),
              not_before("not_unique_received", "received_calls"),
              not_before("not_unique_treated", "treated_calls"),
              not_before("not_unique_missed", "miss_calls")),
        suite(cc.AGENT_STATUS_INTERVALS, not_before("ended_at", "started_at")),
        suite(cc.AGENT_LOGINS, not_before("logout_at", "login_at"), non_negative("duration_ms")),
        suite(cc.AGENT_CALLS, not_before("ended_at", "started_at"), non_negative("duration_ms")),
        suite(cc.AGENT_CHAT_WORK_TIME, within("work_time_ms", 0, DAY_MS)),
        suite(cc.ONLINE_AGENT_STATUS),
        suite(cc.ONLINE_GROUP_LOAD,
              non_negative("call_number", "operator_number", "call_received", "aht_ms", "awt_ms",
                           "call_answered", "call_answered_tst", "call_processing")),
        suite(onec.DEPARTMENTS),
        suite(onec.EMPLOYEES,
              gxe.ExpectColumnValuesToNotBeNull(column="start_work"),
              not_before("finish_work", "start_work", ignore_row_if="either_value_is_missing", severity=WARNING),
              within("rate", 0, 2, strict_min=True, severity=WARNING),
              within("norm_week", 0, 60, strict_min=True, severity=WARNING)),
        suite(onec.VACATION_BALANCES, within("vacation_days", -100, 200, severity=WARNING)),
        suite(onec.NORM_HOURS, non_negative("norm_hours"), not_before("period_end", "period_start")),
        suite(onec.TIMESHEET_DAYS, within("hours", 0, 24), one_of("time_type", TIME_TYPES)),
        suite(onec.TIMESHEET_SUMMARIES, non_negative("half1_days", "half1_hours", "half2_days", "half2_hours")),
        suite(planning.PLANNED_SHIFTS, after("shift_end", "shift_start"), within("unpaid_break_minutes", 0, 720)),
    )}
