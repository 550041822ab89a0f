"""Leases: the conformance suite on every backend, a state machine, the file backend's
specifics (restarts, upstream PID files, garbage) and races between real processes."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chantlib.errors import LockHeld, LockNotFound, NotHolder, StaleToken, UsageError
from chantlib.locks import _UNREADABLE_GRACE, FileLockTable, Lease, LockTable, MemoryLockTable
from chantlib.testing import LOCK_CHECKS, FakeClock, check_lock_backend

from .support import run_racers

# the conformance suite, on every backend


def _memory_factory(tmp_path):
    return lambda clock: MemoryLockTable(clock=clock)


def _file_factory(tmp_path):
    counter = itertools.count()
    return lambda clock: FileLockTable(str(tmp_path / f"locks-{next(counter)}"), clock=clock)


BACKENDS = {"memory": _memory_factory, "file": _file_factory}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_conformance(backend, tmp_path):
    ran = check_lock_backend(BACKENDS[backend](tmp_path))
    assert ran == list(LOCK_CHECKS)


def test_conformance_catches_a_broken_backend():
    class Forgetful(MemoryLockTable):
        """Hands out a new lease on every acquire: not idempotent, never LockHeld."""

        def acquire(self, spec, owner, ttl=None, **kwargs):
            kwargs["force"] = True
            return super().acquire(spec, owner, ttl, **kwargs)

    with pytest.raises(AssertionError) as info:
        check_lock_backend(lambda clock: Forgetful(clock=clock))
    message = str(info.value)
    assert "same_owner_is_idempotent:" in message
    assert "other_owner_gets_lock_held:" in message
    assert "acquire_gives_lease:" not in message


def test_conformance_only_and_unknown_names():
    assert check_lock_backend(lambda clock: MemoryLockTable(clock=clock), only=["sweep"]) == ["sweep"]
    with pytest.raises(ValueError, match="no_such_check"):
        check_lock_backend(lambda clock: MemoryLockTable(clock=clock), only=["no_such_check"])


def test_fake_clock():
    clock = FakeClock(100.0)
    assert clock() == 100.0
    assert clock.advance(2.5) == 102.5 == clock()
    with pytest.raises(ValueError):
        clock.advance(-1)


# the state machine: one model of the stored leases, checked after every step

SPECS = ("s1", "s2", "s3")
OWNERS = ("alice", "bob", "carol")
TTLS = (1.0, 2.5, 10.0)
STEPS = (0.5, 1.0, 2.5, 10.0)


class LockMachine(RuleBasedStateMachine):
    """Rules act on the table and on a model (spec -> stored lease, live or expired)."""

    make_table = None  # set by the subclasses: (clock) -> (table, folder or None)

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.table, self.folder = type(self).make_table(self.clock)
        self.model: dict[str, Lease] = {}
        self.issued: dict[str, list[int]] = {spec: [] for spec in SPECS}
        self.max_token = 0
        self.expired = 0

    def teardown(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    # the model

    def live(self, spec: str) -> Lease | None:
        lease = self.model.get(spec)
        return lease if lease is not None and self.clock() < lease.expires_at else None

    def issued_token(self, spec: str, back: int) -> int:
        tokens = self.issued[spec]
        return tokens[-1 - min(back, len(tokens) - 1)] if tokens else 10_000 + back

    def took(self, lease: Lease, spec: str, owner: str, ttl: float) -> None:
        assert lease.token > self.max_token, f"token {lease.token} is not above every earlier token ({self.max_token})"
        assert (lease.spec, lease.owner) == (spec, owner)
        assert lease.acquired_at == self.clock()
        assert lease.expires_at == self.clock() + ttl
        previous = self.model.get(spec)
        if previous is not None and self.live(spec) is None:
            self.expired += 1  # reclaiming an expired lease counts
        self.max_token = lease.token
        self.model[spec] = lease
        self.issued[spec].append(lease.token)

    # rules

    @rule(spec=st.sampled_from(SPECS), owner=st.sampled_from(OWNERS), ttl=st.sampled_from(TTLS), reentrant=st.booleans())
    def acquire(self, spec, owner, ttl, reentrant):
        live = self.live(spec)
        if live is not None and (live.owner != owner or not reentrant):
            with pytest.raises(LockHeld) as info:
                self.table.acquire(spec, owner, ttl, reentrant=reentrant)
            assert (info.value.holder, info.value.spec_id) == (live.owner, spec)
            return
        lease = self.table.acquire(spec, owner, ttl, reentrant=reentrant)
        if live is not None:
            assert lease == live, "a same-owner acquire changed the lease"
            return
        self.took(lease, spec, owner, ttl)

    @rule(spec=st.sampled_from(SPECS), owner=st.sampled_from(OWNERS), ttl=st.sampled_from(TTLS))
    def acquire_force(self, spec, owner, ttl):
        lease = self.table.acquire(spec, owner, ttl, force=True)
        self.took(lease, spec, owner, ttl)

    def _expect_release(self, spec, **how):
        stored = self.model.get(spec)
        if stored is None:
            with pytest.raises(LockNotFound):
                self.table.release(spec, **how)
            return
        if how.get("token") is not None and how["token"] != stored.token:
            with pytest.raises(StaleToken):
                self.table.release(spec, **how)
            return
        if how.get("owner") is not None and how["owner"] != stored.owner:
            with pytest.raises(NotHolder):
                self.table.release(spec, **how)
            return
        if not how.get("force") and self.live(spec) is None:  # expired: not held, so not released
            with pytest.raises(StaleToken):
                self.table.release(spec, **how)
            return
        released = self.table.release(spec, **how)
        assert released == stored
        if self.live(spec) is None:
            self.expired += 1
        del self.model[spec]

    @rule(spec=st.sampled_from(SPECS), back=st.integers(0, 3))
    def release_by_token(self, spec, back):
        self._expect_release(spec, token=self.issued_token(spec, back))

    @rule(spec=st.sampled_from(SPECS), owner=st.sampled_from(OWNERS))
    def release_by_owner(self, spec, owner):
        self._expect_release(spec, owner=owner)

    @rule(spec=st.sampled_from(SPECS))
    def release_force(self, spec):
        self._expect_release(spec, force=True)

    @rule(spec=st.sampled_from(SPECS), back=st.integers(0, 3), owner=st.sampled_from((None, *OWNERS)),
          ttl=st.sampled_from(TTLS))
    def renew(self, spec, back, owner, ttl):
        how = {"owner": owner} if owner is not None else {"token": self.issued_token(spec, back)}
        stored = self.model.get(spec)
        if stored is None:
            with pytest.raises(LockNotFound):
                self.table.renew(spec, ttl=ttl, **how)
        elif "token" in how and how["token"] != stored.token:
            with pytest.raises(StaleToken):
                self.table.renew(spec, ttl=ttl, **how)
        elif "owner" in how and how["owner"] != stored.owner:
            with pytest.raises(NotHolder):
                self.table.renew(spec, ttl=ttl, **how)
        elif self.live(spec) is None:
            with pytest.raises(StaleToken):
                self.table.renew(spec, ttl=ttl, **how)
        else:
            renewed = self.table.renew(spec, ttl=ttl, **how)
            assert renewed == stored.replace(expires_at=self.clock() + ttl)
            self.model[spec] = renewed

    @rule(spec=st.sampled_from(SPECS), back=st.integers(0, 3))
    def check(self, spec, back):
        token = self.issued_token(spec, back)
        live = self.live(spec)
        if live is not None and live.token == token:
            assert self.table.check(spec, token) == live
        else:
            with pytest.raises(StaleToken):
                self.table.check(spec, token)

    @rule(seconds=st.sampled_from(STEPS))
    def advance(self, seconds):
        self.clock.advance(seconds)

    @rule()
    def sweep(self):
        expected = sorted(spec for spec in self.model if self.live(spec) is None)
        gone = self.table.sweep()
        assert sorted(lease.spec for lease in gone) == expected
        for spec in expected:
            del self.model[spec]
        self.expired += len(expected)

    # invariants

    @invariant()
    def leases_match_the_model(self):
        got = self.table.leases()
        specs = [lease.spec for lease in got]
        assert len(specs) == len(set(specs)), f"two live holders for one spec: {got}"
        want = [self.live(spec) for spec in sorted(self.model) if self.live(spec) is not None]
        assert got == want
        for spec in SPECS:
            assert self.table.get(spec) == self.live(spec)

    @invariant()
    def expirations_are_counted(self):
        assert self.table.statistics()["expired"] == self.expired

    @invariant()
    def no_temp_files(self):
        if self.folder is not None and os.path.isdir(self.folder):
            assert [n for n in os.listdir(self.folder) if n.endswith(".tmp")] == []


def _memory_table(clock):
    return MemoryLockTable(clock=clock), None


def _file_table(clock):
    folder = tempfile.mkdtemp(prefix="chant-locks-")
    return FileLockTable(os.path.join(folder, ".locks"), clock=clock), folder


MACHINE_SETTINGS = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class MemoryLockMachine(LockMachine):
    make_table = staticmethod(_memory_table)


class FileLockMachine(LockMachine):
    make_table = staticmethod(_file_table)


TestMemoryLockMachine = MemoryLockMachine.TestCase
TestMemoryLockMachine.settings = MACHINE_SETTINGS
TestFileLockMachine = FileLockMachine.TestCase
TestFileLockMachine.settings = MACHINE_SETTINGS


class RestartingFileLockMachine(FileLockMachine):
    """The file backend again, with a new table object ("a restart") as an extra rule."""

    @rule()
    def restart(self):
        self.table = FileLockTable(self.table.path, clock=self.clock)
        self.expired = 0  # statistics() counts since the table object was made


TestRestartingFileLockMachine = RestartingFileLockMachine.TestCase
TestRestartingFileLockMachine.settings = settings(MACHINE_SETTINGS, max_examples=30)


# the file backend


@pytest.fixture
def clock():
    return FakeClock(time.time())


@pytest.fixture
def folder(tmp_path):
    return str(tmp_path / ".chant" / ".locks")


def _lock_file(folder, spec):
    return os.path.join(folder, f"{spec}.lock")


def test_tokens_keep_growing_across_restarts(folder, clock):
    first = FileLockTable(folder, clock=clock)
    tokens = [first.acquire(f"s{i}", "alice", 60).token for i in range(3)]
    first.release("s2", owner="alice")
    second = FileLockTable(folder, clock=clock)
    tokens.append(second.acquire("s2", "alice", 60).token)
    for spec in ("s0", "s1", "s2"):
        second.release(spec, force=True)
    third = FileLockTable(folder, clock=clock)  # no lease files left: the counter alone remembers
    tokens.append(third.acquire("s0", "bob", 60).token)
    assert tokens == [1, 2, 3, 4, 5]
    assert third.last_token == 5
    # and a restarted table still honours the leases of the old one
    assert third.get("s0").owner == "bob"
    with pytest.raises(LockHeld):
        FileLockTable(folder, clock=clock).acquire("s0", "alice", 60)


def test_lost_fence_never_reuses_a_token_on_disk(folder, clock):
    table = FileLockTable(folder, clock=clock)
    for i in range(5):
        table.acquire(f"s{i}", "alice", 60)
    table.release("s0", owner="alice")
    os.unlink(os.path.join(folder, ".fence"))
    again = FileLockTable(folder, clock=clock)
    assert again.acquire("s9", "bob", 60).token == 6
    with open(os.path.join(folder, ".fence"), "w") as fh:
        fh.write("garbage\n")
    assert again.acquire("s8", "bob", 60).token == 7
    # the lease with the highest token is replaced: its token still counts
    os.unlink(os.path.join(folder, ".fence"))
    assert again.acquire("s8", "carol", 60, force=True).token == 8
    for spec in ("s1", "s2", "s3", "s4", "s9"):
        again.release(spec, force=True)
    os.unlink(os.path.join(folder, ".fence"))
    clock.advance(60)  # s8 (token 8) expired, still on disk
    assert again.acquire("s8", "alice", 60).token == 9


def test_lock_files_are_json_written_atomically(folder, clock):
    table = FileLockTable(folder, clock=clock)
    lease = table.acquire("2026-01-24-001-abc", "alice", 60, pid=os.getpid())
    with pytest.raises(LockHeld):
        table.acquire("2026-01-24-001-abc", "bob", 60)
    table.renew("2026-01-24-001-abc", token=lease.token, ttl=120)
    table.acquire("2026-01-24-002-def", "bob", 60)
    table.release("2026-01-24-002-def", owner="bob")
    with open(_lock_file(folder, "2026-01-24-001-abc"), encoding="utf-8") as fh:
        data = json.load(fh)
    assert data == {
        "spec": "2026-01-24-001-abc",
        "owner": "alice",
        "token": lease.token,
        "acquired_at": clock(),
        "expires_at": clock() + 120,
        "host": lease.host,
        "pid": os.getpid(),
    }
    names = sorted(os.listdir(folder))
    assert [n for n in names if n.endswith(".tmp")] == []
    assert "2026-01-24-002-def.lock" not in names


def test_spec_ids_that_are_not_file_names_are_refused(folder, clock):
    table = FileLockTable(folder, clock=clock)
    for bad in ("", "../escape", "a/b", ".fence", ".table"):
        with pytest.raises(UsageError):
            table.acquire(bad, "alice", 60)


@pytest.fixture
def child():
    """A live child process; killed (and reaped) at the end whatever happens."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _kill(proc):
    proc.kill()
    proc.wait(timeout=10)  # reaped: a zombie would still answer kill(pid, 0)


