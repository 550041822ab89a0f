"""Watch latency: a spec file written (new, or edited in place), then a persistent
connection polls until the daemon's answer shows it. Probes are removed and the edit undone
afterwards, also after an interrupted run (:func:`restore_leftovers`)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time

from chantlib.client import DaemonClient, DaemonGone, DaemonUnavailable
from chantlib.errors import ChantError

WATCH_TIMEOUT = 10.0  # seconds for one change to become visible


PROBE_PREFIX = "2099-12-31-"  # new spec files written by the watch benchmark: 2099-12-31-SSS-wch


PROBE_SUFFIX = "-wch"


BACKUP = "bench-watch-backup.json"  # at the repository root: the edited spec's bytes, until restored


WATCH_ROWS = [("new", "new spec file written"), ("edit", "existing spec edited in place")]


_PROBE = """\
---
type: code
status: pending
---
# Watch probe {token}

Written by the benchmark runner to time the daemon's file watcher; removed when it is done.
"""


def _probe_paths(specs_dir: str) -> list[str]:
    try:
        names = os.listdir(specs_dir)
    except OSError:
        return []
    return [os.path.join(specs_dir, n) for n in names if n.startswith(PROBE_PREFIX) and n.endswith(PROBE_SUFFIX + ".md")]


def restore_leftovers(root: str, log) -> None:
    """Undo what an interrupted watch benchmark left: probe files, an edited spec."""
    for path in _probe_paths(os.path.join(root, ".chant", "specs")):
        log(f"removing a probe left by an interrupted run: {path}")
        with contextlib.suppress(OSError):
            os.unlink(path)
    backup = os.path.join(root, BACKUP)
    if os.path.isfile(backup):
        try:
            with open(backup, encoding="utf-8") as fh:
                data = json.load(fh)
            log(f"restoring {data['path']} edited by an interrupted run")
            with open(data["path"], "w", encoding="utf-8", newline="") as fh:
                fh.write(data["text"])
            os.unlink(backup)
        except (OSError, ValueError, KeyError) as exc:
            log(f"warning: cannot restore from {backup}: {exc}")


def cli_request(argv: list[str]) -> tuple[str, dict]:
    """The operation and parameters `chant <argv>` sends to a daemon, from the CLI's own
    parser and operation table: a poll then asks exactly what a user's command asks (with
    the code under test, whichever version that is)."""
    from chant_cli.main import _operation, build_parser
    from chantlib.backends import prepare

    args = build_parser(argv).parse_args(argv)
    op, params, _renderer = _operation(args)
    return op, prepare(op, params)


class _Probe:
    """How a poll sees a write: ``search`` (a query for the new ID or word, answered from the
    index) or ``list`` (the request of `chant list --ready`, decoded in full as the CLI
    decodes it, looked through for the new ID or title)."""

    def __init__(self, via: str) -> None:
        self.via = via
        self.request = cli_request(["list", "--ready"]) if via == "list" else None

    def count(self, client: DaemonClient, kind: str, value: str) -> int:
        """How many specs the daemon shows with this ``id``, an ID starting with this
        ``prefix``, or this word in the ``title``."""
        if self.via == "search":
            q = {"id": f"id:{value}", "prefix": f"id:{value}*", "title": f"title:{value}"}[kind]
            return client.call("search", {"q": q, "limit": 5})["total"]
        op, params = self.request
        result = client.call(op, params)
        if kind == "title":
            titles = _column(result, "title")
            # the word among a title's words; the substring test first spares a split of
            # every title per poll (the probe's own cost, not the answer's)
            return sum(1 for title in titles if title and value in title and value in title.split())
        ids = listed_ids(result)
        if kind == "id":
            return sum(1 for spec_id in ids if spec_id == value)
        return sum(1 for spec_id in ids if spec_id.startswith(value))


def listed_ids(result: dict):
    """The IDs of a ``list`` answer, in either form (``form=columns``, what the CLI asks for
    when it prints lines, is read by column, as the CLI reads it)."""
    return _column(result, "id")


def _column(result: dict, name: str):
    from chantlib.columns import unpack

    specs = result["specs"]
    return unpack(result)[name] if isinstance(specs, dict) else [spec.get(name) for spec in specs]


def _poll(check, want, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while True:
        if want(check()):
            return True
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.001)


def _write_in_place(path: str, text: str) -> None:
    with open(path, "r+", encoding="utf-8", newline="") as fh:  # truncate and write, as editors do
        fh.write(text)
        fh.truncate()


class _Latencies:
    """The samples of one watch-latency series: a write, then a poll until the daemon shows it."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.missed = 0
        self.error: str | None = None

    def visible(self, check, t0: float) -> None:
        if _poll(check, lambda total: total >= 1, WATCH_TIMEOUT):
            self.samples.append(time.perf_counter() - t0)
        else:
            self.missed += 1
            self.error = self.error or f"not visible within {WATCH_TIMEOUT:g}s"
        time.sleep(0.02)

    def failed(self, exc: Exception) -> None:
        self.error = self.error or f"{type(exc).__name__}: {exc}"

    def result(self) -> dict:
        return {"samples": self.samples, "missed": self.missed, "error": self.error}


