"""Authentication of the simulated systems: none, HTTP Basic, static Bearer, API key, OAuth2.

OAuth2 is the client-credentials grant: `POST {base}/oauth/token` with
`grant_type=client_credentials` and the client's id and secret in the form or in HTTP Basic.
Issued tokens live `token_ttl` seconds of real (monotonic) time, not simulation time, because a
client's token cache runs on the real clock. Secrets are compared in constant time and never
written to a log, an error body or a repr.
"""

from __future__ import annotations

import base64
import hmac
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from .base import SimResponse

AUTH_KINDS = ("none", "basic", "bearer", "apikey", "oauth2")
MAX_TOKENS = 10_000


@dataclass
class AuthConfig:
    """How one simulated system authenticates its clients."""

    kind: str = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    header: str = "X-API-Key"
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    token_ttl: float = 300.0

    def __post_init__(self) -> None:
        if self.kind not in AUTH_KINDS:
            raise ValueError(f"auth kind {self.kind!r} is not one of {', '.join(AUTH_KINDS)}")


class Authenticator:
    """Checks requests to one system and, for OAuth2, issues and revokes its tokens."""

    def __init__(self, config: AuthConfig, system: str):
        self.config = config
        self.system = system            # "cc" answers JSON errors, "onec" a web server's text
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, headers) -> SimResponse | None:
        """None if the request may pass, else the 401 to send."""
        cfg = self.config
        if cfg.kind == "none":
            return None
        if cfg.kind == "apikey":
            ok = _same(headers.get(cfg.header), cfg.token)
            return None if ok else self._denied(f"Missing or wrong {cfg.header} header")
        scheme, _, credentials = (headers.get("Authorization") or "").partition(" ")
        scheme = scheme.lower()
        if cfg.kind == "basic":
            ok = scheme == "basic" and _basic_matches(credentials, cfg.username, cfg.password)
            return None if ok else self._denied("Wrong user name or password", 'Basic realm="wfm"')
        if cfg.kind == "bearer":
            ok = scheme == "bearer" and _same(credentials.strip(), cfg.token)
            return None if ok else self._denied("Missing or wrong bearer token", 'Bearer realm="wfm"')
        if scheme != "bearer" or not credentials.strip():
            return self._denied("A bearer token is required", 'Bearer realm="wfm"')
        if not self._token_alive(credentials.strip()):
            return self._denied("The access token is expired or unknown", 'Bearer error="invalid_token"')
        return None

    def issue_token(self, headers, body: bytes) -> SimResponse:
        """The OAuth2 token endpoint (client-credentials grant)."""
        cfg = self.config
        if cfg.kind != "oauth2":
            return SimResponse.json(404, {"error": "not_found", "error_description": "OAuth2 is not enabled"})
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            return SimResponse.json(400, {"error": "unsupported_grant_type",
                                          "error_description": "Only client_credentials is supported"})
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, credentials = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "basic":
            client_id, client_secret = _basic_pair(credentials)
        if not (_same(client_id, cfg.client_id) and _same(client_secret, cfg.client_secret)):
            return SimResponse.json(401, {"error": "invalid_client",
                                          "error_description": "Client authentication failed"},
                                    **{"WWW-Authenticate": 'Basic realm="oauth"'})
        token = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            if len(self._tokens) >= MAX_TOKENS:
                self._tokens = {t: expiry for t, expiry in self._tokens.items() if expiry > now}
            self._tokens[token] = now + cfg.token_ttl
        return SimResponse.json(200, {"access_token": token, "token_type": "Bearer",
                                      "expires_in": max(1, math.ceil(cfg.token_ttl))},
                                **{"Cache-Control": "no-store"})

    def revoke_tokens(self) -> int:
        """Forget every issued token; the count revoked."""
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
        return count

    def _token_alive(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def _denied(self, message: str, challenge: str | None = None) -> SimResponse:
        headers = {"WWW-Authenticate": challenge} if challenge else {}
        if self.system == "onec":     # the web server in front of 1C answers before 1C does
            response = SimResponse.text(401, "401 Unauthorized")
        else:
            response = SimResponse.json(401, {"field": "Authorization", "message": "Unauthorized",
                                              "description": message})
        response.headers.update(headers)
        return response


def _same(given: str | None, expected: str | None) -> bool:
    if given is None or expected is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def _basic_pair(credentials: str) -> tuple[str | None, str | None]:
    try:
        user, sep, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return (user, password) if sep else (None, None)


def _basic_matches(credentials: str, username: str | None, password: str | None) -> bool:
    user, secret = _basic_pair(credentials)
    return _same(user, username) and _same(secret, password)
