"""The data-quality gate: suites catch the contract's broken rows, by check name and row index."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest

from connectors import contact_center as cc
from connectors import onec, planning
from engine.project_file import ConfigError
from engine.quality import gate as quality
from engine.quality.gate import QualityCheckError, gate, validate
from engine.quality.suites import SUITES

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
STREAMS = {s.name: s for s in (*cc.STREAMS, *onec.STREAMS, *planning.STREAMS)}

ENDED_BEFORE_STARTED = "ExpectColumnPairValuesAToBeGreaterThanB(ended_at, started_at)"


def good_row(stream: str, i: int) -> dict:
    """One row of `stream` that honest data would send; `i` makes the natural key unique."""
    start = T0 + dt.timedelta(minutes=15 * i)
    if stream == "agent_status_intervals":
        return {"agent_id": str(i % 40), "service_id": "1", "group_id": "", "started_at": start,
                "ended_at": start + dt.timedelta(minutes=5), "state_code": "Work", "state_name": "Contact processing"}
    if stream == "agent_logins":
        return {"agent_id": "1", "login_at": start, "logout_at": start + dt.timedelta(hours=2),
                "duration_ms": 7_200_000}
    if stream == "agent_calls":
        return {"agent_id": "1", "service_id": "1", "group_id": "1", "started_at": start,
                "ended_at": start + dt.timedelta(minutes=5), "duration_ms": 300_000}
    if stream == "agent_chat_work_time":
        return {"agent_id": str(i), "work_date": dt.date(2024, 1, 1), "work_time_ms": 3_600_000}
    if stream == "service_group_intervals":
        return {"service_id": "1", "group_id": "1", "interval_start": start,
                "interval_end": start + dt.timedelta(minutes=15), "not_unique_received": 15, "not_unique_treated": 10,
                "not_unique_missed": 5, "received_calls": 10, "treated_calls": 8, "miss_calls": 2,
                "aht_ms": 360_000, "post_processing_ms": 3_000}
    if stream == "cc_groups":
        return {"service_id": "1", "group_id": str(i), "name": "Support", "status": "ACTIVE",
                "channel_type": None if i % 2 else "INCOMING_CALLS"}
    if stream == "employees":
        return {"employee_id": f"7135c70d-{i:04d}", "tab_n": f"223-{i}", "last_name": "Шастный",
                "first_name": "Никита", "second_name": None, "start_work": dt.date(2016, 9, 1),
                "finish_work": None if i % 2 else dt.date(2024, 3, 1), "position_id": "79bc", "position": "Специалист",
                "position_change_date": None, "department_id": "15fc", "rate": 0.5, "login": None, "norm_week": 40.0,
                "norm_week_change_date": dt.date(2016, 9, 1), "sn": None, "db_id": None, "area": "Екатеринбург"}
    if stream == "timesheet_days":
        return {"employee_id": str(i), "work_date": dt.date(2018, 3, 28),
                "day_start": dt.datetime(2018, 3, 27, 21, tzinfo=UTC), "time_type": "Я", "hours": 11.0}
    raise ValueError(stream)


def batch(stream: str, n: int = 10, changes: dict[int, dict] | None = None) -> pa.Table:
    """`n` good rows of `stream`, with `changes` (row index -> new values) applied."""
    rows = [good_row(stream, i) for i in range(n)]
    for row, values in (changes or {}).items():
        rows[row].update(values)
    return pa.Table.from_pylist(rows, schema=STREAMS[stream].schema)


def test_every_stream_has_a_small_suite():
    assert set(SUITES) == set(STREAMS)
    assert all(1 <= len(s.expectations.expectations) <= 25 for s in SUITES.values())


@pytest.mark.parametrize("stream", ["agent_status_intervals", "agent_logins", "agent_calls", "agent_chat_work_time",
                                    "service_group_intervals", "cc_groups", "employees", "timesheet_days"])
def test_good_batches_pass(stream):
    result = validate(stream, batch(stream, 20))
    assert result.success, result.to_dict()
    assert not result.warnings and result.failed_share == 0.0 and result.rows == 20
    assert gate(result).publish


@pytest.mark.parametrize("stream, bad, check", [
    ("agent_status_intervals", {"ended_at": T0 - dt.timedelta(hours=1)}, ENDED_BEFORE_STARTED),
    ("agent_logins", {"logout_at": T0 - dt.timedelta(hours=1)},
     "ExpectColumnPairValuesAToBeGreaterThanB(logout_at, login_at)"),
    ("agent_calls", {"duration_ms": -1}, "ExpectColumnValuesToBeBetween(duration_ms)"),
    ("agent_calls", {"agent_id": None}, "ExpectColumnValuesToNotBeNull(agent_id)"),
    ("agent_calls", {"agent_id": ""}, "ExpectColumnValueLengthsToBeBetween(agent_id)"),
    ("agent_calls", {"group_id": "g" * 201}, "ExpectColumnValueLengthsToBeBetween(group_id)"),
    ("agent_chat_work_time", {"work_time_ms": 86_400_001}, "ExpectColumnValuesToBeBetween(work_time_ms)"),
    ("service_group_intervals", {"not_unique_missed": 6},
     "ExpectMulticolumnSumToEqual(not_unique_treated, not_unique_missed, -not_unique_received)"),
    ("service_group_intervals", {"miss_calls": 3},
     "ExpectMulticolumnSumToEqual(treated_calls, miss_calls, -received_calls)"),
    ("service_group_intervals", {"treated_calls": 11, "miss_calls": -1},
     "ExpectColumnPairValuesAToBeGreaterThanB(not_unique_treated, treated_calls)"),
    ("service_group_intervals", {"interval_end": T0 + dt.timedelta(minutes=45)},
     "ExpectColumnPairValuesAToBeGreaterThanB(interval_end, interval_start)"),
    ("employees", {"start_work": None}, "ExpectColumnValuesToNotBeNull(start_work)"),
    ("timesheet_days", {"time_type": "XX"}, "ExpectColumnValuesToBeInSet(time_type)"),
    ("timesheet_days", {"hours": 24.5}, "ExpectColumnValuesToBeBetween(hours)"),
])
def test_each_rule_catches_its_bad_row(stream, bad, check):
    result = validate(stream, batch(stream, 10, {3: bad}))
    assert not result.success
    assert check in result.failed_rows[3]
    assert set(result.failed_rows) == {3}
    failing = next(c for c in result.checks if c.name == check)
    assert (failing.severity, failing.success, failing.unexpected_count) == ("error", False, 1)
    assert failing.examples


def test_the_contracts_no_group_is_an_empty_string_not_a_broken_key():
    assert validate("agent_status_intervals", batch("agent_status_intervals", 5, {1: {"group_id": ""}})).success


def test_timesheet_codes_include_night_work_on_a_day_off():
    assert validate("timesheet_days", batch("timesheet_days", 5, {2: {"time_type": "РВН"}})).success


@pytest.mark.parametrize("stream, odd, check", [
    ("employees", {"rate": 3.0}, "ExpectColumnValuesToBeBetween(rate)"),
    ("employees", {"norm_week": 0.0}, "ExpectColumnValuesToBeBetween(norm_week)"),
    ("employees", {"finish_work": dt.date(2010, 1, 1)},
     "ExpectColumnPairValuesAToBeGreaterThanB(finish_work, start_work)"),
    ("cc_groups", {"channel_type": "FAX"}, "ExpectColumnValuesToBeInSet(channel_type)"),
    ("agent_calls", {"started_at": T0, "ended_at": T0 + dt.timedelta(minutes=5)},   # row 0 again
     "ExpectCompoundColumnsToBeUnique(agent_id, service_id, group_id, started_at, ended_at)"),
])
def test_warnings_are_recorded_and_the_row_is_kept(stream, odd, check):
    result = validate(stream, batch(stream, 10, {4: odd}))
    assert result.success and not result.failed_rows
    assert [c.name for c in result.warnings] == [check]
    assert "warnings: " + check in gate(result).message


def test_a_thousand_failing_rows_are_all_indexed_and_split_off():
    n, bad = 5_000, set(range(0, 5_000, 5))
    rows = [good_row("agent_status_intervals", i) for i in range(n)]
    for i in bad:
        rows[i]["ended_at"] = rows[i]["started_at"] - dt.timedelta(seconds=1)
    table = pa.Table.from_pylist(rows, schema=cc.AGENT_STATUS_INTERVALS.schema)
    result = validate("agent_status_intervals", table)
    assert set(result.failed_rows) == bad
    assert next(c for c in result.checks if c.name == ENDED_BEFORE_STARTED).unexpected_count == 1_000
    good, quarantined = result.split(table)
    assert (good.num_rows, quarantined.num_rows) == (4_000, 1_000)
    assert good.schema == table.schema and quarantined.column("started_at")[1].as_py() == rows[5]["started_at"]
    rejects = result.rejects(table)
    assert len(rejects) == 1_000 and rejects[0].reason == f"failed {ENDED_BEFORE_STARTED}"


def test_tz_aware_timestamps_in_any_zone_compare_as_instants():
    moscow = pa.timestamp("us", tz="Europe/Moscow")
    table = batch("agent_status_intervals", 4, {2: {"ended_at": T0 + dt.timedelta(minutes=29)}})
    table = table.set_column(3, "started_at", table.column("started_at").cast(moscow))
    result = validate("agent_status_intervals", table)
    assert list(result.failed_rows) == [2] and result.failed_rows[2] == [ENDED_BEFORE_STARTED]


def test_the_gate_holds_back_a_window_over_its_threshold():
    table = batch("agent_status_intervals", 2_000)
    late = pa.array([T0 - dt.timedelta(hours=1) if i < 240 else v.as_py()
                     for i, v in enumerate(table.column("ended_at"))], table.schema.field("ended_at").type)
    result = validate("agent_status_intervals", table.set_column(4, "ended_at", late))
    decision = gate(result, window="2024-01-01..2024-01-02")
    assert decision == quality.GateDecision(False, (
        "agent_status_intervals window 2024-01-01..2024-01-02: 12.0% of 2,000 rows failed (threshold 5.0%): "
        "ExpectColumnPairValuesAToBeGreaterThanB(ended_at, started_at) 240 rows"))
    assert result.failed_share == pytest.approx(0.12)
    assert gate(result, 0.12).publish
    assert gate(result, thresholds={"agent_status_intervals": 0.2}).publish
    assert not gate(result, thresholds={"agent_calls": 0.2}).publish


def test_the_registry_threshold_applies(monkeypatch):
    result = validate("agent_calls", batch("agent_calls", 10, {0: {"duration_ms": -5}}))
    assert not gate(result).publish
    monkeypatch.setitem(SUITES, "agent_calls", SUITES["agent_calls"].__class__(
        cc.AGENT_CALLS, SUITES["agent_calls"].expectations, threshold=0.1))
    assert gate(result).publish


def test_an_empty_batch_passes_without_gx(monkeypatch):
    monkeypatch.setattr(quality, "_batch_definitions", lambda: pytest.fail("GX was called"))
    result = validate("agent_calls", cc.AGENT_CALLS.schema.empty_table())
    assert result.success and result.rows == 0 and result.failed_share == 0.0
    assert gate(result, window="w") == quality.GateDecision(True, "agent_calls window w: no rows")


def test_a_good_batch_after_a_bad_one_is_judged_on_its_own_rows():
    assert not validate("agent_calls", batch("agent_calls", 10, {9: {"duration_ms": -1}})).success
    assert validate("agent_calls", batch("agent_calls", 3)).success


def test_concurrent_windows_get_their_own_results():
    def one(k: int) -> set[int]:
        negative = {i: {"duration_ms": -1} for i in range(k)}
        return set(validate("agent_calls", batch("agent_calls", 50, negative)).failed_rows)

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(16))) == [set(range(k)) for k in range(16)]


def test_the_summary_is_json():
    result = validate("service_group_intervals", batch("service_group_intervals", 10, {1: {"aht_ms": -1}}))
    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["failed_rows"] == 1 and summary["stream"] == "service_group_intervals"
    assert {"name": "ExpectColumnValuesToBeBetween(aht_ms)", "severity": "error", "success": False,
            "unexpected_count": 1, "examples": ["-1"]} in summary["checks"]


def test_a_check_that_cannot_run_is_an_error_not_a_pass():
    with pytest.raises(QualityCheckError, match="duration_ms"):
        validate("agent_calls", batch("agent_calls", 3).drop_columns(["duration_ms"]))


def test_an_unknown_stream_is_named():
    with pytest.raises(KeyError, match="no expectation suite for stream 'agent_chats'"):
        validate("agent_chats", pa.table({"x": [1]}))


def write_config(text: str) -> None:
    """wfm.toml in the test's data dir, where the project looks for it."""
    data = Path(os.environ["WFM_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    (data / "wfm.toml").write_text(text, encoding="utf-8")


def test_a_row_check_set_to_warn_or_off_quarantines_nothing_and_the_threshold_is_configured():
    bad = batch("timesheet_days", 10, {3: {"time_type": "XX"}, 5: {"hours": 25.0}})
    assert set(validate("timesheet_days", bad).failed_rows) == {3, 5}
    write_config('[expectations.timesheet_days]\nthreshold = 0.5\n'
                 '"ExpectColumnValuesToBeInSet(time_type)" = "warn"\n"ExpectColumnValuesToBeBetween(hours)" = "off"\n')
    result = validate("timesheet_days", bad)
    assert result.success and [c.name for c in result.warnings] == ["ExpectColumnValuesToBeInSet(time_type)"]
    assert "ExpectColumnValuesToBeBetween(hours)" not in {c.name for c in result.checks}
    write_config('[expectations.timesheet_days]\nthreshold = 0.5\n')
    assert gate(validate("timesheet_days", bad)).publish          # 20% failing, under the configured 50%


@pytest.mark.parametrize("text, message", [
    ('[expectations.timesheet_days]\n"ExpectNothing(x)" = "warn"\n', "is no check of timesheet_days"),
    ('[expectations.timesheet_days]\n"ExpectColumnValuesToBeBetween(hours)" = "loud"\n', "use error, warn or off"),
    ("[expectations.timesheet_days\n", "wfm.toml: "),
])
def test_a_wrong_policy_is_one_line_naming_the_file(text, message):
    write_config(text)
    with pytest.raises(ConfigError, match=message) as caught:
        validate("timesheet_days", batch("timesheet_days", 3))
    assert "wfm.toml" in str(caught.value) and "\n" not in str(caught.value)



HEAVY = "print(','.join(m for m in ('great_expectations', 'pandas') if m in sys.modules) or 'none')"


@pytest.mark.parametrize("statement, loaded", [
    ("import flows.sync", "none"),    # flows.sync imports gate.py and suites.py (tasks.checks → quality.replay)
    ("import engine.quality.gate as g; g.preload()", "great_expectations,pandas"),
])
def test_importing_the_flows_leaves_gx_and_pandas_to_the_first_validation(statement, loaded):
    # a fresh interpreter: this one imported GX with the tests above
    done = subprocess.run([sys.executable, "-c", f"import sys; {statement}; {HEAVY}"], capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == loaded


def test_preload_builds_the_gx_context_with_every_suite():
    quality.preload()
    assert quality._batch_definitions.cache_info().currsize == 1
    assert set(quality._batch_definitions()) == set(SUITES)   # a batch definition for every stream
