"""Spec writes are compare-and-swaps on the user's file: never based on a read that cannot be
the file the user has (an editor mid-save), never reverting an edit made in between.

The interleavings are made deterministic where they can be (the editor's step happens inside
the edit, at the exact moment that matters); one test races a real editor process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from chantlib.errors import Conflict

BODY = "# Fix the login redirect\n\n" + "Words the user wrote, kept byte for byte.\n" * 40
FRONT = "type: code\nstatus: pending\nlabels: [auth]\n"
SPEC_ID = "2026-01-24-001-aaa"


def _full(front: str = FRONT) -> str:
    return f"---\n{front}---\n{BODY}"


def _read(path: str) -> str:
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def _write_in_place(path: str, text: str, pause: float = 0.0) -> None:
    """Save as many editors do: truncate the file, then write it (the file is empty between)."""
    with open(path, "r+", encoding="utf-8", newline="") as fh:
        fh.truncate(0)
        fh.flush()
        if pause:
            time.sleep(pause)
        fh.write(text)


@pytest.fixture
def spec(repo):
    path = repo.write(SPEC_ID, raw=_full())
    old = time.time() - 10
    os.utime(path, (old, old))  # not just written: a read of it is trusted at once
    return path


def test_an_edit_waits_out_an_editor_that_truncated_the_file_and_keeps_its_save(repo, spec):
    ws = repo.workspace()
    ws.refresh()
    _write_in_place(spec, "")  # the editor has truncated; its write comes 300 ms later
    saved = _full(FRONT + "priority: high\n")

    def editor():
        time.sleep(0.3)
        with open(spec, "w", encoding="utf-8", newline="") as fh:
            fh.write(saved)

    t = threading.Thread(target=editor)
    t.start()
    result = ws.complete(SPEC_ID)
    t.join()
    text = _read(spec)
    assert result["spec"]["status"] == "completed"
    assert "priority: high\n" in text and "labels: [auth]\n" in text and text.endswith(BODY)
    assert "status: completed\n" in text and "completed_at: " in text


def test_an_edit_of_a_file_that_stays_empty_is_refused_and_writes_nothing(repo, spec, monkeypatch):
    from chantlib import store

    monkeypatch.setattr(store, "EDIT_WAIT", 0.3)
    ws = repo.workspace()
    ws.refresh()
    _write_in_place(spec, "")
    with pytest.raises(Conflict, match="the file is empty"):
        ws.store.edit_text(f"specs/{SPEC_ID}.md", lambda text: text + "x", wait=0.3)
    assert _read(spec).encode() == b""


def test_a_save_between_the_read_and_the_rename_is_kept_and_the_edit_made_again(repo, spec):
    ws = repo.workspace()
    ws.refresh()
    calls = []
    edited = _full(FRONT.replace("labels: [auth]", "labels: [auth, urgent]"))

    def change(text: str) -> str:
        calls.append(text)
        if len(calls) == 1:  # the editor saves (atomically) while our edit is being made
            tmp = spec + ".editor"
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(edited)
            os.replace(tmp, spec)
        return text.replace("status: pending", "status: completed")

    ws.store.edit_text(f"specs/{SPEC_ID}.md", change, keys=("status",))
    text = _read(spec)
    assert len(calls) == 2 and calls[1] == edited  # made again, on the editor's text
    assert "labels: [auth, urgent]" in text and "status: completed" in text and text.endswith(BODY)


def test_the_same_key_changed_in_between_is_a_conflict_and_the_other_write_stands(repo, spec):
    ws = repo.workspace()
    ws.refresh()
    theirs = _full(FRONT.replace("status: pending", "status: cancelled"))

    def change(text: str) -> str:
        with open(spec, "w", encoding="utf-8", newline="") as fh:
            fh.write(theirs)
        return text.replace("status: pending", "status: completed")

    with pytest.raises(Conflict, match="status of 2026-01-24-001-aaa was changed by someone else"):
        ws.store.edit_text(f"specs/{SPEC_ID}.md", change, keys=("status",))
    assert _read(spec) == theirs


def test_complete_on_a_file_an_editor_keeps_empty_fails_with_exit_3_in_both_modes(repo, spec, chant,
                                                                                  daemon_factory):
    for mode in ("direct", "daemon"):
        with open(spec, "w", encoding="utf-8", newline="") as fh:
            fh.write(_full())
        if mode == "daemon":
            daemon_factory(repo.root, api=False, metrics=False)
        assert chant("show", SPEC_ID).code == 0
        holder = open(spec, "r+", encoding="utf-8")
        holder.truncate(0)  # the editor truncated and has not written yet
        holder.flush()
        try:
            result = chant("complete", SPEC_ID)
        finally:
            holder.close()
        assert result.code != 0, (mode, result)
        assert _read(spec).encode() == b"", mode  # nothing written from an empty read


EDITOR = r"""
import os, re, sys, time
path, stop = sys.argv[1], sys.argv[2]
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0.003  # between saves
i = 0
while not os.path.exists(stop):
    i += 1
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    if not text.startswith("---"):
        continue  # our own read landed in someone's save: try again
    text = re.sub(r"^editor_n: .*\n", "", text, flags=re.M)
    text = text.replace("---\n", f"---\neditor_n: {i}\n", 1)
    if i % 2:
        with open(path, "r+", encoding="utf-8", newline="") as fh:  # in place: truncate, then write
            fh.truncate(0)
            fh.flush()
            time.sleep(0.002)
            fh.write(text)
    else:
        tmp = path + ".swp"
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    time.sleep(pause)
print(i)
"""


@pytest.mark.slow
def test_edits_racing_a_real_editor_never_lose_its_text(repo, spec, tmp_path):
    ws = repo.workspace()
    ws.refresh()
    stop = str(tmp_path / "stop")
    editor = subprocess.Popen([sys.executable, "-c", EDITOR, spec, stop], stdout=subprocess.PIPE, text=True)
    ours = 0
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            ours += 1
            try:
                ws._write_spec(ws.table.resolve(SPEC_ID), {"ours_n": ours})
            except Conflict:
                pass  # the editor held the file empty past the wait: refused, nothing written
            text = _read(spec)
            if text:  # the editor may be mid-save this instant; when it is not, nothing was lost
                assert BODY in text
    finally:
        with open(stop, "w"):
            pass
        out, _ = editor.communicate(timeout=30)
    last_editor = int(out)
    assert last_editor > 20  # the race really ran
    ws._write_spec(ws.table.resolve(SPEC_ID), {"ours_n": ours + 1})  # the last word is ours...
    text = _read(spec)
    assert f"editor_n: {last_editor}\n" in text  # ...and it reverted nothing of the editor's
    assert f"ours_n: {ours + 1}\n" in text and text.endswith(BODY) and "labels: [auth]" in text


def _editor_n(text: str) -> int | None:
    import re

    found = re.search(r"^editor_n: (\d+)$", text, flags=re.M)
    return int(found.group(1)) if found else None


@pytest.mark.slow
def test_an_editor_and_the_daemons_complete_and_lease_writes_in_loops_lose_nothing(repo, spec, tmp_path,
                                                                                     daemon_factory):
    """A real editor rewrites its own key in a loop (saving in place and atomically) while the
    daemon takes leases and completes the spec in a loop: no write of ours is ever made from
    a read older than the editor's last save (its counter never goes back), and at the end
    both last words stand, with every other key and the body."""
    from chantlib.client import DaemonClient
    from chantlib.errors import ChantError

    daemon = daemon_factory(repo.root, api=False, metrics=False)
    stop = str(tmp_path / "stop")
    # a quick editor (or agent): a save every 0.15 s, so the file holds still between saves for
    # longer than a write of ours waits for (store.QUIET_NS)
    editor = subprocess.Popen([sys.executable, "-c", EDITOR, spec, stop, "0.15"], stdout=subprocess.PIPE, text=True)
    ours = refused = 0
    try:
        with DaemonClient.connect(repo.root, timeout=30) as client:
            deadline = time.monotonic() + 6.0
            while time.monotonic() < deadline and ours < 2000:
                before = _editor_n(_read(spec))
                try:
                    lease = client.call("lock_acquire", {"spec": SPEC_ID, "owner": "w", "ttl": 60, "force": True})
                    outcome = "failure" if ours % 2 else "success"
                    client.call("complete", {"spec": SPEC_ID, "token": lease["token"], "outcome": outcome})
                    ours += 1
                except ChantError as exc:
                    assert exc.code == "conflict", exc  # the editor held the file empty past the wait
                    refused += 1
                    continue
                after = _editor_n(_read(spec))
                if before is not None and after is not None:
                    assert after >= before, "a write of ours reverted the editor's save"
    finally:
        with open(stop, "w"):
            pass
        out, _ = editor.communicate(timeout=30)
    last_editor = int(out)
    assert last_editor > 10 and ours > 5  # the race really ran, both ways
    with DaemonClient.connect(repo.root, timeout=30) as client:
        lease = client.call("lock_acquire", {"spec": SPEC_ID, "owner": "w", "ttl": 60, "force": True})
        client.call("complete", {"spec": SPEC_ID, "token": lease["token"]})  # the last word is ours...
    text = _read(spec)
    assert _editor_n(text) == last_editor  # ...and it reverted nothing of the editor's
    assert "status: completed\n" in text and "completed_at: " in text
    assert text.endswith(BODY) and "labels: [auth]" in text and "type: code" in text
    daemon.stop()


# --- a write staged ahead (the daemon's complete: synced to a temp file before its table lock) ---

def _temps(repo) -> list[str]:
    specs = os.path.join(repo.root, ".chant", "specs")
    return [name for name in os.listdir(specs) if name.endswith(".tmp")]


def _completed(text: str) -> str:
    return text.replace("status: pending", "status: completed")


def test_a_staged_edit_touches_nothing_until_it_is_put_in_place(repo, spec):
    ws = repo.workspace()
    staged = ws.store.stage_text(f"specs/{SPEC_ID}.md", _completed)
    assert _read(spec) == _full() and len(_temps(repo)) == 1  # synced beside the file, not in it
    assert ws.store.commit_staged(staged, _completed, keys=("status",)) == _completed(_full())
    assert _read(spec) == _completed(_full()) and _temps(repo) == []
    staged.discard()  # once in place, a discard is nothing
    assert _read(spec) == _completed(_full())


def _staged_then_saved(repo, spec: str, saved: str):
    """An edit staged, then the file saved by someone else (settled: trusted at once)."""
    ws = repo.workspace()
    staged = ws.store.stage_text(f"specs/{SPEC_ID}.md", _completed)
    with open(spec, "w", encoding="utf-8", newline="") as fh:
        fh.write(saved)
    old = time.time() - 10
    os.utime(spec, (old, old))
    return ws, staged


def test_a_staged_edit_of_a_file_saved_since_is_made_again_on_the_save(repo, spec):
    ws, staged = _staged_then_saved(repo, spec, _full(FRONT.replace("labels: [auth]", "labels: [auth, urgent]")))
    ws.store.commit_staged(staged, _completed, keys=("status",))
    text = _read(spec)
    assert "labels: [auth, urgent]" in text and "status: completed" in text and text.endswith(BODY)
    assert _temps(repo) == []


def test_a_staged_edit_whose_key_was_changed_since_is_a_conflict_and_the_save_stands(repo, spec):
    theirs = _full(FRONT.replace("status: pending", "status: cancelled"))
    ws, staged = _staged_then_saved(repo, spec, theirs)
    with pytest.raises(Conflict, match="status of 2026-01-24-001-aaa was changed by someone else"):
        ws.store.commit_staged(staged, _completed, keys=("status",))
    assert _read(spec) == theirs and _temps(repo) == []


def test_a_prepared_complete_refused_by_its_lease_writes_nothing_and_leaves_no_temp(repo, spec):
    from chantlib.errors import StaleToken

    ws = repo.workspace()
    ws.refresh()
    lease = ws.lock_acquire(SPEC_ID, owner="w1", ttl=60)
    prepared = ws.prepare_complete(SPEC_ID, token=lease["token"] + 1)
    assert len(_temps(repo)) == 1
    with pytest.raises(StaleToken):
        ws.complete(SPEC_ID, token=lease["token"] + 1, prepared=prepared)
    assert _read(spec) == _full() and _temps(repo) == []
    prepared = ws.prepare_complete(SPEC_ID, token=lease["token"])
    done = ws.complete(SPEC_ID, token=lease["token"], prepared=prepared)
    assert done["spec"]["status"] == "completed" and done["released"] is not None
    assert "status: completed\n" in _read(spec) and _read(spec).endswith(BODY) and _temps(repo) == []


def test_the_daemon_answers_claims_while_a_complete_syncs_its_write(repo, monkeypatch):
    """complete's fsync (a slow disk: here one that never finishes until told) happens
    before the daemon takes its table lock: a claim is answered meanwhile, then the
    complete finishes. Ordered by events, never timed."""
    import asyncio

    from chantd import build
    from chantlib import store

    repo.write("2026-01-24-001-aaa", "status: pending")
    repo.write("2026-01-24-002-bbb", "status: pending")
    syncing, go = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd):
        if threading.current_thread().name.startswith("chantd-op") and not go.is_set():
            syncing.set()
            go.wait(30)
        real_fsync(fd)

    parts = build(repo.root, serve=False)

    async def scenario():
        async with parts:
            await parts.load()
            service = parts.service
            first = (await service.call("queue_claim", {"owner": "w1", "ttl": 60}, "test"))["result"]
            monkeypatch.setattr(store.os, "fsync", slow_fsync)
            completing = asyncio.ensure_future(service.call(
                "complete", {"spec": first["spec"]["id"], "token": first["lease"]["token"]}, "test"))
            while not syncing.is_set():
                await asyncio.sleep(0.01)
            claim = await asyncio.wait_for(service.call("queue_claim", {"owner": "w2", "ttl": 60}, "test"), 10)
            still_syncing = not completing.done()
            go.set()
            return claim, still_syncing, await asyncio.wait_for(completing, 30)

    try:
        claim, still_syncing, done = asyncio.run(scenario())
    finally:
        go.set()
    assert claim["ok"] and claim["result"]["spec"]["id"] == "2026-01-24-002-bbb", claim
    assert still_syncing
    assert done["ok"] and done["result"]["spec"]["status"] == "completed", done
    assert _temps(repo) == []
