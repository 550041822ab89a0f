"""Notifications: telling people about a spec with errors or a commit naming an unknown spec.

Owns: the ``scale.daemon.git_watch.notify`` settings (:class:`NotifySettings`, checked once at
start), and :class:`Notifier`, which takes a notification from the daemon and delivers it on
one channel, in order, from a thread of its own:

* ``desktop``: ``notify-send`` (found on ``PATH`` at start, run with the timeout); without it,
  or when it fails, the notification is written to the log (WARNING, ``chantd.notify``);
* ``slack``: a POST of ``{"text": ...}`` to a Slack incoming webhook;
* ``webhook``: a POST of one JSON event, schema :data:`SCHEMA` (docs/git.md, "Notifications");
* ``none``: nothing is taken.

An HTTP answer 2xx is success; 5xx, 408, 429, a timeout or a connection error is retried up
to ``retries`` times with exponential backoff and jitter (capped); any other answer (a 3xx,
which is not followed, or a 4xx) gives up at once. A retry after a timeout may deliver twice:
the webhook's ``id`` is the same in every attempt, for a receiver to tell. Each
give-up is one WARNING line with the reason, never a traceback; a URL in a log line or an
error shows its scheme and host only (a Slack webhook's path is its secret).

Must not: make the caller wait. :meth:`Notifier.notify` appends to a bounded queue and
returns (a full queue drops its oldest notification, counted); a slow or dead receiver costs
the daemon's event loop nothing, and :meth:`Notifier.close` gives up after its timeout.
Nor import anything heavy at import time: ``urllib.request`` is loaded by the thread, for
the HTTP channels only. Deciding what deserves a notification is the daemon's (it calls
:meth:`Notifier.notify`); this module only filters on the two ``on_*`` switches.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chantlib._version import VERSION
from chantlib.errors import InvalidValue

__all__ = ["CHANNELS", "SCHEMA", "NotifySettings", "NotifyStats", "Notifier"]

log = logging.getLogger("chantd.notify")

#: the values of ``scale.daemon.git_watch.notify.channel``
CHANNELS = ("desktop", "slack", "webhook", "none")
#: the ``schema`` of a webhook's event; a change that breaks a receiver gets a new number
SCHEMA = "chant.notification/1"
#: the kinds ``on_invalid_spec`` and ``on_unknown_ref`` switch off; every other kind passes
FILTERED_KINDS = {"invalid_spec": "on_invalid_spec", "unknown_ref": "on_unknown_ref"}

PREFIX = "scale.daemon.git_watch.notify"
URL_ENV = "CHANT_NOTIFY_URL"
MAX_RETRIES = 10
#: answers worth another attempt; any other non-2xx is final
RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


def redact(url: str) -> str:
    """``url`` for a log line or an error: its scheme and host, the rest (a Slack webhook's
    path, a token in a query) elided."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]  # never user:password@
    except ValueError:
        return "<a malformed URL>"
    if not parts.scheme:
        return "<a malformed URL>"
    if not host:
        return f"{parts.scheme}:…"
    tail = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{host}{tail}"


