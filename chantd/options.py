"""The daemon's settings: its command-line options, and how they resolve.

One definition of the options for ``chantd`` and ``chant daemon start`` alike
(:func:`add_start_options`; the CLI imports this module only to build that subcommand's
parser, and nothing heavy loads with it), the options as ``chantd`` arguments again for a
background start (:func:`start_argv`), and :class:`Settings`: where and how the daemon
listens, resolved once as everywhere: command-line option > ``CHANT_*`` environment >
``.chant/config.md`` > default.
"""

from __future__ import annotations

import os

from chantlib.client import TOKEN_FILE, is_loopback, socket_path
from chantlib.errors import Conflict, InvalidValue, StorageError
from chantlib.values import MAX_CLAIM_WAIT as MAX_WAIT

#: connections served at once per transport; one more gets a one-line refusal
#: (``scale.daemon.max_connections``)
MAX_CONNECTIONS = 1000

LOG_LEVELS = ("debug", "info", "warning", "error")


def add_start_options(parser) -> None:
    """The daemon's options on an argparse parser (``chantd``, ``chant daemon start``)."""
    parser.add_argument("--socket", help="Unix socket path (default: scale.daemon.socket, else .chant/daemon.sock)")
    parser.add_argument("--api-port", type=int,
                        help="HTTP API port, 0 = off (default: scale.daemon.api_port, 8080)")
    parser.add_argument("--api-host", help="HTTP API address (default: scale.daemon.api_host, 127.0.0.1)")
    parser.add_argument("--metrics-port", type=int,
                        help="Prometheus port, 0 = off (default: scale.daemon.metrics_port, 9090)")
    parser.add_argument("--poll", action="store_true", help="poll the files instead of inotify (NFS)")
    parser.add_argument("--log-level", choices=list(LOG_LEVELS), help="daemon log level (default info)")
    parser.add_argument("--log-file", metavar="PATH", help="log here, rotated at 10 MiB (default: stderr; "
                        "--background logs to .chant/logs/daemon.log)")


def options_from(args) -> dict:
    """Parsed options as the keyword arguments of :class:`Settings` (and :func:`chantd.build`)."""
    return {
        "socket_arg": args.socket,
        "api_port": args.api_port,
        "api_host": args.api_host,
        "metrics_port": args.metrics_port,
        "poll": args.poll or None,
    }


def start_argv(args) -> list[str]:
    """Parsed options as ``chantd`` arguments again: what a background start passes on."""
    out: list[str] = []
    for flag, value in (
        ("--socket", args.socket),
        ("--api-port", args.api_port),
        ("--api-host", args.api_host),
        ("--metrics-port", args.metrics_port),
    ):
        if value is not None:
            out += [flag, str(value)]
    if args.poll:
        out.append("--poll")
    if args.log_level:
        out += ["--log-level", args.log_level]
    if getattr(args, "log_file", None):
        out += ["--log-file", args.log_file]
    return out


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
        max_wait = config.get("scale.daemon.max_wait")
        try:
            self.max_wait = float(MAX_WAIT if max_wait is None else max_wait)
        except (TypeError, ValueError):
            raise InvalidValue(f"config scale.daemon.max_wait must be a number of seconds, got {max_wait!r}") from None
        if not 0 <= self.max_wait <= MAX_WAIT or isinstance(max_wait, bool):
            raise InvalidValue(f"config scale.daemon.max_wait must be 0 to {MAX_WAIT:g} seconds, got {max_wait!r}")
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
    from chantlib.store import SpecStore, atomic_write

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
