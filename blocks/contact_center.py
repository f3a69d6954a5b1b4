"""The contact-center platform as a Prefect block: its address, its credentials, its retry cap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator

from blocks._urls import source_url
from connectors.http import RetryPolicy, SourceClient
from connectors.settings import CONTACT_CENTER, Maintenance, SourceSettings, contact_center_from_env

AuthKind = Literal["none", "basic", "bearer", "apikey", "oauth2"]


class ContactCenterConnection(Block):
    """Connection to the contact-center platform's REST API.

    Holds the base URL, one of five authentication styles and the retry cap, and builds the
    connectors' HTTP client. Secrets are kept as `SecretStr` and unwrapped only by `settings()`.

    Example:
        Load a saved connection and ask for the personnel:
        ```python
        from blocks import ContactCenterConnection

        contact_center = ContactCenterConnection.load("BLOCK_NAME")
        with contact_center.client() as client:
            personnel = client.request_json("GET", "/personnel")
        ```
    """

    _block_type_name = "WFM Contact Center Connection"
    _documentation_url = "https://developer.mozilla.org/en-US/docs/Web/HTTP/Authentication"

    # a rejected value is not echoed in the error: it may be a credential
    model_config = ConfigDict(hide_input_in_errors=True)

    url: str = Field(description="Base URL of the contact-center API, e.g. `https://cc.example.com/api`.")
    auth: AuthKind = Field(
        default="none",
        description="Authentication style: none, basic, bearer, apikey (a key in a header) or oauth2 "
                    "(client credentials).",
    )
    username: str | None = Field(default=None, description="User name for HTTP Basic.")
    password: SecretStr | None = Field(default=None, description="Password for HTTP Basic.")
    token: SecretStr | None = Field(default=None, description="The bearer token, or the API key with auth apikey.")
    api_key_header: str = Field(default="X-API-Key", description="Header that carries the API key.")
    token_url: str | None = Field(
        default=None, description="OAuth2 token endpoint; defaults to `{url}/oauth/token`.",
    )
    client_id: str | None = Field(default=None, description="OAuth2 client id.")
    client_secret: SecretStr | None = Field(default=None, description="OAuth2 client secret.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds allowed for each request.")
    max_attempts: int = Field(
        default=RetryPolicy().attempts, ge=1, le=20,
        description="Attempts per request before giving up on transient faults, the first included.",
    )
    maintenance: str = Field(
        default="", description="Daily windows in which %s is not asked (runs and pushes are deferred), "
                                "e.g. `01:00-04:30 Europe/Moscow`; several comma-separated." % "the contact center",
    )

    @field_validator("maintenance")
    @classmethod
    def _maintenance_windows(cls, value: str) -> str:
        Maintenance.parse(value, "maintenance")
        return value

    @field_validator("url", "token_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return source_url(value)

    def settings(self) -> SourceSettings:
        """Plain connector settings; the one place this block's secrets are unwrapped."""
        token_url = self.token_url or (self.url.rstrip("/") + "/oauth/token" if self.auth == "oauth2" else None)
        return SourceSettings(
            CONTACT_CENTER, self.url, self.auth, username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            token=self.token.get_secret_value() if self.token else None,
            api_key_header=self.api_key_header, token_url=token_url, client_id=self.client_id,
            client_secret=self.client_secret.get_secret_value() if self.client_secret else None,
            timeout=self.timeout, retry=RetryPolicy(attempts=self.max_attempts), maintenance=self.maintenance,
        )

    def client(self) -> SourceClient:
        """A ready client for the contact center; the caller closes it."""
        return self.settings().client()

    @classmethod
    def from_settings(cls, settings: SourceSettings) -> ContactCenterConnection:
        """The block holding the same connection as plain connector settings."""
        return cls(
            url=settings.url, auth=settings.auth, username=settings.username,
            password=settings.password, token=settings.token, api_key_header=settings.api_key_header,
            token_url=settings.token_url, client_id=settings.client_id,
            client_secret=settings.client_secret, timeout=settings.timeout,
            max_attempts=settings.retry.attempts, maintenance=settings.maintenance,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ContactCenterConnection | None:
        """The connection described by the WFM_CC_* variables, or None when WFM_CC_URL is unset."""
        settings = contact_center_from_env(env)
        return None if settings is None else cls.from_settings(settings)
