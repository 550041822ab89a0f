"""``chant agent worker``: a local command like ``chant daemon`` (not an operation itself): it
runs a :class:`chantlib.Worker` over the backend every command uses (the repository's daemon,
``CHANT_DAEMON=http://...`` with ``CHANT_API_TOKEN``, else direct mode with file leases;
``--direct`` forces direct mode) and owns the signals: SIGTERM or SIGINT stops claiming and
gives running commands ``--grace`` seconds, a second one stops them at once.

Exit codes: 0 (stopped, or ``--once`` completed its spec), 1 (``--once``: the spec failed or
its lease was lost), 2 (usage: no command to run), 5 (``--once``: nothing ready within
``--wait``).
"""

from __future__ import annotations

import signal
import sys

__all__ = ["worker", "agent_command"]


def agent_command(config) -> str | None:
    """The command of the config's first agent (``parallel.agents[0].command``), if any."""
    agents = config.get("parallel.agents")
    if isinstance(agents, list):
        for agent in agents:
            if isinstance(agent, dict) and isinstance(agent.get("command"), str) and agent["command"].strip():
                return agent["command"]
    return None


def worker(args, out) -> int:
    from chantlib.errors import UsageError
    from chantlib.worker import Worker

    from .backends import pick

    backend = pick(args, out.note)
    try:
        command = args.exec_command
        if command is None:
            if backend.root is not None:
                from chantlib.config import Config

                config = Config.load(*_config_paths(backend.root))
                command = agent_command(config)
            if command is None:
                raise UsageError("no command to run: give --exec CMD, or set parallel.agents[0].command "
                                 "in .chant/config.md")
        w = Worker(backend, command, project=args.project, labels=args.label, once=args.once,
                   concurrency=args.concurrency, ttl=args.ttl, owner=args.owner, grace=args.grace, wait=args.wait,
                   log=out.note)

        def on_signal(signum, frame) -> None:
            if w.stopping:
                out.note("worker: stopping now (a second signal: no more grace)")
            else:
                out.note(f"worker: {signal.Signals(signum).name}: no more claims; running commands get "
                         f"{w.grace:g} s to finish")
            w.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        out.note(f"worker {w.owner}: {backend.mode} mode, {w.concurrency} slot{'s' if w.concurrency > 1 else ''}, "
                 f"running: {command}")
        code = w.run()
        if code == 5:
            out.note("No ready specs in the queue.")
        return code
    finally:
        backend.close()
        sys.stdout.flush()


def _config_paths(root: str) -> tuple[str, str]:
    import os

    from chantlib.config import global_config_path

    return os.path.join(root, ".chant", "config.md"), global_config_path()
