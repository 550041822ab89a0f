"""The spec model: lossless round trips, one-key edits, derived facts."""

from __future__ import annotations

import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chantlib.errors import SpecParseError
from chantlib.spec import Spec, criteria_counts, dump_yaml_value, referenced_ids, split_document

SAMPLE = """\
---
type: code   # the kind of work
status: pending
depends_on:
  - 2026-01-24-001-cxn
commits:
- '6304141'
- 81ba38c
- 0123456
labels: [ux, "bug"]
completed_at: 2026-01-24T21:49:10Z
x-custom:
  nested: {a: 1}
---
# Add the --branch flag

Intro with a `code` span.

## Acceptance Criteria

- [x] one
- [ ] two
  - [X] nested three
"""


def test_parse_reads_every_key_and_keeps_text():
    spec = Spec.parse("2026-01-24-002-abc", SAMPLE)
    assert spec.error is None
    assert spec.render() == SAMPLE
    assert spec.title == "Add the --branch flag"
    assert spec.status == "pending"
    assert spec.type == "code"
    assert spec.depends_on == ["2026-01-24-001-cxn"]
    # unquoted all-digit hashes keep the digits as written (0123456 is not octal 42798)
    assert spec.commits == ["6304141", "81ba38c", "0123456"]
    assert spec.labels == ["ux", "bug"]
    assert spec.frontmatter["completed_at"] == "2026-01-24T21:49:10Z"  # timestamps stay text
    assert spec.frontmatter["x-custom"] == {"nested": {"a": 1}}
    assert spec.criteria == (2, 3)


@pytest.mark.parametrize(
    "text",
    [
        "---\nstatus: pending\n---\n# T\n",
        "---\r\nstatus: pending\r\n---\r\n# T\r\nbody\r\n",
        "\ufeff---\nstatus: pending\n---\n# T\n",
        "---\nstatus: pending\n---",
        "---\nstatus: pending\n---\n",
        "---\n---\n# empty frontmatter\n",
        "# no frontmatter at all\n",
        "",
        "---\nstatus: pending\n---  \n# closing line with trailing spaces\n",
        "---\n# only a comment\n---\nbody with --- inside\n---\nand a rule\n",
    ],
)
def test_round_trip_is_byte_identical(text):
    spec = Spec.parse("x", text)
    assert spec.render() == text


def test_missing_depends_on_is_none_but_empty_list_is_a_list():
    assert Spec.parse("x", "---\nstatus: pending\n---\n").depends_on is None
    assert Spec.parse("x", "---\ndepends_on: []\n---\n").depends_on == []
    assert Spec.parse("x", "---\ndepends_on: 2026-01-01-001-abc\n---\n").depends_on == ["2026-01-01-001-abc"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("---\nstatus: [unclosed\n---\n# T\n", "invalid YAML in frontmatter at line"),
        ("---\nstatus: pending\n# T\n", "never closed"),
        ("---\n- a\n- b\n---\n# T\n", "not a mapping"),
        ("---\nkey: value\n  bad: indent\n---\n", "invalid YAML"),
    ],
)
def test_broken_frontmatter_loads_with_an_error(text, fragment):
    spec = Spec.parse("x", text)
    assert spec.error is not None and fragment in spec.error
    assert spec.render() == text
    with pytest.raises(SpecParseError):
        spec.with_value("status", "completed")


def test_error_names_the_file_line():
    spec = Spec.parse("x", "---\nstatus: ok\ntype: [\n---\n")
    assert "line 3" in spec.error or "line 4" in spec.error


def test_one_key_edit_keeps_everything_else():
    spec = Spec.parse("x", SAMPLE)
    edited = spec.with_value("status", "completed")
    before = SAMPLE.splitlines(keepends=True)
    after = edited.render().splitlines(keepends=True)
    assert [line for line in after if not line.startswith("status:")] == [
        line for line in before if not line.startswith("status:")
    ]
    assert "status: completed\n" in after
    assert edited.body == spec.body
    assert edited.with_value("status", "pending").render() == SAMPLE


