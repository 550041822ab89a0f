"""Inside the daemon: its ``Service``, made by :func:`chantd.build` as the daemon makes it,
called in a process of its own with no transport (``programs/service_times.py``)."""

from __future__ import annotations

import json
import os

from ..runner import run
from ..settings import ROOT, SLOW_TIMEOUT

PROGRAM = os.path.join(ROOT, "benchmarks", "programs", "service_times.py")


SERVICE_ROWS = [
    ("hello", "`hello`", ("hello", 1)),
    ("lock", "`lock_acquire` + `lock_release` (one pair)", ("lock", 1)),
    ("claim", "`queue_claim` + `lock_release`", ("claim", 1)),
    ("queue_next", "`queue_next`", ("http", 1)),
    ("daemon_status", "`daemon_status`", None),
    ("list_cached", "`list` ready (the cached answer of a repeated command)", None),
    ("list_fresh", "`list` ready (first after a write: computed and encoded)", None),
]


def service_times(python: str, root: str, env: dict, budget: float) -> dict:
    """Seconds per call inside the daemon's Service, in a process of its own (no transport)."""
    r = run([python, PROGRAM, root, str(budget), "100000"], cwd=ROOT, timeout=SLOW_TIMEOUT, env=env)
    if not r.ok():
        return {"error": r.why()}
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no result"}
