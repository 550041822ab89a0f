"""The Unix socket transport: newline-delimited JSON (ARCHITECTURE.md, "Wire protocol").

One JSON object per line each way. A connection whose first request is ``hello`` stays open
for many requests (the CLI and workers); any other connection gets its one answer and is
closed, so ``echo '{...}' | nc -U sock`` returns at once even with netcat-openbsd, which does
not half-close. Lines over :data:`~chantlib.client.MAX_LINE`, bad JSON, unknown commands and
bad parameters get an error answer; the connection (when persistent) and the daemon live on.
An ``id`` in a request is echoed in its answer. The socket file is created with mode 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import socket as _socket
import stat
import struct
import time

from chantlib.client import MAX_LINE
from chantlib.errors import BadRequest, Unavailable

from .options import MAX_CONNECTIONS
from .service import encode_answer, load_request

log = logging.getLogger("chantd.socket")

GUARD_SECONDS = 1.0  # how often the socket file is checked (one lstat)
#: a new connection must send its first request line within this many seconds
FIRST_LINE_SECONDS = 30.0
#: a persistent connection that sends nothing for this long is closed (clients reconnect)
IDLE_SECONDS = 600.0


def _bind_private(path: str) -> _socket.socket:
    """A listening Unix socket at ``path`` that only our user can connect to, from its
    first instant: bound under a temporary name, made 0600, then renamed into place (no
    process-wide umask change, which would race with files other threads are writing)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    tmp = os.path.join(os.path.dirname(path), f".{os.getpid()}.sock")
    try:
        if len(os.fsencode(tmp)) > 107:
            tmp = path  # no room for a longer name: bind in place, then narrow the mode at once
        with contextlib.suppress(FileNotFoundError):
            if tmp != path:
                os.unlink(tmp)
        sock.bind(tmp)
        os.chmod(tmp, 0o600)
        if tmp != path:
            os.rename(tmp, path)
        sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        if tmp != path:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    return sock


def _answers(path: str) -> bool:
    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def peer_owner(writer: asyncio.StreamWriter) -> str | None:
    """``user@host`` of the process at the other end (SO_PEERCRED), for default lease owners."""
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(_socket, "SO_PEERCRED"):
        return None
    try:
        creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        name = pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return None
    return f"{name}@{_socket.gethostname()}"


def _decode(line: bytes) -> tuple[object, str | None, dict]:
    """(request id, cmd, params) from a line; raises BadRequest."""
    request = load_request(line)
    if not isinstance(request, dict):
        raise BadRequest("a request is a JSON object with a string 'cmd'")
    request_id = request.pop("id", None)
    cmd = request.pop("cmd", None)
    if not isinstance(cmd, str) or not cmd:
        raise _WithId(request_id, BadRequest("a request is a JSON object with a string 'cmd'"))
    return request_id, cmd, request


class _WithId(Exception):
    def __init__(self, request_id, error) -> None:
        super().__init__(error)
        self.request_id = request_id
        self.error = error


