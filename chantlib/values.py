"""The known values of spec fields (docs/chant-format.md §2-3). No imports: used on fast paths."""

from __future__ import annotations

__all__ = ["KNOWN_STATUSES", "KNOWN_TYPES", "PRIORITY_NAMES", "DEFAULT_PRIORITY", "MAX_TTL"]

KNOWN_STATUSES = (
    "pending", "in_progress", "paused", "completed", "failed", "needs_attention", "blocked", "cancelled",
)
KNOWN_TYPES = ("code", "task", "driver", "documentation", "research", "group", "conflict")
PRIORITY_NAMES = {"low": 0, "normal": 50, "high": 100, "critical": 200}
DEFAULT_PRIORITY = 50
#: The longest lease: ten years. Longer is a mistake, and times past year 9999 cannot be written.
# the white space a blank value is made of: ASCII only, as ECMAScript's \s in the OpenAPI
# document's patterns sees it (Python's str.strip() also takes \x1c-\x1f and \x85)
BLANK = " \t\n\r\f\v"
MAX_TTL = 10 * 365 * 86400
