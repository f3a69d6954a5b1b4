"""The status-push receiver: a long-running ASGI service for the contact center's
`POST /ccwfm/api/rest/status`, which owns its table (`service.py`)."""
