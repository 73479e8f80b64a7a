"""Output formats. Each formatter turns sorted findings into one string."""

from __future__ import annotations

from typing import Callable

from greenops_lint.finding import Finding
from greenops_lint.report import concise, full, github, json_format, junit, markdown, sarif, text
from greenops_lint.rule import Rule

Formatter = Callable[[list[Finding], dict[str, type[Rule]]], str]

FORMATTERS: dict[str, Formatter] = {
    "text": text.format_findings,
    "concise": concise.format_findings,
    "full": full.format_findings,
    "json": json_format.format_findings,
    "sarif": sarif.format_findings,
    "github": github.format_findings,
    "markdown": markdown.format_findings,
    "junit": junit.format_findings,
}
