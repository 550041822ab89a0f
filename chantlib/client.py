"""DaemonClient: the client side of the wire protocol (ARCHITECTURE.md, "Wire protocol").

One JSON object per line each way over the daemon's Unix socket. A connection opened with
``hello`` stays open for many requests; the client checks the daemon's protocol version and
repository root before trusting it. :class:`HttpClient` speaks the same operations to a
remote daemon (``CHANT_DAEMON=http://host:port``) through ``POST /api/rpc``.

Both are safe to share between threads: one request/answer exchange at a time holds the
client's lock (the daemon answers the requests of one connection in order, so an answer is
always read by the thread that asked). Threads that must not wait for each other (a worker
renewing its lease while its main thread runs a slow request) use a connection each, as the
backends of :func:`chantlib.connect` do.

This module is on the CLI's client path: it imports only the standard library's ``_socket``,
``_thread`` and json (and http.client for the HTTP client), never the index, the YAML parser
or a server.
"""

from __future__ import annotations

# The C module behind ``socket``: the Python wrapper imports selectors, select and friends,
# a few milliseconds on every CLI run that talks to a daemon, and we need none of it.
import _socket
import _thread  # the C module behind ``threading``, which would import collections and more
import json
import os
import time

from ._version import PROTOCOL_VERSION
from .errors import ChantError

TYPE_CHECKING = False  # not typing's: no import at run time on the client path; mypy reads the block
if TYPE_CHECKING:
    import http.client

__all__ = [
    "DaemonClient",
    "HttpClient",
    "DaemonUnavailable",
    "DaemonGone",
    "WrongDaemon",
    "socket_path",
    "runtime_info",
    "daemon_alive",
    "wait_loaded",
    "is_loopback",
    "read_token",
    "LoadStalled",
    "PROTOCOL_VERSION",
    "MAX_LINE",
]

MAX_LINE = 1 << 20  # 1 MiB: longer request lines are refused
INFO_FILE = "daemon.json"
#: the HTTP API's bearer token when none is configured: made at the daemon's first start, 0600
TOKEN_FILE = "daemon.token"
SOCKET_NAME = "daemon.sock"
INSTANCE_LOCK = "daemon.lock"  # held (flock) by the daemon for its whole life
_SUN_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, less the terminating NUL
_RECV = 1 << 18  # bytes asked of each recv: a large answer arrives in few calls


class DaemonUnavailable(Exception):
    """No daemon answers for this repository (the caller runs in direct mode)."""


class WrongDaemon(DaemonUnavailable):
    """A daemon answers at this repository's socket but serves another root (the
    repository was moved, or a config points two repositories at one socket); ``hello``
    is its answer."""

    def __init__(self, message: str, hello: dict) -> None:
        super().__init__(message)
        self.hello = hello


