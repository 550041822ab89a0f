"""The spec model: lossless parse and serialize of markdown with YAML frontmatter.

A :class:`Spec` keeps the exact text it was read from. Rendering an unchanged spec gives
the same bytes; changing one key (:meth:`Spec.with_value`, :meth:`Spec.without`) rewrites
only that key's lines, so every other key keeps its order, quoting, comments and layout,
and the body stays byte for byte. The span of a key is found by the YAML parser itself
(node marks), and the new value is written by the YAML emitter: nothing here edits YAML by
hand. Why not a round-trip library such as ruamel.yaml: see docs/design.md ("Spec writes").

Reading never raises: a file whose frontmatter is broken loads as a spec with ``error``
set, so one bad file never stops the others from loading.
"""

from __future__ import annotations

import re

import yaml

from .errors import SpecParseError
from .ids import ID_REFERENCE_RE, driver_of
from .values import DEFAULT_PRIORITY, KNOWN_STATUSES, KNOWN_TYPES, PRIORITY_NAMES

__all__ = [
    "Spec",
    "KNOWN_STATUSES",
    "KNOWN_TYPES",
    "PRIORITY_NAMES",
    "DEFAULT_PRIORITY",
    "load_yaml",
    "dump_yaml_value",
    "split_document",
]

TYPE_CHECKING = False  # mypy reads the block, the run time the other branch
if TYPE_CHECKING:
    from yaml import CSafeDumper as _CSafeDumper
    from yaml import CSafeLoader as _CSafeLoader
else:  # libyaml's C classes where PyYAML was built with it, else the pure-Python ones
    _CSafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    _CSafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class RawInt(int):
    """An int that remembers how it was written (``0123456`` is a commit hash, not 42798)."""

    raw: str

    def __new__(cls, value: int, raw: str) -> RawInt:
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj


def _without_timestamps(resolvers: dict) -> dict:
    # Timestamps stay strings: completed_at must print as written, and JSON has no dates.
    return {
        first: [(tag, rx) for tag, rx in entries if tag != "tag:yaml.org,2002:timestamp"]
        for first, entries in resolvers.items()
    }


class _Loader(_CSafeLoader):
    yaml_implicit_resolvers = _without_timestamps(_CSafeLoader.yaml_implicit_resolvers)


def _construct_int(loader, node):
    return RawInt(yaml.SafeLoader.construct_yaml_int(loader, node), node.value)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _Dumper(_CSafeDumper):
    yaml_implicit_resolvers = _without_timestamps(_CSafeDumper.yaml_implicit_resolvers)


