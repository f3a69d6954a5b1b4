"""The analytics warehouse (PostgreSQL) as a Prefect block: its URL.

The tables always live in the schemas `wfm` and `wfm_meta` (every query, migration and the
reconciliation SQL name them). The block once had `schema_name`/`meta_schema` fields that
nothing read; they are gone, and a block document saved with them still loads (a value other
than the schema actually used is reported in a warning, not silently kept).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

SCHEMES = ("postgresql", "postgres")
SQLALCHEMY_DRIVER = "postgresql+psycopg"
# fields of older saved documents -> the schema the pipelines use regardless
RETIRED_FIELDS = {"schema_name": "wfm", "meta_schema": "wfm_meta"}

logger = logging.getLogger(__name__)


class WarehouseConnection(Block):
    """Connection to the PostgreSQL warehouse the pipelines load into.

    The whole URL is a `SecretStr` because it usually carries the password; `dsn()` and
    `sqlalchemy_url()` unwrap it for the code that opens a connection. When no warehouse is
    configured the pipelines start an embedded PostgreSQL instead.

    Example:
        Load a saved connection and open it with psycopg:
        ```python
        import psycopg
        from blocks import WarehouseConnection

        warehouse = WarehouseConnection.load("BLOCK_NAME")
        with psycopg.connect(warehouse.dsn()) as connection:
            connection.execute("select 1")
        ```
    """

    _block_type_name = "WFM Warehouse Connection"
    _documentation_url = "https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-URIS"

    # a rejected value is not echoed in the error: the URL may hold a password
    model_config = ConfigDict(hide_input_in_errors=True)

    url: SecretStr = Field(
        description="PostgreSQL URL, `postgresql://user:password@host:5432/dbname`; secret because it "
                    "may hold the password.",
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_fields(cls, data: Any) -> Any:
        """Blocks accept unknown keys, so an old document would carry them along unread: drop them."""
        if not isinstance(data, dict) or not RETIRED_FIELDS.keys() & data.keys():
            return data
        data = dict(data)
        for name, used in RETIRED_FIELDS.items():
            value = data.pop(name, used)
            if value not in (used, None):
                logger.warning("WarehouseConnection: %s=%r is ignored; the tables live in schema %s",
                               name, value, used)
        return data

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        scheme = value.get_secret_value().partition("://")[0]
        if scheme.partition("+")[0] not in SCHEMES:
            raise ValueError("must be a postgresql:// URL")
        return value

    def dsn(self) -> str:
        """The URL for psycopg/libpq (any SQLAlchemy `+driver` suffix removed)."""
        _, rest = self._split()
        return f"postgresql://{rest}"

    def sqlalchemy_url(self) -> str:
        """The URL for SQLAlchemy, naming the psycopg (3) driver unless another one is named."""
        scheme, rest = self._split()
        return f"{scheme if '+' in scheme else SQLALCHEMY_DRIVER}://{rest}"

    def _split(self) -> tuple[str, str]:
        scheme, _, rest = self.url.get_secret_value().partition("://")
        return scheme.replace("postgres+", "postgresql+"), rest

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WarehouseConnection | None:
        """The warehouse named by WFM_DATABASE_URL, or None when it is unset (embedded PostgreSQL)."""
        env = os.environ if env is None else env
        url = env.get("WFM_DATABASE_URL")
        return cls(url=url) if url else None
