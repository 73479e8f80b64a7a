"""Turning a file's bytes into text the way Python does (PEP 263 cookie, BOM, UTF-8)."""

from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFile:
    path: str
    raw: bytes
    text: str
    encoding: str


class SourceError(Exception):
    """The file cannot be read or decoded (reported as GO002)."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except IsADirectoryError:
        raise SourceError("cannot read file: it is a directory") from None
    except OSError as exc:
        raise SourceError(f"cannot read file: {exc.strerror or exc}") from None


def decode(path: str, raw: bytes) -> SourceFile:
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
    if text.startswith("\ufeff"):
        text = text[1:]
    return SourceFile(path=path, raw=raw, text=text, encoding=encoding)
