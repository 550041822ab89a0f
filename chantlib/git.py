"""What chant asks git: a commit's subject, the commits of a range, the files two commits differ in,
what the next commit holds of the spec files, where git runs hooks.

Owns: the ``chant(<id>): ...`` subject convention (docs/chant-format.md §11) and the few
``git`` commands the daemon's git handlers and the hooks run. Reading *what happened*
(commits, checkouts, merges) is :mod:`chantlib.gitwatch`'s, from the reflogs, without
git; this module is for the questions a reflog line does not answer (which commits a
pull brought, which spec files a checkout changed).

Must not: import anything heavy, write into the repository, or run git without a timeout.
Every command runs with ``GIT_OPTIONAL_LOCKS=0`` (a read must not take the index lock a
user's ``git commit`` wants); git refusing (not a repository, no such revision) is a
:class:`~chantlib.errors.GitError`, git missing or hanging a
:class:`~chantlib.errors.StorageError`.
"""

from __future__ import annotations

import os
import re

from .errors import GitError, StorageError

__all__ = ["SHORT", "spec_ref", "short", "same_commit", "run_git", "commit_subject", "commits_between",
           "changed_paths", "is_ancestor", "HASH_RE", "subjects", "git_dir", "hooks_dir", "in_progress",
           "StagedSpecs", "staged_specs", "read_blobs"]

#: the length of the hashes chant writes in ``commits:`` (git's default abbreviation)
SHORT = 7
#: a full or abbreviated commit hash
HASH_RE = re.compile(r"[0-9a-fA-F]{4,64}")
#: ``chant(<id>): ...`` at the start of a subject: the ID as written (partial, with a
#: project prefix, or whole)
_REF = re.compile(r"\s*chant\(\s*([^()\s,]+)\s*\)\s*:")
#: git's time for any one command here (a range of thousands of commits takes well under it)
TIMEOUT = 30.0


def spec_ref(subject: str | None) -> str | None:
    """The spec ID a commit subject names (``chant(2026-01-01-001-abc): fix``), else ``None``."""
    if not subject:
        return None
    match = _REF.match(subject)
    return match.group(1) if match else None


def short(commit: str) -> str:
    """The hash as chant records it: its first :data:`SHORT` hex digits, lower case."""
    return commit[:SHORT].lower()


def same_commit(recorded: str, commit: str) -> bool:
    """Whether an entry of ``commits:`` (any abbreviation, 4 digits at least) names ``commit``
    (full or abbreviated)."""
    a, b = str(recorded).strip().lower(), commit.strip().lower()
    if len(a) < 4 or len(b) < 4 or not HASH_RE.fullmatch(a) or not HASH_RE.fullmatch(b):
        return False
    return a.startswith(b) or b.startswith(a)


def run_git(root: str, *args: str, timeout: float = TIMEOUT, check: bool = True) -> str:
    """``git -C root args...``; its standard output. A git that is missing, fails (with
    ``check``: :class:`GitError`, with git's last line) or takes longer than ``timeout``
    (:class:`StorageError`) says so in one line."""
    out = _git(root, args, timeout=timeout, check=check)
    # as text mode reads it: UTF-8 (what cannot be decoded replaced), universal newlines
    return out.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


