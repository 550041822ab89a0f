"""The daemon's measures of one size, after the direct-mode ones: cold and warm starts, the
CLI in daemon mode next to direct mode, round trips, watch latency, the daemon's RSS, the
service in process, and leases during long work."""

from __future__ import annotations

import os
import re
import shutil
import time

from chantlib.client import DaemonClient, DaemonGone, DaemonUnavailable
from chantlib.errors import ChantError

from ..runner import BareStart, Daemon, Measure, StartFailed, memory_run, repeats, run, stop_stray
from ..settings import BIG, FAST_TIMEOUT, FREE_QUERY
from .profile import breakdown, cprofile, importtime
from .renew import measure_renew
from .roundtrips import CLIENTS, round_trips
from .service import service_times
from .watch import record_series, restore_leftovers, watch_latency

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


def bench(res: dict, args, chant: str, python: str, env: dict, baseline, log) -> dict:
    """All of the daemon's measurements on the repository of ``res`` (after its direct ones)."""
    n = res["n"]
    root = res["root"]
    quick = bool(getattr(args, "quick", False))
    d: dict = {"errors": [], "cli": {}, "starts": {}, "stops": [], "stop_failures": [], "rtt": [], "watch": {},
               "rss": {}, "split": {}, "check": {}}
    env = dict(env)
    for name in ("CHANT_DAEMON", "CHANT_DAEMON_SOCKET", "CHANT_API_TOKEN"):
        env.pop(name, None)
    fast, _slow = repeats(n, args.repeat)
    rounds = 2 * fast  # daemon-mode commands are short and this machine is noisy: twice the rounds
    cold_runs = 1 if quick else (2 if n >= BIG else 3)
    warm_runs = 2 if quick else 3
    seconds = 0.5 if quick else 2.0
    samples = 10 if quick else 100
    d["plan"] = {"cold": cold_runs, "warm": warm_runs, "fast": rounds, "seconds": seconds, "samples": samples}
    index_dir = os.path.join(root, ".chant", ".index")
    local_bare = Measure("bare")
    d["bare_local"] = local_bare

    bare = BareStart(python, root, env, baseline, local_bare)

    stop_stray(chant, root, env, log)
    restore_leftovers(root, log)

    def stop(daemon: Daemon) -> None:
        r = daemon.stop()
        if r is None:
            return
        if r.ok() and not daemon.alive():
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
            daemon = Daemon(python, chant, root, env)
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
    daemon = Daemon(python, chant, root, env)
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
        m = {key: Measure(key) for key, _, _ in CLI_ROWS}
        d["cli"] = m
        log(f"[{n}] daemon: CLI in daemon mode x{rounds}")

        def measure(key: str, argv, codes=(0,)):
            m[key].attempts += 1
            r = run([chant, *argv], cwd=root, timeout=FAST_TIMEOUT, env=env)
            if r.ok(codes):
                m[key].add(r.wall, bare.last)
            else:
                m[key].failures.append(r.why())
            return r

        for argv in (["list", "--ready"], ["search", FREE_QUERY]):  # warm-up, not measured
            run([chant, *argv], cwd=root, timeout=FAST_TIMEOUT, env=env)
        before = socket_counts(daemon.api_port)
        for _ in range(rounds):
            bare()
            if lock_id is not None:  # a write: it empties the daemon's answer cache
                m["lock"].attempts += 1
                a = run([chant, "lock", "acquire", lock_id], cwd=root, timeout=FAST_TIMEOUT, env=env)
                b = run([chant, "lock", "release", lock_id], cwd=root, timeout=FAST_TIMEOUT, env=env)
                if a.ok() and b.ok():
                    m["lock"].add(a.wall + b.wall, bare.last)
                else:
                    m["lock"].failures.append(f"acquire {a.why()}" if not a.ok() else f"release {b.why()}")
                    run([chant, "lock", "release", lock_id, "--force"], cwd=root, timeout=FAST_TIMEOUT, env=env)
                measure("list_fresh", ["list", "--ready"], codes=(0, 5))
                measure("search_fresh", ["search", FREE_QUERY])
            measure("list", ["list", "--ready"], codes=(0, 5))
            measure("search", ["search", FREE_QUERY])
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
            r, kib = memory_run([chant, *argv], root, FAST_TIMEOUT, env)
            m[key].add_rss(kib)
            if kib is None:
                d["errors"].append(f"memory run of daemon-mode `chant {' '.join(argv)}`: {r.why()}")

        mem("list", ["list", "--ready"])
        mem("search", ["search", FREE_QUERY])
        if lock_id is not None:
            mem("lock", ["lock", "acquire", lock_id])
            mem("lock", ["lock", "release", lock_id])

        # where a daemon-mode command spends its time (import, main(argv), the rest)
        d["split"].update(breakdown(root, python, env, runs=3 if quick else 5, timeout=FAST_TIMEOUT,
                                      commands=(("list", ["list", "--ready"]), ("search", ["search", FREE_QUERY]))))
        if n == 5000:  # the target's size: where a daemon-mode `list --ready` spends its time
            d["cprofile"] = cprofile(root, python, env, ["list", "--ready"])
            d["importtime"] = importtime(root, python, env, ["list", "--ready"])
        d["rss"]["cli"] = daemon.rss()

        # 2b. socket and HTTP round trips
        log(f"[{n}] daemon: round trips (1 and {max(CLIENTS)} clients, {seconds:g}s each)")
        d["rtt"] = round_trips(python, root, daemon.api_port, env, ready, seconds, log)
        d["rss"]["rtt"] = daemon.rss()

        # 2c. watch latency
        log(f"[{n}] daemon: watch latency x{samples} new + x{samples} edits")
        edit_id = ready[-1] if ready else None
        record_series(d, "watch", "watch latency", lambda: watch_latency(root, edit_id, samples, log))
        log(f"[{n}] daemon: write -> visible in `list --ready` x{samples} new + x{samples} edits")
        record_series(d, "watch_list", "watch latency (list)", lambda: watch_latency(root, edit_id, samples, log, via="list"))

        # 2d. memory at steady state
        time.sleep(0.5)
        d["rss"]["steady"] = daemon.rss()
        if not daemon.alive():
            d["errors"].append(f"the daemon died during the benchmarks: {daemon.log_line()}")

        # 2e. leases during long work: lock_renew idle, then while the daemon rebuilds its index
        # (last: the rebuild replaces the index every measure above used)
        log(f"[{n}] daemon: lock_renew idle and during `index rebuild`")
        d["renew"] = measure_renew(root, seconds, log)
    except (DaemonUnavailable, ChantError, DaemonGone, OSError) as exc:
        d["errors"].append(f"steady-state measurements: {type(exc).__name__}: {exc}")
    finally:
        log(f"[{n}] daemon: stop")
        stop(daemon)
        if daemon.alive():
            d["errors"].append(f"the daemon (PID {daemon.pid}) could not be stopped")
    if not daemon.alive():
        log(f"[{n}] daemon: service times in process")
        d["service"] = service_times(python, root, env, 0.2 if quick else 1.0)
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
