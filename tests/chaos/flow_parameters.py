"""Malformed flow parameters as a deployment run passes them: through the Prefect API.

Every deployment of `deployments/catalog.py` is registered with the Prefect API (its flow, its
parameter schema, `enforce_parameter_schema` as `prefect deploy` sets it). Each malformed set of
parameters is then sent the way `prefect deployment run` or the UI sends it: a flow run created
from the deployment (`create_flow_run_from_deployment`). Either the API refuses it (the schema),
or the flow run is executed the way a worker executes it (`prefect.flow_engine.run_flow` on the
flow run read back from the API: the engine validates the parameters, then the flow its own).

Handled means: refused by the API, or refused by the engine before the flow starts (a parameter
the flow does not take: `SignatureMismatchError`, one line), or a flow run that ends Failed with
a message naming the parameter or value — Prefect's own validation lists one line per parameter
— and never Completed; and nothing written to the warehouse (no run in the ledger, no row).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import psycopg

from .lab import fresh_database, pointed_at, simulator

D = "2026-11-09"
CASES: list[tuple[str, str, dict]] = [   # (case, flow entrypoint, parameters)
    ("streams is null", "flows.sync.sync", {"streams": None}),
    ("streams is a number", "flows.sync.sync", {"streams": 5}),
    ("streams is an object", "flows.sync.sync", {"streams": {"agent_logins": True}}),
    ("streams holds numbers", "flows.sync.sync", {"streams": [1, 2]}),
    ("unknown stream", "flows.sync.sync", {"streams": ["no_such_stream"]}),
    ("stream that injects", "flows.sync.sync", {"streams": ["agent_logins; DROP TABLE wfm.canary"]}),
    ("no streams", "flows.sync.sync", {"streams": []}),
    ("impossible date", "flows.sync.sync", {"streams": ["agent_logins"], "start": "2026-02-30"}),
    ("date in another format", "flows.sync.sync", {"streams": ["agent_logins"], "start": "09.11.2026"}),
    ("date is a word", "flows.sync.sync", {"streams": ["agent_logins"], "start": "yesterday"}),
    ("date is a list", "flows.sync.sync", {"streams": ["agent_logins"], "start": [2026, 11, 9]}),
    ("end before start", "flows.sync.sync", {"streams": ["agent_logins"], "start": "2026-11-10", "end": D}),
    ("force is a word", "flows.sync.sync", {"streams": ["agent_logins"], "force": "maybe"}),
    ("dry_run is an object", "flows.sync.sync", {"streams": ["agent_logins"], "dry_run": {"a": 1}}),
    ("dask address is a number", "flows.sync.sync", {"streams": ["agent_logins"], "dask_address": 5}),
    ("unknown parameter", "flows.sync.sync", {"streams": ["agent_logins"], "frobnicate": 1}),
    ("end is impossible", "flows.sync.sync", {"streams": ["agent_logins"], "end": "2026-11-31"}),
    ("start is a bool", "flows.sync.sync", {"streams": ["agent_logins"], "start": True}),
    ("start is an object", "flows.sync.sync", {"streams": ["agent_logins"], "start": {"year": 2026}}),
    ("start in the future", "flows.sync.sync", {"streams": ["agent_logins"], "start": "2999-01-01"}),
    ("streams holds null", "flows.sync.sync", {"streams": [None]}),
    ("streams holds a path", "flows.sync.sync", {"streams": ["../../etc/passwd"]}),
    ("streams holds an object", "flows.sync.sync", {"streams": [{"name": "agent_logins"}]}),
    ("dask address is a list", "flows.sync.sync", {"streams": ["agent_logins"], "dask_address": ["tcp://x"]}),
    ("family: impossible date", "deployments.catalog.sync_cc_agent_activity", {"start": "2026-13-01"}),
    ("family: end before start", "deployments.catalog.sync_onec_timesheet", {"start": "2026-11-10", "end": D}),
    ("family: force is a number list", "deployments.catalog.sync_cc_intervals", {"force": [1]}),
    ("family: unknown parameter", "deployments.catalog.sync_onec_personnel", {"streams": ["employees"]}),
    ("family: dry_run is text", "deployments.catalog.sync_cc_personnel", {"dry_run": "perhaps"}),
    ("family: end is a word", "deployments.catalog.sync_onec_norms", {"end": "tomorrow"}),
    ("sync-all: date is a number", "flows.sync.sync_all", {"start": 20261109}),
    ("sync-all: end before start", "flows.sync.sync_all", {"start": "2026-11-10", "end": D}),
    ("online: unknown parameter", "flows.online.sync_online", {"agents": 5}),
    ("schedules: since is a word", "flows.push.push_schedules", {"since": "last month"}),
    ("schedules: until before since", "flows.push.push_schedules", {"since": "2026-11-10", "until": D}),
    ("schedules: retry_refused is text", "flows.push.push_schedules", {"retry_refused": "perhaps"}),
    ("schedules: until is a list", "flows.push.push_schedules", {"until": ["2026-11-30"]}),
    ("deviations: settle seconds is a word", "flows.push.push_deviations", {"settle_after_seconds": "soon"}),
    ("deviations: negative settle seconds", "flows.push.push_deviations", {"settle_after_seconds": -5}),
    ("deviations: require_schedule is a list", "flows.push.push_deviations", {"require_schedule": []}),
    ("build deviations: end before start", "flows.push.deviations", {"start": "2026-11-10", "end": D}),
    ("build deviations: start is a word", "flows.push.deviations", {"start": "then"}),
    ("import: path is a number", "flows.bulk.bulk_import", {"path": 5, "stream": "planned_shifts"}),
    ("import: no such file", "flows.bulk.bulk_import", {"path": "/nonexistent/plan.csv", "stream": "planned_shifts"}),
    ("import: unknown stream", "flows.bulk.bulk_import", {"path": "{dir}/plan.csv", "stream": "../../etc"}),
    ("import: no stream", "flows.bulk.bulk_import", {"path": "{dir}/plan.csv"}),
    ("import: threshold above 1", "flows.bulk.bulk_import",
     {"path": "{dir}/plan.csv", "stream": "planned_shifts", "threshold": 2.5}),
    ("import: negative threshold", "flows.bulk.bulk_import",
     {"path": "{dir}/plan.csv", "stream": "planned_shifts", "threshold": -1}),
    ("import: zero chunk rows", "flows.bulk.bulk_import",
     {"path": "{dir}/plan.csv", "stream": "planned_shifts", "chunk_rows": 0}),
    ("import: unknown format", "flows.bulk.bulk_import",
     {"path": "{dir}/plan.csv", "stream": "planned_shifts", "file_format": "xlsx"}),
    ("import: mapping is text", "flows.bulk.bulk_import",
     {"path": "{dir}/plan.csv", "stream": "planned_shifts", "mapping": "a=b"}),
    ("import: unknown encoding", "flows.bulk.bulk_import",
     {"path": "{dir}/plan.csv", "stream": "planned_shifts", "encoding": "klingon"}),
    ("import: a directory", "flows.bulk.bulk_import", {"path": "{dir}", "stream": "planned_shifts"}),
    ("import: a time zone that is none", "flows.bulk.bulk_import",
     {"path": "{dir}/plan.csv", "stream": "planned_shifts", "timezone": "Mars/Olympus"}),
    ("validate: time zone is a number", "flows.bulk.validate_data",
     {"path": "{dir}/plan.csv", "stream": "planned_shifts", "timezone": 5}),
    ("validate: unknown stream", "flows.bulk.validate_data", {"path": "{dir}/plan.csv", "stream": "nope"}),
    ("validate: delimiter of two characters", "flows.bulk.validate_data",
     {"path": "{dir}/plan.csv", "stream": "planned_shifts", "delimiter": ";;"}),
    ("export: unknown table", "flows.bulk.export_data", {"table": "pg_authid", "out": "{dir}/o.parquet"}),
    ("export: unknown format", "flows.bulk.export_data",
     {"table": "agent_logins", "out": "{dir}/o.xml", "file_format": "xml"}),
    ("export: filter on an unknown column", "flows.bulk.export_data",
     {"table": "agent_logins", "out": "{dir}/o.csv", "filters": {"1=1) OR (1=1": "x"}}),
    ("export: filters is a list", "flows.bulk.export_data",
     {"table": "agent_logins", "out": "{dir}/o.csv", "filters": ["agent_id=1"]}),
    ("export: out escapes the root", "flows.bulk.export_data", {"table": "agent_logins", "out": "/tmp/../etc/x.csv"}),
    ("export: no table", "flows.bulk.export_data", {"out": "{dir}/o.csv"}),
    ("export: table is a number", "flows.bulk.export_data", {"table": 7, "out": "{dir}/o.csv"}),
    ("export: force is an object", "flows.bulk.export_data",
     {"table": "agent_logins", "out": "{dir}/o.csv", "force": {"x": 1}}),
    ("export: end before start", "flows.bulk.export_data",
     {"table": "agent_logins", "out": "{dir}/o.csv", "start": "2026-11-10", "end": D}),
]


def flow_parameters(server: str, scratch: Path, every: int = 1) -> tuple[int, list[str]]:
    """Every `every`-th case through the API and the engine; the problems of those not handled."""
    from prefect import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    problems: list[str] = []
    (scratch / "plan.csv").write_text("employee_id,shift_start,shift_end\n1,2026-11-17T06:00:00Z,2026-11-17T14:00:00Z\n")
    with simulator() as sim, fresh_database(server) as db, \
            pointed_at(sim, db, scratch / "lake", WFM_EXPORT_ROOT=str(scratch), WFM_DATA_DIR=str(scratch / "data")), \
            get_client(sync_client=True) as client:
        deployments = _register(client)
        for name, entrypoint, parameters in CASES[::every]:
            parameters = {k: v.replace("{dir}", str(scratch)) if isinstance(v, str) else v for k, v in parameters.items()}
            flow, deployment_id = deployments[entrypoint]
            try:
                run = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
            except PrefectHTTPStatusError as refused:            # the schema, at the API
                status = refused.response.status_code
                problems += [] if status in (409, 422) else [f"flow parameters {name}: the API answered {status}"]
                continue
            problems += [f"flow parameters {name}: {p}" for p in _executed(client, flow, run.id, parameters)]
        problems += [f"flow parameters: {p}" for p in _untouched(db)]
    return len(CASES[::every]), problems


def _register(client) -> dict[str, tuple[object, uuid.UUID]]:
    """Each catalog entrypoint as a deployment of this API: (flow, deployment id)."""
    from prefect.utilities.callables import parameter_schema

    from deployments.catalog import DEPLOYMENTS

    out: dict[str, tuple[object, uuid.UUID]] = {}
    for deployment in DEPLOYMENTS:
        if deployment.entrypoint in out:
            continue
        flow = deployment.load_flow()
        flow_id = client.create_flow(flow)
        deployment_id = client.create_deployment(
            flow_id, f"chaos-{deployment.name}-{uuid.uuid4().hex[:6]}", entrypoint=deployment.entrypoint,
            parameters=dict(deployment.parameters), enforce_parameter_schema=True,
            parameter_openapi_schema=parameter_schema(flow).model_dump_for_openapi())
        out[deployment.entrypoint] = (flow, deployment_id)
    return out


def _executed(client, flow, flow_run_id: uuid.UUID, parameters: dict) -> list[str]:
    """Run the flow run as a worker's engine would; what is wrong with how it ended."""
    from prefect.exceptions import SignatureMismatchError
    from prefect.flow_engine import run_flow

    flow_run = client.read_flow_run(flow_run_id)
    values = [v for value in parameters.values() for v in (value if isinstance(value, list) else [value])]
    named = [str(k) for k in parameters] + [str(k).replace("_", " ") for k in parameters] + \
        [str(v) for v in values if isinstance(v, (str, int, float))]
    try:
        state = run_flow(flow, flow_run=flow_run, return_type="state")
        if os.environ.get("CHAOS_DEBUG"):
            print(flow_run.name, parameters, state.type.value, (state.message or "")[:200], file=sys.stderr)
    except SignatureMismatchError as refused:        # refused before the flow starts
        text = str(refused)
        return [] if "\n" not in text and any(n in text for n in named) else [f"refused unclearly: {text[:300]!r}"]
    except BaseException as exc:   # noqa: BLE001 - an engine that raises is the finding
        return [f"the engine raised {type(exc).__name__}: {str(exc)[:200]}"]
    message = (state.message or "").strip()
    if not state.is_failed():
        return [f"accepted: the run ended {state.type.value}"]
    if "Traceback" in message or not any(n in message for n in named):
        return [f"the failure does not say what was wrong: {message[:300]!r}"]
    return []


def _untouched(db: str) -> list[str]:
    """Runs in the ledger and rows in `wfm.*`: none may exist (tables may, created on start-up)."""
    with psycopg.connect(db) as conn:
        tables = [r[0] for r in conn.execute("""SELECT format('%I.%I', table_schema, table_name)
                  FROM information_schema.tables WHERE table_schema = 'wfm' OR (table_schema, table_name)
                  IN (('wfm_meta', 'sync_runs'), ('wfm_meta', 'push_outbox'))""")]
        filled = {t: conn.execute(f"SELECT * FROM {t} LIMIT 1").fetchone() for t in tables}
    return [f"rows written to {t}, e.g. {row!r:.200}" for t, row in filled.items() if row]
