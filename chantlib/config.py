"""Configuration: ``.chant/config.md`` merged over the global ``~/.config/chant/config.md``.

The config is the YAML frontmatter of a markdown file. Precedence, resolved here and only
here: explicit argument > ``CHANT_*`` environment > project config > global config >
the defaults below. Unknown keys are kept (``Config.data``) and ignored.

Environment variables read in this module:

* ``CHANT_GLOBAL_CONFIG``: path of the global config file (default
  ``$XDG_CONFIG_HOME/chant/config.md``, else ``~/.config/chant/config.md``).
* ``CHANT_OWNER``: the default lease owner (else ``user@host``).
* ``CHANT_LOCK_TTL``: the default lease TTL in seconds.

(``CHANT_NOTIFY_URL``, the notifications' URL, is read by :mod:`chantd.notify`.)
"""

from __future__ import annotations

import copy
import os

from .errors import InvalidValue

__all__ = ["Config", "DEFAULTS", "global_config_path", "default_owner"]

DEFAULTS: dict = {
    "project": {"name": None, "prefix": None, "silent": False},
    "defaults": {
        "prompt": "standard",
        "branch_prefix": "chant/",
        "main_branch": "main",
        "model": None,
        "provider": None,
    },
    "lint": {
        "thresholds": {"complexity_criteria": 10, "complexity_files": 5, "complexity_words": 150},
        "disable": ["complexity_words"],
    },
    "scale": {
        "daemon": {
            "enabled": False,
            "socket": None,
            "metrics_port": 9090,
            "api_port": 8080,
            "api_host": "127.0.0.1",
            "api_token": None,
            "watch_mode": "native",
            "git_watch": {
                "enabled": True,
                "on_commit": True,
                "on_merge": True,
                "on_checkout": True,
                "validate_on_save": True,
                # docs/git.md, "Notifications"; chantd.notify reads and checks them
                "notify": {
                    "on_invalid_spec": True,
                    "on_unknown_ref": True,
                    "channel": "desktop",  # desktop, slack, webhook or none
                    "url": None,  # slack / webhook; CHANT_NOTIFY_URL wins
                    "timeout": 5,  # seconds per attempt
                    "retries": 3,  # further attempts after the first
                },
            },
        },
        "queue": {"backend": "memory", "postgres": {"url": None}},
        "limits": {"max_agents": None, "max_per_project": None, "spec_timeout": None, "per_project": {}},
        "locks": {"ttl": 3600},
    },
}


def global_config_path() -> str:
    explicit = os.environ.get("CHANT_GLOBAL_CONFIG")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "chant", "config.md")


def default_owner() -> str:
    """``CHANT_OWNER``, else ``user@host``."""
    owner = os.environ.get("CHANT_OWNER")
    if owner:
        return owner
    # what getpass.getuser() and socket.gethostname() answer, without importing them
    user = os.environ.get("LOGNAME") or os.environ.get("USER") or os.environ.get("LNAME") or os.environ.get("USERNAME")
    if not user:
        import pwd

        try:
            user = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            user = f"uid{os.getuid()}"
    return f"{user}@{os.uname().nodename}"


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_config_file(path: str) -> tuple[dict, str | None]:
    """The frontmatter of a config file as a dict, and a warning when it cannot be used."""
    from .spec import Spec

    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"{path}: cannot read config ({exc}); using defaults"
    spec = Spec.parse("config", text)
    if spec.error:
        return {}, f"{path}: {spec.error}; using defaults"
    return spec.frontmatter, None


class Config:
    """A merged, typed view of the configuration. ``data`` holds everything the files said
    over the defaults; ``given`` only what the files said."""

    __slots__ = ("data", "given", "warnings")

    def __init__(self, data: dict | None = None, warnings: list[str] | None = None) -> None:
        self.given = data or {}
        self.data = _merge(copy.deepcopy(DEFAULTS), self.given)
        self.warnings = list(warnings or [])

    @classmethod
    def load(cls, project_config: str | None, global_config: str | None = None) -> Config:
        merged: dict = {}
        warnings: list[str] = []
        for path in (global_config or global_config_path(), project_config):
            if not path:
                continue
            data, warning = read_config_file(path)
            if warning:
                warnings.append(warning)
            merged = _merge(merged, data)
        return cls(merged, warnings)

    def get(self, dotted: str, default=None):
        node = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def is_given(self, dotted: str) -> bool:
        """Whether a config file sets ``dotted`` (not just the default)."""
        node = self.given
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return node is not None

    def _typed(self, dotted: str, kind, env: str | None = None):
        raw = os.environ.get(env) if env else None
        source = env if raw is not None else dotted
        value = raw if raw is not None else self.get(dotted)
        if value is None:
            return None
        try:
            if kind is bool and isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if kind in (int, float) and isinstance(value, bool):
                raise ValueError(value)
            return kind(value)
        except (TypeError, ValueError):
            raise InvalidValue(f"config {source}: expected {kind.__name__}, got {value!r}") from None

    # the keys the library uses

    @property
    def project_name(self) -> str | None:
        return self.get("project.name")

    @property
    def project_prefix(self) -> str | None:
        prefix = self.get("project.prefix")
        return str(prefix) if prefix else None

    @property
    def lock_ttl(self) -> float:
        ttl = self._typed("scale.locks.ttl", float, env="CHANT_LOCK_TTL")
        if ttl is None or ttl <= 0:
            raise InvalidValue(f"config scale.locks.ttl must be a positive number of seconds, got {ttl!r}")
        return ttl

    def lint_threshold(self, name: str) -> int:
        value = self._typed(f"lint.thresholds.{name}", int)
        return DEFAULTS["lint"]["thresholds"][name] if value is None else value

    @property
    def lint_disabled(self) -> frozenset:
        value = self.get("lint.disable") or []
        return frozenset(str(v) for v in value) if isinstance(value, list) else frozenset()

    def __repr__(self) -> str:
        return f"Config(project={self.project_name!r})"
