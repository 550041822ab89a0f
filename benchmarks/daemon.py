"""The daemon's benchmarks, run by ``benchmarks/run.py`` after the direct-mode ones.

For each size, on the same generated repository as the direct-mode tables:

1. **Starts.** ``chantd`` spawned by the runner (``python -m chantd -C ROOT --api-port P
   --metrics-port Q``, free loopback ports, as ``chant daemon start --background`` spawns
   it), timed from the spawn until its socket answers ``hello`` and until ``daemon_status``
   shows ``watch`` set (fully started). Cold: ``.chant/.index/`` deleted first; warm: the
   cache left by a clean stop (``chant daemon stop``, timed as well).
2. **The CLI in daemon mode.** With a daemon running, ``chant list --ready``, ``chant
   search``, and ``chant lock acquire`` + ``lock release`` without ``--direct`` (the CLI finds
   the daemon by itself; the daemon's own request counters confirm it served them), round
   robin with the bare interpreter, next to the direct-mode figures of the same run; list and
   search both first after a write (the daemon computes the answer) and repeated (cached).
3. **Socket round trips** with 1 and 8 concurrent clients (client processes, each with one
   persistent connection opened with ``hello``), for a fixed time: ``hello``; a
   ``lock_acquire`` + ``lock_release`` pair (one spec per client); ``queue_claim`` followed by
   ``lock_release`` by token (one owner per client, so the queue never runs dry). Then HTTP
   ``GET /api/queue/next`` over keep-alive ``http.client`` connections.
4. **Watch latency.** A new spec file, and an in-place edit of an existing one, polled for
   over a persistent connection (``search id:<id>``, ``search title:<token>``) until the
   daemon's answer shows it.
5. **Memory.** ``VmRSS`` / ``VmHWM`` from ``/proc/<pid>/status`` after the start, after each
   phase and at the steady state after all of the above.
6. **Inside the daemon.** Once it stopped: the same ``Service`` in a process of its own,
   called with no transport, so the round trips split into service time and transport.

Every daemon started here is stopped (``chant daemon stop``, then SIGTERM, then SIGKILL of
that one PID) in ``finally`` blocks, and is also told to die with the runner
(``PR_SET_PDEATHSIG``). Every wait has a deadline; a failure becomes a row that says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:  # the runner speaks to the daemon itself (watch latency, readiness): chantlib's client
    from chantlib.client import DaemonClient, DaemonGone, DaemonUnavailable, daemon_alive
    from chantlib.errors import ChantError
except ImportError:  # run with an interpreter that lacks the package: the source tree has it
    sys.path.insert(0, ROOT)
    from chantlib.client import DaemonClient, DaemonGone, DaemonUnavailable, daemon_alive
    from chantlib.errors import ChantError

START_TIMEOUT = 900.0  # seconds from spawn to fully started (a cold start at 50,000 takes tens)
STOP_TIMEOUT = 120.0  # seconds for `chant daemon stop` (it saves the table)
WATCH_TIMEOUT = 10.0  # seconds for one change to become visible
PROBE_PREFIX = "2099-12-31-"  # new spec files written by the watch benchmark: 2099-12-31-SSS-wch
PROBE_SUFFIX = "-wch"
BACKUP = "bench-watch-backup.json"  # at the repository root: the edited spec's bytes, until restored
CLIENTS = (1, 8)

# the daemon table's rows (key, direct-mode row, label): direct and daemon mode side by side.
# The daemon keeps the encoded answers of list/search until anything changes, so a repeated
# command gets the cached answer, and the first one after a write (a lease, a claim, a file
# event) has it computed again: both are measured.
CLI_ROWS = [
    ("list", "warm_list", "`chant list --ready`: direct vs daemon mode (repeated: the daemon's cached answer)"),
    ("list_fresh", "warm_list", "`chant list --ready`: direct vs daemon mode, first after a write (answer computed)"),
    ("search", "search_free", "{search}: direct vs daemon mode (repeated: the daemon's cached answer)"),
    ("search_fresh", "search_free", "{search}: direct vs daemon mode, first after a write (answer computed)"),
    ("lock", "lock_pair", "`chant lock acquire` + `lock release`: direct vs daemon mode"),
    ("list_all", "warm_list_all", "`chant list` (every active spec): direct vs daemon mode (repeated)"),
]
COLD_ROW = "cold direct `chant list --ready` vs daemon mode"
RTT_ROWS = [
    ("hello", "socket `hello`"),
    ("lock", "socket `lock_acquire` + `lock_release` (one pair)"),
    ("claim", "socket `queue_claim` (then `lock_release` by token)"),
    ("http", "HTTP `GET /api/queue/next` (keep-alive)"),
]
WATCH_ROWS = [("new", "new spec file written"), ("edit", "existing spec edited in place")]
START_ROWS = [
    ("cold", "cold start (`.chant/.index/` deleted)"),
    ("warm", "warm restart (cache in place, after a clean stop)"),
]
STOP_ROW = "`chant daemon stop` (clean stop: table saved, socket removed)"
RSS_ROWS = [
    ("cold", "a cold start, once fully started: VmHWM is the peak of its build (table and index from the files)"),
    ("start", "just after a warm start (and 200 `hello`s)"),
    ("cli", "after the daemon-mode CLI runs"),
    ("rtt", "after the socket and HTTP round trips"),
    ("steady", "steady state: after the watch benchmark too (all of the above)"),
]


def cli_label(key: str, free_query: str) -> str:
    label = next(label for k, _, label in CLI_ROWS if k == key)
    return label.replace("{search}", f'`chant search "{free_query}"`')


def rtt_label(op: str) -> str:
    return dict(RTT_ROWS)[op]


# --------------------------------------------------------------------------- the daemon process


try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
    _PRCTL = _LIBC.prctl
except (OSError, AttributeError):
    _PRCTL = None
_PR_SET_PDEATHSIG = 1


def _die_with_runner() -> None:  # preexec_fn: the daemon gets SIGTERM if the runner dies, even by SIGKILL
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: str, lines: int = 2) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "log: " + " | ".join(ln.strip() for ln in fh.readlines()[-lines:])[-300:]
    except OSError:
        return "(no log)"


class StartFailed(Exception):
    pass


class DaemonProc:
    """One ``chantd`` spawned by the runner: start (timed), RSS, stop (always)."""

    def __init__(self, R, python: str, chant: str, root: str, env: dict) -> None:
        self.R = R
        self.python = python
        self.chant = chant
        self.root = root
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.reaper: threading.Thread | None = None
        self.api_port = 0
        self.metrics_port = 0
        self.log_path = os.path.join(root, ".chant", "logs", "daemon.log")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def start(self, timeout: float = START_TIMEOUT) -> tuple[float, float]:
        """Spawn and wait until fully started: (seconds to ``hello``, seconds to ``watch`` set)."""
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        for attempt in range(2):  # a free port can be taken between our probe and the daemon's bind
            self.api_port, self.metrics_port = free_port(), free_port()
            try:
                return self._start(timeout)
            except StartFailed as exc:
                self.stop()
                if attempt or "cannot listen" not in str(exc):
                    raise
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> tuple[float, float]:
        argv = [self.python, "-m", "chantd", "-C", self.root, "--api-port", str(self.api_port),
                "--metrics-port", str(self.metrics_port)]
        with open(self.log_path, "ab") as logfh:
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                argv, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL, stdout=logfh, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, preexec_fn=_die_with_runner,
            )
        # reap it as soon as it exits: `chant daemon stop` waits for the PID to be gone, and a
        # zombie child of ours would look alive to it
        self.reaper = threading.Thread(target=self.proc.wait, name=f"reap-chantd-{self.proc.pid}", daemon=True)
        self.reaper.start()
        deadline = started + timeout
        client = None
        try:
            while client is None:
                if self.proc.returncode is not None:
                    raise StartFailed(f"chantd exited with status {self.proc.returncode}; {log_tail(self.log_path)}")
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise StartFailed(f"chantd did not answer hello within {timeout:g}s; {log_tail(self.log_path)}")
                try:
                    client = DaemonClient.connect(self.root, timeout=max(1.0, left))
                except DaemonUnavailable:
                    time.sleep(0.005)
            t_hello = time.perf_counter() - started
            while True:
                try:
                    status = client.call("daemon_status", {})
                except (ChantError, DaemonGone, OSError, ValueError) as exc:
                    raise StartFailed(f"daemon_status failed: {exc}") from None
                if status.get("watch"):
                    break
                if time.perf_counter() > deadline:
                    raise StartFailed(f"daemon_status showed no watch within {timeout:g}s")
                time.sleep(0.005)
            t_ready = time.perf_counter() - started
        finally:
            if client is not None:
                client.close()
        return t_hello, t_ready

    def rss(self) -> dict:
        """VmRSS and VmHWM in KiB, from /proc/<pid>/status."""
        out = {}
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        out[key] = int(value.split()[0])
        except (OSError, ValueError, TypeError):
            pass
        return out

    def stop(self) -> object | None:
        """``chant daemon stop``; then SIGTERM, then SIGKILL of our PID if it lingers. Returns the Run."""
        if self.proc is None:
            return None
        r = None
        if self.proc.returncode is None:
            r = self.R.run([self.chant, "daemon", "stop", "--timeout", str(STOP_TIMEOUT)], cwd=self.root,
                           timeout=STOP_TIMEOUT + 30, env=self.env)
        # `stop` returns once the PID is gone; a daemon still starting (no daemon.json yet) gets SIGTERM
        for sig, wait in ((None, 2.0), (signal.SIGTERM, 60.0), (signal.SIGKILL, 10.0)):
            if sig is not None and self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, sig)  # still our unreaped child: the PID is ours
            if self.reaper is not None:
                self.reaper.join(wait)
            if self.proc.returncode is not None:
                break
        return r


def stop_stray(R, chant: str, root: str, env: dict, log) -> None:
    """A daemon left running on this repository (an interrupted run): stop it first."""
    if daemon_alive(root):
        log(f"a daemon already runs on {root}: stopping it")
        R.run([chant, "daemon", "stop", "--timeout", str(STOP_TIMEOUT)], cwd=root, timeout=STOP_TIMEOUT + 30, env=env)


# --------------------------------------------------------------------------- client processes

_WORKER = r"""
import http.client, json, sys, time
from chantlib.client import DaemonClient, DaemonGone

