"""Turning a file's bytes into text the way Python does (PEP 263 cookie, BOM, UTF-8)."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import tokenize
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class SourceFile:
    path: str
    raw: bytes
    text: str
    encoding: str
    # Notebooks only: for each line of `text` (0-based), its (cell number,
    # line within the cell), both 1-based, cells counted as the notebook shows them.
    cells: Optional[tuple[tuple[int, int], ...]] = None
    # Notebooks only: for each line of `text`, the indentation IPython removed
    # from it (a cell whose first line is indented is dedented, as IPython
    # runs it); "" for most lines.
    indents: Optional[tuple[str, ...]] = None

    def cell_position(self, line: int) -> tuple[Optional[int], int]:
        if self.cells is None or not 1 <= line <= len(self.cells):
            return None, line
        return self.cells[line - 1]

    def cell_column(self, line: int, column: int) -> int:
        """The column in the cell's own text of `column` on `line` of `text`
        (both 1-based): the indentation removed from a dedented cell is added back."""
        if self.indents is None or not 1 <= line <= len(self.indents):
            return column
        return column + len(self.indents[line - 1])


# Python's physical lines end at \r\n, \r or \n only; str.splitlines() also
# splits at \v, \f, \x1c-\x1e, \x85, U+2028 and U+2029, which the tokenizer
# (and so every line number LibCST and CPython give) treats as ordinary text.
_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_LINE_END = re.compile(r"(?:\r\n|\r|\n)\Z")


def physical_lines(text: str, keepends: bool = False) -> list[str]:
    """`text` split into lines the way Python's tokenizer counts them."""
    lines = _PHYSICAL_LINE.findall(text)
    return lines if keepends else [_LINE_END.sub("", line) for line in lines]


