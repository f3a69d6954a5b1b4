"""Validation shared by the blocks that point at an HTTP source."""

from __future__ import annotations

from urllib.parse import urlsplit


def source_url(value: str | None) -> str | None:
    """An http(s) URL without an embedded password (secrets belong in the secret fields)."""
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    if urlsplit(value).password is not None:
        raise ValueError("must not embed a password: use the username and password fields")
    return value