def test_upstream_pid_file_is_held_while_the_pid_lives(folder, clock, child):
    os.makedirs(folder)
    with open(_lock_file(folder, "2026-01-24-001-abc"), "w") as fh:
        fh.write(f"{child.pid}\n")
    table = FileLockTable(folder, clock=clock)
    with pytest.raises(LockHeld) as info:
        table.acquire("2026-01-24-001-abc", "alice", 60)
    assert str(child.pid) in info.value.holder
    held = table.get("2026-01-24-001-abc")
    assert held is not None and held.pid == child.pid and held.expires_at is None
    assert [lease.spec for lease in table.leases()] == ["2026-01-24-001-abc"]
    clock.advance(10 * 86400)  # a bare PID does not expire with time
    assert table.get("2026-01-24-001-abc") is not None

    _kill(child)
    assert table.get("2026-01-24-001-abc") is None
    lease = table.acquire("2026-01-24-001-abc", "alice", 60)
    assert lease.owner == "alice" and lease.token >= 1
    assert table.statistics()["expired"] == 1
    with open(_lock_file(folder, "2026-01-24-001-abc"), encoding="utf-8") as fh:
        assert json.load(fh)["owner"] == "alice"  # our format replaced upstream's


def test_dead_upstream_pid_file_is_swept(folder, clock, child):
    os.makedirs(folder)
    with open(_lock_file(folder, "x"), "w") as fh:
        fh.write(str(child.pid))
    table = FileLockTable(folder, clock=clock)
    assert table.sweep() == []
    _kill(child)
    assert [lease.spec for lease in table.sweep()] == ["x"]
    assert not os.path.exists(_lock_file(folder, "x"))


