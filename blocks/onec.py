"""1C:ZUP's HTTP service as a Prefect block: its address, its technical user, its retry cap."""

from __future__ import annotations

from collections.abc import Mapping

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator

from blocks._urls import source_url
from connectors.http import RetryPolicy, SourceClient
from connectors.settings import ONEC, Maintenance, SourceSettings, onec_from_env


class OneCConnection(Block):
    """Connection to the 1C:ZUP HTTP service (HR and payroll).

    Holds the service's base URL and 1C's technical user (HTTP Basic), and builds the
    connectors' HTTP client. The password is a `SecretStr`, unwrapped only by `settings()`.

    Example:
        Load a saved connection and read today's personnel:
        ```python
        import datetime as dt
        from blocks import OneCConnection

        onec = OneCConnection.load("BLOCK_NAME")
        today = dt.date.today().isoformat()
        with onec.client() as client:
            personnel = client.request_json("GET", f"/agents/{today}/{today}")
        ```
    """

    _block_type_name = "WFM 1C ZUP Connection"
    _documentation_url = "https://v8.1c.ru/hrm/"

    # a rejected value is not echoed in the error: it may be a credential
    model_config = ConfigDict(hide_input_in_errors=True)

    url: str = Field(description="Base URL of the HTTP service, e.g. `http://host/infobase/hs/wfm`.")
    username: str | None = Field(
        default=None, description="1C's technical user for HTTP Basic; none means no authentication.",
    )
    password: SecretStr | None = Field(default=None, description="Password of the technical user.")
    timeout: float = Field(
        default=60.0, gt=0, description="Seconds allowed for each request; 1C is slow, keep it at 60 or more.",
    )
    max_attempts: int = Field(
        default=RetryPolicy().attempts, ge=1, le=20,
        description="Attempts per request before giving up on transient faults, the first included.",
    )
    maintenance: str = Field(
        default="", description="Daily windows in which %s is not asked (runs and pushes are deferred), "
                                "e.g. `01:00-04:30 Europe/Moscow`; several comma-separated." % "1C",
    )

    @field_validator("maintenance")
    @classmethod
    def _maintenance_windows(cls, value: str) -> str:
        Maintenance.parse(value, "maintenance")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return source_url(value)

    def settings(self) -> SourceSettings:
        """Plain connector settings; the one place this block's password is unwrapped."""
        return SourceSettings(
            ONEC, self.url, "basic" if self.username else "none", username=self.username,
            password=self.password.get_secret_value() if self.password else "",
            timeout=self.timeout, retry=RetryPolicy(attempts=self.max_attempts), maintenance=self.maintenance,
        )

    def client(self) -> SourceClient:
        """A ready client for 1C; the caller closes it."""
        return self.settings().client()

    @classmethod
    def from_settings(cls, settings: SourceSettings) -> OneCConnection:
        """The block holding the same connection as plain connector settings."""
        return cls(url=settings.url, username=settings.username, password=settings.password,
                   timeout=settings.timeout, max_attempts=settings.retry.attempts, maintenance=settings.maintenance)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OneCConnection | None:
        """The connection described by the WFM_ONEC_* variables, or None when WFM_ONEC_URL is unset."""
        settings = onec_from_env(env)
        return None if settings is None else cls.from_settings(settings)
