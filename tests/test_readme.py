"""The README says what the code does (issue 19.3): its configuration table names every `WFM_*`
variable the code reads and no other, and its file examples run as written."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import psycopg
import pytest

from engine.quality.reconcile import Tolerances

from .conftest import SIM_START
from .test_cli import run

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CODE = ("connectors", "engine", "tasks", "flows", "wfm", "blocks", "deployments", "receiver", "bench")
NAME = re.compile(r"WFM_[A-Z0-9_]*[A-Z0-9]")
# prefixes the code composes names from: `{prefix}_TOKEN` (connectors/settings.py, systems.py's
# env prefixes) and `WFM_RECONCILE_<FIELD>` (engine/quality/reconcile.py: Tolerances)
PREFIXES = {"WFM_CC", "WFM_ONEC", "WFM_RECONCILE"}


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    return README[start:README.index("\n## ", start + 1)]


def read_by_the_code() -> set[str]:
    files = [p for folder in CODE for p in (ROOT / folder).rglob("*.py")] + [ROOT / "tests" / "conftest.py"]
    names = {name for path in files for name in NAME.findall(path.read_text())}
    composed = {f"WFM_RECONCILE_{field.upper()}" for field in Tolerances.__dataclass_fields__}
    return (names - PREFIXES) | composed


def test_the_configuration_table_names_every_variable_the_code_reads():
    table = [line for line in section("Configuration").splitlines() if line.startswith("| `WFM_")]
    documented = {name for line in table for name in NAME.findall(line)}
    code = read_by_the_code()
    assert code - documented == set(), "read by the code, missing from README's configuration table"
    assert documented - code == set(), "in README's configuration table, read by no code"


# what a planner's export holds under each column header the README's examples use
PLAN_COLUMNS = {
    "ИдСотрудника": lambda employee: employee["employee_id"],    # 1C's employee GUID
    "Табельный": lambda employee: employee["tab_n"],             # the personnel number
    "Начало": lambda employee: "2026-11-16T08:00:00+03:00",
    "Конец": lambda employee: "2026-11-16T17:00:00+03:00",
}


def plan_examples() -> list[list[str]]:
    """The README's `wfm import|validate plan.csv ...` commands, continuation lines joined."""
    block = section("Files").split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [c[1:] for c in commands if c[:1] == ["wfm"] and c[1] in ("import", "validate") and c[2] == "plan.csv"]


def test_the_readme_has_plan_examples_to_run():
    assert [c[0] for c in plan_examples()] == ["import", "validate"]


@pytest.mark.usefixtures("prefect_harness")
def test_the_plan_examples_run_and_land_shifts_of_known_employees(wfm_env, database_url, tmp_path, monkeypatch):
    from flows.sync import sync

    sync(["onec_personnel"], SIM_START, SIM_START)
    with psycopg.connect(database_url) as conn:
        cur = conn.execute("SELECT employee_id, tab_n FROM wfm.employees ORDER BY employee_id LIMIT 1")
        employee = dict(zip([c.name for c in cur.description], cur.fetchone()))
    monkeypatch.chdir(tmp_path)
    for args in plan_examples():
        mapping = dict(pair.split("=", 1) for pair in args[args.index("--map") + 1].split(","))
        unknown = set(mapping) - set(PLAN_COLUMNS)
        assert not unknown, f"a README example reads a column this test cannot fill: {unknown}"
        header = list(mapping)
        (tmp_path / "plan.csv").write_text(";".join(header) + "\n" +
                                           ";".join(PLAN_COLUMNS[c](employee) for c in header) + "\n")
        result, output = run(*args)
        assert result.exit_code == 0, output
    assert json.loads((tmp_path / "report.json").read_text())["valid"] is True
    with psycopg.connect(database_url) as conn:
        landed = conn.execute("""SELECT p.employee_id, e.employee_id IS NOT NULL FROM wfm.planned_shifts p
                                 LEFT JOIN wfm.employees e USING (employee_id)""").fetchall()
    assert landed == [(employee["employee_id"], True)]   # the shift belongs to a 1C employee
