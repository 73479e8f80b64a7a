"""GO002: the file cannot be read or decoded."""

from greenops_lint.rule import Rule


class DecodeErrorRule(Rule):
    """The file cannot be read or decoded.

    ## What it does
    Reports a file that cannot be read (permissions, a directory, a FIFO) or
    decoded with its declared encoding (PEP 263 cookie, UTF-8 BOM, else UTF-8).

    ## Why is this bad
    A file that cannot be decoded cannot be checked for any other rule.

    ## Fix
    Save the file as UTF-8, or declare its encoding with a `# -*- coding: ... -*-` line.
    """

    code = "GO002"
    name = "unreadable-file"
    family = "core"
    severity = "error"
