"""Test helpers that ship with the library: a fake clock and the LockTable conformance suite.

Every :class:`~chantlib.locks.LockTable` backend (memory, file, and later PostgreSQL) must
pass :func:`check_lock_backend`. It runs the whole lease contract (ARCHITECTURE.md,
"Leases") as plain asserts, one small named check at a time, each on a fresh table, and
raises one :class:`AssertionError` listing every check that failed. It needs no test
framework::

    from chantlib.testing import check_lock_backend
    check_lock_backend(lambda clock: MyLockTable(..., clock=clock))

This module must stay free of test-framework imports and of anything slow: it is imported
by tests of other packages too.
"""

from __future__ import annotations

import itertools
import math

from .errors import ChantError, LockHeld, LockNotFound, NotHolder, StaleToken, UsageError

__all__ = ["FakeClock", "check_lock_backend", "LOCK_CHECKS"]


class FakeClock:
    """A clock for ``LockTable(clock=...)``: seconds since the epoch, moved only by :meth:`advance`."""

    def __init__(self, start: float = 1_769_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self.now += seconds
        return self.now

    def __repr__(self) -> str:
        return f"FakeClock({self.now!r})"


# helpers


def _raises(kind, fn, *args, **kwargs):
    """Call ``fn`` and return the ``kind`` error it raised; fail if it raised nothing or else."""
    try:
        result = fn(*args, **kwargs)
    except kind as exc:
        return exc
    except ChantError as exc:
        raise AssertionError(
            f"{_call(fn, args, kwargs)} raised {type(exc).__name__} ({exc.code}: {exc}), expected {kind.__name__}"
        ) from None
    raise AssertionError(f"{_call(fn, args, kwargs)} returned {result!r}, expected {kind.__name__}")


def _call(fn, args, kwargs) -> str:
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{getattr(fn, '__name__', fn)}({', '.join(shown)})"


def _same(got, want, what: str) -> None:
    assert got == want, f"{what}: got {got!r}, expected {want!r}"


def _live(table) -> list[tuple[str, str, int]]:
    return [(lease.spec, lease.owner, lease.token) for lease in table.leases()]


# the checks: each gets a fresh table and its clock


def check_acquire_gives_lease(table, clock) -> None:
    lease = table.acquire("s1", "alice", 30)
    _same(lease.spec, "s1", "lease.spec")
    _same(lease.owner, "alice", "lease.owner")
    assert isinstance(lease.token, int) and not isinstance(lease.token, bool), f"token {lease.token!r} is not an int"
    assert lease.token > 0, f"token {lease.token} is not positive"
    _same(lease.acquired_at, clock(), "lease.acquired_at")
    _same(lease.expires_at, clock() + 30, "lease.expires_at")
    _same(table.get("s1"), lease, "get() after acquire")
    wire = lease.to_dict()
    for key in ("spec", "owner", "token", "acquired_at", "expires_at"):
        assert key in wire, f"lease.to_dict() lacks {key!r}: {wire!r}"


def check_default_ttl(table, clock) -> None:
    lease = table.acquire("s1", "alice")
    _same(lease.expires_at, clock() + table.default_ttl, "expires_at with the default ttl")


def check_same_owner_is_idempotent(table, clock) -> None:
    first = table.acquire("s1", "alice", 30)
    clock.advance(5)
    again = table.acquire("s1", "alice", 300)
    _same(again, first, "a second acquire by the same owner")
    _same(again.token, first.token, "token of the second acquire")
    _same(again.expires_at, first.expires_at, "expires_at of the second acquire (unchanged)")
    _same(_live(table), [("s1", "alice", first.token)], "leases() after two acquires")


def check_other_owner_gets_lock_held(table, clock) -> None:
    lease = table.acquire("s1", "alice", 30)
    err = _raises(LockHeld, table.acquire, "s1", "bob", 30)
    _same(err.holder, "alice", "LockHeld.holder")
    _same(err.spec_id, "s1", "LockHeld.spec_id")
    _same(err.code, "already_locked", "LockHeld.code")
    assert "alice" in str(err), f"the message does not name the holder: {err}"
    _same(table.get("s1"), lease, "the lease after a refused acquire")


def check_not_reentrant_refuses_same_owner(table, clock) -> None:
    lease = table.acquire("s1", "worker", 30, reentrant=False)
    err = _raises(LockHeld, table.acquire, "s1", "worker", 30, reentrant=False)
    _same(err.holder, "worker", "LockHeld.holder")
    _same(err.spec_id, "s1", "LockHeld.spec_id")
    _same(table.get("s1"), lease, "the lease after a refused acquire")


def check_tokens_strictly_increase(table, clock) -> None:
    tokens = []
    tokens.append(table.acquire("s1", "alice", 30).token)
    tokens.append(table.acquire("s2", "alice", 30).token)
    tokens.append(table.acquire("s3", "bob", 30).token)
    table.release("s1", owner="alice")
    tokens.append(table.acquire("s1", "alice", 30).token)
    tokens.append(table.acquire("s2", "bob", 30, force=True).token)
    clock.advance(31)
    tokens.append(table.acquire("s3", "carol", 30).token)
    tokens.append(table.acquire("s4", "carol", 30).token)
    for before, after in itertools.pairwise(tokens):
        assert after > before, f"tokens do not strictly increase: {tokens}"


def check_force_takes_over(table, clock) -> None:
    old = table.acquire("s1", "alice", 30)
    new = table.acquire("s1", "bob", 30, force=True)
    _same(new.owner, "bob", "owner after a forced acquire")
    assert new.token > old.token, f"forced acquire gave token {new.token}, not above {old.token}"
    _same(table.get("s1"), new, "get() after a forced acquire")
    _raises(StaleToken, table.check, "s1", old.token)
    # forcing one's own lease issues a new token too
    newer = table.acquire("s1", "bob", 30, force=True)
    assert newer.token > new.token, f"forced re-acquire gave token {newer.token}, not above {new.token}"


def check_renew_extends(table, clock) -> None:
    lease = table.acquire("s1", "alice", 30)
    clock.advance(20)
    renewed = table.renew("s1", token=lease.token, ttl=60)
    _same(renewed.token, lease.token, "token after renew")
    _same(renewed.owner, "alice", "owner after renew")
    _same(renewed.expires_at, clock() + 60, "expires_at after renew by token")
    _same(table.get("s1"), renewed, "get() after renew")
    clock.advance(50)  # past the first expiry, inside the renewed one
    assert table.get("s1") is not None, "the renewed lease expired at its old time"
    again = table.renew("s1", owner="alice", ttl=10)
    _same(again.expires_at, clock() + 10, "expires_at after renew by owner")
    _same(again.token, lease.token, "token after a second renew")


def check_renew_by_other_owner_refused(table, clock) -> None:
    lease = table.acquire("s1", "alice", 30)
    _raises(NotHolder, table.renew, "s1", owner="bob", ttl=30)
    _same(table.get("s1"), lease, "the lease after a refused renew")


def check_stale_token_refused(table, clock) -> None:
    old = table.acquire("s1", "alice", 30)
    table.release("s1", token=old.token)
    new = table.acquire("s1", "alice", 30)
    assert new.token != old.token, "a new acquisition reused the old token"
    err = _raises(StaleToken, table.release, "s1", token=old.token)
    _same(err.code, "stale_token", "StaleToken.code")
    _raises(StaleToken, table.renew, "s1", token=old.token, ttl=30)
    _same(table.get("s1"), new, "the lease after stale release/renew")


def check_release_by_token_and_owner(table, clock) -> None:
    a = table.acquire("s1", "alice", 30)
    b = table.acquire("s2", "bob", 30)
    _same(table.release("s1", token=a.token), a, "release by token returns the lease")
    _same(table.release("s2", owner="bob"), b, "release by owner returns the lease")
    _same(table.get("s1"), None, "get() after release")
    _same(table.leases(), [], "leases() after releasing everything")
    after = table.acquire("s1", "carol", 30)
    assert after.token > b.token, "a released spec was not free to take with a bigger token"


def check_release_by_other_owner_refused(table, clock) -> None:
    lease = table.acquire("s1", "alice", 30)
    err = _raises(NotHolder, table.release, "s1", owner="bob")
    _same(err.code, "not_holder", "NotHolder.code")
    _same(table.get("s1"), lease, "the lease after a refused release")


def check_release_force(table, clock) -> None:
    lease = table.acquire("s1", "alice", 30)
    _same(table.release("s1", force=True), lease, "forced release returns the lease")
    _same(table.get("s1"), None, "get() after a forced release")
    _raises(StaleToken, table.check, "s1", lease.token)


def check_release_needs_something(table, clock) -> None:
    lease = table.acquire("s1", "alice", 30)
    _raises(UsageError, table.release, "s1")
    _same(table.get("s1"), lease, "the lease after a release with neither token, owner nor force")


def check_release_unlocked(table, clock) -> None:
    err = _raises(LockNotFound, table.release, "nothing", owner="alice")
    _same(err.code, "not_locked", "LockNotFound.code")
    _raises(LockNotFound, table.release, "nothing", force=True)
    _raises(LockNotFound, table.renew, "nothing", owner="alice", ttl=30)


def check_expiry_frees(table, clock) -> None:
    old = table.acquire("s1", "alice", 10)
    clock.advance(9.5)
    _raises(LockHeld, table.acquire, "s1", "bob", 10)
    clock.advance(0.5)  # now == expires_at: expired
    _same(table.get("s1"), None, "get() at expires_at")
    before = table.statistics()["expired"]
    new = table.acquire("s1", "bob", 10)
    _same(new.owner, "bob", "owner after taking an expired lease")
    assert new.token > old.token, f"token {new.token} after expiry is not above {old.token}"
    _same(table.statistics()["expired"], before + 1, "statistics()['expired'] after reclaiming")
    _raises(StaleToken, table.release, "s1", token=old.token)


def check_same_owner_after_expiry_gets_new_lease(table, clock) -> None:
    old = table.acquire("s1", "alice", 10)
    clock.advance(10)
    new = table.acquire("s1", "alice", 10)
    assert new.token > old.token, "re-acquiring one's own expired lease did not issue a new token"
    _same(new.expires_at, clock() + 10, "expires_at of the new lease")


def check_renew_expired_is_stale(table, clock) -> None:
    lease = table.acquire("s1", "alice", 10)
    clock.advance(11)
    _raises(StaleToken, table.renew, "s1", token=lease.token, ttl=10)
    _raises(StaleToken, table.renew, "s1", owner="alice", ttl=10)
    _same(table.get("s1"), None, "get() after renewing an expired lease")


def check_release_expired_is_stale(table, clock) -> None:
    lease = table.acquire("s1", "alice", 10)
    clock.advance(11)
    _raises(StaleToken, table.release, "s1", token=lease.token)
    _raises(StaleToken, table.release, "s1", owner="alice")
    _same(table.get("s1"), None, "get() after releasing an expired lease")
    _same(table.release("s1", force=True), lease, "a forced release of an expired lease")


def check_check_fences(table, clock) -> None:
    lease = table.acquire("s1", "alice", 10)
    _same(table.check("s1", lease.token), lease, "check() with the live token")
    _raises(StaleToken, table.check, "s1", lease.token + 1)
    _raises(StaleToken, table.check, "other", lease.token)
    clock.advance(10)
    _raises(StaleToken, table.check, "s1", lease.token)


def check_leases_and_get_show_live_only(table, clock) -> None:
    short = table.acquire("b", "alice", 10)
    long = table.acquire("a", "bob", 100)
    _same(_live(table), [("a", "bob", long.token), ("b", "alice", short.token)], "leases(), by spec")
    clock.advance(50)
    _same(_live(table), [("a", "bob", long.token)], "leases() after one expired")
    _same(table.get("b"), None, "get() of an expired lease")
    _same(table.get("a"), long, "get() of a live lease")
    _same(table.get("never"), None, "get() of a spec never locked")
    _same(table.held_specs(), {"a"}, "held_specs()")
    _same(table.statistics()["active"], 1, "statistics()['active']")


def check_sweep(table, clock) -> None:
    table.acquire("a", "alice", 10)
    table.acquire("b", "alice", 10)
    keep = table.acquire("c", "bob", 100)
    clock.advance(20)
    before = table.statistics()["expired"]
    gone = table.sweep()
    _same(sorted(lease.spec for lease in gone), ["a", "b"], "specs sweep() removed")
    _same(table.statistics()["expired"], before + 2, "statistics()['expired'] after sweep")
    _raises(LockNotFound, table.release, "a", owner="alice")
    _same(_live(table), [("c", "bob", keep.token)], "leases() after sweep")
    _same(table.sweep(), [], "a second sweep")


def check_bad_ttl(table, clock) -> None:
    for ttl in (0, -5, "abc", math.inf, math.nan, [1]):
        _raises(UsageError, table.acquire, "s1", "alice", ttl)
    _same(table.leases(), [], "leases() after refused acquires")
    lease = table.acquire("s1", "alice", 30)
    for ttl in (0, -5, "abc", math.inf):
        _raises(UsageError, table.renew, "s1", token=lease.token, ttl=ttl)
    _same(table.get("s1"), lease, "the lease after refused renews")


def check_empty_owner(table, clock) -> None:
    for owner in ("", None):
        _raises(UsageError, table.acquire, "s1", owner, 30)
    _same(table.leases(), [], "leases() after refused acquires")


def check_statistics(table, clock) -> None:
    stats = table.statistics()
    for key in ("acquired", "conflicts", "released", "expired", "renewed", "active"):
        assert key in stats, f"statistics() lacks {key!r}: {stats!r}"
    base = dict(stats)
    lease = table.acquire("s1", "alice", 30)
    _raises(LockHeld, table.acquire, "s1", "bob", 30)
    table.renew("s1", token=lease.token, ttl=30)
    stats = table.statistics()
    _same(stats["active"], 1, "statistics()['active'] with one lease")
    table.release("s1", token=lease.token)
    stats = table.statistics()
    for key, grew in (("acquired", 1), ("conflicts", 1), ("renewed", 1), ("released", 1), ("expired", 0)):
        _same(stats[key] - base[key], grew, f"statistics()[{key!r}] change")
    _same(stats["active"], 0, "statistics()['active'] after release")


# name -> check, in the order they are defined above
LOCK_CHECKS = {name[len("check_"):]: fn for name, fn in list(globals().items()) if name.startswith("check_")}


def check_lock_backend(factory, *, only=None) -> list[str]:
    """Run the lease contract against tables made by ``factory(clock)``.

    ``factory`` must return a fresh, empty :class:`~chantlib.locks.LockTable` on each call,
    using ``clock`` (a :class:`FakeClock`). ``only``: names from :data:`LOCK_CHECKS` to run
    (default all). Returns the names of the checks run; raises :class:`AssertionError`
    naming every check that failed.
    """
    names = list(LOCK_CHECKS) if only is None else list(only)
    unknown = [n for n in names if n not in LOCK_CHECKS]
    if unknown:
        raise ValueError(f"unknown lock checks: {', '.join(unknown)}")
    failures = []
    for name in names:
        clock = FakeClock()
        try:
            table = factory(clock)
            LOCK_CHECKS[name](table, clock)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - every failure is reported, with its check
            failures.append(f"{name}: unexpected {type(exc).__name__}: {exc}")
    if failures:
        raise AssertionError(f"{len(failures)} of {len(names)} lock checks failed:\n  " + "\n  ".join(failures))
    return names
