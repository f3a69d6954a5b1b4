"""The data-quality gate: every batch (one window of one stream) is checked before it lands.

    result = validate("agent_calls", table)          # runs the stream's suite (engine/quality/suites.py)
    good, bad = result.split(table)                  # bad rows failed a CRITICAL expectation
    decision = gate(result, window=window.label)     # publish unless too many rows failed

`validate` turns the Arrow table into a pandas frame and runs the suite through one ephemeral GX
context per process, made on first use (GX is imported then, not with this module: seconds that a
run whose windows are all unchanged never pays; `preload()` pays them ahead). GX keeps the batch
being validated inside its execution engine under the asset's name, so two threads validating at
once would read each other's data: a lock lets one batch through at a time. A validation returns one
`ExpectationResult` per expectation and, for the CRITICAL ones, the index of every failing row (GX's
COMPLETE result format lists all of them, not a sample), so the caller quarantines exactly those
rows with the names of the checks they failed. WARNING expectations are recorded, never enforced.
`[expectations.<stream>]` of wfm.toml (`engine/quality/policies.py`) can make a check error, warn or off
(an off check's result is dropped) and set the stream's threshold.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from connectors.records import Reject
from engine.quality import suites
from engine.quality.policies import OFF, ExpectationPolicy, expectation_policy
from engine.quality.suites import Suite, check_name

if TYPE_CHECKING:   # GX and pandas take seconds to import: the first validation imports them
    import pandas as pd
    from great_expectations.core.batch_definition import BatchDefinition

__all__ = ["ExpectationResult", "GateDecision", "QualityCheckError", "ValidationResult", "gate", "policy_of",
           "preload", "validate"]

ERROR, WARN = "error", "warn"
EXAMPLES = 3
RESULT_FORMAT = {"result_format": "COMPLETE", "partial_unexpected_count": EXAMPLES,
                 "return_unexpected_index_query": False}
_GX_LOCK = threading.Lock()


class QualityCheckError(RuntimeError):
    """An expectation could not run at all (e.g. its column is missing): a bug, not bad data."""


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation's verdict on one batch."""

    name: str                   # "ExpectColumnPairValuesAToBeGreaterThanB(ended_at, started_at)"
    severity: str               # "error": failing rows are quarantined; "warn": recorded only
    success: bool
    unexpected_count: int
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidationResult:
    """A batch's checks and the rows that failed an error-severity check, by row index."""

    stream: str
    rows: int
    checks: list[ExpectationResult] = field(default_factory=list)
    failed_rows: dict[int, list[str]] = field(default_factory=dict)  # row -> names of failed checks
    seconds: float = 0.0

    @property
    def success(self) -> bool:
        """No row failed an error-severity check."""
        return not self.failed_rows

    @property
    def failed_share(self) -> float:
        """The share of rows that failed an error-severity check."""
        return len(self.failed_rows) / self.rows if self.rows else 0.0

    @property
    def errors(self) -> list[ExpectationResult]:
        """The error-severity checks that failed."""
        return [c for c in self.checks if c.severity == ERROR and not c.success]

    @property
    def warnings(self) -> list[ExpectationResult]:
        """The warn-severity checks that failed: recorded, not enforced."""
        return [c for c in self.checks if c.severity == WARN and not c.success]

    def split(self, table: pa.Table) -> tuple[pa.Table, pa.Table]:
        """(good rows, bad rows) of the validated table; bad rows in the order of `failed_rows`."""
        bad = sorted(self.failed_rows)
        if not bad:
            return table, table.slice(0, 0)
        bad_set = set(bad)
        good = [i for i in range(table.num_rows) if i not in bad_set]
        return table.take(pa.array(good, pa.int64())), table.take(pa.array(bad, pa.int64()))

    def rejects(self, table: pa.Table) -> list[Reject]:
        """The bad rows as `Reject`s, the reason naming every check the row failed."""
        _, bad = self.split(table)
        return [Reject(f"failed {'; '.join(self.failed_rows[i])}", None, row)
                for i, row in zip(sorted(self.failed_rows), bad.to_pylist())]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary for the ledger and the run's artifact (no row data)."""
        return {"stream": self.stream, "rows": self.rows, "success": self.success,
                "failed_rows": len(self.failed_rows), "failed_share": round(self.failed_share, 6),
                "seconds": round(self.seconds, 4), "checks": [asdict(c) for c in self.checks]}


@dataclass(frozen=True)
class GateDecision:
    """Whether a window's good rows are published, and one line saying why."""

    publish: bool
    message: str


def validate(stream_name: str, table: pa.Table) -> ValidationResult:
    """Run the stream's suite on one batch; an empty batch passes without calling GX."""
    suite = _suite(stream_name)
    if table.num_rows == 0:
        return ValidationResult(stream_name, 0)
    started = time.perf_counter()
    frame = _frame(table, suite)
    with _GX_LOCK:
        batch = _batch_definitions()[stream_name].get_batch(batch_parameters={"dataframe": frame})
        outcome = batch.validate(suite.expectations, result_format=RESULT_FORMAT)
    checks, failed_rows = _read(stream_name, outcome.results, suite, policy_of(stream_name))
    return ValidationResult(stream_name, table.num_rows, checks, failed_rows, time.perf_counter() - started)


