"""The settings of one run: both sources, the warehouse and the lake, resolved once per flow run."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.settings import CONTACT_CENTER, ONEC, SourceSettings
from engine import database, paths


class NotConfigured(RuntimeError):
    """A source the run needs has no settings."""


HINTS = {CONTACT_CENTER: "set WFM_CC_URL (and WFM_CC_TOKEN or WFM_CC_USERNAME/WFM_CC_PASSWORD)",
         ONEC: "set WFM_ONEC_URL, WFM_ONEC_USERNAME and WFM_ONEC_PASSWORD"}


@dataclass(frozen=True)
class Settings:
    contact_center: SourceSettings | None
    onec: SourceSettings | None
    database_url: str
    lake_path: str

    def source(self, system: str) -> SourceSettings:
        found = self.contact_center if system == CONTACT_CENTER else self.onec
        if found is None:
            raise NotConfigured(f"{system} is not configured: {HINTS[system]}")
        return found

    def configured(self, system: str) -> bool:
        return (self.contact_center if system == CONTACT_CENTER else self.onec) is not None


def resolve_settings() -> Settings:
    """Saved Prefect blocks when WFM_USE_BLOCKS=1, otherwise the WFM_* environment variables."""
    from blocks import load_settings  # blocks import Prefect; keep connectors free of it

    found = load_settings()
    return Settings(
        contact_center=found.contact_center.settings() if found.contact_center else None,
        onec=found.onec.settings() if found.onec else None,
        database_url=found.warehouse.dsn() if found.warehouse else database.database_url(),
        lake_path=found.lake.path if found.lake else paths.lake_path(),
    )
