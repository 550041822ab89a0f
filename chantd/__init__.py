"""chantd: the chant daemon. Transports (Unix socket, HTTP, metrics) and a file watcher
around one long-lived :class:`chantlib.Workspace`; every request runs through
:func:`chantlib.ops.dispatch`, exactly as in direct mode. No business rule lives here."""
