"""Every deployment once: its flow, schedule, parameters, tags and work queue.

`deployments/prefect.yaml` is generated from this list (`python -m deployments.catalog`, checked
by tests/test_deployments.py), `prefect deploy --all` registers it with a Prefect server, and
`wfm serve` serves the same list from one process. Schedules are in Moscow time, when the contact
center and 1C:ZUP work:

    personnel (contact center, 1C)   daily before the working day; the agent ↔ employee map after
    norm hours                       monthly, on the 1st
    contact-center history           every 15 minutes, incremental from the watermark minus lookback
                                     (both families at once: the per-host source limit spaces them)
    1C timesheet                     hourly (a 31-day lookback against the slowest source)
    online snapshots                 every minute; a run still going makes the next one cancel
    push-back to 1C                  nightly
    webhook outbox                   every minute (events wait there, not in the runs that raise them)
    online lake compaction           hourly at :05 (each ended hour's snapshot files into one)
    retention (`wfm prune`)          daily at 03:30
    bulk files, ad-hoc syncs         on demand, with parameters from the UI or `prefect deployment run`

With a settings file that declares `[connections]`, each scheduled family deployment becomes one
per connection of its system, named after it and run with `connections=[name]`
(`sync-cc-intervals/cc-north`, `sync-cc-intervals/cc-south`, `sync-onec-timesheet/zup-north`): each
connection has its own schedule, runs, concurrency limit and failures (`deployments()`). With
the WFM_* variables' single source the catalog is `DEPLOYMENTS` as written.

Entrypoints are module paths (`flows.sync.sync_all`): workers import the installed project, and
the pull step (`deployments.steps.enter_project`) moves them into its checkout. The family flows
are built in a loop in `flows/sync.py`, so they get their module-level names here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from connectors.config.connections import Connections
from connectors.config.connections import load as load_connections
from engine import catalog
from engine.paths import PROJECT_ROOT
from flows.sync import FAMILY_FLOWS

TIMEZONE = "Europe/Moscow"
WORK_POOL = "wfm-process"
YAML_PATH = PROJECT_ROOT / "deployments" / "prefect.yaml"

sync_cc_personnel = FAMILY_FLOWS["cc_personnel"]
sync_cc_intervals = FAMILY_FLOWS["cc_intervals"]
sync_cc_agent_activity = FAMILY_FLOWS["cc_agent_activity"]
sync_cc_online = FAMILY_FLOWS["cc_online"]
sync_onec_personnel = FAMILY_FLOWS["onec_personnel"]
sync_onec_norms = FAMILY_FLOWS["onec_norms"]
sync_onec_timesheet = FAMILY_FLOWS["onec_timesheet"]


@dataclass(frozen=True)
class Deployment:
    """One deployment: a flow, when it runs and with what."""

    name: str                            # unique per flow; runs are "<flow name>/<name>"
    entrypoint: str                      # module path of the flow object
    description: str
    cron: str | None = None              # in TIMEZONE; None: on demand only
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    queue: str = "default"               # work queue of the pool
    single: bool = False                 # one run at a time: a new run is cancelled while one runs

    def load_flow(self):
        """The flow object behind the entrypoint."""
        from prefect.flows import load_flow_from_entrypoint

        return load_flow_from_entrypoint(self.entrypoint, use_placeholder_flow=False)

    def to_yaml(self) -> dict[str, Any]:
        """This deployment as an entry of prefect.yaml's `deployments:` list."""
        entry: dict[str, Any] = {
            "name": self.name, "entrypoint": self.entrypoint, "description": self.description,
            "tags": ["wfm", *self.tags], "parameters": dict(self.parameters),
            "enforce_parameter_schema": True,
            "schedules": [{"cron": self.cron, "timezone": TIMEZONE, "active": True}] if self.cron else [],
            "work_pool": {"name": WORK_POOL, "work_queue_name": self.queue, "job_variables": {}},
        }
        if self.single:
            entry["concurrency_limit"] = {"limit": 1, "collision_strategy": "CANCEL_NEW"}
        return entry


CC, ONEC = "contact-center", "1c-zup"

