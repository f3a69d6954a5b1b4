"""Bulk files: a file imported through the one landing path or validated dry, a table exported.

    files.py   an import is a run whose windows are the file's chunks; a validation lands nothing
    export.py  a warehouse table streamed to CSV or Parquet, memory bounded by a chunk
"""
