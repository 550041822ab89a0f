"""The query language parser: structure and errors (no index needed)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chantlib.errors import QuerySyntaxError
from chantlib.query import And, Not, Or, Term, parse_query, tokenize


def shape(node):
    if isinstance(node, Term):
        return (node.field, node.kind, node.value)
    if isinstance(node, And):
        return ("AND", [shape(i) for i in node.items])
    if isinstance(node, Or):
        return ("OR", [shape(i) for i in node.items])
    if isinstance(node, Not):
        return ("NOT", shape(node.item))
    raise TypeError(node)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auth", (None, "word", "auth")),
        ("status:pending", ("status", "word", "pending")),
        ("labels:ux", ("label", "word", "ux")),
        ('title:"merge driver"', ("title", "phrase", "merge driver")),
        ("id:auth-*", ("id", "word", "auth-*")),
        ("created:[2026-01-01 TO 2026-01-31]", ("created", "range", ("2026-01-01", "2026-01-31", True, True))),
        ("created:{2026-01-01 TO *]", ("created", "range", ("2026-01-01", None, False, True))),
        ("priority:>=100", ("priority", "cmp", (">=", "100"))),
        ("a b", ("AND", [(None, "word", "a"), (None, "word", "b")])),
        ("a AND b OR c", ("OR", [("AND", [(None, "word", "a"), (None, "word", "b")]), (None, "word", "c")])),
        ("a OR b c", ("OR", [(None, "word", "a"), ("AND", [(None, "word", "b"), (None, "word", "c")])])),
        ("NOT status:completed", ("NOT", ("status", "word", "completed"))),
        ("-label:x", ("NOT", ("label", "word", "x"))),
        ("(a OR b) AND NOT (c)", ("AND", [("OR", [(None, "word", "a"), (None, "word", "b")]), ("NOT", (None, "word", "c"))])),
        ('"say \\"hi\\""', (None, "phrase", 'say "hi"')),
        ("and or not", ("AND", [(None, "word", "and"), (None, "word", "or"), (None, "word", "not")])),
    ],
)
def test_parse(text, expected):
    assert shape(parse_query(text)) == expected


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("", "the query is empty", 0),
        ("   ", "the query is empty", 0),
        ("foo:bar", "unknown field 'foo'", 0),
        ("a OR", "OR needs a term after it", 4),
        ("a AND", "AND needs a term after it", 5),
        ("NOT", "NOT needs a term after it", 3),
        ("(a OR b", "unclosed '('", 0),
        ("a)", "unmatched ')'", 1),
        ("()", "empty parentheses", 1),
        ('"open', "unclosed quote", 0),
        ("created:[2026 TO", "unclosed range", 8),
        ("created:[2026 2027]", "[low TO high]", 8),
        ("created:[* TO *]", "at least one bound", 8),
        ("status:", "needs a value", 7),
    ],
)
def test_errors_are_clear_and_positioned(text, message, position):
    with pytest.raises(QuerySyntaxError) as err:
        parse_query(text)
    assert message in err.value.message
    assert err.value.position == position
    assert err.value.code == "bad_query" and err.value.exit_code == 2


@given(st.text(max_size=40))
def test_any_text_parses_or_fails_cleanly(text):
    try:
        parse_query(text)
    except QuerySyntaxError as exc:
        assert exc.message.startswith("Invalid query: ")


def test_tokenize_matches_the_default_tokenizer():
    assert tokenize("Fix finalize_spec() in v0.4!") == ["fix", "finalize", "spec", "in", "v0", "4"]
    assert tokenize("x" * 41) == []
