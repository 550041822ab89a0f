"""scale.limits: max_agents, max_per_project, per_project and spec_timeout, held at claim
time by the library (direct mode) and by the real daemon, and shown by `queue stats`."""

from __future__ import annotations

import json
import time

import pytest

from chantlib.errors import InvalidValue, NothingReady, SpecTimedOut, StaleToken
from chantlib.testing import FakeClock

from .support import run_chant

DAY = "2026-01-24"


def sid(seq: int, project: str | None = None) -> str:
    spec_id = f"{DAY}-{seq:03d}-a{seq:02d}"
    return f"{project}-{spec_id}" if project else spec_id


def limits(repo, text: str) -> None:
    with open(f"{repo.root}/.chant/config.md", "w", encoding="utf-8") as fh:
        fh.write(f"---\nproject:\n  name: test\nscale:\n  limits:\n{text}---\n")


def claim_all(ws, owner="w", **kwargs) -> list[str]:
    taken = []
    while True:
        try:
            taken.append(ws.queue_claim(owner=owner, **kwargs)["spec"]["id"])
        except NothingReady as exc:
            return taken + [exc]  # type: ignore[list-item]


def test_max_agents_caps_live_leases_and_a_release_makes_room(repo):
    for n in range(1, 5):
        repo.write(sid(n))
    limits(repo, "    max_agents: 2\n")
    ws = repo.workspace()
    *taken, refused = claim_all(ws)
    assert taken == [sid(1), sid(2)]
    assert "max_agents (2) leases are live" in str(refused)
    peek = ws.queue_next()
    assert peek["spec"] is None and peek["full"] and peek["depth"] == 2
    ws.complete(sid(1), owner="w")  # done, its lease let go: room for one more
    assert ws.queue_claim(owner="w")["spec"]["id"] == sid(3)


def test_per_project_limits_with_a_default_and_max_per_project(repo):
    for n in range(1, 4):
        repo.write(sid(n, "auth"))
    for n in range(4, 6):
        repo.write(sid(n, "web"))
    repo.write(sid(6))
    limits(repo, "    per_project:\n      auth: 2\n      '*': 1\n")
    ws = repo.workspace()
    *taken, refused = claim_all(ws)
    assert sorted(taken) == sorted([sid(1, "auth"), sid(2, "auth"), sid(4, "web"), sid(6)])
    assert "2 ready specs held back by scale.limits" in str(refused)
    stats = ws.queue_stats()
    assert stats["limited"] == 2 and stats["leased_by_project"] == {"": 1, "auth": 2, "web": 1}
    assert stats["limits"]["per_project"] == {"auth": 2, "*": 1}

    limits(repo, "    max_per_project: 1\n    per_project:\n      auth: 3\n")
    ws = repo.workspace()
    for lease in ws.lock_list()["leases"]:
        ws.lock_release(lease["spec"], force=True)
    *taken, _ = claim_all(ws)
    assert sorted(taken) == sorted([sid(1, "auth"), sid(2, "auth"), sid(3, "auth"), sid(4, "web"), sid(6)])


def test_spec_timeout_caps_the_lease_and_refuses_renewal_past_it(repo):
    repo.write(sid(1))
    limits(repo, "    spec_timeout: 600\n")
    clock = FakeClock(time.time())
    ws = repo.workspace(clock=clock)
    claimed = ws.queue_claim(owner="w", ttl=3600)
    lease = ws.locks.get(sid(1))
    assert lease.expires_at - lease.acquired_at == pytest.approx(600)
    clock.advance(500)
    renewed = ws.lock_renew(sid(1), token=claimed["lease"]["token"], ttl=3600)
    assert ws.locks.get(sid(1)).expires_at == pytest.approx(lease.acquired_at + 600)
    assert renewed["token"] == claimed["lease"]["token"]
    clock.advance(101)  # the lease ran out with the spec's time: it is not renewed
    with pytest.raises(StaleToken):
        ws.lock_renew(sid(1), token=claimed["lease"]["token"])

    # a lease taken before the limit was lowered: refused once the new limit is used up
    repo.write(sid(2))
    limits(repo, "    spec_timeout: 3000\n")
    ws = repo.workspace(clock=clock)
    token = ws.lock_acquire(sid(2), owner="w", ttl=2000)["token"]
    limits(repo, "    spec_timeout: 300\n")
    ws = repo.workspace(clock=clock)
    clock.advance(400)
    with pytest.raises(SpecTimedOut, match=r"spec_timeout \(300 s\) is used up"):
        ws.lock_renew(sid(2), token=token)


@pytest.mark.parametrize("text, message", [
    ("    max_agents: 0\n", "scale.limits.max_agents must be at least 1"),
    ("    max_agents: lots\n", "scale.limits.max_agents must be a whole number"),
    ("    per_project: 3\n", "scale.limits.per_project must map projects to counts"),
    ("    per_project:\n      auth: -1\n", "scale.limits.per_project.auth must be at least 1"),
    ("    spec_timeout: soon\n", "scale.limits.spec_timeout must be a number of seconds"),
    ("    spec_timeout: 0\n", "scale.limits.spec_timeout must be a positive number"),
])
def test_a_bad_limit_is_one_clear_error(repo, text, message):
    repo.write(sid(1))
    limits(repo, text)
    with pytest.raises(InvalidValue, match=message):
        repo.workspace().queue_claim(owner="w")


def test_the_daemon_holds_claims_to_the_limits_and_queue_stats_shows_them(repo, daemon_factory):
    for n in range(1, 4):
        repo.write(sid(n))
    limits(repo, "    max_agents: 1\n    spec_timeout: 900\n")
    daemon_factory(repo.root, api=False, metrics=False)
    first = run_chant(["queue", "next", "--claim", "--owner", "a"], repo.root)
    assert first.code == 0, first
    second = run_chant(["queue", "next", "--claim", "--owner", "b"], repo.root)
    assert second.code == 5
    assert "No spec may be claimed now: scale.limits.max_agents (1) leases are live." in second.err
    stats = run_chant(["queue", "stats"], repo.root)
    assert "Limits:  max_agents 1, spec_timeout 900 s" in stats.out
    assert "Claims:  none now" in stats.out
    as_json = json.loads(run_chant(["queue", "stats", "--json"], repo.root).out)
    assert as_json["full"] and as_json["leased"] == 1
