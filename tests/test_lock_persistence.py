"""The daemon's lock table: memory, journaled to .chant/.locks/ so a crash loses nothing."""

from __future__ import annotations

import os

import pytest

from chantlib.errors import Conflict, LockHeld, StaleToken
from chantlib.locks import FileLockTable, MemoryLockTable
from chantlib.testing import LOCK_CHECKS, check_lock_backend


def die(table: MemoryLockTable) -> None:
    """What kill -9 leaves: the journal as written, never compacted, its owner gone."""
    os.close(table._journal)
    table._journal = None


def test_persistent_memory_table_passes_the_conformance_suite(tmp_path):
    counter = iter(range(1000))
    tables = []

    def factory(clock):
        tables.append(MemoryLockTable(persist_dir=str(tmp_path / f"t{next(counter)}"), clock=clock))
        return tables[-1]

    try:
        assert check_lock_backend(factory) == list(LOCK_CHECKS)
    finally:
        for table in tables:
            table.close()


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
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".lock") and n[0] != ".") == ["s0.lock", "s2.lock", "s3.lock",
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
    # the first write after the owner died folded the journal in and removed it
    assert not os.path.exists(tmp_path / ".journal")


def test_a_torn_line_in_the_middle_costs_only_itself(tmp_path):
    first = MemoryLockTable(persist_dir=str(tmp_path))
    a = first.acquire("a", "o", 600)
    with open(tmp_path / ".journal", "ab") as fh:
        fh.write(b'{"put":{"spec":"x"\n')  # a line cut short, then more entries after it
    b = first.acquire("b", "o", 600)
    die(first)
    second = MemoryLockTable(persist_dir=str(tmp_path))
    assert sorted((lease.spec, lease.token) for lease in second.leases()) == [("a", a.token), ("b", b.token)]


def test_a_failed_compaction_forgets_nothing(tmp_path, monkeypatch):
    table = MemoryLockTable(persist_dir=str(tmp_path))
    for spec in ("a", "b", "c"):
        table.acquire(spec, "o", 600)
    real = table._files.put_file

    def put_file(lease):
        if lease.spec == "b":
            raise OSError(28, "No space left on device")
        real(lease)

    monkeypatch.setattr(table._files, "put_file", put_file)
    with pytest.raises(OSError):
        table.compact()
    assert os.path.getsize(tmp_path / ".journal") > 0  # not emptied: nothing is lost if we die now
    monkeypatch.setattr(table._files, "put_file", real)
    assert table.compact() == 2  # b and c, left from the failed one
    die(table)
    assert sorted(lease.spec for lease in FileLockTable(str(tmp_path)).leases()) == ["a", "b", "c"]
    assert not (tmp_path / ".journal").read_bytes()


def test_compaction_and_a_clean_close(tmp_path):
    table = MemoryLockTable(persist_dir=str(tmp_path))
    table.acquire("a", "o", 600)
    table.acquire("b", "o", 600)
    table.release("b", owner="o")
    assert os.path.getsize(tmp_path / ".journal") > 0
    assert table.compact() == 2
    assert os.path.getsize(tmp_path / ".journal") == 0
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".lock") and n[0] != ".") == ["a.lock"]
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
    owner = MemoryLockTable(persist_dir=str(tmp_path))
    try:
        with pytest.raises(Conflict):
            MemoryLockTable(persist_dir=str(tmp_path))
    finally:
        owner.close()
    MemoryLockTable(persist_dir=str(tmp_path)).close()  # once it let go, the next one may own it
