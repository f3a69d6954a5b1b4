"""Streams that arrive as files rather than from an API: planned shifts from a planning tool.

They are declared like the API streams (columns, key, partition) so files land through the same
validate → quarantine → exactly-once path; `request` is never called for them.
"""

from __future__ import annotations

from .records import Field
from .streams import Request, Stream, Window

SYSTEM = "files"


def _no_request(window: Window) -> Request:
    raise RuntimeError("file streams are imported, not requested")


PLANNED_SHIFTS = Stream(
    name="planned_shifts", system=SYSTEM, endpoint="file import", request=_no_request, window=None,
    key=("employee_id", "shift_start"), partition="shift_start",
    fields=(Field("employee_id", "employee_id"), Field("shift_start", "shift_start", "timestamp"),
            Field("shift_end", "shift_end", "timestamp"),
            Field("unpaid_break_minutes", "unpaid_break_minutes", "int", required=False, default=0),
            Field("source", "source", required=False, default="import")),
)

STREAMS: tuple[Stream, ...] = (PLANNED_SHIFTS,)
