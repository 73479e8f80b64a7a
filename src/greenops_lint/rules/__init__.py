"""Built-in rules, registered through the same pluggy hook as third-party packs."""

from greenops_lint.hookspecs import hookimpl
from greenops_lint.rules import caching, core, efficiency, precision, provisioning, unused

FAMILY_MODULES = (core, caching, unused, provisioning, precision, efficiency)


@hookimpl
def greenops_lint_rules():
    return [rule for module in FAMILY_MODULES for rule in module.RULES]
