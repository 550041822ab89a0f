"""One client interface: :func:`connect` and the backends it returns.

``connect(root | url)`` gives a backend that runs operations of :mod:`chantlib.ops` where the
repository is served: in this process on a :class:`~chantlib.workspace.Workspace` (direct
mode), in the repository's daemon over its Unix socket, or in a daemon over HTTP. Each has
one ``call(op, params=None, /, **params)``, ``close()``, a context manager and ``mode``
(``"direct"``, ``"socket"``, ``"http"``), and each is safe to share between threads.

How :func:`connect` picks (the rules the ``chant`` command follows):

* ``direct=True`` (``chant --direct``): direct mode, nothing else is tried.
* A URL (or, with no target, ``CHANT_DAEMON=http://host:port``) names a remote daemon; its
  token comes from ``token=``, else ``CHANT_API_TOKEN``, else, for a loopback address, the
  ``.chant/daemon.token`` of the repository we are in. No answer: :class:`Unavailable`.
* Else the repository's socket, with a ``hello`` that checks the protocol version and the
  root. A daemon that holds the repository but does not answer yet is given a few seconds
  (:data:`ANSWER_WAIT`); one that is loading the specs is waited for as long as its load
  makes progress. No answer: direct mode (with a note when a daemon holds the repository
  but does not answer), or, when the config says ``scale.daemon.enabled: true``, a daemon
  is started in the background and used.

A daemon that dies in the middle of a call is replaced by direct mode for that call, with a
note, unless the operation writes and its request had left: the daemon may have done it,
so the call fails (:class:`Unavailable`) rather than run twice. Without a repository here
(a remote daemon) there is no direct mode to fall back to.

Threads: the direct backend serialises calls on its workspace (a Workspace is not thread
safe). The daemon backends give each thread its own connection, opened on its first call,
so a lease renewal from a worker's thread never waits behind its main thread's slow
request (see docs/design.md, "One client interface").

Callbacks: ``note(text)`` receives the notes (a daemon gone, one started); ``progress(topic,
state)`` the progress of long waits: topic ``"load"`` while a daemon loads the specs, or an
operation's name for :meth:`Backend.call_with_progress`; ``state`` is ``{phase, done,
total}``, and ``None`` once the wait is over (to clear a display).

Import-light: talking to a daemon loads neither the index, nor the YAML parser, nor a server.
"""

from __future__ import annotations

import _thread
import os
import sys

from .client import (
    DaemonClient,
    DaemonGone,
    DaemonUnavailable,
    HttpClient,
    LoadStalled,
    daemon_alive,
    wait_loaded,
)
from .errors import Loading, Unavailable, UsageError

__all__ = [
    "connect",
    "connect_daemon",
    "start_background",
    "prepare",
    "Backend",
    "DirectBackend",
    "DaemonBackend",
    "SocketBackend",
    "HttpBackend",
    "StartFailed",
    "ANSWER_WAIT",
    "SOCKET_WAIT",
]

#: how long a daemon that holds the repository (its instance lock) may take to answer on its
#: socket before a command gives up on it: it makes its socket first thing when it starts,
#: and makes it again within a second when the file is removed
ANSWER_WAIT = 5.0

#: how long a daemon just started may take to answer on its socket at all (it imports, takes
#: the instance lock and listens; the long part, loading the specs, is waited for apart)
SOCKET_WAIT = 60.0


def _quiet(text: str) -> None:
    pass


def prepare(op: str, params: dict | None) -> dict:
    """The parameters as they are sent: ``None`` values left out, and ``owner`` filled in
    with the caller's identity (``CHANT_OWNER``, else ``user@host``) for the operations that
    take one."""
    from .ops import OWNED

    out = {k: v for k, v in (params or {}).items() if v is not None}
    if op in OWNED and not out.get("owner"):
        from .config import default_owner

        out["owner"] = default_owner()
    return out


def _merged(params: dict | None, kwargs: dict) -> dict:
    if params is None:
        return kwargs
    if kwargs:
        return {**params, **kwargs}
    return params


def _writes(op: str) -> bool:
    """Whether ``op`` may change anything (an unknown name is taken to: it is never re-run)."""
    from .ops import OPS

    found = OPS.get(op)
    return True if found is None else bool(found.writes)


