"""The daemon's part of the document: each size's daemon tables, its target rows, its method."""

from __future__ import annotations

import statistics

from ..measures.daemon import CLI_ROWS, COLD_ROW, RSS_ROWS, START_ROWS, STOP_ROW, cli_label
from ..measures.roundtrips import mix_row, rtt_label
from ..measures.service import SERVICE_ROWS
from ..measures.watch import WATCH_ROWS
from ..runner import percentile
from ..settings import FREE_QUERY
from .text import fmt_ms, fmt_rate, fmt_rss, ratio_cell, times_bare


def render_size(add, r: dict, bare: float | None) -> None:
    d = r.get("daemon")
    n = r["n"]
    if d is None:
        return
    add(f"### Daemon ({n:,} specs)")
    add("")
    for err in d.get("errors", []):
        add(f"- **error:** {err}")
    if d.get("errors"):
        add("")
    plan = d.get("plan", {})

    # starts
    add(f"Start-up, timed from spawning `chantd` (median of the runs; cold {plan.get('cold')}, warm "
        f"{plan.get('warm')}):")
    add("")
    add("| Start | Socket answers `hello` | Fully started (`watch` set) | Min / max (fully started) | Runs ok |")
    add("|---|---|---|---|---|")
    for kind, label in START_ROWS:
        s = d.get("starts", {}).get(kind)
        if not s:
            add(f"| {label} | not run | — | — | 0/0 |")
            continue
        runs = f"{len(s['ready'])}/{s['attempts']}"
        if not s["ready"]:
            why = s["failures"][0] if s["failures"] else "not run"
            add(f"| {label} | **FAILED** ({why}) | — | — | {runs} |")
            continue
        warn = f" ⚠ {len(s['failures'])} failed: {s['failures'][0]}" if s["failures"] else ""
        add(f"| {label} | {fmt_ms(statistics.median(s['hello']))} | {fmt_ms(statistics.median(s['ready']))}{warn} | "
            f"{fmt_ms(min(s['ready']))} / {fmt_ms(max(s['ready']))} | {runs} |")
    stops, sf = d.get("stops", []), d.get("stop_failures", [])
    if stops:
        warn = f" ⚠ {len(sf)} failed: {sf[0]}" if sf else ""
        add(f"| {STOP_ROW} | {fmt_ms(statistics.median(stops))}{warn} | | {fmt_ms(min(stops))} / {fmt_ms(max(stops))} | "
            f"{len(stops)}/{len(stops) + len(sf)} |")
    elif sf:
        add(f"| {STOP_ROW} | **FAILED** ({sf[0]}) | | — | 0/{len(sf)} |")
    else:
        add(f"| {STOP_ROW} | not measured (no daemon started) | | — | 0/0 |")
    add("")
    if "pid" not in d:
        return

    # the CLI, direct vs daemon
    local = d.get("bare_local")
    add(f"The CLI with a daemon running ({d.get('specs', '?')} specs, {d.get('ready', '?')} ready): the same "
        f"commands without `--direct`, {plan.get('fast')} rounds of: the bare interpreter; `lock acquire` + "
        "`lock release` (a write, which empties the daemon's cache of encoded `list`/`search` answers); `list` "
        "and `search` (first after a write: the daemon computes the answer); `list` and `search` again "
        "(repeated: the cached answer, the steady state of a command run again while nothing changed). Bare "
        f"interpreter during this phase: median {fmt_ms(local.median if local else None)}; ×bare uses the whole "
        f"run's {fmt_ms(bare)}. \"Direct\" is this size's warm `--direct` row above, from the same run.")
    add("")
    add("| Command | Direct (warm) | ×bare | Daemon mode | ×bare | Direct ÷ daemon | Daemon runs ok | Peak RSS "
        "(daemon-mode CLI) |")
    add("|---|---|---|---|---|---|---|---|")
    add(f"| bare interpreter (`python -c pass`) | {fmt_ms(bare)} | 1.0× | {fmt_ms(bare)} | 1.0× | — | — | — |")
    cli = d.get("cli", {})
    for key, direct_key, _ in CLI_ROWS:
        label = cli_label(key, FREE_QUERY)
        dm = r["measures"].get(direct_key)
        mm = cli.get(key)
        if mm is None:
            add(f"| {label} | {fmt_ms(dm.median if dm else None)} | — | not run | — | — | — | — |")
            continue
        dmed = dm.median if dm else None
        if mm.median is None:
            why = mm.failures[0] if mm.failures else "not run"
            add(f"| {label} | {fmt_ms(dmed)} | {times_bare(dmed, bare)} | **FAILED** ({why}) | — | — | "
                f"0/{mm.attempts} | — |")
            continue
        warn = f" ⚠ {len(mm.failures)} failed: {mm.failures[0]}" if mm.failures else ""
        speed = f"{dmed / mm.median:.1f}×" if dmed else "—"
        add(f"| {label} | {fmt_ms(dmed)} | {times_bare(dmed, bare)} | {fmt_ms(mm.median)}{warn} | "
            f"{times_bare(mm.median, bare)} | {speed} | {len(mm.walls)}/{mm.attempts} | {fmt_rss(mm.peak_rss)} |")
    cold = r["measures"].get("cold_list")
    dl = cli.get("list")
    if cold is not None and cold.median and dl is not None and dl.median:
        add(f"| {COLD_ROW} | {fmt_ms(cold.median)} | {times_bare(cold.median, bare)} | {fmt_ms(dl.median)} | "
            f"{times_bare(dl.median, bare)} | {cold.median / dl.median:.1f}× | {len(dl.walls)}/{dl.attempts} | |")
    else:
        add(f"| {COLD_ROW} | {fmt_ms(cold.median if cold else None)} | — | — | — | — | — | |")
    add("")
    check = d.get("check", {})
    if check:
        parts = [f"`{k}` {v['served']} for {v['runs']} runs" for k, v in check.items()]
        add("The daemon's own request counters (`chant_request_duration_seconds_count`, socket transport) moved by "
            + ", ".join(parts) + " during the timed runs: "
            + ("every daemon-mode command was served by the daemon."
               if all(v["served"] >= v["runs"] for v in check.values())
               else "**some commands did not reach the daemon** (direct-mode fallback?)."))
        add("")
    split = d.get("split", {})
    if split:
        add("Where a daemon-mode command spends its time (a child timing its own `from chant_cli.main import main` "
            "and `main(argv)`: finding the socket, `hello`, the request, rendering; median of the runs; the "
            "daemon's answer is the cached one):")
        add("")
        add("| Command (daemon mode) | Wall | `import chant_cli.main` | `main(argv)` | Rest (start-up, exit) |")
        add("|---|---|---|---|---|")
        for key in ("list", "search"):
            p = split.get(key)
            if p:
                label = "`chant list --ready`" if key == "list" else f'`chant search "{FREE_QUERY}"`'
                add(f"| {label} | {fmt_ms(p['wall'])} | {fmt_ms(p['import'])} | {fmt_ms(p['op'])} | {fmt_ms(p['rest'])} |")
        add("")
    imp = d.get("importtime")
    if imp and "error" not in imp:
        add(f"`python -X importtime -m chant_cli list --ready` in daemon mode: {imp['modules']} modules, "
            f"{imp['total_us'] / 1000:.1f} ms in top-level imports (start-up's `site`/`encodings` included). "
            "Heaviest: " + ", ".join(f"`{mod}` {cum / 1000:.1f} ms" for cum, _self, _lvl, mod in imp["top"]) + ".")
        add("")
    if d.get("cprofile"):
        add(f"cProfile of daemon-mode `chant list --ready` at {n:,} specs (in process, `main(argv)`), top functions "
            "by own time (profiler overhead included):")
        add("")
        add("```")
        add(d["cprofile"])
        add("```")
        add("")

    # round trips
    add(f"Round trips: each client is a separate process holding one persistent socket connection (opened with "
        f"`hello`) or one keep-alive `http.client` connection, looping for {plan.get('seconds'):g} s from a common "
        "start; the rate is all clients' completions over the common window. A lock pair is `lock_acquire` then "
        "`lock_release` by token on the client's own spec (two requests); a claim is `queue_claim` (its latency "
        "below) followed by `lock_release` by token, so the queue never runs dry.")
    add("")
    add("| Round trip | Clients | Rate | Mean latency | p50 | p99 | Done | Errors |")
    add("|---|---|---|---|---|---|---|---|")
    unit = {"hello": "requests/s", "lock": "pairs/s", "claim": "claims/s", "http": "requests/s"}
    for row in d.get("rtt", []):
        op = row["op"]
        if op == "mix":
            continue  # shown below the table
        if op == "setup":
            add(f"| round trips | — | **FAILED** ({row['failures'][0]}) | — | — | — | — | — |")
            continue
        label = rtt_label(op)
        if not row.get("done"):
            why = (row.get("failures") or [row.get("error") or "nothing completed"])[0]
            add(f"| {label} | {row['clients']} | **FAILED** ({why}) | — | — | — | 0 | {row.get('errors', '—')} |")
            continue
        rate = f"{fmt_rate(row['rate'])} {unit[op]}"
        if op == "lock":
            rate += f" ({fmt_rate(row['rate'] * 2)} requests/s)"
        if op == "claim" and row.get("pair_mean"):
            rate += f" (claim + release: {fmt_ms(row['pair_mean'])} mean)"
        errs = str(row.get("errors", 0))
        if row.get("error"):
            errs += f": {row['error'][:100]}"
        if row.get("failures"):
            errs += f"; {len(row['failures'])} client(s) failed: {row['failures'][0]}"
        add(f"| {label} | {row['clients']} | {rate} | {fmt_ms(row['mean'])} | {fmt_ms(row['p50'])} | {fmt_ms(row['p99'])} | "
            f"{row['done']:,} | {errs} |")
    add("")
    mix = mix_row(d)
    if mix is not None:
        if mix.get("mean") and mix.get("pair_mean"):
            add(f"Side by side (the measure of the lock target): one client alternating `hello` and a lock pair for "
                f"{plan.get('seconds'):g} s, {mix['done']:,} of each: `hello` {fmt_ms(mix['mean'])} mean, lock pair "
                f"{fmt_ms(mix['pair_mean'])} mean = {mix['pair_mean'] / mix['mean']:.2f}× (errors: {mix.get('errors', 0)}).")
        else:
            why = (mix.get("failures") or [mix.get("error") or "nothing completed"])[0]
            add(f"Side by side (`hello` alternating with a lock pair, 1 client): **FAILED** ({why}).")
        add("")
    svc = d.get("service")
    if svc:
        cells = {(x["op"], x["clients"]): x for x in d.get("rtt", [])}
        add("Inside the daemon: the same `Service` the daemon runs (made by `chantd.build` as the daemon makes it, "
            "loaded the same way, leases written through to a "
            "temp folder), called in process with no transport, after the daemon stopped; time per call. The "
            "difference to the round trip (1 client, mean) is the socket (or HTTP), the event loop and the "
            "Python client.")
        add("")
        if "error" in svc:
            add(f"**FAILED** ({svc['error']})")
            add("")
        else:
            add("| Operation | In the service | Round trip, 1 client (mean) | Transport and client |")
            add("|---|---|---|---|")
            for key, label, cell_key in SERVICE_ROWS:
                v = svc.get(key)
                if not v:
                    continue
                row = cells.get(cell_key) if cell_key else None
                rtt = row.get("pair_mean" if key == "claim" else "mean") if row else None
                where = " (HTTP)" if cell_key and cell_key[0] == "http" else ""
                add(f"| {label} | {fmt_ms(v['seconds'])} | {fmt_ms(rtt)}{where if rtt else ''} | "
                    f"{fmt_ms(rtt - v['seconds']) if rtt else '—'} |")
            add("")

    # watch latency
    add("Watch latency: a spec file written (a new file; then an in-place truncate-and-write of an existing "
        "spec's title), then a persistent socket connection polls (every ~1 ms) until the answer shows it; from "
        "the write's `close()` to that answer. Polled two ways: `search` (`id:<new id>`, `title:<new word>`), and "
        "the request `chant list --ready` sends, decoded in full as the CLI decodes it (the new ID, the new "
        "title). The daemon saves its table every few seconds meanwhile. The probes are removed and the edit "
        "undone afterwards.")
    add("")
    add("| Change | Seen through | Samples | Median | p99 | Max | Not seen within 10 s |")
    add("|---|---|---|---|---|---|---|")
    for series, via in (("watch", "`search`"), ("watch_list", "`list --ready`")):
        w = d.get(series, {})
        for key, label in WATCH_ROWS:
            add(watch_row(label, via, w.get(key)))
    add("")

    # memory
    add("| Daemon memory (`/proc/<pid>/status`) | VmRSS | VmHWM (peak so far) |")
    add("|---|---|---|")
    for key, label in RSS_ROWS:
        v = d.get("rss", {}).get(key) or {}
        add(f"| {label} | {fmt_rss(v.get('VmRSS'))} | {fmt_rss(v.get('VmHWM'))} |")
    add("")


