"""What every flow does after the runs of streams it closed: one artifact per run, then a short webhook pass.

The runs themselves open and close in the engine (`engine/landing/runs.py`: the ledger row and
its webhook events in one transaction). Once a flow has closed its runs — one in `sync_stream`
and `bulk_import`, one per stream and connection in `sync_online` and `replay_quarantine` —
`after_runs` publishes each run's ledger row as a markdown artifact keyed by kind, stream and
connection (`sync-agent-calls-cc-north`, `import-planned-shifts-default`,
`replay-agent-calls-default`), surfaces the schema drift the run saw, and makes one bounded,
best-effort delivery pass of the webhook outbox (`tasks/webhooks.py`); the `deliver-webhooks`
deployment delivers whatever is left.
"""

from __future__ import annotations

from collections.abc import Iterable

from prefect.artifacts import create_markdown_artifact

from engine.landing import drift
from tasks.webhooks import deliver_after_run

FIELDS = ("stream", "source", "mode", "status", "period_start", "period_end", "windows_planned", "windows_landed",
          "windows_skipped", "windows_held", "windows_anomaly", "windows_deferred", "rows_fetched",
          "duplicates_removed", "rows_inserted", "rows_updated", "rows_unchanged", "rows_quarantined", "api_calls",
          "retries", "throttled", "watermark_before", "watermark_after", "error", "notice")
KINDS = {"import": ("import", "Import into"), "replay": ("replay", "Replay of")}   # other modes: ("sync", "Sync of")


def after_runs(database_url: str, runs: Iterable[dict], details: dict[str, str] | None = None) -> None:
    """Each run's artifact and drift, then one delivery pass. `details`: more markdown for the
    artifact of a run, by run id (an import's file and its first quarantined rows). Never raises
    for a webhook: a run is never failed by its notification."""
    for run in runs:
        run_artifact(run, (details or {}).get(str(run["run_id"]), ""))
        drift.surface(database_url, run["run_id"], run["stream"])
    deliver_after_run(database_url)    # bounded, best-effort; deliver-webhooks does the rest


def artifact_key(run: dict) -> str:
    """`<kind>-<stream>-<connection>`, as Prefect wants keys: lower case and dashes."""
    kind = KINDS.get(run["mode"], ("sync",))[0]
    return f"{kind}-{run['stream']}-{run['source']}".replace("_", "-").lower()


def run_artifact(run: dict, more: str = "") -> None:
    """The run's ledger row as a markdown table, named after its stream and connection."""
    title = KINDS.get(run["mode"], ("sync", "Sync of"))[1]
    rows = "\n".join(row(k, run.get(k)) for k in FIELDS)
    create_markdown_artifact(f"### {title} `{run['stream']}` from `{run['source']}`\n\n"
                             f"| field | value |\n|---|---|\n{rows}\n{more}",
                             key=artifact_key(run), description=f"{run['stream']} ({run['source']}) {run['status']}")


def row(*cells: object) -> str:
    """A markdown table row; a `|` inside a value is escaped, a missing value is empty."""
    return "| " + " | ".join("" if c is None else str(c).replace("|", "\\|") for c in cells) + " |"
