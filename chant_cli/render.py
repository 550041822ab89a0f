"""Turning operation results into text. One renderer per command, shared by every backend.

The result of an operation is the same JSON-able data in direct and daemon mode, and this
module is the only place that turns it into lines, so both modes print the same bytes.
stdout carries data; warnings and notes go to stderr. Import-light by design.
"""

from __future__ import annotations

import json
import os
import sys

ICONS = {
    "pending": "○",
    "in_progress": "◐",
    "paused": "◑",
    "completed": "●",
    "failed": "✗",
    "needs_attention": "⚠",
    "ready": "◕",
    "blocked": "⊗",
    "cancelled": "✓",
}

_COLORS = {
    "pending": "37",
    "in_progress": "33",
    "paused": "36",
    "completed": "32",
    "failed": "31",
    "needs_attention": "33",
    "ready": "36",
    "blocked": "31",
    "cancelled": "2",
}


class Out:
    """Where rendered text goes, and whether it may be coloured."""

    def __init__(self, stdout=None, stderr=None, color: bool | None = None) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        if color is None:
            color = (
                not os.environ.get("NO_COLOR")
                and os.environ.get("TERM") != "dumb"
                and hasattr(self.stdout, "isatty")
                and self.stdout.isatty()
            )
        self.color = bool(color)

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def line(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def note(self, text: str) -> None:
        self.stderr.write(text + "\n")

    def warn(self, text: str) -> None:
        self.stderr.write(f"warning: {text}\n")

    def json(self, data) -> None:
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _display_status(spec: dict) -> str:
    if spec.get("blocked") and spec["status"] == "pending":
        return "blocked"
    return spec["status"]


#: the keys of a spec object that :func:`spec_line` reads: what `list` asks the daemon for
#: when it prints lines (a 200,000-spec repository answers tens of thousands of specs)
LINE_FIELDS = ("id", "title", "status", "type", "blocked", "approval", "held")


class _Row:
    """One spec of a ``form=columns`` answer, read as :func:`spec_line` reads a spec object."""

    __slots__ = ("_at", "_values")

    def __init__(self, at: dict, values: tuple) -> None:
        self._at, self._values = at, values  # at: key -> its column

    def get(self, key: str, default=None):
        at = self._at.get(key)
        return default if at is None else self._values[at]

    def __getitem__(self, key: str):
        return self._values[self._at[key]]


def spec_line(out: Out, spec: dict) -> str:
    """``<id> <icon> <title>[ marker]``, as upstream's ``chant list``."""
    status = _display_status(spec)
    icon = "⚡" if spec.get("type") == "conflict" else ICONS.get(status, "?")
    icon = out.paint(icon, _COLORS.get(status, "0"))
    marker = ""
    approval = spec.get("approval")
    if approval:
        if approval.get("status") == "rejected":
            marker = " " + out.paint("[rejected]", "31")
        elif approval.get("status") == "approved":
            marker = " " + out.paint("[approved]", "32")
        elif approval.get("required"):
            marker = " " + out.paint("[needs approval]", "33")
    if spec.get("held"):  # ready by the rules, but the queue holds it back (docs/cli.md)
        marker += " " + out.paint("[not queued: lint error]", "31")
    title = spec.get("title") or "(no title)"
    return f"{out.paint(spec['id'], '36')} {icon} {title}{marker}"


def warnings(out: Out, result) -> None:
    """An operation's warnings, on stderr, in every mode and with or without ``--json``."""
    if isinstance(result, dict):
        for text in result.get("warnings") or ():
            out.warn(text)


def json_result(result: dict) -> dict:
    """A result as ``--json`` prints it: ``warnings`` only when there are some, so an object
    keeps upstream's shape (lint's ``{diagnostics, passed, warned, failed, total}``) when
    there is nothing to say."""
    if result.get("warnings"):
        return result
    return {k: v for k, v in result.items() if k != "warnings"}


# --- one renderer per command -----------------------------------------------------------------


def render_list(out: Out, result: dict, args) -> int:
    specs = result["specs"]
    if isinstance(specs, dict):  # form=columns (what the command asks for, see _list_fields)
        from chantlib.columns import unpack

        columns = unpack(result)
        count = result["count"]
    else:
        columns = None
        count = len(specs)
    if args.count:
        out.line(str(count))
        return 0
    if args.json:
        if columns is not None:
            from chantlib.columns import rows_of

            specs = rows_of(result)
        out.json(specs)
        return 0
    if not count:
        if args.ready and args.labels:
            out.note("No ready specs with specified labels.")
        elif args.ready:
            out.note("No ready specs.")
        elif args.labels:
            out.note("No specs with specified labels.")
        elif args.status or args.type or args.project:
            out.note("No specs match.")
        else:
            out.note('No specs. Create one with `chant add "description"`')
        return 0
    if columns is None:
        for spec in specs:
            out.line(spec_line(out, spec))
        return 0
    # one line per spec, read across the columns: no spec object is built (23,706 at scale)
    at = {name: i for i, name in enumerate(columns)}
    line = out.line
    for values in zip(*columns.values(), strict=True):
        line(spec_line(out, _Row(at, values)))
    return 0


def render_search(out: Out, result: dict, args) -> int:
    if args.json:
        out.json(json_result(result))
        return 0
    total = result["total"]
    shown = len(result["specs"])
    more = f" (showing {shown}; use --limit for more)" if shown < total else ""
    out.note(f'Found {total} spec(s) matching "{result["query"]}"{more}')
    for spec in result["specs"]:
        line = spec_line(out, spec)
        if spec.get("archived"):
            line += " " + out.paint("[archived]", "2")
        out.line(line)
    return 0


def render_show(out: Out, result: dict, args) -> int:
    if args.json:
        out.json(json_result(result))
        return 0
    shown = dict(result)
    shown["blocked"] = result.get("display_status") == "blocked"
    out.line(spec_line(out, shown))
    rows = [("Status", result.get("display_status") or result["status"])]
    if result.get("display_status") not in (None, result["status"]):
        rows[0] = ("Status", f"{result['status']} (blocked)")
    if result.get("ready"):
        rows[0] = ("Status", f"{result['status']} (ready)")
    rows.append(("Type", result["type"]))
    if result.get("project"):
        rows.append(("Project", result["project"]))
    if result.get("priority") is not None and result["priority"] != 50:
        rows.append(("Priority", str(result["priority"])))
    if result.get("labels"):
        rows.append(("Labels", ", ".join(result["labels"])))
    if result.get("dependencies"):
        rows.append(("Depends on", ", ".join(f"{d['id']} ({d['status']})" for d in result["dependencies"])))
    criteria = result.get("criteria") or {}
    if criteria.get("total"):
        rows.append(("Criteria", f"{criteria['checked']}/{criteria['total']}"))
    approval = result.get("approval")
    if approval:
        text = approval.get("status") or "pending"
        if approval.get("by"):
            text += f" by {approval['by']}"
        if approval.get("at"):
            text += f" at {approval['at']}"
        rows.append(("Approval", text + (" (required)" if approval.get("required") else "")))
    for item in result.get("blocked_by") or ():
        if item["kind"] == "approval":
            rows.append(("Blocked by", f"approval ({item['detail']})"))
        else:
            via = " (via its driver)" if item["kind"] == "driver_dependency" else ""
            rows.append(("Blocked by", f"{item['detail']} ({item['status']}){via}"))
    if result.get("waiting_on"):
        rows.append(("Waiting on", ", ".join(result["waiting_on"])))
    if result.get("members"):
        rows.append(("Members", ", ".join(result["members"])))
    if result.get("commits"):
        rows.append(("Commits", ", ".join(result["commits"])))
    if result.get("completed_at"):
        rows.append(("Completed", result["completed_at"]))
    lease = result.get("lease")
    if lease:
        rows.append(("Lease", f"{lease['owner']} (token {lease['token']}, until {lease['expires_at']})"))
    if result.get("held"):
        rows.append(("Queue", f"held back by lint errors ({', '.join(result['held'])}); see `chant lint`"))
    if result.get("archived"):
        rows.append(("Archived", "yes"))
    rows.append(("File", result["path"]))
    if result.get("error"):
        rows.append(("Error", result["error"]))
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        out.line(f"{(key + ':').ljust(width)} {value}")
    body = result.get("body") or ""
    if body.strip():
        out.line()
        out.stdout.write(body if body.endswith("\n") else body + "\n")
    return 0


def render_lint(out: Out, result: dict, args) -> int:
    if args.json:
        out.json(json_result(result))
    else:
        for d in result["diagnostics"]:
            icon = out.paint("✗", "31") if d["severity"] == "error" else out.paint("⚠", "33")
            out.line(f"{icon} {d['spec_id']}: [{d['rule']}] {d['message']}")
            if d.get("suggestion"):
                out.line(f"    → {d['suggestion']}")
        out.line(
            f"Linted {result['total']} spec(s): {result['passed']} passed, "
            f"{result['warned']} warned, {result['failed']} failed"
        )
    return 1 if result["failed"] else 0


def render_status(out: Out, result: dict, args) -> int:
    if args.json:
        out.json(json_result(result))
        return 0
    c = result["counts"]
    if args.brief:
        parts = [
            f"{n} {word}"
            for n, word in (
                (c["completed"], "done"),
                (c["in_progress"], "running"),
                (c["ready"], "ready"),
                (c["failed"], "failed"),
            )
            if n
        ]
        out.line("chant: " + (", ".join(parts) if parts else "no specs"))
        return 0

    def heading(text: str) -> None:
        out.line(out.paint(text, "1"))
        out.line("=" * len(text))

    heading("Chant Status")
    out.line()
    for label, key in (
        ("Pending:", "pending"),
        ("Ready:", "ready"),
        ("In Progress:", "in_progress"),
        ("Paused:", "paused"),
        ("Completed:", "completed"),
        ("Failed:", "failed"),
        ("Blocked:", "blocked"),
    ):
        if key == "paused" and not c["paused"]:
            continue
        out.line(f"  {label:<12} {c[key]}")
    out.line()
    if result["today"]["completed"]:
        heading("Today")
        out.line(f"  Completed:   {result['today']['completed']}")
        out.line()
    if result["attention"]:
        heading("Attention")
        for item in result["attention"]:
            icon = ICONS.get(item["status"], "?")
            out.line(f"  {icon} {item['id']} {item['title'] or '(no title)'} [{item['status']}]")
        out.line()
    if result["in_progress"]:
        heading("In Progress")
        for item in result["in_progress"]:
            out.line(f"  {ICONS['in_progress']} {item['id']} {item['title'] or '(no title)'}")
        out.line()
    heading(f"Ready ({result['ready_count']})")
    if not result["ready_count"]:
        out.line("  (no specs ready)")
    for item in result["ready"]:
        out.line(f"  {ICONS['ready']} {item['id']} {item['title'] or '(no title)'}")
    if result["ready_count"] > len(result["ready"]):
        out.line(f"  ... and {result['ready_count'] - len(result['ready'])} more")
    return 0


def render_add(out: Out, result: dict, args) -> int:
    if args.json:
        out.json(json_result(result))
        return 0
    out.line(result["id"])
    out.note(f"Created {result['path']}")
    return 0


def _lease_text(lease: dict) -> str:
    return f"token {lease['token']}, owner {lease['owner']}, until {lease['expires_at']}"


def render_lock(out: Out, result, args) -> int:
    action = args.lock_action
    if args.json:
        out.json(result["leases"] if action == "list" else json_result(result))
        return 0
    if action == "acquire":
        out.line(f"Locked {result['spec']} ({_lease_text(result)})")
    elif action == "release":
        out.line(f"Released {result['spec']} (token {result['token']})")
    elif action == "renew":
        out.line(f"Renewed {result['spec']} ({_lease_text(result)})")
    elif action == "status":
        if result["locked"]:
            out.line(f"{result['spec']}: locked ({_lease_text(result['lease'])})")
        else:
            out.line(f"{result['spec']}: not locked")
    elif action == "list":
        if not result["leases"]:
            out.note("No active locks.")
        for lease in result["leases"]:
            out.line(f"{lease['spec']} {lease['owner']} token={lease['token']} expires={lease['expires_at']}")
    return 0


def render_queue(out: Out, result: dict, args) -> int:
    if args.queue_action == "list":
        if args.json:
            out.json(json_result(result))
            return 0
        from chantlib.queue import held_note

        held = held_note(result.get("held") or 0)
        if not result["specs"]:
            out.note(f"The queue is empty{held}.")
        for spec in result["specs"]:
            out.line(spec_line(out, spec))
        if result["specs"] and held:
            out.note(held.strip())  # what is ready but not here, and why
        return 0
    spec = result.get("spec")
    if spec is None and not args.claim:
        # the words of a claim that finds nothing (NothingReady), so both say the same
        from chantlib.queue import nothing_ready

        out.note(nothing_ready(args.project, args.labels, result.get("held") or 0, result.get("limited") or 0,
                               result.get("full")))
    if args.json:
        out.json(json_result(result) if args.claim else spec)
        return 0 if spec else 5
    if spec is None:
        return 5
    out.line(spec_line(out, spec))
    if args.claim:
        out.line(f"Lease: {_lease_text(result['lease'])}")
    return 0


def render_queue_stats(out: Out, result: dict, args) -> int:
    if args.json:
        out.json(json_result(result))
        return 0
    held = f" ({result['held']} held back by lint)" if result["held"] else ""
    out.line(f"Queued:  {result['depth']}{held}")
    out.line(f"Leased:  {result['leased']}")
    if result["by_project"]:
        parts = (f"{name or '(none)'} {count}" for name, count in result["by_project"].items())
        out.line(f"Projects: {', '.join(parts)}")
    limits = result.get("limits")
    if limits:
        words = [f"max_agents {limits['max_agents']}"] if limits["max_agents"] is not None else []
        if limits["max_per_project"] is not None:
            words.append(f"max_per_project {limits['max_per_project']}")
        words += [f"{name} {n}" for name, n in limits["per_project"].items()]
        if limits["spec_timeout"] is not None:
            words.append(f"spec_timeout {limits['spec_timeout']:g} s")
        out.line(f"Limits:  {', '.join(words)}")
        if result.get("full"):
            out.line(f"Claims:  none now ({result['full']})")
        elif result.get("limited"):
            out.line(f"Claims:  {result['limited']} ready spec(s) held back by their project's limit")
    return 0


def render_complete(out: Out, result: dict, args) -> int:
    if args.json:
        out.json(json_result(result))
        return 0
    out.line(spec_line(out, result["spec"]))
    if result.get("attempts") is not None:
        attempts, retries = result["attempts"], result.get("max_retries")
        then = "needs attention" if result["spec"].get("status") == "needs_attention" else "ready to retry"
        out.note(f"Failure {attempts} (watch.failure.max_retries: {retries}): {then}")
    if result.get("released"):
        out.note(f"Released lease (token {result['released']['token']})")
    return 0


def render_record_commit(out: Out, result: dict, args) -> int:
    if args.json:
        out.json(json_result(result))
        return 0
    commit = result["commit"]
    if result["ref"] is None:
        out.note(f"{commit}: its subject names no spec (chant(<id>): ...); nothing recorded")
    elif result["recorded"]:
        replaced = f" (in place of {result['replaced']})" if result["replaced"] else ""
        out.line(f"Recorded {commit} in {result['spec']['id']}{replaced}")
    else:
        out.line(f"{commit} is already recorded in {result['spec']['id']}")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render_index(out: Out, result: dict, args) -> int:
    if args.json:
        out.json(json_result(result))
        return 0
    if args.index_action == "rebuild":
        out.line(f"Indexed {result['documents']} spec(s) in {result['seconds']:.2f}s")
        return 0
    out.line(f"Index:      {result['path'] or '(in memory)'}")
    out.line(f"Documents:  {result['documents']}")
    out.line(f"Segments:   {result['segments']}")
    out.line(f"Size:       {_size(result['size_bytes'])}")
    out.line(
        f"Specs:      {result['specs']} ({result['active']} active, {result['archived']} archived, "
        f"{result['broken']} broken)"
    )
    out.line(f"Stale:      {result['stale']}")
    return 0


def _list_fields(params: dict, args) -> None:
    # only what the renderer prints (--json prints every key): a smaller answer to send,
    # decode and, in the daemon, encode
    params["fields"] = ["id"] if args.count else None if args.json else list(LINE_FIELDS)
    if not args.json:
        params["form"] = "columns"  # one array per key: a third of the decoding (docs/design.md)


#: operation -> its renderer: ``renderer(out, result, args) -> exit code``
RENDERERS = {
    "list": render_list,
    "show": render_show,
    "search": render_search,
    "lint": render_lint,
    "status": render_status,
    "add": render_add,
    "complete": render_complete,
    "lock_acquire": render_lock,
    "lock_release": render_lock,
    "lock_renew": render_lock,
    "lock_status": render_lock,
    "lock_list": render_lock,
    "queue_next": render_queue,
    "queue_claim": render_queue,
    "queue_list": render_queue,
    "queue_stats": render_queue_stats,
    "index_status": render_index,
    "index_rebuild": render_index,
    "record_commit": render_record_commit,
}
#: operation -> ``shape(params, args)``: parameters the command sets from how it renders
SHAPES = {"list": _list_fields}
