"""What a source is and how it is reached: its system, its credentials, its named connections.

    systems.py       the source systems known (contact center, 1C:ZUP): how their settings are named,
                     what a 404 means, the shortest timeout (`source_system(name)`)
    auth.py          the authentication styles a source may require (none, Basic, Bearer, API key,
                     OAuth2), each an `httpx.Auth` that never shows its secret
    file.py          find (`WFM_CONFIG`, else wfm.toml in the data dir or the checkout) and parse the
                     TOML/YAML file, hand out sections
    connections.py   named source connections and the sites that pair them (`[connections.*]`, `[sites.*]`)
"""
