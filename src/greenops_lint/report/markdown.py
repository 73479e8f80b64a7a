"""A Markdown table for `$GITHUB_STEP_SUMMARY` and pull-request comments."""

from __future__ import annotations

from collections import defaultdict

from greenops_lint.report.sarif import HELP_URI
from greenops_lint.statistics import combine_estimates


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_findings(findings, rules) -> str:
    if not findings:
        return "## greenops-lint: no findings\n"
    files = len({f.path for f in findings})
    lines = [
        f"## greenops-lint: {len(findings)} finding{'s' if len(findings) != 1 else ''} in {files} file{'s' if files != 1 else ''}",
        "",
        "| location | rule | finding | estimate |",
        "| --- | --- | --- | --- |",
    ]
    for f in findings:
        estimate = f.estimate.headline().removeprefix("est. ") if f.estimate else ""
        rule = f"[{f.code}]({HELP_URI.format(code=f.code)})"
        lines.append(f"| `{_cell(f.location())}` | {rule} | {_cell(f.message)} | {_cell(estimate)} |")
    by_rule = defaultdict(list)
    for f in findings:
        by_rule[(f.code, f.name)].append(f)
    lines += ["", "### Estimated waste by rule", "", "| rule | findings | estimate |", "| --- | --- | --- |"]
    for (code, name), group in sorted(by_rule.items()):
        summary = combine_estimates([f.estimate for f in group if f.estimate])
        lines.append(f"| {code} {name} | {len(group)} | {_cell(summary)} |")
    return "\n".join(lines) + "\n"