root, api_port = sys.argv[1], int(sys.argv[2])
client = DaemonClient.connect(root, timeout=10)
conn = None
from chantlib.client import read_token
headers = {"Authorization": f"Bearer {read_token(root)}"}  # the API wants the daemon's token
print("ready", flush=True)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    job = json.loads(line)
    mode = job["mode"]
    if mode == "quit":
        break
    if mode == "http" and conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=10)
    spec, owner, cap = job.get("spec"), job.get("owner"), job["cap"]
    lat, pair = [], []
    errors, first = 0, None
    while time.time() < job["start"]:
        time.sleep(0.0005)
    t_start = time.time()
    n = 0
    while n < cap and time.time() < job["deadline"]:
        t = time.perf_counter()
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
                got = client.call("queue_claim", {"owner": owner, "ttl": 120})
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
        except DaemonGone as exc:
            errors += 1
            first = first or f"DaemonGone: {exc}"
            break
        except Exception as exc:
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
    out = {"n": n, "t0": t_start, "t1": time.time(), "lat": lat, "pair": pair, "errors": errors, "error": first}
    print(json.dumps(out, separators=(",", ":")), flush=True)
"""


class Worker:
    """A client process; jobs go down its stdin as JSON lines, results come up its stdout."""

    def __init__(self, python: str, root: str, api_port: int, env: dict) -> None:
        self.err = tempfile.TemporaryFile()
        self.buf = b""
        self.proc = subprocess.Popen(
            [python, "-c", _WORKER, root, str(api_port)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
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


def percentile(sorted_values: list, p: float):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(p * len(sorted_values)) - 1))]


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


# --------------------------------------------------------------------------- inside the daemon

_SERVICE = r'''
import asyncio, json, shutil, sys, tempfile, time
from chantlib.locks import MemoryLockTable
from chantlib.workspace import Workspace
from chantd.metrics import Metrics
from chantd.service import Service

root, budget, cap = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
tmp = tempfile.mkdtemp(prefix="chant-bench-leases-")  # leases written through here, not to the repository
ws = Workspace(root, auto_refresh=False)
ws.locks = MemoryLockTable(persist_dir=tmp, default_ttl=3600)
metrics = Metrics()
service = Service(ws, metrics)
metrics.bind(service)


async def call(cmd, params, decode=True):
    raw = await service.call_encoded(cmd, params, "socket", "bench@runner", 1)
    if not decode:
        return raw
    answer = json.loads(raw)
    if not answer.get("ok"):
        raise RuntimeError(f"{cmd}: {answer.get('error')}")
    return answer["result"]


async def main():
    await service.load()  # the daemon's own load
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
    print(json.dumps(out))


try:
    asyncio.run(main())
finally:
    service.close()
    shutil.rmtree(tmp, ignore_errors=True)
'''

SERVICE_ROWS = [
    ("hello", "`hello`", ("hello", 1)),
    ("lock", "`lock_acquire` + `lock_release` (one pair)", ("lock", 1)),
    ("claim", "`queue_claim` + `lock_release`", ("claim", 1)),
    ("queue_next", "`queue_next`", ("http", 1)),
    ("daemon_status", "`daemon_status`", None),
    ("list_cached", "`list` ready (the cached answer of a repeated command)", None),
    ("list_fresh", "`list` ready (first after a write: computed and encoded)", None),
]


def service_times(R, python: str, root: str, env: dict, budget: float) -> dict:
    """Seconds per call inside the daemon's Service, in a process of its own (no transport)."""
    r = R.run([python, "-c", _SERVICE, root, str(budget), "100000"], cwd=ROOT, timeout=R.SLOW_TIMEOUT, env=env)
    if not r.ok():
        return {"error": r.why()}
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no result"}


# --------------------------------------------------------------------------- watch latency

_PROBE = """\
---
type: code
status: pending
---
# Watch probe {token}

Written by the benchmark runner to time the daemon's file watcher; removed when it is done.
"""


def _probe_paths(specs_dir: str) -> list[str]:
    try:
        names = os.listdir(specs_dir)
    except OSError:
        return []
    return [os.path.join(specs_dir, n) for n in names if n.startswith(PROBE_PREFIX) and n.endswith(PROBE_SUFFIX + ".md")]


def restore_leftovers(root: str, log) -> None:
    """Undo what an interrupted watch benchmark left: probe files, an edited spec."""
    for path in _probe_paths(os.path.join(root, ".chant", "specs")):
        log(f"removing a probe left by an interrupted run: {path}")
        with contextlib.suppress(OSError):
            os.unlink(path)
    backup = os.path.join(root, BACKUP)
    if os.path.isfile(backup):
        try:
            with open(backup, encoding="utf-8") as fh:
                data = json.load(fh)
            log(f"restoring {data['path']} edited by an interrupted run")
            with open(data["path"], "w", encoding="utf-8", newline="") as fh:
                fh.write(data["text"])
            os.unlink(backup)
        except (OSError, ValueError, KeyError) as exc:
            log(f"warning: cannot restore from {backup}: {exc}")


def cli_request(argv: list[str]) -> tuple[str, dict]:
    """The operation and parameters `chant <argv>` sends to a daemon, from the CLI's own
    parser and operation table: a poll then asks exactly what a user's command asks (with
    the code under test, whichever version that is)."""
    from chant_cli.main import _operation, build_parser
    from chantlib.backends import prepare

    args = build_parser(argv).parse_args(argv)
    op, params, _renderer = _operation(args)
    return op, prepare(op, params)


class _Probe:
    """How a poll sees a write: ``search`` (a query for the new ID or word, answered from the
    index) or ``list`` (the request of `chant list --ready`, decoded in full as the CLI
    decodes it, looked through for the new ID or title)."""

    def __init__(self, via: str) -> None:
        self.via = via
        self.request = cli_request(["list", "--ready"]) if via == "list" else None

    def count(self, client: DaemonClient, kind: str, value: str) -> int:
        """How many specs the daemon shows with this ``id``, an ID starting with this
        ``prefix``, or this word in the ``title``."""
        if self.via == "search":
            q = {"id": f"id:{value}", "prefix": f"id:{value}*", "title": f"title:{value}"}[kind]
            return client.call("search", {"q": q, "limit": 5})["total"]
        op, params = self.request
        specs = client.call(op, params)["specs"]
        if kind == "id":
            return sum(1 for spec in specs if spec["id"] == value)
        if kind == "prefix":
            return sum(1 for spec in specs if spec["id"].startswith(value))
        return sum(1 for spec in specs if value in (spec.get("title") or "").split())


def _poll(check, want, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while True:
        if want(check()):
            return True
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.001)


