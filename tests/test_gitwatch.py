"""GitWatcher with real git: every event kind, worktrees, remotes, gc, rewritten reflogs,
restarts with a kept state, and a stress loop. No timing assertions."""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest

import chantlib
from chantlib.gitwatch import KINDS, GitEvent, GitWatcher, find_git_dirs

from .support import Git, isolated_git_env

ZERO = "0" * 40


@pytest.fixture
def git_env(tmp_path):
    return isolated_git_env(tmp_path / "home")


@pytest.fixture
def repo(tmp_path, git_env):
    g = Git(tmp_path / "repo", git_env)
    subprocess.run(["git", "init", "-q", "-b", "main", g.path], env=git_env, check=True)
    g.configure()
    g.commit("first")
    return g


def kinds(events):
    return [e.kind for e in events]


def only(events, kind):
    found = [e for e in events if e.kind == kind]
    assert len(found) == 1, events
    return found[0]


def test_commit_is_told_once_with_hash_subject_branch_and_worktree(repo):
    w = GitWatcher(repo.path)
    assert w.enabled and w.reason is None and w.poll() == []
    parent = repo.head()
    new = repo.commit("chant(2026-01-01-001-abc): the work")
    [event] = w.poll()
    assert event == GitEvent("commit", "refs/heads/main", parent, new, repo.path,
                             "commit: chant(2026-01-01-001-abc): the work", event.time,
                             subject="chant(2026-01-01-001-abc): the work")
    assert event.branch == "main" and event.remote is None and not event.amend
    assert w.poll() == []


def test_first_start_does_not_tell_history(repo):
    for i in range(3):
        repo.commit(f"old {i}")
    assert GitWatcher(repo.path).poll() == []


def test_merges_fast_forward_and_true(repo):
    w = GitWatcher(repo.path)
    repo("checkout", "-q", "-b", "feat")
    repo.commit("f1", name="g")
    repo("checkout", "-q", "main")
    repo("merge", "-q", "feat")
    ff = only(w.poll(), "merge")
    assert ff.fast_forward and ff.source == "feat" and ff.ref == "refs/heads/main" and ff.new == repo.head()
    repo("checkout", "-q", "feat")
    repo.commit("f2", name="g")
    repo("checkout", "-q", "main")
    repo.commit("m1")
    before = repo.head()
    repo("merge", "-q", "--no-edit", "feat")
    merge = only(w.poll(), "merge")
    assert not merge.fast_forward and merge.old == before and merge.new == repo.head()
    assert merge.worktree == repo.path


def test_merge_concluded_by_commit_after_a_conflict(repo):
    w = GitWatcher(repo.path)
    repo("checkout", "-q", "-b", "other")
    repo.commit("theirs")
    repo("checkout", "-q", "main")
    repo.commit("ours")
    repo("merge", "--no-edit", "other", check=False)
    with open(os.path.join(repo.path, "f"), "w", encoding="utf-8") as fh:
        fh.write("resolved\n")
    repo("add", "f")
    repo("commit", "-q", "--no-edit")
    merge = [e for e in w.poll() if e.ref == "refs/heads/main"][-1]
    assert merge.kind == "merge" and merge.subject == "Merge branch 'other'" and merge.new == repo.head()


def test_pull_from_a_second_clone(repo, tmp_path, git_env):
    bare = str(tmp_path / "bare.git")
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", bare], env=git_env, check=True)
    repo("remote", "add", "origin", bare)
    repo("push", "-q", "-u", "origin", "main")
    other = Git(tmp_path / "other", git_env)
    subprocess.run(["git", "clone", "-q", bare, other.path], env=git_env, check=True)
    other.configure()
    w = GitWatcher(repo.path)
    theirs = other.commit("from the other clone", name="o")
    other("push", "-q", "origin", "main")
    repo("pull", "-q", "--ff-only")
    events = w.poll()
    pull = only(events, "pull")
    assert pull.ref == "refs/heads/main" and pull.new == theirs and pull.fast_forward
    assert pull.worktree == repo.path
    fetch = only(events, "fetch")
    assert fetch.ref == "refs/remotes/origin/main" and fetch.new == theirs and fetch.remote == "origin"
    # diverged: a pull that merges
    other.commit("more", name="o")
    other("push", "-q", "origin", "main")
    repo.commit("mine")
    repo("pull", "-q", "--no-rebase", "--no-edit")
    pull = only(w.poll(), "pull")
    assert not pull.fast_forward and pull.new == repo.head()
    # pull --rebase: one pull event for the branch, the rebase's own steps are not told
    other.commit("again", name="o")
    other("push", "-q", "origin", "main")
    repo.commit("mine again")
    assert kinds(w.poll()) == ["commit"]
    repo("pull", "-q", "--rebase")
    events = w.poll()
    assert sorted(kinds(events)) == ["fetch", "pull"], events
    assert only(events, "pull").new == repo.head()


