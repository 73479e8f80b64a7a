"""Applying fixes: one transform pass per round, verified, written atomically.

For each file: lint, collect the fixes of unsuppressed findings (unsafe ones
only with `--unsafe-fixes`), apply them all in one LibCST transform, re-parse
the result, and lint again; repeat until nothing is left to fix (at most
`MAX_ROUNDS`), so that a second `--fix` run changes nothing. If a round
produces code that does not parse, nothing is written and the file gets a
GO003 finding. Writes keep the encoding (and BOM), the newline style and the
permissions, and happen only when the content changed. Notebooks are fixed
in their code cells, everything else in the JSON kept as it was.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from greenops_lint.config import Config
from greenops_lint.engine import INTERNAL_ERROR, FileResult, Linter
from greenops_lint.fileio import WriteSkipped, rewrite_in_place
from greenops_lint.finding import Finding, Fix
from greenops_lint.nbjson import replace_sources
from greenops_lint.rule import Rule
from greenops_lint.source import SourceError, SourceFile, cell_text, decode, physical_lines, read_bytes

MAX_ROUNDS = 10
_FLOAT64_NAMES = frozenset({"float64", "double", "DoubleTensor"})
_FLOAT64_STRINGS = re.compile(r"""^[rbu]*['"](float64|double|f8|torch\.float64|torch\.(cuda\.)?DoubleTensor)['"]$""")


def _float64_left(text: str) -> bool:
    """Does code (not comments or docstrings) still name float64?"""
    import io
    import tokenize

    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.NAME and token.string in _FLOAT64_NAMES:
                return True
            if token.type == tokenize.STRING and _FLOAT64_STRINGS.match(token.string):
                return True
    except (tokenize.TokenError, SyntaxError):
        return True  # cannot tell: keep the float64 fixes out
    return False


@dataclass
class FixOutcome:
    path: str
    original: bytes = b""
    fixed: Optional[bytes] = None  # None: nothing changed
    applied: list[Finding] = field(default_factory=list)
    result: FileResult = None  # the findings left after fixing
    error: Optional[str] = None
    # float64 fixes left out: the file would still hold float64 data afterwards.
    skipped_precision: bool = False
    # Unsafe fixes of the original file that --unsafe-fixes would apply.
    hidden_unsafe: int = 0

    @property
    def changed(self) -> bool:
        return self.fixed is not None and self.fixed != self.original

    def diff(self) -> bytes:
        """A unified diff of the file's own bytes that `patch -p1` applies (see `patch_diff`)."""
        if not self.changed:
            return b""
        return patch_diff(self.original, self.fixed, self.path.lstrip("/"))


_PATCH_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")
_NO_NEWLINE = b"\\ No newline at end of file\n"


def patch_diff(before: bytes, after: bytes, name: str) -> bytes:
    """A unified diff from `before` to `after` made for `patch -p1`: lines are
    what patch counts as lines (ended by LF only, so a CRLF line keeps its CR
    and a CR-only file is one line), bytes are the file's own (latin-1 text
    stays latin-1; notebooks are diffed as their JSON text, which --fix edits
    only inside the changed cells' sources), and a last line without a newline
    gets diff's "\\ No newline at end of file" marker."""
    lines = difflib.diff_bytes(
        difflib.unified_diff,
        _PATCH_LINE.findall(before),
        _PATCH_LINE.findall(after),
        b"a/" + os.fsencode(name),
        b"b/" + os.fsencode(name),
    )
    return b"".join(line if line.endswith(b"\n") else line + b"\n" + _NO_NEWLINE for line in lines)


class _ApplyFixes(cst.CSTTransformer):
    def __init__(self, fixes: list[Fix]) -> None:
        super().__init__()
        self.by_target: dict[int, Fix] = {}
        for fix in fixes:
            self.by_target.setdefault(id(fix.target), fix)  # one fix per node and round

    def on_leave(self, original_node, updated_node):
        fix = self.by_target.get(id(original_node))
        return fix.apply(updated_node) if fix is not None else updated_node


