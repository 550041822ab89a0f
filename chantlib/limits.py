"""Limits on the work handed out: ``scale.limits`` (docs/scale.md, "Limits").

Owns: reading and checking the four keys, and the verdict a claim asks for: may one more
spec of this project be leased, with the live leases as they are? The queue asks at claim
time (so every claimer, local or remote, daemon or direct mode, is held to them), the
renewal of a lease is capped by ``spec_timeout``, and ``queue stats`` shows them.

- ``max_agents``: live leases at most, in all (each lease is one agent at work);
- ``per_project``: live leases at most per project, ``{"auth": 3, "*": 1}``; ``"*"`` is any
  project not named (and specs without a project);
- ``max_per_project``: the same for every project that ``per_project`` does not name (when it
  has no ``"*"``);
- ``spec_timeout``: seconds a lease may be held since it was taken, renewals included: past
  that it is not renewed, expires, and the spec goes back to the queue.

Unset (``null``) means no limit. Import-light: no other chant module is needed here.
"""

from __future__ import annotations

from .errors import InvalidValue

__all__ = ["Limits"]

_KEY = "scale.limits"


def _count(value, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidValue(f"config {_KEY}.{key} must be a whole number of leases, got {value!r}")
    try:
        n = int(value)
    except ValueError:
        raise InvalidValue(f"config {_KEY}.{key} must be a whole number of leases, got {value!r}") from None
    if n < 1:
        raise InvalidValue(f"config {_KEY}.{key} must be at least 1 (null: no limit), got {n}")
    return n


class Limits:
    """The ``scale.limits`` of a config, checked; see the module's docstring."""

    __slots__ = ("max_agents", "max_per_project", "per_project", "spec_timeout")

    def __init__(self, max_agents=None, max_per_project=None, per_project=None, spec_timeout=None) -> None:
        self.max_agents: int | None = max_agents
        self.max_per_project: int | None = max_per_project
        self.per_project: dict[str, int] = dict(per_project or {})
        self.spec_timeout: float | None = spec_timeout

    @classmethod
    def from_config(cls, config) -> Limits:
        per = config.get(f"{_KEY}.per_project") or {}
        if not isinstance(per, dict):
            raise InvalidValue(f"config {_KEY}.per_project must map projects to counts, got {per!r}")
        per_project = {}
        for name, value in per.items():
            n = _count(value, f"per_project.{name}")
            if n is not None:
                per_project[str(name)] = n
        timeout = config.get(f"{_KEY}.spec_timeout")
        if timeout is not None:
            try:
                timeout = float(timeout)
            except (TypeError, ValueError):
                raise InvalidValue(f"config {_KEY}.spec_timeout must be a number of seconds, got {timeout!r}") \
                    from None
            if isinstance(config.get(f"{_KEY}.spec_timeout"), bool) or not timeout > 0:
                raise InvalidValue(f"config {_KEY}.spec_timeout must be a positive number of seconds, got "
                                   f"{config.get(f'{_KEY}.spec_timeout')!r}")
        return cls(_count(config.get(f"{_KEY}.max_agents"), "max_agents"),
                   _count(config.get(f"{_KEY}.max_per_project"), "max_per_project"), per_project, timeout)

    @property
    def any(self) -> bool:
        """Whether a claim has anything to check."""
        return self.max_agents is not None or self.max_per_project is not None or bool(self.per_project)

    def for_project(self, project: str | None) -> int | None:
        """The most live leases specs of ``project`` may hold (``None``: no limit)."""
        per = self.per_project
        if project and project in per:
            return per[project]
        return per.get("*", self.max_per_project)

    def to_dict(self) -> dict:
        return {"max_agents": self.max_agents, "max_per_project": self.max_per_project,
                "per_project": dict(self.per_project), "spec_timeout": self.spec_timeout}

    def __repr__(self) -> str:
        return f"Limits({self.to_dict()})"


class Tally:
    """The live leases of the queue's work, counted once per claim: in all and per project."""

    __slots__ = ("limits", "total", "by_project")

    def __init__(self, limits: Limits, table, leases) -> None:
        self.limits = limits
        self.total = 0
        self.by_project: dict[str, int] = {}
        for lease in leases:
            self.total += 1
            row = table.active.get(lease.spec)
            project = (row.project if row is not None else None) or ""
            self.by_project[project] = self.by_project.get(project, 0) + 1

    def full(self) -> str | None:
        """Why no claim at all may be made now (``max_agents`` reached), else ``None``."""
        cap = self.limits.max_agents
        if cap is not None and self.total >= cap:
            return f"scale.limits.max_agents ({cap}) leases are live"
        return None

    def project_full(self, project: str | None) -> bool:
        cap = self.limits.for_project(project)
        return cap is not None and self.by_project.get(project or "", 0) >= cap
