"""``chant hooks``: installed into real git repositories, run by real git commits, checkouts,
merges, amends and rebases (docs/hooks.md). Every commit through the hooks starts Python a
few times, so the setup commits go around them and each test makes as few as it can."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time

import pytest

from chantlib.spec import Spec

from .support import Git, Repo, isolated_git_env, run_chant

HOOKS = ("pre-commit", "commit-msg", "post-commit", "post-rewrite", "post-merge", "post-checkout")
AAA = "2026-01-24-001-aaa"
BBB = "2026-01-24-002-bbb"
CCC = "2026-01-24-003-ccc"


class Project:
    """A chant repository that is a git repository: ``chant(...)`` runs the CLI in it and
    ``git(...)`` runs git (both with the test's isolated git environment)."""

    def __init__(self, root, env) -> None:
        self.repo = Repo(root)
        self.root = self.repo.root
        self.env = env
        self.g = Git.init(self.root, env, first=None)

    def chant(self, *args, cwd=None, env=None):
        return run_chant(list(args), cwd or self.root, env={**self.env, **(env or {})})

    def git(self, *args, cwd=None, env=None) -> subprocess.CompletedProcess:
        """git, through the hooks; its result whatever it is."""
        return subprocess.run(["git", *args], cwd=cwd or self.root, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=120)

    def quiet(self, *args, cwd=None) -> str:
        """git around the hooks (setup steps); it must succeed."""
        return self.g("-c", "core.hooksPath=/dev/null", *args, cwd=cwd)

    def commit(self, message, *paths, cwd=None, verify=True, env=None) -> subprocess.CompletedProcess:
        """Stage ``paths`` (default: a change to the file ``f``) and commit through the hooks."""
        folder = cwd or self.root
        if not paths:
            with open(os.path.join(folder, "f"), "a", encoding="utf-8") as fh:
                fh.write(message + "\n")
            paths = ("f",)
        self.g("add", "--", *paths, cwd=folder)
        return self.git("commit", "-q", *(() if verify else ("--no-verify",)), "-m", message, cwd=folder, env=env)

    def head(self, cwd=None) -> str:
        return self.g("rev-parse", "HEAD", cwd=cwd)

    @property
    def hooks_dir(self) -> str:
        return os.path.join(self.root, ".git", "hooks")

    def install(self) -> None:
        result = self.chant("hooks", "install")
        assert result.code == 0, result


def commits(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [str(c) for c in Spec.parse(os.path.basename(path)[:-3], fh.read()).commits]


def data(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def text(path) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def ours(path: str) -> bool:
    return "# chant-hooks:" in text(path)


@pytest.fixture
def git_env(tmp_path):
    return isolated_git_env(tmp_path / "home")


@pytest.fixture
def project(tmp_path, git_env) -> Project:
    p = Project(tmp_path / "repo", git_env)
    p.repo.write(AAA, "status: pending", "# Fix the bug\n")
    p.quiet("add", "-A")
    p.quiet("commit", "-q", "-m", "chant: Add spec " + AAA)
    return p


def test_install_status_uninstall_round_trip(project):
    p = project
    before = p.chant("hooks", "status", "--json")
    assert before.code == 1 and json.loads(before.out)["state"] == "not installed"
    p.install()
    made = {}
    for hook in HOOKS:
        path = os.path.join(p.hooks_dir, hook)
        st = os.stat(path)
        assert ours(path) and st.st_mode & stat.S_IXUSR, hook
        with open(path, "rb") as fh:
            assert fh.readline() == b"#!/bin/sh\n"
        made[hook] = (data(path), st.st_ino, st.st_mtime_ns)
    again = p.chant("hooks", "install")
    assert again.code == 0 and "nothing changed" in again.err, again
    for hook in HOOKS:  # a second install changes nothing, not even a file's inode or time
        path = os.path.join(p.hooks_dir, hook)
        st = os.stat(path)
        assert (data(path), st.st_ino, st.st_mtime_ns) == made[hook]
    status = p.chant("hooks", "status", "--json")
    assert status.code == 0, status
    report = json.loads(status.out)
    assert report["installed"] and report["hooks_dir"] == p.hooks_dir
    assert [(h["hook"], h["state"], h["chained"]) for h in report["hooks"]] == [(h, "installed", None) for h in HOOKS]
    assert "chant's hooks: installed" in p.chant("hooks", "status").out
    gone = p.chant("hooks", "uninstall")
    assert gone.code == 0, gone
    assert not [name for name in os.listdir(p.hooks_dir) if not name.endswith(".sample")]
    assert json.loads(p.chant("hooks", "status", "--json").out)["state"] == "not installed"


def test_a_users_hooks_are_chained_run_first_and_put_back_exactly(project, tmp_path):
    p = project
    log = tmp_path / "log"
    block = tmp_path / "block"
    spec = p.repo.path(AAA)
    users = {
        # blocks while the file `block` exists, as it did before chant's hooks came
        "pre-commit": (f'#!/bin/sh\necho "user pre-commit $#" >> {log}\n[ ! -e {block} ]\n', 0o750),
        # what chant's post-commit (which runs after it) had not yet written
        "post-commit": (f'#!/bin/sh\necho "user post-commit $(grep -c commits: {spec})" >> {log}\n', 0o700),
        # git's input, which chant's post-rewrite reads too
        "post-rewrite": (f'#!/bin/sh\necho "user post-rewrite $1" >> {log}\ncat >> {log}\n', 0o755),
    }
    originals = {}
    for hook, (text, mode) in users.items():
        path = os.path.join(p.hooks_dir, hook)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(path, mode)
        originals[hook] = (data(path), stat.S_IMODE(os.stat(path).st_mode))
    installed = p.chant("hooks", "install")
    assert installed.code == 0 and installed.out.count("kept as") == 3, installed
    status = json.loads(p.chant("hooks", "status", "--json").out)
    assert {h["hook"] for h in status["hooks"] if h["chained"]} == set(users) and status["installed"]

    block.touch()
    blocked = p.commit(f"chant({AAA}): blocked")
    assert blocked.returncode != 0 and p.g("log", "--format=%s") == "chant: Add spec " + AAA
    block.unlink()
    done = p.commit(f"chant({AAA}): the work")
    assert done.returncode == 0, done.stderr
    first = p.head()
    assert commits(spec) == [first[:7]]
    old = first
    amended = p.git("commit", "-q", "--amend", "--no-verify", "-m", f"chant({AAA}): the work, amended")
    assert amended.returncode == 0, amended.stderr
    new = p.head()
    assert commits(spec) == [new[:7]]
    assert log.read_text().splitlines() == [
        "user pre-commit 0", "user pre-commit 0", "user post-commit 0",
        "user post-commit 1",  # the amend's post-commit: chant recorded the first commit before
        "user post-rewrite amend", f"{old} {new}",
    ]

    removed = p.chant("hooks", "uninstall")
    assert removed.code == 0, removed
    for hook, (content, mode) in originals.items():
        path = os.path.join(p.hooks_dir, hook)
        assert data(path) == content and stat.S_IMODE(os.stat(path).st_mode) == mode, hook
    assert not [n for n in os.listdir(p.hooks_dir) if not n.endswith(".sample") and n not in users]


def test_a_hook_another_tool_put_over_ours_is_not_lost(project):
    p = project
    p.install()
    path = os.path.join(p.hooks_dir, "pre-commit")
    with open(path, "w", encoding="utf-8") as fh:  # installed over ours after we chained nothing
        fh.write("#!/bin/sh\nexit 0\n")
    status = json.loads(p.chant("hooks", "status", "--json").out)
    assert not status["installed"] and status["hooks"][0]["state"] == "foreign"
    assert p.chant("hooks", "install").code == 0  # chained like any hook of the user's
    assert ours(path) and text(path + ".chant-chained") == "#!/bin/sh\nexit 0\n"
    with open(path, "w", encoding="utf-8") as fh:  # and again: now a chained hook is there too
        fh.write("#!/bin/sh\necho other\n")
    refused = p.chant("hooks", "install")
    assert refused.code == 3 and "--force" in refused.err, refused
    assert text(path) == "#!/bin/sh\necho other\n"
    assert p.chant("hooks", "uninstall").code == 3  # left as they are, both
    assert text(path) == "#!/bin/sh\necho other\n" and os.path.exists(path + ".chant-chained")
    forced = p.chant("hooks", "install", "--force")
    assert forced.code == 0 and ours(path), forced
    assert text(path + ".chant-chained") == "#!/bin/sh\necho other\n"
    assert text(path + ".chant-chained.1") == "#!/bin/sh\nexit 0\n"  # kept, and said so
    assert "chant-chained.1" in forced.out


def test_core_hooks_path_and_a_chant_root_below_the_top(tmp_path, git_env):
    top = tmp_path / "mono"
    g = Git.init(top, git_env, first=None)
    repo = Repo(top / "sub")
    repo.write(AAA, "status: pending", "# Fix the bug\n")
    g("add", "-A")
    g("commit", "-q", "-m", "init")
    g("config", "core.hooksPath", ".githooks")  # relative: to the top of the working tree
    installed = run_chant(["hooks", "install"], repo.root, env=git_env)
    assert installed.code == 0, installed
    hooks = str(top / ".githooks")
    assert sorted(os.listdir(hooks)) == sorted(HOOKS)
    assert not os.path.exists(top / ".git" / "hooks" / "post-commit")
    assert json.loads(run_chant(["hooks", "status", "--json"], repo.root, env=git_env).out)["hooks_dir"] == hooks
    assert "hooks run --root 'sub' post-commit" in text(os.path.join(hooks, "post-commit"))
    def commit(*args):
        return subprocess.run(["git", "commit", "-q", *args], cwd=top, env=git_env, capture_output=True, text=True,
                              timeout=60)

    repo.write(BBB, raw="")
    g("add", repo.path(BBB))
    blocked = commit("-m", "empty spec")
    assert blocked.returncode == 1 and f"{BBB}: [empty]" in blocked.stderr, blocked  # git shows a hook's stdout there
    g("rm", "-q", "--cached", repo.path(BBB))
    with open(top / "f", "w", encoding="utf-8") as fh:
        fh.write("x\n")
    g("add", "f")
    done = commit("--no-verify", "-m", f"chant({AAA}): work")
    assert done.returncode == 0 and "recorded" in done.stderr, done.stderr
    assert commits(repo.path(AAA)) == [g("rev-parse", "HEAD")[:7]]


def test_pre_commit_blocks_staged_lint_errors_and_judges_the_staged_content(project):
    p = project
    p.install()
    path = p.repo.path(BBB)
    for raw, rule in (("---\nstatus: [\n---\n# Broken\n", "[parse]"), ("---\nstatus: pending\n---\nno title\n", "[title]"),
                      ("", "[empty]")):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(raw)
        blocked = p.commit("add bbb", path)
        assert blocked.returncode == 1, blocked
        assert f"✗ {BBB}: {rule}" in blocked.stdout + blocked.stderr, blocked
        assert "commit blocked" in blocked.stderr
    # a spec staged broken and fixed in the working tree since: the commit would hold it broken
    p.repo.write(BBB, "status: pending", "# Fine now\n")
    blocked = p.commit("add bbb", path)  # staged: the working tree's fixed version
    assert blocked.returncode == 0, blocked
    p.repo.write(BBB, raw="---\nstatus: [\n---\n")
    p.g("add", path)
    p.repo.write(BBB, "status: pending", "# Fixed again, not staged\n")
    blocked = p.git("commit", "-q", "-m", "break bbb")
    assert blocked.returncode == 1 and "[parse]" in blocked.stdout + blocked.stderr, blocked
    # and the other way round, with a spec that depends on one the commit does not hold
    p.repo.write(BBB, "type: research\nstatus: pending\ndepends_on: [" + CCC + "]", "# Research\n")
    p.g("add", path)
    p.repo.write(BBB, raw="")  # the working tree is empty: not what is judged
    p.repo.write(CCC, "status: pending", "# Not added\n")
    blocked = p.git("commit", "-q", "-m", "bbb needs ccc")
    out = blocked.stdout + blocked.stderr
    assert blocked.returncode == 1 and f"depends_on names unknown spec '{CCC}'" in out and "[empty]" not in out, out
    p.g("add", p.repo.path(CCC))
    passed = p.git("commit", "-q", "-m", "bbb needs ccc")
    out = passed.stdout + passed.stderr
    assert passed.returncode == 0, out
    assert f"⚠ {BBB}: [type]" in out and "0 failed" in out  # warnings are shown, and do not block
    assert p.g("log", "-1", "--format=%s") == "bbb needs ccc"
    # `commit -a` and `commit <paths>` make the commit from an index of their own (GIT_INDEX_FILE)
    p.repo.write(BBB, raw="---\nstatus: [\n---\n")
    with open(os.path.join(p.root, "f"), "w", encoding="utf-8") as fh:
        fh.write("f\n")
    p.g("add", "f")
    blocked = p.git("commit", "-q", "-a", "-m", "everything")
    assert blocked.returncode == 1 and "[parse]" in blocked.stderr, blocked
    passed = p.git("commit", "-q", "-m", "f alone", "f")
    assert passed.returncode == 0 and "[parse]" not in passed.stderr, passed


def test_lint_staged_reports_what_the_commit_breaks_elsewhere(project):
    p = project
    p.repo.write(BBB, f"status: pending\ndepends_on: [{AAA}]", "# B\n")
    p.repo.write(CCC, "status: pending\ndepends_on: [2026-01-24-004-ddd]", "# C\n")
    p.repo.write("2026-01-24-004-ddd", "status: pending", "# D\n")
    p.quiet("add", "-A")
    p.quiet("commit", "-q", "-m", "specs")
    ws = p.repo.workspace()
    assert ws.lint_staged() == {"diagnostics": [], "passed": 0, "warned": 0, "failed": 0, "total": 0, "files": [],
                                "warnings": []}
    p.g("rm", "-q", p.repo.path(AAA))  # BBB depends on it
    p.repo.write("2026-01-24-004-ddd", f"status: pending\ndepends_on: [{CCC}]", "# D\n")  # a cycle, named on CCC
    p.g("add", "-A")
    report = p.repo.workspace().lint_staged()
    assert sorted((d["spec_id"], d["rule"]) for d in report["diagnostics"]) == [
        (BBB, "dependency"), (CCC, "cycle")], report
    assert report["files"] == [".chant/specs/2026-01-24-004-ddd.md", f".chant/specs/{AAA}.md"]


def test_commit_msg_warns_about_unknown_and_ambiguous_refs_and_never_blocks(project):
    p = project
    p.repo.write("2026-01-24-002-aab", "status: pending", "# Another\n")
    p.quiet("add", "-A")
    p.quiet("commit", "-q", "-m", "another")
    p.install()
    unknown = p.commit("chant(zzz9): no such spec")
    assert unknown.returncode == 0, unknown
    assert unknown.stderr.count("warning:") == 1 and "chant(zzz9), but no spec has that ID" in unknown.stderr
    ambiguous = p.commit("chant(24-00): which one")
    assert ambiguous.returncode == 0 and "ambiguous" in ambiguous.stderr, ambiguous
    assert p.g("log", "-1", "--format=%s") == "chant(24-00): which one"
    assert commits(p.repo.path(AAA)) == []


def test_post_commit_records_and_an_amend_takes_its_place(project):
    p = project
    p.repo.write(AAA, "status: pending\ncommits: [1234567]", "# Fix the bug\n")
    p.quiet("commit", "-q", "-am", "an older commit recorded")
    p.install()
    done = p.commit("chant(aaa): the work", verify=False)  # a partial ID, as everywhere
    assert done.returncode == 0, done.stderr
    first = p.head()
    assert commits(p.repo.path(AAA)) == ["1234567", first[:7]]
    assert f"chant: recorded {first[:7]} in {AAA}" in done.stderr
    amended = p.git("commit", "-q", "--amend", "--no-verify", "-m", "chant(aaa): the work, amended")
    assert amended.returncode == 0, amended.stderr
    assert commits(p.repo.path(AAA)) == ["1234567", p.head()[:7]]  # in place, and once


@pytest.mark.parametrize("autostash", [False, True])
def test_a_rebase_records_its_new_commits_in_place_of_the_old(project, autostash):
    p = project
    p.install()
    spec = p.repo.path(AAA)
    assert p.git("checkout", "-q", "-b", "feat").returncode == 0
    assert p.commit(f"chant({AAA}): one", verify=False).returncode == 0
    with open(os.path.join(p.root, "f"), "a", encoding="utf-8") as fh:
        fh.write("two\n")
    assert p.commit(f"chant({AAA}): two", "f", spec, verify=False).returncode == 0  # with the hash of one
    assert p.commit("keep the hashes", spec, verify=False).returncode == 0
    old = p.g("log", "--format=%H", "-3").split()[::-1]
    assert commits(spec) == [old[0][:7], old[1][:7]]
    p.quiet("checkout", "-q", "main")
    p.repo.write(CCC)
    p.quiet("add", "-A")
    p.quiet("commit", "-q", "-m", "on main")
    p.quiet("checkout", "-q", "feat")
    if autostash:  # a change of yours to the spec file, which git puts back after post-rewrite
        with open(spec, "a", encoding="utf-8") as fh:
            fh.write("\nA note of mine.\n")
    # each step of the rebase rewrites the spec file: a hook that wrote it in between would stop it
    rebased = p.git("rebase", *(("--autostash",) if autostash else ()), "main")
    assert rebased.returncode == 0 and "conflict" not in rebased.stderr, rebased.stdout + rebased.stderr
    new = p.g("log", "--format=%H", "-3").split()[::-1]
    assert set(new).isdisjoint(old)
    if autostash:
        assert commits(spec) == [old[0][:7], old[1][:7]] and text(spec).endswith("A note of mine.\n")
        assert p.git("checkout", "-q", "-b", "later").returncode == 0  # the next hook records them
        assert text(spec).endswith("A note of mine.\n")
    assert commits(spec) == [new[0][:7], new[1][:7]]
    assert p.g("status", "--porcelain") == f"M .chant/specs/{AAA}.md"


def test_a_cherry_pick_of_several_commits_is_recorded_once_it_is_done(project):
    p = project
    spec = p.repo.path(AAA)
    p.quiet("checkout", "-q", "-b", "feat")
    for n in (1, 2):  # each changes the spec file
        with open(spec, "a", encoding="utf-8") as fh:
            fh.write(f"- [x] step {n}\n")
        p.quiet("commit", "-q", "-am", f"chant({AAA}): step {n}")
    p.quiet("checkout", "-q", "main")
    p.install()
    picked = p.git("cherry-pick", "main..feat")
    assert picked.returncode == 0, picked.stdout + picked.stderr
    assert commits(spec) == [] and p.g("status", "--porcelain") == ""
    assert p.git("checkout", "-q", "-b", "later").returncode == 0  # the first hook after it records them
    new = p.g("log", "--format=%H", "-2").split()[::-1]
    assert commits(spec) == [new[0][:7], new[1][:7]]
    assert not os.path.exists(os.path.join(p.root, ".git", "chant-hooks-pending"))


def test_a_worktree_on_a_spec_branch_names_its_spec_and_records_there(project, tmp_path):
    p = project
    p.install()
    wt = str(tmp_path / "chant-aaa")
    added = p.git("worktree", "add", "-q", "-b", f"chant/{AAA}", wt)
    assert added.returncode == 0, added.stderr
    assert f"chant: {AAA} ○ Fix the bug (pending)" in added.stderr
    done = p.commit(f"chant({AAA}): in the worktree", cwd=wt, verify=False)
    assert done.returncode == 0, done.stderr
    assert commits(os.path.join(wt, ".chant", "specs", f"{AAA}.md")) == [p.head(cwd=wt)[:7]]
    assert commits(p.repo.path(AAA)) == []  # the hook ran in the worktree: its spec file, not this one


def _cached(root: str) -> tuple[set, bool]:
    """The spec table's files and whether the index is in step with it, as they were left on
    disk (no refresh: what the hooks did, not what this check would do)."""
    from chantlib.workspace import Workspace

    ws = Workspace(root, auto_refresh=False)
    ws.table.load()
    return set(ws.table.rows), ws.index.in_step()


def test_checkout_and_merge_bring_the_table_and_index_in_step(project):
    p = project
    p.install()
    assert p.chant("search", "bug").code == 0  # the table and index as main has them
    p.quiet("checkout", "-q", "-b", "other")
    p.repo.write(BBB, "status: pending", "# Zebra crossing\n")
    p.quiet("add", "-A")
    p.quiet("commit", "-q", "-m", "add bbb")
    p.quiet("checkout", "-q", "main")
    assert p.chant("search", "bug").code == 0
    rel = f"specs/{BBB}.md"
    assert p.git("checkout", "-q", "other").returncode == 0
    files, in_step = _cached(p.root)
    assert rel in files and in_step
    assert BBB in p.chant("search", "zebra").out and BBB in p.chant("list").out
    assert p.git("checkout", "-q", "main").returncode == 0
    files, in_step = _cached(p.root)
    assert rel not in files and in_step
    assert p.chant("search", "zebra").out == "" and BBB not in p.chant("list").out
    merged = p.git("merge", "-q", "other")
    assert merged.returncode == 0, merged.stderr
    files, in_step = _cached(p.root)
    assert rel in files and in_step
    assert BBB in p.chant("search", "zebra").out


def test_a_hook_whose_chant_is_gone_warns_once_and_git_goes_on(project):
    p = project
    p.install()
    for hook in HOOKS:  # as if the interpreter that installed them had gone
        path = os.path.join(p.hooks_dir, hook)
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join("python='/nonexistent/python'" if line.startswith("python=") else line for line in lines))
    bare = "/usr/bin:/bin"
    if shutil.which("chant", path=bare):
        pytest.skip("a chant is installed in /usr/bin or /bin")
    p.repo.write(BBB, raw="")  # an error lint would block on, were chant there
    done = p.commit(f"chant({AAA}): chant is gone", p.repo.path(BBB), env={"PATH": bare})
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3 and all("chant is not installed" in w for w in warnings), done.stderr  # one a hook
    assert {w.split(" hook")[0].rsplit(" ", 1)[1] for w in warnings} == {"pre-commit", "commit-msg", "post-commit"}


def test_with_a_daemon_and_the_hooks_a_commit_is_recorded_once(project, daemon_factory):
    p = project
    p.install()
    daemon_factory(p.root, api=False, metrics=False)
    done = p.commit(f"chant({AAA}): the work", verify=False)
    assert done.returncode == 0, done.stderr
    short = p.head()[:7]
    deadline = time.monotonic() + 15
    while commits(p.repo.path(AAA)) != [short] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # and whoever else records commits (the daemon's git watcher) has had its turn
    assert commits(p.repo.path(AAA)) == [short]
