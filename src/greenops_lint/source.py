"""Turning a file's bytes into text the way Python does (PEP 263 cookie, BOM, UTF-8)."""

from __future__ import annotations

import io
import json
import os
import stat
import re
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

    def cell_position(self, line: int) -> tuple[Optional[int], int]:
        if self.cells is None or not 1 <= line <= len(self.cells):
            return None, line
        return self.cells[line - 1]


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
# memory, and no hand-written training script is this big.
MAX_FILE_BYTES = 2 * 1024 * 1024


def read_bytes(path: str) -> bytes:
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise SourceError("cannot read file: it is a directory")
        if not stat.S_ISREG(info.st_mode):
            # A FIFO or a device would block or never end.
            raise SourceError("cannot read file: not a regular file (a FIFO, socket or device)")
        if info.st_size > MAX_FILE_BYTES:
            raise SourceError(f"cannot read file: {info.st_size / 2**20:.0f} MiB is over the {MAX_FILE_BYTES // 2**20} MiB limit")
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
    """Code cells joined into one virtual module: IPython magics, shell escapes and
    help lines become `pass` (keeping indentation), so lines map back to cells."""
    try:
        notebook = json.loads(raw.decode("utf-8-sig"))
        cells = notebook["cells"]
        if not isinstance(cells, list):
            raise TypeError("cells is not a list")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"cannot read notebook: {exc}") from None
    lines: list[str] = []
    positions: list[tuple[int, int]] = []
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        text = cell_text(cell, number)
        cell_lines = physical_lines(text)
        skip_body = False
        if cell_lines and cell_lines[0].lstrip().startswith("%%"):
            magic = cell_lines[0].strip()[2:].split(" ", 1)[0]
            skip_body = magic not in _PYTHON_CELL_MAGICS
        for index, line in enumerate(cell_lines):
            if skip_body or (index == 0 and line.lstrip().startswith("%%")):
                line = ""
            elif _LINE_MAGIC.search(line) and not _is_python(line):
                line = line[: len(line) - len(line.lstrip())] + "pass"
            lines.append(line)
            positions.append((number, index + 1))
    text = "\n".join(lines) + ("\n" if lines else "")
    return SourceFile(path=path, raw=raw, text=text, encoding="utf-8", cells=tuple(positions))


def cell_text(cell: dict, number: int) -> str:
    """A cell's source as one string; a SourceError when it is not text."""
    source = cell.get("source", "")
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(piece, str) for piece in source):
        return "".join(source)
    raise SourceError(f"cannot read notebook: cell {number}: 'source' must be a string or a list of strings")


def _is_python(line: str) -> bool:
    """`x = a % b`, `print("?")`: lines that only look like magics."""
    try:
        parse_python(line.strip(), "<cell>")
        return True
    except SyntaxError:
        return False
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
