"""The daemon following git (issue 9, item 10): commit → hash recorded in the spec,
checkout → the table and index follow, and the daemon's idle CPU with the git watcher on.

The generated repositories are not git repositories: each size's is copied (the spec files,
not the caches) into a temp folder, ``git init`` and committed there, outside the measures.
Then, with a daemon on the copy (:class:`benchmarks.runner.Daemon`, the tests' runner):

1. **idle CPU**, git watcher on: the daemon's ``utime + stime`` (and its reaped children's)
   from ``/proc/<pid>/stat`` over an idle stretch, ÷ the wall time: % of one core;
2. **checkout → index follows**: branch ``bench-b`` differs from ``main`` in three spec files
   (a ready spec completed, a ready spec's title changed, a new ready spec); ``git checkout``
   back and forth while one connection polls ``show`` (the table) and ``search`` (the index)
   every ~1 ms until all three show the branch checked out; the index documents written per
   checkout (``chant_index_updates_total`` from the metrics endpoint, before and after);
3. **baseline for 4.**: a plain file write seen through the daemon's file watcher (the watch
   benchmark's in-place edit and new file, through ``search``);
4. **commit → recorded**: ``git commit`` of an unrelated file with the subject
   ``chant(<id>): ...`` naming a ready spec, then the spec file is read every ~1 ms until it
   holds the commit's short hash; from the command's return and from its start (the
   command's own duration is the other baseline).

Then the checkout loop again with ``scale.daemon.git_watch.validate_on_save: false`` (the
git watcher on, continuous validation off: what validation adds), and on the same copy with
``scale.daemon.git_watch.enabled: false``: the idle CPU again (the baseline of 1.) and the
checkout loop again, followed by the file watcher alone (the baseline of 2.). The copy is deleted at the end; every daemon is stopped, on errors too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

from chantlib.client import DaemonClient, DaemonGone, DaemonUnavailable
from chantlib.columns import rows_of
from chantlib.errors import ChantError

from ..runner import Daemon, StartFailed
from .watch import PROBE_PREFIX, record_series, watch_latency

GIT_TARGET_P50 = 0.200  # seconds: commit → recorded and checkout → index follows, at every size
IDLE_TARGET = 1.0  # % of one core, the daemon idle with the git watcher on
TIMEOUT = 10.0  # seconds for one change to be seen
BRANCH = "bench-b"
NEW_ID = "2099-12-30-001-gbz"  # the spec only bench-b has
TITLE_TOKEN = "gbtitle"  # the word bench-b's title change adds
#: what of .chant/ the copy takes: the spec files and config, not the caches, leases, logs
COPY_IGNORE = {".index", ".locks", ".store", "store", "logs", "daemon.sock", "daemon.json", "daemon.token",
               "daemon.pid", "daemon.lock"}
_NEW_SPEC = """\
---
type: code
status: pending
---
# Git benchmark spec only on {branch}

