"""The GO101 fix: hoist a loop-invariant load out of its `for` loop (unsafe:
the load then runs once even if the file changes during training)."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.candidates import Candidate
from greenops_lint.analysis.loops import Repetition, referenced_names
from greenops_lint.finding import Fix
from greenops_lint.noqa import is_suppressed, noqa_lines
from greenops_lint.walker import children

_EMPTY_MODULE = cst.Module(body=[])


def _code(node: cst.CSTNode) -> str:
    return _EMPTY_MODULE.code_for_node(node)


def _suppressed(code: str) -> bool:
    """Does a `# noqa` in the statement's own lines cover GO101?"""
    table = noqa_lines(code)
    return bool(table) and is_suppressed("GO101", tuple(table), table)


class _LoopBody:
    """The hoists of one `for` body, computed once per loop (not once per
    load: a loop of 5,000 loads stays linear) and applied together: the fix
    pass applies one fix per node and round, so every hoist fix of a loop
    moves all the loop's hoistable loads at once, in their order."""

    def __init__(self, loop: cst.For) -> None:
        self.index = {id(s): i for i, s in enumerate(loop.body.body)}
        self.assignments = _assignment_counts(loop.body)
        self.moved: dict[int, str] = {}  # index in the original body -> the statement's code

    def add(self, index: int, code: str) -> None:
        if not _suppressed(code):  # a suppressed load stays where it is (its own fix is not collected)
            self.moved[index] = code

    def hoist(self, updated: cst.For, own_code: str):
        body = list(updated.body.body)
        codes = [_code(s) for s in body]
        # The fix pass hands over the loop with inner fixes applied: find the
        # statements by their code, in order (an inner hoist may have added lines).
        wanted = [own_code] if _suppressed(own_code) else [self.moved[i] for i in sorted(self.moved)]
        chosen: list[int] = []
        start = 0
        for code in wanted:
            try:
                position = codes.index(code, start)
            except ValueError:
                continue
            chosen.append(position)
            start = position + 1
        if not chosen or len(chosen) == len(body):
            return updated  # nothing found, or the loop would be left empty
        taken = set(chosen)
        moved = [body[i] for i in chosen]
        rest = [s for i, s in enumerate(body) if i not in taken]
        return cst.FlattenSentinel([*moved, updated.with_changes(body=updated.body.with_changes(body=rest))])


def hoist_fix(
    candidate: Candidate, repetition: Repetition, bodies: Optional[dict[int, _LoopBody]] = None
) -> Optional[Fix]:
    """Move `name = load(...)` from the top level of a `for` body to before the loop."""
    loop = repetition.loop.node
    statement = candidate.statement
    if repetition.via or not isinstance(loop, cst.For) or not isinstance(loop.body, cst.IndentedBlock):
        return None
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    assign = statement.body[0]
    if not (isinstance(assign, cst.Assign) and assign.value is candidate.node and len(assign.targets) == 1):
        return None
    target = assign.targets[0].target
    if not isinstance(target, cst.Name):
        return None
    bodies = {} if bodies is None else bodies
    body = bodies.get(id(loop))
    if body is None:
        body = bodies[id(loop)] = _LoopBody(loop)
    index = body.index.get(id(statement))
    if index is None or body.assignments.get(target.value, 0) != 1:
        return None
    own_code = _code(statement)
    body.add(index, own_code)
    return Fix(loop, lambda updated: body.hoist(updated, own_code), safe=False, title="load once before the loop")


def _assignment_counts(block: cst.CSTNode) -> dict[str, int]:
    """How often each name is assigned under `block` (2 for any assignment other
    than `name = ...`), in one pass."""
    counts: dict[str, int] = {}
    stack = [block]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.AssignTarget) and isinstance(node.target, cst.Name):
            counts[node.target.value] = counts.get(node.target.value, 0) + 1
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.For, cst.NamedExpr)):
            for name in referenced_names(node.target):
                counts[name] = counts.get(name, 0) + 2  # assigned another way too: leave the loop alone
        stack.extend(children(node))
    return counts
