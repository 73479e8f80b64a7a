"""GO001: the file does not parse."""

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
