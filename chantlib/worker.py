"""Worker: claim ready specs, run an agent command on each, report the result (``chant agent worker``).

A :class:`Worker` runs ``concurrency`` slots, each a thread that does, one spec at a time:
claim (``queue_claim``: atomic, with a lease; a long poll while nothing is ready) → run the
command (its output appended to ``.chant/logs/<id>.log``) → renew the lease every ttl/3
while it runs → ``complete`` with the lease's fencing token (exit 0: ``completed``; else a
failure, counted against ``watch.failure.max_retries``: ``failed``, ready again, then
``needs_attention``) → the lease is released by ``complete`` itself.

Everything goes through one backend of :func:`chantlib.connect` (the daemon's socket, its HTTP
API, or direct mode with file leases), so a worker does nothing a script could not do with
the operations. Its rules for a world that fails:

* The daemon unreachable or restarting: a call is tried again with exponential backoff and
  jitter (capped), while the command keeps running; once the daemon answers again, the next
  renewal re-asserts the lease with its token (the daemon's lease journal keeps leases across
  a restart). A daemon backend's fallback to direct mode is turned off: the leases are the
  daemon's, so the worker waits for it rather than work behind its back.
* The lease lost (a renewal or the completion refused: ``stale_token``, ``not_locked``,
  ``not_holder``; a worker paused past its TTL, whose spec another took): the command is
  stopped if it still runs, nothing is written, and one line says so.
* :meth:`Worker.stop` (the CLI calls it on SIGTERM and SIGINT): no more claims; running
  commands get ``grace`` seconds to finish (and are reported as usual if they do); then their
  process group gets SIGTERM, then SIGKILL, and their leases are released unfinished. A
  result the daemon cannot take is tried until the grace is over, then given up (the lease
  then expires by itself).

Nothing here installs signal handlers or prints: lines go to ``log(text)``.

``CHANT_WORKER_TIMINGS=PATH`` (off by default; for the load benchmark and test): each claim
appends one line to PATH, ``<start, epoch seconds> <round trip, seconds> <won|none|error>``.
"""

from __future__ import annotations

import functools
import os
import random
import shlex
import signal
import subprocess
import sys
import threading
import time

from .errors import ChantError, LockNotFound, NothingReady, NotHolder, StaleToken, Unavailable, UsageError
from .values import MAX_CLAIM_WAIT

__all__ = ["Worker", "WorkerResult", "LOST", "BACKOFF_BASE", "BACKOFF_CAP"]

#: the errors that say the lease is someone else's now (or no one's): stop, write nothing
LOST = (StaleToken, LockNotFound, NotHolder)
BACKOFF_BASE = 0.2  # seconds: the first retry of a call the daemon could not take
BACKOFF_CAP = 5.0  # the longest wait between two tries
KILL_WAIT = 5.0  # seconds from SIGTERM to SIGKILL of a command being stopped
DIRECT_SLICE = 1.0  # direct mode polls the files: a claim waits this long per call at most


