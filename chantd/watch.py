"""The file watcher: keeps the daemon's spec table and index in step with `.chant/`.

watchfiles reports batches of changes (created, modified, deleted: a rename is a delete
and a create); each batch becomes one refresh of just those files and one index commit.
Two watchers: ``specs/`` and ``archive/`` recursively, and ``.chant/`` itself without
recursion, for ``config.md``; so the daemon's own writes (leases in ``.locks/``, the index in
``.index/``) never reach it. Editors' temp files are filtered out (watchfiles' default filter
would drop all of ``.chant/``, a hidden folder). A change to a folder itself (a folder
renamed or removed) has the files below it looked at again. ``watch_mode: poll`` (for NFS and other
filesystems without inotify) polls instead.
"""

from __future__ import annotations

import asyncio
import logging
import os

from watchfiles import Change, awatch

log = logging.getLogger("chantd.watch")

# wait this long for more changes after one arrives (a save's events come within a
# millisecond; a batch waits one to two steps). It is also how often watchfiles' loop wakes
# while nothing happens, taking the GIL: idle, 5 ms cost 1.0% of a core, 10 ms 0.5%. 5 ms
# took a change to `list --ready` at 200,000 specs from 37-44 ms to 27-29 ms p50; 10 ms keeps
# that well inside the 60 ms target and the idle daemon under 1% of a core (issue 9)...
STEP_MS = 10
DEBOUNCE_MS = 60  # ...but answer within this long of the first
#: config.md alone: rarely changed, and nobody waits on it, so its watch wakes far less
#: often (watchfiles' watch wakes every step, idle or not: ~1% of a core at 5 ms)
CONFIG_STEP_MS = 250
CONFIG_DEBOUNCE_MS = 500


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
            if rel == "config.md":
                config = True
            elif rel.endswith(".md"):
                paths.add(rel)
            else:
                # a folder created, removed or renamed: the table looks below it (the files
                # moved with it raise no event of their own), not at the whole repository
                paths.add(rel + "/")
        return sorted(paths), config

    async def run(self) -> None:
        """Watch until stopped. If the native watcher fails (inotify limits, a filesystem
        that cannot be watched), catch up with a full walk and go on by polling."""
        while not self._stop.is_set():
            try:
                await self._watch()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.poll:
                    log.exception("the file watcher failed; retrying in 1 s")
                else:
                    log.exception("the native file watcher failed; polling from now on")
                    self.poll = True
                    self.service.describe(watch="poll")
                await asyncio.sleep(1.0)
                await self.service.apply_async(None)

    async def _watch(self) -> None:
        store = self.service.ws.store
        for folder in (store.specs_dir, store.archive_dir):
            os.makedirs(folder, exist_ok=True)  # a folder that does not exist cannot be watched
        async with asyncio.TaskGroup() as group:
            group.create_task(self._loop((store.specs_dir, store.archive_dir), True, self._relevant))
            group.create_task(self._loop((self.chant_dir,), False, self._config_only, CONFIG_STEP_MS,
                                         CONFIG_DEBOUNCE_MS))

    def _config_only(self, change: Change, path: str) -> bool:
        return os.path.basename(path) == "config.md"

    def _arm(self) -> None:
        # Called just before `async for` starts the generator: its first step creates the
        # native watch before it first waits, and waiters on the event only run after that
        # step, so once `armed` is seen set both watches exist.
        self._arming += 1
        if self._arming >= 2:
            self.armed.set()

    async def _loop(self, paths, recursive: bool, watch_filter, step: int = STEP_MS,
                    debounce: int = DEBOUNCE_MS) -> None:
        self._arm()
        async for changes in awatch(
            *paths,
            watch_filter=watch_filter,
            debounce=debounce,
            step=step,
            stop_event=self._stop,
            force_polling=self.poll,
            poll_delay_ms=self.poll_delay_ms,
            recursive=recursive,
            ignore_permission_denied=True,
        ):
            relpaths, config = self._classify(changes)
            try:
                await self.service.apply_async(relpaths, config)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad batch must not stop the watcher
                log.exception("applying %d file changes failed", len(changes))