def test_edit_keeps_an_inline_comment_and_crlf():
    text = "---\r\ntype: code  # kind\r\nstatus: pending\r\n---\r\n# T\r\n"
    edited = Spec.parse("x", text).with_value("type", "task")
    assert edited.render() == "---\r\ntype: task  # kind\r\nstatus: pending\r\n---\r\n# T\r\n"


def test_edit_of_a_list_follows_the_file_indentation():
    indented = "---\ncommits:\n  - aaaaaaa\nstatus: done\n---\n"
    out = Spec.parse("x", indented).with_value("commits", ["aaaaaaa", "bbbbbbb"]).render()
    assert out == "---\ncommits:\n  - aaaaaaa\n  - bbbbbbb\nstatus: done\n---\n"
    flush = "---\ncommits:\n- aaaaaaa\n---\n"
    out = Spec.parse("x", flush).with_value("commits", ["0123456"]).render()
    assert out == "---\ncommits:\n- '0123456'\n---\n"


def test_new_key_is_appended_and_delete_removes_only_that_key():
    text = "---\n# leading comment\nstatus: pending\n\nlabels:\n- a\n---\nbody\n"
    spec = Spec.parse("x", text)
    added = spec.with_value("completed_at", "2026-01-24T21:49:10Z")
    assert added.render() == text.replace("- a\n---", "- a\ncompleted_at: 2026-01-24T21:49:10Z\n---")
    removed = spec.without("labels")
    assert removed.render() == "---\n# leading comment\nstatus: pending\n\n---\nbody\n"
    assert spec.without("absent") is spec


def test_edits_on_a_file_without_frontmatter_add_one():
    spec = Spec.parse("x", "# Title\n\nbody\n")
    out = spec.with_value("status", "pending")
    assert out.render() == "---\nstatus: pending\n---\n# Title\n\nbody\n"


def test_block_scalar_and_flow_values_are_replaced_whole():
    text = "---\nprompt: |\n  line one\n  line two\nnext: 1\nmap: {a: 1,\n  b: 2}\nlast: x\n---\n"
    spec = Spec.parse("x", text)
    assert spec.with_value("prompt", "short").render() == "---\nprompt: short\nnext: 1\nmap: {a: 1,\n  b: 2}\nlast: x\n---\n"
    assert spec.with_value("map", {"c": 3}).render() == "---\nprompt: |\n  line one\n  line two\nnext: 1\nmap:\n  c: 3\nlast: x\n---\n"


def test_split_document_parts_concatenate():
    parts = split_document(SAMPLE)
    assert "".join(parts) == SAMPLE
    assert split_document("no frontmatter") is None
    with pytest.raises(SpecParseError):
        split_document("---\nstatus: open")


def test_criteria_use_the_last_section_outside_code_fences():
    body = (
        "## Acceptance Criteria\n- [ ] old\n\n```\n## Acceptance Criteria\n- [ ] fenced\n```\n"
        "## Acceptance Criteria\n- [x] a\n- [ ] b\n## Notes\n- [ ] not counted\n"
    )
    assert criteria_counts(body) == (1, 2)
    assert criteria_counts("### Acceptance Criteria\n- [x] h3 is not the section\n") == (0, 0)


def test_title_is_the_first_h1_line():
    assert Spec.parse("x", "---\n---\nintro\n# Real title \n# second\n").title == "Real title"
    assert Spec.parse("x", "---\n---\n## not h1\n").title is None


def test_referenced_ids_skip_code_fences():
    body = "See 2026-01-24-001-abc and auth-2026-01-22-001-x7m.2.\n```\n2026-01-24-002-zzz\n```\n"
    assert referenced_ids(body) == ["2026-01-24-001-abc", "auth-2026-01-22-001-x7m.2"]