class WorkerResult:
    """What one spec's run came to: ``outcome`` is ``completed``, ``failed``,
    ``needs_attention``, ``lost`` (the lease was taken over or expired: nothing written) or
    ``stopped`` (the worker stopped it: lease released, not completed); ``exit_code`` the
    command's (None if it was stopped); ``seconds`` its run time."""

    __slots__ = ("spec", "outcome", "exit_code", "seconds")

    def __init__(self, spec: str, outcome: str, exit_code: int | None, seconds: float) -> None:
        self.spec, self.outcome, self.exit_code, self.seconds = spec, outcome, exit_code, seconds

    def __repr__(self) -> str:
        return f"WorkerResult({self.spec!r}, {self.outcome!r}, exit_code={self.exit_code}, seconds={self.seconds:.1f})"


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Worker:
    """Claims and runs specs through ``backend`` (from :func:`chantlib.connect`).

    ``command``: a shell command; ``{id}`` and ``{path}`` become the spec's ID and absolute
    path, shell-quoted, and the environment carries ``CHANT_SPEC_ID``, ``CHANT_SPEC_PATH``,
    ``CHANT_LEASE_TOKEN`` and ``CHANT_OWNER``. It runs in the repository's root, in a process
    group of its own. ``project``, ``labels``: which specs to claim. ``once``: each slot runs
    at most one spec (with ``concurrency`` 1: one spec, then :meth:`run` returns).
    ``ttl``: the lease's length (None: the daemon's or config's default), renewed every
    ttl/3. ``owner``: the leases' owner (default ``CHANT_OWNER``, else ``user@host``, plus
    ``/worker-<pid>``). ``grace``: seconds a running command is given to finish after
    :meth:`stop`. ``wait``: how long one claim waits for work (a long poll; direct mode polls
    the files); with ``once``, how long to wait before giving up. ``root``: where
    ``.chant/logs/`` and the spec files are (default: the backend's repository, else the one
    around the current folder, for a remote daemon over a shared filesystem).
    """

    def __init__(self, backend, command: str, *, project: str | None = None, labels=None, once: bool = False,
                 concurrency: int = 1, ttl: float | None = None, owner: str | None = None, grace: float = 10.0,
                 wait: float | None = None, root: str | None = None, log=None) -> None:
        if not command or not command.strip():
            raise UsageError("a worker needs a command to run (--exec, or parallel.agents[0].command in the config)")
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, got {concurrency}")
        if ttl is not None and not ttl > 0:
            raise UsageError(f"ttl must be a positive number of seconds, got {ttl}")
        if grace < 0:
            raise UsageError(f"grace must be zero or more seconds, got {grace}")
        self.backend = backend
        if getattr(backend, "fallback", None) is True:
            backend.fallback = False  # the leases are the daemon's: wait for it, never work behind its back
        self.command = command
        self.project = project
        self.labels = list(labels) if labels else None
        self.once = once
        self.concurrency = concurrency
        self.ttl = ttl
        self.grace = grace
        self.wait = min(MAX_CLAIM_WAIT, (0.0 if once else 60.0) if wait is None else max(0.0, wait))
        self.log = log or _stderr
        if owner is None:
            from .config import default_owner

            owner = f"{default_owner()}/worker-{os.getpid()}"
        self.owner = owner
        self.root = root or backend.root or _local_root() or (getattr(backend, "hello", None) or {}).get("root")
        self.results: list[WorkerResult] = []
        self._stopping = threading.Event()
        self._hurry = threading.Event()  # a second stop: no grace
        self._stopped_at: float | None = None  # when stop() was first called (monotonic)
        self._lock = threading.Lock()
        self._claiming: set[int] = set()  # slot threads in a claim (interrupted by stop)
        self._claimed_any = False
        self._timings = os.environ.get("CHANT_WORKER_TIMINGS") or None  # see the module's docstring

    # control

    def stop(self) -> None:
        """Stop claiming; running commands get ``grace`` seconds, then are stopped (a second
        call skips what is left of the grace). Safe from a signal handler and any thread."""
        if self._stopping.is_set():
            self._hurry.set()
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        self._stopping.set()
        interrupt = getattr(self.backend, "interrupt", None)
        if interrupt is not None:
            with self._lock:
                idents = list(self._claiming)
            for ident in idents:  # a long poll in flight ends now (the daemon gives back what it won)
                try:
                    interrupt(ident)
                except Exception:  # noqa: BLE001 - stopping must not fail
                    pass

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> int:
        """Run the slots until :meth:`stop` (or, with ``once``, until each has run a spec);
        returns the exit code the CLI uses: 0; with ``once``, 5 when nothing was ready, 1 when
        a spec was not completed."""
        threads = [threading.Thread(target=self._slot, name=f"chant-worker-{n}", daemon=True)
                   for n in range(self.concurrency)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(0.2)  # short joins: the main thread stays free for signal handlers
        if self.once:
            if not self._claimed_any:
                return 5
            if any(r.outcome != "completed" for r in self.results):
                return 1
        return 0

    # one slot

    def _slot(self) -> None:
        try:
            self._claims()
        except Exception as exc:  # noqa: BLE001 - a bug or a closed backend: one line, the others go on
            self.log(f"worker: a slot stopped: {type(exc).__name__}: {exc}")

    def _claims(self) -> None:
        failures = 0
        deadline = time.monotonic() + self.wait if self.once else None
        while not self._stopping.is_set():
            wait = self.wait if deadline is None else max(0.0, deadline - time.monotonic())
            if getattr(self.backend, "mode", "") == "direct":
                wait = min(wait, DIRECT_SLICE)  # one call at a time on a workspace: others renew between
            try:
                claim = self._claim(wait)
            except NothingReady:
                failures = 0
                if deadline is not None and time.monotonic() >= deadline:
                    return
                continue
            except Unavailable as exc:
                if self._stopping.is_set():
                    return
                failures += 1
                self._pause(failures, f"cannot claim: {exc.message}", BACKOFF_CAP)
                continue
            except ChantError as exc:  # a usage error, a broken config: the same every time
                self.log(f"worker: claim refused: {exc.message}")
                self._stopping.set()
                return
            failures = 0
            self._claimed_any = True
            if self._stopping.is_set():  # won just as we stop: give it back untouched
                self._release(claim["spec"]["id"], claim["lease"]["token"])
                return
            self._results(self._work(claim))
            if self.once:
                return

    def _claim(self, wait: float) -> dict:
        ident = threading.get_ident()
        with self._lock:
            self._claiming.add(ident)
        try:
            if self._stopping.is_set():
                raise NothingReady("stopping")
            at, started, outcome = time.time(), time.perf_counter(), "error"
            try:
                claim = self.backend.call("queue_claim", owner=self.owner, ttl=self.ttl, project=self.project,
                                          labels=self.labels, wait=wait or None)
                outcome = "won"
                return claim
            except NothingReady:
                outcome = "none"
                raise
            finally:
                if self._timings:
                    self._timing(self._timings, at, time.perf_counter() - started, outcome)
        finally:
            with self._lock:
                self._claiming.discard(ident)

    def _timing(self, path: str, at: float, seconds: float, outcome: str) -> None:
        try:
            with self._lock, open(path, "a", encoding="ascii") as fh:
                fh.write(f"{at:.6f} {seconds:.6f} {outcome}\n")
        except OSError:
            pass

    def _results(self, result: WorkerResult) -> None:
        with self._lock:
            self.results.append(result)

    def _pause(self, failures: int, why: str, cap: float) -> None:
        """Exponential backoff with jitter before the next try (interrupted by a stop)."""
        delay = min(cap, BACKOFF_BASE * 2 ** min(failures - 1, 16)) * random.uniform(0.5, 1.0)
        if failures == 1 or failures % 10 == 0:
            self.log(f"worker: {why}; trying again (backoff {delay:.1f} s)")
        self._stopping.wait(delay)

    # one spec

    def _work(self, claim: dict) -> WorkerResult:
        spec = claim["spec"]
        spec_id = spec["id"]
        lease = claim["lease"]
        token = lease["token"]
        ttl = self._lease_seconds(lease)
        path = os.path.join(self.root, spec["path"]) if self.root else spec["path"]
        command = self.command.replace("{id}", shlex.quote(spec_id)).replace("{path}", shlex.quote(path))
        env = dict(os.environ, CHANT_SPEC_ID=spec_id, CHANT_SPEC_PATH=path, CHANT_LEASE_TOKEN=str(token),
                   CHANT_OWNER=self.owner)
        log_path = self._log_path(spec_id)
        started = time.monotonic()
        with open(log_path, "ab") as log_file:
            header = f"--- {_now()} {self.owner}: {spec_id} (lease token {token}): {command}\n"
            log_file.write(header.encode("utf-8"))
            log_file.flush()
            try:
                proc = subprocess.Popen(_argv(command), cwd=self.root or None, env=env,
                                        stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True, close_fds=True)
            except OSError as exc:  # nothing ran: the spec goes back to the queue untouched
                self._release(spec_id, token)
                self._summary(log_path, f"{spec_id}: the command could not start ({exc}): not completed; "
                                        "lease released")
                return WorkerResult(spec_id, "stopped", None, time.monotonic() - started)
        self.log(f"{spec_id}: claimed (token {token}); running: {command}")
        outcome = self._watch(proc, spec_id, token, ttl)
        seconds = time.monotonic() - started
        if outcome == "lost":
            result = WorkerResult(spec_id, "lost", proc.returncode, seconds)
            self._summary(log_path, f"{spec_id}: lost its lease: not completed (nothing written)")
            return result
        if outcome == "stopped":
            self._release(spec_id, token)
            self._summary(log_path, f"{spec_id}: stopped after {seconds:.1f} s (the worker is stopping): "
                                    "not completed; lease released")
            return WorkerResult(spec_id, "stopped", None, seconds)
        code = proc.returncode
        done = self._complete(spec_id, token, "success" if code == 0 else "failure")
        if done is None:
            self._summary(log_path, f"{spec_id}: lost its lease: not completed (nothing written)")
            return WorkerResult(spec_id, "lost", code, seconds)
        status = (done.get("spec") or {}).get("status", "completed" if code == 0 else "failed")
        if code == 0:
            text = f"{spec_id}: completed in {seconds:.1f} s"
        else:
            then = "needs attention" if status == "needs_attention" else "ready to retry"
            attempts = done.get("attempts")
            count = f", failure {attempts} (watch.failure.max_retries: {done.get('max_retries')})" \
                if attempts is not None else ""
            text = f"{spec_id}: failed (exit {code}) in {seconds:.1f} s{count}: {then}"
        self._summary(log_path, text)
        return WorkerResult(spec_id, status if code else "completed", code, seconds)

    def _lease_seconds(self, lease: dict) -> float:
        """The lease's length: the asked TTL, else its expiry less its start (ISO times)."""
        if self.ttl is not None:
            return self.ttl
        import datetime as dt

        try:
            start = dt.datetime.fromisoformat(str(lease["acquired_at"]).replace("Z", "+00:00"))
            end = dt.datetime.fromisoformat(str(lease["expires_at"]).replace("Z", "+00:00"))
            return max(0.1, (end - start).total_seconds())
        except (KeyError, ValueError):
            return 3600.0

    def _watch(self, proc: subprocess.Popen, spec_id: str, token: int, ttl: float) -> str:
        """Wait for the command, renewing the lease every ttl/3: ``"exited"``, ``"lost"``
        (command stopped, nothing to write) or ``"stopped"`` (by :meth:`stop`)."""
        ended = _Exit(proc)
        try:
            return self._watch_until(proc, ended, spec_id, token, ttl)
        finally:
            ended.close()

    def _watch_until(self, proc: subprocess.Popen, ended: _Exit, spec_id: str, token: int, ttl: float) -> str:
        every = ttl / 3
        next_renew = time.monotonic() + every
        failures = 0
        unreachable = False
        stop_at: float | None = None
        while True:
            now = time.monotonic()
            if self._stopping.is_set() and stop_at is None:
                stop_at = now + self.grace
            if stop_at is not None and (now >= stop_at or self._hurry.is_set()):
                self._end(proc)
                return "stopped"
            until = min(next_renew, stop_at) if stop_at is not None else next_renew
            if ended.wait(max(0.0, min(0.25, until - now))):
                return "exited"
            if time.monotonic() < next_renew:
                continue
            try:
                self.backend.call("lock_renew", spec=spec_id, token=token, ttl=ttl)
            except LOST as exc:
                self.log(f"{spec_id}: the lease is gone ({exc.message}); stopping its command")
                self._end(proc)
                return "lost"
            except Unavailable as exc:
                failures += 1
                unreachable = True
                delay = min(BACKOFF_CAP, every, BACKOFF_BASE * 2 ** min(failures - 1, 16)) * random.uniform(0.5, 1.0)
                if failures == 1 or failures % 10 == 0:
                    self.log(f"{spec_id}: cannot renew the lease ({exc.message}); the command keeps running, "
                             f"trying again (backoff {delay:.1f} s)")
                next_renew = time.monotonic() + delay
                continue
            except ChantError as exc:  # anything else: the lease cannot be trusted
                self.log(f"{spec_id}: renewal refused ({exc.message}); stopping its command")
                self._end(proc)
                return "lost"
            if unreachable:
                self.log(f"{spec_id}: the daemon answers again; lease re-asserted (token {token})")
                unreachable = False
            failures = 0
            next_renew = time.monotonic() + every

    def _complete(self, spec_id: str, token: int, outcome: str) -> dict | None:
        """``complete`` with the token, tried again while the daemon cannot take it; None
        when the lease is lost (refused: nothing was written)."""
        failures = 0
        #: when a try was sent that may have been done before its answer was lost (the
        #: daemon went away after it had the request): the end of that try, wall clock
        uncertain: float | None = None
        while True:
            try:
                return self.backend.call("complete", spec=spec_id, token=token, outcome=outcome)
            except LOST as exc:
                if uncertain is not None:
                    done = self._done_already(spec_id, outcome, uncertain)
                    if done is not None:
                        return done
                self.log(f"{spec_id}: completion refused ({exc.message})")
                return None
            except Unavailable as exc:
                if exc.details.get("maybe_done"):
                    uncertain = time.time()
                if self._hurry.is_set() or self._stopped_at is not None and \
                        time.monotonic() > self._stopped_at + self.grace:
                    self.log(f"{spec_id}: cannot report the result ({exc.message}); stopping without it")
                    return None
                failures += 1
                self._pause_always(failures, f"{spec_id}: cannot report the result ({exc.message})")

    def _done_already(self, spec_id: str, outcome: str, by: float) -> dict | None:
        """After a ``complete`` whose answer was lost (sent, the daemon gone before it
        answered, at the latest at ``by``): the spec as it is, if it shows that result
        written no later than then (the lost try was done; a result written later is
        another worker's, who took the spec once this lease ran out), else None."""
        try:
            shown = self.backend.call("show", spec=spec_id)
        except ChantError:
            return None
        if not isinstance(shown, dict):
            return None
        status = shown.get("status")
        if outcome == "success":
            ok, written = status == "completed", shown.get("completed_at")
        else:
            retry = (shown.get("frontmatter") or {}).get("retry_state")
            ok = status in ("failed", "needs_attention")
            written = retry.get("last_retry_time") if isinstance(retry, dict) else None
        if not ok or not _no_later(written, by):
            return None
        return {"spec": {"id": spec_id, "status": status}}

    def _pause_always(self, failures: int, why: str) -> None:
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(failures - 1, 16)) * random.uniform(0.5, 1.0)
        if failures == 1 or failures % 10 == 0:
            self.log(f"{why}; trying again (backoff {delay:.1f} s)")
        self._hurry.wait(delay)

    def _release(self, spec_id: str, token: int) -> None:
        for failures in range(1, 6):
            try:
                self.backend.call("lock_release", spec=spec_id, token=token)
                return
            except LOST:
                return  # not ours any more: nothing to give back
            except Unavailable as exc:
                if failures == 5:
                    self.log(f"{spec_id}: cannot release the lease ({exc.message}); it expires by itself")
                    return
                time.sleep(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** failures) * random.uniform(0.5, 1.0))
            except ChantError as exc:
                self.log(f"{spec_id}: cannot release the lease ({exc.message}); it expires by itself")
                return

    def _end(self, proc: subprocess.Popen) -> None:
        """Stop a command: SIGTERM to its process group, SIGKILL after KILL_WAIT."""
        for sig, wait in ((signal.SIGTERM, KILL_WAIT), (signal.SIGKILL, KILL_WAIT)):
            if proc.poll() is not None:
                return
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    # logs

    def _log_path(self, spec_id: str) -> str:
        from .store import private_dir

        folder = os.path.join(self.root, ".chant", "logs") if self.root else os.path.join(".chant", "logs")
        try:
            folder = private_dir(folder)
        except Exception:  # noqa: BLE001 - a log folder we cannot make: the command still runs
            os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f"{spec_id}.log")

    def _summary(self, log_path: str, text: str) -> None:
        try:  # the spec's log first: whoever reads the line on stderr finds it there too
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(f"--- {_now()} {text}\n")
        except OSError:
            pass
        self.log(text)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _local_root() -> str | None:
    from .store import find_root

    try:
        return find_root()
    except ChantError:
        return None


