"""Where a command runs: in process on the files (direct) or in a daemon (socket or HTTP).

Every command tries the daemon first: ``CHANT_DAEMON=http://host:port`` names a remote one;
otherwise the repository's socket is tried, with a ``hello`` that checks the protocol
version and the repository root. No answer: direct mode, or, when the config says
``scale.daemon.enabled: true``, the daemon is started in the background and used.
``--direct`` skips all of it. A daemon that dies in the middle of a command is replaced by
direct mode for that command, with one note on stderr, unless the command writes and its
request had left: the daemon may have done it, so it fails rather than run twice.

Import-light: talking to a daemon loads neither the index, nor the YAML parser, nor a server.
"""

from __future__ import annotations

import os
import sys

from chantlib.ops import OPS, OWNED


def _clean(op: str, params: dict) -> dict:
    params = {k: v for k, v in params.items() if v is not None}
    if op in OWNED and not params.get("owner"):
        from chantlib.config import default_owner

        params["owner"] = default_owner()
    return params


class DirectBackend:
    """Runs operations in this process on a :class:`~chantlib.workspace.Workspace`."""

    mode = "direct"

    def __init__(self, root: str | None = None) -> None:
        from chantlib.workspace import Workspace

        self.workspace = Workspace(root)

    def call(self, op: str, params: dict):
        from chantlib.ops import dispatch

        return dispatch(self.workspace, op, _clean(op, params))

    def close(self) -> None:
        pass


class DaemonBackend:
    """Runs operations in the daemon; falls back to direct mode if it dies mid-way."""

    mode = "daemon"

    def __init__(self, client, root: str | None, note) -> None:
        self.client = client
        self.root = root
        self.note = note

    def call(self, op: str, params: dict):
        from chantlib.client import DaemonGone

        params = _clean(op, params)
        try:
            return self.client.call(op, params)
        except DaemonGone as exc:
            maybe_done = exc.sent and OPS[op].writes
            if maybe_done or self.root is None:  # self.root None: a remote daemon, no files here
                from chantlib.errors import Unavailable

                raise Unavailable(
                    f"the daemon went away after it was sent `{op}` ({exc}); it may have done it before it went, "
                    "so it is not run again here: look (`chant show`, `chant lock status`) before you retry"
                    if maybe_done else f"the daemon went away in the middle of `{op}` ({exc})"
                ) from None
            self.note(f"warning: the daemon went away ({exc}); running this command in direct mode")
            return DirectBackend(self.root).call(op, params)

    def close(self) -> None:
        self.client.close()


def connect(root: str, timeout: float = 30.0):
    """A client for this repository's daemon, or DaemonUnavailable."""
    from chantlib.client import DaemonClient

    return DaemonClient.connect(root, timeout=timeout)


def start_background(root: str, options: list[str], *, wait: float = 60.0, log=None):
    """Start ``chantd`` detached, logging to ``.chant/logs/daemon.log``; returns a client once
    its socket answers. Raises RuntimeError with the log's tail if it does not come up."""
    import subprocess
    import time

    from chantlib.client import DaemonUnavailable, daemon_alive

    logs = os.path.join(root, ".chant", "logs")
    os.makedirs(logs, exist_ok=True)
    log_path = os.path.join(logs, "daemon.log")
    with open(log_path, "ab") as fh, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chantd", "-C", root, *options],
            stdin=devnull,
            stdout=fh,
            stderr=fh,
            cwd=root,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + wait
    while True:
        code = proc.poll()
        if code is not None and code != 0:
            raise RuntimeError(f"the daemon exited with status {code}:\n{_tail(log_path)}")
        try:
            client = connect(root, timeout=max(1.0, deadline - time.monotonic()))
        except DaemonUnavailable:
            if code == 0 and not daemon_alive(root):
                raise RuntimeError(f"the daemon stopped while starting:\n{_tail(log_path)}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not answer within {wait:.0f}s:\n{_tail(log_path)}") from None
            time.sleep(0.05)
            continue
        return client, proc.pid


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no log)"


def pick(args, note) -> DirectBackend | DaemonBackend:
    """The backend for this command (see the module docstring)."""
    if args.direct:
        return DirectBackend()
    from chantlib.client import DaemonUnavailable, HttpClient, daemon_alive

    remote = os.environ.get("CHANT_DAEMON")
    if remote:
        try:
            return DaemonBackend(HttpClient.connect(remote), None, note)
        except DaemonUnavailable as exc:
            from chantlib.errors import Unavailable

            raise Unavailable(f"CHANT_DAEMON={remote}: {exc}") from None
    from chantlib.store import find_root

    root = find_root()
    try:
        return DaemonBackend(connect(root), root, note)
    except DaemonUnavailable:
        pass
    direct = DirectBackend(root)
    try:
        enabled = direct.workspace.config.get("scale.daemon.enabled")
    except Exception:  # a broken config already warns through the operation itself
        enabled = False
    if enabled is True and not daemon_alive(root):
        try:
            client, pid = start_background(root, [])
        except RuntimeError as exc:
            note(f"warning: scale.daemon.enabled is set but the daemon did not start; direct mode ({exc})")
            return direct
        note(f"Started the daemon (PID {pid}) because scale.daemon.enabled is true")
        return DaemonBackend(client, root, note)
    return direct
