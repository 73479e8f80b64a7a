"""Each finding with the source it points at, as `ruff --output-format full`:
the header line, the lines around it with a caret under the span, the
estimate and how to fix it."""

from __future__ import annotations

from greenops_lint.report.sources import lines_of
from greenops_lint.report.text import format_line

CONTEXT = 1


def _excerpt(finding) -> list[str]:
    lines = lines_of(finding.path, finding.cell)
    if not 1 <= finding.line <= len(lines):
        return []
    first = max(1, finding.line - CONTEXT)
    last = min(len(lines), max(finding.line, min(finding.end_line, finding.line + 3)) + CONTEXT)
    width = len(str(last))
    gutter = " " * width
    out = [f"{gutter} |"]
    for number in range(first, last + 1):
        text = lines[number - 1].expandtabs(4) if "\t" in lines[number - 1] else lines[number - 1]
        out.append(f"{number:>{width}} | {text}".rstrip())
        if number == finding.line:
            start = finding.column - 1
            end = finding.end_column - 1 if finding.end_line == finding.line else len(text.rstrip())
            out.append(f"{gutter} | {' ' * start}{'^' * max(1, end - start)} {finding.code}")
    out.append(f"{gutter} |")
    return out


def format_findings(findings, rules) -> str:
    blocks = []
    for f in findings:
        block = [format_line(f).replace(f" ({f.estimate.headline()})", "") if f.estimate else format_line(f)]
        block += _excerpt(f)
        if f.estimate is not None:
            block.append(f"  = {f.estimate.headline()} ({f.estimate.basis})")
        rule = rules.get(f.code)
        if rule is not None and rule.fixable and f.fixable:
            block.append(
                "  = fix available: `greenops-lint check --fix`"
                + (" --unsafe-fixes" if rule.fix_safety.startswith("unsafe") else "")
            )
        blocks.append("\n".join(block) + "\n")
    return "\n".join(blocks)
