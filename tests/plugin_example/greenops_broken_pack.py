"""A rule pack whose registration hook raises."""

from greenops_lint import hookimpl


@hookimpl
def greenops_lint_rules():
    raise RuntimeError("cannot register")
