"""`# noqa` and `# noqa: GO101,GO203` comments, as flake8 reads them."""

from __future__ import annotations

import re
from typing import Optional

_NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z][A-Z0-9]*(?:[,\s]+[A-Z][A-Z0-9]*)*))?", re.IGNORECASE)
_SPLIT = re.compile(r"[,\s]+")


def noqa_lines(text: str) -> dict[int, Optional[frozenset[str]]]:
    """Line number -> codes suppressed there (None: every code)."""
    result: dict[int, Optional[frozenset[str]]] = {}
    if "noqa" not in text and "NOQA" not in text.upper():
        return result
    for number, line in enumerate(text.splitlines(), start=1):
        if "#" not in line:
            continue
        match = _NOQA.search(line)
        if match is None:
            continue
        codes = match.group("codes")
        result[number] = None if not codes else frozenset(c.upper() for c in _SPLIT.split(codes.strip()) if c)
    return result


def is_suppressed(code: str, lines: tuple[int, ...], table: dict[int, Optional[frozenset[str]]]) -> bool:
    for line in lines:
        if line in table:
            codes = table[line]
            if codes is None or any(code.startswith(c) for c in codes):
                return True
    return False
