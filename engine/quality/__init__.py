"""Quality: the checks before a batch lands and after a table-day has landed.

    suites.py     one Great Expectations suite per stream (row expectations)
    gate.py       the row gate: a batch validated against its suite, bad rows to quarantine
    rules.py      the reconciliation rules, as data (what landed streams must agree on)
    reconcile.py  the rules checked per day partition, stored, and enforced (holds)
    policies.py   error | warn | off and tolerances per rule and row check, from wfm.toml
    holds.py      what a failing rule holds (a group, an agent, or the day), and waivers
    gx_docs.py    GX over PostgreSQL: the rules as one checkpoint, and its Data Docs
    replay.py     the quarantine lifecycle: replay held rows through today's rules, or discard
    reports.py    pass rates per stream and rule, and an HTML dashboard
"""
