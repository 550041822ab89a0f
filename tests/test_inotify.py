"""chantd.inotify on real folders, in process: what it reports, how it batches, that it
costs nothing while idle; then the daemon's watcher on it (its fallbacks) and a real daemon."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import selectors
import shutil
import sys
import threading
import time

import pytest

from chantd import inotify
from chantd.inotify import HEADER, IN_CREATE, IN_Q_OVERFLOW, Change, Inotify, RootGone, parse_events

pytestmark = pytest.mark.skipif(not inotify.available(), reason="inotify is Linux only")


def write(path, text: str = "x\n") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


class Run:
    """Iterates ``watch.batches()`` in a task; the batches are kept, paths made relative to ``top``."""

    def __init__(self, watch: Inotify, top) -> None:
        self.watch, self.top = watch, str(top)
        self.stop = asyncio.Event()
        self.batches: list[set[tuple[str, str]]] = []
        self.error: BaseException | None = None
        self.task: asyncio.Task | None = None

    async def _drain(self) -> None:
        try:
            async for batch in self.watch.batches(self.stop):
                self.batches.append({(change.name, os.path.relpath(path, self.top)) for change, path in batch})
        except OSError as exc:
            self.error = exc

    async def __aenter__(self) -> Run:
        self.task = asyncio.create_task(self._drain())
        await asyncio.sleep(0)  # the reader is added
        return self

    async def __aexit__(self, *exc) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 2.0)  # ends at once, or this fails
        self.watch.close()

    @property
    def seen(self) -> set[tuple[str, str]]:
        return set().union(*self.batches) if self.batches else set()

    async def until(self, *wanted: tuple[str, str], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not set(wanted) <= self.seen:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"{set(wanted) - self.seen} not seen; saw {self.batches}"
            await asyncio.sleep(0.01)

    async def quiet(self, seconds: float = 0.3) -> None:
        """Nothing more arrives for ``seconds``."""
        before = len(self.batches)
        await asyncio.sleep(seconds)
        assert self.batches[before:] == []


def test_files_created_written_renamed_deleted(tmp_path):
    async def go():
        async with Run(Inotify([tmp_path], step_ms=5), tmp_path) as run:
            write(tmp_path / "a.md")
            await run.until(("added", "a.md"), ("modified", "a.md"))
            run.batches.clear()
            with open(tmp_path / "a.md", "a", encoding="utf-8") as fh:
                fh.write("more\n")
            await run.until(("modified", "a.md"))
            assert run.seen == {("modified", "a.md")}
            run.batches.clear()
            os.rename(tmp_path / "a.md", tmp_path / "b.md")  # a rename: a delete and an add
            await run.until(("deleted", "a.md"), ("added", "b.md"))
            run.batches.clear()
            os.unlink(tmp_path / "b.md")
            await run.until(("deleted", "b.md"))
            assert run.seen == {("deleted", "b.md")}

    asyncio.run(go())


def test_a_nested_folder_made_at_once_is_reported_and_then_watched(tmp_path):
    async def go():
        watch = Inotify([tmp_path], step_ms=5)
        async with Run(watch, tmp_path) as run:
            # made before the loop can read a thing: a/ and a/b/ are not watched yet when x.md is written
            os.makedirs(tmp_path / "a" / "b")
            write(tmp_path / "a" / "b" / "x.md")
            await run.until(("added", "a"))  # the news: look below a/
            assert watch.watches == 3  # the root, a/ and a/b/
            run.batches.clear()
            write(tmp_path / "a" / "b" / "y.md")
            await run.until(("added", "a/b/y.md"))
            write(tmp_path / "a" / "b" / "x.md", "again\n")
            await run.until(("modified", "a/b/x.md"))

    asyncio.run(go())


def test_a_folder_moved_out_is_forgotten_and_one_moved_in_is_watched(tmp_path):
    root, away = tmp_path / "root", tmp_path / "away"
    write(root / "d" / "e" / "f.md")
    away.mkdir()

    async def go():
        watch = Inotify([root], step_ms=5)
        assert watch.watches == 3
        async with Run(watch, root) as run:
            os.rename(root / "d", away / "d")
            await run.until(("deleted", "d"))
            assert watch.watches == 1
            run.batches.clear()
            write(away / "d" / "e" / "f.md", "changed\n")  # below the folder that left: not ours
            write(away / "d" / "g.md")
            os.makedirs(away / "d" / "e" / "new")
            await run.quiet()
            os.rename(away / "d", root / "d2")  # back in, under another name
            await run.until(("added", "d2"))
            assert watch.watches == 4  # d2, d2/e, d2/e/new and the root
            write(root / "d2" / "e" / "new" / "h.md")
            await run.until(("added", "d2/e/new/h.md"))

    asyncio.run(go())


def test_a_removed_folder_is_reported_and_dropped(tmp_path):
    write(tmp_path / "d" / "e" / "f.md")

    async def go():
        watch = Inotify([tmp_path], step_ms=5)
        async with Run(watch, tmp_path) as run:
            shutil.rmtree(tmp_path / "d")
            await run.until(("deleted", "d"), ("deleted", "d/e/f.md"))
            await run.quiet(0.1)  # the kernel's IN_IGNORED for the two watches
            assert watch.watches == 1

    asyncio.run(go())


def test_flat_mode_sees_the_folder_only(tmp_path):
    write(tmp_path / "sub" / "x.md")

    async def go():
        watch = Inotify([tmp_path], recursive=False, step_ms=5)
        assert watch.watches == 1
        async with Run(watch, tmp_path) as run:
            write(tmp_path / "sub" / "x.md", "changed\n")
            os.makedirs(tmp_path / "new")
            write(tmp_path / "config.md")
            await run.until(("modified", "config.md"), ("added", "new"))
            write(tmp_path / "new" / "y.md")
            await run.quiet()
            assert not {path for _change, path in run.seen if path.startswith(("sub", "new/"))}
            assert watch.watches == 1

    asyncio.run(go())


def test_a_watch_filter_drops_events_before_they_make_a_batch(tmp_path):
    async def go():
        watch = Inotify([tmp_path], step_ms=5, watch_filter=lambda change, path: path.endswith(".md"))
        async with Run(watch, tmp_path) as run:
            write(tmp_path / ".a.md.swp")
            write(tmp_path / "notes.txt")
            await run.quiet(0.1)
            write(tmp_path / "a.md")
            await run.until(("added", "a.md"))
            assert {path for _change, path in run.seen} == {"a.md"}

    asyncio.run(go())


def test_quick_writes_are_one_batch_and_a_long_burst_is_cut_by_the_debounce(tmp_path):
    async def go():
        async with Run(Inotify([tmp_path], step_ms=100, debounce_ms=5000), tmp_path) as run:
            for n in range(10):
                write(tmp_path / f"{n}.md")
                await asyncio.sleep(0.002)  # the reader runs between the writes
            await run.until(*(("added", f"{n}.md") for n in range(10)))
            assert len(run.batches) == 1
        # writes every 10 ms for 0.6 s never leave a quiet step of 100 ms: the 200 ms cap cuts them
        async with Run(Inotify([tmp_path], step_ms=100, debounce_ms=200), tmp_path) as run:
            t0 = time.monotonic()
            n = 0
            while time.monotonic() - t0 < 0.6:
                write(tmp_path / "burst.md", f"{n}\n")
                n += 1
                await asyncio.sleep(0.01)
            await run.until(("modified", "burst.md"))
            await asyncio.sleep(0.15)
            assert len(run.batches) >= 2

    asyncio.run(go())


def test_stop_ends_the_iterator_and_close_lets_the_descriptor_go(tmp_path):
    async def go():
        watch = Inotify([tmp_path])
        fd = watch.fd
        stop = asyncio.Event()

        async def drain():
            async for _batch in watch.batches(stop):
                pass

        task = asyncio.create_task(drain())
        await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 1.0)
        assert not asyncio.get_running_loop().remove_reader(fd)  # the reader went with the iterator
        watch.close()
        watch.close()  # again: nothing
        with pytest.raises(OSError):
            os.fstat(fd)

        # cancelled (a task stopped by the daemon's exit stack): the reader goes too
        watch = Inotify([tmp_path])
        task = asyncio.create_task(drain())
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not asyncio.get_running_loop().remove_reader(watch.fd)
        watch.close()

    asyncio.run(go())


def test_a_removed_root_is_watched_again_once_it_is_back(tmp_path):
    root = tmp_path / "root"
    write(root / "d" / "a.md")

    async def go():
        watch = Inotify([root], step_ms=5)
        async with Run(watch, tmp_path) as run:
            shutil.rmtree(root)
            await run.until(("deleted", "root"), ("deleted", "root/d/a.md"))
            assert watch.watches == 0
            await run.quiet(0.1)
            write(root / "d" / "b.md")  # made again, at once with what is in it (by someone else: never by us)
            await run.until(("added", "root"))
            assert watch.watches == 2
            write(root / "d" / "c.md")
            await run.until(("added", "root/d/c.md"))
            run.batches.clear()
            os.rename(root, tmp_path / "elsewhere")  # moved away: the same
            await run.until(("deleted", "root"))
            run.batches.clear()
            write(tmp_path / "elsewhere" / "d" / "e.md")
            await run.quiet()
            os.rename(tmp_path / "elsewhere", root)
            await run.until(("added", "root"))

    asyncio.run(go())


def test_a_root_gone_with_its_parent_ends_the_iteration_with_root_gone(tmp_path):
    top = tmp_path / "top"
    write(top / "root" / "a.md")

    async def go():
        watch = Inotify([top / "root"], step_ms=5)
        asyncio.get_running_loop().call_later(0.05, shutil.rmtree, top)
        seen: set = set()
        with pytest.raises(RootGone):
            async with asyncio.timeout(5):
                async for batch in watch.batches():
                    seen |= batch
        assert (Change.deleted, str(top / "root")) in seen  # told, then the end
        watch.close()

    asyncio.run(go())


def test_parse_events_reads_the_kernels_records():
    name = b"x.md".ljust(16, b"\0")
    buf = HEADER.pack(3, IN_CREATE, 0, len(name)) + name + HEADER.pack(-1, IN_Q_OVERFLOW, 0, 0)
    assert list(parse_events(buf)) == [(3, IN_CREATE, 0, "x.md"), (-1, IN_Q_OVERFLOW, 0, "")]


def test_an_overflow_reports_every_root_and_walks_them_again(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    watch = Inotify([one, two])
    try:
        assert watch.watches == 2
        # made while no reader runs (their events wait in the kernel); the overflow that
        # follows says events were lost: the walk finds the new folders
        os.makedirs(one / "a" / "b")
        changes = watch.handle(parse_events(HEADER.pack(-1, IN_Q_OVERFLOW, 0, 0)))
        assert changes == {(Change.modified, str(one)), (Change.modified, str(two))}
        assert watch.watches == 4
    finally:
        watch.close()


class CountingSelector(selectors.DefaultSelector):
    """Counts the event loop's waits: each return is one wakeup."""

    calls = 0

    def select(self, timeout=None):
        CountingSelector.calls += 1
        return super().select(timeout)


