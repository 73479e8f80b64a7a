"""GO0xx: problems with the file itself. The engine reports these, not a visitor."""

from greenops_lint.rule import Rule


class SyntaxErrorRule(Rule):
    """The file does not parse as Python.

    ## What it does
    Reports the first syntax error in a file, at its position, and goes on with
    the other files.

    ## Why is this bad
    A file that does not parse cannot be checked for any other rule.

    ## Fix
    Fix the syntax error; `python -m py_compile FILE` shows the same position.
    """

    code = "GO001"
    name = "syntax-error"
    family = "core"
    severity = "error"


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


class InternalErrorRule(Rule):
    """A rule crashed on this file; the other rules and files were still checked.

    ## What it does
    Reports an exception raised inside one rule (built-in or from a plugin)
    while it checked this file, naming the rule and the exception.

    ## Why is this bad
    The crashed rule's findings for this file are missing. Please report it
    with the file (or a reduced version); `--debug` prints the traceback.

    ## Fix
    Upgrade greenops-lint or the plugin that provides the rule, or ignore the
    rule for this file with `per-file-ignores`.
    """

    code = "GO003"
    name = "internal-error"
    family = "core"
    severity = "error"


RULES = [SyntaxErrorRule, DecodeErrorRule, InternalErrorRule]
