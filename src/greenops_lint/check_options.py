"""The parts of `check` that ruff users expect: reading a buffer from stdin
(`check - --stdin-filename PATH`), `--force-exclude`, colour, the
`--statistics` table, `--show-fixes` and `--show-settings`. The CLI wires them in."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import fields
from typing import Optional

from greenops_lint.config import Config
from greenops_lint.engine import Linter
from greenops_lint.finding import Finding
from greenops_lint.rule import Rule
from greenops_lint.statistics import combine_estimates

STDIN = "-"
# Formats that are lines of text for a person; colour applies to these.
HUMAN_FORMATS = ("text", "concise", "full")


def stdin_name(stdin_filename: Optional[str]) -> str:
    return os.path.normpath(stdin_filename) if stdin_filename else STDIN


def read_stdin() -> bytes:
    return sys.stdin.buffer.read()


def lint_stdin(raw: bytes, name: str, config: Config, rules: dict[str, type[Rule]], debug: bool, unsafe: bool):
    return Linter(config, rules, debug, unsafe).lint_bytes(name, raw)


def fix_stdin(raw: bytes, name: str, config: Config, rules: dict[str, type[Rule]], unsafe: bool):
    from greenops_lint.fixes import fix_source

    return fix_source(Linter(config, rules, unsafe_fixes=unsafe, collect_fixes=True), name, raw, unsafe)


def use_color(choice: str, to_file: bool) -> bool:
    if choice == "always":
        return True
    if choice == "never" or to_file or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def statistics_table(findings: list[Finding], rules: dict[str, type[Rule]], output_format: str) -> str:
    """One row per rule, most frequent first, as `ruff --statistics` prints them:
    count, code, `[*]` when some of its findings can be fixed, name."""
    counts = Counter(f.code for f in findings)
    fixable = {f.code for f in findings if f.fixable}
    names = {f.code: f.name for f in findings}
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if output_format == "json":
        # ruff's rows, plus each rule's summed estimate (as the text table shows it).
        estimates = {
            c: combine_estimates([f.estimate for f in findings if f.code == c and f.estimate]) for c, _ in rows
        }
        data = [
            {"code": c, "name": names[c], "count": n, "fixable": c in fixable, "estimate": estimates[c]}
            for c, n in rows
        ]
        return json.dumps(data, indent=2) + "\n"
    if not rows:
        return ""
    width = max(len(str(n)) for _, n in rows)
    code_width = max(len(c) for c, _ in rows)
    marker = any(fixable)
    lines = []
    for code, count in rows:
        flag = ("[*] " if code in fixable else "    ") if marker else ""
        lines.append(f"{count:>{width}}\t{code:<{code_width}}\t{flag}{names[code]}")
    return "\n".join(lines) + "\n"


def fixes_summary(outcomes) -> str:
    """`--show-fixes`: what `--fix` changed, per file and rule."""
    changed = [o for o in outcomes if o.changed]
    total = sum(len(o.applied) for o in changed)
    if not total:
        return ""
    lines = [f"Fixed {total} finding{'s' if total != 1 else ''}:"]
    for outcome in changed:
        lines.append(f"- {outcome.path}:")
        for (code, name), count in sorted(Counter((f.code, f.name) for f in outcome.applied).items()):
            lines.append(f"    {count} \u00d7 {code} ({name})")
    return "\n".join(lines) + "\n"


def settings_report(config: Config, rules: dict[str, type[Rule]], files: list[str]) -> str:
    """`--show-settings`: the resolved configuration, as the run would use it."""
    lines = [f"Settings file: {config.source or '(none; defaults)'}", f"Project root: {config.root}"]
    if files:
        lines.append(f"Files: {len(files)} (first: {files[0]})")
    for item in fields(config):
        if item.name in ("root", "source"):
            continue
        value = getattr(config, item.name)
        if isinstance(value, tuple) and value and isinstance(value[0], tuple):
            value = {
                k: v if not (isinstance(v, tuple) and v and isinstance(v[0], tuple)) else dict(v) for k, v in value
            }
        lines.append(f"{item.name.replace('_', '-')} = {value!r}")
    lines.append(f"enabled rules ({len(rules)}): {', '.join(sorted(rules))}")
    return "\n".join(lines) + "\n"
