"""An example third-party rule pack, loaded through the `greenops_lint` entry point."""

import libcst as cst

from greenops_lint import hookimpl
from greenops_lint.rule import Rule


class PrintInTrainingCode(Rule):
    """Calls `print` in training code.

    ## What it does
    Flags every call of the builtin `print` (an example rule of a plugin).

    ## Why is this bad
    Example only: use `logging`.

    ## Fix
    Use `logging.getLogger(__name__).info(...)`.
    """

    code = "XYZ001"
    name = "print-call"
    family = "efficiency"
    tokens = ("print",)
    INVALID = ["print('hello')\n"]
    VALID = ["import logging\nlogging.info('hello')\n"]

    def visit_Call(self, node: cst.Call) -> None:
        if self.ctx.call_name(node) == "builtins.print":
            self.report(node, "print() in training code; use logging")


@hookimpl
def greenops_lint_rules():
    return [PrintInTrainingCode]
