"""Refuse a MySQL metric text that is not one plain query, before it reaches the server.

MySQL commits the open transaction implicitly before DDL, LOCK TABLES, START TRANSACTION
and more (even when the read-only check then refuses the statement), and ``SET SESSION
TRANSACTION READ WRITE`` lifts read-only mode. A metric is therefore accepted only when,
with comments and literals lexed as the server lexes them, it is ONE ``SELECT`` (or
``WITH ... SELECT``, or a parenthesised query) with balanced parentheses, no executable
comment and no locking read. The source then runs it as a derived table, which the server
itself accepts only for a query: this check gives the clear message, the wrapping is the
guarantee.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analytics_cli.engines.base import Refused

_WORD = re.compile(r"[A-Za-z0-9_$\u0080-\uffff]+")
_QUERY_STARTS = ("SELECT", "WITH")
# Locking reads see the newest committed rows, not the snapshot, and block the platform.
_LOCKING = (("FOR", "UPDATE"), ("FOR", "SHARE"), ("LOCK", "IN", "SHARE", "MODE"))


@dataclass(frozen=True)
class Token:
    """One lexical token: ``kind`` is word, quoted (identifier), string, number or symbol."""

    kind: str
    text: str
    offset: int


def tokens(text: str, *, backslash_escapes: bool = True, ansi_quotes: bool = False) -> list[Token]:
    """Lex MySQL text: comments dropped, strings and quoted names kept whole.

    ``backslash_escapes`` is False under the NO_BACKSLASH_ESCAPES sql_mode; ``ansi_quotes``
    (the ANSI_QUOTES sql_mode) makes ``"`` quote names, as backticks do. Raises Refused
    for an executable comment (``/*! ... */``, ``/*M! ... */``: the server runs their text)
    and for an unterminated comment, string or quoted name.
    """
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "#" or (
            text.startswith("--", i) and (i + 2 == n or text[i + 2].isspace() or text[i + 2] < " ")
        ):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            if text.startswith(("/*!", "/*M!"), i):
                raise Refused(
                    "executable comments (/*! ... */) are not allowed in a metric: "
                    "the server runs their text"
                )
            end = text.find("*/", i + 2)
            if end < 0:
                raise Refused("the metric's text has an unterminated /* comment")
            i = end + 2
        elif ch in "'\"`":
            name = ch == "`" or (ch == '"' and ansi_quotes)
            j = i + 1
            while True:
                if j >= n:
                    what = "quoted name" if name else "string"
                    raise Refused(f"the metric's text has an unterminated {what}")
                if backslash_escapes and not name and text[j] == "\\":
                    j += 2
                    continue
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            kind = "quoted" if name else "string"
            out.append(Token(kind, text[i : j + 1], i))
            i = j + 1
        else:
            match = _WORD.match(text, i)
            if match:
                word = match.group(0)
                out.append(Token("number" if word[0].isdigit() else "word", word, i))
                i = match.end()
            else:
                out.append(Token("symbol", ch, i))
                i += 1
    return out


def check_query(text: str, *, backslash_escapes: bool = True, ansi_quotes: bool = False) -> str:
    """The metric text without a trailing ``;``, or Refused when it is not one plain query."""
    toks = tokens(text, backslash_escapes=backslash_escapes, ansi_quotes=ansi_quotes)
    while toks and toks[-1].kind == "symbol" and toks[-1].text == ";":
        text = text[: toks[-1].offset]
        toks.pop()
    if not toks:
        raise Refused("the metric's text holds no statement")
    for tok in toks:
        if tok.kind == "symbol" and tok.text == ";":
            raise Refused("a metric must be one statement; its text holds a ';' between two")
    first = next((t for t in toks if not (t.kind == "symbol" and t.text == "(")), toks[0])
    keyword = first.text.upper() if first.kind == "word" else first.text
    if first.kind != "word" or keyword not in _QUERY_STARTS:
        raise Refused(
            f"a metric must be a single SELECT (or WITH ... SELECT) query; this one starts "
            f"with {keyword[:40]}"
        )
    depth = 0
    for tok in toks:
        if tok.kind == "symbol" and tok.text == "(":
            depth += 1
        elif tok.kind == "symbol" and tok.text == ")":
            depth -= 1
            if depth < 0:
                raise Refused("the metric's text closes a parenthesis it never opened")
    if depth:
        raise Refused("the metric's text leaves a parenthesis open")
    words = [t.text.upper() if t.kind == "word" else None for t in toks]
    for pattern in _LOCKING:
        for start in range(len(words) - len(pattern) + 1):
            if tuple(words[start : start + len(pattern)]) == pattern:
                raise Refused(
                    f"locking reads ({' '.join(pattern)}) are not allowed in a metric: they read "
                    "past the snapshot and block the platform's writers"
                )
    if words.count("INTO"):
        # SELECT ... INTO OUTFILE / DUMPFILE / @variable writes outside the query result.
        raise Refused("SELECT ... INTO is not allowed in a metric: it writes outside the result")
    return text.strip()


def table_aliases(text: str) -> dict[str, str]:
    """``alias -> table`` for the ``FROM`` / ``JOIN`` items of a query (names unquoted)."""
    try:
        toks = tokens(text)
    except Refused:
        return {}
    found: dict[str, str] = {}

    def name(tok: Token) -> str | None:
        if tok.kind == "quoted":
            return tok.text[1:-1].replace("``", "`")
        if tok.kind == "word":
            return tok.text
        return None

    for i, tok in enumerate(toks[:-1]):
        if tok.kind != "word" or tok.text.upper() not in ("FROM", "JOIN"):
            continue
        table = name(toks[i + 1])
        if table is None or table.upper() in ("SELECT", "WITH"):
            continue
        j = i + 2
        # schema.table: keep the table part.
        if j + 1 < len(toks) and toks[j].text == "." and name(toks[j + 1]):
            table = name(toks[j + 1]) or table
            j += 2
        found.setdefault(table, table)
        if j < len(toks) and toks[j].kind == "word" and toks[j].text.upper() == "AS":
            j += 1
        if j < len(toks):
            alias = name(toks[j])
            if alias is not None and alias.upper() not in _NOT_ALIASES:
                found[alias] = table
    return found


_NOT_ALIASES = {
    "WHERE",
    "JOIN",
    "LEFT",
    "RIGHT",
    "INNER",
    "OUTER",
    "CROSS",
    "STRAIGHT_JOIN",
    "NATURAL",
    "ON",
    "USING",
    "GROUP",
    "ORDER",
    "HAVING",
    "LIMIT",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "WINDOW",
    "FORCE",
    "USE",
    "IGNORE",
    "PARTITION",
}