def test_lease_bound_to_a_pid_ends_with_that_process(folder, clock, child):
    table = FileLockTable(folder, clock=clock)
    lease = table.acquire("s1", "worker", 3600, pid=child.pid)
    assert lease.pid == child.pid and lease.host is not None
    assert lease.to_dict()["pid"] == child.pid
    with pytest.raises(LockHeld):
        table.acquire("s1", "other", 60)
    _kill(child)
    assert table.get("s1") is None
    with pytest.raises(StaleToken):
        table.check("s1", lease.token)
    taken = table.acquire("s1", "other", 60)
    assert taken.token > lease.token
    assert table.statistics()["expired"] == 1


def test_lease_bound_to_a_pid_on_another_host_lives_by_its_ttl(folder, clock, child):
    table = FileLockTable(folder, clock=clock)
    table.acquire("s1", "worker", 60, pid=child.pid)
    path = _lock_file(folder, "s1")
    with open(path, encoding="utf-8") as fh:
        record = json.load(fh)
    record["host"] = "some-other-host"
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(record, fh)
    _kill(child)
    assert table.get("s1") is not None  # a PID of another host says nothing here
    clock.advance(60)
    assert table.get("s1") is None


GARBAGE = [
    b"",
    b"{not json",
    b"\x00\xff\xfe",
    b'{"spec": "s1"}',
    b"[1, 2]",
    b"null",
    "\u00b2\u00b3".encode(),  # digits to str.isdigit(), not to int()
    b"9" * 5000,  # more digits than int() takes
    b'{"spec": "s1", "owner": "o", "token": 1e999, "acquired_at": 0, "expires_at": 0}',
]


