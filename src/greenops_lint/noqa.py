"""`# noqa` and `# noqa: GO101,GO203` comments, as flake8 reads them."""

from __future__ import annotations

import re
from typing import Optional

from greenops_lint.source import physical_lines

_NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z][A-Z0-9]*(?:[,\s]+[A-Z][A-Z0-9]*)*))?", re.IGNORECASE)
_SPLIT = re.compile(r"[,\s]+")


def noqa_lines(text: str) -> dict[int, Optional[frozenset[str]]]:
    """Line number -> codes suppressed there (None: every code)."""
    result: dict[int, Optional[frozenset[str]]] = {}
    if "noqa" not in text and "NOQA" not in text.upper():
        return result
    for number, line in enumerate(physical_lines(text), start=1):
        if "#" not in line:
            continue
        match = _NOQA.search(line)
        if match is None:
            continue
        codes = match.group("codes")
        result[number] = None if not codes else frozenset(c.upper() for c in _SPLIT.split(codes.strip()) if c)
    if result:
        _spread_over_strings(text, result)
    return result


def _spread_over_strings(text: str, table: dict[int, Optional[frozenset[str]]]) -> None:
    """A noqa comment after the end of a multi-line string covers every line of
    the string, as flake8 and ruff read it (no comment fits inside the string)."""
    for start, end in _multiline_strings(text):
        if end not in table:
            continue
        codes = table[end]
        for line in range(start, end):
            present = table.get(line, frozenset())
            table[line] = None if codes is None or present is None else present | codes


def _multiline_strings(text: str) -> list[tuple[int, int]]:
    import io
    import tokenize

    spans: list[tuple[int, int]] = []
    fstring_starts: list[int] = []
    start_kind = getattr(tokenize, "FSTRING_START", -1)
    end_kind = getattr(tokenize, "FSTRING_END", -1)
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                spans.append((token.start[0], token.end[0]))
            elif token.type == start_kind:
                fstring_starts.append(token.start[0])
            elif token.type == end_kind and fstring_starts:
                first = fstring_starts.pop()
                if token.end[0] > first:
                    spans.append((first, token.end[0]))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    return spans


def is_suppressed(code: str, lines: tuple[int, ...], table: dict[int, Optional[frozenset[str]]]) -> bool:
    for line in lines:
        if line in table:
            codes = table[line]
            if codes is None or any(code.startswith(c) for c in codes):
                return True
    return False


# -- adding noqa comments (`check --add-noqa`) ----------------------------------------


def _lines_ending_in_strings(text: str) -> set[int]:
    """Lines whose end lies inside a multi-line string: a comment there would
    become part of the string."""
    import tokenize

    inside: set[int] = set()
    readline = iter(physical_lines(text, keepends=True)).__next__
    try:
        for token in tokenize.generate_tokens(readline):
            if token.type == tokenize.STRING or getattr(tokenize, "FSTRING_MIDDLE", -1) == token.type:
                inside.update(range(token.start[0], token.end[0]))
    except (tokenize.TokenError, SyntaxError, IndentationError, StopIteration):
        pass
    return inside


def add_noqa_comments(text: str, codes_by_line: dict[int, set[str]]) -> tuple[str, int]:
    """Append `# noqa: CODES` to the given lines (merging with an existing
    `# noqa: X`); returns the new text and how many lines changed."""
    lines = physical_lines(text, keepends=True)
    unsafe = _lines_ending_in_strings(text)
    changed = 0
    for number, codes in sorted(codes_by_line.items()):
        if not 1 <= number <= len(lines) or number in unsafe:
            continue
        line = lines[number - 1]
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        match = _NOQA.search(body)
        if match and not match.group("codes"):
            continue  # a bare noqa already hides everything
        if match:
            present = set(_SPLIT.split(match.group("codes").strip()))
            merged = ",".join(sorted(present | codes))
            body = body[: match.start()] + f"# noqa: {merged}" + body[match.end() :]
        else:
            body = body + f"  # noqa: {','.join(sorted(codes))}"
        if body + ending != line:
            lines[number - 1] = body + ending
            changed += 1
    return "".join(lines), changed
