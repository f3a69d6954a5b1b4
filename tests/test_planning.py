"""Pure planning logic: periods of a run, request windows, deduplication."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from connectors import contact_center as cc
from connectors import onec
from connectors.streams import day_spans, month_spans, windows
from engine.landing.warehouse import deduplicate
from flows.sync import plan_period

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 22, 10, 30, tzinfo=UTC)


def at(day: int, month: int = 11, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=UTC)


def test_incremental_starts_at_the_watermark_minus_lookback_at_a_day_boundary():
    mode, start, end = plan_period(cc.AGENT_LOGINS, at(20, hour=15), NOW, None, None)
    assert (mode, start, end) == ("incremental", at(19), NOW)


def test_first_incremental_run_goes_back_the_initial_days():
    mode, start, _ = plan_period(cc.AGENT_CALLS, None, NOW, None, None)
    assert mode == "incremental" and start == at(14)   # 7 days, minus 12 h lookback, floored


def test_backfill_days_are_inclusive():
    assert plan_period(cc.AGENT_CALLS, at(20), NOW, dt.date(2026, 11, 1), dt.date(2026, 11, 3)) == (
        "backfill", at(1), at(4))
    with pytest.raises(ValueError, match="before --start"):
        plan_period(cc.AGENT_CALLS, None, NOW, dt.date(2026, 11, 3), dt.date(2026, 11, 1))


def test_online_snapshots_are_always_now_and_structure_is_today():
    assert plan_period(cc.ONLINE_GROUP_LOAD, None, NOW, dt.date(2026, 1, 1), None) == ("snapshot", NOW, NOW)
    assert plan_period(cc.CC_AGENTS, None, NOW, None, None) == ("snapshot", at(22), at(23))
    assert plan_period(onec.NORM_HOURS, None, NOW, None, None) == ("snapshot", at(1, 1), dt.datetime(2027, 1, 1, tzinfo=UTC))


def test_day_spans_cut_at_midnight_and_keep_a_partial_last_day():
    spans = list(day_spans(at(20, hour=6), NOW))
    assert spans == [(at(20, hour=6), at(21)), (at(21), at(22)), (at(22), NOW)]


def test_month_spans():
    assert list(month_spans(at(15, 10), at(2, 12))) == [(at(15, 10), at(1)), (at(1), at(1, 12)),
                                                         (at(1, 12), at(2, 12))]


def test_windows_are_spans_times_sorted_unique_id_buckets():
    ids = [str(i) for i in range(250)] + ["0"]
    planned = windows(cc.AGENT_LOGINS, at(1), at(3), ids)
    assert len(planned) == 2                      # one window a day: 3 requests of <= 100 ids
    assert list(planned[0].ids) == sorted(set(ids)) and planned[0].bucket == planned[1].bucket == "1.0"
    many = [str(i) for i in range(2_500)]
    per_day = windows(cc.AGENT_LOGINS, at(1), at(2), many)
    assert [w.bucket for w in per_day] == ["4.0", "4.1", "4.2", "4.3"]
    assert sorted(i for w in per_day for i in w.ids) == sorted(many) and max(len(w.ids) for w in per_day) <= 1_000


def test_a_roster_change_moves_no_other_window():
    """A hire joins one bucket and a departure leaves one; every other window stays as it was."""
    before = {w.bucket: w.ids for w in windows(cc.AGENT_LOGINS, at(1), at(2), [str(i) for i in range(2_500)])}
    changed = [str(i) for i in range(1, 2_500)] + ["new-hire"]
    after = {w.bucket: w.ids for w in windows(cc.AGENT_LOGINS, at(1), at(2), changed)}
    assert set(after) == set(before)
    assert sum(after[k] != before[k] for k in before) <= 2


def test_deduplicate_keeps_the_last_occurrence_of_each_key():
    table = pa.table({"agent_id": ["1", "2", "1"], "login_at": [1, 1, 1], "duration_ms": [10, 20, 30]})
    out = deduplicate(table, ("agent_id", "login_at"))
    assert sorted(out.to_pylist(), key=lambda r: r["agent_id"]) == [
        {"agent_id": "1", "login_at": 1, "duration_ms": 30}, {"agent_id": "2", "login_at": 1, "duration_ms": 20}]
