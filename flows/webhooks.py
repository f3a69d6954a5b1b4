"""Webhook delivery, apart from the runs that raise the events (`engine/push/webhook_outbox.py`).

`deliver_webhooks` is the `deliver-webhooks` deployment (every minute): every due outbox row,
with the retry policy and the backoff between passes. Sync and push runs add a short bounded
pass of their own after their work (`tasks/webhooks.py:deliver_after_run`), so that a healthy
subscriber hears within seconds; it never fails, and never waits on a failing subscriber.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from engine.push import webhook_outbox
from engine.settings import resolve_settings


@flow(name="deliver-webhooks")
def deliver_webhooks(limit: int = 1000) -> dict:
    """Deliver every due webhook event (new ones, and retries whose backoff has passed)."""
    tally = webhook_outbox.deliver_due(resolve_settings().database_url, limit=limit)
    result = {"delivered": tally.delivered, "retrying": tally.retrying, "failed": tally.failed}
    get_run_logger().info("webhooks: %s", result)
    return result
