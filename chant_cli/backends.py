"""Where a command runs: in process on the files (direct) or in a daemon (socket or HTTP).

Every command tries the daemon first: ``CHANT_DAEMON=http://host:port`` names a remote one;
otherwise the repository's socket is tried, with a ``hello`` that checks the protocol
version and the repository root. No answer: direct mode, or, when the config says
``scale.daemon.enabled: true``, the daemon is started in the background and used.
``--direct`` skips all of it. A daemon that dies in the middle of a command is replaced by
direct mode for that command, with one note on stderr, unless the command writes and its
request had left: the daemon may have done it, so it fails rather than run twice.

A daemon that runs but is still loading the specs is waited for, as long as its load makes
progress (drawn on a terminal): it answers nothing about specs before it has loaded them,
and a command would rather be slow than wrong. One that holds the repository but does not
answer on its socket (starting, or recreating a removed socket) is given a few seconds.

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

    def call_with_progress(self, op: str, params: dict, label: str):
        """``call``, drawing the workspace's progress on a terminal (a rebuild)."""
        from .progress import Progress

        bar = Progress(label)
        if bar.enabled:
            self.workspace.progress = lambda phase, done, total: bar({"phase": phase, "done": done, "total": total})
        try:
            return self.call(op, params)
        finally:
            self.workspace.progress = None
            bar.clear()

    def close(self) -> None:
        pass


class DaemonBackend:
    """Runs operations in the daemon; falls back to direct mode if it dies mid-way, and
    waits for it when it says it is (again) loading."""

    mode = "daemon"

    def __init__(self, client, root: str | None, note) -> None:
        self.client = client
        self.root = root
        self.note = note

    def call(self, op: str, params: dict):
        from chantlib.client import DaemonGone
        from chantlib.errors import Loading

        params = _clean(op, params)
        try:
            try:
                return self.client.call(op, params)
            except Loading:  # refused before it ran (the daemon restarted meanwhile): safe to send again
                self.client.hello = {"loaded": False}
                wait_for_load(self.client)
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

    def call_with_progress(self, op: str, params: dict, label: str):
        """``call``, drawing the daemon's progress on a terminal: a second connection asks
        ``daemon_status`` (answered at once, whatever the daemon is busy with) while the
        first waits for the answer."""
        import threading

        from .progress import Progress

        bar = Progress(label)
        if not bar.enabled:
            return self.call(op, params)
        done = threading.Event()

        def watch() -> None:
            try:
                with self._another_client() as other:
                    while not done.wait(0.2):
                        progress = other.call("daemon_status", {}).get("progress")
                        if progress and not done.is_set():
                            bar(progress)
            except Exception:  # noqa: BLE001 - a progress display must never fail the command
                pass

        watcher = threading.Thread(target=watch, name="chant-progress", daemon=True)
        watcher.start()
        try:
            return self.call(op, params)
        finally:
            done.set()
            watcher.join(1.0)
            bar.clear()

    def _another_client(self):
        from chantlib.client import DaemonClient, HttpClient

        if isinstance(self.client, HttpClient):
            return HttpClient(self.client.base_url, token=self.client.token, timeout=self.client.timeout)
        return DaemonClient.connect(self.root, path=self.client.path, timeout=10.0)

    def close(self) -> None:
        self.client.close()


#: how long a daemon that holds the repository (its instance lock) may take to answer on its
#: socket before a command gives up on it: it makes its socket first thing when it starts,
#: and makes it again within a second when the file is removed
ANSWER_WAIT = 5.0


def connect(root: str, timeout: float = 30.0, *, wait: float = 0.0, loaded: bool = True):
    """A client for this repository's daemon, or DaemonUnavailable. ``loaded``: wait until
    the daemon has loaded the specs, as long as its load makes progress. ``wait``: seconds
    to keep trying while a daemon holds the repository but does not answer yet."""
    import time

    from chantlib.client import DaemonClient, DaemonUnavailable, daemon_alive

    deadline = time.monotonic() + wait
    while True:
        try:
            client = DaemonClient.connect(root, timeout=timeout)
            break
        except DaemonUnavailable:
            if time.monotonic() >= deadline or not daemon_alive(root):
                raise
            time.sleep(0.05)
    if loaded:
        try:
            wait_for_load(client)
        except BaseException:
            client.close()
            raise
    return client


