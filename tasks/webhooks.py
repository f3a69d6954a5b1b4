"""The webhook task: the short, bounded delivery pass a sync or push run makes after its own work."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from engine.push import webhook_outbox


@task(name="deliver-webhooks-after-run", cache_policy=NONE)
def deliver_after_run(database_url: str) -> dict:
    """At most `INLINE_SECONDS` of delivery to healthy subscribers; the rest waits for the
    `deliver-webhooks` deployment. Never raises."""
    tally = webhook_outbox.deliver_inline(database_url)
    return {"delivered": tally.delivered, "retrying": tally.retrying, "failed": tally.failed}