class SourceError(Exception):
    """The file cannot be read or decoded (reported as GO002)."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


# Larger files are not linted: LibCST needs ~300-700 times their size in
# memory, and no hand-written training script is this big. For a notebook the
# limit applies to its code (the code cells joined), not to the file: outputs
# (embedded images, long logs) often make a notebook tens of MiB. The file
# itself may be up to MAX_NOTEBOOK_BYTES (json.loads holds all of it at once).
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024


def read_bytes(path: str) -> bytes:
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise SourceError("cannot read file: it is a directory")
        if not stat.S_ISREG(info.st_mode):
            # A FIFO or a device would block or never end.
            raise SourceError("cannot read file: not a regular file (a FIFO, socket or device)")
        limit = MAX_NOTEBOOK_BYTES if path.endswith(".ipynb") else MAX_FILE_BYTES
        if info.st_size > limit:
            raise SourceError(
                f"cannot read file: {info.st_size / 2**20:.0f} MiB is over the {limit // 2**20} MiB limit"
            )
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise SourceError(f"cannot read file: {exc.strerror or exc}") from None


def decode(path: str, raw: bytes) -> SourceFile:
    if path.endswith(".ipynb"):
        return decode_notebook(path, raw)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    except SyntaxError as exc:
        message = str(exc.msg if hasattr(exc, "msg") else exc)
        if "invalid or missing encoding" not in message:
            raise SourceError(f"cannot decode file: {message}") from None
        encoding = "utf-8"  # no cookie and not UTF-8: decoding below says where
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SourceError(
            f"cannot decode file as {encoding}: invalid byte 0x{raw[exc.start]:02x}", line, column
        ) from None
    except LookupError:
        raise SourceError(f"cannot decode file: unknown encoding {encoding!r}") from None
    except (UnicodeError, ValueError, TypeError) as exc:
        # A codec that fails its own way (punycode, idna, ...).
        raise SourceError(f"cannot decode file as {encoding}: {exc}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return SourceFile(path=path, raw=raw, text=text, encoding=encoding)


# -- Jupyter notebooks ------------------------------------------------------------
# Cell magics whose body is still Python; the body of any other (%%bash,
# %%writefile, %%html, ...) is not Python and is skipped.
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "memit", "profile"})
_LINE_MAGIC = re.compile(r"^(\s*)(%|!|\?)|^(\s*)[\w.,\s\[\]]+=\s*[%!]|\?\s*$")


def decode_notebook(path: str, raw: bytes) -> SourceFile:
    """Code cells joined into one virtual module, as IPython would run them:
    a cell whose first line is indented is dedented (IPython's leading_indent);
    IPython magics, shell escapes and help lines at the start of a logical line
    become `pass` (keeping indentation) and their backslash continuation lines
    become blank, so that lines map back to cells."""
    try:
        notebook = json.loads(raw.decode("utf-8-sig"))
        cells = notebook["cells"]
        if not isinstance(cells, list):
            raise TypeError("cells is not a list")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"cannot read notebook: {exc}") from None
    lines: list[str] = []
    positions: list[tuple[int, int]] = []
    indents: list[str] = []
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        cell_lines, cell_indents = _dedent(physical_lines(cell_text(cell, number)))
        lines += _python_lines(cell_lines)
        positions += [(number, index + 1) for index in range(len(cell_lines))]
        indents += cell_indents
    text = "\n".join(lines) + ("\n" if lines else "")
    if len(text) > MAX_FILE_BYTES and len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise SourceError(
            f"cannot read notebook: its code cells hold {len(text.encode('utf-8')) / 2**20:.1f} MiB of code, "
            f"over the {MAX_FILE_BYTES // 2**20} MiB limit"
        )
    return SourceFile(
        path=path,
        raw=raw,
        text=text,
        encoding="utf-8",
        cells=tuple(positions),
        indents=tuple(indents) if any(indents) else None,
    )


def _dedent(lines: list[str]) -> tuple[list[str], list[str]]:
    """IPython's leading_indent: the indentation of the first non-blank line
    is removed from every line that starts with it."""
    first = next((line for line in lines if line.strip()), "")
    prefix = first[: len(first) - len(first.lstrip(" \t"))]
    if not prefix:
        return lines, [""] * len(lines)
    return (
        [line[len(prefix) :] if line.startswith(prefix) else line for line in lines],
        [prefix if line.startswith(prefix) else "" for line in lines],
    )


def _python_lines(cell_lines: list[str]) -> list[str]:
    """One cell's lines with IPython's syntax replaced (see decode_notebook)."""
    if cell_lines and cell_lines[0].lstrip().startswith("%%"):
        magic = cell_lines[0].strip()[2:].split(" ", 1)[0]
        if magic not in _PYTHON_CELL_MAGICS:
            return [""] * len(cell_lines)  # %%bash, %%writefile, ...: not Python
        return [""] + _python_lines(cell_lines[1:])
    out: list[str] = []
    scanner = _LogicalLines()
    index = 0
    while index < len(cell_lines):
        line = cell_lines[index]
        if scanner.at_start and _is_magic(line, cell_lines, index):
            out.append(line[: len(line) - len(line.lstrip())] + "pass")
            # `!pip install a \` goes on on the next line, as in a shell.
            while line.rstrip().endswith("\\") and index + 1 < len(cell_lines):
                index += 1
                line = cell_lines[index]
                out.append("")
        else:
            out.append(line)
            scanner.feed(line)
        index += 1
    return out


def _is_magic(line: str, cell_lines: list[str], index: int) -> bool:
    """Is `line`, which starts a logical line, IPython syntax rather than Python?"""
    if not _LINE_MAGIC.search(line):
        return False
    if _is_python(line):
        return False
    if (
        not line.lstrip().startswith(("%", "!", "?"))
        and not _MAGIC_ASSIGNMENT.match(line)
        and not _ends_with_help(line)
    ):
        return False  # `# why?` in a comment is not help syntax
    # The first line of a statement written over several lines (`x = (a` then
    # `     % b)`): Python if the whole logical line is.
    scanner = _LogicalLines()
    scanner.feed(line)
    end = index + 1
    while not scanner.at_start and end < len(cell_lines) and end - index < 200:
        scanner.feed(cell_lines[end])
        end += 1
    if end > index + 1 and _is_python("\n".join([line.lstrip()] + cell_lines[index + 1 : end])):
        return False
    return True


_MAGIC_ASSIGNMENT = re.compile(r"^\s*[\w.,\s\[\]]+=\s*[%!]")


def _ends_with_help(line: str) -> bool:
    """Does the code of `line` (its comment left out) end with `?`?"""
    scanner = _LogicalLines()
    scanner.feed(line)
    return line[: scanner.comment_at].rstrip().endswith("?")


class _LogicalLines:
    """Where Python's logical lines start: brackets, strings, comments and
    backslash continuations tracked line by line (a light tokenizer)."""

    def __init__(self) -> None:
        self.depth = 0
        self.quote: Optional[str] = None  # an open triple-quoted string's delimiter
        self.backslash = False
        self.comment_at = 0

    @property
    def at_start(self) -> bool:
        return self.depth == 0 and self.quote is None and not self.backslash

    def feed(self, line: str) -> None:
        i, n = 0, len(line)
        self.comment_at = n
        self.backslash = False
        while i < n:
            if self.quote is not None:
                end = line.find(self.quote, i)
                while end > 0 and _escaped(line, end):
                    end = line.find(self.quote, end + 1)
                if end < 0:
                    return
                i, self.quote = end + 3, None
                continue
            char = line[i]
            if char == "#":
                self.comment_at = i
                return
            if char in "\"'":
                if line.startswith(char * 3, i):
                    self.quote = char * 3
                    i += 3
                    continue
                end = line.find(char, i + 1)
                while end > 0 and _escaped(line, end):
                    end = line.find(char, end + 1)
                if end < 0:  # unterminated (or continued with a backslash)
                    self.backslash = line.endswith("\\")
                    return
                i = end + 1
                continue
            if char in "([{":
                self.depth += 1
            elif char in ")]}":
                self.depth = max(0, self.depth - 1)
            elif char == "\\" and i == n - 1:
                self.backslash = True
            i += 1


def _escaped(line: str, index: int) -> bool:
    count = 0
    while index - count - 1 >= 0 and line[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def cell_text(cell: dict, number: int) -> str:
    """A cell's source as one string; a SourceError when it is not text."""
    source = cell.get("source", "")
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(piece, str) for piece in source):
        return "".join(source)
    raise SourceError(f"cannot read notebook: cell {number}: 'source' must be a string or a list of strings")


def _is_python(line: str) -> bool:
    """`x = a % b`, `print("?")`, `for x in y:  # why?`: lines that only look
    like magics (a compound statement's header is Python too)."""
    try:
        parse_python(line.strip(), "<cell>")
        return True
    except SyntaxError as exc:
        return str(exc.msg).startswith("expected an indented block")
    except ValueError:
        return False


def parse_python(text: str, filename: str = "<source>"):
    """CPython's own parse of `text` (an `ast.Module`), without the
    SyntaxWarnings and DeprecationWarnings it prints about the user's code."""
    import ast
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile(text, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
