"""The file watcher: keeps the daemon's spec table and index in step with `.chant/`.

Our inotify watch (:mod:`chantd.inotify`) reports batches of changes (created, modified,
deleted: a rename is a delete and a create); each batch becomes one refresh of just those
files. Two watches: ``specs/`` and ``archive/`` recursively, and ``.chant/`` itself without
recursion, for ``config.md``; so the daemon's own writes (leases in ``.locks/``, the index in
``.index/``) never reach it. Editors' temp files are filtered out. A change to a folder itself
(a folder made, renamed or removed) has the files below it looked at again.

``watch_mode: poll`` (for NFS and other filesystems inotify does not see), and any failure
of the inotify watch (the watch limit; another OS), poll with watchfiles instead. A watched
folder removed is reported (the table drops what was below it) and watched again once it is
back. Must not: make a folder while the repository may be going away (an ``rm -r`` under
way would then fail), touch a chantlib object's private state, or stop on one bad batch
(logged, then the next).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from .inotify import Change, Inotify, RootGone

log = logging.getLogger("chantd.watch")

# wait this long for more changes after one arrives (a save's events come within a
# millisecond of each other: its write, close and rename), so a save is one batch. The
# inotify watch costs nothing while idle whatever the step (a timer runs only while a batch
# collects), so the step is chosen for latency alone: 5 ms took a change to `list --ready`
# at 200,000 specs from 37-44 ms (10 ms) to 27-29 ms p50. (watchfiles' own loop woke every
# step, idle or not: 5 ms cost 1% of a core, which is why it was 10 ms before.)
STEP_MS = 5
DEBOUNCE_MS = 60  # ...but answer within this long of the first, however busy the files are
#: config.md alone: rarely changed, and nobody waits on it to the millisecond
CONFIG_STEP_MS = 50
CONFIG_DEBOUNCE_MS = 500
#: the polling fallback (``watch_mode: poll``, or inotify failed): watchfiles' loop wakes
#: every step, so these stay long (idle, 10 ms cost 0.5% of a core); it lists the tree
#: every ``poll_delay_ms`` anyway
POLL_STEP_MS = 50
POLL_CONFIG_STEP_MS = 250


class Watcher:
    def __init__(self, service, *, poll: bool = False, poll_delay_ms: int = 300) -> None:
        self.service = service
        self.chant_dir = service.ws.store.chant_dir
        self.poll = poll
        self.poll_delay_ms = poll_delay_ms
        self._stop = asyncio.Event()
        #: set once both watches are in place: a change made after it is seen (the daemon
        #: loads the specs only then, so nothing falls between its walk and the watch)
        self.armed = asyncio.Event()
        self._arming = 0

    @property
    def mode(self) -> str:
        """What ``daemon_status`` says under ``watch``: ``inotify`` or ``poll``."""
        return "poll" if self.poll else "inotify"

    def stop(self) -> None:
        self._stop.set()

    def _relevant(self, change: Change, path: str) -> bool:
        rel = os.path.relpath(path, self.chant_dir)
        if rel == "config.md":
            return True
        head = rel.split(os.sep, 1)[0]
        if head not in ("specs", "archive"):
            return False
        name = os.path.basename(path)
        if name.startswith("."):
            return False
        if name.endswith(".md"):
            return True
        # a folder: created, renamed or removed (a file name without .md is not ours)
        return "." not in name or os.path.isdir(path)

    def _classify(self, changes) -> tuple[list[str], bool]:
        """(relative paths to refresh, folders as ``prefix/``; whether config.md changed)."""
        config = False
        paths: set[str] = set()
        for _change, path in changes:
            rel = os.path.relpath(path, self.chant_dir).replace(os.sep, "/")
            if rel in ("config.md", "."):  # `.`: the config watch lost events (an overflow)
                config = True
            elif rel.endswith(".md"):
                paths.add(rel)
            else:
                # a folder created, removed or renamed: the table looks below it (the files
                # moved with it raise no event of their own), not at the whole repository
                paths.add(rel + "/")
        return sorted(paths), config

    async def run(self) -> None:
        """Watch until stopped. If the inotify watch fails (the watch limit, a platform
        without inotify), go on by polling: at once if it failed while being made (nothing
        was watched yet, so nothing was missed), else after a full walk. It ends when
        ``.chant/`` itself is gone (the daemon then stops: see ``Daemon._watch_root``)."""
        catch_up = False
        while not self._stop.is_set():
            try:
                await self._watch(catch_up)
                return
            except asyncio.CancelledError:
                raise
            except RootGone as exc:
                log.warning("%s: the file watch ends", exc)
                return
            except Exception:
                if self.poll:
                    log.exception("the file watcher failed; retrying in 1 s")
                else:
                    log.exception("the inotify file watcher failed; polling from now on")
                    self.poll = True
                    if self.service.info.get("watch"):  # else the start sets it: the last thing it does
                        self.service.describe(watch=self.mode)
                    if not self.armed.is_set():
                        continue  # failed before it watched anything: nothing to catch up with
                await asyncio.sleep(1.0)
                catch_up = True

    async def _watch(self, catch_up: bool = False) -> None:
        store = self.service.ws.store
        if not os.path.isdir(self.chant_dir):
            return  # the repository is going away: nothing to watch, nothing to make
        for folder in (store.specs_dir, store.archive_dir):
            os.makedirs(folder, exist_ok=True)  # a folder that does not exist cannot be watched
        trees = (store.specs_dir, store.archive_dir)
        if self.poll:
            if catch_up:
                await self.service.apply_async(None)
            await _both(self._poll(trees, True, self._relevant, POLL_STEP_MS),
                        self._poll((self.chant_dir,), False, self._config_only, POLL_CONFIG_STEP_MS,
                                   CONFIG_DEBOUNCE_MS))
            return
        with contextlib.ExitStack() as stack:
            # made here, before the daemon walks the specs: once both exist every later change
            # is seen (the kernel queues what comes before the loop reads them)... and made on
            # a thread: a walk of every folder of the archive (4,039 at 200,000 specs) from a
            # cold page cache held the event loop for over 10 s, daemon_status and all
            specs = stack.enter_context(await asyncio.to_thread(
                Inotify, trees, step_ms=STEP_MS, debounce_ms=DEBOUNCE_MS, watch_filter=self._relevant))
            config = stack.enter_context(await asyncio.to_thread(
                Inotify, (self.chant_dir,), recursive=False, step_ms=CONFIG_STEP_MS, debounce_ms=CONFIG_DEBOUNCE_MS,
                watch_filter=self._config_only))
            self.armed.set()  # ...so the daemon may walk the specs now
            await _both(self._apply(specs.batches(self._stop)), self._apply(config.batches(self._stop)))

    def _config_only(self, change: Change, path: str) -> bool:
        # the folder itself: an overflow (events were lost)
        return os.path.basename(path) == "config.md" or path == os.path.abspath(self.chant_dir)

    async def _apply(self, batches) -> None:
        async with contextlib.aclosing(batches):
            async for changes in batches:
                relpaths, config = self._classify(changes)
                try:
                    await self.service.apply_async(relpaths, config)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one bad batch must not stop the watcher
                    log.exception("applying %d file changes failed", len(changes))

    def _arm(self) -> None:
        # Called just before `async for` starts the generator: its first step creates the
        # poller before it first waits, and waiters on the event only run after that step,
        # so once `armed` is seen set both watches exist.
        self._arming += 1
        if self._arming >= 2:
            self.armed.set()

    async def _poll(self, paths, recursive: bool, watch_filter, step: int, debounce: int = DEBOUNCE_MS) -> None:
        from watchfiles import awatch  # only when polling: a daemon on inotify never imports it

        self._arm()
        await self._apply(awatch(
            *paths,
            watch_filter=watch_filter,
            debounce=debounce,
            step=step,
            stop_event=self._stop,
            force_polling=True,
            poll_delay_ms=self.poll_delay_ms,
            recursive=recursive,
            ignore_permission_denied=True,
        ))


async def _both(first, second) -> None:
    """Run both until both end; if one fails the other is stopped, and its error is raised
    as itself (not in a group), so :meth:`Watcher.run` can tell a lost folder from a failure."""
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(first)
            group.create_task(second)
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