class _Exit:
    """Waits for a command's end without polling: a pidfd (Linux 5.3 and later) becomes
    readable when the process exits, so the worker wakes at once, not at the next step of
    ``Popen.wait``'s sleep loop (up to 50 ms later, with a wakeup each step; a command of a
    few milliseconds was seen to end 2 ms late on average). Elsewhere, ``Popen.wait``."""

    __slots__ = ("proc", "fd", "poller")

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.fd: int | None = None
        self.poller = None
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            import select

            try:
                self.fd = pidfd_open(proc.pid)
            except OSError:  # an old kernel, or a seccomp policy that refuses it
                return
            self.poller = select.poll()
            self.poller.register(self.fd, select.POLLIN)

    def wait(self, timeout: float) -> bool:
        """Whether the command ended (and was reaped) within ``timeout`` seconds."""
        if self.poller is None:
            try:
                self.proc.wait(timeout=timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        if not self.poller.poll(timeout * 1000.0):
            return False
        self.proc.wait()  # it has exited: reaped at once
        return True

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


#: The agent command's keeper, where ``setpriv`` can ask the kernel for a signal when its
#: parent dies (util-linux, on every mainstream Linux): a shell in the command's own process
#: group that runs it and waits. Should the worker die without a word (``kill -9``, the OOM
#: killer), the kernel sends the keeper SIGHUP, and it kills its whole process group: the
#: agent never runs on while the lease it ran under expires and another worker takes the
#: spec. A SIGTERM from the worker (its stop) goes to the whole group, the agent included;
#: the keeper outwaits it, so the worker still sees the agent's own end and exit status.
#: The command gets a shell of its own (``/bin/sh -c``), as without the keeper: in a subshell
#: of the keeper (0.8 ms less CPU a spec) its ``$$`` would be the keeper's PID.
_KEEPER = (
    'trap "kill -KILL 0" HUP; trap ":" TERM INT; '
    '/bin/sh -c "$1" & child=$!; status=0; '
    'while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done; exit "$status"'
)


def _no_later(stamp, by: float) -> bool:
    """Whether the ISO time ``stamp`` (second precision, UTC) is no later than ``by`` (unix
    time, rounded up to its second); an unreadable or missing stamp says no."""
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return False
    return when <= int(by) + 1


@functools.lru_cache(maxsize=1)
def _setpriv() -> str | None:
    """Where ``setpriv`` is, looked up once (a walk of PATH per spec is not free)."""
    import shutil

    return shutil.which("setpriv")


def _argv(command: str) -> list[str]:
    """How the agent command is started: under the keeper when ``setpriv`` is there, else
    ``/bin/sh -c`` alone (then a worker killed with -9 leaves its command running)."""
    setpriv = _setpriv()
    if setpriv is None or not sys.platform.startswith("linux"):
        return ["/bin/sh", "-c", command]
    return [setpriv, "--pdeathsig", "HUP", "/bin/sh", "-c", _KEEPER, "chant-agent", command]
