"""The daemon's service: one long-lived Workspace and the one way requests reach it.

Every transport (socket, HTTP) turns a request into ``await service.call(cmd, params,
transport)``, which runs :func:`chantlib.ops.dispatch` on the workspace and returns the wire
envelope ``{"ok": true, "result": ...}`` / ``{"ok": false, "error": {...}}``. No business rule
lives here: this module only serialises access (an asyncio lock), moves slow operations off
the event loop (one worker thread, so operations still run one at a time), applies file
events, and counts what the metrics report.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from chantlib.errors import BadRequest, ChantError, error_envelope
from chantlib.ops import OPS, dispatch

log = logging.getLogger("chantd")

#: operations answered on the event loop itself: they take microseconds, and the round trip
#: of a lock or a claim is what workers wait on. Everything else runs on the worker thread.
INLINE = frozenset(
    {"hello", "lock_acquire", "lock_release", "lock_renew", "lock_status", "lock_list", "queue_next", "queue_claim",
     "daemon_status"}
)
#: operations that take an owner: when a request does not name one, the transport's
#: identity of the peer is used (the socket's peer credentials, the HTTP client's address)
OWNED = frozenset(name for name, op in OPS.items() if any(p.name == "owner" for p in op.params))


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return _dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Service:
    """What the transports share: the workspace, its lock, the worker thread, the counters."""

    def __init__(self, workspace, metrics=None, *, clock=time.time) -> None:
        self.ws = workspace
        self.metrics = metrics
        self.clock = clock
        self.started = clock()
        self.info: dict = {}  # pid, socket, api, metrics: filled in by the server
        self.ready = False
        self._lock: asyncio.Lock | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chantd-op")
        self._ready_since: dict[str, float] = {}
        workspace.service = self.status

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    # requests

    async def call(self, cmd, params: dict, transport: str, peer_owner: str | None = None) -> dict:
        """Run one request; always returns an envelope, never raises (but CancelledError)."""
        started = time.perf_counter()
        name = cmd if isinstance(cmd, str) and cmd in OPS else "unknown"
        try:
            if not isinstance(cmd, str) or not cmd:
                raise BadRequest("a request is a JSON object with a string 'cmd'")
            if cmd in OWNED and params.get("owner") in (None, "") and peer_owner:
                params = dict(params, owner=peer_owner)
            async with self.lock:
                if cmd in INLINE:
                    result = dispatch(self.ws, cmd, params)
                else:
                    loop = asyncio.get_running_loop()
                    result = await loop.run_in_executor(self._executor, dispatch, self.ws, cmd, params)
                self._after(cmd, result)
            envelope = {"ok": True, "result": result}
        except ChantError as exc:
            envelope = {"ok": False, "error": exc.to_dict()}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: answer, log, live on
            log.exception("internal error in %s", name)
            envelope = {"ok": False, "error": error_envelope(exc)}
        if self.metrics is not None:
            self.metrics.observe_request(transport, name, time.perf_counter() - started)
        return envelope

    def _after(self, cmd: str, result) -> None:
        """Counters that need to see a result (called with the lock held)."""
        m = self.metrics
        if m is None:
            return
        now = self.clock()
        if cmd in ("search", "query"):
            m.index_queries.inc()
        elif cmd == "queue_claim":
            spec_id = result["spec"]["id"]
            since = self._ready_since.pop(spec_id, None)
            m.queue_wait.observe(max(0.0, now - since) if since is not None else 0.0)
        elif cmd == "complete":
            m.completions.labels(result=result.get("outcome", "success")).inc()
            released = result.get("released") or {}
            began = _epoch(released.get("acquired_at"))
            if began is not None:
                m.spec_duration.observe(max(0.0, now - began))

    # the file watcher's side

    def apply(self, relpaths: list[str] | None, config_changed: bool = False) -> int:
        """Bring the table and index in step with changed files (``None``: walk everything).

        Runs on the worker thread with the lock held. Returns the documents written.
        """
        ws = self.ws
        if config_changed:
            ws.table.extra.pop("config", None)
            ws._config = None
        changes = ws.table.refresh(save=False) if relpaths is None else ws.table.refresh_paths(relpaths)
        written = ws.index.sync(changes.parsed)
        self.track_ready()
        ws.flush()
        if written and self.metrics is not None:
            self.metrics.index_updates.inc(written)
        return written

    async def apply_async(self, relpaths: list[str] | None, config_changed: bool = False) -> int:
        async with self.lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self.apply, relpaths, config_changed)

    def track_ready(self) -> None:
        """Remember since when each queued spec has been ready (for chant_queue_wait_seconds)."""
        now = self.clock()
        ready = self.ws.table.graph.ready_set
        since = self._ready_since
        for spec_id in [s for s in since if s not in ready]:
            del since[spec_id]
        for spec_id in ready:
            since.setdefault(spec_id, now)

    async def sweep(self) -> int:
        """Drop expired leases (each counts as an expiration)."""
        async with self.lock:
            return len(self.ws.locks.sweep())

    # status

    def status(self) -> dict:
        """What ``chant daemon status`` prints (called through the daemon_status operation)."""
        ws = self.ws
        try:
            documents = ws.index.searcher().num_docs
        except ChantError:
            documents = None
        return {
            "pid": os.getpid(),
            "version": ws.hello()["version"],
            "protocol": ws.hello()["protocol"],
            "root": ws.root,
            "started_at": self.started,
            "uptime_seconds": round(self.clock() - self.started, 3),
            "specs_indexed": documents,
            "specs": len(ws.table.rows),
            "active_locks": len(ws.locks.leases()),
            "queue_depth": len(ws.queue.items()),
            "socket": self.info.get("socket"),
            "api": self.info.get("api"),
            "metrics": self.info.get("metrics"),
            "watch": self.info.get("watch"),
        }