def test_checkout_tells_from_and_to(repo):
    w = GitWatcher(repo.path)
    repo("checkout", "-q", "-b", "chant/2026-01-01-001-abc")
    events = w.poll()
    assert kinds(events) == ["checkout", "branch"]
    checkout = events[0]
    assert (checkout.source, checkout.target, checkout.ref, checkout.branch) == (
        "main", "chant/2026-01-01-001-abc", None, None)
    assert checkout.worktree == repo.path
    assert events[1].ref == "refs/heads/chant/2026-01-01-001-abc" and events[1].old == ZERO
    repo("switch", "-q", "main")
    [back] = w.poll()
    assert (back.kind, back.source, back.target) == ("checkout", "chant/2026-01-01-001-abc", "main")


def test_detached_head_commit_is_told_once_without_a_ref(repo):
    w = GitWatcher(repo.path)
    repo("checkout", "-q", "--detach")
    new = repo.commit("on a detached head")
    events = w.poll()
    assert kinds(events) == ["checkout", "commit"]
    assert events[1].ref is None and events[1].new == new and events[1].worktree == repo.path
    assert w.poll() == []


def test_rebase_is_told_once_at_its_finish(repo):
    repo("checkout", "-q", "-b", "feat")
    repo.commit("f1", name="g")
    repo.commit("f2", name="g")
    before = repo.head()
    repo("checkout", "-q", "main")
    repo.commit("m1")
    onto = repo.head()
    repo("checkout", "-q", "feat")
    w = GitWatcher(repo.path)
    repo("rebase", "-q", "main")
    events = w.poll()
    assert kinds(events) == ["rebase"], events
    rebase = events[0]
    assert rebase.ref == "refs/heads/feat" and rebase.old == before and rebase.new == repo.head()
    assert rebase.target == onto and rebase.worktree == repo.path


def test_amend_and_reset(repo):
    first = repo.commit("typo")
    w = GitWatcher(repo.path)
    repo("commit", "-q", "--amend", "-m", "fixed")
    [amend] = w.poll()
    assert amend.kind == "commit" and amend.amend and amend.old == first and amend.new == repo.head()
    assert amend.subject == "fixed"
    amended = repo.head()
    repo("reset", "-q", "--hard", "HEAD~1")
    [reset] = w.poll()
    assert (reset.kind, reset.ref, reset.old, reset.new, reset.target) == (
        "reset", "refs/heads/main", amended, repo.head(), "HEAD~1")
    repo("reset", "-q", "--hard")  # a reset to where it is moves nothing
    assert w.poll() == []


def test_cherry_pick_and_revert_are_commits(repo):
    repo("checkout", "-q", "-b", "side")
    repo.commit("picked", name="p")
    repo("checkout", "-q", "main")
    w = GitWatcher(repo.path)
    repo("cherry-pick", "side")
    repo("revert", "--no-edit", "HEAD")
    events = [e for e in w.poll() if e.kind != "checkout"]
    assert [(e.kind, e.source, e.subject) for e in events] == [
        ("commit", "cherry-pick", "picked"), ("commit", "revert", 'Revert "picked"')]


