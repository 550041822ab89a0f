"""Workspace: one repository's store, spec table, index, locks and queue, and its operations.

Every operation in :mod:`chantlib.ops` is a method here returning plain JSON-able data.
The direct-mode CLI makes a short-lived Workspace per command (``auto_refresh``: each
operation first brings the spec table in step with the files); the daemon keeps one alive
and feeds it file events instead. Nothing here prints, and no transport lives here.

Heavy parts are opened on first use: the YAML parser only when a file must be parsed,
tantivy only for ``search``/``query``/``index_*``, filelock only for leases.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time

from ._version import PROTOCOL_VERSION, VERSION
from .columns import pack
from .errors import ChantError, InvalidValue, NotHolder, SpecNotFound, SpecParseError, SpecTimedOut, UnknownSpecRef
from .ids import sort_key
from .listing import Listing, columns_text, follows, piece
from .ops import for_method
from .store import SpecStore
from .table import HOT_FIELDS, SpecTable
from .values import BLANK, DEFAULT_TYPE, SEARCH_LIMIT, SPEC_FIELDS

TYPE_CHECKING = False  # no typing import at run time; mypy reads the block
if TYPE_CHECKING:

    from .config import Config
    from .events import Publisher
    from .index import Index
    from .lint import Gate
    from .locks import LockTable
    from .queue import Queue
    from .statistics import SpecFigures
    from .store import StagedEdit

__all__ = ["Workspace", "VERSION"]

INDEX_DIR = ".index"
LOCKS_DIR = ".locks"


_TYPE, _STATUS = HOT_FIELDS.index("type"), HOT_FIELDS.index("status")
_PROJECT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


def _approval(row) -> dict | None:
    if row.approval is None:
        return None
    return dict(zip(("required", "status", "by", "at"), row.approval, strict=True))


@functools.lru_cache(maxsize=64)
def _picked(fields: tuple) -> tuple:
    """The keys of ``fields`` in the spec object's order (what ``summary`` returns)."""
    return tuple(k for k in SPEC_FIELDS if k in fields)


def _json_dumps(value) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))  # ASCII: the daemon's wire form


def _limited(limited: list) -> dict:
    """What a queue answer says of the limits: ``limited`` (specs they keep back) and
    ``full`` (why no claim may be made now), when either applies."""
    full = next((why for why in limited if isinstance(why, str)), None)
    rows = sum(1 for row in limited if not isinstance(row, str))
    return {"limited": rows, "full": full}


def _now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _operation(*, specs: bool = True, skipped: bool = True, op: str | None = None):
    """Mark a method as an operation of :mod:`chantlib.ops`: its result (a dict) gets
    ``warnings``, a list of what its run has to say (see :meth:`Workspace._finish`).
    ``specs=False``: the operation reads no spec, so the warnings about the files are left
    out; ``skipped=False``: it reports files that do not parse by itself (lint).

    Its arguments are checked by its entry in :data:`chantlib.ops.OPS` (``op``: that
    entry's method, when it is not this one), the one place parameters are checked: a
    request's were already, a library caller's are here, by the same rules."""

    def wrap(method):
        code = method.__code__
        names = code.co_varnames[1 : code.co_argcount]
        served = op or method.__name__

        @functools.wraps(method)
        def operation(self, *args, **kwargs):
            entry = for_method(served)
            if entry is not None:
                if args and len(args) <= len(names):  # too many: the call itself says so
                    kwargs.update(zip(names, args, strict=False))
                    args = ()
                kwargs = entry.check(kwargs)
            local = self._local  # per thread: a daemon runs lease operations beside a slow read
            if getattr(local, "running", False):  # an operation inside another: the outer one reports
                return method(self, *args, **kwargs)
            local.running = True
            events = self._events
            if events is not None:
                events.hold()
            try:
                result = method(self, *args, **kwargs)
            finally:
                local.running = False
                if events is not None:
                    events.done()  # one event for the operation, before its warnings are taken
            return self._finish(result, specs, skipped)

        return operation

    return wrap


