"""Built-in rules, registered through the same pluggy hook as third-party packs."""

from greenops_lint.hookspecs import hookimpl
from greenops_lint.rules import core, precision


@hookimpl
def greenops_lint_rules():
    return [*core.RULES, *precision.RULES]
