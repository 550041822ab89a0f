"""The search query language (docs/chant-format.md §7): parse text into a small AST.

::

    query     := or_expr
    or_expr   := and_expr ("OR" and_expr)*
    and_expr  := unary (["AND"] unary)*          adjacent terms are ANDed
    unary     := ("NOT" | "-") unary | primary
    primary   := "(" or_expr ")" | [field ":"] value
    value     := word | "quoted phrase" | "[" lo "TO" hi "]" | "{" lo "TO" hi "}"
               | (">" | ">=" | "<" | "<=") word

Words may hold ``*`` and ``?`` wildcards. A bare value searches title and body. Keywords are
upper case (``and`` is a word). Errors are :class:`~chantlib.errors.QuerySyntaxError` with
the 0-based position of the problem. Compiling the AST to tantivy is the index's job; this
module has no dependencies.
"""

from __future__ import annotations

from typing import NoReturn

from .errors import QuerySyntaxError

__all__ = ["parse_query", "Term", "And", "Or", "Not", "FIELDS", "FIELD_ALIASES"]

#: field -> kind: "text" (tokenized), "keyword" (exact, lowercased), "exact" (exact, case kept),
#: "date", "int", "bool".
FIELDS = {
    "id": "exact",
    "status": "keyword",
    "type": "keyword",
    "project": "keyword",
    "label": "keyword",
    "prompt": "keyword",
    "target_files": "exact",
    "commit": "exact",
    "branch": "exact",
    "depends_on": "exact",
    "created": "date",
    "completed": "date",
    "title": "text",
    "body": "text",
    "priority": "int",
    "archived": "bool",
}

FIELD_ALIASES = {
    "labels": "label",
    "file": "target_files",
    "files": "target_files",
    "target": "target_files",
    "commits": "commit",
    "dep": "depends_on",
    "deps": "depends_on",
    "depends": "depends_on",
    "completed_at": "completed",
    "date": "created",
}


class Term:
    """``field:value``. ``field`` is ``None`` for a bare value (title and body).

    ``kind``: ``word``, ``phrase``, ``range`` (``value`` = (lo, hi, lo_inclusive,
    hi_inclusive), ``None`` for an open end) or ``cmp`` (``value`` = (op, operand)).
    """

    __slots__ = ("field", "kind", "value", "pos")

    def __init__(self, field, kind, value, pos):
        self.field = field
        self.kind = kind
        self.value = value
        self.pos = pos

    @property
    def wildcard(self) -> bool:
        return self.kind == "word" and ("*" in self.value or "?" in self.value)

    def __repr__(self) -> str:
        return f"Term({self.field}:{self.kind}:{self.value!r})"


class And:
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items

    def __repr__(self) -> str:
        return f"And({self.items!r})"


class Or:
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items

    def __repr__(self) -> str:
        return f"Or({self.items!r})"


class Not:
    __slots__ = ("item",)

    def __init__(self, item):
        self.item = item

    def __repr__(self) -> str:
        return f"Not({self.item!r})"


_SPECIAL = set('()"[]{}')


