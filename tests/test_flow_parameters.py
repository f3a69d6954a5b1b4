"""Flow parameters a deployment run may carry that the schema lets through: refused in one line
before anything runs (found by the chaos suite's flow-parameter corpus, tests/chaos/flow_parameters.py)."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from flows.bulk import bulk_import
from flows.push import push_deviations, push_schedules
from flows.sync import sync, sync_all

pytestmark = pytest.mark.usefixtures("prefect_harness")
D = dt.date(2026, 11, 9)


@pytest.mark.parametrize("call, message", [
    (lambda p: sync([]), "no streams given"),
    (lambda p: sync_all(D + dt.timedelta(days=1), D), "--end 2026-11-09 is before --start 2026-11-10"),
    (lambda p: push_schedules(D + dt.timedelta(days=1), D), "until 2026-11-09 is before since 2026-11-10"),
    (lambda p: push_deviations(settle_after_seconds=-5), "settle_after_seconds -5 is negative"),
    (lambda p: bulk_import(p, "planned_shifts", threshold=2.5), "threshold 2.5 is not a share"),
    (lambda p: bulk_import(p, "planned_shifts", chunk_rows=0), "chunk rows must be at least 1"),
])
def test_a_parameter_the_schema_allows_but_the_flow_cannot_use_is_refused_before_anything_runs(
        wfm_env, database_url, tmp_path, call, message):
    plan = tmp_path / "plan.csv"
    plan.write_text("employee_id,shift_start,shift_end\n1,2026-11-17T06:00:00Z,2026-11-17T14:00:00Z\n")
    with pytest.raises(ValueError, match=message.replace("-", r"\-").replace(".", r"\.")):
        call(plan)
    with psycopg.connect(database_url) as conn:     # the online snapshots of sync_all did not land first
        ran = conn.execute("SELECT to_regclass('wfm_meta.sync_runs') IS NOT NULL").fetchone()[0]
        assert not ran or conn.execute("SELECT count(*) FROM wfm_meta.sync_runs").fetchone()[0] == 0
