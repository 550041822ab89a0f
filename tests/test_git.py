"""record_commit and chantlib.git, in process and through the CLI, on a real git repository:
the subject convention, partial and project-prefixed IDs, idempotence, replacement, the
file left as it was around the one key, and the errors."""

from __future__ import annotations

import json

import pytest

from chantlib.errors import AmbiguousSpecId, SpecParseError, UnknownSpecRef
from chantlib.git import same_commit, spec_ref

from .support import Git, isolated_git_env, run_chant

A = "auth-2026-01-01-001-aaa"
B = "2026-01-01-002-bbb"
ORIGINAL = "---\n# kept\nstatus: pending   # as it was\nlabels:\n- x\n---\n# Spec A\n\nBody, kept.\n"


@pytest.fixture
def git(repo, tmp_path) -> Git:
    repo.write(A, raw=ORIGINAL)
    repo.write(B)
    g = Git.init(repo.root, isolated_git_env(tmp_path / "githome"), first=None)
    g("add", "-A")
    g("commit", "-q", "-m", "specs")
    return g


@pytest.mark.parametrize("subject, ref", [
    ("chant(2026-01-01-001-aaa): fix", "2026-01-01-001-aaa"),
    ("chant(auth-2026-01-01-001-aaa): with a project", "auth-2026-01-01-001-aaa"),
    ("  chant( aaa ):spaces", "aaa"),
    ("chant(aaa) : spaced colon", "aaa"),
    ("fix: chant(aaa): not at the start", None),
    ("chant(): empty", None),
    ("chant(a b): two words", None),
    ("chant: Add spec 2026-01-01-001-aaa", None),
    ("", None),
    (None, None),
])
def test_the_subject_convention(subject, ref):
    assert spec_ref(subject) == ref


def test_same_commit_compares_abbreviations_only_of_hashes():
    full = "81ba38c0d2f3e4a5b6c7d8e9f0a1b2c3d4e5f6a7"
    assert same_commit("81ba38c", full) and same_commit(full, "81BA38C0") and same_commit("'81ba'", full) is False
    assert not same_commit("81ba38d", full) and not same_commit("abc", "abcdef") and not same_commit("xyz1234", "xyz1234")


def test_record_commit_is_lossless_idempotent_and_replaces(git, repo):
    ws = repo.workspace()
    first = git.commit("chant(aaa): the work", name="work.txt")
    out = ws.record_commit(first)  # the subject is asked of git
    assert out["recorded"] and out["ref"] == "aaa" and out["spec"]["id"] == A and out["commits"] == [first[:7]]
    # a short hash of digits alone is quoted (unquoted, YAML would read it as a number)
    from chantlib.spec import dump_yaml_value, load_yaml

    written = dump_yaml_value("commits", [first[:7]])
    assert load_yaml(written) == {"commits": [first[:7]]}
    assert repo.read(A) == ORIGINAL.replace("- x\n---", f"- x\n{written}---")
    again = ws.record_commit(first, subject="chant(aaa): the work")
    assert not again["recorded"] and again["commits"] == [first[:7]]
    second = git.commit(f"chant({A}): more", name="work.txt")
    ws.record_commit("HEAD")
    assert ws.show(A)["commits"] == [first[:7], second[:7]]
    git("commit", "-q", "--amend", "-m", f"chant({A}): more, amended")
    amended = git.head()
    out = ws.record_commit(amended, replaces=second)
    assert out["replaced"] == second[:7] and out["commits"] == [first[:7], amended[:7]]
    # replacing by a hash already there: the old one just goes
    out = ws.record_commit(amended, replaces=first)
    assert out["commits"] == [amended[:7]]
    assert "# kept" in repo.read(A) and "status: pending   # as it was" in repo.read(A)


def test_record_commit_errors(git, repo):
    ws = repo.workspace()
    none = ws.record_commit("HEAD")
    assert none["ref"] is None and not none["recorded"] and none["spec"] is None
    with pytest.raises(UnknownSpecRef, match=r"commit [0-9a-f]{7} names chant\(zzz\), but no spec has that ID"):
        ws.record_commit("1234567abc", subject="chant(zzz): nope")
    repo.write("2026-01-01-003-bba")
    with pytest.raises(AmbiguousSpecId):
        ws.record_commit("1234567abc", subject="chant(2026-01-01): which one")
    repo.write(B, raw="---\nstatus: [broken\n---\n# B\n")
    with pytest.raises(SpecParseError, match="cannot edit"):
        ws.record_commit("1234567abc", subject="chant(bbb): broken spec")


def test_chant_git_record_from_the_command_line(git, repo):
    env = git.env
    git.commit("chant(aaa): via the CLI", name="work.txt")
    out = run_chant(["git", "record"], repo.root, env=env)
    assert out.code == 0 and out.out.startswith(f"Recorded {git.head()[:7]} in {A}"), out
    again = run_chant(["git", "record", "HEAD"], repo.root, env=env)
    assert again.out.strip() == f"{git.head()[:7]} is already recorded in {A}"
    git.commit("chant(nosuch): nothing", name="work.txt")
    missing = run_chant(["git", "record", "--json"], repo.root, env=env)
    assert missing.code == 4 and "no spec has that ID" in missing.err
    bad = run_chant(["git", "record", "no-such-rev"], repo.root, env=env)
    assert bad.code == 1 and "git log failed" in bad.err
    as_json = run_chant(["git", "record", "HEAD~1", "--json"], repo.root, env=env)
    assert json.loads(as_json.out)["recorded"] is False
