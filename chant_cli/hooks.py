"""``chant hooks install | uninstall | status | run``: git hooks for repositories without a daemon.

The installed hooks are a few lines of POSIX sh each; their work is :func:`run`, here, which
they call through the chant of the interpreter that installed them (``<python> -m chant_cli
hooks run <hook> "$@"``), else the ``chant`` on PATH. What each hook does:

- ``pre-commit`` lints the staged content of the spec files the commit touches
  (:meth:`Workspace.lint_staged <chantlib.workspace.Workspace.lint_staged>`), prints the
  findings as ``chant lint`` does, and blocks the commit (exit 1) on an error; nothing else
  ever blocks it;
- ``commit-msg`` warns when the subject's ``chant(<id>)`` names no spec, or several;
- ``post-commit`` records the commit in the spec its subject names (the ``record_commit``
  operation, through the daemon when one serves the repository); ``post-rewrite`` records
  the commits an amend or a rebase made in place of the ones they replaced;
- ``post-checkout`` and ``post-merge`` bring the spec table and the index in step with the
  new working tree (a daemon's watcher does it by itself), and ``post-checkout`` onto a
  branch ``chant/<id>`` prints that spec's line.

A hook that was there before is kept beside ours as ``<hook>.chant-chained`` and run first,
with the same arguments and input; ``uninstall`` puts it back as it was (a rename: the same
bytes, mode and inode). A hook never fails git because of chant: anything but lint's
errors is a warning, and a chant that is gone is one warning line. See docs/hooks.md.

Import-light: os and sys at import; the library is loaded by the hook that needs it.
"""

from __future__ import annotations

import os
import sys

__all__ = ["HOOKS", "CHAINED", "MARKER", "install", "uninstall", "status", "run", "script"]

#: the hooks chant installs, in the order they are listed
HOOKS = ("pre-commit", "commit-msg", "post-commit", "post-rewrite", "post-merge", "post-checkout")
#: hooks whose failure stops git: a chained one that fails stops it as it did before
_BLOCKING = frozenset({"pre-commit", "commit-msg"})
#: hooks git feeds on standard input (both the chained hook and chant read it)
_STDIN = frozenset({"post-rewrite"})
#: the suffix of a hook that was there before ours, kept beside it and run first
CHAINED = ".chant-chained"
#: the line that makes a hook ours
MARKER = "# chant-hooks:"
#: the version of the scripts' shape; a script of another is rewritten by ``install``
FORMAT = 1
#: the prefix of the branches chant's agents work on (docs/chant-format.md §11)
BRANCH_PREFIX = "chant/"
#: where a cherry-pick or revert of several commits leaves the commits it made, in the
#: worktree's git folder, for the first hook run after it to record
PENDING = "chant-hooks-pending"


