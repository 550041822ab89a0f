"""The daemon's lock table: memory, journaled to .chant/.locks/ so a crash loses nothing."""

from __future__ import annotations

import os

import pytest

from chantlib.errors import Conflict, LockHeld, StaleToken
from chantlib.locks import FileLockTable, MemoryLockTable
from chantlib.testing import check_lock_backend


def die(table: MemoryLockTable) -> None:
    """What kill -9 leaves: the journal as written, never compacted, its owner gone."""
    os.close(table._journal)
    table._journal = None


def test_persistent_memory_table_passes_the_conformance_suite(tmp_path):
    counter = iter(range(1000))
    check_lock_backend(lambda clock: MemoryLockTable(persist_dir=str(tmp_path / f"t{next(counter)}"), clock=clock))


def test_a_restart_keeps_every_lease_and_its_token(tmp_path):
    first = MemoryLockTable(persist_dir=str(tmp_path), token_block=3)
    leases = [first.acquire(f"s{i}", f"owner{i}", 600) for i in range(5)]
    first.release("s1", owner="owner1")
    die(first)
    second = MemoryLockTable(persist_dir=str(tmp_path), token_block=3)
    assert {lease.spec: lease.token for lease in second.leases()} == {
        lease.spec: lease.token for lease in leases if lease.spec != "s1"
    }
    with pytest.raises(LockHeld):
        second.acquire("s0", "someone-else", 60)
    assert second.check("s2", leases[2].token).owner == "owner2"
    new = second.acquire("s9", "x", 60)
    assert new.token > max(lease.token for lease in leases)
    # the restart folded the journal into lease files (s9 is in the new journal, for now)
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".lock")) == ["s0.lock", "s2.lock", "s3.lock",
                                                                              "s4.lock"]


def test_a_torn_last_journal_line_is_ignored(tmp_path):
    first = MemoryLockTable(persist_dir=str(tmp_path))
    kept = first.acquire("a", "o", 600)
    die(first)
    with open(tmp_path / ".journal", "ab") as fh:
        fh.write(b'{"put":{"spec":"b","own')  # killed in the middle of a write
    second = MemoryLockTable(persist_dir=str(tmp_path))
    assert [(lease.spec, lease.token) for lease in second.leases()] == [("a", kept.token)]


def test_direct_mode_reads_the_journal_and_writes_only_when_its_owner_is_gone(tmp_path):
    daemon = MemoryLockTable(persist_dir=str(tmp_path), token_block=100)
    held = daemon.acquire("spec-a", "worker", 600)
    direct = FileLockTable(str(tmp_path))
    assert [lease.spec for lease in direct.leases()] == ["spec-a"]  # not compacted yet: from the journal
    assert direct.get("spec-a").token == held.token
    with pytest.raises(Conflict):
        direct.acquire("spec-b", "other", 60)  # the daemon owns the folder
    die(daemon)
    with pytest.raises(LockHeld):
        direct.acquire("spec-a", "other", 60)
    assert direct.acquire("spec-b", "other", 60).token > held.token
    with pytest.raises(StaleToken):
        direct.release("spec-a", token=held.token + 1)
    assert direct.release("spec-a", token=held.token).spec == "spec-a"


def test_compaction_and_a_clean_close(tmp_path):
    table = MemoryLockTable(persist_dir=str(tmp_path))
    table.acquire("a", "o", 600)
    table.acquire("b", "o", 600)
    table.release("b", owner="o")
    assert os.path.getsize(tmp_path / ".journal") > 0
    assert table.compact() == 2
    assert os.path.getsize(tmp_path / ".journal") == 0
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".lock")) == ["a.lock"]
    table.acquire("c", "o", 600)
    table.close()
    assert not os.path.exists(tmp_path / ".journal")
    assert sorted(lease.spec for lease in FileLockTable(str(tmp_path)).leases()) == ["a", "c"]


def test_the_counter_is_written_once_per_block(tmp_path):
    table = MemoryLockTable(persist_dir=str(tmp_path), token_block=50)
    fence = tmp_path / ".fence"
    table.acquire("a", "o", 60)
    first = fence.read_text()
    for i in range(20):
        table.acquire(f"b{i}", "o", 60)
    assert fence.read_text() == first == "50\n"


def test_two_owners_are_refused(tmp_path):
    MemoryLockTable(persist_dir=str(tmp_path))
    with pytest.raises(Conflict):
        MemoryLockTable(persist_dir=str(tmp_path))