class SocketServer:
    """Serves a :class:`~chantd.service.Service` on a Unix socket."""

    def __init__(self, service, path: str, *, max_connections: int = MAX_CONNECTIONS,
                 first_line_seconds: float = FIRST_LINE_SECONDS, idle_seconds: float = IDLE_SECONDS) -> None:
        self.service = service
        self.path = path
        self.max_connections = max_connections
        self.first_line_seconds = first_line_seconds
        self.idle_seconds = idle_seconds
        self.refused = 0  # connections turned away at the cap
        self.server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._closing = False  # set by close(): each connection ends after its current answer
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the socket file we made

    async def start(self) -> None:
        sock = _bind_private(self.path)
        try:
            self.server = await asyncio.start_unix_server(self._handle, sock=sock, limit=MAX_LINE + 1)
        except BaseException:
            sock.close()
            raise
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)

    def _intact(self) -> bool:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self._identity

    async def guard(self, every: float = GUARD_SECONDS) -> None:
        """Listen again when the socket file is removed (a cleanup script, `rm -rf` of a
        runtime folder): a daemon nobody can reach would still hold the repository. A path
        taken over by another live socket is left alone (and said so, once)."""
        warned = False
        while True:
            await asyncio.sleep(every)
            if self._intact():
                warned = False
                continue
            if os.path.lexists(self.path):
                if await asyncio.to_thread(_answers, self.path):
                    if not warned:
                        log.warning("%s is now another process's socket; this daemon is unreachable there", self.path)
                        warned = True
                    continue
                if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                    if not warned:
                        log.warning("%s is no longer a socket; not touching it (this daemon is unreachable "
                                    "there: remove it, and the socket is made again)", self.path)
                        warned = True
                    continue
            old = self.server
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                await self.start()  # a dead socket file left there is replaced
            except OSError as exc:
                if not warned:
                    log.warning("the socket %s went away and cannot be made again: %s", self.path, exc)
                    warned = True
                continue
            if old is not None:
                old.close()  # stops accepting on the unlinked file; connections already open live on
            log.warning("the socket %s was removed; listening on it again", self.path)

    async def close(self, patience: float = 5.0) -> None:
        """Stop listening, then end every connection: each handler is cancelled, and again
        while it still runs (on Python 3.11 ``asyncio.wait_for`` can lose a cancellation that
        lands as its inner wait completes: one lost cancel let a worker's persistent connection
        be served on, and the stop hang, until the worker went); ``_closing`` ends a handler
        that got past a cancel after its current answer. A handler still running after
        ``patience`` seconds is logged and left to the loop's end."""
        self._closing = True
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        deadline = time.monotonic() + patience
        pending = set(self._tasks)
        while pending and time.monotonic() < deadline:
            for task in pending:
                task.cancel()
            _done, pending = await asyncio.wait(pending, timeout=0.2)
        if pending:
            log.warning("%d socket connection(s) did not end within %g s of the stop", len(pending), patience)
        if self._intact():  # never another process's socket that took the path over
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    async def _read_line(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next line (without its newline); ``None`` at the end; raises for a long line."""
        try:
            line = await reader.readuntil(b"\n")
            return line[:-1]
        except asyncio.IncompleteReadError as exc:
            return exc.partial if exc.partial.strip() else None
        except asyncio.LimitOverrunError:
            # drop the rest of the oversized line, then refuse it
            while True:
                try:
                    await reader.readuntil(b"\n")
                    break
                except asyncio.LimitOverrunError as more:
                    await reader.readexactly(more.consumed)
                except asyncio.IncompleteReadError:
                    break
            raise BadRequest(f"request line over {MAX_LINE} bytes") from None

    async def _refuse(self, writer: asyncio.StreamWriter) -> None:
        self.refused += 1
        log.warning("refusing a connection: %d are open (scale.daemon.max_connections)", self.max_connections)
        error = Unavailable(
            f"the daemon has {self.max_connections} connections open (its limit); try again",
            limit=self.max_connections,
        )
        with contextlib.suppress(ConnectionError, OSError):
            writer.write(encode_answer({"ok": False, "error": error.to_dict()}))
            await asyncio.wait_for(writer.drain(), 1.0)
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._tasks) >= self.max_connections:
            await self._refuse(writer)
            return
        task = asyncio.current_task()
        assert task is not None  # a connection's handler runs as a task
        self._tasks.add(task)
        owner = peer_owner(writer)
        persistent = False
        first = True
        try:
            while not self._closing:
                try:
                    try:
                        # a connection must speak soon after it opens, and a persistent one
                        # that falls silent for long is let go (the client reconnects)
                        line = await asyncio.wait_for(
                            self._read_line(reader), self.first_line_seconds if first else self.idle_seconds
                        )
                    except TimeoutError:
                        break
                    if line is None:
                        break
                    if not line.strip():
                        continue
                    request_id, cmd, params = _decode(line)
                    if first:
                        persistent = cmd == "hello"
                    # reader.at_eof on a persistent connection: the client closed it (a long poll
                    # then ends, and gives back what it won meanwhile); a one-shot request may
                    # half-close after sending, which is not leaving
                    data = await self.service.call_encoded(cmd, params, "socket", owner, request_id,
                                                           gone=reader.at_eof if persistent else None)
                except _WithId as exc:
                    data = encode_answer({"ok": False, "error": exc.error.to_dict()}, exc.request_id)
                except BadRequest as exc:
                    data = encode_answer({"ok": False, "error": exc.to_dict()})
                    if self.service.metrics is not None:
                        self.service.metrics.observe_request("socket", "unknown", 0.0)
                first = False
                writer.write(data)
                await writer.drain()
                if not persistent:
                    break
        except (ConnectionError, BrokenPipeError):
            pass
        except asyncio.CancelledError:
            # only close() cancels a connection: it ends here, quietly (a handler that ends
            # cancelled is logged by asyncio's stream callback as an error, with a traceback)
            pass
        except Exception:  # never let one connection take the daemon down
            log.exception("socket connection failed")
        finally:
            self._tasks.discard(task)
            try:
                writer.close()
                await writer.wait_closed()
            except (ConnectionError, BrokenPipeError, OSError):
                pass
