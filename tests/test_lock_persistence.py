"""The daemon's lock table: memory, written through to .chant/.locks/ so a crash loses nothing."""

from __future__ import annotations

import os

import pytest

from chantlib.errors import LockHeld, StaleToken
from chantlib.locks import FileLockTable, MemoryLockTable
from chantlib.testing import check_lock_backend


def test_persistent_memory_table_passes_the_conformance_suite(tmp_path):
    counter = iter(range(1000))
    check_lock_backend(lambda clock: MemoryLockTable(persist_dir=str(tmp_path / f"t{next(counter)}"), clock=clock))


def test_a_restart_keeps_every_lease_and_its_token(tmp_path):
    first = MemoryLockTable(persist_dir=str(tmp_path), token_block=3)
    leases = [first.acquire(f"s{i}", f"owner{i}", 600) for i in range(5)]
    first.release("s1", owner="owner1")
    # no close, no shutdown: a killed daemon leaves only what it wrote through
    second = MemoryLockTable(persist_dir=str(tmp_path), token_block=3)
    assert {lease.spec: lease.token for lease in second.leases()} == {
        lease.spec: lease.token for lease in leases if lease.spec != "s1"
    }
    with pytest.raises(LockHeld):
        second.acquire("s0", "someone-else", 60)
    assert second.check("s2", leases[2].token).owner == "owner2"
    new = second.acquire("s9", "x", 60)
    assert new.token > max(lease.token for lease in leases)


def test_direct_mode_sees_the_daemons_leases_and_continues_its_tokens(tmp_path):
    daemon = MemoryLockTable(persist_dir=str(tmp_path), token_block=100)
    held = daemon.acquire("spec-a", "worker", 600)
    direct = FileLockTable(str(tmp_path))
    assert [lease.spec for lease in direct.leases()] == ["spec-a"]
    with pytest.raises(LockHeld):
        direct.acquire("spec-a", "other", 60)
    assert direct.acquire("spec-b", "other", 60).token > held.token
    with pytest.raises(StaleToken):
        direct.release("spec-a", token=held.token + 1)


def test_the_counter_is_written_once_per_block(tmp_path):
    table = MemoryLockTable(persist_dir=str(tmp_path), token_block=50)
    fence = tmp_path / ".fence"
    table.acquire("a", "o", 60)
    first = os.stat(fence).st_mtime_ns, fence.read_text()
    for i in range(20):
        table.acquire(f"b{i}", "o", 60)
    assert fence.read_text() == first[1] == "50\n"
