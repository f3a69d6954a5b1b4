"""`wfm serve`: every deployment of the catalog, scheduled and run from one process (a laptop, a
single VM). Runs start as subprocesses of this process; the schedules are the ones
`deployments/prefect.yaml` gives a server with workers.

With `PREFECT_API_URL` pointing at a Prefect server (`make server`), the deployments and their
runs show in its UI. Without it `wfm serve` starts a local API of its own (`wfm/prefect_api.py`,
SQLite under PREFECT_HOME), which lasts as long as the process does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from deployments import catalog


def selected(names: Iterable[str] = ()) -> list[catalog.Deployment]:
    """Deployments named `<flow name>/<deployment name>` (as in the UI, e.g. `sync-cc-intervals/cc-north`
    with a settings file's connections); all of them when none given."""
    wanted = set(names)
    labelled = {_label(d): d for d in catalog.deployments()}
    unknown = sorted(wanted - set(labelled))
    if unknown:
        raise ValueError(f"unknown deployment {unknown[0]!r}; known: {', '.join(labelled)}")
    return [d for label, d in labelled.items() if not wanted or label in wanted]


def _label(deployment: catalog.Deployment) -> str:
    return f"{deployment.load_flow().name}/{deployment.name}"


def runner_deployment(deployment: catalog.Deployment):
    """The catalog entry as a Prefect RunnerDeployment, ready for `serve` (nothing is sent yet)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    flow = deployment.load_flow()
    served = flow.to_deployment(
        name=deployment.name, description=deployment.description, tags=["wfm", *deployment.tags],
        parameters=dict(deployment.parameters), enforce_parameter_schema=True,
        schedules=[Cron(deployment.cron, timezone=catalog.TIMEZONE)] if deployment.cron else [],
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
        if deployment.single else None)
    served.entrypoint = deployment.entrypoint   # family flows come from a factory: name them as prefect.yaml does
    return served


def serve(names: Iterable[str] = (), limit: int | None = None) -> None:
    """Serve the chosen deployments until interrupted; `limit` caps the runs going at once."""
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_LOGGING_LEVEL, temporary_settings

    chosen = [runner_deployment(d) for d in selected(names)]
    # the wfm command keeps Prefect quiet; served runs log at INFO, to this terminal and the UI
    os.environ.update(PREFECT_LOGGING_LEVEL="INFO", PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="INFO")
    for logger in (logging.getLogger("prefect"), *logging.getLogger().handlers):
        logger.setLevel(logging.INFO)
    with temporary_settings({PREFECT_LOGGING_LEVEL: "INFO"}):
        prefect_serve(*chosen, limit=limit)