def test_priority_names_and_numbers():
    assert Spec.parse("x", "---\npriority: critical\n---\n").priority == 200
    assert Spec.parse("x", "---\npriority: 75\n---\n").priority == 75
    assert Spec.parse("x", "---\n---\n").priority == 50


def test_unknown_keys_and_values_load():
    spec = Spec.parse("x", "---\ntype: conflictish\nstatus: weird\nnovel_key: {deep: [1, 2]}\n---\n# T\n")
    assert spec.error is None
    assert spec.type == "conflictish" and spec.status == "weird"
    assert spec.frontmatter["novel_key"] == {"deep": [1, 2]}


def test_new_spec_renders_and_reparses():
    spec = Spec.new("x", {"type": "code", "status": "pending", "labels": ["a"]}, "# Title\n")
    assert spec.render() == "---\ntype: code\nstatus: pending\nlabels:\n- a\n---\n# Title\n"
    assert Spec.parse("x", spec.render()).frontmatter == spec.frontmatter


# --- properties -----------------------------------------------------------------------------

_key = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12).filter(lambda k: k[0] != "_")
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30),
    st.sampled_from(["2026-01-24T21:49:10Z", "0123456", "81ba38c", "yes", "null", "1e3", "~", "- x", "#x", "a: b"]),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_key, inner, max_size=3)),
    max_leaves=8,
)
_style = st.sampled_from(["block", "flow", "indented"])
_body = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


def _render_key(key, value, style) -> str:
    if style == "flow":
        return yaml.safe_dump({key: value}, default_flow_style=True, width=10**6, allow_unicode=True)[1:-2] + "\n"
    return dump_yaml_value(key, value, seq_indent=2 if style == "indented" else 0)


@st.composite
def documents(draw):
    items = draw(st.dictionaries(_key, st.tuples(_value, _style), min_size=0, max_size=6))
    front = "".join(_render_key(k, v, s) for k, (v, s) in items.items())
    body = draw(_body)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = f"---{newline}{front}---{newline}{body}"
    return text, {k: v for k, (v, _s) in items.items()}


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_property_round_trip_is_byte_identical(doc):
    text, data = doc
    spec = Spec.parse("x", text)
    assert spec.error is None, spec.error
    assert spec.render() == text
    assert spec.frontmatter == data


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), _key, _value)
def test_property_one_key_edit_keeps_the_rest(doc, key, value):
    text, data = doc
    spec = Spec.parse("x", text)
    edited = spec.with_value(key, value)
    assert edited.error is None, edited.error
    expected = dict(data)
    expected[key] = value
    assert edited.frontmatter == expected
    assert list(edited.frontmatter) == list(expected)  # order: replaced in place, new keys last
    assert edited.body == spec.body
    # every other key's source text is untouched
    for other in data:
        if other != key:
            assert _key_text(spec, other) == _key_text(edited, other)
    restored = edited.without(key) if key not in data else edited.with_value(key, data[key])
    assert restored.frontmatter == data
    if key not in data:
        assert restored.render() == text


def _key_text(spec: Spec, key: str) -> str:
    _opening, front, _closing, _body = split_document(spec.render())
    start, end, _comment = spec._spans(front)[key]
    return front[start:end]


def test_a_written_string_a_yaml_1_2_reader_takes_for_a_number_is_quoted():
    """Upstream chant reads specs with a YAML 1.2 parser: a short hash such as `0123458`
    (1.1: a string, 1.2: an int) or `1e12345` (1.2: a float) is written quoted; hashes
    with letters stay plain, and numbers stay numbers."""
    from chantlib.spec import dump_yaml_value, load_yaml

    for text, quoted in (("0123458", True), ("1e12345", True), ("3843479", True), ("-12", True),
                         ("81ba38c", False), ("abcdef0", False), ("e1", False)):
        written = dump_yaml_value("commits", [text])
        assert written == (f"commits:\n- '{text}'\n" if quoted else f"commits:\n- {text}\n"), text
        assert load_yaml(written) == {"commits": [text]}
    assert dump_yaml_value("priority", 100) == "priority: 100\n"
