"""Events: what changed in a workspace, told to whoever subscribed (docs/library.md, "Events").

One observer interface: ``unsubscribe = workspace.subscribe(callback)``; ``callback(event)``
is called with one :class:`Event` per step that changed something: an operation (``add``,
``complete``, ``lock_acquire``, ``queue_claim``, ``index rebuild``...), a batch of file
events (:meth:`Workspace.apply_changes <chantlib.workspace.Workspace.apply_changes>`), a
refresh (what direct mode does before each operation), or a lease change made on the
workspace's lock table outside an operation (the daemon's sweep). A step that changed
nothing tells nothing.

What an event says, and from where it is counted: the spec files as the workspace last saw
them (for one that has not read its specs yet, the spec table as last saved, or nothing when
there is none; loading that saved table is not a change), and the ready set worked out from
them. So a daemon's start tells what changed while it was down, and a direct-mode command
what changed since the last one.

Nothing here is imported, and nothing is followed, until someone subscribes: a workspace
without subscribers pays a test of ``None`` per operation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .table import weakly

if TYPE_CHECKING:
    from .locks import Lease

__all__ = ["Event", "Applied", "Publisher", "spec_changes", "changed_specs"]

#: the lease kinds a lock table tells (see LockTable.listeners), in an event's field order
LEASE_KINDS = ("acquired", "released", "renewed", "expired")


@dataclass(frozen=True, slots=True)
class Event:
    """What one step changed. Every field is a tuple, empty when nothing of that kind moved.

    Specs are named by ID (a spec file's name is its ID), each tuple sorted:

    - ``added``, ``modified``, ``removed``: spec files that appeared, changed or went, under
      ``specs/`` or ``archive/`` alike. A spec whose file moved (archived, renamed into
      another folder) is ``modified``; so is one of two files with one ID when the other
      comes or goes.
    - ``ready``, ``unready``: specs that became ready, or stopped being ready (the rules of
      :mod:`chantlib.graph`: ``list --ready`` and the queue start from this set).

    Leases are :class:`~chantlib.locks.Lease` objects, in the order they happened:

    - ``acquired``: taken (a claim, ``lock acquire``); ``renewed``: extended (the new expiry);
    - ``released``: let go (``lock release``, ``complete``), or taken over by force;
    - ``expired``: an expired lease freed (by the sweep, by a release with force, or by the
      acquire that took it). A lease's expiry is told when it is freed, not at its instant.
    """

    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    ready: tuple[str, ...] = ()
    unready: tuple[str, ...] = ()
    acquired: tuple[Lease, ...] = ()
    released: tuple[Lease, ...] = ()
    renewed: tuple[Lease, ...] = ()
    expired: tuple[Lease, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.added or self.modified or self.removed or self.ready or self.unready
            or self.acquired or self.released or self.renewed or self.expired
        )

    @property
    def specs(self) -> tuple[str, ...]:
        """Every spec whose file changed (added, modified or removed), sorted."""
        return tuple(sorted({*self.added, *self.modified, *self.removed}))

    @property
    def leases(self) -> tuple[Lease, ...]:
        """Every lease change, whatever its kind."""
        return self.acquired + self.released + self.renewed + self.expired


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`Workspace.apply_changes <chantlib.workspace.Workspace.apply_changes>` did:
    ``documents`` written to or deleted from the index, and the spec files it found added,
    modified or removed (by ID, as in :class:`Event`). Readiness is told to subscribers."""

    documents: int
    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def _id(relpath: str) -> str:
    return relpath[relpath.rfind("/") + 1 : -3]


def _note(kinds: dict[str, str], relpath: str, kind: str) -> None:
    """Fold one path's change into what is known of it since the last event."""
    before = kinds.get(relpath)
    if before is None:
        kinds[relpath] = kind
    elif before == "added":
        if kind == "removed":
            del kinds[relpath]  # came and went: nothing happened
    elif before == "modified":
        if kind == "removed":
            kinds[relpath] = "removed"
    elif kind != "removed":  # went, and is back
        kinds[relpath] = "modified"


def _note_changes(kinds: dict[str, str], changes) -> None:
    for rel in changes.added:
        _note(kinds, rel, "added")
    for rel in changes.changed:
        _note(kinds, rel, "modified")
    for rel in changes.removed:
        _note(kinds, rel, "removed")


def spec_changes(kinds: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(added, modified, removed) spec IDs of path changes (relpath -> kind): a spec whose
    file went from one place and came in another is modified, and so is a spec that still
    has a file when another file of its ID came or went."""
    added: set[str] = set()
    modified: set[str] = set()
    removed: set[str] = set()
    pick = {"added": added, "modified": modified, "removed": removed}
    for rel, kind in kinds.items():
        pick[kind].add(_id(rel))
    modified |= added & removed
    added -= modified
    removed -= modified
    return tuple(sorted(added)), tuple(sorted(modified)), tuple(sorted(removed))


def changed_specs(changes) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(added, modified, removed) spec IDs of one :class:`~chantlib.table.Changes`."""
    kinds: dict[str, str] = {}
    _note_changes(kinds, changes)
    return spec_changes(kinds)


class _Pending(threading.local):
    """What one thread's steps changed since it last told (each thread tells its own: a
    lease answered on the daemon's event loop while its worker thread applies files)."""

    def __init__(self) -> None:
        self.depth = 0  # steps under way on this thread: the outermost tells at its end
        self.muted = False  # a rebuild: its table changes are told as a diff (see rebuilt)
        self.paths: dict[str, str] = {}
        self.leases: list[tuple[str, Lease]] = []
        self.specs_moved = False  # the table changed: readiness may have moved


class Publisher:
    """A workspace's subscribers, and what changed since they were last told.

    The workspace makes one on the first :meth:`subscribe`. It listens to the spec table
    (:attr:`SpecTable.listeners <chantlib.table.SpecTable.listeners>`) and to the lock
    table (:attr:`LockTable.listeners <chantlib.locks.LockTable.listeners>`), and follows
    the ready set through the graph's ready changes (one graph patched in place costs what
    changed; a graph rebuilt is compared with the last one, once). ``warn(text)`` reports a
    subscriber that raised; it stays subscribed and the others are still told.
    """

    def __init__(self, table, warn) -> None:
        self.table = table
        self.warn = warn
        self.subscribers: tuple = ()
        self._pending = _Pending()
        self._mutex = threading.Lock()
        self._graph = None  # the graph whose ready set subscribers were last told of
        self._locks = None
        self._on_table = weakly(self._noted)
        self._on_locks = weakly(self._leased)
        table.listeners.append(self._on_table)

    # subscribing

    def subscribe(self, callback, *, leases: bool = True):
        """Tell ``callback(event)`` of every change from now on; returns ``unsubscribe()``.
        ``leases=False``: not told of steps that changed only leases; while no subscriber
        wants lease changes, the lock table is not followed at all (a lease operation then
        costs what it did without subscribers)."""
        entry = (callback, leases)
        with self._mutex:
            first = not self.subscribers
            self.subscribers = self.subscribers + (entry,)
        if first:
            self._graph = None  # followed again from here
            pending = self._pending
            pending.paths, pending.leases, pending.specs_moved = {}, [], False
            if self.table.loaded:
                self.baseline()
        self._follow_locks()

        def unsubscribe() -> None:
            with self._mutex:
                subscribers = list(self.subscribers)
                for i, known in enumerate(subscribers):
                    if known is entry:
                        del subscribers[i]
                        break
                self.subscribers = tuple(subscribers)
            self._follow_locks()

        return unsubscribe

    def watch_locks(self, locks) -> None:
        """The workspace's lock table (made, or swapped): followed while a subscriber wants
        lease changes."""
        if locks is not self._locks:
            self._listen(False)
            self._locks = locks
        self._follow_locks()

    def _follow_locks(self) -> None:
        self._listen(any(leases for _callback, leases in self.subscribers))

    def _listen(self, on: bool) -> None:
        locks = self._locks
        if locks is None:
            return
        listening = self._on_locks in locks.listeners
        if on and not listening:
            locks.listeners.append(self._on_locks)
        elif not on and listening:
            locks.listeners.remove(self._on_locks)

    def baseline(self) -> None:
        """Take the ready set readiness is told from, before the specs may change (a step
        that reads the files calls it first; the table is loaded for it)."""
        if self._graph is None and self.subscribers:
            self.table.load()
            graph = self.table.graph
            graph.take_ready_changes()  # worked out now, and followed from here
            self._graph = graph

    # steps

    def hold(self) -> None:
        """A step begins: what it changes is told once, at its end (:meth:`done`)."""
        self._pending.depth += 1

    def done(self) -> None:
        pending = self._pending
        pending.depth -= 1
        if not pending.depth:
            self.publish()

    def mute(self) -> dict | None:
        """A rebuild begins: the table is read again from nothing, so its changes are told
        as the difference of the rows before and after (:meth:`rebuilt`). Returns the rows
        before (``None`` when nobody listens)."""
        if not self.subscribers:
            return None
        self.baseline()
        self._pending.muted = True
        return dict(self.table.rows)

    def rebuilt(self, before: dict | None) -> None:
        pending = self._pending
        pending.muted = False
        if before is None:
            return
        rows = self.table.rows
        paths = pending.paths
        for rel, row in rows.items():
            old = before.get(rel)
            if old is None:
                _note(paths, rel, "added")
            elif old != row:
                _note(paths, rel, "modified")
        for rel in before:
            if rel not in rows:
                _note(paths, rel, "removed")
        pending.specs_moved = True

    # the tables' listeners

    def _noted(self, changes) -> None:
        pending = self._pending
        if pending.muted or not self.subscribers:
            return
        _note_changes(pending.paths, changes)
        pending.specs_moved = True
        if not pending.depth:  # a change made around the workspace (a script on ws.table)
            self.publish()

    def _leased(self, changes: list) -> None:
        if not self.subscribers:
            return
        pending = self._pending
        pending.leases.extend(changes)
        if not pending.depth:
            self.publish()

    # telling

    def publish(self) -> None:
        """Tell the subscribers what this thread's steps changed since it last told."""
        pending = self._pending
        paths, leases, moved = pending.paths, pending.leases, pending.specs_moved
        if not (paths or leases or moved):
            return
        if paths:
            pending.paths = {}
        if leases:
            pending.leases = []
        pending.specs_moved = False
        if not self.subscribers:
            return
        try:
            event = self._event(paths, leases, moved)
        except Exception as exc:  # noqa: BLE001 - never the reason an operation fails
            self.warn(f"events: could not work out what changed ({type(exc).__name__}: {exc})")
            return
        if not event:
            return
        specs = bool(event.added or event.modified or event.removed or event.ready or event.unready)
        for callback, leases in self.subscribers:
            if not (leases or specs):
                continue  # only leases moved, and this one does not follow them
            try:
                callback(event)
            except Exception as exc:  # noqa: BLE001 - a subscriber's bug is not the workspace's
                name = getattr(callback, "__qualname__", None) or repr(callback)
                self.warn(f"an event subscriber ({name}) failed: {type(exc).__name__}: {exc}")

    def _event(self, paths: dict, leases: list, moved: bool) -> Event:
        # a lease operation (the daemon's hot path: a worker's renewals) builds no more than it needs
        added, modified, removed = spec_changes(paths) if paths else ((), (), ())
        ready, unready = self._readiness() if moved else ((), ())
        if not leases:
            return Event(added, modified, removed, ready, unready)
        if len(leases) == 1:
            kind, lease = leases[0]
            return Event(added, modified, removed, ready, unready, **{kind: (lease,)})
        by_kind: dict[str, list] = {kind: [] for kind in LEASE_KINDS}
        for kind, lease in leases:
            by_kind[kind].append(lease)
        return Event(added, modified, removed, ready, unready, *(tuple(by_kind[kind]) for kind in LEASE_KINDS))

    def _readiness(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(became ready, stopped being ready) since subscribers were last told."""
        graph = self.table.graph
        old = self._graph
        if old is None:  # no ready set taken before this change: follow from here
            graph.take_ready_changes()
            self._graph = graph
            return (), ()
        if graph is old:  # patched in place: it knows what flipped
            flipped = graph.take_ready_changes() or set()
        else:  # rebuilt: compare with the ready set last told (the old graph's, less its flips since)
            before = old.ready_set ^ (old.take_ready_changes() or set())
            graph.take_ready_changes()
            flipped = before ^ graph.ready_set
            self._graph = graph
        now = graph.ready_set
        return (tuple(sorted(i for i in flipped if i in now)), tuple(sorted(i for i in flipped if i not in now)))
