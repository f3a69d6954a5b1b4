"""Repair: what an operator changes by hand when the pipelines' own state or the lake is wrong.

    state.py        a stream's watermark shown, set or reset (`wfm state`), each change logged
    lake_repair.py  the lake rebuilt from committed rows and verified against them (`wfm lake`)
"""
