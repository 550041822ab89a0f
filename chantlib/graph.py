"""Ready, blocked and order over a set of specs (docs/chant-format.md §4-5).

Pure functions over rows that expose ``id``, ``status``, ``type``, ``depends_on`` (``None``
when the key is absent), ``approval`` (``(required, status, by, at)`` or ``None``),
``total`` (acceptance checkboxes) and ``priority``. No I/O, import-light: the CLI's fast
path runs this on every ``list --ready``. A long-lived owner (the daemon's spec table) keeps
one graph and tells it what changed (:meth:`Graph.update`) instead of building a new one.

The rules, in short. A spec is *blocked* when a ``depends_on`` ID is missing or not done
(done = ``completed`` or ``cancelled``, looked up among active specs, then the archive: the
archive fix), when it is a member whose driver depends on a non-sibling that is not done, or
when it is ``pending`` and needs an approval it does not have. A spec is *ready* when it is
``pending`` or ``failed``, not blocked, and, for a member without a ``depends_on`` key,
every earlier sibling that exists is done; a spec with members and its own acceptance
checkboxes also waits for all its members to be ``completed``.
"""

from __future__ import annotations

from itertools import chain

from .ids import driver_of, sort_key

__all__ = ["Graph", "DONE", "member_number", "queue_key"]

DONE = frozenset(("completed", "cancelled"))
READY_STATUSES = frozenset(("pending", "failed"))


def member_number(spec_id: str) -> int | None:
    """The first number after the first ``.`` (``X.2.1`` → 2), as upstream."""
    pos = spec_id.find(".")
    if pos == -1:
        return None
    digits = []
    for ch in spec_id[pos + 1 :]:
        if not ch.isdigit():
            break
        digits.append(ch)
    return int("".join(digits)) if digits else None


def queue_key(row) -> tuple:
    """Queue order: priority (higher first), then the chant order (then the ID itself, so that
    two IDs the chant order ranks alike still have one order)."""
    return (-(row.priority if row.priority is not None else 50), sort_key(row.id), row.id)


def _ready_key(spec_id: str) -> tuple:
    return (sort_key(spec_id), spec_id)