def apply_fixes(module: cst.Module, fixes: list[Fix]) -> str:
    return module.visit(_ApplyFixes(fixes)).code


def fix_source(linter: Linter, path: str, raw: bytes, unsafe: bool) -> FixOutcome:
    outcome = FixOutcome(path=path, original=raw)
    try:
        source = decode(path, raw)
    except SourceError:
        outcome.result = linter.lint_bytes(path, raw)
        return outcome
    text = source.text
    for round_number in range(MAX_ROUNDS):
        result = linter.lint_source_for_fixes(path, source, text)
        fixes = [(finding, fix) for finding, fix in result.fixes if fix.safe or unsafe]
        if round_number == 0 and not unsafe:
            outcome.hidden_unsafe = sum(1 for _, fix in result.fixes if not fix.safe)
        if not fixes or result.module is None:
            break
        try:
            new_text = apply_fixes(result.module, [fix for _, fix in fixes])
            cst.parse_module(new_text)
            if _float64_left(new_text) and any(f.family == "precision" for f, _ in fixes):
                # Casting one side to float32 while float64 data the linter did
                # not flag remains would trade waste for a dtype mismatch.
                fixes = [(f, x) for f, x in fixes if f.family != "precision"]
                outcome.skipped_precision = True
                if not fixes:
                    break
                new_text = apply_fixes(result.module, [fix for _, fix in fixes])
            cst.parse_module(new_text)
        except Exception as exc:  # noqa: BLE001 - a broken fix must never reach the disk
            outcome.error = (
                f"a fix produced code that does not parse ({type(exc).__name__}: {exc}); the file was not changed"
            )
            outcome.result = _with_error(linter.lint_bytes(path, raw), path, outcome.error)
            return outcome
        if new_text == text:
            break
        if not outcome.applied:
            # What the user saw reported; later rounds only finish the job
            # (a load hoisted out of an inner loop, then out of the outer one).
            outcome.applied = [finding for finding, _ in fixes]
        text = new_text
    if text != source.text:
        text = _keep_final_newline(source.text, text)
        try:
            if source.cells is None and _encode(source, source.text) != raw:
                # A codec such as unicode_escape: the bytes written back would
                # not be the file's lines (newlines would become `\n`).
                raise ValueError(f"the {source.encoding} codec does not give the file's bytes back")
            outcome.fixed = _encode(source, text)
        except (ValueError, UnicodeError, LookupError) as exc:
            outcome.error = f"cannot write the fixed file back: {exc}; the file was not changed"
            outcome.result = _with_error(linter.lint_bytes(path, raw), path, outcome.error)
            return outcome
    outcome.result = linter.lint_bytes(path, outcome.fixed if outcome.changed else raw)
    return outcome


def _keep_final_newline(before: str, after: str) -> str:
    """LibCST drops a CR-only file's final newline: put the original's back."""
    for ending in ("\r\n", "\n", "\r"):
        if before.endswith(ending):
            return after if after.endswith(("\n", "\r")) else after + ending
    return after


def _with_error(result: FileResult, path: str, message: str, prefix: str = "internal error in --fix: ") -> FileResult:
    result.findings.append(
        Finding(path, 1, 1, 1, 1, INTERNAL_ERROR, "internal-error", "core", f"{prefix}{message}", "error")
    )
    return result


def _encode(source: SourceFile, text: str) -> bytes:
    if source.cells is not None:
        return _rebuild_notebook(source, text)
    if source.encoding == "utf-8-sig":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    return text.encode(source.encoding)


def _rebuild_notebook(source: SourceFile, text: str) -> bytes:
    """The notebook's bytes with the fixed code put back into its cells. Only
    the `source` of the cells that changed is rewritten (see nbjson)."""
    return replace_sources(source.raw, notebook_cell_sources(source, text))