def watch_row(label: str, via: str, s: dict | None) -> str:
    if not s:
        return f"| {label} | {via} | 0 | **FAILED** (not run) | — | — | — |"
    vals = sorted(s["samples"])
    if not vals:
        return f"| {label} | {via} | 0 | **FAILED** ({s.get('error') or 'no sample'}) | — | — | {s.get('missed', 0)} |"
    return (f"| {label} | {via} | {len(vals)} | {fmt_ms(statistics.median(vals))} | {fmt_ms(percentile(vals, 0.99))} | "
            f"{fmt_ms(vals[-1])} | {s.get('missed', 0)} |")


def target_rows(results: list[dict], bare: float | None) -> list[tuple[str, str, str]]:
    by_n = {r["n"]: r for r in results}
    rows = []
    ok, bad = "✅ PASS", "❌ FAIL"

    def daemon_of(n):
        r = by_n.get(n)
        return r, (r or {}).get("daemon")

    # daemon-mode list at 5,000: within 3x bare, and 10x faster than cold direct
    r, d = daemon_of(5000)
    name1 = "daemon-mode `chant list --ready` at 5,000 specs within 3× a bare interpreter start"
    name2 = "daemon-mode `chant list --ready` at 5,000 specs at least 10× faster than cold direct mode"
    if d is None:
        why = "not measured (size not run)" if r is None else "not measured"
        rows += [(name1, why, "—"), (name2, why, "—")]
    else:
        meas = d.get("cli", {}).get("list")
        if meas is None or meas.median is None or meas.paired is None or not bare:
            rows += [(name1, "failed to run", bad), (name2, "failed to run", bad)]
        else:
            fresh = d.get("cli", {}).get("list_fresh")
            also = ""
            if fresh is not None and fresh.paired is not None:
                also = (f"; first after a write (answer computed): {ratio_cell(fresh, bare, 3, fmt_ms)} "
                        f"{'(within 3×)' if fresh.paired <= 3 else '(**over 3×**)'}")
            rows.append((name1, f"repeated (the daemon's cached answer): {ratio_cell(meas, bare, 3, fmt_ms)}{also}",
                         ok if meas.paired <= 3 else bad))
            cold = r["measures"].get("cold_list")
            if cold is None or cold.median is None:
                rows.append((name2, "cold direct list failed", bad))
            else:
                speed = cold.median / meas.median
                rows.append((name2, f"cold direct {fmt_ms(cold.median)} ÷ daemon mode {fmt_ms(meas.median)} = {speed:.1f}×",
                             ok if speed >= 10 else bad))

    # lock pair vs hello, socket, 1 client, mean latencies: at every size measured
    for n in sorted(by_n):
        d = by_n[n].get("daemon")
        name = (f"socket `lock_acquire` + `lock_release` round trip at {n:,} specs within 3× a `hello` round trip "
                "(1 client, mean latencies)")
        if d is None:
            continue
        mix = mix_row(d)
        if not mix or not mix.get("mean") or not mix.get("pair_mean"):
            rows.append((name, "failed to run", bad))
            continue
        ratio = mix["pair_mean"] / mix["mean"]
        rows.append((name, f"pair {fmt_ms(mix['pair_mean'])} = {ratio:.2f}× hello {fmt_ms(mix['mean'])} "
                           f"(limit {fmt_ms(3 * mix['mean'])}; the two alternating in one client)",
                     ok if ratio <= 3 else bad))

    # warm restart and RSS at 50,000
    r, d = daemon_of(50000)
    name3 = "daemon warm restart at 50,000 specs under 5 s (spawn to fully started)"
    name4 = "daemon RSS at 50,000 specs under 300 MB (steady state)"
    if d is None:
        why = "not measured (size not run)" if r is None else "not measured"
        rows += [(name3, why, "—"), (name4, why, "—")]
    else:
        s = d.get("starts", {}).get("warm") or {}
        if not s.get("ready"):
            rows.append((name3, "failed to run", bad))
        else:
            med = statistics.median(s["ready"])
            rows.append((name3, f"{med:.2f} s (median of {len(s['ready'])}; max {max(s['ready']):.2f} s; socket "
                                f"answers hello at {statistics.median(s['hello']):.2f} s)", ok if med < 5 else bad))
        v = (d.get("rss") or {}).get("steady") or {}
        if not v.get("VmRSS"):
            rows.append((name4, "failed to run", bad))
        else:
            rss_mb = v["VmRSS"] * 1024 / 1e6
            hwm = v.get("VmHWM")
            extra = f"; peak (VmHWM) {hwm * 1024 / 1e6:.0f} MB" if hwm else ""
            rows.append((name4, f"VmRSS {rss_mb:.0f} MB ({v['VmRSS'] / 1024:.0f} MiB){extra}",
                         ok if rss_mb < 300 else bad))
    return rows


