"""Prometheus metrics (docs/chant-format.md §12), on a registry of our own.

State that can be read off the workspace (spec counts, the queue, leases, the index) is
read at scrape time by :class:`WorkspaceCollector` from one
:meth:`Workspace.statistics <chantlib.workspace.Workspace.statistics>` record, instead of
keeping gauges in step by hand. What only happens in flight
(request durations, completions, queue waits, index updates and queries) is counted with
prometheus_client's own Counter and Histogram. No label holds a spec ID, a worker ID or a
hash: labels are statuses, projects, transports, operation names and results.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from chantlib._version import VERSION
from chantlib.ops import OPS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_REQUEST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The daemon's registry: in-flight counters here, workspace state from the collector."""

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only add noise for a single process
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Histogram(
            "chant_request_duration_seconds",
            "Time to answer a request, by transport and operation.",
            ["transport", "cmd"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.completions = Counter(
            "chant_agent_completions",
            "Specs finished through the complete operation, by result.",
            ["result"],
            registry=r,
        )
        self.spec_duration = Histogram(
            "chant_spec_duration_seconds",
            "Time from taking a spec's lease to completing it.",
            buckets=(60, 300, 900, 1800),
            registry=r,
        )
        self.queue_wait = Histogram(
            "chant_queue_wait_seconds",
            "Time a spec waited in the queue (ready and unleased) before a claim took it.",
            buckets=(60, 300),
            registry=r,
        )
        self.index_updates = Counter(
            "chant_index_updates", "Documents written to or deleted from the index.", registry=r
        )
        self.index_queries = Counter("chant_index_queries", "Queries run against the index.", registry=r)
        self.git_events = Counter("chant_git_events", "Git events seen in the reflogs, by kind.", ["kind"], registry=r)
        self.git_recorded = Counter(
            "chant_git_commits_recorded", "Commits recorded in a spec's commits: by the git watcher.", registry=r
        )
        self.git_unknown_refs = Counter(
            "chant_git_unknown_refs", "Commits whose chant(<id>) subject names no spec.", registry=r
        )
        for result in ("success", "failure"):
            self.completions.labels(result=result)
        self.collector: WorkspaceCollector | None = None
        self._children: dict = {}

    def watch_notifier(self, notifier) -> None:
        """Export what ``notifier`` did: ``chant_notifications_total{channel,result}``."""
        self.registry.register(_NotifierCollector(notifier))

    def bind(self, service) -> None:
        """Start reporting the state of ``service``'s workspace."""
        self.collector = WorkspaceCollector(service)
        self.registry.register(self.collector)

    def observe_request(self, transport: str, cmd: str, seconds: float) -> None:
        key = (transport, cmd)
        child = self._children.get(key)
        if child is None:  # label lookups cost more than the observation: remember the child
            child = self.requests.labels(transport=transport, cmd=cmd if cmd in OPS else "unknown")
            if cmd in OPS:
                self._children[key] = child
        child.observe(seconds)

    def render(self) -> bytes:
        """The text exposition format (call it with the service lock held)."""
        return generate_latest(self.registry)


class WorkspaceCollector:
    """Gauges and counters read off the workspace at scrape time."""

    def __init__(self, service) -> None:
        self.service = service

    def describe(self):
        return []  # collect() is cheap and always safe: let the registry call it

    def collect(self):
        service = self.service
        stats = service.ws.statistics()  # one frozen record: counts kept until a spec changes

        specs = GaugeMetricFamily("chant_specs", "Active specs by stored status and project.", labels=["status", "project"])
        for (status, project), n in stats.by_status_project:
            specs.add_metric([status, project], n)
        yield specs

        # Per project, with a 0 for every project that has active specs (the one project ""
        # when there are none): a queue that runs dry must read 0, not vanish, so that
        # `chant_queue_depth == 0` alerts and graphs do not go blank.
        ready = GaugeMetricFamily("chant_specs_ready", "Ready specs by project.", labels=["project"])
        for project, n in stats.ready_by_project or (("", 0),):
            ready.add_metric([project], n)
        yield ready

        depth = GaugeMetricFamily(
            "chant_queue_depth", "Ready specs with no live lease (the queue), by project.", labels=["project"]
        )
        for project, n in stats.queued_by_project or (("", 0),):
            depth.add_metric([project], n)
        yield depth

        yield GaugeMetricFamily("chant_locks_active", "Live leases.", value=stats.leases)
        yield GaugeMetricFamily("chant_agents_active", "Distinct owners holding a live lease.", value=stats.owners)
        acquisitions = CounterMetricFamily(
            "chant_lock_acquisitions", "Lease acquisitions, by result.", labels=["result"]
        )
        acquisitions.add_metric(["ok"], stats.leases_acquired)
        acquisitions.add_metric(["conflict"], stats.leases_conflicts)
        yield acquisitions
        yield CounterMetricFamily("chant_lock_releases", "Leases released.", value=stats.leases_released)
        yield CounterMetricFamily("chant_lock_expirations", "Leases that expired (counted when freed).",
                                  value=stats.leases_expired)

        # an index being rebuilt (no count to read): report what the table knows
        documents = stats.documents if stats.documents is not None else stats.specs
        yield GaugeMetricFamily("chant_index_documents", "Documents in the search index.", value=documents)
        yield GaugeMetricFamily(
            "chant_daemon_uptime_seconds", "Seconds since the daemon started.", value=time.time() - service.started
        )
        info = GaugeMetricFamily("chant_build_info", "The running chant version (always 1).", labels=["version"])
        info.add_metric([VERSION], 1)
        yield info


class _NotifierCollector:
    """Notifications by channel and result, read off the notifier's counters at scrape time."""

    RESULTS = ("sent", "logged", "failed", "dropped", "retried")

    def __init__(self, notifier) -> None:
        self.notifier = notifier

    def describe(self):
        return []

    def collect(self):
        stats = self.notifier.stats()
        family = CounterMetricFamily(
            "chant_notifications", "Notifications: sent, written to the log instead, given up, dropped, retries.",
            labels=["channel", "result"],
        )
        for result in self.RESULTS:
            family.add_metric([stats.channel, result], getattr(stats, result))
        yield family
