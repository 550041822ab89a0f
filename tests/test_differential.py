"""Direct mode and daemon mode print the same bytes.

Every read command runs twice with the same arguments, once with ``--direct`` and once
through a running daemon, over the real corpus (when present) and a generated repository;
stdout and exit codes must match exactly.
"""

from __future__ import annotations

import pytest

from .support import copy_corpus, run_chant


def _generated(dest) -> str:
    from chantlib.generate import generate

    target = str(dest / "generated")
    generate(target, 400, seed=5)
    return target


REPOS = ["lex00-chant-2026-01-24", "lex00-chant-2026-02-05", "generated"]


def _commands(root: str) -> list[list[str]]:
    from chantlib.workspace import Workspace

    ws = Workspace(root)
    specs = ws.list_specs()["specs"] or ws.list_specs(status="cancelled")["specs"]
    ids = [s["id"] for s in specs]
    sample = ids[:: max(1, len(ids) // 6)][:6]
    projects = sorted({s["project"] for s in specs if s["project"]})
    labels = sorted({label for s in specs for label in s["labels"]})
    cmds = [
        ["list"], ["list", "--ready"], ["list", "--json"], ["list", "--ready", "--json"], ["list", "--count"],
        ["list", "--status", "pending"], ["list", "--status", "blocked"], ["list", "--status", "completed"],
        ["list", "--status", "cancelled"], ["list", "--status", "in_progress", "--json"], ["list", "--type", "code"],
        ["status"], ["status", "--json"], ["status", "--brief"],
        ["lint"], ["lint", "--json"], ["lint", "--archive", "--json"],
        ["search", "merge"], ["search", "status:ready"], ["search", "NOT status:completed", "--json"],
        ["search", "created:[2026-01-01 TO 2026-12-31] AND type:code", "--limit", "5"],
        ["search", "(unclosed"], ["search", "label:bug OR label:docs", "--json"],
        ["queue", "next"], ["queue", "next", "--json"], ["queue", "list"], ["queue", "list", "--json", "--limit", "3"],
        ["lock", "list"], ["lock", "list", "--json"],
        ["show", "no-such-spec"], ["show", "2026"],
    ]
    for spec_id in sample:
        cmds += [["show", spec_id], ["show", spec_id, "--json"], ["lock", "status", spec_id, "--json"]]
    for project in projects[:2]:
        cmds += [["list", "--project", project], ["queue", "next", "--project", project]]
    for label in labels[:2]:
        cmds += [["list", "--label", label], ["queue", "list", "--label", label]]
    return cmds


@pytest.mark.slow
@pytest.mark.parametrize("name", REPOS)
def test_daemon_mode_prints_what_direct_mode_prints(name, tmp_path, daemon_factory):
    root = _generated(tmp_path) if name == "generated" else copy_corpus(name, tmp_path)
    run_chant(["list", "--direct"], root)  # build the cache once, so both modes start warm
    commands = _commands(root)
    direct = {tuple(c): run_chant([*c, "--direct"], root) for c in commands}
    d = daemon_factory(root, api=False, metrics=False)
    # a few leases, taken through the daemon, so the lease and queue views have something in them
    for spec in d.call("queue_list", limit=2)["specs"]:
        d.call("lock_acquire", spec=spec["id"], owner="differential", ttl=600)
    leased = {tuple(c): run_chant([*c, "--direct"], root) for c in commands if c[0] in ("lock", "queue", "show")}
    direct.update(leased)
    mismatches = []
    for c in commands:
        via = run_chant(c, root)
        want = direct[tuple(c)]
        if (via.code, via.out) != (want.code, want.out):
            mismatches.append((c, want.code, via.code, want.out[:300], via.out[:300]))
        assert "Traceback" not in via.err
    assert not mismatches, mismatches[:3]
    assert d.call("daemon_status")["pid"] == d.pid  # the daemon answered all along
