"""What only the GO5xx rules share: `LoopBoundRule`, the base of the loop rules
(a `CandidateRule`: candidates recorded during the walk, decided once the loops
are classified), its guard rule, and how a training call and an optimizer
receiver look."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.candidates import CandidateRule
from greenops_lint.analysis.efficiency import exits_block, rare_guard
from greenops_lint.analysis.loops import FrameNode, referenced_names
from greenops_lint.analysis.tree import walk_expr

OPTIMIZER_RECEIVER = re.compile(r"(opt|optim|optimizer|optimiser|scaler)", re.IGNORECASE)


def receiver_name(node: cst.BaseExpression) -> str:
    """`opt` for `opt.step()`, `optimizer` for `self.optimizer.step()`."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return ""


def is_train_call(node: cst.Call) -> bool:
    """`loss.backward()`, `accelerator.backward(loss)`, `optimizer.step()`, `tape.gradient`."""
    func = node.func
    if not isinstance(func, cst.Attribute):
        return False
    method = func.attr.value
    if method in ("backward", "gradient"):
        return True
    if method == "step":
        name = receiver_name(func.value)
        return bool(OPTIMIZER_RECEIVER.search(name)) and "sched" not in name.lower()
    return False


def calls_module_function(func: cst.BaseExpression) -> bool:
    """`helper(...)` or `self.helper(...)`: a call that may run a function of
    the module. (Exact types: isinstance() on LibCST's ABCs is slow here.)"""
    return type(func) is cst.Name or (
        type(func) is cst.Attribute and type(func.value) is cst.Name and func.value.value == "self"
    )


def _frame_name(frame: FrameNode) -> Optional[str]:
    return frame.name.value if isinstance(frame, cst.FunctionDef) else None


class LoopBoundRule(CandidateRule):
    """Shared machinery of the GO5xx loop rules (not a rule itself).

    Guards (see `analysis/guards.py`): these rules replace the base guard rule
    with their own: an `if` whose body holds the node and whose test makes it
    run on a fraction of the iterations (`guard_test`, default `rare_guard`:
    periodic tests, counter equality, flags such as `sync_gradients`) or whose
    body ends in raise/break/return, and any exception handler (an OOM
    recovery or error path runs rarely)."""

    family = "efficiency"

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.train_frames: set[str] = set()

    def guard_test(self, test: cst.BaseExpression, variant: set[str]) -> bool:
        """Does `if test:` make its body run rarely in the loops around it?"""
        return rare_guard(test, variant)

    def is_guard(self, node: cst.CSTNode, child: cst.CSTNode, variant: set[str]) -> bool:
        node_type = type(node)
        if node_type is cst.If:
            return child is node.body and (self.guard_test(node.test, variant) or exits_block(node.body))
        return node_type is cst.ExceptHandler

    def visit_Call(self, node: cst.Call) -> None:
        if is_train_call(node):
            name = _frame_name(self.ctx.loops.current_frame)
            if name is not None:
                self.train_frames.add(name)
        self.check_call(node)

    def check_call(self, node: cst.Call) -> None:  # pragma: no cover - overridden
        pass


def backward_inputs(function: cst.FunctionDef) -> tuple[set[str], list[tuple[set[str], cst.BaseExpression]]]:
    """The names whose values flow into a `.backward()` (or `autograd.grad`) in
    `function`, and its assignments (targets, value)."""
    names: set[str] = set()
    assignments: list[tuple[set[str], cst.BaseExpression]] = []
    for node in walk_expr(function.body):
        node_type = type(node)
        if node_type is cst.Call and type(node.func) is cst.Attribute and node.func.attr.value in ("backward", "grad"):
            names |= referenced_names(node.func.value)
            for arg in node.args:
                names |= referenced_names(arg.value)
        elif node_type is cst.Assign and node.value is not None:
            targets: set[str] = set()
            for target in node.targets:
                targets |= referenced_names(target.target)
            assignments.append((targets, node.value))
        elif node_type in (cst.AugAssign, cst.AnnAssign) and node.value is not None:
            assignments.append((referenced_names(node.target), node.value))
    if not names:
        return names, []
    changed = True
    while changed:
        changed = False
        for targets, value in assignments:
            if targets & names:
                added = referenced_names(value) - names
                if added:
                    names |= added
                    changed = True
    return names, assignments
