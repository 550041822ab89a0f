#!/usr/bin/env python3
"""How to read git for the git watcher: the numbers behind docs/design.md ("The git watcher").

Builds a repository whose ``HEAD`` and ``main`` reflogs hold N lines written by git itself
(``git fast-import`` makes N commits, ``git update-ref --stdin`` moves ``HEAD`` through them one
transaction at a time, as many commits would), then measures, each as the median of K runs:

- :class:`chantlib.GitWatcher`: ``poll()`` with nothing new, ``poll()`` after one commit,
  making the watcher (start from now), and importing :mod:`chantlib.gitwatch` (in a fresh
  interpreter, and in one that has loaded what the daemon loads);
- the git command: one ``git rev-parse`` (the least a poll by subprocess costs) and reading the
  whole reflog (``git reflog show``: git has no "from this position" for a reflog);
- pygit2, when ``--pygit2-python`` names an interpreter that has it (it is no dependency of
  ours): importing it, opening the repository, and reading the ``main`` reflog (libgit2 too
  reads a reflog whole: there is no offset API).

Usage::

    python benchmarks/gitwatch.py [--lines 10000] [--repeat 200] [--pygit2-python /path/to/python]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def git_env(home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=home, GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="Bench",
               GIT_AUTHOR_EMAIL="bench@example.com", GIT_COMMITTER_NAME="Bench",
               GIT_COMMITTER_EMAIL="bench@example.com")
    return env


def build(path: str, lines: int, env: dict) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", path], env=env, check=True)
    stream = []
    for i in range(lines):
        msg = f"chant(2026-01-01-{i % 1000:03d}-abc): step {i}\n".encode()
        stream.append(b"commit refs/heads/bench\n")
        stream.append(f"committer Bench <bench@example.com> {1700000000 + i} +0000\n".encode())
        stream.append(b"data %d\n%s\n" % (len(msg), msg))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, env=env, input=b"".join(stream), check=True)
    hashes = subprocess.run(["git", "rev-list", "--reverse", "refs/heads/bench"], cwd=path, env=env,
                            capture_output=True, text=True, check=True).stdout.split()
    script = "".join(f"start\nupdate HEAD {h}\ncommit\n" for h in hashes)
    subprocess.run(["git", "update-ref", "--create-reflog", "-m", "commit: bench", "--stdin"], cwd=path, env=env,
                   input=script.encode(), capture_output=True, check=True)
    subprocess.run(["git", "update-ref", "-d", "refs/heads/bench"], cwd=path, env=env, check=True)
    count = subprocess.run(["git", "reflog", "show", "main"], cwd=path, env=env, capture_output=True,
                           text=True, check=True).stdout.count("\n")
    assert count == lines, (count, lines)


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def import_ms(python: str, module: str, before: str = "", repeat: int = 7) -> float:
    """Median time of ``import module`` in a fresh interpreter that has imported ``before``."""
    code = f"import time\n{before}\nt = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - t)"
    runs = [float(subprocess.run([python, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout)
            for _ in range(repeat)]
    return statistics.median(runs) * 1000


#: what a script using chantlib has loaded before it makes a git watcher, and what a daemon has
STDLIB = "import json, logging, threading, dataclasses, hashlib"
DAEMON = "import chantd.server, chantlib.events, chantlib.workspace"


PYGIT2 = r"""
import statistics, sys, time
t = time.perf_counter(); import pygit2; imp = time.perf_counter() - t
path, repeat = sys.argv[1], int(sys.argv[2])
def med(fn):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000
repo = pygit2.Repository(path)
n = sum(1 for _ in repo.references["refs/heads/main"].log())
print(f"{pygit2.__version__} {pygit2.LIBGIT2_VERSION} {n}")
print(med(lambda: pygit2.Repository(path)))
print(med(lambda: sum(1 for _ in repo.references["refs/heads/main"].log())))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--pygit2-python", help="an interpreter with pygit2 installed")
    args = parser.parse_args(argv)
    from chantlib.gitwatch import GitWatcher

    tmp = tempfile.mkdtemp(prefix="chant-gitwatch-bench-")
    try:
        env = git_env(tmp)
        repo = os.path.join(tmp, "repo")
        build(repo, args.lines, env)
        sizes = {rel: os.path.getsize(os.path.join(repo, ".git", rel)) for rel in ("logs/HEAD", "logs/refs/heads/main")}
        rows = [("reflog lines (HEAD and main, each)", f"{args.lines:,}"),
                ("reflog size (HEAD + main)", f"{sum(sizes.values()) / 1024:.0f} KiB")]
        w = GitWatcher(repo)
        rows.append(("GitWatcher: poll(), nothing new", f"{median_ms(w.poll, args.repeat * 5):.3f} ms"))

        def commit_then_poll():
            subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "one more"], cwd=repo, env=env, check=True)
            start = time.perf_counter()
            events = w.poll()
            took = time.perf_counter() - start
            assert len(events) == 1, events
            return took

        after = statistics.median(commit_then_poll() for _ in range(min(args.repeat, 50))) * 1000
        rows.append(("GitWatcher: poll() after one commit", f"{after:.3f} ms"))
        rows.append(("GitWatcher: made (start from now)", f"{median_ms(lambda: GitWatcher(repo), args.repeat):.3f} ms"))
        rows.append(("import chantlib.gitwatch, fresh interpreter",
                     f"{import_ms(sys.executable, 'chantlib.gitwatch'):.1f} ms"))
        rows.append(("import chantlib.gitwatch, after `chantd.server` (what a daemon has loaded)",
                     f"{import_ms(sys.executable, 'chantlib.gitwatch', DAEMON):.1f} ms"))

        def git(*cmd):
            return lambda: subprocess.run(["git", *cmd], cwd=repo, env=env, capture_output=True, check=True)

        rows.append(("git command: `git rev-parse HEAD` (the floor of a poll by subprocess)",
                     f"{median_ms(git('rev-parse', 'HEAD'), 30):.2f} ms"))
        rows.append(("git command: `git reflog show --format=... main` (whole reflog)",
                     f"{median_ms(git('reflog', 'show', '--format=%H %gs', 'main'), 10):.1f} ms"))
        if args.pygit2_python:
            out = subprocess.run([args.pygit2_python, "-c", PYGIT2, repo, str(min(args.repeat, 50))],
                                 capture_output=True, text=True, check=True).stdout.split("\n")
            version, libgit2, count = out[0].split()
            assert int(count) >= args.lines, out
            rows.append((f"pygit2 {version} (libgit2 {libgit2}): import, fresh interpreter",
                         f"{import_ms(args.pygit2_python, 'pygit2'):.1f} ms"))
            rows.append(("pygit2: import, after json, logging, dataclasses, hashlib",
                         f"{import_ms(args.pygit2_python, 'pygit2', STDLIB):.1f} ms"))
            rows.append(("pygit2: Repository(path)", f"{float(out[1]):.3f} ms"))
            rows.append(("pygit2: read the main reflog (whole)", f"{float(out[2]):.1f} ms"))
        print("| measure | median |\n| --- | ---: |")
        for name, value in rows:
            print(f"| {name} | {value} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
