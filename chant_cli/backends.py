"""Where a command runs: :func:`chantlib.connect`, with what only a command line adds.

The rules (``--direct``, ``CHANT_DAEMON``, the repository's socket, waiting for a loading
daemon, ``scale.daemon.enabled``, direct mode for a command whose daemon dies unless it
writes and its request had left) live in :mod:`chantlib.backends`. Here: its notes go to
stderr (``note``), and its progress reports are drawn on a terminal, one line per wait,
cleared when the wait ends; on a pipe nothing is drawn, and no second connection is made
to ask a daemon how far a rebuild is.

Import-light: talking to a daemon loads neither the index, nor the YAML parser, nor a server.
"""

from __future__ import annotations

from .progress import Progress

__all__ = ["pick", "connect_daemon", "start_background", "terminal_progress", "TerminalProgress", "LABELS"]

#: what a progress line says, by the library's topic (an operation's name, or the daemon's load)
LABELS = {"load": "Daemon loading the specs", "index_rebuild": "Rebuilding the index"}


class TerminalProgress:
    """A ``progress(topic, state)`` callback for the library: a :class:`Progress` line per
    topic, drawn over itself, cleared when the topic's wait ends (``state`` None)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream
        self._bars: dict[str, Progress] = {}

    def __call__(self, topic: str, state) -> None:
        if state is None:
            bar = self._bars.pop(topic, None)
            if bar is not None:
                bar.clear()
            return
        bar = self._bars.get(topic)
        if bar is None:
            bar = self._bars[topic] = Progress(LABELS.get(topic, topic), self.stream)
        bar(state)


def terminal_progress() -> TerminalProgress | None:
    """The callback when stderr is a terminal, else None (nothing to draw, nothing to ask)."""
    return TerminalProgress() if Progress("").enabled else None


def pick(args, note):
    """The backend for this command (see :func:`chantlib.backends.connect`)."""
    from chantlib.backends import connect

    return connect(direct=args.direct, note=note, progress=terminal_progress())


def connect_daemon(root: str, **kwargs):
    """:func:`chantlib.backends.connect_daemon`, drawing the daemon's load on a terminal."""
    from chantlib.backends import connect_daemon as connect

    return connect(root, progress=terminal_progress(), **kwargs)


def start_background(root: str, options: list[str]):
    """:func:`chantlib.backends.start_background`, drawing the daemon's load on a terminal."""
    from chantlib.backends import start_background as start

    return start(root, options, progress=terminal_progress())
