"""The deployment catalog: prefect.yaml agrees with it, every entrypoint imports, schedules parse."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect.flows import Flow
from prefect.server.schemas.schedules import CronSchedule as ServerCron
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools import validate

from deployments import catalog, serve, server, steps

MOSCOW = ZoneInfo(catalog.TIMEZONE)


def test_prefect_yaml_is_the_catalog_rendered():
    written = catalog.YAML_PATH.read_text(encoding="utf-8")
    assert written == catalog.render_text(), "regenerate it: python -m deployments.catalog"
    assert yaml.safe_load(written) == catalog.render()


@pytest.mark.parametrize("deployment", catalog.DEPLOYMENTS, ids=lambda d: f"{d.entrypoint}:{d.name}")
def test_every_entrypoint_imports_a_flow_that_accepts_its_parameters(deployment):
    flow = deployment.load_flow()
    assert isinstance(flow, Flow)
    # what the server checks with enforce_parameter_schema, and nothing the flow does not take
    validate(deployment.parameters, parameter_schema(flow).model_dump_for_openapi(), raise_on_error=True,
             ignore_required=True)
    assert set(deployment.parameters) <= set(parameter_schema(flow).properties)


def test_runs_are_named_uniquely_and_every_family_flow_is_deployed():
    labels = [serve._label(d) for d in catalog.DEPLOYMENTS]
    assert [label for label, n in Counter(labels).items() if n > 1] == []
    from flows.sync import FAMILY_FLOWS

    deployed = {d.load_flow().name for d in catalog.DEPLOYMENTS}
    assert {f.name for f in FAMILY_FLOWS.values()} <= deployed
    assert {"sync-all", "sync", "sync-online", "push-schedules", "push-deviations"} <= deployed


def fires(cron: str, start: dt.datetime, hours: float) -> list[dt.datetime]:
    """Moscow times the server's scheduler would fire a cron schedule within `hours` from `start`."""
    schedule = ServerCron(cron=cron, timezone=catalog.TIMEZONE)
    end = start + dt.timedelta(hours=hours, seconds=-1)   # the end is inclusive
    dates = asyncio.run(schedule.get_dates(n=1000, start=start, end=end))
    return [d.astimezone(MOSCOW) for d in dates]


def test_schedules_parse_and_fire_as_their_descriptions_say():
    by_name = {serve._label(d): d for d in catalog.DEPLOYMENTS}
    monday = dt.datetime(2026, 11, 9, tzinfo=MOSCOW)
    day = {label: fires(d.cron, monday, 24) for label, d in by_name.items() if d.cron and d.cron != "* * * * *"}
    assert [t.strftime("%H:%M") for t in day["sync-cc-personnel/daily"]] == ["05:00"]
    assert [t.strftime("%H:%M") for t in day["sync-onec-personnel/daily"]] == ["05:15"]
    assert len(day["sync-cc-intervals/every-15-min"]) == len(day["sync-cc-agent-activity/every-15-min"]) == 96
    assert len(day["sync-onec-timesheet/hourly"]) == 24
    assert len(fires(by_name["sync-online/every-minute"].cron, monday, 1)) == 60
    assert [t.strftime("%H:%M") for t in day["push-schedules/nightly"]] == ["02:00"]
    month = fires(by_name["sync-onec-norms/monthly"].cron, monday, 24 * 62)
    assert [t.strftime("%d %H:%M") for t in month] == ["01 06:00", "01 06:00"]
    on_demand = {label for label, d in by_name.items() if d.cron is None}
    assert {"sync/ad-hoc", "sync-all/on-demand", "bulk-import/on-demand", "validate-data/on-demand",
            "export-data/on-demand"} <= on_demand


