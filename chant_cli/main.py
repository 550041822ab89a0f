"""The ``chant`` command: parse arguments, run the operation, render the result.

Every command except ``init``, ``daemon``, ``hooks`` and ``agent`` is one operation of :mod:`chantlib.ops`. It goes
to the repository's daemon when one answers (``CHANT_DAEMON`` names a remote one), else it
runs in direct mode, in process on the files (see :mod:`chant_cli.backends`); ``--direct``,
before or after the subcommand, forces direct mode. Exit codes are mapped in one place,
:func:`main`: 0 ok, 1 error, 2 usage, 3 conflict (already locked, stale token), 4 not found,
5 nothing ready, 130 interrupted, 141 broken pipe. Errors are one line on stderr, never a
traceback (``CHANT_DEBUG=1`` shows it).

Kept light: argparse and json at import; the library's heavier parts load only when the
operation needs them.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

from . import render

__all__ = ["main", "build_parser"]

def _formatter(prog: str) -> argparse.HelpFormatter:
    # argparse would import shutil (and with it bz2 and lzma) on every run just to learn
    # the terminal width; the os call answers the same question.
    try:
        width = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        width = int(os.environ.get("COLUMNS", "80") or 80)
    return argparse.HelpFormatter(prog, width=max(40, width - 2))


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _common(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    # default=SUPPRESS: the option may be given before the subcommand as well
    p.add_argument("--direct", action="store_true", default=argparse.SUPPRESS, help="never use a daemon")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print JSON")


def _add_init(sub):
    p = sub.add_parser("init", help="create .chant/ in the current folder")
    p.add_argument("--name", help="project name for config.md (default: the folder name)")
    _common(p, json_flag=False)


def _faces() -> dict[tuple, list]:
    """Command words -> the operations offered there (the first one, and those another
    ``--switch`` selects), from the operations table: each operation's CLI face."""
    from chantlib.ops import OPS

    faces: dict[tuple, list] = {}
    for op in OPS.values():
        if op.cli is not None:
            faces.setdefault(op.cli.path, []).append(op)
    for ops in faces.values():
        ops.sort(key=lambda op: op.cli.switch is not None)  # the plain one first
    return faces


def _param_help(p) -> str | None:
    text = p.doc or None
    if p.default not in (None, False) and text is not None and "default" not in text:
        text = f"{text} (default: {p.default})"
    return text


def _add_flags(q, ops: list) -> None:
    """The arguments of one command: positional parameters, a flag per other parameter of
    any of its operations (each once), the switches and the renderer's own flags."""
    seen: set[str] = set()
    for op in ops:
        cli = op.cli
        if cli.switch is not None:
            q.add_argument(f"--{cli.switch}", action="store_true", help=cli.help)
        for p in op.params:
            if p.name in seen or p.name in cli.hidden:
                continue
            seen.add(p.name)
            if p.name in cli.positional:
                metavar = p.metavar or (p.aliases[0] if p.aliases else p.name)
                nargs = "+" if cli.words and p.name == cli.positional[-1] else None
                text = _param_help(p)
                if nargs:
                    text = f"{text}; several words are joined with spaces, and a word may start with '-' (NOT)"
                elif not p.required:
                    nargs = "?"  # a positional with a default may be left out
                q.add_argument(p.name, metavar=metavar, nargs=nargs, help=text)
            elif p.name in cli.consts:
                flag, value, text = cli.consts[p.name]
                q.add_argument(f"--{flag}", dest=p.name, action="store_const", const=value, help=text)
            elif p.kind == "bool":
                q.add_argument(f"--{p.flag}", dest=p.name, action="store_true", default=None, help=_param_help(p))
            elif p.kind == "list":
                metavar = p.metavar or p.flag.upper().replace("-", "_")
                q.add_argument(f"--{p.flag}", dest=p.name, action="append", metavar=metavar, help=_param_help(p))
            else:
                kind = {"int": int, "float": float}.get(p.kind)
                q.add_argument(f"--{p.flag}", dest=p.name, type=kind, metavar=p.metavar, help=_param_help(p))
        for flag, text in cli.extra:
            q.add_argument(f"--{flag}", action="store_true", help=text)
    _common(q)


