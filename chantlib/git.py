"""What chant asks git: a commit's subject, the commits of a range, the files two commits differ in.

Owns: the ``chant(<id>): ...`` subject convention (docs/chant-format.md §11) and the few
``git`` commands the daemon's git handlers and the hooks run. Reading *what happened*
(commits, checkouts, merges) is :mod:`chantlib.gitwatch`'s, from the reflogs, without
git; this module is for the questions a reflog line does not answer (which commits a
pull brought, which spec files a checkout changed).

Must not: import anything heavy, write into the repository, or run git without a timeout.
Every command runs with ``GIT_OPTIONAL_LOCKS=0`` (a read must not take the index lock a
user's ``git commit`` wants) and a clear :class:`~chantlib.errors.StorageError` when git
is missing or fails.
"""

from __future__ import annotations

import os
import re

from .errors import StorageError

__all__ = ["SHORT", "spec_ref", "short", "same_commit", "run_git", "commit_subject", "commits_between",
           "changed_paths", "is_ancestor", "HASH_RE"]

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
    ``check``) or takes longer than ``timeout`` is a :class:`StorageError` saying so."""
    import subprocess

    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    try:
        done = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=timeout, env=env,
                              encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise StorageError("git is not installed (not found on PATH)") from None
    except subprocess.TimeoutExpired:
        raise StorageError(f"git {args[0]} took longer than {timeout:g} s in {root}") from None
    if check and done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise StorageError(f"git {args[0]} failed in {root}: {reason}")
    return done.stdout


def commit_subject(root: str, rev: str) -> tuple[str, str]:
    """``(full hash, subject)`` of the commit ``rev`` names (a hash, ``HEAD``, a branch)."""
    out = run_git(root, "log", "-1", "--format=%H%x00%s", rev, "--")
    full, _, subject = out.rstrip("\n").partition("\x00")
    if not full:
        raise StorageError(f"git log found no commit {rev!r} in {root}")
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