Added on the branch by the git benchmark.
"""


def git_env(home: str, base: dict) -> dict:
    """``base`` without git's own variables or configuration (as the tests run git)."""
    os.makedirs(home, exist_ok=True)
    env = {k: v for k, v in base.items() if not k.startswith("GIT_")}
    env.update(HOME=home, GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
    return env


class Git:
    def __init__(self, root: str, env: dict) -> None:
        self.root, self.env = root, env

    def __call__(self, *args: str, timeout: float = 600.0) -> str:
        done = subprocess.run(["git", *args], cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"git {' '.join(args)} failed: {(done.stdout + done.stderr).strip()[-300:]}")
        return done.stdout.strip()

    def timed(self, *args: str) -> tuple[float, float]:
        """(perf_counter at the spawn, at the reap) of one git command that must succeed."""
        t0 = time.perf_counter()
        done = subprocess.run(["git", *args], cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=120)
        t1 = time.perf_counter()
        if done.returncode:
            raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace')[-300:]}")
        return t0, t1

    def head(self) -> str:
        """HEAD's commit read from the files (a loose ref right after a commit): no process."""
        gitdir = os.path.join(self.root, ".git")
        with open(os.path.join(gitdir, "HEAD"), encoding="ascii") as fh:
            head = fh.read().strip()
        if head.startswith("ref: "):
            try:
                with open(os.path.join(gitdir, head[5:]), encoding="ascii") as fh:
                    return fh.read().strip()
            except FileNotFoundError:
                return self("rev-parse", "HEAD")
        return head


def prepare(src: str, dest: str, env: dict, log) -> tuple[Git, float]:
    """Copy the repository ``src`` to ``dest`` and commit it on ``main``: (git, seconds)."""
    t0 = time.perf_counter()

    def ignore(folder: str, names: list[str]) -> set[str]:
        if os.path.basename(folder) == ".chant":
            return COPY_IGNORE & set(names)
        return {name for name in names if name.startswith(PROBE_PREFIX)}  # another run's watch probes

    os.makedirs(dest, exist_ok=True)
    shutil.copytree(os.path.join(src, ".chant"), os.path.join(dest, ".chant"), ignore=ignore, symlinks=True)
    git = Git(dest, env)
    git("init", "-q", "-b", "main")
    for key, value in (("user.name", "Bench"), ("user.email", "bench@example.com"), ("gc.auto", "0"),
                       ("maintenance.auto", "false"), ("commit.gpgsign", "false")):
        git("config", key, value)
    with open(os.path.join(dest, "bench-git.txt"), "w", encoding="utf-8") as fh:
        fh.write("the file the git benchmark's commits change\n")
    git("add", "-A")
    git("commit", "-q", "-m", "bench: the generated specs")
    took = time.perf_counter() - t0
    log(f"    copied and committed in {took:.0f}s")
    return git, took


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of ``pid`` (all its threads, and the children it
    reaped: the git commands it ran), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # fields 14-17 of proc(5), after pid and comm
    return ticks / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid: int, seconds: float) -> dict:
    """% of one core the daemon used while nothing happened for ``seconds``."""
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.perf_counter()
    return {"cpu": c1 - c0, "wall": t1 - t0, "percent": 100.0 * (c1 - c0) / (t1 - t0)}


def index_updates(daemon: Daemon) -> float | None:
    """``chant_index_updates_total`` from the daemon's metrics endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    found = re.search(r"^chant_index_updates_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def wait_git_ready(client: DaemonClient, timeout: float = 120.0) -> dict:
    """daemon_status's ``git`` once the watcher is past its start (or off)."""
    deadline = time.perf_counter() + timeout
    while True:
        status = client.call("daemon_status", {}).get("git") or {}
        state = str(status.get("state", ""))
        if state == "watching" or state.startswith("off") or time.perf_counter() > deadline:
            return status
        time.sleep(0.05)


def _spec_path(root: str, client: DaemonClient, spec_id: str) -> str:
    path = client.call("show", {"spec": spec_id})["path"]
    return path if os.path.isabs(path) else os.path.join(root, path)


# -- the branch ------------------------------------------------------------------------