class Workspace:
    """The library's front door for one repository.

    ``root``: the repository root or any folder below it (default: the current folder).
    ``persist``: keep the spec table and index under ``.chant/.index/`` (else memory only).
    ``locks``: a :class:`~chantlib.locks.LockTable` to use instead of the file backend (the
    caller's: :meth:`close` leaves it open), or a callable ``locks(config) -> LockTable``,
    called here with the repository's config (the daemon's memory table takes its default TTL
    from it, and owns ``.chant/.locks/`` from this moment on): that table is the workspace's,
    closed by :meth:`close`.
    ``long_lived``: the workspace lives on (the daemon): the spec table and index state are
    saved on :meth:`flush`, by its owner's schedule, not at the end of every operation.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        persist: bool = True,
        auto_refresh: bool = True,
        locks=None,
        clock=time.time,
        long_lived: bool = False,
    ) -> None:
        self.store = SpecStore.discover(root)
        self.root = self.store.root
        self.auto_refresh = auto_refresh
        self.long_lived = long_lived
        self.clock = clock
        #: warnings about this workspace itself (no cache folder); see _finish
        self.warnings: list[str] = []
        self._local = threading.local()
        cache_dir = None
        if persist:
            cache_dir = os.path.join(self.store.chant_dir, INDEX_DIR)
            try:
                os.makedirs(cache_dir, exist_ok=True)
                if not os.access(cache_dir, os.W_OK):
                    raise PermissionError(13, "Permission denied")
            except OSError as exc:
                self.warnings.append(f"cannot write {cache_dir} ({exc.strerror or exc}); running without a cache")
                cache_dir = None
        self.cache_dir = cache_dir
        self.table = SpecTable(self.store, cache_dir)
        self._config: Config | None = None
        self._index: Index | None = None
        self._locks: LockTable | None = None
        self._owns_locks = locks is None  # the file backend made on first use; a factory's table
        self._queue: Queue | None = None
        self._encoded: dict[tuple | None, dict] = {}  # fields -> id -> (row, ready, blocked, held, JSON text)
        self._listings: dict[tuple, Listing] = {}  # a long-lived workspace's kept list answers
        self._gate: Gate | None = None
        self._limits_of: tuple | None = None  # (config, its Limits)
        self._events: Publisher | None = None  # made by the first subscribe()
        self._figures: SpecFigures | None = None  # the specs' part of statistics(), while they stay the same
        #: set by a daemon serving this workspace: a callable returning its status facts
        self.service = None
        #: a write of ours leaves the index to :meth:`sync_index` (``index_behind`` says so)
        #: instead of committing it at once: a daemon commits it after the write, off the lock
        #: its claims and renewals take, one commit for however many writes came meanwhile
        self.defer_index = False
        self.index_behind = False
        self._parsed_behind: dict = {}  # specs parsed by the writes left behind: spares a read
        #: ``progress(phase, done, total)``, called during long work when set: phase
        #: ``"reading"`` while the spec table parses files, ``"indexing"`` while the index
        #: writes documents, from :meth:`apply_changes` (``None``: the daemon's start),
        #: :meth:`refresh` and :meth:`index_rebuild`; about ten times a second at most, and
        #: once at the end of each phase (``done == total``). It may be called from the
        #: daemon's worker thread. See :mod:`chantlib.progress`.
        self.progress = None
        if callable(locks):
            self._locks = locks(self.config)
            self._owns_locks = True
        else:
            self._locks = locks

    @property
    def last_run_warnings(self) -> tuple[str, ...]:
        """The warnings of the last operation this thread ran, apart from those about the
        files (a daemon must not keep an answer that holds them in its cache of answers)."""
        return getattr(self._local, "run_warnings", ())

    # parts

    @property
    def config(self):
        """The merged :class:`~chantlib.config.Config` (cached with the spec table)."""
        if self._config is None:
            from .config import Config, global_config_path

            paths = (self.store.config_path, global_config_path())
            stamp = tuple(_stamp(p) for p in paths)
            self.table.load()
            cached = self.table.extra.get("config")
            if cached is not None and cached[0] == stamp:
                self._config = Config(cached[1], cached[2])
            else:
                self._config = Config.load(paths[0], paths[1])
                from .spec import plain

                self.table.remember("config", (stamp, plain(self._config.given), list(self._config.warnings)))
        return self._config

    @property
    def index(self):
        if self._index is None:
            from .index import Index

            self._index = Index(self.table, self.cache_dir, defer_state=self.long_lived, keep_writer=self.long_lived)
        return self._index

    @property
    def locks(self):
        if self._locks is None:
            from .locks import FileLockTable

            self._locks = FileLockTable(
                os.path.join(self.store.chant_dir, LOCKS_DIR), clock=self.clock, default_ttl=self.config.lock_ttl
            )
            if self._events is not None:
                self._events.watch_locks(self._locks)
        return self._locks

    @locks.setter
    def locks(self, table) -> None:
        """Use another LockTable, the caller's; before any lease operation. (Passing it, or
        a factory, to the constructor is the way: the table is then in place from the start.)"""
        self._locks = table
        self._owns_locks = False
        self._queue = None
        if self._events is not None:
            self._events.watch_locks(table)

    @property
    def queue(self):
        if self._queue is None:
            from .queue import Queue

            # the queue refreshes the table itself, so a script using ws.queue sees the files
            self._queue = Queue(self.table, self.locks, refresh=self._fresh, gate=self.gate,
                                limits=lambda: self.limits)
        return self._queue

    def gate(self):
        """The :class:`~chantlib.lint.Gate` for the table as it is now and this config: which
        ready specs the queue holds back because lint reports an error for them."""
        gate = self._gate
        config = self.config
        if gate is None or gate.config is not config:  # it follows the table's changes itself
            from .lint import Gate

            gate = self._gate = Gate(self.table, config)
        return gate

    # events and statistics

    @property
    def limits(self):
        """The config's :class:`~chantlib.limits.Limits` (``scale.limits``), read again when
        the config changes; a bad value is an :class:`InvalidValue` naming the key."""
        config = self.config
        cached = self._limits_of
        if cached is None or cached[0] is not config:
            from .limits import Limits

            cached = self._limits_of = (config, Limits.from_config(config))
        return cached[1]

    def subscribe(self, callback, *, leases: bool = True):
        """Tell ``callback(event)`` of what changes from now on, one
        :class:`~chantlib.events.Event` per step (an operation, a batch of file events, a
        refresh, a lease change); returns a function that unsubscribes it. ``leases=False``:
        not told of steps that changed only leases (nor are they followed for it). A callback
        that raises is reported in the warnings and stays subscribed. See :mod:`chantlib.events`."""
        if self._events is None:
            from .events import Publisher

            self._events = Publisher(self.table, self.table.warnings.append)
            if self._locks is not None:
                self._events.watch_locks(self._locks)
        return self._events.subscribe(callback, leases=leases)

    def statistics(self):
        """This workspace's figures now: a frozen :class:`~chantlib.statistics.Statistics`
        (what ``daemon_status`` and the daemon's metrics report). Brings the table in step
        with the files first, like an operation, in direct mode. One pass over the active
        and ready specs after a change, else what the live leases cost."""
        from .statistics import spec_figures, statistics

        self._fresh()
        self.table.load()
        gate = self.gate()
        key = (self.table.generation, gate)
        figures = self._figures
        if figures is None or figures.key != key:
            figures = self._figures = spec_figures(self.table, gate, key)
        documents = None
        if self._index is not None:
            try:
                documents = self._index.documents()
            except Exception:  # noqa: BLE001 - a figure (an index being rebuilt), never a failure
                documents = None
        stats = statistics(figures, self.locks, documents)
        self._done()
        return stats

    def refresh(self, *, index: bool = False):
        """Bring the spec table in step with the files (direct mode does this per operation);
        returns what changed (:class:`~chantlib.table.Changes`). ``index``: the search index
        too, when a file changed (what ``search`` would otherwise do first; the hooks do it
        after a checkout or a merge, so that the next command has nothing to catch up on).
        Nothing is saved: :meth:`flush` does that."""
        events = self._events
        if events is not None:
            events.hold()
        try:
            if events is not None:
                events.baseline()
            changes = self.table.refresh(save=False, progress=self.progress)
            if index and changes:
                self.index.sync(changes.parsed, changes, progress=self.progress)
            return changes
        finally:
            if events is not None:
                events.done()

    def apply_changes(self, relpaths=None, config_changed: bool = False, between=None):
        """Bring the table and index in step with files known to have changed (a watcher's
        events; ``None``: walk everything, every archived file included). For a workspace
        without ``auto_refresh``, whose owner watches the files. Returns an
        :class:`~chantlib.events.Applied`: the documents indexed, and the specs added,
        modified and removed; subscribers are told (readiness too) once the index is in step.
        ``between()``: called once the table is in step and before the index is (when
        ``relpaths`` changed something), for reads that do not need the index (a daemon
        makes its kept ``list`` answers then, to send them while the index commits)."""
        events = self._events
        if events is not None:
            events.hold()
        try:
            if events is not None:
                events.baseline()
            documents, changes = self._apply(relpaths, config_changed, between)
        finally:
            if events is not None:
                events.done()
        from .events import Applied, changed_specs

        return Applied(documents, *changed_specs(changes))

    def _apply(self, relpaths, config_changed: bool, between=None):
        if config_changed:
            self._config = None  # read again on next use (its files' stamps changed)
        if relpaths is None:
            # a cold start parses every file: the index takes them as they are read
            index = self.index
            index.streamed = 0
            changes = self.table.refresh(save=False, full=True, progress=self.progress,
                                         stream=index.stream(self.progress))
            streamed, index.streamed = index.streamed, 0
            return streamed + index.sync(changes.parsed, changes, progress=self.progress), changes
        changes = self.table.refresh_paths(relpaths)
        if between is not None and changes:
            between()
        if self.defer_index and self._index is not None:
            if changes:  # the index takes them in sync_index(), with what was just parsed
                self._parsed_behind.update(changes.parsed or {})
                self.index_behind = True
            return 0, changes
        return self.index.sync(changes.parsed, changes), changes

    def _fresh(self):
        if self.auto_refresh:
            return self.refresh()
        if self._events is not None:
            self._events.baseline()  # the readiness told next is counted from the table as it is
        return None

    def flush(self) -> None:
        """Persist what the last operations learnt (the spec table and cached results)."""
        self.table.flush()
        if self._index is not None:
            self._index.flush()

    def _done(self) -> None:
        """End of an operation: a short-lived workspace saves what it learnt; a long-lived
        one (the daemon) saves on its own schedule, not on the request path."""
        if not self.long_lived:
            self.flush()

    def close(self) -> None:
        """Save what is unsaved and close the index's kept writer (a long-lived workspace);
        then close the lease table if it is the workspace's own (the daemon's folds its
        journal into the lease files and lets ``.chant/.locks/`` go). A long-lived workspace
        writes its spec table in full, the journal folded in: the next start reads one file.
        Each step is tried even if one before it failed; the first failure is raised."""
        failures: list[BaseException] = []
        for step in (self._save_all, self._close_index, self._close_locks):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - the next steps still run; raised below
                failures.append(exc)
        if failures:
            raise failures[0]

    def _save_all(self) -> None:
        if self.long_lived:
            self.table.save()
        self.flush()

    def _close_index(self) -> None:
        if self._index is not None:
            if self.index_behind:
                self.sync_index()
            self._index.close()

    def _close_locks(self) -> None:
        close = getattr(self._locks, "close", None)
        if self._owns_locks and close is not None:
            close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def take_warnings(self) -> list[str]:
        """What went wrong since the last call, drained: a file that could not be read, a
        spec table that could not be saved. An operation's result carries the ones of its
        run (see :func:`_operation`); a long-lived owner logs the rest (the daemon's upkeep)."""
        table = self.table
        out = table.warnings[:]
        table.warnings.clear()
        return out

    def state_warnings(self, *, skipped: bool = True) -> list[str]:
        """Warnings about the repository as it is (a config file that does not parse, spec
        files that are left out), repeated by every operation that reads the specs until the
        files are fixed. ``skipped=False`` leaves out the files that do not parse (lint
        reports them itself)."""
        out = list(self.config.warnings)  # cached with the table: cheap when nothing changed
        if skipped:
            for row in sorted(self.table.broken.values(), key=lambda r: r.path):
                if not row.archived:
                    out.append(f"skipping .chant/{row.path}: {row.error}")
        return out

    def _finish(self, result, specs: bool, skipped: bool):
        """The one place an operation's result gets its ``warnings``: this workspace's own
        (a short-lived one: a daemon logs them instead), those of the run, then those about
        the files when the operation reads them."""
        state = self.state_warnings(skipped=skipped) if specs else []
        self._done()  # again: reading the config for its warnings may have cached it in the table
        run = self.take_warnings()
        #: the run's own warnings, apart from those about the files: a daemon must not keep an
        #: answer that holds them in its cache of answers
        self._local.run_warnings = tuple(run)
        if isinstance(result, dict):
            result["warnings"] = (run if self.long_lived else self.warnings + run) + state
        return result

    # shaping results

    def summary(self, row, fields=None) -> dict:
        """The JSON form of a spec row, as every operation returns it; ``fields``: only these
        keys (of :data:`~chantlib.values.SPEC_FIELDS`), in the spec object's order."""
        graph = self.table.graph
        current = None if row.archived else self.table.active.get(row.id)
        active = current is not None and current.path == row.path
        ready = active and row.id in graph.ready_set
        blocked = active and row.id in graph.blocked
        # ready, yet held out of the queue: the lint errors that hold it (groups are not work)
        held = list(self.gate().errors(row)) if ready and row.type != "group" and (
            fields is None or "held" in fields) else []
        full = {
            "id": row.id,
            "title": row.title,
            "status": row.status,
            "type": row.type,
            "ready": ready,
            "blocked": blocked,
            "project": row.project,
            "labels": list(row.labels),
            "depends_on": None if row.depends_on is None else list(row.depends_on),
            "priority": row.priority,
            "criteria": {"checked": row.checked, "total": row.total},
            "approval": _approval(row),
            "archived": row.archived,
            "path": f".chant/{row.path}",
            "held": held,
        }
        if fields is None:
            return full
        # a literal dict and a pick of it cost less than building only the keys asked for
        return {k: full[k] for k in _picked(fields)}

    def _summaries_json(self, rows, fields) -> list[str]:
        """``summary(row, fields)`` of each row as compact JSON text, each remembered while
        its row object and computed state stay the same: a long-lived workspace (the
        daemon) encodes again only the specs that changed since its last answer."""
        graph = self.table.graph
        ready_set, blocked = graph.ready_set, graph.blocked
        errors = self.gate().errors if fields is None or "held" in fields else None
        memo = self._encoded.get(fields)
        if memo is None or len(memo) > 2 * len(self.table.active) + 1000:  # too many gone or changed
            memo = self._encoded[fields] = {}
        out = []
        for row in rows:
            spec_id = row[0]
            is_ready, is_blocked = spec_id in ready_set, spec_id in blocked
            # what summary() holds it back for: part of the answer, so of the memo's key too
            held = errors(row) if errors is not None and is_ready and row[_TYPE] != "group" else ()
            hit = memo.get(spec_id)
            if hit is None or hit[0] is not row or hit[1] is not is_ready or hit[2] is not is_blocked or hit[3] != held:
                hit = memo[spec_id] = (row, is_ready, is_blocked, held, _json_dumps(self.summary(row, fields)))
            out.append(hit[4])
        return out

    def _resolve(self, partial: str):
        """The row of a partial ID. Files that do not parse are found too (after the active
        specs and the archive): they exist, so "not found" would be a lie; an operation that
        must parse the file says what is wrong with it instead (see :meth:`complete`)."""
        return self.table.resolve(partial, broken=True)

    # operations: reading

    @_operation(specs=False)
    def hello(self, protocol=None) -> dict:
        return {"version": VERSION, "protocol": PROTOCOL_VERSION, "root": self.root}

    @_operation()
    def list_specs(self, ready=False, status=None, labels=None, type=None, project=None, fields=None,
                   form="objects") -> dict:
        """Active specs in chant order (see the ``list`` operation); ``fields``: only these keys
        of each spec (what a renderer prints), so that a large answer stays small;
        ``form="columns"``: ``specs`` is one array per key instead (far less to decode)."""
        self._fresh()
        rows = self._list_rows(ready, status, labels, type, project)
        fields = _fields(fields)
        specs = [self.summary(r, fields) for r in rows]
        if form == "columns":
            result: dict = {"specs": pack(_picked(SPEC_FIELDS if fields is None else fields), specs),
                            "count": len(specs)}
        else:
            result = {"specs": specs}
        self._done()
        return result

    def list_specs_json(self, ready=False, status=None, labels=None, type=None, project=None, fields=None,
                        form="objects") -> str:
        """:meth:`list_specs`'s answer as compact JSON text (the same bytes ``json.dumps``
        gives), assembled from each spec's remembered encoding: the daemon's face of
        ``list``, whose answer at 200,000 specs holds tens of thousands (a long-lived
        workspace keeps it in step, see :mod:`chantlib.listing`)."""
        result = self._list_encoded(ready, status, labels, type, project, fields, form)
        count = f',"count":{result["count"]}' if form == "columns" else ""
        return '{"specs":' + result["specs"] + count + ',"warnings":' + _json_dumps(result["warnings"]) + "}"

    @_operation(op="list_specs")
    def _list_encoded(self, ready, status, labels, type, project, fields, form) -> dict:
        """list_specs with its specs as JSON text (the warnings added as for any operation)."""
        self._fresh()
        fields = _fields(fields)
        names = _picked(SPEC_FIELDS if fields is None else fields)
        if self.long_lived and follows(status):
            specs, count = self._listed_json(ready, status, labels, type, project, fields, names, form)
        else:
            rows = self._list_rows(ready, status, labels, type, project)
            count = len(rows)
            if form == "columns":
                specs = _json_dumps(pack(names, [self.summary(r, fields) for r in rows]))
            else:
                specs = "[" + ",".join(self._summaries_json(rows, fields)) + "]"
        self._done()
        return {"specs": specs, "count": count}

    def _listed_json(self, ready, status, labels, type, project, fields, names, form) -> tuple[str, int]:
        """The kept answer of this ``list`` request (a :class:`~chantlib.listing.Listing`)."""
        key = (ready, status, tuple(labels) if labels else None, type, project, fields, form)
        listing = self._listings.pop(key, None)
        if listing is None:
            listing = Listing(self.table, key[:5], len(names) if form == "columns" else 1)
            if len(self._listings) >= 8:  # the oldest asked goes
                self._listings.pop(next(iter(self._listings))).close()
        self._listings[key] = listing
        graph = self.table.graph
        ready_set, blocked = graph.ready_set, graph.blocked
        gate = self.gate() if "held" in names else None
        errors = gate.errors if gate is not None else None

        def state(row) -> tuple:  # what summary() reads beyond the row
            is_ready = row[0] in ready_set
            held = errors(row) if errors is not None and is_ready and row[_TYPE] != "group" else ()
            return is_ready, row[0] in blocked, held

        if form == "columns":
            def encode(row) -> tuple:
                return tuple(piece(value) for value in self.summary(row, fields).values())
        else:
            def encode(row) -> tuple:
                return (_json_dumps(self.summary(row, fields)),)

        columns = listing.pieces(lambda: self._list_rows(ready, status, labels, type, project), state, encode, gate)
        if form == "columns":
            return columns_text(names, columns), listing.count
        return "[" + ",".join(columns[0]) + "]", listing.count

    def _list_rows(self, ready, status, labels, type, project) -> list:
        graph = self.table.graph
        active = self.table.active
        if ready or status == "ready":
            # one pass, the row's type read by index: this list is tens of thousands long at scale
            rows = [active[i] for i in graph.ready]
            return self._filter_rows([r for r in rows if r[_TYPE] != "group"] if ready else rows, ready, status,
                                     labels, type, project)
        if status == "blocked":
            rows = [active[i] for i in sorted(graph.blocked, key=sort_key)]
        else:
            rows = [active[i] for i in graph.order]
            if status is None:
                rows = [r for r in rows if r[_STATUS] != "cancelled"]
            elif status == "pending":
                blocked = graph.blocked
                rows = [r for r in rows if r[_STATUS] == "pending" and r[0] not in blocked]
            else:
                rows = [r for r in rows if r[_STATUS] == status]
        return self._filter_rows(rows, ready, status, labels, type, project)

    @staticmethod
    def _filter_rows(rows, ready, status, labels, type, project) -> list:
        if ready and status not in (None, "ready"):
            rows = [r for r in rows if r.status == status]
        if type is not None:
            rows = [r for r in rows if r.type == type.lower()]
        if labels:
            wanted = set(labels)
            rows = [r for r in rows if wanted.intersection(r.labels)]
        if project is not None:
            rows = [r for r in rows if r.project == project]
        return rows

    @_operation()
    def show(self, spec: str) -> dict:
        self._fresh()
        row = self._resolve(spec)
        try:
            text = self.store.read_text(row.path)
        except UnicodeDecodeError:
            text = None
        except ChantError:
            raise SpecNotFound(spec) from None
        from .spec import Spec, plain

        parsed = Spec.parse(row.id, text) if text is not None else None
        graph = self.table.graph
        out = self.summary(row)
        out["error"] = row.error
        out["frontmatter"] = plain(parsed.frontmatter) if parsed is not None else {}
        out["body"] = parsed.body if parsed is not None else ""
        out["display_status"] = graph.display_status(row) if row.error is None and not row.archived else row.status
        if row.error is None and not row.archived:
            out["blocked_by"] = [
                {"kind": kind, "detail": detail, "status": graph.dep_state(detail) if "dependency" in kind else None}
                for kind, detail in graph.blockers(row)
            ]
            out["waiting_on"] = graph.waiting_on(row)
            out["members"] = graph.members(row.id)
        else:
            out["blocked_by"], out["waiting_on"], out["members"] = [], [], []
        out["dependencies"] = [
            {"id": dep, "status": graph.dep_state(dep)} for dep in (row.depends_on or ())
        ]
        out["commits"] = list(row.full().commits)
        out["completed_at"] = row.completed_at
        lease = self.locks.get(row.id)
        out["lease"] = lease.to_dict() if lease is not None else None
        self._done()
        return out

    @_operation()
    def search(self, q: str, limit: int | None = SEARCH_LIMIT) -> dict:
        """Query the index; ``limit=None``: every match."""
        changes = self._fresh()
        index = self.index
        index.sync(changes.parsed if changes is not None else None)
        result = index.search(q, limit=limit, graph=self.table.graph)
        rows = [self.table.row(p) for p in result.paths if p in self.table.rows]
        if not result.scored:
            rows.sort(key=lambda r: sort_key(r.id))
        out = {"query": q, "total": result.total, "specs": [self.summary(r) for r in rows]}
        self._done()
        return out

    @_operation(skipped=False)
    def lint(self, archive: bool = False, specs=None, removed=None) -> dict:
        """The lint report of every active spec (with ``archive``, archived ones too), or of
        ``specs`` (partial IDs) and what they break elsewhere: the spec lint names for a
        dependency cycle through one of them, and, for ``removed`` (the IDs of spec files that
        went), the specs that still depend on or list one of those
        (:func:`~chantlib.lint.lint_changes`: what a save is judged by)."""
        self._fresh()
        from .lint import lint_changes, lint_rows

        if specs is None and removed is None:
            report = lint_rows(self.table, self.config, include_archive=archive)
        else:
            rows = [self._resolve(s) for s in specs or ()]
            report = lint_changes(self.table, self.config, [row.path for row in rows],
                                  [f"specs/{spec_id}.md" for spec_id in removed or ()])
        self._done()
        return report

    def lint_staged(self, staged=None) -> dict:
        """Lint what the next commit holds (the pre-commit hook): the spec files it adds or
        changes, as staged, with the rest of the repository as the commit has it (the
        index's version of every spec file that differs from the working tree; files not
        added are left out), by the rules of :meth:`lint`, the archive included. Reported:
        those files' specs and the specs the commit breaks elsewhere (see
        :func:`~chantlib.lint.lint_changes`). Nothing is written and no file is copied: the
        staged versions take the place of their rows in a view of the table
        (:meth:`SpecTable.overlay <chantlib.table.SpecTable.overlay>`).

        Not an operation: it reads the index of the git that runs it (``GIT_INDEX_FILE`` in a
        hook), which a daemon cannot see. Returns lint's report with ``files``, the spec
        files judged (``.chant/...``); when the commit touches no spec file, an empty report
        at the cost of one git run, without reading the specs. ``staged``: what
        :func:`chantlib.git.staged_specs` returned for this repository, if the caller asked
        it already."""
        from .git import staged_specs
        from .lint import lint_changes

        if staged is None:
            staged = staged_specs(self.root)
        if staged is None:
            return {"diagnostics": [], "passed": 0, "warned": 0, "failed": 0, "total": 0, "files": [], "warnings": []}
        self._fresh()
        view = self.table.overlay(staged.texts)
        report = lint_changes(view, self.config, staged.changed, staged.removed)
        report["files"] = [f".chant/{rel}" for rel in staged.changed + staged.removed]
        return self._finish(report, True, False)

    @_operation()
    def status(self) -> dict:
        self._fresh()
        graph = self.table.graph
        counts = {k: 0 for k in ("pending", "in_progress", "paused", "completed", "failed", "blocked", "ready")}
        attention, in_progress = [], []
        day_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock() - 86400))
        completed_today = 0
        for spec_id in sorted(self.table.active, key=sort_key):
            row = self.table.active[spec_id]
            status = row.status
            if status == "cancelled":
                continue
            key = "failed" if status == "needs_attention" else status
            if key in counts:
                counts[key] += 1
            if status in ("failed", "needs_attention", "blocked"):
                attention.append({"id": row.id, "title": row.title, "status": status})
            elif status == "in_progress":
                in_progress.append({"id": row.id, "title": row.title})
            if status == "completed" and row.completed_at and row.completed_at.replace(" ", "T") >= day_ago:
                completed_today += 1
        ready = graph.ready
        counts["ready"] = len(ready)
        result = {
            "counts": counts,
            "today": {"completed": completed_today},
            "attention": attention,
            "in_progress": in_progress,
            "ready": [{"id": i, "title": self.table.active[i].title} for i in ready[:5]],
            "ready_count": len(ready),
        }
        self._done()
        return result

    # operations: writing specs

    @_operation()
    def add(self, title, type=DEFAULT_TYPE, labels=None, depends_on=None, priority=None, project=None, criteria=None,
            description=None) -> dict:
        title = (title or "").strip(BLANK)
        if not title or "\n" in title or "\r" in title:
            raise InvalidValue("a spec needs a one-line title")
        self._fresh()
        from .ids import generate_id
        from .spec import Spec

        if priority is not None:
            from .spec import priority_value

            if priority_value(priority) is None:
                raise InvalidValue(f"priority must be low, normal, high, critical or an integer, got {priority!r}")
        ids = set(self.table.by_id) | {r.id for r in self.table.broken.values()}
        if depends_on:
            depends_on = [self._resolve(d).id for d in depends_on]
        prefix = project if project is not None else self.config.project_prefix
        if prefix is not None and not _PROJECT_RE.fullmatch(prefix):
            raise InvalidValue(f"a project prefix is letters, digits, '_' and '-', got {prefix!r}")
        front: dict = {"type": type, "status": "pending"}
        if priority is not None:
            front["priority"] = int(priority) if str(priority).lstrip("-").isdigit() else str(priority)
        if labels:
            front["labels"] = list(labels)
        if depends_on:
            front["depends_on"] = depends_on
        body = f"# {title}\n"
        if description:
            body += f"\n{description.strip()}\n"
        if criteria:
            body += "\n## Acceptance Criteria\n\n" + "".join(f"- [ ] {c}\n" for c in criteria)
        for _attempt in range(5):
            spec_id = generate_id(ids, time.strftime("%Y-%m-%d"), prefix)
            spec = Spec.new(spec_id, front, body)
            relpath = self.store.new_spec_relpath(spec_id)
            try:
                self.store.write_text(relpath, spec.render(), exclusive=True)
            except ChantError as exc:
                if exc.code == "already_exists":
                    ids.add(spec_id)
                    continue
                raise
            self._wrote([relpath])
            self._done()
            return {"id": spec_id, "path": f".chant/{relpath}", "title": title}
        raise ChantError("could not find a free spec ID after 5 tries")

    def _write_spec(self, row, values, keys=None, staged=None) -> None:
        """Set frontmatter ``values`` in a spec file: a compare-and-swap on the file's text
        (:meth:`SpecStore.edit_text`), so an editor's save is never lost or half-read.
        ``values`` may be a callable ``values(spec) -> dict``, worked out from the text being
        edited (so a count is never based on a stale read), with the ``keys`` it sets.
        ``staged``: the same edit made ahead (:meth:`SpecStore.stage_text`), put in place
        if the file did not change since."""
        change = _edit(row.id, values)
        keys = tuple(values) if keys is None else tuple(keys)
        if staged is None:
            self.store.edit_text(row.path, change, keys=keys)
        else:
            self.store.commit_staged(staged, change, keys=keys)
        self._wrote([row.path])

    def _wrote(self, relpaths) -> None:
        """Our own write, seen like anyone's: the table re-reads the files, and an index this
        process has open (the daemon's, a script's that searched) takes the change now, not
        at the next file event (the table tells it; see SpecTable.listeners)."""
        self.table.refresh_paths(relpaths)
        if self._index is not None:
            if self.defer_index:
                self.index_behind = True  # the daemon syncs it after the write: sync_index()
            else:
                self._index.sync()

    def sync_index(self) -> int:
        """Bring an open index in step with the spec table (what :attr:`defer_index` left
        behind); returns the documents written. A search does it by itself first."""
        self.index_behind = False
        parsed, self._parsed_behind = self._parsed_behind, {}
        if self._index is None:
            return 0
        return self._index.sync(parsed or None) or 0

    def _completion(self, row, outcome: str) -> _Completion:
        """What :meth:`complete` writes into the spec of ``row``, checked and worked out."""
        if outcome not in ("success", "failure"):
            raise InvalidValue(f"outcome must be success or failure, got {outcome!r}")
        if row.error is not None:
            raise SpecParseError(f"cannot edit {row.id}: {row.error}", spec=row.id)
        if row.archived:
            raise InvalidValue(f"{row.id} is archived")
        if outcome == "success":
            return _Completion(row.id, row.path, {"status": "completed", "completed_at": _now_utc()}, None, {})
        max_retries = self.config.max_retries
        now = _now_utc()
        wrote: dict = {}

        def failure(spec) -> dict:  # from the text being written: the count is never stale
            wrote.clear()
            wrote.update(_failure(spec, max_retries, now))
            return wrote

        return _Completion(row.id, row.path, failure, ("status", "retry_state"), wrote)

    def prepare_complete(self, spec: str, owner=None, token=None, force=False, outcome="success") -> _Completion:
        """The long part of :meth:`complete`, with nothing another operation reads changed:
        the spec's new text made and synced to a temp file beside it (a read that may wait
        out an editor's save, a parse, an fsync). :meth:`complete` then checks the lease and
        renames it into place, or edits again if the file changed meanwhile; so a daemon holds
        its table lock, which claims and renewals wait for, for a rename, not for a disk's
        sync. Returns what :meth:`complete` takes as ``prepared`` (``discard()`` it if unused)."""
        done = self._completion(self._resolve(spec), outcome)
        done.staged = self.store.stage_text(done.relpath, _edit(done.spec_id, done.values))
        return done

    @_operation()
    def complete(self, spec: str, owner=None, token=None, force=False, outcome="success", prepared=None) -> dict:
        """Finish a spec: ``completed`` (with ``completed_at``) or, for ``outcome="failure"``,
        ``failed``; then release its lease. The check of the lease, the write and the release
        happen in one critical section of the lock table, so a lease taken over meanwhile
        can never be written through (fencing). ``prepared``: see :meth:`prepare_complete`."""
        self._fresh()
        row = self._resolve(spec)
        done = prepared
        if done is not None and (row.path != done.relpath or row.error is not None):  # moved or broken since
            done.discard()
            done = None
        if done is None:
            done = self._completion(row, outcome)
        try:
            released = self._complete_locked(row, done, owner, token, force)
        finally:
            done.discard()  # a lease refused: what was staged goes (put in place, nothing is left)
        self._done()
        current = self.table.active[row.id]
        out = {"spec": self.summary(current), "released": released, "outcome": outcome}
        if outcome == "failure":  # what was written: the attempt counted, and the status it led to
            out["attempts"] = done.wrote["retry_state"]["attempts"]
            out["max_retries"] = self.config.max_retries
        return out

    def _complete_locked(self, row, done: _Completion, owner, token, force) -> dict | None:
        """complete's critical section: the lease checked, the spec written, the lease released."""
        locks = self.locks
        with locks.critical():
            locks.check_writable()  # the spec is written only if its lease can be released after
            lease = locks.get(row.id)
            if token is not None:
                lease = locks.check(row.id, token)
            elif lease is not None and not force:
                me = owner or self._owner()
                if lease.owner != me:
                    raise NotHolder(
                        f"Spec {row.id} is locked by {lease.owner}; complete needs its token, the same owner, or force",
                        spec=row.id,
                        holder=lease.owner,
                    )
            self._write_spec(row, done.values, done.keys, staged=done.staged)  # staged: put in place
            # authorised above, in this same critical section: nobody can have taken it since,
            # and a lease that expired in these few milliseconds must not leave the spec
            # completed with its lease still standing
            return locks.release(row.id, force=True).to_dict() if lease is not None else None

    @_operation()
    def record_commit(self, commit: str = "HEAD", subject=None, replaces=None) -> dict:
        """Record a commit's short hash in the ``commits:`` of the spec its subject names
        (``chant(<id>): ...``; a partial ID as the CLI takes it). ``subject`` not given: git
        is asked for it (``commit`` may then be any revision, ``HEAD`` too). ``replaces``: the
        commit this one rewrote (``git commit --amend``, a rebase), whose hash it takes the
        place of. Idempotent: a hash already there is not written again, so a daemon and a
        hook seeing one commit record it once. The edit is a compare-and-swap on the file
        (:meth:`SpecStore.edit_text`): the rest of the file is left as it is.

        A subject naming no spec records nothing (``ref`` is ``None``); one naming a spec
        that does not exist is :class:`SpecNotFound`."""
        from .git import HASH_RE, commit_subject, same_commit, short, spec_ref

        if subject is None or not HASH_RE.fullmatch(commit):
            commit, found = commit_subject(self.root, commit)
            subject = found if subject is None else subject
        if replaces is not None and not HASH_RE.fullmatch(replaces):
            raise InvalidValue(f"replaces must be a commit hash, got {replaces!r}")
        out: dict = {"commit": short(commit), "ref": spec_ref(subject), "spec": None, "recorded": False,
                     "replaced": None, "commits": []}
        if out["ref"] is None:
            return out
        self._fresh()
        try:
            row = self._resolve(out["ref"])
        except SpecNotFound:
            raise UnknownSpecRef(out["ref"], out["commit"]) from None
        if row.error is not None:
            raise SpecParseError(f"cannot edit {row.id}: {row.error}", spec=row.id)
        before = [str(c) for c in row.full().commits]
        after = list(before)
        if not any(same_commit(c, commit) for c in after):
            at = next((i for i, c in enumerate(after) if replaces and same_commit(c, replaces)), None)
            if at is None:
                after.append(short(commit))
            else:
                after[at] = short(commit)
                out["replaced"] = before[at]
        if replaces is not None:  # the rewritten commit goes, wherever it stood
            kept = [c for c in after if not same_commit(c, replaces) or same_commit(c, commit)]
            if len(kept) != len(after) and out["replaced"] is None:
                out["replaced"] = next(c for c in after if c not in kept)
            after = kept
        if after != before:
            self._write_spec(row, {"commits": after})
            out["recorded"] = True
            row = self._resolve(row.id)
        out["spec"] = self.summary(row)
        out["commits"] = after
        self._done()
        return out

    # operations: leases and the queue

    def _owner(self, owner=None) -> str:
        if owner:
            return owner
        from .config import default_owner

        return default_owner()

    def _timed(self, ttl):
        """A new lease's ``ttl``, within ``scale.limits.spec_timeout``: no lease outlives the
        time a spec may be held (renewals are held to it too, see :meth:`lock_renew`)."""
        timeout = self.limits.spec_timeout
        if timeout is None:
            return ttl
        return min(self.locks.default_ttl if ttl is None else ttl, timeout)

    def _lock_target(self, spec: str) -> str:
        """A spec ID for a lease: resolved against the specs, or an exact ID with a lease file."""
        try:
            return self._resolve(spec).id
        except SpecNotFound:
            # a lease on a spec whose file is gone; a name no file could have has none
            if len(os.fsencode(spec)) <= 250 and self.locks.get(spec) is not None:
                return spec
            raise

    @_operation()
    def lock_acquire(self, spec, owner=None, ttl=None, force=False) -> dict:
        self._fresh()
        spec_id = self._lock_target(spec)
        lease = self.locks.acquire(spec_id, self._owner(owner), self._timed(ttl), force=force)
        self._done()
        return lease.to_dict()

    @_operation()
    def lock_release(self, spec, owner=None, token=None, force=False) -> dict:
        self._fresh()
        spec_id = self._lock_target(spec)
        owner = None if token is not None or force else self._owner(owner)
        lease = self.locks.release(spec_id, owner=owner, token=token, force=force)
        self._done()
        return lease.to_dict()

    @_operation()
    def lock_renew(self, spec, owner=None, token=None, ttl=None) -> dict:
        self._fresh()
        spec_id = self._lock_target(spec)
        owner = None if token is not None else self._owner(owner)
        timeout = self.limits.spec_timeout
        if timeout is not None:
            held = self.locks.get(spec_id)
            if held is not None and held.acquired_at is not None:
                left = held.acquired_at + timeout - self.clock()
                if left <= 0:
                    from .locks import format_time

                    raise SpecTimedOut(spec_id, timeout, format_time(held.acquired_at) or "?")
                ttl = min(self.locks.default_ttl if ttl is None else ttl, left)
        lease = self.locks.renew(spec_id, owner=owner, token=token, ttl=ttl)
        self._done()
        return lease.to_dict()

    @_operation(specs=False)
    def lock_list(self) -> dict:
        return {"leases": [lease.to_dict() for lease in self.locks.leases()]}

    @_operation()
    def lock_status(self, spec) -> dict:
        self._fresh()
        spec_id = self._lock_target(spec)
        lease = self.locks.get(spec_id)
        self._done()
        return {"spec": spec_id, "locked": lease is not None, "lease": None if lease is None else lease.to_dict()}

    @_operation()
    def queue_next(self, project=None, labels=None) -> dict:
        held_back: list = []
        limited: list = []
        queue = self.queue
        items = queue.items(project, labels, held_back)
        first = next(iter(queue.claimable(project, labels, [], limited)), None) if items else None
        result = {"spec": self.summary(first) if first is not None else None, "depth": len(items),
                  "held": len(held_back), **_limited(limited)}
        self._done()
        return result

    @_operation()
    def queue_list(self, project=None, labels=None, limit=None) -> dict:
        held_back: list = []
        items = self.queue.items(project, labels, held_back)
        shown = items if limit is None else items[:limit]
        result = {"specs": [self.summary(r) for r in shown], "depth": len(items), "held": len(held_back)}
        self._done()
        return result

    @_operation()
    def queue_stats(self, project=None, labels=None) -> dict:
        held_back: list = []
        items = self.queue.items(project, labels, held_back)
        by_project: dict[str, int] = {}
        for row in items:
            by_project[row.project or ""] = by_project.get(row.project or "", 0) + 1
        leases = self.locks.leases()
        leased_by: dict[str, int] = {}
        for lease in leases:
            row = self.table.active.get(lease.spec)
            key = (row.project if row is not None else None) or ""
            leased_by[key] = leased_by.get(key, 0) + 1
        limited: list = []
        limits = self.limits
        if limits.any:
            self.queue.claimable(project, labels, [], limited)
        self._done()
        return {"depth": len(items), "held": len(held_back), "leased": len(leases),
                "by_project": dict(sorted(by_project.items())), "leased_by_project": dict(sorted(leased_by.items())),
                "limits": limits.to_dict() if limits.any or limits.spec_timeout else None, **_limited(limited)}

    @_operation()
    def queue_claim(self, owner=None, ttl=None, project=None, labels=None, wait=0.0) -> dict:
        """Take the next spec with a lease; with ``wait``, poll the files for work up to that
        many seconds first (the daemon never calls it with a wait: it waits on the
        workspace's events instead, see ``Op.waits``)."""
        if wait:
            row, lease = self.queue.claim(self._owner(owner), self._timed(ttl), project, labels, wait=wait)
        else:
            row, lease = self.queue.claim_nowait(self._owner(owner), self._timed(ttl), project, labels)
        self._done()
        return {"spec": self.summary(row), "lease": lease.to_dict()}

    # operations: the daemon

    @_operation(specs=False)
    def daemon_status(self) -> dict:
        from .errors import Unavailable

        if self.service is None:
            raise Unavailable("no daemon serves this repository")
        return self.service()

    # operations: the index

    @_operation()
    def index_status(self) -> dict:
        changes = self._fresh()
        stats = self.index.statistics()
        stats.update(
            {
                "specs": len(self.table.rows),
                "active": len(self.table.active),
                "archived": len(self.table.archived),
                "broken": len(self.table.broken),
                "table_path": self.cache_dir,
                "changed_since_last_run": 0 if changes is None else len(changes.added + changes.changed + changes.removed),
            }
        )
        self._done()
        return stats

    def prepare_rebuild(self):
        """The long part of :meth:`index_rebuild`: every file read into a new spec table and
        every document written into the index again, while the table in use stays as it was
        (a daemon's leases and queue go on reading it meanwhile; its searches wait, since the
        index is being rewritten). Returns what :meth:`index_rebuild` takes as ``prepared``."""
        from .table import SpecTable

        started = time.perf_counter()
        fresh = SpecTable(self.store, None)  # memory only: this one is adopted, never saved itself
        index = self.index
        index.reset()
        index.follow(fresh)
        try:
            fresh.refresh(save=False, full=True, progress=self.progress, stream=index.stream(self.progress))
            index.sync(progress=self.progress)  # what the stream did not write (a small repository: all)
            fresh.graph  # noqa: B018 - computed here, with the rest of the long work
            documents = index.indexed()
        finally:
            index.follow(self.table)
        return _Rebuilt(fresh, documents, started)

    @_operation()
    def index_rebuild(self, prepared=None) -> dict:
        """Rebuild the table and index from the files (``prepared``: see :meth:`prepare_rebuild`)."""
        if prepared is None:
            prepared = self.prepare_rebuild()
        # the table was read from nothing again: subscribers are told what differs from before
        before = self._events.mute() if self._events is not None else None
        try:
            self.table.adopt(prepared.table)  # the short part: the new rows, their maps and graph take over
        finally:
            if self._events is not None:
                self._events.rebuilt(before)
        self._gate = None
        self._encoded.clear()
        self.table.save()
        return {"documents": prepared.documents, "specs": len(self.table.rows),
                "seconds": round(time.perf_counter() - prepared.started, 3)}


