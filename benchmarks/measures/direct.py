"""The direct-mode measures of one size: the real `chant` command (``--direct``) on the
size's generated repository, cold and warm, round robin with a bare interpreter, then one
untimed run of each command for its peak RSS."""

from __future__ import annotations

import json
import os
import shlex
import shutil

from ..repos import ensure_repo, folder_bytes
from ..runner import BareStart, Measure, Run, memory_run, repeats, run, stop_stray
from ..settings import DIRECT, FAST_TIMEOUT, FREE_QUERY, SLOW_TIMEOUT, STRUCT_QUERY
from .watch import restore_leftovers

# the rows of each table, in order: (key, label)
ROWS = [
    ("bare", "bare interpreter (`python -c pass`)"),
    ("cold_list", "cold `chant list --ready`"),
    ("warm_list", "warm `chant list --ready`"),
    ("warm_list_all", "warm `chant list` (every active spec)"),
    ("search_free", f'warm `chant search "{FREE_QUERY}"`'),
    ("search_struct", f"warm `chant search '{STRUCT_QUERY}'`"),
    ("auto_list", "warm `chant list --ready` without `--direct` (daemon probe; none running)"),
    ("lock_pair", "`chant lock acquire` + `lock release`"),
    ("rebuild", "`chant index rebuild`"),
]


LABELS = dict(ROWS)


