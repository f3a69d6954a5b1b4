"""A derived dataset is never silently missing or stale (issue 19.2): `agent_employee_map` is
refreshed when the personnel it is built from changed, and a reader with nothing mapped says so."""

from __future__ import annotations

import psycopg
import pytest

from engine import derived
from flows.push import deviations
from flows.sync import sync

from .conftest import SIM_START
from .test_cli import one_line_error, run

pytestmark = pytest.mark.usefixtures("prefect_harness")
DAY = SIM_START.isoformat()


def mapped(database_url: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT agent_id, employee_id, matched_by FROM wfm.agent_employee_map").fetchall()
    return {agent: (employee, how) for agent, employee, how in rows if agent}


def test_deviations_build_with_nothing_mapped_says_what_to_sync_first(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    monkeypatch.setenv("WFM_LAKE_PATH", str(tmp_path / "lake"))
    result, output = run("deviations", "build", "--start", DAY, "--end", DAY)
    assert result.exit_code == 1
    line = one_line_error(output)
    assert "agent_employee_map is empty: no contact-center agents and no 1C employees landed yet" in line
    assert "run `wfm sync cc_personnel onec_personnel` first" in line


def test_the_map_follows_the_personnel_it_is_built_from(wfm_env, database_url):
    # the personnel families alone (not `sync all`, not the map by name) leave a current map
    sync(["cc_personnel", "onec_personnel"], SIM_START, SIM_START)
    before = mapped(database_url)
    assert before and {how for _, how in before.values()} <= {"tab_n", "login", "unmatched"}
    assert any(how != "unmatched" for _, how in before.values())
    assert not derived.map_stale(database_url)

    # a personnel number changes in 1C's table: the map is stale, and the next reader rebuilds it
    agent, (employee, _) = next((a, v) for a, v in sorted(before.items()) if v[1] == "tab_n")
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE wfm.employees SET tab_n = 'X-' || tab_n, login = NULL WHERE employee_id = %s",
                     (employee,))
    assert derived.map_stale(database_url)
    deviations(SIM_START, SIM_START)
    assert mapped(database_url)[agent] == ("", "unmatched")
    assert not derived.map_stale(database_url)

    # a column the map does not read changes nothing
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE wfm.employees SET last_name = last_name || '-' WHERE employee_id = %s", (employee,))
    assert not derived.map_stale(database_url)


def test_a_map_that_matches_no_one_says_why(wfm_env, database_url):
    sync(["cc_personnel", "onec_personnel"], SIM_START, SIM_START)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE wfm.employees SET tab_n = 'X-' || tab_n, login = NULL")
    with pytest.raises(derived.DerivedMissing, match=r"links none of \d+ agent\(s\) to the \d+ employee\(s\)"):
        deviations(SIM_START, SIM_START)
