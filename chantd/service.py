"""The daemon's service: one long-lived Workspace and the one way requests reach it.

Every transport (socket, HTTP) turns a request into ``await service.call(cmd, params,
transport)``, which runs :func:`chantlib.ops.dispatch` on the workspace and returns the wire
envelope ``{"ok": true, "result": ...}`` / ``{"ok": false, "error": {...}}``. No business rule
lives here: this module schedules operations by their declared effects (see
:meth:`Service.call`: fast ones on the event loop under a table lock that nothing long
holds, slow ones one at a time on a worker thread), applies file events, and counts what
the metrics report.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import functools
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from chantlib._version import PROTOCOL_VERSION, VERSION
from chantlib.errors import BadRequest, ChantError, Loading, NothingReady, Unavailable, error_envelope
from chantlib.ops import OPS, dispatch, dispatch_json, lookup, prepare

log = logging.getLogger("chantd")

#: how long a request about specs waits for the load before it is refused with ``loading``
#: (the CLI waits on ``hello`` instead, as long as the load makes progress)
LOAD_WAIT = 5.0
#: a waiting claim looks again at least this often, whatever it is told (a safety net: the
#: workspace's events and the next lease expiry wake it first)
WAIT_RECHECK = 5.0
CACHE_BYTES = 64 << 20  # cached answers: at most this much of them
KEPT_ANSWERS = 2  # list answers made again as soon as the specs change (see Service._answer_early)


def dump_json(value) -> str:
    # ASCII out: any text stays encodable; never NaN or Infinity, which are not JSON
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


#: requests are flat objects; anything nested deeper than this is refused before it is used
MAX_DEPTH = 32


def _not_json(name: str):
    raise ValueError(f"{name} is not a JSON value")


def load_request(raw: bytes | str, what: str = "the request"):
    """Decode a request's JSON (a socket line, an HTTP body) for the transports; every way
    it can be wrong is a :class:`BadRequest` (a 4xx answer, never an internal error):
    not JSON, NaN or Infinity, nested too deeply, or text that is not Unicode (a lone
    surrogate escape such as ``\\ud800``)."""
    try:
        value = json.loads(raw, parse_constant=_not_json)
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{what} is not JSON: {exc}") from None
    stack = [(value, 1)]
    while stack:  # iterative: a deep document must not cost a deep stack here either
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values()) + list(item.keys())
        elif isinstance(item, list):
            children = item
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequest(f"{what} holds a lone surrogate (\\ud800-\\udfff): not Unicode text") from None
            continue
        else:
            continue
        if depth > MAX_DEPTH:
            raise BadRequest(f"{what} is nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)
    return value


class _Encoded(bytes):
    """A result already encoded as JSON (see ``Service.call(encoded=True)``)."""


def _dispatch_encoded(ws, cmd, params) -> _Encoded:
    return _Encoded(dispatch_json(ws, cmd, params).encode("ascii"))


def encode_answer(answer: dict, request_id=None) -> bytes:
    """An envelope as one line of the wire protocol (an ``id`` echoed when given)."""
    if request_id is not None:
        answer = dict(answer, id=request_id)
    try:
        text = dump_json(answer)
    except (TypeError, ValueError) as exc:  # a result that is not JSON: a bug, still answered
        text = dump_json({"ok": False, "error": error_envelope(exc), "id": request_id})
    return text.encode("utf-8") + b"\n"


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return _dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Service:
    """What the transports share: the workspace, its lock, the worker thread, the counters."""

    def __init__(self, workspace, metrics=None, *, clock=time.time, max_wait: float | None = None) -> None:
        self.ws = workspace
        #: the longest a long poll is held (``scale.daemon.max_wait``; ``None``: what it asks)
        self.max_wait = max_wait
        self.metrics = metrics
        self.clock = clock
        self.started = clock()
        #: what the daemon serves (socket, api, metrics, watch), for daemon_status: see describe()
        self.info: dict = {}
        #: name -> callable: more of daemon_status, from the parts that follow git and validate
        self.sections: dict = {}
        self.ready = False  # serving: loaded, and the watcher runs (/readyz)
        #: the specs are loaded (table and index): until then nothing about them is answered
        self.loaded = False
        self._loaded_event: asyncio.Event | None = None
        #: what the workspace is busy with (an operation or "loading"), for daemon_status
        self.activity: str | None = None
        #: (phase, done, total) of the long work under way, set from the worker thread
        self.progress: tuple[str, int, int] | None = None
        self._figures: dict = {}  # daemon_status's last figures, shown while the workspace is busy
        self._lock: asyncio.Lock | None = None
        self._worker_lock: asyncio.Lock | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chantd-op")
        self._indexing: asyncio.Task | None = None  # the index's catch-up after writes (_index_soon)
        if workspace.long_lived:
            workspace.defer_index = True
        #: since when each ready spec has waited in the queue (``None``: claimed since),
        #: kept from the workspace's events (for chant_queue_wait_seconds)
        self._ready_since: dict[str, float | None] = {}
        self._seeded = False  # the ready set at the load taken in (see _seed_ready)
        self._cache: dict[tuple, bytes] = {}  # encoded results of reads, until something changes
        self._cache_bytes = 0
        self._cache_epoch = 0  # bumped whenever the cache is emptied
        #: long polls (``Op.waits``): how many wait now, what wakes them (set and replaced on
        #: every change that could end a wait), and the subscription that tells of those
        #: changes, leases included, held only while someone waits
        self._waiters = 0
        self._changed: asyncio.Event | None = None
        self._unwatch = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False  # set by end_waits: the daemon is on its way out
        #: the list requests asked since the last batch of file events (the last few): made
        #: again as soon as the next batch is in the table (see apply), not when next asked
        self._kept: dict[tuple, tuple[str, dict]] = {}
        self._early: dict[tuple, asyncio.Future] = {}  # those a batch is making now: done when made
        workspace.service = self.status
        workspace.progress = self._on_progress
        workspace.subscribe(self._on_event, leases=False)  # readiness only: leases cost nothing extra
        if workspace.long_lived:  # a short-lived one (`daemon request --in-process`) answers them
            for text in workspace.warnings:  # about the daemon's workspace, not one request: the log
                log.warning("%s", text)

    @property
    def lock(self) -> asyncio.Lock:
        """The table lock: held while the specs change (a write's short step, a batch of
        file events); the fast operations take it, and nothing long holds it."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    @property
    def worker_lock(self) -> asyncio.Lock:
        """The worker thread's turn (see :meth:`turn`)."""
        if self._worker_lock is None:
            self._worker_lock = asyncio.Lock()
        return self._worker_lock

    def describe(self, **facts) -> None:
        """Record what the daemon serves, as ``daemon_status`` shows it: ``socket`` (its
        path), ``api`` and ``metrics`` (URLs), ``watch`` (``inotify`` or ``poll``, set once
        the daemon is fully started; the watcher sets ``poll`` when it falls back to it)."""
        self.info.update(facts)

    def close(self) -> None:
        """The last step: the worker thread finished (an operation still on it ends first),
        then the workspace closed: saved in full, its index writer and its own lease table
        let go (see :meth:`chantlib.Workspace.close`)."""
        self._executor.shutdown(wait=True)
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - on the way out: log, never mask the exit
            log.exception("closing the workspace (its last save, the index writer, the leases) failed")
        self.log_warnings()  # the last save of the table, on the way out

    def log_warnings(self) -> None:
        """Warnings that arose outside a request (the watcher's refresh, a periodic save) go
        to the log: no answer is theirs. A request's own come back in its answer."""
        for text in self.ws.take_warnings():
            log.warning("%s", text)

    # loading

    def _on_progress(self, phase: str, done: int, total: int) -> None:
        self.progress = (phase, done, total)  # one assignment: safe to read from the loop

    def loading(self) -> dict:
        """How far the long work under way is: ``{"phase", "done", "total"}``."""
        phase, done, total = self.progress or ("starting", 0, 0)
        return {"phase": phase, "done": done, "total": total}

    def _loaded_waiter(self) -> asyncio.Event:
        if self._loaded_event is None:
            self._loaded_event = asyncio.Event()
            if self.loaded:
                self._loaded_event.set()
        return self._loaded_event

    def mark_loaded(self) -> None:
        """The table and index are in step with the files: requests about specs may run."""
        self.loaded = True
        self.progress = None
        self._loaded_waiter().set()

    async def _wait_loaded(self, cmd: str) -> None:
        if self.loaded:
            return
        try:
            await asyncio.wait_for(self._loaded_waiter().wait(), LOAD_WAIT)
        except TimeoutError:
            state = self.loading()
            raise Loading(
                f"the daemon is still loading the specs ({_progress_words(state)}); {cmd} was not run: try again",
                loading=state,
            ) from None

    # requests

    def _cache_key(self, cmd, params: dict):
        op = OPS.get(cmd) if isinstance(cmd, str) else None
        if op is None or not op.pure:  # only answers that depend on the files alone are kept
            return None
        try:
            return (cmd, json.dumps(params, sort_keys=True), self.ws.table.generation)
        except (TypeError, ValueError):
            return None

    async def call_encoded(self, cmd, params: dict, transport: str, peer_owner: str | None, request_id,
                           gone=None) -> bytes:
        """The answer line, encoded: from the cache when the same read was answered before."""
        started = time.perf_counter()
        key = self._cache_key(cmd, params)
        raw = self._cache.get(key) if key is not None else None
        if key is not None and key[:2] in self._early:
            # a batch of file events is making this answer before its index commit: wait for
            # that, not for the batch (see _answer_early), nor answer from before the batch
            # (what the cache holds until the batch's step has changed the table)
            await asyncio.shield(self._early[key[:2]])
            key = self._cache_key(cmd, params)
            raw = self._cache.get(key)
        if raw is not None:
            if isinstance(raw, _Encoded) and OPS[cmd].encoded is not None:
                self._keep(key[:2], cmd, params)  # asked again: made again after the next change
            if self.metrics is not None:
                self.metrics.observe_request(transport, cmd, time.perf_counter() - started)
                if cmd in ("search", "query"):
                    self.metrics.index_queries.inc()  # answered, if from the cache
        else:
            epoch = self._cache_epoch
            envelope = await self.call(cmd, params, transport, peer_owner, encoded=True, gone=gone)
            if not envelope.get("ok"):
                return encode_answer(envelope, request_id)
            result = envelope["result"]
            raw = result if isinstance(result, _Encoded) else dump_json(result).encode("utf-8")
            # kept only if nothing changed while it was computed (a write or a file event
            # between our turn at the lock and now would make it stale)
            if key is not None and epoch == self._cache_epoch:
                self._remember(key, raw)
                if isinstance(raw, _Encoded) and OPS[cmd].encoded is not None:
                    self._keep(key[:2], cmd, params)
        tail = b"}\n" if request_id is None else b',"id":' + dump_json(request_id).encode("utf-8") + b"}\n"
        return b'{"ok":true,"result":' + raw + tail

    def _keep(self, request: tuple, cmd: str, params: dict) -> None:
        kept = self._kept
        kept.pop(request, None)
        kept[request] = (cmd, params)
        while len(kept) > KEPT_ANSWERS:
            kept.pop(next(iter(kept)))

    def _answer_early(self, loop, kept: dict) -> None:
        """Between a batch's table step and its index commit (on the worker thread, the lock
        held): make the ``kept`` list answers again, for the loop to send from the cache
        while the index commits (tantivy lets the interpreter go meanwhile). A poll of `list
        --ready` then waits for neither the commit nor its own answer's making."""
        epoch = self._cache_epoch
        generation = self.ws.table.generation
        for request, (cmd, params) in reversed(kept.items()):  # the latest asked first
            raw = None
            try:
                raw = _dispatch_encoded(self.ws, cmd, params)
            except Exception:  # noqa: BLE001 - an answer made early, never a failed batch
                log.exception("making the answer of %s %s early failed", cmd, params)
            if self.ws.last_run_warnings:  # the batch's own (a file that could not be read): the log's
                for text in self.ws.last_run_warnings:
                    log.warning("%s", text)
                raw = None
            loop.call_soon_threadsafe(self._remember_early, epoch, request, generation, raw)

    def _remember_early(self, epoch: int, request: tuple, generation: int, raw: bytes | None) -> None:
        key = (*request, generation)
        if raw is not None and epoch == self._cache_epoch and key not in self._cache:
            self._remember(key, raw)
        waiting = self._early.get(request)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def _forget(self) -> None:
        self._cache.clear()
        self._cache_bytes = 0
        self._cache_epoch += 1

    def _remember(self, key, raw: bytes) -> None:
        # bounded in bytes too: a `list` of every spec is 11 MB at 200,000 specs
        if len(self._cache) >= 64 or self._cache_bytes + len(raw) > CACHE_BYTES:
            self._cache.clear()
            self._cache_bytes = 0
        self._cache[key] = raw
        self._cache_bytes += len(raw)

    async def call(self, cmd, params: dict, transport: str, peer_owner: str | None = None, *,
                   encoded: bool = False, gone=None) -> dict:
        """Run one request; always returns an envelope, never raises (but CancelledError).

        ``encoded``: the result of a pure read comes as its JSON bytes (an ``_Encoded``),
        made on the worker thread with the operation, not on the event loop afterwards.
        ``gone``: a callable telling whether the client has left (a long poll that wins work
        for a client gone gives it back, see :meth:`_wait_for`).

        Scheduling follows the operation's declared effects (:class:`chantlib.ops.Op`):
        ``anytime`` ones are answered at once; the others wait for the load. A fast one
        (leases, the queue) runs on the event loop under the table lock, which only the short
        step of a change to the specs holds. A slow one takes its turn on the worker thread
        (one at a time), a read without the table lock, a change to the specs with it, and a
        change with a ``prepare`` step does its long part first, without it. So a lease is
        renewed while a search, a lint or a rebuild runs.
        """
        started = time.perf_counter()
        op = OPS.get(cmd) if isinstance(cmd, str) else None
        name = cmd if op is not None else "unknown"
        try:
            if not isinstance(cmd, str) or not cmd:
                raise BadRequest("a request is a JSON object with a string 'cmd'")
            if op is None:
                op = lookup(cmd)  # raises the one error of an unknown command
            if op.owned and params.get("owner") in (None, "") and peer_owner:
                params = dict(params, owner=peer_owner)
            if op.anytime:
                result = self._answer_always(cmd, params)
            else:
                await self._wait_loaded(cmd)  # never an answer about specs before they are loaded
                wait = op.bind(params)[op.waits] if op.waits is not None else None
                if wait and self.max_wait is not None:
                    wait = min(wait, self.max_wait)
                if wait:
                    result = await self._wait_for(op, dict(params, **{op.waits: 0}), wait, gone)
                elif not op.slow:
                    async with self.lock:
                        if op.specs == "write":
                            self._forget()  # nothing cached survives a change to the specs
                        result = dispatch(self.ws, cmd, params)
                        self.log_warnings()
                        self._after(cmd, result)
                else:
                    result = await self._on_worker(op, params, encoded)
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

    async def _wait_for(self, op, params: dict, wait: float, gone):
        """A long poll (``Op.waits``; ``params`` carry no wait): the operation is run on the
        loop under the table lock like any fast one, and while it finds nothing ready, the
        next change that could let it succeed is awaited with no lock held, up to ``wait``
        seconds in all, so no other request and no lease renewal waits behind it. Then
        :class:`NothingReady`, as without a wait. What wakes it: the workspace's events (a
        spec ready, added or changed, a lease released or expired), and the next expiry of a
        live lease (an expired lease is freed only when someone takes it or the sweep runs)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        cmd = op.name
        self._watch(loop)
        try:
            while True:
                assert self._changed is not None  # made by _watch
                if self._stopping:
                    raise Unavailable(f"the daemon is stopping: `{cmd}` waited and was not done; send it again "
                                      "once the daemon is back", stopping=True)
                if gone is not None and gone():
                    raise NothingReady("the client left while its claim waited")
                changed = self._changed  # taken before the attempt: a change during it wakes the wait
                async with self.lock:
                    try:
                        result = dispatch(self.ws, cmd, params)
                    except NothingReady:
                        result = None
                        if loop.time() >= deadline or (gone is not None and gone()):
                            raise
                    finally:
                        self.log_warnings()
                    if result is not None:
                        if gone is not None and gone():
                            self._give_back(result)
                            raise NothingReady("the client left before its claim was answered")
                        self._after(cmd, result)
                        return result
                timeout = min(deadline - loop.time(), self._next_expiry(), WAIT_RECHECK)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), max(0.0, timeout))
        finally:
            self._unwait()

    async def end_waits(self, patience: float = 1.0) -> None:
        """The daemon is stopping: every long poll is answered at once, ``unavailable`` with
        ``details.stopping`` (nothing was done: a client may send it again, a worker backs off
        and does), and none begins waiting. Returns once they have answered (or after
        ``patience`` seconds), before the servers close their connections, so that each
        answer is written: neither a socket client told the daemon left mid-request nor an
        HTTP one held until uvicorn's graceful timeout cancels its request."""
        self._stopping = True
        self._wake()
        deadline = time.monotonic() + patience
        while self._waiters and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)  # the handlers whose waits just ended write their answers

    def _give_back(self, result: dict) -> None:
        """A claim won for a client that has gone: its lease is released at once (by its
        token), so the spec is not held for a whole TTL by nobody."""
        lease = result.get("lease") or {}
        if lease.get("spec") and lease.get("token") is not None:
            with contextlib.suppress(ChantError):
                dispatch(self.ws, "lock_release", {"spec": lease["spec"], "token": lease["token"]})

    def _next_expiry(self) -> float:
        """Seconds until the soonest live lease expires (a little after), or a long time."""
        leases = self.ws.locks.leases()
        if not leases:
            return WAIT_RECHECK
        return max(0.05, min(lease.expires_at for lease in leases) - self.ws.locks.clock() + 0.05)

    def _watch(self, loop) -> None:
        self._waiters += 1
        if self._changed is None:
            self._changed = asyncio.Event()
        if self._unwatch is None:
            self._loop = loop
            self._unwatch = self.ws.subscribe(self._on_change)  # leases too: a release frees work

    def _unwait(self) -> None:
        self._waiters -= 1
        if self._waiters == 0 and self._unwatch is not None:
            unwatch, self._unwatch = self._unwatch, None
            unwatch()  # nobody waits: lease operations cost what they did

    def _on_change(self, event) -> None:
        """From any thread (the worker thread's file batches, the loop's lease changes)."""
        if event.ready or event.added or event.modified or event.released or event.expired:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = asyncio.Event()
            changed.set()  # every wait taken before now looks again

    async def _on_worker(self, op, params: dict, encoded: bool):
        """A slow operation, in its turn on the worker thread (see :meth:`call`)."""
        ws = self.ws
        cmd = op.name

        def run(prepared=None):
            if encoded and op.pure:
                result = _dispatch_encoded(ws, cmd, params)
            else:
                result = dispatch(ws, cmd, params, prepared=prepared)
            return result, ws.last_run_warnings  # this thread's, read in it

        async with self.turn(cmd):
            try:
                if op.specs != "write":
                    result, run_warnings = await self.in_worker(run)
                else:
                    prepared = None
                    if op.prepare is not None:
                        prepared = await self.in_worker(prepare, ws, cmd, params)
                    try:
                        async with self.lock:
                            self._forget()
                            result, run_warnings = await self.in_worker(run, prepared)
                    finally:  # a prepared step never run (a stop meanwhile) leaves nothing behind
                        discard = getattr(prepared, "discard", None)
                        if discard is not None:
                            discard()
                    if ws.index_behind:
                        self._index_soon()
            finally:
                self.progress = None
                self.log_warnings()  # what a failed request leaves (a success took its own)
            if run_warnings:
                # an answer with a warning of this run only: not one to repeat from the cache
                self._cache_epoch += 1
            self._after(cmd, result)
        return result

    def _index_soon(self) -> None:
        """The index takes the writes of operations (``Workspace.defer_index``) in one commit,
        in a turn of its own on the worker thread, without the table lock: a tantivy commit
        (~25 ms) then never holds up a claim or a renewal, and many writes share it."""
        if self._indexing is None or self._indexing.done():
            self._indexing = asyncio.get_running_loop().create_task(self._sync_index())

    async def _sync_index(self) -> None:
        try:
            async with self.turn("indexing"):
                if self.ws.index_behind:
                    written = await self.in_worker(self.ws.sync_index)
                    if written and self.metrics is not None:
                        self.metrics.index_updates.inc(written)
        except asyncio.CancelledError:
            raise
        except Exception:  # the next search or write syncs it again
            log.exception("bringing the index in step with the writes failed")
        finally:
            self.log_warnings()

    def turn(self, activity: str):
        """The worker thread's turn, for ``activity`` (shown by daemon_status meanwhile)."""
        return _Turn(self, activity)

    async def in_worker(self, fn, *args):
        """``fn(*args)`` on the worker thread. Cancelling the caller does not end the work,
        so the caller waits for it even then: no lock is let go while it still runs."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, fn, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await future
            raise

    def _answer_always(self, cmd: str, params: dict):
        """``hello`` and ``daemon_status``: on the loop, without the lock, whatever the
        workspace is doing (they read nothing it is changing)."""
        result = dispatch(self.ws, cmd, params)
        if cmd == "hello":
            result = dict(result, loaded=self.loaded, pid=os.getpid())
            if not self.loaded:
                result["loading"] = self.loading()
        return result

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
            since = self._ready_since.get(spec_id)
            if spec_id in self._ready_since:
                self._ready_since[spec_id] = None  # still ready, no longer waiting
            m.queue_wait.observe(max(0.0, now - since) if since is not None else 0.0)
        elif cmd == "lock_release":
            spec_id = result.get("spec")
            # let go unfinished, and still ready: queued again from now
            if spec_id in self._ready_since and self._ready_since[spec_id] is None:
                self._ready_since[spec_id] = now
        elif cmd == "complete":
            m.completions.labels(result=result.get("outcome", "success")).inc()
            released = result.get("released") or {}
            began = _epoch(released.get("acquired_at"))
            if began is not None:
                m.spec_duration.observe(max(0.0, now - began))

    # the file watcher's side

    def apply(self, relpaths: list[str] | None, config_changed: bool = False, loop=None, kept=None) -> int:
        """Bring the table and index in step with changed files (``None``: walk everything).

        Runs on the worker thread with the lock held. Returns the documents written.
        ``kept``: list requests whose answers are made once the table is in step and handed
        to ``loop``, the event loop, before the index commits (see :meth:`_answer_early`).
        """
        self._forget()
        early = functools.partial(self._answer_early, loop, kept) if loop is not None and kept else None
        try:
            # None: a full walk (start, folders moved); readiness comes as an event (_on_event)
            written = self.ws.apply_changes(relpaths, config_changed, between=early).documents
        finally:
            self.log_warnings()
        if relpaths is None and not self._seeded:
            self._seed_ready()
        # the table and index state are saved by persist(), every few seconds and at the end
        if written and self.metrics is not None:
            self.metrics.index_updates.inc(written)
        return written

    async def apply_async(self, relpaths: list[str] | None, config_changed: bool = False) -> int:
        async with self.turn("loading" if not self.loaded else "applying file changes"), self.lock:
            loop = asyncio.get_running_loop()
            kept: dict = {}
            if relpaths is not None and self.loaded:
                # those asked since the last batch: one nobody asked again is let go
                kept, self._kept = self._kept, {}
            self._early = {request: loop.create_future() for request in kept}
            try:
                written = await self.in_worker(self.apply, relpaths, config_changed, loop, kept)
            finally:
                early, self._early = self._early, {}
                for waiting in early.values():
                    if not waiting.done():
                        waiting.set_result(None)
        if self.ws.index_behind:
            self._index_soon()  # the index commits after, without the table lock
        return written

    async def load(self) -> None:
        """Bring the table and index in step with every file, then let requests in."""
        await self.apply_async(None)
        self.mark_loaded()

    def _on_event(self, event) -> None:
        """Follow the ready set for chant_queue_wait_seconds: the workspace tells which specs
        became ready or stopped being, so a file event costs what it changed."""
        now = self.clock()
        since = self._ready_since
        for spec_id in event.unready:
            since.pop(spec_id, None)
        for spec_id in event.ready:
            since.setdefault(spec_id, now)

    def _seed_ready(self) -> None:
        """The specs ready once the first load is done wait from now: events count from the
        table as it was saved, so a spec ready then and still ready is told of by none."""
        self._seeded = True
        now = self.clock()
        for spec in self.ws.list_specs(status="ready", fields=["id"])["specs"]:
            self._ready_since.setdefault(spec["id"], now)
        for text in self.ws.last_run_warnings:
            log.warning("%s", text)

    async def sweep(self) -> int:
        """Drop expired leases (each counts as an expiration)."""
        async with self.lock:
            return len(self.ws.locks.sweep())

    def _persist(self) -> None:
        try:
            self.ws.flush()
        finally:
            self.log_warnings()
        compact = getattr(self.ws.locks, "compact", None)
        if compact is not None:
            compact()

    async def persist(self) -> None:
        """Save the spec table and index state if they changed (for a fast warm restart),
        and fold the lease journal into the lease files. A save reads the table, which only
        the worker thread changes: it takes its turn there, without the table lock (the lease
        table guards itself)."""
        async with self.turn("saving"):
            await self.in_worker(self._persist)

    # status

    def status(self) -> dict:
        """What ``chant daemon status`` prints (called through the daemon_status operation).

        Answered at once, whatever the workspace is doing: the figures are computed when
        nothing else runs, else the last ones are shown with what it is busy with."""
        ws = self.ws
        busy = not self.loaded or self.activity is not None or self.lock.locked()
        if not busy:
            stats = ws.statistics()
            self._figures = {
                "specs_indexed": stats.documents,
                "specs": stats.specs,
                "active_locks": stats.leases,
                "queue_depth": stats.queue_depth,
            }
        figures = self._figures or dict.fromkeys(("specs_indexed", "specs", "active_locks", "queue_depth"))
        out = {
            "pid": os.getpid(),
            "version": VERSION,
            "protocol": PROTOCOL_VERSION,
            "root": ws.root,
            "started_at": self.started,
            "uptime_seconds": round(self.clock() - self.started, 3),
            **figures,
            "socket": self.info.get("socket"),
            "api": self.info.get("api"),
            "metrics": self.info.get("metrics"),
            "watch": self.info.get("watch"),
            "loaded": self.loaded,
            "busy": (self.activity or "working") if busy else None,
            "claims_waiting": self._waiters,  # long polls now waiting for work (idle workers)
        }
        if busy and self.progress is not None:
            out["progress"] = self.loading()
        for name, section in self.sections.items():
            out[name] = section()
        return out


class _Turn:
    """The worker thread's turn (see :meth:`Service.turn`): one operation at a time there,
    waited for without holding the table lock, so a change to the specs queued behind a
    long read does not make the leases wait too."""

    __slots__ = ("service", "activity")

    def __init__(self, service: Service, activity: str) -> None:
        self.service, self.activity = service, activity

    async def __aenter__(self) -> None:
        service = self.service
        await service.worker_lock.acquire()
        service.activity = self.activity

    async def __aexit__(self, *exc) -> None:
        service = self.service
        service.activity = None
        service.worker_lock.release()


def _progress_words(state: dict) -> str:
    """``indexing 1,200 of 50,000``, or just the phase when there are no counts yet."""
    if state.get("total"):
        return f"{state['phase']} {state['done']:,} of {state['total']:,}"
    return state.get("phase") or "starting"