def render_method(add) -> None:
    add("- **Daemon.** `chantd` is spawned by the runner as `chant daemon start --background` spawns it "
        "(`python -m chantd -C ROOT --api-port P --metrics-port Q`, free loopback ports), logging to "
        "`.chant/logs/daemon.log`, and stopped with `chant daemon stop` (then SIGTERM/SIGKILL of that PID "
        "if it lingers, which never happened unless the table says so). The daemon benchmarks run after all "
        "direct-mode ones (and after the profile), on the same repositories, so the probes they write cannot "
        "disturb them. **Cold start** = `.chant/.index/` deleted, then from the spawn until the socket answers "
        "`hello` and until `daemon_status` shows `watch` set; **warm restart** = the same after a clean stop "
        "(table and index cached). The OS page cache is not dropped.")
    add("- **Daemon mode CLI.** The same `chant` commands without `--direct`, with the daemon running; the CLI "
        "finds the socket itself. The daemon caches its encoded answers to `list` and `search` until a file or a "
        "write changes something: each is measured first after a write (a `lock acquire` + `lock release` just "
        "before it; the daemon computes the answer) and repeated (the cached answer, a send). The daemon-mode "
        "target is judged on the repeated one, and the Targets row shows the other next to it.")
    add("- **Round trips.** Client processes (not threads, so the clients' JSON work does not share one GIL) on "
        "the same 2-CPU machine as the daemon: with 8 clients, they and the daemon compete for the CPUs, so the "
        "8-client rates are what this machine can drive, not the daemon's ceiling. Latencies are per request "
        "(per pair for locks), measured in the client.")
    from chantd.watch import DEBOUNCE_MS, STEP_MS

    add(f"- **Watch latency** depends on the watcher's debounce ({STEP_MS} ms step, {DEBOUNCE_MS} ms cap) plus the "
        "refresh and the index commit of the changed file; the poll adds up to ~1 ms.")
    add("- **Daemon RSS** from `/proc/<pid>/status` (VmRSS now, VmHWM its peak), 0.5 s after the last "
        "benchmark of the size; the daemon measured is the one of the steady-state phase (a warm restart).")
