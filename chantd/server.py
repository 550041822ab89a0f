"""chantd's lifecycle: start (foreground or background), stop, status, one per repository.

:class:`Daemon` owns the event loop's life: it takes the repository's instance lock (an
flock on ``.chant/daemon.lock`` held until the process ends, so two daemons can never serve
one repository), replaces a stale socket left by a killed daemon (never a live one), has the
daemon's objects made by :func:`chantd.build`, starts the socket, HTTP and metrics servers
and the file watcher, writes ``.chant/daemon.json`` for clients (once, when every transport
listens), loads the specs, tells systemd it is ready, and on SIGTERM or SIGINT stops in the
reverse order: every step registers its undoing on the parts' one exit stack. The settings
(:class:`chantd.options.Settings`) resolve as everywhere: command-line option > ``CHANT_*``
environment > ``.chant/config.md`` > default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import gc
import json
import logging
import os
import signal
import socket
import stat
import sys
import time

from chantlib._version import PROTOCOL_VERSION, VERSION
from chantlib.client import INFO_FILE, INSTANCE_LOCK
from chantlib.errors import ChantError, Conflict, StorageError
from chantlib.locks import pid_alive
from chantlib.store import atomic_write, find_root

from . import systemd
from .logs import setup_logging
from .options import MAX_CONNECTIONS, Settings, add_start_options, options_from
from .parts import Parts, build
from .service import Service
from .socket import SocketServer

log = logging.getLogger("chantd")

SWEEP_SECONDS = 5.0
ROOT_CHECK_SECONDS = 1.0  # how often the daemon checks that its repository is still there


class AlreadyRunning(Conflict):
    code = "already_running"


class PortTaken(Conflict):
    """A port the user asked for (option, environment or config) cannot be listened on."""

    code = "port_taken"


class _Uvicorn:
    """A uvicorn server inside our event loop; the daemon, not uvicorn, owns the signals.

    The listening socket is ours (:func:`listen`): a port that cannot be had is a one-line
    error before uvicorn runs, never its log lines and a traceback."""

    def __init__(self, app, sock: socket.socket, *, max_connections: int = MAX_CONNECTIONS) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):
                yield

            async def main_loop(self) -> None:
                # uvicorn's own loop wakes every 100 ms to see whether it should stop, and a
                # daemon has two servers: most of what an idle daemon cost (~0.3% of a core).
                # Its tick's one other use, the Date header, needs a tick a second; a stop
                # wakes it at once (stop() below).
                while not await self.on_tick(0):  # 0: the header's turn every tick
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), 1.0)

        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", loop="none", timeout_graceful_shutdown=2,
            http=_protocol(max_connections), timeout_keep_alive=HTTP_IDLE_SECONDS,
        )
        wake = self.wake = asyncio.Event()
        self.server = Server(config)
        self.sock = sock
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise OSError(errno.EIO, "the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        self.wake.set()
        if self.task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self.task
        self.sock.close()


#: an HTTP connection must have sent a whole request head within this long of opening, or of
#: its last answer (uvicorn itself only times out idle keep-alive connections)
HTTP_HEAD_SECONDS = 10.0
HTTP_IDLE_SECONDS = 5


def _protocol(max_connections: int):
    """uvicorn's httptools protocol (llhttp, in C: one client's round trip on an idle daemon
    0.37 ms p50 against h11's 0.49 ms) with two bounds: at most ``max_connections`` open (one
    more is answered 503 with the error envelope and closed at once), and a connection whose
    request head does not come in time is closed (a client that connects and says nothing, or
    trickles its headers, would hold a connection for ever)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from chantlib.errors import Unavailable

    error = Unavailable(f"the daemon has {max_connections} HTTP connections open (its limit); try again",
                        limit=max_connections)
    body = json.dumps({"ok": False, "error": error.to_dict()}).encode()

    async def refuse(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", b"1"), (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": body})

    class Protocol(HttpToolsProtocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                # its request is read and answered 503 with the envelope, then it is closed
                # (closing at once, with the request unread, would reset the connection and
                # lose the answer)
                log.warning("refusing an HTTP connection: %d are open (scale.daemon.max_connections)",
                            max_connections)
                self.app = refuse
            self._await_head()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._await_head()

        def _await_head(self) -> None:
            cycle = self.cycle

            def check() -> None:
                if self.cycle is cycle and not self.transport.is_closing():  # no new request began
                    self.transport.close()

            self.loop.call_later(HTTP_HEAD_SECONDS, check)

    return Protocol


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (SO_REUSEADDR, as servers do); OSError if taken."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def take_instance_lock(chant_dir: str, *, patience: float = 5.0) -> int:
    """Hold ``.chant/daemon.lock`` for the life of the process; AlreadyRunning if a daemon
    holds it. A holder that is no daemon of this repository (none comes to say so in
    ``daemon.json`` within ``patience`` seconds: a daemon starting writes it early) is a
    Conflict naming the file, never a silent wait or a false "already running"."""
    path = os.path.join(chant_dir, INSTANCE_LOCK)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageError.from_os_error(exc, "open", path) from None
    _narrow(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        root = os.path.dirname(chant_dir)
        deadline = time.monotonic() + patience
        while True:
            pid = _info_pid(root)
            if isinstance(pid, int) and pid_alive(pid):
                raise AlreadyRunning(f"a daemon already runs for this repository (PID {pid})", pid=pid) from None
            if time.monotonic() >= deadline:
                raise Conflict(
                    f"another process holds {path}, and no daemon of this repository says it runs "
                    f"(`fuser -v {path}` names it); the file is the daemon user's alone (0600) from now on",
                    path=path,
                ) from None
            time.sleep(0.1)
    os.set_inheritable(fd, False)
    return fd


def _narrow(fd: int) -> None:
    """A runtime file of ours made by an older version (0644) becomes 0600."""
    try:
        st = os.fstat(fd)
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.fchmod(fd, 0o600)
    except OSError:
        pass


def _info_pid(root: str):
    from chantlib.client import runtime_info

    info = runtime_info(root) or {}
    return info.get("pid")


def private_socket_dir(folder: str, private: bool | None = None) -> None:
    """Make the socket's folder. The fallback under /tmp (``chant-<uid>``, for repositories
    whose path is too long for a socket) must be ours alone (``private``, by default for that
    folder): made 0700 here, and refused if another user made it first, or if it is a link or
    open to others."""
    if private is None:
        private = folder == os.path.join("/tmp", f"chant-{os.getuid()}")
    if not private:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise StorageError.from_os_error(exc, "create", folder) from None
        return
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StorageError.from_os_error(exc, "create", folder) from None
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise Conflict(
            f"{folder} is not a private folder of this user (a link, another owner, or open to others): "
            "not putting the daemon's socket there; set scale.daemon.socket",
            path=folder,
        )


def clear_stale_socket(path: str) -> None:
    """Remove a socket file nobody answers on; refuse to touch one that answers."""
    if not os.path.lexists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # refused or not a socket: left behind by a daemon that died
        log.info("removed a stale socket at %s", path)
        return
    finally:
        probe.close()
    raise Conflict(f"another process answers on {path}; not replacing a live socket", socket=path)


class Daemon:
    def __init__(self, root: str | None = None, **options) -> None:
        self.root = find_root(root)
        self.options = options
        self.stop_event: asyncio.Event | None = None
        self._lock_fd: int | None = None

    # the whole life, in the foreground

    def run(self) -> int:
        chant_dir = os.path.join(self.root, ".chant")
        self._lock_fd = take_instance_lock(chant_dir)
        try:
            return asyncio.run(self._main())
        finally:
            os.close(self._lock_fd)  # releasing the instance lock is the very last step

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)

        started = time.perf_counter()
        # Every part is made by the one builder, and every step below registers its undoing
        # on the parts' exit stack: whichever step fails, what was started stops, last first,
        # and the service closes last (the workspace saved, the lease folder let go).
        async with build(self.root, **self.options) as parts:
            service, settings = parts.service, parts.settings
            assert settings is not None
            stack = parts.stack
            bound = self._bind_http(settings)
            for _name, sock in bound:
                stack.callback(sock.close)  # bound, maybe never served (a later step failed)
            private_socket_dir(os.path.dirname(settings.socket))
            clear_stale_socket(settings.socket)
            sock_server = SocketServer(service, settings.socket, max_connections=settings.max_connections)
            await sock_server.start()
            stack.push_async_callback(_quietly, sock_server.close)
            service.describe(socket=settings.socket)
            # /livez answers while loading; /readyz says 503 until the table and index are in
            await self._serve_http(parts, bound)
            # daemon.json, once: clients find a socket moved by config, and the ports, there
            self._write_info(parts)
            # The watches go in before the walk, so a change made while the specs load is seen
            # (applied after the load, under the same lock) instead of falling between the two.
            await parts.watch()
            # Until this is done, requests about specs wait (hello says "loading"): a daemon
            # never answers from a table it has not read.
            await parts.load()
            await parts.follow()  # lint on save, and git: what happened while we were down first
            # The table and index are long-lived: keep the cyclic GC from walking them over and
            # over (each walk of a 50,000-spec table is a pause every request would pay for).
            gc.freeze()
            gc.enable()  # `chant daemon start` in the foreground comes from the CLI, which turns it off
            parts.task(self._sweeper(service))
            parts.task(sock_server.guard())
            parts.task(self._watch_root(parts.workspace.store.chant_dir))
            service.describe(watch=parts.watcher.mode)  # inotify or poll
            service.ready = True
            stack.callback(setattr, service, "ready", False)
            log.info(
                "serving %s: %d specs in %.2fs; socket %s%s%s", self.root, len(parts.workspace.table.rows),
                time.perf_counter() - started, settings.socket,
                f", API {service.info['api']}" if service.info.get("api") else "",
                f", metrics {service.info['metrics']}" if service.info.get("metrics") else "",
            )
            systemd.notify("READY=1")
            await self.stop_event.wait()
            log.info("stopping")
            systemd.notify("STOPPING=1")
            await service.end_waits()
            return 0

    def _bind_http(self, settings: Settings) -> list[tuple[str, socket.socket]]:
        """Listen on the HTTP ports first, before anything else is set up: a port the user
        asked for that cannot be had stops the start with one line (PortTaken); a default
        one that is taken is skipped with a warning."""
        wanted = []
        if settings.api_port:
            wanted.append(("api", "HTTP API", settings.api_port, settings.api_port_explicit, "api_port", "--api-port"))
        if settings.metrics_port:
            wanted.append(
                ("metrics", "metrics", settings.metrics_port, settings.metrics_port_explicit, "metrics_port",
                 "--metrics-port")
            )
        host = settings.api_host
        bound: list[tuple[str, socket.socket]] = []
        for name, what, port, explicit, key, flag in wanted:
            try:
                sock = listen(host, port)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                if explicit:
                    for _name, other in bound:
                        other.close()
                    raise PortTaken(
                        f"cannot listen on {_host_port(host, port)} for the {what}: {reason} "
                        f"(choose another port with {flag} or scale.daemon.{key}; 0 turns it off)",
                        port=port,
                    ) from None
                log.warning("not serving the %s: the default port %s cannot be had (%s)", what,
                            _host_port(host, port), reason)
                continue
            bound.append((name, sock))
        return bound

    async def _serve_http(self, parts: Parts, bound) -> None:
        if not bound:
            return
        from .http import build_app, build_metrics_app  # starlette and uvicorn: only when serving HTTP

        service, metrics, settings = parts.service, parts.metrics, parts.settings
        assert settings is not None  # a daemon's parts are built from its settings
        for name, sock in bound:
            app = (
                build_app(service, token=settings.token, metrics=metrics) if name == "api"
                else build_metrics_app(service, metrics)
            )
            server = _Uvicorn(app, sock, max_connections=settings.max_connections)
            await server.start()
            parts.stack.push_async_callback(_quietly, server.stop)
            url = "http://" + _host_port(settings.api_host, sock.getsockname()[1])
            service.describe(**{name: url + ("/metrics" if name == "metrics" else "")})

    async def _watch_root(self, chant_dir: str, every: float = ROOT_CHECK_SECONDS) -> None:
        """Stop when the repository is gone (deleted, or moved away): a daemon serving a path
        that no longer holds its repository would keep its ports and answer for nothing."""
        st = os.stat(chant_dir)
        identity = (st.st_dev, st.st_ino)
        while True:
            await asyncio.sleep(every)
            try:
                st = os.stat(chant_dir)
                if (st.st_dev, st.st_ino) == identity:
                    continue
                why = "replaced by another folder"
            except FileNotFoundError:
                why = "gone (deleted or moved)"
            except OSError:
                continue  # cannot tell (a permission glitch): keep serving
            log.warning("the repository's %s is %s: stopping", chant_dir, why)
            assert self.stop_event is not None
            self.stop_event.set()
            return

    async def _sweeper(self, service: Service) -> None:
        """Every few seconds: free expired leases, save the table and index state."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await service.sweep()
                await service.persist()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic upkeep failed")

    def _write_info(self, parts: Parts) -> None:
        """``.chant/daemon.json``, written once every transport listens (the one state
        clients need: where to reach the daemon), and removed first at stop."""
        service = parts.service
        info = {
            "pid": os.getpid(),
            "root": self.root,
            "socket": service.info.get("socket"),
            "api": service.info.get("api"),
            "metrics": service.info.get("metrics"),
            "version": VERSION,
            "protocol": PROTOCOL_VERSION,
            "started_at": service.started,
        }
        path = os.path.join(parts.workspace.store.chant_dir, INFO_FILE)
        atomic_write(path, json.dumps(info, indent=2) + "\n", durable=False, mode=0o600)
        parts.stack.callback(_remove, path)


async def _quietly(stop) -> None:
    """A step of the way out that must not stop the others (each server's own stop)."""
    with contextlib.suppress(Exception):
        await stop()


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# --- the command line: `chantd` and `chant daemon start` ------------------------------------


def run_foreground(root: str | None, args) -> int:
    """Run the daemon until it is stopped. A failure to start is one line on stderr
    (``error: ...``; the log of a background daemon is its stderr) and the error's exit
    code, never a traceback (``CHANT_DEBUG=1`` adds it)."""
    setup_logging(args.log_level or os.environ.get("CHANT_LOG_LEVEL") or "info", getattr(args, "log_file", None))
    try:
        return Daemon(root, **options_from(args)).run()
    except AlreadyRunning as exc:
        pid = exc.details.get("pid")
        print(f"Daemon already running{f' (PID {pid})' if pid else ''}")
        return 0
    except ChantError as exc:
        _fatal(exc.message)
        return exc.exit_code
    except OSError as exc:  # the world failed in a way no layer named: still one line
        _fatal(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1


def _fatal(message: str) -> None:
    if os.environ.get("CHANT_DEBUG"):
        import traceback

        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chantd", description="The chant daemon (the same as `chant daemon start`).")
    parser.add_argument("--version", action="version", version=f"chantd {VERSION}")
    parser.add_argument("-C", dest="root", help="the repository (default: the current folder)")
    add_start_options(parser)  # the same options as `chant daemon start`
    args = parser.parse_args(argv)
    return run_foreground(args.root, args)