def make_branch(git: Git, client: DaemonClient, root: str, ready: list[str]) -> dict:
    """``bench-b``: ``ready[0]`` completed, ``ready[1]``'s title changed, a new spec; back on main."""
    done_id, title_id = ready[0], ready[1]
    git("checkout", "-q", "-b", BRANCH)
    path = _spec_path(root, client, done_id)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    head, sep, body = text.partition("\n---")
    if not re.search(r"^status: *\S+", head, re.M):
        raise RuntimeError(f"no status line in {path}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(re.sub(r"^status: *\S+", "status: completed", head, count=1, flags=re.M) + sep + body)
    path = _spec_path(root, client, title_id)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    head, sep, body = text.partition("\n---")
    title = re.search(r"^# .*$", body, re.M)
    if title is None:
        raise RuntimeError(f"no title line in {path}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(head + sep + body[:title.end()] + f" {TITLE_TOKEN}" + body[title.end():])
    with open(os.path.join(root, ".chant", "specs", NEW_ID + ".md"), "w", encoding="utf-8") as fh:
        fh.write(_NEW_SPEC.format(branch=BRANCH))
    git("add", "-A", ".chant/specs")
    git("commit", "-q", "-m", "bench: three specs change")
    changed = git("diff", "--name-only", "main", BRANCH).splitlines()
    git("checkout", "-q", "main")
    return {"completed": done_id, "retitled": title_id, "added": NEW_ID, "diff": changed}


def _on_branch(client: DaemonClient, branch: dict, vanished: list) -> tuple[bool, bool, bool]:
    """Whether the daemon shows each of the three changes of bench-b: (status, title, new spec).
    A spec both branches have that the daemon does not find for a moment (git rewrites a file
    as a delete and a create, which a watcher can see apart) is counted in ``vanished``."""
    try:
        status = client.call("show", {"spec": branch["completed"]})["status"] == "completed"
    except ChantError:
        vanished.append(branch["completed"])
        status = None
    title = client.call("search", {"q": f"title:{TITLE_TOKEN}", "limit": 5})["total"] >= 1
    try:
        client.call("show", {"spec": NEW_ID})
        added = True
    except ChantError:
        added = False
    return status, title, added


def checkout_latency(git: Git, client: DaemonClient, daemon: Daemon, branch: dict, rounds: int) -> dict:
    """``git checkout bench-b`` and back, ``rounds`` times: seconds from each command's return
    (and start) until ``show`` and ``search`` show all three changes (or none of them)."""
    from .watch import cli_request

    out: dict = {"after": [], "from_start": [], "git": [], "first": [], "updates": [], "missed": 0, "error": None,
                 "ready_checked": 0, "ready_wrong": 0, "vanished": []}
    ready_request = cli_request(["list", "--ready"])
    for i in range(2 * rounds):
        target, want = (BRANCH, (True, True, True)) if i % 2 == 0 else ("main", (False, False, False))
        before = index_updates(daemon)
        t0, t1 = git.timed("checkout", "-q", target)
        first = None
        deadline = t1 + TIMEOUT
        while True:
            seen = _on_branch(client, branch, out["vanished"])
            now = time.perf_counter()
            if first is None and any(s == w for s, w in zip(seen, want, strict=True)):
                first = now
            if seen == want:
                break
            if now > deadline:
                out["missed"] += 1
                out["error"] = out["error"] or f"checkout of {target}: not followed within {TIMEOUT:g}s ({seen})"
                break
            time.sleep(0.001)
        if seen == want:
            out["after"].append(now - t1)
            out["from_start"].append(now - t0)
            out["first"].append((first or now) - t1)
        out["git"].append(t1 - t0)
        # `list --ready` agrees (once per checkout, not timed: its answer is large)
        listed = {s["id"] for s in rows_of(client.call(*ready_request))}  # the CLI asks for columns
        out["ready_checked"] += 1
        if (branch["completed"] in listed) == want[0] or (NEW_ID in listed) != want[2]:
            out["ready_wrong"] += 1
        time.sleep(0.3)  # the other follower (file watcher or git) done too
        after = index_updates(daemon)
        if before is not None and after is not None:
            out["updates"].append(after - before)
    if git("rev-parse", "--abbrev-ref", "HEAD") != "main":
        git("checkout", "-q", "main")
    return out


def commit_latency(git: Git, client: DaemonClient, root: str, ready: list[str], samples: int) -> dict:
    """``git commit`` of ``bench-git.txt`` as ``chant(<id>): ...`` for ready specs in turn:
    seconds from the command's return (and start) until the spec file holds the short hash."""
    out: dict = {"after": [], "from_start": [], "git": [], "missed": 0, "error": None, "specs": 0}
    paths = {spec_id: _spec_path(root, client, spec_id) for spec_id in ready}
    out["specs"] = len(paths)
    ids = list(paths)
    for i in range(samples):
        spec_id = ids[i % len(ids)]
        with open(os.path.join(root, "bench-git.txt"), "a", encoding="utf-8") as fh:
            fh.write(f"commit {i}\n")
        git("add", "bench-git.txt")
        t0, t1 = git.timed("commit", "-q", "-m", f"chant({spec_id}): git benchmark commit {i}")
        short = git.head()[:7]
        path = paths[spec_id]
        deadline = t1 + TIMEOUT
        while True:
            with open(path, encoding="utf-8") as fh:
                held = short in fh.read()
            now = time.perf_counter()
            if held:
                out["after"].append(now - t1)
                out["from_start"].append(now - t0)
                break
            if now > deadline:
                out["missed"] += 1
                out["error"] = out["error"] or f"{short} not in {spec_id}'s file within {TIMEOUT:g}s"
                break
            time.sleep(0.001)
        out["git"].append(t1 - t0)
        time.sleep(0.1)  # the file watcher has seen the daemon's own write before the next commit
    return out


def _log_followed(log_path: str, since: int) -> list[float]:
    """The daemon's own "N spec file(s) followed in X ms" of each git move, logged after ``since``."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            fh.seek(since)
            text = fh.read()
    except OSError:
        return []
    return [float(m.group(1)) / 1000 for m in re.finditer(r"spec file\(s\) followed in (\d+) ms", text)]


#: the daemons of one size: the git watcher on (as configured by default), on without
#: continuous validation, and off (which turns continuous validation off too)
MODES = {"on": None, "novalidate": "validate_on_save: false", "off": "enabled: false"}


def _configure(root: str, mode: str) -> None:
    """.chant/config.md as generated, plus the ``scale.daemon.git_watch`` key of ``mode``."""
    path = os.path.join(root, ".chant", "config.md")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    text = re.sub(r"^scale:\n(?:  .*\n)*", "", text, flags=re.M)  # what an earlier call added
    if MODES[mode]:
        head, sep, rest = text.partition("\n---")
        text = head + f"\nscale:\n  daemon:\n    git_watch:\n      {MODES[mode]}" + sep + rest
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def git_bench(res: dict, args, chant: str, python: str, env: dict, log) -> dict:
    """The measures of the git section on a committed copy of the repository of ``res``."""
    n, src = res["n"], res["root"]
    quick = bool(getattr(args, "quick", False))
    idle_seconds = float(getattr(args, "idle_seconds", None) or 30.0)
    if quick:
        idle_seconds = min(idle_seconds, 3.0)
    samples = 6 if quick else 40
    rounds = 3 if quick else 20
    out: dict = {"errors": [], "plan": {"idle_seconds": idle_seconds, "samples": samples, "rounds": rounds},
                 "on": {}, "novalidate": {}, "off": {}}
    tmp = tempfile.mkdtemp(prefix=f"chant-gitbench-{n}-")
    try:
        genv = git_env(os.path.join(tmp, "home"), env)
        for name in ("CHANT_DAEMON", "CHANT_DAEMON_SOCKET", "CHANT_API_TOKEN"):
            genv.pop(name, None)
        root = os.path.join(tmp, "repo")
        log(f"[{n}] git: copying the repository and committing it (not measured)")
        git, out["setup_seconds"] = prepare(src, root, genv, log)
        out["tracked"] = int(git("ls-files", "--", ".chant").count("\n") + 1)
        branch = None
        # a first start builds the table and index from the files (a cold start's background work
        # must not land in the idle figure of the first measured daemon): not measured
        log(f"[{n}] git: a cold start, to build the caches (not measured)")
        warm = Daemon(python, chant, root, genv)
        try:
            out["cold_start"] = warm.start()[1]
        except (StartFailed, OSError) as exc:
            out["errors"].append(f"the daemon did not start: {exc}")
        finally:
            warm.stop()
        for mode in MODES:
            part = out[mode]
            _configure(root, mode)
            daemon = Daemon(python, chant, root, genv)
            try:
                log(f"[{n}] git: daemon start (git watcher {mode})")
                try:
                    part["start"] = daemon.start()[1]
                except (StartFailed, OSError) as exc:
                    out["errors"].append(f"the daemon (git watcher {mode}) did not start: {exc}")
                    continue
                with DaemonClient.connect(root, timeout=120) as client:
                    part["git_status_start"] = wait_git_ready(client)
                    part["specs"] = client.call("daemon_status", {}).get("specs")
                    ready = [s["id"] for s in client.call("list", {"ready": True, "fields": ["id"]})["specs"]]
                    out.setdefault("ready", len(ready))
                    if len(ready) < 4:
                        out["errors"].append(f"only {len(ready)} ready specs: at least 4 are needed")
                        continue
                    time.sleep(min(5.0, idle_seconds))  # the start's own work settles (first save)
                    if mode != "novalidate":
                        log(f"[{n}] git: idle CPU for {idle_seconds:g}s (git watcher {mode})")
                        part["idle"] = idle_cpu(daemon.pid, idle_seconds)
                    if branch is None:
                        branch = out["branch"] = make_branch(git, client, root, ready)
                        time.sleep(1.0)
                    log(f"[{n}] git: checkout {BRANCH} and back x{rounds} (git watcher {mode})")
                    offset = os.path.getsize(daemon.log_path) if os.path.exists(daemon.log_path) else 0
                    events0 = (client.call("daemon_status", {}).get("git") or {}).get("events") or {}
                    try:
                        part["checkout"] = checkout_latency(git, client, daemon, branch, rounds)
                    except (ChantError, DaemonGone, OSError, RuntimeError) as exc:
                        out["errors"].append(f"checkout (git watcher {mode}): {type(exc).__name__}: {exc}")
                    events1 = (client.call("daemon_status", {}).get("git") or {}).get("events") or {}
                    part["events"] = {k: events1.get(k, 0) - events0.get(k, 0) for k in events1
                                      if events1.get(k, 0) != events0.get(k, 0)}
                    part["followed"] = _log_followed(daemon.log_path, offset)
                    if mode == "on":
                        rest = [s for s in ready if s not in (branch["completed"], branch["retitled"])]
                        log(f"[{n}] git: baseline: a file write seen by the file watcher x{samples}")
                        record_series(part, "watch", "file watcher baseline",
                                      lambda edit=rest[-1]: watch_latency(root, edit, samples, log, via="search"))
                        log(f"[{n}] git: commit -> recorded x{samples}")
                        try:
                            part["commit"] = commit_latency(git, client, root, rest[:max(1, min(40, len(rest) - 1))],
                                                            samples)
                        except (ChantError, DaemonGone, OSError, RuntimeError) as exc:
                            out["errors"].append(f"commit: {type(exc).__name__}: {exc}")
                    part["git_status"] = client.call("daemon_status", {}).get("git")
                if not daemon.alive():
                    out["errors"].append(f"the daemon (git watcher {mode}) died: {daemon.log_line()}")
            except (DaemonUnavailable, ChantError, DaemonGone, OSError, RuntimeError) as exc:
                out["errors"].append(f"git measurements (watcher {mode}): {type(exc).__name__}: {exc}")
            finally:
                log(f"[{n}] git: stop")
                daemon.stop()
                if daemon.alive():
                    out["errors"].append(f"the daemon (PID {daemon.pid}) could not be stopped")
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        out["errors"].append(f"preparing the git repository: {type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp, ignore_errors=True)
    return out
