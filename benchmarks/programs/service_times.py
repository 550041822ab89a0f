"""Inside the daemon: ``service_times.py ROOT BUDGET CAP`` prints the seconds per call of each
case, one JSON object, driven by ``benchmarks/measures/service.py``.

The daemon's parts are made by :func:`chantd.build`, exactly as the daemon makes them (no
transport started, no port), with the leases written through to a temp folder instead of
the repository's; the service is loaded as the daemon loads it, then called in process:
``BUDGET`` seconds (at most ``CAP`` calls) per case.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time

from chantd import build


async def measure(parts, budget: float, cap: int) -> dict:
    service = parts.service

    async def call(cmd, params, decode=True):
        raw = await service.call_encoded(cmd, params, "socket", "bench@runner", 1)
        if not decode:
            return raw
        answer = json.loads(raw)
        if not answer.get("ok"):
            raise RuntimeError(f"{cmd}: {answer.get('error')}")
        return answer["result"]

    await parts.load()  # the daemon's own load
    ready = (await call("list", {"ready": True}))["specs"]
    spec = ready[0]["id"]

    async def lock_pair():
        lease = await call("lock_acquire", {"spec": spec, "owner": "bench-svc", "ttl": 60})
        await call("lock_release", {"spec": spec, "owner": "bench-svc", "token": lease["token"]})

    async def claim_pair():
        got = await call("queue_claim", {"owner": "bench-svc", "ttl": 60})
        lease = got["lease"]
        await call("lock_release", {"spec": lease["spec"], "owner": "bench-svc", "token": lease["token"]})

    async def list_fresh():
        service._forget()  # what any write does first: the cached answers are dropped
        await call("list", {"ready": True}, decode=False)

    cases = {
        "hello": lambda: call("hello", {}),
        "lock": lock_pair,
        "claim": claim_pair,
        "queue_next": lambda: call("queue_next", {}),
        "daemon_status": lambda: call("daemon_status", {}),
        "list_cached": lambda: call("list", {"ready": True}, decode=False),
        "list_fresh": list_fresh,
    }
    out = {}
    for name, fn in cases.items():
        await fn()  # warm
        n, t0 = 0, time.perf_counter()
        while n < cap and time.perf_counter() - t0 < budget:
            await fn()
            n += 1
        out[name] = {"seconds": (time.perf_counter() - t0) / n, "calls": n}
    return out


async def main(root: str, budget: float, cap: int) -> dict:
    leases = tempfile.mkdtemp(prefix="chant-bench-leases-")  # leases written through here, not to the repository
    try:
        async with build(root, api_port=0, metrics_port=0, leases_dir=leases) as parts:
            return await measure(parts, budget, cap)
    finally:
        shutil.rmtree(leases, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))))