def _quote(text: str) -> str:
    """``text`` as one word of sh."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def script(hook: str, python: str, package: str, root: str = "") -> str:
    """The text of chant's ``hook``: runs a chained hook first, then ``python -m chant_cli
    hooks run`` (while ``package``, the folder of that chant_cli, is there), else the
    ``chant`` on PATH, else warns; ``root``: the chant root relative to the top of the
    working tree, where git runs hooks ("": the top)."""
    where = f" --root {_quote(root)}" if root else ""
    feed = 'printf %s "$input" | ' if hook in _STDIN else ""
    lines = [
        "#!/bin/sh",
        f"{MARKER} chant's {hook} hook (format {FORMAT}), written by `chant hooks install`.",
        "# `chant hooks uninstall` removes it and puts back the hook it chains, if any: the hook",
        f"# that was here before, kept as {hook}{CHAINED} and run first. See docs/hooks.md of chant.",
        "status=0",
    ]
    if hook in _STDIN:
        lines += ["input=$(cat; echo .)  # both hooks read it; the dot keeps trailing newlines", "input=${input%.}"]
    failed = "exit $?" if hook in _BLOCKING else "status=$?"
    lines += [
        f'if [ -x "$0{CHAINED}" ]; then',
        f'    {feed}"$0{CHAINED}" "$@" || {failed}',
        "fi",
        f"python={_quote(python)}",
        f'if [ -x "$python" ] && [ -f {_quote(os.path.join(package, "__main__.py"))} ]; then',
        f'    {feed}"$python" -m chant_cli hooks run{where} {hook} "$@"',
        "elif command -v chant >/dev/null 2>&1; then",
        f'    {feed}chant hooks run{where} {hook} "$@"',
        "else",
        f'    echo "warning: chant is not installed ($python is gone, and no chant is on PATH): its {hook} hook'
        f' did nothing; \\`chant hooks uninstall\\` removes it, or delete $0" >&2',
        "    exit $status",
        "fi",
    ]
    if hook == "pre-commit":
        lines += ["[ $? -eq 1 ] && exit 1  # lint found errors in the staged specs: the one thing that blocks"]
    lines += ["exit $status", ""]
    return "\n".join(lines)


def _expected(hook: str, root_prefix: str) -> str:
    import chant_cli

    return script(hook, sys.executable, os.path.dirname(os.path.abspath(chant_cli.__file__)), root_prefix)


def _ours(path: str) -> bool:
    """A regular file (not a link) whose first lines carry :data:`MARKER`."""
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return False
    return b"\n" + MARKER.encode() in head


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            return fh.read()
    except OSError:
        return None


def _state(path: str, expected: str) -> str:
    """``missing``, ``installed`` (ours, as this chant writes it), ``outdated`` (ours, of
    another chant or interpreter, or not executable), or ``foreign`` (a hook not ours)."""
    if not os.path.lexists(path):
        return "missing"
    if not _ours(path):
        return "foreign"
    current = _read(path) == expected and os.access(path, os.X_OK)
    return "installed" if current else "outdated"


class _Place:
    """Where the hooks go: the hooks folder and the chant root relative to the top of the
    working tree (what the scripts pass as ``--root``)."""

    def __init__(self) -> None:
        from chantlib.git import hooks_dir
        from chantlib.store import find_root

        self.root = find_root()
        self.dir, top = hooks_dir(self.root)
        rel = os.path.relpath(self.root, top)
        self.prefix = "" if rel == "." else rel.replace(os.sep, "/")

    def hooks(self):
        for hook in HOOKS:
            path = os.path.join(self.dir, hook)
            yield hook, path, path + CHAINED, _expected(hook, self.prefix)


def _write(path: str, text: str) -> None:
    """Write the script whole or not at all (a temp file renamed over it), executable."""
    tmp = f"{path}.chant-tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _spare(path: str) -> str:
    """A free name beside ``path`` for a hook --force moves out of the way."""
    n = 1
    while os.path.lexists(f"{path}.{n}"):
        n += 1
    return f"{path}.{n}"


def install(args, out) -> int:
    place = _Place()
    os.makedirs(place.dir, exist_ok=True)
    changed = refused = 0
    for hook, path, chained, text in place.hooks():
        state = _state(path, text)
        if state == "installed":
            out.line(f"{hook}: already installed" + (f" (runs {hook}{CHAINED} first)" if os.path.lexists(chained) else ""))
            continue
        kept = None
        if state == "foreign":
            if not (os.path.islink(path) or os.path.isfile(path)):
                out.note(f"error: {path} is not a file; {hook} left as it is")
                refused += 1
                continue
            if os.path.lexists(chained):
                if not args.force:
                    out.note(f"error: {hook} is not chant's hook, and {hook}{CHAINED} (the hook chant chained) is there "
                             f"too: another tool replaced chant's hook, and may run it itself. Left both as they are; "
                             f"--force chains the current {hook} instead (the old {hook}{CHAINED} is kept, not run)")
                    refused += 1
                    continue
                kept = _spare(chained)
                os.rename(chained, kept)
            os.rename(path, chained)  # the same file, bytes and mode: uninstall renames it back
        _write(path, text)
        changed += 1
        if state == "outdated":
            out.line(f"{hook}: updated")
        elif state == "foreign":
            out.line(f"{hook}: installed; the hook that was there runs first (kept as {hook}{CHAINED})"
                     + (f"; the one kept before is now {os.path.basename(kept)}, and no longer runs" if kept else ""))
        elif os.path.lexists(chained):
            out.line(f"{hook}: installed; {hook}{CHAINED}, kept from before, runs first again")
        else:
            out.line(f"{hook}: installed")
    if refused:
        return 3
    if changed:
        out.note(f"chant's git hooks are in {place.dir}")
    else:
        out.note(f"chant's git hooks are already installed in {place.dir}; nothing changed")
    return 0


def uninstall(args, out) -> int:
    place = _Place()
    removed = left = 0
    for hook, path, chained, text in place.hooks():
        state = _state(path, text)
        has_chained = os.path.lexists(chained)
        if state in ("installed", "outdated"):
            os.unlink(path)
            removed += 1
            if has_chained:
                os.rename(chained, path)
                out.line(f"{hook}: removed; put back the hook it chained")
            else:
                out.line(f"{hook}: removed")
        elif state == "missing" and has_chained:
            os.rename(chained, path)
            out.line(f"{hook}: put back the hook chant had chained ({hook}{CHAINED})")
        elif state == "foreign" and has_chained:
            out.note(f"warning: {hook} is not chant's hook (another tool replaced it); it and {hook}{CHAINED}, "
                     "the hook chant chained, are left as they are")
            left += 1
    if removed:
        out.note(f"Removed chant's git hooks from {place.dir}")
    elif not left:
        out.note(f"No chant hooks in {place.dir}")
    return 3 if left else 0


def status(args, out) -> int:
    place = _Place()
    hooks = []
    for hook, path, chained, text in place.hooks():
        hooks.append({"hook": hook, "state": _state(path, text), "path": path,
                      "chained": chained if os.path.lexists(chained) else None})
    states = {h["state"] for h in hooks}
    overall = ("installed" if states == {"installed"} else "outdated" if states <= {"installed", "outdated"}
               else "not installed" if not states & {"installed", "outdated"} else "partly installed")
    if args.json:
        out.json({"hooks_dir": place.dir, "state": overall, "installed": overall == "installed", "hooks": hooks})
    else:
        out.line(f"Hooks folder: {place.dir}")
        words = {"installed": "installed", "outdated": "installed by another chant (install updates it)",
                 "missing": "not installed", "foreign": "not installed; a hook of yours is there (install chains it)"}
        for h in hooks:
            extra = ""
            if h["chained"] and h["state"] in ("installed", "outdated"):
                extra = f", runs {h['hook']}{CHAINED} first"
            elif h["chained"]:
                extra = f"; {h['hook']}{CHAINED} is there too (chant chained it)"
            out.line(f"  {h['hook']:<14} {words[h['state']]}{extra}")
        out.line(f"chant's hooks: {overall}")
    return 0 if overall == "installed" else 1


# --- what the hooks do ---------------------------------------------------------------------


def run(args, out) -> int:
    """One hook's work. Exit 1 only for lint errors in ``pre-commit``; any other failure is
    a warning and exit 0, so that git goes on (Ctrl-C still stops it)."""
    hook = args.hook
    try:
        _absolute_git_paths()
        root = os.path.abspath(args.root or ".")
        if not os.path.isdir(os.path.join(root, ".chant")):
            return 0  # this checkout has no chant (a branch from before it, a removed prefix)
        return _RUNNERS[hook](root, list(args.hook_args or ()), out, args.direct)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a hook never fails git for chant's sake
        if os.environ.get("CHANT_DEBUG"):
            import traceback

            traceback.print_exc()
        from chantlib.errors import ChantError

        reason = exc.message if isinstance(exc, ChantError) else f"{type(exc).__name__}: {exc}"
        out.note(f"warning: chant's {hook} hook failed ({reason}); git goes on")
        return 0


def _absolute_git_paths() -> None:
    # git gives a hook GIT_INDEX_FILE (and may give GIT_DIR) relative to the top of the
    # working tree, where it runs it; chant runs git from its root (`git -C`, maybe below
    # the top) and opens files itself: absolute, they mean the same from anywhere
    for name in ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY"):
        value = os.environ.get(name)
        if value and not os.path.isabs(value):
            os.environ[name] = os.path.abspath(value)


def _connect(root: str, direct: bool, out):
    """The backend every command would use here (the daemon when one answers), except that a
    hook never starts a daemon."""
    from chantlib.backends import connect

    return connect(root, direct=direct, autostart=False, note=out.note)


def _pre_commit(root: str, argv: list[str], out, direct: bool) -> int:
    from chantlib.git import staged_specs

    staged = staged_specs(root)
    if staged is None:
        return 0  # no spec file in this commit: one git run, no workspace
    from chantlib.workspace import Workspace

    from . import render

    # in process, always: the index this commit is made from is the one GIT_INDEX_FILE names
    # in this process's environment (`git commit -a` and `git commit <paths>` make their own)
    with Workspace(root) as ws:
        report = ws.lint_staged(staged)
    if not report["diagnostics"]:
        return 0
    render.warnings(out, report)
    code = render.render_lint(out, report, _NoJson)
    out.stdout.flush()
    if code:
        out.note("chant: commit blocked by lint errors in the staged spec files: fix them and `git add` them "
                 "again (or commit with --no-verify)")
        return 1
    return 0


class _NoJson:
    json = False


def _subject(path: str) -> str | None:
    """The subject line of a commit message file as git will keep it: the first line that is
    neither blank nor a comment."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip() and not line.startswith("#"):
                    return line.rstrip("\n")
    except OSError:
        return None
    return None