def notebook_cell_sources(source: SourceFile, text: str) -> dict[int, str]:
    """The new source of each cell (1-based number) that `text`, the fixed
    virtual module of the notebook `source`, changes. Lines are mapped by
    content, not by index: a fix that moves a statement (a GO101 hoist) shifts
    the lines after it, and a magic's placeholder must land on the magic, not
    on the code that now sits in its old slot; magics and shell lines keep
    their text (a ValueError when a fix would change one)."""
    notebook = json.loads(source.raw.decode("utf-8-sig"))
    old_lines = physical_lines(source.text)
    new_lines = physical_lines(text)
    assert len(old_lines) == len(source.cells)
    originals = {
        cell: physical_lines(cell_text(notebook["cells"][cell - 1], cell)) for cell in {c for c, _ in source.cells}
    }

    def original_line(index: int) -> str:
        cell, line = source.cells[index]
        return originals[cell][line - 1]

    # An indented cell was dedented (as IPython runs it): its lines go back
    # with the cell's indentation.
    indents = source.indents or ("",) * len(source.cells)
    prefixes: dict[int, str] = {}
    for (cell, _), indent in zip(source.cells, indents):
        if indent:
            prefixes.setdefault(cell, indent)

    def placeholder(index: int) -> bool:
        return original_line(index) != indents[index] + old_lines[index]

    placed: list[tuple[int, str]] = []  # (cell, line text), in order
    touched: set[int] = set()
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            placed += [(source.cells[i][0], original_line(i)) for i in range(i1, i2)]
            continue
        if any(placeholder(i) for i in range(i1, i2)):
            raise ValueError("a fix would change an IPython magic or shell line")
        touched.update(source.cells[i][0] for i in range(i1, i2))
        for k, j in enumerate(range(j1, j2)):
            if i2 > i1:  # replaced: the cell of the line it replaces
                cell = source.cells[min(i1 + k, i2 - 1)][0]
            elif i1 < len(source.cells):  # inserted: the cell of the line that follows
                cell = source.cells[i1][0]
            else:
                cell = source.cells[-1][0]
            touched.add(cell)
            line = new_lines[j]
            placed.append((cell, prefixes.get(cell, "") + line if line.strip() else line))
    new_sources: dict[int, str] = {}
    for cell in sorted(touched):
        original = cell_text(notebook["cells"][cell - 1], cell)
        newline = "\r\n" if "\r\n" in original else "\n"
        lines = [line for c, line in placed if c == cell]
        first = physical_lines(original)[:1]
        if first and first[0].lstrip().startswith("%%") and lines and lines[0] != first[0] and first[0] in lines:
            # A cell magic stays the cell's first line (code hoisted above the
            # first statement can land before its blank placeholder).
            lines.remove(first[0])
            lines.insert(0, first[0])
        ending = newline if original.endswith(("\n", "\r")) and lines else ""
        joined = newline.join(lines) + ending
        if joined != original:
            new_sources[cell] = joined
    return new_sources


def fix_paths(
    paths: list[str], config: Config, rules: dict[str, type[Rule]], unsafe: bool, write: bool = True
) -> list[FixOutcome]:
    """Fix files in place (the probe's `--run` calls this on a temporary copy)."""
    linter = Linter(config, rules, unsafe_fixes=unsafe, collect_fixes=True)
    outcomes = []
    for path in paths:
        try:
            raw = read_bytes(path)
        except SourceError as exc:
            outcomes.append(FixOutcome(path=path, result=linter.lint_path(path), error=exc.message))
            continue
        outcome = fix_source(linter, path, raw, unsafe)
        if write and outcome.changed and outcome.error is None:
            try:
                rewrite_in_place(path, raw, outcome.fixed)
            except WriteSkipped as exc:
                outcome.error = f"--fix skipped this file: {exc}"
                outcome.fixed = None
                outcome.result = _with_error(outcome.result, path, outcome.error, prefix="")
            except OSError as exc:
                outcome.error = f"cannot write {path}: {exc.strerror or exc}; the file was not changed"
                outcome.fixed = None
                outcome.result = _with_error(outcome.result, path, outcome.error)
        outcomes.append(outcome)
    return outcomes
