"""The known values of spec fields (chant-format.md §2-3). No imports: used on fast paths."""

from __future__ import annotations

__all__ = [
    "KNOWN_STATUSES", "STATUS_FILTERS", "canon_status", "KNOWN_TYPES", "PRIORITY_NAMES", "DEFAULT_PRIORITY", "MAX_TTL",
    "BLANK", "SPEC_FIELDS", "MAX_CLAIM_WAIT",
]

KNOWN_STATUSES = (
    "pending", "in_progress", "paused", "completed", "failed", "needs_attention", "blocked", "cancelled",
)
#: what ``list --status`` takes: every known status and ``ready`` (computed; ``blocked`` is
#: both), in the order the computed ones matter most
STATUS_FILTERS = (
    "pending", "ready", "blocked", "in_progress", "paused", "completed", "failed", "needs_attention", "cancelled",
)
_STATUS_ALIASES = {"inprogress": "in_progress", "needsattention": "needs_attention"}


def canon_status(value: str) -> str:
    """A status as users write it (``In-Progress``, ``inprogress``) in its stored form."""
    value = value.lower().replace("-", "_")
    return _STATUS_ALIASES.get(value, value)


KNOWN_TYPES = ("code", "task", "driver", "documentation", "research", "group", "conflict")
PRIORITY_NAMES = {"low": 0, "normal": 50, "high": 100, "critical": 200}
DEFAULT_PRIORITY = 50
#: The longest lease: ten years. Longer is a mistake, and times past year 9999 cannot be written.
MAX_TTL = 10 * 365 * 86400
#: the longest a claim may wait for work (``queue_claim``'s ``wait``): a long poll, bounded so
#: that a client's read timeout can always be made to fit it
MAX_CLAIM_WAIT = 300.0
#: the defaults of the operations (chantlib.ops) that the library's methods share
SEARCH_LIMIT = 100
DEFAULT_TYPE = KNOWN_TYPES[0]  # "code"
#: the white space a blank value is made of: ASCII only, as ECMAScript's \s in the OpenAPI
#: document's patterns sees it (Python's str.strip() also takes \x1c-\x1f and \x85)
BLANK = " \t\n\r\f\v"
#: the keys of a spec object (``Workspace.summary``), in their order: what ``list``'s
#: ``fields`` parameter may pick from
SPEC_FIELDS = (
    "id", "title", "status", "type", "ready", "blocked", "project", "labels", "depends_on", "priority", "criteria",
    "approval", "archived", "path", "held",
)
