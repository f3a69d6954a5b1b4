"""Connections as Prefect blocks: one block document per configured connection.

The settings file (`connectors/config/connections.py`) says which connections exist; the blocks are
where a Prefect server keeps their addresses and secrets. A connection named `default` keeps the
block names of a single-connection installation ("wfm-contact-center", "wfm-onec"); any other is
saved as `wfm-cc-<name>` / `wfm-onec-<name>`. A secret the file names as `{ block = "..." }` is
read from that Prefect Secret block when the connection's client is built, never earlier.
"""

from __future__ import annotations

from prefect.blocks.core import Block

from connectors.config.connections import DEFAULT, Connection, Connections
from connectors.settings import CONTACT_CENTER, SourceSettings

from .contact_center import ContactCenterConnection
from .onec import OneCConnection

__all__ = ["block_name", "block_type", "connection_settings", "save_connection_blocks", "secret_from_block"]

PREFIX = {CONTACT_CENTER: "wfm-cc", "1C:ZUP": "wfm-onec"}
LEGACY = {CONTACT_CENTER: "wfm-contact-center", "1C:ZUP": "wfm-onec"}


def block_type(connection: Connection) -> type[ContactCenterConnection] | type[OneCConnection]:
    return ContactCenterConnection if connection.system == CONTACT_CENTER else OneCConnection


def block_name(connection: Connection) -> str:
    """The block document a connection is saved under."""
    if connection.name == DEFAULT:
        return LEGACY[connection.system]
    return f"{PREFIX[connection.system]}-{connection.name}"


def secret_from_block(name: str) -> str:
    """The value of a saved Prefect Secret block (for `{ block = "..." }` references)."""
    from prefect.blocks.system import Secret

    secret = Secret.load(name, _sync=True)  # type: ignore[call-arg]
    return str(secret.get())


def connection_settings(connection: Connection, *, use_blocks: bool) -> SourceSettings:
    """A connection's client settings: its saved block when asked for and present, else the file's
    (or the environment's) settings with referenced Secret blocks read through Prefect."""
    if use_blocks:
        saved = _load(connection)
        if saved is not None:
            return saved.settings()
    return connection.settings(resolve_block=secret_from_block)


def save_connection_blocks(connections: Connections, *, overwrite: bool = True) -> list[str]:
    """Save one block document per connection (its secrets resolved now); returns the block names."""
    names = []
    for connection in connections.connections:
        settings = connection.settings(resolve_block=secret_from_block)
        block: Block = block_type(connection).from_settings(settings)
        block.save(block_name(connection), overwrite=overwrite, _sync=True)  # type: ignore[call-arg]
        names.append(block_name(connection))
    return names


def _load(connection: Connection) -> ContactCenterConnection | OneCConnection | None:
    from prefect.exceptions import ObjectNotFound

    try:
        return block_type(connection).load(block_name(connection), _sync=True)  # type: ignore[call-arg,return-value]
    except ValueError as exc:
        if isinstance(exc.__cause__, ObjectNotFound):
            return None
        raise
