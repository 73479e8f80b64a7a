"""`check --add-noqa`: suppress every current finding in place, so a large
codebase can adopt the linter today and block only new waste (as ruff does).

Comments go on the reported line (or the first line of its statement when the
reported line ends inside a multi-line string). The result must still parse,
and is written atomically in the file's own encoding and newline style;
notebooks are edited cell by cell.
"""

from __future__ import annotations

import json
from collections import defaultdict

from greenops_lint.fileio import rewrite_in_place
from greenops_lint.finding import Finding
from greenops_lint.nbjson import replace_sources
from greenops_lint.noqa import add_noqa_comments
from greenops_lint.source import cell_text, decode, parse_python

META = ("GO001", "GO002", "GO003")


class AdoptionError(Exception):
    pass


def add_noqa(path: str, findings: list[Finding]) -> int:
    """Add noqa comments for `findings` (all of one file); returns lines changed."""
    findings = [f for f in findings if f.code not in META]
    if not findings:
        return 0
    with open(path, "rb") as handle:
        raw = handle.read()
    if path.endswith(".ipynb"):
        return _add_noqa_notebook(path, raw, findings)
    source = decode(path, raw)
    codes: dict[int, set[str]] = defaultdict(set)
    for finding in findings:
        codes[finding.line].add(finding.code)
    text, changed = add_noqa_comments(source.text, codes)
    if changed:
        try:
            parse_python(text, path)
        except SyntaxError as exc:  # pragma: no cover - a guard, not expected
            raise AdoptionError(
                f"{path}: adding noqa comments would break the file ({exc.msg}); left unchanged"
            ) from None
        if _encode(source, source.text) != raw:
            raise AdoptionError(
                f"{path}: the {source.encoding} codec does not give the file's bytes back; left unchanged"
            )
        rewrite_in_place(path, raw, _encode(source, text))
    return changed


def _encode(source, text: str) -> bytes:
    if source.encoding == "utf-8-sig":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    return text.encode(source.encoding)


def _add_noqa_notebook(path: str, raw: bytes, findings: list[Finding]) -> int:
    """Only the `source` of the cells that get a comment changes (see nbjson)."""
    notebook = json.loads(raw.decode("utf-8-sig"))
    by_cell: dict[int, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for finding in findings:
        if finding.cell is not None:
            by_cell[finding.cell][finding.line].add(finding.code)
    changed = 0
    new_sources: dict[int, str] = {}
    for number, codes in by_cell.items():
        text = cell_text(notebook["cells"][number - 1], number)
        new_text, count = add_noqa_comments(text, codes)
        if count:
            changed += count
            new_sources[number] = new_text
    if changed:
        rewrite_in_place(path, raw, replace_sources(raw, new_sources))
    return changed
