"""The analytics warehouse (PostgreSQL) as a Prefect block: its URL and its two schemas."""

from __future__ import annotations

import os
from collections.abc import Mapping

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator

SCHEMES = ("postgresql", "postgres")
SQLALCHEMY_DRIVER = "postgresql+psycopg"


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
    schema_name: str = Field(default="wfm", description="Schema of the warehouse tables.")
    meta_schema: str = Field(default="wfm_meta", description="Schema of the run ledger and the watermarks.")

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
