"""A one-line progress display for long waits (a daemon loading, an index rebuild).

Drawn on stderr, and only when stderr is a terminal: piped output and logs stay clean.
Import-light: it is used on the client path.
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["Progress"]


class Progress:
    """``progress(state)`` draws ``<label>: <phase> <done> of <total>`` over itself;
    ``progress.clear()`` removes the line. ``state`` is a mapping with ``phase``,
    ``done`` and ``total`` (the shape of the daemon's ``loading``)."""

    def __init__(self, label: str, stream=None, *, every: float = 0.1) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"
        self.every = every
        self._drawn = False
        self._last = 0.0

    def __call__(self, state) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        done, total = state.get("done") or 0, state.get("total") or 0
        if self._drawn and now - self._last < self.every and done != total:
            return
        self._last = now
        phase = state.get("phase") or "starting"
        text = f"{self.label}: {phase}"
        if total:
            text += f" {done:,} of {total:,} ({100 * done // total}%)"
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False
