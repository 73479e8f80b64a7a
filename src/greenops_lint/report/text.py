"""flake8-style lines: `path:line:col: CODE message`."""

from __future__ import annotations


def format_line(finding) -> str:
    headline = f" ({finding.estimate.headline()})" if finding.estimate else ""
    marker = " [*]" if finding.fixable else ""
    return f"{finding.location()}: {finding.code}{marker} {finding.message}{headline}"


def format_findings(findings, rules) -> str:
    return "".join(format_line(f) + "\n" for f in findings)