def gate(result: ValidationResult, threshold: float | None = None, *,
         thresholds: Mapping[str, float] | None = None, window: str = "") -> GateDecision:
    """Publish unless the share of error-failing rows exceeds the stream's threshold.

    The threshold is `threshold` if given, else `thresholds[stream]`, else wfm.toml's, else the suite's own.
    Publishing means the good rows land and the bad ones go to quarantine; a window held back
    lands nothing.
    """
    if threshold is None:
        configured = policy_of(result.stream).threshold
        threshold = (thresholds or {}).get(result.stream, _suite(result.stream).threshold if configured is None
                                           else configured)
    head = f"{result.stream} window {window}" if window else result.stream
    if not result.rows:
        return GateDecision(True, f"{head}: no rows")
    if result.success:
        message = f"{head}: all {result.rows:,} rows passed"
    else:
        failures = "; ".join(f"{c.name} {c.unexpected_count:,} rows" for c in result.errors)
        message = (f"{head}: {result.failed_share:.1%} of {result.rows:,} rows failed "
                   f"(threshold {threshold:.1%}): {failures}")
    if result.warnings:
        message += "; warnings: " + "; ".join(f"{c.name} {c.unexpected_count:,} rows" for c in result.warnings)
    return GateDecision(result.failed_share <= threshold, message)


def policy_of(stream_name: str) -> ExpectationPolicy:
    """The stream's row-check policy from wfm.toml, checked against its suite's check names."""
    names = tuple(check_name(e.configuration) for e in _suite(stream_name).expectations.expectations)
    return expectation_policy(stream_name, names)


def preload() -> None:
    """Import GX and pandas and build the suites and GX's context now (seconds), e.g. while the
    CLI waits for its Prefect API, so the first window that validates does not wait."""
    suites.SUITES   # noqa: B018  (GX's import happens here, under the suites' build lock)
    with _GX_LOCK:
        _batch_definitions()


def _suite(stream_name: str) -> Suite:
    try:
        return suites.SUITES[stream_name]
    except KeyError:
        raise KeyError(f"no expectation suite for stream {stream_name!r}") from None


def _frame(table: pa.Table, suite: Suite) -> pd.DataFrame:
    """The columns the suite reads as pandas, indexed 0..n-1 like the table, plus the negated
    columns of `balance`.

    Plain NumPy-backed dtypes: GX 1.24 handles them, tz-aware timestamps included, and runs an
    order of magnitude slower on `pd.ArrowDtype` columns.
    """
    # only the columns the suite reads; pandas metadata could restore a non-range index
    read = [c for c in suite.columns if c in table.column_names]   # a missing one is GX's to report
    frame = table.select(read).to_pandas(ignore_metadata=True)
    for column in suite.negated:
        frame[f"-{column}"] = -frame[column]
    return frame


@functools.cache
def _batch_definitions() -> dict[str, BatchDefinition]:
    """One ephemeral GX context per process with a dataframe asset per stream (call under the lock)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("wfm")
    return {name: source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("window")
            for name in suites.SUITES}


def _read(stream_name: str, results: list, suite: Suite,
          policy: ExpectationPolicy) -> tuple[list[ExpectationResult], dict[int, list[str]]]:
    """Checks in the suite's order (less those the policy turns off), and the failing rows of the
    error-severity ones."""
    from great_expectations.expectations.metadata_types import FailureSeverity

    outcomes = {check_name(outcome.expectation_config): outcome for outcome in results}
    checks: list[ExpectationResult] = []
    failed_rows: dict[int, list[str]] = {}
    for expectation in suite.expectations.expectations:
        name = check_name(expectation.configuration)
        if policy.severities.get(name) == OFF:
            continue
        outcome = outcomes[name]
        found = outcome.result
        if error := _raised(outcome.exception_info):
            raise QualityCheckError(f"{stream_name}: {name} could not run: {error}")
        severity = policy.severities.get(name) or (ERROR if expectation.severity == FailureSeverity.CRITICAL else WARN)
        examples = tuple(_show(v) for v in found.get("partial_unexpected_list", [])[:EXAMPLES])
        checks.append(ExpectationResult(name, severity, bool(outcome.success), int(found.get("unexpected_count") or 0),
                                  examples))
        if severity == ERROR and not outcome.success:
            if "unexpected_index_list" not in found:
                raise QualityCheckError(f"{stream_name}: {name} reported no row indices")
            for row in found["unexpected_index_list"]:
                failed_rows.setdefault(int(row), []).append(name)
    return checks, dict(sorted(failed_rows.items()))


def _raised(info: dict | None) -> str | None:
    """GX's exception message for an expectation that failed to run, else None."""
    if not info:
        return None
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    return next((e.get("exception_message") or "error" for e in entries if e.get("raised_exception")), None)


def _show(value: Any) -> str:
    """An example value as one short line: `-1`, `2024-01-01 09:00:00+00:00, 2024-01-01 10:00:00+00:00`."""
    if isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, (tuple, list)):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
