"""Personal data: what the lake, the quarantine and the analysts may see of a person.

    personal_data.py  keep | hash | drop per personal column (`[personal_data.<table>]` in wfm.toml),
                      applied on the way to the lake and the quarantine
    grants.py         `wfm grants`: a read-only analyst role on the published tables, without the
                      columns the policy hashes or drops

Nothing is imported here, so landing can use the policy without loading the grants (which read
the landing ledger).
"""