#: parentheses and NOTs nest at most this deep: a real query needs a handful, and a parser
#: (ours, then tantivy's query tree) must not recurse without bound on what a client sends
MAX_DEPTH = 64


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"the query nests deeper than {MAX_DEPTH} levels (parentheses and NOT)")

    def fail(self, message: str, pos: int | None = None) -> NoReturn:
        pos = self.pos if pos is None else pos
        raise QuerySyntaxError(f"Invalid query: {message} at position {pos}", query=self.text, position=pos)

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek_word(self) -> str | None:
        """The bare word at the cursor (without consuming it)."""
        self.skip_ws()
        end = self.pos
        while end < len(self.text) and not self.text[end].isspace() and self.text[end] not in _SPECIAL:
            end += 1
        return self.text[self.pos : end] if end > self.pos else None

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def parse(self):
        if self.at_end():
            self.fail("the query is empty", 0)
        node = self.or_expr()
        if not self.at_end():
            if self.text[self.pos] == ")":
                self.fail("unmatched ')'")
            self.fail(f"unexpected {self.text[self.pos]!r}")
        return node

    def or_expr(self):
        items = [self.and_expr()]
        while self.peek_word() == "OR":
            self.pos += 2
            if self.at_end() or self.text[self.pos] == ")":
                self.fail("OR needs a term after it")
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(items)

    def and_expr(self):
        items = [self.unary()]
        while True:
            if self.at_end() or self.text[self.pos] == ")":
                break
            word = self.peek_word()
            if word == "OR":
                break
            if word == "AND":
                self.pos += 3
                if self.at_end() or self.text[self.pos] == ")":
                    self.fail("AND needs a term after it")
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(items)

    def unary(self):
        self.skip_ws()
        if self.at_end():
            self.fail("a term is missing")
        if self.peek_word() == "NOT":
            self.pos += 3
            if self.at_end():
                self.fail("NOT needs a term after it")
            return self.negated()
        if self.text[self.pos] == "-" and self.pos + 1 < len(self.text) and not self.text[self.pos + 1].isspace():
            self.pos += 1
            return self.negated()
        if self.text[self.pos] == "+" and self.pos + 1 < len(self.text) and not self.text[self.pos + 1].isspace():
            self.pos += 1
        return self.primary()

    def negated(self):
        self.deeper()
        node = Not(self.unary())
        self.depth -= 1
        return node

    def primary(self):
        self.skip_ws()
        ch = self.text[self.pos]
        if ch == "(":
            start = self.pos
            self.deeper()
            self.pos += 1
            if self.at_end():
                self.fail("unclosed '('", start)
            if self.text[self.pos] == ")":
                self.fail("empty parentheses")
            node = self.or_expr()
            if self.at_end() or self.text[self.pos] != ")":
                self.fail("unclosed '('", start)
            self.pos += 1
            self.depth -= 1
            return node
        if ch == ")":
            self.fail("unmatched ')'")
        start = self.pos
        field = None
        word = self.peek_word() or ""
        colon = word.find(":")
        if colon > 0 and word[:colon].replace("_", "").isalnum():
            name = word[:colon].lower()
            field = FIELD_ALIASES.get(name, name)
            if field not in FIELDS:
                known = ", ".join(sorted(FIELDS))
                self.fail(f"unknown field '{word[:colon]}' (known fields: {known})", start)
            self.pos += colon + 1
            if self.pos >= len(self.text) or self.text[self.pos].isspace() or self.text[self.pos] == ")":
                self.fail(f"field '{word[:colon]}' needs a value")
        return self.value(field, start)

    def value(self, field, start):
        ch = self.text[self.pos]
        if ch == '"':
            return Term(field, "phrase", self.quoted(), start)
        if ch in "[{":
            return Term(field, "range", self.range_(), start)
        if ch in "]}":
            self.fail(f"unexpected {ch!r}")
        for op in (">=", "<=", ">", "<"):
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                word = self.peek_word()
                if not word:
                    self.fail(f"'{op}' needs a value")
                self.pos += len(word)
                return Term(field, "cmp", (op, word), start)
        word = self.peek_word()
        if not word:
            self.fail(f"unexpected {ch!r}")
        self.pos += len(word)
        return Term(field, "word", word, start)

    def quoted(self) -> str:
        start = self.pos
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if ch == '"':
                self.pos += 1
                return "".join(out)
            out.append(ch)
            self.pos += 1
        self.fail("unclosed quote", start)

    def range_(self):
        start = self.pos
        lo_inc = self.text[self.pos] == "["
        self.pos += 1
        close_at = -1
        for i in range(self.pos, len(self.text)):
            if self.text[i] in "]}":
                close_at = i
                break
        if close_at == -1:
            self.fail("unclosed range", start)
        hi_inc = self.text[close_at] == "]"
        parts = self.text[self.pos : close_at].split()
        if len(parts) != 3 or parts[1] != "TO":
            self.fail("a range is written [low TO high] (use * for an open end)", start)
        self.pos = close_at + 1
        lo = None if parts[0] == "*" else parts[0]
        hi = None if parts[2] == "*" else parts[2]
        if lo is None and hi is None:
            self.fail("a range needs at least one bound", start)
        return (lo, hi, lo_inc, hi_inc)


def parse_query(text: str):
    """Parse ``text`` into ``Term`` / ``And`` / ``Or`` / ``Not`` nodes."""
    return _Parser(text).parse()


def tokenize(text: str) -> list[str]:
    """Split like tantivy's ``default`` tokenizer: alphanumeric runs, lower case, <= 40 bytes."""
    out = []
    word: list[str] = []
    for ch in text:
        if ch.isalnum():
            word.append(ch)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return [w.lower() for w in out if len(w.encode("utf-8")) <= 40]