def record_series(out: dict, key: str, what: str, measure) -> None:
    """``out[key] = measure()``; a failure is one line in ``out["errors"]``, the run goes on."""
    try:
        out[key] = measure()
    except (DaemonUnavailable, ChantError, DaemonGone, OSError) as exc:
        out["errors"].append(f"{what}: {type(exc).__name__}: {exc}")


def watch_latency(root: str, edit_id: str | None, samples: int, log, via: str = "search") -> dict:
    """{"new": {...}, "edit": {...}}: seconds from a write to its visibility through ``via``
    (see :class:`_Probe`)."""
    specs_dir = os.path.join(root, ".chant", "specs")
    out = {}
    created: list[str] = []
    probe = _Probe(via)
    with DaemonClient.connect(root, timeout=30) as client:
        # new files
        lat = _Latencies()
        try:
            for i in range(samples):
                seq = "".join("0123456789abcdefghijklmnopqrstuvwxyz"[(i // 36 ** p) % 36] for p in (2, 1, 0))
                spec_id = f"{PROBE_PREFIX}{seq}{PROBE_SUFFIX}"
                path = os.path.join(specs_dir, spec_id + ".md")
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(_PROBE.format(token=f"wpn{i}x"))
                t0 = time.perf_counter()
                created.append(path)
                lat.visible(lambda spec_id=spec_id: probe.count(client, "id", spec_id), t0)
        except (ChantError, DaemonGone, OSError) as exc:
            lat.failed(exc)
        finally:
            for path in created:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            if created:
                with contextlib.suppress(ChantError, DaemonGone, OSError):
                    gone = _poll(lambda: probe.count(client, "prefix", PROBE_PREFIX), lambda total: total == 0, 30.0)
                    if not gone:
                        log("warning: the daemon still shows probe specs 30 s after they were removed")
        out["new"] = lat.result()

        # in-place edits of one existing spec (its bytes kept in a backup file until restored)
        lat = _Latencies()
        if edit_id is None:
            out["edit"] = {"samples": [], "missed": 0, "error": "no spec to edit"}
            return out
        try:
            path = os.path.join(root, client.call("show", {"spec": edit_id})["path"])
        except (ChantError, DaemonGone, OSError, KeyError, TypeError) as exc:
            out["edit"] = {"samples": [], "missed": 0, "error": f"show {edit_id}: {exc}"}
            return out
        if not os.path.isabs(path) or not os.path.isfile(path):
            path = os.path.join(specs_dir, edit_id + ".md")
        with open(path, encoding="utf-8", newline="") as fh:
            original = fh.read()
        title = re.search(r"^# .*$", original.split("\n---", 1)[-1], re.M)
        if title is None:
            out["edit"] = {"samples": [], "missed": 0, "error": f"no title line in {path}"}
            return out
        backup = os.path.join(root, BACKUP)
        with open(backup, "w", encoding="utf-8") as fh:
            json.dump({"path": path, "text": original}, fh)
        last = None
        try:
            head, sep, body = original.partition(title.group(0))
            for k in range(samples):
                token = f"wpe{k}x"
                _write_in_place(path, f"{head}{sep} {token}{body}")
                t0 = time.perf_counter()
                last = token
                lat.visible(lambda token=token: probe.count(client, "title", token), t0)
        except (ChantError, DaemonGone, OSError) as exc:
            lat.failed(exc)
        finally:
            _write_in_place(path, original)
            with contextlib.suppress(OSError):
                os.unlink(backup)
            if last is not None:
                with contextlib.suppress(ChantError, DaemonGone, OSError):
                    if not _poll(lambda: probe.count(client, "title", last), lambda total: total == 0, 30.0):
                        log(f"warning: the daemon still shows the edit of {edit_id} 30 s after it was undone")
        out["edit"] = lat.result()
    return out