def test_idle_means_no_wakeups(tmp_path):
    """Over a big tree, idle for a second: no thread, no read, no timer, so the event loop
    sleeps through it (the one wakeup is the test's own sleep ending), and next to no CPU."""
    for a in range(40):
        for b in range(10):
            for n in range(3):
                write(tmp_path / f"d{a}" / f"e{b}" / f"{n}.md")
    threads = threading.active_count()

    async def go():
        watch = Inotify([tmp_path], step_ms=1, debounce_ms=10)
        assert watch.watches == 1 + 40 + 400
        async with Run(watch, tmp_path) as run:
            await asyncio.sleep(0.05)
            selects, reads, cpu = CountingSelector.calls, watch.reads, time.process_time()
            await asyncio.sleep(1.0)
            idle = CountingSelector.calls - selects, watch.reads - reads, time.process_time() - cpu
            assert threading.active_count() == threads
            write(tmp_path / "d3" / "e4" / "new.md")  # and it is still awake for a change
            await run.until(("added", "d3/e4/new.md"))
        return idle

    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(CountingSelector())) as runner:
        wakeups, reads, cpu = runner.run(go())
    assert reads == 0
    assert wakeups <= 2, wakeups
    assert cpu < 0.1, cpu  # a loose bound (a shared machine): the counts above are the check


