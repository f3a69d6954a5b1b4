"""Push: what the WFM sends out — to 1C (sendSchedule, sendFactWorkTime) and to webhook subscribers.

    outbox.py      one row per employee and period to send, with its state (exactly once)
    schedules.py   planned shifts as sendSchedule payloads, per employee and month
    deviations.py  planned against actual time per employee and day; confirmed ones go to 1C
    webhooks.py    signed webhook events: subscribers, secrets, tables, signature checks
    webhook_outbox.py  events written where they happen, delivered apart (retries, redelivery)
"""
