"""A round-trip client: ``worker.py ROOT API_PORT``, driven by ``benchmarks/measures/roundtrips.py``.

It opens one persistent socket connection (``hello``), prints ``ready``, then runs the jobs
it reads from stdin, one JSON line each (``mode``: hello, lock, mix, claim, http, quit), from
the job's common ``start`` until its ``deadline`` (or ``cap`` requests; ``pace``: seconds
between two; ``until_empty``: a claim finding nothing ready ends it), and prints one JSON
line of results per job: the count, the window, the latencies in units of 0.1 µs.
"""

from __future__ import annotations

import http.client
import json
import sys
import time

from chantlib.client import DaemonClient, DaemonGone, read_token
from chantlib.errors import NothingReady


def run_job(client: DaemonClient, job: dict, api_port: int, headers: dict, conn):
    """One job; returns (its results, the HTTP connection to keep)."""
    mode = job["mode"]
    if mode == "http" and conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=10)
    spec, owner, cap = job.get("spec"), job.get("owner"), job["cap"]
    labels = {"labels": job["labels"]} if job.get("labels") else {}  # claim: only these (the load test's)
    lat, pair = [], []
    errors, first = 0, None
    while time.time() < job["start"]:
        time.sleep(0.0005)
    t_start = time.time()
    n = 0
    while n < cap and time.time() < job["deadline"]:
        t = time.perf_counter()
        t1 = t
        try:
            if mode == "hello":
                client.call("hello")
            elif mode == "lock":
                lease = client.call("lock_acquire", {"spec": spec, "owner": owner, "ttl": 120})
                client.call("lock_release", {"spec": spec, "owner": owner, "token": lease["token"]})
            elif mode == "mix":  # hello, then a lock pair: the two timed side by side under the same load
                client.call("hello")
                t1 = time.perf_counter()
                lease = client.call("lock_acquire", {"spec": spec, "owner": owner, "ttl": 120})
                client.call("lock_release", {"spec": spec, "owner": owner, "token": lease["token"]})
                pair.append(round((time.perf_counter() - t1) * 1e7))
            elif mode == "claim":
                got = client.call("queue_claim", {"owner": owner, "ttl": 120, **labels})
                t1 = time.perf_counter()
                lease = got["lease"]
                client.call("lock_release", {"spec": lease["spec"], "owner": owner, "token": lease["token"]})
                pair.append(round((time.perf_counter() - t) * 1e7))
            elif mode == "http":
                conn.request("GET", "/api/queue/next", headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {body[:120]!r}")
        except NothingReady:
            if job.get("until_empty"):  # a probe beside a run: done once it had work and it is gone
                if n:
                    break
                time.sleep(job.get("pace") or 0.01)  # the queue not open yet
                continue
            errors += 1
            first = first or "NothingReady"
            continue
        except DaemonGone as exc:
            errors += 1
            first = first or f"DaemonGone: {exc}"
            break
        except Exception as exc:  # noqa: BLE001 - counted and reported, the round goes on
            errors += 1
            first = first or f"{type(exc).__name__}: {exc}"
            if mode == "http":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=10)
            if errors >= 100:
                break
            continue
        end = t1 if mode in ("claim", "mix") else time.perf_counter()
        lat.append(round((end - t) * 1e7))  # units of 0.1 us
        n += 1
        if job.get("pace"):  # a probe: one request every so often, not as many as it can
            time.sleep(job["pace"])
    out = {"n": n, "t0": t_start, "t1": time.time(), "lat": lat, "pair": pair, "errors": errors, "error": first}
    return out, conn


def main() -> None:
    root, api_port = sys.argv[1], int(sys.argv[2])
    client = DaemonClient.connect(root, timeout=10)
    headers = {"Authorization": f"Bearer {read_token(root)}"}  # the API wants the daemon's token
    conn = None
    print("ready", flush=True)
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        job = json.loads(line)
        if job["mode"] == "quit":
            break
        out, conn = run_job(client, job, api_port, headers, conn)
        print(json.dumps(out, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
