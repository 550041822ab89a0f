"""Ready, blocked and order over a set of specs (docs/chant-format.md §4-5).

Pure functions over rows that expose ``id``, ``status``, ``type``, ``depends_on`` (``None``
when the key is absent), ``approval`` (``(required, status, by, at)`` or ``None``),
``total`` (acceptance checkboxes) and ``priority``. No I/O, import-light: the CLI's fast
path runs this on every ``list --ready``.

The rules, in short. A spec is *blocked* when a ``depends_on`` ID is missing or not done
(done = ``completed`` or ``cancelled``, looked up among active specs, then the archive: the
archive fix), when it is a member whose driver depends on a non-sibling that is not done, or
when it is ``pending`` and needs an approval it does not have. A spec is *ready* when it is
``pending`` or ``failed``, not blocked, and, for a member without a ``depends_on`` key,
every earlier sibling that exists is done; a spec with members and its own acceptance
checkboxes also waits for all its members to be ``completed``.
"""

from __future__ import annotations

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
    """Queue order: priority (higher first), then the chant order."""
    return (-(row.priority if row.priority is not None else 50), sort_key(row.id))


class Graph:
    """The computed states of a set of specs.

    ``active``: id -> row for the specs under ``specs/``; ``archived``: id -> status for the
    archive (used only to decide whether a dependency is done).
    """

    __slots__ = (
        "active", "archived", "_members", "_drivers", "_blocked", "_ready", "_ready_set", "_cycles", "_queue",
    )

    def __init__(self, active: dict, archived: dict | None = None) -> None:
        self.active = active
        self.archived = archived or {}
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
        self._blocked: set[str] | None = None
        self._ready: list[str] | None = None
        self._ready_set: frozenset[str] | None = None
        self._queue: list | None = None
        self._cycles: list[list[str]] | None = None

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

    # the whole set

    def _compute(self) -> None:
        """Ready and blocked in one pass: each spec's blockers are worked out once."""
        ready: list[str] = []
        blocked: set[str] = set()
        for spec_id, row in self.active.items():
            status = row.status
            if status in READY_STATUSES:
                found = self.blockers(row)
                if found and status == "pending":
                    blocked.add(spec_id)
                if not found and not self.waiting_on(row):
                    ready.append(spec_id)
            elif status == "blocked":
                blocked.add(spec_id)
        ready.sort(key=sort_key)
        if self._ready is None:
            self._ready = ready
        if self._blocked is None:
            self._blocked = blocked

    @property
    def ready(self) -> list[str]:
        """IDs of ready specs (groups included), in chant order."""
        if self._ready is None:
            self._compute()
        return self._ready

    @property
    def queue_rows(self) -> list:
        """Ready rows that are work (groups left out), in queue order: computed once."""
        if self._queue is None:
            active = self.active
            rows = [active[i] for i in self.ready if active[i].type != "group"]
            rows.sort(key=queue_key)
            self._queue = rows
        return self._queue

    @property
    def ready_set(self) -> frozenset[str]:
        if self._ready_set is None:
            self._ready_set = frozenset(self.ready)
        return self._ready_set

    @property
    def blocked(self) -> set[str]:
        """What ``--status blocked`` shows: stored ``blocked``, or pending and blocked by the rules."""
        if self._blocked is None:
            self._compute()
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


def _find_cycles(active: dict) -> list[list[str]]:
    """Every strongly connected component with a cycle, reported once, in chant order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0

    def edges(node: str):
        row = active.get(node)
        return [d for d in (row.depends_on or ()) if d in active] if row is not None else []

    for root in sorted(active, key=sort_key):
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
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    path.reverse()
                    return path + [start]
                if dep not in parent:
                    parent[dep] = node
                    nxt_frontier.append(dep)
        frontier = nxt_frontier
    return component + [start]  # unreachable for a strongly connected component
