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
from chantlib.client import INFO_FILE, INSTANCE_LOCK, socket_path
from chantlib.errors import ChantError, Conflict, InvalidValue, StorageError
from chantlib.locks import MemoryLockTable
from chantlib.store import atomic_write, find_root
from chantlib.workspace import LOCKS_DIR, Workspace

from . import systemd
from .metrics import Metrics
from .service import Service
from .socket import SocketServer
from .watch import Watcher

log = logging.getLogger("chantd")

SWEEP_SECONDS = 5.0


class AlreadyRunning(Conflict):
    code = "already_running"


class Settings:
    """Where and how the daemon listens, resolved once."""

    def __init__(self, root: str, config, *, socket_arg=None, api_port=None, api_host=None, metrics_port=None,
                 poll=None) -> None:
        self.root = root
        env_socket = os.environ.get("CHANT_DAEMON_SOCKET")
        self.socket = socket_path(root, socket_arg or env_socket or config.get("scale.daemon.socket"))
        self.api_port_explicit = api_port is not None
        self.metrics_port_explicit = metrics_port is not None
        self.api_port = _port(api_port if api_port is not None else config.get("scale.daemon.api_port"), "api_port")
        self.metrics_port = _port(
            metrics_port if metrics_port is not None else config.get("scale.daemon.metrics_port"), "metrics_port"
        )
        self.api_host = api_host or config.get("scale.daemon.api_host") or "127.0.0.1"
        self.token = os.environ.get("CHANT_API_TOKEN") or config.get("scale.daemon.api_token") or None
        mode = "poll" if poll else str(config.get("scale.daemon.watch_mode") or "native")
        if mode not in ("native", "poll"):
            raise InvalidValue(f"config scale.daemon.watch_mode must be native or poll, got {mode!r}")
        self.poll = mode == "poll"
        self.poll_delay_ms = int(config.get("scale.daemon.poll_delay_ms") or 300)
        from .http import is_loopback

        if self.api_port and not is_loopback(self.api_host) and not self.token:
            raise InvalidValue(
                f"the HTTP API on {self.api_host} is reachable beyond loopback: set scale.daemon.api_token "
                "or CHANT_API_TOKEN (clients send it as a bearer token)"
            )


def _port(value, name: str) -> int:
    try:
        port = int(value or 0)
    except (TypeError, ValueError):
        raise InvalidValue(f"{name} must be a port number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise InvalidValue(f"{name} must be a port number (0 = off), got {port}")
    return port


class _Uvicorn:
    """A uvicorn server inside our event loop; the daemon, not uvicorn, owns the signals."""

    def __init__(self, app, host: str, port: int) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):
                yield

        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off", loop="none",
            timeout_graceful_shutdown=2,
        )
        self.server = Server(config)
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()  # raises the bind error
                raise OSError(errno.EADDRINUSE, "the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self.task


def take_instance_lock(chant_dir: str) -> int:
    """Hold ``.chant/daemon.lock`` for the life of the process; AlreadyRunning if taken."""
    path = os.path.join(chant_dir, INSTANCE_LOCK)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError.from_os_error(exc, "open", path) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        pid = _info_pid(os.path.dirname(chant_dir))
        where = f" (PID {pid})" if pid else ""
        raise AlreadyRunning(f"a daemon already runs for this repository{where}", pid=pid) from None
    os.set_inheritable(fd, False)
    return fd


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
        try:
            private_socket_dir(os.path.dirname(settings.socket))
            clear_stale_socket(settings.socket)
            sock_server = SocketServer(service, settings.socket)
            await sock_server.start()
            servers.append(sock_server)
            service.info["socket"] = settings.socket
            service.info["pid"] = os.getpid()
            # clients find a socket moved by config through this file: write it at once
            atomic_write(info_path, json.dumps(self._info(service), indent=2) + "\n", durable=False)
            # /livez answers while loading; /readyz says 503 until the table and index are in
            await self._start_http(service, metrics, settings, servers)
            atomic_write(info_path, json.dumps(self._info(service), indent=2) + "\n", durable=False)
            # load under the lock: requests that arrive meanwhile wait for a full table
            await service.apply_async(None)
            # The table and index are long-lived: keep the cyclic GC from walking them over and
            # over (each walk of a 50,000-spec table is a pause every request would pay for).
            gc.freeze()
            gc.enable()  # `chant daemon start` in the foreground comes from the CLI, which turns it off
            tasks.append(asyncio.create_task(watcher.run()))
            tasks.append(asyncio.create_task(self._sweeper(service)))
            service.info["watch"] = "poll" if settings.poll else "native"
            atomic_write(info_path, json.dumps(self._info(service), indent=2) + "\n", durable=False)
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

    async def _start_http(self, service, metrics, settings: Settings, servers: list) -> None:
        from .http import build_app, build_metrics_app

        wanted = []
        if settings.api_port:
            app = build_app(service, token=settings.token, metrics=metrics)
            wanted.append(("api", app, settings.api_host, settings.api_port, settings.api_port_explicit))
        if settings.metrics_port:
            wanted.append(
                ("metrics", build_metrics_app(service, metrics), settings.api_host, settings.metrics_port,
                 settings.metrics_port_explicit)
            )
        for name, app, host, port, explicit in wanted:
            server = _Uvicorn(app, host, port)
            try:
                await server.start()
            except (OSError, SystemExit) as exc:
                if explicit:
                    raise StorageError(f"cannot listen on {host}:{port} for the {name} server: {exc}") from None
                log.warning("not serving %s on %s:%d (the default port is taken: %s)", name, host, port, exc)
                continue
            servers.append(server)
            shown = f"[{host}]" if ":" in host else host
            service.info[name] = f"http://{shown}:{port}" + ("/metrics" if name == "metrics" else "")

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


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


def run_foreground(root: str | None, args) -> int:
    setup_logging(args.log_level or os.environ.get("CHANT_LOG_LEVEL") or "info")
    try:
        return Daemon(root, **options_from(args)).run()
    except AlreadyRunning as exc:
        pid = exc.details.get("pid")
        print(f"Daemon already running{f' (PID {pid})' if pid else ''}")
        return 0
    except ChantError as exc:
        log.error("%s", exc.message)
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    from chant_cli.main import _add_start_options  # one definition of the options, shared

    parser = argparse.ArgumentParser(prog="chantd", description="The chant daemon (the same as `chant daemon start`).")
    parser.add_argument("--version", action="version", version=f"chantd {VERSION}")
    parser.add_argument("-C", dest="root", help="the repository (default: the current folder)")
    _add_start_options(parser)
    args = parser.parse_args(argv)
    return run_foreground(args.root, args)
