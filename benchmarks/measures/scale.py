"""The scale table's measures (issue 7): what a change costs at 5,000, 50,000 and 200,000
specs, in daemon mode."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import time

from chantlib.client import DaemonClient, DaemonGone, DaemonUnavailable
from chantlib.errors import ChantError

from ..runner import BareStart, Daemon, Measure, StartFailed, repeats, run, stop_stray
from ..settings import SLOW_TIMEOUT
from .watch import cli_request, listed_ids, record_series, restore_leftovers, watch_latency

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
        ids = list(listed_ids(client.call(op, params)))
        spec = ids[0] if ids else None
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


def scale_bench(res: dict, args, chant: str, python: str, env: dict, baseline, log) -> dict:
    """The measures of the scale table on the repository of ``res``: a cold start's peak
    RSS, then one warm daemon for `chant list` / `chant list --ready` in daemon mode (×bare),
    `list --ready` next to `hello` on one connection, write -> visible in `list --ready`
    (while the daemon's periodic saves run) and the steady RSS."""
    n, root = res["n"], res["root"]
    quick = bool(getattr(args, "quick", False))
    env = dict(env)
    for name in ("CHANT_DAEMON", "CHANT_DAEMON_SOCKET", "CHANT_API_TOKEN"):
        env.pop(name, None)
    fast, _slow = repeats(n, args.repeat)
    samples = 10 if quick else 100
    seconds = 0.5 if quick else 3.0
    sc: dict = {"errors": [], "plan": {"rounds": fast, "samples": samples}, "rss": {}, "starts": {}, "rtt": {},
                "watch_list": {}, "journal": {}}
    cli = {key: Measure(key) for key in ("list", "list_all")}
    sc["cli"] = cli
    local_bare = Measure("bare")
    sc["bare_local"] = local_bare
    stop_stray(chant, root, env, log)
    restore_leftovers(root, log)

    bare = BareStart(python, root, env, baseline, local_bare)

    # 1. a cold start: the table and the index built from the files; its VmHWM is the build's peak
    log(f"[{n}] scale: cold start")
    shutil.rmtree(os.path.join(root, ".chant", ".index"), ignore_errors=True)
    daemon = Daemon(python, chant, root, env)
    try:
        t_hello, t_ready = daemon.start()
        sc["starts"]["cold"] = t_ready
        sc["rss"]["cold"] = daemon.rss()
    except (StartFailed, OSError) as exc:
        sc["errors"].append(f"cold start: {exc}")
    finally:
        daemon.stop()
    # 2. the steady state: one warm daemon for everything else
    daemon = Daemon(python, chant, root, env)
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
            listed = list(listed_ids(c.call(*request)))
            sc["specs"], sc["ready"] = status.get("specs"), len(listed)
            sc["listed"] = len(list(listed_ids(c.call(*cli_request(["list", "--count"])))))
        time.sleep(0.5)
        sc["rss"]["start"] = daemon.rss()

        log(f"[{n}] scale: daemon-mode `chant list` / `chant list --ready` x{fast}")
        for argv in (["list", "--ready"], ["list"]):  # warm-up
            run([chant, *argv], cwd=root, timeout=SLOW_TIMEOUT, env=env)
        for _ in range(fast):
            bare()
            for key, argv in (("list", ["list", "--ready"]), ("list_all", ["list"])):
                cli[key].attempts += 1
                r = run([chant, *argv], cwd=root, timeout=SLOW_TIMEOUT, env=env)
                if r.ok((0, 5)):
                    cli[key].add(r.wall, bare.last)
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
        edit_id = listed[-1] if listed else None
        before, t0 = _journal_bytes(root), time.monotonic()
        record_series(sc, "watch_list", "watch latency (list)", lambda: watch_latency(root, edit_id, samples, log, via="list"))
        sc["journal"] = {"seconds": time.monotonic() - t0, "grew": _journal_bytes(root) - before}
        log(f"[{n}] scale: write -> visible in `search` x{samples} new + x{samples} edits")
        # the same writes seen through a small answer: what the daemon's own part costs
        record_series(sc, "watch_search", "watch latency (search)",
                lambda: watch_latency(root, edit_id, samples, log, via="search"))
        time.sleep(0.5)
        sc["rss"]["steady"] = daemon.rss()
        if not daemon.alive():
            sc["errors"].append(f"the daemon died during the benchmarks: {daemon.log_line()}")
    except (DaemonUnavailable, ChantError, DaemonGone, OSError) as exc:
        sc["errors"].append(f"scale measurements: {type(exc).__name__}: {exc}")
    finally:
        log(f"[{n}] scale: stop")
        daemon.stop()
        if daemon.alive():
            sc["errors"].append(f"the daemon (PID {daemon.pid}) could not be stopped")
    return sc