@dataclass(frozen=True)
class NotifySettings:
    """What :class:`Notifier` does, resolved once (:meth:`from_config`).

    ``timeout`` bounds each attempt (connecting, and each wait for the receiver; for
    ``notify-send``, its whole run); ``retries`` further attempts follow a failed one that
    is worth retrying, the n-th after a pause of ``backoff * 2**n`` seconds (at most
    ``backoff_max``), of which a random part up to half is taken off (so that many daemons
    do not retry in step); ``queue_size`` notifications wait at most. ``backoff``,
    ``backoff_max`` and ``queue_size`` are not config keys (tests make them small)."""

    channel: str = "desktop"
    url: str | None = field(default=None, repr=False)  # a secret, for Slack: see :attr:`target`
    timeout: float = 5.0
    retries: int = 3
    on_invalid_spec: bool = True
    on_unknown_ref: bool = True
    backoff: float = 1.0
    backoff_max: float = 30.0
    queue_size: int = 256

    def __post_init__(self) -> None:
        # a misuse by code, not a config mistake (from_config checks those with their key)
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {self.channel!r}")
        if self.channel in ("slack", "webhook") and not self.url:
            raise ValueError(f"the {self.channel} channel needs a url")
        if not (self.timeout > 0 and self.retries >= 0 and self.backoff >= 0 and self.backoff_max >= 0
                and self.queue_size >= 1):
            raise ValueError(f"out of range: {self!r}")

    @property
    def target(self) -> str:
        """Where notifications go, fit for a log line (no secret in it)."""
        if self.channel in ("slack", "webhook") and self.url:
            return f"{self.channel} {redact(self.url)}"
        return self.channel

    @classmethod
    def from_config(cls, config, *, environ: Mapping[str, str] | None = None, **overrides: Any) -> NotifySettings:
        """The settings in ``config`` (a :class:`chantlib.config.Config`) under
        ``scale.daemon.git_watch.notify``, ``CHANT_NOTIFY_URL`` (in ``environ``, default
        ``os.environ``) winning over its ``url``; each wrong value is an
        :class:`~chantlib.errors.InvalidValue` naming its key. ``overrides`` set fields
        as given (``backoff=0.01`` in a test)."""
        env = os.environ if environ is None else environ

        def get(key: str) -> Any:
            return config.get(f"{PREFIX}.{key}")

        channel = get("channel")
        if channel is None or channel is False:  # `channel: null`, and YAML reads `off` as false
            channel = "none"
        if not isinstance(channel, str) or channel.strip().lower() not in CHANNELS:
            raise InvalidValue(f"config {PREFIX}.channel must be desktop, slack, webhook or none, got {channel!r}")
        channel = channel.strip().lower()

        switches = {}
        for key in ("on_invalid_spec", "on_unknown_ref"):
            value = get(key)
            if not isinstance(value, bool):
                raise InvalidValue(f"config {PREFIX}.{key} must be true or false, got {value!r}")
            switches[key] = value

        timeout = _number(get("timeout"), f"config {PREFIX}.timeout", "a positive number of seconds")
        if not 0 < timeout < math.inf:
            raise InvalidValue(f"config {PREFIX}.timeout must be a positive number of seconds, got {get('timeout')!r}")
        retries_value = get("retries")
        retries = _number(retries_value, f"config {PREFIX}.retries", f"a whole number from 0 to {MAX_RETRIES}")
        if retries != int(retries) or not 0 <= retries <= MAX_RETRIES:
            raise InvalidValue(f"config {PREFIX}.retries must be a whole number from 0 to {MAX_RETRIES}, "
                               f"got {retries_value!r}")

        source, url = (URL_ENV, env[URL_ENV]) if env.get(URL_ENV) else (f"config {PREFIX}.url", get("url"))
        if url is not None and not isinstance(url, str):
            raise InvalidValue(f"{source} must be an http:// or https:// URL, got {url!r}")
        url = (url or "").strip() or None
        if url is not None:
            _check_url(url, source)
        if channel in ("slack", "webhook") and url is None:
            raise InvalidValue(f"config {PREFIX}.channel is {channel} but no URL is set: "
                               f"set {PREFIX}.url or {URL_ENV}")

        values: dict[str, Any] = {"channel": channel, "url": url, "timeout": timeout, "retries": int(retries),
                                  **switches}
        values.update(overrides)
        return cls(**values)