def wait_for_load(client, label: str = "Daemon loading the specs") -> None:
    """Wait until the daemon has loaded the specs, drawing its progress on a terminal; one
    whose load stalls is unavailable (exit 1)."""
    from chantlib.client import LoadStalled, wait_loaded
    from chantlib.errors import Unavailable

    from .progress import Progress

    if client.hello.get("loaded") is not False:
        return
    progress = Progress(label)
    try:
        wait_loaded(client, progress)
    except LoadStalled as exc:
        raise Unavailable(f"{exc}; see .chant/logs/daemon.log") from None
    finally:
        progress.clear()


class StartFailed(RuntimeError):
    """The daemon started in the background did not come up; ``code`` is its exit status
    when it exited (a port taken: 3), else 1."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


#: how long a daemon just started may take to answer on its socket at all (it imports, takes
#: the instance lock and listens; the long part, loading the specs, is waited for apart)
SOCKET_WAIT = 60.0


def start_background(root: str, options: list[str], *, wait: float = SOCKET_WAIT, log=None):
    """Start ``chantd`` detached, logging to ``.chant/logs/daemon.log``; returns ``(client,
    pid, started)`` once a daemon answers and has loaded the specs: ``started`` is False when
    another start won the race (ours found the repository taken and left), and ``pid`` is
    then the winner's. The load is waited for as long as it
    makes progress, drawn on a terminal. Raises :class:`StartFailed` with what this daemon
    wrote to its log (its one ``error:`` line when it said one) if it does not come up."""
    import subprocess
    import time

    from chantlib.client import DaemonClient, DaemonUnavailable, LoadStalled, daemon_alive, wait_loaded
    from chantlib.store import private_dir

    from .progress import Progress

    log_path = os.path.join(private_dir(os.path.join(root, ".chant", "logs")), "daemon.log")
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with open(fd, "ab") as fh, open(os.devnull, "rb") as devnull:
        offset = fh.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "chantd", "-C", root, "--log-file", log_path, *options],
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
            raise StartFailed(_startup_failure(log_path, offset, f"the daemon exited with status {code}"), code)
        try:
            client = DaemonClient.connect(root, timeout=10.0)
            break
        except DaemonUnavailable:
            if code == 0 and not daemon_alive(root):
                raise StartFailed(_startup_failure(log_path, offset, "the daemon stopped while starting")) from None
            if time.monotonic() > deadline:
                raise StartFailed(
                    _startup_failure(log_path, offset, f"the daemon (PID {proc.pid}) did not answer within {wait:.0f}s")
                ) from None
            time.sleep(0.05)
    progress = Progress("Daemon loading the specs")
    try:
        wait_loaded(client, progress)
    except LoadStalled as exc:
        client.close()
        raise StartFailed(f"{exc}; the daemon (PID {proc.pid}) still runs: see {log_path}") from None
    except BaseException:
        client.close()
        raise
    finally:
        progress.clear()
    pid = client.hello.get("pid")
    if isinstance(pid, int) and pid != proc.pid:
        return client, pid, False  # two starts at once: the other one serves
    return client, proc.pid, True


def _startup_failure(path: str, offset: int, what: str, lines: int = 15) -> str:
    """``what``, then what this daemon wrote to its log: its ``error:`` line alone when it
    wrote one (a failed start is one line), else the last few lines it wrote."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        text = ""
    written = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in written if line.startswith("error: ")]
    if errors:
        return errors[-1][len("error: "):]
    tail = "\n".join(written[-lines:])
    return f"{what}:\n{tail}" if tail else f"{what} (nothing in {path})"


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
        return DaemonBackend(connect(root, wait=ANSWER_WAIT), root, note)
    except DaemonUnavailable as exc:
        if daemon_alive(root):
            # it holds the repository but does not answer: reads are safe on the files, lease
            # changes are refused by the lock table (the daemon owns the leases while it runs)
            note(f"warning: the daemon of this repository runs but does not answer ({exc}); direct mode")
    direct = DirectBackend(root)
    try:
        enabled = direct.workspace.config.get("scale.daemon.enabled")
    except Exception:  # a broken config already warns through the operation itself
        enabled = False
    if enabled is True and not daemon_alive(root):
        try:
            client, pid, started = start_background(root, [])
        except StartFailed as exc:
            note(f"warning: scale.daemon.enabled is set but the daemon did not start; direct mode ({exc})")
            return direct
        if started:
            note(f"Started the daemon (PID {pid}) because scale.daemon.enabled is true")
        return DaemonBackend(client, root, note)
    return direct