DEPLOYMENTS: tuple[Deployment, ...] = (
    Deployment("daily", "deployments.catalog.sync_cc_personnel", "Services, groups and agents, daily at 05:00.",
               "0 5 * * *", tags=(CC, "snapshot"), single=True),
    Deployment("daily", "deployments.catalog.sync_onec_personnel",
               "Departments, employees and vacation balances, daily at 05:15.",
               "15 5 * * *", tags=(ONEC, "snapshot"), single=True),
    Deployment("agent-employee-map", "flows.sync.sync", "Rebuild the agent ↔ employee map, daily at 05:45.",
               "45 5 * * *", {"streams": ["agent_employee_map"]}, tags=("warehouse", "derived"), single=True),
    Deployment("monthly", "deployments.catalog.sync_onec_norms", "This year's norm hours, monthly on the 1st.",
               "0 6 1 * *", tags=(ONEC, "snapshot"), single=True),
    Deployment("every-15-min", "deployments.catalog.sync_cc_intervals",
               "Service-group intervals every 15 minutes, from the watermark minus 2 days.",
               "*/15 * * * *", tags=(CC, "incremental"), single=True),
    Deployment("every-15-min", "deployments.catalog.sync_cc_agent_activity",
               "Agent statuses, logins, calls and chat time every 15 minutes, from the watermark minus lookback.",
               "*/15 * * * *", tags=(CC, "incremental"), single=True),
    Deployment("hourly", "deployments.catalog.sync_onec_timesheet",
               "Timesheet days and summaries hourly, from the watermark minus 31 days.",
               "0 * * * *", tags=(ONEC, "incremental"), single=True),
    Deployment("every-minute", "flows.online.sync_online", "Online agent statuses and group load, every minute.",
               "* * * * *", tags=(CC, "online"), queue="online", single=True),
    Deployment("on-demand", "deployments.catalog.sync_cc_online",
               "The online streams through the sync engine, on demand (the scheduled pull is sync-online).",
               tags=(CC, "online")),
    Deployment("on-demand", "flows.sync.sync_all", "Every stream of both systems, then the agent ↔ employee map.",
               tags=(CC, ONEC, "incremental")),
    Deployment("ad-hoc", "flows.sync.sync",
               "Named streams or families; a backfill with start/end, on Dask with dask_address.",
               parameters={"streams": ["all"]}, tags=(CC, ONEC, "backfill")),
    Deployment("nightly", "flows.push.deviations", "Rebuild the last 31 days of deviations, nightly at 01:30.",
               "30 1 * * *", tags=(ONEC, "push"), queue="push", single=True),
    Deployment("nightly", "flows.push.push_schedules", "Send changed planned schedules to 1C, nightly at 02:00.",
               "0 2 * * *", tags=(ONEC, "push"), queue="push", single=True),
    Deployment("nightly", "flows.push.push_deviations", "Send confirmed deviations to 1C, nightly at 02:30.",
               "30 2 * * *", tags=(ONEC, "push"), queue="push", single=True),
    Deployment("every-minute", "flows.webhooks.deliver_webhooks",
               "Deliver the webhook outbox every minute: new events, and retries whose backoff has passed.",
               "* * * * *", tags=("webhooks",), single=True),
    Deployment("hourly", "flows.maintenance.compact_online",
               "Compact each ended hour's online snapshot files into one file per hour, at :05.",
               "5 * * * *", tags=("lake", "online"), single=True),
    Deployment("daily", "flows.maintenance.prune",
               "Delete ledger, audit and online rows older than their retention, daily at 03:30.",
               "30 3 * * *", tags=("warehouse", "retention"), single=True),
    Deployment("on-demand", "flows.bulk.bulk_import", "Import a file into a stream's table.", tags=("bulk",)),
    Deployment("on-demand", "flows.bulk.validate_data", "Validate a file or table against its stream's suite.",
               tags=("bulk",)),
    Deployment("on-demand", "flows.bulk.export_data", "Export a table to a file.", tags=("bulk",)),
)


FAMILY_ENTRYPOINTS = {f"deployments.catalog.sync_{family.name}": family for family in catalog.FAMILIES}


def deployments(declared: Connections | None = None) -> tuple[Deployment, ...]:
    """The catalog for these connections (default: the current settings, no secret read): each
    scheduled family deployment once per connection of its system when a settings file declares
    them, `DEPLOYMENTS` unchanged for the environment's single source."""
    declared = load_connections() if declared is None else declared
    if declared.origin == "environment":
        return DEPLOYMENTS
    out: list[Deployment] = []
    for deployment in DEPLOYMENTS:
        family = FAMILY_ENTRYPOINTS.get(deployment.entrypoint)
        if family is None or deployment.cron is None:
            out.append(deployment)
            continue
        out.extend(replace(deployment, name=c.name, description=f"{deployment.description} Connection {c.name}.",
                           parameters={**deployment.parameters, "connections": [c.name]},
                           tags=(*deployment.tags, c.name))
                   for c in declared.of(family.streams[0].system))
    return tuple(out)


def render(declared: Connections | None = None) -> dict[str, Any]:
    """The whole prefect.yaml as data (for the current settings' connections)."""
    return {
        "name": "wfm-pipelines",
        "prefect-version": "3.8.8",
        "build": None,
        "push": None,
        "pull": [{"deployments.steps.enter_project": {}}],
        "deployments": [d.to_yaml() for d in deployments(declared)],
    }


HEADER = """\
# Generated from deployments/catalog.py by `python -m deployments.catalog`; edit the catalog,
# not this file (tests/test_deployments.py checks that they agree).
# Register with a Prefect server: `make deploy` (blocks, the work pool, then
# `prefect deploy --all` from this directory). Workers: `make worker`.
"""


class _Dumper(yaml.SafeDumper):
    """Lists of plain values on one line (`tags: [wfm, 1c-zup]`), everything else in block style."""


def _list(dumper: yaml.SafeDumper, items: list) -> yaml.Node:
    flat = all(not isinstance(item, (dict, list)) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flat)


_Dumper.add_representer(list, _list)


def render_text(declared: Connections | None = None) -> str:
    return HEADER + yaml.dump(render(declared), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


if __name__ == "__main__":  # pragma: no cover - regenerates the file
    YAML_PATH.write_text(render_text(), encoding="utf-8")
    print(f"wrote {YAML_PATH.relative_to(PROJECT_ROOT)}: {len(deployments())} deployments")
