"""chantlib: chant specs as a library.

The public surface, and nothing else by accident::

    from chantlib import Workspace, Spec, Index, LockTable, Lease, Queue, Config, ChantError
    from chantlib import connect          # one client: direct, the daemon's socket, or HTTP
    from chantlib import GitWatcher, GitEvent  # git events from the reflogs
    from chantlib import Worker           # claim, run an agent command, report (chant agent worker)

``__all__`` is that surface: the objects above and their helpers, every public error (the
whole tree of :mod:`chantlib.errors`, and the clients' own), and the clients
(:func:`connect`, its backends, :class:`DaemonClient`, :class:`HttpClient`).

Names are imported on first use, so ``import chantlib`` costs almost nothing and a client
that only speaks to a daemon never loads the YAML parser or tantivy. chantlib imports no
server package (starlette, uvicorn, prometheus_client).
"""

from __future__ import annotations

from ._version import VERSION as __version__

_EXPORTS = {
    "Workspace": "workspace",
    "Spec": "spec",
    "SpecStore": "store",
    "SpecTable": "table",
    "Row": "table",
    "Graph": "graph",
    "Index": "index",
    "SearchResult": "index",
    "LockTable": "locks",
    "FileLockTable": "locks",
    "MemoryLockTable": "locks",
    "Lease": "locks",
    "Queue": "queue",
    "Config": "config",
    "Event": "events",
    "Applied": "events",
    "Statistics": "statistics",
    "parse_id": "ids",
    "ParsedId": "ids",
    "sort_key": "ids",
    "generate_id": "ids",
    "resolve_partial": "ids",
    "parse_query": "query",
    "GitWatcher": "gitwatch",
    "GitEvent": "gitwatch",
    "Worker": "worker",
    "dispatch": "ops",
    "OPS": "ops",
    # the clients
    "connect": "backends",
    "start_background": "backends",
    "Backend": "backends",
    "DirectBackend": "backends",
    "DaemonBackend": "backends",
    "SocketBackend": "backends",
    "HttpBackend": "backends",
    "StartFailed": "backends",
    "DaemonClient": "client",
    "HttpClient": "client",
    "DaemonUnavailable": "client",
    "WrongDaemon": "client",
    "DaemonGone": "client",
    "LoadStalled": "client",
    # the errors (chantlib/errors.py draws the tree)
    "ChantError": "errors",
    "UsageError": "errors",
    "BadRequest": "errors",
    "MethodNotAllowed": "errors",
    "QuerySyntaxError": "errors",
    "AmbiguousSpecId": "errors",
    "InvalidValue": "errors",
    "NotFound": "errors",
    "SpecNotFound": "errors",
    "UnknownSpecRef": "errors",
    "NotInitialized": "errors",
    "LockNotFound": "errors",
    "Conflict": "errors",
    "LockHeld": "errors",
    "StaleToken": "errors",
    "SpecTimedOut": "errors",
    "NotHolder": "errors",
    "AlreadyExists": "errors",
    "NothingReady": "errors",
    "Unavailable": "errors",
    "Loading": "errors",
    "Unauthorized": "errors",
    "SpecParseError": "errors",
    "StorageError": "errors",
    "GitError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chantlib' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"chantlib.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
