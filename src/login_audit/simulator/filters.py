"""The ``TMV1-Filter`` language as the simulator understands it.

Grammar: ``expr := term (('and'|'or') term)*`` with ``and`` binding tighter than ``or``;
``term := 'not' term | '(' expr ')' | field 'eq' value``; values in single quotes with a
doubled quote standing for one quote. Anything else is a syntax error (HTTP 400).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(r"\s*(?:(\()|(\))|'((?:[^']|'')*)'|([A-Za-z_][A-Za-z0-9_]*))")


class FilterSyntaxError(ValueError):
    """The filter cannot be parsed or names a field that cannot be filtered on."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise FilterSyntaxError(f"unexpected text at position {pos}")
        lpar, rpar, value, word = match.groups()
        if lpar:
            out.append(("(", lpar))
        elif rpar:
            out.append((")", rpar))
        elif value is not None:
            out.append(("value", value.replace("''", "'")))
        else:
            out.append(("word", word))
        pos = match.end()
    return out


def parse_filter(text: str, fields: Collection[str], ignored: Collection[str] = ()) -> Predicate:
    """Compile ``text`` into a predicate over items; field names match case-insensitively.

    A term on a field of ``ignored`` is accepted and holds for every item, as a server
    that skips what it does not know would treat it.
    """
    if len(text) > 1024:
        raise FilterSyntaxError("filter longer than 1024 characters")
    allowed = {f.lower(): f for f in fields}
    tokens = _tokens(text)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise FilterSyntaxError("filter ends too early")
        pos += 1
        return tokens[pos - 1]

    def term() -> Predicate:
        kind, value = take()
        if kind == "word" and value.lower() == "not":
            inner = term()
            return lambda item: not inner(item)
        if kind == "(":
            inner = expr()
            if take()[0] != ")":
                raise FilterSyntaxError("missing closing parenthesis")
            return inner
        if kind == "word":
            name = allowed.get(value.lower())
            if name is None:
                raise FilterSyntaxError(f"field {value!r} cannot be filtered on")
            op = take()
            if op != ("word", "eq") and not (op[0] == "word" and op[1].lower() == "eq"):
                raise FilterSyntaxError("only the 'eq' operator is supported")
            vkind, wanted = take()
            if vkind != "value":
                raise FilterSyntaxError("a value must be in single quotes")
            if name.lower() in {f.lower() for f in ignored}:
                return lambda item: True
            return lambda item: str(item.get(name, "")).lower() == wanted.lower()
        raise FilterSyntaxError(f"unexpected {value!r}")

    def conjunction() -> Predicate:
        parts = [term()]
        while (nxt := peek()) is not None and nxt[0] == "word" and nxt[1].lower() == "and":
            take()
            parts.append(term())
        return parts[0] if len(parts) == 1 else (lambda item: all(p(item) for p in parts))

    def expr() -> Predicate:
        parts = [conjunction()]
        while (nxt := peek()) is not None and nxt[0] == "word" and nxt[1].lower() == "or":
            take()
            parts.append(conjunction())
        return parts[0] if len(parts) == 1 else (lambda item: any(p(item) for p in parts))

    if not tokens:
        return lambda item: True
    predicate = expr()
    if pos != len(tokens):
        raise FilterSyntaxError(f"unexpected {tokens[pos][1]!r} after the expression")
    return predicate
