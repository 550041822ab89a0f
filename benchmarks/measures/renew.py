"""Leases during long work: ``lock_renew`` round trips over the socket, idle and while the
daemon rebuilds its index (issue 8: a worker renews its lease while it works, and a lease
must not wait behind a search, a lint or a 16 s rebuild, or it expires while its holder
lives).

One persistent connection renews one lease (``lock_renew`` by token) in a loop, first for a
few seconds with nothing else running, then (after one rebuild alone, to time it) while a
second connection's ``index_rebuild``
(the request `chant index rebuild` sends the daemon) runs: a renewal counts as "during" when
it was sent after the rebuild's request and before its answer. The lease is released at the
end, whatever happened.
"""

from __future__ import annotations

import contextlib
import threading
import time

from chantlib.client import DaemonClient, DaemonGone, DaemonUnavailable
from chantlib.errors import ChantError

from ..runner import Daemon, StartFailed, stop_stray
from ..settings import SLOW_TIMEOUT
from .watch import restore_leftovers

OWNER = "bench-renew"
TTL = 3600  # seconds: the lease outlives the longest rebuild measured
RENEW_TARGET_P99 = 0.050  # seconds, during a rebuild at 50,000 specs (issue 8)
TARGET_SIZE = 50000


class _Rebuild(threading.Thread):
    """``index_rebuild`` on a connection of its own: when it was sent, when it was answered."""

    def __init__(self, root: str) -> None:
        super().__init__(name="bench-rebuild", daemon=True)
        self.root = root
        self.sent: float | None = None
        self.done: float | None = None
        self.result: dict | None = None
        self.error: str | None = None
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            with DaemonClient.connect(self.root, timeout=SLOW_TIMEOUT) as client:
                self.connected.set()
                self.sent = time.perf_counter()
                self.result = client.call("index_rebuild", {})
                self.done = time.perf_counter()
        except (ChantError, DaemonGone, DaemonUnavailable, OSError, ValueError) as exc:
            self.error = f"index_rebuild: {type(exc).__name__}: {exc}"
        finally:
            self.connected.set()


def measure_renew(root: str, seconds: float, log) -> dict:
    """``{"idle": [seconds...], "busy": [...], "rebuild": {...}, "errors": [...]}`` on the
    running daemon of ``root``."""
    out: dict = {"idle": [], "busy": [], "rebuild": None, "errors": [], "spec": None}
    try:
        client = DaemonClient.connect(root, timeout=SLOW_TIMEOUT)  # a renewal may wait for the whole rebuild
    except (DaemonUnavailable, OSError) as exc:
        out["errors"].append(f"connect: {exc}")
        return out
    with client:
        try:
            ready = client.call("list", {"ready": True, "fields": ["id"]})["specs"]
            if not ready:
                out["errors"].append("no ready spec to lease")
                return out
            spec = out["spec"] = ready[0]["id"]
            with contextlib.suppress(ChantError):  # a lease left by an interrupted run
                client.call("lock_release", {"spec": spec, "force": True})
            token = client.call("lock_acquire", {"spec": spec, "owner": OWNER, "ttl": TTL})["token"]
        except (ChantError, DaemonGone, OSError) as exc:
            out["errors"].append(f"taking a lease: {type(exc).__name__}: {exc}")
            return out
        params = {"spec": spec, "owner": OWNER, "token": token, "ttl": TTL}
        try:
            for _ in range(50):  # warm-up, not measured
                client.call("lock_renew", params)
            log(f"    lock_renew idle for {seconds:g}s")
            idle = out["idle"]
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                client.call("lock_renew", params)
                idle.append(time.perf_counter() - t0)
            log("    `index rebuild` alone")
            alone = _Rebuild(root)
            alone.start()
            alone.join(SLOW_TIMEOUT)
            if alone.error:
                out["errors"].append(alone.error)
            elif alone.sent is not None and alone.done is not None:
                out["rebuild_alone"] = alone.done - alone.sent
            log("    lock_renew while `index rebuild` runs")
            rebuild = _Rebuild(root)
            rebuild.start()
            rebuild.connected.wait(60.0)
            sent: list[tuple[float, float]] = []
            while rebuild.is_alive():
                t0 = time.perf_counter()
                client.call("lock_renew", params)
                sent.append((t0, time.perf_counter() - t0))
            rebuild.join(SLOW_TIMEOUT)
            if rebuild.error:
                out["errors"].append(rebuild.error)
            elif rebuild.sent is not None and rebuild.done is not None:
                out["busy"] = [took for t0, took in sent if rebuild.sent <= t0 < rebuild.done]
                out["rebuild"] = {"seconds": rebuild.done - rebuild.sent,
                                  "documents": (rebuild.result or {}).get("documents")}
        except (ChantError, DaemonGone, OSError) as exc:
            out["errors"].append(f"lock_renew: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(ChantError, DaemonGone, OSError):
                client.call("lock_release", {"spec": spec, "owner": OWNER, "token": token})
    return out


def renew_bench(res: dict, args, chant: str, python: str, env: dict, log) -> dict:
    """``--renew``: a daemon of its own on the repository of ``res``, started, measured
    (:func:`measure_renew`) and stopped."""
    n, root = res["n"], res["root"]
    env = dict(env)
    for name in ("CHANT_DAEMON", "CHANT_DAEMON_SOCKET", "CHANT_API_TOKEN"):
        env.pop(name, None)
    stop_stray(chant, root, env, log)
    restore_leftovers(root, log)
    seconds = 0.5 if getattr(args, "quick", False) else 2.0
    daemon = Daemon(python, chant, root, env)
    try:
        log(f"[{n}] renew: start")
        try:
            daemon.start()
        except (StartFailed, OSError) as exc:
            return {"idle": [], "busy": [], "rebuild": None, "errors": [f"the daemon did not start: {exc}"]}
        return measure_renew(root, seconds, log)
    finally:
        log(f"[{n}] renew: stop")
        daemon.stop()
