"""Prefect blocks: one per external system, each carrying its settings and secrets and building its client.

    ContactCenterConnection   the contact center's REST API     saved as "wfm-contact-center"
    OneCConnection            1C:ZUP's HTTP service              saved as "wfm-onec"
    WarehouseConnection       the PostgreSQL warehouse           saved as "wfm-warehouse"
    LakeLocation              the Parquet lake                   saved as "wfm-lake"

`load_settings()` resolves all four at once. It reads the WFM_* variables; with
`WFM_USE_BLOCKS=1` it first loads the block saved under each name above from the Prefect API and
falls back to the variables for any system without one. Block lookup is opt-in because, with no
PREFECT_API_URL, Prefect starts an ephemeral API server on first use (about ten seconds per
process), and an unreachable PREFECT_API_URL costs seconds of client retries.

To create the blocks in the Prefect UI, register their types once per server:

    prefect block register -m blocks
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from prefect.blocks.core import Block

from .contact_center import ContactCenterConnection
from .lake import LakeLocation
from .onec import OneCConnection
from .warehouse import WarehouseConnection

__all__ = [
    "BLOCK_NAMES", "Connections", "ContactCenterConnection", "LakeLocation", "OneCConnection",
    "WarehouseConnection", "load_settings",
]

logger = logging.getLogger(__name__)

# attribute of `Connections` -> (block type, the name its block is saved under)
BLOCK_NAMES: dict[str, tuple[type[Block], str]] = {
    "contact_center": (ContactCenterConnection, "wfm-contact-center"),
    "onec": (OneCConnection, "wfm-onec"),
    "warehouse": (WarehouseConnection, "wfm-warehouse"),
    "lake": (LakeLocation, "wfm-lake"),
}


@dataclass(frozen=True)
class Connections:
    """Every external system's connection; None where a system is not configured."""

    contact_center: ContactCenterConnection | None = None
    onec: OneCConnection | None = None
    warehouse: WarehouseConnection | None = None
    lake: LakeLocation | None = None
    origin: Mapping[str, str] = field(default_factory=dict)   # attribute -> "block wfm-onec" | "environment"


def load_settings(env: Mapping[str, str] | None = None, *, use_blocks: bool | None = None) -> Connections:
    """Each system's connection from its saved block (WFM_USE_BLOCKS=1), else from WFM_* variables."""
    env = os.environ if env is None else env
    if use_blocks is None:
        use_blocks = env.get("WFM_USE_BLOCKS", "").strip().lower() in ("1", "true", "yes")
    saved = _saved_blocks() if use_blocks else {}
    found: dict[str, Block] = {}
    origin: dict[str, str] = {}
    for attribute, (block_type, block_name) in BLOCK_NAMES.items():
        if attribute in saved:
            found[attribute], origin[attribute] = saved[attribute], f"block {block_name}"
        elif (block := block_type.from_env(env)) is not None:  # type: ignore[attr-defined]
            found[attribute], origin[attribute] = block, "environment"
    return Connections(**found, origin=origin)  # type: ignore[arg-type]


def _saved_blocks() -> dict[str, Block]:
    """The blocks saved under the well-known names; lookup stops at the first sign of a dead API."""
    import httpx
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if not PREFECT_API_URL.value() and not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        logger.warning("WFM_USE_BLOCKS is set but no Prefect API is configured; using WFM_* variables")
        return {}
    saved: dict[str, Block] = {}
    for attribute, (block_type, block_name) in BLOCK_NAMES.items():
        try:
            # _sync: stay synchronous even when called from inside an async flow
            saved[attribute] = block_type.load(block_name, _sync=True)  # type: ignore[call-arg]
        except ValueError as exc:
            if not isinstance(exc.__cause__, ObjectNotFound):
                raise
        except (httpx.HTTPError, OSError) as exc:
            logger.warning("Prefect API unreachable (%s); using WFM_* variables instead",
                           type(exc).__name__)
            break
    return saved