def test_worktree_commits_are_told_once_from_either_side(repo, tmp_path):
    wt = str(tmp_path / "chant-2026-01-01-001-abc")
    from_main = GitWatcher(repo.path)
    repo("worktree", "add", "-q", wt, "-b", "chant/2026-01-01-001-abc")
    with open(os.path.join(wt, ".git"), encoding="utf-8") as fh:
        assert fh.read().startswith("gitdir:")
    from_wt = GitWatcher(wt)
    assert from_wt.common_dir == from_main.common_dir and from_wt.git_dir != from_main.git_dir
    assert kinds(from_main.poll()) == ["branch"]  # worktree add: the branch made, no commit
    new = repo.commit("chant(2026-01-01-001-abc): in the worktree", cwd=wt)
    main_new = repo.commit("on main")
    for w in (from_main, from_wt):
        commits = [e for e in w.poll() if e.kind == "commit"]
        # (in one second, the order across two worktrees is not recorded: compare as sets)
        assert sorted((e.ref, e.new, e.worktree) for e in commits) == [
            ("refs/heads/chant/2026-01-01-001-abc", new, wt), ("refs/heads/main", main_new, repo.path)]
    repo("checkout", "-q", "--detach", cwd=wt)
    detached = repo.commit("detached in the worktree", cwd=wt)
    events = from_main.poll()
    assert [(e.kind, e.ref, e.worktree) for e in events] == [("checkout", None, wt), ("commit", None, wt)]
    assert events[1].new == detached
    repo("worktree", "remove", "--force", wt)
    assert from_main.poll() == []
    assert not any(k.startswith("worktrees/") for k in from_main._logs)


def test_push_to_a_bare_remote(repo, tmp_path, git_env):
    bare = str(tmp_path / "bare.git")
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", bare], env=git_env, check=True)
    repo("remote", "add", "origin", bare)
    w = GitWatcher(repo.path)
    repo("push", "-q", "-u", "origin", "main")
    [push] = w.poll()
    assert (push.kind, push.ref, push.branch, push.remote, push.old, push.new, push.worktree) == (
        "push", "refs/remotes/origin/main", "origin/main", "origin", ZERO, repo.head(), None)
    old = repo.head()
    repo.commit("more")
    repo("push", "-q")
    events = w.poll()
    assert kinds(events) == ["commit", "push"]
    assert (events[1].old, events[1].new) == (old, repo.head())


def test_gc_and_packed_refs_tell_nothing_and_lose_nothing(repo):
    repo("checkout", "-q", "-b", "feat")
    repo("checkout", "-q", "main")
    w = GitWatcher(repo.path)
    repo("gc", "-q")
    repo("pack-refs", "--all")
    assert not os.path.exists(repo.log_path("refs/heads/main"))  # the ref itself is packed
    assert w.poll() == []
    new = repo.commit("after gc")
    assert [(e.kind, e.new) for e in w.poll()] == [("commit", new)]


