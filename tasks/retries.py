"""When Prefect retries a task: only for database connection trouble (HTTP retries live in the connector)."""

from __future__ import annotations

import psycopg


def transient_database_error(task, task_run, state) -> bool:
    """Retry a window only for database connection trouble; a source's own retries are done by then."""
    try:
        state.result()
    except psycopg.OperationalError:
        return True
    except Exception:
        return False
    return False