class Graph:
    """The computed states of a set of specs.

    ``active``: id -> row for the specs under ``specs/``; ``archived``: id -> status for the
    archive (used only to decide whether a dependency is done; anything with ``get``).

    The states are worked out for the whole set on first use (:meth:`_compute`, the
    reference). After that, a long-lived owner that changes ``active`` or ``archived`` in
    place tells the graph with :meth:`update`, which re-decides only the specs whose state
    the change can touch and keeps ``ready`` and the queue sorted by inserting and removing,
    so one changed file costs work in proportion to its neighbours, not to the repository.
    """

    __slots__ = (
        "active", "archived", "_members", "_drivers", "_rdeps", "_blocked", "_ready", "_ready_keys", "_ready_set",
        "_cycles", "_queue", "_queue_keys", "_queued", "_ready_changes", "_order", "_order_keys", "_followers",
    )

    def __init__(self, active: dict, archived=None) -> None:
        self.active = active
        self.archived = archived if archived is not None else {}
        members: dict[str, list[str]] = {}
        drivers: dict[str, str] = {}
        for spec_id in active:
            if "." in spec_id:
                driver = driver_of(spec_id)
                if driver is not None:
                    members.setdefault(driver, []).append(spec_id)
                    drivers[spec_id] = driver
        self._members = members
        self._drivers = drivers
        # dependency ID -> the active specs that name it in depends_on: made by the first
        # update (a short-lived graph, the CLI's, never needs it)
        self._rdeps: dict[str, set[str]] | None = None
        self._blocked: set[str] | None = None
        self._ready: list[str] | None = None
        self._ready_keys: list[tuple] | None = None  # _ready_key() of each entry of _ready, for bisect
        self._ready_set: set[str] = set()
        self._queue: list | None = None
        self._queue_keys: list[tuple] = []  # queue_key() of each row of _queue, for bisect
        self._queued: dict[str, tuple] = {}  # id -> its key in _queue_keys
        self._cycles: list[list[str]] | None = None
        self._ready_changes: set[str] | None = None  # see take_ready_changes()
        self._order: list[str] | None = None  # every active ID in chant order, once asked for
        self._order_keys: list[tuple] = []
        self._followers: list[Follower] = []  # see follow()

    # single-spec rules

    def is_done(self, spec_id: str) -> bool:
        row = self.active.get(spec_id)
        if row is not None:
            return row.status in DONE
        return self.archived.get(spec_id) in DONE

    def dep_state(self, spec_id: str) -> str:
        """``completed``/``pending``/... for a dependency; ``missing`` when nowhere."""
        row = self.active.get(spec_id)
        if row is not None:
            return row.status
        status = self.archived.get(spec_id)
        return "missing" if status is None else status

    def blockers(self, row) -> list[tuple[str, str]]:
        """Why ``row`` is blocked: ``(kind, detail)`` pairs; empty when it is not.

        Kinds: ``dependency`` (detail: the ID), ``driver_dependency`` (the ID),
        ``approval`` (the approval status).
        """
        out: list[tuple[str, str]] = []
        for dep in row.depends_on or ():
            if not self.is_done(dep):
                out.append(("dependency", dep))
        driver = self._drivers.get(row.id) if row.id in self.active else driver_of(row.id)
        if driver is not None:
            drow = self.active.get(driver)
            if drow is not None:
                for dep in drow.depends_on or ():
                    if dep.startswith(driver + ".") or dep == driver:
                        continue
                    if not self.is_done(dep):
                        out.append(("driver_dependency", dep))
        if row.status == "pending" and row.approval is not None:
            required, status = row.approval[0], row.approval[1]
            if required and status != "approved":
                out.append(("approval", status or "pending"))
        return out

    def waiting_on(self, row) -> list[str]:
        """Specs a not-blocked spec still waits for: earlier siblings, or its own members."""
        waits: list[str] = []
        driver = self._drivers.get(row.id) if row.id in self.active else driver_of(row.id)
        if driver is not None and row.depends_on is None:
            n = member_number(row.id)
            if n is not None:
                for i in range(1, n):
                    sib = self.active.get(f"{driver}.{i}")
                    if sib is not None and sib.status not in DONE:
                        waits.append(sib.id)
        if row.total:
            for member in self._members.get(row.id, ()):
                if self.active[member].status != "completed":
                    waits.append(member)
        return waits

    def is_blocked(self, row) -> bool:
        return bool(self.blockers(row))

    def is_ready(self, row) -> bool:
        return row.status in READY_STATUSES and not self.blockers(row) and not self.waiting_on(row)

    def _state(self, row) -> tuple[bool, bool]:
        """(ready, blocked) of one active row: each spec's blockers are worked out once."""
        status = row.status
        if status in READY_STATUSES:
            found = self.blockers(row)
            return (not found and not self.waiting_on(row)), (bool(found) and status == "pending")
        return False, status == "blocked"

    # the whole set

    def _compute(self) -> None:
        """Ready and blocked for every spec: the reference that :meth:`update` keeps up with."""
        ready: list[str] = []
        blocked: set[str] = set()
        state = self._state
        for spec_id, row in self.active.items():
            is_ready, is_blocked = state(row)
            if is_ready:
                ready.append(spec_id)
            if is_blocked:
                blocked.add(spec_id)
        keys = sorted(_ready_key(i) for i in ready)
        self.restore([k[1] for k in keys], blocked, keys)

    def _compute_keys(self) -> list[tuple]:
        """The bisect keys of ``ready``, made when an update first needs them (a cached ready
        list was saved in this order; one saved by an older version is put in it here)."""
        if self._ready_keys is None:
            ready = self.ready
            keys = [_ready_key(i) for i in ready]
            if any(keys[i] > keys[i + 1] for i in range(len(keys) - 1)):
                keys.sort()
                ready[:] = [k[1] for k in keys]
            self._ready_keys = keys
        return self._ready_keys

    @property
    def computed(self) -> bool:
        """Ready and blocked are worked out (or restored): reading them costs nothing."""
        return self._ready is not None

    def restore(self, ready, blocked, keys=None) -> None:
        """Take ready and blocked as computed (by :meth:`_compute`, with their keys, or cached
        with the table, in chant order)."""
        self._ready = list(ready)
        self._ready_keys = keys
        self._ready_set = set(self._ready)
        self._blocked = set(blocked)
        self._queue = None
        for follower in self._followers:
            follower.lost = True  # every state may have changed

    @property
    def ready(self) -> list[str]:
        """IDs of ready specs (groups included), in chant order (a live list: do not change it)."""
        if self._ready is None:
            self._compute()
            assert self._ready is not None
        return self._ready

    @property
    def queue_rows(self) -> list:
        """Ready rows that are work (groups left out), in queue order (a live list)."""
        if self._queue is None:
            active = self.active
            keyed = sorted((queue_key(row), row) for row in (active[i] for i in self.ready) if row.type != "group")
            self._queue_keys = [k for k, _row in keyed]
            self._queue = [row for _k, row in keyed]
            self._queued = dict(zip((row.id for row in self._queue), self._queue_keys, strict=True))
        return self._queue

    @property
    def order(self) -> list[str]:
        """Every active ID in chant order (a live list, kept sorted across updates)."""
        if self._order is None:
            self._order_keys = sorted(_ready_key(i) for i in self.active)
            self._order = [k[1] for k in self._order_keys]
        return self._order

    @property
    def ready_set(self) -> set[str]:
        if self._ready is None:
            self._compute()
        return self._ready_set

    @property
    def blocked(self) -> set[str]:
        """What ``--status blocked`` shows: stored ``blocked``, or pending and blocked by the rules."""
        if self._blocked is None:
            self._compute()
            assert self._blocked is not None
        return self._blocked

    def display_status(self, row) -> str:
        """The stored status, except ``blocked`` for a pending spec the rules block."""
        if row.status == "pending" and row.id in self.blocked:
            return "blocked"
        return row.status

    def members(self, spec_id: str) -> list[str]:
        return sorted(self._members.get(spec_id, ()), key=sort_key)

    @property
    def cycles(self) -> list[list[str]]:
        """Dependency cycles among active specs, each as a list of IDs (first ID repeated last)."""
        if self._cycles is None:
            self._cycles = _find_cycles(self.active)
        return self._cycles

    def cycles_through(self, spec_ids) -> list[list[str]]:
        """The :attr:`cycles` whose component holds one of ``spec_ids``, at the cost of the
        specs those reach through ``depends_on`` (a component lies wholly within what any of
        its members reaches), not of the whole table: what linting a few saved specs needs
        (at 200,000 specs the whole search took ~70 ms per save)."""
        wanted = {spec_id for spec_id in spec_ids if spec_id in self.active}
        if not wanted:
            return []
        found = self._cycles if self._cycles is not None else _find_cycles(self.active, wanted)
        return [cycle for cycle in found if wanted.intersection(cycle)]

    # keeping up with changes

    def take_ready_changes(self) -> set[str] | None:
        """The IDs whose readiness :meth:`update` changed since the last call; ``None`` on the
        first call (then read ``ready`` itself). For an owner that follows the ready set
        (the daemon's queue-wait metric) without walking it on every change."""
        if self._ready is None:
            self._compute()
        changes, self._ready_changes = self._ready_changes, set()
        return changes

    def follow(self) -> Follower:
        """A :class:`Follower` that every later :meth:`update` tells which specs it may have
        changed the row or state of, for an owner that keeps a view in step (the daemon's
        kept ``list`` answers); :meth:`unfollow` it when done."""
        follower = Follower()
        self._followers.append(follower)
        return follower

    def unfollow(self, follower: Follower) -> None:
        if follower in self._followers:
            self._followers.remove(follower)

    def update(self, changed: dict, archived=()) -> None:
        """``active`` and ``archived`` were changed in place: follow.

        ``changed``: active ID -> its row before the change (``None``: it was not there; its
        row now is ``active.get(id)``); ``archived``: archive IDs whose entry changed. Only the
        specs whose state a change can touch are decided again: the spec, the specs that
        depend on it, the members of either (a driver's dependencies block its members),
        its driver (which waits for its members) and its siblings (which wait for earlier
        ones). The result equals a graph built from scratch over the same rows.
        """
        members, drivers, rdeps = self._members, self._drivers, self._reverse()
        for spec_id, old in changed.items():
            new = self.active.get(spec_id)
            old_deps = set(old.depends_on or ()) if old is not None else set()
            new_deps = set(new.depends_on or ()) if new is not None else set()
            for dep in old_deps - new_deps:
                users = rdeps.get(dep)
                if users is not None:
                    users.discard(spec_id)
                    if not users:
                        del rdeps[dep]
            for dep in new_deps - old_deps:
                rdeps.setdefault(dep, set()).add(spec_id)
            if (old is None) != (new is None) and self._order is not None:
                from bisect import bisect_left  # here, not at import time: the CLI never needs it

                key = _ready_key(spec_id)
                at = bisect_left(self._order_keys, key)
                if new is None:
                    del self._order_keys[at]
                    del self._order[at]
                else:
                    self._order_keys.insert(at, key)
                    self._order.insert(at, spec_id)
            if (old is None) != (new is None) and "." in spec_id:
                driver = driver_of(spec_id)
                if driver is not None:
                    if new is None:
                        siblings = members[driver]
                        siblings.remove(spec_id)
                        if not siblings:
                            del members[driver]
                        del drivers[spec_id]
                    else:
                        members.setdefault(driver, []).append(spec_id)
                        drivers[spec_id] = driver
        self._cycles = None
        followers = self._followers
        for follower in followers:
            follower.ids.update(changed)
        if self._ready is None:
            return  # nothing computed yet: the first use computes it all
        touched: set[str] = set()
        for spec_id in chain(changed, archived):
            touched.add(spec_id)
            dependents = rdeps.get(spec_id, ())
            touched.update(dependents)
            for holder in chain((spec_id,), dependents):
                touched.update(members.get(holder, ()))
            driver = driver_of(spec_id) if "." in spec_id else None
            if driver is not None:
                touched.add(driver)
                touched.update(members.get(driver, ()))
        for spec_id in touched:
            self._settle(spec_id, spec_id in changed)
        for follower in followers:
            follower.ids.update(touched)  # their ready and blocked states were decided again

    def dependents(self, spec_id: str) -> set[str]:
        """Active specs whose ``depends_on`` names ``spec_id`` (present or not)."""
        return self._reverse().get(spec_id, set())

    def _reverse(self) -> dict[str, set[str]]:
        if self._rdeps is None:
            rdeps: dict[str, set[str]] = {}
            for spec_id, row in self.active.items():
                for dep in row.depends_on or ():
                    rdeps.setdefault(dep, set()).add(spec_id)
            self._rdeps = rdeps
        return self._rdeps

    def _settle(self, spec_id: str, row_changed: bool) -> None:
        """Decide one spec again and move it in or out of the sorted views."""
        from bisect import bisect_left

        row = self.active.get(spec_id)
        ready, blocked = self._state(row) if row is not None else (False, False)
        if blocked:
            self.blocked.add(spec_id)
        else:
            self.blocked.discard(spec_id)
        was = spec_id in self._ready_set
        if ready != was:
            key = _ready_key(spec_id)
            keys = self._compute_keys()
            at = bisect_left(keys, key)
            if ready:
                keys.insert(at, key)
                self.ready.insert(at, spec_id)
                self._ready_set.add(spec_id)
            else:
                del keys[at]
                del self.ready[at]
                self._ready_set.discard(spec_id)
            if self._ready_changes is not None:
                self._ready_changes.add(spec_id)
        if self._queue is not None and (ready != was or row_changed):
            old = self._queued.pop(spec_id, None)
            if old is not None:
                at = bisect_left(self._queue_keys, old)
                del self._queue_keys[at]
                del self._queue[at]
            if ready and row is not None and row.type != "group":  # (ready implies a row)
                key = queue_key(row)
                at = bisect_left(self._queue_keys, key)
                self._queue_keys.insert(at, key)
                self._queue.insert(at, row)
                self._queued[spec_id] = key


