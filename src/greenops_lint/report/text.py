"""flake8-style lines: `path:line:col: CODE message`."""

from __future__ import annotations


def _one_line(text: str) -> str:
    """A newline (or any control character) in a file name or message would
    start a forged finding line: shown escaped instead."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def format_line(finding) -> str:
    headline = f" ({finding.estimate.headline()})" if finding.estimate else ""
    marker = " [*]" if finding.fixable else ""
    return _one_line(f"{finding.location()}: {finding.code}{marker} {finding.message}{headline}")


def format_findings(findings, rules) -> str:
    return "".join(format_line(f) + "\n" for f in findings)