def _commit_msg(root: str, argv: list[str], out, direct: bool) -> int:
    from chantlib.git import spec_ref

    ref = spec_ref(_subject(argv[0])) if argv else None
    if ref is None:
        return 0
    from chantlib.errors import AmbiguousSpecId, SpecNotFound
    from chantlib.workspace import Workspace

    # a read of the table, here: it costs no YAML parse when the files are as they were
    with Workspace(root) as ws:
        ws.refresh()
        try:
            ws.table.resolve(ref, broken=True)
        except AmbiguousSpecId as exc:
            out.note(f"warning: the message names chant({ref}), which is ambiguous: {exc.message}; "
                     "the commit will not be recorded in a spec")
        except SpecNotFound:
            out.note(f"warning: the message names chant({ref}), but no spec has that ID; "
                     "the commit will not be recorded in a spec")
    return 0


def _record(backend, out, commit: str, subject: str, replaces: str | None = None) -> None:
    """``record_commit``, saying what it did; a failure is a warning."""
    from chantlib.errors import ChantError, UnknownSpecRef
    from chantlib.git import short

    try:
        result = backend.call("record_commit", commit=commit, subject=subject, replaces=replaces)
    except UnknownSpecRef:
        return  # the commit-msg hook warned about it, before the commit
    except ChantError as exc:
        out.note(f"warning: could not record {short(commit)}: {exc.message}")
        return
    if result["recorded"] and result["spec"] is not None:
        replaced = f" in place of {result['replaced']}" if result["replaced"] else ""
        out.note(f"chant: recorded {result['commit']} in {result['spec']['id']}{replaced}")


