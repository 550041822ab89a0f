"""The public surface and the import weight: what `import chantlib` gives, and what the CLI loads."""

from __future__ import annotations

import os
import subprocess
import sys

import chantlib

from .support import ROOT

EXPECTED_EXPORTS = {
    "AlreadyExists", "AmbiguousSpecId", "ChantError", "Config", "Conflict", "FileLockTable", "Graph", "Index",
    "InvalidValue", "Lease", "LockHeld", "LockNotFound", "LockTable", "MemoryLockTable", "NotFound", "NotHolder",
    "NotInitialized", "NothingReady", "OPS", "ParsedId", "Queue", "QuerySyntaxError", "Row", "SearchResult", "Spec",
    "SpecNotFound", "UnknownSpecRef", "SpecParseError", "SpecStore", "SpecTable", "StaleToken", "SpecTimedOut", "StorageError", "GitError", "UsageError",
    "Workspace", "__version__", "Applied", "Event", "Statistics", "dispatch", "generate_id", "parse_id", "parse_query", "resolve_partial", "sort_key",
    "GitWatcher", "GitEvent", "Worker",
    # every public error of chantlib/errors.py
    "BadRequest", "MethodNotAllowed", "Unavailable", "Loading", "Unauthorized",
    # the clients
    "connect", "start_background", "Backend", "DirectBackend", "DaemonBackend", "SocketBackend", "HttpBackend",
    "StartFailed", "DaemonClient", "HttpClient", "DaemonUnavailable", "WrongDaemon", "DaemonGone", "LoadStalled",
}


def test_exported_names_are_pinned():
    assert set(chantlib.__all__) == EXPECTED_EXPORTS
    for name in chantlib.__all__:
        assert getattr(chantlib, name) is not None


def test_every_public_error_and_client_is_exported():
    """What a caller may catch or hold is in ``__all__``: the error tree, the clients' own
    exceptions, the backends of ``connect``."""
    from chantlib import backends, client, errors

    for module in (errors, client, backends):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and (issubclass(value, BaseException) or module is not errors):
                assert name in chantlib.__all__, f"chantlib.{module.__name__}.{name} is not in chantlib.__all__"
    assert "connect" in chantlib.__all__ and chantlib.connect is backends.connect


def test_importing_chantlib_loads_no_part_of_it():
    code = "import sys, chantlib; print(sorted(m for m in sys.modules if m.startswith('chantlib')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout == "['chantlib', 'chantlib._version']\n", proc.stdout + proc.stderr


def imported_modules(args, cwd=ROOT, code=None, *, full=False, codes=(0,)) -> set[str]:
    """Module names imported by a Python run that exits with one of ``codes`` (from -X
    importtime): top-level names, or with ``full`` the dotted ones."""
    cmd = [sys.executable, "-X", "importtime"] + (["-c", code] if code else ["-m", "chant_cli", *args])
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode in codes, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name if full else name.split(".")[0])
    return names


HEAVY = {"tantivy", "starlette", "uvicorn", "prometheus_client", "watchfiles"}


def test_help_loads_nothing_heavy():
    mods = imported_modules(["--help"])
    assert not mods & (HEAVY | {"yaml", "filelock"}), mods & (HEAVY | {"yaml", "filelock"})


def test_warm_direct_list_loads_neither_tantivy_nor_yaml(repo):
    repo.write("2026-01-24-001-aaa")
    subprocess.run([sys.executable, "-m", "chant_cli", "list"], cwd=repo.root, check=True, capture_output=True)
    mods = imported_modules(["list", "--ready"], cwd=repo.root)
    assert "chantlib" in mods
    assert not mods & (HEAVY | {"yaml", "filelock"}), mods & (HEAVY | {"yaml", "filelock"})


def test_search_is_the_one_that_loads_tantivy(repo):
    repo.write("2026-01-24-001-aaa")
    mods = imported_modules(["search", "spec"], cwd=repo.root)
    assert "tantivy" in mods and not mods & {"starlette", "uvicorn", "prometheus_client"}


def test_a_daemon_query_loads_nothing_heavy(repo, daemon_factory):
    repo.write("2026-01-24-001-aaa")
    daemon_factory(repo.root, api=False, metrics=False)
    mods = imported_modules(["list", "--ready"], cwd=repo.root, full=True)
    assert "chantlib.client" in mods  # it did talk to the daemon...
    assert "chantlib.table" not in mods and "chantlib.workspace" not in mods  # ...and did not run here
    top = {name.split(".")[0] for name in mods}
    light = HEAVY | {"yaml", "filelock", "socket", "selectors"}
    assert not top & light, top & light


def test_chantlib_imports_no_server_package():
    code = (
        "import sys\n"
        "for name in ('starlette', 'uvicorn', 'prometheus_client'):\n"
        "    sys.modules[name] = None  # any import of them now fails\n"
        "import chantlib\n"
        "from chantlib import workspace, index, locks, queue, lint, ops, table, graph, spec, store, config, query\n"
        "from chantlib import generate, ids, errors\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr


def test_every_command_is_documented():
    from chant_cli.main import commands

    with open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8") as fh:
        doc = fh.read()
    for command, actions in commands().items():
        if not actions:
            assert f"chant {command}" in doc, f"docs/cli.md does not document `chant {command}`"
        for action in actions or ():
            assert f"chant {command} {action}" in doc, f"docs/cli.md does not document `chant {command} {action}`"


def test_every_operation_is_documented():
    from chantlib.ops import OPS

    with open(os.path.join(ROOT, "docs", "library.md"), encoding="utf-8") as fh:
        doc = fh.read()
    for name in OPS:
        assert f"`{name}`" in doc, f"docs/library.md does not list the operation `{name}`"
