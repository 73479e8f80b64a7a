"""The source lines the `full` format quotes and SARIF fingerprints hash: read
from disk (decoded as the linter decodes them), or the text the CLI registers
for a path that is not on disk (`check -` reads stdin)."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Optional

_TEXTS: dict[str, str] = {}


def register(path: str, text: str) -> None:
    _TEXTS[path] = text
    _lines.cache_clear()


def lines_of(path: str, cell: Optional[int] = None) -> list[str]:
    """The lines of `path` (of code cell `cell` in a notebook); [] when unreadable."""
    try:
        info = os.stat(path)
        stamp = (info.st_mtime_ns, info.st_size)
    except OSError:
        stamp = None
    return _lines(path, cell, stamp)


@lru_cache(maxsize=64)
def _lines(path: str, cell: Optional[int], stamp) -> list[str]:
    if path in _TEXTS and cell is None:
        return _TEXTS[path].splitlines()
    from greenops_lint.source import SourceError, decode, read_bytes

    try:
        raw = _TEXTS[path].encode("utf-8") if path in _TEXTS else read_bytes(path)
        if cell is not None:
            cells = json.loads(raw.decode("utf-8-sig"))["cells"]
            source = cells[cell - 1].get("source", "")
            return ("".join(source) if isinstance(source, list) else str(source)).splitlines()
        return decode(path, raw).text.splitlines()
    except (SourceError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return []
