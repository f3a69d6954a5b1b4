"""The settings file and what it declares, in plain Python (no Prefect).

    file.py          find (`WFM_CONFIG`, else wfm.toml in the data dir or the checkout) and parse the
                     TOML/YAML file, hand out sections
    connections.py   named source connections and the sites that pair them (`[connections.*]`, `[sites.*]`)
"""
