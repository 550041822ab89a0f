"""Queue: the ready specs that hold no live lease, in queue order.

Queue order is priority (higher first), then the chant order (docs/chant-format.md §5).
``list --ready`` leaves out ``type: group`` specs, and so does the queue: a group is a
container, not work. :meth:`Queue.claim` takes the next spec with a lease in one step;
two claimers can never get the same spec, because the lease is taken with
``reentrant=False``, a spec another claimer won in the meantime is skipped, and a spec
is re-read once its lease is held (another claimer may have finished it and let go of
its lease since our view of the files was taken).
"""

from __future__ import annotations

from .errors import LockHeld, LockNotFound, NothingReady, StaleToken

__all__ = ["Queue"]


class Queue:
    """Ready work over a spec table and a lock table.

    ``table``: a :class:`~chantlib.table.SpecTable`; ``locks``: a :class:`~chantlib.locks.LockTable`.
    """

    def __init__(self, table, locks, *, refresh=None) -> None:
        self.table = table
        self.locks = locks
        self._refresh = refresh

    def _free(self, project: str | None, labels):
        """Ready work matching the filters with no live lease, in queue order: a generator,
        so a peek or a claim stops at the first row it can use. The rows and the leases are
        as they were when it started; a claim re-checks both for the row it takes."""
        if self._refresh is not None:
            self._refresh()
        wanted = set(labels or ())
        held = self.locks.held_specs()
        for row in self.table.graph.queue_rows:
            if project is not None and row.project != project:
                continue
            if wanted and not wanted.intersection(row.labels):
                continue
            if row.id not in held:
                yield row

    def items(self, project: str | None = None, labels=None) -> list:
        """Queued rows, in order."""
        return list(self._free(project, labels))

    def __len__(self) -> int:
        return len(self.items())

    def next(self, project: str | None = None, labels=None):
        """The row that a claim would take now, or ``None``."""
        return next(self._free(project, labels), None)

    def _still_ready(self, row):
        """``row`` re-read from its file if it is still queued work, else ``None``.

        Called with the spec's lease held, so no other claimer can finish it while we look.
        """
        self.table.refresh_paths([row.path])
        current = self.table.active.get(row.id)
        if current is None or current.type == "group" or row.id not in self.table.graph.ready_set:
            return None
        return current

    def claim_nowait(self, owner: str, ttl: float | None = None, project: str | None = None, labels=None, pid=None):
        """Take the next spec with a lease: ``(row, lease)``; :class:`NothingReady` if none."""
        for row in self._free(project, labels):
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
        where = []
        if project:
            where.append(f"project {project}")
        if labels:
            where.append("labels " + ", ".join(labels))
        raise NothingReady("No ready specs in the queue" + (f" for {' and '.join(where)}" if where else ""))

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