def test_reflog_expire_and_a_truncated_reflog(repo):
    for i in range(5):
        repo.commit(f"c{i}")
    w = GitWatcher(repo.path)
    repo("reflog", "expire", "--expire=now", "--all")
    assert os.path.getsize(repo.log_path("logs/HEAD")) == 0
    assert w.poll() == []
    new = repo.commit("after expire")
    assert [(e.kind, e.new) for e in w.poll()] == [("commit", new)]
    for i in range(4):
        repo.commit(f"d{i}")
    assert len(w.poll()) == 4
    for rel in ("logs/HEAD", "logs/refs/heads/main"):  # cut to half its lines
        path = repo.log_path(rel)
        with open(path, "rb") as fh:
            lines = fh.readlines()
        with open(path, "r+b") as fh:
            fh.truncate(sum(len(x) for x in lines[: len(lines) // 2]))
    assert w.poll() == []
    new = repo.commit("after the cut")
    assert [(e.kind, e.new) for e in w.poll()] == [("commit", new)]


def test_a_reflog_cut_mid_line_neither_crashes_nor_replays(repo):
    for i in range(4):
        repo.commit(f"c{i}")
    w = GitWatcher(repo.path)
    for rel in ("logs/HEAD", "logs/refs/heads/main"):
        path = repo.log_path(rel)
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) // 2 + 7)
    assert w.poll() == []
    repo.commit("glued to the cut line")  # git appends after the partial line: one garbled line
    assert w.poll() == []  # skipped as malformed, not told with wrong hashes
    new = repo.commit("after")
    assert [(e.kind, e.new) for e in w.poll()] == [("commit", new)]


def test_a_rewritten_reflog_keeping_our_line_continues_after_it(repo):
    for i in range(6):
        repo.commit(f"c{i}")
    w = GitWatcher(repo.path)
    # drop the oldest entries (what expire does to old ones): our last line is still there
    for rel in ("logs/HEAD", "logs/refs/heads/main"):
        path = repo.log_path(rel)
        with open(path, "rb") as fh:
            lines = fh.readlines()
        with open(path + ".new", "wb") as fh:
            fh.writelines(lines[3:])
        os.replace(path + ".new", path)
    new = repo.commit("after the rewrite")
    assert [(e.kind, e.new) for e in w.poll()] == [("commit", new)]


def test_a_branch_deleted_and_made_again_between_polls(repo):
    repo("branch", "topic")
    w = GitWatcher(repo.path)
    repo("branch", "-D", "topic")
    repo("checkout", "-q", "-b", "topic")
    new = repo.commit("on the new topic")
    events = w.poll()
    assert [e.kind for e in events] == ["checkout", "branch", "commit"] and events[-1].new == new


def test_no_commits_yet(tmp_path, git_env):
    g = Git(tmp_path / "empty", git_env)
    subprocess.run(["git", "init", "-q", "-b", "main", g.path], env=git_env, check=True)
    g.configure()
    w = GitWatcher(g.path, state_path=tmp_path / "state.json")
    assert w.enabled and w.poll() == []
    assert w.paths_to_watch() == (os.path.join(g.path, ".git"),)  # no logs/ yet
    new = g.commit("initial")
    [event] = w.poll()
    assert (event.kind, event.old, event.new, event.subject, event.message) == (
        "commit", ZERO, new, "initial", "commit (initial): initial")
    assert w.paths_to_watch() == (os.path.join(g.path, ".git", "logs"),)


def test_not_a_repository_is_off(tmp_path, caplog):
    folder = tmp_path / "plain"
    folder.mkdir()
    with caplog.at_level("INFO", logger="chantlib.gitwatch"):
        w = GitWatcher(folder, state_path=tmp_path / "state.json")
    assert not w.enabled and "not a git repository" in (w.reason or "")
    assert any("git watcher off" in r.getMessage() for r in caplog.records)
    assert w.poll() == [] and w.paths_to_watch() == () and w.common_dir is None
    w.close()
    assert not (tmp_path / "state.json").exists()
    assert "off" in repr(w)


def test_found_from_a_subfolder_and_a_broken_gitdir_file(repo, tmp_path):
    sub = os.path.join(repo.path, "a", "b")
    os.makedirs(sub)
    assert find_git_dirs(sub) == (os.path.join(repo.path, ".git"),) * 2 + (repo.path,)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / ".git").write_text("gitdir: /nowhere/at/all\n")
    w = GitWatcher(broken)
    assert not w.enabled and "does not exist" in (w.reason or "")


def test_restart_with_state_replays_what_happened_meanwhile_exactly_once(repo, tmp_path):
    state = tmp_path / "gitwatch.json"
    w = GitWatcher(repo.path, state_path=state)
    assert not w.resumed
    c1 = repo.commit("c1")
    assert [e.new for e in w.poll()] == [c1]
    w.close()
    # while the daemon is down: commits on main, a new branch, a worktree and its commit
    c2 = repo.commit("c2")
    c3 = repo.commit("c3")
    wt = str(tmp_path / "wt")
    repo("worktree", "add", "-q", wt, "-b", "chant/x")
    c4 = repo.commit("c4", cwd=wt)
    again = GitWatcher(repo.path, state_path=state)
    assert again.resumed
    first = again.poll()
    assert [(e.kind, e.new) for e in first if e.kind == "commit"] == [(("commit"), c2), ("commit", c3), ("commit", c4)]
    assert [e.worktree for e in first if e.kind == "commit"] == [repo.path, repo.path, wt]
    assert again.poll() == []
    again.close()
    # a third start: nothing is told twice
    assert GitWatcher(repo.path, state_path=state).poll() == []
    # resume=False: from now, whatever was kept
    repo.commit("c5")
    assert GitWatcher(repo.path, state_path=state, resume=False).poll() == []


def test_state_file_is_written_atomically_and_a_bad_one_starts_from_now(repo, tmp_path):
    state = tmp_path / "deep" / "gitwatch.json"
    w = GitWatcher(repo.path, state_path=state)
    repo.commit("c1")
    w.poll()
    data = json.loads(state.read_text())
    assert data["version"] == 1 and data["common_dir"] == os.path.join(repo.path, ".git")
    assert set(data["logs"]) == {"logs/HEAD", "logs/refs/heads/main"}
    assert os.listdir(state.parent) == ["gitwatch.json"]  # no temp file left
    state.write_text("{ not json")
    repo.commit("c2")
    fresh = GitWatcher(repo.path, state_path=state)
    assert not fresh.resumed and fresh.poll() == []
    json.loads(state.read_text())  # rewritten whole


def test_autosave_off_keeps_the_position_until_save(repo, tmp_path):
    state = tmp_path / "gitwatch.json"
    w = GitWatcher(repo.path, state_path=state, autosave=False)
    new = repo.commit("c1")
    assert [e.new for e in w.poll()] == [new]
    # a crash before the events were handled: the next start tells them again
    assert [e.new for e in GitWatcher(repo.path, state_path=state, autosave=False).poll()] == [new]
    w.save()
    assert GitWatcher(repo.path, state_path=state).poll() == []


def test_a_head_line_waits_for_its_branch_line_while_git_holds_head_lock(repo):
    """The instant inside a commit when git has written the HEAD line, not yet the branch
    line, and still holds HEAD.lock: nothing is told (no detached commit), then the commit
    is told once, with its worktree."""
    w = GitWatcher(repo.path)
    parent = repo.head()
    fake = "1" * 40
    line = f"{parent} {fake} Test <test@example.com> 1700000000 +0000\tcommit: half written\n"
    lock = repo.log_path("HEAD.lock")
    open(lock, "w").close()
    with open(repo.log_path("logs/HEAD"), "a") as fh:
        fh.write(line)
    assert w.poll() == []
    with open(repo.log_path("logs/refs/heads/main"), "a") as fh:
        fh.write(line)
    os.unlink(lock)
    [event] = w.poll()
    assert (event.kind, event.ref, event.new, event.worktree) == ("commit", "refs/heads/main", fake, repo.path)
    assert w.poll() == []


def test_a_half_written_line_is_read_once_complete(repo):
    w = GitWatcher(repo.path)
    head = repo.head()
    line = f"{head} {head} Test <test@example.com> 1700000000 +0000\tcheckout: moving from main to main\n"
    with open(repo.log_path("logs/HEAD"), "a") as fh:
        fh.write(line[:30])
    assert w.poll() == []
    with open(repo.log_path("logs/HEAD"), "a") as fh:
        fh.write(line[30:])
    assert [(e.kind, e.source, e.target) for e in w.poll()] == [("checkout", "main", "main")]


def test_paths_to_watch_and_close(repo, tmp_path):
    w = GitWatcher(repo.path)
    git = os.path.join(repo.path, ".git")
    assert w.paths_to_watch() == (os.path.join(git, "logs"),)
    repo("worktree", "add", "-q", str(tmp_path / "wt"))
    assert w.paths_to_watch() == (os.path.join(git, "logs"), os.path.join(git, "worktrees"))
    with w:
        pass
    w.close()
    with pytest.raises(ValueError):
        w.poll()


def test_every_kind_is_listed_and_exported():
    assert chantlib.GitWatcher is GitWatcher and chantlib.GitEvent is GitEvent
    assert set(KINDS) == {"commit", "merge", "pull", "checkout", "rebase", "reset", "push", "fetch", "branch",
                          "other"}


@pytest.mark.slow
def test_stress_200_commits_polled_meanwhile_each_told_once(repo, tmp_path):
    wt = str(tmp_path / "wt")
    repo("worktree", "add", "-q", wt, "-b", "chant/stress")
    state = tmp_path / "gitwatch.json"
    w = GitWatcher(repo.path, state_path=state)
    seen: list[GitEvent] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def poller():
        try:
            while not stop.is_set():
                seen.extend(w.poll())
                stop.wait(0.002)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=poller)
    thread.start()
    made = []
    try:
        for i in range(200):
            made.append(repo.commit(f"chant(2026-01-01-{i:03d}-abc): step {i}", cwd=wt if i % 2 else None))
    finally:
        stop.set()
        thread.join()
    seen.extend(w.poll())
    assert not errors, errors
    commits = [e for e in seen if e.kind == "commit"]
    assert sorted(e.new for e in commits) == sorted(made)
    assert len({e.new for e in commits}) == 200
    assert all(e.ref in ("refs/heads/main", "refs/heads/chant/stress") for e in commits)
    assert {e.worktree for e in commits} == {repo.path, wt}
    assert [e for e in seen if e.kind != "commit"] == []
    w.close()
    assert GitWatcher(repo.path, state_path=state).poll() == []
