"""Socket and HTTP round trips: client processes (``programs/worker.py``), each with one
persistent connection, driven in timed rounds from a common start."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import tempfile
import time

from chantlib.client import DaemonClient, DaemonGone, DaemonUnavailable
from chantlib.errors import ChantError

from ..runner import percentile
from ..settings import ROOT

WORKER = os.path.join(ROOT, "benchmarks", "programs", "worker.py")


CLIENTS = (1, 8)


RTT_ROWS = [
    ("hello", "socket `hello`"),
    ("lock", "socket `lock_acquire` + `lock_release` (one pair)"),
    ("claim", "socket `queue_claim` (then `lock_release` by token)"),
    ("http", "HTTP `GET /api/queue/next` (keep-alive)"),
]


def rtt_label(op: str) -> str:
    return dict(RTT_ROWS)[op]


class Worker:
    """A client process; jobs go down its stdin as JSON lines, results come up its stdout."""

    def __init__(self, python: str, root: str, api_port: int, env: dict) -> None:
        self.err = tempfile.TemporaryFile()
        self.buf = b""
        self.proc = subprocess.Popen(
            [python, WORKER, root, str(api_port)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.err,
        )

    def send(self, obj: dict) -> bool:
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
            return True
        except (OSError, ValueError):
            return False

    def recv(self, deadline: float) -> str | None:
        """The next line, or None at the deadline or at the end of its output."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace")

    def why(self) -> str:
        try:
            self.err.seek(0)
            tail = self.err.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            tail = []
        code = self.proc.poll()
        return (f"client exited {code}" if code is not None else "client did not answer") + (
            f": {tail[-1][:160]}" if tail else "")

    def close(self) -> None:
        self.send({"mode": "quit"})
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        with contextlib.suppress(OSError):
            self.proc.stdout.close()
        self.err.close()


def mix_row(d: dict) -> dict | None:
    """The round where one client alternated ``hello`` and a lock pair (the lock target's measure)."""
    return next((x for x in d.get("rtt", []) if x.get("op") == "mix"), None)


def run_round(workers: list[Worker], jobs: list[dict], seconds: float) -> dict:
    """One timed round: each worker runs its job from a common start to a common deadline."""
    now = time.time()
    start, deadline = now + 0.1, now + 0.1 + seconds
    sent = []
    for w, job in zip(workers, jobs, strict=True):
        sent.append(w.send(dict(job, start=start, deadline=deadline)))
    limit = time.monotonic() + 0.1 + seconds + 60.0
    results, failures = [], []
    for w, ok in zip(workers, sent, strict=True):
        line = w.recv(limit) if ok else None
        try:
            results.append(json.loads(line)) if line else failures.append(w.why())
        except ValueError:
            failures.append(f"client sent {line[:80]!r}")
    out = {"clients": len(workers), "seconds": seconds, "failures": failures, "ok_clients": len(results)}
    if not results:
        return out
    lat = sorted(x for r in results for x in r["lat"])
    pair = [x for r in results for x in r["pair"]]
    window = max(r["t1"] for r in results) - min(r["t0"] for r in results)
    total = sum(r["n"] for r in results)
    out.update({
        "done": total,
        "errors": sum(r["errors"] for r in results),
        "error": next((r["error"] for r in results if r["error"]), None),
        "window": window,
        "rate": total / window if window > 0 else None,
        "mean": (sum(lat) / len(lat) / 1e7) if lat else None,
        "p50": percentile(lat, 0.50) / 1e7 if lat else None,
        "p99": percentile(lat, 0.99) / 1e7 if lat else None,
        "pair_mean": (sum(pair) / len(pair) / 1e7) if pair else None,
    })
    return out


def release_bench_leases(root: str) -> None:
    """Leases of the benchmark's owners left by a failed round: released with force."""
    with contextlib.suppress(DaemonUnavailable, ChantError, DaemonGone, OSError):
        with DaemonClient.connect(root, timeout=30) as c:
            for lease in c.call("lock_list", {}).get("leases", []):
                if str(lease.get("owner", "")).startswith("bench-"):
                    with contextlib.suppress(ChantError):
                        c.call("lock_release", {"spec": lease["spec"], "force": True})


def round_trips(python: str, root: str, api_port: int, env: dict, ready: list[str], seconds: float, log) -> list:
    """Every (operation, clients) cell of the round-trip table."""
    rows = []
    workers: list[Worker] = []
    try:
        for _ in range(max(CLIENTS)):
            workers.append(Worker(python, root, api_port, env))
        limit = time.monotonic() + 60.0
        for w in workers:
            if w.recv(limit) != "ready":
                raise RuntimeError(w.why())
        cap = 200000
        for op, _label in RTT_ROWS:
            for k in CLIENTS:
                jobs = []
                for i in range(k):
                    job = {"mode": op, "cap": cap, "owner": f"bench-{op}-{i}"}
                    if op == "lock":
                        job["spec"] = ready[i] if i < len(ready) else None
                    jobs.append(job)
                if op == "lock" and len(ready) < k:
                    rows.append({"op": op, "clients": k, "failures": [f"only {len(ready)} ready specs"]})
                    continue
                log(f"    {op} x{k} client(s) for {seconds:g}s")
                row = run_round(workers[:k], jobs, seconds)
                row["op"] = op
                rows.append(row)
                if op in ("lock", "claim"):
                    release_bench_leases(root)
        if ready:  # the lock-vs-hello target: one client alternating the two, so drift hits both alike
            log(f"    hello + lock pair alternating x1 client for {seconds:g}s")
            row = run_round(workers[:1], [{"mode": "mix", "cap": cap, "owner": "bench-mix-0", "spec": ready[0]}],
                            seconds)
            row["op"] = "mix"
            rows.append(row)
            release_bench_leases(root)
    except (RuntimeError, OSError) as exc:
        rows.append({"op": "setup", "clients": 0, "failures": [f"client processes: {exc}"]})
    finally:
        for w in workers:
            w.close()
    return rows