def _add_operations(sub, command: str | None = None, action: str | None = None) -> None:
    """The subcommands of the operations (only ``command``'s, only ``action``'s, when given)."""
    from chantlib.ops import GROUPS

    groups: dict[str, object] = {}
    for path, ops in _faces().items():
        if command is not None and path[0] != command or action is not None and path[1:] != (action,):
            continue
        if len(path) == 1:
            q = sub.add_parser(path[0], help=ops[0].cli.help)
        else:
            group = groups.get(path[0])
            if group is None:
                p = sub.add_parser(path[0], help=GROUPS[path[0]])
                group = groups[path[0]] = p.add_subparsers(
                    dest=f"{path[0]}_action", metavar="<action>", parser_class=_Parser, required=True
                )
            q = group.add_parser(path[1], help=ops[0].cli.help)
        _add_flags(q, ops)


def _add_start_options(q) -> None:
    """The daemon's options, defined once by chantd (loaded only to build this parser)."""
    from chantd.options import add_start_options

    add_start_options(q)


_DAEMON_ACTIONS = {
    "start": "run the daemon (foreground; --background detaches)",
    "stop": "stop the daemon and wait until it is gone",
    "status": "is it running, since when, what it serves",
    "request": "send one raw JSON request and print the answer",
}


def _seconds(text: str) -> float:
    """A number of seconds for argparse: zero or more."""
    value = float(text)  # argparse names a ValueError as an invalid value
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, got {text!r}")
    return value


_seconds.__name__ = "seconds"  # argparse names it in "invalid seconds value: 'x'"


def _add_daemon(sub, action=None):
    text = "the daemon: a hot index, lock table and queue for this repository"
    p = sub.add_parser("daemon", help=text)
    group = p.add_subparsers(dest="daemon_action", metavar="<action>", parser_class=_Parser, required=True)
    for name, help_text in _DAEMON_ACTIONS.items():
        if action is not None and name != action:
            continue
        q = group.add_parser(name, help=help_text)
        if name == "start":
            q.add_argument("--background", action="store_true", help="detach; return once the socket answers")
            _add_start_options(q)
        elif name == "stop":
            q.add_argument("--timeout", type=_seconds, default=30.0, metavar="S", help="seconds to wait (default: 30)")
        elif name == "request":
            q.add_argument("json_request", metavar="JSON", help='a request object, e.g. \'{"cmd":"hello"}\'')
            q.add_argument("--in-process", action="store_true", help="answer here, as the daemon would")
        _common(q, json_flag=name == "status")


_HOOKS_ACTIONS = {
    "install": "write git hooks that lint, check and record commits (for repositories without a daemon)",
    "uninstall": "remove chant's git hooks and put back the hooks they chained",
    "status": "which of chant's git hooks are installed, and where",
    "run": "do one hook's work (what the installed hooks call)",
}


def _add_hooks(sub, action=None):
    from .hooks import HOOKS

    p = sub.add_parser("hooks", help="git hooks: lint staged specs, check and record commits, without a daemon")
    group = p.add_subparsers(dest="hooks_action", metavar="<action>", parser_class=_Parser, required=True)
    for name, help_text in _HOOKS_ACTIONS.items():
        if action is not None and name != action:
            continue
        q = group.add_parser(name, help=help_text)
        if name == "install":
            q.add_argument("--force", action="store_true",
                           help="also where another tool replaced chant's hook (the hook chant had chained is kept)")
        elif name == "run":
            q.add_argument("--root", metavar="DIR", help="the chant root, relative to the top of the working tree")
            q.add_argument("hook", choices=HOOKS, help="the hook")
            q.add_argument("hook_args", nargs=argparse.REMAINDER, metavar="ARG", help="what git passed the hook")
        _common(q, json_flag=name == "status")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text!r}")
    return value


_positive_int.__name__ = "count"


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


_positive_seconds.__name__ = "seconds"


