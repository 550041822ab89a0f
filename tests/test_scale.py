"""What keeps the cost of a change flat as the repository grows (issue 7, "Scale").

No timing here (the machines are shared and noisy): each test pins the mechanism that makes a
change cost what it changed, or checks that the large-answer and cold-build paths give the
right results.
"""

from __future__ import annotations

import asyncio
import os


def _service(repo, clock):
    from chantd.metrics import Metrics
    from chantd.service import Service
    from chantlib.locks import MemoryLockTable

    ws = repo.workspace(auto_refresh=False, long_lived=True)
    ws.locks = MemoryLockTable(persist_dir=os.path.join(repo.root, ".chant", ".locks"), default_ttl=600)
    metrics = Metrics()
    service = Service(ws, metrics, clock=clock)
    metrics.bind(service)
    return service


class _NoWalk(set):
    """A ready set that refuses to be walked: what a per-event walk of the table would do."""

    def __iter__(self):
        raise AssertionError("the whole ready set was walked for one file event")


def test_ready_since_follows_the_graph_without_walking_it(repo):
    now = [1000.0]
    repo.write("2026-01-24-001-aaa", "status: pending")
    repo.write("2026-01-24-002-bbb", "status: pending\ndepends_on: [2026-01-24-001-aaa]")
    service = _service(repo, lambda: now[0])
    try:
        service.apply(None)
        graph = service.ws.table.graph
        assert service._ready_since == {"2026-01-24-001-aaa": 1000.0}
        graph._ready_set = _NoWalk(graph._ready_set)
        now[0] = 1010.0
        repo.write("2026-01-24-001-aaa", "status: completed")
        service.apply([".chant/specs/2026-01-24-001-aaa.md"[len(".chant/"):]])
        assert service.ws.table.graph is graph  # followed, not rebuilt
        assert service._ready_since == {"2026-01-24-002-bbb": 1010.0}
        now[0] = 1025.0
        result = asyncio.run(service.call("queue_claim", {"owner": "w"}, "socket"))
        assert result["ok"] and result["result"]["spec"]["id"] == "2026-01-24-002-bbb"
        wait = service.metrics.registry.get_sample_value("chant_queue_wait_seconds_sum")
        assert wait == 15.0  # ready at 1010, claimed at 1025
        # released without finishing: queued again, and waiting from now
        now[0] = 1030.0
        token = result["result"]["lease"]["token"]
        assert asyncio.run(service.call("lock_release", {"spec": "2026-01-24-002-bbb", "token": token}, "socket"))["ok"]
        assert service._ready_since == {"2026-01-24-002-bbb": 1030.0}
    finally:
        service.close()
