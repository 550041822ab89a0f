"""The one place the daemon's objects are made: :func:`build`.

The daemon (:mod:`chantd.server`), ``chant daemon request --in-process``, the tests and the
benchmarks all assemble the daemon's objects here, so they run what the daemon runs: the
:class:`~chantlib.Workspace` with its lease table given at construction, the
:class:`~chantd.metrics.Metrics`, the :class:`~chantd.service.Service` and the
:class:`~chantd.watch.Watcher`. What is started afterwards (transports, the watcher's task,
the periodic upkeep) is registered on the parts' one :class:`contextlib.AsyncExitStack`, so
everything stops in the reverse order it started, whichever step failed::

    async with chantd.build(root, api_port=0) as parts:
        await parts.load()
        answer = await parts.service.call("list", {"ready": True}, "in-process")
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TYPE_CHECKING

from chantlib.workspace import LOCKS_DIR, Workspace

from .options import Settings
from .service import Service

if TYPE_CHECKING:
    from collections.abc import Callable

    from .git import GitFollower
    from .notify import Notifier
    from .validation import Validator

__all__ = ["Parts", "build"]

#: how long a start waits for the git events of while it was down to be handled (they go on
#: being handled after, should there be more)
REPLAY_WAIT = 30.0


class Parts:
    """The daemon's objects for one repository, as :func:`build` made them.

    ``settings`` (:class:`~chantd.options.Settings`), ``metrics`` and ``watcher`` are ``None``
    for a one-shot service (``serve=False``). ``stack`` stops what was started, last first;
    leaving ``async with parts`` (or :meth:`aclose`) unwinds it, and its first entry, run
    last, closes the service and with it the workspace (saved, its index writer and its
    lease table let go)."""

    def __init__(self, *, root: str, workspace: Workspace, service: Service, settings: Settings | None = None,
                 metrics=None, watcher=None, git_settings=None) -> None:
        self.root = root
        self.workspace = workspace
        self.service = service
        self.settings = settings
        self.metrics = metrics
        self.watcher = watcher
        self.git_settings = git_settings
        #: made by :meth:`follow`: the git watcher's follower and the validator of saves
        self.git: GitFollower | None = None
        self.validator: Validator | None = None
        self.notify: Callable[..., bool] | None = None  # notify(kind, message, **details); None: the log alone
        self.notifier: Notifier | None = None  # the :class:`~chantd.notify.Notifier` behind it (a serving daemon's)
        self.stack = contextlib.AsyncExitStack()
        self.stack.callback(service.close)

    async def __aenter__(self) -> Parts:
        return self

    async def __aexit__(self, *exc) -> bool | None:
        return await self.stack.__aexit__(*exc)

    async def aclose(self) -> None:
        await self.stack.aclose()

    def task(self, coro) -> asyncio.Task:
        """Run ``coro`` as a task until the stack unwinds (then it is cancelled and awaited)."""
        task = asyncio.create_task(coro)

        async def cancel() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        self.stack.push_async_callback(cancel)
        return task

    async def watch(self, timeout: float = 10.0) -> None:
        """Start the file watcher and wait (up to ``timeout``) until its watches are in place:
        a change made after this is seen, so the load that follows misses nothing."""
        watcher = self.watcher
        if watcher is None:
            raise RuntimeError("a one-shot service (serve=False) has no watcher")
        self.task(watcher.run())
        self.stack.callback(watcher.stop)  # run before the task is cancelled: the watches end cleanly
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher.armed.wait(), timeout)

    async def follow(self) -> None:
        """After :meth:`load`: lint each spec as it is saved (``validate_on_save``; the
        verdict on every spec taken in first) and follow git's reflogs (``git_watch``):
        commits made while the daemon was down are handled by the follower's first poll."""
        from .git import GitFollower, GitSettings
        from .validation import Validator

        settings = self.git_settings or GitSettings()
        service = self.service
        if settings.enabled and settings.validate_on_save:
            validator = Validator(service, notify=self.notify)
            self.stack.callback(validator.close)
            self.task(validator.run())
            await validator.seed()
            self.validator = validator
            service.sections["validation"] = validator.status
        poll = self.settings.poll if self.settings is not None else False
        follower = GitFollower(service, settings, poll=poll, notify=self.notify, metrics=self.metrics)
        self.git = follower
        service.sections["git"] = follower.status
        await follower.open()  # the position taken: a commit from here on is seen
        self.task(follower.run())
        with contextlib.suppress(TimeoutError):  # what happened while down, handled before "started"
            await asyncio.wait_for(follower.caught_up.wait(), REPLAY_WAIT)

    async def load(self) -> None:
        """Bring the workspace in step with the files, then let requests in. The daemon's
        (long-lived) walks every file and brings the index in step; a one-shot one refreshes
        its spec table (each operation refreshes it again, as in direct mode)."""
        if self.workspace.long_lived:
            await self.service.load()
        else:
            self.workspace.refresh()
            self.service.mark_loaded()