def _git(root: str, args, *, timeout: float = TIMEOUT, check: bool = True, input: bytes | None = None) -> bytes:
    """:func:`run_git`'s work, on bytes (a blob's content must stay bytes)."""
    import subprocess

    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    try:
        done = subprocess.run(["git", "-C", root, *args], capture_output=True, timeout=timeout, env=env, input=input)
    except FileNotFoundError:
        raise StorageError("git is not installed (not found on PATH)") from None
    except subprocess.TimeoutExpired:
        raise StorageError(f"git {args[0]} took longer than {timeout:g} s in {root}") from None
    if check and done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace")
        reason = (stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise GitError(f"git {args[0]} failed in {root}: {reason}")
    return done.stdout


def commit_subject(root: str, rev: str) -> tuple[str, str]:
    """``(full hash, subject)`` of the commit ``rev`` names (a hash, ``HEAD``, a branch)."""
    out = run_git(root, "log", "-1", "--format=%H%x00%s", rev, "--")
    full, _, subject = out.rstrip("\n").partition("\x00")
    if not full:
        raise GitError(f"git log found no commit {rev!r} in {root}")
    return full, subject


def commits_between(root: str, old: str | None, new: str, *, limit: int = 10_000) -> list[tuple[str, str]]:
    """``(hash, subject)`` of the commits reachable from ``new`` and not from ``old``
    (``None``: all of them), oldest first, at most ``limit`` (the newest ones)."""
    spec = [new] if not old or set(old) == {"0"} else [f"{old}..{new}"]
    out = run_git(root, "log", f"--max-count={limit}", "--format=%H%x00%s", *spec, "--")
    pairs = []
    for line in out.splitlines():
        full, sep, subject = line.partition("\x00")
        if sep:
            pairs.append((full, subject))
    pairs.reverse()
    return pairs


def changed_paths(root: str, old: str, new: str, under: str = ".chant") -> list[str]:
    """The paths below ``under`` (relative to the repository's top) that differ between the
    trees of ``old`` and ``new``, renames as a delete and an add."""
    out = run_git(root, "diff", "--name-only", "--no-renames", "-z", old, new, "--", under)
    return [p for p in out.split("\x00") if p]


def is_ancestor(root: str, old: str, new: str) -> bool:
    """Whether ``old`` is an ancestor of ``new`` (a fast-forward from one to the other)."""
    import subprocess

    try:
        done = subprocess.run(["git", "-C", root, "merge-base", "--is-ancestor", old, new], capture_output=True,
                              timeout=TIMEOUT, env=dict(os.environ, GIT_OPTIONAL_LOCKS="0"))
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def subjects(root: str, commits) -> dict[str, str]:
    """Full hash -> subject of each of ``commits`` (hashes or revisions), in one git run."""
    commits = list(commits)
    if not commits:
        return {}
    out = run_git(root, "log", "--no-walk=unsorted", "--format=%H%x00%s", *commits, "--")
    found = {}
    for line in out.splitlines():
        full, sep, subject = line.partition("\x00")
        if sep:
            found[full] = subject
    return found


def git_dir(root: str) -> str:
    """The git folder of the worktree holding ``root`` (``.git``, or ``.git/worktrees/<name>``
    of a linked worktree), absolute."""
    return run_git(root, "rev-parse", "--absolute-git-dir").rstrip("\n")


def hooks_dir(root: str) -> tuple[str, str]:
    """``(hooks folder, top of the working tree)`` of the repository holding ``root``: the
    folder git runs hooks from, as git itself works it out (``core.hooksPath``, taken
    relative to the top of the working tree, else ``hooks`` in the common git folder, which
    every worktree shares), absolute."""
    top = run_git(root, "rev-parse", "--show-toplevel").rstrip("\n")
    path = run_git(top, "rev-parse", "--git-path", "hooks").rstrip("\n")  # relative to top, or absolute
    return os.path.normpath(os.path.join(top, path)), top


#: what is under way in a worktree while git holds its working tree, by the folder git keeps
#: for it in the worktree's git folder
_IN_PROGRESS = (("rebase-merge", "rebase"), ("rebase-apply", "rebase"), ("sequencer", "sequence"))


def in_progress(git_folder: str) -> str | None:
    """``"rebase"`` while a rebase (or ``git am``) runs in the worktree of ``git_folder``,
    ``"sequence"`` while a cherry-pick or revert of several commits does, else ``None``.
    Git makes commits and rewrites the working tree in between: a hook must not write a
    tracked file then (the next step would refuse to overwrite it, and stop)."""
    for name, what in _IN_PROGRESS:
        if os.path.isdir(os.path.join(git_folder, name)):
            return what
    return None


_SPEC_FOLDERS = (".chant/specs", ".chant/archive")


def _spec_relpath(path: str) -> str | None:
    """A path git gives (relative to the chant root) as the spec table names it (relative to
    ``.chant/``), or ``None`` when the table would not read it (not ``.md``, hidden)."""
    if not path.endswith(".md") or not path.startswith((".chant/specs/", ".chant/archive/")):
        return None
    rel = path[len(".chant/"):]
    if any(part.startswith(".") or not part for part in rel.split("/")):
        return None
    return rel


def _raw_diff(root: str, *args: str) -> list[tuple[str, str, str, str]]:
    """``(status, mode, hash, relpath)`` of the spec files ``git diff --raw <args>`` lists,
    renames as a delete and an add; ``mode``/``hash`` are the source side's for a diff of the
    working tree against the index (the index's), the destination's for ``--cached``."""
    cached = "--cached" in args
    out = run_git(root, "diff", *args, "--raw", "-z", "--no-abbrev", "--no-renames", "--relative",
                  "--ignore-submodules", "--", *_SPEC_FOLDERS)
    fields = out.split("\x00")
    found = []
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(":"):
            continue
        src_mode, dst_mode, src, dst, status = meta[1:].split(" ")[:5]
        rel = _spec_relpath(path)
        if rel is not None:
            found.append((status[:1], dst_mode if cached else src_mode, dst if cached else src, rel))
    return found


class StagedSpecs:
    """The spec files as the next commit holds them (see :func:`staged_specs`).

    ``changed``: relpaths (relative to ``.chant/``) of the spec files it adds or changes;
    ``removed``: those it deletes; ``texts``: relpath -> the content the commit has (bytes),
    or ``None`` where it has no such file, for every spec file in which the commit differs
    from the working tree (staged, changed since it was staged, or not added at all)."""

    __slots__ = ("changed", "removed", "texts")

    def __init__(self, changed: list[str], removed: list[str], texts: dict[str, bytes | None]) -> None:
        self.changed, self.removed, self.texts = changed, removed, texts


_REGULAR = ("100644", "100755")


def staged_specs(root: str) -> StagedSpecs | None:
    """What the next commit holds of the spec files under ``.chant/specs`` and
    ``.chant/archive`` of the chant root ``root``, where it differs from the working tree;
    ``None`` when it adds, changes or deletes no spec file (one git run: the pre-commit
    hook's quick way out). Reads the index git uses for this commit (``GIT_INDEX_FILE`` in
    a hook), never the working tree's versions of those files."""
    staged = _raw_diff(root, "--cached")
    if not staged:
        return None
    changed: list[str] = []
    removed: list[str] = []
    wanted: dict[str, str | None] = {}  # relpath -> the index's blob, or None: not in the commit
    for status, mode, blob, rel in staged:
        if status == "D":
            removed.append(rel)
            wanted[rel] = None
        elif status in "AMT" and mode in _REGULAR:
            changed.append(rel)
            wanted[rel] = blob
    for status, mode, blob, rel in _raw_diff(root):  # the working tree against the index
        if rel not in wanted and status in "MDT" and mode in _REGULAR:
            wanted[rel] = blob
    untracked = run_git(root, "ls-files", "-z", "--others", "--", *_SPEC_FOLDERS)
    for path in untracked.split("\x00"):
        other = _spec_relpath(path)
        if other is not None:
            wanted[other] = None
    blobs = read_blobs(root, {blob for blob in wanted.values() if blob})
    texts = {rel: None if blob is None else blobs[blob] for rel, blob in wanted.items()}
    return StagedSpecs(changed, removed, texts)


def read_blobs(root: str, hashes) -> dict[str, bytes]:
    """The contents of these blobs (full hashes), in one ``git cat-file --batch`` run."""
    hashes = sorted(hashes)
    if not hashes:
        return {}
    out = _git(root, ("cat-file", "--batch"), input="".join(f"{h}\n" for h in hashes).encode("ascii"))
    found: dict[str, bytes] = {}
    at = 0
    for blob in hashes:
        end = out.index(b"\n", at)
        header = out[at:end].split()
        if len(header) != 3:  # "<hash> missing"
            raise GitError(f"git cat-file found no blob {blob} in {root}")
        size = int(header[2])
        found[blob] = out[end + 1 : end + 1 + size]
        at = end + 1 + size + 1
    return found
