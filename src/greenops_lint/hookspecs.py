"""pluggy hook specifications for rule packs (entry-point group `greenops_lint`).

A plugin module implements the hooks with `greenops_lint.hookimpl`:

    from greenops_lint import hookimpl

    @hookimpl
    def greenops_lint_rules():
        return [MyRule]

Built-in rules are registered through the same hook.
"""

import pluggy

PROJECT = "greenops_lint"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def greenops_lint_rules():
    """Return a list of `greenops_lint.rule.Rule` subclasses."""


@hookspec
def greenops_lint_formatters():
    """Return a dict of output format name -> callable(findings, rules) -> str."""
