"""The "Git" section of the document: the daemon following git (between its markers, so that
``--git`` replaces it alone and `make bench` keeps it)."""

from __future__ import annotations

import statistics

from ..measures.git import BRANCH, GIT_TARGET_P50, IDLE_TARGET
from ..runner import percentile
from .text import fmt_ms

GIT_BEGIN = "<!-- git:begin (written by `make bench-git`; `make bench` keeps it) -->"
GIT_END = "<!-- git:end -->"
IDLE_SIZE = 50000  # the size of the idle-CPU target


def _stats(vals) -> tuple | None:
    if not vals:
        return None
    s = sorted(vals)
    return statistics.median(s), percentile(s, 0.99), s[-1], len(s)


def _lat(vals, missed: int = 0) -> str:
    st = _stats(vals)
    if st is None:
        return "—"
    p50, p99, top, k = st
    return (f"{fmt_ms(p50)} / {fmt_ms(p99)} (max {fmt_ms(top)}, {k})"
            + (f", **{missed} not seen**" if missed else ""))


def _p50(vals):
    return statistics.median(vals) if vals else None


def _counts(vals) -> str:
    if not vals:
        return "—"
    return f"{statistics.median(vals):g} (min {min(vals):g}, max {max(vals):g})"


def _idle(part: dict) -> str:
    idle = part.get("idle")
    if not idle:
        return "—"
    return f"{idle['percent']:.2f}% ({idle['cpu']:.2f} s CPU in {idle['wall']:.0f} s)"


