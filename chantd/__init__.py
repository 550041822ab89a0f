"""chantd: the chant daemon. Transports (Unix socket, HTTP, metrics) and a file watcher
around one long-lived :class:`chantlib.Workspace`; every request runs through
:func:`chantlib.ops.dispatch`, exactly as in direct mode. No business rule lives here.

:func:`build` is the one place the daemon's objects are made (see :mod:`chantd.parts`).
Importing ``chantd`` itself loads nothing: the CLI imports :mod:`chantd.options` to build
``chant daemon start``'s parser, and that must stay light.
"""

from __future__ import annotations

__all__ = ["Parts", "build"]


def __getattr__(name: str):
    if name in __all__:
        from . import parts

        return getattr(parts, name)
    raise AttributeError(f"module 'chantd' has no attribute {name!r}")