@pytest.mark.parametrize("content", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_lock_file_is_honoured_briefly(folder, clock, content):
    os.makedirs(folder)
    path = _lock_file(folder, "s1")
    with open(path, "wb") as fh:
        fh.write(content)
    os.utime(path, (clock(), clock()))
    table = FileLockTable(folder, clock=clock)
    with pytest.raises(LockHeld) as info:
        table.acquire("s1", "alice", 60)
    assert "unreadable" in info.value.holder
    assert [lease.spec for lease in table.leases()] == ["s1"]
    clock.advance(_UNREADABLE_GRACE - 1)
    with pytest.raises(LockHeld):
        table.acquire("s1", "alice", 60)
    clock.advance(1)
    lease = table.acquire("s1", "alice", 60)
    assert lease.owner == "alice"
    assert table.statistics()["expired"] == 1


@pytest.mark.parametrize("pid", ["99999999999", "4294967296", "0"])
def test_pid_file_with_an_impossible_pid_is_free(folder, clock, pid):
    os.makedirs(folder)
    with open(_lock_file(folder, "s1"), "w") as fh:
        fh.write(pid)
    table = FileLockTable(folder, clock=clock)
    assert table.get("s1") is None
    assert table.acquire("s1", "alice", 60).owner == "alice"


def test_lease_file_with_a_nan_expiry_is_free(folder, clock):
    os.makedirs(folder)
    with open(_lock_file(folder, "s1"), "w") as fh:
        fh.write('{"spec": "s1", "owner": "o", "token": 3, "acquired_at": 0, "expires_at": NaN}')
    table = FileLockTable(folder, clock=clock)
    assert table.get("s1") is None
    assert table.acquire("s1", "alice", 60).token == 4  # no counter yet: above the token on disk


def test_lease_file_under_another_name_speaks_for_its_own_file(folder, clock):
    """A lease file copied or renamed (say, with its spec) must never act on the original."""
    table = FileLockTable(folder, clock=clock)
    table.acquire("a", "alice", 10)
    shutil.copy(_lock_file(folder, "a"), _lock_file(folder, "b"))
    assert sorted((lease.spec, lease.owner) for lease in table.leases()) == [("a", "alice"), ("b", "alice")]
    table.renew("a", owner="alice", ttl=1000)
    clock.advance(20)
    assert [lease.spec for lease in table.sweep()] == ["b"]
    assert os.path.exists(_lock_file(folder, "a"))
    assert not os.path.exists(_lock_file(folder, "b"))
    assert [lease.spec for lease in table.leases()] == ["a"]


def test_lock_table_constructors(folder):
    assert isinstance(LockTable.file(folder), FileLockTable)
    memory = LockTable.memory(start_token=41, default_ttl=5)
    assert isinstance(memory, MemoryLockTable)
    lease = memory.acquire("s1", "alice")
    assert lease.token == 42
    assert lease.expires_at - lease.acquired_at == 5


def test_memory_snapshot_and_restore_keep_tokens_growing():
    clock = FakeClock()
    table = MemoryLockTable(clock=clock)
    first = table.acquire("s1", "alice", 60)
    table.acquire("s2", "bob", 60)
    table.release("s2", owner="bob")
    snap = json.loads(json.dumps(table.snapshot()))
    again = MemoryLockTable(clock=clock)
    again.restore(snap)
    assert again.get("s1") == first
    assert again.acquire("s3", "carol", 60).token == 3
    with pytest.raises(LockHeld):
        again.acquire("s1", "bob", 60)


# races

N_SPECS = 200
N_WORKERS = 8

RACER = textwrap.dedent(
    """
    import json, sys
    from chantlib.errors import LockHeld
    from chantlib.locks import FileLockTable

    folder, owner, reentrant, go, n = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], int(sys.argv[5])
    table = FileLockTable(folder)
    wait_for_go(go)
    won = {}
    for i in range(n):
        spec = f"spec-{i:03d}"
        try:
            won[spec] = table.acquire(spec, owner, 600, reentrant=reentrant).token
        except LockHeld:
            pass
    print(json.dumps(won))
    """
)


def _race(tmp_path, owners, *, reentrant: bool) -> dict[str, list[tuple[str, int]]]:
    """Start one racer per owner; return spec -> [(worker, token), ...] over all the wins."""
    folder, go = str(tmp_path / "locks"), str(tmp_path / "go")
    argvs = [[folder, owner, "1" if reentrant else "0", go, str(N_SPECS)] for owner in owners]
    wins: dict[str, list[tuple[str, int]]] = {}
    for index, won in enumerate(run_racers(RACER, argvs, go)):
        for spec, token in won.items():
            wins.setdefault(spec, []).append((f"racer {index}", token))
    return wins


def _assert_each_won_once(wins):
    twice = {spec: who for spec, who in wins.items() if len(who) != 1}
    assert twice == {}, f"specs won more than once: {twice}"
    assert sorted(wins) == [f"spec-{i:03d}" for i in range(N_SPECS)]
    tokens = sorted(token for who in wins.values() for _, token in who)
    assert tokens == list(range(1, N_SPECS + 1))


def test_processes_racing_with_distinct_owners(tmp_path):
    wins = _race(tmp_path, [f"worker-{i}@host" for i in range(N_WORKERS)], reentrant=True)
    _assert_each_won_once(wins)
    table = FileLockTable(str(tmp_path / "locks"))
    assert len(table.leases()) == N_SPECS
    assert table.last_token == N_SPECS


def test_processes_racing_with_one_owner_not_reentrant(tmp_path):
    _assert_each_won_once(_race(tmp_path, ["shared@host"] * N_WORKERS, reentrant=False))


@pytest.mark.parametrize("backend", ["memory", "file"])
def test_threads_racing_on_one_table(backend, tmp_path):
    table = MemoryLockTable() if backend == "memory" else FileLockTable(str(tmp_path / "locks"))
    wins: list[tuple[str, int]] = []
    start = threading.Barrier(N_WORKERS)
    errors = []

    def racer():
        try:
            start.wait(timeout=10)
            for i in range(N_SPECS):
                try:
                    lease = table.acquire(f"spec-{i:03d}", "shared", 600, reentrant=False)
                except LockHeld:
                    continue
                wins.append((lease.spec, lease.token))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(N_WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert sorted(spec for spec, _ in wins) == [f"spec-{i:03d}" for i in range(N_SPECS)]
    assert sorted(token for _, token in wins) == list(range(1, N_SPECS + 1))
