"""The "Workers" section: the load test's runs (:mod:`benchmarks.measures.workers`) beside the
bare socket claim of the same run (between its markers, so that `--workers` can replace it alone)."""

from __future__ import annotations

from ..measures.workers import BARE_CLAIMERS, GRACE, PROBE_PACE, RATIO_LIMIT, WAIT, interrupted, problems, summary
from .text import fmt_ms, fmt_rate

WORKERS_BEGIN = "<!-- workers:begin (written by `make bench-workers`; `make bench` keeps it) -->"
WORKERS_END = "<!-- workers:end -->"


def _lat(s: dict) -> str:
    if not s["n"]:
        return "none"
    return f"p50 {fmt_ms(s['p50'])} / p99 {fmt_ms(s['p99'])} ({s['n']:,} claims; max {fmt_ms(s['max'])})"


def _bare(row: dict | None) -> str:
    if not row or row.get("p50") is None:
        return "not measured" + (f" ({row['failures'][0]})" if row and row.get("failures") else "")
    return (f"{row['clients']} claimer{'s' if row['clients'] > 1 else ''}: p50 {fmt_ms(row['p50'])} / p99 "
            f"{fmt_ms(row['p99'])}, {fmt_rate(row.get('rate'))} claims/s")


def verdict(worker: dict, bare: dict | None) -> tuple[str, str]:
    """(the ratios, the verdict): p50 and p99 each within RATIO_LIMIT x those of ``bare`` (a summary)."""
    if not worker["n"] or not bare or bare.get("p50") is None:
        return "—", "❌ FAIL (not measured)"
    r50, r99 = worker["p50"] / bare["p50"], worker["p99"] / bare["p99"]
    ok = r50 <= RATIO_LIMIT and r99 <= RATIO_LIMIT
    return f"p50 {r50:.1f}×, p99 {r99:.1f}×", "✅ PASS" if ok else "❌ FAIL"


def _checks(run: dict) -> tuple[str, str]:
    bad = problems(run)
    n = run.get("specs", 0)
    twice = run.get("ran_twice", [])
    text = (f"{run.get('statuses', {}).get('completed', 0):,}/{n:,} `completed`; {run.get('completed_once', 0):,} "
            f"completed exactly once (one `completed in` line over all workers"
            + ("; the killed worker's spec may have none: it can die between its `complete` and its line"
               if run.get("fault") else "") + "); done file: "
            f"{run.get('done_lines', 0):,} lines, {n - len(run.get('missing', [])):,} distinct IDs, "
            f"{len(twice)} ID(s) twice; exit codes: "
            + (", ".join(f"{k} {v}" for k, v in sorted(run.get("bad_exit", {}).items())) or "all 0")
            + (" but the killed one" if run.get("fault") else "")
            + f"; unexpected stderr lines: {len(run.get('unexpected', []))}")
    return text, "✅ PASS" if not bad else "❌ FAIL: " + "; ".join(bad)[:400]


def _events(run: dict) -> str:
    parts = []
    for e in run.get("events", []):
        if e["event"] == "sigkill":
            held = "its lease left to expire" if e.get("held_after") else "its lease already released by its `complete`"
            parts.append(f"SIGKILL of `{e['worker']}` after {e['done_before']:,} done, while it held "
                         f"`{e['spec']}` ({held})")
        elif e["event"] == "restart":
            parts.append(f"daemon restart at {e['at']:.1f} s after {e['done_before']:,} done (clean stop "
                         f"{fmt_ms(e['stop'])}, down {fmt_ms(e['down'])} until fully started again)")
    return "; ".join(parts) or "none"


