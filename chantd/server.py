"""chantd's lifecycle: start (foreground or background), stop, status, one per repository.

:class:`Daemon` owns the event loop's life: it takes the repository's instance lock (an
flock on ``.chant/daemon.lock`` held until the process ends, so two daemons can never serve
one repository), replaces a stale socket left by a killed daemon (never a live one), loads
the workspace, starts the socket, HTTP and metrics servers and the file watcher, writes
``.chant/daemon.json`` for clients, tells systemd it is ready, and on SIGTERM or SIGINT
stops in the reverse order. Settings resolve as everywhere: command-line option >
``CHANT_*`` environment > ``.chant/config.md`` > default.
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
from chantlib.client import INFO_FILE, INSTANCE_LOCK, TOKEN_FILE, is_loopback, socket_path
from chantlib.errors import ChantError, Conflict, InvalidValue, StorageError
from chantlib.locks import MemoryLockTable, pid_alive
from chantlib.store import atomic_write, find_root
from chantlib.workspace import LOCKS_DIR, Workspace

from . import systemd
from .logs import setup_logging
from .metrics import Metrics
from .service import Service
from .socket import MAX_CONNECTIONS, SocketServer
from .watch import Watcher

log = logging.getLogger("chantd")

SWEEP_SECONDS = 5.0
ROOT_CHECK_SECONDS = 1.0  # how often the daemon checks that its repository is still there


class AlreadyRunning(Conflict):
    code = "already_running"


class PortTaken(Conflict):
    """A port the user asked for (option, environment or config) cannot be listened on."""

    code = "port_taken"


class Settings:
    """Where and how the daemon listens, resolved once."""

    def __init__(self, root: str, config, *, socket_arg=None, api_port=None, api_host=None, metrics_port=None,
                 poll=None) -> None:
        self.root = root
        env_socket = os.environ.get("CHANT_DAEMON_SOCKET")
        self.socket = socket_path(root, socket_arg or env_socket or config.get("scale.daemon.socket"))
        # a port the user asked for (option or config file) must be had; a default may be missed
        self.api_port_explicit = api_port is not None or config.is_given("scale.daemon.api_port")
        self.metrics_port_explicit = metrics_port is not None or config.is_given("scale.daemon.metrics_port")
        self.api_port = _port(api_port if api_port is not None else config.get("scale.daemon.api_port"), "api_port")
        self.metrics_port = _port(
            metrics_port if metrics_port is not None else config.get("scale.daemon.metrics_port"), "metrics_port"
        )
        self.api_host = api_host or config.get("scale.daemon.api_host") or "127.0.0.1"
        configured = os.environ.get("CHANT_API_TOKEN") or config.get("scale.daemon.api_token") or None
        self.token_source = "CHANT_API_TOKEN" if os.environ.get("CHANT_API_TOKEN") else "scale.daemon.api_token"
        self.token = str(configured) if configured else None
        mode = "poll" if poll else str(config.get("scale.daemon.watch_mode") or "native")
        if mode not in ("native", "poll"):
            raise InvalidValue(f"config scale.daemon.watch_mode must be native or poll, got {mode!r}")
        self.poll = mode == "poll"
        self.poll_delay_ms = int(config.get("scale.daemon.poll_delay_ms") or 300)
        wanted = config.get("scale.daemon.max_connections")
        try:
            wanted = MAX_CONNECTIONS if wanted is None else int(wanted)
        except (TypeError, ValueError):
            raise InvalidValue(f"config scale.daemon.max_connections must be a number, got {wanted!r}") from None
        if wanted < 1:
            raise InvalidValue(f"config scale.daemon.max_connections must be at least 1, got {wanted}")
        # each transport gets this many; both together must fit in the descriptors we may open
        self.max_connections = max(1, min(wanted, (open_files_limit() - 128) // 2))
        if self.api_port and not self.token:
            if not is_loopback(self.api_host):
                raise InvalidValue(
                    f"the HTTP API on {self.api_host} is reachable beyond loopback: set scale.daemon.api_token "
                    "or CHANT_API_TOKEN (clients send it as a bearer token)"
                )
            # Loopback is not a trust boundary on a shared machine: the API still wants a
            # token, one of our own, readable by our user alone (the CLI finds it there)
            self.token = ensure_token(os.path.join(root, ".chant"))
            self.token_source = f".chant/{TOKEN_FILE}"


def ensure_token(chant_dir: str) -> str:
    """The HTTP API's token made for this repository: read from ``.chant/daemon.token``, or
    made there at the first start (random, 0600, never replaced: clients may hold it), and
    kept out of git (the runtime part of ``.chant/.gitignore`` is completed)."""
    import secrets

    from chantlib.client import read_token
    from chantlib.store import SpecStore

    root = os.path.dirname(chant_dir)
    token = read_token(root)
    if token:
        return token
    try:
        SpecStore(root).write_gitignore()
        atomic_write(os.path.join(chant_dir, TOKEN_FILE), secrets.token_urlsafe(32) + "\n", exclusive=True,
                     mode=0o600)
    except Conflict:
        pass  # made by another start at the same moment: theirs is the one
    token = read_token(root)
    if not token:
        raise StorageError(f"cannot make the HTTP API's token in {chant_dir}/{TOKEN_FILE}")
    return token


def open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one (at most 65,536: enough for the
    connection caps, far below what a kernel would refuse); returns the soft limit now."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def _port(value, name: str) -> int:
    try:
        port = int(value or 0)
    except (TypeError, ValueError):
        raise InvalidValue(f"{name} must be a port number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise InvalidValue(f"{name} must be a port number (0 = off), got {port}")
    return port


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

        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", loop="none", timeout_graceful_shutdown=2,
            http=_protocol(max_connections), timeout_keep_alive=HTTP_IDLE_SECONDS,
        )
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
        if self.task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self.task
        self.sock.close()


#: an HTTP connection must have sent a whole request head within this long of opening, or of
#: its last answer (uvicorn itself only times out idle keep-alive connections)
HTTP_HEAD_SECONDS = 10.0
HTTP_IDLE_SECONDS = 5


def _protocol(max_connections: int):
    """uvicorn's h11 protocol with two bounds: at most ``max_connections`` open (one more is
    answered 503 with the error envelope and closed at once), and a connection whose request
    head does not come in time is closed (a client that connects and says nothing, or
    trickles its headers, would hold a connection for ever)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

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

    class Protocol(H11Protocol):
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
        ws = Workspace(self.root, auto_refresh=False, long_lived=True)
        settings = Settings(self.root, ws.config, **self.options)
        ws.locks = MemoryLockTable(
            persist_dir=os.path.join(ws.store.chant_dir, LOCKS_DIR), default_ttl=ws.config.lock_ttl
        )  # owns .chant/.locks/ from here: a second owner would be refused
        metrics = Metrics()
        service = Service(ws, metrics)
        metrics.bind(service)
        servers: list = []
        watcher = Watcher(service, poll=settings.poll, poll_delay_ms=settings.poll_delay_ms)
        tasks: list[asyncio.Task] = []
        info_path = os.path.join(ws.store.chant_dir, INFO_FILE)
        bound: list = []
        try:
            bound = self._bind_http(settings)
            private_socket_dir(os.path.dirname(settings.socket))
            clear_stale_socket(settings.socket)
            sock_server = SocketServer(service, settings.socket, max_connections=settings.max_connections)
            await sock_server.start()
            servers.append(sock_server)
            service.info["socket"] = settings.socket
            service.info["pid"] = os.getpid()
            # clients find a socket moved by config through this file: write it at once
            atomic_write(info_path, json.dumps(self._info(service), indent=2) + "\n", durable=False, mode=0o600)
            # /livez answers while loading; /readyz says 503 until the table and index are in
            await self._serve_http(bound, service, metrics, settings, servers)
            bound = []
            atomic_write(info_path, json.dumps(self._info(service), indent=2) + "\n", durable=False, mode=0o600)
            # The watches go in before the walk, so a change made while the specs load is seen
            # (applied after the load, under the same lock) instead of falling between the two.
            tasks.append(asyncio.create_task(watcher.run()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watcher.armed.wait(), 10.0)
            # Until this is done, requests about specs wait (hello says "loading"): a daemon
            # never answers from a table it has not read.
            await service.load()
            # The table and index are long-lived: keep the cyclic GC from walking them over and
            # over (each walk of a 50,000-spec table is a pause every request would pay for).
            gc.freeze()
            gc.enable()  # `chant daemon start` in the foreground comes from the CLI, which turns it off
            tasks.append(asyncio.create_task(self._sweeper(service)))
            tasks.append(asyncio.create_task(sock_server.guard()))
            tasks.append(asyncio.create_task(self._watch_root(ws.store.chant_dir)))
            service.info["watch"] = "poll" if watcher.poll else "native"
            atomic_write(info_path, json.dumps(self._info(service), indent=2) + "\n", durable=False, mode=0o600)
            service.ready = True
            log.info(
                "serving %s: %d specs in %.2fs; socket %s%s%s", self.root, len(ws.table.rows),
                time.perf_counter() - started, settings.socket,
                f", API {service.info['api']}" if service.info.get("api") else "",
                f", metrics {service.info['metrics']}" if service.info.get("metrics") else "",
            )
            systemd.notify("READY=1")
            await self.stop_event.wait()
            log.info("stopping")
            systemd.notify("STOPPING=1")
            return 0
        finally:
            service.ready = False
            for _name, sock in bound:  # bound, never served (a later step failed)
                sock.close()
            watcher.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for server in reversed(servers):
                with contextlib.suppress(Exception):
                    await server.stop() if isinstance(server, _Uvicorn) else await server.close()
            async with service.lock:
                with contextlib.suppress(ChantError, OSError):
                    ws.table.save()
                    ws.flush()
                with contextlib.suppress(ChantError, OSError):
                    ws.locks.close()  # the journal folded into the lease files, the folder let go
            service.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(info_path)

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

    async def _serve_http(self, bound, service, metrics, settings: Settings, servers: list) -> None:
        if not bound:
            return
        from .http import build_app, build_metrics_app  # starlette and uvicorn: only when serving HTTP

        for name, sock in bound:
            app = (
                build_app(service, token=settings.token, metrics=metrics) if name == "api"
                else build_metrics_app(service, metrics)
            )
            server = _Uvicorn(app, sock, max_connections=settings.max_connections)
            await server.start()
            servers.append(server)
            url = "http://" + _host_port(settings.api_host, sock.getsockname()[1])
            service.info[name] = url + ("/metrics" if name == "metrics" else "")

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

    def _info(self, service: Service) -> dict:
        return {
            "pid": os.getpid(),
            "root": self.root,
            "socket": service.info.get("socket"),
            "api": service.info.get("api"),
            "metrics": service.info.get("metrics"),
            "version": VERSION,
            "protocol": PROTOCOL_VERSION,
            "started_at": service.started,
        }


# --- the command line: `chantd` and `chant daemon start` ------------------------------------


def options_from(args) -> dict:
    return {
        "socket_arg": args.socket,
        "api_port": args.api_port,
        "api_host": args.api_host,
        "metrics_port": args.metrics_port,
        "poll": args.poll or None,
    }


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
    from chant_cli.main import _add_start_options  # one definition of the options, shared

    parser = argparse.ArgumentParser(prog="chantd", description="The chant daemon (the same as `chant daemon start`).")
    parser.add_argument("--version", action="version", version=f"chantd {VERSION}")
    parser.add_argument("-C", dest="root", help="the repository (default: the current folder)")
    _add_start_options(parser)
    args = parser.parse_args(argv)
    return run_foreground(args.root, args)
