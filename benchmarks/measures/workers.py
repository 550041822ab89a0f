"""The load test (issue 10): ``chant agent worker`` processes against one daemon, socket and HTTP
side by side, and the same while one worker is SIGKILLed and the daemon restarted.

A repository of N ready specs (label ``load``), each ``depends_on`` one gate spec, so the
queue can be closed and opened at once: the gate ``completed`` (all N ready), ``pending``
(none ready). With the queue open, the bare claim is measured first (:func:`bare_claims`:
client processes looping ``queue_claim`` + ``lock_release`` by token over one socket
connection each, 1 and 16 of them, as the daemon section's round trips do, with the workers'
label filter). Then the gate is closed, the W workers are started (half on the socket, half
with ``CHANT_DAEMON=http://127.0.0.1:<port>`` and ``CHANT_API_TOKEN``), each ``--exec``
appending ``{id}`` to one shared file, ``--concurrency 1``, a short ``--ttl``; once every one
is up (its start line, then a second for its first long poll to reach the daemon), the gate
opens (``t0``) and the run lasts until the daemon shows no ready spec and no lease (``t1``).
Each worker records its claims' round trips (``CHANT_WORKER_TIMINGS``, one file each); a
claim that started before ``t0`` (a long poll waiting for the gate) is left out.

:func:`drive` runs one such run (``fault=True``: the worker holding a lease when a third of
the specs are done is SIGKILLed, the daemon is stopped and started again on the same ports
when two thirds are done) and :func:`check` reads the files afterwards: every spec
``completed``, each completed exactly once (one summary line ``<id>: completed in`` over all
the workers' stderr), every ID in the done file (an ID twice only for a spec whose run the
kill or the restart cut off), every worker's exit status, and every stderr line not among
the expected ones. Every process started is stopped, on errors too; every wait is bounded.
The test suite's ``tests/test_load.py`` runs the same functions, smaller.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import tempfile
import time

from chantlib.client import DaemonClient, DaemonGone, DaemonUnavailable, read_token
from chantlib.errors import ChantError

from ..runner import Daemon, percentile
from .roundtrips import Worker as Claimer
from .roundtrips import run_round

GATE = "2026-02-28-000-gat"
LABEL = "load"
SPECS = 2000
WORKERS = 32
TTL = 6.0  # seconds: a SIGKILLed worker's spec is claimable again this long after its last renewal
WAIT = 30.0  # seconds of one long poll
GRACE = 5.0
BARE_CLAIMERS = (1, 16)
#: seconds between two claims of the probe beside the workers (~100 claims/s: a sample of
#: the load, not a load of its own; each claim is released at once)
PROBE_PACE = 0.01
RATIO_LIMIT = 2.0  # a worker's claim within 2x the bare socket claim (issue 10)

#: what a worker says on stderr in a run like this one (anything else is reported)
EXPECTED = [
    re.compile(p) for p in (
        r"^worker \S+: (socket|http) mode, 1 slot, running: ",
        r"^\S+: claimed \(token \d+\); running: ",
        r"^\S+: completed in [0-9.]+ s$",
        r"^worker: SIG(TERM|INT): no more claims; ",
        # the daemon restarting (the fault run): the backoff and what follows it
        r"^worker: cannot claim: .*; trying again \(backoff [0-9.]+ s\)$",
        r"^\S+: cannot report the result \(.*\); trying again \(backoff [0-9.]+ s\)$",
        r"^\S+: cannot renew the lease \(.*\); the command keeps running, trying again",
        r"^\S+: the daemon answers again; lease re-asserted",
    )
]
#: expected only where the restart cut a run off: the lease was lost meanwhile (nothing written)
LOST_LINES = [
    re.compile(p) for p in (
        r"^\S+: completion refused \(",
        r"^\S+: lost its lease: not completed \(nothing written\)$",
        r"^\S+: the lease is gone \(",
    )
]


def spec_id(n: int) -> str:
    return f"2026-03-01-{n:04d}-lod"


def make_repo(root: str, n: int) -> list[str]:
    """A repository at ``root`` with the gate (``completed``) and ``n`` specs waiting on it."""
    from chantlib.store import SpecStore

    SpecStore(root).init("load")
    folder = os.path.join(root, ".chant", "specs")
    write_gate(root, "completed")
    ids = []
    for i in range(n):
        sid = spec_id(i)
        ids.append(sid)
        with open(os.path.join(folder, f"{sid}.md"), "w", encoding="utf-8") as fh:
            fh.write(f"---\nstatus: pending\nlabels: [{LABEL}]\ndepends_on: [{GATE}]\n---\n# Load spec {i}\n")
    return ids


def write_gate(root: str, status: str) -> None:
    path = os.path.join(root, ".chant", "specs", f"{GATE}.md")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f"---\nstatus: {status}\n---\n# The gate of the load test\n")
    os.replace(tmp, path)


def _call(root: str, cmd: str, params: dict | None = None, timeout: float = 10.0):
    with DaemonClient.connect(root, timeout=timeout) as c:
        return c.call(cmd, params or {})


def ready_count(root: str) -> int:
    specs = _call(root, "list", {"ready": True, "labels": [LABEL], "fields": ["id"]})["specs"]
    return len(specs)


def wait_for(check, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(DaemonUnavailable, DaemonGone, ChantError, OSError):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


class WorkerProc:
    """One ``chant agent worker`` process: stderr and its claim timings in files of ``folder``."""

    def __init__(self, argv: list[str], root: str, folder: str, name: str, http: str | None, token: str | None,
                 env: dict, done: str, ttl: float) -> None:
        self.name, self.http = name, http is not None
        self.err_path = os.path.join(folder, f"{name}.err")
        self.timings_path = os.path.join(folder, f"{name}.timings")
        env = {k: v for k, v in env.items() if k not in ("CHANT_DAEMON", "CHANT_API_TOKEN", "CHANT_DAEMON_SOCKET")}
        env["CHANT_WORKER_TIMINGS"] = self.timings_path
        if http is not None:
            env.update(CHANT_DAEMON=http, CHANT_API_TOKEN=token or "")
        command = f"printf '%s\\n' {{id}} >> {shlex.quote(done)}"
        args = ["agent", "worker", "--exec", command, "--concurrency", "1", "--label", LABEL, "--ttl", f"{ttl:g}", "--wait",
                f"{WAIT:g}", "--grace", f"{GRACE:g}", "--owner", name]
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([*argv, *args], cwd=root, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        self.killed = False

    def err(self) -> str:
        try:
            with open(self.err_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def started(self) -> bool:
        return " mode, 1 slot, running: " in self.err()

    def signal(self, sig) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def claims(self) -> list[tuple[float, float, str]]:
        out = []
        try:
            with open(self.timings_path, encoding="ascii") as fh:
                for line in fh:
                    at, took, outcome = line.split()
                    out.append((float(at), float(took), outcome))
        except (OSError, ValueError):
            pass
        return out


def bare_claims(python: str, root: str, api_port: int, env: dict, seconds: float, log) -> list[dict]:
    """The bare socket claim on the open queue: 1 and 16 client processes (``programs/worker.py``,
    one persistent connection each) looping ``queue_claim`` (labels: the workers') then
    ``lock_release`` by token; the claim's own round trip is the latency."""
    rows = []
    claimers: list[Claimer] = []
    try:
        for _ in range(max(BARE_CLAIMERS)):
            claimers.append(Claimer(python, root, api_port, env))
        limit = time.monotonic() + 60.0
        for c in claimers:
            if c.recv(limit) != "ready":
                raise RuntimeError(c.why())
        for k in BARE_CLAIMERS:
            log(f"    bare socket claim x{k} for {seconds:g}s")
            jobs = [{"mode": "claim", "cap": 200000, "owner": f"bench-claim-{i}", "labels": [LABEL]} for i in range(k)]
            row = run_round(claimers[:k], jobs, seconds)
            rows.append(row)
    except (RuntimeError, OSError) as exc:
        rows.append({"clients": 0, "failures": [f"client processes: {exc}"]})
    finally:
        for c in claimers:
            c.close()
    return rows


def drive(argv: list[str], daemon: Daemon, root: str, folder: str, ids: list[str], *, workers: int, ttl: float,
          fault: bool, env: dict, log, timeout: float, probe: str | None = None) -> dict:
    """One run on the running ``daemon`` (see the module's docstring); the daemon is left running
    (restarted in a fault run), every worker stopped. ``probe``: the Python of a bare claimer
    (:func:`start_probe`) that claims beside the workers the whole run."""
    n = len(ids)
    done = os.path.join(folder, "done.txt")
    out: dict = {"specs": n, "workers": workers, "fault": fault, "errors": [], "events": []}
    write_gate(root, "pending")
    wait_for(lambda: ready_count(root) == 0, 60.0, "the queue closed (the gate pending)")
    api = f"http://127.0.0.1:{daemon.api_port}"
    token = read_token(root)
    procs: list[WorkerProc] = []
    prober: Claimer | None = None
    try:
        for i in range(workers):
            http = i % 2 == 1
            name = f"load-{'h' if http else 's'}{i // 2:02d}"
            procs.append(WorkerProc(argv, root, folder, name, api if http else None, token, env, done, ttl))
        wait_for(lambda: all(p.started() or p.proc.poll() is not None for p in procs), 120.0,
                 "every worker's start line")
        time.sleep(1.0)  # each one's first long poll reaches the daemon
        early = [p.name for p in procs if p.proc.poll() is not None]
        if early:
            out["errors"].append(f"workers exited at the start: {', '.join(early)}")
        prober = start_probe(probe, root, daemon.api_port, env, out) if probe else None
        log(f"    {workers} workers up; opening the queue of {n} specs")
        t0 = time.time()
        write_gate(root, "completed")
        if prober is not None:
            prober.send({"mode": "claim", "cap": 1_000_000, "owner": "bench-probe", "labels": [LABEL],
                         "pace": PROBE_PACE, "until_empty": True, "start": time.time(),
                         "deadline": time.time() + timeout})
        deadline = time.monotonic() + timeout
        killed: WorkerProc | None = None
        restarted = False
        t1 = None
        while time.monotonic() < deadline:
            finished = _distinct(done)
            if fault and killed is None and finished >= n // 3:
                killed = _kill_one(root, procs, out, log)
            if fault and not restarted and killed is not None and finished >= 2 * n // 3:
                restarted = True
                log("    restarting the daemon")
                at = time.time()
                daemon.process.stop(timeout=60.0)
                down = time.time()
                daemon.process.start(timeout=120.0)
                out["events"].append({"event": "restart", "at": at - t0, "stop": down - at,
                                      "down": time.time() - at, "done_before": finished})
            if finished >= n:  # every command ran: done once nothing is ready or leased (live reads)
                with contextlib.suppress(DaemonUnavailable, DaemonGone, ChantError, OSError):
                    if ready_count(root) == 0 and not _call(root, "lock_list")["leases"]:
                        t1 = time.time()
                        break
            time.sleep(0.05)
        if t1 is None:
            out["errors"].append(f"not finished within {timeout:g} s: {_count_lines(done)} lines in the done file")
        out["seconds"] = (t1 or time.time()) - t0
        out["rate"] = n / out["seconds"] if t1 else None
        out["t0"] = t0
        if prober is not None:
            out["probe"] = probe_result(prober, out)
    finally:
        if prober is not None:
            prober.close()  # once more, if a failure came first: the process never outlives the run
        for p in procs:
            p.signal(signal.SIGTERM)
        for p in procs:
            if p.wait(GRACE + 30.0) is None:
                out["errors"].append(f"{p.name} did not stop within {GRACE + 30:g} s of SIGTERM: killed")
                p.signal(signal.SIGKILL)
                p.wait(10.0)
    out.update(check(root, ids, procs, done, out))
    out.update(latencies(procs, out.get("t0", 0.0), out.get("t0", 0.0) + out.get("seconds", 0.0)))
    return out


def start_probe(python: str, root: str, api_port: int, env: dict, out: dict) -> Claimer | None:
    """A bare claimer beside the workers (``programs/worker.py``, one socket connection):
    ``queue_claim`` then ``lock_release`` by token every :data:`PROBE_PACE` s while the run
    lasts, until nothing is ready; the baseline measured under the same load as the workers'
    claims (what the machine, not the worker, adds). A spec it claims is back at once."""
    prober = Claimer(python, root, api_port, env)
    if prober.recv(time.monotonic() + 60.0) != "ready":
        out["errors"].append(f"the probe claimer did not start: {prober.why()}")
        prober.close()
        return None
    return prober


def probe_result(prober: Claimer, out: dict) -> dict | None:
    try:
        line = prober.recv(time.monotonic() + 30.0)
        got = json.loads(line) if line else None
    except ValueError:
        got = None
    finally:
        prober.close()
    if got is None:
        out["errors"].append("the probe claimer sent no result")
        return None
    lat = sorted(x / 1e7 for x in got["lat"])
    return {**summary(lat), "errors": got["errors"], "error": got["error"]}


def _distinct(path: str) -> int:
    """The distinct lines of the done file (an ID run twice counts once)."""
    try:
        with open(path, "rb") as fh:
            return len(set(fh.read().split()))
    except OSError:
        return 0


def _count_lines(path: str) -> int:
    try:
        with open(path, "rb") as fh:
            return fh.read().count(b"\n")
    except OSError:
        return 0


def _kill_one(root: str, procs: list[WorkerProc], out: dict, log) -> WorkerProc | None:
    """SIGKILL the first socket worker seen holding a lease (None if none held one for 5 s)."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        with contextlib.suppress(DaemonUnavailable, DaemonGone, ChantError, OSError):
            leases = _call(root, "lock_list")["leases"]
            by_owner = {lease["owner"]: lease["spec"] for lease in leases}
            for p in procs:
                if not p.http and p.name in by_owner and p.proc.poll() is None:
                    p.signal(signal.SIGKILL)
                    p.killed = True
                    p.wait(10.0)
                    held = {lease["owner"]: lease["spec"] for lease in _call(root, "lock_list")["leases"]}
                    out["events"].append({"event": "sigkill", "worker": p.name, "spec": by_owner[p.name],
                                          "held_after": held.get(p.name), "done_before": _count_lines(
                                              os.path.join(os.path.dirname(p.err_path), "done.txt"))})
                    log(f"    SIGKILL {p.name} (it held {by_owner[p.name]})")
                    return p
        time.sleep(0.01)
    out["errors"].append("no socket worker was seen holding a lease within 5 s: none killed")
    return None


def check(root: str, ids: list[str], procs: list[WorkerProc], done: str, out: dict) -> dict:
    """What the files say once the run is over (see the module's docstring)."""
    statuses = collections.Counter()
    not_completed = []
    for sid in ids:
        with open(os.path.join(root, ".chant", "specs", f"{sid}.md"), encoding="utf-8") as fh:
            m = re.search(r"^status: (\S+)", fh.read(), re.M)
        status = m.group(1) if m else "?"
        statuses[status] += 1
        if status != "completed":
            not_completed.append(f"{sid}: {status}")
    try:
        with open(done, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        lines = []
    ran = collections.Counter(lines)
    completions: collections.Counter = collections.Counter()
    unexpected, lost = [], []
    codes = {}
    for p in procs:
        codes[p.name] = p.proc.returncode
        for line in p.err().splitlines():
            m = re.match(r"^(\S+): completed in ", line)
            if m:
                completions[m.group(1)] += 1
            if any(rx.search(line) for rx in EXPECTED):
                continue
            if any(rx.search(line) for rx in LOST_LINES):
                lost.append(f"{p.name}: {line}")
                continue
            unexpected.append(f"{p.name}: {line}")
    known = set(ids)
    twice = sorted(sid for sid, k in ran.items() if k > 1)
    bad_exit = {name: code for name, code in codes.items()
                if code != 0 and not (code == -signal.SIGKILL and any(p.name == name and p.killed for p in procs))}
    per_worker = collections.Counter()
    for p in procs:
        per_worker["http" if p.http else "socket"] += sum(1 for line in p.err().splitlines()
                                                           if re.match(r"^\S+: completed in ", line))
    return {
        "statuses": dict(statuses),
        "not_completed": not_completed,
        "missing": sorted(known - set(ran)),
        "strangers": sorted(set(ran) - known),
        "ran_twice": twice,
        "done_lines": len(lines),
        "completed_once": sum(1 for sid in ids if completions[sid] == 1),
        "completed_more": sorted(sid for sid in ids if completions[sid] > 1),
        "completed_none": sorted(sid for sid in ids if completions[sid] == 0),
        "unexpected": unexpected,
        "lost_lines": lost,
        "exit_codes": codes,
        "bad_exit": bad_exit,
        "by_transport": dict(per_worker),
    }


def latencies(procs: list[WorkerProc], t0: float, t1: float) -> dict:
    """The won claims' round trips (seconds) of the socket and the HTTP workers, those that
    started once the queue was open; with the count of every outcome (a long poll cut off by
    the workers' SIGTERM once all was done is counted apart)."""
    out: dict = {"claims": {}, "outcomes": {}}
    for kind in ("socket", "http"):
        lat, outcomes = [], collections.Counter()
        for p in procs:
            if p.http != (kind == "http"):
                continue
            for at, took, outcome in p.claims():
                if at < t0:
                    outcomes["before the queue opened"] += 1
                    continue
                if outcome != "won" and at + took >= t1:
                    outcomes["cut off by the stop"] += 1
                    continue
                outcomes[outcome] += 1
                if outcome == "won":
                    lat.append(took)
        out["claims"][kind] = sorted(lat)
        out["outcomes"][kind] = dict(outcomes)
    return out


def summary(lat: list[float]) -> dict:
    if not lat:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    return {"n": len(lat), "p50": statistics.median(lat), "p99": percentile(lat, 0.99), "max": lat[-1]}


def problems(run: dict) -> list[str]:
    """What a run got wrong, one line each (empty: every check passed)."""
    bad = list(run.get("errors", []))
    if run.get("not_completed"):
        bad.append(f"{len(run['not_completed'])} spec(s) not completed: {', '.join(run['not_completed'][:5])}")
    if run.get("missing"):
        bad.append(f"{len(run['missing'])} ID(s) not in the done file: {', '.join(run['missing'][:5])}")
    if run.get("strangers"):
        bad.append(f"unknown IDs in the done file: {', '.join(run['strangers'][:5])}")
    if run.get("completed_more"):
        bad.append(f"completed more than once: {', '.join(run['completed_more'][:5])}")
    killed = {e["spec"] for e in run.get("events", []) if e.get("event") == "sigkill"}
    silent = [sid for sid in run.get("completed_none", []) if sid not in killed]  # a killed worker says nothing
    if silent:
        bad.append(f"{len(silent)} spec(s) with no completion line: {', '.join(silent[:5])}")
    if run.get("bad_exit"):
        bad.append(f"workers exited non-zero: {run['bad_exit']}")
    if run.get("unexpected"):
        bad.append(f"{len(run['unexpected'])} unexpected stderr line(s): {run['unexpected'][0][:200]}")
    allowed = set(interrupted(run))
    extra = [sid for sid in run.get("ran_twice", []) if sid not in allowed]
    if extra:
        bad.append(f"run twice with no kill or restart to explain it: {', '.join(extra[:5])}")
    if not run.get("fault") and (run.get("lost_lines") or run.get("ran_twice")):
        bad.append(f"leases lost or specs run twice without any fault: {(run.get('lost_lines') or run['ran_twice'])[:3]}")
    return bad


def interrupted(run: dict) -> list[str]:
    """The specs whose run a fault may have cut off: the killed worker's, and (a restart) those
    whose lease the workers lost meanwhile, per their stderr."""
    out = [e["spec"] for e in run.get("events", []) if e.get("event") == "sigkill"]
    for line in run.get("lost_lines", []):
        m = re.match(r"^\S+: (\S+): ", line)
        if m:
            out.append(m.group(1))
    return out


def bench(argv: list[str], python: str, chant: str, env: dict, log, *, specs: int = SPECS, workers: int = WORKERS,
          ttl: float = TTL, seconds: float = 2.0, timeout: float = 600.0, bare: bool = True,
          fault: bool = True, plain: bool = True, folder: str | None = None) -> dict:
    """The whole measure: the bare claim and the plain run on one daemon, the fault run on
    another (each on a fresh repository in ``folder``, kept, else in a temp folder); every
    daemon stopped."""
    res: dict = {"specs": specs, "workers": workers, "ttl": ttl, "bare": [], "runs": {}}
    env = {k: v for k, v in env.items() if k not in ("CHANT_DAEMON", "CHANT_API_TOKEN", "CHANT_DAEMON_SOCKET")}
    with contextlib.nullcontext(folder) if folder else tempfile.TemporaryDirectory(prefix="chant-load-") as tmp:
        for kind in ("plain", "fault"):
            if not (plain if kind == "plain" else fault):
                continue
            root, folder = os.path.join(tmp, kind, "repo"), os.path.join(tmp, kind, "run")
            os.makedirs(folder)
            ids = make_repo(root, specs)
            daemon = Daemon(python, chant, root, env)
            try:
                log(f"  workers ({kind}): daemon start")
                daemon.start()
                if kind == "plain" and bare:
                    res["bare"] = bare_claims(python, root, daemon.api_port, env, seconds, log)
                t = time.perf_counter()
                res["runs"][kind] = drive(argv, daemon, root, folder, ids, workers=workers, ttl=ttl,
                                          fault=kind == "fault", env=env, log=log, timeout=timeout,
                                          probe=python if kind == "plain" else None)
                log(f"  workers ({kind}): done in {time.perf_counter() - t:.0f}s")
            except Exception as exc:  # reported in the document, never a crash
                res["runs"].setdefault(kind, {"errors": []})["errors"].append(
                    f"the {kind} run failed: {type(exc).__name__}: {exc}")
            finally:
                daemon.stop()
    return res