def test_scheduled_syncs_run_one_at_a_time_and_every_deployment_is_typed():
    for entry in catalog.render()["deployments"]:
        assert entry["enforce_parameter_schema"] is True
        assert entry["work_pool"]["name"] == catalog.WORK_POOL
        if entry["schedules"]:
            assert entry["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}, entry["name"]


def test_served_deployments_carry_the_catalog(monkeypatch):
    chosen = serve.selected(["sync-cc-agent-activity/every-15-min", "sync/ad-hoc"])
    served = [serve.runner_deployment(d) for d in chosen]
    activity, adhoc = served
    assert activity.entrypoint == "deployments.catalog.sync_cc_agent_activity"
    assert activity.schedules[0].schedule.cron == "*/15 * * * *"
    assert activity.schedules[0].schedule.timezone == catalog.TIMEZONE
    assert activity.concurrency_limit == 1
    assert adhoc.parameters == {"streams": ["all"]} and adhoc.schedules == []
    with pytest.raises(ValueError, match="unknown deployment 'nope/daily'"):
        serve.selected(["nope/daily"])


def test_the_pull_step_moves_into_the_checkout(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert steps.enter_project() == {"directory": str(steps.PROJECT_ROOT)}
    assert Path.cwd() == steps.PROJECT_ROOT == catalog.PROJECT_ROOT
    assert (Path.cwd() / "deployments" / "prefect.yaml").exists()


def test_the_server_gets_postgresql_in_asyncpg_form_and_no_telemetry():
    assert server.asyncpg_url("postgresql://u:p@db:5432/prefect") == "postgresql+asyncpg://u:p@db:5432/prefect"
    assert server.asyncpg_url("postgres://db/prefect") == "postgresql+asyncpg://db/prefect"
    with pytest.raises(ValueError, match="PostgreSQL"):
        server.asyncpg_url("sqlite:///prefect.db")
    env = server.server_environment("postgresql://db/prefect", "http://prefect.example:4200/api")
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == "postgresql+asyncpg://db/prefect"
    assert env["PREFECT_SERVER_UI_API_URL"] == "http://prefect.example:4200/api"
    assert (env["DO_NOT_TRACK"], env["PREFECT_SERVER_ANALYTICS_ENABLED"]) == ("1", "false")


FLEET = """
[connections.cc-north]
system = "contact_center"
url = "http://127.0.0.1:9/north"
client_secret = { env = "NOT_SET_AND_NOT_READ" }

[connections.cc-south]
system = "contact_center"
url = "http://127.0.0.1:9/south"

[connections.zup-north]
system = "onec"
url = "http://127.0.0.1:9/zup"
"""


def test_a_settings_file_gives_each_connection_its_own_scheduled_family_deployments(tmp_path, monkeypatch):
    (tmp_path / "wfm.toml").write_text(FLEET, encoding="utf-8")
    monkeypatch.setenv("WFM_CONFIG", str(tmp_path / "wfm.toml"))
    expanded = catalog.deployments()
    by_label = {serve._label(d): d for d in expanded}
    assert len(by_label) == len(expanded)                          # still unique
    for family, system in (("cc-personnel", "cc"), ("cc-intervals", "cc"), ("cc-agent-activity", "cc"),
                           ("onec-personnel", "zup"), ("onec-norms", "zup"), ("onec-timesheet", "zup")):
        names = sorted(label.split("/")[1] for label in by_label if label.startswith(f"sync-{family}/"))
        assert names == (["cc-north", "cc-south"] if system == "cc" else ["zup-north"]), family
    north = by_label["sync-cc-intervals/cc-north"]
    original = next(d for d in catalog.DEPLOYMENTS if d.entrypoint == north.entrypoint)
    assert (north.cron, north.single, north.queue) == (original.cron, original.single, original.queue)
    assert north.parameters == {"connections": ["cc-north"]} and "cc-north" in north.tags
    assert by_label["sync-onec-timesheet/zup-north"].parameters == {"connections": ["zup-north"]}
    for label in ("sync-cc-online/on-demand", "sync-online/every-minute", "sync-all/on-demand", "sync/ad-hoc",
                  "sync/agent-employee-map", "push-schedules/nightly"):
        assert by_label[label] in catalog.DEPLOYMENTS, label     # not a scheduled family flow: as it was
    assert "sync-cc-intervals/every-15-min" not in by_label
    for deployment in expanded:                                    # what the server enforces
        flow = deployment.load_flow()
        validate(deployment.parameters, parameter_schema(flow).model_dump_for_openapi(), raise_on_error=True,
                 ignore_required=True)
    entries = {e["name"]: e for e in catalog.render()["deployments"] if e["entrypoint"] == north.entrypoint}
    assert set(entries) == {"cc-north", "cc-south"}
    assert entries["cc-south"]["parameters"] == {"connections": ["cc-south"]}
    assert entries["cc-north"]["schedules"][0]["cron"] == "*/15 * * * *"

    served = serve.runner_deployment(serve.selected(["sync-cc-agent-activity/cc-south"])[0])   # `wfm serve -d`
    assert served.name == "cc-south" and served.parameters == {"connections": ["cc-south"]}
    assert served.schedules[0].schedule.cron == "*/15 * * * *" and served.concurrency_limit == 1


def test_the_environment_single_source_keeps_the_catalog_as_written(monkeypatch):
    monkeypatch.setenv("WFM_CC_URL", "http://127.0.0.1:9/cc")
    monkeypatch.setenv("WFM_ONEC_URL", "http://127.0.0.1:9/zup")
    assert catalog.deployments() is catalog.DEPLOYMENTS
    assert catalog.render_text() == catalog.YAML_PATH.read_text(encoding="utf-8")