# What we write is read by YAML 1.2 readers too (upstream chant's serde_yaml): a string that
# 1.2 takes for a number is quoted, though PyYAML (1.1) would read it back as a string, as
# the short hashes `0123458` (1.1: not octal; 1.2: an int) and `1e12345` (1.2: a float).
for _tag, _rx in (
    ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$"),
    ("tag:yaml.org,2002:float", r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
):
    _Dumper.add_implicit_resolver(_tag, re.compile(_rx), list("-+.0123456789"))


_Dumper.add_representer(RawInt, lambda d, v: d.represent_scalar("tag:yaml.org,2002:int", v.raw))


def load_yaml(text: str):
    """Load YAML the way specs and config are read (C loader, timestamps kept as text)."""
    return yaml.load(text, Loader=_Loader)


def dump_yaml_value(key: str, value, *, seq_indent: int = 0) -> str:
    """Render ``key: value`` as block YAML ending in a newline.

    ``seq_indent`` re-indents a top-level block sequence to match the file's style
    (``- a`` at column 0 or ``  - a``).
    """
    text = yaml.dump(
        {key: value}, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True, width=4096
    )
    if seq_indent and isinstance(value, (list, tuple)) and value:
        pad = " " * seq_indent
        lines = text.splitlines(keepends=True)
        text = lines[0] + "".join(pad + line for line in lines[1:])
    return text


def plain(value):
    """A copy of a loaded YAML value made of plain types only: dict, list, str, int, float,
    bool and None (a :class:`RawInt` becomes its int). What JSON and marshal (the spec
    table's cache) both take: marshal refuses subclasses, even of int."""
    kind = type(value)
    if kind is dict or isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if kind is list or isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or kind in (str, bool, int, float):
        return value
    for base in (bool, int, float, str):  # subclasses of the plain types: their plain value
        if isinstance(value, base):
            return base(value)
    return str(value)


# --- the document ---------------------------------------------------------------------------

_CLOSE_RE = re.compile(r"^---[ \t]*\r?$", re.M)


def split_document(text: str) -> tuple[str, str, str, str] | None:
    """Split ``text`` into (opening line, frontmatter, closing line, body).

    Returns ``None`` when the text has no frontmatter. Raises :class:`SpecParseError` when
    the frontmatter is opened but never closed. The four parts concatenate to ``text``.
    """
    start = 1 if text.startswith("\ufeff") else 0
    first_end = text.find("\n", start)
    first = text[start:] if first_end == -1 else text[start:first_end]
    if first.rstrip() != "---":
        return None
    if first_end == -1:
        raise SpecParseError("frontmatter is opened with '---' but never closed")
    m = _CLOSE_RE.search(text, first_end + 1)
    if m is None:
        raise SpecParseError("frontmatter is opened with '---' but never closed")
    close_end = m.end()
    if close_end < len(text) and text[close_end] == "\n":
        close_end += 1
    return text[: first_end + 1], text[first_end + 1 : m.start()], text[m.start() : close_end], text[close_end:]


def _yaml_error_message(exc: yaml.YAMLError, line_offset: int) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"invalid YAML in frontmatter at line {mark.line + 1 + line_offset}: {problem}"
    return f"invalid YAML in frontmatter: {problem}"


# --- derived facts from the body --------------------------------------------------------------

_AC_HEADING = "## Acceptance Criteria"


def criteria_counts(body: str) -> tuple[int, int]:
    """(checked, total) checkboxes in the last ``## Acceptance Criteria`` section.

    As upstream: the last such heading outside code fences, up to the next ``## `` heading;
    items are lines starting (after indentation) with ``- [ ]``, ``- [x]`` or ``- [X]``.
    """
    if _AC_HEADING not in body:
        return 0, 0
    lines = body.splitlines()
    fence = False
    start = None
    for i, line in enumerate(lines):
        t = line.lstrip()
        if t.startswith("```"):
            fence = not fence
        elif not fence and t.startswith(_AC_HEADING):
            start = i
    if start is None:
        return 0, 0
    checked = total = 0
    fence = False
    for line in lines[start + 1 :]:
        t = line.lstrip()
        if t.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        if t.startswith("## "):
            break
        if t.startswith("- [ ]"):
            total += 1
        elif t.startswith("- [x]") or t.startswith("- [X]"):
            total += 1
            checked += 1
    return checked, total


def body_title(body: str) -> str | None:
    """The first line of the body that starts with ``# ``."""
    if body.startswith("# "):
        end = body.find("\n")
        return (body[2:] if end == -1 else body[2:end]).strip() or None
    pos = body.find("\n# ")
    if pos == -1:
        return None
    end = body.find("\n", pos + 1)
    return (body[pos + 3 :] if end == -1 else body[pos + 3 : end]).strip() or None


def referenced_ids(body: str) -> list[str]:
    """Spec IDs named in the body outside fenced code blocks, in order of first mention."""
    seen: dict[str, None] = {}
    fence = False
    for line in body.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if not fence and "-" in line:
            for m in ID_REFERENCE_RE.finditer(line):
                seen.setdefault(m.group(0))
    return list(seen)


def _as_str_list(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [v.raw if isinstance(v, RawInt) else str(v) for v in value if v is not None]
    return [value.raw if isinstance(value, RawInt) else str(value)]


def priority_value(value) -> int | None:
    """``low``/``normal``/``high``/``critical`` or an integer; ``None`` when unusable."""
    if value is None:
        return DEFAULT_PRIORITY
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in PRIORITY_NAMES:
            return PRIORITY_NAMES[v]
        try:
            return int(v)
        except ValueError:
            return None
    return None


# --- the model --------------------------------------------------------------------------------


class Spec:
    """One spec file: its ID, exact text, parsed frontmatter and body.

    Construct with :meth:`parse` (from text) or :meth:`new` (a fresh spec). Instances are
    treated as immutable: the edit methods return a new :class:`Spec`.
    """

    __slots__ = ("id", "text", "frontmatter", "body", "error", "has_frontmatter", "_parts")

    def __init__(self, spec_id: str, text: str, frontmatter: dict, body: str, error: str | None, parts):
        self.id = spec_id
        self.text = text
        self.frontmatter = frontmatter
        self.body = body
        self.error = error
        self.has_frontmatter = parts is not None
        self._parts = parts

    # construction

    @classmethod
    def parse(cls, spec_id: str, text: str) -> Spec:
        """Parse ``text``; never raises. A broken frontmatter sets ``error``."""
        try:
            parts = split_document(text)
        except SpecParseError as exc:
            return cls(spec_id, text, {}, text, exc.message, None)
        if parts is None:
            return cls(spec_id, text, {}, text, None, None)
        opening, front, _closing, body = parts
        try:
            data = load_yaml(front) if front.strip() else {}
        except yaml.YAMLError as exc:
            return cls(spec_id, text, {}, body, _yaml_error_message(exc, 1), parts)
        except (ValueError, TypeError, OverflowError) as exc:  # constructor errors (bad int, ...)
            return cls(spec_id, text, {}, body, f"invalid YAML in frontmatter: {exc}", parts)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return cls(spec_id, text, {}, body, "frontmatter is not a mapping of keys to values", parts)
        return cls(spec_id, text, data, body, None, parts)

    @classmethod
    def new(cls, spec_id: str, frontmatter: dict, body: str) -> Spec:
        front = "".join(dump_yaml_value(k, v) for k, v in frontmatter.items())
        return cls.parse(spec_id, f"---\n{front}---\n{body}")

    def render(self) -> str:
        """The text of the spec; identical to what was parsed unless edited."""
        return self.text

    # what the rules need

    @property
    def title(self) -> str | None:
        return body_title(self.body)

    @property
    def status(self) -> str:
        value = self.frontmatter.get("status")
        return "pending" if value is None else str(value)

    @property
    def type(self) -> str:
        value = self.frontmatter.get("type")
        return "code" if value is None else str(value)

    @property
    def depends_on(self) -> list[str] | None:
        """``None`` when the key is absent (which matters for sibling order), else a list."""
        if "depends_on" not in self.frontmatter:
            return None
        return _as_str_list(self.frontmatter["depends_on"]) or []

    def list_value(self, key: str) -> list[str]:
        return _as_str_list(self.frontmatter.get(key)) or []

    @property
    def labels(self) -> list[str]:
        return self.list_value("labels")

    @property
    def commits(self) -> list[str]:
        return self.list_value("commits")

    @property
    def target_files(self) -> list[str]:
        return self.list_value("target_files")

    @property
    def approval(self) -> dict | None:
        value = self.frontmatter.get("approval")
        return value if isinstance(value, dict) else None

    @property
    def priority(self) -> int:
        p = priority_value(self.frontmatter.get("priority"))
        return DEFAULT_PRIORITY if p is None else p

    @property
    def criteria(self) -> tuple[int, int]:
        return criteria_counts(self.body)

    @property
    def driver(self) -> str | None:
        return driver_of(self.id)

    # edits

    def _require_frontmatter_edits(self) -> tuple[str, str, str, str]:
        if self.error is not None:
            raise SpecParseError(f"cannot edit {self.id}: {self.error}", spec=self.id)
        if self._parts is None:
            return "---\n", "", "---\n", self.text
        return self._parts

    def _spans(self, front: str):
        """Top-level key -> (start, end, trailing inline comment) in ``front``, from node marks."""
        node = yaml.compose(front, Loader=_Loader) if front.strip() else None
        spans: dict[str, tuple[int, int, str]] = {}
        if node is None:
            return spans
        for key_node, value_node in node.value:
            start = front.rfind("\n", 0, key_node.start_mark.index) + 1
            end = _last_index(value_node)
            if end > 0 and front[end - 1] == "\n":
                comment = ""
            else:
                line_end = front.find("\n", end)
                line_end = len(front) if line_end == -1 else line_end + 1
                rest = front[end:line_end].rstrip("\r\n")
                comment = rest if rest.lstrip().startswith("#") else ""
                end = line_end
            spans[str(key_node.value)] = (start, end, comment)
        return spans

    def _seq_indent(self, front: str) -> int:
        m = re.search(r"^[^\s#][^\n]*:[ \t]*\r?\n([ \t]*)- ", front, re.M)
        return len(m.group(1)) if m else 0

    def with_value(self, key: str, value) -> Spec:
        """A copy with ``key`` set to ``value``; every other byte stays as it was."""
        opening, front, closing, body = self._require_frontmatter_edits()
        spans = self._spans(front)
        rendered = dump_yaml_value(key, value, seq_indent=self._seq_indent(front))
        if key in spans:
            start, end, comment = spans[key]
            if comment and rendered.count("\n") == 1:
                rendered = rendered.rstrip("\n") + comment + "\n"
            if front[start:end].endswith("\r\n"):
                rendered = rendered.replace("\n", "\r\n")
            new_front = front[:start] + rendered + front[end:]
        else:
            if front and not front.endswith("\n"):
                front += "\n"
            new_front = front + rendered
        return Spec.parse(self.id, opening + new_front + closing + body)

    def with_values(self, values: dict) -> Spec:
        spec = self
        for key, value in values.items():
            spec = spec.with_value(key, value)
        return spec

    def without(self, key: str) -> Spec:
        """A copy without ``key`` (no change when it is absent)."""
        opening, front, closing, body = self._require_frontmatter_edits()
        spans = self._spans(front)
        if key not in spans:
            return self
        start, end, _comment = spans[key]
        return Spec.parse(self.id, opening + front[:start] + front[end:] + closing + body)

    def __repr__(self) -> str:
        return f"Spec({self.id!r}, status={self.status!r}, title={self.title!r})"


def _last_index(node) -> int:
    """The end of the last character of ``node``'s value (block collections: their last leaf)."""
    while isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    return node.end_mark.index
