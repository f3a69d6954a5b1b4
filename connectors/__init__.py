"""Plain-Python connectors to the contact center and 1C:ZUP (no Prefect imports).

    from connectors import contact_center, streams
    from connectors.settings import contact_center_from_env

    with contact_center_from_env().client() as client:
        ids = contact_center.personnel_ids(client)
        for window in streams.windows(contact_center.AGENT_LOGINS, start, end, ids["agents"]):
            parsed = streams.fetch(client, contact_center.AGENT_LOGINS, window)
"""

from .errors import AuthenticationFailed, InvalidPayload, SourceError, SourceRejected, SourceUnavailable
from .http import RetryPolicy, SourceClient
from .settings import SourceSettings, contact_center_from_env, onec_from_env
from .streams import Stream, Window, fetch, fetch_all, windows

__all__ = [
    "AuthenticationFailed", "InvalidPayload", "SourceError", "SourceRejected", "SourceUnavailable",
    "RetryPolicy", "SourceClient", "SourceSettings", "contact_center_from_env", "onec_from_env",
    "Stream", "Window", "fetch", "fetch_all", "windows",
]