def _add_agent(sub, action=None):
    p = sub.add_parser("agent", help="agents: a worker that claims specs and runs an agent command on each")
    group = p.add_subparsers(dest="agent_action", metavar="<action>", parser_class=_Parser, required=True)
    q = group.add_parser("worker", help="claim ready specs, run the agent command on each, report the result")
    q.add_argument("--project", metavar="P", help="only specs of this project")
    q.add_argument("--label", action="append", metavar="L", help="only specs with any of these labels (repeatable)")
    q.add_argument("--once", action="store_true", help="run one spec, then exit (5 if none is ready within --wait)")
    q.add_argument("--concurrency", type=_positive_int, default=1, metavar="N",
                   help="specs run at once, one per slot (default: 1)")
    q.add_argument("--exec", dest="exec_command", metavar="CMD",
                   help="the shell command to run per spec ({id}, {path}; default: parallel.agents[0].command)")
    q.add_argument("--ttl", type=_positive_seconds, metavar="S",
                   help="lease length in seconds, renewed every ttl/3 (default: scale.locks.ttl, 3600)")
    q.add_argument("--owner", metavar="O", help="lease owner (default: CHANT_OWNER, else user@host, + /worker-<pid>)")
    q.add_argument("--grace", type=_seconds, default=10.0, metavar="S",
                   help="on SIGTERM, seconds a running command gets before it is stopped (default: 10)")
    q.add_argument("--wait", type=_seconds, metavar="S",
                   help="seconds one claim waits for work (default: 60; with --once: 0)")
    _common(q, json_flag=False)


_AGENT_ACTIONS = ("worker",)


def commands() -> dict[str, tuple[str, ...]]:
    """Every command word -> its actions (empty for a command without any): ``init``,
    ``daemon``, ``hooks`` and ``agent``, and the faces of the operations."""
    out: dict[str, tuple[str, ...]] = {"init": ()}
    for path in _faces():
        out[path[0]] = out.get(path[0], ()) + path[1:]
    out["daemon"] = tuple(_DAEMON_ACTIONS)
    out["hooks"] = tuple(_HOOKS_ACTIONS)
    out["agent"] = _AGENT_ACTIONS
    return out