def _write_in_place(path: str, text: str) -> None:
    with open(path, "r+", encoding="utf-8", newline="") as fh:  # truncate and write, as editors do
        fh.write(text)
        fh.truncate()


class _Latencies:
    """The samples of one watch-latency series: a write, then a poll until the daemon shows it."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.missed = 0
        self.error: str | None = None

    def visible(self, check, t0: float) -> None:
        if _poll(check, lambda total: total >= 1, WATCH_TIMEOUT):
            self.samples.append(time.perf_counter() - t0)
        else:
            self.missed += 1
            self.error = self.error or f"not visible within {WATCH_TIMEOUT:g}s"
        time.sleep(0.02)

    def failed(self, exc: Exception) -> None:
        self.error = self.error or f"{type(exc).__name__}: {exc}"

    def result(self) -> dict:
        return {"samples": self.samples, "missed": self.missed, "error": self.error}


def _series(out: dict, key: str, what: str, measure) -> None:
    """``out[key] = measure()``; a failure is one line in ``out["errors"]``, the run goes on."""
    try:
        out[key] = measure()
    except (DaemonUnavailable, ChantError, DaemonGone, OSError) as exc:
        out["errors"].append(f"{what}: {type(exc).__name__}: {exc}")


def watch_latency(root: str, edit_id: str | None, samples: int, log, via: str = "search") -> dict:
    """{"new": {...}, "edit": {...}}: seconds from a write to its visibility through ``via``
    (see :class:`_Probe`)."""
    specs_dir = os.path.join(root, ".chant", "specs")
    out = {}
    created: list[str] = []
    probe = _Probe(via)
    with DaemonClient.connect(root, timeout=30) as client:
        # new files
        lat = _Latencies()
        try:
            for i in range(samples):
                seq = "".join("0123456789abcdefghijklmnopqrstuvwxyz"[(i // 36 ** p) % 36] for p in (2, 1, 0))
                spec_id = f"{PROBE_PREFIX}{seq}{PROBE_SUFFIX}"
                path = os.path.join(specs_dir, spec_id + ".md")
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(_PROBE.format(token=f"wpn{i}x"))
                t0 = time.perf_counter()
                created.append(path)
                lat.visible(lambda spec_id=spec_id: probe.count(client, "id", spec_id), t0)
        except (ChantError, DaemonGone, OSError) as exc:
            lat.failed(exc)
        finally:
            for path in created:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            if created:
                with contextlib.suppress(ChantError, DaemonGone, OSError):
                    gone = _poll(lambda: probe.count(client, "prefix", PROBE_PREFIX), lambda total: total == 0, 30.0)
                    if not gone:
                        log("warning: the daemon still shows probe specs 30 s after they were removed")
        out["new"] = lat.result()

        # in-place edits of one existing spec (its bytes kept in a backup file until restored)
        lat = _Latencies()
        if edit_id is None:
            out["edit"] = {"samples": [], "missed": 0, "error": "no spec to edit"}
            return out
        try:
            path = os.path.join(root, client.call("show", {"spec": edit_id})["path"])
        except (ChantError, DaemonGone, OSError, KeyError, TypeError) as exc:
            out["edit"] = {"samples": [], "missed": 0, "error": f"show {edit_id}: {exc}"}
            return out
        if not os.path.isabs(path) or not os.path.isfile(path):
            path = os.path.join(specs_dir, edit_id + ".md")
        with open(path, encoding="utf-8", newline="") as fh:
            original = fh.read()
        title = re.search(r"^# .*$", original.split("\n---", 1)[-1], re.M)
        if title is None:
            out["edit"] = {"samples": [], "missed": 0, "error": f"no title line in {path}"}
            return out
        backup = os.path.join(root, BACKUP)
        with open(backup, "w", encoding="utf-8") as fh:
            json.dump({"path": path, "text": original}, fh)
        last = None
        try:
            head, sep, body = original.partition(title.group(0))
            for k in range(samples):
                token = f"wpe{k}x"
                _write_in_place(path, f"{head}{sep} {token}{body}")
                t0 = time.perf_counter()
                last = token
                lat.visible(lambda token=token: probe.count(client, "title", token), t0)
        except (ChantError, DaemonGone, OSError) as exc:
            lat.failed(exc)
        finally:
            _write_in_place(path, original)
            with contextlib.suppress(OSError):
                os.unlink(backup)
            if last is not None:
                with contextlib.suppress(ChantError, DaemonGone, OSError):
                    if not _poll(lambda: probe.count(client, "title", last), lambda total: total == 0, 30.0):
                        log(f"warning: the daemon still shows the edit of {edit_id} 30 s after it was undone")
        out["edit"] = lat.result()
    return out


# --------------------------------------------------------------------------- metrics check


def socket_counts(api_port: int) -> dict[str, float] | None:
    """``chant_request_duration_seconds_count`` of the socket transport, by command."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        if resp.status != 200:
            return None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    counts = {}
    for m in re.finditer(r'^chant_request_duration_seconds_count\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("transport") == "socket":
            counts[labels.get("cmd", "?")] = float(m.group(2))
    return counts


# --------------------------------------------------------------------------- one size


def bench(res: dict, args, R, chant: str, python: str, env: dict, baseline, log) -> dict:
    """All of the daemon's measurements on the repository of ``res`` (after its direct ones)."""
    n = res["n"]
    root = res["root"]
    quick = bool(getattr(args, "quick", False))
    d: dict = {"errors": [], "cli": {}, "starts": {}, "stops": [], "stop_failures": [], "rtt": [], "watch": {},
               "rss": {}, "split": {}, "check": {}}
    env = dict(env)
    for name in ("CHANT_DAEMON", "CHANT_DAEMON_SOCKET", "CHANT_API_TOKEN"):
        env.pop(name, None)
    fast, _slow = R.repeats(n, args.repeat)
    rounds = 2 * fast  # daemon-mode commands are short and this machine is noisy: twice the rounds
    cold_runs = 1 if quick else (2 if n >= R.BIG else 3)
    warm_runs = 2 if quick else 3
    seconds = 0.5 if quick else 2.0
    samples = 10 if quick else 100
    d["plan"] = {"cold": cold_runs, "warm": warm_runs, "fast": rounds, "seconds": seconds, "samples": samples}
    index_dir = os.path.join(root, ".chant", ".index")
    local_bare = R.Measure("bare")
    d["bare_local"] = local_bare
    this_round = {"bare": None}  # the bare interpreter's time in the current round

    def bare():
        r = R.run([python, "-c", "pass"], cwd=root, timeout=R.FAST_TIMEOUT, env=env)
        this_round["bare"] = r.wall if r.ok() else None
        if r.ok():
            baseline.add(r.wall)
            local_bare.add(r.wall)

    stop_stray(R, chant, root, env, log)
    restore_leftovers(root, log)

    def stop(daemon: DaemonProc) -> None:
        r = daemon.stop()
        if r is None:
            return
        if r.ok() and daemon.proc.returncode is not None:
            d["stops"].append(r.wall)
        else:
            d["stop_failures"].append(r.why() if not r.ok() else "the process outlived `chant daemon stop`")

    # 1. starts: cold (no cache), then warm (the cache a clean stop leaves)
    for kind, runs in (("cold", cold_runs), ("warm", warm_runs)):
        s = d["starts"][kind] = {"hello": [], "ready": [], "failures": [], "attempts": 0}
        log(f"[{n}] daemon: {kind} start x{runs}")
        for _ in range(runs):
            if kind == "cold":
                shutil.rmtree(index_dir, ignore_errors=True)
            s["attempts"] += 1
            daemon = DaemonProc(R, python, chant, root, env)
            try:
                t_hello, t_ready = daemon.start()
                s["hello"].append(t_hello)
                s["ready"].append(t_ready)
                if kind == "cold":  # its peak so far is the peak of the cold build
                    d["rss"]["cold"] = daemon.rss()
            except (StartFailed, OSError) as exc:
                s["failures"].append(str(exc))
            finally:
                stop(daemon)

    # 2. the steady state: one daemon for the CLI, the round trips, the watcher and the RSS
    daemon = DaemonProc(R, python, chant, root, env)
    try:
        log(f"[{n}] daemon: start for the steady-state measurements")
        try:
            daemon.start()
        except (StartFailed, OSError) as exc:
            d["errors"].append(f"the daemon did not start: {exc}")
            return d
        d["pid"] = daemon.pid
        with DaemonClient.connect(root, timeout=60) as c:
            for _ in range(200):  # settle: the first requests after a start pay for warm-up
                c.call("hello")
            ready = [s["id"] for s in c.call("list", {"ready": True})["specs"]]
            status = c.call("daemon_status", {})
        d["specs"] = status.get("specs")
        d["ready"] = len(ready)
        time.sleep(0.5)
        d["rss"]["start"] = daemon.rss()

        # 2a. the CLI without --direct, round robin with the bare interpreter
        lock_id = res.get("facts", {}).get("lock_id") or (ready[0] if ready else None)
        m = {key: R.Measure(key) for key, _, _ in CLI_ROWS}
        d["cli"] = m
        log(f"[{n}] daemon: CLI in daemon mode x{rounds}")

        def measure(key: str, argv, codes=(0,)):
            m[key].attempts += 1
            r = R.run([chant, *argv], cwd=root, timeout=R.FAST_TIMEOUT, env=env)
            if r.ok(codes):
                m[key].add(r.wall, this_round["bare"])
            else:
                m[key].failures.append(r.why())
            return r

        for argv in (["list", "--ready"], ["search", R.FREE_QUERY]):  # warm-up, not measured
            R.run([chant, *argv], cwd=root, timeout=R.FAST_TIMEOUT, env=env)
        before = socket_counts(daemon.api_port)
        for _ in range(rounds):
            bare()
            if lock_id is not None:  # a write: it empties the daemon's answer cache
                m["lock"].attempts += 1
                a = R.run([chant, "lock", "acquire", lock_id], cwd=root, timeout=R.FAST_TIMEOUT, env=env)
                b = R.run([chant, "lock", "release", lock_id], cwd=root, timeout=R.FAST_TIMEOUT, env=env)
                if a.ok() and b.ok():
                    m["lock"].add(a.wall + b.wall, this_round["bare"])
                else:
                    m["lock"].failures.append(f"acquire {a.why()}" if not a.ok() else f"release {b.why()}")
                    R.run([chant, "lock", "release", lock_id, "--force"], cwd=root, timeout=R.FAST_TIMEOUT, env=env)
                measure("list_fresh", ["list", "--ready"], codes=(0, 5))
                measure("search_fresh", ["search", R.FREE_QUERY])
            measure("list", ["list", "--ready"], codes=(0, 5))
            measure("search", ["search", R.FREE_QUERY])
            measure("list_all", ["list"], codes=(0, 5))
        after = socket_counts(daemon.api_port)
        if before is not None and after is not None:
            for key, cmd, keys in (("list", "list", ("list", "list_fresh", "list_all")),
                                   ("search", "search", ("search", "search_fresh")),
                                   ("lock", "lock_acquire", ("lock",))):
                d["check"][key] = {"runs": sum(m[k].attempts for k in keys),
                                   "served": int(after.get(cmd, 0) - before.get(cmd, 0))}
        else:
            d["errors"].append("could not read the daemon's /metrics to check that the CLI used it")
        bare()

        # peak RSS of the CLI process in daemon mode (untimed runs, as for the direct tables)
        def mem(key: str, argv) -> None:
            r, kib = R.memory_run([chant, *argv], root, R.FAST_TIMEOUT, env)
            m[key].add_rss(kib)
            if kib is None:
                d["errors"].append(f"memory run of daemon-mode `chant {' '.join(argv)}`: {r.why()}")

        mem("list", ["list", "--ready"])
        mem("search", ["search", R.FREE_QUERY])
        if lock_id is not None:
            mem("lock", ["lock", "acquire", lock_id])
            mem("lock", ["lock", "release", lock_id])

        # where a daemon-mode command spends its time (import, main(argv), the rest)
        d["split"].update(R.breakdown(root, python, env, runs=3 if quick else 5, timeout=R.FAST_TIMEOUT,
                                      commands=(("list", ["list", "--ready"]), ("search", ["search", R.FREE_QUERY]))))
        if n == 5000:  # the target's size: where a daemon-mode `list --ready` spends its time
            d["cprofile"] = R.cprofile(root, python, env, ["list", "--ready"])
            d["importtime"] = R.importtime(root, python, env, ["list", "--ready"])
        d["rss"]["cli"] = daemon.rss()

        # 2b. socket and HTTP round trips
        log(f"[{n}] daemon: round trips (1 and {max(CLIENTS)} clients, {seconds:g}s each)")
        d["rtt"] = round_trips(python, root, daemon.api_port, env, ready, seconds, log)
        d["rss"]["rtt"] = daemon.rss()

        # 2c. watch latency
        log(f"[{n}] daemon: watch latency x{samples} new + x{samples} edits")
        edit_id = ready[-1] if ready else None
        _series(d, "watch", "watch latency", lambda: watch_latency(root, edit_id, samples, log))
        log(f"[{n}] daemon: write -> visible in `list --ready` x{samples} new + x{samples} edits")
        _series(d, "watch_list", "watch latency (list)", lambda: watch_latency(root, edit_id, samples, log, via="list"))

        # 2d. memory at steady state
        time.sleep(0.5)
        d["rss"]["steady"] = daemon.rss()
        if not daemon.alive():
            d["errors"].append(f"the daemon died during the benchmarks: {log_tail(daemon.log_path)}")
    except (DaemonUnavailable, ChantError, DaemonGone, OSError) as exc:
        d["errors"].append(f"steady-state measurements: {type(exc).__name__}: {exc}")
    finally:
        log(f"[{n}] daemon: stop")
        stop(daemon)
        if daemon.alive():
            d["errors"].append(f"the daemon (PID {daemon.pid}) could not be stopped")
    if not daemon.alive():
        log(f"[{n}] daemon: service times in process")
        d["service"] = service_times(R, python, root, env, 0.2 if quick else 1.0)
    return d


def to_json(d: dict) -> dict:
    out = {}
    for key, value in d.items():
        if key == "cli":
            out[key] = {k: v.to_dict() for k, v in value.items()}
        elif hasattr(value, "to_dict"):
            out[key] = value.to_dict()
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- rendering


def _ms(sec) -> str:
    if sec is None:
        return "—"
    if sec < 0.001:
        return f"{sec * 1e6:.0f} µs"
    if sec < 10:
        return f"{sec * 1000:.{2 if sec < 0.01 else 1}f} ms"
    return f"{sec:.2f} s"


def _rate(x) -> str:
    return "—" if x is None else f"{x:,.0f}"


def render_size(add, r: dict, bare: float | None, R) -> None:
    d = r.get("daemon")
    n = r["n"]
    if d is None:
        return
    add(f"### Daemon ({n:,} specs)")
    add("")
    for err in d.get("errors", []):
        add(f"- **error:** {err}")
    if d.get("errors"):
        add("")
    plan = d.get("plan", {})

    # starts
    add(f"Start-up, timed from spawning `chantd` (median of the runs; cold {plan.get('cold')}, warm "
        f"{plan.get('warm')}):")
    add("")
    add("| Start | Socket answers `hello` | Fully started (`watch` set) | Min / max (fully started) | Runs ok |")
    add("|---|---|---|---|---|")
    for kind, label in START_ROWS:
        s = d.get("starts", {}).get(kind)
        if not s:
            add(f"| {label} | not run | — | — | 0/0 |")
            continue
        runs = f"{len(s['ready'])}/{s['attempts']}"
        if not s["ready"]:
            why = s["failures"][0] if s["failures"] else "not run"
            add(f"| {label} | **FAILED** ({why}) | — | — | {runs} |")
            continue
        warn = f" ⚠ {len(s['failures'])} failed: {s['failures'][0]}" if s["failures"] else ""
        add(f"| {label} | {_ms(statistics.median(s['hello']))} | {_ms(statistics.median(s['ready']))}{warn} | "
            f"{_ms(min(s['ready']))} / {_ms(max(s['ready']))} | {runs} |")
    stops, sf = d.get("stops", []), d.get("stop_failures", [])
    if stops:
        warn = f" ⚠ {len(sf)} failed: {sf[0]}" if sf else ""
        add(f"| {STOP_ROW} | {_ms(statistics.median(stops))}{warn} | | {_ms(min(stops))} / {_ms(max(stops))} | "
            f"{len(stops)}/{len(stops) + len(sf)} |")
    elif sf:
        add(f"| {STOP_ROW} | **FAILED** ({sf[0]}) | | — | 0/{len(sf)} |")
    else:
        add(f"| {STOP_ROW} | not measured (no daemon started) | | — | 0/0 |")
    add("")
    if "pid" not in d:
        return

    # the CLI, direct vs daemon
    local = d.get("bare_local")
    add(f"The CLI with a daemon running ({d.get('specs', '?')} specs, {d.get('ready', '?')} ready): the same "
        f"commands without `--direct`, {plan.get('fast')} rounds of: the bare interpreter; `lock acquire` + "
        "`lock release` (a write, which empties the daemon's cache of encoded `list`/`search` answers); `list` "
        "and `search` (first after a write: the daemon computes the answer); `list` and `search` again "
        "(repeated: the cached answer, the steady state of a command run again while nothing changed). Bare "
        f"interpreter during this phase: median {_ms(local.median if local else None)}; ×bare uses the whole "
        f"run's {_ms(bare)}. \"Direct\" is this size's warm `--direct` row above, from the same run.")
    add("")
    add("| Command | Direct (warm) | ×bare | Daemon mode | ×bare | Direct ÷ daemon | Daemon runs ok | Peak RSS "
        "(daemon-mode CLI) |")
    add("|---|---|---|---|---|---|---|---|")
    add(f"| bare interpreter (`python -c pass`) | {_ms(bare)} | 1.0× | {_ms(bare)} | 1.0× | — | — | — |")
    cli = d.get("cli", {})
    for key, direct_key, _ in CLI_ROWS:
        label = cli_label(key, R.FREE_QUERY)
        dm = r["measures"].get(direct_key)
        mm = cli.get(key)
        if mm is None:
            add(f"| {label} | {_ms(dm.median if dm else None)} | — | not run | — | — | — | — |")
            continue
        dmed = dm.median if dm else None
        if mm.median is None:
            why = mm.failures[0] if mm.failures else "not run"
            add(f"| {label} | {_ms(dmed)} | {R.times_bare(dmed, bare)} | **FAILED** ({why}) | — | — | "
                f"0/{mm.attempts} | — |")
            continue
        warn = f" ⚠ {len(mm.failures)} failed: {mm.failures[0]}" if mm.failures else ""
        speed = f"{dmed / mm.median:.1f}×" if dmed else "—"
        add(f"| {label} | {_ms(dmed)} | {R.times_bare(dmed, bare)} | {_ms(mm.median)}{warn} | "
            f"{R.times_bare(mm.median, bare)} | {speed} | {len(mm.walls)}/{mm.attempts} | {R.fmt_rss(mm.peak_rss)} |")
    cold = r["measures"].get("cold_list")
    dl = cli.get("list")
    if cold is not None and cold.median and dl is not None and dl.median:
        add(f"| {COLD_ROW} | {_ms(cold.median)} | {R.times_bare(cold.median, bare)} | {_ms(dl.median)} | "
            f"{R.times_bare(dl.median, bare)} | {cold.median / dl.median:.1f}× | {len(dl.walls)}/{dl.attempts} | |")
    else:
        add(f"| {COLD_ROW} | {_ms(cold.median if cold else None)} | — | — | — | — | — | |")
    add("")
    check = d.get("check", {})
    if check:
        parts = [f"`{k}` {v['served']} for {v['runs']} runs" for k, v in check.items()]
        add("The daemon's own request counters (`chant_request_duration_seconds_count`, socket transport) moved by "
            + ", ".join(parts) + " during the timed runs: "
            + ("every daemon-mode command was served by the daemon."
               if all(v["served"] >= v["runs"] for v in check.values())
               else "**some commands did not reach the daemon** (direct-mode fallback?)."))
        add("")
    split = d.get("split", {})
    if split:
        add("Where a daemon-mode command spends its time (a child timing its own `from chant_cli.main import main` "
            "and `main(argv)`: finding the socket, `hello`, the request, rendering; median of the runs; the "
            "daemon's answer is the cached one):")
        add("")
        add("| Command (daemon mode) | Wall | `import chant_cli.main` | `main(argv)` | Rest (start-up, exit) |")
        add("|---|---|---|---|---|")
        for key in ("list", "search"):
            p = split.get(key)
            if p:
                label = "`chant list --ready`" if key == "list" else f'`chant search "{R.FREE_QUERY}"`'
                add(f"| {label} | {_ms(p['wall'])} | {_ms(p['import'])} | {_ms(p['op'])} | {_ms(p['rest'])} |")
        add("")
    imp = d.get("importtime")
    if imp and "error" not in imp:
        add(f"`python -X importtime -m chant_cli list --ready` in daemon mode: {imp['modules']} modules, "
            f"{imp['total_us'] / 1000:.1f} ms in top-level imports (start-up's `site`/`encodings` included). "
            "Heaviest: " + ", ".join(f"`{mod}` {cum / 1000:.1f} ms" for cum, _self, _lvl, mod in imp["top"]) + ".")
        add("")
    if d.get("cprofile"):
        add(f"cProfile of daemon-mode `chant list --ready` at {n:,} specs (in process, `main(argv)`), top functions "
            "by own time (profiler overhead included):")
        add("")
        add("```")
        add(d["cprofile"])
        add("```")
        add("")

    # round trips
    add(f"Round trips: each client is a separate process holding one persistent socket connection (opened with "
        f"`hello`) or one keep-alive `http.client` connection, looping for {plan.get('seconds'):g} s from a common "
        "start; the rate is all clients' completions over the common window. A lock pair is `lock_acquire` then "
        "`lock_release` by token on the client's own spec (two requests); a claim is `queue_claim` (its latency "
        "below) followed by `lock_release` by token, so the queue never runs dry.")
    add("")
    add("| Round trip | Clients | Rate | Mean latency | p50 | p99 | Done | Errors |")
    add("|---|---|---|---|---|---|---|---|")
    unit = {"hello": "requests/s", "lock": "pairs/s", "claim": "claims/s", "http": "requests/s"}
    for row in d.get("rtt", []):
        op = row["op"]
        if op == "mix":
            continue  # shown below the table
        if op == "setup":
            add(f"| round trips | — | **FAILED** ({row['failures'][0]}) | — | — | — | — | — |")
            continue
        label = rtt_label(op)
        if not row.get("done"):
            why = (row.get("failures") or [row.get("error") or "nothing completed"])[0]
            add(f"| {label} | {row['clients']} | **FAILED** ({why}) | — | — | — | 0 | {row.get('errors', '—')} |")
            continue
        rate = f"{_rate(row['rate'])} {unit[op]}"
        if op == "lock":
            rate += f" ({_rate(row['rate'] * 2)} requests/s)"
        if op == "claim" and row.get("pair_mean"):
            rate += f" (claim + release: {_ms(row['pair_mean'])} mean)"
        errs = str(row.get("errors", 0))
        if row.get("error"):
            errs += f": {row['error'][:100]}"
        if row.get("failures"):
            errs += f"; {len(row['failures'])} client(s) failed: {row['failures'][0]}"
        add(f"| {label} | {row['clients']} | {rate} | {_ms(row['mean'])} | {_ms(row['p50'])} | {_ms(row['p99'])} | "
            f"{row['done']:,} | {errs} |")
    add("")
    mix = mix_row(d)
    if mix is not None:
        if mix.get("mean") and mix.get("pair_mean"):
            add(f"Side by side (the measure of the lock target): one client alternating `hello` and a lock pair for "
                f"{plan.get('seconds'):g} s, {mix['done']:,} of each: `hello` {_ms(mix['mean'])} mean, lock pair "
                f"{_ms(mix['pair_mean'])} mean = {mix['pair_mean'] / mix['mean']:.2f}× (errors: {mix.get('errors', 0)}).")
        else:
            why = (mix.get("failures") or [mix.get("error") or "nothing completed"])[0]
            add(f"Side by side (`hello` alternating with a lock pair, 1 client): **FAILED** ({why}).")
        add("")
    svc = d.get("service")
    if svc:
        cells = {(x["op"], x["clients"]): x for x in d.get("rtt", [])}
        add("Inside the daemon: the same `Service` the daemon runs (loaded the same way, leases written through to a "
            "temp folder), called in process with no transport, after the daemon stopped; time per call. The "
            "difference to the round trip (1 client, mean) is the socket (or HTTP), the event loop and the "
            "Python client.")
        add("")
        if "error" in svc:
            add(f"**FAILED** ({svc['error']})")
            add("")
        else:
            add("| Operation | In the service | Round trip, 1 client (mean) | Transport and client |")
            add("|---|---|---|---|")
            for key, label, cell_key in SERVICE_ROWS:
                v = svc.get(key)
                if not v:
                    continue
                row = cells.get(cell_key) if cell_key else None
                rtt = row.get("pair_mean" if key == "claim" else "mean") if row else None
                where = " (HTTP)" if cell_key and cell_key[0] == "http" else ""
                add(f"| {label} | {_ms(v['seconds'])} | {_ms(rtt)}{where if rtt else ''} | "
                    f"{_ms(rtt - v['seconds']) if rtt else '—'} |")
            add("")

    # watch latency
    add("Watch latency: a spec file written (a new file; then an in-place truncate-and-write of an existing "
        "spec's title), then a persistent socket connection polls (every ~1 ms) until the answer shows it; from "
        "the write's `close()` to that answer. Polled two ways: `search` (`id:<new id>`, `title:<new word>`), and "
        "the request `chant list --ready` sends, decoded in full as the CLI decodes it (the new ID, the new "
        "title). The daemon saves its table every few seconds meanwhile. The probes are removed and the edit "
        "undone afterwards.")
    add("")
    add("| Change | Seen through | Samples | Median | p99 | Max | Not seen within 10 s |")
    add("|---|---|---|---|---|---|---|")
    for series, via in (("watch", "`search`"), ("watch_list", "`list --ready`")):
        w = d.get(series, {})
        for key, label in WATCH_ROWS:
            add(watch_row(label, via, w.get(key)))
    add("")

    # memory
    add("| Daemon memory (`/proc/<pid>/status`) | VmRSS | VmHWM (peak so far) |")
    add("|---|---|---|")
    for key, label in RSS_ROWS:
        v = d.get("rss", {}).get(key) or {}
        add(f"| {label} | {R.fmt_rss(v.get('VmRSS'))} | {R.fmt_rss(v.get('VmHWM'))} |")
    add("")


def watch_row(label: str, via: str, s: dict | None) -> str:
    if not s:
        return f"| {label} | {via} | 0 | **FAILED** (not run) | — | — | — |"
    vals = sorted(s["samples"])
    if not vals:
        return f"| {label} | {via} | 0 | **FAILED** ({s.get('error') or 'no sample'}) | — | — | {s.get('missed', 0)} |"
    return (f"| {label} | {via} | {len(vals)} | {_ms(statistics.median(vals))} | {_ms(percentile(vals, 0.99))} | "
            f"{_ms(vals[-1])} | {s.get('missed', 0)} |")


def target_rows(results: list[dict], bare: float | None, R) -> list[tuple[str, str, str]]:
    by_n = {r["n"]: r for r in results}
    rows = []
    ok, bad = "✅ PASS", "❌ FAIL"

    def daemon_of(n):
        r = by_n.get(n)
        return r, (r or {}).get("daemon")

    # daemon-mode list at 5,000: within 3x bare, and 10x faster than cold direct
    r, d = daemon_of(5000)
    name1 = "daemon-mode `chant list --ready` at 5,000 specs within 3× a bare interpreter start"
    name2 = "daemon-mode `chant list --ready` at 5,000 specs at least 10× faster than cold direct mode"
    if d is None:
        why = "not measured (size not run)" if r is None else "not measured"
        rows += [(name1, why, "—"), (name2, why, "—")]
    else:
        meas = d.get("cli", {}).get("list")
        if meas is None or meas.median is None or meas.paired is None or not bare:
            rows += [(name1, "failed to run", bad), (name2, "failed to run", bad)]
        else:
            fresh = d.get("cli", {}).get("list_fresh")
            also = ""
            if fresh is not None and fresh.paired is not None:
                also = (f"; first after a write (answer computed): {R.ratio_cell(fresh, bare, 3, _ms)} "
                        f"{'(within 3×)' if fresh.paired <= 3 else '(**over 3×**)'}")
            rows.append((name1, f"repeated (the daemon's cached answer): {R.ratio_cell(meas, bare, 3, _ms)}{also}",
                         ok if meas.paired <= 3 else bad))
            cold = r["measures"].get("cold_list")
            if cold is None or cold.median is None:
                rows.append((name2, "cold direct list failed", bad))
            else:
                speed = cold.median / meas.median
                rows.append((name2, f"cold direct {_ms(cold.median)} ÷ daemon mode {_ms(meas.median)} = {speed:.1f}×",
                             ok if speed >= 10 else bad))

    # lock pair vs hello, socket, 1 client, mean latencies: at every size measured
    for n in sorted(by_n):
        d = by_n[n].get("daemon")
        name = (f"socket `lock_acquire` + `lock_release` round trip at {n:,} specs within 3× a `hello` round trip "
                "(1 client, mean latencies)")
        if d is None:
            continue
        mix = mix_row(d)
        if not mix or not mix.get("mean") or not mix.get("pair_mean"):
            rows.append((name, "failed to run", bad))
            continue
        ratio = mix["pair_mean"] / mix["mean"]
        rows.append((name, f"pair {_ms(mix['pair_mean'])} = {ratio:.2f}× hello {_ms(mix['mean'])} "
                           f"(limit {_ms(3 * mix['mean'])}; the two alternating in one client)",
                     ok if ratio <= 3 else bad))

    # warm restart and RSS at 50,000
    r, d = daemon_of(50000)
    name3 = "daemon warm restart at 50,000 specs under 5 s (spawn to fully started)"
    name4 = "daemon RSS at 50,000 specs under 300 MB (steady state)"
    if d is None:
        why = "not measured (size not run)" if r is None else "not measured"
        rows += [(name3, why, "—"), (name4, why, "—")]
    else:
        s = d.get("starts", {}).get("warm") or {}
        if not s.get("ready"):
            rows.append((name3, "failed to run", bad))
        else:
            med = statistics.median(s["ready"])
            rows.append((name3, f"{med:.2f} s (median of {len(s['ready'])}; max {max(s['ready']):.2f} s; socket "
                                f"answers hello at {statistics.median(s['hello']):.2f} s)", ok if med < 5 else bad))
        v = (d.get("rss") or {}).get("steady") or {}
        if not v.get("VmRSS"):
            rows.append((name4, "failed to run", bad))
        else:
            rss_mb = v["VmRSS"] * 1024 / 1e6
            hwm = v.get("VmHWM")
            extra = f"; peak (VmHWM) {hwm * 1024 / 1e6:.0f} MB" if hwm else ""
            rows.append((name4, f"VmRSS {rss_mb:.0f} MB ({v['VmRSS'] / 1024:.0f} MiB){extra}",
                         ok if rss_mb < 300 else bad))
    return rows


def render_method(add) -> None:
    add("- **Daemon.** `chantd` is spawned by the runner as `chant daemon start --background` spawns it "
        "(`python -m chantd -C ROOT --api-port P --metrics-port Q`, free loopback ports), logging to "
        "`.chant/logs/daemon.log`, and stopped with `chant daemon stop` (then SIGTERM/SIGKILL of that PID "
        "if it lingers, which never happened unless the table says so). The daemon benchmarks run after all "
        "direct-mode ones (and after the profile), on the same repositories, so the probes they write cannot "
        "disturb them. **Cold start** = `.chant/.index/` deleted, then from the spawn until the socket answers "
        "`hello` and until `daemon_status` shows `watch` set; **warm restart** = the same after a clean stop "
        "(table and index cached). The OS page cache is not dropped.")
    add("- **Daemon mode CLI.** The same `chant` commands without `--direct`, with the daemon running; the CLI "
        "finds the socket itself. The daemon caches its encoded answers to `list` and `search` until a file or a "
        "write changes something: each is measured first after a write (a `lock acquire` + `lock release` just "
        "before it; the daemon computes the answer) and repeated (the cached answer, a send). The daemon-mode "
        "target is judged on the repeated one, and the Targets row shows the other next to it.")
    add("- **Round trips.** Client processes (not threads, so the clients' JSON work does not share one GIL) on "
        "the same 2-CPU machine as the daemon: with 8 clients, they and the daemon compete for the CPUs, so the "
        "8-client rates are what this machine can drive, not the daemon's ceiling. Latencies are per request "
        "(per pair for locks), measured in the client.")
    add("- **Watch latency** depends on the watcher's debounce (10 ms step, 60 ms cap) plus the refresh and the "
        "index commit of the changed file; the poll adds up to ~1 ms.")
    add("- **Daemon RSS** from `/proc/<pid>/status` (VmRSS now, VmHWM its peak), 0.5 s after the last "
        "benchmark of the size; the daemon measured is the one of the steady-state phase (a warm restart).")


# --------------------------------------------------------------------------- the scale table (issue 7)

SCALE_TARGET_P50 = 0.060  # seconds, write -> visible in `list --ready`, at every size
SCALE_TARGET_P99 = 0.120
SCALE_RSS_RATIO = 2.0  # peak RSS of a cold build within this many times the steady RSS


def _journal_bytes(root: str) -> int:
    """Bytes in the table's and index state's journals (they grow when a save appends)."""
    total = 0
    for name in ("table.marshal.journal", "indexed.marshal.journal"):
        with contextlib.suppress(OSError):
            total += os.path.getsize(os.path.join(root, ".chant", ".index", name))
    return total


def _side_by_side(client: DaemonClient, request: tuple[str, dict], seconds: float, fresh: bool) -> dict:
    """One connection alternating `hello` and the request of `chant list --ready`: mean seconds
    of each. ``fresh``: a lease taken and given back before each list (a write: the daemon
    computes the answer again) instead of the cached answer."""
    op, params = request
    hello, listed = [], []
    spec = None
    if fresh:
        specs = client.call(op, params)["specs"]
        spec = specs[0]["id"] if specs else None
    deadline = time.perf_counter() + seconds
    while len(hello) < 10 or time.perf_counter() < deadline:
        if spec is not None:
            lease = client.call("lock_acquire", {"spec": spec, "owner": "bench-scale", "ttl": 60})
            client.call("lock_release", {"spec": spec, "owner": "bench-scale", "token": lease["token"]})
        t0 = time.perf_counter()
        client.call("hello")
        t1 = time.perf_counter()
        client.call(op, params)
        t2 = time.perf_counter()
        hello.append(t1 - t0)
        listed.append(t2 - t1)
        if len(hello) >= 5000:
            break
    return {"hello": statistics.mean(hello), "list": statistics.mean(listed), "n": len(hello)}


def scale_bench(res: dict, args, R, chant: str, python: str, env: dict, baseline, log) -> dict:
    """The measures of the scale table on the repository of ``res``: a cold start's peak
    RSS, then one warm daemon for `chant list` / `chant list --ready` in daemon mode (×bare),
    `list --ready` next to `hello` on one connection, write -> visible in `list --ready`
    (while the daemon's periodic saves run) and the steady RSS."""
    n, root = res["n"], res["root"]
    quick = bool(getattr(args, "quick", False))
    env = dict(env)
    for name in ("CHANT_DAEMON", "CHANT_DAEMON_SOCKET", "CHANT_API_TOKEN"):
        env.pop(name, None)
    fast, _slow = R.repeats(n, args.repeat)
    samples = 10 if quick else 100
    seconds = 0.5 if quick else 3.0
    sc: dict = {"errors": [], "plan": {"rounds": fast, "samples": samples}, "rss": {}, "starts": {}, "rtt": {},
                "watch_list": {}, "journal": {}}
    cli = {key: R.Measure(key) for key in ("list", "list_all")}
    sc["cli"] = cli
    local_bare = R.Measure("bare")
    sc["bare_local"] = local_bare
    this_round = {"bare": None}
    stop_stray(R, chant, root, env, log)
    restore_leftovers(root, log)

    def bare():
        r = R.run([python, "-c", "pass"], cwd=root, timeout=R.FAST_TIMEOUT, env=env)
        this_round["bare"] = r.wall if r.ok() else None
        if r.ok():
            baseline.add(r.wall)
            local_bare.add(r.wall)

    # 1. a cold start: the table and the index built from the files; its VmHWM is the build's peak
    log(f"[{n}] scale: cold start")
    shutil.rmtree(os.path.join(root, ".chant", ".index"), ignore_errors=True)
    daemon = DaemonProc(R, python, chant, root, env)
    try:
        t_hello, t_ready = daemon.start()
        sc["starts"]["cold"] = t_ready
        sc["rss"]["cold"] = daemon.rss()
    except (StartFailed, OSError) as exc:
        sc["errors"].append(f"cold start: {exc}")
    finally:
        daemon.stop()
    # 2. the steady state: one warm daemon for everything else
    daemon = DaemonProc(R, python, chant, root, env)
    try:
        log(f"[{n}] scale: warm start")
        try:
            _t_hello, sc["starts"]["warm"] = daemon.start()
        except (StartFailed, OSError) as exc:
            sc["errors"].append(f"warm start: {exc}")
            return sc
        request = cli_request(["list", "--ready"])
        with DaemonClient.connect(root, timeout=120) as c:
            for _ in range(200):
                c.call("hello")
            status = c.call("daemon_status", {})
            listed = c.call(*request)["specs"]
            sc["specs"], sc["ready"] = status.get("specs"), len(listed)
            sc["listed"] = len(c.call(*cli_request(["list", "--count"]))["specs"])
        time.sleep(0.5)
        sc["rss"]["start"] = daemon.rss()

        log(f"[{n}] scale: daemon-mode `chant list` / `chant list --ready` x{fast}")
        for argv in (["list", "--ready"], ["list"]):  # warm-up
            R.run([chant, *argv], cwd=root, timeout=R.SLOW_TIMEOUT, env=env)
        for _ in range(fast):
            bare()
            for key, argv in (("list", ["list", "--ready"]), ("list_all", ["list"])):
                cli[key].attempts += 1
                r = R.run([chant, *argv], cwd=root, timeout=R.SLOW_TIMEOUT, env=env)
                if r.ok((0, 5)):
                    cli[key].add(r.wall, this_round["bare"])
                else:
                    cli[key].failures.append(r.why())
        bare()

        log(f"[{n}] scale: `list --ready` next to `hello` on one connection")
        try:
            with DaemonClient.connect(root, timeout=120) as c:
                sc["rtt"]["cached"] = _side_by_side(c, request, seconds, fresh=False)
                sc["rtt"]["fresh"] = _side_by_side(c, request, seconds, fresh=True)
        except (ChantError, DaemonGone, OSError) as exc:
            sc["errors"].append(f"round trips: {type(exc).__name__}: {exc}")

        log(f"[{n}] scale: write -> visible in `list --ready` x{samples} new + x{samples} edits")
        edit_id = listed[-1]["id"] if listed else None
        before, t0 = _journal_bytes(root), time.monotonic()
        _series(sc, "watch_list", "watch latency (list)", lambda: watch_latency(root, edit_id, samples, log, via="list"))
        sc["journal"] = {"seconds": time.monotonic() - t0, "grew": _journal_bytes(root) - before}
        log(f"[{n}] scale: write -> visible in `search` x{samples} new + x{samples} edits")
        # the same writes seen through a small answer: what the daemon's own part costs
        _series(sc, "watch_search", "watch latency (search)",
                lambda: watch_latency(root, edit_id, samples, log, via="search"))
        time.sleep(0.5)
        sc["rss"]["steady"] = daemon.rss()
        if not daemon.alive():
            sc["errors"].append(f"the daemon died during the benchmarks: {log_tail(daemon.log_path)}")
    except (DaemonUnavailable, ChantError, DaemonGone, OSError) as exc:
        sc["errors"].append(f"scale measurements: {type(exc).__name__}: {exc}")
    finally:
        log(f"[{n}] scale: stop")
        daemon.stop()
        if daemon.alive():
            sc["errors"].append(f"the daemon (PID {daemon.pid}) could not be stopped")
    return sc


def _p(vals: list, q: float):
    return percentile(sorted(vals), q) if vals else None


def scale_figures(sc: dict, bare: float | None) -> dict:
    """The numbers of one size's column (also what a later run shows as "before")."""
    out: dict = {}
    for series, prefix in (("watch_list", "watch"), ("watch_search", "search")):
        for key in ("new", "edit"):
            s = (sc.get(series) or {}).get(key) or {}
            vals = s.get("samples") or []
            out[f"{prefix}_{key}"] = (_p(vals, 0.5), _p(vals, 0.99), len(vals), s.get("missed", 0)) if vals else None
    for key in ("list", "list_all"):
        m = (sc.get("cli") or {}).get(key)
        if isinstance(m, dict):  # loaded from JSON
            walls, ratios = m.get("walls") or [], m.get("ratios") or []
        else:
            walls, ratios = (m.walls, m.ratios) if m is not None else ([], [])
        out[key] = (statistics.median(walls), statistics.median(ratios) if ratios else None) if walls else None
    out["rtt"] = sc.get("rtt") or {}
    rss = sc.get("rss") or {}
    cold, steady, start = rss.get("cold") or {}, rss.get("steady") or {}, rss.get("start") or {}
    out["rss"] = (cold.get("VmHWM"), steady.get("VmRSS"), start.get("VmRSS"))
    out["starts"] = sc.get("starts") or {}
    out["counts"] = (sc.get("specs"), sc.get("listed"), sc.get("ready"))
    out["journal"] = sc.get("journal") or {}
    out["bare"] = bare
    return out


def _lat(cell) -> str:
    if not cell:
        return "—"
    p50, p99, k, missed = cell
    return f"{_ms(p50)} / {_ms(p99)}" + (f" ({missed} not seen)" if missed else "")


def render_scale(results: list[dict], bare: float | None, R, info: dict, before: dict | None = None) -> list[str]:
    """The "Scale" section of docs/benchmarks.md (between its markers)."""
    lines: list[str] = []
    add = lines.append
    done = [r for r in results if r.get("scale")]
    sizes = [r["n"] for r in done]
    fig = {r["n"]: scale_figures(r["scale"], bare) for r in done}
    old = {int(k): v for k, v in (before or {}).get("figures", {}).items()}
    add(SCALE_BEGIN)
    add("## Scale: the cost of a change, up to 200,000 specs")
    add("")
    load, load_end = info.get("loadavg"), info.get("loadavg_end")
    loads = f"1-minute load average {load[0]:.2f} at the start, {load_end[0]:.2f} at the end" if load and load_end \
        else "load unknown"
    add(f"Measured by `make bench-scale` (= `benchmarks/run.py --scale --sizes 5000,50000,200000 --write "
        f"docs/benchmarks.md`) on {info.get('date')}, commit `{info.get('commit') or 'unknown'}`, code from "
        f"`{info.get('code') or '?'}`; {info.get('nproc')} CPUs, shared ({loads}). Daemon mode throughout; the "
        "repositories are the generator's (about 60% archived). Each figure sits beside its baseline from the "
        "same run: the bare interpreter for the CLI, `hello` on the same connection for `list --ready`, the "
        "same daemon's steady RSS for the cold build's peak.")
    if before:
        add("")
        add(f"\"Before\" figures (→ left of the arrow) are the same runner on the same repositories with the code "
            f"of {before.get('label')}, measured {before.get('date')} ({before.get('load')}).")
    add("")
    head = "| Measure | " + " | ".join(f"{n:,}" for n in sizes) + " | Target |"
    add(head)
    add("|---" * (len(sizes) + 2) + "|")

    def row(label: str, render, target: str = "") -> None:
        cells = []
        for n in sizes:
            now = render(fig[n])
            was = render(old[n]) if n in old else None
            cells.append(f"{was} → {now}" if was not in (None, "—") else now)
        add(f"| {label} | " + " | ".join(cells) + f" | {target} |")

    row("specs / listed by `chant list` / by `chant list --ready`", lambda f: " / ".join(
        f"{x:,}" if isinstance(x, int) else "?" for x in f["counts"]))
    row("write → visible in `list --ready`, p50 / p99: a new spec file", lambda f: _lat(f["watch_new"]),
        "p50 ≤ 60 ms, p99 ≤ 120 ms")
    row("write → visible in `list --ready`, p50 / p99: a spec's title edited in place", lambda f: _lat(f["watch_edit"]),
        "p50 ≤ 60 ms, p99 ≤ 120 ms")

    row("… the same writes seen through `search` (a small answer: the daemon's own part), new / edit",
        lambda f: f"{_lat(f.get('search_new'))}; {_lat(f.get('search_edit'))}", "flat across sizes")

    def cli(key):
        def render(f):
            v = f.get(key)
            if not v:
                return "—"
            return f"{v[1]:.1f}× ({_ms(v[0])})" if v[1] else _ms(v[0])
        return render

    row("daemon-mode `chant list` (every active spec but cancelled ones), ×bare (median)", cli("list_all"),
        "linear in the answer")

    def per_spec(f):
        v, counts = f.get("list_all"), f.get("counts")
        if not v or not counts or not counts[1]:
            return "—"
        return f"{(v[0] - (f.get('bare') or 0)) / counts[1] * 1e6:.1f} µs"

    row("… its time beyond the bare interpreter, per listed spec", per_spec, "flat across sizes")
    row("daemon-mode `chant list --ready`, ×bare (median)", cli("list"))

    def rtt(kind):
        def render(f):
            v = f["rtt"].get(kind)
            if not v:
                return "—"
            return f"{_ms(v['list'])} = {v['list'] / v['hello']:.1f}× `hello` ({_ms(v['hello'])})"
        return render

    row("socket round trip of `list --ready`'s request, the cached answer", rtt("cached"))
    row("… the answer computed (a lease taken and given back before each)", rtt("fresh"))

    def rss(f):
        peak, steady, start = f["rss"]
        if not peak or not steady:
            return "—"
        also = f" (÷ the warm start's {R.fmt_rss(start)}: {peak / start:.2f}×)" if start else ""
        return f"{R.fmt_rss(peak)} / {R.fmt_rss(steady)} = {peak / steady:.2f}×{also}"

    row("peak RSS of a cold build (VmHWM) / steady RSS (VmRSS after the above)", rss, "≤ 2×")
    row("RSS just after a warm start", lambda f: R.fmt_rss(f["rss"][2]) if f["rss"][2] else "—")
    row("daemon start to fully started: cold / warm", lambda f: " / ".join(
        _ms(f["starts"].get(k)) for k in ("cold", "warm")))

    def saves(f):
        j = f.get("journal") or {}
        if not j:
            return "—"
        return f"{j.get('grew', 0):,} B appended in {j.get('seconds', 0):.0f} s"

    row("the daemon's saves during the latency series (the journals' growth)", saves)
    add("")
    verdicts = []
    for n in sizes:
        f = fig[n]
        for key, what in (("watch_new", "new file"), ("watch_edit", "edit")):
            cell = f[key]
            ok = bool(cell) and cell[0] <= SCALE_TARGET_P50 and cell[1] <= SCALE_TARGET_P99 and not cell[3]
            verdicts.append((f"write → visible in `list --ready` at {n:,} ({what})", _lat(cell), ok))
        peak, steady, _ = f["rss"]
        ok = bool(peak and steady) and peak <= SCALE_RSS_RATIO * steady
        verdicts.append((f"cold build peak RSS at {n:,} within 2× steady", rss(f), ok))
    # linear: the time each further listed spec adds is the same between the larger sizes as between the
    # smaller ones (a quadratic read would add ever more per spec)
    pts = [(fig[n]["counts"][1], fig[n]["list_all"][0]) for n in sizes
           if fig[n].get("list_all") and fig[n].get("counts") and fig[n]["counts"][1]]
    if len(pts) >= 3 and pts[1][0] > pts[0][0] and pts[2][0] > pts[1][0]:
        low = (pts[1][1] - pts[0][1]) / (pts[1][0] - pts[0][0])
        high = (pts[2][1] - pts[1][1]) / (pts[2][0] - pts[1][0])
        ratio = high / low if low > 0 else float("inf")
        verdicts.append(("`chant list` linear: the time per further listed spec between the two larger sizes "
                         "within 2× that between the two smaller ones",
                         f"{high * 1e6:.1f} µs vs {low * 1e6:.1f} µs = {ratio:.2f}×", ratio <= 2.0))
    add("| Target | Measured | Verdict |")
    add("|---|---|---|")
    for name, measured, ok in verdicts:
        add(f"| {name} | {measured} | {'✅ PASS' if ok else '❌ FAIL'} |")
    add("")
    for r in done:
        for err in r["scale"].get("errors", []):
            add(f"- **error at {r['n']:,}:** {err}")
    add("Method: the cold start deletes `.chant/.index/` and times the spawn to fully started; its `VmHWM` is "
        "the peak of the build. The steady RSS is the warm daemon's `VmRSS` after all of the measures here. "
        "`chant list` and `chant list --ready` run without `--direct`, each round after a bare interpreter "
        "(the paired ratio). The latency series write a new spec file (or rewrite a ready spec's title in place) "
        "and poll over one connection every ~1 ms with the request `chant list --ready` sends, decoding the whole "
        "answer, until it shows the change; the daemon saves its table every 5 s meanwhile (the journals' "
        "growth shows those saves). Each list sample holds the poll in flight when the change lands and one "
        "whole answer after it, so it cannot be shorter than about the daemon's part (the `search` row, "
        "whose answers are small) plus one to two round trips of the `list --ready` answer (the socket row): "
        "at 200,000 specs that answer holds 23,706 specs. The OS page cache is not dropped, but this machine's is small: a cold start "
        "may read from disk.")
    add(SCALE_END)
    return lines


SCALE_BEGIN = "<!-- scale:begin (written by `make bench-scale`; `make bench` keeps it) -->"
SCALE_END = "<!-- scale:end -->"