def _number(value: Any, source: str, expected: str) -> float:
    if isinstance(value, bool):  # YAML's true is an int to Python, never a number here
        raise InvalidValue(f"{source} must be {expected}, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidValue(f"{source} must be {expected}, got {value!r}") from None
    if math.isnan(number):
        raise InvalidValue(f"{source} must be {expected}, got {value!r}")
    return number


def _check_url(url: str, source: str) -> None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise InvalidValue(f"{source} is not a valid URL ({redact(url)})") from None
    if "://" not in url:  # `hooks.slack.com/services/...`, `localhost:8080/hook`
        raise InvalidValue(f"{source} must be an http:// or https:// URL, got one without http:// or https://")
    # never file:// or ftp://: urllib would read a local file or speak another protocol
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidValue(f"{source} must be an http:// or https:// URL, got {redact(url)}")


@dataclass(frozen=True)
class NotifyStats:
    """What a :class:`Notifier` did since it was made (:meth:`Notifier.stats`).

    ``sent``: delivered (a 2xx, or ``notify-send`` exited 0); ``logged``: written to the log
    instead, as designed (the desktop channel without ``notify-send``); ``failed``: given up
    (retries spent, an answer not worth retrying, ``notify-send`` failed: the notification
    was logged, or the daemon stopped); ``dropped``: never tried (pushed out of a full
    queue, or still queued when :meth:`Notifier.close` gave up); ``retried``: attempts after
    a first; ``pending``: waiting or in flight now."""

    channel: str
    sent: int = 0
    logged: int = 0
    failed: int = 0
    dropped: int = 0
    retried: int = 0
    pending: int = 0


@dataclass(frozen=True)
class _Note:
    id: str
    kind: str
    message: str
    time: float
    details: dict


class _Outcome:
    """One attempt's result: ``ok``, or a reason and whether another attempt may help."""

    __slots__ = ("ok", "reason", "retry", "retry_after")

    def __init__(self, ok: bool, reason: str = "", retry: bool = False, retry_after: float | None = None) -> None:
        self.ok = ok
        self.reason = reason
        self.retry = retry
        self.retry_after = retry_after


class Notifier:
    """Delivers notifications on the channel of ``settings``, for the repository at ``root``.

    :meth:`notify` never blocks: it queues and returns. One daemon thread (``chantd-notify``,
    started here, none for the ``none`` channel) sends them in the order they came.
    ``opener`` (tests, a proxy of one's own) is what sends an HTTP request:
    ``opener.open(request, timeout=...)`` as a :class:`urllib.request.OpenerDirector` has it;
    the default follows no redirect and honours the ``*_proxy`` environment. ``clock`` gives
    an event's time (default :func:`time.time`)."""

    def __init__(self, settings: NotifySettings, root: str, *, opener: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.root = str(root)
        self.clock = clock
        self._opener = opener
        self._name = os.path.basename(os.path.normpath(self.root)) or self.root
        self._notify_send = shutil.which("notify-send") if settings.channel == "desktop" else None
        self._random = random.Random()
        self._cond = threading.Condition()
        self._queue: collections.deque[_Note] = collections.deque()
        self._busy = False
        self._closed = False
        self._overflowing = False  # a full queue is logged once, not once per drop
        self._abort = threading.Event()  # close() gave up: no more attempts or pauses
        self._counts = dict.fromkeys(("sent", "logged", "failed", "dropped", "retried"), 0)
        self._thread: threading.Thread | None = None
        if settings.channel == "none":
            return
        if settings.channel == "desktop" and self._notify_send is None:
            log.debug("notify-send is not on PATH: desktop notifications go to this log")
        self._thread = threading.Thread(target=self._run, name="chantd-notify", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"Notifier({self.settings.target}, root={self.root!r})"

    # the caller's side: never waits for a receiver

    def notify(self, kind: str, message: str, /, **details: Any) -> bool:
        """Queue a notification of ``kind`` (``invalid_spec``, ``unknown_ref``, or any other
        word, e.g. ``checkout``) and return at once: True if it was queued, False if the
        channel is ``none``, its ``on_*`` switch is off, or the notifier is closed.
        ``details`` (JSON-able values; anything else is sent as its ``str``) go in the
        webhook's event. A full queue drops its oldest notification to take this one."""
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"a notification's kind is a non-empty string, got {kind!r}")
        settings = self.settings
        switch = FILTERED_KINDS.get(kind)
        if self._thread is None or (switch is not None and not getattr(settings, switch)):
            return False
        note = _Note(os.urandom(16).hex(), kind, str(message), self.clock(), details)
        overflow = False
        with self._cond:
            if self._closed:
                return False
            if len(self._queue) >= settings.queue_size:
                self._queue.popleft()
                self._counts["dropped"] += 1
                overflow, self._overflowing = not self._overflowing, True
            self._queue.append(note)
            self._cond.notify_all()
        if overflow:
            log.warning("the notification queue is full (%d waiting for %s): dropping the oldest "
                        "(is the receiver slow or down?)", settings.queue_size, settings.target)
        return True

    def stats(self) -> NotifyStats:
        """The counters, as one frozen record (for ``chant_notifications_total``)."""
        with self._cond:
            return NotifyStats(self.settings.channel, pending=len(self._queue) + self._busy, **self._counts)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or in flight (at most ``timeout`` seconds); whether
        that happened."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                if self._thread is None or not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Take no more notifications, give the queue up to ``timeout`` seconds to drain,
        then stop: what is still queued is dropped (counted, one WARNING line), an attempt
        in flight is the last (its thread, a daemon thread, ends within the settings'
        timeout, and nobody waits for it). Closing again does nothing."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self.wait_idle(timeout)
        self._abort.set()
        with self._cond:
            left = len(self._queue)
            self._queue.clear()
            self._counts["dropped"] += left
            self._cond.notify_all()
        if left:
            log.warning("%d notifications for %s were not sent: the daemon is stopping", left, self.settings.target)
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))  # at once, unless an attempt is in flight

    # the thread's side

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._abort.is_set():
                    self._overflowing = False
                    self._cond.wait()
                if self._abort.is_set():
                    return
                note = self._queue.popleft()
                self._busy = True
            try:
                result = self._deliver(note)
            except Exception:  # a bug of ours: say so, and go on with the next one
                log.exception("notification %s (%s) failed unexpectedly", note.kind, self.settings.target)
                result = "failed"
            with self._cond:
                self._counts[result] += 1
                self._busy = False
                self._cond.notify_all()

    def _deliver(self, note: _Note) -> str:
        """Send ``note``; the counter it ends in (``sent``, ``logged``, ``failed``)."""
        channel = self.settings.channel
        if channel == "desktop":
            return self._desktop(note)
        body = self._slack_body(note) if channel == "slack" else self._webhook_body(note)
        return self._post(note, body)

    def _log_note(self, note: _Note, why: str) -> None:
        log.warning("notification (%s) for %s%s: %s", note.kind, self._name, why, note.message)

    def _desktop(self, note: _Note) -> str:
        import subprocess

        if self._notify_send is None:
            self._log_note(note, "")
            return "logged"
        argv = [self._notify_send, "--app-name=chant", "--", f"chant: {self._name}", note.message]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=self.settings.timeout, check=False)
        except subprocess.TimeoutExpired:
            reason = f"notify-send did not finish within {self.settings.timeout:g} s"
        except OSError as exc:
            reason = f"notify-send could not run ({exc.strerror or exc})"
        else:
            if done.returncode == 0:
                log.debug("notification %s sent with notify-send", note.kind)
                return "sent"
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            reason = f"notify-send exited with {done.returncode}" + (f" ({said[-1][:200]})" if said else "")
        self._log_note(note, f" ({reason})")
        return "failed"

    def _slack_body(self, note: _Note) -> bytes:
        # Slack reads &, < and > in text as markup (links, mentions): a spec's text is shown as is
        text = f"[{self._name}] {note.message}"
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return json.dumps({"text": text}).encode()

    def _webhook_body(self, note: _Note) -> bytes:
        event = {
            "schema": SCHEMA,
            "id": note.id,
            "kind": note.kind,
            "message": note.message,
            "repository": self.root,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(note.time)),
            "details": note.details,
        }
        try:
            return json.dumps(event, default=str, allow_nan=False, separators=(",", ":")).encode()
        except ValueError:  # a NaN, a cycle: the details as text, rather than no notification
            event["details"] = {key: str(value) for key, value in note.details.items()}
            return json.dumps(event, separators=(",", ":")).encode()

    def _post(self, note: _Note, body: bytes) -> str:
        import urllib.request

        settings = self.settings
        assert settings.url is not None
        request = urllib.request.Request(settings.url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "User-Agent": f"chantd/{VERSION}",
        })
        opener = self._opener or _default_opener()
        attempt = 0
        while True:
            outcome = self._attempt(opener, request)
            if outcome.ok:
                log.debug("notification %s sent to %s%s", note.kind, settings.target,
                          f" (attempt {attempt + 1})" if attempt else "")
                return "sent"
            if not outcome.retry or attempt >= settings.retries or self._abort.is_set():
                tries = f"after {attempt + 1} attempts" if attempt else "at the first attempt"
                if outcome.retry and self._abort.is_set() and attempt < settings.retries:
                    tries += ", the daemon is stopping"
                log.warning("notification %s not sent to %s: %s (%s)", note.kind, settings.target, outcome.reason,
                            tries)
                return "failed"
            pause = min(settings.backoff_max, settings.backoff * 2**attempt)
            pause -= self._random.uniform(0, pause / 2)
            if outcome.retry_after is not None:  # a 429 or 503 that says when: no sooner, within the cap
                pause = max(pause, min(outcome.retry_after, settings.backoff_max))
            log.debug("notification %s to %s: %s; retrying in %.2f s", note.kind, settings.target, outcome.reason,
                      pause)
            if self._abort.wait(pause):
                log.warning("notification %s not sent to %s: %s (after %d attempts, the daemon is stopping)",
                            note.kind, settings.target, outcome.reason, attempt + 1)
                return "failed"
            attempt += 1
            with self._cond:
                self._counts["retried"] += 1

    def _attempt(self, opener: Any, request: Any) -> _Outcome:
        """One POST; every way it can fail is an :class:`_Outcome`, never an exception."""
        import http.client
        import urllib.error

        timeout = self.settings.timeout
        try:
            with opener.open(request, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:  # an answer, not 2xx (a 3xx too: redirects are not followed)
            with exc:
                status = exc.code
                retry_after = _seconds(exc.headers.get("Retry-After")) if exc.headers else None
                try:
                    said = exc.read(200).decode("utf-8", "replace").strip()
                except (OSError, http.client.HTTPException):
                    said = ""
            first = said.splitlines()[0][:200] if said else ""
            reason = f"HTTP {status}" + (f" ({first})" if first else "")
            return _Outcome(False, reason, retry=status in RETRY_STATUSES, retry_after=retry_after)
        except urllib.error.URLError as exc:
            cause = exc.reason
            if isinstance(cause, TimeoutError):
                return _Outcome(False, f"no answer within {timeout:g} s", retry=True)
            return _Outcome(False, f"cannot connect ({_why(cause)})", retry=True)
        except TimeoutError:
            return _Outcome(False, f"no answer within {timeout:g} s", retry=True)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return _Outcome(False, f"the connection failed ({_why(exc)})", retry=True)
        if 200 <= status < 300:
            return _Outcome(True)
        return _Outcome(False, f"HTTP {status}", retry=status in RETRY_STATUSES)


def _why(exc: object) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (its date form is not worth a parser here)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < math.inf else None


_OPENER: Any = None


def _default_opener() -> Any:
    """urllib's opener without redirects: a webhook that answers 3xx has moved, which is a
    configuration to fix, and a POST that followed it would change into a GET."""
    global _OPENER
    if _OPENER is None:
        import urllib.request

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, req, fp, code, msg, headers, newurl):
                return None  # urllib then raises the 3xx as an HTTPError

        _OPENER = urllib.request.build_opener(NoRedirect)
    return _OPENER
