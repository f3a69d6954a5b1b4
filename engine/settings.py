"""The settings of one run: both sources, the warehouse and the lake, resolved once per flow run."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.settings import SourceSettings
from connectors.systems import source_system
from engine import database, paths


class NotConfigured(RuntimeError):
    """A source the run needs has no settings."""


@dataclass(frozen=True)
class Settings:
    contact_center: SourceSettings | None
    onec: SourceSettings | None
    database_url: str
    lake_path: str

    def source(self, system: str) -> SourceSettings:
        spec = source_system(system)
        found = getattr(self, spec.key)
        if found is None:
            raise NotConfigured(f"{system} is not configured: {spec.hint}")
        return found

    def configured(self, system: str) -> bool:
        return getattr(self, source_system(system).key) is not None


def resolve_settings() -> Settings:
    """Saved Prefect blocks when WFM_USE_BLOCKS=1, otherwise the WFM_* environment variables."""
    from blocks import load_settings  # blocks import Prefect; keep connectors free of it

    found = load_settings()
    if found.lake is not None:
        from engine.landing import lake

        lake.use_storage_options(found.lake.path, found.lake.storage_options.get_secret_value())
    return Settings(
        contact_center=found.contact_center.settings() if found.contact_center else None,
        onec=found.onec.settings() if found.onec else None,
        database_url=found.warehouse.dsn() if found.warehouse else database.database_url(),
        lake_path=found.lake.path if found.lake else paths.lake_path(),
    )
