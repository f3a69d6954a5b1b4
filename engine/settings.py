"""The settings of one run: every source connection, the sites, the warehouse and the lake, resolved once.

Connections come from the settings file when it declares any (`connectors/config/connections.py`;
with `WFM_USE_BLOCKS=1` a connection's saved block wins over the file, see `blocks/connections.py`),
else from the saved blocks or WFM_* variables of a single-source installation, as the
contact center and 1C base named `default` (site `default`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from connectors.config.connections import DEFAULT, Site
from connectors.config.connections import load as load_connections
from connectors.config.systems import SYSTEMS, source_system
from connectors.settings import SourceSettings
from engine import database, paths


class NotConfigured(RuntimeError):
    """A source the run needs has no settings."""


@dataclass(frozen=True)
class Settings:
    sources: dict[tuple[str, str], SourceSettings]       # (system, connection name) -> client settings
    database_url: str
    lake_path: str
    sites: dict[str, Site] = field(default_factory=dict)
    origin: str = "environment"
    broken: dict[tuple[str, str], str] = field(default_factory=dict)   # connections whose secrets failed

    def source(self, system: str, connection: str = DEFAULT) -> SourceSettings:
        spec = source_system(system)
        found = self.sources.get((spec.name, connection))
        if (spec.name, connection) in self.broken:
            raise NotConfigured(self.broken[spec.name, connection])
        if found is None:
            if connection == DEFAULT and not self.connections(system):
                raise NotConfigured(f"{system} is not configured: {spec.hint}")
            known = ", ".join(self.connections(system)) or "none"
            raise NotConfigured(f"no {system} connection named {connection!r} ({self.origin}); known: {known}")
        return found

    def connections(self, system: str) -> list[str]:
        """The names of the system's connections, in the order configured."""
        name = source_system(system).name
        return [c for s, c in (*self.sources, *self.broken) if s == name]

    def configured(self, system: str) -> bool:
        return bool(self.connections(system))

    def pairings(self) -> list[tuple[str, str | None, str | None]]:
        """(site, contact-center connection, 1C connection) of every site."""
        return [(s.name, s.contact_center, s.onec) for s in self.sites.values()]

    def map_sites(self) -> tuple[tuple[str, str], ...]:
        """(contact-center connection, site) of every site with a contact center: where its agents are mapped."""
        return tuple((s.contact_center, s.name) for s in self.sites.values() if s.contact_center)


def resolve_settings() -> Settings:
    """The settings file's connections, or saved Prefect blocks (WFM_USE_BLOCKS=1) / WFM_* variables."""
    from blocks import load_settings  # blocks import Prefect; keep connectors free of it

    found = load_settings()
    if found.lake is not None:
        from engine.landing import lake

        lake.use_storage_options(found.lake.path, found.lake.storage_options.get_secret_value())
    declared = load_connections()
    database_url = found.warehouse.dsn() if found.warehouse else database.database_url()
    lake_path = found.lake.path if found.lake else paths.lake_path()
    if declared.origin == "environment":      # no [connections] in a settings file: the single-source way
        sources = {(system.name, DEFAULT): getattr(found, system.key).settings() for system in SYSTEMS.values()
                   if getattr(found, system.key) is not None}
        sites = {DEFAULT: Site(DEFAULT, DEFAULT if (SYSTEMS["contact center"].name, DEFAULT) in sources else None,
                               DEFAULT if (SYSTEMS["1C:ZUP"].name, DEFAULT) in sources else None,
                               os.environ.get("WFM_DEFAULT_TIMEZONE", "Europe/Moscow"))} if sources else {}
        return Settings(sources, database_url, lake_path, sites)
    from blocks.connections import connection_settings

    use_blocks = os.environ.get("WFM_USE_BLOCKS", "").strip().lower() in ("1", "true", "yes")
    sources, broken = {}, {}
    for c in declared.connections:      # a connection whose secret is missing fails its own streams only
        try:
            sources[c.system, c.name] = connection_settings(c, use_blocks=use_blocks)
        except ValueError as exc:
            broken[c.system, c.name] = str(exc)
    return Settings(sources, database_url, lake_path, declared.sites, declared.origin, broken)