class Backend:
    """Where operations run. ``call(op, params=None, /, **params)`` returns the operation's
    result (plain JSON-able data) or raises its :class:`~chantlib.errors.ChantError`;
    parameters come as a dict, as keywords, or both (keywords win)."""

    mode = ""
    #: the repository's root, when it is on this machine (None for a remote daemon)
    root: str | None = None

    def __init__(self, *, note=None, progress=None) -> None:
        self.note = note or _quiet
        self.progress = progress

    def call(self, op: str, params: dict | None = None, /, **kwargs):
        raise NotImplementedError

    def call_with_progress(self, op: str, params: dict | None = None, /, **kwargs):
        """``call``, reporting the operation's progress to ``progress(op, state)`` while it
        runs (a rebuild), then ``progress(op, None)``. Without a ``progress`` callback it is
        ``call``."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.mode} {self.root or getattr(self, 'base_url', '')}>"


class DirectBackend(Backend):
    """Runs operations in this process on a :class:`~chantlib.workspace.Workspace` (given,
    or made for ``root``; None: the repository around the current folder). Calls from
    several threads take turns: a workspace is not thread safe."""

    mode = "direct"

    def __init__(self, root: str | os.PathLike | None = None, *, workspace=None, note=None, progress=None) -> None:
        super().__init__(note=note, progress=progress)
        if workspace is None:
            from .workspace import Workspace

            workspace = Workspace(root)
            self._owned = True
        else:
            self._owned = False
        self.workspace = workspace
        self.root = workspace.root
        self._lock = _thread.RLock()

    def call(self, op: str, params: dict | None = None, /, **kwargs):
        from .ops import dispatch

        params = prepare(op, _merged(params, kwargs))
        with self._lock:
            return dispatch(self.workspace, op, params)

    def call_with_progress(self, op: str, params: dict | None = None, /, **kwargs):
        progress = self.progress
        if progress is None:
            return self.call(op, params, **kwargs)
        with self._lock:
            self.workspace.progress = lambda phase, done, total: progress(
                op, {"phase": phase, "done": done, "total": total})
            try:
                return self.call(op, params, **kwargs)
            finally:
                self.workspace.progress = None
                progress(op, None)

    def close(self) -> None:
        """Closes the workspace when this backend made it (it saves what is unsaved)."""
        if self._owned:
            with self._lock:
                self.workspace.close()


class DaemonBackend(Backend):
    """Runs operations in a daemon (the base of :class:`SocketBackend` and
    :class:`HttpBackend`): one connection per thread, a wait when the daemon says it is
    (again) loading, and direct mode for a call the daemon dies in the middle of (see the
    module's docstring)."""

    #: a call the daemon cannot take runs in direct mode (see the module's docstring); a
    #: caller whose leases are the daemon's (a worker) sets it False: such a call then raises
    #: :class:`~chantlib.errors.Unavailable`, and the caller tries the daemon again
    fallback = True

    def __init__(self, client, root: str | None = None, *, note=None, progress=None) -> None:
        super().__init__(note=note, progress=progress)
        self.root = root
        self.timeout = client.timeout
        self._lock = _thread.allocate_lock()  # guards the table of connections below
        self._local = _thread._local()
        self._local.client = client
        self._clients: dict[int, DaemonClient | HttpClient] = {_thread.get_ident(): client}  # thread ident -> its connection
        self._direct: DirectBackend | None = None
        self._closed = False

    # the connections, one per thread

    @property
    def client(self):
        """This thread's connection (opened on first use)."""
        return self._client()

    @property
    def hello(self) -> dict:
        """What the daemon said to this thread's connection's ``hello``."""
        return self._client().hello

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is not None:
            return client
        if self._closed:
            raise ValueError("call on a closed backend")
        try:
            client = self._open(self.timeout)
        except DaemonUnavailable as exc:
            raise DaemonGone(f"cannot reach the daemon again: {exc}", sent=False) from None
        ident = _thread.get_ident()
        stale = []
        with self._lock:
            old = self._clients.pop(ident, None)  # a thread that ended had this ident
            if old is not None:
                stale.append(old)
            threading = sys.modules.get("threading")  # threads there are only if it was imported
            if threading is not None and self._clients:
                alive = {thread.ident for thread in threading.enumerate()}
                for gone in [i for i in self._clients if i not in alive]:
                    stale.append(self._clients.pop(gone))
            self._clients[ident] = client
        for old in stale:
            old.close()
        self._local.client = client
        return client

    def _open(self, timeout: float):
        """A new connection to the same daemon (raises DaemonUnavailable)."""
        raise NotImplementedError

    # calls

    def call(self, op: str, params: dict | None = None, /, **kwargs):
        if self._closed:
            raise ValueError("call on a closed backend")
        params = prepare(op, _merged(params, kwargs))
        try:
            return self._send(op, params)
        except DaemonGone as first:
            if self._closed:
                raise ValueError("the backend was closed during the call") from None
            self._forget()  # that connection is dead: this thread's next call opens a new one
            exc = first
            if not first.sent:
                # nothing had left (a kept connection the daemon closed while idle): the same
                # request on a new connection, once
                try:
                    return self._send(op, params)
                except DaemonGone as again:
                    self._forget()
                    exc = again
            maybe_done = exc.sent and _writes(op)
            if maybe_done or self.root is None or not self.fallback:  # root None: a remote daemon, no files here
                raise Unavailable(
                    f"the daemon went away after it was sent `{op}` ({exc}); it may have done it before it went, "
                    "so it is not run again here: look (`chant show`, `chant lock status`) before you retry"
                    if maybe_done else f"the daemon went away in the middle of `{op}` ({exc})",
                    maybe_done=maybe_done or None,
                ) from None
            self.note(f"warning: the daemon went away ({exc}); running this command in direct mode")
            return self._fallback().call(op, params)

    def _send(self, op: str, params: dict):
        client = self._client()
        try:
            return client.call(op, params)
        except Loading:  # refused before it ran (the daemon restarted meanwhile): safe to send again
            client.hello = {"loaded": False}
            _wait_for_load(client, self.progress)
            return client.call(op, params)

    def interrupt(self, ident: int) -> None:
        """Close the connection of thread ``ident``: a call it has in flight (a long poll)
        fails at once with :class:`~chantlib.errors.Unavailable`, and its next call opens a
        new connection. A worker stopping uses it to end its idle claims."""
        with self._lock:
            client = self._clients.get(ident)
        if client is not None:
            client.close()

    def _forget(self) -> None:
        """Drop this thread's connection (dead)."""
        client = vars(self._local).get("client")
        if client is None:
            return
        self._local.client = None
        ident = _thread.get_ident()
        with self._lock:
            if id(self._clients.get(ident)) == id(client):  # still this thread's (not a new one's)
                del self._clients[ident]
        client.close()

    def _fallback(self) -> DirectBackend:
        with self._lock:
            if self._direct is None:
                self._direct = DirectBackend(self.root)
            return self._direct

    def call_with_progress(self, op: str, params: dict | None = None, /, **kwargs):
        """``call``, with the daemon's progress: a second connection asks ``daemon_status``
        (answered at once, whatever the daemon is busy with) while the first waits."""
        progress = self.progress
        if progress is None:
            return self.call(op, params, **kwargs)
        import threading

        done = threading.Event()

        def watch() -> None:
            try:
                other = self._open(10.0)
                try:
                    while not done.wait(0.2):
                        state = other.call("daemon_status", {}).get("progress")
                        if state and not done.is_set():
                            progress(op, state)
                finally:
                    other.close()
            except Exception:  # noqa: BLE001 - a progress display must never fail the call
                pass

        watcher = threading.Thread(target=watch, name="chant-progress", daemon=True)
        watcher.start()
        try:
            return self.call(op, params, **kwargs)
        finally:
            done.set()
            watcher.join(1.0)
            progress(op, None)

    def close(self) -> None:
        """Close every thread's connection (a call in flight fails) and the direct fallback."""
        self._closed = True
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
            direct, self._direct = self._direct, None
        for client in clients:
            client.close()
        self._local.client = None
        if direct is not None:
            direct.close()


class SocketBackend(DaemonBackend):
    """The repository's daemon, over its Unix socket (``client``: a connected
    :class:`~chantlib.client.DaemonClient`, which becomes the calling thread's)."""

    mode = "socket"

    def __init__(self, client: DaemonClient, root: str | None = None, *, note=None, progress=None) -> None:
        super().__init__(client, root if root is not None else client.root, note=note, progress=progress)
        self.path = client.path

    def _open(self, timeout: float) -> DaemonClient:
        return DaemonClient.connect(str(self.root), path=self.path, timeout=timeout)


class HttpBackend(DaemonBackend):
    """A daemon's HTTP API (``POST /api/rpc``); ``client``: a connected
    :class:`~chantlib.client.HttpClient`, which becomes the calling thread's."""

    mode = "http"

    def __init__(self, client: HttpClient, root: str | None = None, *, note=None, progress=None) -> None:
        super().__init__(client, root, note=note, progress=progress)
        self.base_url = client.base_url
        self.token = client.token
        self._hello = client.hello

    def _open(self, timeout: float) -> HttpClient:
        client = HttpClient(self.base_url, token=self.token, timeout=timeout)
        client.hello = dict(self._hello)
        return client


def _is_url(target) -> bool:
    return isinstance(target, str) and "://" in target


def connect(target: str | os.PathLike | None = None, *, direct: bool = False, token: str | None = None,
            autostart: bool = True, timeout: float = 30.0, note=None, progress=None) -> Backend:
    """A backend for ``target``: a repository (any folder in it; None: the current folder's)
    or a daemon's URL. See the module's docstring for the rules; ``autostart=False`` never
    starts a daemon, whatever ``scale.daemon.enabled`` says. Raises
    :class:`~chantlib.errors.NotInitialized` outside a repository and
    :class:`~chantlib.errors.Unavailable` when a named daemon does not answer or a loading
    daemon stalls."""
    note = note or _quiet
    if direct:
        if _is_url(target):
            raise UsageError(f"direct mode runs on a repository's files, not on {target}")
        return DirectBackend(target, note=note, progress=progress)
    url = target if _is_url(target) else os.environ.get("CHANT_DAEMON") if target is None else None
    if url:
        try:
            http_client = HttpClient.connect(str(url), token=token, timeout=timeout)
        except DaemonUnavailable as exc:
            raise Unavailable(f"CHANT_DAEMON={url}: {exc}" if target is None else str(exc)) from None
        return HttpBackend(http_client, note=note, progress=progress)
    from .store import find_root

    root = find_root(target)
    try:
        socket_client = connect_daemon(root, timeout=timeout, wait=ANSWER_WAIT, progress=progress)
        return SocketBackend(socket_client, root, note=note, progress=progress)
    except DaemonUnavailable as exc:
        if daemon_alive(root):
            # it holds the repository but does not answer: reads are safe on the files, lease
            # changes are refused by the lock table (the daemon owns the leases while it runs)
            note(f"warning: the daemon of this repository runs but does not answer ({exc}); direct mode")
    direct_backend = DirectBackend(root, note=note, progress=progress)
    if not autostart:
        return direct_backend
    try:
        enabled = direct_backend.workspace.config.get("scale.daemon.enabled")
    except Exception:  # a broken config already warns through the operation itself
        enabled = False
    if enabled is True and not daemon_alive(root):
        try:
            socket_client, pid, started = start_background(root, [], progress=progress)
        except StartFailed as exc:
            note(f"warning: scale.daemon.enabled is set but the daemon did not start; direct mode ({exc})")
            return direct_backend
        if started:
            note(f"Started the daemon (PID {pid}) because scale.daemon.enabled is true")
        # the direct backend was only asked for the config: dropped unsaved, the daemon now
        # keeps the table
        return SocketBackend(socket_client, root, note=note, progress=progress)
    return direct_backend


def connect_daemon(root: str, *, timeout: float = 30.0, wait: float = 0.0, loaded: bool = True,
                   progress=None) -> DaemonClient:
    """A :class:`~chantlib.client.DaemonClient` for this repository's daemon, or
    :class:`~chantlib.client.DaemonUnavailable`. ``wait``: seconds to keep trying while a
    daemon holds the repository but does not answer yet. ``loaded``: wait until the daemon
    has loaded the specs, as long as its load makes progress (reported to ``progress("load",
    state)``); a load that stalls raises :class:`~chantlib.errors.Unavailable`."""
    import time

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
            _wait_for_load(client, progress)
        except BaseException:
            client.close()
            raise
    return client


def _reporter(progress, topic: str):
    return None if progress is None else (lambda state: progress(topic, state))


def _wait_for_load(client, progress) -> None:
    """Wait until the daemon has loaded the specs; one whose load stalls is unavailable."""
    if client.hello.get("loaded") is not False:
        return
    try:
        wait_loaded(client, _reporter(progress, "load"))
    except LoadStalled as exc:
        raise Unavailable(f"{exc}; see .chant/logs/daemon.log") from None
    finally:
        if progress is not None:
            progress("load", None)


class StartFailed(RuntimeError):
    """The daemon started in the background did not come up; ``code`` is its exit status
    when it exited (a port taken: 3), else 1."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def start_background(root: str, options: list[str] | tuple = (), *, wait: float = SOCKET_WAIT,
                     progress=None) -> tuple[DaemonClient, int, bool]:
    """Start ``chantd`` detached (with ``options``, its command-line options), logging to
    ``.chant/logs/daemon.log``; returns ``(client, pid, started)`` once a daemon answers and
    has loaded the specs: ``started`` is False when another start won the race (ours found
    the repository taken and left), and ``pid`` is then the winner's. The load is waited for
    as long as it makes progress (reported to ``progress("load", state)``). Raises
    :class:`StartFailed` with what this daemon wrote to its log (its one ``error:`` line
    when it said one) if it does not come up."""
    import subprocess

    from .store import private_dir

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
    try:
        return _come_up(proc, root, log_path, offset, wait, progress)
    finally:
        if proc.returncode is None:
            # our child until it exits: reaped when it does, so a long-lived caller keeps no
            # zombie (which `chant daemon stop` would take for a daemon still running)
            import threading

            threading.Thread(target=proc.wait, name="chantd-reaper", daemon=True).start()


def _come_up(proc, root: str, log_path: str, offset: int, wait: float, progress) -> tuple[DaemonClient, int, bool]:
    import time

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
    try:
        wait_loaded(client, _reporter(progress, "load"))
    except LoadStalled as exc:
        client.close()
        raise StartFailed(f"{exc}; the daemon (PID {proc.pid}) still runs: see {log_path}") from None
    except BaseException:
        client.close()
        raise
    finally:
        if progress is not None:
            progress("load", None)
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