class DaemonGone(Exception):
    """The daemon went away in the middle of a request (the answer never came).

    ``sent`` says whether the request had left: if it had, the daemon may have carried it
    out before it went, so a write must not simply be run again elsewhere.
    """

    def __init__(self, message: str, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class LoadStalled(Exception):
    """The daemon answers but its load of the specs has made no progress for too long."""


#: how long a load may show no progress at all before a waiting client gives up
STALL_SECONDS = 60.0


def wait_loaded(client, on_progress=None, *, stall: float = STALL_SECONDS, poll: float = 0.1) -> dict:
    """Wait until the daemon behind ``client`` has loaded the specs (its ``hello`` says
    ``loaded``), for as long as the load makes progress; returns the last ``hello``.

    A daemon answers nothing about specs before it has loaded them; a big repository's
    first start (a cold index build) can take minutes, so there is no fixed limit, only
    ``stall`` seconds without any change in ``loading`` (phase, done, total): then
    :class:`LoadStalled`. ``on_progress(loading)`` sees each new state (to draw it).
    Works with :class:`DaemonClient` and :class:`HttpClient` alike.
    """
    import time

    hello = client.hello
    last = None
    changed = time.monotonic()
    while hello.get("loaded") is False:  # a daemon that does not say is an older one: loaded
        state = hello.get("loading") or {}
        key = (state.get("phase"), state.get("done"), state.get("total"))
        now = time.monotonic()
        if key != last:
            last, changed = key, now
            if on_progress is not None:
                on_progress(state)
        elif now - changed > stall:
            raise LoadStalled(f"the daemon's load has made no progress for {stall:.0f} s ({_words(state)})")
        time.sleep(poll)
        hello = client.call("hello", {"protocol": PROTOCOL_VERSION})
        client.hello = hello
    return hello


def _words(state: dict) -> str:
    if state.get("total"):
        return f"{state.get('phase')} {state.get('done', 0):,} of {state['total']:,}"
    return str(state.get("phase") or "starting")


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback one (a name is resolved: a
    string test would let ``127.attacker.example`` pass). A name that does not resolve is
    not loopback."""
    import ipaddress

    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = _socket.getaddrinfo(host, None, 0, _socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {str(info[4][0]).split("%", 1)[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def read_token(root: str) -> str | None:
    """The token a daemon of ``root`` made for its HTTP API (``.chant/daemon.token``), if any."""
    try:
        with open(os.path.join(root, ".chant", TOKEN_FILE), encoding="utf-8") as fh:
            token = fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return token or None


def runtime_info(root: str) -> dict | None:
    """What a running daemon wrote to ``.chant/daemon.json`` (socket, ports, pid), if any."""
    try:
        with open(os.path.join(root, ".chant", INFO_FILE), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def daemon_alive(root: str) -> bool:
    """True while a daemon holds this repository's instance lock (it may still be starting)."""
    import fcntl

    try:
        fd = os.open(os.path.join(root, ".chant", INSTANCE_LOCK), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops our probe lock, if we got it
    return False


def socket_path(root: str, configured: str | None = None) -> str:
    """The socket of the daemon of ``root``.

    ``configured`` (``scale.daemon.socket``) wins; else ``.chant/daemon.sock`` when the path
    fits in a socket address, else a per-repository name under ``$XDG_RUNTIME_DIR`` (or a
    private folder in the temp dir) derived from the root, so any client can find it.
    """
    if configured:
        return os.path.abspath(os.path.join(root, os.path.expanduser(configured)))
    path = os.path.join(root, ".chant", SOCKET_NAME)
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return path
    import hashlib

    digest = hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:16]
    base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join("/tmp", f"chant-{os.getuid()}")
    return os.path.join(base, f"chant-{digest}.sock")


def _same_root(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _waits(params: dict | None) -> float:
    """How long a request may wait on the daemon's side (its ``wait`` parameter: a long poll,
    see ``Op.waits``); 0 for any other request."""
    value = (params or {}).get("wait")
    try:
        return max(0.0, float(value)) if value is not None and not isinstance(value, bool) else 0.0
    except (TypeError, ValueError):
        return 0.0  # refused by the daemon anyway


class DaemonClient:
    """A persistent connection to the daemon of one repository.

    ``DaemonClient.connect(root)`` finds the socket, says ``hello`` and checks the answer;
    it raises :class:`DaemonUnavailable` when no suitable daemon answers.
    """

    #: a connection quiet for longer than this is checked before use: the daemon closes
    #: persistent connections that stay idle for long, and the client then reconnects
    QUIET_CHECK = 1.0

    def __init__(self, sock, hello: dict, path: str, root: str | None = None, timeout: float = 30.0) -> None:
        self.sock = sock
        self.hello = hello
        self.path = path
        self.root = root
        self.timeout = timeout
        self._buffer = b""
        self._next_id = 0
        self._last = time.monotonic()
        self._lock = _thread.allocate_lock()  # held for one request/answer exchange
        self._closing = False

    @classmethod
    def connect(cls, root: str, *, path: str | None = None, timeout: float = 30.0) -> DaemonClient:
        if path is None:
            # daemon.json names a socket moved by config; the derived path is tried too (a
            # repository moved with its daemon running has its socket file here, and the
            # daemon behind it then says which root it serves)
            info = runtime_info(root)
            named = info.get("socket") if info else None
            candidates = [named] if isinstance(named, str) and named else []
            default = socket_path(root)
            if default not in candidates:
                candidates.append(default)
        else:
            candidates = [path]
        sock = None
        failure = None
        for path in candidates:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(path)
                break
            except OSError as exc:
                sock.close()
                sock = None
                failure = failure or f"no daemon at {path}: {exc.strerror or exc}"
        if sock is None or path is None:
            raise DaemonUnavailable(failure)
        client = cls(sock, {}, path, root, timeout)
        try:
            hello = client.call("hello", {"protocol": PROTOCOL_VERSION})
        except (DaemonGone, ChantError, OSError, ValueError) as exc:
            client.close()
            raise DaemonUnavailable(f"the daemon at {path} did not answer hello: {exc}") from None
        if not isinstance(hello, dict) or hello.get("protocol") != PROTOCOL_VERSION:
            client.close()
            raise DaemonUnavailable(f"the daemon at {path} speaks protocol {hello.get('protocol')!r}, not {PROTOCOL_VERSION}")
        if not _same_root(str(hello.get("root", "")), root):
            client.close()
            raise WrongDaemon(f"the daemon at {path} serves {hello.get('root')}, not {root}", hello)
        client.hello = hello
        return client

    def _send(self, payload: dict) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode("utf-8") + b"\n"
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise DaemonGone(f"lost the daemon while sending: {exc.strerror or exc}", sent=False) from None

    def _read_line(self) -> bytes:
        """The next answer line. Linear in its length: the chunks are kept in a list and only
        each new chunk is searched for the newline (a growing buffer searched and copied
        again per chunk was quadratic: most of a 7 MB answer's time went there)."""
        head, nl, rest = self._buffer.partition(b"\n")
        if nl:
            self._buffer = rest
            return head
        chunks = [head] if head else []
        while True:
            try:
                chunk = self.sock.recv(_RECV)
            except OSError as exc:
                raise DaemonGone(f"lost the daemon while waiting for its answer: {exc.strerror or exc}") from None
            if not chunk:
                self._buffer = b""
                raise DaemonGone("the daemon closed the connection before answering")
            head, nl, rest = chunk.partition(b"\n")
            chunks.append(head)
            if nl:
                self._buffer = rest
                return b"".join(chunks)

    def _closed_by_daemon(self) -> bool:
        """True when the daemon has closed this connection (a peek that sees the end, or
        anything unasked for); costs two syscalls, so only after a quiet spell."""
        try:
            self.sock.settimeout(0.0)
            try:
                self.sock.recv(1, _socket.MSG_PEEK)
                return True  # the end (b""), or bytes nobody asked for: not a connection to reuse
            finally:
                self.sock.settimeout(self.timeout)
        except BlockingIOError:
            return False  # nothing to read: open and idle, as it should be
        except OSError:
            return True

    def _reopen(self) -> None:
        """A fresh connection to the same daemon (nothing was sent on the old one)."""
        try:
            fresh = DaemonClient.connect(self.root or "", path=self.path, timeout=self.timeout)
        except DaemonUnavailable as exc:
            raise DaemonGone(f"the daemon closed an idle connection and cannot be reached again: {exc}",
                             sent=False) from None
        self._shut()
        self.sock, self.hello, self._buffer = fresh.sock, fresh.hello, b""

    def call(self, cmd: str, params: dict | None = None):
        """Send one request and return its ``result``; a daemon error raises its ChantError.

        Thread safe: the exchange holds the client's lock, so concurrent calls take turns."""
        with self._lock:
            try:
                return self._exchange(cmd, params)
            finally:
                if self._closing:  # closed by another thread meanwhile: the socket is ours to close
                    self._shut()

    def _exchange(self, cmd: str, params: dict | None):
        if self._closing:
            raise DaemonGone("the connection to the daemon is closed", sent=False)
        if self.root is not None and time.monotonic() - self._last > self.QUIET_CHECK and self._closed_by_daemon():
            self._reopen()
        self._next_id += 1
        request_id = self._next_id
        request = {"cmd": cmd, "id": request_id}
        for key, value in (params or {}).items():
            if value is not None:
                request[key] = value
        waits = _waits(params)
        if waits:
            self.sock.settimeout(self.timeout + waits)  # a long poll: its answer may take that long
        try:
            self._send(request)
            try:
                answer = json.loads(self._read_line())
            except ValueError as exc:
                raise DaemonGone(f"the daemon sent a line that is not JSON: {exc}") from None
        finally:
            if waits:
                try:
                    self.sock.settimeout(self.timeout)
                except OSError:
                    pass
        if not isinstance(answer, dict):
            raise DaemonGone("the daemon sent an answer that is not an object")
        if answer.get("id", request_id) != request_id:  # out of step: nothing read here can be trusted
            self._shut()
            raise DaemonGone(f"the daemon answered request {answer.get('id')!r} to request {request_id}")
        self._last = time.monotonic()
        if answer.get("ok"):
            return answer.get("result")
        raise ChantError.from_dict(answer.get("error") or {})

    def _shut(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def close(self) -> None:
        """Close the connection. A call in flight in another thread is woken (it fails with
        :class:`DaemonGone`) and closes the socket itself; nothing is closed under it."""
        self._closing = True
        if self._lock.acquire(False):
            try:
                self._shut()
            finally:
                self._lock.release()
            return
        try:
            self.sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HttpClient:
    """The same calls against a remote daemon's HTTP API (``POST /api/rpc``)."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DaemonUnavailable(f"CHANT_DAEMON must be http://host:port, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.token = token if token is not None else (os.environ.get("CHANT_API_TOKEN") or self._local_token())
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None  # made by the first call
        self.hello: dict = {}
        self._lock = _thread.allocate_lock()  # held for one request/answer exchange
        self._closing = False

    def _local_token(self) -> str | None:
        """A daemon on this machine: the token it made, found from the repository we are in
        (readable by its user only, which is the point)."""
        if not is_loopback(self.host):
            return None
        from .store import find_root

        try:
            return read_token(find_root())
        except ChantError:
            return None

    @classmethod
    def connect(cls, base_url: str, **kwargs) -> HttpClient:
        client = cls(base_url, **kwargs)
        try:
            hello = client.call("hello", {"protocol": PROTOCOL_VERSION})
        except (DaemonGone, OSError) as exc:
            raise DaemonUnavailable(f"no daemon answers at {base_url}: {exc}") from None
        if not isinstance(hello, dict) or hello.get("protocol") != PROTOCOL_VERSION:
            raise DaemonUnavailable(f"the daemon at {base_url} speaks another protocol")
        client.hello = hello
        return client

    def _connection(self):
        if self._conn is None:
            import http.client

            klass = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self._conn = klass(self.host, self.port, timeout=self.timeout)
        return self._conn

    def call(self, cmd: str, params: dict | None = None):
        """Send one request and return its ``result``; a daemon error raises its ChantError.

        Thread safe: the exchange holds the client's lock, so concurrent calls take turns on
        its one keep-alive connection."""
        with self._lock:
            try:
                return self._exchange(cmd, params)
            finally:
                if self._closing:
                    self._shut()

    def _exchange(self, cmd: str, params: dict | None):
        if self._closing:
            raise DaemonGone(f"the connection to the daemon at {self.base_url} is closed", sent=False)
        body = {"cmd": cmd}
        body.update({k: v for k, v in (params or {}).items() if v is not None})
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = self._connection()
        # a long poll: the read timeout must outlast the wait (http.client applies the
        # connection's timeout to a socket it opens, and the socket's own to one it has)
        conn.timeout = self.timeout + _waits(params)
        if conn.sock is not None:
            try:
                conn.sock.settimeout(conn.timeout)
            except OSError:
                pass
        try:
            conn.request("POST", f"{self.prefix}/api/rpc", body=json.dumps(body), headers=headers)
        except OSError as exc:  # not (wholly) sent: a server acts on no request without its body
            self._shut()
            raise DaemonGone(f"lost the daemon at {self.base_url}: {exc}", sent=False) from None
        try:
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            self._shut()
            raise DaemonGone(f"lost the daemon at {self.base_url}: {exc}") from None
        except Exception as exc:  # http.client's own errors (bad status line, ...)
            self._shut()
            raise DaemonGone(f"lost the daemon at {self.base_url}: {type(exc).__name__}: {exc}") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise DaemonGone(f"the daemon at {self.base_url} answered HTTP {response.status} without JSON") from None
        if isinstance(answer, dict) and answer.get("ok"):
            return answer.get("result")
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            raise ChantError.from_dict(answer["error"])
        raise DaemonGone(f"the daemon at {self.base_url} answered HTTP {response.status}: {raw[:200]!r}")

    def _shut(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Close the connection; a call in flight in another thread is woken and closes it."""
        self._closing = True
        if self._lock.acquire(False):
            try:
                self._shut()
            finally:
                self._lock.release()
            return
        conn = self._conn
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
