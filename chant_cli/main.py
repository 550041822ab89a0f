"""The ``chant`` command: parse arguments, run the operation, render the result.

Every command except ``init`` and ``daemon`` is one operation of :mod:`chantlib.ops`. It goes
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


def _add_add(sub):
    p = sub.add_parser("add", help="create a spec")
    p.add_argument("title")
    p.add_argument("--type", default="code")
    p.add_argument("--label", action="append", help="a label (repeatable)")
    p.add_argument("--depends-on", action="append", metavar="ID", help="a dependency (repeatable)")
    p.add_argument("--priority", help="low, normal, high, critical or an integer")
    p.add_argument("--project", help="project prefix for the ID (default: project.prefix)")
    p.add_argument("--criterion", action="append", metavar="TEXT", help="an acceptance criterion (repeatable)")
    p.add_argument("--description", help="a paragraph under the title")
    _common(p)


def _add_list(sub):
    p = sub.add_parser("list", help="list active specs")
    p.add_argument("--ready", action="store_true", help="only ready specs")
    p.add_argument("--status", help="pending, ready, blocked, in_progress, completed, failed, ...")
    p.add_argument("--label", action="append", help="only specs with this label (repeatable: any of them)")
    p.add_argument("--type", help="only this type")
    p.add_argument("--project", help="only this project")
    p.add_argument("--count", action="store_true", help="print only the number of specs")
    _common(p)


def _add_show(sub):
    p = sub.add_parser("show", help="show one spec")
    p.add_argument("id", help="spec ID (a unique part is enough)")
    _common(p)


def _add_search(sub):
    p = sub.add_parser("search", help="search specs (see the query language in docs/cli.md)")
    p.add_argument("query", nargs="+", help="the query; several words are joined with spaces, and a word may "
                   "start with '-' (NOT): `chant search label:bug -status:completed`")
    p.add_argument("--limit", type=int, default=100, help="at most this many results (default 100)")
    _common(p)


#: the long options of `chant search`, and whether each takes a value (see _query_words)
_SEARCH_OPTIONS = {"--limit": True, "--json": False, "--direct": False, "--help": False}


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
        known = [o for o in _SEARCH_OPTIONS if o.startswith(name)]
        if "=" not in arg and len(known) == 1 and _SEARCH_OPTIONS[known[0]]:
            value = next(rest, None)
            if value is not None:
                options.append(value)
    return argv[: at + 1] + options + (["--", *words] if words else [])


def _add_lint(sub):
    p = sub.add_parser("lint", help="validate specs (exit 1 on errors)")
    p.add_argument("--archive", action="store_true", help="lint archived specs too")
    _common(p)


def _add_status(sub):
    p = sub.add_parser("status", help="counts by status, attention, ready queue")
    p.add_argument("--brief", action="store_true", help="one line")
    _common(p)


def _add_complete(sub):
    p = sub.add_parser("complete", help="mark a spec completed (and release its lease)")
    p.add_argument("id")
    p.add_argument("--token", type=int, help="the lease token (fencing)")
    p.add_argument("--owner")
    p.add_argument("--force", action="store_true", help="even if someone else holds the lease")
    p.add_argument("--failed", action="store_true", help="the work failed: set status failed instead")
    _common(p)


def _action_parsers(sub, command: str, text: str, actions: dict[str, str], action: str | None):
    """(name, parser) for each action of a command with actions (only ``action``'s when given)."""
    p = sub.add_parser(command, help=text)
    group = p.add_subparsers(dest=f"{command}_action", metavar="<action>", parser_class=_Parser, required=True)
    for name, help_text in actions.items():
        if action is None or name == action:
            yield name, group.add_parser(name, help=help_text)


_LOCK_ACTIONS = {
    "acquire": "take the lease on a spec",
    "release": "give up a lease",
    "renew": "extend a lease",
    "status": "show the lease on a spec",
    "list": "list live leases",
}


def _add_lock(sub, action=None):
    for name, q in _action_parsers(sub, "lock", "leases on specs", _LOCK_ACTIONS, action):
        if name != "list":
            q.add_argument("id")
        if name in ("acquire", "release", "renew"):
            q.add_argument("--owner", help="lease owner (default: CHANT_OWNER, else user@host)")
        if name in ("acquire", "renew"):
            q.add_argument("--ttl", type=float, help="seconds (default: scale.locks.ttl, 3600)")
        if name in ("release", "renew"):
            q.add_argument("--token", type=int, help="the lease's fencing token")
        if name in ("acquire", "release"):
            q.add_argument("--force", action="store_true", help="even if someone else holds it")
        _common(q)


_QUEUE_ACTIONS = {"next": "the next spec (--claim takes it)", "list": "the queue in order"}


def _add_queue(sub, action=None):
    for name, q in _action_parsers(sub, "queue", "the queue of ready work", _QUEUE_ACTIONS, action):
        q.add_argument("--project", help="only this project")
        q.add_argument("--label", action="append", help="only specs with this label (repeatable: any of them)")
        if name == "next":
            q.add_argument("--claim", action="store_true", help="take it with a lease")
            q.add_argument("--owner", help="lease owner (default: CHANT_OWNER, else user@host)")
            q.add_argument("--ttl", type=float, help="lease seconds (default: scale.locks.ttl)")
        else:
            q.add_argument("--limit", type=int, help="show at most this many")
        _common(q)


_INDEX_ACTIONS = {"rebuild": "rebuild from the files", "status": "size and freshness"}


def _add_index(sub, action=None):
    for _name, q in _action_parsers(sub, "index", "the search index", _INDEX_ACTIONS, action):
        _common(q)


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


def _add_daemon(sub, action=None):
    text = "the daemon: a hot index, lock table and queue for this repository"
    for name, q in _action_parsers(sub, "daemon", text, _DAEMON_ACTIONS, action):
        if name == "start":
            q.add_argument("--background", action="store_true", help="detach; return once the socket answers")
            _add_start_options(q)
        elif name == "stop":
            q.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
        elif name == "request":
            q.add_argument("json_request", metavar="JSON", help='a request object, e.g. \'{"cmd":"hello"}\'')
            q.add_argument("--in-process", action="store_true", help="answer here, as the daemon would")
        _common(q, json_flag=name == "status")


_BUILDERS = {
    "init": _add_init,
    "add": _add_add,
    "list": _add_list,
    "show": _add_show,
    "search": _add_search,
    "lint": _add_lint,
    "status": _add_status,
    "complete": _add_complete,
    "lock": _add_lock,
    "queue": _add_queue,
    "index": _add_index,
    "daemon": _add_daemon,
}
_ACTIONS = {"lock": _LOCK_ACTIONS, "queue": _QUEUE_ACTIONS, "index": _INDEX_ACTIONS, "daemon": _DAEMON_ACTIONS}


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
    if at is None or argv[at] not in _BUILDERS:
        return None, None
    word = argv[at]
    actions = _ACTIONS.get(word)
    if actions is None:
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
    for name, builder in _BUILDERS.items():
        if command is None:
            builder(sub)
        elif name == command:
            builder(sub, action) if name in _ACTIONS else builder(sub)
    return parser


def _operation(args) -> tuple[str, dict, object]:
    """The operation, its parameters and the renderer for parsed ``args``."""
    cmd = args.command
    if cmd == "list":
        # only what the renderer prints (--json prints every key): a smaller answer to send,
        # decode and, in the daemon, encode
        fields = ["id"] if args.count else None if args.json else list(render.LINE_FIELDS)
        return "list", {
            "ready": args.ready, "status": args.status, "labels": args.label, "type": args.type,
            "project": args.project, "fields": fields,
        }, render.render_list
    if cmd == "show":
        return "show", {"spec": args.id}, render.render_show
    if cmd == "search":
        return "search", {"q": " ".join(args.query), "limit": args.limit}, render.render_search
    if cmd == "lint":
        return "lint", {"archive": args.archive}, render.render_lint
    if cmd == "status":
        return "status", {}, render.render_status
    if cmd == "add":
        return "add", {
            "title": args.title, "type": args.type, "labels": args.label, "depends_on": args.depends_on,
            "priority": args.priority, "project": args.project, "criteria": args.criterion,
            "description": args.description,
        }, render.render_add
    if cmd == "complete":
        params = {"spec": args.id, "token": args.token, "owner": args.owner, "force": args.force}
        if args.failed:
            params["outcome"] = "failure"
        return "complete", params, render.render_complete
    if cmd == "lock":
        a = args.lock_action
        params = {} if a == "list" else {"spec": args.id}
        for name in ("owner", "ttl", "token", "force"):
            if hasattr(args, name):
                params[name] = getattr(args, name)
        return f"lock_{a}", params, render.render_lock
    if cmd == "queue":
        params = {"project": args.project, "labels": args.label}
        if args.queue_action == "list":
            params["limit"] = args.limit
            return "queue_list", params, render.render_queue
        if args.claim:
            params.update(owner=args.owner, ttl=args.ttl)
            return "queue_claim", params, render.render_queue
        return "queue_next", params, render.render_queue
    if cmd == "index":
        return f"index_{args.index_action}", {}, render.render_index
    raise AssertionError(cmd)


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
        op, params, renderer = _operation(args)
        from .backends import pick

        backend = pick(args, out.note)
        try:
            if op == "index_rebuild":
                result = backend.call_with_progress(op, params, "Rebuilding the index")
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
            # an empty queue is an answer, not an error: a claim says what a peek says
            out.note(exc.message if exc.code == "nothing_ready" else f"error: {exc.message}")
            return exc.exit_code
        out.note(f"error: {error_envelope(exc)['message']}")
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
