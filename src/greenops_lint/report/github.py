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
        where = [f"file={_escape_property(f.path)}"]
        message = f"{f.code} {f.message}"
        if f.cell is None:
            where += [f"line={f.line}", f"col={f.column}", f"endLine={f.end_line}", f"endColumn={f.end_column}"]
        else:
            # Lines of a notebook cell are not lines of the .ipynb file: annotate
            # the file and say where in the notebook.
            message = f"{f.code} (cell {f.cell}, line {f.line}) {f.message}"
        props = ",".join([*where, f"title={_escape_property(f.code + ' ' + f.name)}"])
        lines.append(f"::{level} {props}::{_escape_data(message)}\n")
    return "".join(lines)
