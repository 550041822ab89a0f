"""The load test, short (issue 10; the long one is `make bench-workers`): 200 ready specs, 8
`chant agent worker` processes (4 on the socket, 4 over HTTP) each appending the spec's ID to
one file, one daemon; then the same while one worker is SIGKILLed and the daemon restarted
mid-run. The runs and checks are the benchmark's own (:mod:`benchmarks.measures.workers`):
real processes, every one stopped by it, every wait bounded; nothing here looks at timings."""

from __future__ import annotations

import os
import signal

import pytest

from benchmarks.measures import workers as load
from benchmarks.repos import find_chant, script_python

pytestmark = pytest.mark.slow

SPECS, WORKERS = 200, 8


def run_load(tmp_path, *, fault: bool) -> dict:
    chant = find_chant()
    res = load.bench([chant], script_python(chant), chant, dict(os.environ), lambda _msg: None, specs=SPECS,
                     workers=WORKERS, ttl=6.0, timeout=120.0, bare=False, plain=not fault, fault=fault,
                     folder=str(tmp_path))
    run = res["runs"]["fault" if fault else "plain"]
    assert load.problems(run) == [], {k: v for k, v in run.items() if k != "claims"}
    assert run["statuses"] == {"completed": SPECS}
    assert not run["completed_more"] and not run["missing"]
    # one `completed in` line per spec; in the fault run the killed worker may die between its
    # `complete` and its line (its spec is `completed` all the same, as checked above)
    silent = set(run["completed_none"]) - set(load.interrupted(run))
    assert run["completed_once"] == SPECS - len(run["completed_none"]) and not silent
    return run


def test_every_spec_is_completed_exactly_once_by_socket_and_http_workers(tmp_path):
    run = run_load(tmp_path, fault=False)
    assert run["done_lines"] == SPECS and not run["ran_twice"]  # no fault: every command ran once
    assert set(run["exit_codes"].values()) == {0}
    assert run["claims"]["socket"] and run["claims"]["http"]  # CHANT_WORKER_TIMINGS recorded the claims
    assert not run["lost_lines"] and not run["unexpected"]
    assert run["completed_once"] == SPECS
    assert run["by_transport"]["socket"] + run["by_transport"]["http"] == SPECS
    probe = run["probe"]  # the bare claimer beside the workers: it claimed and gave back, no error
    assert probe and probe["n"] and not probe["errors"], probe


def test_the_same_with_a_worker_killed_and_the_daemon_restarted_mid_run(tmp_path):
    run = run_load(tmp_path, fault=True)
    events = {e["event"]: e for e in run["events"]}
    assert set(events) == {"sigkill", "restart"}, run["events"]
    killed = events["sigkill"]["worker"]
    assert run["exit_codes"][killed] == -signal.SIGKILL
    assert all(code == 0 for name, code in run["exit_codes"].items() if name != killed)
    # at least once: only a run the faults cut off may have run twice; completed once all the same
    assert set(run["ran_twice"]) <= set(load.interrupted(run))
