"""Editing a notebook's cell sources without reformatting the rest of its JSON.

`--fix` and `--add-noqa` change a few code cells; rewriting the whole file
with `json.dumps` would also change its indentation, its `\\u` escapes, its
key order, its BOM and its newlines. `replace_sources` instead finds the byte
span of each changed cell's `"source"` value and splices in a new value
written in the style of the old one (a string stays a string; a list keeps
its item indentation). Everything else stays byte-identical.
"""

from __future__ import annotations

import json
import re
from typing import Iterator

from greenops_lint.source import physical_lines

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _ws(text: str, index: int) -> int:
    return _WS.match(text, index).end()


def _members(text: str, index: int) -> Iterator[tuple[object, int, int]]:
    """(key, start, end) of each member value of the object at `index`."""
    if text[index] != "{":
        raise ValueError("not a JSON object")
    index = _ws(text, index + 1)
    if text[index] == "}":
        return
    while True:
        key, index = _DECODER.raw_decode(text, index)
        index = _ws(text, index)
        if text[index] != ":":
            raise ValueError("malformed JSON object")
        start = _ws(text, index + 1)
        _, end = _DECODER.raw_decode(text, start)
        yield key, start, end
        index = _ws(text, end)
        if text[index] == ",":
            index = _ws(text, index + 1)
            continue
        if text[index] != "}":
            raise ValueError("malformed JSON object")
        return


def _elements(text: str, index: int) -> Iterator[tuple[int, int]]:
    if text[index] != "[":
        raise ValueError("not a JSON array")
    index = _ws(text, index + 1)
    if text[index] == "]":
        return
    while True:
        _, end = _DECODER.raw_decode(text, index)
        yield index, end
        index = _ws(text, end)
        if text[index] == ",":
            index = _ws(text, index + 1)
            continue
        if text[index] != "]":
            raise ValueError("malformed JSON array")
        return


def source_spans(text: str) -> dict[int, tuple[int, int]]:
    """1-based cell number -> (start, end) of its "source" value in `text`."""
    start = _ws(text, 1 if text.startswith("\ufeff") else 0)
    cells = None
    for key, value_start, _ in _members(text, start):
        if key == "cells":
            cells = value_start  # the last one wins, as in json.loads
    spans: dict[int, tuple[int, int]] = {}
    if cells is None:
        return spans
    for number, (cell_start, _) in enumerate(_elements(text, cells), start=1):
        if text[cell_start] != "{":
            continue
        for key, value_start, value_end in _members(text, cell_start):
            if key == "source":
                spans[number] = (value_start, value_end)
    return spans


def _render(old_value: str, new_source: str, ascii_only: bool) -> str:
    original = json.loads(old_value)
    if isinstance(original, str):
        return json.dumps(new_source, ensure_ascii=ascii_only)
    items = [json.dumps(line, ensure_ascii=ascii_only) for line in physical_lines(new_source, keepends=True)]
    if not items:
        return "[]"
    if not original:
        return "[" + ", ".join(items) + "]"
    opening = re.match(r"\[([ \t\n\r]*)", old_value).group(1)
    closing = re.search(r"([ \t\n\r]*)\]\Z", old_value).group(1)
    return "[" + opening + ("," + opening).join(items) + closing + "]"


def replace_sources(raw: bytes, new_sources: dict[int, str]) -> bytes:
    """`raw` (a notebook) with the source of each cell in `new_sources` replaced."""
    text = raw.decode("utf-8")
    ascii_only = text.lstrip("\ufeff").isascii()
    spans = source_spans(text)
    pieces, last = [], 0
    for number in sorted(new_sources):
        start, end = spans[number]
        pieces += [text[last:start], _render(text[start:end], new_sources[number], ascii_only)]
        last = end
    pieces.append(text[last:])
    return "".join(pieces).encode("utf-8")