def bench_size(n: int, args, chant: str, python: str, baseline: Measure, log) -> dict:
    res: dict = {"n": n, "measures": {}, "facts": {}, "errors": []}
    m = {key: Measure(key) for key, _ in ROWS if key != "bare"}
    res["measures"] = m
    local_bare = Measure("bare")
    res["bare_local"] = local_bare

    root, counts, error = ensure_repo(args.out, n, args.seed, python, args.regenerate, log)
    res["counts"] = counts
    if error:
        res["errors"].append(error)
        log(f"[{n}] {error}")
        return res
    res["root"] = root
    index_dir = os.path.join(root, ".chant", ".index")
    env = dict(os.environ)
    env.pop("CHANT_DEBUG", None)
    env.pop("CHANT_DAEMON", None)  # never a remote daemon
    env["NO_COLOR"] = "1"
    # an interrupted daemon benchmark may have left its daemon, probe specs or an edit behind
    stop_stray(chant, root, env, log)
    restore_leftovers(root, log)
    fast, slow = repeats(n, args.repeat)
    res["repeats"] = {"fast": fast, "slow": slow}

    bare = BareStart(python, root, env, baseline, local_bare)

    def chant_run(argv, timeout=FAST_TIMEOUT, direct=True) -> Run:
        return run([chant, *DIRECT, *argv] if direct else [chant, *argv], cwd=root, timeout=timeout, env=env)

    def measure(key: str, argv, codes=(0,), timeout=FAST_TIMEOUT, direct=True) -> Run:
        meas = m[key]
        meas.attempts += 1
        r = chant_run(argv, timeout, direct)
        if r.ok(codes):
            meas.add(r.wall, bare.last)
        else:
            meas.failures.append(r.why())
        return r

    def status_json() -> dict | None:
        r = chant_run(["index", "status", "--json"])
        if not r.ok():
            res["errors"].append(f"index status: {r.why()}")
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            res["errors"].append("index status: not JSON")
            return None

    # 1. cold list: the cache folder deleted before each run (the OS page cache stays warm)
    log(f"[{n}] cold list x{slow}")
    for _ in range(slow):
        bare()
        shutil.rmtree(index_dir, ignore_errors=True)
        measure("cold_list", ["list", "--ready"], codes=(0, 5), timeout=SLOW_TIMEOUT)

    # 2. warm-up (not measured): bring table and index in step, settle any "racy" files
    for argv in (["list", "--ready"], ["search", FREE_QUERY], ["list", "--ready"], ["search", STRUCT_QUERY]):
        r = chant_run(argv, SLOW_TIMEOUT)
        if not r.ok((0, 5)):
            res["errors"].append(f"warm-up `chant {shlex.join(argv)}`: {r.why()}")
    lock_id = None
    r = chant_run(["list", "--ready", "--json"])
    try:
        ready = json.loads(r.stdout) if r.ok((0, 5)) else None
    except ValueError:
        ready = None
    if isinstance(ready, list):
        res["facts"]["ready"] = len(ready)
        lock_id = ready[0]["id"] if ready else None
    for q, key in ((FREE_QUERY, "hits_free"), (STRUCT_QUERY, "hits_struct")):
        r = chant_run(["search", q, "--json"])
        try:
            res["facts"][key] = json.loads(r.stdout).get("total") if r.ok() else None
        except (ValueError, AttributeError):
            res["facts"][key] = None
    if lock_id is None:
        res["errors"].append("no ready spec to lock")
    else:
        res["facts"]["lock_id"] = lock_id
        chant_run(["lock", "release", lock_id, "--force"])  # a lease left by an interrupted run
    before = status_json()
    if before is not None:
        res["facts"]["warm_before"] = {k: before.get(k) for k in ("changed_since_last_run", "stale")}

    # 3. warm commands, round robin with the baseline so drift hits all of them alike
    log(f"[{n}] warm commands x{fast}")
    for _ in range(fast):
        bare()
        measure("warm_list", ["list", "--ready"], codes=(0, 5))
        measure("warm_list_all", ["list"], codes=(0, 5))
        measure("search_free", ["search", FREE_QUERY])
        measure("search_struct", ["search", STRUCT_QUERY])
        measure("auto_list", ["list", "--ready"], codes=(0, 5), direct=False)
        if lock_id is not None:
            meas = m["lock_pair"]
            meas.attempts += 1
            a = chant_run(["lock", "acquire", lock_id])
            b = chant_run(["lock", "release", lock_id])
            if a.ok() and b.ok():
                meas.add(a.wall + b.wall, bare.last)
            else:
                meas.failures.append(f"acquire {a.why()}" if not a.ok() else f"release {b.why()}")
                chant_run(["lock", "release", lock_id, "--force"])
    after = status_json()
    if after is not None:
        res["facts"]["warm_after"] = {k: after.get(k) for k in ("changed_since_last_run", "stale")}

    # 4. index rebuild (wall time, and the seconds the command reports itself)
    log(f"[{n}] index rebuild x{slow}")
    for _ in range(slow):
        bare()
        r = measure("rebuild", ["index", "rebuild", "--json"], timeout=SLOW_TIMEOUT)
        if r.ok():
            try:
                m["rebuild"].reported.append(float(json.loads(r.stdout)["seconds"]))
            except (ValueError, KeyError, TypeError):
                pass

    # 5. size on disk, right after a rebuild
    stats = status_json()
    if stats is not None:
        res["facts"]["documents"] = stats.get("documents")
        res["facts"]["segments"] = stats.get("segments")
        res["facts"]["reported_size"] = stats.get("size_bytes")
        res["facts"]["specs"] = stats.get("specs")
        res["facts"]["active"] = stats.get("active")
        res["facts"]["archived"] = stats.get("archived")
    if os.path.isdir(index_dir):
        res["facts"]["index_bytes"] = folder_bytes(index_dir)
        res["facts"]["tantivy_bytes"] = folder_bytes(os.path.join(index_dir, "tantivy"))
    # 6. peak memory: one extra, untimed run of each command (see memory_run)
    log(f"[{n}] memory runs")

    def mem(key: str, argv, timeout=FAST_TIMEOUT, direct=True) -> None:
        r, kib = memory_run([chant, *(DIRECT if direct else []), *argv], root, timeout, env)
        m[key].add_rss(kib)
        if kib is None:
            res["errors"].append(f"memory run of `chant {shlex.join(argv)}`: {r.why()}")

    r, kib = memory_run([python, "-c", "pass"], root, FAST_TIMEOUT, env)
    baseline.add_rss(kib)
    local_bare.add_rss(kib)
    mem("warm_list", ["list", "--ready"])
    mem("warm_list_all", ["list"])
    mem("search_free", ["search", FREE_QUERY])
    mem("search_struct", ["search", STRUCT_QUERY])
    mem("auto_list", ["list", "--ready"], direct=False)
    if lock_id is not None:
        mem("lock_pair", ["lock", "acquire", lock_id])
        mem("lock_pair", ["lock", "release", lock_id])
    mem("rebuild", ["index", "rebuild"], SLOW_TIMEOUT)
    shutil.rmtree(index_dir, ignore_errors=True)
    mem("cold_list", ["list", "--ready"], SLOW_TIMEOUT)
    for argv in (["search", FREE_QUERY], ["list", "--ready"]):  # leave table and index warm
        chant_run(argv, SLOW_TIMEOUT)

    bare()
    return res
