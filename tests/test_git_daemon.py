"""The daemon's git integration, end to end: a real chantd process on a real git repository,
real git commands (commit, amend, worktree, checkout, merge, reset, rebase, push, pull),
the CLI and the HTTP receiver of notifications on loopback. No timing assertions: each wait
is bounded, generously, and says what it waited for."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest

from .support import Git, Receiver, isolated_git_env, run_chant

A, B, C = "2026-01-01-001-aaa", "2026-01-01-002-bbb", "2026-01-01-003-ccc"


def wait_for(condition, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def commits_of(repo, spec_id: str, root: str | None = None) -> list[str]:
    from chantlib.spec import Spec

    path = os.path.join(root or repo.root, ".chant", "specs", f"{spec_id}.md")
    with open(path, encoding="utf-8") as fh:
        return [str(c) for c in Spec.parse(spec_id, fh.read()).commits]


def short(commit: str) -> str:
    return commit[:7]


@pytest.fixture
def genv(tmp_path):
    return isolated_git_env(tmp_path / "githome")


@pytest.fixture
def git(repo, genv) -> Git:
    """``repo`` under git: three ready specs, committed on main."""
    for spec_id in (A, B, C):
        repo.write(spec_id, "status: pending\nlabels: [x]  # a comment kept\n", f"# Spec {spec_id}\n\nBody.\n")
    g = Git.init(repo.root, genv, first=None)
    g("add", "-A")
    g("commit", "-q", "-m", "chant: add specs")
    return g


def configure(repo, text: str) -> None:
    with open(os.path.join(repo.root, ".chant", "config.md"), "w", encoding="utf-8") as fh:
        fh.write(f"---\nproject:\n  name: test\n{text}---\n")


def start(daemon_factory, repo, genv, **kwargs):
    kwargs.setdefault("api", False)
    kwargs.setdefault("metrics", False)
    return daemon_factory(repo.root, env=genv, **kwargs)


def git_status(daemon) -> dict:
    return daemon.call("daemon_status")["git"]


def test_commit_is_recorded_losslessly_and_amend_replaces_it(git, repo, genv, daemon_factory):
    d = start(daemon_factory, repo, genv)
    before = repo.read(A)
    first = git.commit("chant(aaa): the work", name="work.txt")  # a partial ID, as the CLI takes it
    wait_for(lambda: commits_of(repo, A) == [short(first)], "the commit recorded in A")
    after = repo.read(A)
    assert after == before.replace("---\n# Spec", f"commits:\n- {short(first)}\n---\n# Spec") or \
        after == before.replace("---\n# Spec", f"commits:\n- '{short(first)}'\n---\n# Spec")
    assert "# a comment kept" in after
    # the index and the table answer it, through the CLI and the daemon
    shown = run_chant(["show", "aaa", "--json"], repo.root, env=genv)
    assert json.loads(shown.out)["commits"] == [short(first)]
    found = run_chant(["search", f"commit:{short(first)}", "--json"], repo.root, env=genv)
    assert [s["id"] for s in json.loads(found.out)["specs"]] == [A]

    git("commit", "-q", "--amend", "-m", "chant(aaa): the work, amended")
    amended = git.head()
    wait_for(lambda: commits_of(repo, A) == [short(amended)], "the amended hash in place of the first")
    # counted once the operation has answered, just after the file is written
    wait_for(lambda: git_status(d)["recorded"] == 2, "the amend counted as recorded")
    # a subject naming no spec, and a second spec: nothing else changes
    git.commit("an ordinary commit", name="work.txt")
    second = git.commit(f"chant({B}): more", name="work.txt")
    wait_for(lambda: commits_of(repo, B) == [short(second)], "B's commit recorded")
    assert commits_of(repo, A) == [short(amended)]
    assert commits_of(repo, C) == []


def test_unknown_refs_and_invalid_saves_are_logged_counted_and_notified(git, repo, genv, daemon_factory):
    receiver = Receiver()
    receiver.thread.start()
    try:
        configure(repo, "scale:\n  daemon:\n    git_watch:\n      notify:\n        channel: webhook\n"
                        f"        url: {receiver.url('/chant')}\n        timeout: 2\n")
        d = start(daemon_factory, repo, genv, metrics=True)
        git.commit("chant(nosuchspec): refers to nothing", name="work.txt")
        wait_for(lambda: any(b["kind"] == "unknown_ref" for b in receiver.bodies()), "the unknown_ref notification")
        event = next(b for b in receiver.bodies() if b["kind"] == "unknown_ref")
        assert event["schema"] == "chant.notification/1"
        assert "nosuchspec" in event["message"] and event["details"]["ref"] == "nosuchspec"
        assert git_status(d)["unknown_refs"] == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert "chant_git_unknown_refs_total 1.0" in metrics
        assert 'chant_notifications_total{channel="webhook",result="sent"}' in metrics

        # continuous validation: a save with an error is told once, and its fix too
        with open(repo.path(B), "w", encoding="utf-8") as fh:
            fh.write("---\nstatus: [pending\n---\n# Broken\n")
        wait_for(lambda: d.call("daemon_status")["validation"]["invalid_specs"] == 1, "B counted invalid")
        wait_for(lambda: any(b["kind"] == "invalid_spec" for b in receiver.bodies()), "the invalid_spec notification")
        status = run_chant(["daemon", "status"], repo.root, env=genv)
        assert "Invalid specs: 1" in status.out
        repo.write(B, "status: pending")
        wait_for(lambda: d.call("daemon_status")["validation"]["invalid_specs"] == 0, "B valid again")
        assert sum(b["kind"] == "invalid_spec" for b in receiver.bodies()) == 1
    finally:
        receiver.stop()


def test_a_commit_in_a_worktree_is_recorded_once_in_the_daemons_tree(git, repo, genv, daemon_factory, tmp_path):
    d = start(daemon_factory, repo, genv)
    worktree = str(tmp_path / f"chant-{A}")
    git("worktree", "add", "-q", "-b", f"chant/{A}", worktree)
    wait_for(lambda: (git_status(d)["checkout"] or {}).get("spec") == A, "the chant/<id> checkout reported")
    assert git_status(d)["checkout"]["status"] == "pending"
    commit = git.commit(f"chant({A}): done in the worktree", cwd=worktree, name="work.txt")
    wait_for(lambda: commits_of(repo, A) == [short(commit)], "the worktree's commit recorded in the main tree")
    assert commits_of(repo, A, root=worktree) == []  # never written into a worktree the user did not point at
    time.sleep(1.5)  # a poll or two more: still once
    assert commits_of(repo, A) == [short(commit)]
    assert git_status(d)["events"]["commit"] == 1


@pytest.fixture
def slow_files(repo):
    """A file watcher that polls once a minute: what follows a checkout here is the git watcher."""
    configure(repo, "scale:\n  daemon:\n    watch_mode: poll\n    poll_delay_ms: 60000\n")


def listed(repo, genv, *args) -> dict:
    out = run_chant(["list", "--json", *args], repo.root, env=genv)
    assert out.code == 0, out
    return {s["id"]: s["status"] for s in json.loads(out.out)}


def test_checkout_merge_and_reset_are_followed_through_git(slow_files, git, repo, genv, daemon_factory):
    git("checkout", "-q", "-b", "feat")
    repo.write(A, "status: completed")
    os.remove(repo.path(B))
    repo.write("2026-01-01-004-ddd", "status: pending")
    git("add", "-A", ".chant/specs")
    git("commit", "-q", "-m", "feat: three specs change")
    git("checkout", "-q", "main")
    d = start(daemon_factory, repo, genv)
    assert set(listed(repo, genv)) == {A, B, C}

    git("checkout", "-q", "feat")
    wait_for(lambda: listed(repo, genv) == {A: "completed", C: "pending", "2026-01-01-004-ddd": "pending"},
             "the checkout of feat followed")
    git("checkout", "-q", "main")
    wait_for(lambda: set(listed(repo, genv)) == {A, B, C}, "the checkout of main followed")
    git("merge", "-q", "--ff-only", "feat")
    wait_for(lambda: "2026-01-01-004-ddd" in listed(repo, genv), "the merge followed")
    git("reset", "-q", "--hard", "HEAD~1")
    wait_for(lambda: set(listed(repo, genv)) == {A, B, C}, "the reset followed")
    ready = run_chant(["list", "--ready", "--json"], repo.root, env=genv)
    assert {s["id"] for s in json.loads(ready.out)} == {A, B, C}
    events = git_status(d)["events"]
    assert events["checkout"] == 2 and events["merge"] == 1 and events["reset"] == 1


def test_push_and_pull_between_clones(slow_files, git, repo, genv, daemon_factory, tmp_path):
    remote = str(tmp_path / "remote.git")
    git("init", "-q", "--bare", "-b", "main", remote)
    git("remote", "add", "origin", remote)
    d = start(daemon_factory, repo, genv)
    git("push", "-q", "-u", "origin", "main")
    wait_for(lambda: git_status(d)["events"].get("push"), "the push seen")

    other = Git(tmp_path / "other", genv)
    git("clone", "-q", remote, other.path, cwd=str(tmp_path))
    other.configure()
    spec = os.path.join(other.path, ".chant", "specs", f"{C}.md")
    with open(spec, encoding="utf-8") as fh:
        text = fh.read()
    with open(spec, "w", encoding="utf-8") as fh:
        fh.write(text.replace("status: pending", "status: completed"))
    other("commit", "-q", "-am", "complete C elsewhere")
    other("push", "-q", "origin", "main")

    git("pull", "-q", "--ff-only", "origin", "main")
    wait_for(lambda: listed(repo, genv).get(C) == "completed", "the pull followed")
    assert git_status(d)["events"].get("pull") == 1


def test_rebase_replaces_the_hashes_it_rewrote(git, repo, genv, daemon_factory):
    start(daemon_factory, repo, genv)
    git("checkout", "-q", "-b", "topic")
    one = git.commit("chant(aaa): one", name="topic.txt")
    two = git.commit("chant(aaa): two", name="topic.txt")
    wait_for(lambda: commits_of(repo, A) == [short(one), short(two)], "both commits recorded")
    git("add", ".chant/specs")
    git("commit", "-q", "-m", "record the commits")  # a clean tree for the rebase
    git("checkout", "-q", "main")
    git.commit("meanwhile on main", name="main.txt")
    git("checkout", "-q", "topic")
    git("rebase", "-q", "main")
    log = git("log", "--format=%H %s", "main..topic").splitlines()
    new = [h for h, _, s in (line.partition(" ") for line in reversed(log)) if s.startswith("chant(aaa)")]
    assert len(new) == 2 and set(new).isdisjoint({one, two})
    wait_for(lambda: commits_of(repo, A) == [short(new[0]), short(new[1])], "the rebased hashes in place of the old")


def test_commits_made_while_the_daemon_was_down_are_recorded_at_its_start_once(git, repo, genv, daemon_factory):
    d = start(daemon_factory, repo, genv)
    first = git.commit("chant(aaa): while up", name="work.txt")
    wait_for(lambda: commits_of(repo, A) == [short(first)], "the first commit recorded")
    d.stop()
    second = git.commit("chant(aaa): while down", name="work.txt")
    third = git.commit("chant(bbb): also while down", name="work.txt")
    d = start(daemon_factory, repo, genv)  # started = what happened meanwhile handled
    assert commits_of(repo, A) == [short(first), short(second)]
    assert commits_of(repo, B) == [short(third)]
    d.stop()
    d = start(daemon_factory, repo, genv)
    assert commits_of(repo, A) == [short(first), short(second)]
    assert git_status(d)["recorded"] == 0


def test_the_first_commit_of_a_new_repository_is_seen(repo, genv, daemon_factory):
    repo.write(A, "status: pending")
    git = Git.init(repo.root, genv, first=None)
    d = start(daemon_factory, repo, genv)
    git("add", ".chant")
    git("commit", "-q", "-m", "chant(aaa): the very first commit")
    wait_for(lambda: commits_of(repo, A) == [short(git.head())], "the first commit recorded")
    assert git_status(d)["state"] == "watching"


def test_git_watch_is_off_outside_git_and_when_configured_off(repo, genv, git, daemon_factory, tmp_path):
    plain = tmp_path / "plain"
    from .support import Repo

    other = Repo(plain)
    d = daemon_factory(other.root, env=genv, api=False, metrics=False)
    assert d.call("daemon_status")["git"]["state"].startswith("off: ")
    d.stop()

    configure(repo, "scale:\n  daemon:\n    git_watch:\n      on_commit: false\n")
    d = start(daemon_factory, repo, genv)
    git.commit("chant(aaa): not recorded", name="work.txt")
    wait_for(lambda: git_status(d)["events"].get("commit") == 1, "the commit seen")
    assert commits_of(repo, A) == []
    d.stop()
    configure(repo, "scale:\n  daemon:\n    git_watch:\n      enabled: false\n")
    d = start(daemon_factory, repo, genv)
    assert git_status(d)["state"].startswith("off: ")


def test_a_bad_git_watch_value_stops_the_start_with_one_line(repo, genv):
    configure(repo, "scale:\n  daemon:\n    git_watch:\n      on_commit: sometimes\n")
    out = run_chant(["daemon", "start"], repo.root, env=genv)
    assert out.code != 0
    assert "scale.daemon.git_watch.on_commit must be true or false" in out.err
    assert "Traceback" not in out.err


def test_200_commits_in_a_loop_are_each_recorded_exactly_once(git, repo, genv, daemon_factory):
    start(daemon_factory, repo, genv)
    made: dict[str, list[str]] = {A: [], B: [], C: []}
    ids = list(made)
    for n in range(200):
        spec_id = ids[n % 3]
        made[spec_id].append(short(git.commit(f"chant({spec_id[-3:]}): step {n}", name="loop.txt")))
    for spec_id, hashes in made.items():
        wait_for(lambda s=spec_id, h=hashes: commits_of(repo, s) == h, f"every commit of {spec_id} once, in order",
                 timeout=60)
