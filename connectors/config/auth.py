"""Authentication styles a source may require: none, Basic, Bearer, API-key header, OAuth2.

Each style is an `httpx.Auth`, so the HTTP client stays unaware of which one is in use. Secrets
live only inside these objects; `repr()` never shows them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import httpx

from ..errors import AuthenticationFailed, RetriableError


class BearerToken(httpx.Auth):
    """A static bearer token."""

    def __init__(self, token: str):
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerToken(***)"


class ApiKeyHeader(httpx.Auth):
    """A static key sent in a header of the deployment's choosing."""

    def __init__(self, key: str, header: str = "X-API-Key"):
        self._key = key
        self.header = header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.header] = self._key
        yield request

    def __repr__(self) -> str:
        return f"ApiKeyHeader(header={self.header!r}, key=***)"


@dataclass
class _Token:
    value: str
    expires_at: float


@dataclass
class OAuth2ClientCredentials(httpx.Auth):
    """OAuth2 client-credentials grant.

    The token is fetched on first use, refreshed shortly before it expires, and refreshed once
    more if the source answers 401 to a token we believed valid (revoked, clock skew).
    """

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    timeout: float = 30.0
    refresh_margin: float = 0.1   # refresh when less than this share of the lifetime is left
    _token: _Token | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    refreshes: int = field(default=0, init=False)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._valid_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._valid_token(stale=token)}"
            yield request

    def _valid_token(self, stale: str | None = None) -> str:
        with self._lock:
            now = time.monotonic()
            current = self._token
            if current is None or current.value == stale or now >= current.expires_at:
                self._token = current = self._fetch(now)
            return current.value

    def _fetch(self, now: float) -> _Token:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        try:
            with httpx.Client(timeout=self.timeout) as client:
                response = client.post(self.token_url, data=form,
                                       auth=httpx.BasicAuth(self.client_id, self.client_secret))
        except httpx.TransportError as exc:
            raise RetriableError(f"token endpoint unreachable ({type(exc).__name__})") from None
        if response.status_code in (400, 401, 403):
            raise AuthenticationFailed("oauth2", self.token_url,
                                       f"token endpoint refused client {self.client_id!r} (HTTP {response.status_code})")
        if response.status_code != 200:
            raise RetriableError(f"token endpoint answered HTTP {response.status_code}",
                                 status=response.status_code)
        try:
            body = response.json()
            value, lifetime = body["access_token"], float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError):
            raise RetriableError("token endpoint sent an unreadable answer") from None
        self.refreshes += 1
        return _Token(value, now + lifetime * (1 - self.refresh_margin))


def build_auth(kind: str, *, username: str | None = None, password: str | None = None,
               token: str | None = None, api_key_header: str = "X-API-Key",
               token_url: str | None = None, client_id: str | None = None,
               client_secret: str | None = None, scope: str | None = None) -> httpx.Auth | None:
    """The `httpx.Auth` for a configured style; `kind` is none|basic|bearer|apikey|oauth2."""
    match kind:
        case "none":
            return None
        case "basic":
            _need(kind, username=username)
            return httpx.BasicAuth(username or "", password or "")
        case "bearer":
            _need(kind, token=token)
            return BearerToken(token or "")
        case "apikey":
            _need(kind, token=token)
            return ApiKeyHeader(token or "", api_key_header)
        case "oauth2":
            _need(kind, token_url=token_url, client_id=client_id, client_secret=client_secret)
            return OAuth2ClientCredentials(token_url or "", client_id or "", client_secret or "", scope)
    raise ValueError(f"unknown auth kind {kind!r}: use none, basic, bearer, apikey or oauth2")


def _need(kind: str, **values: str | None) -> None:
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ValueError(f"auth {kind} needs {', '.join(missing)}")