def _attempts(retry_state) -> int:
    """The failures ``retry_state`` records (``attempts``; anything unreadable counts 0)."""
    value = retry_state.get("attempts") if isinstance(retry_state, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _failure(spec, max_retries: int, now: str) -> dict:
    """The frontmatter a failure writes: one more attempt in ``retry_state`` (upstream's key:
    ``attempts``, ``last_retry_time``; other keys there are kept), and ``failed``, which is
    ready, while the failures stay within ``max_retries`` retries, else ``needs_attention``."""
    state = spec.frontmatter.get("retry_state")
    attempts = _attempts(state) + 1
    kept = dict(state) if isinstance(state, dict) else {}
    kept.update(attempts=attempts, last_retry_time=now)
    return {"status": "failed" if attempts <= max_retries else "needs_attention", "retry_state": kept}


def _edit(spec_id: str, values):
    """The change of a spec's text that sets frontmatter ``values`` (a dict, or a callable
    ``values(spec) -> dict`` worked out from the text being edited)."""

    def change(text: str) -> str:
        from .spec import Spec

        spec = Spec.parse(spec_id, text)
        return spec.with_values(values(spec) if callable(values) else values).render()

    return change


class _Completion:
    """What :meth:`Workspace.complete` writes into one spec file, and, prepared, that edit
    staged (:meth:`Workspace.prepare_complete`)."""

    __slots__ = ("spec_id", "relpath", "values", "keys", "wrote", "staged")

    def __init__(self, spec_id: str, relpath: str, values, keys, wrote: dict) -> None:
        self.spec_id, self.relpath, self.values, self.keys, self.wrote = spec_id, relpath, values, keys, wrote
        self.staged: StagedEdit | None = None

    def discard(self) -> None:
        """Drop the staged edit, if it was not put in place (idempotent)."""
        staged, self.staged = self.staged, None
        if staged is not None:
            staged.discard()


class _Rebuilt:
    """What :meth:`Workspace.prepare_rebuild` made."""

    __slots__ = ("table", "documents", "started")

    def __init__(self, table, documents: int, started: float) -> None:
        self.table, self.documents, self.started = table, documents, started


def _fields(fields) -> tuple | None:
    """``fields`` as a tuple (a key of the encoding memo); unknown names are refused."""
    if fields is None:
        return None
    fields = tuple(fields)
    unknown = [f for f in fields if f not in SPEC_FIELDS]
    if unknown:
        raise InvalidValue(f"unknown spec field(s): {', '.join(unknown)}; known: {', '.join(SPEC_FIELDS)}")
    return fields


def _stamp(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
