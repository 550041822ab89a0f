"""Queue: the ready specs that hold no live lease, in queue order.

Queue order is priority (higher first), then the chant order (docs/chant-format.md §5).
``list --ready`` leaves out ``type: group`` specs, and so does the queue: a group is a
container, not work. Nor does it hand out a spec lint reports an error for (an empty file,
no title, a broken approval, a duplicate ID, ...: see :class:`~chantlib.lint.Gate`): a
worker must not run an agent on nothing. :meth:`Queue.claim` takes the next spec with a lease in one step;
two claimers can never get the same spec, because the lease is taken with
``reentrant=False``, a spec another claimer won in the meantime is skipped, and a spec
is re-read once its lease is held (another claimer may have finished it and let go of
its lease since our view of the files was taken).
"""

from __future__ import annotations

from .errors import LockHeld, LockNotFound, NothingReady, StaleToken

TYPE_CHECKING = False  # no typing import at run time; mypy reads the block
if TYPE_CHECKING:
    from .limits import Tally
    from .lint import Gate

__all__ = ["Queue", "nothing_ready", "held_note", "limited_note"]


def held_note(held: int) -> str:
    """`` (N ready specs held back ...)`` for an empty queue that holds ``held`` specs back."""
    if not held:
        return ""
    return f" ({held} ready spec{'' if held == 1 else 's'} held back by lint errors; see `chant lint`)"


def limited_note(limited: int) -> str:
    """`` (N ready specs held back by scale.limits ...)``, for specs a limit keeps back."""
    if not limited:
        return ""
    return f" ({limited} ready spec{'' if limited == 1 else 's'} held back by scale.limits: their project's leases)"


def nothing_ready(project: str | None = None, labels=None, held: int = 0, limited: int = 0,
                  full: str | None = None) -> str:
    """What an empty queue is called, by a peek and a claim alike (``held``: ready specs it
    holds back for lint errors; ``limited``: for their project's limit; ``full``: why no
    claim may be made at all, ``max_agents`` reached)."""
    if full:
        return f"No spec may be claimed now: {full}."
    where = []
    if project:
        where.append(f"project {project}")
    if labels:
        where.append("labels " + ", ".join(labels))
    return ("No ready specs in the queue" + (f" for {' and '.join(where)}" if where else "") + held_note(held)
            + limited_note(limited) + ".")


class Queue:
    """Ready work over a spec table and a lock table.

    ``table``: a :class:`~chantlib.table.SpecTable`; ``locks``: a :class:`~chantlib.locks.LockTable`;
    ``gate``: a callable giving the :class:`~chantlib.lint.Gate` of the table as it is (a
    :class:`~chantlib.workspace.Workspace` passes its own, with its config's ``lint.disable``;
    default: one with the default config).
    """

    def __init__(self, table, locks, *, refresh=None, gate=None, limits=None) -> None:
        self.table = table
        self.locks = locks
        self._refresh = refresh
        self._gate = gate if gate is not None else self._own_gate
        self._default_gate: Gate | None = None
        #: a callable giving the :class:`~chantlib.limits.Limits` claims are held to (None: none)
        self._limits = limits

    def _own_gate(self):
        gate = self._default_gate
        if gate is None:  # it follows the table's changes itself
            from .config import Config
            from .lint import Gate

            gate = self._default_gate = Gate(self.table, Config())
        return gate

    def _free(self, project: str | None, labels, held_back: list | None = None):
        """Ready work matching the filters with no live lease and no lint error, in queue
        order: a generator, so a peek or a claim stops at the first row it can use. The rows
        and the leases are as they were when it started; a claim re-checks both for the row
        it takes. Rows held back for lint errors are appended to ``held_back``."""
        if self._refresh is not None:
            self._refresh()
        wanted = set(labels or ())
        held = self.locks.held_specs()
        gate = self._gate()
        for row in self.table.graph.queue_rows:
            if project is not None and row.project != project:
                continue
            if wanted and not wanted.intersection(row.labels):
                continue
            if row.id in held:
                continue
            if gate.errors(row):
                if held_back is not None:
                    held_back.append(row)
                continue
            yield row

    def _tally(self) -> Tally | None:
        """The live leases counted against the limits, or ``None`` when there are none."""
        limits = self._limits() if self._limits is not None else None
        if limits is None or not limits.any:
            return None
        from .limits import Tally

        return Tally(limits, self.table, self.locks.leases())

    def _claimable(self, project: str | None, labels, held_back: list, limited: list):
        """:meth:`_free`'s rows that the limits let a claim take now (``limited``: those they
        keep back for their project's leases); nothing when ``max_agents`` is reached."""
        tally = self._tally()
        if tally is not None and tally.full():
            limited.append(tally.full())
            return
        for row in self._free(project, labels, held_back):
            if tally is not None and tally.project_full(row.project):
                limited.append(row)
                continue
            yield row

    @staticmethod
    def _nothing(project, labels, held_back: list, limited: list) -> NothingReady:
        full = next((why for why in limited if isinstance(why, str)), None)
        rows = sum(1 for row in limited if not isinstance(row, str))
        return NothingReady(nothing_ready(project, labels, len(held_back), rows, full), held=len(held_back) or None,
                            limited=rows or None, full=full)

    def items(self, project: str | None = None, labels=None, held_back: list | None = None) -> list:
        """Queued rows, in order (``held_back``: see :meth:`_free`)."""
        return list(self._free(project, labels, held_back))

    def claimable(self, project: str | None = None, labels=None, held_back: list | None = None,
                  limited: list | None = None) -> list:
        """The queued rows a claim may take now, in order: :meth:`items` less those the limits
        keep back (appended to ``limited``; a ``str`` there says why none may be taken)."""
        return list(self._claimable(project, labels, [] if held_back is None else held_back,
                                    [] if limited is None else limited))

    def __len__(self) -> int:
        return len(self.items())

    def next(self, project: str | None = None, labels=None):
        """The row that a claim would take now (the limits too), or ``None``."""
        return next(self._claimable(project, labels, [], []), None)

    def _still_ready(self, row):
        """``row`` re-read from its file if it is still queued work, else ``None``.

        Called with the spec's lease held, so no other claimer can finish it while we look.
        """
        self.table.refresh_paths([row.path])
        current = self.table.active.get(row.id)
        if current is None or current.type == "group" or row.id not in self.table.graph.ready_set:
            return None
        if self._gate().errors(current):
            return None
        return current

    def claim_nowait(self, owner: str, ttl: float | None = None, project: str | None = None, labels=None, pid=None):
        """Take the next spec with a lease: ``(row, lease)``; :class:`NothingReady` if none."""
        held_back: list = []
        limited: list = []
        for row in self._claimable(project, labels, held_back, limited):
            try:
                lease = self.locks.acquire(row.id, owner, ttl, reentrant=False, pid=pid)
            except LockHeld:
                continue  # another claimer won it between our snapshot and now
            current = self._still_ready(row)
            if current is None:
                # done (or changed) by another claimer since our snapshot: not work any more
                try:
                    self.locks.release(row.id, token=lease.token)
                except (LockNotFound, StaleToken):
                    pass
                continue
            return current, lease
        raise self._nothing(project, labels, held_back, limited)

    def claim(
        self, owner: str, ttl: float | None = None, project: str | None = None, labels=None, *, wait: float = 0.0,
        poll: float = 0.2, pid=None,
    ):
        """Like :meth:`claim_nowait`, but waits up to ``wait`` seconds for work to appear."""
        import time

        deadline = time.monotonic() + wait
        while True:
            try:
                return self.claim_nowait(owner, ttl, project, labels, pid=pid)
            except NothingReady:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
