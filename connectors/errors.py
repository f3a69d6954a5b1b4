"""Exceptions raised by the connectors.

Every message is one line that names the system, the endpoint and what went wrong, so that the
CLI can print it as it is. No message ever contains a credential.

    SourceError                 base of everything below
    ├── SourceUnavailable       transient faults outlived the retry budget (5xx, 429, timeouts ...)
    ├── SourceRejected          a fatal answer: 4xx other than 401/403/404/408/429
    ├── AuthenticationFailed    401/403, or the OAuth2 token endpoint refused the client
    ├── InvalidPayload          the answer is not the JSON shape the contract describes
    └── SourceDeferred          not asked: the run's circuit breaker is open, or the source is in
                                its maintenance window (`connectors/http.py:Breaker`)
"""

from __future__ import annotations


class SourceError(Exception):
    """A source system could not give us what we asked for."""

    def __init__(self, system: str, endpoint: str, detail: str):
        self.system = system
        self.endpoint = endpoint
        self.detail = detail
        super().__init__(f"{system} {endpoint}: {detail}")


class SourceUnavailable(SourceError):
    """Transient failures continued past the attempt cap."""

    def __init__(self, system: str, endpoint: str, detail: str, attempts: int):
        self.attempts = attempts
        super().__init__(system, endpoint, f"{detail} (gave up after {attempts} attempts)")


class SourceRejected(SourceError):
    """The source refused the request; retrying the same request cannot help."""

    def __init__(self, system: str, endpoint: str, status: int, message: str):
        self.status = status
        super().__init__(system, endpoint, f"HTTP {status}: {message}")


class AuthenticationFailed(SourceError):
    """Credentials were refused."""


class InvalidPayload(SourceError):
    """The response body does not follow the contract."""


class SourceDeferred(SourceError):
    """The request was not made: its source is deemed down for this run, or in maintenance.
    Nothing was sent, so the work is safe to do later."""


class RetriableError(Exception):
    """Internal: one attempt failed in a way that another attempt may fix."""

    def __init__(self, detail: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.status = status
