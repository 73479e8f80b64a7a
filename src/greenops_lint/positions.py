"""Line and column of the nodes a file's findings point at.

LibCST computes positions by generating the code of the whole module; here
only the statements that hold findings are generated (a method rather than
its whole class), each started at the line CPython's own parser gives for it,
and generation stops once the nodes are placed. The results are those of
LibCST's PositionProvider (tests compare them node for node).
"""

from __future__ import annotations

import ast
from typing import Optional

import libcst as cst
from libcst.metadata import CodePosition, CodeRange
from libcst.metadata.position_provider import PositionProvidingCodegenState

from greenops_lint.source import parse_python
from greenops_lint.walker import children


class _PositionsFound(Exception):
    pass


class _TargetPositions(PositionProvidingCodegenState):
    """LibCST's position-tracking code generation, stopped as soon as the nodes
    we report are placed (LibCST's PositionProvider always generates the
    whole module; on a large file that costs several parses), and without
    keeping the generated text."""

    def add_token(self, value: str) -> None:
        if "\n" in value or "\r" in value:
            self._update_position(value)
        else:
            self.column += len(value)

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.add_token(token)

    def record_syntactic_position(self, node, *, start_node=None, end_node=None) -> "_SyntacticPosition":
        # LibCST's version is a @contextmanager generator, entered for nearly
        # every node; a plain object does the same bookkeeping at a third of the cost.
        return _SyntacticPosition(self, node, start_node, end_node)

    def after_codegen(self, node: cst.CSTNode) -> None:
        super().after_codegen(node)
        if id(node) in self.targets:
            self.targets.discard(id(node))
            if not self.targets:
                raise _PositionsFound


class _SyntacticPosition:
    __slots__ = ("state", "node", "start_node", "end_node", "start")

    def __init__(self, state, node, start_node, end_node) -> None:
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node

    def __enter__(self) -> None:
        self.start = CodePosition(self.state.line, self.state.column)

    def __exit__(self, *exc_info) -> None:
        state = self.state
        computed = state.provider._computed
        start = computed[self.start_node].start if self.start_node is not None else self.start
        end = computed[self.end_node].end if self.end_node is not None else CodePosition(state.line, state.column)
        computed[self.node] = CodeRange(start, end)


class _Positions:
    def __init__(self) -> None:
        self._computed: dict = {}


def positions_of(module: cst.Module, nodes: list[cst.CSTNode], text: Optional[str] = None) -> dict:
    """CodeRange (as PositionProvider computes it) of each node in `nodes`.

    Given the module's `text`, only the statements that hold the nodes are
    generated, each from its first line as CPython's parser reports it (the
    smallest such statement: a method rather than its whole class), so a
    finding deep in a long file does not cost generating all the code before
    it. Otherwise (or when the two parsers' statements do not line up) the
    module is generated from the top, up to the last node."""
    if text is not None:
        found = _positions_by_statement(module, {id(node): node for node in nodes}, text)
        if found is not None:
            return found
    provider = _Positions()
    _generate(module, 1, [], {id(node) for node in nodes}, module, provider)
    return provider._computed


def _generate(
    node, line: int, indents: list[str], targets: set[int], module: cst.Module, provider: "_Positions"
) -> None:
    state = _TargetPositions(
        default_indent=module.default_indent, default_newline=module.default_newline, provider=provider
    )
    state.line = line
    state.indent_tokens = list(indents)
    state.targets = set(targets)
    try:
        node._codegen(state)
    except (_PositionsFound, KeyError):
        # Stopping mid-tree unwinds LibCST's `record_syntactic_position`
        # blocks, which then look up children that were never placed.
        if state.targets:
            raise


def _positions_by_statement(module: cst.Module, targets: dict[int, cst.CSTNode], text: str) -> Optional[dict]:
    if "\r" in text or "\f" in text:
        return None  # line breaks the two parsers might count differently
    parents = _parents_until_found(module, set(targets))
    if parents is None:
        return None
    try:
        tree = parse_python(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    units: dict[int, tuple[cst.CSTNode, int, list[str], set[int]]] = {}
    for target_id, target in targets.items():
        path = [target]
        while id(path[-1]) in parents:
            path.append(parents[id(path[-1])])
        path.reverse()  # top-level statement first
        unit = _generation_unit(module, tree, path)
        if unit is None:
            return None
        statement, line, indents = unit
        units.setdefault(id(statement), (statement, line, indents, set()))[3].add(target_id)
    provider = _Positions()
    for statement, line, indents, held in units.values():
        _generate(statement, line, indents, held, module, provider)
    return provider._computed


def _parents_until_found(module: cst.Module, targets: set[int]) -> Optional[dict[int, cst.CSTNode]]:
    """id(node) -> parent node, for the top-level statements up to the last
    one holding a target (None when a target is in none of them)."""
    parents: dict[int, cst.CSTNode] = {}
    remaining = set(targets)
    for statement in module.body:
        if not remaining:
            break
        remaining.discard(id(statement))
        stack = [statement]
        while stack:
            node = stack.pop()
            for child in children(node):
                parents[id(child)] = node
                remaining.discard(id(child))
                stack.append(child)
    return None if remaining else parents


def _generation_unit(module: cst.Module, tree, path: list) -> Optional[tuple[cst.CSTNode, int, list[str]]]:
    """The smallest statement on `path` (top-level statement first) to generate:
    a class or function is entered when the path goes on into its body. With
    its first line and the indentation of the blocks around it; None when
    LibCST's and CPython's statement lists do not line up."""
    cst_body, ast_body, indents = module.body, tree.body, []
    index = 0
    while True:
        statement = path[index]
        node = _ast_statement(cst_body, ast_body, statement)
        if node is None:
            return None
        body = getattr(statement, "body", None)
        if (
            type(statement) in (cst.ClassDef, cst.FunctionDef)
            and type(body) is cst.IndentedBlock
            and index + 2 < len(path)
            and path[index + 1] is body
        ):
            indents = indents + [body.indent if body.indent is not None else module.default_indent]
            cst_body, ast_body = body.body, node.body
            index += 2
            continue
        return statement, _first_line(statement, node), indents


_AST_TYPES = {cst.ClassDef: (ast.ClassDef,), cst.FunctionDef: (ast.FunctionDef, ast.AsyncFunctionDef)}


def _ast_statement(cst_body, ast_body, statement):
    """The `ast` statement that starts where `statement` does, or None."""
    position = 0
    found = None
    for candidate in cst_body:
        if candidate is statement:
            found = position
        position += len(candidate.body) if type(candidate) is cst.SimpleStatementLine else 1
    if found is None or position != len(ast_body):
        return None
    node = ast_body[found]
    expected = _AST_TYPES.get(type(statement))
    if expected is not None and not isinstance(node, expected):
        return None
    return node


def _first_line(statement: cst.CSTNode, node) -> int:
    """The line `statement`'s code starts on, its leading comments and blank lines included."""
    line = node.lineno
    leading = len(getattr(statement, "leading_lines", ()))
    decorators = getattr(statement, "decorators", ())
    if decorators and getattr(node, "decorator_list", None):
        line = node.decorator_list[0].lineno
        leading += len(decorators[0].leading_lines)
    return line - leading