def render_git(results: list[dict], info: dict) -> list[str]:
    done = [r for r in results if r.get("git")]
    sizes = [r["n"] for r in done]
    g = {r["n"]: r["git"] for r in done}
    lines: list[str] = []
    add = lines.append
    add(GIT_BEGIN)
    add("## Git: commit → hash recorded, checkout → index follows, idle CPU")
    add("")
    load, load_end = info.get("loadavg"), info.get("loadavg_end")
    loads = f"1-minute load average {load[0]:.2f} at the start, {load_end[0]:.2f} at the end" if load and load_end \
        else "load unknown"
    add(f"Measured by `make bench-git` (= `benchmarks/run.py --git --sizes 5000,50000 --write docs/benchmarks.md`) "
        f"on {info.get('date')}, commit `{info.get('commit') or 'unknown'}`; {info.get('nproc')} CPUs, shared "
        f"({loads}); git {info.get('git') or '?'}. Each figure sits beside its baseline from the same run: the git "
        "command's own duration, a plain file write seen by the daemon's file watcher, the same daemon with the "
        "git watcher off.")
    add("")
    add("| Measure | " + " | ".join(f"{n:,}" for n in sizes) + " | Target |")
    add("|---" * (len(sizes) + 2) + "|")

    def row(label: str, render, target: str = "") -> None:
        cells = []
        for n in sizes:
            try:
                cells.append(render(g[n]))
            except (KeyError, TypeError, IndexError):
                cells.append("—")
        add(f"| {label} | " + " | ".join(cells) + f" | {target} |")

    def on(key):
        return lambda x: x["on"][key]

    row("spec files tracked by git / ready", lambda x: f"{x['tracked']:,} / {x['ready']:,}"
        if isinstance(x.get("ready"), int) else f"{x['tracked']:,}")
    row("commit → hash in the spec file, p50 / p99, from `git commit`'s return",
        lambda x: _lat(on("commit")(x)["after"], on("commit")(x)["missed"]), f"p50 ≤ {GIT_TARGET_P50 * 1000:g} ms")
    row("… from `git commit`'s start", lambda x: _lat(on("commit")(x)["from_start"]))
    row("baseline: `git commit` itself (one unrelated file)", lambda x: _lat(on("commit")(x)["git"]))
    row("baseline: a spec's title edited in place → visible in `search` (the file watcher)",
        lambda x: _lat(x["on"]["watch"]["edit"]["samples"], x["on"]["watch"]["edit"]["missed"]))
    row("baseline: a new spec file → visible in `search` (the file watcher)",
        lambda x: _lat(x["on"]["watch"]["new"]["samples"], x["on"]["watch"]["new"]["missed"]))
    row(f"checkout `main` ⇄ `{BRANCH}` (3 spec files differ) → `show` and `search` show all three, p50 / p99, "
        "from `git checkout`'s return", lambda x: _lat(x["on"]["checkout"]["after"], x["on"]["checkout"]["missed"]),
        f"p50 ≤ {GIT_TARGET_P50 * 1000:g} ms")
    row("… from `git checkout`'s start", lambda x: _lat(x["on"]["checkout"]["from_start"]))
    row("… the first of the three visible, from the return", lambda x: _lat(x["on"]["checkout"]["first"]))
    row("baseline: the same checkouts, git watcher off (the file watcher alone), from the return",
        lambda x: _lat(x["off"]["checkout"]["after"], x["off"]["checkout"]["missed"]))
    row("… git watcher on, continuous validation off (`validate_on_save: false`), from the return",
        lambda x: _lat(x["novalidate"]["checkout"]["after"], x["novalidate"]["checkout"]["missed"]))
    row("baseline: `git checkout` itself", lambda x: _lat(x["on"]["checkout"]["git"]))
    row("the daemon's own follow of a checkout (its log, which tells 10 a minute: `git diff` + apply), p50 / max",
        lambda x: (f"{fmt_ms(_p50(x['on']['followed']))} / {fmt_ms(max(x['on']['followed']))} "
                   f"({len(x['on']['followed'])})") if x["on"].get("followed") else "—")
    row("index documents written per checkout (`chant_index_updates_total`), git watcher on / off",
        lambda x: f"{_counts(x['on']['checkout']['updates'])} / {_counts(x['off']['checkout']['updates'])}",
        "~3, not N")
    row("`daemon_status` `git.events` during the checkout loop (on)",
        lambda x: ", ".join(f"{k}: {v}" for k, v in sorted(x["on"]["events"].items())) or "none")
    row("`list --ready` agreed after each checkout (on / off)",
        lambda x: " / ".join(f"{p['checkout']['ready_checked'] - p['checkout']['ready_wrong']}/"
                             f"{p['checkout']['ready_checked']}" for p in (x["on"], x["off"])))
    row("polls that found a spec both branches have missing (git rewrote its file), on / no validation / off",
        lambda x: " / ".join(str(len((x[m].get("checkout") or {}).get("vanished") or [])) for m in
                             ("on", "novalidate", "off")), "0")
    row("`daemon_status` `git` at the end (on)", lambda x: "state {state}, recorded {recorded}, unknown refs "
        "{unknown_refs}".format(**x["on"]["git_status"]))
    row("idle CPU, git watcher on (% of one core)", lambda x: _idle(x["on"]), f"< {IDLE_TARGET:g}%")
    row("baseline: idle CPU, git watcher off (`scale.daemon.git_watch.enabled: false`)", lambda x: _idle(x["off"]))
    add("")

    verdicts = []
    for n in sizes:
        x = g[n]
        for key, what in (("commit", "commit → hash recorded"), ("checkout", "checkout → index follows")):
            s = (x["on"].get(key) or {})
            p50 = _p50(s.get("after"))
            verdicts.append((f"{what} at {n:,}: p50 ≤ {GIT_TARGET_P50 * 1000:g} ms",
                             _lat(s.get("after"), s.get("missed", 0)),
                             p50 is not None and p50 <= GIT_TARGET_P50 and not s.get("missed")))
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        for key, what in (("commit", "commit → hash recorded"), ("checkout", "checkout → index follows")):
            a = _p50((g[small]["on"].get(key) or {}).get("after"))
            b = _p50((g[big]["on"].get(key) or {}).get("after"))
            ok = a is not None and b is not None and b <= max(2 * a, a + 0.020)
            verdicts.append((f"{what} independent of the size: p50 at {big:,} within 2× (or +20 ms) of {small:,}",
                             f"{fmt_ms(b)} vs {fmt_ms(a)}" + (f" = {b / a:.2f}×" if a and b else ""), ok))
    for n in sizes:
        if n != IDLE_SIZE and IDLE_SIZE in sizes:
            continue
        idle = (g[n]["on"].get("idle") or {}).get("percent")
        verdicts.append((f"idle CPU at {n:,} with the git watcher on < {IDLE_TARGET:g}% of a core",
                         f"{_idle(g[n]['on'])} beside {_idle(g[n]['off'])} off",
                         idle is not None and idle < IDLE_TARGET))
    for n in sizes:
        ups = (g[n]["on"].get("checkout") or {}).get("updates") or []
        verdicts.append((f"a checkout at {n:,} writes what changed (~3 documents, not N)", _counts(ups),
                         bool(ups) and statistics.median(ups) <= 10))
    add("| Target | Measured | Verdict |")
    add("|---|---|---|")
    for name, measured, ok in verdicts:
        add(f"| {name} | {measured} | {'✅ PASS' if ok else '❌ FAIL'} |")
    add("")
    for r in done:
        for err in r["git"].get("errors", []):
            add(f"- **error at {r['n']:,}:** {err}")
    add("Method: each size's generated repository (spec files and config, not the caches) is copied to a temp "
        "folder, `git init` and committed there (not timed); the daemon is the tests' runner "
        "(`chantd.testing.DaemonProcess`), fully started and its git watcher past its start before anything is "
        "measured (a first, cold start builds the caches: every measured daemon starts warm). Commit → recorded: an unrelated file is changed and `git add`ed, then `git commit -m "
        "\"chant(<id>): ...\"` names a ready spec (a different one each time, in turn); the commit's hash is read "
        "from `.git` and the spec file read every ~1 ms until it holds the short hash. Checkout: the branch "
        f"`{BRANCH}` completes one ready spec, adds a word to another's title and adds a spec; after each "
        "`git checkout` one socket connection polls `show` of the two specs (the table) and `search` of the "
        "word (the index) every ~1 ms until all three agree with the branch, then checks `list --ready` once "
        "(not timed) and waits 0.3 s so that the second follower (file watcher or git) is done too before "
        "`chant_index_updates_total` is read again. The daemon's file watcher runs throughout, so a change is "
        "applied by whichever of it and the git watcher comes first (the other then writes nothing): the "
        "\"git watcher off\" rows are the file watcher alone, on the same copy, right after (that switch turns the "
        "daemon's continuous validation off too: the `validate_on_save: false` row, another daemon on the same "
        "copy between the two, keeps the git watcher and drops validation alone). Idle CPU: "
        "utime + stime of the daemon's threads and of the children it reaped (`/proc/<pid>/stat`), over "
        "the idle stretch, ÷ its wall time, 5 s after the start settled.")
    add(GIT_END)
    return lines