def build(root: str | None = None, *, serve: bool = True, leases_dir: str | None = None, clock=time.time,
          socket_arg=None, api_port=None, api_host=None, metrics_port=None, poll=None) -> Parts:
    """Make the daemon's objects for the repository at or above ``root``.

    ``serve=True`` (the daemon): a long-lived workspace fed by the watcher, its leases in a
    memory table journaled to ``leases_dir`` (default ``.chant/.locks/``, which it owns from
    here on: a second owner is refused), metrics, and the :class:`~chantd.options.Settings`
    resolved from the options (``socket_arg``, ``api_port``, ... as
    :func:`chantd.options.options_from` gives them) and the repository's config.
    ``serve=False`` (``daemon request --in-process``): the answer the daemon would give,
    made once on a short-lived workspace that refreshes itself and uses direct mode's lease
    files, as a direct-mode command does; no settings, metrics or watcher.

    Nothing is started: see :class:`Parts`. Should a step here fail, what was made before
    it is closed again.
    """
    if not serve:
        workspace = Workspace(root, clock=clock)
        try:
            service = Service(workspace, clock=clock)
        except BaseException:
            workspace.close()
            raise
        return Parts(root=workspace.root, workspace=workspace, service=service)

    from chantlib.locks import MemoryLockTable
    from chantlib.store import CHANT_DIR, find_root

    from .git import GitSettings
    from .metrics import Metrics
    from .notify import Notifier, NotifySettings  # prometheus_client: only for a serving daemon
    from .watch import Watcher

    root = find_root(root)
    where = leases_dir or os.path.join(root, CHANT_DIR, LOCKS_DIR)

    def lease_table(config) -> MemoryLockTable:
        return MemoryLockTable(persist_dir=where, default_ttl=config.lock_ttl, clock=clock)

    with contextlib.ExitStack() as undo:
        workspace = Workspace(root, auto_refresh=False, long_lived=True, locks=lease_table, clock=clock)
        undo.callback(workspace.close)
        settings = Settings(workspace.root, workspace.config, socket_arg=socket_arg, api_port=api_port,
                            api_host=api_host, metrics_port=metrics_port, poll=poll)
        metrics = Metrics()
        service = Service(workspace, metrics, clock=clock, max_wait=settings.max_wait)
        metrics.bind(service)
        watcher = Watcher(service, poll=settings.poll, poll_delay_ms=settings.poll_delay_ms)
        git_settings = GitSettings.from_config(workspace.config)
        notifier = Notifier(NotifySettings.from_config(workspace.config), workspace.root)
        undo.callback(notifier.close)
        metrics.watch_notifier(notifier)
        parts = Parts(root=workspace.root, workspace=workspace, service=service, settings=settings,
                      metrics=metrics, watcher=watcher, git_settings=git_settings)
        parts.notify = notifier.notify
        parts.notifier = notifier
        undo.pop_all()  # from here on the parts' stack closes them
        parts.stack.push_async_callback(asyncio.to_thread, notifier.close)  # before the service closes
    return parts