class Follower:
    """What :meth:`Graph.update` tells one follower: ``ids``, the specs whose row, ready or
    blocked state may have changed since the follower last emptied it; ``lost``: every
    state was set anew (the follower must start again)."""

    __slots__ = ("ids", "lost")

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.lost = False


def _find_cycles(active: dict, roots=None) -> list[list[str]]:
    """Every strongly connected component with a cycle, reported once, in chant order; with
    ``roots``, those reachable from them (each whole: Tarjan's search from a root completes
    every component it enters)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0

    def edges(node: str):
        row = active.get(node)
        return [d for d in (row.depends_on or ()) if d in active] if row is not None else []

    for root in sorted(active if roots is None else roots, key=sort_key):
        if root in index:
            continue
        # iterative Tarjan: (node, iterator over its edges)
        work = [(root, iter(edges(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges(nxt))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1 or node in edges(node):
                    comp.sort(key=sort_key)
                    cycles.append(_cycle_path(comp, edges))
    cycles.sort(key=lambda c: sort_key(c[0]))
    return cycles


def _cycle_path(component: list[str], edges) -> list[str]:
    """A shortest cycle through the component's first ID (breadth-first), closed."""
    members = set(component)
    start = component[0]
    parent: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for dep in edges(node):
                if dep not in members:
                    continue
                if dep == start:
                    path = [node]
                    step = parent[node]
                    while step is not None:
                        path.append(step)
                        step = parent[step]
                    path.reverse()
                    return path + [start]
                if dep not in parent:
                    parent[dep] = node
                    nxt_frontier.append(dep)
        frontier = nxt_frontier
    return component + [start]  # unreachable for a strongly connected component
