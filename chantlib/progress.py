"""Progress reports of long work: ``progress(phase, done, total)``, throttled.

:attr:`Workspace.progress <chantlib.workspace.Workspace.progress>` is an optional callable
that long work calls: phase ``"reading"`` while the spec table parses files, ``"indexing"``
while the index writes documents. :class:`Phase` keeps the calls to about ten a second
(by time, not by count: a fast phase reports once) plus one at the end (``done == total``).
A phase with nothing to do reports nothing. Callers make no :class:`Phase` at all when no
callable is set, so progress costs nothing unless asked for. Import-light: the CLI's path.
"""

from __future__ import annotations

import time

__all__ = ["Phase", "phase", "INTERVAL"]

INTERVAL = 0.1  # seconds between two reports of one phase


class Phase:
    """One phase of ``total`` items, reported to ``callback``; :meth:`step` after each item."""

    __slots__ = ("callback", "name", "total", "done", "_next")

    def __init__(self, callback, name: str, total: int) -> None:
        self.callback = callback
        self.name = name
        self.total = total
        self.done = 0
        self._next: float | None = time.monotonic() + INTERVAL  # the first report after one interval

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.done >= self.total:
            self.finish()
            return
        now = time.monotonic()
        if self._next is not None and now >= self._next:
            self._next = now + INTERVAL
            self.callback(self.name, self.done, self.total)

    def finish(self) -> None:
        """The last report (``done == total``), once; nothing for an empty phase."""
        if self.total and self._next is not None:
            self._next = None
            self.done = self.total
            self.callback(self.name, self.total, self.total)


def phase(callback, name: str, total: int) -> Phase | None:
    """A :class:`Phase`, or ``None`` when there is no callback or nothing to do."""
    if callback is None or total <= 0:
        return None
    return Phase(callback, name, total)
