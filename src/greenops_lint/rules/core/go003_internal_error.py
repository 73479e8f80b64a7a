"""GO003: a rule or analysis crashed on the file."""

from greenops_lint.rule import Rule


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