def _amended(git_folder: str, commit: str) -> str | None:
    """The commit ``commit`` replaced, when the worktree's last move of HEAD was
    ``git commit --amend`` making it (its reflog line), so that the hash takes the old one's
    place at once; the post-rewrite hook that follows finds it done."""
    try:
        with open(os.path.join(git_folder, "logs", "HEAD"), "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().splitlines()
    except OSError:
        return None
    if not lines:
        return None
    head, _, message = lines[-1].decode("utf-8", "replace").partition("\t")
    fields = head.split(" ")
    if len(fields) >= 2 and fields[1] == commit and message.startswith("commit (amend):"):
        return fields[0]
    return None


def _defer(git_folder: str, commit: str, replaces: str | None = None) -> None:
    """Leave ``commit`` (in place of ``replaces``) for the first hook that runs once git has
    given the working tree back (:func:`_record_pending`)."""
    with open(os.path.join(git_folder, PENDING), "a", encoding="ascii") as fh:
        fh.write(f"{commit} {replaces}\n" if replaces else f"{commit}\n")


def _record_pending(root: str, git_folder: str, backend, out) -> None:
    """Record the commits left by :func:`_defer` (a cherry-pick or revert of several
    commits, a rebase that puts an autostash back), those still in HEAD's history (not
    those an ``--abort`` took back); then forget them."""
    path = os.path.join(git_folder, PENDING)
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            pending = list(dict.fromkeys(tuple(line.split()[:2]) for line in fh if line.strip()))
    except FileNotFoundError:
        return
    from chantlib.git import is_ancestor, spec_ref, subjects

    kept = [entry for entry in pending if is_ancestor(root, entry[0], "HEAD")]
    found = subjects(root, dict.fromkeys(entry[0] for entry in kept))
    for entry in kept:
        subject = found.get(entry[0])
        if subject is not None and spec_ref(subject) is not None:
            _record(backend, out, entry[0], subject, entry[1] if len(entry) > 1 else None)
    os.unlink(path)


def _post_commit(root: str, argv: list[str], out, direct: bool) -> int:
    from chantlib.git import commit_subject, git_dir, in_progress, spec_ref

    folder = git_dir(root)
    under_way = in_progress(folder)
    if under_way == "rebase":
        return 0  # the rebase's post-rewrite records what it made, once the working tree is the user's again
    commit, subject = commit_subject(root, "HEAD")
    if under_way == "sequence":
        if spec_ref(subject) is not None:
            _defer(folder, commit)  # its next pick may rewrite the spec file: recorded after
        return 0
    if spec_ref(subject) is None and not os.path.exists(os.path.join(folder, PENDING)):
        return 0  # the usual commit: one git run, no workspace
    with _connect(root, direct, out) as backend:
        _record_pending(root, folder, backend, out)
        if spec_ref(subject) is not None:
            _record(backend, out, commit, subject, _amended(folder, commit))
    return 0


def _post_rewrite(root: str, argv: list[str], out, direct: bool) -> int:
    from chantlib.git import commits_between, git_dir, in_progress, spec_ref, subjects

    kind = argv[0] if argv else ""
    folder = git_dir(root)
    if kind == "amend" and in_progress(folder) == "rebase":
        return 0  # a reword or an edit inside a rebase: the rebase's own post-rewrite lists it
    pairs = []
    for line in sys.stdin.read().splitlines():
        fields = line.split()
        if len(fields) >= 2:
            pairs.append((fields[0], fields[1]))
    found = subjects(root, dict.fromkeys(new for _old, new in pairs))
    extra: list[tuple[str, str]] = []
    if kind == "rebase":
        # commits made while the rebase stopped (an `edit`, an `exec`) are in no pair
        onto = _read(os.path.join(folder, "rebase-merge", "onto")) or _read(os.path.join(folder, "rebase-apply", "onto"))
        if onto and onto.strip():
            extra = [(c, s) for c, s in commits_between(root, onto.strip(), "HEAD") if c not in found]
    todo = [(new, found[new], old) for old, new in pairs if spec_ref(found.get(new)) is not None]
    todo += [(commit, subject, None) for commit, subject in extra if spec_ref(subject) is not None]
    if kind == "rebase" and any(os.path.exists(os.path.join(folder, name, "autostash"))
                                for name in ("rebase-merge", "rebase-apply")):
        # git puts the changes it stashed back after this hook: a spec file written now could
        # make that fail, so the first hook that runs after the rebase records them
        for commit, _subject, replaces in todo:
            _defer(folder, commit, replaces)
        return 0
    with _connect(root, direct, out) as backend:
        for commit, subject, replaces in todo:
            _record(backend, out, commit, subject, replaces)
        _record_pending(root, folder, backend, out)
    return 0


def _catch_up(root: str, out, direct: bool, *, refresh: bool = True):
    """Bring the spec table and index in step with the working tree (in direct mode; a
    daemon's watcher follows the files by itself), record what a sequence left to record,
    and return the backend for what comes next."""
    from chantlib.git import git_dir, in_progress

    backend = _connect(root, direct, out)
    try:
        if refresh and backend.mode == "direct":
            ws = backend.workspace
            ws.refresh(index=True)
            ws.flush()
        folder = git_dir(root)
        if in_progress(folder) is None:
            _record_pending(root, folder, backend, out)
    except BaseException:
        backend.close()
        raise
    return backend


def _post_merge(root: str, argv: list[str], out, direct: bool) -> int:
    _catch_up(root, out, direct).close()
    return 0


def _post_checkout(root: str, argv: list[str], out, direct: bool) -> int:
    old, new, flag = (argv + ["", "", ""])[:3]
    # a new worktree or clone (old is the null hash) has nothing to catch up on: its first
    # command builds the table; a new branch at the same commit changed no file
    moved = bool(old.strip("0")) and not (flag == "1" and old == new)
    with _catch_up(root, out, direct, refresh=moved) as backend:
        if flag != "1":
            return 0
        from chantlib.git import run_git

        branch = run_git(root, "symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
        if not branch.startswith(BRANCH_PREFIX) or len(branch) == len(BRANCH_PREFIX):
            return 0
        from chantlib.errors import ChantError

        from . import render

        wanted = branch[len(BRANCH_PREFIX):]
        try:
            spec = backend.call("show", spec=wanted)
        except ChantError:
            return 0  # a branch whose spec is not here: nothing to say
        if spec["id"] != wanted:
            return 0  # a part of another ID: this branch is not that spec's
        out.note(f"chant: {render.spec_line(render.Out(color=False), spec)} ({spec['display_status']})")
    return 0


_RUNNERS = {
    "pre-commit": _pre_commit,
    "commit-msg": _commit_msg,
    "post-commit": _post_commit,
    "post-rewrite": _post_rewrite,
    "post-merge": _post_merge,
    "post-checkout": _post_checkout,
}