def render_workers(res: dict, info: dict) -> list[str]:
    lines: list[str] = []
    add = lines.append
    bare = {row.get("clients"): row for row in res.get("bare", [])}
    many = bare.get(max(BARE_CLAIMERS))
    one = bare.get(min(BARE_CLAIMERS))
    n, w = res.get("specs"), res.get("workers")
    add(WORKERS_BEGIN)
    add("## Workers: the load test")
    add("")
    add(f"Measured by `make bench-workers` (= `benchmarks/run.py --workers --write docs/benchmarks.md`) on "
        f"{info.get('date')}, commit `{info.get('commit') or 'unknown'}`; {info.get('nproc')} CPUs, shared "
        f"({_load(info)}). {n:,} ready specs, {w} `chant agent worker` processes ({w // 2} on the socket, "
        f"{w - w // 2} over HTTP), `--concurrency 1 --ttl {res.get('ttl'):g}`, each `--exec "
        "\"printf '%s\\n' {id} >> done.txt\"`; one daemon.")
    add("")
    add("| Measure | Value | Baseline (same run) | Verdict |")
    add("|---|---|---|---|")
    plain = res.get("runs", {}).get("plain")
    fault = res.get("runs", {}).get("fault")
    for title, run in (("", plain), ("fault run: ", fault)):
        if run is None:
            continue
        if "seconds" not in run:
            add(f"| {title}the run | **failed**: {'; '.join(run.get('errors', []))[:300]} | | ❌ FAIL |")
            continue
        add(f"| {title}wall time, the queue opened → every spec completed | {run['seconds']:.1f} s | | |")
        add(f"| {title}claims per second (completed specs / s) | {fmt_rate(run.get('rate'))} "
            f"({run.get('by_transport', {}).get('socket', 0):,} by socket workers, "
            f"{run.get('by_transport', {}).get('http', 0):,} by HTTP workers) | bare claim + release: "
            f"{fmt_rate((one or {}).get('rate'))}/s with 1 claimer, {fmt_rate((many or {}).get('rate'))}/s with "
            f"{max(BARE_CLAIMERS)} | |")
        probe = run.get("probe") if not title else None
        if not title:
            add(f"| the baseline: claim round trip of a bare claimer beside the workers (1 socket client, the "
                f"idle baseline's program and claim, `queue_claim` + release every {PROBE_PACE * 1e3:g} ms, the "
                f"whole run) | {_lat(probe) if probe else 'not measured'} | idle, before the workers: "
                f"{_bare(many)}; {_bare(one)} | {verdict(probe, many)[0] if probe else '—'} the idle claim: what "
                "the loaded machine adds to any claim |")
        for kind in ("socket", "http"):
            s = summary(run.get("claims", {}).get(kind, []))
            who = "socket" if kind == "socket" else "HTTP"
            if title:  # the fault run: for information (its claims include the waits the faults caused)
                add(f"| {title}claim round trip, {who} workers | {_lat(s)} | | — |")
                continue
            ratio, mark = verdict(s, probe)
            add(f"| claim round trip as the {who} workers see it | {_lat(s)} | the bare claimer beside them; "
                f"idle: {_bare(many)} | {ratio} the claim beside them: {mark} (against the idle "
                f"{max(BARE_CLAIMERS)} claimers: {verdict(s, many)[0]}) |")
        if title:
            add(f"| {title}faults | {_events(run)} | | |")
            cut = sorted(set(interrupted(run)))
            twice = run.get("ran_twice", [])
            add(f"| {title}specs whose command ran twice | {len(twice)}" + (f" ({', '.join(f'`{t}`' for t in twice)})"
                if twice else "") + f"; runs cut off by the faults: {len(cut)}; leases lost (stderr lines): "
                f"{len(run.get('lost_lines', []))} | at most the cut-off runs | "
                + ("✅ PASS" if set(twice) <= set(cut) else "❌ FAIL") + " |")
        text, mark = _checks(run)
        add(f"| {title}checks | {text} | every spec completed once, none lost, no error | {mark} |")
    add("")
    add("Method: a repository of the ready specs (label `load`), each `depends_on` one gate spec, made in a temp "
        "folder; the daemon is the runner's (`chantd.testing.DaemonProcess`, API on a loopback port). With the "
        "queue open, the baseline first: client processes (`benchmarks/programs/worker.py`, one persistent socket "
        f"connection each, chantlib's client) loop `queue_claim` (label `load`, as the workers) then `lock_release` "
        f"by token, {', '.join(str(k) for k in BARE_CLAIMERS)} of them, 2 s each; the claim's own round trip is "
        "the latency. Then the gate is set `pending` (no spec ready), the workers are started (HTTP ones with "
        "`CHANT_DAEMON=http://127.0.0.1:<port>` and `CHANT_API_TOKEN`), and once each printed its start line and "
        "a second passed (its first long poll waiting), the gate is set `completed`: every spec ready at once. "
        "The run ends when the done file holds every ID and the daemon shows no ready spec (`list --ready`) and "
        "no lease (`lock_list`), polled every 50 ms. Beside the workers, from the gate's opening until nothing "
        f"is ready, one more bare claimer (the same program) claims and releases every {PROBE_PACE * 1e3:g} ms: "
        "the same claim as the baseline's, under the workers' load. Each worker records every claim's round trip with `CHANT_WORKER_TIMINGS` (around "
        f"its `queue_claim` call: the client's encoding, the trip, the daemon); claims begun before the gate "
        f"opened (long polls, `--wait {WAIT:g}`) are left out, and so is the last long poll each worker's SIGTERM "
        f"cuts off (`--grace {GRACE:g}`). The fault run is the same on a fresh repository and daemon: when a "
        "third of the specs are done, the first socket worker seen holding a lease (`lock_list`) gets SIGKILL; "
        "when two thirds are done, the daemon is stopped (SIGTERM, a clean stop) and started again on the same "
        "ports. The checks read the files afterwards: each spec file's `status`, the done file, the workers' "
        "stderr (every line must be a start line, a claim, a completion, the stop, or, in the fault run, the "
        "backoff while the daemon is away and a lease lost to it), their exit codes. Execution is at least once "
        "by design: a worker killed after its command ran but before `complete` leaves the lease to expire "
        "(the TTL) and the next worker runs the spec again; completion is exactly once (the fencing token). "
        f"Verdict: a worker's claim within {RATIO_LIMIT:g}× the bare socket claim measured beside it, p50 and "
        "p99 each: the bare claimer's program and claim are the idle baseline's, its load is the workers' "
        "(their commands, completions and log files on the same CPUs), so the ratio is what the worker adds "
        f"to a claim. The ratio to the idle baseline ({max(BARE_CLAIMERS)} claimers before the workers start) "
        "is shown too: it also holds what the loaded machine adds to every claim, the bare one's included "
        "(the baseline row).")
    add("")
    for kind, run in (("plain", plain), ("fault", fault)):
        for line in (run or {}).get("unexpected", [])[:10]:
            add(f"- **unexpected ({kind} run):** `{line[:300]}`")
    add(WORKERS_END)
    return lines


def _load(info: dict) -> str:
    load, end = info.get("loadavg"), info.get("loadavg_end")
    if load and end:
        return f"1-minute load average {load[0]:.2f} at the start, {end[0]:.2f} at the end"
    return "load unknown"
