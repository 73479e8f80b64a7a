"""GitHub Actions workflow commands: annotations on the pull request diff."""

from __future__ import annotations

_LEVELS = {"error": "error", "warning": "warning", "info": "notice"}


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def format_findings(findings, rules) -> str:
    lines = []
    for f in findings:
        level = _LEVELS.get(f.severity, "warning")
        props = ",".join(
            [
                f"file={_escape_property(f.path)}",
                f"line={f.line}",
                f"col={f.column}",
                f"endLine={f.end_line}",
                f"endColumn={f.end_column}",
                f"title={_escape_property(f.code + ' ' + f.name)}",
            ]
        )
        lines.append(f"::{level} {props}::{_escape_data(f.code + ' ' + f.message)}\n")
    return "".join(lines)
