"""Continuous validation: every spec saved is linted, and what is wrong is told (docs/git.md).

Owns: following the workspace's events (a spec added or modified, by anyone: an editor, a
``git checkout``, our own writes), running the lint rules on just those specs through the
``lint`` operation (on the worker thread, like any read: it never holds up a lease or a
write), and telling what changed in their verdict: a warning in the log per finding when a
spec's findings change, the count of specs with errors in ``daemon_status``
(``invalid_specs``) and the ``chant_specs_invalid`` gauge, and an ``invalid_spec``
notification when a spec has newly got errors. A spec fixed is logged once as valid again.

Must not: block the step that changed the specs (the event only queues IDs), or repeat a
verdict that did not change (an editor saving every second does not flood the log).
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("chantd.validation")

__all__ = ["Validator"]

#: the specs linted in one request at most (a checkout of thousands: several requests)
BATCH = 500
#: a save is judged this long after it (more saves meanwhile are judged together)
SETTLE = 0.25


class Validator:
    """Lints each spec as it is saved; see the module's docstring."""

    def __init__(self, service, *, notify=None) -> None:
        self.service = service
        self.notify = notify
        #: spec ID -> the findings last told, as (severity, rule, message) triples
        self.findings: dict[str, tuple[tuple[str, str, str], ...]] = {}
        self.checked = 0
        self._pending: set[str] = set()
        self._removed: set[str] = set()  # specs gone: what still names them is judged again
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = service.ws.subscribe(self._on_event, leases=False)

    @property
    def invalid(self) -> int:
        """Specs whose last verdict has an error."""
        return sum(1 for found in self.findings.values() if any(f[0] == "error" for f in found))

    def close(self) -> None:
        self._unsubscribe()

    def _on_event(self, event) -> None:
        # on whichever thread changed the specs: hand the IDs to the loop, nothing more
        changed = (*event.added, *event.modified)
        if changed or event.removed:
            self._loop.call_soon_threadsafe(self._queue, changed, event.removed)

    def _queue(self, changed, removed) -> None:
        for spec_id in removed:
            self._pending.discard(spec_id)
            self.findings.pop(spec_id, None)
        self._removed.update(removed)
        self._pending.update(changed)
        if self._pending or self._removed:
            self._wake.set()

    async def seed(self) -> None:
        """Take in the verdict on every spec as the daemon starts, telling only a summary:
        from here on, each save is told (at a start, the log is not flooded with what
        ``chant lint`` would say of a whole repository)."""
        answer = await self.service.call("lint", {}, "validate")
        if not answer["ok"]:
            log.warning("cannot lint the specs at start: %s", answer["error"]["message"])
            return
        report = answer["result"]
        for d in report["diagnostics"]:
            self.findings.setdefault(d["spec_id"], ())
            self.findings[d["spec_id"]] += ((d["severity"], d["rule"], d["message"]),)
        self.checked += report["total"]
        if report["failed"] or report["warned"]:
            log.warning("%d spec(s) with errors, %d with warnings only (see `chant lint`)", report["failed"],
                        report["warned"])

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            # let the saves settle first: the lint takes its turn on the worker thread, and the
            # reads that follow a save (a poll of `list --ready`) must not queue behind it
            await asyncio.sleep(SETTLE)
            self._wake.clear()
            while self._pending or self._removed:
                batch = sorted(self._pending)[:BATCH]
                self._pending.difference_update(batch)
                removed, self._removed = sorted(self._removed), set()
                try:
                    await self._check(batch, removed)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("validating %d saved spec(s) failed", len(batch))

    async def _check(self, ids: list[str], removed: list[str] | None = None) -> None:
        answer = await self.service.call("lint", {"specs": ids, "removed": removed or []}, "validate")
        if not answer["ok"]:
            if answer["error"]["code"] == "not_found":  # gone again meanwhile: one by one
                for spec_id in ids if len(ids) > 1 else ():
                    await self._check([spec_id])
            return
        by_spec: dict[str, list[tuple[str, str, str]]] = {spec_id: [] for spec_id in ids}
        for d in answer["result"]["diagnostics"]:
            by_spec.setdefault(d["spec_id"], []).append((d["severity"], d["rule"], d["message"]))
        self.checked += len(ids)
        for spec_id, found in by_spec.items():
            now = tuple(found)
            before = self.findings.get(spec_id, ())
            if now == before:
                continue
            if now:
                self.findings[spec_id] = now
            else:
                self.findings.pop(spec_id, None)
                if before:
                    log.info("spec %s is valid again", spec_id)
                continue
            for severity, rule, message in now:
                log.warning("spec %s: %s [%s] %s", spec_id, severity, rule, message)
            errors = [f for f in now if f[0] == "error"]
            had_errors = any(f[0] == "error" for f in before)
            if errors and not had_errors and self.notify is not None:
                text = f"spec {spec_id} has {len(errors)} error(s): {errors[0][2]}"
                self.notify("invalid_spec", text, spec=spec_id,
                            findings=[{"severity": s, "rule": r, "message": m} for s, r, m in now])

    def status(self) -> dict:
        return {"invalid_specs": self.invalid, "specs_with_warnings": len(self.findings) - self.invalid,
                "checked": self.checked}