def test_a_folder_we_may_not_read_is_skipped(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    write(tmp_path / "locked" / "inner" / "x.md")
    write(tmp_path / "open" / "y.md")
    os.chmod(tmp_path / "locked", 0)
    try:
        async def go():
            watch = Inotify([tmp_path], step_ms=5)
            assert watch.watches == 2  # the root and open/: locked/ (and so inner/) skipped
            async with Run(watch, tmp_path) as run:
                write(tmp_path / "open" / "z.md")
                await run.until(("added", "open/z.md"))

        asyncio.run(go())
    finally:
        os.chmod(tmp_path / "locked", 0o755)


class Denied:
    """libc's inotify, but a folder named ``locked`` is not ours to watch (EACCES, as for
    a folder of another user's without read permission: root is never refused one)."""

    def __init__(self, real) -> None:
        self.inotify_init1 = real.inotify_init1
        self.inotify_rm_watch = real.inotify_rm_watch
        self.add = real.inotify_add_watch

    def inotify_add_watch(self, fd, path, mask):
        if os.path.basename(path) == b"locked":
            ctypes.set_errno(errno.EACCES)
            return -1
        return self.add(fd, path, mask)


def test_a_folder_refused_is_skipped_and_so_is_one_that_vanishes(tmp_path, monkeypatch):
    real = inotify._lib()
    monkeypatch.setattr(inotify, "_lib", lambda: Denied(real))
    write(tmp_path / "locked" / "inner" / "x.md")
    write(tmp_path / "open" / "y.md")
    watch = Inotify([tmp_path])
    try:
        assert watch.watches == 2
        watch._walk(str(tmp_path / "gone"))  # a folder removed while the walk reached it: nothing
        assert watch.watches == 2
    finally:
        watch.close()


def test_no_inotify_is_an_os_error(tmp_path, monkeypatch):
    monkeypatch.setattr(inotify, "_libc", None)
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(OSError, match="Linux only"):
        Inotify([tmp_path])
    assert not inotify.available()


class NoRoom:
    """libc's inotify, but every watch added fails as at the limit (ENOSPC)."""

    def __init__(self, real) -> None:
        self.real = real
        self.inotify_init1 = real.inotify_init1
        self.inotify_rm_watch = real.inotify_rm_watch

    def inotify_add_watch(self, fd, path, mask):
        ctypes.set_errno(errno.ENOSPC)
        return -1


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_watch_limit_is_an_os_error_and_leaks_nothing(tmp_path, monkeypatch):
    real = inotify._lib()
    monkeypatch.setattr(inotify, "_lib", lambda: NoRoom(real))
    before = _fds()
    with pytest.raises(OSError) as caught:
        Inotify([tmp_path])
    assert caught.value.errno == errno.ENOSPC and "max_user_watches" in str(caught.value)
    assert _fds() == before


def test_the_watch_limit_met_by_a_new_folder_ends_the_iteration(tmp_path):
    async def go():
        watch = Inotify([tmp_path], step_ms=5)
        watch._lib = NoRoom(watch._lib)  # from now on no watch can be added
        async with Run(watch, tmp_path) as run:
            os.makedirs(tmp_path / "new")
            deadline = time.monotonic() + 5
            while run.error is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert isinstance(run.error, OSError) and run.error.errno == errno.ENOSPC

    asyncio.run(go())


# --- the daemon's watcher on it, in process -------------------------------------------------


@pytest.fixture
def service(repo):
    from chantd.metrics import Metrics
    from chantd.service import Service

    repo.write("2026-01-24-001-aaa")
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    metrics = Metrics()
    svc = Service(ws, metrics)
    metrics.bind(svc)
    yield svc
    svc.close()


def _spy(service, monkeypatch) -> list:
    applied: list = []
    real = service.apply_async

    async def apply_async(relpaths, config_changed=False):
        try:
            return await real(relpaths, config_changed)
        finally:
            applied.append((relpaths, config_changed))  # once applied

    monkeypatch.setattr(service, "apply_async", apply_async)
    return applied


async def _until(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_the_watcher_is_armed_with_its_watches_in_place(repo, service, monkeypatch):
    from chantd.watch import Watcher

    applied = _spy(service, monkeypatch)

    async def go():
        await service.load()
        watcher = Watcher(service)
        task = asyncio.create_task(watcher.run())
        await asyncio.wait_for(watcher.armed.wait(), 5)
        assert watcher.mode == "inotify"
        # written the moment `armed` is seen, the watcher's loop not necessarily iterating yet: seen
        repo.write("2026-01-24-002-bbb")
        with open(os.path.join(repo.root, ".chant", "config.md"), "a", encoding="utf-8") as fh:
            fh.write("\n")
        await _until(lambda: (["specs/2026-01-24-002-bbb.md"], False) in applied and ([], True) in applied)
        watcher.stop()
        await asyncio.wait_for(task, 2.0)  # stop ends it promptly

    asyncio.run(go())


def test_the_watcher_polls_when_inotify_fails(repo, service, monkeypatch):
    import chantd.watch
    from chantd.watch import Watcher

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached (fs.inotify.max_user_watches)")

    monkeypatch.setattr(chantd.watch, "Inotify", no_room)
    applied = _spy(service, monkeypatch)

    async def go():
        await service.load()
        watcher = Watcher(service, poll_delay_ms=50)
        task = asyncio.create_task(watcher.run())
        await asyncio.wait_for(watcher.armed.wait(), 5)  # straight to polling: no wait, no catch-up
        assert watcher.mode == "poll"
        await asyncio.sleep(0.3)  # the poller's first listing
        repo.write("2026-01-24-002-bbb")
        await _until(lambda: any(paths and "specs/2026-01-24-002-bbb.md" in paths for paths, _ in applied))
        watcher.stop()
        await asyncio.wait_for(task, 5.0)

    asyncio.run(go())


def test_the_watcher_follows_a_removed_folder_when_it_is_back(repo, service, monkeypatch):
    from chantd.watch import Watcher

    applied = _spy(service, monkeypatch)

    async def go():
        await service.load()
        watcher = Watcher(service)
        task = asyncio.create_task(watcher.run())
        await asyncio.wait_for(watcher.armed.wait(), 5)
        applied.clear()  # the load's
        shutil.rmtree(repo.specs)
        await _until(lambda: any(paths and "specs/" in paths for paths, _ in applied))  # the table looks below it
        await asyncio.sleep(0.1)
        assert not os.path.exists(repo.specs)  # not made again by the watcher (an `rm -r` may be under way)
        assert service.ws.list_specs()["specs"] == []
        applied.clear()
        repo.write("2026-01-24-003-ccc")  # the folder and a spec in it, at once
        await _until(lambda: any(paths and "specs/" in paths for paths, _ in applied))
        repo.write("2026-01-24-004-ddd")
        await _until(lambda: (["specs/2026-01-24-004-ddd.md"], False) in applied)
        assert [s["id"] for s in service.ws.list_specs()["specs"]] == ["2026-01-24-003-ccc", "2026-01-24-004-ddd"]
        assert watcher.mode == "inotify"
        watcher.stop()
        await asyncio.wait_for(task, 2.0)

    asyncio.run(go())


# --- a real daemon --------------------------------------------------------------------------


def _eventually(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
    return value


def test_the_daemon_watches_with_inotify_alone(repo, daemon_factory):
    repo.write("2026-01-24-001-aaa")
    d = daemon_factory(repo.root, api=False, metrics=False)
    assert d.call("daemon_status")["watch"] == "inotify"
    with open(f"/proc/{d.pid}/maps", encoding="utf-8") as fh:
        assert "watchfiles" not in fh.read()  # watchfiles' loop (its Rust module) is not even loaded
    with d.client() as c:
        ids = lambda: {s["id"] for s in c.call("list", {})["specs"]}  # noqa: E731
        # a folder and a spec in it, made at once: the folder's event has the daemon look below it
        repo.write("nested/deeper/2026-01-24-002-bbb")
        _eventually(lambda: "2026-01-24-002-bbb" in ids())
        repo.write("nested/deeper/2026-01-24-003-ccc")  # and the new folder is watched
        _eventually(lambda: "2026-01-24-003-ccc" in ids())


# --- the git follower's watch, in process -----------------------------------------------------


def test_the_git_follower_is_woken_by_the_watch_alone(repo, service, tmp_path):
    """The follower's timer set to 10 minutes: each event below is seen through inotify. A
    new repository has no ``logs/`` (the first commit makes it) and no ``worktrees/``: both
    are watched once they appear."""
    from chantd.git import GitFollower, GitSettings

    from .support import Git, isolated_git_env

    git = Git.init(repo.root, isolated_git_env(tmp_path / "githome"), first=None)

    async def go():
        await service.load()
        follower = GitFollower(service, GitSettings(validate_on_save=False), poll_seconds=600)
        task = asyncio.create_task(follower.run())
        try:
            await asyncio.wait_for(follower.caught_up.wait(), 10)
            count = lambda kind: follower.counts.get(kind, 0)  # noqa: E731
            git.commit("the first")  # makes .git/logs/
            await _until(lambda: count("commit") == 1)
            git.commit("the second")
            await _until(lambda: count("commit") == 2)
            worktree = str(tmp_path / "wt")
            git("worktree", "add", "-q", "-b", "side", worktree)  # makes .git/worktrees/
            await _until(lambda: count("branch") == 1)
            await asyncio.sleep(0.1)  # the watch made again, with worktrees/
            git.commit("in the worktree", cwd=worktree)
            await _until(lambda: count("commit") == 3)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())