def _command_index(argv: list[str]) -> int | None:
    """Where the command word is in ``argv`` (the first word that is not a global option)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "-C":
            i += 2
            continue
        if not word.startswith("-"):
            return i
        i += 1
    return None


def _selected(argv: list[str]) -> tuple[str | None, str | None]:
    """The command (and action) named in ``argv``, if it can be told without parsing.

    Building every subparser costs milliseconds on each run, so only the one in use is
    built; help, errors and anything unclear build them all.
    """
    if any(a in ("-h", "--help") for a in argv):
        return None, None
    at = _command_index(argv)
    known = commands()
    if at is None or argv[at] not in known:
        return None, None
    word = argv[at]
    actions = known[word]
    if not actions:
        return word, None
    nxt = argv[at + 1] if at + 1 < len(argv) else None
    return (word, nxt) if nxt in actions else (None, None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chant",
        description="Specs for coding agents: list, search, lock and queue the work in .chant/specs/.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 conflict, 4 not found, 5 nothing ready, "
        "130 interrupted, 141 broken pipe.",
    )
    parser.add_argument("--direct", action="store_true", default=False, help="never use a daemon")
    parser.add_argument("-C", dest="chdir", metavar="DIR", help="run as if started in DIR")
    from chantlib._version import VERSION

    parser.add_argument("--version", action="version", version=f"chant {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    command, action = _selected(argv) if argv is not None else (None, None)
    if command in (None, "init"):
        _add_init(sub)
    if command not in ("init", "daemon", "hooks", "agent"):
        _add_operations(sub, command, action)
    if command in (None, "daemon"):
        _add_daemon(sub, action)
    if command in (None, "hooks"):
        _add_hooks(sub, action)
    if command in (None, "agent"):
        _add_agent(sub, action)
    return parser


def _query_words(argv: list[str]) -> list[str]:
    """``argv`` with the query words of ``chant search`` moved behind a ``--``.

    A word of the query language may start with ``-`` (``-status:done`` is NOT), which
    argparse would take for an unknown option; a query is not an option. So after
    ``search``, anything but its own options (``--limit N``, ``--json``, ``--direct``, ``-h``,
    their ``--opt=value`` and abbreviated forms) is a word of the query, in any position;
    ``--`` still ends the options. Other commands are left as they are.
    """
    at = _command_index(argv)
    if at is None or argv[at] != "search":
        return argv
    from chantlib.ops import OPS

    search = OPS["search"]
    takes_value = {f"--{p.flag}": p.kind != "bool" for p in search.params if p.name not in search.cli.positional}
    takes_value.update({"--json": False, "--direct": False, "--help": False})
    options: list[str] = []
    words: list[str] = []
    rest = iter(argv[at + 1 :])
    for arg in rest:
        if arg == "--":
            words.extend(rest)
            break
        if arg == "-h":
            options.append(arg)
            continue
        if not arg.startswith("--"):
            words.append(arg)
            continue
        options.append(arg)  # an option, or a mistake argparse will name
        name = arg.partition("=")[0]
        known = [o for o in takes_value if o.startswith(name)]
        if "=" not in arg and len(known) == 1 and takes_value[known[0]]:
            value = next(rest, None)
            if value is not None:
                options.append(value)
    return argv[: at + 1] + options + (["--", *words] if words else [])


def _operation(args) -> tuple[str, dict, object]:
    """The operation, its parameters and the renderer for parsed ``args``: the operation
    whose CLI face was used (a ``--switch`` picks its own), each of its parameters from the
    argument of the same name, and what the renderer asks for (:data:`render.SHAPES`)."""
    path = (args.command,)
    action = getattr(args, f"{args.command}_action", None)
    if action is not None:
        path += (action,)
    ops = _faces()[path]
    op = next((o for o in ops if o.cli.switch and getattr(args, o.cli.switch, False)), ops[0])
    params = {}
    for p in op.params:
        value = getattr(args, p.name, None)
        if value is not None and op.cli.words and p.name == op.cli.positional[-1]:
            value = " ".join(value)
        params[p.name] = value
    shape = render.SHAPES.get(op.name)
    if shape is not None:
        shape(params, args)
    return op.name, params, render.RENDERERS[op.name]


def _init(args, out: render.Out) -> int:
    from chantlib.store import SpecStore

    store = SpecStore(os.getcwd())
    created = store.init(args.name)
    if created:
        out.line(f"Initialized {store.chant_dir}")
    else:
        out.note(f"{store.chant_dir} already exists; added anything missing")
    return 0


def main(argv: list[str] | None = None) -> int:
    # A command lives for milliseconds and builds no reference cycles worth collecting, but
    # loading the spec table allocates ~100k objects, which would trigger ~100 collections.
    gc.disable()
    try:
        return _main(argv)
    finally:
        gc.enable()


def _main(argv: list[str] | None) -> int:
    out = render.Out()
    if argv is None:
        argv = sys.argv[1:]
    argv = _query_words(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.chdir:
            try:
                os.chdir(args.chdir)
            except OSError as exc:
                out.note(f"error: cannot change to {args.chdir}: {exc.strerror}")
                return 2
        if args.command == "init":
            return _init(args, out)
        if args.command == "daemon":
            from . import daemon

            return getattr(daemon, args.daemon_action)(args, out)
        if args.command == "hooks":
            from . import hooks

            return getattr(hooks, args.hooks_action)(args, out)
        if args.command == "agent":
            from . import agent

            return getattr(agent, args.agent_action)(args, out)
        op, params, renderer = _operation(args)
        from .backends import pick

        backend = pick(args, out.note)
        try:
            if op == "index_rebuild":
                result = backend.call_with_progress(op, params)
            else:
                result = backend.call(op, params)
        finally:
            backend.close()
        render.warnings(out, result)
        code = renderer(out, result, args)
        out.stdout.flush()
        return code
    except KeyboardInterrupt:
        out.note("interrupted")
        return 130
    except BrokenPipeError:
        # the reader went away (`chant list | head`): stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 141
    except Exception as exc:  # the one place errors become exit codes
        from chantlib.errors import ChantError, error_envelope

        if os.environ.get("CHANT_DEBUG"):
            import traceback

            traceback.print_exc()
        if isinstance(exc, ChantError):
            if exc.code == "nothing_ready":
                # an empty queue is an answer, not an error: a claim says and prints what a
                # peek does (`null` for --json)
                out.note(exc.message)
                if getattr(args, "json", False):
                    out.json(None)
                return exc.exit_code
            out.note(f"error: {exc.message}")
            return exc.exit_code
        out.note(f"error: {error_envelope(exc)['message']}")
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
