"""One short line per finding, as `ruff --output-format concise`: location,
code, `[*]` when fixable and the message's first clause (no estimate)."""

from __future__ import annotations


def short_message(message: str) -> str:
    """The message up to its first `; ` outside parentheses (what is wrong, not the advice)."""
    depth, head = 0, message
    for index, char in enumerate(message):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if depth == 0 and message.startswith("; ", index):
            head = message[:index]
            break
    return head if len(head) <= 160 else head[:157].rstrip() + "..."


def format_findings(findings, rules) -> str:
    return "".join(
        f"{f.location()}: {f.code}{' [*]' if f.fixable else ''} {short_message(f.message)}\n" for f in findings
    )
