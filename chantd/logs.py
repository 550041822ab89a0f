"""The daemon's log: where it goes, and a limit on how fast one kind of message can fill it.

A daemon under attack or in a failure loop (connections refused at the cap, a watcher that
fails on every batch) would otherwise write the same line, often with a traceback, as fast
as the loop turns: a log must never fill a disk. Each kind of message (the logger, the level
and the message template, whatever its arguments) may be written ``burst`` times per
``window`` seconds; the rest are counted, and the next one let through says how many were
dropped. A background daemon logs to ``.chant/logs/daemon.log`` through a handler that
rotates it at a bounded size.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time

__all__ = ["RateLimit", "setup_logging", "LOG_BYTES", "LOG_BACKUPS"]

LOG_BYTES = 10 * 1024 * 1024  # a log file is rotated at this size...
LOG_BACKUPS = 3  # ...keeping this many old ones: at most 40 MiB in all

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RateLimit(logging.Filter):
    """Let through at most ``burst`` records of one kind per ``window`` seconds."""

    def __init__(self, burst: int = 10, window: float = 60.0, *, clock=time.monotonic, max_kinds: int = 1000) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self.clock = clock
        self.max_kinds = max_kinds
        self._kinds: dict[tuple, list] = {}  # kind -> [window start, let through, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        state = self._kinds.get(kind)
        if state is None or now - state[0] >= self.window:
            dropped = state[2] if state is not None else 0
            if len(self._kinds) >= self.max_kinds:
                self._kinds.clear()  # bounded memory: forget old kinds rather than grow
            self._kinds[kind] = [now, 1, 0]
            if dropped:
                record.msg = f"({dropped} more like this were not logged in the last {self.window:.0f} s) {record.msg}"
            return True
        if state[1] < self.burst:
            state[1] += 1
            return True
        state[2] += 1
        return False


def setup_logging(level: str, log_file: str | None = None) -> None:
    """Log to stderr, or to ``log_file`` rotated at :data:`LOG_BYTES`, rate-limited."""
    if log_file:
        # the log is ours alone: 0600 in a 0700 folder, and so are the files rotation makes
        from chantlib.store import private_dir

        private_dir(os.path.dirname(os.path.abspath(log_file)))
        os.close(os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    # "N changes detected" per batch, at info: what the daemon did with them is what we log
    logging.getLogger("watchfiles").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)
