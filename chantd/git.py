"""The daemon's git integration: what git did, followed, and acted on (docs/git.md).

Owns: a :class:`~chantlib.gitwatch.GitWatcher` on the daemon's repository, woken by an
inotify watch (:mod:`chantd.inotify`) on the reflog folders and, without recursion, on the
git folder itself (where ``logs/`` and ``worktrees/`` appear), and by a timer for whatever a
watch misses (the timer alone with ``watch_mode: poll``, or where inotify fails); its position kept in
``.chant/.index/gitwatch.json`` and saved only once the events a poll returned are handled
(so an event is acted on at least once across a crash or a restart, and a commit made while
the daemon was down is handled at its start); and what each event does, as the
``scale.daemon.git_watch`` keys say:

- a commit (``on_commit``), an amend and a rebase: ``record_commit`` for each commit whose
  subject is ``chant(<id>): ...``, through the service like any request (a compare-and-swap
  write of the spec file of *this* working tree, never another worktree's); an ID no spec has
  is a warning, ``chant_git_unknown_refs_total`` and an ``unknown_ref`` notification;
- a merge or pull (``on_merge``), a checkout, reset or rebase (``on_checkout``) in this
  working tree: the spec files the move changed (``git diff --name-only``) are applied to the
  table, queue and index, as the file watcher would (whichever comes first, the other is a
  no-op); a checkout of ``chant/<id>`` (or the branch made, as ``git worktree add -b`` does)
  logs and reports that spec's status.

Must not: block the event loop (git runs on a thread), stop on one bad event (logged, then
the next), or write anything but through an operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from chantlib.errors import InvalidValue
from chantlib.git import in_progress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from chantlib.gitwatch import GitWatcher

log = logging.getLogger("chantd.git")

__all__ = ["GitSettings", "GitFollower", "STATE_FILE"]

#: the watcher's position, beside the other state the daemon keeps for a warm start
STATE_FILE = "gitwatch.json"
#: a poll at least this often, whatever the file watch says (a poll with nothing new costs a
#: stat per reflog: well under a millisecond)
POLL_SECONDS = 1.0
#: how long a burst of reflog writes is let settle before a poll: a git command writes its
#: reflogs (a commit: HEAD's and the branch's) within a millisecond or two of each other, so
#: one poll sees them all. The inotify watch costs nothing while idle whatever this is (a
#: timer runs only while a burst settles; watchfiles' loop, before, woke every step: 50 ms
#: was its price, 0.07% of a core), so it is chosen for latency: a commit is recorded ~10 ms
#: after git wrote it, well under the 200 ms target (docs/benchmarks.md, "Git")...
SETTLE_MS = 10
SETTLE_MAX_MS = 50  # ...and a long burst (a rebase's many steps) is polled at least this often
#: the spec changes one event may bring into the table at once (a checkout across years of
#: history): more and the whole tree is walked instead, once
MAX_PATHS = 20_000


def _flag(config, key: str) -> bool:
    value = config.get(f"scale.daemon.git_watch.{key}")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise InvalidValue(f"config scale.daemon.git_watch.{key} must be true or false, got {value!r}")


class GitSettings:
    """The ``scale.daemon.git_watch`` keys (defaults in :data:`chantlib.config.DEFAULTS`)."""

    __slots__ = ("enabled", "on_commit", "on_merge", "on_checkout", "validate_on_save", "branch_prefix")

    def __init__(self, *, enabled=True, on_commit=True, on_merge=True, on_checkout=True, validate_on_save=True,
                 branch_prefix="chant/") -> None:
        self.enabled = enabled
        self.on_commit = on_commit
        self.on_merge = on_merge
        self.on_checkout = on_checkout
        self.validate_on_save = validate_on_save
        self.branch_prefix = branch_prefix

    @classmethod
    def from_config(cls, config) -> GitSettings:
        keys = {key: _flag(config, key) for key in cls.__slots__ if key != "branch_prefix"}
        prefix = config.get("defaults.branch_prefix") or "chant/"
        return cls(**keys, branch_prefix=str(prefix))


def _same_path(a: str | None, b: str) -> bool:
    if a is None:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


class GitFollower:
    """Follows the repository's git events for a daemon; see the module's docstring.

    ``run()`` is the task (until cancelled); ``status()`` what ``daemon_status`` shows under
    ``git``. ``notify(kind, message, **details)`` is the notifier's (``None``: log only)."""

    def __init__(self, service, settings: GitSettings, *, poll: bool = False, notify=None, metrics=None,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.service = service
        self.settings = settings
        self.poll = poll  # watch_mode: poll: no native watch of .git either
        self.notify = notify
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        ws = service.ws
        self.root = ws.root
        self.chant_dir = ws.store.chant_dir
        self.watcher: GitWatcher | None = None
        self.state = "starting" if settings.enabled else "off: scale.daemon.git_watch.enabled is false"
        self.counts: dict[str, int] = {}
        self.recorded = 0
        self.unknown_refs = 0
        self.last: dict | None = None
        self.checkout: dict | None = None
        #: set once the events kept from before the start are handled (tests and benchmarks wait on it)
        self.caught_up = asyncio.Event()
        self._wake = asyncio.Event()
        self._top: str | None = None  # the working tree's top folder, asked of git once
        self._deferred: list = []  # events held while a rebase or a sequence runs (see _poll_once)
        self._deferred_since = 0.0

    # -- the task -----------------------------------------------------------------------

    async def open(self) -> None:
        """Take the position: the one kept (what happened since is handled first), else now.
        A commit made after this returns is seen, whenever :meth:`run` gets to it."""
        if not self.settings.enabled or self.watcher is not None:
            return
        from chantlib.gitwatch import GitWatcher

        state = os.path.join(self.chant_dir, ".index", STATE_FILE)
        self.watcher = await asyncio.to_thread(GitWatcher, self.root, state_path=state, autosave=False)
        if not self.watcher.enabled:
            self.state = f"off: {self.watcher.reason}"
        else:
            self.state = "replaying" if self.watcher.resumed else "watching"

    async def run(self) -> None:
        await self.open()
        watcher = self.watcher
        if watcher is None or not watcher.enabled:
            self.caught_up.set()
            return
        watch = None if self.poll else asyncio.create_task(self._watch_files())
        try:
            while True:
                self._wake.clear()
                try:
                    await self._poll_once()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a poll that failed (a reflog unreadable for a moment): the next one
                    log.exception("following git's reflogs failed; trying again")
                if not self.caught_up.is_set():
                    self.state = "watching"
                    self.caught_up.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        finally:
            if watch is not None:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            watcher.close()

    async def _poll_once(self) -> None:
        assert self.watcher is not None
        events = self._deferred + self.watcher.poll()
        self._deferred = []
        busy = in_progress(self.watcher.git_dir) if events and self.watcher.git_dir else None
        if busy is not None:
            # git is in the middle of a rebase or of a series of cherry-picks here: it writes
            # the working tree between its steps, and a spec file written now would stop the
            # next step (or the autostash put back at the end). Later, all at once; the
            # position is not saved meanwhile, so a restart handles them too.
            if not self._deferred_since:
                log.info("git: a %s is in progress; its events wait until it is done", busy)
            self._deferred = events
            self._deferred_since = self._deferred_since or time.monotonic()
            return
        self._deferred_since = 0.0
        for event in events:
            try:
                await self.handle(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("handling the git event %s (%s) failed", event.kind, event.message)
        if self.watcher.unsaved:
            await asyncio.to_thread(self.watcher.save)  # handled: a restart starts after them

    async def _watch_files(self) -> None:
        """Wake the poll when a reflog changes. The reflog folders are watched recursively
        and the git folder flat, for the folders git makes later (the first commit makes
        ``logs/``, the first ``git worktree add`` ``worktrees/``): when the set of folders to
        watch changes, they are watched again."""
        from .inotify import Inotify, RootGone

        watcher = self.watcher
        assert watcher is not None and watcher.common_dir is not None
        common = os.path.abspath(watcher.common_dir)
        shown = (os.path.join(common, "logs"), os.path.join(common, "worktrees"))

        def wanted(_change, path: str) -> bool:
            # in the git folder itself only those two matter: not the index, HEAD or the
            # lock files every `git status` writes there
            return os.path.dirname(path) != common or path in shown

        def folders() -> dict[str, bool]:
            # what the watcher asks for (recursively), and both folders once they exist (a
            # worktree added before the first commit is there before logs/); the git folder
            # itself flat: before the first commit that is all there is
            roots = {os.path.abspath(path): True for path in watcher.paths_to_watch()}
            roots.update((path, True) for path in shown if os.path.isdir(path))
            roots[common] = False
            return roots

        while True:
            roots = folders()
            try:
                watch = await asyncio.to_thread(  # a walk of the reflog folders: off the event loop
                    Inotify, roots, step_ms=SETTLE_MS, debounce_ms=SETTLE_MAX_MS, watch_filter=wanted)
            except OSError as exc:  # cannot watch (the watch limit): the timer alone
                log.warning("cannot watch git's reflogs with inotify (%s); polling them every %.1f s", exc,
                            self.poll_seconds)
                return
            with watch:
                self._wake.set()  # what was written before this watch existed: the next poll sees it
                try:
                    async with contextlib.aclosing(watch.batches()) as batches:
                        async for _changes in batches:
                            self._wake.set()
                            if folders() != roots:
                                break
                except RootGone:  # logs/ or worktrees/ removed: watch what there is now
                    self._wake.set()
                except OSError as exc:
                    log.warning("watching git's reflogs failed (%s); polling them every %.1f s", exc,
                                self.poll_seconds)
                    return

    # -- events -------------------------------------------------------------------------

    async def handle(self, event) -> None:
        """Act on one :class:`~chantlib.gitwatch.GitEvent` as the settings say."""
        kind = event.kind
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.last = {"kind": kind, "ref": event.ref, "new": event.new, "worktree": event.worktree,
                     "message": event.message, "time": event.time}
        if self.metrics is not None:
            self.metrics.git_events.labels(kind=kind).inc()
        log.debug("git %s: %s (%s)", kind, event.message, event.worktree or event.ref)
        s = self.settings
        if kind == "commit" and s.on_commit:
            await self._record(event.new, event.subject, event.old if event.amend else None, event)
        elif kind == "rebase" and s.on_commit:
            await self._rebased(event)
        if kind in ("merge", "pull") and s.on_merge or kind in ("checkout", "reset", "rebase") and s.on_checkout:
            await self._follow_tree(event)
        if s.on_checkout and (kind == "checkout" or kind == "branch" and set(event.old) == {"0"}):
            # a checkout, or a branch made (`git worktree add -b chant/<id>` tells only that)
            await self._report_branch(event, event.target if kind == "checkout" else event.branch)

    async def _call(self, cmd: str, params: dict) -> dict:
        return await self.service.call(cmd, params, "git")

    async def _record(self, commit: str, subject: str | None, replaces: str | None, event) -> None:
        from chantlib.git import short, spec_ref

        ref = spec_ref(subject)
        if ref is None:
            return
        params = {"commit": commit, "subject": subject}
        if replaces:
            params["replaces"] = replaces
        answer = await self._call("record_commit", params)
        if answer["ok"]:
            result = answer["result"]
            if result["recorded"]:
                self.recorded += 1
                if self.metrics is not None:
                    self.metrics.git_recorded.inc()
                replaced = f" in place of {result['replaced']}" if result["replaced"] else ""
                log.info("recorded commit %s in %s%s", result["commit"], result["spec"]["id"], replaced)
            return
        error = answer["error"]
        if error["code"] in ("not_found", "ambiguous_id"):
            if await asyncio.to_thread(self._spec_in_commit, ref, commit):
                log.info("commit %s names chant(%s), a spec of its own branch (%s), not of this working tree: "
                         "not recorded here", short(commit), ref, event.branch or event.worktree or "detached")
                return
            self.unknown_refs += 1
            if self.metrics is not None:
                self.metrics.git_unknown_refs.inc()
            where = event.branch or (os.path.basename(event.worktree) if event.worktree else "?")
            text = f"{error['message']} (on {where})"
            log.warning("%s", text)
            if self.notify is not None:
                self.notify("unknown_ref", text, commit=commit, ref=ref, branch=event.branch,
                            worktree=event.worktree, subject=subject)
            return
        log.warning("could not record commit %s in chant(%s): %s", short(commit), ref, error["message"])

    def _spec_in_commit(self, ref: str, commit: str) -> bool:
        """Whether the commit's own tree holds a spec file ``ref`` names (a spec made on the
        branch the commit is on, which this working tree does not have)."""
        from chantlib.git import run_git

        try:
            prefix = self._chant_prefix()
            names = run_git(self.root, "ls-tree", "-r", "--name-only", commit, "--", f"{prefix}specs").split("\n")
        except Exception:  # noqa: BLE001 - git cannot tell: treat the ID as unknown
            return False
        return any(os.path.basename(n)[:-3].endswith(ref) for n in names if n.endswith(".md"))

    async def _rebased(self, event) -> None:
        """A rebase rewrote the commits between where the branch was and where it is: each
        ``chant(<id>)`` commit it made replaces, in order, the one of that spec it rewrote."""
        from chantlib.git import commits_between, spec_ref

        if set(event.old) == {"0"}:
            return
        try:
            gone = await asyncio.to_thread(commits_between, self.root, event.new, event.old)
            made = await asyncio.to_thread(commits_between, self.root, event.old, event.new)
        except Exception as exc:  # noqa: BLE001 - git gone, objects pruned: nothing to match
            log.warning("cannot tell which commits the rebase to %s rewrote: %s", event.new[:7], exc)
            return
        before: dict[str, list[str]] = {}
        for commit, subject in gone:
            ref = spec_ref(subject)
            if ref is not None:
                before.setdefault(ref, []).append(commit)
        last: dict[str, tuple[str, str]] = {}
        for commit, subject in made:
            ref = spec_ref(subject)
            if ref is None:
                continue
            olds = before.get(ref)
            await self._record(commit, subject, olds.pop(0) if olds else None, event)
            last[ref] = (commit, subject)
        for ref, olds in before.items():  # squashed away: gone, in favour of what replaced them
            for old in olds if ref in last else ():
                await self._record(*last[ref], old, event)

    def _chant_prefix(self) -> str:
        """``.chant/``'s path from the top of the working tree, with a slash: ``.chant/``, or
        ``sub/.chant/`` for a repository kept in a subfolder. Asked of git once."""
        if self._top is None:
            from chantlib.git import run_git

            self._top = run_git(self.root, "rev-parse", "--show-toplevel").strip() or self.root
        return os.path.relpath(self.chant_dir, self._top).replace(os.sep, "/") + "/"

    async def _follow_tree(self, event) -> None:
        """Bring the table, queue and index in step with the spec files a move of this
        working tree's HEAD changed; a move in another worktree changes nothing here."""
        if not _same_path(event.worktree, self.root) or set(event.old) == {"0"} or event.old == event.new:
            return
        from chantlib.git import changed_paths

        started = time.perf_counter()
        try:
            prefix = await asyncio.to_thread(self._chant_prefix)
            paths = await asyncio.to_thread(changed_paths, self.root, event.old, event.new, prefix.rstrip("/"))
        except Exception as exc:  # noqa: BLE001 - the file watcher still follows the files
            log.warning("cannot ask git what the %s changed: %s", event.kind, exc)
            return
        relpaths: list[str] = []
        config = False
        for path in paths:
            rel = path[len(prefix):]
            if rel == "config.md":
                config = True
            elif rel.endswith(".md") and rel.split("/", 1)[0] in ("specs", "archive"):
                relpaths.append(rel)
        if not relpaths and not config:
            return
        await self.service.apply_async(relpaths if len(relpaths) <= MAX_PATHS else None, config)
        log.info("git %s in %s: %d spec file(s) followed in %.0f ms", event.kind, self.root, len(relpaths),
                 (time.perf_counter() - started) * 1000)

    async def _report_branch(self, event, target: str | None) -> None:
        target = target or ""
        prefix = self.settings.branch_prefix
        if not prefix or not target.startswith(prefix) or len(target) == len(prefix):
            return
        spec = target[len(prefix):]
        answer = await self._call("show", {"spec": spec})
        where = event.worktree or f"branch {target}"
        if answer["ok"]:
            result = answer["result"]
            status = result.get("display_status") or result["status"]
            self.checkout = {"branch": target, "spec": result["id"], "status": status, "worktree": where}
            log.info("%s in %s: spec %s is %s", event.kind, where, result["id"], status)
        else:
            self.checkout = {"branch": target, "spec": None, "status": None, "worktree": where}
            log.warning("%s in %s names no spec: %s", event.kind, where, answer["error"]["message"])

    # -- status -------------------------------------------------------------------------

    def status(self) -> dict:
        return {
            "state": self.state,
            "events": dict(sorted(self.counts.items())),
            "recorded": self.recorded,
            "unknown_refs": self.unknown_refs,
            "last": self.last,
            "checkout": self.checkout,
        }
