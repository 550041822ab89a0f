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
import json
import logging
import os
import pwd
import socket as _socket
import struct

from chantlib.client import MAX_LINE
from chantlib.errors import BadRequest

from .service import encode_answer

log = logging.getLogger("chantd.socket")


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
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request is not JSON: {exc}") from None
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

    def __init__(self, service, path: str) -> None:
        self.service = service
        self.path = path
        self.server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        old = os.umask(0o177)  # the socket file is born 0600: only our user may connect
        try:
            self.server = await asyncio.start_unix_server(self._handle, path=self.path, limit=MAX_LINE + 1)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

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

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        owner = peer_owner(writer)
        persistent = False
        first = True
        try:
            while True:
                try:
                    line = await self._read_line(reader)
                    if line is None:
                        break
                    if not line.strip():
                        continue
                    request_id, cmd, params = _decode(line)
                    if first:
                        persistent = cmd == "hello"
                    data = await self.service.call_encoded(cmd, params, "socket", owner, request_id)
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
            raise
        except Exception:  # never let one connection take the daemon down
            log.exception("socket connection failed")
        finally:
            self._tasks.discard(task)
            try:
                writer.close()
                await writer.wait_closed()
            except (ConnectionError, BrokenPipeError, OSError):
                pass
