"""Great Expectations over PostgreSQL: SQL checks as one checkpoint, and the Data Docs it builds.

`run_checkpoint` takes named queries (each returning the rows that break a rule), makes each an
`UnexpectedRowsExpectation` on a table asset of a PostgreSQL datasource (`{batch}` is the
table), groups them in one suite per table, runs them as one checkpoint and renders the static
HTML site once for all its validation results (GX's `UpdateDataDocsAction` would render it
once per suite, each costing about half a second). The context is ephemeral — the database
URL, which may hold a password, is never written anywhere — except for two directories: the
validation results (`<docs>/../gx/validations`, so the site lists every earlier run too) and
the site itself (`<docs>/index.html`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.metadata_types import FailureSeverity

from engine.quality.rules import ERROR, Rule

SITE = "wfm"


def run_checkpoint(sqlalchemy_url: str, queries: list[tuple[Rule, str]], docs_dir: Path,
                   run_name: str) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """Failing rows per rule name, and the path of the Data Docs index."""
    context = _context(docs_dir)
    source = context.data_sources.add_postgres(
        "wfm-" + hashlib.sha1(sqlalchemy_url.encode()).hexdigest()[:10], connection_string=sqlalchemy_url)
    try:
        definitions = []
        for subject in sorted({rule.subject for rule, _ in queries}):
            batch = source.add_table_asset(subject, table_name=subject, schema_name="wfm") \
                .add_batch_definition_whole_table("all rows")
            suite = context.suites.add(gx.ExpectationSuite(name=f"reconcile.{subject}", expectations=[
                gxe.UnexpectedRowsExpectation(unexpected_rows_query=query, description=rule.description,
                                              severity=(FailureSeverity.CRITICAL if rule.severity == ERROR
                                                        else FailureSeverity.WARNING),
                                              meta={"rule": rule.name})
                for rule, query in queries if rule.subject == subject]))
            definitions.append(context.validation_definitions.add(
                gx.ValidationDefinition(name=f"reconcile.{subject}", data=batch, suite=suite)))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name="reconcile", validation_definitions=definitions, result_format="COMPLETE"))
        outcome = checkpoint.run(run_id=RunIdentifier(run_name=run_name))
        # one build for the whole checkpoint (UpdateDataDocsAction would rebuild the site per suite)
        context.build_data_docs(site_names=[SITE], resource_identifiers=list(outcome.run_results))
    finally:
        source.get_execution_engine().engine.dispose()
    return _failing(outcome, queries), str(docs_dir / "index.html")


def _context(docs_dir: Path):
    """An ephemeral context whose validation results and Data Docs site live on disk."""
    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults())
    config.stores["validation_results_store"]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.parent / "gx" / "validations")}
    config.data_docs_sites = {SITE: {
        "class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)}}}
    context = gx.get_context(project_config=config, mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _failing(outcome, queries: list[tuple[Rule, str]]) -> dict[str, list[dict[str, Any]]]:
    """The unexpected rows of each rule; a query that could not run is a bug and raises."""
    failing: dict[str, list[dict[str, Any]]] = {rule.name: [] for rule, _ in queries}
    for validation in outcome.run_results.values():
        for result in validation.results:
            name = result.expectation_config.meta["rule"]
            info = result.exception_info or {}
            if info.get("raised_exception") or any(isinstance(v, dict) and v.get("raised_exception")
                                                   for v in info.values()):
                detail = info.get("exception_message") or next(
                    (v.get("exception_message") for v in info.values() if isinstance(v, dict)), "error")
                raise RuntimeError(f"reconciliation rule {name} could not run: {detail}")
            failing[name] = list(result.result.get("details", {}).get("unexpected_rows") or [])
    return failing
